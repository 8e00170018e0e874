"""Each compiled CPU kernel (Numba) equals its NumPy reference twin; GPU twins when a GPU exists."""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from _strategies import ADAM_SETTINGS, SGD_SETTINGS
from microvae.kernels import cpu, reference
from microvae.kernels.reference import adam_bias_corrected_rates

DTYPES = st.sampled_from([np.float32, np.float64])


def _tol(dtype):
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)


def arrays(dtype, shape, lo=-20.0, hi=20.0):
    """Every element drawn on its own (hypothesis's default fill repeats one value over most of
    the array, so bias sums over near-constant columns), and float64 arrays in float64's
    precision, not only float32's values."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=st.floats(lo, hi, allow_nan=False, width=width), fill=st.nothing())


# Ulps allowed between a twin and its reference where the result has nothing to cancel (a
# sigmoid, a GRU gate, σ(l)·scale): each side is within about 2 ulp of the true value (its own
# library's exp, Numba's or NumPy's or exp_neg_f32's, then a division and a scaling), so the two
# are within about twice that. Over 2·10⁷ points, tails and subnormal results included, they
# differed by at most 2 ulp in float64 and 3 (sigmoid) or 4 (Bernoulli gradient) in float32.
# An absolute tolerance has no place there: it passes 0 for σ(−40) = 4.2e-18.
ULPS = {np.dtype(np.float32): 8, np.dtype(np.float64): 4}


def assert_within_ulps(got, want, ulps, err_msg=""):
    """|got − want| ≤ ulps · ulp(want), elementwise, with ulp(w) = np.spacing(|w|): a tolerance
    relative to each reference value, however small, down to the subnormals (where an ulp is the
    smallest subnormal, so 0 passes only for a reference of a few of those)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    assert np.isfinite(want).all(), err_msg
    off = np.abs(got.astype(np.float64) - want.astype(np.float64)) / np.spacing(np.abs(want)).astype(np.float64)
    bad = np.flatnonzero(~(off <= ulps))  # NaN in got is bad too
    if bad.size:
        shown = ", ".join(f"{got.flat[i]!r} for {want.flat[i]!r} ({off.flat[i]:.3g} ulp)" for i in bad[:5])
        raise AssertionError(f"{bad.size} of {got.size} values more than {ulps} ulp from the reference {err_msg}: {shown}")


def assert_same_values_and_zero_signs(got, want):
    """assert_array_equal takes −0 for +0; a ReLU twin must also give +0 where the reference does."""
    np.testing.assert_array_equal(got, want)
    zero = want == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(want[zero]))


