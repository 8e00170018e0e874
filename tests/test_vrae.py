"""VRAE and HierarchicalVRAE: whole-objective gradients, masks, teacher forcing, training, checkpoints, errors."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import microvae
import microvae as mv
from microvae import VRAE, HierarchicalVRAE, check_model, testing
from microvae.models.vrae import pad_sequences


def sinusoids(n, T=20, F=2, seed=0):
    """Noisy sinusoids of random frequency and phase, scaled into [0, 1]: (n, T, F)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[None, :, None]
    freq, phase = rng.uniform(0.2, 0.6, (n, 1, F)), rng.uniform(0, 2 * np.pi, (n, 1, F))
    return (0.5 + 0.4 * np.sin(freq * t + phase) + 0.02 * rng.standard_normal((n, T, F))).clip(0, 1).astype(np.float32)


def ragged_mask(lengths, T):
    return (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.float64)


def random_biases(model, seed):
    """Give every bias a random value. With the initial zero biases and a small z, states such
    as tanh(z·W_s) start near 0, and the gradient of a whole tensor (e.g. the decoder's W_h,
    which multiplies those states) can be ~1e-5 of the loss — too small for central
    differences of the loss to resolve to 1e-6. Random biases are the generic case."""
    rng = np.random.default_rng(seed)
    for name, value, _ in model.flat.named():
        if name.endswith(".b") or name.endswith(".b_hn"):
            value[...] = rng.uniform(0.2, 0.6, value.shape) * rng.choice([-1, 1], value.shape)
    return model


def tiny(kind, cell="gru", likelihood="bernoulli", seed=1, **kw):
    if kind == "flat":
        model = VRAE(3, hidden_size=4, latent_dim=2, cell=cell, likelihood=likelihood, beta=0.7, dtype="float64", seed=seed, **kw)
    else:
        model = HierarchicalVRAE(3, segment_length=2, hidden_size=4, conductor_size=3, latent_dim=2, cell=cell,
                                 likelihood=likelihood, beta=0.7, dtype="float64", seed=seed, **kw)
    return random_biases(model, seed)


# --- the whole objective's gradient -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_whole_objective_gradient(kind, cell, likelihood):
    model = tiny(kind, cell, likelihood)
    rng = np.random.default_rng(2)
    x = rng.random((3, 6, 3))
    mask = ragged_mask([6, 3, 1], 6)
    result = check_model(model, x, mask)
    assert result.passed(1e-6), result.table()


def _model(kind, F, H, latent, cell, likelihood, beta, seed, segment_length=2, conductor_size=2):
    if kind == "flat":
        return VRAE(F, hidden_size=H, latent_dim=latent, cell=cell, likelihood=likelihood, beta=beta, dtype="float64", seed=seed)
    return HierarchicalVRAE(F, segment_length=segment_length, hidden_size=H, conductor_size=conductor_size, latent_dim=latent,
                            cell=cell, likelihood=likelihood, beta=beta, dtype="float64", seed=seed)


# Over likelihoods and β too: the Gaussian likelihoods and β ≠ 1 were otherwise checked at one shape
# only. The likelihood, the model and the cell are parameters, not drawn, so that each pairing
# gets its examples (drawn, the "ci" profile's 15 examples held one gaussian-learned, and one
# flat GRU, at T = 1).
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned", {"name": "gaussian", "logvar": -0.7}], ids=str)
@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
@pytest.mark.parametrize("cell", ["gru", "rnn"])
@settings(max_examples=4)
@given(n=st.integers(1, 3),
       segments=st.integers(1, 3), segment_length=st.integers(1, 4), conductor_size=st.integers(1, 4), F=st.integers(1, 3),
       H=st.integers(1, 4), latent=st.integers(1, 3), masked=st.booleans(), beta=testing.betas(), seed=st.integers(0, 2**31))
def test_whole_objective_gradient_over_shapes(likelihood, kind, cell, n, segments, segment_length, conductor_size, F, H, latent,
                                              masked, beta, seed):
    rng = np.random.default_rng(seed)
    model = _model(kind, F, H, latent, cell, likelihood, beta, seed % 1000, segment_length, conductor_size)
    random_biases(model, seed)
    T = segment_length * segments
    x = rng.random((n, T, F))
    batch = (x, ragged_mask(rng.integers(1, T + 1, size=n), T)) if masked else (x,)
    # Central differences of the loss L (step h = 1e-6) carry a rounding error of about
    # 1e-16·|L|/h = 1e-10·|L|, so they cannot check a tensor whose whole gradient happens to
    # be below ~1e-3·|L| (terms cancelling over steps, a state near 0) to 1e-6 relative.
    # Such draws are skipped, as kinks are elsewhere; exact zeros are still checked.
    terms = model.loss_and_grads(*batch, eps=model.fixed_noise(*batch, seed=0))
    assume(all(not g.any() or np.abs(g).max() > 1e-3 * abs(terms.loss) for _, _, g in model.flat.named()))
    result = check_model(model, *batch)
    assert result.passed(1e-6), result.table()


@pytest.mark.parametrize("clamped", testing.CLAMPED_SIDES, ids="+".join)
@settings(max_examples=4)
@given(kind=st.sampled_from(["flat", "hierarchical"]), cell=st.sampled_from(["gru", "rnn"]), n=st.integers(1, 3),
       F=st.integers(1, 3), H=st.integers(1, 4), latent=st.integers(1, 3), drawn=testing.logvar_side_lists(), masked=st.booleans(),
       likelihood=st.sampled_from(["bernoulli", "gaussian", "gaussian-learned"]), beta=testing.betas(), seed=st.integers(0, 2**31))
