"""microvae.metrics: log-mean-exp, the IWAE bound, ELBO, anomaly scores, ROC, MIG."""

import itertools
import math

import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microvae as mv
from microvae import applications as A
from microvae import metrics
from microvae.datasets import make_sprites
from microvae.layers import Dense, Sequential

# ---------------------------------------------------------------------------------------------
# log_mean_exp


@given(st.integers(1, 6), st.integers(1, 7), st.integers(0, 2 ** 31 - 1), st.sampled_from([0, 1, None]))
def test_log_mean_exp_matches_the_naive_formula_on_safe_values(rows, cols, seed, axis):
    a = np.random.default_rng(seed).uniform(-20, 20, (rows, cols))
    naive = np.log(np.mean(np.exp(a), axis=axis))
    np.testing.assert_allclose(metrics.log_mean_exp(a, axis=axis), naive, rtol=1e-12, atol=1e-12)
    assert metrics.log_mean_exp(a, axis=axis, keepdims=True).shape == np.mean(a, axis=axis, keepdims=True).shape


def test_log_mean_exp_is_finite_and_right_where_the_naive_formula_overflows():
    a = np.array([[1e4, 1e4 + math.log(3.0)], [-1e4, -1e4], [-800.0, -3000.0]])
    with np.errstate(over="ignore", divide="ignore"):
        naive = np.log(np.mean(np.exp(a), axis=1))
    assert not np.isfinite(naive).all()  # the naive formula overflows / underflows here
    out = metrics.log_mean_exp(a, axis=1)
    assert np.isfinite(out).all()
    # log((e^m + 3e^m)/2) = m + log 2;  log((e^m + e^m)/2) = m;  log((e^-800 + ~0)/2) = −800 − log 2
    np.testing.assert_allclose(out, [1e4 + math.log(2.0), -1e4, -800.0 - math.log(2.0)], rtol=1e-14)


def test_log_mean_exp_edge_values():
    assert metrics.log_mean_exp(np.array([-np.inf, -np.inf])) == -np.inf
    assert metrics.log_mean_exp(np.array([0.0, np.inf])) == np.inf
    assert math.isnan(metrics.log_mean_exp(np.array([0.0, np.nan])))
    assert metrics.log_mean_exp(np.array([-np.inf, 0.0])) == pytest.approx(-math.log(2.0))
    assert metrics.log_mean_exp(np.array([5])) == 5.0  # integers are promoted to float
    with pytest.raises(ValueError, match="empty"):
        metrics.log_mean_exp(np.array([]))


# ---------------------------------------------------------------------------------------------
# IWAE and ELBO on a linear-Gaussian model whose exact log p(x) is known


def _exact_linear_gaussian(dim=5, seed=0):
    """p(z) = N(0, 1), p(x|z) = N(w·z + b, I) and an encoder set to the exact posterior:

        q(z|x) = N((wᵀ(x − b)) / (1 + |w|²), 1 / (1 + |w|²))

    so every importance weight equals p(x) = N(x; b, I + w wᵀ), for any z."""
    rng = np.random.default_rng(seed)
    w, b = rng.standard_normal(dim), rng.standard_normal(dim)
    model = mv.VAE(dim, (), 1, likelihood="gaussian", dtype="float64", seed=0,
                   encoder=Sequential(Dense(dim, 2)), decoder=Sequential(Dense(1, dim)))
    s = 1.0 + w @ w
    enc, dec = model.encoder.layers[0], model.decoder.layers[0]
    enc.params["W"][:, 0] = w / s
    enc.params["W"][:, 1] = 0.0
    enc.params["b"][...] = [-(w @ b) / s, -math.log(s)]
    dec.params["W"][0] = w
    dec.params["b"][...] = b
    x = rng.standard_normal((40, dim)) * 2
    cov = np.eye(dim) + np.outer(w, w)
    diff = x - b
    log_px = -0.5 * (np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff) + np.linalg.slogdet(cov)[1] + dim * math.log(2 * math.pi))
    return model, x, log_px


def test_iwae_and_elbo_equal_the_exact_log_likelihood_when_q_is_the_true_posterior():
    model, x, log_px = _exact_linear_gaussian()
    for k in (1, 7, 50):
        np.testing.assert_allclose(metrics.iwae_bound(model, x, k=k, batch_size=16, seed=k), log_px, rtol=1e-10)
    w = metrics.importance_log_weights(model, x, k=9, seed=3)
    assert w.shape == (40, 9)
    np.testing.assert_allclose(w, np.repeat(log_px[:, None], 9, axis=1), rtol=1e-10)  # zero-variance weights
    # the ELBO with a closed-form KL is log p(x) only in expectation (KL(q ‖ posterior) = 0)
    np.testing.assert_allclose(metrics.elbo(model, x, n_samples=4000, seed=1), log_px, atol=0.1)
    np.testing.assert_allclose(model.elbo(x, n_samples=4000), log_px, atol=0.1)


def test_iwae_is_below_the_exact_log_likelihood_when_q_is_off():
    model, x, log_px = _exact_linear_gaussian(seed=1)
    model.encoder.layers[0].params["b"][1] += 1.5  # q too wide: the bounds are now strict
    # L_1 estimated on 40 examples is too noisy to order against L_10 draw by draw: its
    # expectation, the ELBO, is taken from 4000 samples. At k = 200 the gap is nearly closed, so
    # the estimate may land a little above log p(x): it is a bound in expectation only.
    elbo = metrics.elbo(model, x, n_samples=4000, seed=0).mean()
    bounds = [metrics.iwae_bound(model, x, k=k, seed=0).mean() for k in (10, 200)]
    assert elbo < bounds[0] < log_px.mean() and elbo < bounds[1]
    assert abs(log_px.mean() - bounds[1]) < 0.1 * (log_px.mean() - elbo)  # most of the gap closed at k = 200


@pytest.fixture(scope="module")
def sprite_vae():
    """A small VAE trained briefly on sprites, and held-out sprites."""
    sprites = make_sprites(n=1620, seed=0)
    model = mv.VAE(1024, (64,), 4, seed=0)
    model.fit(sprites.images[:1500], epochs=3, batch_size=50, lr=3e-3, verbose=0)
    return model, sprites.images[1500:]


def test_iwae_with_one_sample_is_an_unbiased_elbo_estimate(sprite_vae):
    model, x = sprite_vae
    reference = model.elbo(x, n_samples=64)  # per-example ELBO, 64 draws each
    w = metrics.importance_log_weights(model, x, k=64, seed=1)
    within_sd = np.sqrt((w.var(axis=1, ddof=1)).mean())  # spread of a one-sample estimate about its example's ELBO
    tolerance = 5 * within_sd / math.sqrt(len(x))  # 5 standard errors of the mean over examples
    k1 = metrics.iwae_bound(model, x, k=1, seed=2)
    assert abs(k1.mean() - reference.mean()) < tolerance
    assert abs(w.mean() - reference.mean()) < tolerance
    ours = metrics.elbo(model, x, n_samples=64, seed=3)
    assert abs(ours.mean() - reference.mean()) < tolerance


