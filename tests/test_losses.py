"""Losses: values against their definitions, gradients against finite differences, stability."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microvae as mv
from microvae import losses, testing

TOL = 1e-6


def _passes(fn, inputs, names=None):
    result = mv.check_loss(fn, inputs, grad_names=names)
    assert result.passed(TOL), f"\n{result}"


@given(shape=testing.matrix_shapes(), data=st.data())
def test_bernoulli_nll_gradient(shape, data):
    logits = data.draw(testing.float_arrays(shape, -10, 10))
    x = data.draw(testing.unit_arrays(shape))
    _passes(lambda logits: losses.bernoulli_nll(logits, x), {"logits": logits})


@given(shape=testing.matrix_shapes(), data=st.data())
def test_bernoulli_nll_matches_definition(shape, data):
    logits = data.draw(testing.float_arrays(shape, -15, 15))
    x = data.draw(testing.unit_arrays(shape))
    p = 1 / (1 + np.exp(-logits))
    expected = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1)
    per_example, dlogits = losses.bernoulli_nll(logits, x)
    np.testing.assert_allclose(per_example, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dlogits, (p - x) / shape[0], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_nll_is_exact_at_extreme_logits(dtype):
    logits = np.array([[1e4, -1e4, 1e4, -1e4]], dtype=dtype)
    x = np.array([[0.0, 1.0, 1.0, 0.0]], dtype=dtype)
    per_example, dlogits = losses.bernoulli_nll(logits, x)
    # softplus(1e4) − 0 = 1e4; softplus(−1e4) + 1e4 = 1e4; the confident-correct terms are 0
    assert per_example[0] == pytest.approx(2e4, rel=1e-12)
    np.testing.assert_array_equal(dlogits, np.array([[1.0, -1.0, 0.0, 0.0]], dtype=dtype))
    assert np.all(np.isfinite(dlogits))


def test_textbook_bce_clips_where_logits_stay_exact():
    logits = np.array([[40.0]])
    x = np.array([[0.0]])
    p = 1 / (1 + np.exp(-logits))  # rounds to 1.0
    exact, _ = losses.bernoulli_nll(logits, x)
    clipped, dp = losses.bce_probabilities(p, x)
    assert exact[0] == pytest.approx(40.0)
    assert np.isfinite(clipped[0]) and clipped[0] < 20  # capped by the clip at −log(1e-7) ≈ 16.1
    assert dp[0, 0] == 0.0  # and its gradient has vanished


def test_textbook_bce_clips_at_the_documented_level_in_float32_too():
    # 1 − 1e-7 rounds to 1 − 1.19e-7 in float32; the clip is applied in float64
    p, x = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    want = -2 * np.log(1e-7)
    for dtype in (np.float32, np.float64):
        per_example, _ = losses.bce_probabilities(p.astype(dtype), x.astype(dtype))
        assert per_example[0] == pytest.approx(want, rel=1e-9)


@given(shape=testing.matrix_shapes(), data=st.data())
def test_bce_probabilities_gradient_and_agreement(shape, data):
    p = data.draw(testing.float_arrays(shape, 0.01, 0.99))
    x = data.draw(testing.unit_arrays(shape))
    _passes(lambda p: losses.bce_probabilities(p, x), {"p": p})
    via_logits, _ = losses.bernoulli_nll(np.log(p) - np.log1p(-p), x)
    np.testing.assert_allclose(losses.bce_probabilities(p, x)[0], via_logits, rtol=1e-9)


@given(shape=testing.matrix_shapes(), logvar=st.floats(-3, 3), data=st.data())
def test_gaussian_nll_fixed_variance(shape, logvar, data):
    mean = data.draw(testing.float_arrays(shape))
    x = data.draw(testing.float_arrays(shape))
    _passes(lambda mean: losses.gaussian_nll(mean, x, logvar)[:2], {"mean": mean})
    per_example, _, dlogvar = losses.gaussian_nll(mean, x, logvar)
    assert dlogvar is None
    expected = 0.5 * (((x - mean) ** 2) * np.exp(-logvar) + logvar + np.log(2 * np.pi)).sum(axis=1)
    np.testing.assert_allclose(per_example, expected, rtol=1e-10)


@given(shape=testing.matrix_shapes(), kind=st.sampled_from(["element", "feature", "row", "scalar"]), data=st.data())
def test_gaussian_nll_learned_variance(shape, kind, data):
    # every logvar broadcastable to mean: (batch, d), (d,), (1, d) (kept dims summed back) and 0-d
    lv_shape = {"element": shape, "feature": (shape[1],), "row": (1, shape[1]), "scalar": ()}[kind]
    mean = data.draw(testing.float_arrays(shape))
    x = data.draw(testing.float_arrays(shape))
    logvar = data.draw(testing.float_arrays(lv_shape, -2, 2))
    per_example, dmean, dlogvar = losses.gaussian_nll(mean, x, logvar)
    assert dmean.shape == shape and np.shape(dlogvar) == lv_shape
    # the value against the formula, elementwise in float64 (a gradient check alone can't see a
    # wrong value whose gradient is wrong consistently)
    lv = np.broadcast_to(logvar.astype(np.float64), shape)
    expected = 0.5 * (((x - mean) ** 2) * np.exp(-lv) + lv + np.log(2 * np.pi)).sum(axis=1)
    np.testing.assert_allclose(per_example, expected, rtol=1e-12, atol=1e-12)
    _passes(losses.gaussian_nll, {"mean": mean, "x": x, "logvar": logvar}, names=["mean", "logvar"])


@given(shape=testing.matrix_shapes(), data=st.data())
def test_gaussian_nll_in_float32_is_finite_for_an_exact_fit_at_a_tiny_learned_variance(shape, data):
    # e^{−logvar} is Inf in float32 below logvar ≈ −88; an exact fit (x = mean) then gave
    # 0·Inf = NaN, though the loss, ½Σ(logvar + log 2π), is finite. Down to logvar ≈ −176 the
    # loss goes through e^{−logvar/2} and stays finite (the models clamp logvar at −30 anyway).
    mean = data.draw(testing.float_arrays(shape)).astype(np.float32)
    logvar = data.draw(testing.float_arrays(shape, -170, 20)).astype(np.float32)
    per_example, dmean, dlogvar = losses.gaussian_nll(mean, mean.copy(), logvar)
    expected = 0.5 * (logvar.astype(np.float64) + np.log(2 * np.pi)).sum(axis=1)
    # each float32 term logvar + log 2π is rounded: the error is relative to the terms (they can cancel)
    size = 0.5 * (np.abs(logvar.astype(np.float64)) + np.log(2 * np.pi)).sum(axis=1)
    assert np.all(np.abs(per_example - expected) <= 1e-6 * size), (per_example, expected)
    assert not dmean.any()
    np.testing.assert_allclose(dlogvar, np.float32(0.5 / shape[0]), rtol=1e-6)


@given(shape=testing.matrix_shapes(), data=st.data())
def test_mse_gradient_and_relation_to_gaussian(shape, data):
    pred = data.draw(testing.float_arrays(shape))
    x = data.draw(testing.float_arrays(shape))
    _passes(lambda prediction: losses.mse(prediction, x), {"prediction": pred})
    nll, _, _ = losses.gaussian_nll(pred, x, 0.0)
    sq, _ = losses.mse(pred, x)
    np.testing.assert_allclose(nll, 0.5 * sq + 0.5 * shape[1] * np.log(2 * np.pi), rtol=1e-10)


@given(shape=testing.matrix_shapes(8, 8), data=st.data())
def test_kl_normal_gradient_and_value(shape, data):
    mu = data.draw(testing.float_arrays(shape))
    logvar = data.draw(testing.float_arrays(shape, -4, 4))
    _passes(losses.kl_normal, {"mu": mu, "logvar": logvar})
    per_example, _, _ = losses.kl_normal(mu, logvar)
    assert np.all(per_example >= -1e-12)
    zeros = np.zeros(shape)
    np.testing.assert_allclose(per_example, losses.kl_gaussians(mu, logvar, zeros, zeros)[0], rtol=1e-12, atol=1e-12)


def test_kl_normal_is_zero_at_the_prior():
    per_example, dmu, dlogvar = losses.kl_normal(np.zeros((2, 3)), np.zeros((2, 3)))
    assert not per_example.any() and not dmu.any() and not dlogvar.any()


@given(shape=testing.matrix_shapes(8, 8), data=st.data())
def test_kl_gaussians_gradients_both_sides(shape, data):
    arrays = {name: data.draw(testing.float_arrays(shape, -3, 3)) for name in ("mu_q", "logvar_q", "mu_p", "logvar_p")}
    _passes(losses.kl_gaussians, arrays)


@given(shape=testing.matrix_shapes(8, 8), data=st.data(), exponent=st.integers(-12, 0))
def test_kl_in_float32_stays_accurate_where_the_variances_nearly_agree(shape, data, exponent):
    # A collapsed latent dimension sits at logvar ≈ 0, where e^{logvar} − 1 cancels in float32
    # to rounding noise (6e-8 absolute) unless computed as expm1. The KL must stay ≥ 0, its
    # error must scale with the inputs (not with 1), and its logvar gradient keep its digits.
    scale = 10.0**exponent
    mu = (data.draw(testing.float_arrays(shape, -1, 1)) * scale).astype(np.float32)
    logvar = (data.draw(testing.float_arrays(shape, -1, 1)) * scale).astype(np.float32)
    exact, _, dlogvar_exact = losses.kl_normal(mu.astype(np.float64), logvar.astype(np.float64))
    eps, tiny = np.finfo(np.float32).eps, np.finfo(np.float32).tiny  # tiny: where float32 underflows
    size = (mu.astype(np.float64) ** 2 + np.abs(logvar)).sum(axis=1)  # what float32 rounding scales with
    zeros = np.zeros(shape, np.float32)
    single, _, dlogvar = losses.kl_normal(mu, logvar)
    pair, _, dlogvar_q, _, dlogvar_p = losses.kl_gaussians(mu, logvar, zeros, zeros)
    for value in (single, pair):
        assert np.all(value >= 0), value
        assert np.all(np.abs(value - exact) <= 4 * eps * size + shape[1] * tiny), (value, exact)
    for grad in (dlogvar, dlogvar_q):
        np.testing.assert_allclose(grad, dlogvar_exact, rtol=4 * eps, atol=tiny)
    dlogvar_p_exact = -dlogvar_exact - mu.astype(np.float64) ** 2 / (2 * shape[0])
    assert np.all(np.abs(dlogvar_p - dlogvar_p_exact) <= 4 * eps * (np.abs(logvar) + mu.astype(np.float64) ** 2) / shape[0] + tiny)


def test_kl_gaussians_against_monte_carlo():
    rng = np.random.default_rng(0)
    mu_q, lv_q, mu_p, lv_p = (rng.uniform(-1, 1, (1, 3)) for _ in range(4))
    z = mu_q + np.exp(0.5 * lv_q) * rng.standard_normal((400_000, 3))
    log_q = -0.5 * (((z - mu_q) ** 2) / np.exp(lv_q) + lv_q).sum(1)
    log_p = -0.5 * (((z - mu_p) ** 2) / np.exp(lv_p) + lv_p).sum(1)
    assert losses.kl_gaussians(mu_q, lv_q, mu_p, lv_p)[0][0] == pytest.approx((log_q - log_p).mean(), abs=0.01)


def test_convention_sum_over_dimensions_mean_over_batch():
    rng = np.random.default_rng(1)
    logits, x = rng.standard_normal((3, 5)), rng.uniform(size=(3, 5))
    per_example, grad = losses.bernoulli_nll(logits, x)
    per2, grad2 = losses.bernoulli_nll(np.concatenate([logits, logits]), np.concatenate([x, x]))
    assert per_example.shape == (3,)
    assert per2.mean() == pytest.approx(per_example.mean())  # batch mean: unchanged by repeating the batch
    np.testing.assert_allclose(grad2[:3], grad / 2)  # each example's share of the mean halves


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        losses.bernoulli_nll(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="same shape"):
        losses.kl_normal(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="same shape"):
        losses.kl_gaussians(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)))


_PREDICTION_LOSSES = {
    "bernoulli_nll": lambda a, b: losses.bernoulli_nll(a, b),
    "bce_probabilities": lambda a, b: losses.bce_probabilities(a, b),
    "gaussian_nll": lambda a, b: losses.gaussian_nll(a, b),
    "mse": lambda a, b: losses.mse(a, b),
    "kl_normal": lambda a, b: losses.kl_normal(a, b),
    "kl_gaussians": lambda a, b: losses.kl_gaussians(a, b, a, b),
    "discriminator_loss": lambda a, b: losses.discriminator_loss(a, b),
}


@pytest.mark.parametrize("name", sorted(_PREDICTION_LOSSES))
@pytest.mark.parametrize("bad", [np.zeros((2, 3), dtype=np.int64), np.zeros((2, 3), dtype=np.float16), [[0.0, 0.0, 0.0]] * 2],
                         ids=["int64", "float16", "list"])
def test_losses_refuse_what_is_not_a_float32_or_float64_array_by_name(name, bad):
    """int64 logits failed in a ufunc cast, float16 in the kernel, a list with an AttributeError."""
    with pytest.raises(TypeError, match=r"must be (a float32 or float64 array|a NumPy or CuPy array)"):
        _PREDICTION_LOSSES[name](bad, np.zeros((2, 3)))


@pytest.mark.parametrize("name", ["bernoulli_nll", "bce_probabilities", "gaussian_nll", "mse"])
@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.int32, np.float16])
def test_data_may_be_integers_or_bools(name, dtype):
    """0/1 pixels stored as integers, bools or float16 are data (the models take all of them);
    the result is that of the float copy. float16 was refused as no "array of numbers"."""
    x = np.random.default_rng(0).integers(0, 2, (3, 4))
    prediction = np.random.default_rng(1).uniform(0.1, 0.9, (3, 4))
    ints = _PREDICTION_LOSSES[name](prediction, x.astype(dtype))
    floats = _PREDICTION_LOSSES[name](prediction, x.astype(np.float64))
    for a, b in zip(ints, floats):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match=r"x must be an array of real numbers \(bool, integer, float16, float32 or float64\), got dtype <U1"):
        losses.bernoulli_nll(prediction, np.full((3, 4), "1"))


@pytest.mark.parametrize("name, position", [(name, position) for name in sorted(_PREDICTION_LOSSES) for position in (0, 1)]
                         + [("generator_loss", 0)])
@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_losses_refuse_an_np_matrix_by_name(name, position):
    """An np.matrix's * is a matrix product: kl_normal, mse and gaussian_nll gave other values,
    as (n, 1) matrices, and kl_gaussians and a learned-variance gaussian_nll wrong gradients,
    without a word. Each loss refuses one in any position, naming it."""
    call = (lambda a, b: losses.generator_loss(a)) if name == "generator_loss" else _PREDICTION_LOSSES[name]
    arrays = [np.random.default_rng(0).uniform(0.1, 0.9, (3, 3)) for _ in range(2)]
    arrays[position] = np.asmatrix(arrays[position])
    with pytest.raises(TypeError, match=r": \w+ is an np\.matrix, whose \* is a matrix product; pass np\.asarray\(\w+\)"):
        call(*arrays)


@pytest.mark.parametrize("name", sorted(_PREDICTION_LOSSES) + ["generator_loss"])
@pytest.mark.parametrize("shape", [(), (0, 3)], ids=["0-d", "empty-batch"])
def test_losses_refuse_an_input_without_a_batch_by_name(name, shape):
    """A 0-d array has no batch axis and an empty batch no mean: each loss refuses both with a
    ValueError saying so (the GAN losses' logits too), not an IndexError from shape[0]."""
    call = (lambda a, b: losses.generator_loss(a)) if name == "generator_loss" else _PREDICTION_LOSSES[name]
    with pytest.raises(ValueError, match="non-empty batch"):
        call(np.zeros(shape), np.zeros(shape))


def _row(first, rest):
    """One float32 example: ``first``, then six times ``rest``."""
    return np.array([[first] + [rest] * 6], np.float32)


_LN2, _LOG_2PI = np.log(2.0), np.log(2 * np.pi)
# name: (the loss on float32 inputs, the per-example value its documented formula gives in float64).
# Each row sums one term 2²⁴, where float32 spacing is 2, and six terms of 1 or ln 2: a float32 sum
# drops every one of them, an error of ≥ 2e-7 of the value; the float64 sum of the float32 terms
# (exact here, but for the rounding of ln 2) is within 1e-13. None: dtypes only (the learned
# variance rounds each term). bce_probabilities works in float64 throughout: it is here for dtypes.
_FLOAT32_ROWS = {
    "bernoulli_nll": (lambda: losses.bernoulli_nll(_row(2.0**24, 0.0), _row(0.0, 0.0)), 2**24 + 6 * _LN2),
    "bce_probabilities": (lambda: losses.bce_probabilities(_row(0.5, 0.5), _row(1.0, 0.0)), 7 * _LN2),
    "gaussian_nll": (lambda: losses.gaussian_nll(_row(2.0**12, 1.0), _row(0.0, 0.0)), 0.5 * (2**24 + 6) + 3.5 * _LOG_2PI),
    "gaussian_nll-learned": (lambda: losses.gaussian_nll(_row(2.0**12, 1.0), _row(0.0, 0.0), _row(0.0, 0.0)), None),
    "mse": (lambda: losses.mse(_row(2.0**12, 1.0), _row(0.0, 0.0)), 2**24 + 6),
    "kl_normal": (lambda: losses.kl_normal(_row(2.0**12, 1.0), _row(0.0, 0.0)), 0.5 * (2**24 + 6)),
    "kl_gaussians": (lambda: losses.kl_gaussians(_row(2.0**12, 1.0), *[_row(0.0, 0.0)] * 3), 0.5 * (2**24 + 6)),
    "discriminator_loss": (lambda: losses.discriminator_loss(_row(-(2.0**24), 0.0), _row(0.0, 0.0)), 2**24 + 13 * _LN2),
    "generator_loss": (lambda: losses.generator_loss(_row(-(2.0**24), 0.0)), 2**24 + 6 * _LN2),
}


@pytest.mark.parametrize("name", sorted(_FLOAT32_ROWS))
def test_float32_losses_sum_each_example_in_float64_and_keep_float32_gradients(name):
    """For float32 inputs every loss returns per_example as the float64 sum of its terms (the
    training loss is reported from it; a float32 sum rounds away small terms beside a large one,
    and overflows beyond 3.4e38) and its gradients in float32, the dtype of what it differentiates
    (the layers take dY in theirs). The tests above use float64 inputs, where neither shows."""
    call, expected = _FLOAT32_ROWS[name]
    per_example, *grads = call()
    assert per_example.dtype == np.float64, per_example.dtype
    if expected is not None:
        np.testing.assert_allclose(per_example, [expected], rtol=1e-13)
    for grad in grads:
        assert grad is None or grad.dtype == np.float32, grad.dtype


_LOSS_CALLS = {
    "bernoulli_nll": lambda r: losses.bernoulli_nll(r[0], 1 / (1 + np.exp(-r[1]))),
    "bce_probabilities": lambda r: losses.bce_probabilities(1 / (1 + np.exp(-r[0])), 1 / (1 + np.exp(-r[1]))),
    "gaussian_nll": lambda r: losses.gaussian_nll(r[0], r[1], 0.7),
    "gaussian_nll-learned": lambda r: losses.gaussian_nll(r[0], r[1], r[2]),
    "mse": lambda r: losses.mse(r[0], r[1]),
    "kl_normal": lambda r: losses.kl_normal(r[0], r[1]),
    "kl_gaussians": lambda r: losses.kl_gaussians(*r),
    "discriminator_loss": lambda r: losses.discriminator_loss(r[0], r[1]),
    "generator_loss": lambda r: losses.generator_loss(r[0]),
}


@pytest.mark.parametrize("name", sorted(_LOSS_CALLS))
@settings(max_examples=10)
@given(shape=st.lists(st.integers(1, 4), min_size=3, max_size=4), seed=st.integers(0, 2**31))
def test_losses_sum_over_every_axis_after_the_batch(name, shape, seed):
    """An input of shape (batch, ...) is summed over all its trailing axes: per_example is that
    of the (batch, D) flattening, and each gradient is the flattening's, in the input's shape.
    (The other tests draw (batch, D) inputs only, which cannot tell D from the last axis; a
    ConvVAE hands its likelihood (N, C, H, W) images.)"""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape) for _ in range(4)]
    per_example, *grads = _LOSS_CALLS[name](arrays)
    flat_per_example, *flat_grads = _LOSS_CALLS[name]([a.reshape(shape[0], -1) for a in arrays])
    np.testing.assert_allclose(per_example, flat_per_example, rtol=1e-12, atol=1e-12)
    for grad, flat in zip(grads, flat_grads):
        if grad is not None:
            assert grad.shape == tuple(shape)
            np.testing.assert_allclose(grad.reshape(shape[0], -1), flat, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("data_dtype", [np.float64, np.int32, np.uint8, np.bool_])
@pytest.mark.parametrize("name", ["mse", "gaussian_nll", "gaussian_nll-learned"])
def test_gaussian_gradients_keep_the_predictions_dtype_whatever_the_datas(name, data_dtype):
    """NumPy promotes float32 − float64 and float32 − int32 to float64: the gradients came back
    float64 for float32 predictions, unlike bernoulli_nll's. Each is now in the dtype of what it
    differentiates, the float64 computation rounded once; per_example stays float64 from it."""
    rng = np.random.default_rng(0)
    pred, logvar = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal((1, 5)).astype(np.float32)
    x = (rng.random((3, 5)) * 3).astype(data_dtype)
    call = {"mse": lambda p, lv: losses.mse(p, x), "gaussian_nll": lambda p, lv: losses.gaussian_nll(p, x, 0.3),
            "gaussian_nll-learned": lambda p, lv: losses.gaussian_nll(p, x, lv)}[name]
    per_example, *grads = call(pred, logvar)
    per_example64, *grads64 = call(pred.astype(np.float64), logvar.astype(np.float64))
    np.testing.assert_allclose(per_example, per_example64, rtol=1e-6)
    for grad, grad64 in zip(grads, grads64):
        if grad is not None:
            assert grad.dtype == np.float32, grad.dtype
            np.testing.assert_allclose(grad, grad64, rtol=1e-6, atol=1e-7)


def test_a_learned_logvar_gets_its_gradient_in_its_own_dtype():
    """A float32 mean with a float64 logvar: dmean float32, dlogvar float64 (it came back the
    other way round: dmean promoted to float64, dlogvar cast to the mean's float32)."""
    mean, x, logvar = np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32), np.full((2, 3), 0.1)
    _, dmean, dlogvar = losses.gaussian_nll(mean, x, logvar)
    assert dmean.dtype == np.float32 and dlogvar.dtype == np.float64
    np.testing.assert_allclose(dlogvar, 0.5 * (1 - np.exp(-0.1)) / 2, rtol=1e-7)  # ½(1 − (x − μ)²e^{−logvar})/batch


