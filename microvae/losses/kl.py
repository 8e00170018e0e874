"""Kullback–Leibler divergences between diagonal Gaussians."""

from __future__ import annotations

from ..backend import array_module
from ._checks import rows, same_shape


def _in_dtype_of(grad, x):
    """``grad`` in ``x``'s dtype, native byte order (mixed inputs promote to the wider one)."""
    return grad.astype(x.dtype.newbyteorder("="), copy=False)


def kl_normal(mu, logvar):
    """KL(N(μ, e^{logvar}) ‖ N(0, I)), summed over latent dimensions.

    Per example:   ½ Σ_j [μ² + e^{logvar} − 1 − logvar]
    Gradients:     d/dμ = μ / batch,    d/dlogvar = ½(e^{logvar} − 1) / batch  (each in its input's dtype)
    e^{logvar} − 1 is computed as expm1(logvar): near logvar = 0, where a collapsed latent
    dimension sits, exp(logvar) − 1 cancels to rounding noise (in float32, per-example KLs of
    a few −1e-7 nats), while expm1 is accurate relative to its value, so the gradient keeps
    its digits and the KL's rounding error scales with |logvar| + μ² (and it stays ≥ 0).
    Returns ``(per_example, dmu, dlogvar)``.
    """
    same_shape("kl_normal", mu, logvar, ("mu", "logvar"), b_is_data=False)
    xp = array_module(mu)
    batch = mu.shape[0]
    var_minus_1 = xp.expm1(logvar)
    per_example = 0.5 * rows(mu * mu + (var_minus_1 - logvar)).sum(axis=1, dtype=xp.float64)
    inv_batch = mu.dtype.type(1.0 / batch)
    return per_example, _in_dtype_of(mu * inv_batch, mu), _in_dtype_of(var_minus_1 * (inv_batch / 2), logvar)


def kl_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(q ‖ p) for diagonal Gaussians q = N(μ_q, e^{lv_q}), p = N(μ_p, e^{lv_p}).

    Per example:   ½ Σ_j [lv_p − lv_q + (e^{lv_q} + (μ_q − μ_p)²)·e^{−lv_p} − 1]
    Gradients (each / batch):
        d/dμ_q  = (μ_q − μ_p)·e^{−lv_p}          d/dμ_p  = −d/dμ_q
        d/dlv_q = ½(e^{lv_q − lv_p} − 1)          d/dlv_p = ½(1 − (e^{lv_q} + (μ_q − μ_p)²)·e^{−lv_p})
    Both sides get gradients, so a learned prior p(z|y) can be trained through it.
    e^{lv_q − lv_p} − 1 is expm1(lv_q − lv_p), accurate where q's variance nears p's (no cancellation).
    (μ_q − μ_p)²·e^{−lv_p} is formed as the square of (μ_q − μ_p)·e^{−lv_p/2}: e^{−lv_p} overflows
    float32 below lv_p ≈ −88, and 0·Inf made q = p's KL (0) NaN; its square root lasts to −177.
    Each gradient comes in its own input's dtype.
    Returns ``(per_example, dmu_q, dlogvar_q, dmu_p, dlogvar_p)``.
    """
    same_shape("kl_gaussians", mu_q, logvar_q, ("mu_q", "logvar_q"), b_is_data=False)
    same_shape("kl_gaussians", mu_p, logvar_p, ("mu_p", "logvar_p"), b_is_data=False)
    same_shape("kl_gaussians", mu_q, mu_p, ("mu_q", "mu_p"), b_is_data=False)
    xp = array_module(mu_q)
    batch = mu_q.shape[0]
    diff = mu_q - mu_p
    inv_std_p = xp.exp(-0.5 * logvar_p)
    scaled = diff * inv_std_p
    log_ratio = logvar_q - logvar_p
    ratio_minus_1 = xp.expm1(log_ratio)
    mahalanobis = scaled * scaled
    per_example = 0.5 * rows((ratio_minus_1 - log_ratio) + mahalanobis).sum(axis=1, dtype=xp.float64)
    inv_batch = mu_q.dtype.type(1.0 / batch)
    dmu_q = scaled * inv_std_p * inv_batch
    dlogvar_q = ratio_minus_1 * (inv_batch / 2)
    dlogvar_p = -(ratio_minus_1 + mahalanobis) * (inv_batch / 2)
    return (per_example, _in_dtype_of(dmu_q, mu_q), _in_dtype_of(dlogvar_q, logvar_q), _in_dtype_of(-dmu_q, mu_p),
            _in_dtype_of(dlogvar_p, logvar_p))