def test_iwae_bound_is_above_the_elbo_and_rises_with_k(sprite_vae):
    model, x = sprite_vae
    elbo = model.elbo(x, n_samples=64).mean()
    bounds = {k: metrics.iwae_bound(model, x, k=k, seed=0).mean() for k in (1, 5, 50)}
    assert bounds[1] <= bounds[5] <= bounds[50]
    assert bounds[50] > elbo + 1.0  # nats per example: a visible tightening on a briefly trained model
    # Jensen, exactly, on any fixed set of weights: log-mean-exp >= mean
    w = metrics.importance_log_weights(model, x, k=20, seed=5)
    assert np.all(metrics.log_mean_exp(w, axis=1) >= w.mean(axis=1))
    # the bound is the log-mean-exp of those same weights
    np.testing.assert_allclose(metrics.iwae_bound(model, x, k=20, seed=5), metrics.log_mean_exp(w, axis=1), rtol=1e-12)


def test_iwae_is_seeded_and_batch_size_only_regroups_the_work(sprite_vae):
    model, x = sprite_vae
    a = metrics.iwae_bound(model, x[:30], k=8, seed=11, batch_size=30)
    np.testing.assert_array_equal(a, metrics.iwae_bound(model, x[:30], k=8, seed=11, batch_size=30))
    assert not np.array_equal(a, metrics.iwae_bound(model, x[:30], k=8, seed=12, batch_size=30))
    # an example's draws depend on its position, not on batch_size (a memory setting): the same
    # numbers one example at a time, in uneven blocks, or for the first rows alone (they
    # differed, so anomaly scores changed with batch_size)
    for batch_size in (1, 7):
        np.testing.assert_allclose(metrics.iwae_bound(model, x[:30], k=8, seed=11, batch_size=batch_size), a, rtol=1e-6)
    np.testing.assert_allclose(metrics.iwae_bound(model, x[:5], k=8, seed=11), a[:5], rtol=1e-6)
    e = metrics.elbo(model, x[:30], n_samples=3, seed=11, batch_size=30)
    np.testing.assert_allclose(metrics.elbo(model, x[:30], n_samples=3, seed=11, batch_size=4), e, rtol=1e-6)
    scores = metrics.anomaly_scores(model, x[:30], method="iwae", k=8, seed=11, batch_size=30)
    np.testing.assert_allclose(metrics.anomaly_scores(model, x[:30], method="iwae", k=8, seed=11, batch_size=1), scores, rtol=1e-6)


def test_unseeded_bounds_read_the_models_generator_example_by_example():
    """seed=None draws from the model's own generator, example by example: with that generator
    seeded alike, batch_size (a memory setting) changes no number, as with a seed."""
    model = mv.VAE(8, (6,), 2, dtype="float64", seed=0)
    model.flat.data[...] += np.random.default_rng(1).normal(0, 0.3, model.flat.size)
    x = np.random.default_rng(2).uniform(0, 1, (10, 8))
    results = {}
    for batch_size in (10, 3, 1):
        model.backend.seed(5)
        results[batch_size] = (metrics.iwae_bound(model, x, k=4, seed=None, batch_size=batch_size),
                               metrics.elbo(model, x, n_samples=3, seed=None, batch_size=batch_size))
    for batch_size in (3, 1):
        for got, want in zip(results[batch_size], results[10]):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    model.backend.seed(6)
    assert not np.allclose(metrics.iwae_bound(model, x, k=4, seed=None), results[10][0])  # they are the generator's draws


def test_iwae_and_elbo_reject_bad_arguments(sprite_vae):
    model, x = sprite_vae
    for bad in (0, -1, 2.5, True, None, "5", math.inf):
        # what is not a number is a TypeError, as for the models' own counts (model.elbo, evaluate)
        error = TypeError if bad is True or bad is None or isinstance(bad, str) else ValueError
        with pytest.raises(error, match=rf"k must be a positive integer, got {re.escape(repr(bad))}$"):
            metrics.iwae_bound(model, x[:3], k=bad)
    assert metrics.iwae_bound(model, x[:3], k=2.0).shape == (3,)  # a whole float, as everywhere
    with pytest.raises(ValueError, match="n_samples"):
        metrics.elbo(model, x[:3], n_samples=0)
    with pytest.raises(ValueError, match="shape"):
        metrics.iwae_bound(model, x[:3, :100])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.iwae_bound(model, x[:3] * 2)
    with pytest.raises(TypeError, match="labels"):
        metrics.iwae_bound(model, x[:3], y=np.zeros(3))


@pytest.mark.parametrize("bound", ["iwae_bound", "elbo"])
def test_a_draw_count_beyond_memory_fails_before_the_noise_streams_are_spawned(sprite_vae, monkeypatch, bound):
    """k = 10**12 repeats each example 10**12 times: NumPy's MemoryError (or its ValueError for a
    size past the address space) at once, not after minutes of spawning 10**12 noise streams."""
    model, x = sprite_vae

    def spawned(*args):
        raise AssertionError("the noise streams were spawned before the memory was checked")

    monkeypatch.setattr(metrics, "_noise_streams", spawned)
    draws = {"iwae_bound": "k", "elbo": "n_samples"}[bound]
    with pytest.raises(MemoryError, match="Unable to allocate"):
        getattr(metrics, bound)(model, x[:3], **{draws: 10**12})
    with pytest.raises(ValueError, match="array is too big"):
        getattr(metrics, bound)(model, x[:3], **{draws: 10**17})
    with pytest.raises(AssertionError, match="spawned"):  # a count that fits goes on to the streams
        getattr(metrics, bound)(model, x[:3], **{draws: 2})


# ---------------------------------------------------------------------------------------------
# recurrent models: the k draws of a bound are k·n repeated rows, each decoded with its own sequence


def _ragged_sequences(n=5, steps=8, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, steps, features))
    mask = np.ones((n, steps))
    mask[1, 5:] = 0
    mask[3, 2:] = 0
    return x, mask


_RECURRENT = {
    "vrae": lambda: mv.VRAE(3, hidden_size=5, latent_dim=2, dtype="float64", seed=0),
    "hvrae": lambda: mv.HierarchicalVRAE(3, segment_length=4, hidden_size=5, conductor_size=4, latent_dim=2,
                                         dtype="float64", seed=0),
}