def test_whole_objective_gradient_with_logvar_outside_the_clamp(clamped, kind, cell, n, F, H, latent, drawn, masked, likelihood,
                                                                beta, seed):
    # _encode clamps logvar to LOGVAR_RANGE and _encode_backward masks dlogvar outside it; the
    # checks above never leave the range, so here some latent columns are clamped, the others not.
    assume(latent >= len(clamped))
    rng = np.random.default_rng(seed)
    sides = testing.logvar_sides(clamped, drawn[:latent], rng)
    model = random_biases(_model(kind, F, H, latent, cell, likelihood, beta, seed % 1000), seed)
    x = rng.random((n, 4, F))
    batch = (x, ragged_mask(rng.integers(1, 5, size=n), 4)) if masked else (x,)
    eps = testing.push_logvar_outside(model.to_latent.params["b"][latent:], sides, model.fixed_noise(*batch, seed=0))
    model.loss(*batch, eps=eps)
    assume(testing.clear_of_the_clamp(model.to_latent, latent, sides))
    # No small-gradient filter as above: with β > 0 a column clamped high puts β·e^20/2 into the
    # loss L, and check_model judges each tensor against max(|its gradient|, 1e-3·|L|), far above
    # the ~1e-10·|L| rounding of the differences (hundreds of random draws passed unfiltered). That
    # floor also hides an error below it in the other columns: the β = 0 check below sees those.
    result = check_model(model, *batch, eps_noise=eps)
    assert result.passed(1e-6), result.table()


@settings(max_examples=8)
@given(kind=st.sampled_from(["flat", "hierarchical"]), cell=st.sampled_from(["gru", "rnn"]), n=st.integers(1, 3),
       F=st.integers(1, 3), H=st.integers(1, 4), latent=st.integers(2, 3), drawn=testing.logvar_side_lists(),
       masked=st.booleans(), likelihood=st.sampled_from(["bernoulli", "gaussian", "gaussian-learned"]),
       seed=st.integers(0, 2**31))
def test_a_column_clamped_high_is_checked_at_beta_0_where_its_kl_would_swamp_the_loss(kind, cell, n, F, H, latent, drawn,
                                                                                       masked, likelihood, seed):
    """With β > 0 a column clamped at +20 puts β·e^20/2 into L, and the check above then holds
    the in-range columns only to 1e-3·|L|: a mask that dropped every dlogvar once any column
    was clamped high passed it. At β = 0 (ε scaled so that σ·ε stays O(1)) L stays O(1), and
    the mask is checked at each tensor's own scale, through the reconstruction's dlogvar."""
    rng = np.random.default_rng(seed)
    sides = testing.logvar_sides(("high",), drawn[:latent], rng)
    assume("inside" in sides)
    model = random_biases(_model(kind, F, H, latent, cell, likelihood, 0.0, seed % 1000), seed)
    x = rng.random((n, 4, F))
    batch = (x, ragged_mask(rng.integers(1, 5, size=n), 4)) if masked else (x,)
    eps = testing.push_logvar_outside(model.to_latent.params["b"][latent:], sides, model.fixed_noise(*batch, seed=0))
    terms = model.loss(*batch, eps=eps)
    assume(testing.clear_of_the_clamp(model.to_latent, latent, sides))
    assert abs(terms.loss) < 1e3
    result = check_model(model, *batch, eps_noise=eps)
    assert result.passed(1e-6), result.table()


@settings(max_examples=4)
@given(kind=st.sampled_from(["flat", "hierarchical"]), cell=st.sampled_from(["gru", "rnn"]), n=st.integers(1, 3),
       F=st.integers(1, 3), H=st.integers(1, 4), latent=st.integers(1, 3), warmup=st.integers(2, 12),
       fraction=st.floats(0.0, 1.0), seed=st.integers(0, 2**31))
def test_whole_objective_gradient_part_way_through_a_beta_warmup(kind, cell, n, F, H, latent, warmup, fraction, seed):
    """The checks above run at β(t) = β: here always strictly inside a β warm-up, where the KL's
    slope is β·step/warmup (a slope of the full β passed them)."""
    rng = np.random.default_rng(seed)
    model = _model(kind, F, H, latent, cell, "bernoulli", 1.5, seed % 1000)
    model.beta_warmup = warmup
    model.step = min(warmup - 1, max(1, round(fraction * warmup)))
    assert 0 < model.current_beta() < model.beta
    random_biases(model, seed)
    x = rng.random((n, 4, F))
    batch = (x, ragged_mask(rng.integers(1, 5, size=n), 4))
    terms = model.loss_and_grads(*batch, eps=model.fixed_noise(*batch, seed=0))
    # as in the check over shapes: a tensor whose whole gradient is below ~1e-3·|L| is beyond the differences' resolution
    assume(all(not g.any() or np.abs(g).max() > 1e-3 * abs(terms.loss) for _, _, g in model.flat.named()))
    result = check_model(model, *batch)
    assert result.passed(1e-6), result.table()


