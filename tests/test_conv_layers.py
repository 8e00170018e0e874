"""Conv2D, Conv2DTranspose, MaxPool2D, Flatten, Reshape: gradients, forward values, shapes, errors."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microvae
from microvae import Backend, Conv2D, Conv2DTranspose, Flatten, MaxPool2D, Reshape, check_layer
from microvae.layers.base import layer_from_spec, layer_to_spec

# ---------------------------------------------------------------------------------------------
# independent definitions, written as direct loops


def same_padding(size, kernel, stride):
    """TensorFlow's "SAME": output ⌈size/stride⌉, total padding split with the extra at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2


def naive_conv2d(x, w, b, stride, padding):
    """y[n, f, r, q] = b[f] + Σ_{c,i,j} w[f, c, i, j]·x[n, c, r·s + i − top, q·s + j − left]."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    if padding == "same":
        (oh, top), (ow, left) = same_padding(h, kh, stride), same_padding(wd, kw, stride)
    else:
        oh, ow, top, left = (h - kh) // stride + 1, (wd - kw) // stride + 1, 0, 0
    y = np.zeros((n, f, oh, ow))
    for nn in range(n):
        for ff in range(f):
            for r in range(oh):
                for q in range(ow):
                    total = b[ff]
                    for cc in range(c):
                        for i in range(kh):
                            for j in range(kw):
                                hh, ww = r * stride + i - top, q * stride + j - left
                                if 0 <= hh < h and 0 <= ww < wd:
                                    total += w[ff, cc, i, j] * x[nn, cc, hh, ww]
                    y[nn, ff, r, q] = total
    return y


def naive_conv2d_transpose(x, w, b, stride, padding, output_padding=None):
    """Scatter form: every input pixel x[n, ci, h, v] adds w[ci, co, i, j]·x at output
    (h·s + i − top, v·s + j − left); "same" crops to input·stride, with top = ⌊max(K − s, 0)/2⌋.
    With output_padding p, the output has (h − 1)·s + 1 + p rows ("same", with top the "same"
    padding of a convolution over that many rows) or (h − 1)·s + K + p ("valid")."""
    n, ci_count, h, wd = x.shape
    _, co_count, kh, kw = w.shape
    if output_padding is not None:
        ph, pw = (output_padding, output_padding) if isinstance(output_padding, int) else output_padding
        if padding == "same":
            oh, ow = (h - 1) * stride + 1 + ph, (wd - 1) * stride + 1 + pw
            top, left = same_padding(oh, kh, stride)[1], same_padding(ow, kw, stride)[1]
        else:
            oh, ow, top, left = (h - 1) * stride + kh + ph, (wd - 1) * stride + kw + pw, 0, 0
    elif padding == "same":
        oh, ow, top, left = h * stride, wd * stride, max(kh - stride, 0) // 2, max(kw - stride, 0) // 2
    else:
        oh, ow, top, left = (h - 1) * stride + kh, (wd - 1) * stride + kw, 0, 0
    y = np.zeros((n, co_count, oh, ow)) + b[None, :, None, None]
    for nn in range(n):
        for ci in range(ci_count):
            for hh in range(h):
                for vv in range(wd):
                    for co in range(co_count):
                        for i in range(kh):
                            for j in range(kw):
                                r, q = hh * stride + i - top, vv * stride + j - left
                                if 0 <= r < oh and 0 <= q < ow:
                                    y[nn, co, r, q] += w[ci, co, i, j] * x[nn, ci, hh, vv]
    return y


def built(layer, dtype="float64", seed=0, kernels=None):
    if kernels is None:
        return layer.build(dtype=dtype, seed=seed)
    return layer.build(Backend("numpy", dtype=dtype, seed=seed, kernels=kernels))


def randomize_params(layer, seed):
    """Non-trivial parameters (a fresh layer has b = 0)."""
    rng = np.random.default_rng(seed)
    layer.flat.data[...] = rng.standard_normal(layer.flat.size)


def assert_gradcheck(layer, x, seed=0):
    result = check_layer(layer, x, seed=seed)
    assert result.passed(1e-6), result.table()
    names = {f"{path}.{n}" if path else n for path, module in layer.named_modules() for n in module.params}
    assert set(result.errors) == {"x", *names, *(f"{name} (input_grad=False)" for name in names)}


# ---------------------------------------------------------------------------------------------
# strategies


@st.composite
def conv_cases(draw, transpose=False):
    padding = draw(st.sampled_from(["same", "valid"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    if draw(st.integers(0, 3)) == 0:  # a quarter of the cases take the direct 3×3 route (conv3x3_same)
        padding, kh, kw, stride = "same", 3, 3, 1
    extra = {}  # further constructor arguments: a transposed convolution's output_padding
    if transpose:
        h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        if draw(st.booleans()):
            pads = st.integers(0, stride - 1)
            extra["output_padding"] = draw(pads | st.tuples(pads, pads))
    elif padding == "valid":
        h, w = draw(st.integers(kh, kh + 4)), draw(st.integers(kw, kw + 4))
    else:
        h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 3)), f=draw(st.integers(1, 3)),
                kernel=(kh, kw) if draw(st.booleans()) or kh != kw else kh, stride=stride, padding=padding,
                h=h, w=w, bias=draw(st.booleans()), seed=draw(st.integers(0, 2**31)), extra=extra)


# ---------------------------------------------------------------------------------------------
# gradient checks (float64, relative error <= 1e-6)


@settings(max_examples=60)
@given(conv_cases())
def test_conv2d_gradients(case):
    layer = built(Conv2D(case["c"], case["f"], case["kernel"], stride=case["stride"], padding=case["padding"], bias=case["bias"]))
    randomize_params(layer, case["seed"])
    x = np.random.default_rng(case["seed"] + 1).standard_normal((case["n"], case["c"], case["h"], case["w"]))
    assert_gradcheck(layer, x, seed=case["seed"] % 1000)


@settings(max_examples=60)
@given(conv_cases(transpose=True))
def test_conv2d_transpose_gradients(case):
    layer = built(Conv2DTranspose(case["c"], case["f"], case["kernel"], stride=case["stride"], padding=case["padding"],
                                  bias=case["bias"], **case["extra"]))
    randomize_params(layer, case["seed"])
    x = np.random.default_rng(case["seed"] + 1).standard_normal((case["n"], case["c"], case["h"], case["w"]))
    assert_gradcheck(layer, x, seed=case["seed"] % 1000)


def _pass(layer, x, dy, input_grad=True):
    y = layer.forward(x)
    dx = layer.backward(dy, input_grad=input_grad)
    return y, dx, {k: v.copy() for k, v in layer.grads.items()}


@settings(max_examples=30)
@given(st.tuples(conv_cases(), st.just(Conv2D)) | st.tuples(conv_cases(transpose=True), st.just(Conv2DTranspose)))
def test_conv_batch_chunks_change_nothing(case_and_class):
    """Column buffers are formed a chunk of images at a time (to stay in cache); one image
    per chunk must give exactly what one chunk for the whole batch gives."""
    import microvae.layers.conv as conv_module

    case, cls = case_and_class
    layer = built(cls(case["c"], case["f"], case["kernel"], stride=case["stride"], padding=case["padding"], bias=case["bias"],
                      **case["extra"]))
    randomize_params(layer, case["seed"])
    rng = np.random.default_rng(case["seed"] + 1)
    x = rng.standard_normal((3, case["c"], case["h"], case["w"]))
    dy = rng.standard_normal(layer.forward(x).shape)
    saved = conv_module.CHUNK_BYTES
    try:
        conv_module.CHUNK_BYTES = 10**12
        whole = _pass(layer, x, dy)
        conv_module.CHUNK_BYTES = 1
        chunked = _pass(layer, x, dy)
    finally:
        conv_module.CHUNK_BYTES = saved
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-12, atol=1e-12)
    assert set(chunked[2]) == set(whole[2]) == set(layer.params)
    for name in whole[2]:
        np.testing.assert_allclose(chunked[2][name], whole[2][name], rtol=1e-12, atol=1e-12)


def _fused_and_separate(cls, case, dtype="float64"):
    """cls(..., activation="relu") and Sequential(cls(...), ReLU()) with the same parameters."""
    from microvae import ReLU, Sequential

    args = (case["c"], case["f"], case["kernel"])
    kwargs = dict(stride=case["stride"], padding=case["padding"], bias=case["bias"], **case["extra"])
    fused = built(cls(*args, activation="relu", **kwargs), dtype=dtype)
    separate = built(Sequential(cls(*args, **kwargs), ReLU()), dtype=dtype)
    values = np.random.default_rng(case["seed"]).standard_normal(fused.flat.size)
    fused.flat.data[...] = values
    separate.flat.data[...] = values
    return fused, separate


@settings(max_examples=40)
@given(case_and_class=st.tuples(conv_cases(), st.just(Conv2D)) | st.tuples(conv_cases(transpose=True), st.just(Conv2DTranspose)),
       dtype=st.sampled_from(["float32", "float64"]), input_grad=st.booleans(), threads=st.sampled_from([1, 3]))
def test_fused_relu_equals_the_layer_then_relu(case_and_class, dtype, input_grad, threads):
    """activation="relu": Y, dX, dW and db exactly as the layer followed by a ReLU layer,
    whichever backward route the layer takes, in one chunk or one image per chunk on 3 workers."""
    from hypothesis import assume

    import microvae.layers.conv as conv_module
    from microvae.threads import parallel_chunks

    case, cls = case_and_class
    fused, separate = _fused_and_separate(cls, case, dtype)
    rng = np.random.default_rng(case["seed"] + 1)
    x = rng.standard_normal((3, case["c"], case["h"], case["w"])).astype(dtype)
    saved = conv_module.CHUNK_BYTES
    try:
        conv_module.CHUNK_BYTES = 1 if threads > 1 else saved
        with parallel_chunks(threads=threads):
            y = fused.forward(x)
            np.testing.assert_array_equal(y, separate.forward(x))
            assert (y >= 0).all()
            assume((y == 0).any() and (y > 0).any())  # cases where the ReLU zeroes some outputs and passes others
            dy = rng.standard_normal(y.shape).astype(dtype)
            dx_fused, dx_separate = fused.backward(dy, input_grad=input_grad), separate.backward(dy, input_grad=input_grad)
    finally:
        conv_module.CHUNK_BYTES = saved
    if input_grad:
        np.testing.assert_array_equal(dx_fused, dx_separate)
    else:
        assert dx_fused is None
    np.testing.assert_array_equal(fused.flat.grad, separate.flat.grad)


@settings(max_examples=40)
@given(st.tuples(conv_cases(), st.just(Conv2D)) | st.tuples(conv_cases(transpose=True), st.just(Conv2DTranspose)))
def test_fused_relu_gradients(case_and_class):
    """Finite differences (float64) of Conv2D and Conv2DTranspose with a fused ReLU, at points
    whose pre-activations stay clear of the kink at 0."""
    from hypothesis import assume

    case, cls = case_and_class
    fused, separate = _fused_and_separate(cls, case)
    x = np.random.default_rng(case["seed"] + 1).standard_normal((case["n"], case["c"], case["h"], case["w"]))
    pre_activation = separate.layers[0].forward(x)
    assume(np.abs(pre_activation).min() > 1e-3 and (pre_activation > 0).any())
    assert_gradcheck(fused, x, seed=case["seed"] % 1000)


@st.composite
def direct_cases(draw):
    """3×3, stride 1, "same": the geometry the direct route (``kernels.conv3x3_same``) takes."""
    return dict(n=draw(st.integers(1, 4)), c=draw(st.integers(1, 4)), f=draw(st.integers(1, 5)), kernel=3, stride=1,
                padding="same", h=draw(st.integers(1, 9)), w=draw(st.integers(1, 9)), bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**31)))


def _route_counter(monkeypatch, layer):
    """Count the calls of the direct kernels made through ``layer``'s backend."""
    calls = []
    kernels = layer.backend.kernels
    for name in ("conv3x3_same", "conv3x3_same_weight_grad"):
        original = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    return calls


