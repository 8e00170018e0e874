"""Layers used wrongly fail loudly, naming the layer, before any kernel or product runs.

The kernels trust their arguments (no bounds checks: a dy larger than the cached output
read past its end), and the convolutions read their route and geometry from dy's shape,
so a dy not shaped like the last forward pass's output must be refused up front. The
same for backward before forward, an unbuilt layer, one layer object at two places of a
tree, and inputs of another dtype (converted to the layer's) or memory order (accepted).
"""

import re

import numpy as np
import pytest

from microvae.layers import (GRU, RNN, Conv2D, Conv2DTranspose, Dense, Flatten, LeakyReLU, MaxPool2D, ReLU, Reshape,
                             Sequential, Sigmoid, Tanh)

# name: (make the layer, input shape). Several convolutions, one per route of their passes:
# the direct 3×3 kernels, im2col with stride 2, and the stride-1 route through dY's columns.
CASES = {
    "Dense": (lambda: Dense(3, 4), (5, 3)),
    "Dense-relu": (lambda: Dense(3, 4, activation="relu"), (5, 3)),
    "Dense-relu-no-bias": (lambda: Dense(3, 4, bias=False, activation="relu"), (5, 3)),
    "ReLU": (ReLU, (5, 3)),
    "LeakyReLU": (lambda: LeakyReLU(0.1), (5, 3)),
    "Sigmoid": (Sigmoid, (5, 3)),
    "Tanh": (Tanh, (5, 3)),
    "Conv2D-direct3x3": (lambda: Conv2D(2, 3, 3), (2, 2, 6, 6)),
    "Conv2D-direct3x3-relu": (lambda: Conv2D(2, 3, 3, activation="relu"), (2, 2, 6, 6)),
    "Conv2D-stride2": (lambda: Conv2D(2, 3, 3, stride=2), (2, 2, 9, 9)),
    "Conv2D-unit-stride-valid": (lambda: Conv2D(3, 2, 3, padding="valid"), (2, 3, 6, 6)),
    "Conv2DTranspose-direct3x3": (lambda: Conv2DTranspose(2, 3, 3), (2, 2, 5, 5)),
    "Conv2DTranspose-stride2": (lambda: Conv2DTranspose(2, 3, 3, stride=2, activation="relu"), (2, 2, 4, 4)),
    "MaxPool2D": (lambda: MaxPool2D(2), (2, 2, 6, 6)),
    "Flatten": (Flatten, (2, 2, 3, 3)),
    "Reshape": (lambda: Reshape((2, 3, 3)), (2, 18)),
    "Sequential": (lambda: Sequential(Dense(3, 4), ReLU(), Dense(4, 2), Sigmoid()), (5, 3)),
    "RNN": (lambda: RNN(3, 4), (2, 5, 3)),
    "GRU": (lambda: GRU(3, 4), (2, 5, 3)),
}
KINDS = list(CASES)
RECURRENT = {"RNN", "GRU"}


def _layer(kind, dtype="float64"):
    make, shape = CASES[kind]
    return make().build(dtype=dtype, seed=1), shape


def _x(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _leaf_name(layer):
    """The layer whose backward runs first, and so refuses a wrong dy."""
    return type(layer.layers[-1] if isinstance(layer, Sequential) else layer).__name__


class _NoKernels:
    """Stands in for ``backend.kernels``: any kernel that would run fails the test instead
    (so a missing check shows up as a failure here, not as a read out of bounds)."""

    def __getattr__(self, name):
        raise AssertionError(f"kernel {name} ran before the shape check")


def _wrong_shapes(shape):
    """Shapes a dy must not have after a forward pass that returned ``shape``."""
    n, rest = shape[0], shape[1:]
    wrong = {(n + 1, *rest), (1, *rest), (n, *rest[:-1], rest[-1] * 1000), (n * int(np.prod(rest)),)}
    if n > 1:
        wrong.add((n - 1, *rest))
    if len(shape) == 4:
        wrong.add((n, rest[0], rest[1] - 1, rest[2] - 1))  # a smaller image
        wrong.add((n, rest[0], rest[2], rest[1]) if rest[1] != rest[2] else (n, rest[0], rest[1] + 1, rest[2]))
    if len(shape) > 2:
        wrong.add((n, int(np.prod(rest))))  # the same size, flattened
    wrong.discard(tuple(shape))
    return sorted(wrong)


# ---------------------------------------------------------------------------------------------
# 1. dy must have the shape of the last forward pass's output


@pytest.mark.parametrize("kind", KINDS)
def test_backward_refuses_a_dy_of_another_shape_before_any_kernel(kind):
    layer, shape = _layer(kind)
    y = layer.forward(_x(shape))
    grads_before = layer.flat.grad.copy()
    layer.backend.kernels = _NoKernels()
    name = _leaf_name(layer)
    for wrong in _wrong_shapes(y.shape):
        dy = np.zeros(wrong)  # zeros: calloc'd, so even the 1000× one costs no page writes
        if kind in RECURRENT:
            pattern = rf"{name}\.backward expects dH of shape {re.escape(str(y.shape))}, got {re.escape(str(wrong))}"
        else:
            pattern = (rf"{name}\(.*\)\.backward expects dy of shape {re.escape(str(y.shape))} .*"
                       rf"got {re.escape(str(wrong))}")
        for input_grad in (True, False):
            with pytest.raises(ValueError, match=pattern):
                layer.backward(dy, input_grad=input_grad)
    # nothing was written: the check came first
    np.testing.assert_array_equal(layer.flat.grad, grads_before)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_refuses_a_dy_from_an_earlier_larger_batch(kind):
    """The case that read heap garbage: a dy kept from a larger batch after a smaller one."""
    layer, shape = _layer(kind)
    big = layer.forward(_x((4, *shape[1:])))
    small = layer.forward(_x((2, *shape[1:]), seed=1))
    layer.backend.kernels = _NoKernels()
    with pytest.raises(ValueError, match=re.escape(f"got {tuple(big.shape)}")):
        layer.backward(np.ones_like(big))
    assert small.shape[0] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_backward_still_takes_the_right_dy(kind):
    layer, shape = _layer(kind)
    x = _x(shape)
    y = layer.forward(x)
    dx = layer.backward(_x(y.shape, seed=2))
    assert dx.shape == x.shape and dx.dtype == np.float64 and np.all(np.isfinite(dx))


@pytest.mark.parametrize("kind", KINDS)
def test_backward_reads_a_nested_list_as_forward_does(kind):
    """forward takes a nested list; backward refused one of the right shape, as "got ()"."""
    layer, shape = _layer(kind)
    x = _x(shape)
    dy = _x(layer.forward(x).shape, seed=2)
    grads = [layer.backward(dy), layer.flat.grad.copy()]
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy.tolist()), grads[0])
    np.testing.assert_array_equal(layer.flat.grad, grads[1])
    wrong = _x((dy.shape[0] + 1, *dy.shape[1:]), seed=3)
    with pytest.raises(ValueError, match=re.escape(f"of shape {tuple(dy.shape)}") + ".*" + re.escape(f"got {tuple(wrong.shape)}")):
        layer.backward(wrong.tolist())


