"""Bernoulli reconstruction loss (binary cross-entropy), two ways."""

from __future__ import annotations

from ..backend import array_module, kernels_for
from ..checks import check_number
from ._checks import bernoulli_targets, found_range, native, outside_unit_interval, rows, same_shape


def bernoulli_nll(logits, x, check_range: bool = True, kernels=None):
    """−log p(x | logits) for Bernoulli pixels, from logits; numerically stable.

    Per example:   Σ_d [softplus(l_d) − x_d·l_d],   softplus(l) = max(l, 0) + log1p(e^{−|l|})
    Gradient:      d/dl = (σ(l) − x) / batch

    Finite for any finite logit (±1e4 included), with no log of a rounded sigmoid: the loss
    is accurate to about a unit in the last place of max(|l|, 1). The gradient is σ(l) − x as rounded,
    so in float32 it is 0 for x = 1 and l ≳ 17, where the true value is below 6e-8 per pixel.
    ``x`` must lie in [0, 1]: a ValueError names the values found. That check is one pass over
    x; a model, which checks its data once per ``fit``, leaves it out (``check_range=False``).
    Returns ``(per_example, dlogits)``. Runs the fused kernel of ``kernels`` (a model passes
    its ``backend.kernels``); by default the one for the logits' device: Numba on CPU, CuPy on
    GPU, or the NumPy twin under ``$MICROVAE_KERNELS=reference``.
    """
    same_shape("bernoulli_nll", logits, x, ("logits", "x"))
    if check_range:
        bernoulli_targets("bernoulli_nll", x)
    xp = array_module(logits)
    batch = logits.shape[0]
    dtype = native(logits.dtype)
    logits2, x2 = rows(xp.ascontiguousarray(logits, dtype=dtype)), rows(xp.ascontiguousarray(x, dtype=dtype))
    dlogits = xp.empty_like(logits2)
    per_example = xp.empty(batch, dtype=xp.float64)
    (kernels or kernels_for(logits)).bernoulli_nll_logits(logits2, x2, 1.0 / batch, dlogits, per_example)
    return per_example, dlogits.reshape(logits.shape)


def bce_probabilities(p, x, eps: float = 1e-7):
    """Textbook binary cross-entropy on probabilities, with clipping (for comparison).

    Per example:   −Σ_d [x·log p̃ + (1 − x)·log(1 − p̃)],   p̃ = clip(p, eps, 1 − eps)
    Gradient:      d/dp = (p̃ − x) / (p̃(1 − p̃)) / batch  where p is inside the clip, else 0

    Clipping is what keeps it finite, and also what makes it wrong (and its gradient
    vanish) for confident predictions; prefer ``bernoulli_nll`` on logits.
    ``x`` must lie in [0, 1], as for ``bernoulli_nll``, and so must ``p``: a ValueError names
    the values found (logits passed for p were clipped without a word, to a wrong loss).
    Returns ``(per_example, dp)``.
    """
    eps = check_number("eps", eps, "a clip margin in (0, 0.5), such as 1e-7")
    if not 0 < eps < 0.5:  # eps=0.7 clipped every p to one value, with a zero gradient; NaN made the loss NaN
        raise ValueError(f"eps must be a clip margin in (0, 0.5), such as 1e-7, got {eps!r}")
    same_shape("bce_probabilities", p, x, ("p", "x"))
    bernoulli_targets("bce_probabilities", x)
    found = outside_unit_interval(p)
    if found is not None:
        raise ValueError(f"bce_probabilities: p must hold probabilities in [0, 1] ({found_range(*found)}); "
                         "for logits use bernoulli_nll")
    xp = array_module(p)
    batch = p.shape[0]
    # in float64: in float32, 1 − 1e-7 rounds to 1 − 1.19e-7, a saturated pixel's cost 1 % off
    p64, x64 = p.astype(xp.float64, copy=False), x.astype(xp.float64, copy=False)
    clipped = xp.clip(p64, eps, 1 - eps)
    # 0 − Σ, not −Σ: an example with no pixels costs +0.0, as in bernoulli_nll, not −0.0
    per_example = 0.0 - rows(x64 * xp.log(clipped) + (1 - x64) * xp.log1p(-clipped)).sum(axis=1)
    inside = (p64 >= eps) & (p64 <= 1 - eps)
    dp = xp.where(inside, (clipped - x64) / (clipped * (1 - clipped)), 0) / batch
    return per_example, dp.astype(native(p.dtype), copy=False)