@settings(max_examples=40, deadline=None)
@given(case=direct_cases(), cls=st.sampled_from([Conv2D, Conv2DTranspose]), activation=st.sampled_from([None, "relu"]),
       input_grad=st.booleans(), threads=st.sampled_from([1, 3]))
def test_direct_route_equals_the_im2col_route(case, cls, activation, input_grad, threads):
    """Y, dX, dW and db of a 3×3 stride-1 "same" layer: the direct kernels against the column
    buffer and BLAS (``DIRECT_3X3 = False``), in float64, on 1 or 3 workers."""
    import microvae.layers.conv as conv_module
    from microvae.threads import parallel_chunks

    layer = built(cls(case["c"], case["f"], 3, bias=case["bias"], activation=activation))
    randomize_params(layer, case["seed"])
    rng = np.random.default_rng(case["seed"] + 1)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    dy = rng.standard_normal((case["n"], case["f"], case["h"], case["w"]))
    results = {}
    saved = conv_module.DIRECT_3X3
    try:
        for direct in (True, False):
            conv_module.DIRECT_3X3 = direct
            with parallel_chunks(threads=threads):
                results[direct] = _pass(layer, x, dy, input_grad=input_grad)
    finally:
        conv_module.DIRECT_3X3 = saved
    (y, dx, grads), (y_ref, dx_ref, grads_ref) = results[True], results[False]
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    if input_grad:
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    else:
        assert dx is None and dx_ref is None
    assert set(grads) == set(layer.params)
    for name in grads:
        np.testing.assert_allclose(grads[name], grads_ref[name], rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(case=direct_cases(), cls=st.sampled_from([Conv2D, Conv2DTranspose]))
def test_direct_route_gradients(case, cls):
    """Finite differences (float64) of 3×3 stride-1 "same" layers, whose every pass is direct."""
    layer = built(cls(case["c"], case["f"], 3, bias=case["bias"]))
    randomize_params(layer, case["seed"])
    x = np.random.default_rng(case["seed"] + 1).standard_normal((case["n"], case["c"], case["h"], case["w"]))
    assert_gradcheck(layer, x, seed=case["seed"] % 1000)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), f=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4),
       bias=st.booleans(), seed=st.integers(0, 2**31), cls=st.sampled_from([Conv2D, Conv2DTranspose]))
