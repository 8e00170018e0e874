"""CuPy twins of ``rnn_reference.py``: the elementwise work of one recurrent time step.

Same names, arguments and results as the reference kernels (see there for the math).
Each kernel runs one thread per (batch row, hidden unit): ``i`` is the flat index of that
pair in a C-contiguous (batch, H) array, so row b = i / H and unit j = i % H; the GRU's
(batch, 3H) arrays are addressed as raw memory at b·3H + {0, H, 2H} + j.
Imported only for ``backend="cupy"``.
"""

from __future__ import annotations

import cupy as cp

from . import shapes

__all__ = [
    "rnn_tanh_forward_step",
    "rnn_tanh_backward_step",
    "gru_forward_step",
    "gru_backward_step",
]

_PREAMBLE = """
template <typename T> __device__ T microvae_rnn_sigmoid(T v) {
    T e = exp(-fabs(v));
    return v >= (T)0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e);
}
"""

_rnn_forward = cp.ElementwiseKernel(
    "T a, T hp, raw T mask, int64 H",
    "T h",
    "h = mask[i / H] != (T)0 ? tanh(a) : hp;",
    "microvae_rnn_tanh_forward_step",
)

_rnn_backward = cp.ElementwiseKernel(
    "T dh, T h, raw T mask, int64 H",
    "T da, T dhp",
    """
    if (mask[i / H] != (T)0) { da = dh * ((T)1 - h * h); dhp = (T)0; }
    else { da = (T)0; dhp = dh; }
    """,
    "microvae_rnn_tanh_backward_step",
)

_gru_forward = cp.ElementwiseKernel(
    "raw T gx, raw T gh, raw T bhn, T hp, raw T mask, int64 H",
    "T h, raw T gates, raw T hn",
    """
    long long b = i / H, j = i % H, g = b * 3 * H;
    T r = microvae_rnn_sigmoid<T>(gx[g + j] + gh[g + j]);
    T u = microvae_rnn_sigmoid<T>(gx[g + H + j] + gh[g + H + j]);
    T hnv = gh[g + 2 * H + j] + bhn[j];
    T n = tanh(gx[g + 2 * H + j] + r * hnv);
    gates[g + j] = r; gates[g + H + j] = u; gates[g + 2 * H + j] = n;
    hn[i] = hnv;
    h = mask[b] != (T)0 ? ((T)1 - u) * n + u * hp : hp;
    """,
    "microvae_gru_forward_step",
    preamble=_PREAMBLE,
)

_gru_backward = cp.ElementwiseKernel(
    "T dh, T hp, raw T mask, raw T gates, T hnv, int64 H",
    "raw T dgx, T dhn, T dhp",
    """
    long long b = i / H, j = i % H, g = b * 3 * H;
    if (mask[b] != (T)0) {
        T r = gates[g + j], u = gates[g + H + j], n = gates[g + 2 * H + j];
        T da_n = dh * ((T)1 - u) * ((T)1 - n * n);
        dgx[g + j] = da_n * hnv * r * ((T)1 - r);
        dgx[g + H + j] = dh * (hp - n) * u * ((T)1 - u);
        dgx[g + 2 * H + j] = da_n;
        dhn = da_n * r;
        dhp = dh * u;
    } else {
        dgx[g + j] = (T)0; dgx[g + H + j] = (T)0; dgx[g + 2 * H + j] = (T)0;
        dhn = (T)0;
        dhp = dh;
    }
    """,
    "microvae_gru_backward_step",
)


def _contiguous(a, name):
    """An output array, which the kernel writes by flat index: it must be C-contiguous."""
    if not a.flags.c_contiguous:
        raise ValueError(f"kernel array {name!r} must be C-contiguous")
    return a


def _in(a):
    """An input, made C-contiguous if it is not (a copy), as the CPU twin takes any layout:
    GRU.step(x_t, H[:, -1]) passes a strided view."""
    return cp.ascontiguousarray(a)


def _mask(mask, like):
    """The mask as the kernels read it: ``raw T``, in the states' dtype. The layers pass it so
    (then it is only made contiguous, as every step of a sequence runs this); the CPU twins take
    any real or boolean mask and keep a row where it is nonzero, and so does this, by a cast."""
    if mask.dtype == like.dtype:
        return _in(mask)
    return (mask != 0).astype(like.dtype)


def rnn_tanh_forward_step(a, h_prev, mask, h):
    shapes.rnn_step("rnn_tanh_forward_step", mask.shape, a=a.shape, h_prev=h_prev.shape, h=h.shape)
    shapes.apart("rnn_tanh_forward_step", dict(h=h), dict(a=a, h_prev=h_prev, mask=mask), xp=cp)
    _rnn_forward(a, h_prev, _mask(mask, h), h.shape[1], _contiguous(h, "h"))


def rnn_tanh_backward_step(dh, h, mask, da, dh_prev):
    shapes.rnn_step("rnn_tanh_backward_step", mask.shape, dh=dh.shape, h=h.shape, da=da.shape, dh_prev=dh_prev.shape)
    shapes.apart("rnn_tanh_backward_step", dict(da=da, dh_prev=dh_prev), dict(dh=dh, h=h, mask=mask), xp=cp)
    _rnn_backward(dh, h, _mask(mask, h), h.shape[1], _contiguous(da, "da"), _contiguous(dh_prev, "dh_prev"))


def gru_forward_step(gx, gh, b_hn, h_prev, mask, h, gates, hn):
    shapes.gru_step("gru_forward_step", mask.shape, dict(gx=gx.shape, gh=gh.shape, gates=gates.shape),
                    dict(h_prev=h_prev.shape, h=h.shape, hn=hn.shape), b_hn.shape)
    shapes.apart("gru_forward_step", dict(h=h, gates=gates, hn=hn), dict(gx=gx, gh=gh, b_hn=b_hn, h_prev=h_prev, mask=mask), xp=cp)
    H = h.shape[1]
    _gru_forward(_in(gx), _in(gh), _in(b_hn), _in(h_prev), _mask(mask, h), H, _contiguous(h, "h"), _contiguous(gates, "gates"),
                 _contiguous(hn, "hn"))


def gru_backward_step(dh, h_prev, mask, gates, hn, dgx, dhn, dh_prev):
    shapes.gru_step("gru_backward_step", mask.shape, dict(gates=gates.shape, dgx=dgx.shape),
                    dict(dh=dh.shape, h_prev=h_prev.shape, hn=hn.shape, dhn=dhn.shape, dh_prev=dh_prev.shape))
    shapes.apart("gru_backward_step", dict(dgx=dgx, dhn=dhn, dh_prev=dh_prev), dict(dh=dh, h_prev=h_prev, mask=mask, gates=gates, hn=hn), xp=cp)
    H = dh.shape[1]
    _gru_backward(_in(dh), _in(h_prev), _mask(mask, dh_prev), _in(gates), _in(hn), H, _contiguous(dgx, "dgx"), _contiguous(dhn, "dhn"),
                  _contiguous(dh_prev, "dh_prev"))
