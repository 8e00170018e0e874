"""The self-check behind ``microvae gradcheck``: every layer, loss and model, in float64.

Each entry builds a small random instance and returns a GradcheckResult; ``run_checks``
runs them all. Parameters are moved to a random point first (zero biases would put ReLU
units exactly on their kink, where finite differences are meaningless). Everything runs on
the NumPy backend, whatever ``$MICROVAE_BACKEND`` says: the checks are float64 host arithmetic.

The "forward" group comes first. A finite difference tests a backward pass against its own
forward pass, so a forward pass that is wrong in a way its backward pass follows (sampling
with σ = exp(logvar), both ways; a KL missing its constant −1) passes every gradient check.
Those checks compare the values themselves with the textbook formulas, written out again
here in plain NumPy, and a whole VAE objective with a plain NumPy forward pass of its weights.
"""

from __future__ import annotations

import numpy as np

from . import losses
from .layers import Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Tanh
from .reparam import Reparameterization
from .verify import GradcheckResult, check_layer, check_loss, check_model, gradcheck, value_error

CHECKS: dict = {}


def register(group: str, name: str):
    """Add a check (a function of a numpy Generator returning a GradcheckResult)."""

    def decorate(fn):
        CHECKS[(group, name)] = fn
        return fn

    return decorate


def randomize(module, rng, scale=0.5):
    """Parameters drawn from N(0, scale²), off their initial values: a zero bias or an
    untouched weight would hide a gradient term handled wrongly."""
    module.flat.data[...] = rng.standard_normal(module.flat.size) * scale
    return module


def _layer(layer, x, rng):
    layer.build(backend="numpy", dtype="float64", seed=int(rng.integers(1 << 30)))
    if layer.flat.size:
        randomize(layer, rng)
    return check_layer(layer, x)


def _away_from_zero(rng, shape):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


def _softplus(v):
    return np.logaddexp(0.0, v)


@register("forward", "reparameterization: z = μ + exp(½·logvar)·ε")
def _reparam_value(rng):
    from .backend import get_backend

    mu, logvar, eps = (rng.standard_normal((4, 3)) * 2 for _ in range(3))
    z = Reparameterization(get_backend("numpy", dtype="float64")).forward(mu, logvar, eps)
    return GradcheckResult({"z": value_error(z, mu + np.exp(0.5 * logvar) * eps)}, "formula", "reparameterization")


@register("forward", "bernoulli_nll: Σ [softplus(l) − x·l]")
def _bernoulli_value(rng):
    logits, x = rng.standard_normal((4, 6)) * 3, rng.uniform(0, 1, (4, 6))
    per_example = losses.bernoulli_nll(logits, x)[0]
    return GradcheckResult({"loss": value_error(per_example, (_softplus(logits) - x * logits).sum(axis=1))}, "formula")


@register("forward", "bce_probabilities: −Σ [x·log p + (1 − x)·log(1 − p)]")
def _bce_value(rng):
    p, x = rng.uniform(0.05, 0.95, (4, 6)), rng.uniform(0, 1, (4, 6))
    formula = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1)
    return GradcheckResult({"loss": value_error(losses.bce_probabilities(p, x)[0], formula)}, "formula")


@register("forward", "gaussian_nll: ½·Σ [log 2π + logvar + (x − μ)²·e^−logvar]")
def _gaussian_value(rng):
    mean, x, logvar = (rng.standard_normal((4, 6)) for _ in range(3))
    formula = 0.5 * (np.log(2 * np.pi) + logvar + (x - mean) ** 2 * np.exp(-logvar)).sum(axis=1)
    fixed = 0.5 * (np.log(2 * np.pi) + 0.3 + (x - mean) ** 2 * np.exp(-0.3)).sum(axis=1)
    return GradcheckResult({"learned variance": value_error(losses.gaussian_nll(mean, x, logvar)[0], formula),
                            "fixed variance": value_error(losses.gaussian_nll(mean, x, 0.3)[0], fixed)}, "formula")


@register("forward", "mse: Σ (prediction − x)²")
def _mse_value(rng):
    prediction, x = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    return GradcheckResult({"loss": value_error(losses.mse(prediction, x)[0], ((prediction - x) ** 2).sum(axis=1))},
                           "formula")


@register("forward", "kl_normal: ½·Σ [μ² + e^logvar − 1 − logvar]")
def _kl_value(rng):
    mu, logvar = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    formula = 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(axis=1)
    return GradcheckResult({"kl": value_error(losses.kl_normal(mu, logvar)[0], formula)}, "formula")


