"""Every compiled kernel, on each device, equals its NumPy reference twin over hypothesis-drawn
shapes and values: the Numba kernels ("cpu", everywhere), the CuPy ones on a GPU ("gpu",
skipped cleanly where CuPy or a GPU is missing, as on CI), and the same CuPy kernels' CUDA C++
bodies compiled for the host and run on the CPU ("emulated", tests/_cuda_emulation.py; skipped
where there is no C++ compiler, but not on CI), so the GPU kernels' arithmetic is tested on every machine.

The reference runs on host arrays, the device kernel on device copies of the same inputs, with
every output buffer pre-filled with NaN (-1 for indices) so a kernel that skips an element
fails. (tests/test_kernels.py, test_conv_kernels.py and test_rnn_kernels.py hold the Numba
kernels to more cases: extreme values, tie-breaking, fast paths, contiguity errors.)
"""

import inspect
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _cuda_emulation import DeviceArray, gpu_kernels, needs_compiler, to_device
from _gpu import needs_gpu
from _strategies import ADAM_SETTINGS, SGD_SETTINGS
from microvae.kernels import KERNEL_NAMES, reference


DEVICES = [pytest.param("cpu"), pytest.param("gpu", marks=needs_gpu), pytest.param("emulated", marks=needs_compiler)]


class _Device:
    """A kernel module and how to move arrays to and from its device."""

    def __init__(self, name):
        if name == "gpu":
            import cupy as cp

            from microvae.kernels import gpu

            self.kernels, self.put, self.get = gpu, cp.asarray, cp.asnumpy
        elif name == "emulated":
            self.kernels, self.put, self.get = gpu_kernels(), to_device, DeviceArray.get
        else:
            from microvae.kernels import cpu

            kernels = reference if name == "reference" else cpu
            self.kernels, self.put, self.get = kernels, np.array, np.array  # np.array copies

DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**31)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _blank(template):
    return np.full_like(template, -1 if template.dtype.kind == "i" else np.nan)


