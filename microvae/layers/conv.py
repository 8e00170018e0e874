"""2-D convolution (cross-correlation, as in every deep-learning library), layout NCHW.

Shapes: input X (N, C, H, W), weight W (F, C, KH, KW), bias b (F,), output Y (N, F, OH, OW).

**Padding.** ``"valid"``: no padding, OH = ⌊(H − KH)/s⌋ + 1 (needs H ≥ KH).
``"same"``: OH = ⌈H/s⌉, padded with P = max((OH − 1)·s + KH − H, 0) zero rows in all,
⌊P/2⌋ on top and the rest (one more, when P is odd) at the bottom; likewise columns,
left/right. This is the TensorFlow/Keras split: with stride 1 and an odd kernel it is
(K − 1)/2 on each side; an even kernel (or stride 2 with an odd kernel on an even size)
puts the extra zero row/column at the bottom/right.

**The computation** goes through the column buffer of ``kernels.im2col`` (Numba on the
CPU, CuPy on the GPU): cols (C·KH·KW, N·OH·OW) holds every input window as a column, so
with W₂ = W reshaped to (F, C·KH·KW) and Y, dY seen as (F, N·OH·OW):

    Y = W₂·cols + b               (one BLAS product)
    dW₂ = dY·colsᵀ,   db = Σ_{n,oh,ow} dY,   dX = col2im(W₂ᵀ·dY)

``col2im`` is im2col's adjoint. On the CPU the batch goes through in chunks of images
whose columns fit in cache (``CHUNK_BYTES``), in scratch buffers kept between steps;
dW₂ is summed over the chunks. While a model trains or runs inference on the CPU, the
chunks are shared out among microvae's threads (``microvae.threads``), each with its own
scratch buffers. With stride 1, dX is also a convolution of dY with the flipped kernel;
where F ≤ C (fewer rows of columns of dY than col2im's) dX is formed that way, and those
columns of dY give dW₂ too (``conv_backward_unit_stride``). The helpers below
are shared with ``Conv2DTranspose``, whose forward pass *is* this layer's input gradient.

**The direct route.** On the CPU, a 3×3 convolution with stride 1 and "same" padding (one
zero row/column on every side) skips the column buffer: ``kernels.conv3x3_same`` computes
Y from a zero-bordered copy of each image, ``conv3x3_same_weight_grad`` gives dW the same
way, and dX is ``conv3x3_same`` of dY with the flipped kernel (``conv3x3_backward``).
Conv2DTranspose takes it too (its forward pass is that dX). Why: the columns of a
16-channel 28×28 layer are nine copies of its input, and with both cores forming them
the memory traffic, not the arithmetic, set the pace (two threads ran a chunk loop no
faster than one). ``DIRECT_3X3 = False`` turns the route off. The GPU always uses im2col.

**A fused ReLU** (``activation="relu"``): Y = max(W₂·cols + b, 0), applied to each chunk of
the output as it is stored, and the backward pass starts from dY·[Y > 0], formed chunk by
chunk. It gives what Conv2D followed by ReLU gives, without a separate pass over the whole
activation on one thread. (In the ConvVAE that saved 2–6 % of a training step, not the
tenth the ReLU layers took: the mask still reads dY and Y from memory.)
"""

from __future__ import annotations

import numbers

from ..checks import check_bool, check_int, is_choice, is_unordered
from ..threads import chunk_workers, map_chunks
from .base import INITIALIZERS, Layer, zeros
from .dense import ACTIVATIONS

__all__ = ["Conv2D", "conv_geometry", "conv_forward", "conv_input_grad", "conv_weight_grad", "PADDINGS"]

PADDINGS = ("same", "valid")