@register("forward", "kl_gaussians: ½·Σ [lv_p − lv_q + (e^lv_q + Δμ²)·e^−lv_p − 1]")
def _kl2_value(rng):
    mu_q, lv_q, mu_p, lv_p = (rng.standard_normal((4, 3)) for _ in range(4))
    formula = 0.5 * (lv_p - lv_q + (np.exp(lv_q) + (mu_q - mu_p) ** 2) * np.exp(-lv_p) - 1).sum(axis=1)
    return GradcheckResult({"kl": value_error(losses.kl_gaussians(mu_q, lv_q, mu_p, lv_p)[0], formula)}, "formula")


@register("forward", "GAN losses: softplus(−r) + softplus(f); softplus(−f)")
def _gan_value(rng):
    real, fake = rng.standard_normal((5, 1)) * 2, rng.standard_normal((5, 1)) * 2
    disc = _softplus(-real[:, 0]) + _softplus(fake[:, 0])
    return GradcheckResult({"discriminator": value_error(losses.discriminator_loss(real, fake)[0], disc),
                            "generator": value_error(losses.generator_loss(fake)[0], _softplus(-fake[:, 0]))}, "formula")


@register("forward", "VAE objective (β=4) by a plain NumPy forward pass")
def _vae_value(rng):
    """x → relu(x·W + b) → … → [μ ‖ logvar] → z = μ + exp(½·logvar)·ε → … → logits, then
    mean over the batch of Σ [softplus(l) − x·l] + β·½·Σ (μ² + e^logvar − 1 − logvar): the
    model's loss, recon and KL must be these numbers."""
    from .models import VAE

    model = randomize(VAE(8, (6, 5), 2, beta=4.0, dtype="float64", seed=0), rng)
    x, eps = rng.uniform(0, 1, (4, 8)), rng.standard_normal((4, 2))

    def through(network, h):
        for layer in network.layers:
            h = h @ layer.params["W"] + layer.params["b"]
            if layer.activation == "relu":
                h = np.maximum(h, 0.0)
        return h

    out = through(model.encoder, x)
    mu, logvar = out[:, :2], out[:, 2:]  # a random point well inside the logvar clamp
    logits = through(model.decoder, mu + np.exp(0.5 * logvar) * eps)
    recon = (_softplus(logits) - x * logits).sum(axis=1).mean()
    kl = (0.5 * (mu**2 + np.exp(logvar) - 1 - logvar)).sum(axis=1).mean()
    terms = model.loss(x, eps=eps)
    return GradcheckResult({"loss": value_error(terms.loss, recon + 4.0 * kl), "recon": value_error(terms.recon, recon),
                            "kl": value_error(terms.kl, kl)}, "formula", "VAE objective")


@register("layer", "Dense")
def _dense(rng):
    return _layer(Dense(5, 4), rng.standard_normal((3, 5)), rng)


@register("layer", "Dense(relu)")
def _dense_relu(rng):
    """Redrawn until some units are on and some off, none near the kink: with every unit off
    (seed 5 drew that) both gradients are zero, and any backward pass would agree with them."""
    while True:
        layer = Dense(5, 4, activation="relu").build(backend="numpy", dtype="float64", seed=int(rng.integers(1 << 30)))
        randomize(layer, rng)
        x = rng.standard_normal((3, 5))
        pre = x @ layer.params["W"] + layer.params["b"]
        if (pre > 0).any() and (pre < 0).any() and np.abs(pre).min() > 0.05:
            return check_layer(layer, x)


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

    sampler = Reparameterization(get_backend("numpy", dtype="float64"))
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


@register("model", "β-VAE warming up, KL below capacity, logvar clamped low")
def _warming_vae(rng):
    # The branches the check above does not reach: β and C part-way up their warm-ups, the
    # capacity slope's negative side (KL < C), and the zero gradient of a clamped logvar. Only
    # the low side is pushed: a logvar clamped high puts e^20 into the loss, too large a loss
    # to difference the O(1) terms above it against.
    from .likelihoods import LOGVAR_RANGE
    from .models import VAE

    model = randomize(VAE(8, (6,), 3, beta=4.0, beta_warmup=10, capacity=100.0, capacity_warmup=10, dtype="float64",
                          seed=0), rng)
    model.step = 5  # β = 2, C = 50 nats, above the KL (below 20 here)
    model.encoder.layers[-1].params["b"][model.latent_dim] = LOGVAR_RANGE[0] - 5.0
    x = rng.uniform(0, 1, (4, 8))
    eps = model.fixed_noise(x, seed=0)
    eps[:, 0] *= np.exp(-0.5 * LOGVAR_RANGE[0])  # σ·ε of order 1 there: a leaked dlogvar would be too
    return check_model(model, x, eps_noise=eps)