def _assert_twins(device, name, inputs, outputs, exact=False, precision=None):
    """Run kernel ``name`` from reference (host) and from ``device``; every output must agree,
    to the tolerance of ``precision`` (default: each output's own dtype), and each returns the
    same thing: the output array in the same position, or None (the convolution layers use
    what relu_backward returns; a col2im, max-pool or sigmoid wrapper returning another array
    passed before)."""
    dev = _Device(device)
    want = [_blank(o) for o in outputs]
    returned = getattr(reference, name)(*[i.copy() if isinstance(i, np.ndarray) else i for i in inputs], *want)
    got_device = [dev.put(_blank(o)) for o in outputs]
    got_returned = getattr(dev.kernels, name)(*[dev.put(i) if isinstance(i, np.ndarray) else i for i in inputs], *got_device)
    position = next((k for k, w in enumerate(want) if w is returned), None)
    assert returned is None or position is not None, f"reference.{name} returned no output of its own"
    assert got_returned is (None if position is None else got_device[position]), f"{name} returned the wrong thing"
    for g, w in zip((dev.get(d) for d in got_device), want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if exact or w.dtype.kind == "i":
            np.testing.assert_array_equal(g, w)
            if w.dtype.kind == "f":  # assert_array_equal takes −0 for +0: exact means the zeros' signs too
                zero = w == 0
                np.testing.assert_array_equal(np.signbit(g[zero]), np.signbit(w[zero]))
        else:
            np.testing.assert_allclose(g, w, **TOL[precision or w.dtype.type])


def _normal(seed, dtype, *shapes, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(dtype) for s in shapes]


def test_this_file_covers_every_kernel():
    covered = {"relu_forward", "relu_backward", "bias_relu_forward", "bias_relu_backward", "sigmoid", "bernoulli_nll_logits", "adam_update", "sgd_update",
               "im2col", "col2im", "maxpool_forward", "maxpool_backward", "rnn_tanh_forward_step",
               "rnn_tanh_backward_step", "gru_forward_step", "gru_backward_step"}
    assert set(KERNEL_NAMES) == covered


# ------------------------------------------------------------------------- elementwise
MATRICES = st.tuples(st.integers(1, 9), st.integers(1, 40))


@settings(max_examples=25)
@given(MATRICES, DTYPES, SEEDS, st.sampled_from([1.0, 30.0]))
@pytest.mark.parametrize("device", DEVICES)
def test_activations(device, shape, dtype, seed, scale):
    x, dy = _normal(seed, dtype, shape, shape, scale=scale)
    _assert_twins(device, "relu_forward", [x], [x])
    y = np.maximum(x, 0)
    _assert_twins(device, "relu_backward", [dy, y], [dy])
    _assert_twins(device, "sigmoid", [x], [x])


@settings(max_examples=25)
@given(MATRICES, DTYPES, SEEDS, st.sampled_from([1.0, 30.0]))
@pytest.mark.parametrize("device", DEVICES)
def test_bias_relu(device, shape, dtype, seed, scale):
    """A Dense layer's fused bias + ReLU (b broadcast over the rows), and its backward pass:
    dZ = dY·[Y > 0] and db = Σ_rows dZ. dY is of unit scale, so each sum's rounding stays
    within the float32 tolerance whatever order a device adds the rows in."""
    x, b, dy = _normal(seed, dtype, shape, shape[1:], shape, scale=scale)
    _assert_twins(device, "bias_relu_forward", [x, b], [x])
    y = reference.bias_relu_forward(x, b, np.empty_like(x))
    _assert_twins(device, "bias_relu_backward", [dy / dtype(scale), y], [dy, b])


@settings(max_examples=25)
@given(MATRICES, DTYPES, SEEDS)
@pytest.mark.parametrize("device", DEVICES)
def test_bias_relu_of_nan_infinities_and_signed_zeros(device, shape, dtype, seed):
    """As the ReLU's test below: NaN stays NaN through x + b and the ReLU, ±inf and ±0 pass
    through both, and an inactive unit sends no gradient whatever dY holds there, so db
    sums only the active units' dY (an infinite pair of them gives NaN on every device)."""
    rng = np.random.default_rng(seed)
    x, b, dy = _normal(seed, dtype, shape, shape[1:], shape)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    for a in (x, b, dy):
        pick = rng.random(a.shape) < 0.3
        a[pick] = rng.choice(special, int(pick.sum()))
    x.flat[: len(special)] = special[: x.size]
    b.flat[(len(special) - 1) % b.size] = -0.0  # meets x's −0 at its place (when x has one): −0 + −0 is −0, and the ReLU gives +0
    dy.flat[: len(special)] = special[::-1][: dy.size]
    with np.errstate(invalid="ignore"):  # inf + (−inf) is NaN, as meant
        _assert_twins(device, "bias_relu_forward", [x, b], [x], exact=True)
        y = reference.bias_relu_forward(x, b, np.empty_like(x))
        _assert_twins(device, "bias_relu_backward", [dy, y], [dy, b])


@settings(max_examples=25)
@given(MATRICES, DTYPES, SEEDS)
@pytest.mark.parametrize("device", DEVICES)
def test_activations_of_nan_infinities_and_signed_zeros(device, shape, dtype, seed):
    """test_activations draws finite values only. A NaN stays NaN through the ReLU, as in
    np.maximum and the CPU twin (a ReLU written ``x > 0 ? x : 0`` maps it to 0 and hides a
    diverged layer); ±inf and ±0 go through the ReLU and the sigmoid, and the ReLU's backward
    pass takes that y with a dy holding them too: where y ≤ 0 it passes 0 whatever dy is (the
    reference once computed dy·[y > 0], NaN for a NaN or infinite dy, where the compiled twins
    gave 0)."""
    rng = np.random.default_rng(seed)
    x, dy = _normal(seed, dtype, shape, shape)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    for a in (x, dy):
        pick = rng.random(shape) < 0.5
        a[pick] = rng.choice(special, int(pick.sum()))
        a.flat[: len(special)] = special[: a.size]  # each of them at least once where there is room
    dy.flat[: len(special)] = dy.flat[: len(special)][::-1]  # so a NaN dy meets a y ≤ 0
    _assert_twins(device, "relu_forward", [x], [x], exact=True)
    _assert_twins(device, "relu_backward", [dy, np.maximum(x, 0)], [dy], exact=True)
    _assert_twins(device, "sigmoid", [x], [x])


@settings(max_examples=25)
@given(MATRICES, DTYPES, SEEDS, st.sampled_from([1.0, 60.0]))
@pytest.mark.parametrize("device", DEVICES)
def test_bernoulli_nll_logits(device, shape, dtype, seed, scale):
    (logits,) = _normal(seed, dtype, shape, scale=scale)
    x = np.random.default_rng(seed + 1).random(shape).astype(dtype)
    # the row losses are float64 sums of terms computed from `dtype` inputs
    _assert_twins(device, "bernoulli_nll_logits", [logits, x, 1.0 / shape[0]], [logits, np.empty(shape[0], np.float64)],
                  precision=dtype)


@pytest.mark.parametrize("device", [*DEVICES, "reference"])
def test_bernoulli_float32_rows_are_summed_in_float64(device):
    """row_loss is the float64 sum of a row's float32 terms, in every kernel and the reference.
    Rows of 1024 terms 2²⁴ (logit 2²⁴, x = 0) and ln 2 (logit 0) tell a float32 sum apart: it
    drops every ln 2 once it passes 2²⁴ (half its spacing there is 1), 4e-8 of the row, which
    the float32 tolerances of the twin tests let through (a GPU wrapper summing a float32 buffer
    of terms passed them); the float64 sum of terms within 2 ulp of the exact ones is within 1e-14."""
    dev = _Device(device)
    big = np.float32(2**24)
    logits = np.tile(np.array([big, 0], np.float32), (3, 1024))
    x = np.tile(np.array([0, 0.5], np.float32), (3, 1024))
    row = dev.put(np.full(3, np.nan))
    dev.kernels.bernoulli_nll_logits(dev.put(logits), dev.put(x), 1.0, dev.put(np.empty_like(logits)), row)
    np.testing.assert_allclose(dev.get(row), 1024 * (float(big) + np.log(2.0)), rtol=1e-10,
                               err_msg="float32 rows must be summed in float64")


@settings(max_examples=25)
@given(st.integers(1, 300), DTYPES, SEEDS, st.integers(1, 4), ADAM_SETTINGS, SGD_SETTINGS)
@pytest.mark.parametrize("device", DEVICES)
def test_optimizer_updates(device, n, dtype, seed, steps, adam, sgd):
    """Adam's (lr, β₁, β₂, ε) and SGD's (lr, momentum) drawn over the ranges users set them in (tests/_strategies.py)."""
    from microvae.kernels.reference import adam_bias_corrected_rates

    lr, beta1, beta2, eps = adam
    sgd_lr, momentum = sgd
    dev = _Device(device)
    p, m, v, u = _normal(seed, dtype, n, n, n, n)
    v = np.abs(v)
    host = [a.copy() for a in (p, m, v, u)]
    on_device = [dev.put(a) for a in (p, m, v, u)]
    for t in range(1, steps + 1):
        (g,) = _normal(seed + t, dtype, n)
        lr_t, eps_t = adam_bias_corrected_rates(lr, beta1, beta2, eps, t)
        reference.adam_update(host[0], g, host[1], host[2], beta1, beta2, lr_t, eps_t)
        dev.kernels.adam_update(on_device[0], dev.put(g), on_device[1], on_device[2], beta1, beta2, lr_t, eps_t)
        reference.sgd_update(host[0], g, host[3], sgd_lr, momentum)
        dev.kernels.sgd_update(on_device[0], dev.put(g), on_device[3], sgd_lr, momentum)
    for d, h in zip(on_device, host):  # parameters, both Adam moments and the SGD velocity
        np.testing.assert_allclose(dev.get(d), h, **TOL[dtype])


@settings(max_examples=25)
@given(st.sampled_from(["matmul", "matmul_tn", "matmul_nt"]), st.integers(1, 70), st.integers(1, 70),
       st.integers(1, 300), DTYPES, SEEDS)
@pytest.mark.parametrize("device", DEVICES)
def test_dense_products(device, name, m, n, k, dtype, seed):
    """The Dense layers' three products (A·B, Aᵀ·B, A·Bᵀ; cuBLAS on the GPU) against the
    reference, within the rounding bound of a length-k dot product: |error| ≤ c·k·ε·(|A|·|B|).
    A product that drops a term, or reads a transposed operand untransposed, misses it by far."""
    a_shape = {"matmul": (m, k), "matmul_tn": (k, m), "matmul_nt": (m, k)}[name]
    b_shape = {"matmul": (k, n), "matmul_tn": (k, n), "matmul_nt": (n, k)}[name]
    a, b = _normal(seed, dtype, a_shape, b_shape)
    dev = _Device(device)
    out = dev.put(np.full((m, n), np.nan, dtype))
    returned = getattr(dev.kernels, name)(dev.put(a), dev.put(b), out)
    assert returned is out
    want = getattr(reference, name)(a.astype(np.float64), b.astype(np.float64), np.empty((m, n)))
    magnitude = getattr(reference, name)(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64), np.empty((m, n)))
    got = dev.get(out)
    assert got.dtype == dtype and got.shape == (m, n)
    bound = 4 * k * np.finfo(dtype).eps * magnitude + np.finfo(dtype).tiny
    assert np.all(np.abs(got - want) <= bound), f"{name} off by up to {np.max(np.abs(got - want) / bound):.3g}× its rounding bound"