def test_stride2_fast_path_gradients(n, c, f, h, w, bias, seed, cls):
    """Finite differences (float64) of 3×3 stride-2 "same" layers on even sizes, whose im2col
    and col2im take the stride-2 fast path (Conv2D sees 2h × 2w, Conv2DTranspose h × w)."""
    layer = built(cls(c, f, 3, stride=2, bias=bias))
    randomize_params(layer, seed)
    size = (2 * h, 2 * w) if cls is Conv2D else (h, w)
    x = np.random.default_rng(seed + 1).standard_normal((n, c, *size))
    assert_gradcheck(layer, x, seed=seed % 1000)


@pytest.mark.parametrize("cls", [Conv2D, Conv2DTranspose])
def test_direct_route_is_taken_only_where_it_applies(monkeypatch, cls):
    """3×3, stride 1, "same" on the CPU: forward and backward run the direct kernels (and
    nothing else does); with ``DIRECT_3X3 = False``, or any other geometry, they are never called."""
    import microvae.layers.conv as conv_module

    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6))
    for make, direct in [(lambda: cls(2, 3, 3), True), (lambda: cls(2, 3, 3, stride=2), False),
                         (lambda: cls(2, 3, 5), False), (lambda: cls(2, 3, 3, padding="valid"), False),
                         (lambda: cls(2, 3, (3, 1)), False)]:
        for enabled in (True, False):
            layer = built(make())
            calls = _route_counter(monkeypatch, layer)
            monkeypatch.setattr(conv_module, "DIRECT_3X3", enabled)
            y = layer.forward(x)
            layer.backward(np.ones_like(y))
            monkeypatch.undo()
            if direct and enabled:
                assert calls.count("conv3x3_same") == 2 and calls.count("conv3x3_same_weight_grad") == 1, (layer, calls)
            else:
                assert calls == [], (layer, calls)


@settings(max_examples=30)
@given(conv_cases())
def test_conv2d_weight_grads_with_and_without_input_grad(case):
    """With an input gradient, stride 1 and F ≤ C, Conv2D forms dW from the columns of dY
    (shared with dX); without one it uses the columns of X. Both give the same dW and db."""
    layer = built(Conv2D(case["c"], case["f"], case["kernel"], stride=case["stride"], padding=case["padding"], bias=case["bias"]))
    randomize_params(layer, case["seed"])
    rng = np.random.default_rng(case["seed"] + 1)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    dy = rng.standard_normal(layer.forward(x).shape)
    _, dx, with_dx = _pass(layer, x, dy, input_grad=True)
    _, none, without_dx = _pass(layer, x, dy, input_grad=False)
    assert none is None and dx.shape == x.shape
    for name in with_dx:
        np.testing.assert_allclose(without_dx[name], with_dx[name], rtol=1e-12, atol=1e-12)


@settings(max_examples=40)
@given(n=st.integers(1, 2), c=st.integers(1, 3), pool=st.integers(1, 3), stride=st.one_of(st.none(), st.integers(1, 3)),
       extra_h=st.integers(0, 4), extra_w=st.integers(0, 4), seed=st.integers(0, 2**31))
def test_maxpool_gradients(n, c, pool, stride, extra_h, extra_w, seed):
    layer = built(MaxPool2D(pool, stride))
    shape = (n, c, pool + extra_h, pool + extra_w)
    rng = np.random.default_rng(seed)
    # distinct values 0.01 apart: every window's maximum is unique by a margin far above the FD step
    x = (rng.permutation(int(np.prod(shape))).reshape(shape) - 50.0) * 0.01
    assert_gradcheck(layer, x, seed=seed % 1000)