@pytest.mark.parametrize("kind", KINDS)
def test_backward_names_a_dy_that_is_no_array(kind):
    """None was read as a 0-d array and refused as "got ()", which named no mistake."""
    layer, shape = _layer(kind)
    layer.forward(_x(shape))
    for dy in (None, 3.0, "dy"):
        with pytest.raises(TypeError, match=rf"\w\.backward expects an array for d[yH], got {type(dy).__name__}"):
            layer.backward(dy)



@pytest.mark.parametrize("kind", KINDS)
def test_backward_takes_input_grad_as_a_bool_only(kind):
    """input_grad="no" was truthy and computed dx; 0 and None skipped it as if False."""
    layer, shape = _layer(kind)
    x = _x(shape)
    dy = _x(layer.forward(x).shape, seed=2)
    grads_before = layer.flat.grad.copy()
    for bad in ("no", "False", 0, 1, None, [False]):
        with pytest.raises(TypeError, match=rf"input_grad must be True or False, got {re.escape(repr(bad))}"):
            layer.backward(dy, input_grad=bad)
    np.testing.assert_array_equal(layer.flat.grad, grads_before)  # refused before anything was written
    assert layer.backward(dy, input_grad=np.bool_(False)) is None
    dx = layer.backward(dy, input_grad=np.bool_(True))
    assert dx.shape == x.shape

def test_conv2d_geometry_comes_from_the_forward_pass_not_dy():
    """Conv2D(1, 2, 3, stride=2) on 9×9 gives 5×5; a 3×3 dy returned dX and dW before."""
    conv = Conv2D(1, 2, 3, stride=2).build(dtype="float64")
    y = conv.forward(_x((2, 1, 9, 9)))
    assert y.shape == (2, 2, 5, 5)
    with pytest.raises(ValueError, match=r"Conv2D\(1, 2, 3, stride=2.*expects dy of shape \(2, 2, 5, 5\).*got \(2, 2, 3, 3\)"):
        conv.backward(np.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"got \(1, 2, 5, 5\)"):  # a batch-1 dy returned a batch-1 dX
        conv.backward(np.ones((1, 2, 5, 5)))


def test_elementwise_layers_do_not_broadcast_dy():
    for make in (Sigmoid, Tanh, lambda: LeakyReLU(0.2), ReLU):
        layer = make().build(dtype="float64")
        layer.forward(_x((4, 3)))
        with pytest.raises(ValueError, match=r"expects dy of shape \(4, 3\).*got \(1, 3\)"):
            layer.backward(np.ones((1, 3)))


# ---------------------------------------------------------------------------------------------
# 2. backward before forward, and layers that were never built


@pytest.mark.parametrize("kind", KINDS)
def test_backward_before_forward_says_so(kind):
    layer, shape = _layer(kind)
    with pytest.raises(RuntimeError, match=r"backward called before forward"):
        layer.backward(np.ones(shape))


@pytest.mark.parametrize("kind", KINDS)
def test_backward_after_a_rebuild_needs_a_forward_of_its_own(kind):
    """The caches of a pass before the rebuild (a float64 pass, here, before a float32 build)
    belong to the old buffer: backward used to run on them."""
    layer, shape = _layer(kind)
    y = layer.forward(_x(shape))
    layer.build(dtype="float32", seed=1)
    with pytest.raises(RuntimeError, match=r"backward called before forward \(since it was last built, or forget\(\)\)"):
        layer.backward(np.ones(y.shape))