@given(dtype=DTYPES, shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=9), data=st.data())
def test_relu_kernels_match_reference(dtype, shape, data):
    x = data.draw(arrays(dtype, shape))
    dy = data.draw(arrays(dtype, shape))
    out_c, out_r = np.empty_like(x), np.empty_like(x)
    assert_same_values_and_zero_signs(cpu.relu_forward(x, out_c), reference.relu_forward(x, out_r))
    np.testing.assert_array_equal(cpu.relu_backward(dy, out_c, np.empty_like(x)), reference.relu_backward(dy, out_r, np.empty_like(x)))
    # in place (out is x, as the fused ReLU of a convolution calls it), the whole array or a slice of it
    whole, part = x.copy(), x.copy()
    assert cpu.relu_forward(whole, whole) is whole
    assert_same_values_and_zero_signs(whole, out_r)
    half = part[: max(1, len(part) // 2)]
    cpu.relu_forward(half, half)
    np.testing.assert_array_equal(half, out_r[: len(half)])
    np.testing.assert_array_equal(part[len(half):], x[len(half):])  # the rest untouched


@given(dtype=DTYPES, shape=hnp.array_shapes(min_dims=2, max_dims=2, max_side=40), data=st.data())
def test_bias_relu_kernels_match_reference_bit_for_bit(dtype, shape, data):
    """A Dense layer's fused bias + ReLU: the Numba twin equals the reference exactly, in place
    too, and its bias gradient is summed in NumPy's order, so a fused Dense(activation="relu")
    trains bit for bit like Dense then ReLU."""
    x, dy = data.draw(arrays(dtype, shape)), data.draw(arrays(dtype, shape))
    b = data.draw(arrays(dtype, shape[1:]))
    want = reference.bias_relu_forward(x, b, np.empty_like(x))
    np.testing.assert_array_equal(want, np.maximum(x + b, 0))
    out = np.empty_like(x)
    assert cpu.bias_relu_forward(x, b, out) is out
    assert_same_values_and_zero_signs(out, want)
    in_place = x.copy()
    assert cpu.bias_relu_forward(in_place, b, in_place) is in_place
    assert_same_values_and_zero_signs(in_place, want)
    dz, db = np.full_like(x, np.nan), np.full_like(b, np.nan)
    assert cpu.bias_relu_backward(dy, want, dz, db) is dz
    separate = reference.relu_backward(dy, want, np.empty_like(dy))
    np.testing.assert_array_equal(dz, separate)
    np.testing.assert_array_equal(db, separate.sum(axis=0))  # what Dense's unfused backward pass computes
    dz_r, db_r = np.empty_like(x), np.empty_like(b)
    assert reference.bias_relu_backward(dy, want, dz_r, db_r) is dz_r
    np.testing.assert_array_equal(dz_r, dz)
    np.testing.assert_array_equal(db_r, db)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_relu_of_a_negative_zero_sum_is_positive_zero(dtype):
    """−0 + −0 is −0, and max(−0, 0) is +0 in NumPy: every twin, in place or not, gives +0."""
    x = np.array([[-0.0, 0.0, -0.0, -1.0]], dtype)
    b = np.array([-0.0, -0.0, 0.0, 1.0], dtype)
    want = reference.bias_relu_forward(x, b, np.empty_like(x))
    assert not np.signbit(want).any()
    assert_same_values_and_zero_signs(cpu.bias_relu_forward(x, b, np.empty_like(x)), want)
    in_place = x.copy()
    assert_same_values_and_zero_signs(cpu.bias_relu_forward(in_place, b, in_place), want)
    assert_same_values_and_zero_signs(cpu.relu_forward(x + b, np.empty_like(x)), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 7, 8, 9, 16, 128, 1000])
def test_a_single_column_bias_gradient_is_numpys_sum_too(rows, dtype):
    """A (rows, 1) dZ is contiguous, so NumPy sums it pairwise, not row after row as the Numba
    loop does; from 8 rows the two can differ in the last bits (a randomized hypothesis run
    found 26.57026 against 26.570265 at 16 rows). The kernel leaves that sum to NumPy."""
    rng = np.random.default_rng(rows)
    dy = rng.standard_normal((rows, 1)).astype(dtype)
    y = np.abs(rng.standard_normal((rows, 1))).astype(dtype)
    y[::3] = 0  # some units off
    dz, db = np.full_like(dy, np.nan), np.full(1, np.nan, dtype=dtype)
    assert cpu.bias_relu_backward(dy, y, dz, db) is dz
    separate = reference.relu_backward(dy, y, np.empty_like(dy))
    np.testing.assert_array_equal(dz, separate)
    np.testing.assert_array_equal(db, separate.sum(axis=0))
    constant = np.full((16, 1), 1.6606416, dtype=dtype)  # the case the randomized run found
    cpu.bias_relu_backward(constant, np.ones_like(constant), np.empty_like(constant), db)
    np.testing.assert_array_equal(db, constant.sum(axis=0))


def test_bias_relu_kernels_refuse_what_they_cannot_index():
    """The Numba loops index b and db by column with no bounds checks: a bias that does not
    fit the rows, a non-matrix or a strided array is refused by name."""
    x, b = np.ones((3, 4)), np.ones(4)
    with pytest.raises(ValueError, match=r"\(batch, n\) array and an \(n,\) one"):
        cpu.bias_relu_forward(x, np.ones(5), np.empty_like(x))
    with pytest.raises(ValueError, match=r"\(batch, n\)"):
        cpu.bias_relu_forward(np.ones(4), b, np.empty(4))
    with pytest.raises(ValueError, match=r"\(batch, n\)"):
        cpu.bias_relu_backward(x, x, np.empty_like(x), np.empty(3))
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.bias_relu_forward(np.ones((3, 8))[:, ::2], b, np.empty_like(x))
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.bias_relu_backward(x, x, np.empty_like(x), np.ones(8)[::2])


_SIGMOID_SHAPES = hnp.array_shapes(min_dims=1, max_dims=2, max_side=9)


@given(x=st.one_of(*(arrays(dtype, _SIGMOID_SHAPES, -1e4, 1e4) for dtype in (np.float32, np.float64))))
@example(x=np.array([-40.0, -100.0, -700.0]))  # the far tail: 4.2e-18, 3.7e-44, 9.9e-305
@example(x=np.array([-40.0, -87.0], np.float32))  # 4.2e-18, and 1.6e-38 at the smallest normals
def test_sigmoid_kernel_matches_reference(x):
    """Within a few ulp of the reference's own value, the far tail included: σ(x) = eˣ/(1 + eˣ)
    is tiny there but has nothing to cancel, and 1 − 1/(1 + eˣ), which gives 0 from x ≈ −37,
    passed the former absolute tolerance."""
    c, r = cpu.sigmoid(x, np.empty_like(x)), reference.sigmoid(x, np.empty_like(x))
    assert np.all(np.isfinite(c))
    assert_within_ulps(c, r, ULPS[x.dtype])
    # and the reference is right there: σ(x) = eˣ(1 − eˣ + …), eˣ to within rounding for x ≤ −40
    tail = x <= -40
    assert_within_ulps(r[tail], np.exp(x[tail]), ULPS[x.dtype])


@given(dtype=DTYPES, shape=st.tuples(st.integers(1, 8), st.integers(1, 16)), extreme=st.booleans(), data=st.data())
def test_fused_bernoulli_kernel_matches_reference(dtype, shape, extreme, data):
    """Both twins' row losses lie within rounding of the float64 value, and so of each other.
    Rounding is relative to the terms, not to the result: softplus(l) − x·l cancels for a large
    logit and x near 1 (l = 2081.164, x = 0.984375: 32.5181885 in float64 and from the Numba
    kernel, whose contracted multiply-add is exact there, 32.5180664 from the float32
    reference, found by a randomized hypothesis run), so a tolerance relative to the
    result fails two correct float32 computations."""
    bound = 1e4 if extreme else 12.0
    logits = data.draw(arrays(dtype, shape, -bound, bound))
    x = data.draw(arrays(dtype, shape, 0.0, 1.0))
    scale = 1.0 / shape[0]
    d_c, d_r = np.empty_like(logits), np.empty_like(logits)
    row_c, row_r = np.empty(shape[0]), np.empty(shape[0])
    cpu.bernoulli_nll_logits(logits, x, scale, d_c, row_c)
    reference.bernoulli_nll_logits(logits, x, scale, d_r, row_r)
    assert np.all(np.isfinite(row_c)) and np.all(np.isfinite(d_c))
    l64, x64 = logits.astype(np.float64), x.astype(np.float64)
    truth = reference.bernoulli_nll_logits(l64, x64, scale, np.empty_like(l64), np.empty(shape[0]))
    terms = (np.maximum(l64, 0) + np.log(2) + np.abs(x64 * l64)).sum(axis=1)  # bounds |softplus| + |x·l|
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    for row in (row_c, row_r):
        np.testing.assert_array_less(np.abs(row - truth), rtol * terms + 1e-6)
    # σ(l) − x cancels where x is near σ(l), so the gradient is compared with an atol; where x = 0
    # (σ(l)·scale) or x = 1 with l ≤ 0 ((σ(l) − 1)·scale, at least scale/2 in size) nothing
    # cancels, and it is compared to a few ulp of the reference (the far tail: test below).
    # float32 only up to |l| = 87: beyond, exp_neg_f32 gives 0 by design (off by under 2e-38).
    exact = (x == 0) | ((x == 1) & (logits <= 0))
    if dtype == np.float32:
        exact &= np.abs(logits) <= 87
    np.testing.assert_allclose(d_c, d_r, **_tol(dtype))
    assert_within_ulps(d_c[exact], d_r[exact], ULPS[np.dtype(dtype)])


@pytest.mark.parametrize("rows", [1, 3, 7])  # scale 1, 1/3 and 1/7
@pytest.mark.parametrize("dtype, tail", [(np.float64, [-40.0, -100.0, -700.0]), (np.float32, [-40.0, -87.0])])
def test_fused_bernoulli_kernel_is_relatively_accurate_in_the_far_tail(dtype, tail, rows):
    """x = 0: dlogits = σ(l)·scale, which for l ≪ 0 is about eˡ·scale (4.2e-18 at l = −40), and
    each row's loss Σ softplus(l) = Σ log1p(eˡ): tiny, with nothing to cancel, so each must match
    the reference to a few ulp (σ(l) as 1 − 1/(1 + eˡ) gives 0, and passed the atol above)."""
    logits = np.tile(np.array(tail, dtype), (rows, 1))
    x = np.zeros_like(logits)
    results = []
    for kernels in (cpu, reference):
        d, row = np.full_like(logits, np.nan), np.full(rows, np.nan)
        kernels.bernoulli_nll_logits(logits, x, 1.0 / rows, d, row)
        results.append((d, row))
    (d_c, row_c), (d_r, row_r) = results
    assert_within_ulps(d_c, d_r, ULPS[np.dtype(dtype)])
    assert_within_ulps(d_r, (np.exp(logits.astype(np.float64)) / rows).astype(dtype), ULPS[np.dtype(dtype)])
    truth = np.exp(logits.astype(np.float64)).sum(axis=1)  # softplus(l) = log1p(eˡ) = eˡ to within rounding here
    np.testing.assert_allclose(row_c, truth, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)
    np.testing.assert_allclose(row_r, truth, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)


@pytest.mark.parametrize("shape", [(3, 784), (5, 37), (1, 1), (128, 784)])
def test_fused_bernoulli_kernel_float32_at_image_widths(shape):
    # float32 takes the one-pass kernel (vector_math's exp and log1p); rows as wide as images,
    # and a training batch (on Numba's threads where they may run)
    rng = np.random.default_rng(sum(shape))
    logits = (rng.standard_normal(shape) * 6).astype(np.float32)
    x = rng.random(shape).astype(np.float32)
    d_c, d_r = np.empty_like(logits), np.empty_like(logits)
    row_c, row_r = np.empty(shape[0]), np.empty(shape[0])
    cpu.bernoulli_nll_logits(logits, x, 0.5, d_c, row_c)
    reference.bernoulli_nll_logits(logits, x, 0.5, d_r, row_r)
    np.testing.assert_allclose(row_c, row_r, rtol=1e-6)
    np.testing.assert_allclose(d_c, d_r, rtol=1e-6, atol=1e-7)


def test_fused_bernoulli_kernel_takes_the_float32_pass_only_for_float32(monkeypatch):
    calls = []
    original = cpu._bernoulli_nll_f32
    monkeypatch.setattr(cpu, "_bernoulli_nll_f32", lambda *args: calls.append(args[0].dtype) or original(*args))
    for dtype in (np.float32, np.float64):
        logits = np.zeros((2, 3), dtype)
        cpu.bernoulli_nll_logits(logits, np.full_like(logits, 0.5), 1.0, np.empty_like(logits), np.empty(2))
    assert calls == [np.float32]


@given(rows=st.integers(1, 70), cols=st.integers(1, 900), seed=st.integers(0, 1000), data=st.data())
@example(rows=70, cols=33, seed=0, data=None)
def test_threaded_bernoulli_kernel_equals_the_serial_one_bit_for_bit(rows, cols, seed, data):
    """Blocks of rows, each through the serial loop: the same bits (a short last block included),
    over rows first..last only (the wrapper passes 0..rows: a driver ignoring ``first`` passed)."""
    first, last = (3, 40) if data is None else sorted(data.draw(st.lists(st.integers(0, rows), min_size=2, max_size=2)))
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((rows, cols)) * 6).astype(np.float32)
    x = rng.random((rows, cols)).astype(np.float32)
    results = []
    for kernel in (cpu._bernoulli_nll_f32_threads, cpu._bernoulli_nll_f32):
        d, row = np.full_like(logits, np.nan), np.full(rows, np.nan)
        kernel(logits, x, np.float32(0.25), d, row, first, last)
        results.append((d, row))
    d, row = results[0]
    assert np.isfinite(d[first:last]).all() and np.isfinite(row[first:last]).all()
    assert np.isnan(d[:first]).all() and np.isnan(d[last:]).all()  # rows outside untouched
    assert np.isnan(row[:first]).all() and np.isnan(row[last:]).all()
    for threaded, serial in zip(*results):
        np.testing.assert_array_equal(threaded, serial)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_bernoulli_kernel_propagates_nan(dtype):
    logits = np.array([[np.nan, 1.0, -2.0], [0.5, -0.5, 3.0]], dtype)
    x = np.full_like(logits, 0.25)
    d, row = np.empty_like(logits), np.empty(2)
    cpu.bernoulli_nll_logits(logits, x, 1.0, d, row)
    assert np.isnan(row[0]) and np.isnan(d[0, 0])
    assert np.all(np.isfinite(row[1:])) and np.all(np.isfinite(d.ravel()[1:]))