@pytest.mark.parametrize("lv_shape", [(3, 1, 4), (1, 3, 4), (5, 4), (3, 5), (2,), (3,)])
def test_a_learned_logvar_that_does_not_broadcast_to_the_mean_is_refused(lv_shape):
    """A (B, 1, D) logvar against a (B, D) mean broadcasts to (B, B, D): the loss came out B
    times too large with a (B, B, D) dmean, and no error. Shapes that do not broadcast at all
    raised NumPy's bare message, which named nothing."""
    mean, x = np.zeros((3, 4)), np.ones((3, 4))
    with pytest.raises(ValueError, match=rf"logvar must broadcast to mean's shape \(3, 4\).*got {re.escape(str(lv_shape))}"):
        losses.gaussian_nll(mean, x, np.zeros(lv_shape))


@pytest.mark.parametrize("logvar", [np.float32(0.5), np.float64(0.5), 0.5, 1])
def test_a_scalar_logvar_of_any_kind_is_a_fixed_variance(logvar):
    mean, x = np.zeros((2, 3)), np.ones((2, 3))
    per_example, _, dlogvar = losses.gaussian_nll(mean, x, logvar)
    assert dlogvar is None
    np.testing.assert_allclose(per_example, losses.gaussian_nll(mean, x, float(logvar))[0])
    with pytest.raises(TypeError, match="logvar must be a number .* or a float32/float64 array"):
        losses.gaussian_nll(mean, x, [0.5, 0.5, 0.5])