@settings(max_examples=15)
@given(st.integers(1, 200), DTYPES, SEEDS)
@pytest.mark.parametrize("device", ["cpu", pytest.param("emulated", marks=needs_compiler)])
def test_optimizer_updates_run_in_the_buffers_dtype_and_the_references_order(device, n, dtype, seed):
    """Bit for bit on the host: float32 parameters get float32 arithmetic on every device, so a
    gradient whose square overflows makes v infinite and leaves its parameter where it was, as
    in the reference. (A GPU may contract a·b + c into one rounding, so there the test above,
    with its tolerance, is the one that applies.)"""
    from microvae.kernels.reference import adam_bias_corrected_rates

    dev = _Device(device)
    p, m, v, u, g = _normal(seed, dtype, n, n, n, n, n)
    v = np.abs(v)
    g[0] = np.finfo(dtype).max / 2  # (1 − β₂)·g·g overflows in either dtype
    lr_t, eps_t = adam_bias_corrected_rates(1e-2, 0.9, 0.999, 1e-8, 3)
    host = [a.copy() for a in (p, m, v, u)]
    on_device = [dev.put(a) for a in (p, m, v, u)]
    with np.errstate(over="ignore"):  # the overflow is the point
        reference.adam_update(host[0], g, host[1], host[2], 0.9, 0.999, lr_t, eps_t)
        dev.kernels.adam_update(on_device[0], dev.put(g), on_device[1], on_device[2], 0.9, 0.999, lr_t, eps_t)
    reference.sgd_update(host[0], g, host[3], 0.05, 0.9)
    dev.kernels.sgd_update(on_device[0], dev.put(g), on_device[3], 0.05, 0.9)
    assert np.isinf(host[2][0]) and host[0][0] == p[0] - dtype(0.05) * host[3][0]
    for d, h in zip(on_device, host):
        np.testing.assert_array_equal(dev.get(d), h)


@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=needs_gpu), pytest.param("emulated", marks=needs_compiler)])
def test_maxpool_forward_refuses_an_argmax_that_is_not_int64(device):
    dev = _Device(device)
    x = dev.put(np.arange(16.0).reshape(1, 1, 4, 4))
    y, argmax = dev.put(np.empty((1, 1, 2, 2))), dev.put(np.empty((1, 1, 2, 2), np.int32))
    with pytest.raises(TypeError, match="argmax must be int64, got int32"):
        dev.kernels.maxpool_forward(x, 2, 2, y, argmax)