# the optimizers pass flat buffers, but the twins take arrays of any one shape (empty included)
OPTIMIZER_SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9)


@given(dtype=DTYPES, n=OPTIMIZER_SHAPES, steps=st.integers(1, 5), seed=st.integers(0, 1000),
       grad_exponent=st.sampled_from([-20, -6, 0, 10, 19]), settings=ADAM_SETTINGS)
def test_adam_kernel_matches_reference(dtype, n, steps, seed, grad_exponent, settings):
    # the same operations in the same order, so bit for bit, down to where g² would overflow
    # float32 (|g| > 1.8e19) if it were formed before its (1 − β₂) scaling (past 5.8e20 it is Inf either way)
    lr, beta1, beta2, eps = settings
    rng = np.random.default_rng(seed)
    state_c = [rng.standard_normal(n).astype(dtype), None, np.zeros(n, dtype), np.zeros(n, dtype)]
    state_r = [a.copy() if a is not None else None for a in state_c]
    for t in range(1, steps + 1):
        grad = (rng.standard_normal(n) * 10.0**grad_exponent).astype(dtype)
        lr_t, eps_t = adam_bias_corrected_rates(lr, beta1, beta2, eps, t)
        cpu.adam_update(state_c[0], grad, state_c[2], state_c[3], beta1, beta2, lr_t, eps_t)
        with np.errstate(over="ignore", invalid="ignore"):  # float32 v overflows for the largest g, on both sides
            reference.adam_update(state_r[0], grad, state_r[2], state_r[3], beta1, beta2, lr_t, eps_t)
    for c, r in zip(state_c, state_r):
        if c is not None:
            np.testing.assert_array_equal(c, r)