@pytest.mark.parametrize("logvar", [-800.0, 701.0, float("nan"), float("inf"), -float("inf")])
def test_a_fixed_logvar_that_is_not_a_finite_log_variance_is_refused(logvar):
    """NaN or ±Inf gave a NaN loss without a word; −800 raised math's bare OverflowError."""
    mean, x = np.zeros((2, 3)), np.ones((2, 3))
    with pytest.raises(ValueError, match=rf"gaussian_nll: a fixed logvar must be a finite number in \[-700, 700\].*got {logvar!r}"):
        losses.gaussian_nll(mean, x, logvar)
    for edge in (-700.0, 700.0):
        assert np.isfinite(losses.gaussian_nll(mean, x, edge)[0]).all()


@pytest.mark.parametrize("logvar", [True, False, np.True_])
def test_a_bool_logvar_is_refused(logvar):
    """True is a numbers.Real to Python: it was taken for a fixed log-variance of 1."""
    with pytest.raises(TypeError, match=r"gaussian_nll: logvar must be a number .* got (np\.)?(True_?|False)"):
        losses.gaussian_nll(np.zeros((2, 3)), np.ones((2, 3)), logvar)


@pytest.mark.parametrize("p", [[[-3.0, 2.5, 0.4]], [[0.5, 1.0 + 1e-6, 0.5]], [[0.5, np.nan, 0.5]]])
def test_bce_probabilities_refuses_p_outside_the_unit_interval(p):
    """Logits passed for p were clipped to [eps, 1 − eps] in silence: a loss of 0.916 for a true
    0.640 and zero gradients. p at 0 and 1 exactly is a probability, and is taken."""
    x = np.array([[0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"bce_probabilities: p must hold probabilities in \[0, 1\] \(found (values in .*|NaN\)); for logits use bernoulli_nll"):
        losses.bce_probabilities(np.array(p), x)
    assert np.isfinite(losses.bce_probabilities(np.array([[0.0, 1.0, 0.5]]), x)[0]).all()


@pytest.mark.parametrize("x", [0.0, 0.3, 1.0])
def test_bce_gradient_at_the_clip_edges_is_the_derivative_from_inside(x):
    """At p = eps and p = 1 − eps the value is the unclipped one, and dp is the derivative from
    inside [eps, 1 − eps] (a one-sided fourth-order difference), not 0."""
    eps = 1e-7
    for edge, inward in ((eps, 1.0), (1 - eps, -1.0)):
        p, target = np.array([[edge]]), np.array([[x]])
        _, dp = mv.losses.bce_probabilities(p, target)

        def f(t):
            return float(mv.losses.bce_probabilities(np.array([[edge + inward * t]]), target)[0][0])

        h = 1e-11
        one_sided = inward * (-25 * f(0) + 48 * f(h) - 36 * f(2 * h) + 16 * f(3 * h) - 3 * f(4 * h)) / (12 * h)
        assert dp[0, 0] != 0.0
        assert dp[0, 0] == pytest.approx(one_sided, rel=1e-4)


@pytest.mark.parametrize("name", ["bernoulli_nll", "bce_probabilities"])
@pytest.mark.parametrize("bad, shown", [(255.0, "values in [0, 255]"), (-0.5, "values in [-0.5, 0]"), (np.nan, "NaN)")])
def test_the_bernoulli_losses_refuse_targets_outside_the_unit_interval(name, bad, shown):
    """0–255 pixels gave bernoulli_nll a loss of −761 a pixel and a gradient of −254, silently.
    One NaN was reported as "found values in [nan, nan]", as though every value were NaN."""
    x = np.zeros((2, 3))
    x[1, 2] = bad
    with pytest.raises(ValueError, match=rf"{name}: x must lie in \[0, 1\].*found {re.escape(shown)}"):
        getattr(losses, name)(np.full((2, 3), 0.5), x)
    assert np.all(np.isfinite(losses.bernoulli_nll(np.full((2, 3), 0.5), np.clip(np.nan_to_num(x), 0, 1))[0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_target_just_past_one_is_shown_as_past_one_with_a_hint_to_clip(dtype):
    """The range was written with :g, six digits: float32's 1.0000001 (or float64's 1 + 2⁻⁵²,
    the overshoot a rescaling leaves) showed as "found values in [0, 1]", an error that
    contradicted itself. Every function that checks the range says so the same way."""
    above = np.nextafter(dtype(1), dtype(2))
    x = np.full((2, 3), 0.5, dtype=dtype)
    x[1, 2] = above
    shown = re.escape(f"found values in [0.5, {float(above)!r}], at most {float(above) - 1:.2g} outside [0, 1], as "
                      "rounding leaves: np.clip to [0, 1] puts such values back")
    for check in (lambda: losses.bernoulli_nll(np.zeros((2, 3), dtype), x),
                  lambda: losses.bce_probabilities(np.full((2, 3), 0.5, dtype), x),
                  lambda: losses.bce_probabilities(x, np.zeros((2, 3), dtype)),
                  lambda: mv.VAE(3, (2,), 1, dtype=dtype).fit(x, epochs=1, verbose=0)):
        with pytest.raises(ValueError, match=shown):
            check()
    x[1, 2] = -np.finfo(dtype).tiny  # just below 0: shown in full too, with the hint
    with pytest.raises(ValueError, match=re.escape(f"found values in [{-float(np.finfo(dtype).tiny):g}, 0.5], at most")):
        losses.bernoulli_nll(np.zeros((2, 3), dtype), x)
    x[1, 2] = 1.5  # far outside: no hint, the data needs scaling, not clipping
    with pytest.raises(ValueError, match=r"found values in \[0\.5, 1\.5\]\); scale the data"):
        losses.bernoulli_nll(np.zeros((2, 3), dtype), x)


def test_a_model_checks_its_data_once_and_its_loss_then_skips_the_range_pass(monkeypatch):
    """The Bernoulli likelihood calls bernoulli_nll with check_range=False: fit checked the data."""
    from microvae.losses import bernoulli

    calls = []
    monkeypatch.setattr(bernoulli, "bernoulli_targets", lambda *a: calls.append(a[0]))
    model = mv.VAE(6, (4,), 2)
    model.loss_and_grads(np.full((3, 6), 0.5, np.float32))
    assert calls == []
    losses.bernoulli_nll(np.zeros((3, 6)), np.full((3, 6), 0.5))  # the patch is where the loss looks
    assert calls == ["bernoulli_nll"]
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\] for a Bernoulli likelihood"):
        model.loss_and_grads(np.full((3, 6), 2.0, np.float32))


# --------------------------------------------------------------------------- an audit of the losses (6109c8b and after)


@pytest.mark.parametrize("eps, error", [(0.7, ValueError), (float("nan"), ValueError), (0.0, ValueError),
                                        ("1e-7", TypeError), (True, TypeError)])
def test_bce_probabilities_takes_a_clip_margin_in_its_range(eps, error):
    # 0.7 clipped every p to one value (loss 1.56 for 0.33, a zero gradient); NaN made the loss NaN
    with pytest.raises(error, match=r"eps must be a clip margin in \(0, 0.5\)"):
        losses.bce_probabilities(np.full((2, 3), 0.5), np.zeros((2, 3)), eps=eps)


def test_gaussian_nll_of_an_exact_fit_at_a_tiny_fixed_variance_has_a_zero_gradient_in_float32():
    """e^{100}/batch overflows float32: Inf·0 made the gradient NaN where the fit is exact."""
    mean = np.zeros((2, 3), np.float32)
    x = mean.copy()
    x[0, 0] = 1e-20
    per_example, dmean, _ = losses.gaussian_nll(mean, x, logvar=-100.0)
    assert np.isfinite(per_example).all() and dmean.dtype == np.float32
    assert dmean[0, 0] == np.float32(-float(np.float32(1e-20)) * np.exp(100.0) / 2) and not dmean.ravel()[1:].any()
    np.testing.assert_array_equal(losses.gaussian_nll(mean, mean + np.float32(0.5), logvar=-2.0)[1],
                                  np.float32(0.5) * np.float32(np.exp(2.0) / 2) * -np.ones((2, 3), np.float32))


@pytest.mark.parametrize("loss", [losses.bernoulli_nll, losses.bce_probabilities])
def test_bernoulli_losses_of_examples_with_no_pixels_are_zero(loss):
    # min() of nothing was NumPy's "zero-size array to reduction operation minimum"
    per_example, grad = loss(np.zeros((2, 0)), np.zeros((2, 0)))
    assert per_example.tolist() == [0.0, 0.0] and not np.signbit(per_example).any() and grad.shape == (2, 0)


@given(shape=testing.matrix_shapes(6, 6), data=st.data(), logvar_p=st.floats(-170, -88))
def test_kl_gaussians_in_float32_is_zero_for_q_equal_to_a_narrow_p(shape, data, logvar_p):
    """e^{−lv_p} overflows float32 below lv_p ≈ −88, and (μ_q − μ_p)²·e^{−lv_p} was 0·Inf: the KL
    of q = p (0) and its gradients came out NaN. The term is now the square of (μ_q − μ_p)·e^{−lv_p/2}."""
    mu = data.draw(testing.float_arrays(shape, -3, 3)).astype(np.float32)
    logvar = np.full(shape, logvar_p, np.float32)
    kl, *grads = losses.kl_gaussians(mu, logvar, mu.copy(), logvar.copy())
    np.testing.assert_array_equal(kl, 0.0)
    for grad in grads:
        np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("loss", ["kl_normal", "kl_gaussians"])
@pytest.mark.parametrize("first", [np.float32, np.float64])
def test_kl_gradients_come_in_their_inputs_dtypes(loss, first):
    """A float32 input beside a float64 one gave float64 gradients for both (the batch factor
    took μ's dtype): a float32 logvar's gradient came out float64."""
    second = np.float64 if first == np.float32 else np.float32
    rng = np.random.default_rng(0)
    mu, logvar = rng.standard_normal((3, 2)).astype(first), rng.standard_normal((3, 2)).astype(second)
    if loss == "kl_normal":
        _, dmu, dlogvar = losses.kl_normal(mu, logvar)
        assert (dmu.dtype, dlogvar.dtype) == (first, second)
    else:
        _, dmu_q, dlogvar_q, dmu_p, dlogvar_p = losses.kl_gaussians(mu, logvar, logvar.copy(), mu.copy())
        assert (dmu_q.dtype, dlogvar_q.dtype, dmu_p.dtype, dlogvar_p.dtype) == (first, second, second, first)


def test_mse_names_its_arguments_as_its_signature_does():
    """mse(prediction, x) named its second argument "target", which no caller can pass."""
    with pytest.raises(TypeError, match=r"^mse: x must be a NumPy or CuPy array, got list$"):
        losses.mse(np.zeros((2, 3)), [[0.0] * 3] * 2)
    with pytest.raises(ValueError, match=r"^mse: prediction and x must have the same shape, got \(2, 3\) and \(2, 2\)$"):
        losses.mse(np.zeros((2, 3)), np.zeros((2, 2)))
