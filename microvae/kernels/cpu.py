"""Numba kernels for the CPU backend: twins of ``reference.py`` (same names, same results).

Compiled with ``cache=True`` so a second process loads machine code from disk instead of
recompiling. Arguments must be C-contiguous; elementwise kernels see them flattened.
"""

from __future__ import annotations

import math

import numba as nb

from .reference import adam_bias_corrected_rates  # noqa: F401  (same helper on every device)

_jit = nb.njit(cache=True, nogil=True)
# Flat-buffer updates touch every parameter: split them over the cores.
_jit_parallel = nb.njit(cache=True, nogil=True, parallel=True)


@_jit
def _relu_forward(x, out):
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


@_jit
def _bernoulli_nll_logits(logits, x, scale, dlogits, row_loss):
    rows, cols = logits.shape
    for b in range(rows):
        total = 0.0
        for d in range(cols):
            l = logits[b, d]
            t = x[b, d]
            e = math.exp(-abs(l))
            if l >= 0:
                softplus = l + math.log1p(e)
                prob = 1.0 / (1.0 + e)
            else:
                softplus = math.log1p(e)
                prob = e / (1.0 + e)
            total += softplus - t * l
            dlogits[b, d] = (prob - t) * scale
        row_loss[b] = total


@_jit_parallel
def _adam_update(param, grad, m, v, beta1, c1, beta2, c2, lr_t, eps_t):
    # scalars arrive in the buffers' dtype, so float32 buffers get float32 vector code;
    # c1 = 1 − β₁ and c2 = 1 − β₂ are rounded once, exactly as in the reference
    for i in nb.prange(param.size):
        g = grad[i]
        mi = beta1 * m[i] + c1 * g
        vi = beta2 * v[i] + c2 * (g * g)
        m[i] = mi
        v[i] = vi
        param[i] -= lr_t * mi / (math.sqrt(vi) + eps_t)


@_jit_parallel
def _sgd_update(param, grad, velocity, lr, momentum):
    for i in nb.prange(param.size):
        u = momentum * velocity[i] + grad[i]
        velocity[i] = u
        param[i] -= lr * u


def _flat(a):
    if not a.flags.c_contiguous:
        raise ValueError("kernel arguments must be C-contiguous arrays")
    return a.reshape(-1)


def relu_forward(x, out):
    _relu_forward(_flat(x), _flat(out))
    return out


def relu_backward(dy, y, out):
    _relu_backward(_flat(dy), _flat(y), _flat(out))
    return out


def sigmoid(x, out):
    _sigmoid(_flat(x), _flat(out))
    return out


def bernoulli_nll_logits(logits, x, scale, dlogits, row_loss):
    _bernoulli_nll_logits(logits, x, float(scale), dlogits, row_loss)
    return row_loss


def adam_update(param, grad, m, v, beta1, beta2, lr_t, eps_t):
    t = param.dtype.type
    _adam_update(param, grad, m, v, t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2), t(lr_t), t(eps_t))


def sgd_update(param, grad, velocity, lr, momentum):
    t = param.dtype.type
    _sgd_update(param, grad, velocity, t(lr), t(momentum))


from .rnn_cpu import *  # noqa: E402,F401,F403
from .conv_cpu import *  # noqa: E402,F401,F403
