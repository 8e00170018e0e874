"""Kullback–Leibler divergences between diagonal Gaussians."""

from __future__ import annotations

from ..backend import array_module
from ._checks import rows, same_shape


def kl_normal(mu, logvar):
    """KL(N(μ, e^{logvar}) ‖ N(0, I)), summed over latent dimensions.

    Per example:   ½ Σ_j [μ² + e^{logvar} − 1 − logvar]
    Gradients:     d/dμ = μ / batch,    d/dlogvar = ½(e^{logvar} − 1) / batch
    Returns ``(per_example, dmu, dlogvar)``.
    """
    same_shape("kl_normal", mu, logvar, ("mu", "logvar"), b_is_data=False)
    xp = array_module(mu)
    batch = mu.shape[0]
    var = xp.exp(logvar)
    per_example = 0.5 * rows(mu * mu + var - 1 - logvar).sum(axis=1, dtype=xp.float64)
    inv_batch = mu.dtype.type(1.0 / batch)
    return per_example, mu * inv_batch, (var - 1) * (inv_batch / 2)


def kl_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(q ‖ p) for diagonal Gaussians q = N(μ_q, e^{lv_q}), p = N(μ_p, e^{lv_p}).

    Per example:   ½ Σ_j [lv_p − lv_q + (e^{lv_q} + (μ_q − μ_p)²)·e^{−lv_p} − 1]
    Gradients (each / batch):
        d/dμ_q  = (μ_q − μ_p)·e^{−lv_p}          d/dμ_p  = −d/dμ_q
        d/dlv_q = ½(e^{lv_q − lv_p} − 1)          d/dlv_p = ½(1 − (e^{lv_q} + (μ_q − μ_p)²)·e^{−lv_p})
    Both sides get gradients, so a learned prior p(z|y) can be trained through it.
    Returns ``(per_example, dmu_q, dlogvar_q, dmu_p, dlogvar_p)``.
    """
    same_shape("kl_gaussians", mu_q, logvar_q, ("mu_q", "logvar_q"), b_is_data=False)
    same_shape("kl_gaussians", mu_p, logvar_p, ("mu_p", "logvar_p"), b_is_data=False)
    same_shape("kl_gaussians", mu_q, mu_p, ("mu_q", "mu_p"), b_is_data=False)
    xp = array_module(mu_q)
    batch = mu_q.shape[0]
    diff = mu_q - mu_p
    inv_var_p = xp.exp(-logvar_p)
    ratio = xp.exp(logvar_q - logvar_p)
    per_example = 0.5 * rows(logvar_p - logvar_q + ratio + diff * diff * inv_var_p - 1).sum(axis=1, dtype=xp.float64)
    inv_batch = mu_q.dtype.type(1.0 / batch)
    dmu_q = diff * inv_var_p * inv_batch
    dlogvar_q = (ratio - 1) * (inv_batch / 2)
    dlogvar_p = (1 - ratio - diff * diff * inv_var_p) * (inv_batch / 2)
    return per_example, dmu_q, dlogvar_q, -dmu_q, dlogvar_p
