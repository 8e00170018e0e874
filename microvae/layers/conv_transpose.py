"""Transposed 2-D convolution ("deconvolution"), layout NCHW, built as the adjoint of Conv2D.

Let K be the Conv2D with ``out_channels → in_channels``, the same kernel, stride and
padding, applied to an image of the *output* size. K is linear in its input, K(U) = A·U.
This layer computes Y = Aᵀ·X + b: its forward pass is K's input gradient (col2im of
W₂ᵀ·X), and its backward pass is K's forward pass (im2col):

    Y   = col2im(W₂ᵀ·X) + b                W (in_channels, out_channels, KH, KW), W₂ = W as (C_in, C_out·KH·KW)
    dX  = A·dY = W₂·im2col(dY)             (Conv2D's forward, without bias)
    dW₂ = X·im2col(dY)ᵀ,   db = Σ_{n,h,w} dY

(X and dX seen as (C_in, N·H·W), as in Conv2D.)

**Sizes.** ``"same"``: output = input·stride (as in Keras); K is then a "same" convolution
of the output size, whose padding split (⌊P/2⌋ before, the rest after, P = max(KH − s, 0))
decides where the kernel sits: e.g. KH = 3, s = 2 gives P = 1, so 0 on top and 1 at the
bottom; then output row 2r receives input rows r (tap 0) and r − 1 (tap 2), and row 2r + 1
input row r alone (tap 1). An even kernel KH = 4, s = 2 gives P = 2, split 1 / 1.
``"valid"``: output = (input − 1)·stride + KH.

**output_padding** p (0 ≤ p < stride) picks another of the output sizes that K maps back to
the input size: (input − 1)·stride + 1 + p for ``"same"`` (p = stride − 1 is the default
size) and (input − 1)·stride + KH + p for ``"valid"``. The layer stays the adjoint of K at
that size, so it mirrors a Conv2D that took an image of that size to the input's: a stride-2
"same" Conv2D takes 7 rows to 4, and ``output_padding=0`` takes 4 back to 7. Under
``"valid"``, the p extra rows and columns at the bottom and right hold the bias alone.
"""

from __future__ import annotations

from ..checks import check_bool
from ..threads import chunk_workers, map_chunks
from .conv import (WeightGradAccumulator, _bias_grad_sums, _channels_first, _columns, _ConvBase, _direct_3x3,
                   _dy_chunk_through_relu, _image_chunks, _pair, _store_nchw, _worker_scratch, conv3x3_backward,
                   conv_geometry, conv_input_grad)

__all__ = ["Conv2DTranspose"]


