"""RNN and GRU layers: backpropagation through time against finite differences, masks, steps, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microvae
from microvae import GRU, RNN, check_layer, gradcheck
from microvae.layers.base import layer_from_spec, layer_to_spec

CELLS = [RNN, GRU]


def _mask(kind, rng, B, T):
    if kind == "none":
        return None
    if kind == "ones":
        return np.ones((B, T))
    if kind == "random":
        return (rng.random((B, T)) < 0.6).astype(np.float64)
    lengths = rng.integers(1, T + 1, size=B)  # ragged: each row 1…1 0…0
    return (np.arange(T)[None, :] < lengths[:, None]).astype(np.float64)


def _bptt_check(cls, B, T, I, H, mask_kind, with_h0, seed):
    rng = np.random.default_rng(seed)
    layer = cls(I, H).build(dtype="float64", seed=seed)
    for name, value in layer.params.items():  # biases start at 0, where a term such as b_hn's drops out
        if name.startswith("b"):
            value[...] = rng.uniform(-0.6, 0.6, value.shape)
    x = rng.standard_normal((B, T, I))
    h0 = rng.standard_normal((B, H)) * 0.5 if with_h0 else np.zeros((B, H))
    mask = _mask(mask_kind, rng, B, T)
    upstream = rng.standard_normal((B, T, H))
    layer.forward(x, h0=h0, mask=mask)
    dx = layer.backward(upstream)
    wrt, analytic = {"x": x, "h0": h0}, {"x": dx.copy(), "h0": layer.dh0.copy()}
    for name, value in layer.params.items():
        wrt[name], analytic[name] = value, layer.grads[name].copy()

    def f():
        return float((layer.forward(x, h0=h0, mask=mask) * upstream).sum())

    result = gradcheck(f, wrt, analytic, title=f"{cls.__name__} B={B} T={T} I={I} H={H} mask={mask_kind}")
    assert result.passed(1e-6), result.table()
    if mask is not None:
        assert not dx[mask == 0].any(), "padded steps must get no input gradient"
    # the pass a VRAE's encoder takes (no dx): the same parameter gradients, written afresh
    layer.forward(x, h0=h0, mask=mask)
    for grad in layer.grads.values():
        grad[...] = np.nan
    assert layer.backward(upstream, input_grad=False) is None
    for name, grad in layer.grads.items():
        scale = max(float(np.abs(analytic[name]).max(initial=0.0)), 1e-300)
        assert np.isfinite(grad).all() and float(np.abs(grad - analytic[name]).max(initial=0.0)) <= 1e-12 * scale, name


@pytest.mark.parametrize("cls", CELLS)
@settings(max_examples=60)
@given(B=st.integers(1, 3), T=st.integers(1, 6), I=st.integers(1, 8), H=st.integers(1, 8),
       mask_kind=st.sampled_from(["none", "ones", "random", "ragged"]), with_h0=st.booleans(), seed=st.integers(0, 2**31))
def test_bptt_gradients_match_finite_differences(cls, B, T, I, H, mask_kind, with_h0, seed):
    _bptt_check(cls, B, T, I, H, mask_kind, with_h0, seed)


@pytest.mark.parametrize("cls", CELLS)
def test_check_layer_on_the_default_path(cls):
    layer = cls(3, 4).build(dtype="float64", seed=1)
    result = check_layer(layer, np.random.default_rng(1).standard_normal((2, 5, 3)))
    assert result.passed(1e-6), result.table()


@pytest.mark.parametrize("cls", CELLS)
def test_gradient_only_on_the_last_state(cls):
    """A loss on H[:, -1] alone (how the encoders use the layer) reaches every real step."""
    rng = np.random.default_rng(3)
    layer = cls(2, 3).build(dtype="float64", seed=3)
    x = rng.standard_normal((3, 6, 2))
    mask = _mask("ragged", rng, 3, 6)
    w = rng.standard_normal((3, 3))
    upstream = np.zeros((3, 6, 3))
    upstream[:, -1] = w
    layer.forward(x, mask=mask)
    dx = layer.backward(upstream)
    result = gradcheck(lambda: float((layer.forward(x, mask=mask)[:, -1] * w).sum()), {"x": x}, {"x": dx.copy()})
    assert result.passed(1e-6), result.table()
    assert np.abs(dx[mask == 1]).max() > 0


@pytest.mark.parametrize("cls", CELLS)
def test_padded_steps_carry_the_state_and_ragged_batch_equals_separate_runs(cls):
    rng = np.random.default_rng(5)
    layer = cls(3, 4).build(dtype="float64", seed=5)
    B, T = 4, 7
    lengths = np.array([7, 1, 4, 5])
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float64)
    x = rng.standard_normal((B, T, 3))
    h0 = rng.standard_normal((B, 4))
    H = layer.forward(x, h0=h0, mask=mask)
    for b in range(B):
        alone = layer.forward(x[b : b + 1, : lengths[b]], h0=h0[b : b + 1])
        np.testing.assert_allclose(H[b, : lengths[b]], alone[0], rtol=1e-12, atol=1e-14)
        for t in range(lengths[b], T):
            assert np.array_equal(H[b, t], H[b, lengths[b] - 1]), "a padded step must carry the state unchanged"
    # a gap in the middle carries the state too
    gap = np.ones((1, T))
    gap[0, 2:4] = 0
    Hg = layer.forward(x[:1], mask=gap)
    assert np.array_equal(Hg[0, 2], Hg[0, 1]) and np.array_equal(Hg[0, 3], Hg[0, 1])


@pytest.mark.parametrize("cls", CELLS)
def test_step_matches_forward(cls):
    rng = np.random.default_rng(2)
    layer = cls(3, 5).build(dtype="float64", seed=2)
    for name, value in layer.params.items():
        if name.startswith("b"):  # biases start at 0, where a step that dropped them would agree
            value[...] = rng.standard_normal(value.shape)
    x = rng.standard_normal((2, 4, 3))
    h = rng.standard_normal((2, 5))
    H = layer.forward(x, h0=h)
    for t in range(4):
        h = layer.step(x[:, t], h)
        np.testing.assert_allclose(h, H[:, t], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", CELLS)
def test_input_grad_false_skips_dx_but_not_the_rest(cls):
    rng = np.random.default_rng(4)
    layer = cls(3, 4).build(dtype="float64", seed=4)
    x, dH = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 4))
    layer.forward(x)
    layer.backward(dH)
    grads, dh0 = layer.flat.grad.copy(), layer.dh0.copy()
    layer.flat.grad.fill(7.0)  # backward must overwrite, not accumulate
    layer.forward(x)
    assert layer.backward(dH, input_grad=False) is None
    np.testing.assert_array_equal(layer.flat.grad, grads)
    np.testing.assert_array_equal(layer.dh0, dh0)


@pytest.mark.parametrize("cls", CELLS)
def test_reference_kernels_give_the_same_layer(cls):
    rng = np.random.default_rng(8)
    x, dH = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 5, 4))
    mask = _mask("random", rng, 3, 5)
    results = []
    for kind in ("compiled", "reference"):
        layer = cls(2, 4).build(backend=microvae.Backend("numpy", dtype="float64", seed=0, kernels=kind))
        H = layer.forward(x, mask=mask)
        dx = layer.backward(dH)
        results.append((H, dx, layer.dh0, layer.flat.grad.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", CELLS)
def test_float32_stays_float32(cls):
    layer = cls(3, 4).build(dtype="float32", seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 3)).astype(np.float32)
    H = layer.forward(x, mask=np.array([[1, 1, 0], [1, 0, 0]], dtype=bool))
    dx = layer.backward(np.ones_like(H))
    assert H.dtype == dx.dtype == layer.dh0.dtype == np.float32
    assert np.isfinite(layer.flat.grad).all()


@pytest.mark.parametrize("cls", CELLS)
def test_config_roundtrip_and_parameter_shapes(cls):
    layer = cls(3, 5)
    clone = layer_from_spec(layer_to_spec(layer))
    assert type(clone) is cls and clone.get_config() == {"input_size": 3, "hidden_size": 5}
    layer.build(dtype="float64", seed=0)
    g = 1 if cls is RNN else 3
    assert layer.params["W_x"].shape == (3, g * 5) and layer.params["W_h"].shape == (5, g * 5)
    for k in range(g):  # orthogonal recurrent blocks
        block = layer.params["W_h"][:, 5 * k : 5 * (k + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(5), atol=1e-12)


@pytest.mark.parametrize("cls", CELLS)
def test_bad_input_is_rejected_clearly(cls):
    layer = cls(3, 4).build(dtype="float64")
    x = np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match=r"\(batch, time, 3\)"):
        layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(batch, time, 3\)"):
        layer.forward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="at least one"):
        layer.forward(np.zeros((2, 0, 3)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        layer.forward(x, h0=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="mask must have shape"):
        layer.forward(x, mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        layer.forward(x, mask=np.full((2, 5), 0.5))
    with pytest.raises(ValueError, match="dH of shape"):
        layer.forward(x)
        layer.backward(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="step expects"):
        layer.step(np.zeros((2, 3)), np.zeros((3, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        cls(3, 4).build(dtype="float64").backward(np.zeros((2, 5, 4)))
    with pytest.raises(RuntimeError, match="no parameters"):
        cls(3, 4).forward(x)
    with pytest.raises(ValueError, match="input_size must be a positive integer, got 0"):
        cls(0, 4)


@pytest.mark.parametrize("cls", CELLS)
def test_lists_are_taken_as_arrays_are(cls):
    # as by every other layer (Layer._input); a list has no .shape, and was reported as shape ()
    layer = cls(3, 4).build(dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 4))
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    expected = layer.forward(x, h0=h0, mask=mask)
    np.testing.assert_array_equal(layer.forward(x.tolist(), h0=h0.tolist(), mask=mask.tolist()), expected)
    np.testing.assert_array_equal(layer.step(x[:, 0].tolist(), h0.tolist()), layer.step(x[:, 0], h0))
    with pytest.raises(ValueError, match="only 0 and 1"):  # checked before float32 rounds it to 1
        cls(3, 4).build(dtype="float32").forward(x.tolist(), mask=[[1, 0.99999999, 1], [1, 1, 1]])


@pytest.mark.parametrize("cls", CELLS)
def test_what_is_not_an_array_is_named_with_the_method_called(cls):
    layer = cls(3, 4).build(dtype="float64")
    name, x = cls.__name__, np.zeros((2, 5, 3))
    for call, match in [(lambda: layer.step(np.zeros((2, 3)), None), rf"^{name}\.step expects an array for h, got NoneType$"),
                        (lambda: layer.step("x", np.zeros((2, 4))), rf"^{name}\.step expects an array for x_t, got str$"),
                        (lambda: layer.forward(None), rf"^{name}\.forward expects an array for x, got NoneType$"),
                        (lambda: layer.forward(x, h0=0.0), rf"^{name}\.forward expects an array for h0, got float$"),
                        (lambda: layer.forward(x, mask=1), rf"^{name}\.forward expects an array for mask, got int$")]:
        with pytest.raises(TypeError, match=match):
            call()


@pytest.mark.parametrize("kernels", ["compiled", "reference"])
@pytest.mark.parametrize("cls", CELLS)
def test_forward_follows_the_documented_equations(cls, kernels):
    # The twin kernels are held equal to each other and the gradients to the forward, so a
    # convention changed in both twins at once (reset and update gates swapped, b_hn added
    # outside the reset product, with backward steps to match) passed every other test, as did
    # a default h0 other than 0. Written out from the docstrings, gate order [reset | update |
    # candidate]; the mask drops the first step of one row and the last step of another.
    rng = np.random.default_rng(11)
    layer = cls(3, 4).build(backend=microvae.Backend("numpy", dtype="float64", seed=11, kernels=kernels))
    for name, value in layer.params.items():
        if name.startswith("b"):
            value[...] = rng.uniform(-1, 1, value.shape)
    P, H = layer.params, 4
    x, h0 = rng.standard_normal((3, 5, 3)), rng.standard_normal((3, 4))
    mask = np.array([[0, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 0, 1, 1]])

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    def expected(h):
        out = []
        for t in range(5):
            gx, gh = x[:, t] @ P["W_x"] + P["b"], h @ P["W_h"]
            if cls is RNN:
                new = np.tanh(gx + gh)
            else:
                r = sigmoid(gx[:, :H] + gh[:, :H])
                u = sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
                n = np.tanh(gx[:, 2 * H :] + r * (gh[:, 2 * H :] + P["b_hn"]))
                new = (1 - u) * n + u * h
            h = np.where(mask[:, t : t + 1] == 1, new, h)
            out.append(h)
        return np.stack(out, axis=1)

    np.testing.assert_allclose(layer.forward(x, h0=h0, mask=mask), expected(h0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.forward(x, mask=mask), expected(np.zeros((3, 4))), rtol=1e-12, atol=1e-14)  # h0 = 0 by default


# --- second mutation review ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CELLS)
def test_initial_weights_are_glorot_over_all_gates_and_the_biases_zero(cls):
    # The class docstrings: W_x (input, gates·hidden) Glorot-uniform, W_h orthogonal, b (and b_hn) zeros.
    # Every gradient test overwrites the biases, and a W_x drawn over fan_out = hidden instead of
    # 3·hidden (a GRU's) trained all the same.
    I, H = 7, 5
    g = 1 if cls is RNN else 3
    layer = cls(I, H).build(dtype="float64", seed=3)
    limit = np.sqrt(6 / (I + g * H))
    spread = np.abs(layer.params["W_x"]).max()
    assert 0.9 * limit < spread <= limit, (spread, limit)  # 7·5·g draws: the largest is near the limit
    for name, value in layer.params.items():
        if name.startswith("b"):
            assert value.shape == ((g * H,) if name == "b" else (H,)) and not value.any(), name


def test_recurrent_blocks_are_separate_orthogonal_draws():
    # A GRU's W_h is three random orthogonal blocks side by side: one block repeated three times
    # is orthogonal too, and passed the per-block check of test_config_roundtrip_and_parameter_shapes.
    W_h = GRU(2, 4).build(dtype="float64", seed=0).params["W_h"]
    blocks = [W_h[:, 4 * k : 4 * (k + 1)] for k in range(3)]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert np.abs(blocks[a] - blocks[b]).max() > 0.1, (a, b)


@pytest.mark.parametrize("size", [1, 3])
def test_orthogonal_blocks_have_the_signs_of_a_uniform_draw(size):
    # "signs fixed so the draw is uniform": without the fix, Q of a Householder QR has a first
    # column whose first entry is never positive (a 1×1 block is always +1); uniformly drawn
    # orthogonal matrices put either sign there.
    corner = [RNN(2, size).build(dtype="float64", seed=seed).params["W_h"][0, 0] for seed in range(40)]
    assert min(corner) < 0 < max(corner), corner


@pytest.mark.parametrize("cls", CELLS)
def test_step_refuses_inputs_and_states_of_the_wrong_width(cls):
    # A wrong width otherwise reached the matrix product, whose error names no argument.
    layer, name = cls(3, 4).build(dtype="float64"), cls.__name__
    with pytest.raises(ValueError, match=rf"^{name}\.step expects x_t of shape \(batch, 3\), got \(2, 4\)$"):
        layer.step(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=rf"^{name}\.step expects x_t of shape \(batch, 3\), got \(2, 1, 3\)$"):
        layer.step(np.zeros((2, 1, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=rf"^{name}\.step expects h of shape \(2, 4\), got \(2, 5\)$"):
        layer.step(np.zeros((2, 3)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match=rf"^{name}: h0 must have shape \(batch, hidden_size\) = \(2, 4\), got \(2, 5\)$"):
        layer.forward(np.zeros((2, 5, 3)), h0=np.zeros((2, 5)))


@pytest.mark.parametrize("cls", CELLS)
def test_calling_the_layer_is_forward_with_its_initial_state_and_mask(cls):
    rng = np.random.default_rng(9)
    layer = cls(3, 4).build(dtype="float64", seed=9)
    x, h0 = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(layer(x, h0=h0, mask=mask), layer.forward(x, h0=h0, mask=mask))
    np.testing.assert_array_equal(layer(x, h0, mask), layer.forward(x, h0=h0, mask=mask))
    assert not np.array_equal(layer(x, h0=h0, mask=mask), layer(x, h0=h0))  # (the mask matters here)


def test_repr_names_input_then_hidden_size():
    # the repr is how errors name the layer (and how a model's repr reads): RNN(input_size, hidden_size)
    assert repr(RNN(3, 5)) == "RNN(3, 5)" and repr(GRU(7, 2)) == "GRU(7, 2)"


@settings(max_examples=20)
@given(st.integers(2, 4), st.integers(2, 5), st.integers(1, 3), st.integers(1, 4), st.sampled_from([np.nan, np.inf, -np.inf, 1e300]),
       st.integers(0, 2**31))
@pytest.mark.parametrize("cls", [RNN, GRU])
def test_whatever_the_padding_holds_it_adds_nothing_to_the_gradients(cls, B, T, I, H, pad, seed):
    """Padded steps get no gradient, but dW_x = Σ_t x_tᵀ·da_t multiplied their x by da = 0:
    NaN or Inf in the padding (a "missing" marker) made dW_x NaN while H and dx looked right,
    and one optimizer step later every output was NaN."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I))
    mask = np.ones((B, T))
    mask[0, 1:] = 0  # the first sequence is one step long
    dH = rng.standard_normal((B, T, H))
    layer = cls(I, H).build(dtype="float64", seed=0)
    results = []
    for fill in (0.0, pad):
        H_out = layer.forward(np.where(mask[..., None] == 1, x, fill), mask=mask)
        dx = layer.backward(dH)
        results.append((H_out, dx, {k: v.copy() for k, v in layer.grads.items()}))
    (H0, dx0, g0), (H1, dx1, g1) = results
    np.testing.assert_array_equal(H1, H0)
    np.testing.assert_array_equal(dx1, dx0)
    for name in g0:
        np.testing.assert_array_equal(g1[name], g0[name], err_msg=name)


