"""Adversarial autoencoder: GAN losses, each phase's gradient, training toward the prior, checkpoints, errors."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import microvae
from _kinks import kink_margins
from microvae import AAE, check_loss, gradcheck, testing
from microvae.losses import discriminator_loss, generator_loss
from microvae.models.aae import prior_distance
from microvae.params import ParameterSlice

# --- the GAN losses ------------------------------------------------------------------------


@settings(max_examples=40)
@given(batch=st.integers(1, 6), column=st.booleans(), scale=st.sampled_from([0.1, 1.0, 4.0]), seed=st.integers(0, 2**31))
def test_gan_loss_gradients_match_finite_differences(batch, column, scale, seed):
    # |logit| <= 4: beyond that a tiny gradient (σ(−r) for large r) sits next to a loss of
    # several nats in the same example, and central differences of f lose the digits needed
    # to resolve it; large logits are checked against exact values below.
    rng = np.random.default_rng(seed)
    shape = (batch, 1) if column else (batch,)
    real, fake = rng.uniform(-scale, scale, shape), rng.uniform(-scale, scale, shape)
    result = check_loss(discriminator_loss, {"real_logits": real, "fake_logits": fake})
    assert result.passed(1e-6), result.table()
    result = check_loss(generator_loss, {"fake_logits": fake})
    assert result.passed(1e-6), result.table()


def test_gan_losses_values_and_extremes():
    zero = np.zeros(4)
    per, d_real, d_fake = discriminator_loss(zero, zero)
    np.testing.assert_allclose(per, 2 * np.log(2))
    np.testing.assert_allclose(d_real, -0.5 / 4)
    np.testing.assert_allclose(d_fake, 0.5 / 4)
    per, d_fake = generator_loss(zero)
    np.testing.assert_allclose(per, np.log(2))
    # confident and right: ~0 loss; confident and wrong: ~|logit| nats, finite, gradient ±1/batch
    big = np.array([1e4, -1e4])
    per, d_real, d_fake = discriminator_loss(big, -big)
    np.testing.assert_allclose(per, [0.0, 2e4])
    np.testing.assert_allclose(d_real, [0.0, -0.5])
    # far tails: the gradients keep full relative precision (σ(r) − 1 computed as −σ(−r))
    tail = -1 / (1 + np.exp(30.0)) / 2
    _, d_real, _ = discriminator_loss(np.array([30.0, 30.0]), np.zeros(2))
    np.testing.assert_allclose(d_real, tail, rtol=1e-13)
    np.testing.assert_allclose(generator_loss(np.array([30.0, 30.0]))[1], tail, rtol=1e-13)
    per, d_fake = generator_loss(np.array([-1e4], dtype=np.float32))
    assert per.dtype == np.float64 and np.isfinite(per).all() and d_fake.dtype == np.float32
    np.testing.assert_allclose(per, [1e4])
    with pytest.raises(ValueError, match="same shape"):
        discriminator_loss(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="non-empty batch"):
        generator_loss(np.zeros(0))


@given(v=st.floats(20.0, 700.0))
def test_gan_losses_keep_the_digits_of_a_confident_right_answer(v):
    """softplus(−v) = log(1 + e^{−v}) = e^{−v}·(1 − e^{−v}/2 + …): the loss of a confident right
    answer keeps its relative precision (log1p(e), not log(1 + e), which rounds 1 + e^{−v} and
    is 0 beyond v ≈ 37). The value checks above see only the 0 that both give at ±1e4."""
    tail = np.exp(-v) * (1 - np.exp(-v) / 2)  # the series' next term is below 1e-17 of it
    logits = np.array([v])
    assert generator_loss(logits)[0][0] == pytest.approx(tail, rel=1e-12, abs=0)
    assert discriminator_loss(logits, -logits)[0][0] == pytest.approx(2 * tail, rel=1e-12, abs=0)


# --- each phase's gradient ---------------------------------------------------------------------

PHASE_GROUPS = {"recon": "autoencoder", "disc": "discriminator", "gen": "generator"}


def _random_biases(model, seed):
    """Random (not zero) biases: where every ReLU of a layer is off for an example, the next
    layer's pre-activations equal its biases, and at zero that is a kink."""
    rng = np.random.default_rng(seed)
    for name, value, _ in model.flat.named():
        if name.endswith(".b"):
            value[...] = rng.uniform(0.05, 0.3, value.shape) * rng.choice([-1, 1], value.shape)
    return model


def _tiny(encoder_type, prior, likelihood="bernoulli", seed=1):
    model = AAE(input_dim=6, hidden=(5,), latent_dim=2, encoder_type=encoder_type, prior=prior, num_classes=3,
                disc_hidden=(4, 3), likelihood=likelihood, dtype="float64", seed=seed)
    return _random_biases(model, seed)


def _check_phase(model, phase, x, y, eps, real):
    """Gradient check of one phase's loss (fixed ε and prior draws) w.r.t. the group it updates,
    and that the phase writes no gradient into the parts it does not update. The group's
    gradients are NaN before the phase, as check_model fills them: a phase that added to them
    instead of overwriting them (training never zeroes them) would fail."""
    model.flat.grad.fill(0)
    model.parameter_groups()[PHASE_GROUPS[phase]].grad[...] = np.nan
    model.phase_loss(phase, x, y, eps=eps, prior_samples=real)
    wrt, analytic = {}, {}
    for name, value, grad in model.parameter_groups()[PHASE_GROUPS[phase]].named():
        wrt[name], analytic[name] = value, grad.copy()
    # phases touch no one else's gradients: recon leaves D alone, disc the encoder/decoder, gen the decoder
    untouched = {"recon": ["discriminator"], "disc": ["encoder", "decoder"], "gen": ["decoder"]}[phase]
    for name, _, grad in model.flat.named():
        if name.split(".")[0] in untouched:
            assert not grad.any(), f"{phase} phase wrote a gradient into {name}"

    def f():
        return model.phase_loss(phase, x, y, eps=eps, prior_samples=real, compute_grads=False)

    return gradcheck(f, wrt, analytic, title=f"AAE {phase} phase")