@register("model", "VAE with a logvar clamped high")
def _clamped_high_vae(rng):
    # The clamp's other side, alone: its e^20 in the loss raises check_model's floor to
    # ~1e-3·|L|, which a leak through the high mask (~½·e^20/B) still clears by far.
    from .likelihoods import LOGVAR_RANGE
    from .models import VAE

    model = randomize(VAE(8, (6,), 3, dtype="float64", seed=0), rng)
    model.encoder.layers[-1].params["b"][model.latent_dim] = LOGVAR_RANGE[1] + 5.0
    x = rng.uniform(0, 1, (4, 8))
    eps = model.fixed_noise(x, seed=0)
    eps[:, 0] *= np.exp(-0.5 * LOGVAR_RANGE[1])  # σ·ε of order 1 there
    return check_model(model, x, eps_noise=eps)


# The CPU computes a convolution by one of three routes, each checked: the general im2col
# loops (odd sizes with stride 2), the stride-2 fast path (even widths) and the direct 3×3.
# (title, layer class, its arguments after (in, out, kernel 3), input shape)
_CONVOLUTIONS = [
    ("Conv2D (stride 2, same, odd size: general im2col)", "Conv2D", dict(stride=2), (2, 2, 5, 5)),
    ("Conv2D (stride 2, same, even size: fast im2col)", "Conv2D", dict(stride=2), (2, 2, 6, 6)),
    ("Conv2D (3×3, stride 1, same: direct on the CPU)", "Conv2D", dict(stride=1), (2, 2, 5, 4)),
    ("Conv2DTranspose (stride 2, same, odd output)", "Conv2DTranspose", dict(stride=2, output_padding=0), (2, 2, 3, 3)),
    ("Conv2DTranspose (stride 2, same, even output)", "Conv2DTranspose", dict(stride=2), (2, 2, 3, 3)),
    ("Conv2DTranspose (3×3, stride 1, same: direct on the CPU)", "Conv2DTranspose", dict(stride=1), (2, 2, 4, 5)),
]


def _convolution_check(class_name, options, shape):
    def check(rng):
        from . import layers

        layer = getattr(layers, class_name)(2, 3, 3, padding="same", **options)
        return _layer(layer, rng.standard_normal(shape), rng)
    return check


for _title, _class_name, _options, _shape in _CONVOLUTIONS:
    register("layer", _title)(_convolution_check(_class_name, _options, _shape))


@register("layer", "MaxPool2D")
def _pool(rng):
    from .layers import MaxPool2D

    return _layer(MaxPool2D(2), rng.standard_normal((2, 2, 4, 4)), rng)  # continuous values: no ties


@register("layer", "RNN (tanh), with a ragged mask")
def _rnn(rng):
    return _recurrent("RNN", rng)


@register("layer", "GRU, with a ragged mask")
def _gru(rng):
    return _recurrent("GRU", rng)


def _recurrent(kind, rng):
    from . import layers

    layer = getattr(layers, kind)(3, 4)
    layer.build(backend="numpy", dtype="float64", seed=0)
    randomize(layer, rng)
    x, h0 = rng.standard_normal((3, 5, 3)), rng.standard_normal((3, 4))
    mask = np.ones((3, 5))
    mask[1, 3:] = 0
    mask[2, 1:] = 0
    up = rng.standard_normal((3, 5, 4))
    layer.forward(x, h0=h0, mask=mask)
    dx = layer.backward(up)
    wrt = {"x": x, "h0": h0}
    analytic = {"x": dx.copy(), "h0": layer.dh0.copy()}
    for name, value in layer.params.items():
        wrt[name], analytic[name] = value, layer.grads[name].copy()
    return gradcheck(lambda: float((layer.forward(x, h0=h0, mask=mask) * up).sum()), wrt, analytic, title=kind)


@register("loss", "discriminator_loss (from logits)")
def _disc(rng):
    return check_loss(losses.discriminator_loss, {"real_logits": rng.standard_normal((5, 1)) * 2,
                                                  "fake_logits": rng.standard_normal((5, 1)) * 2})