@pytest.mark.parametrize("kind", KINDS)
def test_unbuilt_layer_says_to_build_it(kind):
    make, shape = CASES[kind]
    with pytest.raises(RuntimeError, match=r"call \.build\(\) or put it in a model"):
        make().forward(_x(shape))
    with pytest.raises(RuntimeError, match="before forward"):
        make().backward(np.ones(shape))


def test_unbuilt_activation_does_not_claim_missing_parameters():
    with pytest.raises(RuntimeError, match=r"^ReLU has no backend yet: call \.build\(\)"):
        ReLU().forward(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match=r"^Dense has no parameters yet: call \.build\(\)"):
        Dense(2, 2).forward(np.ones((2, 2)))


# ---------------------------------------------------------------------------------------------
# 3. one layer object at two places of a tree, at any depth


@pytest.mark.parametrize("build,first,second,what", [
    (lambda a: Sequential(a, Tanh(), Sequential(a)), "0", "2.0", "Dense"),
    (lambda a: Sequential(Sequential(a), Tanh(), Sequential(Dense(3, 3), a)), "0.0", "2.1", "Dense"),
    (lambda a: Sequential(Sequential(Sequential(a)), Sequential(Tanh(), Sequential(a))), "0.0.0", "1.1.0", "Dense"),
    (lambda s: Sequential(s, Tanh(), Sequential(s)), "0", "2.0", "Sequential"),
    (lambda r: Sequential(Dense(3, 3), r, Sequential(Dense(3, 3), r)), "1", "2.1", "ReLU"),
])
def test_sequential_refuses_a_layer_reused_at_any_depth(build, first, second, what):
    shared = {"Dense": lambda: Dense(3, 3), "Sequential": lambda: Sequential(Dense(3, 3)), "ReLU": ReLU}[what]()
    with pytest.raises(ValueError, match=rf"same {what}.* object is at positions {re.escape(first)} and {re.escape(second)} "):
        build(shared)


def test_nested_sequentials_of_distinct_layers_are_fine():
    seq = Sequential(Dense(3, 4), Tanh(), Sequential(Dense(4, 4), ReLU(), Sequential(Dense(4, 2))))
    seq.build(dtype="float64")
    x = _x((5, 3))
    y = seq.forward(x)
    dy = _x(y.shape, seed=3)
    seq.backward(dy)
    # dW of the innermost layer against the chain rule written out
    hidden = np.maximum(np.tanh(x @ seq[0].params["W"] + seq[0].params["b"]) @ seq[2][0].params["W"] + seq[2][0].params["b"], 0)
    np.testing.assert_allclose(seq[2][2][0].grads["W"], hidden.T @ dy, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# 4. inputs of another dtype are converted to the layer's


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("in_dtype", [np.bool_, np.uint8, np.int8, np.int64])
def test_integer_and_bool_inputs_compute_as_floats(kind, in_dtype):
    layer, shape = _layer(kind)
    low, high = {np.bool_: (0, 2), np.uint8: (0, 256), np.int8: (-128, 128), np.int64: (-1000, 1000)}[in_dtype]
    x = np.random.default_rng(0).integers(low, high, shape).astype(in_dtype)
    y = layer.forward(x)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, layer.forward(x.astype(np.float64)), rtol=1e-12, atol=1e-12)


def test_sigmoid_leaky_relu_and_uint8_conv_of_integers_are_not_integer_arithmetic():
    np.testing.assert_allclose(Sigmoid().build().forward(np.array([[0, 1]])), [[0.5, 1 / (1 + np.exp(-1))]], rtol=1e-6)
    np.testing.assert_array_equal(LeakyReLU(0.5).build().forward(np.array([[-2, 4]])), [[-1.0, 4.0]])
    conv = Conv2D(1, 1, 3, bias=False).build(dtype="float64")  # the direct 3×3 route
    conv.params["W"][...] = 1.0
    y = conv.forward(np.full((1, 1, 4, 4), 200, np.uint8))
    assert y.dtype == np.float64 and y[0, 0, 1, 1] == 9 * 200  # not 1800 mod 256


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layer_dtype,other", [("float32", np.float64), ("float64", np.float32)])
def test_inputs_and_dy_of_the_other_float_dtype_take_the_layers(kind, layer_dtype, other):
    layer, shape = _layer(kind, layer_dtype)
    x = _x(shape).astype(other)
    y = layer.forward(x)
    assert y.dtype == layer_dtype
    # computed in the layer's precision: the same numbers as from x converted first
    reference, _ = _layer(kind, layer_dtype)
    y_ref = reference.forward(x.astype(layer_dtype))
    np.testing.assert_array_equal(y, y_ref)
    dy = _x(y.shape, seed=4).astype(other)
    dx = layer.backward(dy)
    assert dx.dtype == layer_dtype
    np.testing.assert_array_equal(dx, reference.backward(dy.astype(layer_dtype)))
    np.testing.assert_array_equal(layer.flat.grad, reference.flat.grad)


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in RECURRENT])
def test_inputs_already_right_are_not_copied(kind):
    """The conversions are no-ops on the training path: the same array objects go through."""
    layer, shape = _layer(kind)
    leaf = layer.layers[0] if isinstance(layer, Sequential) else layer
    x = _x(shape)
    assert leaf._input(x) is x and leaf._input(x, contiguous=True) is x
    y = layer.forward(x)
    if hasattr(leaf, "_x"):
        assert leaf._x is x  # Dense and the convolutions keep X itself for backward
    last = layer.layers[-1] if isinstance(layer, Sequential) else layer
    dy = _x(y.shape)
    assert last._upstream(dy) is dy and last._upstream(dy, contiguous=True) is dy