# Over sizes (latent_dim up to 4: a gradient lost in latent dims >= 2 went unseen at latent_dim = 2)
# and all three likelihoods (gaussian-learned was never checked), for each encoder and prior; with
# the ReLUs inside the Dense layers (the default) or as layers of their own (never checked before).
@pytest.mark.parametrize("encoder_type", ["deterministic", "gaussian"])
@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
@settings(max_examples=5)
@given(input_dim=st.integers(1, 7), hidden=st.lists(st.integers(1, 6), min_size=1, max_size=2), latent=st.integers(1, 4),
       disc_hidden=st.lists(st.integers(1, 5), min_size=1, max_size=2), n=st.integers(1, 5), k=st.integers(2, 4),
       likelihood=st.sampled_from(["bernoulli", "gaussian", "gaussian-learned", {"name": "gaussian", "logvar": -0.7}]), seed=st.integers(0, 2**31),
       fuse_relu=st.booleans(), labelled=st.booleans())
def test_each_phase_gradient_wrt_the_parameters_it_updates(encoder_type, prior, input_dim, hidden, latent, disc_hidden, n, k,
                                                           likelihood, seed, fuse_relu, labelled):
    assume(prior == "gaussian" or latent >= 2)  # the mixture's circle needs two dimensions
    model = _random_biases(AAE(input_dim=input_dim, hidden=hidden, latent_dim=latent, encoder_type=encoder_type, prior=prior,
                               num_classes=k, disc_hidden=disc_hidden, likelihood=likelihood, fuse_relu=fuse_relu,
                               dtype="float64", seed=seed % 1000), seed)
    rng = np.random.default_rng(seed)
    x = rng.random((n, input_dim))
    y = rng.integers(-1, k, n) if prior == "mixture" and labelled else None  # a mixture prior without labels too
    eps = rng.standard_normal((n, latent)) if encoder_type == "gaussian" else None  # (a deterministic encoder has no noise)
    real = rng.standard_normal((n, latent))
    with kink_margins() as margins:
        for phase in ("recon", "disc", "gen"):
            model.phase_loss(phase, x, y, eps=eps, prior_samples=real, compute_grads=False)
    # clear of every ReLU kink, and no ReLU layer off for the whole batch (zero against zero)
    assume(min(margins) > 1e-4 and margins.dead == 0)
    for phase in ("recon", "disc", "gen"):
        result = _check_phase(model, phase, x, y, eps, real)
        assert result.passed(1e-6), result.table()


@pytest.mark.parametrize("clamped", testing.CLAMPED_SIDES, ids="+".join)
@settings(max_examples=4)
@given(latent=st.integers(1, 4), drawn=testing.logvar_side_lists(), prior=st.sampled_from(["gaussian", "mixture"]),
       likelihood=st.sampled_from(["bernoulli", "gaussian", "gaussian-learned"]), n=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_gaussian_encoder_gradients_with_logvar_outside_the_clamp(clamped, latent, drawn, prior, likelihood, n, seed):
    # The Gaussian encoder clamps logvar to LOGVAR_RANGE and _codes_backward masks dlogvar outside
    # it; the check above never leaves the range, so here some columns are clamped, the others not.
    assume(latent >= len(clamped) and (prior == "gaussian" or latent >= 2))
    rng = np.random.default_rng(seed)
    sides = testing.logvar_sides(clamped, drawn[:latent], rng)
    model = _random_biases(AAE(input_dim=6, hidden=(5,), latent_dim=latent, encoder_type="gaussian", prior=prior, num_classes=3,
                               disc_hidden=(4,), likelihood=likelihood, dtype="float64", seed=seed % 1000), seed)
    head = model.encoder.layers[-1]
    x = rng.random((n, 6))
    y = rng.integers(-1, 3, n) if prior == "mixture" else None
    eps = testing.push_logvar_outside(head.params["b"][latent:], sides, rng.standard_normal((n, latent)))
    real = rng.standard_normal((n, latent))
    model.phase_loss("recon", x, y, eps=eps, compute_grads=False)
    assume(testing.clear_of_the_clamp(head, latent, sides))
    for phase in ("recon", "gen"):  # the phases whose gradients reach the encoder
        result = _check_phase(model, phase, x, y, eps, real)
        assert result.passed(1e-6), result.table()


def test_parameter_groups_are_views_of_one_buffer():
    model = _tiny("deterministic", "gaussian")
    groups = model.parameter_groups()
    assert set(groups) == {"autoencoder", "discriminator", "generator"}
    assert all(isinstance(g, ParameterSlice) for g in groups.values())
    sizes = {name: sum(p.size for n, p, _ in model.flat.named() if n.startswith(name + ".")) for name in ("encoder", "decoder", "discriminator")}
    assert groups["generator"].size == sizes["encoder"]
    assert groups["autoencoder"].size == sizes["encoder"] + sizes["decoder"]
    assert model.num_parameters == model.flat.size == groups["autoencoder"].size + groups["discriminator"].size
    groups["generator"].data[0] = 123.0  # the same memory as the encoder's first weight
    assert model.encoder[0].params["W"].flat[0] == 123.0 and groups["autoencoder"].data[0] == 123.0
    with pytest.raises(ValueError, match="no parameters"):
        model.flat.subset("nothing")
    # a slice says what it is (it printed as "FlatParameters(...)", like the whole buffer)
    assert repr(groups["generator"]).startswith(f"ParameterSlice({sum(1 for n, _, _ in model.flat.named() if n.startswith('encoder.'))} tensors, {sizes['encoder']} values")
    assert repr(model.flat).startswith("FlatParameters(")


# --- the prior ---------------------------------------------------------------------------------


def test_mixture_prior_components_and_labelled_draws():
    model = AAE(input_dim=4, hidden=(3,), latent_dim=3, prior="mixture", num_classes=4, disc_hidden=(3,), dtype="float64")
    means = model.component_means()
    np.testing.assert_allclose(np.linalg.norm(means[:, :2], axis=1), 4.0)
    assert not means[:, 2:].any() and len(np.unique(np.round(means, 6), axis=0)) == 4
    y = np.repeat(np.arange(4), 500)
    draws = model.sample_prior(len(y), y=y, seed=0)
    for k in range(4):
        np.testing.assert_allclose(draws[y == k].mean(0), means[k], atol=0.1)
        np.testing.assert_allclose(draws[y == k].std(0), 0.5, atol=0.05)
    np.testing.assert_array_equal(model.sample_prior(5, seed=3), model.sample_prior(5, seed=3))
    # the discriminator sees a one-hot label, with the last slot for "unlabelled"
    be = model.backend
    d = model._disc_input(be.asarray(np.zeros((3, 3))), be.asarray(np.array([2, -1, 0]), dtype=np.int64))
    np.testing.assert_array_equal(d[:, 3:], [[0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0]])
    assert model._disc_input(be.asarray(np.zeros((2, 3))), None)[:, -1].tolist() == [1, 1]


def test_prior_distance_is_small_for_the_prior_itself_and_large_otherwise():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((800, 2))
    same = prior_distance(rng.standard_normal((800, 2)), p)
    shifted = prior_distance(rng.standard_normal((800, 2)) + [2.0, 0.0], p)
    squeezed = prior_distance(rng.standard_normal((800, 2)) * 0.2, p)
    assert abs(same["mmd2"]) < 0.01 and same["mean_gap"] < 0.15 and same["cov_gap"] < 0.2
    assert shifted["mmd2"] > 0.2 and shifted["mean_gap"] > 1.8
    assert squeezed["mmd2"] > 0.1 and squeezed["cov_gap"] > 1.0
    with pytest.raises(ValueError, match="prior_distance needs"):
        prior_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="bandwidths"):
        prior_distance(p, p, bandwidths=(0.0,))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", ["codes", "prior_samples"])