@register("loss", "generator_loss (non-saturating)")
def _gen(rng):
    return check_loss(losses.generator_loss, {"fake_logits": rng.standard_normal((5, 1)) * 2})


@register("model", "CVAE (label at the hidden layer, learned prior p(z|y))")
def _cvae(rng):
    from .models import CVAE

    model = randomize(CVAE(6, 3, (5, 4), 2, condition_at="hidden", learned_prior=True, prior_hidden=4, dtype="float64"), rng)
    x, y = rng.uniform(0, 1, (4, 6)), np.array([0, 2, 1, 2])
    return check_model(model, x, y, eps_noise=rng.standard_normal((4, 2)))


@register("model", "ConvVAE (pooling, 8×8 input; directional and sampled)")
def _conv_vae(rng):
    from .models import ConvVAE

    # (scale 0.25: every ReLU input stays 2.7e-4 from its kink, and with σ = exp(logvar), the bug
    # the forward checks catch, z stays small enough that a step of one weight does not cross one)
    model = randomize(ConvVAE(input_shape=(1, 8, 8), latent_dim=2, dtype="float64"), rng, scale=0.25)
    x, eps = rng.uniform(0, 1, (2, 1, 8, 8)), rng.standard_normal((2, 2))
    # too large to perturb element by element: random directions see an error in a few
    # elements, the sampled elements (the largest gradients) one spread over a whole tensor
    errors = {}
    for mode in ("directional", "sampled"):
        result = check_model(model, x, eps_noise=eps, mode=mode, directions=4, samples=6)
        errors.update({f"{name} ({mode})": err for name, err in result.errors.items()})
    return GradcheckResult(errors, "directional+sampled", "ConvVAE")


@register("model", "AAE (Gaussian encoder, mixture prior): all three phases")
def _aae(rng):
    from .models import AAE

    model = randomize(AAE(6, (5,), 2, encoder_type="gaussian", prior="mixture", num_classes=3, disc_hidden=(4,),
                          dtype="float64"), rng)
    x, y = rng.uniform(0, 1, (4, 6)), np.array([0, 2, -1, 1])
    eps, real = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    errors = {}
    for phase, group in (("recon", "autoencoder"), ("disc", "discriminator"), ("gen", "generator")):
        model.flat.grad.fill(0)
        model.parameter_groups()[group].grad[...] = np.nan  # each phase must write its gradients, not add to them
        model.phase_loss(phase, x, y, eps=eps, prior_samples=real)
        named = list(model.parameter_groups()[group].named())
        result = gradcheck(lambda: model.phase_loss(phase, x, y, eps=eps, prior_samples=real, compute_grads=False),
                           {n: v for n, v, _ in named}, {n: g.copy() for n, _, g in named})
        errors.update({f"{phase}: {name}": err for name, err in result.errors.items()})
    return GradcheckResult(errors, "full", "AAE")


@register("model", "VRAE (GRU, masked)")
def _vrae(rng):
    from .models import VRAE

    model = randomize(VRAE(2, hidden_size=3, latent_dim=2, dtype="float64"), rng)
    x, mask = rng.uniform(0, 1, (2, 4, 2)), np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=float)
    return check_model(model, x, mask, eps_noise=rng.standard_normal((2, 2)))


@register("model", "HierarchicalVRAE (RNN cells, 2 segments)")
def _hvrae(rng):
    from .models import HierarchicalVRAE

    model = randomize(HierarchicalVRAE(2, segment_length=2, hidden_size=3, conductor_size=3, latent_dim=2, cell="rnn",
                                       dtype="float64"), rng)
    return check_model(model, rng.uniform(0, 1, (2, 4, 2)), eps_noise=rng.standard_normal((2, 2)))


def run_checks(seed: int = 0, groups=None):
    """Run every registered check: the forward formulas first, then the gradients of layers,
    losses, sampling and models; yields (group, name, GradcheckResult)."""
    order = {"forward": 0, "layer": 1, "loss": 2, "sampling": 3, "model": 4}
    if groups is not None:
        groups = [groups] if isinstance(groups, str) else list(groups)  # "layers" would match as a substring
        known = sorted({group for group, _ in CHECKS})
        unknown = [g for g in groups if g not in known]
        if unknown:  # else nothing runs and a caller reports that every check agreed
            raise ValueError(f"unknown check group(s) {unknown}; the groups are {known}")
    for (group, name), fn in sorted(CHECKS.items(), key=lambda item: order.get(item[0][0], 9)):
        if groups is None or group in groups:
            yield group, name, fn(np.random.default_rng(seed))
