"""Reference convolution kernels in plain NumPy (or CuPy): the readable definitions.

Layout is NCHW throughout. The column buffer of a convolution is a 6-D array

    cols[c, i, j, n, oh, ow] = x[n, c, oh·s + i − pad_top, ow·s + j − pad_left]   (0 outside x)

of shape (C, KH, KW, N, OH, OW); reshaped to (C·KH·KW, N·OH·OW) it turns a convolution of
the whole batch into one matrix product (one large BLAS call rather than one per image). ``col2im`` is the adjoint (transpose) of ``im2col``:
it scatters the columns back, *adding* where windows overlap. Max pooling keeps, per
window, the flat index (h·W + w) of its maximum so that the backward pass can route dY.

All kernels write into caller-provided outputs (which they overwrite) and return them.
"""

from __future__ import annotations

__all__ = ["im2col", "col2im", "maxpool_forward", "maxpool_backward", "conv3x3_same", "conv3x3_same_weight_grad"]


def _xp(a):
    try:
        import cupy

        return cupy.get_array_module(a)
    except ImportError:
        import numpy

        return numpy


def _window_slices(i, j, stride, oh, ow):
    """Rows/columns of the padded input that tap (i, j) of every window touches."""
    return _taps(i, stride, oh), _taps(j, stride, ow)


def _taps(start, stride, count):
    """``count`` indices start, start + stride, ...: with count 0 an empty slice (the general
    stop, start − stride + 1, would be negative for stride > 1 and count from the end)."""
    return slice(start, start + stride * (count - 1) + 1 if count else start, stride)


def _padded_geometry(x_shape, cols_shape, stride, pad_top, pad_left):
    n, c, h, w = x_shape
    _, kh, kw, _, oh, ow = cols_shape
    # enough zero rows/columns at the bottom/right that every window fits
    pad_bottom = max(stride * (oh - 1) + kh - h - pad_top, 0)
    pad_right = max(stride * (ow - 1) + kw - w - pad_left, 0)
    return (n, c, pad_top + h + pad_bottom, pad_left + w + pad_right), kh, kw, oh, ow


def im2col(x, stride, pad_top, pad_left, cols):
    """cols[c, i, j, n, oh, ow] = x[n, c, oh·s + i − pad_top, ow·s + j − pad_left], 0 outside x.

    x: (N, C, H, W);  cols: (C, KH, KW, N, OH, OW), overwritten.
    """
    xp = _xp(x)
    n, c, h, w = x.shape
    padded_shape, kh, kw, oh, ow = _padded_geometry(x.shape, cols.shape, stride, pad_top, pad_left)
    padded = xp.zeros(padded_shape, dtype=x.dtype)
    padded[:, :, pad_top : pad_top + h, pad_left : pad_left + w] = x
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, stride, oh, ow)
            cols[:, i, j] = padded[:, :, rows, columns].swapaxes(0, 1)
    return cols


def col2im(cols, stride, pad_top, pad_left, x):
    """The adjoint of ``im2col``: x[n, c, h, w] = Σ of the cols entries that im2col read from (h, w).

    cols: (C, KH, KW, N, OH, OW);  x: (N, C, H, W), overwritten.
    """
    xp = _xp(cols)
    n, c, h, w = x.shape
    padded_shape, kh, kw, oh, ow = _padded_geometry(x.shape, cols.shape, stride, pad_top, pad_left)
    padded = xp.zeros(padded_shape, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, stride, oh, ow)
            padded[:, :, rows, columns] += cols[:, i, j].swapaxes(0, 1)  # one tap: no two windows hit the same pixel
    x[...] = padded[:, :, pad_top : pad_top + h, pad_left : pad_left + w]
    return x