def test_maxpool_takes_non_contiguous_inputs_and_gradients():
    """A transposed view (rows and columns swapped, not C-contiguous) pools and back-propagates
    as its contiguous copy does: the kernels need C order, and the layer must make it."""
    rng = np.random.default_rng(3)
    x = rng.permutation(2 * 3 * 6 * 8).reshape(2, 3, 6, 8).astype(np.float64).transpose(0, 1, 3, 2)
    view, copy = built(MaxPool2D(2)), built(MaxPool2D(2))
    assert not x.flags.c_contiguous
    y = view.forward(x)
    np.testing.assert_array_equal(y, copy.forward(np.ascontiguousarray(x)))
    dy = rng.standard_normal((2, 3, y.shape[3], y.shape[2])).transpose(0, 1, 3, 2)
    assert not dy.flags.c_contiguous
    np.testing.assert_array_equal(view.backward(dy), copy.backward(np.ascontiguousarray(dy)))


def test_flatten_takes_an_empty_batch():
    """reshape(0, -1) cannot infer -1: every other layer took a batch of 0, Flatten failed in NumPy."""
    layer = Flatten().build()
    y = layer.forward(np.zeros((0, 2, 3, 3), np.float32))
    assert y.shape == (0, 18) and layer.backward(y).shape == (0, 2, 3, 3)


@pytest.mark.parametrize("x", [np.float64(3.0), np.array(3.0)])
def test_flatten_refuses_a_scalar_naming_what_it_expects(x):
    with pytest.raises(ValueError, match=r"^Flatten expects a batch \(batch, \.\.\.\), got a scalar of shape \(\)$"):
        Flatten().build().forward(x)


@settings(max_examples=15)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), seed=st.integers(0, 1000))
def test_flatten_and_reshape_gradients(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    assert_gradcheck(built(Flatten()), x, seed=seed)
    assert_gradcheck(built(Reshape(shape[1:][::-1])), x.reshape(shape[0], -1), seed=seed)


@settings(max_examples=15)
@given(shape=st.lists(st.integers(1, 4), min_size=3, max_size=4), seed=st.integers(0, 1000))
def test_flatten_and_reshape_keep_row_major_order(shape, seed):
    """Flatten lays each example out in NCHW (row-major) order and Reshape fills its shape in
    that order; backward undoes exactly that. A gradient check cannot see the order (any fixed
    permutation in forward, undone in backward, passes it), but a Dense after Flatten, and the
    checkpoints of one, depend on it."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    n, rows = shape[0], x.reshape(shape[0], -1)
    flatten, reshape = built(Flatten()), built(Reshape(shape[1:][::-1]))
    np.testing.assert_array_equal(flatten.forward(x), rows, err_msg="Flatten must be row-major (NCHW)")
    dy = rng.standard_normal(rows.shape)
    np.testing.assert_array_equal(flatten.backward(dy), dy.reshape(shape), err_msg="Flatten.backward must be row-major")
    target = (n, *shape[1:][::-1])
    np.testing.assert_array_equal(reshape.forward(rows), rows.reshape(target), err_msg="Reshape must be row-major")
    dy = rng.standard_normal(target)
    np.testing.assert_array_equal(reshape.backward(dy), dy.reshape(rows.shape), err_msg="Reshape.backward must be row-major")


def test_small_conv_stack_gradients():
    """Layers composed as in ConvVAE's encoder and decoder (with their NCHW hand-offs)."""
    from microvae import Dense, ReLU, Sequential

    rng = np.random.default_rng(3)
    net = built(Sequential(Conv2D(2, 3, 3, stride=2), ReLU(), MaxPool2D(2), Flatten(), Dense(3 * 2 * 2, 5),
                           Reshape((5, 1, 1)), Conv2DTranspose(5, 2, 3, stride=2), ReLU(), Conv2DTranspose(2, 1, 2, stride=2)))
    randomize_params(net, 4)
    x = rng.standard_normal((2, 2, 8, 8))
    assert_gradcheck(net, x)


# ---------------------------------------------------------------------------------------------
# forward values against direct loops


@settings(max_examples=25)
@given(conv_cases())
def test_conv2d_forward_matches_direct_loops(case):
    layer = built(Conv2D(case["c"], case["f"], case["kernel"], stride=case["stride"], padding=case["padding"]))
    randomize_params(layer, case["seed"])
    x = np.random.default_rng(case["seed"] + 1).standard_normal((case["n"], case["c"], case["h"], case["w"]))
    expected = naive_conv2d(x, layer.params["W"], layer.params["b"], case["stride"], case["padding"])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=25)
@given(conv_cases(transpose=True))
def test_conv2d_transpose_forward_matches_direct_loops(case):
    layer = built(Conv2DTranspose(case["c"], case["f"], case["kernel"], stride=case["stride"], padding=case["padding"],
                                  **case["extra"]))
    randomize_params(layer, case["seed"])
    x = np.random.default_rng(case["seed"] + 1).standard_normal((case["n"], case["c"], case["h"], case["w"]))
    expected = naive_conv2d_transpose(x, layer.params["W"], layer.params["b"], case["stride"], case["padding"],
                                      case["extra"].get("output_padding"))
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,padding", [(1, "same"), (2, "same"), (1, "valid"), (2, "valid"), (3, "same")])
def test_conv2d_and_transpose_are_adjoint(stride, padding):
    """<Conv2D(u), v> = <u, Conv2DTranspose(v)> with the same weights and no bias."""
    rng = np.random.default_rng(stride)
    conv = built(Conv2D(2, 3, 3, stride=stride, padding=padding, bias=False))
    tconv = built(Conv2DTranspose(3, 2, 3, stride=stride, padding=padding, bias=False))
    tconv.params["W"][...] = conv.params["W"]
    v = rng.standard_normal((2, 3, 4, 5))
    out = tconv.forward(v)
    u = rng.standard_normal(out.shape)
    assert conv.forward(u).shape == v.shape
    assert np.isclose((conv.forward(u) * v).sum(), (u * out).sum(), rtol=1e-12)