def _pair(value, what, minimum=1):
    """``value`` (one int for both axes, or a (height, width) pair: a tuple, a list, a 1-D NumPy
    array) as a pair of ints >= ``minimum``, each taken as ``check_int`` takes it (3.0 is 3;
    2.5, True and "3" are refused); errors name ``what``."""
    form = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    message = f"{what} must be {form} or a pair of them, got {value!r}"
    # any sequence is a pair (np.array([3, 3]) too, as Reshape takes one); a number (a NumPy
    # integer too, which is no int) or a string is one value, for check_int to judge
    one = isinstance(value, (numbers.Number, str, bytes)) or not hasattr(value, "__iter__")
    if is_unordered(value):  # {1, 0} iterates as (0, 1)
        raise TypeError(message)
    try:
        items = (value, value) if one else tuple(value)
    except TypeError:  # iterating a 0-d array
        raise TypeError(message) from None
    if len(items) != 2:
        raise ValueError(message)
    try:
        return tuple(check_int(what, v, minimum) for v in items)
    except (TypeError, ValueError) as exc:  # check_int's message would show one item, not what was given
        raise type(exc)(message) from None


def conv_geometry(size: int, kernel: int, stride: int, padding: str):
    """(output size, zeros padded before) of a convolution along one axis (see the module doc)."""
    if padding == "valid":
        if size < kernel:
            raise ValueError(f"padding='valid' needs inputs at least as large as the kernel ({kernel}), got size {size}")
        return (size - kernel) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2


# Column buffers of at most this size: they stay in cache between im2col and the product
# that reads them. Whole-batch columns of a 16-channel 28×28 layer are 58 MB, and the
# products reading them from memory ran at half the speed of cache-sized pieces.
CHUNK_BYTES = 4 << 20


