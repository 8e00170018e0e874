"""GAN losses on discriminator logits (as used by the adversarial autoencoder).

A discriminator D outputs a logit ℓ per example; D's probability that the example is real
is σ(ℓ). Both losses are binary cross-entropies written with softplus, which is exact and
finite for any finite logit:

    −log σ(ℓ)     = softplus(−ℓ)          −log(1 − σ(ℓ)) = softplus(ℓ)
    softplus(ℓ)   = max(ℓ, 0) + log1p(e^{−|ℓ|}),          d softplus(ℓ)/dℓ = σ(ℓ)

The gradients use σ(ℓ) − 1 = −σ(−ℓ): written as a difference it cancels catastrophically
for large ℓ (σ(30) − 1 keeps only three significant digits in float64).

Logits may be (batch,) or (batch, 1) (any trailing shape: summed per example, as everywhere
in ``microvae.losses``). Gradients are of the batch mean, so they carry the 1/batch factor.
"""

from __future__ import annotations

from ..backend import array_module
from ._checks import array_of, native, rows

__all__ = ["discriminator_loss", "generator_loss", "softplus"]


def softplus(v):
    """log(1 + e^v), stable for any finite v."""
    xp = array_module(v)
    return xp.maximum(v, 0) + xp.log1p(xp.exp(-xp.abs(v)))


def _sigmoid(v):
    xp = array_module(v)
    e = xp.exp(-xp.abs(v))
    return xp.where(v >= 0, 1 / (1 + e), e / (1 + e))


def _check(what, logits):
    array_of(what, "logits", logits)
    if logits.ndim < 1 or logits.shape[0] < 1:
        raise ValueError(f"{what}: expected a non-empty batch of logits (batch,) or (batch, 1), got shape {tuple(logits.shape)}")


def discriminator_loss(real_logits, fake_logits):
    """The discriminator's cross-entropy: real examples labelled 1, fake ones 0.

    Per example i (a real and a fake example paired by position; equal batch sizes):

        L_i = −log σ(r_i) − log(1 − σ(f_i)) = softplus(−r_i) + softplus(f_i)

    Gradients of the batch mean:   d/dr = (σ(r) − 1) / batch = −σ(−r) / batch,    d/df = σ(f) / batch

    Returns ``(per_example, d_real, d_fake)``.
    """
    _check("discriminator_loss", real_logits)
    _check("discriminator_loss", fake_logits)
    if real_logits.shape != fake_logits.shape:
        raise ValueError(f"discriminator_loss: real_logits and fake_logits must have the same shape, "
                         f"got {tuple(real_logits.shape)} and {tuple(fake_logits.shape)}")
    xp = array_module(real_logits)
    batch = real_logits.shape[0]
    per_example = (rows(softplus(-real_logits)).sum(axis=1, dtype=xp.float64)
                   + rows(softplus(fake_logits)).sum(axis=1, dtype=xp.float64))
    scale = real_logits.dtype.type(1.0 / batch)
    d_real = -_sigmoid(-real_logits) * scale  # σ(r) − 1 = −σ(−r), without cancellation for large r
    d_fake = _sigmoid(fake_logits) * scale
    return per_example, d_real.astype(native(real_logits.dtype), copy=False), d_fake.astype(native(fake_logits.dtype), copy=False)


def generator_loss(fake_logits):
    """The non-saturating generator loss (Goodfellow et al., 2014): fakes labelled 1.

    Per example:   L_i = −log σ(f_i) = softplus(−f_i)
    Gradient:      d/df = (σ(f) − 1) / batch = −σ(−f) / batch

    (Minimising −log σ(f) rather than log(1 − σ(f)) keeps the gradient large while the
    discriminator still rejects the fakes confidently.) Returns ``(per_example, d_fake)``.
    """
    _check("generator_loss", fake_logits)
    xp = array_module(fake_logits)
    batch = fake_logits.shape[0]
    per_example = rows(softplus(-fake_logits)).sum(axis=1, dtype=xp.float64)
    d_fake = -_sigmoid(-fake_logits) * fake_logits.dtype.type(1.0 / batch)  # = (σ(f) − 1)/batch, computed stably
    return per_example, d_fake.astype(native(fake_logits.dtype), copy=False)