@pytest.mark.parametrize("name", sorted(_RECURRENT))
def test_k_sample_bounds_of_recurrent_models_equal_one_sequence_at_a_time(name):
    """With the noise fixed, every log weight equals the model's own objective on that one sequence
    and that one draw: −recon (teacher-forced, masked) + log p(z) − log q(z|x)."""
    model = _RECURRENT[name]()
    x, mask = _ragged_sequences()
    n, k, seed = len(x), 3, 7
    mu, logvar = model.encode(x, mask)
    # the draws importance_log_weights makes: draw i of every example from the seed's i-th spawned stream
    eps = np.stack([np.random.default_rng(c).standard_normal((n, model.latent_dim)) for c in np.random.SeedSequence(seed).spawn(k)])
    recon, kl = np.empty((k, n)), np.empty(n)
    for i in range(k):
        for j in range(n):
            terms = model.loss(x[j : j + 1], mask[j : j + 1], eps=eps[i, j : j + 1])
            recon[i, j], kl[j] = terms.recon, terms.kl
    z = mu + np.exp(0.5 * logvar) * eps
    log_p = -0.5 * (z * z + math.log(2 * math.pi)).sum(axis=2)
    log_q = -0.5 * (eps * eps + logvar + math.log(2 * math.pi)).sum(axis=2)
    expected = (-recon + log_p - log_q).T  # (n, k)
    w = metrics.importance_log_weights(model, x, k=k, y=mask, seed=seed)
    assert w.shape == (n, k)
    np.testing.assert_allclose(w, expected, rtol=1e-10)
    np.testing.assert_allclose(metrics.iwae_bound(model, x, k=k, y=mask, seed=seed), metrics.log_mean_exp(expected, axis=1),
                               rtol=1e-10)
    np.testing.assert_allclose(metrics.elbo(model, x, n_samples=k, y=mask, seed=seed), -recon.mean(axis=0) - kl, rtol=1e-10)
    # the first draw of k is the draw of k = 1 (the same seeded stream), whatever the repetition
    np.testing.assert_allclose(metrics.importance_log_weights(model, x, k=1, y=mask, seed=seed)[:, 0], w[:, 0], rtol=1e-12)
    # the mask matters: without it the padding counts
    assert not np.allclose(metrics.iwae_bound(model, x, k=k, seed=seed), metrics.iwae_bound(model, x, k=k, y=mask, seed=seed))


@pytest.mark.parametrize("name", sorted(_RECURRENT))
def test_reconstruction_error_of_recurrent_models_counts_only_real_steps(name):
    # BCE from logits is the model's own masked recon at z = μ; padding changes nothing
    model = _RECURRENT[name]()
    x, mask = _ragged_sequences()
    scores = metrics.reconstruction_error(model, x, y=mask, batch_size=2)
    at_mu = [model.loss(x[j : j + 1], mask[j : j + 1], eps=np.zeros((1, model.latent_dim))).recon for j in range(len(x))]
    np.testing.assert_allclose(scores, at_mu, rtol=1e-10)
    repadded = x.copy()
    repadded[mask == 0] = 1.0
    for kind in ("bce", "mse"):
        np.testing.assert_allclose(metrics.reconstruction_error(model, repadded, kind=kind, y=mask),
                                   metrics.reconstruction_error(model, x, kind=kind, y=mask), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(_RECURRENT))
def test_default_anomaly_scores_of_recurrent_models(name):
    model = _RECURRENT[name]()
    x, mask = _ragged_sequences()
    for method in ("elbo", "recon", "iwae"):  # "iwae" with the default k = 50
        scores = metrics.anomaly_scores(model, x, method=method, y=mask, n_samples=2, batch_size=2)
        assert scores.shape == (len(x),) and np.isfinite(scores).all(), method
    iwae = metrics.iwae_bound(model, x, y=mask)
    assert np.all(iwae >= metrics.elbo(model, x, n_samples=50, y=mask) - 1.0)  # L_50 is above the ELBO, up to noise


_TAKE_A_MASK = {
    "importance_log_weights": lambda model, x, **a: metrics.importance_log_weights(model, x, k=2, **a),
    "iwae_bound": lambda model, x, **a: metrics.iwae_bound(model, x, k=2, **a),
    "elbo": lambda model, x, **a: metrics.elbo(model, x, **a),
    "reconstruction_error": lambda model, x, **a: metrics.reconstruction_error(model, x, **a),
    "anomaly_scores": lambda model, x, **a: metrics.anomaly_scores(model, x, method="iwae", k=2, **a),
    "denoise": lambda model, x, **a: A.denoise(model, x, **a),
    "denoising_report": lambda model, x, **a: A.denoising_report(model, x, **a).denoised,
}


@pytest.mark.parametrize("function", sorted(_TAKE_A_MASK))
def test_a_sequence_models_mask_goes_in_by_the_models_own_name_too(function):
    """The models take a VRAE's mask as mask=; the metrics and applications take it so as well as y=."""
    call, model = _TAKE_A_MASK[function], _RECURRENT["vrae"]()
    x, mask = _ragged_sequences()
    np.testing.assert_array_equal(call(model, x, mask=mask), call(model, x, y=mask))
    assert not np.array_equal(call(model, x, mask=mask), call(model, x))  # the mask is used: the padding counts without it
    with pytest.raises(TypeError, match=r"VRAE: pass the mask once, as mask= or as y=, not both"):
        call(model, x, y=mask, mask=mask)
    vae, cvae = mv.VAE(6, (5,), 2, seed=0), mv.CVAE(6, 3, (5,), 2, seed=0)
    images = np.random.default_rng(0).uniform(0, 1, (4, 6))
    with pytest.raises(TypeError, match=r"mask= is a sequence model's .*; VAE takes no second array"):
        call(vae, images, mask=np.ones((4, 6)))
    with pytest.raises(TypeError, match=r"mask= is a sequence model's .*; CVAE takes its class labels as y="):
        call(cvae, images, mask=np.ones((4, 6)))


# ---------------------------------------------------------------------------------------------
# the adversarial autoencoder: a reconstruction error, but no ELBO


def test_reconstruction_error_of_an_aae_uses_its_public_reconstruction():
    rng = np.random.default_rng(0)
    x = rng.random((30, 16))
    for aae in (mv.AAE(16, (8,), 2, seed=0), mv.AAE(16, (8,), 3, encoder_type="gaussian", seed=1)):
        rec = aae.reconstruct(x).astype(np.float64)
        np.testing.assert_allclose(metrics.reconstruction_error(aae, x, kind="mse", batch_size=7),
                                   ((x - rec) ** 2).sum(axis=1), rtol=1e-5)
        p = np.clip(rec, 1e-7, 1 - 1e-7)
        bce = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1)
        np.testing.assert_allclose(metrics.reconstruction_error(aae, x), bce, rtol=1e-4)
        np.testing.assert_allclose(metrics.anomaly_scores(aae, x, method="recon"), bce, rtol=1e-4)
    mixture = mv.AAE(16, (8,), 2, prior="mixture", num_classes=3, seed=0)
    labels = np.arange(30) % 3
    np.testing.assert_allclose(metrics.reconstruction_error(mixture, x, y=labels), metrics.reconstruction_error(mixture, x))


def test_likelihood_bounds_of_an_aae_are_a_clear_type_error():
    aae = mv.AAE(16, (8,), 2, seed=0)
    x = np.random.default_rng(0).random((4, 16))
    calls = [lambda: metrics.elbo(aae, x), lambda: metrics.iwae_bound(aae, x, k=3),
             lambda: metrics.importance_log_weights(aae, x, k=3)]
    calls += [lambda m=m: metrics.anomaly_scores(aae, x, method=m) for m in ("elbo", "iwae")]
    for call in calls:
        with pytest.raises(TypeError, match=r"AAE has no ELBO \(no KL term to a prior\).*method='recon'"):
            call()


# ---------------------------------------------------------------------------------------------
# reconstruction error and anomaly scores


