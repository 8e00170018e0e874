"""The Numba recurrent-step kernels equal their NumPy reference twins (float32 and float64)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microvae
from _model_zoo import recurrent_kernel_calls
from microvae.kernels import cpu, reference
from test_kernels import ULPS, assert_within_ulps

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}

shapes = st.tuples(st.integers(1, 6), st.integers(1, 9))  # (batch, hidden)
dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)
scales = st.sampled_from([0.1, 1.0, 4.0, 30.0])


def _draw(seed, dtype, scale, *shapes_):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(dtype) for s in shapes_]


def _mask(seed, batch, dtype):
    m = (np.random.default_rng(seed + 1).random(batch) < 0.6).astype(dtype)
    return m


def _strided(a):
    """The same values as a view that is not C-contiguous: every other element of a wider last axis."""
    wide = np.full(a.shape[:-1] + (2 * a.shape[-1],), np.nan, a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


def _run(kernel_module, name, inputs, outputs, layout=np.copy):
    outs = [np.full_like(o, np.nan) for o in outputs]
    getattr(kernel_module, name)(*[layout(i) for i in inputs], *outs)
    return outs


def _assert_twins(name, inputs, outputs, dtype):
    """The compiled kernel equals its twin, given contiguous inputs and given strided views of
    them (GRU.step hands it a column of a sequence's states; the wrapper copies such input)."""
    want = _run(reference, name, inputs, outputs)
    got = _run(cpu, name, inputs, outputs)
    for g, w in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, **TOL[dtype])
    for g, c in zip(_run(cpu, name, inputs, outputs, layout=_strided), got):
        np.testing.assert_array_equal(g, c)
    return got, want


def _assert_gates_within_ulps(got, want, dtype):
    """r and u, the GRU's sigmoid gates ([r | u | n] = gates, the forward step's second output),
    to a few ulp of the reference's own values: tiny in the far tail (σ(−40) = 4.2e-18) but with
    nothing to cancel, where the tolerance above is absolute. n = tanh(gx_n + r·hn) can cancel,
    and h = (1 − u)·n + u·h_prev too: they keep it."""
    H = got[0].shape[1]
    assert_within_ulps(got[1][:, : 2 * H], want[1][:, : 2 * H], ULPS[np.dtype(dtype)])


@settings(max_examples=40)
@given(shapes, dtypes, seeds, scales)
def test_rnn_tanh_forward_step_matches_reference(shape, dtype, seed, scale):
    B, H = shape
    a, h_prev = _draw(seed, dtype, scale, (B, H), (B, H))
    _assert_twins("rnn_tanh_forward_step", [a, h_prev, _mask(seed, B, dtype)], [np.empty((B, H), dtype)], dtype)


@settings(max_examples=40)
@given(shapes, dtypes, seeds, scales)
def test_rnn_tanh_backward_step_matches_reference(shape, dtype, seed, scale):
    B, H = shape
    dh, h = _draw(seed, dtype, scale, (B, H), (B, H))
    h = np.tanh(h).astype(dtype)
    outs = [np.empty((B, H), dtype), np.empty((B, H), dtype)]
    _assert_twins("rnn_tanh_backward_step", [dh, h, _mask(seed, B, dtype)], outs, dtype)


@settings(max_examples=40)
@given(shapes, dtypes, seeds, scales)
def test_gru_forward_step_matches_reference(shape, dtype, seed, scale):
    B, H = shape
    gx, gh, b_hn, h_prev = _draw(seed, dtype, scale, (B, 3 * H), (B, 3 * H), (H,), (B, H))
    outs = [np.empty((B, H), dtype), np.empty((B, 3 * H), dtype), np.empty((B, H), dtype)]
    got, want = _assert_twins("gru_forward_step", [gx, gh, b_hn, h_prev, _mask(seed, B, dtype)], outs, dtype)
    _assert_gates_within_ulps(got, want, dtype)  # scale 30 puts about a sixth of the gates below σ(−40)