# Arguments of a wrong shape: (kernel, arguments as shapes or values, the output positions).
# The reference raises (or broadcasts), while the compiled twins index without bounds checks:
# they wrote past cols, read past a mask, or dropped half of dy, without a word.
I64 = "int64"
WRONG_SHAPES = {
    "im2col, cols for another N": ("im2col", [(4, 1, 4, 4), 1, 1, 1, (1, 3, 3, 1, 4, 4)], [4]),
    "col2im, x of another C": ("col2im", [(1, 3, 3, 1, 4, 4), 1, 1, 1, (1, 2, 4, 4)], [4]),
    "maxpool_forward, windows past x": ("maxpool_forward", [(1, 1, 4, 4), 2, 2, (1, 1, 3, 3), ((1, 1, 3, 3), I64)], [3, 4]),
    "maxpool_forward, argmax of another shape": ("maxpool_forward", [(1, 1, 4, 4), 2, 2, (1, 1, 2, 2), ((1, 1, 2, 1), I64)], [3, 4]),
    "maxpool_backward, dx of another N": ("maxpool_backward", [(2, 1, 2, 2), ((2, 1, 2, 2), I64), 2, 2, (1, 1, 4, 4)], [4]),
    "rnn forward, mask of another batch": ("rnn_tanh_forward_step", [(4, 3), (4, 3), (2,), (4, 3)], [3]),
    "rnn backward, h of another width": ("rnn_tanh_backward_step", [(4, 3), (4, 2), (4,), (4, 3), (4, 3)], [3, 4]),
    "gru forward, b_hn of another H": ("gru_forward_step", [(2, 12), (2, 12), (1,), (2, 4), (2,), (2, 4), (2, 12), (2, 4)], [5, 6, 7]),
    "gru backward, gates not 3H wide": ("gru_backward_step", [(2, 4), (2, 4), (2,), (2, 8), (2, 4), (2, 12), (2, 4), (2, 4)], [5, 6, 7]),
    # an input in every other position the compiled loops index by the batch or the width
    "rnn forward, h_prev of another width": ("rnn_tanh_forward_step", [(4, 3), (4, 2), (4,), (4, 3)], [3]),
    "gru forward, gh not 3H wide": ("gru_forward_step", [(2, 12), (2, 8), (4,), (2, 4), (2,), (2, 4), (2, 12), (2, 4)], [5, 6, 7]),
    "gru forward, mask of another batch": ("gru_forward_step", [(2, 12), (2, 12), (4,), (2, 4), (1,), (2, 4), (2, 12), (2, 4)], [5, 6, 7]),
    "gru backward, hn of another batch": ("gru_backward_step", [(2, 4), (2, 4), (2,), (2, 12), (1, 4), (2, 12), (2, 4), (2, 4)], [5, 6, 7]),
}

# The elementwise kernels: CuPy broadcast an input of (3,) or (1, 3) against (4, 3) ones without
# a word (ReLU backward, sigmoid, Adam, the Bernoulli loss), or raised its own broadcast error,
# naming no kernel, where the Numba twins refuse by name (tests/test_kernels.py).
ELEMENTWISE_WRONG_SHAPES = {
    "relu_forward, out of another shape": ("relu_forward", [(4, 3), (1, 3)], [1]),
    "relu_backward, y broadcast": ("relu_backward", [(4, 3), (3,), (4, 3)], [2]),
    "bias_relu_forward, b of another n": ("bias_relu_forward", [(4, 3), (4,), (4, 3)], [2]),
    "bias_relu_forward, out of another batch": ("bias_relu_forward", [(4, 3), (3,), (2, 3)], [2]),
    "bias_relu_backward, db as a row": ("bias_relu_backward", [(4, 3), (4, 3), (4, 3), (1, 3)], [2, 3]),
    "sigmoid, x broadcast": ("sigmoid", [(3,), (4, 3)], [1]),
    "bernoulli, x of another batch": ("bernoulli_nll_logits", [(4, 3), (1, 3), 0.25, (4, 3), (4,)], [3, 4]),
    "bernoulli, row_loss of another batch": ("bernoulli_nll_logits", [(4, 3), (4, 3), 0.25, (4, 3), (2,)], [3, 4]),
    "adam, grad broadcast": ("adam_update", [(4, 3), (3,), (4, 3), (4, 3), 0.9, 0.999, 1e-3, 1e-8], [0, 2, 3]),
    "sgd, velocity of another shape": ("sgd_update", [(4, 3), (4, 3), (12,), 0.1, 0.9], [0, 2]),
}


@pytest.mark.parametrize("case", WRONG_SHAPES)
@pytest.mark.parametrize("device", DEVICES)
def test_kernels_refuse_arguments_of_the_wrong_shape_and_write_nothing(device, case):
    _refused_and_nothing_written(device, *WRONG_SHAPES[case])


@pytest.mark.parametrize("case", ELEMENTWISE_WRONG_SHAPES)
@pytest.mark.parametrize("device", [d for d in DEVICES if d.values[0] != "cpu"])  # the Numba twins: tests/test_kernels.py
def test_gpu_elementwise_kernels_refuse_arguments_of_the_wrong_shape_and_write_nothing(device, case):
    _refused_and_nothing_written(device, *ELEMENTWISE_WRONG_SHAPES[case])


@pytest.mark.parametrize("kernel", ["adam_update", "sgd_update"])
@pytest.mark.parametrize("device", [d for d in DEVICES if d.values[0] != "cpu"])  # the Numba twins: tests/test_kernels.py
def test_gpu_optimizer_updates_refuse_a_gradient_of_another_dtype_by_name(device, kernel):
    """As the Numba and reference twins do (they compute in the parameters' dtype): CuPy's
    one-type kernels refused it too, in words that named no kernel."""
    dev = _Device(device)
    param = dev.put(np.linspace(-1, 1, 12, dtype=np.float32))
    grad = dev.put(np.linspace(0.5, -0.5, 12))  # float64
    state = [dev.put(np.zeros(12, np.float32)) for _ in range(2 if kernel == "adam_update" else 1)]
    args = (0.9, 0.999, 1e-3, 1e-8) if kernel == "adam_update" else (0.1, 0.9)
    with pytest.raises(TypeError, match=f"{kernel} needs param, grad, .* of one dtype; got param float32, grad float64"):
        getattr(dev.kernels, kernel)(param, grad, *state, *args)
    np.testing.assert_array_equal(dev.get(param), np.linspace(-1, 1, 12, dtype=np.float32))


