"""Likelihoods: the learned Gaussian decoder variance is clamped like every other logvar."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from microvae.backend import get_backend
from microvae.likelihoods import LOGVAR_RANGE, Gaussian, get_likelihood
from microvae.losses import gaussian_nll
from microvae.verify import check_loss


@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]))
def test_learned_decoder_logvar_is_clamped_with_zero_gradient_outside(batch, dims, seed, dtype):
    # A decoder's logvar heads to −∞ on constant pixels; unclamped, e^{−logvar} overflows
    # (float32 below about −88) and 0·inf makes the loss NaN.
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal((batch, dims))
    x = mean.copy()
    x[:, 0] += rng.standard_normal(batch)  # one pixel off its mean, the rest exact
    lo, hi = LOGVAR_RANGE
    raw = rng.choice([lo - 70.0, lo - 5.0, -1.0, 0.5, hi + 5.0, hi + 70.0], size=(batch, dims))
    out = np.concatenate([mean, raw], axis=1).astype(dtype)
    per_example, dout = Gaussian("learned").nll(out, x.astype(dtype))
    # the float64 reference sees the inputs float32 saw: rounding x and the mean to float32
    # alone moves a small x − μ by 1e-5 relative, which e^{30} then carries into the loss
    mean, x = out[:, :dims].astype(np.float64), x.astype(dtype).astype(np.float64)
    want, dmean, dlogvar = gaussian_nll(mean, x, np.clip(raw, lo, hi))
    assert np.isfinite(per_example).all() and np.isfinite(dout).all()
    np.testing.assert_allclose(per_example, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
    inside = (raw > lo) & (raw < hi)
    np.testing.assert_array_equal(dout[:, dims:][~inside], 0)
    # d/dlogvar = ½(1 − (x − μ)²e^{−logvar})/batch cancels where the two terms meet: its error
    # is relative to the terms, not to their difference
    terms = 0.5 * (1 + (x - mean) ** 2 * np.exp(-np.clip(raw, lo, hi))) / batch
    error = np.abs(dout[:, dims:].astype(np.float64) - dlogvar)
    assert np.all(error[inside] <= (1e-5 if dtype == np.float32 else 1e-12) * terms[inside]), error[inside] / terms[inside]


@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**31))
def test_the_clamped_gradient_agrees_with_finite_differences(batch, dims, seed):
    # float64, across entries inside and beyond the range (the steps never cross its ends);
    # pixels with logvar below it sit on their mean, else e^{30}·(x − μ)² swamps the check
    rng = np.random.default_rng(seed)
    lo, hi = LOGVAR_RANGE
    raw = rng.choice([lo - 3.0, -2.0, 0.1, 1.5, hi + 3.0], size=(batch, dims))
    mean = rng.standard_normal((batch, dims))
    x = np.where(raw < lo, mean, mean + rng.standard_normal((batch, dims)))
    likelihood = Gaussian("learned")
    result = check_loss(lambda out, x: likelihood.nll(out, x), {"out": np.concatenate([mean, raw], axis=1), "x": x},
                        grad_names=["out"])
    assert result.passed(1e-6), result


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_very_negative_decoder_logvar_gives_the_clamped_value_not_nan(dtype):
    out = np.concatenate([np.zeros((1, 3)), np.full((1, 3), -100.0)], axis=1).astype(dtype)
    per_example, _ = Gaussian("learned").nll(out, np.zeros((1, 3), dtype))
    lo = LOGVAR_RANGE[0]
    np.testing.assert_allclose(per_example, [0.5 * 3 * (lo + np.log(2 * np.pi))], rtol=1e-6)


def test_logvar_clamp_mask_is_strict_at_both_ends():
    """clamp_logvar's mask is 'strictly inside' LOGVAR_RANGE, at the ends themselves too (the other
    clamp tests place logvar well beyond them); also through a learned Gaussian decoder."""
    from microvae.likelihoods import LOGVAR_RANGE, Gaussian, clamp_logvar

    lo, hi = LOGVAR_RANGE
    raw = np.array([[lo - 1.0, lo, lo + 1.0, 0.0, hi - 1.0, hi, hi + 1.0]])
    clamped, inside = clamp_logvar(raw)
    np.testing.assert_array_equal(clamped, np.clip(raw, lo, hi))
    np.testing.assert_array_equal(inside, [[False, False, True, True, True, False, False]])
    mean = np.zeros((1, raw.shape[1]))
    _, dout = Gaussian("learned").nll(np.concatenate([mean, raw], axis=1), mean + 0.5)
    np.testing.assert_array_equal(dout[0, raw.shape[1]:] == 0, ~inside[0])


@given(st.integers(1, 4), st.integers(1, 5), st.sampled_from([-7.5, -2.0, 0.0, 1.3, 6.0]), st.integers(0, 2**31))
def test_a_fixed_decoder_variance_is_the_one_the_likelihood_uses(batch, dims, logvar, seed):
    # Every model test used unit variance, where e^{±logvar} = 1: a fixed logvar dropped on the
    # way to gaussian_nll (or its sign flipped) went unseen. Against the textbook density, in float64.
    rng = np.random.default_rng(seed)
    mean, x = rng.standard_normal((batch, dims)), rng.standard_normal((batch, dims))
    for spec in (Gaussian(logvar), get_likelihood({"name": "gaussian", "logvar": logvar})):
        per_example, dmean = spec.nll(mean, x)
        want = 0.5 * ((x - mean) ** 2 * np.exp(-logvar) + logvar + np.log(2 * np.pi)).sum(axis=1)
        np.testing.assert_allclose(per_example, want, rtol=1e-12, err_msg=f"−log N(x; μ, e^{logvar}) per example")
        np.testing.assert_allclose(dmean, (mean - x) * np.exp(-logvar) / batch, rtol=1e-12,
                                   err_msg=f"d/dμ of the batch mean at logvar={logvar}")


@pytest.mark.parametrize("spec", ["bernoulli", "gaussian", "gaussian-learned", {"name": "gaussian", "logvar": -1.5}])
@given(batch=st.integers(1, 4), dims=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_the_data_space_mean_is_where_the_likelihood_is_stationary_in_its_mean(spec, batch, dims, seed):
    # mean(out) (what decode and reconstruct return) must be the mean the loss is built on: with
    # x = mean(out), d nll / d(mean part of out) is 0. Returning a learned variance's logvar half
    # as the "mean" passed every other test.
    likelihood = get_likelihood(spec)
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((batch, likelihood.output_dim(dims)))
    mean = likelihood.mean(out, get_backend("numpy", dtype="float64").kernels)
    assert mean.shape == (batch, dims)
    _, dout = likelihood.nll(out, mean)
    np.testing.assert_allclose(dout[:, :dims], 0, atol=1e-15, err_msg=f"{spec}: the loss is not stationary at x = mean(out)")
    if likelihood.output_dim(dims) > dims:  # a learned variance: its gradient at x = μ is ½(1 − 0)/batch
        np.testing.assert_allclose(dout[:, dims:], 0.5 / batch, rtol=1e-12)


@pytest.mark.parametrize("logvar", LOGVAR_RANGE)
def test_a_fixed_decoder_variance_at_the_ends_of_the_range_is_used_as_given(logvar):
    # The ends of LOGVAR_RANGE are accepted as fixed variances (test_checkpoint_robustness); the
    # loss must then use them unchanged, not a narrower clamp (the check above stops at −7.5 and 6).
    rng = np.random.default_rng(0)
    mean, x = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for spec in (Gaussian(logvar), get_likelihood({"name": "gaussian", "logvar": logvar})):
        per_example, dmean = spec.nll(mean, x)
        want = 0.5 * ((x - mean) ** 2 * np.exp(-logvar) + logvar + np.log(2 * np.pi)).sum(axis=1)
        np.testing.assert_allclose(per_example, want, rtol=1e-12)
        np.testing.assert_allclose(dmean, (mean - x) * np.exp(-logvar) / 3, rtol=1e-12)


def test_bernoulli_data_may_touch_both_ends_of_the_unit_interval():
    """Binary images are exactly 0 and 1: both ends are valid data; just past either end is not."""
    bernoulli = get_likelihood("bernoulli")
    bernoulli.validate(np.array([[0.0, 1.0, 0.5]]))
    for bad in (-1e-7, 1 + 1e-7):
        with pytest.raises(ValueError, match=r"must lie in \[0, 1\] for a Bernoulli likelihood"):
            bernoulli.validate(np.array([[0.0, bad]]))


def test_bernoulli_mean_of_integer_logits_is_a_probability():
    from microvae.likelihoods import Bernoulli

    backend = get_backend("numpy", dtype="float64")
    p = Bernoulli().mean(np.array([[0, 3, -2]]), backend.kernels)  # was [[0, 0, 0]]: σ truncated to ints
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-np.array([[0.0, 3.0, -2.0]]))))


@pytest.mark.parametrize("spec", ["gaussian", "gaussian-learned", {"name": "gaussian", "logvar": -1.0}])
def test_gaussian_mean_is_a_new_array_never_the_decoder_output_or_a_view_of_it(spec):
    """As Bernoulli.mean's: it returned ``out`` itself (or its first half), so that editing the
    means edited the decoder's output; ``kernels`` may be left out, as Bernoulli's."""
    likelihood = get_likelihood(spec)
    out = np.random.default_rng(0).standard_normal((3, 8))
    before = out.copy()
    mean = likelihood.mean(out)
    np.testing.assert_array_equal(mean, out[:, :4] if likelihood.learned else out)
    assert not np.shares_memory(mean, out)
    mean[...] = 7.0
    np.testing.assert_array_equal(out, before)


def test_bernoulli_mean_takes_logits_of_any_layout_and_its_own_kernels_by_default():
    """As ``nll`` does: Fortran-ordered, strided, reversed and big-endian logits gave the
    compiled kernels' contiguity and dtype errors (naming an "out" the caller never passed),
    and ``kernels`` had no default; float16 ones come out in float64, as integers do."""
    from microvae.likelihoods import Bernoulli

    backend = get_backend("numpy", dtype="float32")
    logits = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    want = Bernoulli().mean(logits, backend.kernels)
    for form in (np.asfortranarray(logits), logits[::-1][::-1].copy()[::-1][::-1], np.repeat(logits, 2, axis=1)[:, ::2],
                 logits.astype(">f4"), np.ascontiguousarray(logits[::-1])[::-1]):
        got = Bernoulli().mean(form, backend.kernels)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(Bernoulli().mean(logits), want)
    half = Bernoulli().mean(logits.astype(np.float16))
    assert half.dtype == np.float64
    np.testing.assert_allclose(half, 1 / (1 + np.exp(-logits.astype(np.float16).astype(np.float64))), rtol=1e-15)


@pytest.mark.parametrize("width", [3, 5, 9, 11])
def test_learned_gaussian_names_a_wrongly_sized_output(width):
    """The output must be μ ‖ logvar for x of width 5: (4, 10). The error used to name the
    shape of half the output, (4, width // 2), as 'the mean'."""
    x = np.zeros((4, 5))
    with pytest.raises(ValueError, match=rf"μ ‖ logvar.*of shape \(4, 10\) for x of shape \(4, 5\), got \(4, {width}\)"):
        Gaussian("learned").nll(np.zeros((4, width)), x)
    with pytest.raises(ValueError, match=r"of shape \(4, 10\) for x of shape \(4, 5\), got \(3, 10\)"):
        Gaussian("learned").nll(np.zeros((3, 10)), x)
    with pytest.raises(ValueError, match=r"needs x of shape \(batch, features, ...\), got \(4,\)"):
        Gaussian("learned").nll(np.zeros((4, 2)), np.zeros(4))  # was an IndexError
    per_example, dout = Gaussian("learned").nll(np.zeros((4, 10)), x)  # the right shape is taken
    assert per_example.shape == (4,) and dout.shape == (4, 10)


def test_likelihoods_print_as_they_are_built():
    from microvae.likelihoods import Bernoulli
    for likelihood in (Bernoulli(), Gaussian(), Gaussian(-2.0), Gaussian("learned")):
        rebuilt = eval(repr(likelihood), {"Bernoulli": Bernoulli, "Gaussian": Gaussian})
        assert type(rebuilt) is type(likelihood) and rebuilt.config() == likelihood.config()
    assert repr(Gaussian("learned")) == "Gaussian(logvar='learned')"