def _image_chunks(layer, n, bytes_per_image):
    """Batch slices [s, e) whose column buffers fit in CHUNK_BYTES (the whole batch on a GPU),
    of near-equal sizes, and at least as many as there are chunk workers, in a multiple of
    their number, so that every worker gets the same share (with one worker per chunk of a
    single-channel layer, whose whole batch fits in one buffer, the other core sat idle)."""
    if layer.backend.name == "cupy":
        return [(0, n)]
    if n == 0:
        return []
    count = -(-n * max(1, bytes_per_image) // CHUNK_BYTES)
    workers = chunk_workers(range(n))
    count = min(n, -(-count // workers) * workers)
    bounds = [n * k // count for k in range(count + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(count)]


def _channels_first(a, out):
    """(k, F, H, W) → ``out`` (F, k·H·W): the layout the one-product formulation needs."""
    k, f = a.shape[:2]
    out.reshape(f, k, -1)[...] = a.reshape(k, f, -1).transpose(1, 0, 2)
    return out


def _store_nchw(layer, y2, out, bias, relu=False):
    """(F, k·P) → ``out`` (k, F, P), adding the bias per channel in the same pass, then the
    ReLU if ``relu`` (on the chunk while it is in cache)."""
    xp = layer.backend.xp
    f, k = y2.shape[0], out.shape[0]
    y = y2.reshape(f, k, -1).transpose(1, 0, 2)
    if bias is None:
        out[...] = y
    else:
        xp.add(y, bias[:, None], out=out)
    if relu:
        layer.backend.kernels.relu_forward(out, out)


def _dy_chunk_through_relu(layer, dy, relu_out, s, e, worker):
    """dY of images [s, e), through a fused ReLU whose output was ``relu_out`` (dY·[Y > 0],
    into a scratch buffer), or as it is when ``relu_out`` is None."""
    if relu_out is None:
        return dy[s:e]
    masked = _worker_scratch(layer, "dy_through_relu", worker, dy[s:e].shape, dy.dtype)
    return layer.backend.kernels.relu_backward(dy[s:e], relu_out[s:e], masked)


def _input_grad_from_dy_columns(stride, f, c):
    """Whether dX is formed from the columns of dY (stride 1, F ≤ C: columns no larger than
    col2im's) rather than by col2im; see ``conv_input_grad``."""
    return stride == 1 and f <= c


def _flipped_kernel(xp, weight):
    """W′₂ (C, F·KH·KW), W′[c, f, i, j] = W[f, c, KH−1−i, KW−1−j]: the kernel of the stride-1 input gradient."""
    f, c, kh, kw = weight.shape
    return xp.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(c, f * kh * kw)


def _bias_grad_sums(layer, dy, workers, wanted):
    """Per-worker sums of dY over images and pixels (db), taken chunk by chunk while each
    chunk of dY is in cache; None when there is no bias."""
    return _ChunkSums(layer, (dy.shape[1],), dy.dtype, workers, "bias_grad") if wanted else None


def _worker_scratch(layer, name, worker, shape, dtype):
    """``layer``'s scratch buffer ``name`` for chunk worker ``worker`` (each has its own)."""
    return layer._scratch(name if worker == 0 else f"{name}@{worker}", shape, dtype)


def _columns(layer, name, x, kernel_hw, stride, pads, out_hw, worker=0):
    """im2col of ``x`` (k, C, H, W) into ``layer``'s scratch buffer ``name``, as (C·KH·KW, k·OH·OW)."""
    k, c = x.shape[:2]
    cols = _worker_scratch(layer, name, worker, (c, *kernel_hw, k, *out_hw), x.dtype)
    layer.backend.kernels.im2col(x, stride, pads[0], pads[1], cols)
    return cols.reshape(c * kernel_hw[0] * kernel_hw[1], -1)


# The direct route for 3×3 stride-1 "same" convolutions (see the module doc). False: every
# convolution goes through im2col (the tests compare the two routes this way).
DIRECT_3X3 = True


def _direct_3x3(layer, kernel_hw, stride, pads, in_hw, out_hw):
    """Whether this convolution takes the direct route: on the CPU, 3×3, stride 1, and one
    zero row/column on every side (so the output is the input's size)."""
    return (DIRECT_3X3 and layer.backend.name == "numpy" and tuple(kernel_hw) == (3, 3) and stride == 1
            and tuple(pads) == (1, 1) and tuple(in_hw) == tuple(out_hw))


def _direct_chunks(layer, n):
    """One chunk of images per worker: the direct kernels need no cache-sized buffers."""
    return _image_chunks(layer, n, 1)


def _flipped_3x3(xp, weight):
    """W′ (C, F, 3, 3): the kernel that maps dY to dX of a 3×3 "same" convolution,
    dX[c] = Σ_f W′[c, f] ⋆ dY[f] (``_flipped_kernel``, unflattened)."""
    return _flipped_kernel(xp, weight).reshape(weight.shape[1], weight.shape[0], 3, 3)


def conv3x3_backward(layer, dy, x, dx_weight, grad_w, grad_b=None, relu_out=None, input_grad=True, transposed=False):
    """A direct 3×3 layer's backward pass, in one pass over the chunks of the batch:

        Conv2D:            dW[f, c] = Σ_n dY[n, f] ⋆ X[n, c]     dX = conv3x3_same(dY, W′)
        Conv2DTranspose:   dW[c, f] = Σ_n X[n, c] ⋆ dY[n, f]      dX = conv3x3_same(dY, W)

    (⋆: the nine-tap correlation of ``conv3x3_same_weight_grad``), db = Σ dY. ``dx_weight``
    is W′ or W (None without dX); with a fused ReLU's output ``relu_out``, dY·[Y > 0] stands
    for dY. Returns dX (a new array) or None."""
    xp, kernels = layer.backend.xp, layer.backend.kernels
    x, dy = xp.ascontiguousarray(x), xp.ascontiguousarray(dy)
    n = dy.shape[0]
    chunks = _direct_chunks(layer, n)
    workers = chunk_workers(chunks)
    sums = _ChunkSums(layer, grad_w.shape, dy.dtype, workers)
    bias_sums = _bias_grad_sums(layer, dy, workers, grad_b is not None)
    dx = xp.empty((n, dx_weight.shape[0], *dy.shape[2:]), dtype=dy.dtype) if input_grad else None

    def chunk(s, e, worker):
        dy_chunk = _dy_chunk_through_relu(layer, dy, relu_out, s, e, worker)
        if transposed:
            kernels.conv3x3_same_weight_grad(dy_chunk, x[s:e], sums.part(worker))
        else:
            kernels.conv3x3_same_weight_grad(x[s:e], dy_chunk, sums.part(worker))
        sums.add_part(worker)
        if bias_sums is not None:
            bias_sums.add_sum(worker, dy_chunk, (0, 2, 3))
        if input_grad:
            kernels.conv3x3_same(dy_chunk, dx_weight, None, False, dx[s:e])

    map_chunks(chunks, chunk)
    grad_w[...] = sums.total()
    if bias_sums is not None:
        grad_b[...] = bias_sums.total()
    return dx


def conv_forward(layer, x, weight, stride, pads, out_hw, bias=None, relu=False):
    """Y = W₂·im2col(X) + b (then max(·, 0) if ``relu``), as a new (N, F, OH, OW) array; one
    BLAS product per chunk of images."""
    xp = layer.backend.xp
    x = xp.ascontiguousarray(x)
    n, c = x.shape[:2]
    f, _, kh, kw = weight.shape
    if _direct_3x3(layer, (kh, kw), stride, pads, x.shape[2:], out_hw):
        y = xp.empty((n, f, *out_hw), dtype=x.dtype)
        weight = xp.ascontiguousarray(weight)
        map_chunks(_direct_chunks(layer, n),
                   lambda s, e, worker: layer.backend.kernels.conv3x3_same(x[s:e], weight, bias, relu, y[s:e]))
        return y
    w2 = weight.reshape(f, c * kh * kw)
    y = xp.empty((n, f, out_hw[0] * out_hw[1]), dtype=x.dtype)

    def chunk(s, e, worker):
        cols = _columns(layer, "cols", x[s:e], (kh, kw), stride, pads, out_hw, worker)
        y2 = _worker_scratch(layer, "conv_out", worker, (f, cols.shape[1]), x.dtype)
        xp.matmul(w2, cols, out=y2)
        _store_nchw(layer, y2, y[s:e], bias, relu)

    map_chunks(_image_chunks(layer, n, c * kh * kw * y.shape[2] * x.itemsize), chunk)
    return y.reshape(n, f, *out_hw)


def conv_weight_grad(layer, dy, x, stride, pads, out, bias_out=None, relu_out=None):
    """dW₂ = Σ_chunks dY₂·colsᵀ into ``out`` (F, C, KH, KW), dY₂ = dY as (F, k·OH·OW);
    db = Σ dY into ``bias_out``. The columns of X are formed again rather than kept from
    the forward pass: in cache that costs less than storing and re-reading them. With a
    fused ReLU's output ``relu_out``, dY·[Y > 0] stands for dY.
    """
    xp = layer.backend.xp
    x, dy = xp.ascontiguousarray(x), xp.ascontiguousarray(dy)
    n, f = dy.shape[:2]
    kh, kw = out.shape[2:]
    out_hw = dy.shape[2:]
    chunks = _image_chunks(layer, n, out[0].size * out_hw[0] * out_hw[1] * x.itemsize)
    workers = chunk_workers(chunks)
    acc = WeightGradAccumulator(layer, out, workers)
    bias_sums = _bias_grad_sums(layer, dy, workers, bias_out is not None)

    def chunk(s, e, worker):
        cols = _columns(layer, "cols", x[s:e], (kh, kw), stride, pads, out_hw, worker)
        dy2 = _channels_first(_dy_chunk_through_relu(layer, dy, relu_out, s, e, worker),
                              _worker_scratch(layer, "dy_channels_first", worker, (f, cols.shape[1]), dy.dtype))
        acc.add(dy2, cols, worker)
        if bias_sums is not None:
            bias_sums.add_sum(worker, dy2, 1)

    map_chunks(chunks, chunk)
    acc.finish()
    if bias_sums is not None:
        bias_out[...] = bias_sums.total()


def conv_backward_unit_stride(layer, dy, x, weight, pads, grad_w, grad_b=None, relu_out=None):
    """Conv2D's whole backward pass for stride 1 and F ≤ C, from one set of columns, those of dY.

    With G = im2col of dY under the flipped padding (as in ``conv_input_grad``'s first
    route), G[f, i′, j′, (n, h, w)] = dY[n, f, h − (KH−1−i′) + top, w − (KW−1−j′) + left], so

        dX  = W′₂·G                         (W′ the flipped, transposed kernel)
        dW[f, c, i, j] = (G·X₂ᵀ)[f, KH−1−i, KW−1−j, c]       (X₂ = X as (C, N·H·W))

    which saves forming the columns of X a second time. Returns dX (a new array). With a
    fused ReLU's output ``relu_out``, dY·[Y > 0] stands for dY.
    """
    xp = layer.backend.xp
    x, dy = xp.ascontiguousarray(x), xp.ascontiguousarray(dy)
    n, f = dy.shape[:2]
    _, c, kh, kw = weight.shape
    h, w = x.shape[2:]
    flipped = _flipped_kernel(xp, weight)
    chunks = _image_chunks(layer, n, f * kh * kw * h * w * dy.itemsize)
    workers = chunk_workers(chunks)
    acc = _ChunkSums(layer, (f * kh * kw, c), dy.dtype, workers)
    bias_sums = _bias_grad_sums(layer, dy, workers, grad_b is not None)
    dx = xp.empty((n, c, h * w), dtype=dy.dtype)

    def chunk(s, e, worker):
        dy_chunk = _dy_chunk_through_relu(layer, dy, relu_out, s, e, worker)
        cols = _columns(layer, "grad_cols", dy_chunk, (kh, kw), 1, (kh - 1 - pads[0], kw - 1 - pads[1]), (h, w), worker)
        x2 = _channels_first(x[s:e], _worker_scratch(layer, "x_channels_first", worker, (c, cols.shape[1]), dy.dtype))
        xp.matmul(cols, x2.T, out=acc.part(worker))
        acc.add_part(worker)
        dx2 = _worker_scratch(layer, "conv_out", worker, (c, cols.shape[1]), dy.dtype)
        xp.matmul(flipped, cols, out=dx2)
        _store_nchw(layer, dx2, dx[s:e], None)
        if bias_sums is not None:
            bias_sums.add_sum(worker, dy_chunk, (0, 2, 3))

    map_chunks(chunks, chunk)
    total = acc.total()
    grad_w[...] = total.reshape(f, kh, kw, c)[:, ::-1, ::-1, :].transpose(0, 3, 1, 2)
    if bias_sums is not None:
        grad_b[...] = bias_sums.total()
    return dx.reshape(x.shape)


class _ChunkSums:
    """A sum over chunks, kept per chunk worker (each in its own scratch buffers) and added
    in worker order at the end, so the result does not depend on which thread ran first.

    A worker's first term becomes its total as it is (the two buffers trade places) rather
    than being added to zeros: no zero-fill and no first add per sum (on a GPU, whose batch
    is one chunk, two kernel launches fewer per sum)."""

    def __init__(self, layer, shape, dtype, workers, name="weight_grad"):
        self._totals = [_worker_scratch(layer, name, w, shape, dtype) for w in range(workers)]
        self._parts = [_worker_scratch(layer, f"{name}_part", w, shape, dtype) for w in range(workers)]
        self._started = [False] * workers

    def part(self, worker):
        """The buffer a chunk's term goes into before ``add_part``."""
        return self._parts[worker]

    def add_part(self, worker):
        if self._started[worker]:
            self._totals[worker] += self._parts[worker]
        else:
            self._totals[worker], self._parts[worker] = self._parts[worker], self._totals[worker]
            self._started[worker] = True

    def add_sum(self, worker, a, axis):
        """Add ``a.sum(axis)`` to this worker's total."""
        a.sum(axis=axis, out=self._parts[worker])
        self.add_part(worker)

    def total(self):
        """The sum over every chunk (zeros when there were none), in one of the buffers."""
        started = [t for t, s in zip(self._totals, self._started) if s]
        if not started:
            self._totals[0][...] = 0
            return self._totals[0]
        total = started[0]
        for other in started[1:]:
            total += other
        return total


class WeightGradAccumulator:
    """Σ over chunks of left·colsᵀ, written into ``out`` (F, C, KH, KW) by ``finish()``:
    ``left`` is dY₂ for Conv2D (dW₂ = dY·colsᵀ) and X₂ for Conv2DTranspose (dW₂ = X₂·colsᵀ,
    cols from dY).

    Formed as cols·leftᵀ (transposed at the end) when cols has more rows than ``left``: BLAS
    splits the work along the rows of its left operand, and F (16, 32) are too few.
    """

    def __init__(self, layer, out, workers=1):
        f, ckk = out.shape[0], out[0].size
        self.xp, self.out, self.transposed = layer.backend.xp, out, ckk > f
        self.sums = _ChunkSums(layer, (ckk, f) if self.transposed else (f, ckk), out.dtype, workers)

    def add(self, left, cols, worker=0):
        """Add one chunk's left·colsᵀ into ``worker``'s partial sum."""
        if self.transposed:
            self.xp.matmul(cols, left.T, out=self.sums.part(worker))
        else:
            self.xp.matmul(left, cols.T, out=self.sums.part(worker))
        self.sums.add_part(worker)

    def finish(self):
        """Sum the workers' parts in worker order (reproducible) and write them into ``out``."""
        total = self.sums.total()
        self.out.reshape(self.out.shape[0], -1)[...] = total.T if self.transposed else total


def conv_input_grad(layer, dy, weight, stride, pads, x_shape, bias=None, relu=False, relu_out=None):
    """dX = col2im(W₂ᵀ·dY) (+ bias per channel): the adjoint of ``conv_forward`` in X, as a
    new array of ``x_shape``. (Conv2DTranspose's forward pass is this, with its bias, and
    max(·, 0) if ``relu``.) With a fused ReLU's output ``relu_out``, dY·[Y > 0] stands for dY.

    With stride 1 the same dX is also a convolution of dY with the flipped, transposed
    kernel W′[c, f, i, j] = W[f, c, KH−1−i, KW−1−j] and padding (KH−1−top, KW−1−left).
    That route writes F·KH·KW rows of columns, one column per input position, and reads them
    once, where col2im's writes C·KH·KW rows, one column per output position, and reads them
    again; it is taken when F ≤ C (fewer rows; with "valid" padding each row is longer, as
    there are more input positions than output ones).
    """
    xp, kernels = layer.backend.xp, layer.backend.kernels
    dy = xp.ascontiguousarray(dy)
    n, f, oh, ow = dy.shape
    _, c, kh, kw = weight.shape
    h, w = x_shape[2:]
    if _direct_3x3(layer, (kh, kw), stride, pads, (h, w), (oh, ow)):
        dx = xp.empty(x_shape, dtype=dy.dtype)
        flipped = _flipped_3x3(xp, weight)

        def direct_chunk(s, e, worker):
            dy_chunk = _dy_chunk_through_relu(layer, dy, relu_out, s, e, worker)
            layer.backend.kernels.conv3x3_same(dy_chunk, flipped, bias, relu, dx[s:e])

        map_chunks(_direct_chunks(layer, n), direct_chunk)
        return dx
    if _input_grad_from_dy_columns(stride, f, c):
        flipped = _flipped_kernel(xp, weight)
        dx = xp.empty((n, c, h * w), dtype=dy.dtype)

        def flipped_chunk(s, e, worker):
            cols = _columns(layer, "grad_cols", _dy_chunk_through_relu(layer, dy, relu_out, s, e, worker), (kh, kw), 1,
                            (kh - 1 - pads[0], kw - 1 - pads[1]), (h, w), worker)
            dx2 = _worker_scratch(layer, "conv_out", worker, (c, cols.shape[1]), dy.dtype)
            xp.matmul(flipped, cols, out=dx2)
            _store_nchw(layer, dx2, dx[s:e], bias, relu)

        map_chunks(_image_chunks(layer, n, f * kh * kw * h * w * dy.itemsize), flipped_chunk)
        return dx.reshape(x_shape)
    w2t = weight.reshape(f, c * kh * kw).T
    dx = xp.empty(x_shape, dtype=dy.dtype)

    def col2im_chunk(s, e, worker):
        dy2 = _channels_first(_dy_chunk_through_relu(layer, dy, relu_out, s, e, worker),
                              _worker_scratch(layer, "dy_channels_first", worker, (f, (e - s) * oh * ow), dy.dtype))
        dcols = _worker_scratch(layer, "grad_cols", worker, (c * kh * kw, dy2.shape[1]), dy.dtype)
        xp.matmul(w2t, dy2, out=dcols)
        kernels.col2im(dcols.reshape(c, kh, kw, e - s, oh, ow), stride, pads[0], pads[1], dx[s:e])
        if bias is not None:
            dx[s:e] += bias[:, None, None]
        if relu:
            kernels.relu_forward(dx[s:e], dx[s:e])

    map_chunks(_image_chunks(layer, n, c * kh * kw * oh * ow * dy.itemsize), col2im_chunk)
    return dx


class _ConvBase(Layer):
    """What Conv2D and Conv2DTranspose share: arguments, parameters, config."""

    chunk_parallel = True  # Model._parallel_chunks: its image chunks may run on microvae's threads

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride: int = 1, padding: str = "same",
                 bias: bool = True, init: str = "he", activation: str | None = None):
        super().__init__()
        # checked, not int()-ed: int() truncates 1.7 and takes True and "4"
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = check_int("stride", stride, 1)
        if not is_choice(padding, PADDINGS):
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if not is_choice(init, INITIALIZERS):
            raise ValueError(f"init must be one of {sorted(INITIALIZERS)}, got {init!r}")
        if not is_choice(activation, ACTIVATIONS):
            raise ValueError(f"activation must be one of {ACTIVATIONS} (a ReLU fused into the layer, or none), got {activation!r}")
        self.padding, self.init, self.use_bias, self.activation = padding, init, check_bool("bias", bias), activation
        self._y = None  # the output, kept for the fused ReLU's backward pass

    def parameter_specs(self):
        kh, kw = self.kernel_size
        fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
        specs = {"W": (self._weight_shape(), INITIALIZERS[self.init](fan_in, fan_out))}
        if self.use_bias:
            specs["b"] = ((self.out_channels,), zeros)
        return specs

    def get_config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "kernel_size": list(self.kernel_size),
                "stride": self.stride, "padding": self.padding, "bias": self.use_bias, "init": self.init,
                "activation": self.activation}

    def _check_input(self, x, channels):
        if x.ndim != 4 or x.shape[1] != channels or x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"{self!r} expects input of shape (batch, {channels}, height, width) (NCHW), got {tuple(x.shape)}")

    def __repr__(self):
        k = self.kernel_size[0] if self.kernel_size[0] == self.kernel_size[1] else self.kernel_size
        # the settings left at their defaults are not shown; those changed are, so that two
        # layers of different configs never print alike
        changed = ("" if self.use_bias else ", bias=False") + ("" if self.init == "he" else f", init={self.init!r}")
        fused = f", activation={self.activation!r}" if self.activation else ""
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, {k}, stride={self.stride}, "
                f"padding={self.padding!r}{changed}{fused})")

    def _keep_output(self, y):
        """Keep Y for a fused ReLU's backward pass (dY·[Y > 0]); return it."""
        self._y = y if self.activation == "relu" else None
        return y


