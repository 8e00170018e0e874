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
        """Return z. Pass ``eps`` (same shape as mu) to fix the noise; otherwise it is drawn
        from the backend's seeded generator."""
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
