"""2-D convolution (cross-correlation, as in every deep-learning library), layout NCHW.

Shapes: input X (N, C, H, W), weight W (F, C, KH, KW), bias b (F,), output Y (N, F, OH, OW).

**Padding.** ``"valid"``: no padding, OH = ⌊(H − KH)/s⌋ + 1 (needs H ≥ KH).
``"same"``: OH = ⌈H/s⌉, padded with P = max((OH − 1)·s + KH − H, 0) zero rows in all,
⌊P/2⌋ on top and the rest (one more, when P is odd) at the bottom; likewise columns,
left/right. This is the TensorFlow/Keras split: with stride 1 and an odd kernel it is
(K − 1)/2 on each side; an even kernel (or stride 2 with an odd kernel on an even size)
puts the extra zero row/column at the bottom/right.

**The computation** goes through the column buffer of ``kernels.im2col`` (Numba on the
CPU, CuPy on the GPU): cols (C·KH·KW, N·OH·OW) holds every input window of the batch as
a column, so with W₂ = W reshaped to (F, C·KH·KW) and Y, dY seen as (F, N·OH·OW):

    Y = W₂·cols + b               (one BLAS product for the whole batch)
    dW₂ = dY·colsᵀ,   db = Σ_{n,oh,ow} dY,   dX = col2im(W₂ᵀ·dY)

``col2im`` is im2col's adjoint. The three helpers below are shared with
``Conv2DTranspose``, whose forward pass *is* this layer's input gradient.
"""

from __future__ import annotations

from .base import INITIALIZERS, Layer, zeros

__all__ = ["Conv2D", "conv_geometry", "conv_forward", "conv_input_grad", "conv_weight_grad", "PADDINGS"]

PADDINGS = ("same", "valid")


def _pair(value, what):
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(int(v) != v for v in items):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    pair = (int(items[0]), int(items[1]))
    if min(pair) < 1:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return pair


def conv_geometry(size: int, kernel: int, stride: int, padding: str):
    """(output size, zeros padded before) of a convolution along one axis (see the module doc)."""
    if padding == "valid":
        if size < kernel:
            raise ValueError(f"padding='valid' needs inputs at least as large as the kernel ({kernel}), got size {size}")
        return (size - kernel) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2


def _channels_first(a):
    """(N, F, H, W) → (F, N·H·W), contiguous: the layout the one-product formulation needs."""
    n, f = a.shape[:2]
    return a.transpose(1, 0, 2, 3).reshape(f, -1)


def conv_forward(backend, x, weight, stride, pads, out_hw):
    """Y = W₂·im2col(X) for the whole batch. Returns (Y (N, F, OH, OW), cols (C·KH·KW, N·OH·OW))."""
    xp = backend.xp
    n, c = x.shape[:2]
    f, _, kh, kw = weight.shape
    oh, ow = out_hw
    cols = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    backend.kernels.im2col(xp.ascontiguousarray(x), stride, pads[0], pads[1], cols)
    cols = cols.reshape(c * kh * kw, n * oh * ow)
    y = weight.reshape(f, c * kh * kw) @ cols  # (F, N·OH·OW): one BLAS product
    return xp.ascontiguousarray(y.reshape(f, n, oh, ow).transpose(1, 0, 2, 3)), cols


def conv_input_grad(backend, dy, weight, stride, pads, x_shape):
    """dX = col2im(W₂ᵀ·dY): the adjoint of ``conv_forward`` in X, shape ``x_shape``."""
    xp = backend.xp
    n, f, oh, ow = dy.shape
    _, c, kh, kw = weight.shape
    dcols = weight.reshape(f, c * kh * kw).T @ _channels_first(dy)  # (C·KH·KW, N·OH·OW)
    dx = xp.empty(x_shape, dtype=dy.dtype)
    backend.kernels.col2im(xp.ascontiguousarray(dcols).reshape(c, kh, kw, n, oh, ow), stride, pads[0], pads[1], dx)
    return dx


def conv_weight_grad(backend, dy, cols, out):
    """dW₂ = dY·colsᵀ (dY as (F, N·OH·OW)), written into ``out`` (F, C, KH, KW)."""
    f = out.shape[0]
    backend.xp.matmul(_channels_first(dy), cols.T, out=out.reshape(f, -1))