# --- masks and teacher forcing -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_padded_steps_do_not_count(kind):
    """The masked loss ignores what padding holds, and equals the loss of the unpadded sequence."""
    model = tiny(kind, "gru")
    rng = np.random.default_rng(3)
    x = rng.random((2, 6, 3))
    mask = ragged_mask([6, 4], 6)
    eps = rng.standard_normal((2, 2))
    base = model.loss(x, mask, eps=eps)
    scrambled = x.copy()
    scrambled[1, 4:] = rng.random((2, 3))
    assert model.loss(scrambled, mask, eps=eps) == base
    alone = model.loss(x[1:, :4], eps=eps[1:])
    with_padding = model.loss(x[1:], mask[1:], eps=eps[1:])
    np.testing.assert_allclose(with_padding.loss, alone.loss, rtol=1e-12)
    np.testing.assert_allclose(with_padding.kl, alone.kl, rtol=1e-12)
    # the gradient agrees too
    model.loss_and_grads(x[1:], mask[1:], eps=eps[1:])
    g_padded = model.flat.grad.copy()
    model.loss_and_grads(x[1:, :4], eps=eps[1:])
    np.testing.assert_allclose(g_padded, model.flat.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_bernoulli_padding_may_hold_any_finite_value(kind):
    """Only the real steps need to be in [0, 1]: padding of −1 (pad_sequences(value=-1)) trains
    and evaluates like padding of 0, while a real step outside [0, 1] or NaN padding is refused."""
    model = tiny(kind, "gru")
    rng = np.random.default_rng(5)
    x, mask = pad_sequences([rng.random((6, 3)), rng.random((4, 3))], value=-1.0)
    assert x.min() == -1.0
    zero_padded = np.where(mask[:, :, None] > 0, x, 0.0)
    eps = rng.standard_normal((2, 2))
    assert model.loss(x, mask, eps=eps) == model.loss(zero_padded, mask, eps=eps)
    np.testing.assert_array_equal(model.encode(x, mask)[0], model.encode(zero_padded, mask)[0])
    model.fit(x, mask, epochs=1, batch_size=2, verbose=0)
    bad_real = x.copy()
    bad_real[1, 3, 0] = 1.5  # step 3 of row 1 is real
    with pytest.raises(ValueError, match=r"real steps.*\[0, 1\]"):
        model.loss(bad_real, mask, eps=eps)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):  # without a mask every step is real
        model.loss(x, eps=eps)
    nan_padding = x.copy()
    nan_padding[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.loss(nan_padding, mask, eps=eps)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_padding_far_from_the_data_changes_nothing(kind, likelihood, dtype):
    """pad_sequences promises that any finite padding value works whatever the likelihood: a
    value whose square overflows ((x − μ)² = Inf at a padded step, then Inf·0 = NaN) or whose
    decoder input overflows gives the loss, gradient and training of zero padding."""
    rng = np.random.default_rng(8)
    seqs = [rng.random((6, 3)), rng.random((2, 3))]
    big = float(np.finfo(dtype).max) / 2
    cls, options = (VRAE, {}) if kind == "flat" else (HierarchicalVRAE, dict(segment_length=2, conductor_size=3))
    for value in [-1e20, big, -big]:
        runs = []
        for pad in [0.0, value]:
            model = cls(3, hidden_size=4, latent_dim=2, likelihood=likelihood, dtype=dtype, seed=0, **options)
            x, mask = pad_sequences(seqs, value=pad)
            terms = model.loss_and_grads(x, mask, eps=np.zeros((2, 2)))
            assert np.isfinite(terms.loss), (pad, terms)
            grad = model.flat.grad.copy()
            model.fit(x, mask, epochs=1, batch_size=2, verbose=0)
            runs.append((terms, grad, model.flat.data.copy()))
        (terms0, grad0, after0), (terms1, grad1, after1) = runs
        assert terms1 == terms0
        np.testing.assert_array_equal(grad1, grad0)
        np.testing.assert_array_equal(after1, after0)


def test_a_ragged_list_of_sequences_is_pointed_to_pad_sequences():
    model = VRAE(2, seed=0)
    with pytest.raises(ValueError, match=r"x is a ragged list.*pad_sequences"):
        model.fit([np.random.rand(5, 2), np.random.rand(3, 2)], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"mask is a ragged list.*pad_sequences"):
        model.loss(np.random.rand(2, 3, 2), [[1, 1, 1], [1, 1]])


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_teacher_forcing_is_causal(kind):
    """With z fixed, the output at step t depends on x_{<t} only (decoder input at t is x_{t−1})."""
    model = tiny(kind, "gru")
    rng = np.random.default_rng(4)
    x = rng.random((2, 6, 3))
    z = model.backend.asarray(rng.standard_normal((2, 2)))
    model._x = x
    before = model._decode(z).copy()
    changed = x.copy()
    changed[:, 3] += 0.5
    model._x = changed
    after = model._decode(z)
    np.testing.assert_array_equal(before[:, :4], after[:, :4])
    assert np.abs(before[:, 4] - after[:, 4]).max() > 1e-6


def test_pad_sequences():
    x, mask = pad_sequences([np.ones((3, 2)), np.full((1, 2), 0.5), np.zeros((5, 2))], length=4)
    assert x.shape == (3, 4, 2) and mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    assert x[0, 3].tolist() == [0, 0] and x[1, 0].tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="non-empty"):
        pad_sequences([np.ones((2, 2)), np.ones((2, 3))])
    assert mv.pad_sequences is pad_sequences  # the VRAE docs point to it: importable from the top


@pytest.mark.parametrize("dtypes, expected", [((np.int64, np.int64), np.float32), ((np.bool_, np.uint8), np.float32),
                                               ((np.int64, np.float32), np.float32), ((np.float16, np.int32), np.float32),
                                               ((np.int64, np.float64), np.float64), ((np.float64, np.float64), np.float64)])
def test_pad_sequences_keeps_integer_sequences_float32(dtypes, expected):
    """Integer and bool sequences give float32 x (NumPy's promotion of int64 with float32 is
    float64); a float64 sequence keeps x float64. The values are exact either way."""
    seqs = [np.array([[1, 0], [0, 1], [1, 1]], dtype=dtypes[0]), np.array([[0, 1]], dtype=dtypes[1])]
    x, mask = pad_sequences(seqs, value=0.5)
    assert x.dtype == expected and mask.dtype == np.float32
    assert x.tolist() == [[[1, 0], [0, 1], [1, 1]], [[0, 1], [0.5, 0.5], [0.5, 0.5]]]


@pytest.mark.parametrize("length, error", [(2.7, ValueError), (0, ValueError), ("3", TypeError), (True, TypeError)])
def test_pad_sequences_refuses_a_length_that_is_not_a_positive_integer(length, error):
    """int(length) would cut every sequence to 2 steps for length=2.7, without a word."""
    with pytest.raises(error, match="length must be None or a positive integer"):
        pad_sequences([np.zeros((5, 1)), np.ones((4, 1))], length=length)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "0"])
def test_pad_sequences_refuses_a_padding_value_that_is_not_a_finite_number(value):
    with pytest.raises((TypeError, ValueError), match="value must be a finite number"):
        pad_sequences([np.zeros((2, 1))], length=3, value=value)


@pytest.mark.parametrize("second, dtype", [(np.array([["a"] * 3] * 2), "<U1"), (np.ones((2, 3)) * 1j, "complex128"),
                                           (np.array([[0.1, None, 0.2]], dtype=object), "object")])
def test_pad_sequences_refuses_sequences_that_are_not_real_numbers(second, dtype):
    # strings failed in NumPy's copy (UFuncTypeError); complex numbers came back as a complex x
    with pytest.raises(TypeError, match=rf"pad_sequences expects real numbers \(bool, integer or float\) for "
                                        rf"sequences\[1\], got dtype {dtype}"):
        pad_sequences([np.zeros((2, 3)), second])