def test_reconstruction_error_matches_its_definition(sprite_vae):
    model, x = sprite_vae
    x = x[:50]
    rec = model.reconstruct(x).astype(np.float64)
    mse = metrics.reconstruction_error(model, x, kind="mse")
    np.testing.assert_allclose(mse, ((x - rec) ** 2).sum(axis=1), rtol=1e-5)
    bce = metrics.reconstruction_error(model, x, kind="bce", batch_size=7)
    p = np.clip(rec, 1e-7, 1 - 1e-7)
    textbook = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1)
    np.testing.assert_allclose(bce, textbook, rtol=1e-3)
    with pytest.raises(ValueError, match="kind"):
        metrics.reconstruction_error(model, x, kind="l1")


def test_reconstruction_error_of_a_gaussian_model():
    model, x, _ = _exact_linear_gaussian()
    mu, _ = model.encode(x)
    rec = model.decode(mu)
    np.testing.assert_allclose(metrics.reconstruction_error(model, x, kind="mse"), ((x - rec) ** 2).sum(axis=1), rtol=1e-10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.reconstruction_error(model, x, kind="bce")  # real-valued data: BCE is undefined


def test_reconstruction_anomaly_scores_take_kind_and_batch_size(monkeypatch):
    model, x, _ = _exact_linear_gaussian()
    np.testing.assert_array_equal(metrics.anomaly_scores(model, x, "recon", kind="mse"),
                                  metrics.reconstruction_error(model, x, kind="mse"))
    with pytest.raises(ValueError, match=r"kind='bce' needs data in \[0, 1\]; use kind='mse'"):
        metrics.anomaly_scores(model, x, "recon")  # real-valued data
    with pytest.raises(ValueError, match=r"kind='mse' applies to method='recon' only, got method='elbo'"):
        metrics.anomaly_scores(model, x, "elbo", kind="mse")
    blocks = []
    decode = model._decode
    monkeypatch.setattr(model, "_decode", lambda z, *rest: blocks.append(len(z)) or decode(z, *rest))
    metrics.anomaly_scores(model, x[:30], "recon", kind="mse", batch_size=7)
    assert blocks == [7, 7, 7, 7, 2]


def test_likelihood_anomaly_scores_work_in_blocks_of_batch_size(monkeypatch):
    """method='elbo' and 'iwae' go through x batch_size examples at a time too (n_samples·b or k·b
    decoder rows a block): batch_size bounds their memory, and is not dropped on the way."""
    model = mv.VAE(8, (6,), 2, dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(0, 1, (30, 8))
    blocks = []
    decode = model._decode
    monkeypatch.setattr(model, "_decode", lambda z, *rest: blocks.append(len(z)) or decode(z, *rest))
    metrics.anomaly_scores(model, x, "elbo", n_samples=2, batch_size=7)
    assert blocks == [14, 14, 14, 14, 4]
    blocks.clear()
    metrics.anomaly_scores(model, x, "iwae", k=3, batch_size=7)
    assert blocks == [21, 21, 21, 21, 6]


def test_bce_of_a_gaussian_model_needs_data_in_the_unit_interval_on_both_sides():
    """Data above 1 makes the clipped BCE's (1 − x)·log(1 − x̂) term reward error; it is refused like
    data below 0 (the Gaussian test's data lies outside on both sides at once)."""
    model = mv.VAE(4, (3,), 2, likelihood="gaussian", dtype="float64", seed=0)
    inside = np.random.default_rng(0).uniform(0, 1, (5, 4))
    assert np.isfinite(metrics.reconstruction_error(model, inside, kind="bce")).all()
    for outside in (inside + 0.5, inside - 0.5):
        with pytest.raises(ValueError, match=r"kind='bce' needs data in \[0, 1\]"):
            metrics.reconstruction_error(model, outside, kind="bce")


def test_bce_of_a_bernoulli_model_is_exact_where_the_probabilities_saturate():
    """For a Bernoulli model kind='bce' is computed from the logits l, Σ softplus(l) − x·l, with no
    clipping: a logit of ±30 against the other value costs 30 nats, where BCE from σ(l) clipped to
    [1e-7, 1 − 1e-7] would stop at −log 1e-7 ≈ 16.1. (At moderate logits the two agree to rounding,
    which is all the other tests see.)"""
    model = mv.VAE(6, (4,), 2, dtype="float64", seed=0)
    head = model.decoder.layers[-1]
    head.params["W"][...] = 0.0  # the logits are the bias, whatever the code
    logits = np.array([30.0, -30.0, 30.0, -30.0, 0.0, 5.0])
    head.params["b"][...] = logits
    x = np.array([[0.0, 1.0, 1.0, 0.0, 1.0, 0.5], [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]])
    expected = (np.logaddexp(0.0, logits) - x * logits).sum(axis=1)
    assert expected.min() > 60
    np.testing.assert_allclose(metrics.reconstruction_error(model, x), expected, rtol=1e-10)
    np.testing.assert_allclose(metrics.anomaly_scores(model, x, "recon"), expected, rtol=1e-10)


def test_anomaly_scores_flag_noise_images_against_sprites(sprite_vae):
    model, x = sprite_vae
    normal = x[:100]
    noise = (np.random.default_rng(0).random((100, 1024)) < 0.1).astype(np.float32)  # sparse random pixels
    labels = np.r_[np.zeros(100), np.ones(100)]
    both = np.concatenate([normal, noise])
    for method in ("elbo", "recon", "iwae"):
        scores = metrics.anomaly_scores(model, both, method=method, k=10)
        assert scores.shape == (200,)
        assert metrics.roc_auc(scores, labels) > 0.95, method
    np.testing.assert_allclose(metrics.anomaly_scores(model, normal, "elbo", seed=4), -metrics.elbo(model, normal, seed=4))
    np.testing.assert_allclose(metrics.anomaly_scores(model, normal, "iwae", k=5, seed=4),
                               -metrics.iwae_bound(model, normal, k=5, seed=4))
    with pytest.raises(ValueError, match="method"):
        metrics.anomaly_scores(model, normal, method="likelihood")


# ---------------------------------------------------------------------------------------------
# ROC


def test_roc_auc_on_cases_with_known_answers():
    assert metrics.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0  # perfect separation
    assert metrics.roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0  # reversed
    assert metrics.roc_auc([3.0] * 6, [0, 1, 0, 1, 1, 0]) == 0.5  # all tied
    # by hand: positive 0.35 beats 0.1, loses to 0.4; positive 0.8 beats both -> 3 of 4 pairs
    assert metrics.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    # with a tie: pos 2 vs (neg 1: win, neg 2: half), pos 3 vs both: win -> 3.5 / 4
    assert metrics.roc_auc([1, 2, 2, 3], [False, True, False, True]) == 0.875


def test_roc_refuses_scores_or_labels_that_are_not_one_per_example():
    """(n, 2) scores flattened would pair 2n scores with the wrong labels."""
    for scores, labels in (([[0.1, 0.9], [0.2, 0.8]], [[0, 1], [0, 1]]), ([[0.1], [0.9]], [0, 1])):
        for fn in (metrics.roc_auc, metrics.roc_curve):
            with pytest.raises(ValueError, match="scores and labels must be 1-D, one per example"):
                fn(scores, labels)


def test_anomaly_scores_checks_k_and_n_samples_whichever_method_runs():
    model = mv.VAE(4, (3,), 2)
    x = np.full((2, 4), 0.5)
    for method in ("elbo", "recon", "iwae"):
        for options in ({"k": -5}, {"n_samples": 0}, {"k": 2.5}):
            with pytest.raises(ValueError, match=f"{next(iter(options))} must be a positive integer"):
                metrics.anomaly_scores(model, x, method, **options)


@given(st.integers(0, 2 ** 31 - 1), st.integers(2, 40), st.integers(1, 6))
def test_roc_auc_equals_the_pair_count_and_the_area_under_roc_curve(seed, n, levels):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.5
    labels[:2] = [True, False]
    scores = rng.integers(0, levels, n).astype(float)  # few levels: many ties
    pos, neg = scores[labels], scores[~labels]
    pairs = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg)) / (len(pos) * len(neg))
    auc = metrics.roc_auc(scores, labels)
    assert auc == pytest.approx(pairs, abs=1e-12)
    fpr, tpr, thresholds = metrics.roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thresholds) < 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(auc, abs=1e-12)
    # each point is the rule "score >= threshold"
    for f, t, th in zip(fpr, tpr, thresholds):
        assert f == pytest.approx(np.mean(neg >= th)) and t == pytest.approx(np.mean(pos >= th))