@settings(max_examples=40)
@given(conv_cases(transpose=True))
def test_conv2d_transpose_is_the_adjoint_of_conv2d_at_its_output_size(case):
    """<Conv2D(u), v> = <u, Conv2DTranspose(v)> (same weights, no bias), where u has the
    transposed layer's output size (output_padding included) and Conv2D maps it back to v's."""
    kwargs = dict(stride=case["stride"], padding=case["padding"], bias=False)
    conv = built(Conv2D(case["f"], case["c"], case["kernel"], **kwargs))
    tconv = built(Conv2DTranspose(case["c"], case["f"], case["kernel"], **kwargs, **case["extra"]))
    rng = np.random.default_rng(case["seed"])
    conv.params["W"][...] = tconv.params["W"][...] = rng.standard_normal(conv.params["W"].shape)
    v = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    out = tconv.forward(v)
    assert out.shape[2:] == tconv.output_shape(case["h"], case["w"])
    u = rng.standard_normal(out.shape)
    assert conv.forward(u).shape == v.shape
    np.testing.assert_allclose((conv.forward(u) * v).sum(), (u * out).sum(), rtol=1e-11, atol=1e-11)


def test_output_padding_mirrors_a_strided_same_conv2d_on_odd_sizes():
    """A stride-2 "same" Conv2D takes 7 × 5 to 4 × 3; output_padding=0 takes 4 × 3 back to 7 × 5
    (the default gives 8 × 6), and (1, 0) gives 8 × 5."""
    x = np.zeros((1, 2, 7, 5))
    small = built(Conv2D(2, 3, 3, stride=2)).forward(x)
    assert small.shape == (1, 3, 4, 3)
    assert built(Conv2DTranspose(3, 2, 3, stride=2, output_padding=0)).forward(small).shape == x.shape
    assert built(Conv2DTranspose(3, 2, 3, stride=2)).forward(small).shape == (1, 2, 8, 6)
    assert built(Conv2DTranspose(3, 2, 3, stride=2, output_padding=(1, 0))).forward(small).shape == (1, 2, 8, 5)
    assert built(Conv2DTranspose(3, 2, 3, stride=2, output_padding=1)).forward(small).shape == (1, 2, 8, 6)
    assert built(Conv2DTranspose(3, 2, 3, stride=2, padding="valid", output_padding=1)).forward(small).shape == (1, 2, 10, 8)


def test_output_padding_rows_under_valid_padding_hold_the_bias_alone():
    layer = built(Conv2DTranspose(2, 3, 2, stride=3, padding="valid", output_padding=(2, 1)))
    randomize_params(layer, 4)
    y = layer.forward(np.random.default_rng(5).standard_normal((2, 2, 3, 4)))
    assert y.shape == (2, 3, 2 * 3 + 2 + 2, 3 * 3 + 2 + 1)
    bias = np.broadcast_to(layer.params["b"][None, :, None, None], y.shape)
    np.testing.assert_array_equal(y[:, :, -2:], bias[:, :, -2:])
    np.testing.assert_array_equal(y[:, :, :, -1:], bias[:, :, :, -1:])
    assert not np.any(y[:, :, 0, 0] == layer.params["b"])


@pytest.mark.parametrize("output_padding,stride,error,match", [
    (2, 2, ValueError, r"output_padding must be None or in \[0, stride\) = \[0, 2\) for each axis, got 2"),
    ((0, 1), 1, ValueError, r"in \[0, stride\) = \[0, 1\) for each axis, got \(0, 1\)"),
    (-1, 2, ValueError, r"output_padding must be an integer >= 0 or a pair of them, got -1"),
    (True, 2, TypeError, r"output_padding must be an integer >= 0 or a pair of them, got True"),  # a bool is no size
    (0.5, 2, ValueError, r"output_padding must be an integer >= 0 or a pair of them, got 0\.5"),
    ((0, 0, 0), 2, ValueError, r"output_padding must be an integer >= 0 or a pair of them"),
])
def test_bad_output_padding_is_refused(output_padding, stride, error, match):
    with pytest.raises(error, match=match):
        Conv2DTranspose(2, 3, 3, stride=stride, output_padding=output_padding)


def test_output_padding_survives_config_and_repr():
    layer = Conv2DTranspose(2, 3, 3, stride=2, output_padding=(0, 1))
    assert layer_from_spec(layer_to_spec(layer)).output_padding == (0, 1)
    assert repr(layer) == "Conv2DTranspose(2, 3, 3, stride=2, padding='same', output_padding=(0, 1))"
    assert repr(Conv2DTranspose(2, 3, 3, stride=2, output_padding=0)).endswith("output_padding=0)")
    assert "output_padding" not in Conv2DTranspose(2, 3, 3).get_config()  # as written by earlier versions


def test_conv2d_same_padding_alignment():
    """An odd "same" kernel is centred; an even one puts the extra zero row/column at the bottom/right."""
    x = np.random.default_rng(0).standard_normal((1, 1, 5, 6))
    centred = built(Conv2D(1, 1, 3, bias=False))
    centred.params["W"][...] = 0
    centred.params["W"][0, 0, 1, 1] = 1  # identity kernel
    np.testing.assert_array_equal(centred.forward(x), x)
    even = built(Conv2D(1, 1, 2, bias=False))
    even.params["W"][...] = 1
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    expected = padded[..., :-1, :-1] + padded[..., 1:, :-1] + padded[..., :-1, 1:] + padded[..., 1:, 1:]
    np.testing.assert_allclose(even.forward(x), expected, rtol=1e-14)


def test_conv2d_transpose_same_stride2_matches_keras_layout():
    """Ones through a 3×3 all-ones kernel, stride 2, "same": the pattern TensorFlow/Keras give."""
    layer = built(Conv2DTranspose(1, 1, 3, stride=2, bias=False))
    layer.params["W"][...] = 1
    y = layer.forward(np.ones((1, 1, 2, 2)))
    profile = np.array([1.0, 1.0, 2.0, 1.0])
    np.testing.assert_array_equal(y[0, 0], np.outer(profile, profile))