def test_prior_distance_refuses_non_finite_values(bad, which):
    """One NaN (an encoder that diverged) would make all three distances NaN without a word."""
    good = np.random.default_rng(0).standard_normal((6, 2))
    broken = good.copy()
    broken[3, 1] = bad
    args = (broken, good) if which == "codes" else (good, broken)
    with pytest.raises(ValueError, match=f"{which} contains NaN or Inf"):
        prior_distance(*args)


def test_prior_distance_refuses_complex_codes():
    """The float64 cast would drop the imaginary part, with only a warning."""
    good = np.random.default_rng(0).standard_normal((6, 2))
    with pytest.raises(TypeError, match="prior_distance expects real numbers .* for codes"):
        prior_distance(good + 1j, good)
    with pytest.raises(TypeError, match="for prior_samples"):
        prior_distance(good, good.astype(complex))


@pytest.mark.parametrize("encoder_type", ["deterministic", "gaussian"])
@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
def test_inference_in_row_blocks_gives_the_same_results(encoder_type, prior):
    """encode/decode/reconstruct/sample (and prior_distance, whose ε is drawn block by block) go through the
    networks INFERENCE_BATCH rows at a time: blocks of 3 rows (the last one partial) must
    give what one pass over all 7 gives."""
    model = _tiny(encoder_type, prior)
    x = np.random.default_rng(0).uniform(0.05, 0.95, (7, 6))
    z = np.random.default_rng(1).standard_normal((7, 2))
    y = np.array([0, 2, 1, -1, 2, 0, 1])

    def everything():
        labelled = (model.sample(7, y=y, seed=2),) if prior == "mixture" else ()
        return (model.encode(x), model.decode(z), model.reconstruct(x), model.sample(7, seed=2), *labelled,
                np.array(list(model.prior_distance(x, seed=1).values())))

    whole = everything()
    model.INFERENCE_BATCH = 3
    blocks = everything()
    assert [a.shape for a in blocks] == [(7, 2)] + [(7, 6)] * (3 if prior == "gaussian" else 4) + [(3,)]
    for a, b in zip(blocks, whole):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(model.reconstruct(x), model.decode(model.encode(x)))


# --- training on Fashion-MNIST -----------------------------------------------------------------------


def _train_autoencoder_only(model, x, epochs, batch_size=100):
    """The same network trained by phase 1 alone: a plain autoencoder, for comparison."""
    optimizers = model._get_optimizers("adam", 1e-3, {})
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            model.phase_loss("recon", x[start : start + batch_size])
            optimizers["autoencoder"].step()


def test_training_lowers_the_loss_and_moves_codes_toward_the_prior(fashion_subset):
    x, _ = fashion_subset
    train, test = x[:2000], x[5000:6000]
    config = dict(hidden=(128,), latent_dim=2, disc_hidden=(64, 64), seed=0)
    model = AAE(**config)
    before, recon_before = model.prior_distance(test), model.evaluate(test)["recon"]
    history = model.fit(train, epochs=8, batch_size=100, verbose=0, validation_data=test[:500])
    after, recon_after = model.prior_distance(test), model.evaluate(test)["recon"]
    plain = AAE(**config)
    _train_autoencoder_only(plain, train, epochs=8)
    unregularized = plain.prior_distance(test)
    print(f"\nrecon {recon_before:.1f} -> {recon_after:.1f} nats; prior distance untrained {before}, "
          f"AAE {after}, plain autoencoder {unregularized}")
    assert {"loss", "recon", "disc", "gen", "val_loss", "val_recon", "val_disc", "val_gen"} <= set(history.keys())
    assert history["loss"] == history["recon"]
    assert history["recon"][-1] < 0.75 * history["recon"][0] and recon_after < 0.75 * recon_before
    assert all(np.isfinite(history["disc"])) and all(np.isfinite(history["gen"]))
    assert after["mmd2"] < 0.5 * before["mmd2"]
    assert after["mmd2"] < 0.5 * unregularized["mmd2"]
    assert after["mean_gap"] < unregularized["mean_gap"] and after["cov_gap"] < unregularized["cov_gap"]


