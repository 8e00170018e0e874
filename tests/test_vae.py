"""The VAE: its whole objective against finite differences, its API, its input checks, and training."""

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import microvae as mv
from _kinks import kink_margins
from microvae import testing
from microvae.reparam import Reparameterization


def _data_for(likelihood, shape, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, shape) if likelihood == "bernoulli" else rng.standard_normal(shape)


def _randomize(model, seed):
    """Move off the initial point (zero biases) to a random, generic point of parameter space."""
    model.flat.data[...] = testing.normal_array(model.flat.size, seed, scale=0.5)


@settings(max_examples=30)
@given(config_and_batch=testing.vae_configs(), seed=testing.seeds(), step=st.integers(0, 25))
def test_whole_objective_gradient(config_and_batch, seed, step):
    """``step``: optimizer steps taken, so that a warm-up of β or C is checked part-way too."""
    config, batch = config_and_batch
    model = mv.VAE(**config)
    model.step = step
    _check_whole_objective(model, config, batch, seed)


def _check_whole_objective(model, config, batch, seed):
    """``model`` (of ``config``) from a random point, on a batch of ``batch``, against finite differences."""
    _randomize(model, seed % 1000)
    x = _data_for(config["likelihood"], (batch, config["input_dim"]), seed)
    eps = model.fixed_noise(x, seed=seed % 1000)
    with kink_margins() as margins:
        model.loss(x, eps=eps)
    # clear of every ReLU kink, and no ReLU layer off for the whole batch (zero against zero)
    assume(not margins or (min(margins) > 1e-4 and margins.dead == 0))
    result = mv.check_model(model, x, eps_noise=eps)
    assert result.passed(1e-6), f"{config} at step {model.step}\n{result}"


def _part_way_through_a_beta_warmup(config, warmup, fraction):
    """A VAE of ``config`` with no capacity target, β > 0 warming up over ``warmup`` steps, at a
    step strictly inside the ramp (0 < β(t) < β), where the KL's slope is β·step/warmup."""
    model = mv.VAE(**{**config, "beta": max(config["beta"], 0.25), "capacity": None, "capacity_warmup": 0,
                      "beta_warmup": warmup})
    model.step = min(warmup - 1, max(1, round(fraction * warmup)))
    assert 0 < model.current_beta() < model.beta
    return model


@settings(max_examples=10)
@given(config_and_batch=testing.vae_configs(), seed=testing.seeds(), warmup=st.integers(2, 20), fraction=st.floats(0.0, 1.0))
def test_whole_objective_gradient_part_way_through_a_beta_warmup_without_a_capacity(config_and_batch, seed, warmup, fraction):
    """The main check reaches this case only when its draws happen to: CI's fixed examples held
    none part-way through a β warm-up without a capacity target, and a KL slope of the full β
    there (the mutation the next test makes) passed every model's check."""
    config, batch = config_and_batch
    _check_whole_objective(_part_way_through_a_beta_warmup(config, warmup, fraction), config, batch, seed)


def test_the_warmup_check_catches_a_kl_slope_of_the_full_beta(monkeypatch):
    """The check above is no formality: with the loss's β·KL taken at β(t) but its slope at the
    full β, the encoder's gradients are off by (β − β(t))·dKL, and it fails."""
    config = dict(input_dim=6, hidden=(5,), latent_dim=2, beta=2.0, likelihood="bernoulli", capacity=None, beta_warmup=10,
                  capacity_warmup=0, fuse_relu=True, dtype="float64", seed=3)
    model = _part_way_through_a_beta_warmup(config, 10, 0.3)
    _randomize(model, 3)
    x = _data_for("bernoulli", (4, 6), 3)
    eps = model.fixed_noise(x, seed=3)
    assert mv.check_model(model, x, eps_noise=eps).passed(1e-6)
    monkeypatch.setattr(mv.VAE, "kl_weighting", lambda self, kl_mean: (self.current_beta() * kl_mean, self.beta))
    result = mv.check_model(model, x, eps_noise=eps)
    assert not result.passed(1e-3), f"the full-β slope went unnoticed:\n{result}"
    assert result.errors["encoder.0.W"] > 1e-3 and result.errors["decoder.1.W"] < 1e-6  # the KL reaches the encoder only


