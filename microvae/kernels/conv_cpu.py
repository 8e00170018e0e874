"""Numba twins of ``conv_reference.py`` (same names, same results), for the CPU backend.

Direct loops over the 6-D column buffer (C, KH, KW, N, OH, OW); see the reference module
for the definitions. Arrays must be C-contiguous. im2col and col2im take a fast path for
stride 2, three taps across, no left padding and an even width (the stride-2 layers of the
ConvVAE); ``conv3x3_same`` and ``conv3x3_same_weight_grad`` are the direct 3×3 kernels,
which need no column buffer.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from . import shapes

__all__ = ["im2col", "col2im", "maxpool_forward", "maxpool_backward", "conv3x3_same", "conv3x3_same_weight_grad"]

_jit = nb.njit(cache=True, nogil=True, error_model="numpy")  # no per-element ZeroDivision checks: loops vectorise
# The direct 3×3 kernels: FMAs, and (for the weight gradient's sums) reassociation, which
# lets LLVM split a sum over pixels across vector lanes.
_jit_fma = nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
_jit_sum = nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})


@_jit
def _im2col(x, stride, pad_top, pad_left, cols):
    n_img, channels, height, width = x.shape
    kh, kw, oh, ow = cols.shape[1], cols.shape[2], cols.shape[4], cols.shape[5]
    if stride == 2 and kw == 3 and pad_left == 0 and width == 2 * ow and ow > 0:  # (ow = 0: no row to pair)
        _im2col_stride2_three_wide(x, pad_top, cols)
        return
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                for n in range(n_img):
                    for r in range(oh):
                        h = r * stride + i - pad_top
                        inside_row = 0 <= h < height
                        for q in range(ow):
                            w = q * stride + j - pad_left
                            if inside_row and 0 <= w < width:
                                cols[c, i, j, n, r, q] = x[n, c, h, w]
                            else:
                                cols[c, i, j, n, r, q] = 0.0


@_jit
def _im2col_stride2_three_wide(x, pad_top, cols):
    # im2col for stride 2, KW = 3, no left padding and width = 2·OW (see
    # _col2im_stride2_three_wide): taps j = 0, 1, 2 of window q read columns 2q, 2q + 1 and
    # 2q + 2 (the last one past the edge, 0), three de-interleaved copies of one input row
    # without a bounds test per element (2-5× faster than the general loop).
    n_img, channels, height = x.shape[0], x.shape[1], x.shape[2]
    kh, oh, ow = cols.shape[1], cols.shape[4], cols.shape[5]
    for c in range(channels):
        for i in range(kh):
            for n in range(n_img):
                for r in range(oh):
                    h = r * 2 + i - pad_top
                    tap0, tap1, tap2 = cols[c, i, 0, n, r], cols[c, i, 1, n, r], cols[c, i, 2, n, r]
                    if h < 0 or h >= height:
                        tap0[:] = 0.0
                        tap1[:] = 0.0
                        tap2[:] = 0.0
                        continue
                    row = x[n, c, h]
                    for m in range(ow - 1):
                        tap0[m] = row[2 * m]
                        tap1[m] = row[2 * m + 1]
                        tap2[m] = row[2 * m + 2]
                    tap0[ow - 1] = row[2 * ow - 2]
                    tap1[ow - 1] = row[2 * ow - 1]
                    tap2[ow - 1] = 0.0


@_jit
def _col2im(cols, stride, pad_top, pad_left, x):
    n_img, channels, height, width = x.shape
    kh, kw, oh, ow = cols.shape[1], cols.shape[2], cols.shape[4], cols.shape[5]
    if stride == 2 and kw == 3 and pad_left == 0 and width == 2 * ow and ow > 0:  # (ow = 0: no row to pair)
        _col2im_stride2_three_wide(cols, pad_top, x)
        return
    x[...] = 0.0
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                for n in range(n_img):
                    for r in range(oh):
                        h = r * stride + i - pad_top
                        if h < 0 or h >= height:
                            continue
                        for q in range(ow):
                            w = q * stride + j - pad_left
                            if 0 <= w < width:
                                x[n, c, h, w] += cols[c, i, j, n, r, q]


@_jit
def _col2im_stride2_three_wide(cols, pad_top, x):
    # col2im for stride 2, KW = 3, no left padding and width = 2·OW (a stride-2 "same"
    # convolution of an even width, and its transposed twin): output column 2m takes taps
    # j = 0 (q = m) and j = 2 (q = m − 1), column 2m + 1 takes tap j = 1 (q = m). Written as
    # pairs of neighbouring columns from three contiguous rows of taps, the loop vectorises,
    # where the general loop's stride-2 scatter ran one element at a time (3.5–4.6× slower).
    n_img, channels, height = x.shape[0], x.shape[1], x.shape[2]
    kh, oh, ow = cols.shape[1], cols.shape[4], cols.shape[5]
    x[...] = 0.0
    for c in range(channels):
        for i in range(kh):
            for n in range(n_img):
                for r in range(oh):
                    h = r * 2 + i - pad_top
                    if h < 0 or h >= height:
                        continue
                    tap0, tap1, tap2 = cols[c, i, 0, n, r], cols[c, i, 1, n, r], cols[c, i, 2, n, r]
                    row = x[n, c, h]
                    row[0] += tap0[0]
                    row[1] += tap1[0]
                    for m in range(1, ow):
                        row[2 * m] += tap0[m] + tap2[m - 1]
                        row[2 * m + 1] += tap1[m]


@_jit
def _maxpool_forward(x, pool, stride, y, argmax):
    # Each window's running maximum stays in locals (no store until the window is done),
    # and 2×2 windows are spelled out: 3.5× faster than loops over the taps that compare
    # against y in memory. ">" keeps the first maximum on ties, as in the reference. A NaN is
    # its window's maximum (the first NaN); in the 2×2 path one NaN test on the taps' sum
    # finds them after the fact, since a NaN test per tap keeps the loop from vectorising (6×).
    n_img, channels, height, width = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for n in range(n_img):
        for c in range(channels):
            plane, y_plane, at_plane = x[n, c], y[n, c], argmax[n, c]
            for r in range(oh):
                h0 = r * stride
                y_row, at_row = y_plane[r], at_plane[r]
                if pool == 2:
                    top, bottom = plane[h0], plane[h0 + 1]
                    for q in range(ow):
                        w0 = q * stride
                        v0, v1, v2, v3 = top[w0], top[w0 + 1], bottom[w0], bottom[w0 + 1]
                        best, best_at = v0, h0 * width + w0
                        if v1 > best:
                            best, best_at = v1, h0 * width + w0 + 1
                        if v2 > best:
                            best, best_at = v2, (h0 + 1) * width + w0
                        if v3 > best:
                            best, best_at = v3, (h0 + 1) * width + w0 + 1
                        total = v0 + v1 + v2 + v3  # NaN if a tap is NaN (or +Inf meets −Inf)
                        if total != total:
                            if v0 != v0:
                                best, best_at = v0, h0 * width + w0
                            elif v1 != v1:
                                best, best_at = v1, h0 * width + w0 + 1
                            elif v2 != v2:
                                best, best_at = v2, (h0 + 1) * width + w0
                            elif v3 != v3:
                                best, best_at = v3, (h0 + 1) * width + w0 + 1
                        y_row[q], at_row[q] = best, best_at
                else:
                    for q in range(ow):
                        w0 = q * stride
                        best, best_at = plane[h0, w0], h0 * width + w0
                        for i in range(pool):
                            for j in range(pool):
                                v = plane[h0 + i, w0 + j]
                                if v > best or (v != v and best == best):
                                    best, best_at = v, (h0 + i) * width + w0 + j
                        y_row[q], at_row[q] = best, best_at


@_jit
def _maxpool_backward(dy, argmax, pool, stride, dx):
    n_img, channels, width = dx.shape[0], dx.shape[1], dx.shape[3]
    oh, ow = dy.shape[2], dy.shape[3]
    for n in range(n_img):
        for c in range(channels):
            d_plane = dx[n, c].ravel()  # argmax holds h·W + w: a flat view takes it as an index
            g_rows, at_rows = dy[n, c], argmax[n, c]
            d_plane[:] = 0.0
            for r in range(oh):
                for q in range(ow):
                    # as the reference: dy goes only to a position inside its own window (an
                    # argmax of another window, or outside the plane, would be written unchecked)
                    offset = at_rows[r, q] - (r * stride * width + q * stride)
                    i = offset // width
                    j = offset - i * width
                    if 0 <= i < pool and 0 <= j < pool:
                        d_plane[at_rows[r, q]] += g_rows[r, q]


# The direct 3×3 convolution. Each image is copied into a zero-bordered plane per channel,
# flattened with row pitch Wp = W + 2. On that grid tap (i, j) of output position
# k = h·Wp + w reads padded[c, k + i·Wp + j]: every tap is the same flat plane shifted, so
# the loops over k run over contiguous memory and vectorise. Positions with w ≥ W (the
# last two of each row) are computed and thrown away (2/Wp of the work).

@_jit
def _into_grid(image, grid, pitch, offset):
    """image (C, H, W) into ``grid`` (C, ·), row h at grid[c, offset + h·pitch :][:W]; the
    rest of the grid is not touched. offset = pitch + 1 is the interior of a zero border."""
    channels, height, width = image.shape
    for c in range(channels):
        for h in range(height):
            row = grid[c, offset + h * pitch : offset + h * pitch + width]
            source = image[c, h]
            for q in range(width):
                row[q] = source[q]


@_jit_fma
def _conv3x3_planes(padded, weight, length, pitch, wide):
    """wide[f, k] = Σ_c Σ_{i,j} weight[f, c, i, j]·padded[c, k + i·pitch + j] for k < length.

    Two filters at a time, with the nine taps of one input channel in one pass: each input
    value loaded serves 18 products, and each output value is read and written once per
    input channel rather than once per tap. An odd last filter goes alone."""
    filters, channels = weight.shape[0], weight.shape[1]
    for f0 in range(0, filters - 1, 2):
        a, b = wide[f0, :length], wide[f0 + 1, :length]
        a[:] = 0.0
        b[:] = 0.0
        for c in range(channels):
            r0 = padded[c, 0 : length + 2]
            r1 = padded[c, pitch : pitch + length + 2]
            r2 = padded[c, 2 * pitch : 2 * pitch + length + 2]
            u, v = weight[f0, c], weight[f0 + 1, c]
            u00, u01, u02, u10, u11, u12, u20, u21, u22 = u[0, 0], u[0, 1], u[0, 2], u[1, 0], u[1, 1], u[1, 2], u[2, 0], u[2, 1], u[2, 2]
            v00, v01, v02, v10, v11, v12, v20, v21, v22 = v[0, 0], v[0, 1], v[0, 2], v[1, 0], v[1, 1], v[1, 2], v[2, 0], v[2, 1], v[2, 2]
            for k in range(length):
                # one row of taps at a time: three inputs live rather than nine, so fewer of the
                # 18 weights spill to the stack (6 against 9 in the generated code), and each
                # row's sum is its own short chain. 10-26 % faster than one long sum.
                x0, x1, x2 = r0[k], r0[k + 1], r0[k + 2]
                ta = u00 * x0 + u01 * x1 + u02 * x2
                tb = v00 * x0 + v01 * x1 + v02 * x2
                x0, x1, x2 = r1[k], r1[k + 1], r1[k + 2]
                ta += u10 * x0 + u11 * x1 + u12 * x2
                tb += v10 * x0 + v11 * x1 + v12 * x2
                x0, x1, x2 = r2[k], r2[k + 1], r2[k + 2]
                ta += u20 * x0 + u21 * x1 + u22 * x2
                tb += v20 * x0 + v21 * x1 + v22 * x2
                a[k] += ta
                b[k] += tb
    if filters % 2:
        a = wide[filters - 1, :length]
        a[:] = 0.0
        for c in range(channels):
            r0 = padded[c, 0 : length + 2]
            r1 = padded[c, pitch : pitch + length + 2]
            r2 = padded[c, 2 * pitch : 2 * pitch + length + 2]
            u = weight[filters - 1, c]
            u00, u01, u02, u10, u11, u12, u20, u21, u22 = u[0, 0], u[0, 1], u[0, 2], u[1, 0], u[1, 1], u[1, 2], u[2, 0], u[2, 1], u[2, 2]
            for k in range(length):
                a[k] += (u00 * r0[k] + u01 * r0[k + 1] + u02 * r0[k + 2] + u10 * r1[k] + u11 * r1[k + 1]
                         + u12 * r1[k + 2] + u20 * r2[k] + u21 * r2[k + 1] + u22 * r2[k + 2])


@_jit
def _conv3x3_same(x, weight, bias, relu, y):
    n_img, channels, height, width = x.shape
    filters = weight.shape[0]
    pitch, length = width + 2, height * (width + 2)
    padded = np.zeros((channels, (height + 2) * pitch + 2), dtype=x.dtype)
    wide = np.empty((filters, length), dtype=y.dtype)
    shift = np.zeros(filters, dtype=y.dtype)
    if bias.size:
        shift[:] = bias
    for n in range(n_img):
        _into_grid(x[n], padded, pitch, pitch + 1)
        _conv3x3_planes(padded, weight, length, pitch, wide)
        for f in range(filters):
            for h in range(height):
                source, target = wide[f, h * pitch : h * pitch + width], y[n, f, h]
                for q in range(width):
                    value = source[q] + shift[f]
                    target[q] = (0.0 if value <= 0 else value) if relu else value  # as relu_forward (NaN stays)


@_jit_sum
def _weight_grad_planes(padded, dy_wide, length, pitch, dw):
    """dw[f, c, i, j] += Σ_k dy_wide[f, k]·padded[c, k + i·pitch + j] for k < length: nine
    sums over the pixels per (f, c), each input row read once for all nine."""
    filters, channels = dw.shape[0], dw.shape[1]
    zero = np.zeros(1, dtype=dw.dtype)[0]
    for c in range(channels):
        r0 = padded[c, 0 : length + 2]
        r1 = padded[c, pitch : pitch + length + 2]
        r2 = padded[c, 2 * pitch : 2 * pitch + length + 2]
        for f in range(filters):
            g = dy_wide[f, :length]
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = zero
            for k in range(length):
                d = g[k]
                s00 += d * r0[k]
                s01 += d * r0[k + 1]
                s02 += d * r0[k + 2]
                s10 += d * r1[k]
                s11 += d * r1[k + 1]
                s12 += d * r1[k + 2]
                s20 += d * r2[k]
                s21 += d * r2[k + 1]
                s22 += d * r2[k + 2]
            t = dw[f, c]
            t[0, 0] += s00
            t[0, 1] += s01
            t[0, 2] += s02
            t[1, 0] += s10
            t[1, 1] += s11
            t[1, 2] += s12
            t[2, 0] += s20
            t[2, 1] += s21
            t[2, 2] += s22


@_jit
def _conv3x3_same_weight_grad(x, dy, dw):
    n_img, channels, height, width = x.shape
    filters = dy.shape[1]
    pitch, length = width + 2, height * (width + 2)
    padded = np.zeros((channels, (height + 2) * pitch + 2), dtype=x.dtype)
    dy_wide = np.zeros((filters, length), dtype=dy.dtype)  # the two extra columns of each row stay 0
    dw[...] = 0.0
    for n in range(n_img):
        _into_grid(x[n], padded, pitch, pitch + 1)
        _into_grid(dy[n], dy_wide, pitch, 0)
        _weight_grad_planes(padded, dy_wide, length, pitch, dw)


@_jit
def _conv3x3_same_weight_grad_by_definition(x, dy, dw):
    """dw[f, c, i, j] = Σ_n,h,w dy[n, f, h, w]·x_padded[n, c, h + i − 1, w + j − 1], one term
    at a time, x_padded being x with its border of zeros (as in the reference, an infinite dy
    at the edge meets a padding 0 and gives NaN). The grid above also multiplies x's edge
    columns by the 0 of dy_wide's two spare columns, terms the definition does not have: an
    infinite x there made NaN where the definition's sum is finite."""
    n_img, channels, height, width = x.shape
    filters = dy.shape[1]
    zero = x.dtype.type(0)
    dw[...] = 0.0
    for f in range(filters):
        for c in range(channels):
            for i in range(3):
                for j in range(3):
                    for n in range(n_img):
                        for h in range(height):
                            for w in range(width):
                                hi, wj = h + i - 1, w + j - 1
                                inside = 0 <= hi < height and 0 <= wj < width
                                dw[f, c, i, j] += dy[n, f, h, w] * (x[n, c, hi, wj] if inside else zero)