def test_labelled_mixture_training_runs_and_records_every_phase(fashion_subset):
    x, y = fashion_subset
    model = AAE(hidden=(64,), latent_dim=2, prior="mixture", disc_hidden=(32,), seed=0)
    labels = y[:600].copy()
    labels[::3] = -1  # a third unlabelled: the semi-supervised case
    before = model.prior_distance(x[5000:5600])
    history = model.fit(x[:600], labels, epochs=3, batch_size=100, verbose=0)
    assert history["recon"][-1] < history["recon"][0]
    assert model.prior_distance(x[5000:5600])["mmd2"] < before["mmd2"]
    samples = model.sample(10, y=np.arange(10), seed=0)
    assert samples.shape == (10, 784) and samples.min() >= 0 and samples.max() <= 1


# --- checkpoints ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder_type,prior", [("deterministic", "gaussian"), ("gaussian", "mixture")])
def test_save_load_roundtrip_and_exact_resumption(tmp_path, encoder_type, prior):
    rng = np.random.default_rng(0)
    x = rng.random((60, 12)).astype(np.float32)
    y = rng.integers(-1, 3, size=60) if prior == "mixture" else None
    model = AAE(input_dim=12, hidden=(8,), latent_dim=2, encoder_type=encoder_type, prior=prior, num_classes=3, disc_hidden=(6,), seed=3)
    model.fit(x, y, epochs=1, batch_size=20, verbose=0)
    path = tmp_path / "aae.npz"
    model.save(path)
    loaded = microvae.load(path)
    assert type(loaded) is AAE and loaded.config == model.config
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)
    np.testing.assert_array_equal(loaded.encode(x), model.encode(x))
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    np.testing.assert_array_equal(loaded.sample(4, seed=1), model.sample(4, seed=1))
    assert loaded.prior_distance(x, seed=2) == model.prior_distance(x, seed=2)
    assert set(loaded.optimizers) == {"autoencoder", "discriminator", "generator"}
    # every optimizer's state came back: one more epoch gives bit-identical parameters
    model.fit(x, y, epochs=1, batch_size=20, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=20, verbose=0)
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)
    assert loaded.history["disc"] == model.history["disc"]


# --- bad input -------------------------------------------------------------------------------------


def test_mixture_labels_take_the_forms_a_cvae_takes():
    """Indices, one label for every example, or one-hot rows: the same run, the same samples."""
    x = np.random.default_rng(0).random((4, 6))
    runs = []
    for labels in (np.array([1, 1, 1, 1]), 1, np.eye(3)[[1, 1, 1, 1]], [1.0, 1.0, 1.0, 1.0]):
        model = _tiny("gaussian", "mixture")
        model.fit(x, labels, epochs=1, batch_size=2, verbose=0)
        runs.append((model.flat.data.copy(), model.sample(3, y=labels if np.ndim(labels) == 0 else 1, seed=0)))
    for params, samples in runs[1:]:
        np.testing.assert_array_equal(params, runs[0][0])
        np.testing.assert_array_equal(samples, runs[0][1])
    model = _tiny("gaussian", "mixture")
    np.testing.assert_array_equal(model.sample(2, y=np.eye(3)[[0, 2]], seed=1), model.sample(2, y=[0, 2], seed=1))