@pytest.mark.parametrize("clamped", testing.CLAMPED_SIDES, ids="+".join)
@settings(max_examples=5)
@given(config_and_batch=testing.vae_configs(), drawn=testing.logvar_side_lists(), seed=testing.seeds())
def test_whole_objective_gradient_with_logvar_outside_the_clamp(clamped, config_and_batch, drawn, seed):
    # The other checks draw logvar inside LOGVAR_RANGE, so none sees the mask that zeroes dlogvar
    # where _encode clamped it; here some columns are clamped, the others not.
    config, batch = config_and_batch
    assume(config["latent_dim"] >= len(clamped))
    sides = testing.logvar_sides(clamped, drawn[: config["latent_dim"]], np.random.default_rng(seed))
    model = mv.VAE(**config)
    _randomize(model, seed % 1000)
    # part-way through any warm-up, not at step 0, where β = 0 takes the KL's path through the clamp away
    model.step = max(1, config["beta_warmup"] // 2)
    head = model.encoder.layers[-1]
    x = _data_for(config["likelihood"], (batch, config["input_dim"]), seed)
    eps = testing.push_logvar_outside(head.params["b"][model.latent_dim :], sides, model.fixed_noise(x, seed=seed % 1000))
    model.loss(x, eps=eps)
    assume(testing.clear_of_the_clamp(head, model.latent_dim, sides))
    result = mv.check_model(model, x, eps_noise=eps)
    assert result.passed(1e-6), f"{config} {sides}\n{result}"


def test_whole_objective_gradient_directional_and_sampled_on_default_size():
    """The textbook size (1.07 million parameters) along random directions, and element by
    element at each tensor's 16 largest gradients and 16 random others."""
    model = mv.VAE(dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(0, 1, (4, 784))
    for mode in ("directional", "sampled"):
        result = mv.check_model(model, x, mode=mode)
        assert result.passed(1e-6), f"\n{result}"


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian-learned"])
def test_whole_objective_gradient_through_microvaes_own_compiled_products(likelihood, monkeypatch):
    """Every other model check runs batches under 16, where each product goes to numpy.matmul
    (the compiled kernels take m·k·n > 262144 with every side >= 16): here a batch of 32 sends
    them through kernels/matmul_cpu.py, counted, in float64; along random directions and at
    each tensor's largest and random elements. A weight-gradient product off by 1e-4 fails."""
    from microvae.kernels import cpu, matmul_cpu

    calls = []
    product = matmul_cpu._product
    monkeypatch.setattr(matmul_cpu, "_product", lambda *args: (calls.append(args[-3]), product(*args))[1])
    backend = mv.Backend("numpy", dtype="float64", kernels="compiled", seed=0)  # whatever $MICROVAE_KERNELS says
    model = mv.VAE(input_dim=160, hidden=(96,), latent_dim=3, likelihood=likelihood, backend=backend)
    model.flat.data[...] = testing.normal_array(model.flat.size, 1, scale=0.3)
    rng = np.random.default_rng(0)
    x = _data_for(likelihood, (32, 160), 0) if likelihood == "bernoulli" else rng.standard_normal((32, 160))
    eps = model.fixed_noise(x, seed=1)
    with kink_margins() as margins:
        model.loss(x, eps=eps)
    assert min(margins) > 1e-4 and margins.dead == 0
    for mode in ("directional", "sampled"):
        calls.clear()
        result = mv.check_model(model, x, eps_noise=eps, mode=mode)
        assert result.passed(1e-6), f"{mode}\n{result}"
        assert len(calls) > 100  # the forward products and the backward ones, each pass
    weight_gradient = cpu.matmul_tn

    def off_by_1e4(a, b, out):  # dW = Xᵀ·dY, written into out as the layers pass it
        weight_gradient(a, b, out)
        out *= 1 + 1e-4

    monkeypatch.setattr(cpu, "matmul_tn", off_by_1e4)
    assert not mv.check_model(model, x, eps_noise=eps, mode="directional").passed(1e-6)


class _StdIsExpLogvar(Reparameterization):
    """The classic bug: sampling with σ = exp(logvar) while backward assumes exp(½·logvar)."""

    def forward(self, mu, logvar, eps=None):
        self._eps = eps
        self._std = np.exp(0.5 * logvar)
        return mu + np.exp(logvar) * eps


def test_whole_objective_check_catches_the_exp_logvar_sampling_bug():
    model = mv.VAE(6, (5,), 3, dtype="float64", seed=1)
    _randomize(model, 1)
    x = np.random.default_rng(0).uniform(0, 1, (4, 6))
    assert mv.check_model(model, x).passed(1e-6)
    model.sampler = _StdIsExpLogvar(model.backend)
    result = mv.check_model(model, x)
    assert not result.passed(1e-3), f"the bug went unnoticed:\n{result}"
    assert result.errors["encoder.1.W"] > 1e-3  # the encoder's logvar head (after Dense+ReLU) is where it shows


def test_whole_objective_check_catches_a_wrong_kl_gradient(monkeypatch):
    import microvae.models.vae as vae_module

    def kl_without_half(mu, logvar):
        per_example, dmu, dlogvar = mv.losses.kl_normal(mu, logvar)
        return per_example, dmu, 2 * dlogvar

    model = mv.VAE(6, (5,), 2, dtype="float64", seed=2)
    _randomize(model, 2)
    monkeypatch.setattr(vae_module, "kl_normal", kl_without_half)
    x = np.random.default_rng(0).uniform(0, 1, (3, 6))
    assert not mv.check_model(model, x).passed(1e-3)


def test_loss_is_recon_plus_beta_kl():
    x = np.random.default_rng(0).uniform(0, 1, (5, 10))
    eps = np.random.default_rng(1).standard_normal((5, 2))
    plain = mv.VAE(10, (6,), 2, dtype="float64", seed=0).loss(x, eps)
    beta = mv.VAE(10, (6,), 2, beta=4.0, dtype="float64", seed=0).loss(x, eps)
    assert plain.loss == pytest.approx(plain.recon + plain.kl)
    assert beta.recon == pytest.approx(plain.recon) and beta.kl == pytest.approx(plain.kl)
    assert beta.loss == pytest.approx(beta.recon + 4.0 * beta.kl)


def test_beta_warmup_and_capacity_schedules():
    model = mv.VAE(10, (6,), 2, beta=4.0, beta_warmup=100, capacity=5.0, capacity_warmup=50, dtype="float64")
    assert model.current_beta() == 0.0 and model.current_capacity() == 0.0
    model.step = 25
    assert model.current_beta() == pytest.approx(1.0) and model.current_capacity() == pytest.approx(2.5)
    model.step = 1000
    assert model.current_beta() == 4.0 and model.current_capacity() == 5.0
    x = np.random.default_rng(0).uniform(0, 1, (5, 10))
    terms = model.loss(x, np.zeros((5, 2)))
    assert terms.loss == pytest.approx(terms.recon + 4.0 * abs(terms.kl - 5.0))


def test_the_loss_takes_beta_and_capacity_as_warmed_up_at_the_current_step():
    """Part-way through the warm-ups the loss is recon + β(t)·|KL − C(t)|, β(t) = β·min(1, t/T_β),
    C(t) = C·min(1, t/T_C) (recon + β(t)·KL without a target): the objective must read the
    schedules, not β and C. The schedule test checks the loss only once both are fully ramped, and
    the gradient checks cannot tell, as the forward and backward passes would read the same wrong β or C."""
    x = np.random.default_rng(0).uniform(0, 1, (5, 10))
    eps = np.random.default_rng(1).standard_normal((5, 2))
    both = mv.VAE(10, (6,), 2, beta=4.0, beta_warmup=100, capacity=5.0, capacity_warmup=40, dtype="float64")
    beta_only = mv.VAE(10, (6,), 2, beta=4.0, beta_warmup=100, dtype="float64")
    for step in (0, 10, 25, 60, 100, 1000):
        both.step = beta_only.step = step
        beta, capacity = 4.0 * min(1.0, step / 100), 5.0 * min(1.0, step / 40)
        terms = both.loss(x, eps)
        assert terms.loss == pytest.approx(terms.recon + beta * abs(terms.kl - capacity), rel=1e-12), step
        terms = beta_only.loss(x, eps)
        assert terms.loss == pytest.approx(terms.recon + beta * terms.kl, rel=1e-12), step


def test_loss_is_a_forward_pass_that_leaves_the_gradient_alone():
    """loss() computes no gradient: a batch scored between loss_and_grads and the optimizer's step
    (for a log, say) must not replace the gradient that step uses. The gradient checks copy the
    gradient before they call loss, so they cannot see this."""
    model = mv.VAE(8, (6,), 2, dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    model.loss_and_grads(rng.uniform(0, 1, (4, 8)), eps=rng.standard_normal((4, 2)))
    grad = model.flat.grad.copy()
    assert np.abs(grad).max() > 0
    model.loss(rng.uniform(0, 1, (3, 8)), eps=rng.standard_normal((3, 2)))
    np.testing.assert_array_equal(model.flat.grad, grad)


def test_the_default_decoder_mirrors_the_encoder():
    """Encoder input_dim → hidden… → 2·latent_dim; decoder latent_dim → reversed hidden… → the
    likelihood's outputs, as documented. Hidden sizes that differ show a decoder that is not
    mirrored (the gradient checks pass on any sizes)."""
    def shapes(net):
        return [layer.params["W"].shape for layer in net.layers if "W" in layer.params]

    for likelihood, outputs in (("bernoulli", 10), ("gaussian-learned", 20)):
        model = mv.VAE(10, (8, 5), 3, likelihood=likelihood)
        assert shapes(model.encoder) == [(10, 8), (8, 5), (5, 6)]
        assert shapes(model.decoder) == [(3, 5), (5, 8), (8, outputs)]


def _identity_decoder_vae(latent_dim=3):
    """A Gaussian VAE whose decoder mean is z itself, so that decode and sample show the codes they decode."""
    decoder = mv.Sequential(mv.Dense(latent_dim, latent_dim))
    model = mv.VAE(latent_dim, (), latent_dim, likelihood="gaussian", decoder=decoder, dtype="float64", seed=0)
    decoder.layers[0].params["W"][...] = np.eye(latent_dim)
    decoder.layers[0].params["b"][...] = 0.0
    return model


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_sample_decodes_standard_normal_codes(seed):
    """sample(n) decodes z ~ N(0, I), seeded or from the model's generator: through a decoder whose
    mean is z, 4000 samples have mean 0, standard deviation 1 and no correlation per dimension
    (within 7 standard errors). The other tests check only shapes and repeatability."""
    z = _identity_decoder_vae().sample(4000, seed=seed)
    assert z.shape == (4000, 3)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.11)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.08)
    np.testing.assert_allclose(np.corrcoef(z.T)[np.triu_indices(3, 1)], 0.0, atol=0.11)


def test_a_seeded_sample_leaves_the_models_generator_alone_even_for_seed_zero():
    """seed=0 is a seed like any other, not "no seed": the same draws on every call, and the model's
    own generator (which unseeded draws use) does not move."""
    model, twin = _identity_decoder_vae(), _identity_decoder_vae()
    for seed in (0, 3):
        np.testing.assert_array_equal(model.sample(5, seed=seed), model.sample(5, seed=seed))
    np.testing.assert_array_equal(model.backend.rng.random(4), twin.backend.rng.random(4))
    assert not np.array_equal(model.sample(5, seed=0), model.sample(5, seed=1))


@pytest.mark.parametrize("z, message", [
    (np.array([[0.0, np.nan]]), "z contains NaN or Inf"),
    (np.zeros((4, 3)), r"z must have shape \(batch, 2\), got \(4, 3\)"),
    (np.zeros(2), r"A single example needs a batch axis: z\[None\]"),
])
def test_decode_checks_the_codes_it_is_given(z, message):
    """decode takes finite codes of shape (n, latent_dim), checked like data: a NaN code would decode
    to NaN without a word, and a wrong shape is named as z's, not as a layer's inside the decoder."""
    with pytest.raises(ValueError, match=message):
        mv.VAE(6, (4,), 2).decode(z)


def test_api_shapes_and_ranges():
    model = mv.VAE(20, (8,), 3, seed=0)
    x = np.random.default_rng(0).uniform(0, 1, (7, 20)).astype(np.float32)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (7, 3) and isinstance(mu, np.ndarray)
    probs = model.decode(mu)
    assert probs.shape == (7, 20) and probs.min() >= 0 and probs.max() <= 1
    assert model.reconstruct(x).shape == (7, 20)
    np.testing.assert_array_equal(model.sample(4, seed=1), model.sample(4, seed=1))
    assert model.sample(4).shape == (4, 20)
    elbo = model.elbo(x, n_samples=3)
    assert elbo.shape == (7,) and np.all(np.isfinite(elbo)) and np.all(elbo <= 0)


def test_elbo_is_minus_the_beta_one_loss_with_the_same_noise():
    model = mv.VAE(10, (6,), 2, dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(0, 1, (5, 10))
    model.backend.seed(11)
    elbo = model.elbo(x)
    model.backend.seed(11)
    terms = model.loss(x)
    assert -elbo.mean() == pytest.approx(terms.loss)


def test_elbo_draws_the_noise_of_each_sample_for_all_rows_at_once():
    """elbo runs INFERENCE_BATCH rows at a time, but its k-th draw of ε is the generator's
    k-th (n, latent_dim) draw, as in one pass over all rows: for any block size and any
    n_samples the estimate is the one-pass estimate below."""
    model = mv.VAE(10, (6,), 2, dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(0, 1, (7, 10))
    mu, logvar = model.encode(x)
    kl = 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(axis=1)
    model.backend.seed(11)
    eps = [model.backend.normal((7, 2)) for _ in range(3)]
    recon = sum(model.likelihood.nll(model.decoder.forward(mu + np.exp(0.5 * logvar) * e), x)[0] for e in eps)
    expected = -recon / 3 - kl
    for batch in (256, 3, 1):
        model.INFERENCE_BATCH = batch
        model.backend.seed(11)
        np.testing.assert_allclose(model.elbo(x, n_samples=3), expected, rtol=1e-12, atol=1e-12)


def test_custom_encoder_and_decoder():
    encoder = mv.Sequential(mv.Dense(10, 7), mv.Tanh(), mv.Dense(7, 4))
    decoder = mv.Sequential(mv.Dense(2, 10))
    model = mv.VAE(10, latent_dim=2, encoder=encoder, decoder=decoder, dtype="float64")
    assert model.encoder is encoder
    x = np.random.default_rng(0).uniform(0, 1, (3, 10))
    _randomize(model, 0)
    assert mv.check_model(model, x).passed(1e-6)


@pytest.mark.parametrize("networks, message", [
    ({"encoder": mv.Sequential(mv.Dense(10, 4))}, r"encoder must map input_dim = 10 values to 2·latent_dim = 6 \(μ then logvar\), got \(4,\)"),
    ({"encoder": mv.Sequential(mv.Dense(9, 6))}, r"encoder must take input_dim = 10 values per example: Dense\(9, 6\) expects"),
    ({"decoder": mv.Sequential(mv.Dense(3, 5))}, r"decoder must map latent_dim = 3 values to the Bernoulli likelihood's 10 outputs"),
    ({"decoder": mv.Sequential(mv.Dense(2, 10))}, r"decoder must take latent_dim = 3 values per example"),
    ({"decoder": mv.Sequential(mv.Dense(3, 10)), "likelihood": "gaussian-learned"}, r"likelihood's 20 outputs for input_dim = 10, got \(10,\)"),
])
def test_networks_of_the_wrong_sizes_are_refused_when_the_model_is_built(networks, message):
    """Not at the first batch, nor (a decoder with too few outputs) as a decode() of the wrong
    shape that only the loss would catch."""
    with pytest.raises(ValueError, match=message):
        mv.VAE(10, latent_dim=3, **networks)


@pytest.mark.parametrize("name", ["encoder", "decoder"])
@pytest.mark.parametrize("network", [lambda: "mlp", lambda: 5, lambda: mv.Dense, lambda: mv.VAE(10, (4,), 3)],
                         ids=["str", "int", "class", "model"])
def test_networks_that_are_no_layers_are_refused_by_name(name, network):
    """"mlp" failed with "'str' object has no attribute 'get_config'"."""
    with pytest.raises(TypeError, match=rf"{name} must be a Layer such as a Sequential, its layer spec \(a dict\), or None"):
        mv.VAE(10, latent_dim=3, **{name: network()})


def test_gaussian_likelihood_accepts_real_data():
    model = mv.VAE(6, (4,), 2, likelihood="gaussian", dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 6)) * 5
    assert np.isfinite(model.loss(x).loss)
    assert model.decode(np.zeros((2, 2))).shape == (2, 6)
    learned = mv.VAE(6, (4,), 2, likelihood="gaussian-learned", dtype="float64")
    assert learned.decode(np.zeros((2, 2))).shape == (2, 6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((3, 10), 0.5)[:, :7], r"shape \(batch, 10\)"),
        (np.array([[np.nan] * 10]), "NaN or Inf"),
        (np.array([[np.inf] * 10]), "NaN or Inf"),
        (np.full((2, 10), 1.5), r"must lie in \[0, 1\]"),
        (np.full((2, 10), -0.1), r"must lie in \[0, 1\]"),
        (np.zeros((0, 10)), "non-empty"),
    ],
)
def test_bad_input_gives_clear_errors(bad, message):
    model = mv.VAE(10, (6,), 2)
    with pytest.raises(ValueError, match=message):
        model.loss_and_grads(bad)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_noise_that_is_not_finite_is_refused(bad):
    model = mv.VAE(6, (4,), 2, dtype="float64")
    x, eps = np.full((3, 6), 0.5), np.zeros((3, 2))
    eps[1, 0] = bad
    for objective in (model.loss, model.loss_and_grads):
        with pytest.raises(ValueError, match="eps contains NaN or Inf; the reparameterization noise must be finite"):
            objective(x, eps=eps)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="beta"):
        mv.VAE(beta=-1)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0, got inf"):  # an infinite KL weight
        mv.VAE(beta=float("inf"))
    with pytest.raises(ValueError, match="likelihood"):
        mv.VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="sizes"):
        mv.VAE(latent_dim=0)
    with pytest.raises(TypeError, match="unconditional"):
        mv.VAE(10, (6,), 2).fit(np.zeros((4, 10)), np.zeros(4), epochs=1, verbose=0)
    # Keras habits: fit(x, x) (autoencoder targets) and fit(x, 5) (epochs) get y explained
    for second in (np.zeros((4, 10)), 5):
        with pytest.raises(TypeError, match=r"second positional argument is y, the labels: pass epochs and other settings by "
                                            r"keyword, fit\(x, epochs=5\)"):
            mv.VAE(10, (6,), 2).fit(np.zeros((4, 10)), second, verbose=0)