# Every kernel with its arguments apart: (arguments, positions of the outputs), shapes as in
# WRONG_SHAPES, all float64 but argmax (int64), so that any two may share one buffer.
APART = {
    "relu_forward": ([(4, 3), (4, 3)], [1]),
    "relu_backward": ([(4, 3), (4, 3), (4, 3)], [2]),
    "bias_relu_forward": ([(4, 3), (3,), (4, 3)], [2]),
    "bias_relu_backward": ([(4, 3), (4, 3), (4, 3), (3,)], [2, 3]),
    "sigmoid": ([(4, 3), (4, 3)], [1]),
    "bernoulli_nll_logits": ([(4, 3), (4, 3), 0.25, (4, 3), (4,)], [3, 4]),
    "adam_update": ([(4, 3), (4, 3), (4, 3), (4, 3), 0.9, 0.999, 1e-3, 1e-8], [0, 2, 3]),
    "sgd_update": ([(4, 3), (4, 3), (4, 3), 0.1, 0.9], [0, 2]),
    "im2col": ([(2, 1, 4, 4), 1, 1, 1, (1, 3, 3, 2, 4, 4)], [4]),
    "col2im": ([(1, 3, 3, 2, 4, 4), 1, 1, 1, (2, 1, 4, 4)], [4]),
    "maxpool_forward": ([(1, 1, 4, 4), 2, 2, (1, 1, 2, 2), ((1, 1, 2, 2), I64)], [3, 4]),
    "maxpool_backward": ([(1, 1, 2, 2), ((1, 1, 2, 2), I64), 2, 2, (1, 1, 4, 4)], [4]),
    "rnn_tanh_forward_step": ([(4, 3), (4, 3), (4,), (4, 3)], [3]),
    "rnn_tanh_backward_step": ([(4, 3), (4, 3), (4,), (4, 3), (4, 3)], [3, 4]),
    "gru_forward_step": ([(2, 12), (2, 12), (4,), (2, 4), (2,), (2, 4), (2, 12), (2, 4)], [5, 6, 7]),
    "gru_backward_step": ([(2, 4), (2, 4), (2,), (2, 12), (2, 4), (2, 12), (2, 4), (2, 4)], [5, 6, 7]),
}


def test_the_overlap_table_covers_every_kernel():
    assert set(APART) == set(KERNEL_NAMES)


