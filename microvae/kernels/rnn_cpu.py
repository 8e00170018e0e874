"""Numba twins of ``rnn_reference.py``: the elementwise work of one recurrent time step.

Same names, arguments and results as the reference kernels (see there for the math).
Outputs must be C-contiguous, and inputs that are not are copied: the layers keep their
sequences time-major so that one step's slice is a contiguous (batch, ·) block. Shapes are
checked first (``shapes.py``): the loops index without bounds checks.

Precision: Numba types the loops' literals (1.0) as float64, so a float32 step is computed in
float64 and rounded once, at each store. Results agree with the float32 reference to a few
ulps (the twin tests hold them to that); where an intermediate product of the reference
overflows float32 (values near 3e38), the value here may come out finite instead of ±Inf.
"""

from __future__ import annotations

import math

import numba as nb

from . import shapes

__all__ = [
    "rnn_tanh_forward_step",
    "rnn_tanh_backward_step",
    "gru_forward_step",
    "gru_backward_step",
]

_jit = nb.njit(cache=True, nogil=True, error_model="numpy")  # no per-element ZeroDivision checks: loops vectorise


@_jit
def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@_jit
def _rnn_forward(a, h_prev, mask, h):
    rows, cols = a.shape
    for b in range(rows):
        if mask[b] != 0:
            for j in range(cols):
                h[b, j] = math.tanh(a[b, j])
        else:
            for j in range(cols):
                h[b, j] = h_prev[b, j]


@_jit
def _rnn_backward(dh, h, mask, da, dh_prev):
    rows, cols = dh.shape
    for b in range(rows):
        if mask[b] != 0:
            for j in range(cols):
                v = h[b, j]
                da[b, j] = dh[b, j] * (1.0 - v * v)
                dh_prev[b, j] = 0.0
        else:
            for j in range(cols):
                da[b, j] = 0.0
                dh_prev[b, j] = dh[b, j]


@_jit
def _gru_forward(gx, gh, b_hn, h_prev, mask, h, gates, hn):
    rows, H = h.shape
    for b in range(rows):
        keep = mask[b] != 0
        for j in range(H):
            r = _sigmoid(gx[b, j] + gh[b, j])
            u = _sigmoid(gx[b, H + j] + gh[b, H + j])
            hnv = gh[b, 2 * H + j] + b_hn[j]
            n = math.tanh(gx[b, 2 * H + j] + r * hnv)
            gates[b, j] = r
            gates[b, H + j] = u
            gates[b, 2 * H + j] = n
            hn[b, j] = hnv
            if keep:
                h[b, j] = (1.0 - u) * n + u * h_prev[b, j]
            else:
                h[b, j] = h_prev[b, j]


@_jit
def _gru_backward(dh, h_prev, mask, gates, hn, dgx, dhn, dh_prev):
    rows, H = dh.shape
    for b in range(rows):
        if mask[b] != 0:
            for j in range(H):
                d = dh[b, j]
                r = gates[b, j]
                u = gates[b, H + j]
                n = gates[b, 2 * H + j]
                da_n = d * (1.0 - u) * (1.0 - n * n)
                dgx[b, j] = da_n * hn[b, j] * r * (1.0 - r)
                dgx[b, H + j] = d * (h_prev[b, j] - n) * u * (1.0 - u)
                dgx[b, 2 * H + j] = da_n
                dhn[b, j] = da_n * r
                dh_prev[b, j] = d * u
        else:
            for j in range(H):
                dgx[b, j] = 0.0
                dgx[b, H + j] = 0.0
                dgx[b, 2 * H + j] = 0.0
                dhn[b, j] = 0.0
                dh_prev[b, j] = dh[b, j]


def _out(a, name):
    if not a.flags.c_contiguous:
        raise ValueError(f"kernel output {name!r} must be a C-contiguous array")
    shapes.output("a recurrent step kernel", **{name: a})
    return a


def _in(a):
    return a if a.flags.c_contiguous else a.copy()


def rnn_tanh_forward_step(a, h_prev, mask, h):
    shapes.rnn_step("rnn_tanh_forward_step", mask.shape, a=a.shape, h_prev=h_prev.shape, h=h.shape)
    shapes.apart("rnn_tanh_forward_step", dict(h=h), dict(a=a, h_prev=h_prev, mask=mask))
    _rnn_forward(_in(a), _in(h_prev), _in(mask), _out(h, "h"))


def rnn_tanh_backward_step(dh, h, mask, da, dh_prev):
    shapes.rnn_step("rnn_tanh_backward_step", mask.shape, dh=dh.shape, h=h.shape, da=da.shape, dh_prev=dh_prev.shape)
    shapes.apart("rnn_tanh_backward_step", dict(da=da, dh_prev=dh_prev), dict(dh=dh, h=h, mask=mask))
    _rnn_backward(_in(dh), _in(h), _in(mask), _out(da, "da"), _out(dh_prev, "dh_prev"))


def gru_forward_step(gx, gh, b_hn, h_prev, mask, h, gates, hn):
    shapes.gru_step("gru_forward_step", mask.shape, dict(gx=gx.shape, gh=gh.shape, gates=gates.shape),
                    dict(h_prev=h_prev.shape, h=h.shape, hn=hn.shape), b_hn.shape)
    shapes.apart("gru_forward_step", dict(h=h, gates=gates, hn=hn), dict(gx=gx, gh=gh, b_hn=b_hn, h_prev=h_prev, mask=mask))
    _gru_forward(_in(gx), _in(gh), _in(b_hn), _in(h_prev), _in(mask), _out(h, "h"), _out(gates, "gates"), _out(hn, "hn"))


def gru_backward_step(dh, h_prev, mask, gates, hn, dgx, dhn, dh_prev):
    shapes.gru_step("gru_backward_step", mask.shape, dict(gates=gates.shape, dgx=dgx.shape),
                    dict(dh=dh.shape, h_prev=h_prev.shape, hn=hn.shape, dhn=dhn.shape, dh_prev=dh_prev.shape))
    shapes.apart("gru_backward_step", dict(dgx=dgx, dhn=dhn, dh_prev=dh_prev), dict(dh=dh, h_prev=h_prev, mask=mask, gates=gates, hn=hn))
    _gru_backward(_in(dh), _in(h_prev), _in(mask), _in(gates), _in(hn), _out(dgx, "dgx"), _out(dhn, "dhn"), _out(dh_prev, "dh_prev"))