def test_stable_for_extreme_logvar_and_logits():
    model = mv.VAE(8, (6,), 2, dtype="float32", seed=0)
    x = np.random.default_rng(0).uniform(0, 1, (4, 8)).astype(np.float32)
    head = model.encoder.layers[-1]
    for value in (1e4, -1e4):
        head.params["b"][2:] = value  # logvar
        terms = model.loss_and_grads(x)
        assert np.isfinite(terms.loss) and np.all(np.isfinite(model.flat.grad)), value
    head.params["b"][2:] = 0
    model.decoder.layers[-1].params["b"][...] = 1e4  # logits
    terms = model.loss_and_grads(x)
    assert np.isfinite(terms.loss) and np.all(np.isfinite(model.flat.grad))


def test_float32_and_float64_agree():
    x = np.random.default_rng(0).uniform(0, 1, (5, 12))
    eps = np.random.default_rng(1).standard_normal((5, 2))
    a = mv.VAE(12, (8,), 2, dtype="float32", seed=3).loss(x, eps).loss
    b = mv.VAE(12, (8,), 2, dtype="float64", seed=3).loss(x, eps).loss
    assert a == pytest.approx(b, rel=1e-4)


def test_training_on_fashion_mnist_lowers_the_loss(fashion_subset):
    x, _ = fashion_subset
    model = mv.VAE(latent_dim=2, seed=0)
    before = model.evaluate(x[:1000])["loss"]
    model.fit(x, epochs=6, batch_size=100, verbose=0)  # 360 steps
    after = model.evaluate(x[:1000])["loss"]
    assert before > 500 and after < 0.55 * before, (before, after)


