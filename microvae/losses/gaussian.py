"""Gaussian reconstruction losses."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..backend import array_module
from ._checks import array_of, native, rows, same_shape

_LOG_2PI = math.log(2 * math.pi)


def gaussian_nll(mean, x, logvar=0.0):
    """−log N(x; mean, e^{logvar}) summed over dimensions; fixed or learned variance.

    Per example:   ½ Σ_d [(x − μ)²·e^{−logvar} + logvar + log 2π]
    Gradients:     d/dμ      = (μ − x)·e^{−logvar} / batch
                   d/dlogvar = ½(1 − (x − μ)²·e^{−logvar}) / batch   (summed to logvar's shape)

    ``logvar`` is a number (a Python or NumPy scalar: a fixed variance, and the dlogvar
    returned is None) or an array broadcastable to ``mean`` (a learned variance, e.g. a decoder
    output or a per-pixel vector).
    Returns ``(per_example, dmean, dlogvar)``: per_example in float64, dmean in mean's dtype
    and dlogvar in logvar's, whatever x's dtype.
    """
    same_shape("gaussian_nll", mean, x, ("mean", "x"))
    xp = array_module(mean)
    batch = mean.shape[0]
    diff = mean - x
    # a number (Python or NumPy scalar) is a fixed variance; an array, even 0-d, is learned
    if isinstance(logvar, (bool, np.bool_)):  # a Real to Python: True was a variance of e
        raise TypeError(f"gaussian_nll: logvar must be a number (a fixed variance) or a float32/float64 array "
                        f"(a learned one), got {logvar!r}")
    learned = not isinstance(logvar, numbers.Real)
    if learned:
        if not hasattr(logvar, "dtype"):
            raise TypeError(f"gaussian_nll: logvar must be a number (a fixed variance) or a float32/float64 array "
                            f"(a learned one), got {type(logvar).__name__}")
        array_of("gaussian_nll", "logvar", logvar)
        if not _broadcasts_to(logvar.shape, mean.shape):
            # a (B, 1, D) logvar against a (B, D) mean would broadcast to (B, B, D): wrong sums, no error
            raise ValueError(f"gaussian_nll: logvar must broadcast to mean's shape {tuple(mean.shape)} without enlarging "
                             f"it (a number, a per-dimension vector or an array of mean's shape), got {tuple(logvar.shape)}")
        # through 1/σ = e^{−logvar/2}, not e^{−logvar}: that overflows float32 already at logvar
        # < −88, and an exact fit (x − μ = 0) then gave 0·Inf = NaN for a finite loss
        inv_std = xp.exp(-0.5 * logvar)
        scaled = diff * inv_std
        sq = scaled * scaled
        per_example = 0.5 * rows(sq + logvar + _LOG_2PI + xp.zeros_like(mean)).sum(axis=1, dtype=xp.float64)
        dmean = scaled * inv_std / batch
        dlogvar = _sum_to_shape(0.5 * (1 - sq) / batch, logvar.shape)
        # each gradient in the dtype of what it differentiates (NumPy promotes a float32 mean
        # with float64 or int32 data to float64), as the layers take their dY
        return per_example, dmean.astype(native(mean.dtype), copy=False), dlogvar.astype(native(logvar.dtype), copy=False)
    # NaN or ±Inf made every loss NaN, and e^{−logvar} raised OverflowError below −709
    if not -700.0 <= logvar <= 700.0:
        raise ValueError(f"gaussian_nll: a fixed logvar must be a finite number in [-700, 700] (a log-variance; "
                         f"microvae's models keep theirs in LOGVAR_RANGE, [-30, 20]), got {logvar!r}")
    precision = math.exp(-logvar)
    dims = rows(mean).shape[1]
    per_example = 0.5 * precision * rows(diff * diff).sum(axis=1, dtype=xp.float64) + 0.5 * dims * (logvar + _LOG_2PI)
    slope = precision / batch
    if slope <= float(np.finfo(mean.dtype).max):
        dmean = diff * mean.dtype.type(slope)
    else:  # beyond float32 (logvar below about −88): Inf·0 would make an exact fit's gradient NaN, not 0
        with np.errstate(over="ignore"):
            dmean = (diff.astype(xp.float64) * slope).astype(mean.dtype)
    return per_example, dmean.astype(native(mean.dtype), copy=False), None


def mse(prediction, x):
    """Squared error summed over dimensions:  Σ_d (x̂ − x)²;   d/dx̂ = 2(x̂ − x)/batch.

    Equals 2·gaussian_nll with unit variance, minus a constant. Returns ``(per_example, dprediction)``,
    dprediction in prediction's dtype whatever x's.
    """
    same_shape("mse", prediction, x, ("prediction", "x"))
    xp = array_module(prediction)
    diff = prediction - x
    per_example = rows(diff * diff).sum(axis=1, dtype=xp.float64)
    dprediction = diff * prediction.dtype.type(2.0 / prediction.shape[0])
    return per_example, dprediction.astype(native(prediction.dtype), copy=False)  # float32 whatever x's dtype


def _broadcasts_to(shape, target) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` exactly (NumPy's rules, one way)."""
    if len(shape) > len(target):
        return False
    return all(size in (1, full) for size, full in zip(shape[::-1], target[::-1]))


def _sum_to_shape(g, shape):
    """Sum a broadcast gradient back down to the shape of the broadcast operand."""
    shape = tuple(shape)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g
