"""The reparameterization trick: sampling as a differentiable function of (μ, logvar)."""

from __future__ import annotations

from .checks import check_array_like, check_real_array


class Reparameterization:
    """z = μ + σ·ε,  σ = exp(½·logvar),  ε ~ N(0, I) held fixed during the backward pass.

    Backward:   dμ = dz,   dlogvar = dz · ε · σ / 2

    (σ is exp(½·logvar), the standard deviation; using exp(logvar) here is a classic bug
    that the whole-objective gradient checks in the tests are built to catch.)
    """

    def __init__(self, backend):
        from .backend import Backend

        if not isinstance(backend, Backend):  # "numpy" failed only in forward, on a missing .xp
            raise TypeError(f"Reparameterization takes a Backend (e.g. microvae.get_backend('numpy', dtype='float64')), "
                            f"got {backend!r}")
        self.backend = backend
        self._eps = self._std = None

    def forget(self):
        """Drop the ε and σ the last forward pass kept for backward (as ``Layer.forget``)."""
        self._eps = self._std = None

    def _real(self, array, name: str, method: str = "forward"):
        """``array`` in the backend's dtype (no copy when it already is); TypeError for complex
        or object arrays, which the cast would quietly make real (or NaN)."""
        check_real_array(array, "Reparameterization", method, name)
        return self.backend.xp.asarray(array, dtype=self.backend.dtype)

    def forward(self, mu, logvar, eps=None):
        """Return z, in the backend's dtype (as are μ, logvar and ε). Pass ``eps`` (same shape as
        mu) to fix the noise; otherwise it is drawn from the backend's seeded generator. A given
        ``eps`` is copied: backward uses the noise z was made with, whatever the caller's
        array holds by then."""
        mu, logvar = self._real(mu, "mu"), self._real(logvar, "logvar")
        if eps is not None:
            eps = self._real(eps, "eps").copy()
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
        """Return (dmu, dlogvar) for the last forward pass, in the backend's dtype. dz must have
        z's shape: one that merely broadcasts against ε would give gradients of another shape.

        dmu is dz itself when dz is already in the backend's dtype (dμ = dz needs no copy):
        copy one of them before changing either in place."""
        if self._eps is None:
            raise RuntimeError("Reparameterization.backward called before forward")
        check_array_like(dz, "Reparameterization.backward", "dz")
        if not hasattr(dz, "shape"):  # a nested list, as forward takes one
            dz = self.backend.xp.asarray(dz)
        if dz.shape != self._eps.shape:
            raise ValueError(f"Reparameterization.backward expects dz of shape {tuple(self._eps.shape)} (the shape of z "
                             f"from the last forward pass), got {tuple(dz.shape)}")
        dz = self._real(dz, "dz", "backward")
        return dz, dz * self._eps * self._std * 0.5
