"""Per-time-step elementwise kernels of the recurrent layers, in plain NumPy (or CuPy).

These are the readable definitions; ``rnn_cpu.py`` (Numba) and ``rnn_gpu.py`` (CuPy) are
held equal to them by the tests. The matrix products of a step (x·W_x, h·W_h) are done by
the layer through ``backend.xp``; a kernel does the elementwise rest of one step for a
batch: arrays are (batch, hidden) or, for the GRU's three gates side by side,
(batch, 3·hidden) laid out as [reset | update | candidate]. ``mask`` is (batch,) of 0/1:
a row with mask 0 is a padded step, which carries the hidden state through unchanged
(h = h_prev exactly) and passes no gradient to the step's gates.

All kernels write into the caller's output arrays and return nothing useful.
"""

from __future__ import annotations

__all__ = [
    "rnn_tanh_forward_step",
    "rnn_tanh_backward_step",
    "gru_forward_step",
    "gru_backward_step",
]


def _xp(a):
    try:
        import cupy

        return cupy.get_array_module(a)
    except ImportError:
        import numpy

        return numpy


def _sigmoid(xp, v):
    e = xp.exp(-xp.abs(v))
    return xp.where(v >= 0, 1 / (1 + e), e / (1 + e))


def rnn_tanh_forward_step(a, h_prev, mask, h):
    """Vanilla RNN step from its pre-activation a = x·W_x + h_prev·W_h + b:

        h = tanh(a)   where mask = 1,      h = h_prev   where mask = 0
    """
    xp = _xp(a)
    keep = (mask != 0)[:, None]
    h[...] = xp.where(keep, xp.tanh(a), h_prev)


def rnn_tanh_backward_step(dh, h, mask, da, dh_prev):
    """Backward of ``rnn_tanh_forward_step`` given dL/dh (everything that reaches h):

        da      = dh · (1 − h²)   where mask = 1 (h = tanh(a) there), else 0
        dh_prev = 0               where mask = 1, else dh (the carried state)

    The caller adds the recurrent path, da·W_hᵀ, to dh_prev.
    """
    xp = _xp(dh)
    keep = (mask != 0)[:, None]
    da[...] = xp.where(keep, dh * (1 - h * h), 0)
    dh_prev[...] = xp.where(keep, 0, dh)


def gru_forward_step(gx, gh, b_hn, h_prev, mask, h, gates, hn):
    """GRU step from gx = x·W_x + b and gh = h_prev·W_h, both (batch, 3H) as [r | u | n]:

        r  = σ(gx_r + gh_r)                 reset gate
        u  = σ(gx_u + gh_u)                 update gate
        hn = gh_n + b_hn                    recurrent part of the candidate
        n  = tanh(gx_n + r ⊙ hn)            candidate state
        h  = (1 − u) ⊙ n + u ⊙ h_prev       where mask = 1, else h_prev

    Outputs: h (batch, H); gates (batch, 3H) = [r | u | n] and hn (batch, H), the cache
    the backward step needs.
    """
    xp = _xp(gx)
    H = h.shape[1]
    r = _sigmoid(xp, gx[:, :H] + gh[:, :H])
    u = _sigmoid(xp, gx[:, H : 2 * H] + gh[:, H : 2 * H])
    hn[...] = gh[:, 2 * H :] + b_hn
    n = xp.tanh(gx[:, 2 * H :] + r * hn)
    gates[:, :H] = r
    gates[:, H : 2 * H] = u
    gates[:, 2 * H :] = n
    keep = (mask != 0)[:, None]
    h[...] = xp.where(keep, (1 - u) * n + u * h_prev, h_prev)


def gru_backward_step(dh, h_prev, mask, gates, hn, dgx, dhn, dh_prev):
    """Backward of ``gru_forward_step`` given dL/dh. With h̃ = (1 − u)n + u·h_prev and
    δ = dh where mask = 1 (else 0):

        dn   = δ ⊙ (1 − u)            da_n = dn ⊙ (1 − n²)          (a_n = gx_n + r ⊙ hn)
        du   = δ ⊙ (h_prev − n)       da_u = du ⊙ u(1 − u)
        dr   = da_n ⊙ hn              da_r = dr ⊙ r(1 − r)
        dhn  = da_n ⊙ r               (gradient of gh_n and of b_hn)

    Outputs: dgx = [da_r | da_u | da_n] (the gradient of gx, hence of x·W_x + b);
    the gradient of gh is [da_r | da_u | dhn]; dh_prev = δ ⊙ u + (1 − mask)·dh is the
    direct path. The caller adds the recurrent path, dgh·W_hᵀ, to dh_prev.
    """
    xp = _xp(dh)
    H = dh.shape[1]
    keep = (mask != 0)[:, None]
    r, u, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
    # masked on the way out, not through δ: 0·NaN is NaN, and a padded step's cache may hold
    # anything (NaN gates from padding whose x·W overflowed), while its gradients must be 0
    da_n = dh * (1 - u) * (1 - n * n)
    dgx[:, :H] = xp.where(keep, da_n * hn * r * (1 - r), 0)
    dgx[:, H : 2 * H] = xp.where(keep, dh * (h_prev - n) * u * (1 - u), 0)
    dgx[:, 2 * H :] = xp.where(keep, da_n, 0)
    dhn[...] = xp.where(keep, da_n * r, 0)
    dh_prev[...] = xp.where(keep, dh * u, dh)
