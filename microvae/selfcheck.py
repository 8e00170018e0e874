"""The gradient self-check behind ``microvae gradcheck``: every layer, loss and model, in float64.

Each entry builds a small random instance and returns a GradcheckResult; ``run_checks``
runs them all. Parameters are moved to a random point first (zero biases would put ReLU
units exactly on their kink, where finite differences are meaningless).
"""

from __future__ import annotations

import numpy as np

from . import losses
from .layers import Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Tanh
from .reparam import Reparameterization
from .verify import check_layer, check_loss, check_model, gradcheck

CHECKS: dict = {}


def register(group: str, name: str):
    """Add a check (a function of a numpy Generator returning a GradcheckResult)."""

    def decorate(fn):
        CHECKS[(group, name)] = fn
        return fn

    return decorate


def randomize(module, rng, scale=0.5):
    module.flat.data[...] = rng.standard_normal(module.flat.size) * scale
    return module


def _layer(layer, x, rng):
    layer.build(dtype="float64", seed=int(rng.integers(1 << 30)))
    if layer.flat.size:
        randomize(layer, rng)
    return check_layer(layer, x)


def _away_from_zero(rng, shape):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


@register("layer", "Dense")
def _dense(rng):
    return _layer(Dense(5, 4), rng.standard_normal((3, 5)), rng)


for _name, _make in [("ReLU", ReLU), ("LeakyReLU", lambda: LeakyReLU(0.1)), ("Sigmoid", Sigmoid), ("Tanh", Tanh)]:
    register("layer", _name)(lambda rng, make=_make: _layer(make(), _away_from_zero(rng, (3, 6)), rng))


@register("layer", "Sequential")
def _sequential(rng):
    return _layer(Sequential(Dense(5, 7), ReLU(), Dense(7, 3), Tanh()), rng.standard_normal((4, 5)), rng)


@register("loss", "bernoulli_nll")
def _bernoulli(rng):
    x = rng.uniform(0, 1, (4, 6))
    return check_loss(lambda logits: losses.bernoulli_nll(logits, x), {"logits": rng.standard_normal((4, 6)) * 3})


@register("loss", "bce_probabilities")
def _bce(rng):
    x = rng.uniform(0, 1, (4, 6))
    return check_loss(lambda p: losses.bce_probabilities(p, x), {"p": rng.uniform(0.05, 0.95, (4, 6))})


@register("loss", "gaussian_nll (learned variance)")
def _gauss(rng):
    return check_loss(losses.gaussian_nll, {"mean": rng.standard_normal((4, 6)), "x": rng.standard_normal((4, 6)),
                                            "logvar": rng.standard_normal((4, 6))}, grad_names=["mean", "logvar"])


@register("loss", "mse")
def _mse(rng):
    x = rng.standard_normal((4, 6))
    return check_loss(lambda prediction: losses.mse(prediction, x), {"prediction": rng.standard_normal((4, 6))})


@register("loss", "kl_normal")
def _kl(rng):
    return check_loss(losses.kl_normal, {"mu": rng.standard_normal((4, 3)), "logvar": rng.standard_normal((4, 3))})


@register("loss", "kl_gaussians")
def _kl2(rng):
    return check_loss(losses.kl_gaussians, {k: rng.standard_normal((4, 3)) for k in ("mu_q", "logvar_q", "mu_p", "logvar_p")})


@register("sampling", "reparameterization")
def _reparam(rng):
    from .backend import get_backend

    sampler = Reparameterization(get_backend(dtype="float64"))
    mu, logvar, eps, up = (rng.standard_normal((4, 3)) for _ in range(4))
    sampler.forward(mu, logvar, eps)
    dmu, dlogvar = sampler.backward(up)
    return gradcheck(lambda: float((sampler.forward(mu, logvar, eps) * up).sum()), {"mu": mu, "logvar": logvar},
                     {"mu": dmu.copy(), "logvar": dlogvar.copy()}, title="reparameterization")


@register("model", "VAE (Bernoulli, β=1)")
def _vae(rng):
    from .models import VAE

    model = randomize(VAE(8, (6, 5), 2, dtype="float64", seed=0), rng)
    return check_model(model, rng.uniform(0, 1, (4, 8)))


@register("model", "β-VAE (Gaussian, learned variance, β=4, capacity 2)")
def _beta_vae(rng):
    from .models import VAE

    model = randomize(VAE(8, (6,), 3, beta=4.0, capacity=2.0, likelihood="gaussian-learned", dtype="float64", seed=0), rng)
    return check_model(model, rng.standard_normal((4, 8)))


def run_checks(seed: int = 0, groups=None):
    """Run every registered check; yields (group, name, GradcheckResult)."""
    for (group, name), fn in CHECKS.items():
        if groups is None or group in groups:
            yield group, name, fn(np.random.default_rng(seed))