def _contiguous(*arrays):
    for a in arrays:
        if not a.flags.c_contiguous:
            raise ValueError("kernel arguments must be C-contiguous arrays")


def im2col(x, stride, pad_top, pad_left, cols):
    _contiguous(x, cols)
    shapes.output("im2col", cols=cols)
    shapes.conv_columns("im2col", x.shape, cols.shape)
    shapes.apart("im2col", dict(cols=cols), dict(x=x))
    _im2col(x, *shapes.conv_geometry("im2col", stride, pad_top, pad_left), cols)
    return cols


def col2im(cols, stride, pad_top, pad_left, x):
    _contiguous(cols, x)
    shapes.output("col2im", x=x)
    shapes.conv_columns("col2im", x.shape, cols.shape)
    shapes.apart("col2im", dict(x=x), dict(cols=cols))
    _col2im(cols, *shapes.conv_geometry("col2im", stride, pad_top, pad_left), x)
    return x


def maxpool_forward(x, pool, stride, y, argmax):
    _contiguous(x, y, argmax)
    if argmax.dtype != np.int64:
        raise TypeError(f"argmax must be int64, got {argmax.dtype}")
    shapes.output("maxpool_forward", y=y)
    pool, stride = shapes.pool_geometry("maxpool_forward", pool, stride)
    shapes.pooling("maxpool_forward", x.shape, pool, stride, y.shape, argmax.shape)
    shapes.apart("maxpool_forward", dict(y=y, argmax=argmax), dict(x=x))
    _maxpool_forward(x, pool, stride, y, argmax)
    return y