@given(dtype=DTYPES, n=OPTIMIZER_SHAPES, settings=SGD_SETTINGS, seed=st.integers(0, 1000))
def test_sgd_kernel_matches_reference(dtype, n, settings, seed):
    # u = μu + g, θ −= lr·u in the reference's order, with no fused multiply-add: bit for bit
    lr, momentum = settings
    rng = np.random.default_rng(seed)
    p_c, u_c = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    p_r, u_r = p_c.copy(), u_c.copy()
    grad = rng.standard_normal(n).astype(dtype)
    cpu.sgd_update(p_c, grad, u_c, lr, momentum)
    reference.sgd_update(p_r, grad, u_r, lr, momentum)
    np.testing.assert_array_equal(p_c, p_r)
    np.testing.assert_array_equal(u_c, u_r)


@given(dtype=DTYPES, n=st.integers(0, 3 * cpu._UPDATE_CHUNK + 100), seed=st.integers(0, 1000))
@example(dtype=np.float32, n=cpu._UPDATE_CHUNK, seed=0)  # chunk boundaries exactly at the end
@example(dtype=np.float64, n=2 * cpu._UPDATE_CHUNK, seed=1)
@example(dtype=np.float32, n=3 * cpu._UPDATE_CHUNK + 1, seed=2)  # a fourth chunk of one element
def test_threaded_optimizer_updates_equal_the_serial_ones_bit_for_bit(dtype, n, seed):
    """The threaded drivers run the serial loop on chunks: the same bits, whatever the chunk
    boundaries (sizes across several chunks, with a short last one)."""
    rng = np.random.default_rng(seed)
    grad = (rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6)).astype(dtype)
    start = [rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype), rng.random(n).astype(dtype)]
    t = np.dtype(dtype).type
    lr_t, eps_t = adam_bias_corrected_rates(1e-2, 0.9, 0.999, 1e-8, 3)
    adam_args = (t(0.9), t(1 - 0.9), t(0.999), t(1 - 0.999), t(lr_t), t(eps_t))
    threaded, serial = [a.copy() for a in start], [a.copy() for a in start]
    cpu._adam_update_threads(*threaded[:1], grad, *threaded[1:], *adam_args)
    cpu._adam_update(*serial[:1], grad, *serial[1:], *adam_args)
    for a, b in zip(threaded, serial):
        np.testing.assert_array_equal(a, b)
    cpu._sgd_update_threads(threaded[0], grad, threaded[1], t(0.1), t(0.9))
    cpu._sgd_update(serial[0], grad, serial[1], t(0.1), t(0.9))
    for a, b in zip(threaded, serial):
        np.testing.assert_array_equal(a, b)


