"""The Dense layers' CPU product kernels (kernels/matmul_cpu.py) against their NumPy twins.

``SMALL`` and ``NARROW`` are set to 0 and 1 in most tests, so that the compiled kernels take
even the small products hypothesis draws (by default those go to numpy.matmul).
"""

import contextlib
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microvae as mv
from microvae import testing
from microvae.kernels import matmul_cpu, numba_threads, reference
from test_layers import _check
from test_vae import _data_for, _randomize

KINDS = {
    # name: (kernel, stored shapes of A and B for a product (m, k) × (k, n), float64 exact product)
    "matmul": (matmul_cpu.matmul, lambda m, k, n: ((m, k), (k, n)), lambda a, b: a @ b),
    "matmul_tn": (matmul_cpu.matmul_tn, lambda m, k, n: ((k, m), (k, n)), lambda a, b: a.T @ b),
    "matmul_nt": (matmul_cpu.matmul_nt, lambda m, k, n: ((m, k), (n, k)), lambda a, b: a @ b.T),
}
DTYPES = st.sampled_from([np.float32, np.float64])
DEFAULT_SMALL, DEFAULT_NARROW = matmul_cpu.SMALL, matmul_cpu.NARROW


@pytest.fixture(scope="module")
def compiled_for_all():
    """Module-scoped (hypothesis reruns a test body without resetting function-scoped fixtures)."""
    saved = matmul_cpu.SMALL, matmul_cpu.NARROW
    matmul_cpu.SMALL, matmul_cpu.NARROW = 0, 1
    yield
    matmul_cpu.SMALL, matmul_cpu.NARROW = saved


@pytest.fixture
def default_threshold(monkeypatch):
    """SMALL and NARROW as shipped (a module-scoped ``compiled_for_all`` stays set until the module ends)."""
    monkeypatch.setattr(matmul_cpu, "SMALL", DEFAULT_SMALL)
    monkeypatch.setattr(matmul_cpu, "NARROW", DEFAULT_NARROW)


@contextlib.contextmanager
def threads(on):
    saved, numba_threads._state["threads"] = numba_threads._state["threads"], on
    try:
        yield
    finally:
        numba_threads._state["threads"] = saved


def _operands(kind, m, k, n, dtype, seed):
    shape_a, shape_b = KINDS[kind][1](m, k, n)
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape_a).astype(dtype), rng.standard_normal(shape_b).astype(dtype)


