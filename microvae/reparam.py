"""The reparameterization trick: sampling as a differentiable function of (μ, logvar)."""

from __future__ import annotations


class Reparameterization:
    """z = μ + σ·ε,  σ = exp(½·logvar),  ε ~ N(0, I) held fixed during the backward pass.

    Backward:   dμ = dz,   dlogvar = dz · ε · σ / 2

    (σ is exp(½·logvar), the standard deviation; using exp(logvar) here is a classic bug
    that the whole-objective gradient checks in the tests are built to catch.)
    """

    def __init__(self, backend):
        self.backend = backend

    def forward(self, mu, logvar, eps=None):
        """Return z, in the backend's dtype (as are μ, logvar and ε). Pass ``eps`` (same shape as
        mu) to fix the noise; otherwise it is drawn from the backend's seeded generator."""
        xp, dtype = self.backend.xp, self.backend.dtype
        mu, logvar = xp.asarray(mu, dtype=dtype), xp.asarray(logvar, dtype=dtype)  # no copy when they already are
        if eps is not None:
            eps = xp.asarray(eps, dtype=dtype)
        if mu.shape != logvar.shape:
            raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
        if eps is None:
            eps = self.backend.normal(mu.shape)
        elif eps.shape != mu.shape:
            raise ValueError(f"eps must have the shape of mu {tuple(mu.shape)}, got {tuple(eps.shape)}")
        self._eps = eps
        self._std = self.backend.xp.exp(0.5 * logvar)
        return mu + self._std * eps

    def backward(self, dz):
        """Return (dmu, dlogvar)."""
        return dz, dz * self._eps * self._std * 0.5