@given(beta1=st.floats(0.0, 0.999), beta2=st.floats(0.0, 0.9999), lr=st.floats(1e-5, 1.0), eps=st.floats(1e-10, 1e-3),
       step=st.integers(1, 10_000), m=st.floats(-10, 10), v=st.floats(0, 100))
def test_adam_bias_corrected_rates_give_the_papers_step(beta1, beta2, lr, eps, step, m, v):
    """Both sides of the Adam twin tests take lr_t and eps_t from this helper, so it is held to
    the paper's form here: lr_t·m/(√v + eps_t) = lr·m̂/(√v̂ + eps), m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)."""
    lr_t, eps_t = adam_bias_corrected_rates(lr, beta1, beta2, eps, step)
    m_hat, v_hat = m / (1 - beta1**step), v / (1 - beta2**step)
    assert lr_t * m / (np.sqrt(v) + eps_t) == pytest.approx(lr * m_hat / (np.sqrt(v_hat) + eps), rel=1e-12, abs=1e-300)


def test_a_large_adam_update_equals_the_reference_bit_for_bit():
    """The public kernel at a size that takes the threaded driver (where threads may run)."""
    rng = np.random.default_rng(1)
    n = 2 * cpu.THREADED_ELEMENTS + 17
    state_c = [rng.standard_normal(n).astype(np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)]
    state_r = [a.copy() for a in state_c]
    for t in range(1, 4):
        grad = rng.standard_normal(n).astype(np.float32)
        lr_t, eps_t = adam_bias_corrected_rates(1e-3, 0.9, 0.999, 1e-8, t)
        cpu.adam_update(state_c[0], grad, state_c[1], state_c[2], 0.9, 0.999, lr_t, eps_t)
        reference.adam_update(state_r[0], grad, state_r[1], state_r[2], 0.9, 0.999, lr_t, eps_t)
    for c, r in zip(state_c, state_r):
        np.testing.assert_array_equal(c, r)


def _kernel_calls(x, out):
    """Each CPU kernel called with ``x`` as its inputs and ``out`` as the argument it writes."""
    b = np.zeros(x.shape[1])
    lr_t, eps_t = adam_bias_corrected_rates(1e-2, 0.9, 0.999, 1e-8, 1)
    return {
        "relu_forward": lambda: cpu.relu_forward(x, out),
        "relu_backward": lambda: cpu.relu_backward(x, x, out),
        "sigmoid": lambda: cpu.sigmoid(x, out),
        "bias_relu_forward": lambda: cpu.bias_relu_forward(x, b, out),
        "bias_relu_backward": lambda: cpu.bias_relu_backward(x, x, out, b.copy()),
        "bernoulli_nll_logits": lambda: cpu.bernoulli_nll_logits(x, np.full_like(x, 0.5), 0.25, out, np.empty(len(x))),
        "adam_update": lambda: cpu.adam_update(out, x, np.zeros_like(x), np.zeros_like(x), 0.9, 0.999, lr_t, eps_t),
        "sgd_update": lambda: cpu.sgd_update(out, x, np.zeros_like(x), 0.1, 0.9),
    }