def _overlapping_arguments(dev, spec, written, other):
    """The arguments of ``spec``, each in a buffer of its own, but ``written`` one element (8
    bytes) further along the buffer that holds ``other``; and the buffers (device arrays)."""
    def shape_dtype(item):
        return item if len(item) == 2 and isinstance(item[1], str) else (item, "float64")

    rng = np.random.default_rng(1)
    nbytes = {k: 8 * int(np.prod(shape_dtype(item)[0])) for k, item in enumerate(spec) if isinstance(item, tuple)}
    buffers = {k: rng.integers(0, 2**62, size=n // 8 + 1, dtype=np.int64).view(np.uint8) for k, n in nbytes.items() if k != written}
    for k, buffer in buffers.items():  # floats in [0, 1) where they are read as floats (no NaN, no Inf)
        if shape_dtype(spec[k])[1] == "float64":
            buffer.view(np.float64)[:] = rng.random(buffer.size // 8)
    buffers[other] = np.concatenate([buffers[other], np.zeros(nbytes[written], np.uint8)])
    device = {k: dev.put(b) for k, b in buffers.items()}
    args = []
    for k, item in enumerate(spec):
        if not isinstance(item, tuple):
            args.append(item)
            continue
        shape, dtype = shape_dtype(item)
        start = 8 if k == written else 0
        args.append(device[other if k == written else k][start:start + nbytes[k]].view(dtype).reshape(shape))
    return args, device


@pytest.mark.parametrize("kernel", sorted(APART))
@pytest.mark.parametrize("device", DEVICES)
def test_kernels_refuse_an_output_that_overlaps_another_argument_and_write_nothing(device, kernel):
    """Each output, one element along the memory of each other array argument (input or
    output), is refused by name before anything is written: the compiled loops read and write
    in an order of their own (a GPU in none), so their results would depend on it, where the
    reference, NumPy buffering the overlap, is right. The Numba ReLU backward, given an out
    one element along dy, gave other values than the reference. (Where an out may be x itself,
    relu_forward's and the like, that is tested in tests/test_kernels.py.)"""
    dev = _Device(device)
    spec, outputs = APART[kernel]
    names = list(inspect.signature(getattr(reference, kernel)).parameters)
    arrays = [k for k, item in enumerate(spec) if isinstance(item, tuple)]
    for written in outputs:
        for other in (k for k in arrays if k != written):
            args, buffers = _overlapping_arguments(dev, spec, written, other)
            before = {k: dev.get(b).copy() for k, b in buffers.items()}
            pairs = [(written, other)] + ([(other, written)] if other in outputs else [])  # two outputs: either may be named first
            pattern = "|".join(rf"{kernel} writes {names[a]}, which must not share memory with {names[b]}; got "
                               rf"|{kernel}: {names[a]} must be {names[b]} itself or not overlap it" for a, b in pairs)
            with pytest.raises(ValueError, match=pattern):
                getattr(dev.kernels, kernel)(*args)
            for k, b in buffers.items():
                np.testing.assert_array_equal(dev.get(b), before[k], err_msg=f"{names[written]} over {names[other]}")


_IN_PLACE = {  # the kernels whose out may be x itself, with their other arguments
    "relu_forward": lambda x: (), "sigmoid": lambda x: (), "bias_relu_forward": lambda x: (np.full(x.shape[1], 0.25),)}


@pytest.mark.parametrize("kernel", sorted(_IN_PLACE))
@pytest.mark.parametrize("device", [d for d in DEVICES if d.values[0] != "cpu"])  # the Numba twins: tests/test_kernels.py
def test_gpu_in_place_kernels_take_x_itself_and_refuse_its_transpose(device, kernel):
    """out may be x itself, the same object or another view of x's elements (each thread
    reads its own element before writing it), but not x's transpose: the same memory, shape
    and dtype, laid out otherwise, so that a thread writes an element another one reads."""
    dev = _Device(device)
    x = np.linspace(-3, 3, 36).reshape(6, 6)
    extra = _IN_PLACE[kernel](x)
    want = getattr(reference, kernel)(x.copy(), *extra, np.empty_like(x))
    for view in (lambda a: a, lambda a: a[:]):
        a = dev.put(x)
        getattr(dev.kernels, kernel)(a, *(dev.put(e) for e in extra), view(a))
        np.testing.assert_allclose(dev.get(a), want, rtol=1e-15)
    a = dev.put(x)
    with pytest.raises(ValueError, match=rf"{kernel}: out must be x itself or not overlap it \(.*\); got x "):
        getattr(dev.kernels, kernel)(a, *(dev.put(e) for e in extra), a.T)
    np.testing.assert_array_equal(dev.get(a), x)


def _refused_and_nothing_written(device, name, spec, outputs):
    dev = _Device(device)
    rng = np.random.default_rng(0)

    def make(item):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str):
            return dev.put(np.zeros(item[0], item[1]))
        if isinstance(item, tuple):
            return dev.put(rng.random(item))
        return item

    args = [make(item) for item in spec]
    before = [dev.get(args[i]).copy() for i in outputs]
    with pytest.raises(ValueError, match=rf"{name} needs .*; got "):
        getattr(dev.kernels, name)(*args)
    for i, was in zip(outputs, before):
        np.testing.assert_array_equal(dev.get(args[i]), was)


@settings(max_examples=30)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 4), st.integers(0, 4),
       st.sampled_from([np.int64, np.int32]), SEEDS, DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_maxpool_backward_routes_dy_only_to_an_argmax_inside_its_window(device, pool, stride, extra_h, extra_w,
                                                                       argmax_dtype, seed, dtype):
    """The layers pass their forward pass's argmax; a direct call may pass any integers. The
    Numba loop added dy at whatever position argmax held: past the plane (into the array after
    dx), wrapped round from a negative one, or in another window. The reference, and the CUDA
    kernel, route dy only to an argmax inside its own window: all twins do now, and nothing
    outside dx is written."""
    dev = _Device(device)
    n, c, h, w = 2, 2, pool + extra_h, pool + extra_w
    out = (n, c, (h - pool) // stride + 1, (w - pool) // stride + 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    y, argmax = np.empty(out, dtype), np.empty(out, np.int64)
    reference.maxpool_forward(x, pool, stride, y, argmax)
    stray = rng.integers(-h * w, 2 * h * w, out)  # out of the plane, negative, or another window's
    argmax = np.where(rng.random(out) < 0.5, argmax, stray).astype(argmax_dtype)
    (dy,) = _normal(seed + 1, dtype, out)
    expected = reference.maxpool_backward(dy, argmax, pool, stride, np.full(x.shape, np.nan, dtype))
    guarded = dev.put(np.full((3, *x.shape), 7.0, dtype))  # dx is the middle third
    dev.kernels.maxpool_backward(dev.put(dy), dev.put(argmax), pool, stride, guarded[1])
    got = dev.get(guarded)
    np.testing.assert_array_equal(got[[0, 2]], 7.0)
    np.testing.assert_allclose(got[1], expected, **TOL[dtype])


# (kernel, arguments, which argument is the bad one, what it names)
BAD_GEOMETRY = {
    "im2col, stride 0": ("im2col", [(1, 1, 4, 4), 0, 0, 0, (1, 2, 2, 1, 3, 3)], "im2col's stride must be a positive integer, got 0"),
    "im2col, stride 2.7": ("im2col", [(1, 1, 4, 4), 2.7, 0, 0, (1, 2, 2, 1, 2, 2)], "im2col's stride must be a positive integer, got 2.7"),
    "im2col, stride '2'": ("im2col", [(1, 1, 4, 4), "2", 0, 0, (1, 2, 2, 1, 2, 2)], "im2col's stride must be a positive integer, got '2'"),
    "im2col, pad_top -1": ("im2col", [(1, 1, 4, 4), 1, -1, 0, (1, 2, 2, 1, 3, 3)], "im2col's pad_top must be an integer >= 0, got -1"),
    "col2im, pad_left 1.5": ("col2im", [(1, 2, 2, 1, 3, 3), 1, 0, 1.5, (1, 1, 4, 4)], "col2im's pad_left must be an integer >= 0, got 1.5"),
    "maxpool_forward, pool 0": ("maxpool_forward", [(1, 1, 2, 2), 0, 2, (1, 1, 2, 2), ((1, 1, 2, 2), I64)], "maxpool_forward's pool must be a positive integer, got 0"),
    "maxpool_forward, pool 2.9": ("maxpool_forward", [(1, 1, 6, 6), 2.9, 2, (1, 1, 2, 2), ((1, 1, 2, 2), I64)], "maxpool_forward's pool must be a positive integer, got 2.9"),
    "maxpool_forward, stride -1": ("maxpool_forward", [(1, 1, 2, 2), 2, -1, (1, 1, 3, 3), ((1, 1, 3, 3), I64)], "maxpool_forward's stride must be a positive integer, got -1"),
    "maxpool_backward, stride 0": ("maxpool_backward", [(1, 1, 2, 2), ((1, 1, 2, 2), I64), 2, 0, (1, 1, 4, 4)], "maxpool_backward's stride must be a positive integer, got 0"),
    "maxpool_backward, pool True": ("maxpool_backward", [(1, 1, 2, 2), ((1, 1, 2, 2), I64), True, 2, (1, 1, 4, 4)], "maxpool_backward's pool must be a positive integer, got True"),
}


@pytest.mark.parametrize("case", BAD_GEOMETRY)
@pytest.mark.parametrize("device", DEVICES)
def test_conv_and_pool_kernels_refuse_a_bad_geometry_and_write_nothing(device, case):
    """The wrappers cut the geometry with int(): stride 2.7 ran as 2, the string "2" was taken,
    and pool 0 or a negative stride passed the shape check (its inequality holds for windows
    outside x), after which max pooling read past x and gave argmax entries past the plane. The
    reference raises for all of these; the compiled twins now refuse them by name, as
    check_int does everywhere else."""
    name, spec, message = BAD_GEOMETRY[case]
    dev = _Device(device)
    args = [dev.put(np.zeros(item[0], item[1])) if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)
            else dev.put(np.full(item, 7.0)) if isinstance(item, tuple) else item for item in spec]
    before = [dev.get(a).copy() for a in args if not isinstance(a, (int, float, str))]
    with pytest.raises((TypeError, ValueError), match=f"^{re.escape(message)}$"):
        getattr(dev.kernels, name)(*args)
    for a, was in zip([a for a in args if not isinstance(a, (int, float, str))], before):
        np.testing.assert_array_equal(dev.get(a), was)


CONV_OUTPUTS = {  # kernel: (arguments, given the output's dtype; the output's position and name)
    "im2col": (lambda t: [np.zeros((1, 1, 4, 4)), 1, 0, 0, np.full((1, 2, 2, 1, 3, 3), 7, t)], 4, "cols"),
    "col2im": (lambda t: [np.zeros((1, 2, 2, 1, 3, 3)), 1, 0, 0, np.full((1, 1, 4, 4), 7, t)], 4, "x"),
    "maxpool_forward": (lambda t: [np.zeros((1, 1, 4, 4)), 2, 2, np.full((1, 1, 2, 2), 7, t), np.zeros((1, 1, 2, 2), np.int64)], 3, "y"),
    "maxpool_backward": (lambda t: [np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int64), 2, 2, np.full((1, 1, 4, 4), 7, t)], 4, "dx"),
}


