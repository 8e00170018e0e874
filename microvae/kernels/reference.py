"""Reference kernels in plain NumPy (or CuPy: they only use the array's own namespace).

These are the definitions the compiled kernels in ``cpu.py`` and ``gpu.py`` are tested
against. All write into ``out`` arrays supplied by the caller.
"""

from __future__ import annotations

import math

from . import shapes


def _xp(a):
    try:
        import cupy

        return cupy.get_array_module(a)
    except ImportError:
        import numpy

        return numpy


def relu_forward(x, out):
    """out = max(x, 0)."""
    _xp(x).maximum(x, 0, out=out)
    return out


def relu_backward(dy, y, out):
    """out = dy where y > 0, else 0, with y the forward output (y > 0 exactly where x > 0).

    A selection, not dy · [y > 0]: an inactive unit passes no gradient even when dy there is
    NaN or ±Inf (the product would give NaN), as the compiled twins and PyTorch's ReLU do."""
    xp = _xp(dy)
    xp.copyto(out, xp.where(y > 0, dy, dy.dtype.type(0)))
    return out


def bias_relu_forward(x, b, out):
    """out = max(x + b, 0) for x of shape (batch, n) and b of shape (n,): a Dense layer's bias
    and ReLU after its product, in one pass. ``out`` may be ``x`` itself."""
    xp = _xp(x)
    xp.maximum(x + b, 0, out=out)
    return out


def bias_relu_backward(dy, y, out, db):
    """out = dy where y > 0, else 0 (as relu_backward), and db = Σ_batch out: the gradient
    through a Dense layer's ReLU and the gradient of its bias, for dy and y of shape (batch, n)."""
    relu_backward(dy, y, out)
    out.sum(axis=0, out=db)
    return out


def sigmoid(x, out):
    """out = 1 / (1 + exp(-x)), computed without overflow for large |x|."""
    xp = _xp(x)
    e = xp.exp(-xp.abs(x))
    out[...] = xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def bernoulli_nll_logits(logits, x, scale, dlogits, row_loss):
    """Fused sigmoid + Bernoulli NLL from logits + its gradient, for (B, D) arrays.

    row_loss[b] = Σ_d softplus(l) − x·l      (nats; softplus(l) = max(l,0) + log1p(e^{−|l|}))
    dlogits     = (sigmoid(l) − x) · scale    (scale = 1/B for the batch mean)
    """
    xp = _xp(logits)
    e = xp.exp(-xp.abs(logits))
    softplus = xp.maximum(logits, 0) + xp.log1p(e)
    prob = xp.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    row_loss[...] = (softplus - x * logits).sum(axis=1, dtype=xp.float64)
    dlogits[...] = (prob - x) * scale
    return row_loss


def adam_bias_corrected_rates(lr, beta1, beta2, eps, step):
    """Fold Adam's bias corrections into a step size and an epsilon.

    lr·m̂/(√v̂ + eps) with m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ) equals
    lr_t·m/(√v + eps_t) with lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ) and eps_t = eps·√(1−β₂ᵗ).
    """
    c2 = math.sqrt(1.0 - beta2**step)
    return lr * c2 / (1.0 - beta1**step), eps * c2


def adam_update(param, grad, m, v, beta1, beta2, lr_t, eps_t):
    """One Adam step over flat buffers, in place (Kingma & Ba, Algorithm 1).

    m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − lr_t · m / (√v + eps_t)

    Arithmetic is in the buffers' dtype (Python scalars are weak under NumPy ≥ 2), which all
    four share.
    """
    shapes.one_dtype("adam_update", param=param, grad=grad, m=m, v=v)
    xp = _xp(param)
    t = param.dtype.type
    m *= t(beta1)
    m += t(1.0 - beta1) * grad
    v *= t(beta2)
    v += t(1.0 - beta2) * grad * grad
    param -= t(lr_t) * m / (xp.sqrt(v) + t(eps_t))


def sgd_update(param, grad, velocity, lr, momentum):
    """SGD with (heavy-ball) momentum, in place:  u ← μu + g;  θ ← θ − lr·u (one dtype)."""
    shapes.one_dtype("sgd_update", param=param, grad=grad, velocity=velocity)
    t = param.dtype.type
    velocity *= t(momentum)
    velocity += grad
    param -= t(lr) * velocity


def matmul(a, b, out):
    """out = A·B for A (M, K) and B (K, N)."""
    return _xp(a).matmul(a, b, out=out)


def matmul_tn(a, b, out):
    """out = Aᵀ·B for A (K, M) and B (K, N): a Dense layer's weight gradient Xᵀ·dY."""
    return _xp(a).matmul(a.T, b, out=out)


def matmul_nt(a, b, out):
    """out = A·Bᵀ for A (M, K) and B (N, K): a Dense layer's input gradient dY·Wᵀ."""
    return _xp(a).matmul(a, b.T, out=out)


from .rnn_reference import *  # noqa: E402,F401,F403
from .conv_reference import *  # noqa: E402,F401,F403