# (argument, shape) of each kernel, in order; the scalars are filled in by _ARGUMENT_CALLS
_ARGUMENTS = {
    "relu_forward": [("x", (4, 3)), ("out", (4, 3))],
    "relu_backward": [("dy", (4, 3)), ("y", (4, 3)), ("out", (4, 3))],
    "sigmoid": [("x", (4, 3)), ("out", (4, 3))],
    "bias_relu_forward": [("x", (4, 3)), ("b", (3,)), ("out", (4, 3))],
    "bias_relu_backward": [("dy", (4, 3)), ("y", (4, 3)), ("out", (4, 3)), ("db", (3,))],
    "bernoulli_nll_logits": [("logits", (4, 3)), ("x", (4, 3)), ("dlogits", (4, 3)), ("row_loss", (4,))],
    "adam_update": [("param", (4, 3)), ("grad", (4, 3)), ("m", (4, 3)), ("v", (4, 3))],
    "sgd_update": [("param", (4, 3)), ("grad", (4, 3)), ("velocity", (4, 3))],
}
_ARGUMENT_CALLS = {
    "bernoulli_nll_logits": lambda logits, x, dlogits, row_loss: cpu.bernoulli_nll_logits(logits, x, 0.25, dlogits, row_loss),
    "adam_update": lambda param, grad, m, v: cpu.adam_update(param, grad, m, v, 0.9, 0.999, 1e-3, 1e-8),
    "sgd_update": lambda param, grad, velocity: cpu.sgd_update(param, grad, velocity, 0.1, 0.9),
}


@pytest.mark.parametrize("kernel, position", [(k, i) for k, spec in _ARGUMENTS.items() for i in range(len(spec))],
                         ids=[f"{k}-{name}" for k, spec in _ARGUMENTS.items() for name, _ in spec])
def test_kernels_refuse_any_argument_of_another_shape_and_write_nothing(kernel, position):
    """The Numba loops index without bounds checks: a short argument, or one shaped otherwise,
    input or output, would be read or written past its end instead of being refused. Each
    array lives at the start of a buffer of 7s twice its size, so a stray write shows, and
    stays inside memory the test owns."""
    call = _ARGUMENT_CALLS.get(kernel, getattr(cpu, kernel))
    spec = _ARGUMENTS[kernel]
    shape = spec[position][1]
    wrong_shapes = [(2, 3), (3, 4), (12,), (5, 3)] if len(shape) == 2 else [(shape[0] - 1,), (shape[0] + 1,), (1, shape[0])]
    for wrong in wrong_shapes:
        buffers = [np.full(32, 7.0) for _ in spec]
        args = [buffer[:int(np.prod(s))].reshape(s)
                for buffer, s in zip(buffers, (wrong if i == position else s for i, (_, s) in enumerate(spec)))]
        with pytest.raises(ValueError, match=r"must all have shape|a \(batch, n\) array and an \(n,\) one|"
                                             r"expected \(batch, d\) logits"):
            call(*args)
        for buffer in buffers:
            np.testing.assert_array_equal(buffer, 7.0, err_msg=f"{spec[position][0]} of shape {wrong}")
    call(*[np.full(s, 0.5) for _, s in spec])  # the right shapes run


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_refuses_one_dimensional_logits_by_name(dtype):
    """(Numba's type inference failed on them, naming nothing.)"""
    with pytest.raises(ValueError, match=r"expected \(batch, d\) logits, got shape \(4,\)"):
        cpu.bernoulli_nll_logits(np.zeros(4, dtype), np.zeros(4, dtype), 1.0, np.empty(4, dtype), np.empty(4))


_IN_PLACE_CALLS = {  # the kernels whose out may be x itself
    "relu_forward": cpu.relu_forward,
    "bias_relu_forward": lambda x, out: cpu.bias_relu_forward(x, np.full(x.shape[1], 0.25, x.dtype), out),
    "sigmoid": cpu.sigmoid,
}
_REFERENCE_CALLS = {
    "relu_forward": reference.relu_forward,
    "bias_relu_forward": lambda x, out: reference.bias_relu_forward(x, np.full(x.shape[1], 0.25, x.dtype), out),
    "sigmoid": reference.sigmoid,
}


@pytest.mark.parametrize("kernel", sorted(_IN_PLACE_CALLS))
def test_in_place_kernels_take_x_itself_even_through_another_view(kernel):
    """out may be x itself: the same object, or another view of the same memory, shape and
    dtype (the convolution layers pass dx[s:e] twice)."""
    x = np.linspace(-3, 3, 24).reshape(4, 6)
    want = _REFERENCE_CALLS[kernel](x, np.empty_like(x))
    for view in (lambda a: a, lambda a: a[:]):
        a = x.copy()
        assert _IN_PLACE_CALLS[kernel](a, view(a)) is not None
        np.testing.assert_array_equal(a, want)


