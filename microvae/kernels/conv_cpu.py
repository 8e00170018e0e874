"""Numba twins of ``conv_reference.py`` (same names, same results), for the CPU backend.

Direct loops over the 6-D column buffer (C, KH, KW, N, OH, OW); see the reference module
for the definitions. Arrays must be C-contiguous.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["im2col", "col2im", "maxpool_forward", "maxpool_backward"]

_jit = nb.njit(cache=True, nogil=True, error_model="numpy")  # no per-element ZeroDivision checks: loops vectorise


@_jit
def _im2col(x, stride, pad_top, pad_left, cols):
    n_img, channels, height, width = x.shape
    kh, kw, oh, ow = cols.shape[1], cols.shape[2], cols.shape[4], cols.shape[5]
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
def _col2im(cols, stride, pad_top, pad_left, x):
    n_img, channels, height, width = x.shape
    kh, kw, oh, ow = cols.shape[1], cols.shape[2], cols.shape[4], cols.shape[5]
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
def _maxpool_forward(x, pool, stride, y, argmax):
    # Each window's running maximum stays in locals (no store until the window is done),
    # and 2×2 windows are spelled out: 3.5× faster than loops over the taps that compare
    # against y in memory. ">" keeps the first maximum on ties, as in the reference.
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
                        best, best_at = top[w0], h0 * width + w0
                        v = top[w0 + 1]
                        if v > best:
                            best, best_at = v, h0 * width + w0 + 1
                        v = bottom[w0]
                        if v > best:
                            best, best_at = v, (h0 + 1) * width + w0
                        v = bottom[w0 + 1]
                        if v > best:
                            best, best_at = v, (h0 + 1) * width + w0 + 1
                        y_row[q], at_row[q] = best, best_at
                else:
                    for q in range(ow):
                        w0 = q * stride
                        best, best_at = plane[h0, w0], h0 * width + w0
                        for i in range(pool):
                            for j in range(pool):
                                v = plane[h0 + i, w0 + j]
                                if v > best:
                                    best, best_at = v, (h0 + i) * width + w0 + j
                        y_row[q], at_row[q] = best, best_at


@_jit
def _maxpool_backward(dy, argmax, dx):
    n_img, channels = dx.shape[0], dx.shape[1]
    for n in range(n_img):
        for c in range(channels):
            # flat views: argmax holds h·W + w, so no divisions per element
            d_plane = dx[n, c].ravel()
            g_plane, at_plane = dy[n, c].ravel(), argmax[n, c].ravel()
            d_plane[:] = 0.0
            for k in range(g_plane.size):
                d_plane[at_plane[k]] += g_plane[k]


def _contiguous(*arrays):
    for a in arrays:
        if not a.flags.c_contiguous:
            raise ValueError("kernel arguments must be C-contiguous arrays")


def im2col(x, stride, pad_top, pad_left, cols):
    _contiguous(x, cols)
    _im2col(x, int(stride), int(pad_top), int(pad_left), cols)
    return cols


def col2im(cols, stride, pad_top, pad_left, x):
    _contiguous(cols, x)
    _col2im(cols, int(stride), int(pad_top), int(pad_left), x)
    return x


def maxpool_forward(x, pool, stride, y, argmax):
    _contiguous(x, y, argmax)
    if argmax.dtype != np.int64:
        raise TypeError(f"argmax must be int64, got {argmax.dtype}")
    _maxpool_forward(x, int(pool), int(stride), y, argmax)
    return y


def maxpool_backward(dy, argmax, pool, stride, dx):
    _contiguous(dy, argmax, dx)
    _maxpool_backward(dy, argmax, dx)
    return dx