class _ConvBase(Layer):
    """What Conv2D and Conv2DTranspose share: arguments, parameters, config."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride: int = 1, padding: str = "same",
                 bias: bool = True, init: str = "he"):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(f"{type(self).__name__} needs positive channel counts, got in_channels={in_channels}, out_channels={out_channels}")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = int(stride)
        if self.stride < 1 or self.stride != stride:
            raise ValueError(f"stride must be a positive int, got {stride!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if init not in INITIALIZERS:
            raise ValueError(f"init must be one of {sorted(INITIALIZERS)}, got {init!r}")
        self.padding, self.init, self.use_bias = padding, init, bool(bias)

    def parameter_specs(self):
        kh, kw = self.kernel_size
        fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
        specs = {"W": (self._weight_shape(), INITIALIZERS[self.init](fan_in, fan_out))}
        if self.use_bias:
            specs["b"] = ((self.out_channels,), zeros)
        return specs

    def get_config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "kernel_size": list(self.kernel_size),
                "stride": self.stride, "padding": self.padding, "bias": self.use_bias, "init": self.init}

    def _check_input(self, x, channels):
        if x.ndim != 4 or x.shape[1] != channels or x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"{self!r} expects input of shape (batch, {channels}, height, width) (NCHW), got {tuple(x.shape)}")

    def __repr__(self):
        k = self.kernel_size[0] if self.kernel_size[0] == self.kernel_size[1] else self.kernel_size
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, {k}, stride={self.stride}, padding={self.padding!r})"


class Conv2D(_ConvBase):
    """2-D convolution, NCHW: ``Y[n, f] = Σ_c W[f, c] ⋆ X[n, c] + b[f]`` (⋆: cross-correlation).

    Forward (via im2col):   Y = W₂·cols + b,  cols (C·KH·KW, N·OH·OW) the windows of X
    Backward:               dW₂ = dY·colsᵀ,   db = Σ_{n,oh,ow} dY,   dX = col2im(W₂ᵀ·dY)

    ``kernel_size`` is an int or (KH, KW); ``stride`` an int; ``padding`` "same" (output
    ⌈H/s⌉ × ⌈W/s⌉; extra zero row/column at the bottom/right when the padding is odd) or
    "valid" (no padding). ``init``: "he" (N(0, 2/fan_in), before ReLU) or "glorot", with
    fan_in = C·KH·KW, fan_out = F·KH·KW; b starts at 0.
    """

    def _weight_shape(self):
        return (self.out_channels, self.in_channels, *self.kernel_size)

    def output_shape(self, height: int, width: int):
        """(OH, OW) for an input of height × width (raises ValueError if too small for "valid")."""
        kh, kw = self.kernel_size
        if self.padding == "valid" and (height < kh or width < kw):
            raise ValueError(f"{self!r} needs inputs of at least {kh}×{kw} (the kernel) with padding='valid', got {height}×{width}")
        return (conv_geometry(height, kh, self.stride, self.padding)[0], conv_geometry(width, kw, self.stride, self.padding)[0])

    def _pads(self, height, width):
        _, top = conv_geometry(height, self.kernel_size[0], self.stride, self.padding)
        _, left = conv_geometry(width, self.kernel_size[1], self.stride, self.padding)
        return top, left

    def forward(self, x):
        self._require_built()
        self._check_input(x, self.in_channels)
        h, w = x.shape[2:]
        out_hw = self.output_shape(h, w)
        self._pads_hw = self._pads(h, w)
        self._x_shape = tuple(x.shape)
        y, self._cols = conv_forward(self.backend, x, self.params["W"], self.stride, self._pads_hw, out_hw)
        if self.use_bias:
            y += self.params["b"][:, None, None]
        return y

    def backward(self, dy, input_grad: bool = True):
        conv_weight_grad(self.backend, dy, self._cols, self.grads["W"])
        if self.use_bias:
            dy.sum(axis=(0, 2, 3), out=self.grads["b"])
        if not input_grad:
            return None
        return conv_input_grad(self.backend, dy, self.params["W"], self.stride, self._pads_hw, self._x_shape)