@given(st.integers(0, 2 ** 31 - 1), st.integers(2, 30))
def test_roc_counts_tied_infinities_as_ties(seed, n):
    # −ELBO can be +inf; inf − inf is NaN, which must not split a run of tied infinite scores
    assert metrics.roc_auc([np.inf, np.inf], [1, 0]) == 0.5
    assert metrics.roc_auc([np.inf, np.inf, 0, 1], [1, 0, 0, 1]) == 0.625
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.5
    labels[:2] = [True, False]
    scores = np.array([-np.inf, -1.0, 0.0, 2.0, np.inf])[rng.integers(0, 5, n)]
    pos, neg = scores[labels], scores[~labels]
    pairs = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg)) / (len(pos) * len(neg))
    auc = metrics.roc_auc(scores, labels)
    assert auc == pytest.approx(pairs, abs=1e-12)
    fpr, tpr, thresholds = metrics.roc_curve(scores, labels)
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(auc, abs=1e-12)
    # the leading +inf is "nothing flagged"; +inf scores, if any, are the next point (also at +inf)
    assert (thresholds[0], fpr[0], tpr[0]) == (np.inf, 0.0, 0.0)
    if scores.max() == np.inf:
        assert thresholds[1] == np.inf
        assert (fpr[1], tpr[1]) == (np.mean(neg == np.inf), np.mean(pos == np.inf))