@pytest.mark.parametrize("padding,stride,hw,expected", [
    ("same", 1, (5, 6), (5, 6)), ("same", 2, (5, 6), (3, 3)), ("same", 3, (7, 7), (3, 3)),
    ("valid", 1, (5, 6), (3, 4)), ("valid", 2, (5, 6), (2, 2)), ("valid", 2, (3, 3), (1, 1)),
])
def test_conv2d_output_shapes(padding, stride, hw, expected):
    layer = built(Conv2D(2, 4, 3, stride=stride, padding=padding))
    assert layer.forward(np.zeros((3, 2, *hw))).shape == (3, 4, *expected)
    assert layer.output_shape(*hw) == expected


@pytest.mark.parametrize("padding,stride,kernel,hw,expected", [
    ("same", 2, 3, (7, 7), (14, 14)), ("same", 1, 3, (5, 4), (5, 4)), ("same", 2, 4, (3, 5), (6, 10)),
    ("valid", 2, 3, (3, 4), (7, 9)), ("valid", 1, 2, (3, 3), (4, 4)),
])
def test_conv2d_transpose_output_shapes(padding, stride, kernel, hw, expected):
    layer = built(Conv2DTranspose(2, 4, kernel, stride=stride, padding=padding))
    assert layer.forward(np.zeros((3, 2, *hw))).shape == (3, 4, *expected)


def test_maxpool_values_and_shapes():
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float64).reshape(2, 3, 5, 4)
    y = built(MaxPool2D(2)).forward(x)
    assert y.shape == (2, 3, 2, 2)  # the last row (odd height) is dropped
    np.testing.assert_array_equal(y, x[:, :, 1:4:2, 1::2])
    assert built(MaxPool2D(3, stride=1)).forward(x).shape == (2, 3, 3, 2)


