"""Every layer's backward pass against finite differences, over hypothesis-drawn shapes and values."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import microvae as mv
from _kinks import kink_margins
from microvae import testing
from microvae.layers.base import layer_from_spec, layer_to_spec

TOL = 1e-6


def _check(layer, x, seed=0):
    layer.build(dtype="float64", seed=seed)
    # check at a random point of parameter space: zero biases would park dead ReLU units
    # exactly on the kink, where a finite difference is meaningless
    layer.flat.data[...] = testing.normal_array(layer.flat.size, seed + 1, scale=0.7)
    with kink_margins() as margins:  # a ReLU's input (in a fused Dense layer: X·W + b) near 0
        layer.forward(x)
    assume(min(margins, default=1.0) > 1e-4)  # a finite difference across the kink is meaningless
    result = mv.check_layer(layer, x, seed=seed)
    assert result.passed(TOL), f"\n{result}"
    return result


@given(layer=testing.dense_layers(), batch=testing.batch_sizes(), seed=testing.seeds(), data=st.data())
def test_dense_gradients(layer, batch, seed, data):
    x = data.draw(testing.float_arrays((batch, layer.in_features)))
    _check(layer, x, seed % 1000)


@pytest.mark.parametrize("make", [mv.ReLU, mv.LeakyReLU, mv.Sigmoid, mv.Tanh])
@given(shape=testing.matrix_shapes(), slope=st.floats(0.0, 0.9), data=st.data())
def test_activation_gradients(make, shape, slope, data):
    # away_from keeps ReLU/LeakyReLU inputs off the kink at 0, where the derivative is undefined
    x = data.draw(testing.float_arrays(shape, -6, 6, away_from=1e-3))
    _check(make(slope) if make is mv.LeakyReLU else make(), x)


@settings(max_examples=20)
@given(model=testing.mlp_layers(), batch=testing.batch_sizes(), seed=testing.seeds())
def test_sequential_gradients(model, batch, seed):
    x = testing.normal_array((batch, model.in_features), seed)
    _check(model, x, seed % 1000)


def test_relu_values_and_subgradient_at_zero():
    relu = mv.ReLU().build(dtype="float64")
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(relu.forward(x), [[0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


def test_sigmoid_is_finite_for_extreme_inputs():
    sig = mv.Sigmoid().build(dtype="float32")
    y = sig.forward(np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]], dtype=np.float32))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[0.0, 0.0, 0.5, 1.0, 1.0]], atol=1e-30)
    assert np.all(np.isfinite(sig.backward(np.ones_like(y))))


def test_dense_backward_overwrites_rather_than_accumulates():
    dense = mv.Dense(3, 2).build(dtype="float64")
    x = np.random.default_rng(0).standard_normal((4, 3))
    dy = np.ones((4, 2))
    dense.forward(x)
    dense.backward(dy)
    first = dense.grads["W"].copy()
    dense.forward(x)
    dense.backward(dy)
    np.testing.assert_array_equal(dense.grads["W"], first)
    np.testing.assert_allclose(first, x.T @ dy)


def test_input_grad_false_skips_dx():
    seq = mv.Sequential(mv.Dense(3, 4), mv.ReLU(), mv.Dense(4, 2)).build(dtype="float64")
    seq.forward(np.ones((2, 3)))
    assert seq.backward(np.ones((2, 2)), input_grad=False) is None
    assert np.any(seq.layers[0].grads["W"] != 0)


def test_dense_rejects_wrong_input_shape():
    dense = mv.Dense(3, 2).build()
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 3\)"):
        dense.forward(np.ones((4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="in_features must be a positive integer, got 0"):
        mv.Dense(0, 2)
    with pytest.raises(ValueError, match="init"):
        mv.Dense(2, 2, init="xavier-ish")


def test_unbuilt_layer_gives_clear_error():
    with pytest.raises(RuntimeError, match="build"):
        mv.Dense(2, 2).forward(np.ones((1, 2)))


def test_parameters_are_views_of_one_flat_buffer():
    model = mv.VAE(12, (8,), 3, seed=0)
    flat = model.flat
    assert flat.data.ndim == 1 and flat.grad.ndim == 1
    total = 0
    for name, value, grad in flat.named():
        assert np.shares_memory(value, flat.data), name
        assert np.shares_memory(grad, flat.grad), name
        total += value.size
    assert total == flat.size == model.num_parameters
    first = model.encoder.layers[0]
    first.params["W"][0, 0] = 123.0
    assert 123.0 in flat.data
    flat.zero_grad()
    assert not flat.grad.any()


def test_a_subset_takes_whole_names_and_only_adjacent_sub_networks():
    """subset("1") of a 12-layer Sequential is layer 1, not 10 and 11 too; sub-networks with
    another between them are refused, not taken with the one between."""
    seq = mv.Sequential(*[mv.Dense(2, 2) for _ in range(12)]).build(seed=0)
    one = seq.flat.subset("1")
    assert one.size == 6 and [name for name, _, _ in one.layout] == ["1.W", "1.b"]
    assert np.shares_memory(one.data, seq.layers[1].params["W"])
    with pytest.raises(ValueError, match="not adjacent"):
        seq.flat.subset("0", "2")


def test_zero_grad_clears_a_gradient_that_was_computed():
    """zero_grad zeroes the whole gradient buffer, and so the layers' gradient views (the views test
    above calls it on a gradient that is still all zero, which any partial fill passes)."""
    model = mv.VAE(12, (8,), 3, dtype="float64", seed=0)
    model.loss_and_grads(np.random.default_rng(0).uniform(0, 1, (4, 12)), eps=np.ones((4, 3)))
    assert np.count_nonzero(model.flat.grad) > model.flat.size // 2
    model.flat.zero_grad()
    assert not model.flat.grad.any()
    assert not model.encoder.layers[0].grads["W"].any() and not model.decoder.layers[-1].grads["b"].any()


def test_initialisation_is_seeded_and_scaled():
    a = mv.Dense(400, 300, init="he").build(seed=7)
    b = mv.Dense(400, 300, init="he").build(seed=7)
    c = mv.Dense(400, 300, init="he").build(seed=8)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], c.params["W"])
    assert abs(a.params["W"].std() - np.sqrt(2 / 400)) < 0.01 * np.sqrt(2 / 400) * 5
    g = mv.Dense(400, 300, init="glorot").build(seed=7)
    limit = np.sqrt(6 / 700)
    assert g.params["W"].max() <= limit and g.params["W"].min() >= -limit
    # and it fills U(−a, a), not a narrower range: 120 000 draws come within 1 % of both ends
    assert g.params["W"].max() > 0.99 * limit and g.params["W"].min() < -0.99 * limit
    assert not a.params["b"].any()


def test_layer_specs_rebuild_the_architecture():
    seq = mv.Sequential(mv.Dense(5, 4, init="he"), mv.LeakyReLU(0.2), mv.Dense(4, 3, bias=False), mv.Tanh(), mv.Sigmoid())
    rebuilt = layer_from_spec(layer_to_spec(seq))
    assert repr(rebuilt) == repr(seq)
    assert rebuilt.layers[1].negative_slope == 0.2 and rebuilt.layers[2].use_bias is False
    with pytest.raises(ValueError, match="unknown layer"):
        layer_from_spec({"type": "NoSuchLayer"})


@pytest.mark.parametrize("spec", [
    {"type": "_ConvBase", "config": {"in_channels": 1, "out_channels": 2, "kernel_size": 3}},
    {"type": "_Recurrent", "config": {"input_size": 2, "hidden_size": 3}},
])
def test_layer_specs_build_no_private_base(spec):
    # the shared bases of Conv2D/Conv2DTranspose and RNN/GRU compute nothing
    with pytest.raises(ValueError, match=r"unknown layer spec") as info:
        layer_from_spec(spec)
    known = info.value.args[0].split("known types: ")[1]
    # (other tests register layers of their own, some with private names: only the bases matter)
    assert "_ConvBase" not in known and "_Recurrent" not in known and "'Conv2D'" in known and "'GRU'" in known


@pytest.mark.parametrize("spec,error,match", [
    ({"type": "Sequential"}, ValueError, r"^a Sequential config must be \{'layers': \[layer specs\]\}, got \{\}$"),
    ({"type": "Sequential", "config": {"layers": [], "activation": "relu"}}, ValueError, r"^a Sequential config must be"),
    ({"type": "Dense", "config": {"in_features": 2, "out_features": 3, "units": 3}}, TypeError,
     r"^a Dense config takes the arguments \(in_features.*\); .* does not fit: got an unexpected keyword argument 'units'$"),
    ({"type": "Dense", "config": {"in_features": 2}}, TypeError, r"does not fit: missing a required argument: 'out_features'$"),
    ({"type": "ReLU", "config": [1]}, TypeError, r"^the config of layer spec .* must be a dict of ReLU's arguments, got \[1\]$"),
    ({"type": "Sequential", "config": {"layers": [{"type": "Tanh", "config": {"x": 1}}]}}, TypeError, r"^a Tanh config takes"),
])
def test_layer_specs_say_what_is_wrong(spec, error, match):
    with pytest.raises(error, match=match):
        layer_from_spec(spec)


@pytest.mark.parametrize("spec", ["Dense", None, ["ReLU"], {"type": ["Dense"]}, {"type": {"a": 1}}])
def test_a_layer_spec_that_is_no_dict_or_names_no_type_is_an_unknown_spec(spec):
    """A string, a list or an unhashable type name is an unknown layer spec, named with the
    known types, not "string indices must be integers" or "unhashable type"."""
    with pytest.raises(ValueError, match=r"^unknown layer spec .*; known types: \[.*'Dense'.*\]$"):
        layer_from_spec(spec)


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match="Sequential takes Layer instances, got str"):
        mv.Sequential(mv.Dense(2, 2), "relu")
    with pytest.raises(TypeError, match="Sequential takes Layer instances, got type"):
        mv.Sequential([mv.Dense(2, 2), mv.ReLU])  # the class, not an instance


def test_scratch_buffers_are_reused_and_grow_when_needed():
    """Layers keep intermediates (im2col columns) in scratch buffers between steps: the
    same request gets the same memory back, a larger one gets new memory of the new size,
    and a smaller one a view of what is already there."""
    layer = mv.Dense(2, 3).build(dtype="float32")
    a = layer._scratch("cols", (4, 5))
    assert a.shape == (4, 5) and a.dtype == np.float32
    b = layer._scratch("cols", (4, 5))
    assert np.shares_memory(a, b)
    smaller = layer._scratch("cols", (2, 3))
    assert smaller.shape == (2, 3) and np.shares_memory(a, smaller)
    bigger = layer._scratch("cols", (10, 10))
    assert bigger.shape == (10, 10) and not np.shares_memory(a, bigger)
    other = layer._scratch("other", (4, 5))
    assert not np.shares_memory(other, layer._scratch("cols", (4, 5)))
    as64 = layer._scratch("cols", (4, 5), np.float64)
    assert as64.dtype == np.float64


def test_sequential_refuses_one_layer_object_at_two_positions():
    """Layers keep state from their forward pass for the backward pass: one object at two
    positions would hand the first position the second one's state (a wrong gradient)."""
    relu = mv.ReLU()
    with pytest.raises(ValueError, match=r"same ReLU\(\) object is at positions 1 and 3"):
        mv.Sequential(mv.Dense(3, 4), relu, mv.Dense(4, 4), relu)
    mv.Sequential(mv.Dense(3, 4), mv.ReLU(), mv.Dense(4, 4), mv.ReLU())  # new objects: fine


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_leaky_relu_with_slope_zero_is_relu_at_infinities_too(dtype):
    """a·x with a = 0 made −∞ into NaN (0·(−∞)), where ReLU gives 0; and an infinite dy
    at x ≤ 0 a NaN gradient."""
    x = np.array([[-np.inf, -1.0, 0.0, 2.0, np.inf]])
    leaky, relu = mv.LeakyReLU(0.0).build(dtype=dtype), mv.ReLU().build(dtype=dtype)
    np.testing.assert_array_equal(leaky.forward(x), relu.forward(x))
    dy = np.array([[np.inf, -np.inf, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(leaky.backward(dy), relu.backward(dy))


def test_leaky_relu_values_and_subgradient_at_zero():
    """dx = a·dy for x ≤ 0, at 0 too (as ReLU's subgradient there is 0): the gradient checks keep
    their inputs off the kink, so this pins it."""
    leaky = mv.LeakyReLU(0.1).build(dtype="float64")
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(leaky.forward(x), [[-0.2, 0.0, 3.0]])
    np.testing.assert_array_equal(leaky.backward(np.ones((1, 3))), [[0.1, 0.1, 1.0]])


@pytest.mark.parametrize("slope", [1.0, 1.5, -0.01])
def test_leaky_relu_refuses_a_slope_outside_zero_to_one(slope):
    """negative_slope is in [0, 1), as documented: 1 would make the layer the identity, and a
    slope above 1 or below 0 is no leaky ReLU (the tests above only try a string)."""
    with pytest.raises(ValueError, match=r"negative_slope must be in \[0, 1\)"):
        mv.LeakyReLU(slope)
    assert mv.LeakyReLU(0.0).negative_slope == 0.0 and mv.LeakyReLU(0.99).negative_slope == 0.99


@pytest.mark.parametrize("pack", [list, tuple])
def test_sequential_takes_its_layers_as_one_list_or_tuple_too(pack):
    """Sequential([a, b, c]) is Sequential(a, b, c): the same layer objects, in order."""
    layers = [mv.Dense(3, 4), mv.Tanh(), mv.Dense(4, 2)]
    seq = mv.Sequential(pack(layers))
    assert len(seq) == 3 and all(got is want for got, want in zip(seq.layers, layers))
    seq.build(dtype="float64")
    assert seq.forward(np.ones((2, 3))).shape == (2, 2)