def test_recurrent_step_takes_other_dtypes():
    for cls in (RNN, GRU):
        layer = cls(3, 4).build(dtype="float32")
        h = layer.step(np.ones((2, 3), dtype=np.int64), np.zeros((2, 4)))
        assert h.dtype == np.float32
        np.testing.assert_array_equal(h, layer.step(np.ones((2, 3), np.float32), np.zeros((2, 4), np.float32)))


# ---------------------------------------------------------------------------------------------
# 5. non-contiguous x and dy


@pytest.mark.parametrize("kind", KINDS)
def test_non_contiguous_x_and_dy_are_accepted(kind):
    layer, shape = _layer(kind)
    # every other element along a doubled last axis: a strided, non-contiguous view
    x_wide = _x((*shape[:-1], 2 * shape[-1]))
    x = x_wide[..., ::2]
    assert not x.flags.c_contiguous
    y = layer.forward(x)
    reference, _ = _layer(kind)
    # (NumPy's products may sum strided operands in another order: equal to rounding)
    np.testing.assert_allclose(y, reference.forward(np.ascontiguousarray(x)), rtol=1e-12, atol=1e-12)
    dy_wide = _x((*y.shape[:-1], 2 * y.shape[-1]), seed=5)
    dy = dy_wide[..., ::2]
    assert not dy.flags.c_contiguous
    np.testing.assert_allclose(layer.backward(dy), reference.backward(np.ascontiguousarray(dy)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.flat.grad, reference.flat.grad, rtol=1e-12, atol=1e-12)


def test_relu_and_sigmoid_take_transposed_arrays():
    for make in (ReLU, Sigmoid):
        layer = make().build(dtype="float64")
        x = _x((3, 4)).T
        y = layer.forward(x)
        assert y.shape == (4, 3)
        assert layer.backward(np.ones((3, 4)).T).shape == (4, 3)


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in RECURRENT])
@pytest.mark.parametrize("bad", [None, 3.0, "x"])
def test_forward_refuses_what_is_not_an_array(kind, bad):
    # asarray(None, float) would be a NaN array that elementwise layers pass on silently
    layer, _ = _layer(kind)
    with pytest.raises(TypeError, match="expects an array"):
        layer.forward(bad)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad_dtype", [np.complex128, object])
def test_complex_and_object_arrays_are_refused_not_cast(kind, bad_dtype):
    """Casting to the layer's dtype would drop a complex array's imaginary part with only a
    warning, and turn an object array's None into NaN; x and dy are both refused, by name,
    and the layer's last pass stays usable."""
    layer, shape = _layer(kind)
    x = _x(shape)
    got = re.escape(f"got dtype {np.dtype(bad_dtype)}")
    with pytest.raises(TypeError, match=rf"\.forward expects real numbers \(bool, integer or float\) for (its input|x), {got}"):
        layer.forward(x.astype(bad_dtype))
    y = layer.forward(x)
    dy = _x(y.shape, seed=4)
    with pytest.raises(TypeError, match=rf"{_leaf_name(layer)}\.backward expects real numbers .* for (dy|dH), {got}"):
        layer.backward(dy.astype(bad_dtype))
    reference, _ = _layer(kind)
    reference.forward(x)
    np.testing.assert_array_equal(layer.backward(dy), reference.backward(dy))


def test_a_list_of_complex_numbers_or_with_none_is_refused():
    layer = Dense(2, 3).build(dtype="float64")
    with pytest.raises(TypeError, match=r"Dense\.forward expects real numbers .* got dtype complex128"):
        layer.forward([[1.0, 2j]])
    with pytest.raises(TypeError, match=r"Dense\.forward expects real numbers .* got dtype object"):
        layer.forward([[1.0, None]])
    np.testing.assert_array_equal(layer.forward([[1, 2]]), layer.forward(np.array([[1.0, 2.0]])))


@pytest.mark.parametrize("cls", [RNN, GRU])
def test_recurrent_initial_and_step_states_must_be_real(cls):
    layer = cls(3, 4).build(dtype="float64")
    x, h = _x((2, 5, 3)), np.zeros((2, 4))
    with pytest.raises(TypeError, match=rf"{cls.__name__}\.forward expects real numbers .* for h0, got dtype complex128"):
        layer.forward(x, h.astype(complex))
    with pytest.raises(TypeError, match=rf"{cls.__name__}\.step expects real numbers .* for h, got dtype complex128"):
        layer.step(x[:, 0], h.astype(complex))
    with pytest.raises(TypeError, match=rf"{cls.__name__}\.step expects real numbers .* for x_t, got dtype object"):
        layer.step(x[:, 0].astype(object), h)
    with pytest.raises(TypeError, match=rf"{cls.__name__}\.forward expects real numbers .* for mask, got dtype complex128"):
        layer.forward(x, mask=np.ones((2, 5), complex))