def test_layers_match_with_reference_kernels():
    """The compiled kernels and their NumPy twins give the same layer outputs and gradients."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 6, 6))
    for make in (lambda: Conv2D(3, 4, 3, stride=2), lambda: Conv2DTranspose(3, 4, 3, stride=2), lambda: MaxPool2D(2)):
        a, b = built(make(), kernels="compiled"), built(make(), kernels="reference")
        ya, yb = a.forward(x), b.forward(x)
        np.testing.assert_allclose(ya, yb, rtol=1e-12, atol=1e-12)
        dy = rng.standard_normal(ya.shape)
        np.testing.assert_allclose(a.backward(dy), b.backward(dy), rtol=1e-12, atol=1e-12)
        if a.flat is not None:
            np.testing.assert_allclose(a.flat.grad, b.flat.grad, rtol=1e-12, atol=1e-12)


def test_float32_layers_keep_their_dtype():
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    for layer in (Conv2D(1, 2, 3), MaxPool2D(2), Conv2DTranspose(1, 2, 3, stride=2), Flatten()):
        layer = built(layer, dtype="float32")
        y = layer.forward(x)
        assert y.dtype == np.float32
        assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_parameter_shapes_and_config_roundtrip():
    conv = Conv2D(3, 5, (2, 3), stride=2, padding="valid", bias=False, init="glorot")
    tconv = Conv2DTranspose(3, 5, 3, stride=2)
    assert built(conv).params["W"].shape == (5, 3, 2, 3) and "b" not in conv.params
    assert built(tconv).params["W"].shape == (3, 5, 3, 3) and tconv.params["b"].shape == (5,)
    fused = Conv2DTranspose(2, 4, 3, stride=2, activation="relu")
    assert conv.get_config()["activation"] is None and fused.get_config()["activation"] == "relu"
    assert repr(fused) == "Conv2DTranspose(2, 4, 3, stride=2, padding='same', activation='relu')"
    for layer in (conv, tconv, fused, MaxPool2D(3, stride=2), Flatten(), Reshape((2, 3))):
        clone = layer_from_spec(layer_to_spec(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    spec = layer_to_spec(conv)
    del spec["config"]["activation"]  # a spec written before the option existed
    assert layer_from_spec(spec).activation is None
    import json

    json.dumps([layer_to_spec(layer) for layer in (conv, tconv, MaxPool2D(2), Reshape((2, 3)))])


def test_he_init_scale():
    w = built(Conv2D(16, 32, 3), seed=1).params["W"]
    assert abs(w.std() - np.sqrt(2.0 / (16 * 9))) < 0.05 * np.sqrt(2.0 / (16 * 9))


# ---------------------------------------------------------------------------------------------
# errors


def test_bad_inputs_raise_clear_errors():
    conv = built(Conv2D(3, 4, 3, padding="valid"))
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\).*got \(2, 3, 5\)"):
        conv.forward(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\).*got \(2, 1, 5, 5\)"):
        conv.forward(np.zeros((2, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"at least 3×3.*padding='valid', got 2×5"):
        conv.forward(np.zeros((2, 3, 2, 5)))
    with pytest.raises(ValueError, match=r"at least 3×3.*padding='valid', got 5×2"):  # too narrow, not too short
        conv.forward(np.zeros((2, 3, 5, 2)))
    for empty in ((2, 3, 0, 5), (2, 3, 4, 0)):  # an image with no rows or no columns: refused, not an empty output
        with pytest.raises(ValueError, match=r"\(batch, 3, height, width\).*got \(2, 3, [04], [05]\)"):
            built(Conv2D(3, 4, 3)).forward(np.zeros(empty))
    tconv = built(Conv2DTranspose(2, 4, 3, stride=2))
    with pytest.raises(ValueError, match=r"\(batch, 2, height, width\)"):
        tconv.forward(np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="at least 3×3"):
        built(MaxPool2D(3)).forward(np.zeros((1, 1, 2, 5)))
    with pytest.raises(ValueError, match="at least 3×3, got 5×2"):
        built(MaxPool2D(3)).forward(np.zeros((1, 1, 5, 2)))
    with pytest.raises(ValueError, match="NCHW"):
        built(MaxPool2D(2)).forward(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="12 values per example"):
        built(Reshape((3, 4))).forward(np.zeros((2, 10)))


@pytest.mark.parametrize("make,match", [
    (lambda: Conv2D(0, 4, 3), "in_channels must be a positive integer, got 0"),
    (lambda: Conv2D(1, 4, 0), "kernel_size must be a positive integer or a pair of them, got 0"),
    (lambda: Conv2D(1, 4, (3, 3, 3)), "pair"),
    (lambda: Conv2D(1, 4, 2.5), "pair"),
    (lambda: Conv2D(1, 4, 3, stride=0), "stride"),
    (lambda: Conv2D(1, 4, 3, padding="full"), "padding must be one of"),
    (lambda: Conv2D(1, 4, 3, init="lecun"), "init must be one of"),
    (lambda: Conv2DTranspose(1, 4, 3, stride=1.5), "stride"),
    (lambda: Conv2D(1, 4, 3, activation="tanh"), r"activation must be one of \(None, 'relu'\)"),
    (lambda: Conv2DTranspose(1, 4, 3, activation="ReLU"), "activation must be one of"),
    (lambda: MaxPool2D(0), "pool_size"),
    (lambda: MaxPool2D(2, stride=0), "stride"),
    (lambda: Reshape(()), "non-empty shape"),
    (lambda: Reshape((2, 0)), "positive ints"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unbuilt_layer_says_so():
    with pytest.raises(RuntimeError, match="build"):
        Conv2D(1, 1, 3).forward(np.zeros((1, 1, 3, 3)))


def test_exported_names():
    for name in ("Conv2D", "Conv2DTranspose", "MaxPool2D", "Flatten", "Reshape"):
        assert getattr(microvae, name) is getattr(microvae.layers, name)


# ---------------------------------------------------------------------------------------------
# from a mutation review: defaults, initial values, reprs, configs and input_grad=False


def test_direct_route_is_the_default_on_the_cpu(monkeypatch):
    """The module as imported takes the direct route (``DIRECT_3X3`` is on): a 3×3, stride-1,
    "same" layer on the CPU runs the direct kernels in both passes without anyone asking."""
    import microvae.layers.conv as conv_module

    assert conv_module.DIRECT_3X3 is True
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    for cls in (Conv2D, Conv2DTranspose):
        layer = built(cls(2, 3, 3))
        calls = _route_counter(monkeypatch, layer)
        layer.backward(np.ones_like(layer.forward(x)))
        monkeypatch.undo()
        assert calls.count("conv3x3_same") == 2 and calls.count("conv3x3_same_weight_grad") == 1, (layer, calls)


@pytest.mark.parametrize("cls", [Conv2D, Conv2DTranspose])
def test_initial_parameters_follow_the_documented_fans(cls):
    """b starts at 0; "he" draws W from N(0, 2/fan_in) and "glorot" from U(−a, a) with
    a = √(6/(fan_in + fan_out)), fan_in = in_channels·KH·KW and fan_out = out_channels·KH·KW
    (for both layers, whatever the order of W's axes). Channel counts far apart, so that a fan
    taken from the wrong count shows."""
    for c_in, c_out in ((2, 16), (16, 2)):
        fan_in, fan_out = c_in * 3 * 2, c_out * 3 * 2
        glorot = built(cls(c_in, c_out, (3, 2), init="glorot"), seed=3)
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = glorot.params["W"]
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit, (c_in, c_out, np.abs(w).max(), limit)
        np.testing.assert_array_equal(glorot.params["b"], np.zeros(c_out))
        he = built(cls(c_in, c_out, (3, 2)), seed=4)
        std = np.sqrt(2.0 / fan_in)
        assert abs(he.params["W"].std() - std) < 0.15 * std, (c_in, c_out, he.params["W"].std(), std)
        np.testing.assert_array_equal(he.params["b"], np.zeros(c_out))


@pytest.mark.parametrize("make,error,match", [
    (lambda: Conv2D(1, 4, (3,)), ValueError, r"^kernel_size must be a positive integer or a pair of them, got \(3,\)$"),
    (lambda: Conv2DTranspose(1, 4, []), ValueError, r"^kernel_size must be a positive integer or a pair of them, got \[\]$"),
    (lambda: Conv2DTranspose(1, 4, 3, stride=2, output_padding=(1,)), ValueError,
     r"^output_padding must be an integer >= 0 or a pair of them, got \(1,\)$"),
    (lambda: Reshape(""), TypeError, r"^Reshape needs a non-empty shape of positive ints .*got ''$"),  # a string is no shape
])
def test_sizes_of_the_wrong_length_are_refused(make, error, match):
    """A pair means two sizes: one (or none) is refused by name, not read as a square size or
    left to fail in build."""
    with pytest.raises(error, match=match):
        make()


def test_reprs_show_the_constructor_arguments():
    """The reprs name the layers in every error message: a non-square kernel shows as a pair,
    MaxPool2D shows its pool size then its stride, Reshape its target shape."""
    assert repr(Conv2D(1, 4, (3, 2), stride=2, padding="valid")) == "Conv2D(1, 4, (3, 2), stride=2, padding='valid')"
    assert repr(Conv2DTranspose(2, 3, (1, 3))) == "Conv2DTranspose(2, 3, (1, 3), stride=1, padding='same')"
    assert repr(Conv2D(1, 4, (3, 3))) == "Conv2D(1, 4, 3, stride=1, padding='same')"
    # bias and init were left out, so layers of different configs printed alike
    assert repr(Conv2D(1, 2, 3, bias=False, init="glorot")) == "Conv2D(1, 2, 3, stride=1, padding='same', bias=False, init='glorot')"
    assert (repr(Conv2DTranspose(2, 3, 3, stride=2, init="glorot", activation="relu", output_padding=1))
            == "Conv2DTranspose(2, 3, 3, stride=2, padding='same', init='glorot', activation='relu', output_padding=1)")
    for layer in (Conv2D(1, 2, 3, bias=False), Conv2DTranspose(2, 3, (1, 3), stride=2, init="glorot", output_padding=(0, 1))):
        assert repr(type(layer).from_config(layer.get_config())) == repr(layer)
    assert repr(MaxPool2D(3, stride=2)) == "MaxPool2D(3, stride=2)"
    assert repr(MaxPool2D(2)) == "MaxPool2D(2, stride=2)"
    assert repr(Reshape((3, 4))) == "Reshape((3, 4))"


def test_maxpool_config_keeps_a_stride_other_than_the_pool_size():
    """A spec round trip rebuilds MaxPool2D(3, stride=2), not MaxPool2D(3) (whose stride is 3):
    the configs of both sides could agree with each other and still lose the stride."""
    clone = layer_from_spec(layer_to_spec(MaxPool2D(3, stride=2)))
    assert (clone.pool_size, clone.stride) == (3, 2)
    assert built(clone).forward(np.zeros((1, 1, 7, 7))).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("make,shape", [
    (lambda: MaxPool2D(2), (2, 3, 4, 6)), (Flatten, (2, 3, 4, 6)), (lambda: Reshape((6, 2)), (2, 12)),
    (lambda: Conv2D(3, 2, 3, stride=2), (2, 3, 5, 5)), (lambda: Conv2DTranspose(3, 2, 3), (2, 3, 4, 4)),
], ids=["MaxPool2D", "Flatten", "Reshape", "Conv2D", "Conv2DTranspose"])
def test_backward_without_input_grad_returns_none(make, shape):
    """input_grad=False (the first layer of a model) returns None and leaves the parameter
    gradients what they are with input_grad=True."""
    layer = built(make())
    x = np.random.default_rng(0).standard_normal(shape)
    dy = np.random.default_rng(1).standard_normal(layer.forward(x).shape)
    dx = layer.backward(dy)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    assert dx.shape == x.shape
    assert layer.backward(dy, input_grad=False) is None
    for name, grad in grads.items():
        np.testing.assert_array_equal(layer.grads[name], grad)


def test_flatten_takes_a_batch_of_scalars():
    """A 1-D input is a batch of scalars: (n,) → (n, 1), and back."""
    layer = built(Flatten())
    y = layer.forward(np.arange(3.0))
    np.testing.assert_array_equal(y, [[0.0], [1.0], [2.0]])
    assert layer.backward(np.ones((3, 1))).shape == (3,)


def test_reshape_refuses_rows_of_the_wrong_width_in_an_empty_batch():
    """The check is on the values per example, not the total size: a batch of 0 rows of 10
    values is not a batch of 3×4 examples (0 values either way)."""
    layer = built(Reshape((3, 4)))
    with pytest.raises(ValueError, match=r"12 values per example, got \(0, 10\)"):
        layer.forward(np.zeros((0, 10)))
    assert layer.forward(np.zeros((0, 12))).shape == (0, 3, 4)


# ---------------------------------------------------------------------------------------------
# sizes given as NumPy integers and arrays


def test_kernel_sizes_and_paddings_may_be_numpy_arrays_and_integers():
    """"An int or (KH, KW)": a 1-D NumPy integer array is a pair (as Reshape takes one) and a
    NumPy integer one size; they build the layer the tuple or int does, stored as plain ints."""
    import json

    for kernel in (np.array([3, 2]), np.array([3, 2], dtype=np.int32), [np.int64(3), np.uint8(2)], range(3, 1, -1)):
        layer = Conv2D(1, 2, kernel, stride=np.int64(2))
        assert layer.kernel_size == (3, 2) and layer.stride == 2, kernel
        assert all(type(k) is int for k in (*layer.kernel_size, layer.stride)), kernel
        assert repr(layer) == repr(Conv2D(1, 2, (3, 2), stride=2))
        json.dumps(layer.get_config())
    assert Conv2D(1, 2, np.int64(3)).kernel_size == (3, 3)
    tconv = Conv2DTranspose(1, 2, np.array([3, 3]), stride=2, output_padding=np.array([1, 0]))
    assert tconv.kernel_size == (3, 3) and tconv.output_padding == (1, 0)
    assert all(type(p) is int for p in tconv.output_padding)
    assert built(tconv).forward(np.zeros((1, 1, 4, 3))).shape == (1, 2, 8, 5)
    pool = MaxPool2D(np.int64(3), stride=np.int32(2))
    assert (pool.pool_size, pool.stride) == (3, 2) and type(pool.pool_size) is int and type(pool.stride) is int


@pytest.mark.parametrize("make,value,error", [
    (lambda v: Conv2D(1, 4, v), np.array([2.5, 3.0]), ValueError),  # as (2.5, 3.0) is
    (lambda v: Conv2D(1, 4, v), np.array([True, True]), TypeError),  # a bool is no size
    (lambda v: Conv2D(1, 4, v), np.array([3, 3, 3]), ValueError),
    (lambda v: Conv2D(1, 4, v), np.array([3]), ValueError),
    (lambda v: Conv2D(1, 4, v), np.array([0, 3]), ValueError),
    (lambda v: Conv2DTranspose(1, 4, v), np.array([3, -1]), ValueError),
    (lambda v: Conv2D(1, 4, v), np.array([[3, 3]]), ValueError),  # one row, not a pair
    (lambda v: Conv2D(1, 4, v), np.array(3), TypeError),  # a 0-d array is not iterable, nor a number
    (lambda v: Conv2D(1, 4, v), np.float64(2.5), ValueError),
    (lambda v: Conv2D(1, 4, v), np.int64(0), ValueError),
])
def test_bad_numpy_kernel_sizes_are_refused_by_name(make, value, error):
    """What is refused as a tuple is refused as an array, with the same message (showing the
    array as given), not a TypeError about the array itself."""
    with pytest.raises(error, match=rf"^kernel_size must be a positive integer or a pair of them, got {re.escape(repr(value))}$"):
        make(value)


@pytest.mark.parametrize("value,error", [(np.array([2, 0]), ValueError), (np.array([-1, 0]), ValueError),
                                         (np.array([0.5, 0.0]), ValueError), (np.array([1, 0, 0]), ValueError)])
def test_bad_numpy_output_paddings_are_refused_by_name(value, error):
    pattern = (r"^output_padding must be None or in \[0, stride\) = \[0, 2\) for each axis" if value.tolist() == [2, 0]
               else r"^output_padding must be an integer >= 0 or a pair of them")
    with pytest.raises(error, match=rf"{pattern}, got {re.escape(repr(value))}$"):
        Conv2DTranspose(1, 4, 3, stride=2, output_padding=value)