# --- training and generation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_training_lowers_the_loss(kind, cell):
    x, x_val = sinusoids(256, seed=0), sinusoids(64, seed=1)
    lengths = np.random.default_rng(2).integers(8, 21, size=256)
    mask = ragged_mask(lengths, 20)
    extra = {} if kind == "flat" else dict(segment_length=5, conductor_size=16)
    cls = VRAE if kind == "flat" else HierarchicalVRAE
    model = cls(2, hidden_size=16, latent_dim=4, cell=cell, seed=0, **extra)
    before = model.evaluate(x_val)["loss"]
    history = model.fit(x, epochs=8, batch_size=32, lr=5e-3, verbose=0, validation_data=x_val)
    assert history["val_loss"][-1] < 0.9 * before and history["loss"][-1] < history["loss"][0]
    masked = cls(2, hidden_size=16, latent_dim=4, cell=cell, seed=0, **extra)
    before = masked.evaluate(x, mask)["loss"]
    masked.fit(x, mask, epochs=6, batch_size=32, lr=5e-3, verbose=0)
    assert masked.evaluate(x, mask)["loss"] < 0.9 * before
    samples = masked.sample(3, length=13, seed=0)
    assert samples.shape == (3, 13, 2) and samples.min() >= 0 and samples.max() <= 1
    np.testing.assert_array_equal(samples, masked.sample(3, length=13, seed=0))
    recon = masked.reconstruct(x[:4], mask[:4])
    assert recon.shape == (4, 20, 2) and not recon[mask[:4] == 0].any()


def test_latent_code_carries_information_on_fashion_rows(fashion_subset):
    """Images as sequences of 28 rows: reconstructions resemble their own image more than others."""
    images, _ = fashion_subset
    x = images.reshape(-1, 28, 28)
    model = HierarchicalVRAE(28, segment_length=7, hidden_size=48, conductor_size=32, latent_dim=8, beta_warmup=100, seed=0)
    before = model.evaluate(x[5000:5300])
    model.fit(x[:1200], epochs=3, batch_size=64, lr=2e-3, verbose=0)
    after = model.evaluate(x[5000:5300])
    recon = model.reconstruct(x[5000:5200])
    own = np.abs(recon - x[5000:5200]).mean()
    other = np.abs(recon - x[5200:5400]).mean()
    print(f"\nFashion rows: loss {before['loss']:.1f} -> {after['loss']:.1f} (KL {after['kl']:.2f}); "
          f"reconstruction error own {own:.3f} vs other {other:.3f}")
    assert after["loss"] < 0.6 * before["loss"]
    assert after["kl"] > 0.5
    assert own < 0.9 * other


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_generation_shapes_and_decode(kind):
    model = tiny(kind, "rnn", "gaussian-learned")
    out = model.decode(np.zeros((2, 2)), length=5)
    assert out.shape == (2, 5, 3) and np.isfinite(out).all()
    np.testing.assert_array_equal(out[0], out[1])
    # 5 steps is 2½ segments of 2: whole segments are generated and the first 5 steps kept
    np.testing.assert_array_equal(model.decode(np.zeros((2, 2)), length=6)[:, :5], out)
    mu, logvar = model.encode(np.random.default_rng(0).random((4, 6, 3)))
    assert mu.shape == logvar.shape == (4, 2)
    elbo = model.elbo(np.random.default_rng(0).random((4, 6, 3)), ragged_mask([6, 2, 4, 6], 6), n_samples=2)
    assert elbo.shape == (4,) and np.isfinite(elbo).all()


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_inference_in_row_blocks_gives_the_same_results(kind):
    """encode/decode/reconstruct/sample/elbo go through the networks INFERENCE_BATCH rows at a
    time: blocks of 3 sequences (the last one partial) must give what one pass over all 7
    gives, with and without a mask, the noise of sample and elbo included, for 1 and 3 draws."""
    model = tiny(kind, "gru", "gaussian")
    x = np.random.default_rng(0).random((7, 6, 3))
    mask = ragged_mask([6, 2, 4, 6, 1, 5, 3], 6)
    z = np.random.default_rng(1).standard_normal((7, 2))

    def everything():
        model.backend.seed(5)
        return (*model.encode(x, mask), *model.encode(x), model.decode(z, 5), model.reconstruct(x, mask),
                model.reconstruct(x), model.sample(7, 5, seed=3), model.sample(7, 5),
                model.elbo(x, mask, n_samples=1), model.elbo(x, mask, n_samples=3), model.elbo(x, n_samples=2))

    whole = everything()
    model.INFERENCE_BATCH = 3
    blocks = everything()
    assert [a.shape for a in blocks] == [(7, 2)] * 4 + [(7, 5, 3), (7, 6, 3), (7, 6, 3), (7, 5, 3), (7, 5, 3)] + [(7,)] * 3
    for a, b in zip(blocks, whole):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --- checkpoints -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_save_load_roundtrip(tmp_path, kind):
    x = sinusoids(40, T=8, F=3, seed=5)
    mask = ragged_mask(np.random.default_rng(1).integers(1, 9, size=40), 8)
    cls = VRAE if kind == "flat" else HierarchicalVRAE
    extra = {} if kind == "flat" else dict(segment_length=4, conductor_size=5)
    model = cls(3, hidden_size=6, latent_dim=2, cell="rnn", beta=0.5, seed=7, **extra)
    model.fit(x, mask, epochs=1, batch_size=10, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = microvae.load(tmp_path / "m.npz")
    assert type(loaded) is cls and loaded.config == model.config
    for a, b in zip(loaded.encode(x, mask), model.encode(x, mask)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.reconstruct(x, mask), model.reconstruct(x, mask))
    np.testing.assert_array_equal(loaded.sample(3, 9, seed=2), model.sample(3, 9, seed=2))
    eps = np.random.default_rng(0).standard_normal((40, 2))
    assert loaded.loss(x, mask, eps=eps) == model.loss(x, mask, eps=eps)
    model.fit(x, mask, epochs=1, batch_size=10, verbose=0)
    loaded.fit(x, mask, epochs=1, batch_size=10, verbose=0)
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)


# --- bad input -----------------------------------------------------------------------------------------------------