@pytest.mark.parametrize("cls", [RNN, GRU])
@pytest.mark.parametrize("B, T", [(1, 4), (3, 1), (1, 1), (3, 4)])
def test_the_caller_may_change_its_mask_after_forward_at_any_shape(cls, B, T):
    """As x: at B = 1 or T = 1 the mask's transpose was already contiguous, so the layer kept
    the caller's array, and mask[:] = 0 between forward and backward changed dx and every
    gradient (at B, T > 1 it did not)."""
    rng = np.random.default_rng(0)
    x, dH = rng.standard_normal((B, T, 2)), rng.standard_normal((B, T, 3))
    mask = np.ones((B, T))
    mask[0, -1] = 0 if T > 1 else 1
    layer = cls(2, 3).build(dtype="float64", seed=0)
    layer.forward(x, mask=mask.copy())
    expected_dx = layer.backward(dH).copy()
    expected = {k: v.copy() for k, v in layer.grads.items()}
    mine = mask.copy()
    layer.forward(x, mask=mine)
    mine[:] = 1 - mine
    np.testing.assert_array_equal(layer.backward(dH), expected_dx)
    for name in expected:
        np.testing.assert_array_equal(layer.grads[name], expected[name], err_msg=name)


@pytest.mark.parametrize("cls", [RNN, GRU])
@pytest.mark.parametrize("B, T", [(1, 4), (3, 1), (1, 1), (3, 4)])
def test_the_caller_may_change_x_and_H_after_forward_at_any_shape(cls, B, T):
    """At B = 1 or T = 1 the transposes were no-copy views: the returned H was the backward's
    state cache and the cached x was the caller's array, so H *= 0.5 or x += 1 between
    forward and backward changed the gradients (at B, T > 1 they did not)."""
    rng = np.random.default_rng(0)
    x, dH = rng.standard_normal((B, T, 2)), rng.standard_normal((B, T, 3))
    layer = cls(2, 3).build(dtype="float64", seed=0)
    layer.forward(x.copy())
    layer.backward(dH)
    expected = {k: v.copy() for k, v in layer.grads.items()}
    mine = x.copy()
    H_out = layer.forward(mine)
    H_out *= 0.5
    mine += 1.0
    layer.backward(dH)
    for name in expected:
        np.testing.assert_array_equal(layer.grads[name], expected[name], err_msg=name)


@pytest.mark.parametrize("cell", ["RNN", "GRU"])
def test_a_recurrent_layers_backward_takes_dy_by_name_as_every_layer_does(cell):
    """RNN.backward and GRU.backward named their gradient dH: backward(dy=...) was a TypeError."""
    import inspect

    layer = getattr(microvae, cell)(3, 4).build(dtype="float64", seed=0)
    assert list(inspect.signature(layer.backward).parameters) == list(inspect.signature(microvae.Dense(2, 2).backward).parameters)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    dy = np.random.default_rng(1).standard_normal((2, 5, 4))
    layer.forward(x)
    by_position = layer.backward(dy)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy=dy, input_grad=True), by_position)