@pytest.mark.parametrize("dtype, tail", [(np.float64, [-40.0, -100.0, -700.0]), (np.float32, [-40.0, -87.0])])
def test_gru_gates_match_reference_in_the_far_tail(dtype, tail):
    """Gate pre-activations gx + gh in the far tail (split between the two, halves exact): r and u
    within a few ulp of the reference, and of eᵃ (σ(a) = eᵃ(1 − eᵃ + …) is eᵃ to within rounding
    there); 1 − 1/(1 + eᵃ) gives 0 and passed the absolute tolerance."""
    B, H = 2, len(tail)
    a = np.array(tail, dtype)
    rng = np.random.default_rng(0)
    gx, gh = (rng.standard_normal((B, 3 * H)).astype(dtype) for _ in range(2))
    gx[:, : 2 * H] = np.tile(a, 2) / 2
    gh[:, : 2 * H] = np.tile(a, 2) / 2
    gh[1, :H], gx[1, :H] = a, 0  # the second row's reset gates all from gh
    b_hn, h_prev = rng.standard_normal(H).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    outs = [np.empty((B, H), dtype), np.empty((B, 3 * H), dtype), np.empty((B, H), dtype)]
    got, want = _assert_twins("gru_forward_step", [gx, gh, b_hn, h_prev, np.ones(B, dtype)], outs, dtype)
    _assert_gates_within_ulps(got, want, dtype)
    assert_within_ulps(want[1][:, : 2 * H], np.tile(np.exp(a), (B, 2)), ULPS[np.dtype(dtype)])


@settings(max_examples=40)
@given(shapes, dtypes, seeds, scales)
def test_gru_backward_step_matches_reference(shape, dtype, seed, scale):
    B, H = shape
    dh, h_prev, raw_gates, hn = _draw(seed, dtype, scale, (B, H), (B, H), (B, 3 * H), (B, H))
    with np.errstate(over="ignore"):  # exp(−raw) overflows to Inf for a large negative raw: the sigmoid is 0, as it should be
        gates = np.concatenate([1 / (1 + np.exp(-raw_gates[:, : 2 * H])), np.tanh(raw_gates[:, 2 * H :])], axis=1).astype(dtype)
    outs = [np.empty((B, 3 * H), dtype), np.empty((B, H), dtype), np.empty((B, H), dtype)]
    _assert_twins("gru_backward_step", [dh, h_prev, _mask(seed, B, dtype), gates, hn], outs, dtype)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_padded_rows_cache_passes_no_gradient_whatever_it_holds(bad, dtype):
    """mask = 0 passes dh straight to dh_prev and nothing to the step's gates, in both twins,
    even when the padded row's cached gates are NaN or Inf (0·NaN would be NaN)."""
    B, H = 3, 4
    rng = np.random.default_rng(0)
    mask = np.array([1, 0, 1], dtype)
    dh, h_prev = (rng.standard_normal((B, H)).astype(dtype) for _ in range(2))
    gates = rng.random((B, 3 * H)).astype(dtype)
    hn, h = rng.standard_normal((B, H)).astype(dtype), np.tanh(rng.standard_normal((B, H))).astype(dtype)
    gates[1], hn[1], h[1] = bad, bad, bad
    for k in (cpu, reference):
        dgx, dhn, dhp = _run(k, "gru_backward_step", [dh, h_prev, mask, gates, hn], [np.empty((B, 3 * H), dtype),
                                                                                      np.empty((B, H), dtype), np.empty((B, H), dtype)])
        np.testing.assert_array_equal(dgx[1], 0, err_msg=k.__name__)
        np.testing.assert_array_equal(dhn[1], 0, err_msg=k.__name__)
        np.testing.assert_array_equal(dhp[1], dh[1], err_msg=k.__name__)
        assert np.isfinite(dgx[[0, 2]]).all() and np.isfinite(dhp).all()
        da, dhp = _run(k, "rnn_tanh_backward_step", [dh, h, mask], [np.empty((B, H), dtype), np.empty((B, H), dtype)])
        np.testing.assert_array_equal(da[1], 0, err_msg=k.__name__)
        np.testing.assert_array_equal(dhp[1], dh[1], err_msg=k.__name__)