def test_bad_input_is_rejected_clearly():
    model = _tiny("deterministic", "gaussian")
    mixture = _tiny("gaussian", "mixture")
    x = np.random.default_rng(0).random((4, 6))
    with pytest.raises(ValueError, match=r"shape \(batch, 6\)"):
        model.fit(np.zeros((4, 5)), verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.fit(x * 3, verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        model.encode(np.full((2, 6), np.nan))
    with pytest.raises(TypeError, match="prior='mixture'"):
        model.fit(x, np.zeros(4, dtype=int), verbose=0)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 2\]"):
        mixture.fit(x, np.array([0, 1, 3, 0]), verbose=0)
    with pytest.raises(ValueError, match=r"y must be 4 integer labels \(or one label for all, or one-hot rows of shape \(4, 3\)\)"):
        mixture.fit(x, np.zeros((4, 1), dtype=int), verbose=0)
    with pytest.raises(ValueError, match=r"one-hot y of shape \(4, 3\) must hold exactly one 1 per row"):
        mixture.fit(x, np.ones((4, 3)), verbose=0)  # not one-hot: three 1s per row
    with pytest.raises(ValueError, match="whole-number labels, found 0.5"):
        mixture.fit(x, np.array([0.5, 1, 1, 0]), verbose=0)
    with pytest.raises(ValueError, match="whole-number labels, found nan"):  # not blamed on the dtype: 2.0 is label 2
        mixture.fit(x, np.array([0, 1, np.nan, 2.0]), verbose=0)
    with pytest.raises(ValueError, match="integer labels, got dtype <U1"):
        mixture.fit(x, np.array(list("abca")), verbose=0)
    with pytest.raises(TypeError, match="with prior='gaussian' leave y out"):  # not "call fit": sample takes y too
        model.sample(3, y=[0, 1, 2])

    with pytest.raises(ValueError, match="phase must be"):
        model.phase_loss("kl", x)
    with pytest.raises(ValueError, match="one row per example"):
        model.phase_loss("disc", x, prior_samples=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="this AAE's encoder is deterministic"):  # eps would be silently ignored
        model.phase_loss("recon", x, eps=np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 2\)"):
        model.decode(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0)
    with pytest.raises(ValueError, match="encoder_type"):
        AAE(input_dim=4, encoder_type="vae")
    with pytest.raises(ValueError, match="prior must be"):
        AAE(input_dim=4, prior="uniform")
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        AAE(input_dim=4, hidden=(3,), latent_dim=1, prior="mixture")
    with pytest.raises(ValueError, match="num_classes >= 2"):
        AAE(input_dim=4, hidden=(3,), prior="mixture", num_classes=1)
    with pytest.raises(ValueError, match="sizes must be positive"):
        AAE(input_dim=4, disc_hidden=(0,))


@settings(max_examples=20)
@given(n=st.integers(2, 6), m=st.integers(2, 6), d=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_prior_distance_matches_its_definition(n, m, d, seed):
    # The loose checks above cannot tell the unbiased MMD² (pairs i ≠ j) from the biased one that
    # also counts each point against itself; here every term is summed pair by pair, in float64.
    rng = np.random.default_rng(seed)
    c, p = rng.standard_normal((n, d)) * 1.5, rng.standard_normal((m, d)) + 0.3
    bandwidths = (0.5, 1.0, 2.0)

    def k(a, b):
        return np.mean([np.exp(-np.sum((a - b) ** 2) / (2 * h * h)) for h in bandwidths])

    within_c = sum(k(c[i], c[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    within_p = sum(k(p[i], p[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(c[i], p[j]) for i in range(n) for j in range(m)) / (n * m)
    got = prior_distance(c, p, bandwidths=bandwidths)
    assert got["mmd2"] == pytest.approx(within_c + within_p - 2 * across, rel=1e-10, abs=1e-12), "unbiased MMD²"
    assert got["mean_gap"] == pytest.approx(np.linalg.norm(c.mean(0) - p.mean(0)), rel=1e-12), "‖mean gap‖₂"
    cov_c = (c - c.mean(0)).T @ (c - c.mean(0)) / (n - 1)
    cov_p = (p - p.mean(0)).T @ (p - p.mean(0)) / (m - 1)
    assert got["cov_gap"] == pytest.approx(np.linalg.norm(cov_c - cov_p), rel=1e-10, abs=1e-12), "‖cov gap‖_F"


@pytest.mark.parametrize("encoder_type", ["deterministic", "gaussian"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_encode_gives_the_code_that_training_decodes_at_zero_noise(encoder_type, likelihood):
    # encode(x) is E(x), or μ(x) for the Gaussian encoder: the code the reconstruction phase
    # decodes when ε = 0. Its logvar half returned instead went unseen (the other tests compare
    # encode with itself, or use a deterministic encoder, where both halves are the code).
    model = _tiny(encoder_type, "gaussian", likelihood)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.95, (5, 6))
    codes = model.encode(x)
    assert codes.shape == (5, 2)
    mean = model.decode(codes)
    if likelihood == "bernoulli":
        nll = -(x * np.log(mean) + (1 - x) * np.log1p(-mean)).sum(axis=1)
    else:
        nll = 0.5 * ((x - mean) ** 2 + np.log(2 * np.pi)).sum(axis=1)
    eps = np.zeros((5, 2)) if encoder_type == "gaussian" else None
    recon = model.phase_loss("recon", x, eps=eps, compute_grads=False)
    assert recon == pytest.approx(nll.mean(), rel=1e-10), "−log p(x | decode(encode(x))) ≠ the recon phase at ε = 0"


def _softplus(v):
    return np.logaddexp(0.0, v)


@pytest.mark.parametrize("labelled", [False, True])
def test_the_gan_phases_score_what_the_discriminator_says_of_labelled_codes(labelled):
    # With the mixture prior D sees [z ‖ onehot(y)] (slot K: unlabelled). Phases 2 and 3 against
    # the discriminator's own outputs, in float64: L_D = softplus(−D(real)) + softplus(D(fake)),
    # L_G = softplus(−D(fake)). The gradient checks cannot see a phase that drops the labels, or
    # that swaps real and fake consistently in loss and gradient.
    model = _tiny("deterministic", "mixture")
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.95, (6, 6))
    y = np.array([0, 2, -1, 1, 1, 0]) if labelled else None
    real = rng.standard_normal((6, 2)) * 2
    slots = np.where(y >= 0, y, 3) if labelled else np.full(6, 3)
    onehot = np.eye(4)[slots]
    z = model.encode(x)
    d_fake = model.discriminator.forward(np.concatenate([z, onehot], axis=1))[:, 0]
    d_real = model.discriminator.forward(np.concatenate([real, onehot], axis=1))[:, 0]
    assert not np.allclose(d_fake, model.discriminator.forward(np.concatenate([z, np.eye(4)[[1, 0, 2, 0, 2, 1]]], axis=1))[:, 0])
    disc = model.phase_loss("disc", x, y, prior_samples=real, compute_grads=False)
    assert disc == pytest.approx(np.mean(_softplus(-d_real) + _softplus(d_fake)), rel=1e-12), "discriminator phase"
    gen = model.phase_loss("gen", x, y, compute_grads=False)
    assert gen == pytest.approx(np.mean(_softplus(-d_fake)), rel=1e-12), "generator phase"


# --- the prior's settings, seeds, the phases' parameter groups and evaluate -------------------------

def _record_real_codes(model):
    """Record the real (prior) codes every discriminator phase of ``model`` is given, as NumPy."""
    seen, phase = [], model._discriminator_phase

    def spy(z, labels, real, compute_grads=True):
        seen.append(model.backend.to_numpy(real).copy())
        return phase(z, labels, real, compute_grads)

    model._discriminator_phase = spy
    return seen


def _nearest_component(model, codes):
    return np.argmin(((codes[:, None, :] - model.component_means()[None]) ** 2).sum(-1), axis=1)


def test_mixture_prior_is_the_documented_circle_with_its_own_radius_and_spread():
    # μ_k = r·(cos 2πk/K, sin 2πk/K, 0, …), s = mixture_std, at settings other than the defaults
    # (the test above uses r = 4, s = 0.5 and only checks |μ_k| = r and that the means differ:
    # half a circle, or sin and cos swapped, or a default spread, passed it).
    model = AAE(input_dim=4, hidden=(3,), latent_dim=3, prior="mixture", num_classes=5, disc_hidden=(3,),
                mixture_radius=2.5, mixture_std=0.3, dtype="float64")
    angles = 2 * np.pi * np.arange(5) / 5
    want = np.stack([2.5 * np.cos(angles), 2.5 * np.sin(angles), np.zeros(5)], axis=1)
    np.testing.assert_allclose(model.component_means(), want, rtol=1e-12, atol=1e-12)
    y = np.repeat(np.arange(5), 400)
    draws = model.sample_prior(len(y), y=y, seed=0)
    for k in range(5):
        np.testing.assert_allclose(draws[y == k].mean(0), want[k], atol=0.05)
        np.testing.assert_allclose(draws[y == k].std(0), 0.3, rtol=0.1)
    # without labels each draw comes from a component chosen uniformly: every one of them is used
    nearest = _nearest_component(model, model.sample_prior(2000, seed=1))
    np.testing.assert_allclose(np.bincount(nearest, minlength=5) / 2000, 0.2, atol=0.04)
    # the Gaussian prior is N(0, I), whatever the (unused) mixture settings
    gaussian = AAE(input_dim=4, hidden=(3,), latent_dim=3, disc_hidden=(3,), mixture_radius=2.5, mixture_std=0.3)
    draws = gaussian.sample_prior(4000, seed=0)
    np.testing.assert_allclose(draws.mean(0), 0, atol=0.06)
    np.testing.assert_allclose(draws.std(0), 1, atol=0.04)


def test_seeds_and_labels_reach_sample_and_prior_distance():
    # sample(n, y, seed) is decode(sample_prior(n, y, seed)); prior_distance(x, seed, n_prior) is
    # prior_distance(encode(x), sample_prior(n_prior, seed=seed)). The other tests compare these
    # only with themselves: a seed replaced by a constant, y or n_prior dropped went unseen.
    model = _tiny("gaussian", "mixture")
    x = np.random.default_rng(0).uniform(0.05, 0.95, (9, 6))
    y = np.array([0, 2, 1, -1, 2, 0, 1])
    assert not np.allclose(model.sample_prior(7, seed=1), model.sample_prior(7, seed=2))
    np.testing.assert_array_equal(model.sample(7, y=y, seed=4), model.decode(model.sample_prior(7, y=y, seed=4)))
    assert not np.allclose(model.sample(7, y=y, seed=4), model.sample(7, y=(y + 1) % 3, seed=4))
    got = model.prior_distance(x, seed=5, n_prior=4)
    # the Gaussian encoder's codes are sampled, μ + σ·ε, with ε seeded apart from the prior draws
    mu, logvar = np.split(model.encoder.forward(x), 2, axis=1)
    codes = mu + np.exp(0.5 * logvar) * np.random.default_rng((5, 1)).standard_normal((9, 2))
    assert got == pytest.approx(prior_distance(codes, model.sample_prior(4, seed=5)), rel=1e-12)
    assert got != model.prior_distance(x, seed=6, n_prior=4)
    deterministic = _tiny("deterministic", "mixture")
    assert deterministic.prior_distance(x, seed=5, n_prior=4) == prior_distance(deterministic.encode(x),
                                                                                deterministic.sample_prior(4, seed=5))


def test_a_gaussian_encoder_whose_codes_are_prior_draws_is_at_the_prior():
    """Training matches the sampled codes μ + σ·ε to the prior, so that is what prior_distance
    measures: an encoder giving μ = 0, σ = 1 for every x has codes distributed as N(0, I) exactly,
    while its means alone (all 0) would be far from it."""
    model = AAE(6, hidden=(5,), latent_dim=2, disc_hidden=(4,), encoder_type="gaussian", dtype="float64", seed=0)
    for name, value, _ in model.flat.named():
        if name.startswith("encoder"):
            value[...] = 0
    x = np.random.default_rng(0).random((2000, 6))
    at_prior = model.prior_distance(x, seed=3)
    assert abs(at_prior["mmd2"]) < 0.005 and at_prior["mean_gap"] < 0.1 and at_prior["cov_gap"] < 0.2, at_prior
    means_only = prior_distance(model.encode(x), model.sample_prior(2000, seed=3))
    assert means_only["mmd2"] > 0.2 and means_only["cov_gap"] > 1.0, means_only


@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
def test_one_training_step_is_the_three_phases_each_stepping_its_own_group(prior):
    # One fit step with plain SGD, replayed phase by phase through phase_loss and
    # parameter_groups: recon steps encoder + decoder, disc steps D at the updated encoder's
    # codes, gen steps the encoder against the updated D, each at the same lr. The gradient
    # checks see each phase alone; a step given to the wrong optimizer (the decoder stepped
    # twice), a phase left unstepped or the phases out of order went unseen.
    lr = 0.1
    model, twin = _tiny("deterministic", prior), _tiny("deterministic", prior)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.95, (8, 6))
    y = np.array([0, 1, 2, -1, 2, 1, 0, -1]) if prior == "mixture" else None
    seen = _record_real_codes(model)
    model.fit(x, y, epochs=1, batch_size=8, optimizer="sgd", lr=lr, shuffle=False, verbose=0)
    (real,) = seen
    if prior == "mixture":  # D's real codes come from the component of their label
        nearest = _nearest_component(model, real)
        np.testing.assert_array_equal(nearest[y >= 0], y[y >= 0])
    groups = twin.parameter_groups()
    for name, kwargs in (("autoencoder", dict(phase="recon")), ("discriminator", dict(phase="disc", prior_samples=real)),
                         ("generator", dict(phase="gen"))):
        twin.flat.grad.fill(0)
        twin.phase_loss(x=x, y=y, **kwargs)
        groups[name].data[...] -= lr * groups[name].grad
    for (name, got, _), want in zip(model.flat.named(), [value for _, value, _ in twin.flat.named()]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=name)


def test_evaluate_and_phase_loss_score_labelled_batches_as_training_does():
    # evaluate's recon and gen are deterministic for a deterministic encoder: in blocks of 3 rows
    # (the last one partial) they must be the phases' losses over all 7 rows, with the labels;
    # and both evaluate and phase_loss("disc") draw D's real codes from the labels' components.
    model = _tiny("deterministic", "mixture")
    x = np.random.default_rng(0).uniform(0.05, 0.95, (7, 6))
    y = np.array([0, 2, 1, -1, 2, 0, 1])
    seen = _record_real_codes(model)
    got = model.evaluate(x, y, batch_size=3, seed=0)
    assert got["recon"] == pytest.approx(model.phase_loss("recon", x, compute_grads=False), rel=1e-12)
    assert got["gen"] == pytest.approx(model.phase_loss("gen", x, y, compute_grads=False), rel=1e-12)
    assert got["gen"] != pytest.approx(model.phase_loss("gen", x, compute_grads=False), rel=1e-6)  # the labels count
    model.phase_loss("disc", x, y, compute_grads=False)
    assert [len(r) for r in seen] == [3, 3, 1, 7]
    for real in (np.concatenate(seen[:3]), seen[3]):
        nearest = _nearest_component(model, real)
        np.testing.assert_array_equal(nearest[y >= 0], y[y >= 0])


def test_mixture_labels_below_minus_one_are_rejected():
    model = _tiny("gaussian", "mixture")
    x = np.random.default_rng(0).random((4, 6))
    for call in (lambda: model.fit(x, np.array([0, -2, 1, 0]), verbose=0), lambda: model.sample_prior(2, y=[-2, 0]),
                 lambda: model.phase_loss("disc", x, [0, 1, -3, 2])):
        with pytest.raises(ValueError, match=r"y must lie in \[0, 2\] \(or -1 for unlabelled\)"):
            call()


def test_a_checkpoint_keeps_the_mixture_priors_radius_and_spread(tmp_path):
    # The round-trip test above uses the default radius and spread, which a lost setting falls back to.
    model = AAE(input_dim=4, hidden=(3,), latent_dim=2, prior="mixture", num_classes=3, disc_hidden=(3,),
                mixture_radius=2.5, mixture_std=0.3, seed=0)
    model.save(tmp_path / "aae.npz")
    loaded = microvae.load(tmp_path / "aae.npz")
    assert (loaded.mixture_radius, loaded.mixture_std) == (2.5, 0.3)
    np.testing.assert_array_equal(loaded.component_means(), model.component_means())
    np.testing.assert_array_equal(loaded.sample_prior(6, y=[0, 1, 2, -1, 0, 1], seed=3),
                                  model.sample_prior(6, y=[0, 1, 2, -1, 0, 1], seed=3))


# --- limits and settings that must hold (found by a mutation review) ---------------------------


def test_prior_distance_refuses_a_single_point_and_an_empty_bandwidth_list():
    # The unbiased within-set means divide by n(n − 1): a single code (or prior draw) has no pair
    # and would give NaN; no bandwidth at all leaves the kernel a mean over nothing.
    p = np.random.default_rng(0).standard_normal((5, 2))
    for codes, prior in ((p[:1], p), (p, p[:1])):
        with pytest.raises(ValueError, match=r"with n, m >= 2, got \(\d, 2\) and \(\d, 2\)"):
            prior_distance(codes, prior)
    for bandwidths in ((), []):
        with pytest.raises(ValueError, match="bandwidths must be one or more positive numbers"):
            prior_distance(p, p, bandwidths=bandwidths)


def test_prior_distance_kernel_stays_in_its_bounds_for_codes_far_from_the_origin():
    # k(a, b) = mean_h exp(−‖a − b‖²/2h²) lies in [0, 1], so every kernel mean does and
    # |MMD²| <= 2. ‖a − b‖² is computed as ‖a‖² + ‖b‖² − 2a·b, whose round-off goes below 0 for
    # codes far out (a diverged encoder): such a distance must count as 0, not give exp(+…).
    rng = np.random.default_rng(0)
    codes, prior = (1e8 + rng.integers(0, 4, (6, 2)).astype(float) for _ in range(2))
    got = prior_distance(codes, prior)
    assert np.isfinite(got["mmd2"]) and -2 <= got["mmd2"] <= 2, got


@pytest.mark.parametrize("options, message", [
    ({"num_classes": 0}, "num_classes must be a positive integer"),
    ({"mixture_radius": 0.0}, "mixture_radius must be a positive, finite number"),
    ({"mixture_std": 0.0}, "mixture_std must be a positive, finite number"),
])
def test_mixture_settings_of_zero_are_refused_with_either_prior(options, message):
    # the edge of "positive": the checks of test_input_validation use -3, -1.0 and inf
    for prior in ("gaussian", "mixture"):
        with pytest.raises(ValueError, match=message):
            AAE(input_dim=4, hidden=(3,), prior=prior, **options)


@pytest.mark.parametrize("fuse_relu", [True, False])
def test_the_decoder_mirrors_the_encoder_and_the_discriminator_follows_disc_hidden(fuse_relu):
    # The other tests use one hidden layer, or check gradients, which pass for any layer order.
    # With separate ReLU layers every other layer is a ReLU: the Dense layers are 0, 2, 4.
    model = AAE(input_dim=6, hidden=(5, 3), latent_dim=2, encoder_type="gaussian", prior="mixture", num_classes=3,
                disc_hidden=(4, 7), likelihood="gaussian-learned", fuse_relu=fuse_relu, dtype="float64")
    shapes = {name: shape for name, _, shape in model.flat.layout}
    dense = (0, 1, 2) if fuse_relu else (0, 2, 4)
    assert [shapes[f"encoder.{i}.W"] for i in dense] == [(6, 5), (5, 3), (3, 2 * 2)]  # μ ‖ logvar
    assert [shapes[f"decoder.{i}.W"] for i in dense] == [(2, 3), (3, 5), (5, 2 * 6)]  # a mean and a logvar per value
    assert [shapes[f"discriminator.{i}.W"] for i in dense] == [(2 + 3 + 1, 4), (4, 7), (7, 1)]  # [z ‖ onehot, K + 1 slots]
    assert len(model.flat.layout) == 3 * 3 * 2


def test_fit_counts_its_steps():
    # model.step counts training steps (one per batch, its three phases together), as for every
    # model: checkpoints store it, and undoing a diverged epoch restores it.
    model = _tiny("gaussian", "mixture")
    x = np.random.default_rng(0).random((10, 6))
    model.fit(x, epochs=2, batch_size=4, verbose=0)
    assert model.step == 2 * 3


def test_the_loss_is_the_reconstruction_in_evaluate_and_in_the_history():
    # "loss" is the reconstruction term, the GAN losses being reported beside it: in evaluate, in
    # fit's history and its validation entries alike.
    model = _tiny("deterministic", "mixture")
    x = np.random.default_rng(0).uniform(0.05, 0.95, (7, 6))
    y = np.array([0, 2, 1, -1, 2, 0, 1])
    got = model.evaluate(x, y, batch_size=3, seed=0)
    assert got["loss"] == got["recon"] and got["disc"] > 0 and got["gen"] > 0
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0, validation_data=(x, y))
    assert history["loss"] == history["recon"] and history["val_loss"] == history["val_recon"]


def test_the_discriminator_input_keeps_the_models_dtype():
    # [z ‖ onehot(y)] of a float32 model stays float32: a float64 one-hot promotes D's whole pass
    # (forward and backward) to float64, which no float64 gradient check can see.
    model = AAE(input_dim=4, hidden=(3,), latent_dim=2, prior="mixture", num_classes=3, disc_hidden=(3,), dtype="float32")
    be = model.backend
    z = be.asarray(np.zeros((3, 2)))
    for labels in (be.asarray(np.array([2, -1, 0]), dtype=np.int64), None):
        assert model._disc_input(z, labels).dtype == np.float32


@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
def test_float32_and_float64_models_draw_the_same_prior_and_train_alike(prior):
    """The prior draws, and prior_distance's ε, are float64 draws rounded, as Backend.normal's
    are: a seed gives the same numbers in float32 and float64. They were drawn by NumPy's
    float32 algorithm, other numbers altogether, and float32 training drifted from float64's
    (the discriminator's loss by 17 % in 3 epochs; every other model agreed to 3e-7)."""
    x = (np.random.default_rng(0).random((12, 16)) > 0.5).astype(float)
    models = {dtype: AAE(16, (8,), 2, encoder_type="gaussian", prior=prior, disc_hidden=(8,), dtype=dtype)
              for dtype in ("float32", "float64")}
    draws = {dtype: m.sample_prior(5, seed=0) for dtype, m in models.items()}
    np.testing.assert_allclose(draws["float32"], draws["float64"], rtol=1e-6, atol=1e-6)
    histories = {dtype: m.fit(x, epochs=3, batch_size=5, verbose=0) for dtype, m in models.items()}
    for key in ("recon", "disc", "gen"):
        np.testing.assert_allclose(histories["float32"][key], histories["float64"][key], rtol=1e-4, err_msg=key)
    distances = {dtype: m.prior_distance(x, seed=3) for dtype, m in models.items()}
    for key in distances["float64"]:
        assert distances["float32"][key] == pytest.approx(distances["float64"][key], rel=1e-3, abs=1e-6), key


def test_prior_distance_takes_bandwidths_as_an_array_or_one_number():
    """np.geomspace is a natural way to give the scales; `not array` raised NumPy's
    "truth value is ambiguous", and one number "'float' object is not iterable"."""
    rng = np.random.default_rng(0)
    p = rng.standard_normal((40, 2))
    c = p + 0.5
    listed = prior_distance(c, p, bandwidths=[0.25, 0.5, 1.0, 2.0, 4.0])
    assert prior_distance(c, p, bandwidths=np.geomspace(0.25, 4.0, 5)) == pytest.approx(listed, rel=1e-12)
    assert prior_distance(c, p, bandwidths=1.0) == prior_distance(c, p, bandwidths=[1.0])
    assert prior_distance(c, p, bandwidths=np.float32(2.0)) == prior_distance(c, p, bandwidths=(2.0,))
    # "1" and True were taken as 1.0; a width of 1e-300 squared to 0 and made every distance NaN
    for bad in ([], np.array([]), [1.0, 0.0], [np.inf], [np.nan], "wide", [None], "1", True, [1.0, "2"], 1e-300, [1e200]):
        with pytest.raises(ValueError, match="bandwidths must be one or more positive numbers"):
            prior_distance(c, p, bandwidths=bad)


def test_prior_distance_is_unchanged_by_moving_both_sets_far_from_the_origin():
    """Every term depends on differences only; ‖a‖² + ‖b‖² − 2a·b computed at 1e8 from the
    origin lost all precision (squared distances came in steps of 8) before the sets were
    centred on their pooled mean."""
    rng = np.random.default_rng(1)
    p = rng.standard_normal((30, 3))
    c = 0.8 * rng.standard_normal((25, 3)) + 0.3
    near = prior_distance(c, p)
    for offset in (1e4, 1e8):
        far = prior_distance(c + offset, p + offset)
        assert far["mmd2"] == pytest.approx(near["mmd2"], rel=1e-6, abs=1e-9)
        assert far["mean_gap"] == pytest.approx(near["mean_gap"], rel=1e-6)
        assert far["cov_gap"] == pytest.approx(near["cov_gap"], rel=1e-6)


@pytest.mark.parametrize("y, shown", [("1", "'1'"), (True, "True"), (np.str_("x"), "'x'")])
def test_one_label_for_all_that_is_no_integer_is_named_by_its_value(y, shown):
    # the shape test came first and said "got shape ()", the form the message itself offers
    model = AAE(12, (8,), 2, prior="mixture", num_classes=3, disc_hidden=(4,), seed=0)
    with pytest.raises(ValueError, match=rf"y must hold integer labels \(one label for all, here\), got {shown} of dtype"):
        model.sample(3, y=y)
    assert model.sample(3, y=2).shape == (3, 12)


@pytest.mark.parametrize("bad", ["a", np.array([["x", "y"]]), np.array([[1j, 0]])])
def test_phase_loss_refuses_noise_that_is_not_real_numbers_as_the_vaes_do(bad):
    """eps="a" gave "eps must be a non-empty batch of shape (batch, 2), got ()" (a ValueError);
    the VAEs' loss says what eps must hold, with a TypeError."""
    model = AAE(6, (4,), 2, encoder_type="gaussian", dtype="float64")
    x = np.full((1, 6), 0.5)
    with pytest.raises(TypeError, match=r"^eps must be an array of real numbers, the reparameterization noise of shape \(batch, 2\)"):
        model.phase_loss("recon", x, eps=bad)
    with pytest.raises(TypeError, match=r"^eps must be an array of real numbers"):
        microvae.VAE(6, (4,), 2, dtype="float64").loss(x, eps=bad)
    assert np.isfinite(model.phase_loss("recon", x, eps=[[0.5, -0.5]]))