def maxpool_forward(x, pool, stride, y, argmax):
    """y[n, c, oh, ow] = max over the pool×pool window at (oh·s, ow·s) of x[n, c];
    argmax[n, c, oh, ow] = h·W + w of that maximum (the first one in row-major order on ties).
    A NaN in a window is its maximum, as np.max has it (the first NaN, if there are several).

    x: (N, C, H, W);  y: (N, C, OH, OW) float;  argmax: (N, C, OH, OW) int64; both overwritten.
    """
    xp = _xp(x)
    _, _, h, w = x.shape
    oh, ow = y.shape[2:]
    rows0 = (xp.arange(oh) * stride)[:, None]
    cols0 = (xp.arange(ow) * stride)[None, :]
    best = None
    for i in range(pool):
        for j in range(pool):
            rows, columns = _window_slices(i, j, stride, oh, ow)
            v = x[:, :, rows, columns]
            where = (rows0 + i) * w + (cols0 + j)
            if best is None:
                best, best_at = v.copy(), xp.broadcast_to(where, v.shape).copy()
            else:
                # strict: the first maximum wins ties; a NaN beats a number, never another NaN
                better = (v > best) | (xp.isnan(v) & ~xp.isnan(best))
                best = xp.where(better, v, best)
                best_at = xp.where(better, where, best_at)
    y[...] = best
    argmax[...] = best_at
    return y


def maxpool_backward(dy, argmax, pool, stride, dx):
    """dx[n, c, h, w] = Σ of dy[n, c, oh, ow] over the windows whose maximum sat at (h, w).

    dy, argmax: (N, C, OH, OW);  dx: (N, C, H, W), overwritten. Gathered one window tap at
    a time (windows may overlap when stride < pool, but one tap of distinct windows never does).
    """
    xp = _xp(dy)
    _, _, h, w = dx.shape
    oh, ow = dy.shape[2:]
    rows0 = (xp.arange(oh) * stride)[:, None]
    cols0 = (xp.arange(ow) * stride)[None, :]
    dx[...] = 0
    for i in range(pool):
        for j in range(pool):
            rows, columns = _window_slices(i, j, stride, oh, ow)
            here = argmax == (rows0 + i) * w + (cols0 + j)
            dx[:, :, rows, columns] += xp.where(here, dy, 0)
    return dx


def conv3x3_same(x, weight, bias, relu, y):
    """The 3×3, stride-1 convolution with one zero row/column on every side (OH, OW = H, W),
    computed directly, without a column buffer:

        y[n, f, h, w] = Σ_{c,i,j} weight[f, c, i, j]·x[n, c, h + i − 1, w + j − 1] + bias[f]

    then max(·, 0) if ``relu``. x: (N, C, H, W); weight: (F, C, 3, 3); bias: (F,) or None;
    y: (N, F, H, W), overwritten.
    """
    xp = _xp(x)
    n, c, h, w = x.shape
    padded = xp.zeros((n, c, h + 2, w + 2), dtype=x.dtype)
    padded[:, :, 1 : h + 1, 1 : w + 1] = x
    total = xp.zeros(y.shape, dtype=y.dtype)
    for i in range(3):
        for j in range(3):  # one tap: (F, C)·(N, C, H, W) shifted by (i, j)
            total += xp.einsum("fc,nchw->nfhw", weight[:, :, i, j], padded[:, :, i : i + h, j : j + w])
    if bias is not None:
        total += bias[:, None, None]
    y[...] = xp.where(total <= 0, 0, total) if relu else total  # NaN stays NaN, as in relu_forward
    return y


def conv3x3_same_weight_grad(x, dy, dw):
    """The weight gradient of ``conv3x3_same``:

        dw[f, c, i, j] = Σ_{n,h,w} dy[n, f, h, w]·x[n, c, h + i − 1, w + j − 1]   (0 outside x)

    x: (N, C, H, W); dy: (N, F, H, W); dw: (F, C, 3, 3), overwritten.
    """
    xp = _xp(x)
    n, c, h, w = x.shape
    padded = xp.zeros((n, c, h + 2, w + 2), dtype=x.dtype)
    padded[:, :, 1 : h + 1, 1 : w + 1] = x
    for i in range(3):
        for j in range(3):
            dw[:, :, i, j] = xp.einsum("nfhw,nchw->fc", dy, padded[:, :, i : i + h, j : j + w])
    return dw