def test_bad_input_is_rejected_clearly():
    model = tiny("flat")
    hier = tiny("hierarchical")
    x = np.random.default_rng(0).random((2, 6, 3))
    with pytest.raises(ValueError, match=r"\(batch, time, 3\)"):
        model.fit(x.reshape(2, 18), verbose=0)
    with pytest.raises(ValueError, match=r"\(batch, time, 3\)"):
        model.loss(np.zeros((2, 6, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.fit(x * 2, verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        model.encode(np.full((1, 6, 3), np.nan))
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 6\)"):
        model.fit(x, np.ones((2, 5)), verbose=0)
    with pytest.raises(ValueError, match="only 0 and 1"):
        model.loss(x, np.full((2, 6), 0.5))
    with pytest.raises(ValueError, match="1…1 0…0.*; row 0 is 110100$"):
        model.loss(x, np.array([[1, 1, 0, 1, 0, 0], [1] * 6]))
    with pytest.raises(ValueError, match="at least one 1; row 1 is 000000$"):
        model.loss(x, np.array([[1] * 6, [0] * 6]))
    with pytest.raises(TypeError, match=r"fit takes the mask as its second argument or as mask=, not y="):
        model.fit(x, y=np.ones((2, 6)), verbose=0)
    with pytest.raises(TypeError, match=r"VRAE expects real numbers \(bool, integer or float\) for mask"):
        model.loss(x, np.array([["a"] * 6] * 2))
    with pytest.raises(ValueError, match="multiple of segment_length=2"):
        hier.fit(x[:, :5], verbose=0)
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 2\)"):
        model.decode(np.zeros((2, 3)), length=4)
    with pytest.raises(ValueError, match="length must be"):
        model.decode(np.zeros((2, 2)), length=0)
    with pytest.raises(ValueError, match="cell must be"):
        VRAE(3, cell="lstm")
    with pytest.raises(ValueError, match="sizes must be positive"):
        VRAE(0)
    with pytest.raises(ValueError, match="segment_length"):
        HierarchicalVRAE(3, segment_length=0)
    with pytest.raises(ValueError, match="beta"):
        VRAE(3, beta=-1)


def test_input_dropout_only_acts_during_fit():
    model = mv.VRAE(3, hidden_size=5, latent_dim=2, input_dropout=0.5, dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(0, 1, (40, 30, 3))
    plain = model._shifted(x)
    np.testing.assert_array_equal(plain[:, 1:], x[:, :-1])  # outside fit: exact teacher forcing
    model._training = True
    dropped = model._shifted(x)
    model._training = False
    zeroed = np.all(dropped[:, 1:] == 0, axis=2).mean()
    assert 0.4 < zeroed < 0.6, zeroed
    kept = ~np.all(dropped[:, 1:] == 0, axis=2)
    np.testing.assert_array_equal(dropped[:, 1:][kept], x[:, :-1][kept])
    # gradients are checked outside fit, where the objective is deterministic given ε
    small = mv.VRAE(2, hidden_size=3, latent_dim=2, input_dropout=0.5, dtype="float64", seed=1)
    xs = np.random.default_rng(1).uniform(0, 1, (2, 4, 2))
    assert mv.check_model(small, xs).passed(1e-6)



@settings(max_examples=8)
@given(kind=st.sampled_from(["flat", "hierarchical"]), cell=st.sampled_from(["gru", "rnn"]),
       likelihood=st.sampled_from(["bernoulli", "gaussian", "gaussian-learned"]), p=st.sampled_from([0.3, 0.5, 0.8]),
       n=st.integers(1, 3), segments=st.integers(1, 3), F=st.integers(1, 3), masked=st.booleans(), seed=st.integers(0, 2**31))
def test_whole_objective_gradient_in_training_mode_with_a_fixed_dropout_mask(kind, cell, likelihood, p, n, segments, F, masked,
                                                                               seed):
    """The objective as fit computes it (``_training`` on, inputs dropped): with the dropout
    mask held fixed, as ε is, it is one deterministic function of θ, and its analytic gradient
    must agree with finite differences too. (The check above runs outside fit, where nothing
    is dropped.)"""
    rng = np.random.default_rng(seed)
    options = dict(hidden_size=3, latent_dim=2, cell=cell, likelihood=likelihood, beta=0.7, input_dropout=p, dtype="float64",
                   seed=seed % 1000)
    model = VRAE(F, **options) if kind == "flat" else HierarchicalVRAE(F, segment_length=2, conductor_size=2, **options)
    random_biases(model, seed)
    T = 2 * segments
    x = rng.random((n, T, F))
    batch = (x, ragged_mask(rng.integers(1, T + 1, size=n), T)) if masked else (x,)
    masks, draw = {}, model.backend.uniform

    def the_same_mask(shape, *args, **kwargs):  # one draw per shape, handed out at every evaluation
        if shape not in masks:
            masks[shape] = draw(shape, *args, **kwargs)
        return masks[shape]

    model.backend.uniform = the_same_mask
    model._training = True
    eps = model.fixed_noise(*batch, seed=0)
    terms = model.loss_and_grads(*batch, eps=eps)
    (drawn,) = masks.values()
    # some teacher-forced input of a real step was dropped: a padded step's output is not
    # scored and feeds no real step, so dropping its input leaves the objective as it was
    real = batch[1][:, 1:, None] > 0 if masked else True
    assume(bool(((drawn[:, 1:] < p) & real).any()))
    model._training = False
    assert model.loss(*batch, eps=eps).loss != terms.loss  # ... and that changed the objective
    model._training = True
    # as in the checks over shapes above: tensors whose whole gradient is below the rounding of
    # the differenced loss cannot be checked to 1e-6 relative
    assume(all(not g.any() or np.abs(g).max() > 1e-3 * abs(terms.loss) for _, _, g in model.flat.named()))
    result = check_model(model, *batch, eps_noise=eps)
    assert len(masks) == 1, "the objective drew a second kind of noise besides the dropout mask"
    assert result.passed(1e-6), result.table()

def test_input_dropout_is_saved_and_validated(tmp_path):
    model = mv.VRAE(2, hidden_size=3, latent_dim=2, input_dropout=0.25)
    model.save(tmp_path / "v.npz")
    assert mv.load(tmp_path / "v.npz").input_dropout == 0.25
    with pytest.raises(ValueError, match="input_dropout"):
        mv.VRAE(2, input_dropout=1.0)


@pytest.mark.parametrize("rate", [0.2, 0.7])
def test_input_dropout_zeroes_steps_at_its_rate(rate):
    # At rate 0.5 (the test above) dropping steps with probability 1 − rate looks the same.
    model = mv.VRAE(3, hidden_size=5, latent_dim=2, input_dropout=rate, dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(0.1, 1, (60, 50, 3))
    model._training = True
    dropped = model._shifted(x)
    model._training = False
    step_zeroed = np.all(dropped[:, 1:] == 0, axis=2)
    zeroed = step_zeroed.mean()  # 2940 steps: the rate's standard error is under 0.01
    assert abs(zeroed - rate) < 0.05, f"input_dropout={rate} zeroed a fraction {zeroed:.3f} of the steps"
    # step by step, not whole sequences or whole time steps at once (either kept the overall rate):
    # every sequence and every step index has steps dropped and steps kept (each miss is under 1e-4 likely)
    for axis in (0, 1):
        assert step_zeroed.any(axis=axis).all() and not step_zeroed.all(axis=axis).any()


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_free_running_generation_is_the_teacher_forced_decoder_fed_its_own_outputs(kind, likelihood):
    # decode(z, T) feeds each step's output mean back as the next input; teacher forcing on
    # those very means must then give them back, step for step (a hierarchical decoder's lower
    # state restarting at every segment from its embedding). Generation is not gradient-checked:
    # feeding zeros instead, or carrying the lower state across segments, went unseen.
    model = tiny(kind, "gru", likelihood)
    z = np.random.default_rng(5).standard_normal((3, 2))
    generated = model.decode(z, 6)
    model._x = generated
    forced = model.likelihood.mean(model._decode(z), model.backend.kernels)
    np.testing.assert_allclose(forced, generated, rtol=1e-12, atol=1e-14,
                               err_msg=f"{kind}: generation differs from teacher forcing on its own output")


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_reconstruct_returns_padded_steps_as_zeros(kind):
    # reconstruct decodes every step freely, then zeroes the padding the mask marks (a mutation
    # review found this held only by a shape assertion); the real steps are decode(μ(x), T)'s
    model = tiny(kind)
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (3, 6, 3))
    mask = np.ones((3, 6))
    mask[0, 4:] = 0
    mask[2, 2:] = 0
    x *= mask[:, :, None]
    recon = model.reconstruct(x, mask)
    assert not recon[mask == 0].any() and recon[mask == 1].all()
    free = model.decode(model.encode(x, mask)[0], 6)
    np.testing.assert_allclose(recon[mask == 1], free[mask == 1], rtol=1e-12)


def test_input_dropout_acts_in_fit_and_ends_with_it():
    # The tests above set _training by hand: fit must set it (else the dropout never acts) and
    # clear it after (else loss, elbo and evaluate keep dropping teacher-forced inputs).
    x = np.random.default_rng(0).uniform(0, 1, (8, 6, 3))
    dropped, plain = (mv.VRAE(3, hidden_size=4, latent_dim=2, input_dropout=p, dtype="float64", seed=0) for p in (0.5, 0.0))
    for model in (dropped, plain):
        model.fit(x, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(dropped.flat.data, plain.flat.data), "input_dropout changed nothing in fit"
    plain.flat.data[...] = dropped.flat.data
    eps = np.random.default_rng(1).standard_normal((8, 2))
    assert dropped.loss(x, eps=eps) == plain.loss(x, eps=eps)
    for model in (dropped, plain):
        model.backend.seed(3)
    np.testing.assert_array_equal(dropped.elbo(x), plain.elbo(x))
    np.testing.assert_array_equal(dropped._shifted(x)[:, 1:], x[:, :-1])


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_elbo_counts_only_the_real_steps_and_averages_its_draws(kind):
    # elbo decodes its blocks through _nll_at, which sets the likelihood's mask itself: padding
    # counted there, or n_samples dropped, showed only through the row-block comparison (the same
    # either way) and a finiteness check
    model = tiny(kind)
    rng = np.random.default_rng(6)
    x = rng.random((2, 6, 3))
    mask = ragged_mask([6, 4], 6)
    scrambled = x.copy()
    scrambled[1, 4:] = rng.random((2, 3))

    def elbo(*batch, n_samples=1, seed=0):
        model.backend.seed(seed)
        return model.elbo(*batch, n_samples=n_samples)

    np.testing.assert_array_equal(elbo(scrambled, mask, n_samples=2), elbo(x, mask, n_samples=2))
    np.testing.assert_allclose(elbo(x[1:], mask[1:]), elbo(x[1:, :4]), rtol=1e-12)
    model.backend.seed(4)
    one, two = model.elbo(x, mask), model.elbo(x, mask)  # the first and second draws of the stream
    np.testing.assert_allclose(elbo(x, mask, n_samples=2, seed=4), (one + two) / 2, rtol=1e-12)
    assert np.abs(one - two).min() > 1e-6


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_sample_draws_z_from_its_seed_or_the_models_generator(kind):
    # as VAE.sample: z = default_rng(seed).standard_normal, else the model's own generator
    # (a sample that ignored one or the other was reproducible all the same)
    model = tiny(kind)
    z = np.random.default_rng(3).standard_normal((4, 2))
    np.testing.assert_array_equal(model.sample(4, 5, seed=3), model.decode(z, 5))
    model.backend.seed(8)
    z = model.backend.to_numpy(model.backend.normal((4, 2)))
    model.backend.seed(8)
    np.testing.assert_array_equal(model.sample(4, 5), model.decode(z, 5))


def test_a_boolean_mask_is_taken_as_ones_and_zeros():
    model = tiny("flat")
    rng = np.random.default_rng(7)
    x, mask, eps = rng.random((2, 6, 3)), ragged_mask([6, 3], 6), rng.standard_normal((2, 2))
    assert model.loss(x, mask.astype(bool), eps=eps) == model.loss(x, mask, eps=eps)
    np.testing.assert_array_equal(model.encode(x, mask.astype(bool))[0], model.encode(x, mask)[0])


def test_pad_sequences_keeps_float64_sequences_exact():
    seqs = [np.full((2, 1), 0.1), np.full((3, 1), 1 / 3)]
    x, _ = pad_sequences(seqs)
    assert x.dtype == np.float64 and x[0, :2, 0].tolist() == [0.1, 0.1] and x[1, :, 0].tolist() == [1 / 3] * 3


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_sequences_without_steps_are_refused_clearly(kind):
    # 0 steps is a multiple of any segment_length; without the check the error came from deep
    # inside (a reduction over a zero-size array, or an IndexError for the mask)
    model = tiny(kind)
    for call in (lambda: model.encode(np.zeros((2, 0, 3))), lambda: model.loss(np.zeros((2, 0, 3)), np.zeros((2, 0)))):
        with pytest.raises(ValueError, match=r"x must be a batch of sequences of shape \(batch, time, 3\), got \(2, 0, 3\)"):
            call()


# --- second mutation review ----------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones():
    # the README builds mv.VRAE(28, 64, 8, cell="gru") and says the hierarchical class's segments are 16 steps
    model = VRAE(3)
    assert model.config == dict(input_size=3, hidden_size=64, latent_dim=8, cell="gru", likelihood="bernoulli", beta=1.0,
                                beta_warmup=0, input_dropout=0.0, dtype="float32", seed=0)
    positional = VRAE(28, 64, 8, cell="gru")
    assert (positional.input_size, positional.hidden_size, positional.latent_dim) == (28, 64, 8)
    hier = HierarchicalVRAE(3)
    assert hier.config == {**model.config, "segment_length": 16, "conductor_size": 64}
    assert (hier.segment_length, hier.conductor_size, hier.conductor.hidden_size) == (16, 64, 64)
    assert HierarchicalVRAE(3, 4).segment_length == 4  # the second positional argument


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
@pytest.mark.parametrize("cell, cls", [("gru", mv.GRU), ("rnn", mv.RNN)])
def test_cell_names_the_recurrent_layer_of_every_part(kind, cell, cls):
    # a gradient check passes with either cell, so a swapped name went unseen
    model = tiny(kind, cell)
    parts = [model.encoder, model.decoder] + ([model.conductor] if kind == "hierarchical" else [])
    assert all(type(part) is cls for part in parts), [type(p).__name__ for p in parts]
    assert f"cell={cell!r}" in repr(model)


@pytest.mark.parametrize("make", [lambda: VRAE(3, hidden_size=0), lambda: VRAE(3, latent_dim=0), lambda: VRAE(0),
                                  lambda: HierarchicalVRAE(3, latent_dim=0, segment_length=2)])
def test_sizes_below_one_are_refused_by_the_model(make):
    with pytest.raises(ValueError, match="sizes must be positive"):
        make()


@pytest.mark.parametrize("beta", [float("inf"), float("nan"), -0.5])
def test_beta_must_be_finite_and_not_negative(beta):
    with pytest.raises(ValueError, match=r"beta must be a finite number >= 0"):
        VRAE(3, beta=beta)
    assert VRAE(3, beta=0).beta == 0.0  # β = 0 (an autoencoder with noise) is allowed


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_beta_warms_up_over_its_steps_and_is_saved(tmp_path, kind):
    # β·KL with β ramped linearly over beta_warmup optimizer steps; the loss tells which β it used
    model = tiny(kind, beta_warmup=4)
    rng = np.random.default_rng(2)
    x, eps = rng.random((3, 4, 3)), rng.standard_normal((3, 2))
    for step, beta in [(0, 0.0), (1, 0.7 / 4), (2, 0.7 / 2), (4, 0.7), (9, 0.7)]:
        model.step = step
        terms = model.loss(x, eps=eps)
        np.testing.assert_allclose(terms.loss, terms.recon + beta * terms.kl, rtol=1e-12, err_msg=f"step {step}")
    model.save(tmp_path / "m.npz")
    loaded = microvae.load(tmp_path / "m.npz")
    assert loaded.beta_warmup == 4 and loaded.config["beta_warmup"] == 4


def test_pad_sequences_refuses_an_empty_sequence():
    # a sequence of no steps would be a mask row of zeros, refused only later by the model
    with pytest.raises(ValueError, match="non-empty list of non-empty"):
        pad_sequences([np.ones((3, 2)), np.zeros((0, 2))])
    with pytest.raises(ValueError, match="non-empty list of non-empty"):
        pad_sequences([])


@pytest.mark.parametrize("value", [2, -1, 0.99999999])
def test_mask_values_other_than_0_and_1_are_named_as_such(value):
    # 2 was otherwise refused as a row that is not 1…1 0…0, and 0.99999999 passed once the
    # check ran in float32 (where it rounds to 1)
    model = tiny("flat")
    x, mask = np.random.default_rng(0).random((2, 6, 3)), np.ones((2, 6))
    mask[1, 2] = value
    for call in (lambda: model.loss(x, mask), lambda: model.encode(x, mask), lambda: model.fit(x, mask, verbose=0)):
        with pytest.raises(ValueError, match="mask must contain only 0 and 1"):
            call()


def test_a_long_bad_mask_row_is_shown_by_its_first_40_steps():
    model = tiny("flat")
    x, mask = np.random.default_rng(0).random((2, 50, 3)), np.ones((2, 50))
    mask[1, 30] = 0  # a gap in a long row
    with pytest.raises(ValueError, match=rf"; row 1 is {'1' * 30}0{'1' * 9}…$"):
        model.loss(x, mask)


def test_loss_leaves_the_gradient_alone():
    # loss() is the forward pass only: a gradient computed before it is still there after
    model = tiny("hierarchical")
    rng = np.random.default_rng(1)
    x, mask, eps = rng.random((2, 4, 3)), ragged_mask([4, 2], 4), rng.standard_normal((2, 2))
    model.loss_and_grads(x[::-1].copy(), eps=eps)
    before = model.flat.grad.copy()
    model.loss(x, mask, eps=eps)
    np.testing.assert_array_equal(model.flat.grad, before)


@pytest.mark.parametrize("method", ["loss", "loss_and_grads"])
def test_given_noise_is_checked(method):
    # as VAE's: NaN noise made every loss and gradient NaN, and a string failed in a cast naming nothing
    model = tiny("flat")
    x, mask = np.random.default_rng(0).random((2, 4, 3)), ragged_mask([4, 2], 4)
    with pytest.raises(ValueError, match="eps contains NaN or Inf"):
        getattr(model, method)(x, mask, eps=np.full((2, 2), np.nan))
    with pytest.raises(TypeError, match="eps must be an array of real numbers"):
        getattr(model, method)(x, mask, eps=np.full((2, 2), "a"))


def test_hierarchical_repr_shows_its_segments_and_conductor():
    model = HierarchicalVRAE(3, segment_length=4, hidden_size=6, conductor_size=5, latent_dim=2, cell="rnn")
    assert repr(model).startswith("HierarchicalVRAE(input_size=3, segment_length=4, hidden_size=6, conductor_size=5, latent_dim=2, "
                                  "cell='rnn', likelihood='bernoulli', beta=1.0, parameters=")


@pytest.mark.parametrize("likelihood, name", [("bernoulli", "bernoulli"), ("gaussian", "gaussian"),
                                              ("gaussian-learned", "gaussian")])
def test_the_sequence_likelihood_goes_by_its_step_likelihoods_name(likelihood, name):
    assert tiny("flat", likelihood=likelihood).likelihood.name == name


def test_reconstruction_error_of_a_bernoulli_vrae_comes_from_its_logits():
    # microvae.metrics knows a Bernoulli model by its likelihood's name and then takes the BCE from
    # the logits, exactly; under another name it clipped the probabilities to [1e-7, 1 − 1e-7],
    # which caps each step's error near 16 nats. Logits of 30 ± 4 against zeros show which it did.
    from microvae import metrics

    model = tiny("flat")
    model.readout.params["b"][...] = 30.0
    x, mask = np.zeros((2, 4, 3)), ragged_mask([4, 2], 4)
    err = metrics.reconstruction_error(model, x, y=mask)
    np.testing.assert_allclose(err, 30.0 * 3 * np.array([4, 2]), rtol=0.2)


@pytest.mark.parametrize("make_mask", [lambda m: m + 5j, lambda m: m.astype(complex), lambda m: m.astype(object)])
def test_a_complex_or_object_mask_is_refused_as_the_recurrent_layers_refuse_it(make_mask):
    """complex is a NumPy number, and astype(float64) dropped the imaginary part with only a
    ComplexWarning: the mask was taken silently."""
    model = mv.VRAE(3, hidden_size=4, latent_dim=2, dtype="float64")
    x = np.random.default_rng(0).random((2, 6, 3))
    mask = np.array([[1] * 6, [1, 1, 1, 1, 0, 0]])
    with pytest.raises(TypeError, match=r"VRAE expects real numbers \(bool, integer or float\) for mask, got dtype"):
        model.loss(x, make_mask(mask), eps=np.zeros((2, 2)))
    assert np.isfinite(model.loss(x, mask.astype(bool), eps=np.zeros((2, 2))).loss)


def test_pad_sequences_refuses_a_value_beyond_the_padded_dtype():
    """np.full padded float32 sequences with Inf for value=1e39, with only NumPy's cast warning
    (and the model then said "x contains NaN or Inf")."""
    rng = np.random.default_rng(0)
    seqs = [rng.random((6, 3)).astype(np.float32), rng.random((2, 3)).astype(np.float32)]
    with pytest.raises(ValueError, match="value 1e\\+39 is beyond the range of float32, the padded sequences' dtype"):
        pad_sequences(seqs, value=1e39)
    x, _ = pad_sequences([s.astype(np.float64) for s in seqs], value=1e39)  # float64 holds it
    assert x.dtype == np.float64 and x[1, 2, 0] == 1e39
    assert pad_sequences(seqs, value=-3e38)[0][1, 2, 0] == np.float32(-3e38)


@pytest.mark.parametrize("sequences, found", [
    ([], "got none"),
    ([np.zeros(5), np.zeros(7)], r"sequences\[0\] has shape \(5,\); a sequence of single values needs a feature axis: s\[:, None\]"),
    ([np.zeros((3, 2)), np.zeros((0, 2))], r"sequences\[1\] has no steps"),
    ([np.zeros((3, 2)), np.zeros((3, 1))], r"the sequences have F = \[1, 2\]"),
    ([np.zeros((2, 2)), np.zeros((2, 2, 2))], r"sequences\[1\] has shape \(2, 2, 2\)$"),
])
def test_pad_sequences_says_which_sequence_is_wrong_and_how(sequences, found):
    """One message served an empty list, 1-D sequences, an empty sequence and mixed widths alike."""
    with pytest.raises(ValueError, match=r"needs a non-empty list of non-empty \(T_i, F\) arrays with one F; " + found):
        pad_sequences(sequences)


def test_a_vraes_fit_shows_and_takes_fits_arguments_in_fits_order():
    """VRAE.fit(x, mask=None, **kwargs) hid fit's arguments from help() and refused them by
    position: vrae.fit(x, mask, 1) failed where vae.fit(x, None, 1) trains one epoch."""
    import inspect

    model = mv.VRAE(3, hidden_size=4, latent_dim=2, seed=0)
    ours, base = inspect.signature(mv.VRAE.fit).parameters, inspect.signature(mv.VAE.fit).parameters
    assert list(ours)[:3] == ["self", "x", "mask"] and list(ours)[3:] == list(base)[3:]
    assert all(ours[name].default == base[name].default for name in list(base)[3:])
    x, mask = np.full((4, 5, 3), 0.5), np.ones((4, 5))
    model.fit(x, mask, 1, 2, None, 1e-2, "sgd", False, 3, None, 0)
    twin = mv.VRAE(3, hidden_size=4, latent_dim=2, seed=0)
    twin.fit(x, mask=mask, epochs=1, batch_size=2, lr=1e-2, optimizer="sgd", shuffle=False, seed=3, verbose=0)
    assert model.step == twin.step == 2 and model.train_seed == twin.train_seed == 3
    np.testing.assert_array_equal(model.flat.data, twin.flat.data)