def _assert_close_to_exact(kind, a, b, out):
    """Within the rounding error a K-term float sum can make: |error| ≤ 2·K·u·(|A|·|B|)."""
    exact_of = KINDS[kind][2]
    exact = exact_of(a.astype(np.float64), b.astype(np.float64))
    bound = exact_of(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    k = a.shape[0] if kind == "matmul_tn" else a.shape[1]
    u = np.finfo(out.dtype).eps / 2
    assert np.isfinite(out).all(), "an output element was not written (NaN left in place)"
    excess = np.abs(out - exact) - 2 * k * u * bound
    assert excess.max() <= 0, f"off by more than the rounding bound at {np.unravel_index(excess.argmax(), out.shape)}"


def _run(kind, a, b, m, n, dtype):
    out = np.full((m, n), np.nan, dtype)  # NaN: an element the kernel forgets shows
    result = KINDS[kind][0](a, b, out)
    assert result is out
    return out


@pytest.mark.usefixtures("compiled_for_all")
@given(kind=st.sampled_from(sorted(KINDS)), dtype=DTYPES, m=st.integers(1, 40), k=st.integers(1, 300),
       n=st.integers(1, 90), threaded=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_every_shape_matches_the_exact_product(kind, dtype, m, k, n, threaded, seed):
    """Rows left over from 8-row tiles, wide, narrow and padded panels, K on both sides of the
    dot-product threshold (128), on Numba's threads and serially."""
    a, b = _operands(kind, m, k, n, dtype, seed)
    with threads(threaded):
        _assert_close_to_exact(kind, a, b, _run(kind, a, b, m, n, dtype))


@pytest.mark.usefixtures("compiled_for_all")
@given(kind=st.sampled_from(sorted(KINDS)), dtype=DTYPES, m=st.integers(1, 40), k=st.integers(1, 200),
       n=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_threaded_and_serial_results_are_identical(kind, dtype, m, k, n, seed):
    """Each element is summed by one thread in one order: the thread count cannot change it."""
    a, b = _operands(kind, m, k, n, dtype, seed)
    with threads(True):
        threaded = _run(kind, a, b, m, n, dtype)
    with threads(False):
        np.testing.assert_array_equal(_run(kind, a, b, m, n, dtype), threaded)


@given(transposed_a=st.booleans(), dtype=DTYPES, m=st.integers(1, 120), k=st.integers(1, 60),
       n=st.one_of(st.integers(1, 150), st.sampled_from([32, 64, 96, 128])), threads_=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1))
def test_the_work_split_among_any_number_of_threads_gives_the_serial_bits(transposed_a, dtype, m, k, n, threads_, seed):
    """Whole panels per thread, or blocks of rows per thread (their edges on multiples of the
    8-row tile): either way each element comes out of the same tile or row loop as serially."""
    kind = "matmul_tn" if transposed_a else "matmul"
    a, b = _operands(kind, m, k, n, dtype, seed)
    a_steps = (1, m) if transposed_a else (k, 1)
    outputs = []
    for driver in (matmul_cpu._product_threads, matmul_cpu._product_serial):
        out = np.full((m, n), np.nan, dtype)
        work = np.empty(k * (n + 128 // out.itemsize), dtype)
        driver(a.reshape(-1), *a_steps, m, k, b.reshape(-1), n, 1, n, out, work, threads_)
        outputs.append(out)
    _assert_close_to_exact(kind, a, b, outputs[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.usefixtures("default_threshold")
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("m, k, n", [(128, 784, 512), (100, 512, 784), (128, 400, 20), (96, 20, 400), (128, 256, 4)])
def test_the_training_shapes_without_a_patched_threshold(kind, m, k, n):
    """The textbook and examples layers' products, a last batch of 100 or 96 rows included."""
    a, b = _operands(kind, m, k, n, np.float32, 0)
    _assert_close_to_exact(kind, a, b, _run(kind, a, b, m, n, np.float32))


@pytest.mark.usefixtures("default_threshold")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_compiled_kernels_run_above_small_and_numpy_below(kind, monkeypatch):
    calls = []
    monkeypatch.setattr(matmul_cpu, "_product", lambda *args: calls.append("product"))
    monkeypatch.setattr(matmul_cpu, "_dots_threads", lambda *args: calls.append("dots"))
    monkeypatch.setattr(matmul_cpu, "_dots_serial", lambda *args: calls.append("dots"))
    small = _operands(kind, 8, 64, 8, np.float32, 0)  # 4096 multiply-adds: numpy.matmul
    _assert_close_to_exact(kind, *small, _run(kind, *small, 8, 8, np.float32))
    assert calls == []
    narrow = _operands(kind, 4096, 256, 1, np.float32, 0)  # one output column (a VRAE's output layer)
    _assert_close_to_exact(kind, *narrow, _run(kind, *narrow, 4096, 1, np.float32))
    assert calls == []
    large = _operands(kind, 64, 256, 64, np.float32, 0)
    _run(kind, *large, 64, 64, np.float32)
    assert calls == ["dots" if kind == "matmul_nt" else "product"]


@pytest.mark.usefixtures("compiled_for_all")
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", ["float16", "int64", "mixed dtypes", "a not contiguous", "b not contiguous",
                                  "out not contiguous", "out is a", "out is b"])
def test_what_the_kernels_do_not_take_goes_to_numpy(kind, case, monkeypatch):
    monkeypatch.setattr(matmul_cpu, "_product", lambda *args: pytest.fail("the compiled kernel ran"))
    monkeypatch.setattr(matmul_cpu, "_dots_threads", lambda *args: pytest.fail("the compiled kernel ran"))
    monkeypatch.setattr(matmul_cpu, "_dots_serial", lambda *args: pytest.fail("the compiled kernel ran"))
    m = k = n = 6
    dtype = {"float16": np.float16, "int64": np.int64}.get(case, np.float32)
    a, b = _operands(kind, m, k, n, np.float64, 1)
    a, b = a.astype(dtype), b.astype(np.float64 if case == "mixed dtypes" else dtype)
    out = np.zeros((m, n), np.result_type(a, b))
    if case == "a not contiguous":
        a = np.asfortranarray(a)
    elif case == "b not contiguous":
        b = np.asfortranarray(b)
    elif case == "out not contiguous":
        out = np.zeros((n, m), out.dtype).T
    elif case == "out is a":
        out = a
    elif case == "out is b":  # (the dot-product route reads rows of B while it writes out)
        out = b
    expected = getattr(reference, kind)(a.copy(), b.copy(), np.empty_like(out))
    np.testing.assert_array_equal(KINDS[kind][0](a, b, out), expected)


@pytest.mark.usefixtures("compiled_for_all")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_read_only_out_is_refused_by_numpy_by_name(kind):
    """The compiled kernels met a read-only out with Numba's TypingError; it goes to numpy.matmul,
    whose error names it, and nothing is written."""
    a, b = _operands(kind, 32, 32, 32, np.float32, 0)
    out = np.full((32, 32), 7.0, np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        KINDS[kind][0](a, b, out)
    np.testing.assert_array_equal(out, 7.0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_shapes_that_do_not_fit_are_refused_with_the_shapes_named(kind):
    kernel = KINDS[kind][0]
    a, b = _operands(kind, 4, 5, 6, np.float32, 0)
    with pytest.raises(ValueError, match=r"need .* and an out of shape \(M, N\) = \(4, 6\), got out \(6, 4\)"):
        kernel(a, b, np.empty((6, 4), np.float32))
    wrong_b = np.ones((7, 7), np.float32)
    with pytest.raises(ValueError, match=f"{kind}: operands of shapes .*, got K = 5 against K = 7$"):  # (it named out)
        kernel(a, wrong_b, np.empty((4, 7), np.float32))
    with pytest.raises(ValueError, match="takes 2-D arrays"):
        kernel(a[None], b, np.empty((4, 6), np.float32))


@pytest.mark.usefixtures("compiled_for_all")
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("k", [20, 200])
def test_nan_and_inf_reach_the_output_as_they_do_through_numpy(kind, k):
    a, b = _operands(kind, 16, k, 40, np.float64, 2)
    a[3 if kind != "matmul_tn" else (0, 3)] = np.nan  # row 3 of A (column 3 of the stored Xᵀ)
    b[(1, 5) if kind == "matmul" or kind == "matmul_tn" else (5, 1)] = np.inf  # B's (k=1, j=5)
    got = _run(kind, a, b, 16, 40, np.float64)
    expected = KINDS[kind][2](a, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    assert np.isnan(got[3]).all()


def test_two_python_threads_may_multiply_at_once():
    a, b = _operands("matmul", 64, 300, 96, np.float32, 3)
    expected = _run("matmul", a, b, 64, 96, np.float32)
    failures = []

    def work():
        for _ in range(30):
            out = np.empty((64, 96), np.float32)
            matmul_cpu.matmul(a, b, out)
            if not np.array_equal(out, expected):
                failures.append(out)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failures


@pytest.mark.usefixtures("compiled_for_all")
@given(layer=testing.dense_layers(max_width=40), batch=st.integers(1, 20), seed=testing.seeds(), data=st.data())
def test_dense_gradients_through_the_compiled_products(layer, batch, seed, data):
    """The float64 finite-difference check of a Dense layer, every product in the compiled kernels."""
    _check(layer, data.draw(testing.float_arrays((batch, layer.in_features))), seed % 1000)


@pytest.mark.usefixtures("compiled_for_all")
@settings(max_examples=10)
@given(config_and_batch=testing.vae_configs(max_width=40), seed=testing.seeds())
def test_vae_objective_gradients_through_the_compiled_products(config_and_batch, seed):
    """A whole VAE's objective, ε held fixed, every Dense product in the compiled kernels."""
    config, batch = config_and_batch
    model = mv.VAE(**config)
    _randomize(model, seed % 1000)
    x = _data_for(config["likelihood"], (batch, config["input_dim"]), seed)
    result = mv.check_model(model, x, seed=seed % 1000)
    assert result.passed(1e-6), f"{config}\n{result}"