def test_capacity_slope_is_zero_when_the_kl_meets_the_target():
    """kl_weighting's derivative is β·sign(KL − C), 0 at KL = C (the gradient checks draw C at
    random and never meet it): with C set to the batch's KL exactly, the KL term adds no gradient."""
    model = mv.VAE(6, (5,), 2, beta=3.0, capacity=1.0, dtype="float64", seed=0)
    model.flat.data[...] = testing.normal_array(model.flat.size, 1, scale=0.5)
    x = np.random.default_rng(2).uniform(0, 1, (4, 6))
    eps = model.fixed_noise(x, seed=3)
    kl = model.loss(x, eps=eps).kl
    assert kl > 0
    model.capacity = kl
    assert model.kl_weighting(kl) == (0.0, 0.0)
    model.loss_and_grads(x, eps=eps)
    at_target = model.flat.grad.copy()
    model.beta = 0.0  # no KL gradient at all
    model.loss_and_grads(x, eps=eps)
    np.testing.assert_array_equal(at_target, model.flat.grad)


def test_a_layer_refused_with_a_wrong_partner_can_be_used_again_at_once():
    """The half-built model of a refused VAE is alive while its error is handled (a REPL keeps
    it); it must not keep the caller's encoder as its own."""
    encoder = mv.Sequential(mv.Dense(10, 6))
    try:
        mv.VAE(10, latent_dim=3, encoder=encoder, decoder=mv.Sequential(mv.Dense(3, 5)))
    except ValueError:
        model = mv.VAE(10, latent_dim=3, encoder=encoder, decoder=mv.Sequential(mv.Dense(3, 10)))
    assert model.encoder is encoder
    with pytest.raises(ValueError, match="already belongs to another model"):
        mv.VAE(10, latent_dim=3, encoder=encoder)  # while that model lives, it is its own


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian-learned"])
def test_reconstruct_decodes_the_posterior_mean(likelihood):
    # reconstruct(x) = decode(μ(x)), deterministic: decoding a sampled z instead was caught only
    # by the denoising test's PSNR threshold (a mutation review found)
    model = mv.VAE(6, hidden=(5,), latent_dim=3, likelihood=likelihood, dtype="float64", seed=0)
    model.flat.data[...] += np.random.default_rng(1).normal(0, 0.3, model.flat.size)
    x = np.random.default_rng(2).uniform(0, 1, (7, 6))
    mu, logvar = model.encode(x)
    assert np.all(np.exp(0.5 * logvar) > 0.1)  # a sampled z would decode visibly elsewhere
    np.testing.assert_allclose(model.reconstruct(x), model.decode(mu), rtol=1e-12)
    np.testing.assert_array_equal(model.reconstruct(x), model.reconstruct(x))