@pytest.mark.parametrize("device", DEVICES)
def test_maxpool_backward_refuses_an_argmax_of_floats(device):
    """Positions are integers: Numba's loop met a float argmax with its TypingError, and CUDA's
    int64 cast would truncate 2.7 to 2."""
    dev = _Device(device)
    dx = dev.put(np.full((1, 1, 4, 4), 7.0))
    with pytest.raises(TypeError, match=r"^maxpool_backward needs argmax of an integer dtype .*, got float64$"):
        dev.kernels.maxpool_backward(dev.put(np.ones((1, 1, 2, 2))), dev.put(np.zeros((1, 1, 2, 2))), 2, 2, dx)
    np.testing.assert_array_equal(dev.get(dx), 7.0)


@pytest.mark.parametrize("kernel", CONV_OUTPUTS)
@pytest.mark.parametrize("device", DEVICES)
def test_conv_and_pool_kernels_refuse_an_integer_output(device, kernel):
    """Numba's loops truncated the float results into an integer output, where the reference refuses."""
    dev = _Device(device)
    arguments, position, written = CONV_OUTPUTS[kernel]
    args = [dev.put(a) if isinstance(a, np.ndarray) else a for a in arguments(np.int64)]
    with pytest.raises(TypeError, match=f"^{kernel} writes {written} in float32 or float64, got an array of dtype int64$"):
        getattr(dev.kernels, kernel)(*args)
    np.testing.assert_array_equal(dev.get(args[position]), 7)
    getattr(dev.kernels, kernel)(*[dev.put(a) if isinstance(a, np.ndarray) else a for a in arguments(np.float64)])  # runs


@pytest.mark.parametrize("device", DEVICES)
def test_im2col_and_col2im_of_zero_width_images_are_empty(device):
    """Width 0 took the stride-2 fast path (width == 2·ow), which wrote tap0[ow − 1], i.e. [-1],
    and corrupted the heap; the reference gives the empty columns (and zeros for col2im)."""
    dev = _Device(device)
    cols = dev.kernels.im2col(dev.put(np.zeros((1, 1, 4, 0))), 2, 0, 0, dev.put(np.full((1, 3, 3, 1, 2, 0), np.nan)))
    assert dev.get(cols).shape == (1, 3, 3, 1, 2, 0)
    x = dev.kernels.col2im(dev.put(np.zeros((1, 3, 3, 1, 2, 0))), 2, 0, 0, dev.put(np.full((1, 1, 4, 0), np.nan)))
    assert dev.get(x).shape == (1, 1, 4, 0)
    big = [np.ones(1000) for _ in range(1000)]  # allocations that a corrupted heap aborted on
    assert sum(a.sum() for a in big) == 1e6