def test_roc_rejects_bad_input():
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_auc([1, 2, 3], [1, 1, 1])
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_curve([1, 2, 3], [0, 0, 0])
    with pytest.raises(ValueError, match="same length"):
        metrics.roc_auc([1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        metrics.roc_auc([1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="0/1"):
        metrics.roc_auc([1, 2, 3], [0, 1, 2])
    with pytest.raises(ValueError, match="both are empty"):
        metrics.roc_auc([], [])


@pytest.mark.parametrize("bad, dtype", [(np.array([1 + 5j, 2, 3]), "complex128"), (np.array([1, None, 3], dtype=object), "object"),
                                        (np.array(["1", "2", "3"]), "<U1")])
@pytest.mark.parametrize("call, name", [
    (lambda bad: metrics.roc_auc(bad, [0, 1, 1]), "roc_auc expects .* for scores"),
    (lambda bad: metrics.roc_curve(bad, [0, 1, 1]), "roc_curve expects .* for scores"),
    (lambda bad: metrics.log_mean_exp(bad), "log_mean_exp expects .* for a"),
    (lambda bad: metrics.discretize(bad), "discretize expects .* for codes"),
    (lambda bad: metrics.mutual_information_matrix(bad, [0, 1, 1]), "discretize expects .* for codes"),
    (lambda bad: metrics.mutual_information_gap(np.stack([bad, bad], axis=1), [0, 1, 1]), "mutual_information_gap expects .* for codes"),
], ids=["roc_auc", "roc_curve", "log_mean_exp", "discretize", "mutual_information_matrix", "mutual_information_gap"])
def test_data_that_is_not_real_numbers_is_refused_not_cast(call, name, bad, dtype):
    """The casts to float dropped an imaginary part with only a warning (roc_auc ranked 1 + 5j as 1),
    turned None into NaN and read strings of digits as their numbers."""
    with pytest.raises(TypeError, match=rf"{name}, got dtype {dtype}$"):
        call(bad)


# ---------------------------------------------------------------------------------------------
# information and MIG


def test_entropy_and_mutual_information_of_simple_variables():
    a = np.repeat(np.arange(4), 25)
    assert metrics.entropy(a) == pytest.approx(math.log(4))
    assert metrics.entropy(np.zeros(10)) == 0.0
    assert math.copysign(1.0, metrics.entropy([3])) == 1.0  # 0.0, not −0.0 (prints as "-0.0")
    assert metrics.mutual_information(a, a) == pytest.approx(math.log(4))
    assert metrics.mutual_information(a, 10 * a + 7) == pytest.approx(math.log(4))  # only the partition matters
    b = np.tile(np.arange(5), 20)  # exactly independent of a (every pair equally often)
    assert metrics.mutual_information(a, b) == pytest.approx(0.0, abs=1e-12)
    # one bit shared: c = a mod 2 -> I(a; c) = H(c) = log 2
    assert metrics.mutual_information(a, a % 2) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="same length"):
        metrics.mutual_information(a, b[:10])


def test_entropy_and_mutual_information_name_labels_that_mix_kinds():
    """An object array of None and numbers (or strings and numbers) cannot be sorted into
    classes: NumPy's own TypeError ("'<' not supported between instances of ...") named no
    argument."""
    with pytest.raises(TypeError, match="labels must all be numbers or all strings .* got a mix of NoneType, int"):
        metrics.entropy(np.array([1, None, 2], dtype=object))
    with pytest.raises(TypeError, match="b must all be numbers or all strings .* got a mix of int, str"):
        metrics.mutual_information([0, 1, 0], np.array([1, "a", 1], dtype=object))
    # one kind in an object array is fine: three equally likely strings
    assert metrics.entropy(np.array(["x", "y", "z"], dtype=object)) == pytest.approx(math.log(3))


def test_discretize_uses_equal_width_bins_per_column():
    codes = np.array([[0.0, 5.0], [0.5, 5.0], [0.99, 5.0], [1.0, 5.0]])
    bins = metrics.discretize(codes, n_bins=4)
    np.testing.assert_array_equal(bins[:, 0], [0, 2, 3, 3])
    np.testing.assert_array_equal(bins[:, 1], [0, 0, 0, 0])  # a constant column
    with pytest.raises(ValueError, match="NaN"):
        metrics.discretize(np.array([[np.nan, 1.0]]))


def test_discretize_a_range_wider_than_the_largest_double():
    """1e308 − (−1e308) overflows to Inf: every value fell into bin 0, with only a warning."""
    codes = np.array([[-1e308, 1.0], [0.0, 2.0], [1e308, 3.0], [0.6e308, 4.0]])
    np.testing.assert_array_equal(metrics.discretize(codes, n_bins=4), [[0, 0], [2, 1], [3, 2], [3, 3]])
    huge = np.array([-np.finfo(np.float64).max, -0.5e308, 0.5e308, np.finfo(np.float64).max])
    np.testing.assert_array_equal(metrics.discretize(huge, n_bins=4)[:, 0], [0, 1, 2, 3])


@given(st.integers(0, 2 ** 31 - 1), st.integers(1, 40), st.integers(1, 3), st.integers(1, 12))
def test_discretize_puts_each_value_in_its_equal_width_bin(seed, n, d, n_bins):
    """Bin b of a column covers [lo + b·w, lo + (b + 1)·w), w = (hi − lo)/n_bins, the last bin closed
    at hi: the floor of (x − lo)/w, not its rounding (the fixed case above cannot tell the two)."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, d)
    bins = metrics.discretize(codes, n_bins)
    assert bins.dtype == np.int64 and bins.shape == (n, d)
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    for j in range(d):
        if hi[j] == lo[j]:
            assert np.all(bins[:, j] == 0)
            continue
        position = (codes[:, j] - lo[j]) / ((hi[j] - lo[j]) / n_bins)
        # a value on an edge (up to rounding) may fall on either side of it
        assert np.all(bins[:, j] <= position + 1e-9)
        assert np.all((bins[:, j] + 1 > position - 1e-9) | (bins[:, j] == n_bins - 1))
    centres = (np.arange(n_bins) + 0.5) / n_bins  # one value in the middle of each bin, and both ends
    np.testing.assert_array_equal(metrics.discretize(np.r_[0.0, centres, 1.0], n_bins)[:, 0],
                                  np.r_[0, np.arange(n_bins), n_bins - 1])


def test_mutual_information_is_never_negative():
    """I(a; b) >= 0. For an a independent of b (here a constant) the plug-in sum is 0 up to rounding,
    which for these lengths lands at −2e-16: it is reported as 0.0, not as a negative information."""
    for n, k in ((13, 4), (37, 5), (43, 6), (9, 7)):
        assert metrics.mutual_information(np.zeros(n), np.arange(n) % k) == 0.0, (n, k)


def test_mutual_information_matrix_and_mig_bin_the_codes_with_n_bins():
    """M[j, f] is the mutual information of code j cut into n_bins equal-width bins with factor f, for
    the n_bins given (the other tests use the default, 20, only)."""
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, (500, 2))
    codes = factors + rng.uniform(0, 1.5, (500, 2))
    for n_bins in (2, 3, 7):
        bins = metrics.discretize(codes, n_bins)
        expected = [[metrics.mutual_information(bins[:, j], factors[:, f]) for f in range(2)] for j in range(2)]
        np.testing.assert_allclose(metrics.mutual_information_matrix(codes, factors, n_bins=n_bins), expected, rtol=1e-12)
        _, _, mi = metrics.mutual_information_gap(codes, factors, n_bins=n_bins, return_per_factor=True)
        np.testing.assert_allclose(mi, expected, rtol=1e-12)
    assert not np.allclose(metrics.mutual_information_matrix(codes, factors, n_bins=2),
                           metrics.mutual_information_matrix(codes, factors))


def _factors(n=6000, sizes=(3, 6, 10), seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, k, n) for k in sizes], axis=1)


def test_mig_is_near_one_for_codes_that_copy_the_factors():
    factors = _factors()
    rng = np.random.default_rng(1)
    codes = factors * np.array([1.0, -2.0, 0.5]) + 3.0  # one dimension per factor, any scale or sign
    codes = np.concatenate([codes, rng.standard_normal((len(codes), 2))], axis=1)  # plus two noise dimensions
    mig, gaps, mi = metrics.mutual_information_gap(codes, factors, return_per_factor=True)
    assert mig > 0.95 and np.all(gaps > 0.95)
    assert mi.shape == (5, 3)
    np.testing.assert_array_equal(mi.argmax(axis=0), [0, 1, 2])


def test_mig_is_near_zero_for_codes_independent_of_the_factors():
    factors = _factors()
    codes = np.random.default_rng(2).standard_normal((len(factors), 4))
    assert metrics.mutual_information_gap(codes, factors) < 0.03


def test_mig_gap_vanishes_for_a_factor_captured_twice():
    factors = _factors()
    codes = np.stack([factors[:, 0], factors[:, 0] * 3.0, factors[:, 1], factors[:, 2]], axis=1).astype(float)
    mig, gaps, _ = metrics.mutual_information_gap(codes, factors, return_per_factor=True)
    assert gaps[0] == pytest.approx(0.0, abs=1e-12)
    assert gaps[1] > 0.95 and gaps[2] > 0.95
    assert mig == pytest.approx(np.mean(gaps))


def test_mig_with_no_factors_or_no_codes_says_so():
    codes = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match=r"at least one factor, got \(50, 0\)"):  # was "every factor is constant"
        metrics.mutual_information_gap(codes, np.zeros((50, 0)))
    assert metrics.mutual_information_matrix(np.zeros((5, 0)), np.arange(5)).shape == (0, 1)  # was (0,)


def test_mig_refuses_continuous_or_non_finite_factors_and_takes_whole_floats_and_strings():
    """A continuous factor was read as n distinct labels, each seen once: a meaningless MIG, no error."""
    rng = np.random.default_rng(0)
    codes, labels = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    continuous = rng.random(60)
    with pytest.raises(ValueError, match=rf"factors must be discrete labels \(integers, booleans or strings\), found the value {float(continuous[0])!r}: cut"):
        metrics.mutual_information_gap(codes, continuous)
    with pytest.raises(ValueError, match="cut a continuous factor into bins first"):
        metrics.mutual_information_matrix(codes, np.stack([labels, labels + 0.5], axis=1))
    for bad in (np.nan, np.inf):
        factor = labels.astype(float)
        factor[7] = bad
        with pytest.raises(ValueError, match="factors contain NaN or Inf; they must be discrete labels"):
            metrics.mutual_information_gap(codes, factor)
    want = metrics.mutual_information_gap(codes, labels)
    assert metrics.mutual_information_gap(codes, labels.astype(np.float32)) == want
    assert metrics.mutual_information_gap(codes, np.array(["abc"[k] for k in labels])) == want


@pytest.mark.parametrize("call, what", [(lambda bad, ok: metrics.mutual_information(bad, ok), "a"),
                                       (lambda bad, ok: metrics.mutual_information(ok, bad), "b"),
                                       (lambda bad, ok: metrics.entropy(bad), "labels")], ids=["a", "b", "entropy"])
def test_information_of_continuous_or_non_finite_values_is_refused_as_for_factors(call, what):
    """mutual_information(rng.random(n), rng.random(n)) was log n, every float a class seen once,
    where mutual_information_matrix refused such a factor; whole floats stay labels."""
    rng = np.random.default_rng(0)
    continuous, labels = rng.random(60), rng.integers(0, 3, 60)
    with pytest.raises(ValueError, match=rf"{what} must be discrete labels \(integers, booleans or strings\), found the "
                                         rf"value {float(continuous[0])!r}: cut a continuous variable into bins first"):
        call(continuous, labels)
    for bad in (np.nan, np.inf):
        factor = labels.astype(float)
        factor[7] = bad
        with pytest.raises(ValueError, match=f"{what} contains? NaN or Inf; (it must hold|they must be) discrete labels"):
            call(factor, labels)
    assert call(labels.astype(np.float32), labels) == call(labels, labels)


def test_mig_skips_constant_factors_and_checks_its_input():
    factors = _factors()
    factors_with_constant = np.concatenate([factors, np.zeros((len(factors), 1), dtype=int)], axis=1)
    codes = factors.astype(float)
    mig, gaps, _ = metrics.mutual_information_gap(codes, factors_with_constant, return_per_factor=True)
    assert np.isnan(gaps[-1]) and mig == pytest.approx(metrics.mutual_information_gap(codes, factors))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mutual_information_gap(codes[:, :1], factors)
    with pytest.raises(ValueError, match="same number of rows"):
        metrics.mutual_information_gap(codes, factors[:10])
    with pytest.raises(ValueError, match="constant"):
        metrics.mutual_information_gap(codes, np.zeros((len(codes), 2)))


def test_a_constant_code_or_factor_is_set_aside_not_divided_by_zero():
    """A constant code column (zero width) falls in bin 0 and a constant factor (zero entropy) is left
    out of MIG by their own cases, not through 0/0: no RuntimeWarning (an error under -W error), and
    no NaN cast to an integer (whose value NumPy leaves undefined)."""
    factor = np.repeat(np.arange(4), 25)
    factors = np.stack([factor, np.zeros(100, dtype=int)], axis=1)
    codes = np.stack([factor * 0.5, np.full(100, 2.0)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(metrics.discretize(codes, 4)[:, 1], 0)
        mig, gaps, _ = metrics.mutual_information_gap(codes, factors, return_per_factor=True)
    assert np.isnan(gaps[1]) and mig == gaps[0] == pytest.approx(1.0)  # code 0 copies factor 0, code 1 tells nothing


def test_mig_is_the_gap_divided_by_the_factors_entropy():
    # A balanced factor with 4 values (H = log 4) copied by one code and coarsened to 2 values
    # (I = log 2) by another: the normalised gap is (log 4 − log 2)/log 4 = ½ exactly. The other
    # tests only see gaps of 0 or ≈ 1, which an unnormalised gap also passes (H ≥ log 3 > 0.95).
    factor = np.repeat(np.arange(4), 250)
    codes = np.stack([factor * 0.7, factor // 2], axis=1).astype(float)
    mig, gaps, mi = metrics.mutual_information_gap(codes, factor, return_per_factor=True)
    np.testing.assert_allclose(mi[:, 0], [math.log(4), math.log(2)], rtol=1e-12)
    assert gaps[0] == pytest.approx(0.5, rel=1e-12) and mig == pytest.approx(0.5, rel=1e-12)


def _exact_linear_gaussian_cvae(dim=4, k=3, seed=0):
    """The linear-Gaussian model above as a CVAE whose learned prior is N(m, v), v ≠ 1:
    p(x|z) = N(w·z + b, I) and q set to the exact posterior N((m/v + wᵀ(x − b))/s, 1/s),
    s = 1/v + |w|², so every importance weight is p(x) = N(x; w·m + b, I + v·w wᵀ)."""
    rng = np.random.default_rng(seed)
    w, b = rng.standard_normal(dim), rng.standard_normal(dim)
    m, v = 0.8, math.exp(-1.3)
    model = mv.CVAE(dim, num_classes=k, hidden=(), latent_dim=1, learned_prior=True, prior_hidden=2,
                    likelihood="gaussian", dtype="float64", seed=0)
    s = 1.0 / v + w @ w
    enc, dec, prior_out = model.encoder.layers[0], model.decoder.layers[0], model.prior.layers[-1]
    enc.params["W"][...] = 0.0
    enc.params["W"][:dim, 0] = w / s
    enc.params["b"][...] = [(m / v - w @ b) / s, -math.log(s)]
    dec.params["W"][...] = 0.0
    dec.params["W"][0] = w
    dec.params["b"][...] = b
    prior_out.params["W"][...] = 0.0
    prior_out.params["b"][...] = [m, math.log(v)]
    x = rng.standard_normal((30, dim)) * 2
    y = rng.integers(0, k, 30)
    cov = np.eye(dim) + v * np.outer(w, w)
    diff = x - (w * m + b)
    log_px = -0.5 * (np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff) + np.linalg.slogdet(cov)[1] + dim * math.log(2 * math.pi))
    return model, x, y, log_px


def test_iwae_with_a_learned_prior_equals_the_exact_log_likelihood_when_q_is_the_true_posterior():
    # log p(z) comes from the model's learned prior N(μ_p, e^{logvar_p}), with its log-variance
    # term; a prior of variance 1 (the only one tested before) hid a dropped e^{−logvar_p} or logvar_p.
    model, x, y, log_px = _exact_linear_gaussian_cvae()
    mu_p, logvar_p = model.prior_moments(y)
    assert np.allclose(logvar_p, -1.3) and np.allclose(mu_p, 0.8)
    w = metrics.importance_log_weights(model, x, k=5, y=y, seed=2)
    np.testing.assert_allclose(w, np.repeat(log_px[:, None], 5, axis=1), rtol=1e-10,
                               err_msg="log w = log p(x|z) + log p(z|y) − log q(z|x,y) must be log p(x) for every draw")
    np.testing.assert_allclose(metrics.iwae_bound(model, x, k=3, y=y, batch_size=7, seed=1), log_px, rtol=1e-10)
    # the ELBO with its closed-form KL to the learned prior is log p(x) in expectation
    np.testing.assert_allclose(metrics.elbo(model, x, n_samples=4000, y=y, seed=1), log_px, atol=0.1)


def test_importance_weights_of_a_float32_model_take_every_term_at_the_z_it_decodes(monkeypatch):
    """The decoder of a float32 model is given z rounded to float32; log p(z) and log q(z|x)
    must be taken at that same z. With a tight posterior (σ ≈ 3e-4) and |μ| near 1, the
    rounding moves ε by about 1e-4, so a log q at the unrounded z would be off by ~1e-4 nats."""
    model = mv.VAE(6, (5,), 3, seed=0)
    assert model.backend.dtype == np.float32
    head = model.encoder.layers[-1]
    head.params["b"][:3] += 1.0
    head.params["b"][3:] = -16.0
    x = np.random.default_rng(1).random((7, 6)).astype(np.float32)
    seen = []
    decode = model._decode
    monkeypatch.setattr(model, "_decode", lambda z, *rest: seen.append(np.array(z)) or decode(z, *rest))
    w = metrics.importance_log_weights(model, x, k=4, seed=2)
    (z,) = seen
    assert z.dtype == np.float32 and z.shape == (4 * 7, 3)
    monkeypatch.setattr(model, "_decode", decode)
    mu, logvar = (a.astype(np.float64) for a in model.encode(x))
    z64 = z.astype(np.float64).reshape(4, 7, 3)
    eps = (z64 - mu) * np.exp(-0.5 * logvar)
    log_q = -0.5 * (eps**2 + logvar + math.log(2 * math.pi)).sum(axis=2)
    log_p = -0.5 * (z64**2 + math.log(2 * math.pi)).sum(axis=2)
    nll = model.likelihood.nll(model._decode(z), np.tile(x, (4, 1)))[0].astype(np.float64).reshape(4, 7)
    np.testing.assert_allclose(w, (-nll + log_p - log_q).T, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- an audit of the checks (876dc64 and after)


@pytest.mark.parametrize("call, name", [
    (lambda: metrics.log_mean_exp([[1, 2], [3]]), "a"),
    (lambda: metrics.roc_auc([[1], 2], [1, 0]), "scores"),
    (lambda: metrics.mutual_information([[0, 1], [1]], [0, 1]), "a"),
    (lambda: metrics.mutual_information_gap(np.zeros((4, 2)), [[0, 1], [1]]), "factors"),
])
def test_ragged_lists_are_named_not_left_to_numpy(call, name):
    # was NumPy's "setting an array element with a sequence ... inhomogeneous shape"
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} is a ragged list \(its rows have different lengths\)"):
        call()


@pytest.mark.parametrize("labels, shape", [(None, r"\(\)"), ([[0, 1], [1, 1]], r"\(2, 2\)"), (np.int64(3), r"\(\)")])
def test_entropy_takes_one_label_per_example(labels, shape):
    # None was one object label (entropy 0.0) and a table was flattened into one variable
    with pytest.raises(ValueError, match=rf"labels must be 1-D, one label per example, got shape {shape}"):
        metrics.entropy(labels)


def test_mutual_information_refuses_a_table_paired_with_a_column():
    with pytest.raises(ValueError, match=r"a must be 1-D, one label per example, got shape \(2, 2\)"):
        metrics.mutual_information([[0, 1], [1, 0]], [0, 1, 1, 0])  # gave 0.693, a flattened against b


@pytest.mark.parametrize("call", [metrics.mutual_information_gap, metrics.mutual_information_matrix])
def test_mig_names_missing_factors_and_the_factor_column_that_mixes_kinds(call):
    codes = np.random.default_rng(0).standard_normal((200, 3))
    with pytest.raises(ValueError, match=r"factors must be shaped \(n,\) or \(n, n_factors\) .*got \(\)"):
        call(codes, None)  # was "len() of unsized object"
    mixed = np.array([[0, "a"], [1, 1]] * 100, dtype=object)
    with pytest.raises(TypeError, match=r"factors\[:, 1\] must all be numbers or all strings .*got a mix of int, str"):
        call(codes, mixed)  # named the internal argument "b"


def test_mutual_information_matrix_is_unchanged_by_naming_the_columns():
    rng = np.random.default_rng(3)
    codes, factors = rng.standard_normal((300, 3)), rng.integers(0, 4, (300, 2))
    bins = metrics.discretize(codes, 20)
    expected = [[metrics.mutual_information(bins[:, j], factors[:, f]) for f in range(2)] for j in range(3)]
    np.testing.assert_array_equal(metrics.mutual_information_matrix(codes, factors), expected)


@pytest.mark.parametrize("seed, error", [("abc", TypeError), (-5, ValueError), (1.5, ValueError)])
def test_anomaly_scores_check_the_seed_whichever_method_runs(seed, error):
    model, x = mv.VAE(12, hidden=(8,), latent_dim=2, seed=0), np.random.default_rng(0).random((8, 12))
    with pytest.raises(error, match="seed must be None or an integer >= 0"):
        metrics.anomaly_scores(model, x, method="recon", seed=seed)  # "recon" draws nothing, and took any seed


def test_anomaly_scores_name_an_unknown_method_before_a_kind():
    model, x = mv.VAE(12, hidden=(8,), latent_dim=2, seed=0), np.random.default_rng(0).random((8, 12))
    with pytest.raises(ValueError, match="method must be 'elbo', 'recon' or 'iwae', got 'bogus'"):
        metrics.anomaly_scores(model, x, method="bogus", kind="mse")  # said kind='mse' applies to 'recon' only


@pytest.mark.parametrize("call, name", [
    (lambda flag: metrics.log_mean_exp(np.ones((3, 4)), 1, keepdims=flag), "keepdims"),
    (lambda flag: metrics.mutual_information_gap(np.random.default_rng(0).standard_normal((50, 2)),
                                                 np.arange(50) % 3, return_per_factor=flag), "return_per_factor"),
])
@pytest.mark.parametrize("flag", ["no", 1, None])
def test_metric_switches_are_true_or_false(call, name, flag):
    with pytest.raises(TypeError, match=f"{name} must be True or False"):  # bool("no") is True
        call(flag)


class _DuckModel:
    """Exactly the attributes the metrics module's docstring lists, delegating to a VAE."""

    def __init__(self, model):
        self._model = model
        self.likelihood, self.latent_dim, self.backend = model.likelihood, model.latent_dim, model.backend

    def _prepare_data(self, x, y=None):
        return self._model._prepare_data(x)

    def _encode(self, x, condition=None):
        return self._model._encode(x)

    def _decode(self, z, condition=None):
        return self._model._decode(z)

    def _kl(self, mu, logvar, condition=None):
        return self._model._kl(mu, logvar)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_a_duck_typed_model_with_the_documented_attributes_is_enough(likelihood):
    # the docstring once left out _prepare_data (every function calls it) and _kl (elbo does)
    model = mv.VAE(12, hidden=(8,), latent_dim=2, seed=0, likelihood=likelihood)
    duck, x = _DuckModel(model), np.random.default_rng(0).random((10, 12))
    np.testing.assert_array_equal(metrics.elbo(duck, x, seed=1), metrics.elbo(model, x, seed=1))
    np.testing.assert_array_equal(metrics.iwae_bound(duck, x, k=3, seed=1), metrics.iwae_bound(model, x, k=3, seed=1))
    for kind in ("bce", "mse"):
        np.testing.assert_array_equal(metrics.reconstruction_error(duck, x, kind), metrics.reconstruction_error(model, x, kind))


@pytest.mark.parametrize("call", ["elbo", "iwae_bound", "reconstruction_error", "anomaly_scores"])
def test_labels_handed_to_an_option_by_position_are_pointed_to_y(call):
    """A model takes its labels right after x (cvae.elbo(x, y)); metrics.elbo(cvae, x, y) handed
    them to n_samples (and kind, method, k): the error names the option and says where labels go.
    A list of names given as kind gets no such hint."""
    cvae = mv.CVAE(6, 3, (4,), 2, dtype="float64")
    x, y = np.random.default_rng(0).random((5, 6)), np.array([0, 1, 2, 0, 1])
    option = {"elbo": "n_samples", "iwae_bound": "k", "reconstruction_error": "kind", "anomaly_scores": "method"}[call]
    error = ValueError if option in ("kind", "method") else TypeError
    with pytest.raises(error, match=rf"^{option} must be .*, got array\(\[0, 1, 2, 0, 1\]\); a model's labels or mask go in y="):
        getattr(metrics, call)(cvae, x, y)
    assert getattr(metrics, call)(cvae, x, y=y).shape == (5,)
    with pytest.raises(ValueError, match=r"kind must be 'bce' or 'mse', got \['bce'\]$"):
        metrics.reconstruction_error(cvae, x, kind=["bce"], y=y)