@pytest.mark.parametrize("make", [lambda **kw: mv.VAE(6, (4,), 2, **kw), lambda **kw: mv.CVAE(6, 3, (4,), 2, **kw),
                                  lambda **kw: mv.ConvVAE((1, 8, 8), latent_dim=2, **kw)], ids=["vae", "cvae", "convvae"])
def test_a_capacity_warmup_without_a_capacity_is_refused(make, tmp_path):
    """It was accepted and ramped up nothing. A checkpoint saved so before still loads, as it
    trained: without a target."""
    with pytest.raises(ValueError, match=r"capacity_warmup=5 ramps up a capacity target, but capacity is None; give "
                                         r"capacity=C \(nats\) too, or leave capacity_warmup at 0"):
        make(capacity_warmup=5)
    model = make()
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:  # as such a model's checkpoint was written before
        arrays = {key: npz[key] for key in npz.files}
    document = json.loads(str(arrays["model"]))
    document["config"]["capacity_warmup"] = 5
    arrays["model"] = np.array(json.dumps(document))
    np.savez(tmp_path / "m.npz", **arrays)
    loaded = mv.load(tmp_path / "m.npz")
    assert loaded.capacity is None and loaded.capacity_warmup == 0
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)


@pytest.mark.parametrize("x", [3.0, None, "abc"])
def test_fixed_noise_needs_a_batch(x):
    # len() of a float or None failed naming nothing, and "abc" gave noise for three examples
    with pytest.raises(ValueError, match=r"fixed_noise needs the batch x, shaped \(batch, \.\.\.\)"):
        mv.VAE(12, (8,), 2, seed=0).fixed_noise(x)