def test_padded_rows_carry_the_state_exactly():
    """mask 0: h = h_prev bit for bit, and the backward passes dh straight through."""
    rng = np.random.default_rng(0)
    B, H = 4, 5
    mask = np.array([1, 0, 1, 0], dtype=np.float64)
    for k in (cpu, reference):
        h_prev = rng.standard_normal((B, H))
        h = np.empty((B, H))
        k.rnn_tanh_forward_step(rng.standard_normal((B, H)), h_prev, mask, h)
        assert np.array_equal(h[mask == 0], h_prev[mask == 0])
        gh = np.empty((B, H))
        k.gru_forward_step(rng.standard_normal((B, 3 * H)), rng.standard_normal((B, 3 * H)), rng.standard_normal(H), h_prev,
                           mask, gh, np.empty((B, 3 * H)), np.empty((B, H)))
        assert np.array_equal(gh[mask == 0], h_prev[mask == 0])
        dh = rng.standard_normal((B, H))
        dgx, dhn, dhp = np.empty((B, 3 * H)), np.empty((B, H)), np.empty((B, H))
        k.gru_backward_step(dh, h_prev, mask, rng.random((B, 3 * H)), rng.standard_normal((B, H)), dgx, dhn, dhp)
        assert np.array_equal(dhp[mask == 0], dh[mask == 0])
        assert not dgx[mask == 0].any() and not dhn[mask == 0].any()


def test_kernels_are_reachable_through_the_backend():
    for kind in ("compiled", "reference"):
        be = microvae.Backend("numpy", dtype="float64", kernels=kind)
        for name in ("rnn_tanh_forward_step", "rnn_tanh_backward_step", "gru_forward_step", "gru_backward_step"):
            assert callable(getattr(be.kernels, name))


def test_numba_kernel_rejects_non_contiguous_output():
    a = np.zeros((3, 4))
    out = np.zeros((4, 3)).T
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.rnn_tanh_forward_step(a, a, np.ones(3), out)


@pytest.mark.parametrize("name, output", [(name, out) for name, (_, outs) in recurrent_kernel_calls().items() for out in outs])
def test_numba_kernels_refuse_every_non_contiguous_output(name, output):
    # the test above tried one output of one kernel; a strided output is written where the
    # caller does not look for it, so each output of each kernel is checked by name
    inputs, outs = recurrent_kernel_calls()[name]
    args = [np.zeros(shape[::-1]).T if out == output else np.zeros(shape) for out, shape in outs.items()]
    assert not args[list(outs).index(output)].flags.c_contiguous
    with pytest.raises(ValueError, match=rf"^kernel output '{output}' must be a C-contiguous array$"):
        getattr(cpu, name)(*inputs, *args)


@pytest.mark.parametrize("name, output", [(name, out) for name, (_, outs) in recurrent_kernel_calls().items() for out in outs])
def test_numba_kernels_refuse_every_integer_or_read_only_output(name, output):
    """An integer output took the float results truncated, where the reference refuses; a
    read-only one met Numba's TypingError. Each output of each kernel is refused by name."""
    inputs, outs = recurrent_kernel_calls()[name]
    read_only = np.full(outs[output], 7.0)
    read_only.flags.writeable = False
    for bad, error, message in [(np.full(outs[output], 7, np.int64), TypeError, f"writes {output} in float32 or float64, got an array of dtype int64"),
                                (read_only, ValueError, f"writes {output}, got a read-only array")]:
        args = [bad if out == output else np.zeros(shape) for out, shape in outs.items()]
        with pytest.raises(error, match=message):
            getattr(cpu, name)(*inputs, *args)
        np.testing.assert_array_equal(bad, 7)