class Conv2D(_ConvBase):
    """2-D convolution, NCHW: ``Y[n, f] = Σ_c W[f, c] ⋆ X[n, c] + b[f]`` (⋆: cross-correlation).

    Forward (via im2col):   Y = W₂·cols + b,  cols (C·KH·KW, N·OH·OW) the windows of X
    Backward:               dW₂ = dY·colsᵀ,   db = Σ_{n,oh,ow} dY,   dX = col2im(W₂ᵀ·dY)

    3×3, stride 1, "same" on the CPU (direct, no column buffer; see the module doc):
    Y[f] = Σ_c W[f, c] ⋆ X[c] + b,   dW[f, c] = Σ_n dY[f] ⋆ X[c],   dX[c] = Σ_f W′[c, f] ⋆ dY[f]

    ``kernel_size`` is an int or (KH, KW); ``stride`` an int; ``padding`` "same" (output
    ⌈H/s⌉ × ⌈W/s⌉; extra zero row/column at the bottom/right when the padding is odd) or
    "valid" (no padding). ``init``: "he" (N(0, 2/fan_in), before ReLU) or "glorot", with
    fan_in = C·KH·KW, fan_out = F·KH·KW; b starts at 0.

    ``activation="relu"`` fuses a ReLU into the layer: Y = max(W₂·cols + b, 0), and the
    backward pass above runs on dY·[Y > 0] (the same numbers as Conv2D, then ReLU).
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
        x = self._input(x)  # in the layer's dtype: the kernels compute in x's (uint8 would wrap)
        self._check_input(x, self.in_channels)
        h, w = x.shape[2:]
        out_hw = self.output_shape(h, w)
        pads = self._pads(h, w)
        y = conv_forward(self, x, self.params["W"], self.stride, pads, out_hw, bias=self.params.get("b"),
                         relu=self.activation == "relu")
        self._pads_hw, self._x_shape, self._x = pads, tuple(x.shape), x
        return self._output(self._keep_output(y))

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        # checked first: the route and the geometry below are read from dY's shape
        dy = self._upstream(dy, contiguous=True)
        xp = self.backend.xp
        # Three routes to the same numbers; the third is the textbook im2col derivation.
        # 1. 3×3 "same", stride 1, CPU: dW[f, c] = Σ_n dY[f] ⋆ X[c], dX[c] = Σ_f W′[c, f] ⋆ dY[f], no columns
        if _direct_3x3(self, self.kernel_size, self.stride, self._pads_hw, self._x_shape[2:], dy.shape[2:]):
            flipped = _flipped_3x3(xp, self.params["W"]) if input_grad else None
            return conv3x3_backward(self, dy, self._x, flipped, self.grads["W"], self.grads.get("b"), relu_out=self._y,
                                    input_grad=input_grad)
        # 2. stride 1 with F ≤ C: the columns of dY give dX = W′₂·cols(dY) and dW₂ too
        if input_grad and _input_grad_from_dy_columns(self.stride, self.out_channels, self.in_channels):
            return conv_backward_unit_stride(self, dy, self._x, self.params["W"], self._pads_hw, self.grads["W"],
                                             self.grads.get("b"), relu_out=self._y)
        relu_out = self._y
        if input_grad and relu_out is not None:
            # both passes below start from dY·[Y > 0]: form it once, not once in each
            dy = self.backend.kernels.relu_backward(dy, relu_out, xp.empty_like(dy))
            relu_out = None
        # 3. otherwise: dW₂ = dY·colsᵀ and db = Σ dY, then dX = col2im(W₂ᵀ·dY)
        conv_weight_grad(self, dy, self._x, self.stride, self._pads_hw, self.grads["W"], self.grads.get("b"), relu_out=relu_out)
        if not input_grad:
            return None
        return conv_input_grad(self, dy, self.params["W"], self.stride, self._pads_hw, self._x_shape, relu_out=relu_out)