def _overlaps():
    """(x, out) pairs that share memory but are not x itself: x at out's address in another
    dtype, and out starting one element (or one row) further along."""
    raw = np.zeros(96, np.uint8)
    x64 = raw.view(np.float64).reshape(2, 6)
    x64[...] = np.linspace(-3, 3, 12).reshape(2, 6)
    cells = np.linspace(-3, 3, 30)
    return {
        "another dtype": (x64, raw.view(np.float32)[:12].reshape(2, 6)),
        "one element along": (cells[:24].reshape(4, 6), cells[1:25].reshape(4, 6)),
        "one row along": (cells[:24].reshape(4, 6), cells[6:30].reshape(4, 6)),
        "one row back": (cells[6:30].reshape(4, 6), cells[:24].reshape(4, 6)),
    }


@pytest.mark.parametrize("case", sorted(_overlaps()))
@pytest.mark.parametrize("kernel", sorted(_IN_PLACE_CALLS))
def test_in_place_kernels_refuse_an_out_that_overlaps_x_otherwise_and_write_nothing(kernel, case):
    """The loops read each value just before writing its position: right in place, wrong for
    an out that starts elsewhere in x's memory (or at x's address in another dtype), where
    the reference is right (NumPy buffers overlaps). relu_forward read float64 bits as float32
    ones ([0, 0, 0, 2.06, 0, 2.19] for [0, 2.5, 3.5, 4.5, 0, 6.5]); sigmoid shifted its results."""
    x, out = _overlaps()[case]
    memory = (x.base if x.base is not None else x).copy()
    with pytest.raises(ValueError, match=rf"{kernel}: out must be x itself or not overlap it \(.*\); got x "):
        _IN_PLACE_CALLS[kernel](x, out)
    np.testing.assert_array_equal(x.base if x.base is not None else x, memory)


@pytest.mark.parametrize("kernel", ["adam_update", "sgd_update"])
@pytest.mark.parametrize("module", [cpu, reference], ids=["numba", "reference"])
@pytest.mark.parametrize("odd", ["grad", "state"])
def test_optimizer_updates_refuse_arrays_of_mixed_dtypes_and_write_nothing(kernel, module, odd):
    """They compute in the parameters' dtype: a float64 gradient for float32 parameters ran
    unrounded in the Numba loop and rounded in the reference (SGD differed in 133 of 1000
    parameters). Both now refuse, as CuPy's one-type kernels do."""
    param = np.linspace(-1, 1, 12, dtype=np.float32)
    grad = np.linspace(0.5, -0.5, 12, dtype=np.float64 if odd == "grad" else np.float32)
    state = [np.zeros(12, np.float64 if odd == "state" and i == 0 else np.float32) for i in range(2 if kernel == "adam_update" else 1)]
    before = [a.copy() for a in (param, *state)]
    args = (0.9, 0.999, 1e-3, 1e-8) if kernel == "adam_update" else (0.1, 0.9)
    with pytest.raises(TypeError, match=f"{kernel} needs param, grad, .* of one dtype; got param float32, grad "
                                        f"{grad.dtype}"):
        getattr(module, kernel)(param, grad, *state, *args)
    for a, was in zip((param, *state), before):
        np.testing.assert_array_equal(a, was)