def test_fixed_noise_takes_a_list_batch_and_is_repeatable():
    model = mv.VAE(12, (8,), 2, seed=0)
    eps = model.fixed_noise([[0.5] * 12] * 3, seed=4)
    assert eps.shape == (3, 2) and eps.dtype == np.float64
    np.testing.assert_array_equal(eps, model.fixed_noise(np.zeros((3, 12)), seed=4))


def test_a_loop_of_ones_own_counts_the_warm_up_steps_as_loss_and_grads_documents(tmp_path):
    """loss_and_grads leaves model.step alone (fit counts its steps), so a hand-written loop with a
    β warm-up stayed at β = 0 unless it counted; its own optimizer is not the model's to save."""
    x = np.random.default_rng(0).random((8, 6))
    model = mv.VAE(6, (4,), 2, beta_warmup=4, seed=0)
    optimizer = mv.Adam(model.flat, lr=1e-3)
    for _ in range(2):
        model.loss_and_grads(x)
        optimizer.step()
    assert model.step == 0 and model.current_beta() == 0.0
    for _ in range(2):
        model.loss_and_grads(x)
        optimizer.step()
        model.step += 1
    assert model.step == 2 and model.current_beta() == 0.5
    model.save(tmp_path / "model.npz")
    assert mv.load(tmp_path / "model.npz").optimizers == {}
