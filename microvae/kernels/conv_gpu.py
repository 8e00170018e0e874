"""CuPy twins of ``conv_reference.py`` (same names, same results), for the GPU backend.

Each kernel runs one thread per *output* element and gathers what it needs, so the
adjoint kernels (``col2im``, ``maxpool_backward``) need no atomic additions.
Shapes are as in the reference module. A raw argument's flat index is its C-order position,
which CuPy maps through the array's strides, so views need no copy (no GPU has run one yet).
"""

from __future__ import annotations

import cupy as cp

from . import shapes

__all__ = ["im2col", "col2im", "maxpool_forward", "maxpool_backward"]

_GEOMETRY = "int32 N, int32 C, int32 H, int32 W, int32 KH, int32 KW, int32 OH, int32 OW, int32 s, int32 pt, int32 pl"

# one thread per cols[c, ki, kj, n, r, q]
_im2col = cp.ElementwiseKernel(
    "raw T x, " + _GEOMETRY,
    "T cols",
    """
    long long q = i % OW;  long long t = i / OW;
    long long r = t % OH;  t /= OH;
    long long n = t % N;   t /= N;
    long long kj = t % KW; t /= KW;
    long long ki = t % KH; long long c = t / KH;
    long long h = r * s + ki - pt;
    long long w = q * s + kj - pl;
    cols = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * C + c) * H + h) * W + w] : (T)0;
    """,
    "microvae_im2col",
)

# one thread per x[n, c, h, w]: the sum over the taps (ki, kj) and windows (r, q) that read it
_col2im = cp.ElementwiseKernel(
    "raw T cols, " + _GEOMETRY,
    "T x",
    """
    long long w = i % W;  long long t = i / W;
    long long h = t % H;  t /= H;
    long long c = t % C;  long long n = t / C;
    T acc = 0;
    for (long long ki = 0; ki < KH; ++ki) {
        long long hh = h + pt - ki;
        if (hh < 0 || hh % s != 0 || hh / s >= OH) continue;
        long long r = hh / s;
        for (long long kj = 0; kj < KW; ++kj) {
            long long ww = w + pl - kj;
            if (ww < 0 || ww % s != 0 || ww / s >= OW) continue;
            long long q = ww / s;
            acc += cols[((((c * KH + ki) * KW + kj) * N + n) * OH + r) * OW + q];
        }
    }
    x = acc;
    """,
    "microvae_col2im",
)

# one thread per window y[n, c, r, q]
_maxpool_forward = cp.ElementwiseKernel(
    "raw T x, int32 H, int32 W, int32 OH, int32 OW, int32 pool, int32 s",
    "T y, int64 arg",
    """
    long long q = i % OW;  long long t = i / OW;
    long long r = t % OH;  t /= OH;
    long long h0 = r * s, w0 = q * s;
    long long base = t * H * W;
    T best = x[base + h0 * W + w0];
    long long best_at = h0 * W + w0;
    for (long long a = 0; a < pool; ++a) {
        for (long long b = 0; b < pool; ++b) {
            long long at = (h0 + a) * W + (w0 + b);
            T v = x[base + at];
            if (v > best || (v != v && best == best)) { best = v; best_at = at; }
        }
    }
    y = best;
    arg = best_at;
    """,
    "microvae_maxpool_forward",
)

# one thread per dx[n, c, h, w]: the sum of dy over the windows containing (h, w) whose maximum it was
_maxpool_backward = cp.ElementwiseKernel(
    "raw T dy, raw int64 arg, int32 H, int32 W, int32 OH, int32 OW, int32 pool, int32 s",
    "T dx",
    """
    long long w = i % W;  long long t = i / W;
    long long h = t % H;  t /= H;
    long long me = h * W + w;
    long long r_lo = h >= pool ? (h - pool) / s + 1 : 0;
    long long q_lo = w >= pool ? (w - pool) / s + 1 : 0;
    long long r_hi = min(h / s, (long long)OH - 1);
    long long q_hi = min(w / s, (long long)OW - 1);
    T acc = 0;
    for (long long r = r_lo; r <= r_hi; ++r) {
        for (long long q = q_lo; q <= q_hi; ++q) {
            long long k = (t * OH + r) * OW + q;
            if (arg[k] == me) acc += dy[k];
        }
    }
    dx = acc;
    """,
    "microvae_maxpool_backward",
)


def _geometry(kernel, x_shape, cols_shape, stride, pad_top, pad_left):
    n, c, h, w = x_shape
    _, kh, kw, _, oh, ow = cols_shape
    return (int(n), int(c), int(h), int(w), int(kh), int(kw), int(oh), int(ow),
            *shapes.conv_geometry(kernel, stride, pad_top, pad_left))


def im2col(x, stride, pad_top, pad_left, cols):
    shapes.output("im2col", cols=cols)
    shapes.conv_columns("im2col", x.shape, cols.shape)
    shapes.apart("im2col", dict(cols=cols), dict(x=x), xp=cp)
    _im2col(x, *_geometry("im2col", x.shape, cols.shape, stride, pad_top, pad_left), cols)
    return cols


def col2im(cols, stride, pad_top, pad_left, x):
    shapes.output("col2im", x=x)
    shapes.conv_columns("col2im", x.shape, cols.shape)
    shapes.apart("col2im", dict(x=x), dict(cols=cols), xp=cp)
    _col2im(cols, *_geometry("col2im", x.shape, cols.shape, stride, pad_top, pad_left), x)
    return x


def maxpool_forward(x, pool, stride, y, argmax):
    if argmax.dtype != cp.int64:
        raise TypeError(f"argmax must be int64, got {argmax.dtype}")
    shapes.output("maxpool_forward", y=y)
    pool, stride = shapes.pool_geometry("maxpool_forward", pool, stride)
    shapes.pooling("maxpool_forward", x.shape, pool, stride, y.shape, argmax.shape)
    shapes.apart("maxpool_forward", dict(y=y, argmax=argmax), dict(x=x), xp=cp)
    _, _, h, w = x.shape
    _maxpool_forward(x, int(h), int(w), int(y.shape[2]), int(y.shape[3]), pool, stride, y, argmax)
    return y


def maxpool_backward(dy, argmax, pool, stride, dx):
    shapes.argmax("maxpool_backward", argmax)
    shapes.output("maxpool_backward", dx=dx)
    pool, stride = shapes.pool_geometry("maxpool_backward", pool, stride)
    shapes.pooling("maxpool_backward", dx.shape, pool, stride, dy.shape, argmax.shape)
    shapes.apart("maxpool_backward", dict(dx=dx), dict(dy=dy, argmax=argmax), xp=cp)
    argmax = argmax.astype(cp.int64, copy=False)  # any integer dtype, as the CPU twins take
    _, _, h, w = dx.shape
    _maxpool_backward(dy, argmax, int(h), int(w), int(dy.shape[2]), int(dy.shape[3]), pool, stride, dx)
    return dx