def _read_only(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("kernel", sorted(_kernel_calls(np.ones((4, 3)), np.ones((4, 3)))))
@pytest.mark.parametrize("out, error, message", [
    (lambda: np.full((4, 3), 7, np.int64), TypeError, "writes .* in float32 or float64, got an array of dtype int64"),
    (lambda: np.full((4, 3), 7, np.float16), TypeError, "writes .* in float32 or float64, got an array of dtype float16"),
    (lambda: _read_only(np.full((4, 3), 7.0)), ValueError, "writes .*, got a read-only array"),
], ids=["int64", "float16", "read-only"])
def test_kernels_refuse_an_output_they_cannot_write_and_write_nothing(kernel, out, error, message):
    """A compiled loop truncated its float results into an integer output (relu 2.7 gave 2),
    where the reference refuses; float16 met Numba's bare NotImplementedError, and a read-only
    output its TypingError. Each is now refused by name, before anything is written."""
    x = np.linspace(-2.7, 2.7, 12).reshape(4, 3)
    target = out()
    before = target.copy()
    with pytest.raises(error, match=message):
        _kernel_calls(x, target)[kernel]()
    np.testing.assert_array_equal(target, before)


@pytest.mark.parametrize("written", ["db", "row_loss", "m", "v", "velocity"])
def test_the_other_outputs_are_checked_too(written):
    """Every array a kernel writes, not only the one in _kernel_calls' out position: an int64
    Adam m or v, or SGD velocity, ran and stayed 0."""
    x = np.linspace(-2.7, 2.7, 12).reshape(4, 3)
    bad = np.zeros(3 if written == "db" else 4 if written == "row_loss" else (4, 3), np.int64)
    param = x.copy()
    with pytest.raises(TypeError, match=f"writes {written} in float32 or float64, got an array of dtype int64"):
        if written == "db":
            cpu.bias_relu_backward(x, x, np.empty_like(x), bad)
        elif written == "row_loss":
            cpu.bernoulli_nll_logits(x, np.full_like(x, 0.5), 0.25, np.empty_like(x), bad)
        elif written == "velocity":
            cpu.sgd_update(param, x, bad, 0.1, 0.9)
        else:
            m, v = (bad, np.zeros_like(x)) if written == "m" else (np.zeros_like(x), bad)
            cpu.adam_update(param, x, m, v, 0.9, 0.999, 1e-3, 1e-8)
    np.testing.assert_array_equal(param, x)


def test_a_float16_input_is_refused_by_name():
    with pytest.raises(TypeError, match="float32, float64, integers or booleans, got dtype float16"):
        cpu.relu_forward(np.ones(3, np.float16), np.empty(3))
    np.testing.assert_array_equal(cpu.relu_forward(np.array([-1, 2], np.int64), np.empty(2)), [0.0, 2.0])  # integers run


def test_relu_propagates_nan_like_the_reference():
    x = np.array([np.nan, -1.0, 2.0])
    c = cpu.relu_forward(x, np.empty_like(x))
    r = reference.relu_forward(x, np.empty_like(x))
    np.testing.assert_array_equal(c, r)
    assert np.isnan(c[0])
    in_place = x.copy()
    cpu.relu_forward(in_place, in_place)
    np.testing.assert_array_equal(in_place, r)


def test_kernels_reject_non_contiguous_arrays():
    x = np.ones((4, 4))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.relu_forward(x, np.empty_like(x))


def test_reference_kernels_can_be_selected(monkeypatch):
    import microvae as mv

    monkeypatch.setenv("MICROVAE_KERNELS", "reference")
    assert mv.get_backend().kernels is reference
    monkeypatch.delenv("MICROVAE_KERNELS")
    assert mv.get_backend().kernels is cpu


def test_jit_results_are_cached_to_disk(tmp_path):
    # a second process loads the compiled kernel from the on-disk cache instead of recompiling;
    # an empty NUMBA_CACHE_DIR of its own, so the first process must compile (0 hits) and write it
    code = (
        "import numpy as np; from microvae.kernels import cpu; x = np.ones(3); cpu.relu_forward(x, np.empty_like(x)); "
        "print(sum(cpu._relu_forward.stats.cache_hits.values()))"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    first = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True)
    assert int(first.stdout) == 0 and int(second.stdout) > 0, (first.stdout, second.stdout)
    assert glob.glob(os.path.join(tmp_path, "**", "*_relu_forward*.nbi"), recursive=True)


def test_every_kernel_has_a_compiled_and_a_reference_twin():
    import ast
    import pathlib

    from microvae.kernels import KERNEL_NAMES

    for name in KERNEL_NAMES:
        assert callable(getattr(cpu, name, None)), f"cpu.{name} missing"
        assert callable(getattr(reference, name, None)), f"reference.{name} missing"
    # the GPU module can't be imported without CuPy: check that it defines (or re-exports) each name
    folder = pathlib.Path(cpu.__file__).parent
    gpu_names = set()
    for path in folder.glob("*gpu.py"):
        tree = ast.parse(path.read_text())
        gpu_names |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert set(KERNEL_NAMES) <= gpu_names, set(KERNEL_NAMES) - gpu_names


def test_every_public_cpu_kernel_has_a_reference_twin_not_only_the_shared_ones():
    """KERNEL_NAMES lists the kernels both backends share; the CPU-only direct 3×3 convolution
    fell outside that check. The two float32 helpers are held to NumPy's float64 exp and log1p
    instead, within 1.5 and 2 ulp (tests/test_vector_math.py)."""
    compiled = {name for name in dir(cpu) if not name.startswith("_") and callable(getattr(cpu, name))
                and getattr(getattr(cpu, name), "__module__", "").startswith("microvae.kernels")}
    assert {"conv3x3_same", "conv3x3_same_weight_grad"} <= compiled
    assert compiled - {name for name in dir(reference) if callable(getattr(reference, name))} == {"exp_neg_f32",
                                                                                                 "log1p_unit_f32"}


def test_gpu_kernel_module_defines_every_kernel_when_cupy_is_installed():
    # importable without a GPU: the CuPy kernels are compiled on first use, not at import
    pytest.importorskip("cupy")
    from microvae.kernels import KERNEL_NAMES, gpu

    missing = [name for name in KERNEL_NAMES if not callable(getattr(gpu, name, None))]
    assert not missing, missing