# ------------------------------------------------------------------------- convolution
@st.composite
def conv_problems(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    top, bottom, left, right = (draw(st.integers(0, k - 1)) for k in (kh, kh, kw, kw))
    h = draw(st.integers(max(1, kh - top - bottom), 8))
    w = draw(st.integers(max(1, kw - left - right), 8))
    oh, ow = (h + top + bottom - kh) // stride + 1, (w + left + right - kw) // stride + 1
    return dict(x=(n, c, h, w), cols=(c, kh, kw, n, oh, ow), stride=stride, top=top, left=left,
                seed=draw(SEEDS), dtype=draw(DTYPES))


@settings(max_examples=40)
@given(conv_problems())
@pytest.mark.parametrize("device", DEVICES)
def test_im2col_and_col2im(device, p):
    x, cols = _normal(p["seed"], p["dtype"], p["x"], p["cols"])
    _assert_twins(device, "im2col", [x, p["stride"], p["top"], p["left"]], [np.empty(p["cols"], p["dtype"])], exact=True)
    _assert_twins(device, "col2im", [cols, p["stride"], p["top"], p["left"]], [np.empty(p["x"], p["dtype"])])


def _assert_maxpool_twins(device, x, pool, stride, seed):
    """Forward on ``x``, then backward of a random dY through the reference's argmax."""
    n, c, h, w = x.shape
    out = (n, c, (h - pool) // stride + 1, (w - pool) // stride + 1)
    _assert_twins(device, "maxpool_forward", [x, pool, stride], [np.empty(out, x.dtype), np.empty(out, np.int64)], exact=True)
    y, argmax = np.empty(out, x.dtype), np.empty(out, np.int64)
    reference.maxpool_forward(x, pool, stride, y, argmax)
    (dy,) = _normal(seed + 1, x.dtype, out)
    _assert_twins(device, "maxpool_backward", [dy, argmax, pool, stride], [np.empty(x.shape, x.dtype)])


@settings(max_examples=40)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 6),
       st.integers(0, 6), st.booleans(), st.booleans(), SEEDS, DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_maxpool(device, n, c, pool, stride, extra_h, extra_w, ties, nans, seed, dtype):
    h, w = pool + extra_h, pool + extra_w
    rng = np.random.default_rng(seed)
    # integer values make ties, which both twins must break the same way (first maximum)
    x = (rng.integers(-2, 3, (n, c, h, w)) if ties else rng.standard_normal((n, c, h, w))).astype(dtype)
    if nans:  # a NaN is its window's maximum from any tap; the first NaN is the argmax
        x[rng.random(x.shape) < 0.2] = np.nan
    _assert_maxpool_twins(device, x, pool, stride, seed)


@settings(max_examples=25)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 4), st.integers(0, 4), SEEDS, DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_maxpool_of_infinities(device, pool, stride, extra_h, extra_w, seed, dtype):
    """test_maxpool's values are finite or NaN. Here windows hold mostly -inf, with +inf, 0 and
    NaN: a window of -inf alone has the maximum -inf at its first tap (a maximum started from the
    lowest finite number rather than from the window's first tap gives that number), and the
    ties of infinities break first-wins, as in the reference."""
    n, c, h, w = 2, 2, pool + extra_h, pool + extra_w
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-np.inf, -np.inf, -np.inf, np.inf, 0.0, np.nan]), (n, c, h, w)).astype(dtype)
    x[0, 0] = -np.inf  # a channel of -inf only: every window of it
    _assert_maxpool_twins(device, x, pool, stride, seed)


# ------------------------------------------------------------------------- recurrent steps
def _mask(seed, batch, dtype):
    return (np.random.default_rng(seed + 2).random(batch) < 0.6).astype(dtype)


# The layers pass the mask in the states' dtype; a direct call may pass any real or boolean one,
# which the Numba twins take and CuPy's ``raw T`` refused ("Type is mismatched").
MASK_DTYPES = st.sampled_from(["states", np.bool_, np.int64, np.float32, np.float64])


@settings(max_examples=25)
@given(st.integers(1, 6), st.integers(1, 9), DTYPES, SEEDS, st.sampled_from([0.1, 1.0, 30.0]), MASK_DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_recurrent_steps(device, batch, hidden, dtype, seed, scale, mask_dtype):
    B, H = batch, hidden
    mask = _mask(seed, B, dtype if mask_dtype == "states" else mask_dtype)
    a, h_prev, dh, gx, gh, b_hn, raw_gates, hn = _normal(
        seed, dtype, (B, H), (B, H), (B, H), (B, 3 * H), (B, 3 * H), (H,), (B, 3 * H), (B, H), scale=scale)
    _assert_twins(device, "rnn_tanh_forward_step", [a, h_prev, mask], [np.empty((B, H), dtype)])
    _assert_twins(device, "rnn_tanh_backward_step", [dh, np.tanh(h_prev), mask], [np.empty((B, H), dtype), np.empty((B, H), dtype)])
    _assert_twins(device, "gru_forward_step", [gx, gh, b_hn, h_prev, mask],
                  [np.empty((B, H), dtype), np.empty((B, 3 * H), dtype), np.empty((B, H), dtype)])
    sigmoid = 0.5 * (1 + np.tanh(0.5 * raw_gates[:, : 2 * H]))  # σ without exp's overflow at large |x|
    gates = np.concatenate([sigmoid, np.tanh(raw_gates[:, 2 * H:])], axis=1).astype(dtype)
    _assert_twins(device, "gru_backward_step", [dh, h_prev, mask, gates, hn],
                  [np.empty((B, 3 * H), dtype), np.empty((B, H), dtype), np.empty((B, H), dtype)])
