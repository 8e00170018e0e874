"""Losses with analytic gradients, all in one convention.

**Convention: sum over pixels and latent dimensions, mean over the batch (nats per example).**

Every loss function returns ``(per_example, *grads)``: ``per_example`` has shape (batch,)
and holds each example's loss summed over its dimensions, in nats; each gradient is the
gradient of the *batch mean* ``per_example.mean()`` (so it carries the 1/batch factor).
"""

from .adversarial import discriminator_loss, generator_loss
from .bernoulli import bce_probabilities, bernoulli_nll
from .gaussian import gaussian_nll, mse
from .kl import kl_gaussians, kl_normal

__all__ = ["bernoulli_nll", "bce_probabilities", "gaussian_nll", "mse", "kl_normal", "kl_gaussians", "discriminator_loss", "generator_loss"]
