"""What every microvae model shares: backend, flat parameters, input checks, a train step."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_backend
from ..layers.base import Module
from ..params import FlatParameters


class LossTerms(NamedTuple):
    """Batch-mean loss and its parts, in nats per example (Python floats)."""

    loss: float
    recon: float
    kl: float


class Model(Module):
    """Base class of the models. Subclasses set their parts, then call ``_setup``."""

    def _setup(self, backend, dtype, seed, config: dict):
        self.backend = get_backend(backend, dtype=dtype, seed=seed)
        self.flat = FlatParameters(self, self.backend)
        self.step = 0  # optimizer steps taken; drives warm-up schedules
        self.config = config  # JSON-friendly constructor arguments, for checkpoints

    @property
    def num_parameters(self) -> int:
        return self.flat.size

    # inputs -------------------------------------------------------------------
    def _as_batch(self, x, what="x", feature_shape=None):
        """Check a batch (finite, right trailing shape) and move it to the backend's device and dtype."""
        xp = self.backend.xp
        if not hasattr(x, "shape"):
            x = np.asarray(x)
        expected = tuple(feature_shape if feature_shape is not None else self.input_shape)
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"{what} must be a non-empty batch of shape (batch, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        if tuple(x.shape[1:]) != expected:
            if int(np.prod(x.shape[1:])) == int(np.prod(expected)):
                x = x.reshape((x.shape[0],) + expected)
            else:
                raise ValueError(f"{what} must have shape (batch, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        x = self.backend.asarray(x)
        if not bool(xp.isfinite(x).all()):
            raise ValueError(f"{what} contains NaN or Inf")
        return x

    def fixed_noise(self, x, *rest, seed: int = 0):
        """A reproducible draw of the reparameterization noise ε for this batch (NumPy, float64)."""
        return np.random.default_rng(seed).standard_normal((len(x), self.latent_dim))

    # training -------------------------------------------------------------------
    def train_step(self, optimizer, *batch) -> LossTerms:
        """One optimizer step on one batch; returns the batch's LossTerms (before the step)."""
        terms = self._objective(*batch, eps=None, compute_grads=True)
        optimizer.step()
        self.step += 1
        return terms