class Conv2DTranspose(_ConvBase):
    """Transposed convolution, NCHW: the adjoint of Conv2D(out_channels → in_channels), plus a bias.

    Forward:    Y = col2im(W₂ᵀ·X) + b             (Conv2D's input gradient, applied to X)
    Backward:   dX = W₂·im2col(dY)                (Conv2D's forward, applied to dY)
                dW₂ = X·im2col(dY)ᵀ,   db = Σ_{n,h,w} dY

    3×3, stride 1, "same" on the CPU: the same passes through Conv2D's direct kernels
    (``kernels.conv3x3_same``), without a column buffer.

    W has shape (in_channels, out_channels, KH, KW). Output size: input·stride ("same")
    or (input − 1)·stride + KH ("valid"); with ``output_padding`` p (an int, or a pair for
    height and width, each in [0, stride)): (input − 1)·stride + 1 + p ("same") or
    (input − 1)·stride + KH + p ("valid"), see the module doc. ``init``: "he" or "glorot" with
    fan_in = in_channels·KH·KW, fan_out = out_channels·KH·KW.

    ``activation="relu"`` fuses a ReLU into the layer: Y = max(col2im(W₂ᵀ·X) + b, 0), and
    the backward pass above runs on dY·[Y > 0] (the same numbers as Conv2DTranspose, then ReLU).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride: int = 1, padding: str = "same",
                 bias: bool = True, init: str = "he", activation: str | None = None, output_padding=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, init, activation)
        self.output_padding = None
        if output_padding is not None:
            pair = _pair(output_padding, "output_padding", minimum=0)
            if max(pair) >= self.stride:  # K would map the larger output to more rows than the input has
                raise ValueError(f"output_padding must be None or in [0, stride) = [0, {self.stride}) for each axis, "
                                 f"got {output_padding!r}")
            self.output_padding = pair

    def _weight_shape(self):
        return (self.in_channels, self.out_channels, *self.kernel_size)

    def output_shape(self, height: int, width: int):
        """(OH, OW) for an input of height × width."""
        # (input − 1)·stride + base + p, base 1 ("same") or KH ("valid"); p defaults to
        # stride − 1 under "same" (output = input·stride) and to 0 under "valid"
        s, same = self.stride, self.padding == "same"
        ph, pw = self.output_padding if self.output_padding is not None else ((s - 1, s - 1) if same else (0, 0))
        base_h, base_w = (1, 1) if same else self.kernel_size
        return (height - 1) * s + base_h + ph, (width - 1) * s + base_w + pw

    def get_config(self):
        config = super().get_config()
        if self.output_padding is not None:  # left out otherwise: checkpoints of earlier versions have no such key
            config["output_padding"] = list(self.output_padding)
        return config

    def __repr__(self):
        text = super().__repr__()
        if self.output_padding is None:
            return text
        p = self.output_padding[0] if self.output_padding[0] == self.output_padding[1] else self.output_padding
        return f"{text[:-1]}, output_padding={p})"

    def forward(self, x):
        x = self._input(x)  # in the layer's dtype: the kernels compute in x's
        self._check_input(x, self.in_channels)
        n, _, h, w = x.shape
        oh, ow = self.output_shape(h, w)
        # padding of the adjoint convolution K, which maps (oh, ow) back to (h, w)
        pads = (conv_geometry(oh, self.kernel_size[0], self.stride, self.padding)[1],
                conv_geometry(ow, self.kernel_size[1], self.stride, self.padding)[1])
        y = conv_input_grad(self, x, self.params["W"], self.stride, pads, (n, self.out_channels, oh, ow),
                            bias=self.params.get("b"), relu=self.activation == "relu")
        self._pads_hw, self._x = pads, x
        return self._output(self._keep_output(y))

    def backward(self, dy, input_grad: bool = True):
        """One pass over the batch: each chunk's columns of dY serve both dX and dW."""
        input_grad = check_bool("input_grad", input_grad)
        # checked first: the route and the columns' geometry below are read from dY's shape
        dy = self._upstream(dy, contiguous=True)
        xp, x = self.backend.xp, self._x
        weight = self.params["W"]
        if _direct_3x3(self, self.kernel_size, self.stride, self._pads_hw, dy.shape[2:], x.shape[2:]):
            return conv3x3_backward(self, dy, x, xp.ascontiguousarray(weight), self.grads["W"], self.grads.get("b"),
                                    relu_out=self._y, input_grad=input_grad, transposed=True)
        n, c_in, h, w = x.shape
        kh, kw = self.kernel_size
        w2 = weight.reshape(c_in, -1)
        chunks = _image_chunks(self, n, w2.shape[1] * h * w * dy.itemsize)
        workers = chunk_workers(chunks)
        acc = WeightGradAccumulator(self, self.grads["W"], workers)
        bias_sums = _bias_grad_sums(self, dy, workers, self.use_bias)
        dx = xp.empty((n, c_in, h * w), dtype=dy.dtype) if input_grad else None

        def chunk(s, e, worker):
            dy_chunk = _dy_chunk_through_relu(self, dy, self._y, s, e, worker)              # dY·[Y > 0] with a fused ReLU
            cols = _columns(self, "cols", dy_chunk, (kh, kw), self.stride, self._pads_hw, (h, w), worker)
            x2 = _channels_first(x[s:e], _worker_scratch(self, "x_channels_first", worker, (c_in, cols.shape[1]), dy.dtype))
            acc.add(x2, cols, worker)                                # dW₂ += X₂·colsᵀ
            if input_grad:
                dx2 = _worker_scratch(self, "conv_out", worker, (c_in, cols.shape[1]), dy.dtype)
                xp.matmul(w2, cols, out=dx2)                         # dX = W₂·cols
                _store_nchw(self, dx2, dx[s:e], None)
            if bias_sums is not None:
                bias_sums.add_sum(worker, dy_chunk, (0, 2, 3))

        map_chunks(chunks, chunk)
        acc.finish()
        if bias_sums is not None:
            self.grads["b"][...] = bias_sums.total()
        return dx.reshape(x.shape) if input_grad else None
