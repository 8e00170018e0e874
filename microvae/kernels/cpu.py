"""Numba kernels for the CPU backend: twins of ``reference.py`` (same names, same results).

Compiled with ``cache=True`` so a second process loads machine code from disk instead of
recompiling. Arguments must be C-contiguous; elementwise kernels see them flattened.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


# error_model="numpy": no per-element ZeroDivision checks, so the loops vectorise (7× for Adam).
# Kernels stay single-threaded: NumPy's BLAS already runs on every core, and Numba worker
# threads competing with its spin-waiting threads made training slower, not faster.
_jit = nb.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _relu_forward(x, out):
    if x.ctypes.data == out.ctypes.data:
        # in place (out is x): a loop over one array, since LLVM keeps a loop over two
        # arrays that overlap scalar (about 5× slower)
        for i in range(out.size):
            v = out[i]
            out[i] = 0.0 if v <= 0 else v
    else:
        for i in range(x.size):
            v = x[i]
            out[i] = 0.0 if v <= 0 else v  # NaN stays NaN, as in the reference


@_jit
def _relu_backward(dy, y, out):
    for i in range(dy.size):
        out[i] = dy[i] if y[i] > 0 else 0.0


@_jit
def _sigmoid(x, out):
    for i in range(x.size):
        v = x[i]
        if v >= 0:
            out[i] = 1.0 / (1.0 + math.exp(-v))
        else:
            e = math.exp(v)
            out[i] = e / (1.0 + e)


# "reassoc" lets the row sums be added in vector lanes (they vectorise; strict left-to-right
# order would keep the whole loop scalar). Nothing else in the loop changes.
@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _bernoulli_nll_fuse(logits, x, e, log1p_e, scale, dlogits, row_loss):
    # e = exp(−|l|) and log1p(e) arrive precomputed, in arrays of their own: an output that
    # may alias an input makes LLVM keep the loop scalar
    rows, cols = logits.shape
    for b in range(rows):
        total = 0.0
        for d in range(cols):
            l = logits[b, d]
            t = x[b, d]
            ed = e[b, d]
            inv = 1 / (1 + ed)
            prob = inv if l >= 0 else ed * inv
            total += (l if l > 0 else 0) + log1p_e[b, d] - t * l
            dlogits[b, d] = (prob - t) * scale
        row_loss[b] = total


@_jit
def _adam_update(param, grad, m, v, beta1, c1, beta2, c2, lr_t, eps_t):
    # scalars arrive in the buffers' dtype, so float32 buffers get float32 vector code;
    # c1 = 1 − β₁ and c2 = 1 − β₂ are rounded once, exactly as in the reference
    for i in range(param.size):
        g = grad[i]
        mi = beta1 * m[i] + c1 * g
        vi = beta2 * v[i] + c2 * (g * g)
        m[i] = mi
        v[i] = vi
        param[i] -= lr_t * mi / (math.sqrt(vi) + eps_t)


@_jit
def _sgd_update(param, grad, velocity, lr, momentum):
    for i in range(param.size):
        u = momentum * velocity[i] + grad[i]
        velocity[i] = u
        param[i] -= lr * u


def _flat(a):
    if not a.flags.c_contiguous:
        raise ValueError("kernel arguments must be C-contiguous arrays")
    return a.reshape(-1)


def relu_forward(x, out):
    """out = max(x, 0); ``out`` may be ``x`` itself (in place), or must not overlap it."""
    _relu_forward(_flat(x), _flat(out))
    return out


def relu_backward(dy, y, out):
    _relu_backward(_flat(dy), _flat(y), _flat(out))
    return out


def sigmoid(x, out):
    _sigmoid(_flat(x), _flat(out))
    return out


def bernoulli_nll_logits(logits, x, scale, dlogits, row_loss):
    # Numba has no vector exp/log1p here (calls stay scalar, ~16 ns an element); NumPy's
    # float32/float64 ufuncs are SIMD-vectorised, so the two transcendental passes go
    # through them and everything else is fused into one Numba loop.
    e = np.abs(logits)
    np.negative(e, out=e)
    np.exp(e, out=e)
    log1p_e = np.log1p(e)
    _bernoulli_nll_fuse(logits, x, e, log1p_e, logits.dtype.type(scale), dlogits, row_loss)
    return row_loss


def adam_update(param, grad, m, v, beta1, beta2, lr_t, eps_t):
    t = param.dtype.type
    _adam_update(param, grad, m, v, t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2), t(lr_t), t(eps_t))


def sgd_update(param, grad, velocity, lr, momentum):
    t = param.dtype.type
    _sgd_update(param, grad, velocity, t(lr), t(momentum))


from .rnn_cpu import *  # noqa: E402,F401,F403
from .conv_cpu import *  # noqa: E402,F401,F403