def test_a_model_refuses_one_layer_object_in_two_of_its_parts():
    # Sequential sees only its own tree; the model's parameter buffer sees them all
    import microvae as mv

    shared = Dense(4, 4)
    encoder, decoder = Sequential(Dense(6, 4), ReLU(), shared, Dense(4, 4)), Sequential(Dense(2, 4), shared, ReLU(), Dense(4, 6))
    with pytest.raises(ValueError, match=r"the same Dense\(4, 4.*object is at encoder\.2 and at decoder\.1"):
        mv.VAE(6, latent_dim=2, encoder=encoder, decoder=decoder)


# ---------------------------------------------------------------------------------------------
# 5. sizes are checked as check_int does, not int()-ed (which truncated 2.5 and took True and "4")


@pytest.mark.parametrize("make,error,match", [
    (lambda: Dense(2.5, 3), ValueError, r"^in_features must be a positive integer, got 2\.5$"),
    (lambda: Dense(True, 4), TypeError, r"^in_features must be a positive integer, got True$"),
    (lambda: Dense("a", 4), TypeError, r"^in_features must be a positive integer, got 'a'$"),
    (lambda: Dense(None, 4), TypeError, r"^in_features must be a positive integer, got None$"),
    (lambda: Dense(3, 0), ValueError, r"^out_features must be a positive integer, got 0$"),
    (lambda: GRU(2.9, 3), ValueError, r"^input_size must be a positive integer, got 2\.9$"),
    (lambda: RNN(3, False), TypeError, r"^hidden_size must be a positive integer, got False$"),
    (lambda: Conv2D(1.7, 4, 3), ValueError, r"^in_channels must be a positive integer, got 1\.7$"),
    (lambda: Conv2DTranspose(2, "4", 3), TypeError, r"^out_channels must be a positive integer, got '4'$"),
    (lambda: Conv2D(1, 4, 3, stride=True), TypeError, r"^stride must be a positive integer, got True$"),
    (lambda: Conv2D(1, 4, (3, True)), TypeError, r"^kernel_size must be a positive integer or a pair of them, got \(3, True\)$"),
    (lambda: MaxPool2D((2, 2)), TypeError, r"^pool_size must be a positive integer, got \(2, 2\)$"),  # square windows only
    (lambda: MaxPool2D(2, stride="1"), TypeError, r"^stride must be None or a positive integer, got '1'$"),
    (lambda: LeakyReLU("0.1"), TypeError, r"^negative_slope must be a number in \[0, 1\), got '0\.1'$"),
    (lambda: Reshape(2.5), ValueError, r"^Reshape needs a non-empty shape of positive ints .*got 2\.5$"),
    (lambda: Reshape(None), TypeError, r"^Reshape needs a non-empty shape of positive ints .*got None$"),
    (lambda: Reshape((3, "4")), TypeError, r"^Reshape needs a non-empty shape of positive ints .*got \(3, '4'\)$"),
])
def test_sizes_are_checked_and_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_numpy_integers_and_integral_floats_are_sizes():
    import json

    layers = [Dense(3.0, np.int64(4)), GRU(np.int32(2), 3.0), Conv2D(np.int64(1), 4.0, 3.0, stride=2.0),
              Conv2DTranspose(2, 3, (np.int64(3), 2.0), stride=2, output_padding=1.0), MaxPool2D(2.0, stride=np.int64(1)),
              Reshape(np.int64(4)), Reshape(2.0), Reshape(np.array([3, 4]))]
    configs = [layer.get_config() for layer in layers]
    assert json.loads(json.dumps(configs)) == configs  # plain ints, for checkpoints
    assert configs[0]["in_features"] == 3 and configs[1] == {"input_size": 2, "hidden_size": 3}
    assert configs[2]["kernel_size"] == [3, 3] and configs[3]["kernel_size"] == [3, 2] and configs[3]["output_padding"] == [1, 1]
    assert [layer.shape for layer in layers[5:]] == [(4,), (2,), (3, 4)]


# ---------------------------------------------------------------------------------------------
# 6. a layer belongs to the one model whose buffer holds its parameters


def test_a_layer_of_a_built_model_is_refused_by_another():
    # building it again would point its params into the new buffer: the first model's buffer
    # (its optimizer steps, checkpoint loads) would no longer drive it, without a word
    import microvae as mv

    a = Dense(3, 3)
    s3 = Sequential(a, ReLU()).build(dtype="float64")
    with pytest.raises(ValueError, match=r"^this Dense\(3, 3, init='glorot'\) at 0 of the Sequential being built already "
                                         r"belongs to another model: a Sequential built before holds it at 0.*Dense\.from_config"):
        Sequential(a).build()
    assert a.backend is s3.backend and np.shares_memory(a.params["W"], s3.flat.data)  # the refusal changed nothing
    s3.flat.data[...] = 0
    assert not s3.forward(np.ones((2, 3))).any()

    s = Sequential(Dense(3, 2)).build()
    with pytest.raises(ValueError, match=r"^this Dense\(3, 2, init='glorot'\) already belongs to another model: a Sequential"):
        s.layers[0].build()
    alone = Dense(2, 2).build()
    with pytest.raises(ValueError, match="it was built on its own before"):
        Sequential(alone).build()
    model = mv.VAE(6, latent_dim=2, encoder=Sequential(Dense(6, 4)))
    with pytest.raises(ValueError, match=r"^this Sequential at encoder of the VAE being built already belongs to another "
                                         r"model: a VAE built before holds it at encoder"):
        mv.VAE(6, latent_dim=2, encoder=model.encoder)