def maxpool_backward(dy, argmax, pool, stride, dx):
    _contiguous(dy, argmax, dx)
    shapes.argmax("maxpool_backward", argmax)
    shapes.output("maxpool_backward", dx=dx)
    pool, stride = shapes.pool_geometry("maxpool_backward", pool, stride)
    shapes.pooling("maxpool_backward", dx.shape, pool, stride, dy.shape, argmax.shape)
    shapes.apart("maxpool_backward", dict(dx=dx), dict(dy=dy, argmax=argmax))
    _maxpool_backward(dy, argmax, pool, stride, dx)
    return dx


def _conv3x3_shapes(x, weight_shape, y_shape):
    n, c, h, w = x.shape
    if weight_shape[1:] != (c, 3, 3) or y_shape != (n, weight_shape[0], h, w):
        raise ValueError(f"conv3x3_same needs x (N, C, H, W), weight (F, C, 3, 3) and y (N, F, H, W); "
                         f"got {x.shape}, {weight_shape}, {y_shape}")


def conv3x3_same(x, weight, bias, relu, y):
    """y = the 3×3 "same" convolution of x (see the reference). ``y`` may be ``x`` itself (of
    the same shape and dtype), or must not overlap it: each image is read after the one before
    it is written."""
    _contiguous(x, weight, y)
    shapes.output("conv3x3_same", y=y)
    shapes.itself_or_apart("conv3x3_same", x, y, "y", why="each image is read after the one before it is written")
    _conv3x3_shapes(x, weight.shape, y.shape)
    shapes.apart("conv3x3_same", dict(y=y), dict(weight=weight) if bias is None else dict(weight=weight, bias=bias))
    bias = np.empty(0, dtype=y.dtype) if bias is None else np.ascontiguousarray(bias)
    _conv3x3_same(x, weight, bias, bool(relu), y)
    return y


def conv3x3_same_weight_grad(x, dy, dw):
    _contiguous(x, dy, dw)
    shapes.output("conv3x3_same_weight_grad", dw=dw)
    _conv3x3_shapes(x, dw.shape, dy.shape)
    shapes.apart("conv3x3_same_weight_grad", dict(dw=dw), dict(x=x, dy=dy))
    _conv3x3_same_weight_grad(x, dy, dw)
    if np.isnan(dw).any():  # (F·C·9 values: cheap) an Inf or NaN in x or dy; the grid may have made NaNs of Infs
        _conv3x3_same_weight_grad_by_definition(x, dy, dw)
    return dw