def test_a_tree_can_be_rebuilt_and_the_layers_of_one_gone_reused():
    import microvae as mv

    a = Dense(3, 3)
    s = Sequential(a, ReLU()).build(seed=0)
    s.build(dtype="float64", seed=1)  # the same root: every module moves to the new buffer together
    assert a.params["W"].dtype == np.float64 and np.shares_memory(a.params["W"], s.flat.data)
    s.flat.data[...] = 0
    assert not s.forward(np.ones((2, 3))).any()
    del s  # nothing is left that the new buffer could detach
    Sequential(a).build()
    # a model whose constructor raised holds its layers no longer than its error is handled
    decoder = Sequential(Dense(2, 6))
    try:
        mv.VAE(6, latent_dim=2, encoder=Sequential(Dense(5, 4)), decoder=decoder)
    except ValueError:
        pass
    else:
        raise AssertionError("a 5-input encoder was taken for input_dim=6")
    assert mv.VAE(6, latent_dim=2, encoder=Sequential(Dense(6, 4)), decoder=decoder).decoder is decoder


def test_a_layer_that_its_live_tree_no_longer_holds_can_join_another():
    """A layer swapped out of a built tree that lives on is free: that tree's buffer no longer drives
    it, so another tree taking it detaches nothing (the refusal is for layers a tree still holds)."""
    a = Dense(3, 3)
    s = Sequential(a, ReLU()).build(seed=0)
    s.layers[0] = Dense(3, 3)
    s.build(seed=0)
    other = Sequential(a).build()
    assert np.shares_memory(a.params["W"], other.flat.data)
    with pytest.raises(ValueError, match="already belongs to another model"):
        Sequential(s.layers[0]).build()  # the layer s holds now is still refused


def test_the_layers_of_a_tree_dropped_in_a_reference_cycle_can_be_reused():
    """A dropped tree held in a reference cycle answers its weak reference until the collector
    runs; building another tree with its layers collects it and takes them. The build did
    collect, but the clash it had found still held that tree, so the layers were refused."""
    import gc

    enabled = gc.isenabled()
    gc.disable()  # so that only the build can collect the cycle
    try:
        a = Dense(3, 3)
        holder = [Sequential(a, ReLU()).build()]
        holder.append(holder)  # a cycle: freed by the collector alone
        del holder
        Sequential(a).build()
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize("make", [lambda b: Dense(2, 3, bias=b), lambda b: Conv2D(1, 2, 3, bias=b)], ids=["Dense", "Conv2D"])
def test_bias_is_true_or_false(make):
    """bool("no") is True: bias="no" built a bias."""
    for value in ("no", 0, None):
        with pytest.raises(TypeError, match="bias must be True or False"):
            make(value)
    assert make(False).get_config()["bias"] is False


@pytest.mark.parametrize("optimizer", ["Adam", "SGD"])
@pytest.mark.parametrize("how", ["rebuilt", "joined another tree", "a group of it"])
def test_an_optimizer_of_a_replaced_buffer_refuses_to_step(optimizer, how):
    """build() again moves every parameter view to a new buffer. An optimizer made before kept
    stepping the old one: step() raised nothing, and the parameters never moved."""
    import microvae as mv

    net = Sequential(Dense(3, 4), ReLU(), Dense(4, 1)).build(dtype="float64", seed=0)
    flat = net.flat.subset("0") if how == "a group of it" else net.flat
    opt = getattr(mv, optimizer)(flat, lr=0.1)
    opt.step()  # steps while its buffer is the layer's
    if how == "joined another tree":
        first = net.layers[0]
        del net, flat
        Sequential(first).build(dtype="float64")
    else:
        net.build(dtype="float64", seed=1)
    with pytest.raises(RuntimeError, match=r"built again.*make a new optimizer for layer\.flat"):
        opt.step()
    assert opt.t == 1
    if how == "rebuilt":
        fresh = getattr(mv, optimizer)(net.flat, lr=0.1)
        net.flat.grad[...] = 1.0
        before = net.flat.data.copy()
        fresh.step()
        assert (net.flat.data != before).all()


@pytest.mark.parametrize("copier", ["deepcopy", "copy", "pickle"])
@pytest.mark.parametrize("what", ["layer", "model"])
def test_a_built_layer_or_model_refuses_to_be_copied_and_says_what_to_do(copier, what):
    """Copying failed with "cannot pickle 'module' object" (the backend holds numpy), and a copy
    that worked would have cut the parameter views loose from the flat buffer. A built one is
    refused with the way to copy it; the way it names works; an unbuilt layer copies as before."""
    import copy
    import pickle

    import microvae as mv

    do = {"deepcopy": copy.deepcopy, "copy": copy.copy, "pickle": pickle.dumps}[copier]
    x = np.random.default_rng(0).random((3, 4))
    if what == "layer":
        original = Dense(4, 2).build(seed=1)
        with pytest.raises(TypeError, match=r"a built Dense cannot be copied or pickled.*Dense\.from_config"):
            do(original)
        new = Dense.from_config(original.get_config()).build()
    else:
        original = mv.VAE(4, (3,), 2, seed=1)
        with pytest.raises(TypeError, match=r"a built VAE cannot be copied or pickled.*model\.save\(path\).*VAE\(\*\*model\.config\)"):
            do(original)
        new = mv.VAE(**original.config)
    new.flat.data[...] = original.flat.data
    if what == "layer":
        np.testing.assert_array_equal(new.forward(x), original.forward(x))
    else:
        np.testing.assert_array_equal(new.reconstruct(x), original.reconstruct(x))
    unbuilt = Dense(4, 2)
    assert do(unbuilt) is not None


@pytest.mark.parametrize("copier", ["deepcopy", "copy", "pickle"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_an_optimizer_and_a_flat_buffer_refuse_to_be_copied_and_say_what_to_do(copier, optimizer):
    """copy.copy of an optimizer shared its moments and the buffer it updates but not its step
    count t, so a "snapshot" went on moving with the live one; deepcopy and pickle failed on
    "cannot pickle 'module' object". Both refuse as a built model does; the recipes work."""
    import copy
    import pickle

    import microvae as mv

    do = {"deepcopy": copy.deepcopy, "copy": copy.copy, "pickle": pickle.dumps}[copier]
    x = np.random.default_rng(0).random((8, 4)).astype(np.float32)
    model = mv.VAE(4, (3,), 2, seed=1)
    model.fit(x, epochs=1, batch_size=4, verbose=0, optimizer=optimizer, lr=1e-2)
    opt = model.optimizers["model"]
    with pytest.raises(TypeError, match=r"an optimizer \((Adam|SGD)\) cannot be copied or pickled.*model\.save\(path\)"
                                        r".*opt\.state_arrays\(\)"):
        do(opt)
    with pytest.raises(TypeError, match=r"a FlatParameters cannot be copied or pickled.*flat\.data\.copy\(\)"):
        do(model.flat)
    saved = {k: a.copy() for k, a in opt.state_arrays().items()}, opt.t, model.flat.data.copy()
    model.fit(x, epochs=1, batch_size=4, verbose=0)
    assert opt.t == saved[1] + 2 and not np.array_equal(model.flat.data, saved[2])
    assert any(not np.array_equal(a, saved[0][k]) for k, a in opt.state_arrays().items())


@pytest.mark.parametrize("copier", ["copy", "deepcopy", "pickle"])
@pytest.mark.parametrize("kind", ["params", "grads"])
def test_copies_of_a_built_layers_views_are_plain_writable_dicts(copier, kind):
    """layer.params and layer.grads refuse item assignment, but a copy of one (copy, deepcopy,
    pickle) is a plain dict of the values, cut loose from the layer, not a TypeError."""
    import copy
    import pickle

    do = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda d: pickle.loads(pickle.dumps(d))}[copier]
    layer = Dense(3, 2).build(dtype="float64")
    views = getattr(layer, kind)
    copied = do(views)
    assert type(copied) is dict and set(copied) == {"W", "b"}
    np.testing.assert_array_equal(copied["W"], views["W"])
    copied["W"] = 0
    assert isinstance(getattr(layer, kind)["W"], np.ndarray)


def test_an_empty_sequential_is_the_identity_and_checks_its_input_as_any_layer():
    """It handed back whatever it was given ("abc" included) and took any dy."""
    empty = Sequential().build(dtype="float64")
    with pytest.raises(TypeError):
        empty.forward("abc")
    with pytest.raises(RuntimeError, match="backward called before forward"):
        empty.backward(np.ones((2, 3)))
    x = np.arange(6).reshape(2, 3)
    y = empty.forward(x)
    assert y.dtype == np.float64 and (y == x).all()
    with pytest.raises(ValueError, match=r"expects dy of shape \(2, 3\)"):
        empty.backward(np.ones((3, 2)))
    np.testing.assert_array_equal(empty.backward(np.full((2, 3), 2.0)), 2.0)
    assert empty.backward(np.ones((2, 3)), input_grad=False) is None
    x, dy = np.ones((2, 3)), np.full((2, 3), 2.0)  # in its dtype: x and dy themselves, as layers/base.py says
    assert empty.forward(x) is x and empty.backward(dy) is dy


PARAMETRIC = [name for name in CASES if CASES[name][0]().parameter_specs()]


@pytest.mark.parametrize("name", PARAMETRIC)
def test_a_built_layers_parameters_take_new_values_only_written_into_their_views(name):
    """layer.params["W"] = array was taken: the layer computed with the new array while the
    optimizer updated, and checkpoints saved, the view it replaced (so it never trained)."""
    make, shape = CASES[name]
    layer = make().build(dtype="float64", seed=0)
    rng = np.random.default_rng(1)
    for kind in ("params", "grads"):
        views = getattr(layer, kind)
        for key, view in list(views.items()):
            refusal = (rf"^{kind}\['{key}'\] of a built layer is a view into its flat buffer \(.*\), which the optimizer "
                       rf"updates and checkpoints store; write the values into it: {kind}\['{key}'\]\[\.\.\.\] = values ")
            with pytest.raises(TypeError, match=refusal):
                views[key] = np.zeros(view.shape)
            for misuse in (lambda: views.pop(key), lambda: views.update({key: 0}), lambda: views.setdefault("other", 0),
                           lambda: views.clear(), lambda: views.popitem(), lambda: views.__delitem__(key),
                           lambda: views.__ior__({key: 0})):
                with pytest.raises(TypeError, match=rf"^a built layer's {kind} are views into its flat buffer"):
                    misuse()
            assert views[key] is view and len(views) == len(layer.parameter_specs())
    # the way the refusal advises: the values land in the flat buffer, and the layer computes with them
    key, view = next(iter(layer.params.items()))
    values = rng.standard_normal(view.shape)
    layer.params[key][...] = values
    np.testing.assert_array_equal(layer.flat.data[: values.size], values.ravel())
    layer.forward(rng.standard_normal(shape))
    copied = dict(layer.params)
    copied[key] = None  # a copy is the caller's own dict
    assert layer.params[key] is view


def test_a_layer_built_again_gets_new_views_and_the_refusal_still_holds():
    layer = Dense(3, 2).build(seed=0)
    first = layer.params["W"]
    layer.build(seed=1)
    assert layer.params["W"] is not first and np.shares_memory(layer.params["W"], layer.flat.data)
    with pytest.raises(TypeError, match=r"^params\['W'\] of a built layer"):
        layer.params["W"] = first


def test_an_in_place_update_through_the_mapping_is_still_taken():
    """params["W"] += step updates the view in place, and Python then stores the same view back."""
    layer = Dense(3, 2).build(dtype="float64", seed=0)
    view, before = layer.params["W"], layer.flat.data.copy()
    layer.params["W"] += 1.0
    layer.grads["W"] *= 0.5
    assert layer.params["W"] is view
    np.testing.assert_array_equal(layer.flat.data[:6], before[:6] + 1.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_trained_network_of_a_model_now_gone_keeps_its_values_in_a_new_model(dtype, tmp_path):
    """VAE(encoder=microvae.load(path).encoder) took the network and gave it fresh initial
    values: "fine-tuning" trained from scratch. Its values now come along (in the new model's
    dtype), and every new layer still gets the values its seed gives it."""
    import microvae as mv

    x = np.random.default_rng(0).random((64, 8))
    source = mv.VAE(8, (6,), 2, seed=1)
    source.fit(x, epochs=2, batch_size=16, verbose=0)
    source.save(tmp_path / "source.npz")
    trained = {path: dict(layer.params) for path, layer in source.encoder.named_modules() if layer.params}
    trained = {path: {name: value.copy() for name, value in views.items()} for path, views in trained.items()}
    del source
    model = mv.VAE(8, (6,), 2, encoder=mv.load(tmp_path / "source.npz").encoder, dtype=dtype, seed=0)
    fresh = mv.VAE(8, (6,), 2, dtype=dtype, seed=0)
    layers = dict(model.encoder.named_modules())
    for path, views in trained.items():
        for name, value in views.items():
            np.testing.assert_array_equal(layers[path].params[name], value.astype(dtype))
            assert np.shares_memory(layers[path].params[name], model.flat.data)
    np.testing.assert_array_equal(model.decoder.layers[0].params["W"], fresh.decoder.layers[0].params["W"])
    model.fit(x, epochs=1, batch_size=16, verbose=0)  # and it trains on from there
    assert not np.array_equal(layers["0"].params["W"], trained["0"]["W"].astype(dtype))


def test_a_seed_sweep_over_one_network_object_gets_each_seeds_values_from_fresh_copies():
    """A network object reused after its model is gone keeps its values (fine-tuning), so a
    sweep passes fresh copies, as the VAE docstring and README advise: each seed then gives
    the values a network made from scratch gets."""
    import gc

    import microvae as mv

    network = mv.Sequential(mv.Dense(8, 6), mv.ReLU(), mv.Dense(6, 4))
    model = None
    for seed in range(3):
        del model
        gc.collect()
        model = mv.VAE(8, latent_dim=2, encoder=mv.Sequential.from_config(network.get_config()), seed=seed)
        scratch = mv.VAE(8, latent_dim=2, encoder=mv.Sequential(mv.Dense(8, 6), mv.ReLU(), mv.Dense(6, 4)), seed=seed)
        np.testing.assert_array_equal(model.flat.data, scratch.flat.data)
    kept = mv.VAE(8, latent_dim=2, encoder=network, seed=0).flat.data.copy()
    gc.collect()
    again = mv.VAE(8, latent_dim=2, encoder=network, seed=1)  # the object itself: its values come along
    np.testing.assert_array_equal(again.encoder.layers[0].params["W"], kept[: 8 * 6].reshape(8, 6))


def test_a_layer_built_again_in_its_own_tree_is_initialised_afresh():
    """Keeping values is for a layer coming from a tree that is gone; build() on the same root draws anew."""
    layer = Dense(3, 2).build(seed=0)
    first = layer.params["W"].copy()
    layer.build(seed=1)
    assert not np.array_equal(layer.params["W"], first)
    np.testing.assert_array_equal(layer.params["W"], Dense(3, 2).build(seed=1).params["W"])


def test_a_module_whose_parameter_shapes_changed_gets_fresh_values_not_its_old_ones():
    """A layer of a tree that is gone keeps its values in the next tree only where their shapes
    still fit: one whose sizes were changed since is initialised afresh (not refused with a
    broadcast error, or filled by broadcasting)."""
    import gc

    dense = Dense(3, 4)
    tree = Sequential(dense).build(dtype="float64")
    del tree
    gc.collect()
    dense.out_features = 5
    again = Sequential(dense).build(dtype="float64", seed=0)
    assert dense.params["W"].shape == (3, 5) and dense.params["b"].shape == (5,)
    assert again.flat.size == 3 * 5 + 5
