"""microvae.threads: NumPy's BLAS thread count, and convolution chunks on microvae's own threads."""

import os
import threading

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microvae as mv
import microvae.layers.conv as conv_module
from microvae import threads
from microvae.layers import Conv2D, Conv2DTranspose
from microvae.verify import check_layer
from microvae.training import Callback

needs_openblas = pytest.mark.skipif(threads.blas_threads() is None,
                                    reason="NumPy's BLAS is not an OpenBLAS microvae can find; its thread count cannot be set")


@needs_openblas
def test_blas_thread_count_can_be_read_and_set():
    before = threads.blas_threads()
    try:
        assert threads.set_blas_threads(1) is True
        assert threads.blas_threads() == 1
        threads.set_blas_threads(2)
        assert threads.blas_threads() == 2
    finally:
        threads.set_blas_threads(before)
    for bad, error in ((0, ValueError), (2.7, ValueError), ("2", TypeError)):  # int() took "2" and cut 2.7 to 2
        with pytest.raises(error, match="thread count must be a positive integer"):
            threads.set_blas_threads(bad)


@needs_openblas
def test_blas_core_names_the_kernels_openblas_runs():
    import subprocess
    import sys

    if threads.blas_threads() is None:
        assert threads.blas_core() is None
        pytest.skip("NumPy's BLAS here is not an OpenBLAS")
    assert isinstance(threads.blas_core(), str) and threads.blas_core()
    # OPENBLAS_CORETYPE is read when OpenBLAS loads: a fresh process shows the forced kernels
    script = "import numpy; from microvae import threads; print(threads.blas_core())"
    for core in ("Haswell", "Sandybridge"):
        env = {**os.environ, "OPENBLAS_CORETYPE": core}
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True).stdout
        assert out.strip() == core


def test_parallel_chunks_sets_blas_to_one_thread_and_restores_it():
    before = threads.blas_threads()
    with threads.parallel_chunks(threads=3) as workers:
        assert workers == 3
        assert threads.blas_threads() == 1
        assert threads.chunk_workers([(0, 1)] * 5) == 3
        assert threads.chunk_workers([(0, 1)] * 2) == 2  # never more workers than chunks
        with threads.parallel_chunks(threads=2) as inner:  # nested: the outer setting stands
            assert inner == 3 and threads.blas_threads() == 1
        assert threads.blas_threads() == 1
    assert threads.blas_threads() == before
    assert threads.chunk_workers([(0, 1)] * 5) == 1
    with pytest.raises(RuntimeError):
        with threads.parallel_chunks(threads=2):
            raise RuntimeError("boom")
    assert threads.blas_threads() == before and threads.chunk_workers([(0, 1)] * 5) == 1


def test_parallel_chunks_refuses_a_thread_count_that_is_not_positive():
    """0 and -3 were ignored silently, while $MICROVAE_NUM_THREADS=0 is refused."""
    for bad in (0, -3, 1.5):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            with threads.parallel_chunks(threads=bad):
                pass


def test_parallel_chunks_off_or_single_threaded_changes_nothing():
    before = threads.blas_threads()
    for kwargs in ({"enabled": False, "threads": 2}, {"threads": 1}):
        with threads.parallel_chunks(**kwargs) as workers:
            assert workers == 1
            assert threads.blas_threads() == before
            assert threads.chunk_workers([(0, 1)] * 4) == 1


def test_a_model_that_starts_no_thread_ignores_the_thread_variable(monkeypatch):
    """$MICROVAE_NUM_THREADS is read where threads would start: a small MLP, which starts none,
    trains whatever it holds (a bad value once stopped its fit), while a ConvVAE's chunk loops
    still stop at a bad value."""
    from microvae.kernels import numba_threads

    monkeypatch.setitem(numba_threads._state, "threads", None)  # as in a fresh process
    monkeypatch.setenv("MICROVAE_NUM_THREADS", "two")
    with threads.parallel_chunks(enabled=False) as workers:
        assert workers == 1
    x = np.random.default_rng(0).random((8, 16)).astype(np.float32)
    mv.VAE(16, (8,), 2).fit(x, epochs=1, batch_size=4, verbose=0)
    conv = mv.ConvVAE((1, 8, 8), latent_dim=2, variant="strided")
    with pytest.raises(ValueError, match="MICROVAE_NUM_THREADS must be a positive integer, got 'two'"):
        conv.fit(np.zeros((4, 1, 8, 8), np.float32), epochs=1, batch_size=2, verbose=0)
    with pytest.raises(ValueError, match="threads must be a positive integer"):  # an argument is still checked
        with threads.parallel_chunks(enabled=False, threads=0):
            pass


def test_a_model_whose_kernels_would_use_threads_names_a_bad_thread_variable(monkeypatch):
    """The Numba kernels read $MICROVAE_NUM_THREADS too, at the first one large enough to use
    threads: an MLP of 784-512 stops at once, naming the variable (the docstrings said that an
    MLP trains whatever the variable holds)."""
    from microvae.kernels import numba_threads

    monkeypatch.setitem(numba_threads._state, "threads", None)  # as in a fresh process
    monkeypatch.setenv("MICROVAE_NUM_THREADS", "two")
    model = mv.VAE(784, (512,), 20)
    before = model.flat.data.copy()
    with pytest.raises(ValueError, match="MICROVAE_NUM_THREADS must be a positive integer, got 'two'"):
        model.fit(np.zeros((128, 784), np.float32), epochs=1, batch_size=128, verbose=0)
    np.testing.assert_array_equal(model.flat.data, before)


def test_chunk_threads_reads_the_environment(monkeypatch):
    monkeypatch.setenv("MICROVAE_NUM_THREADS", "3")
    assert threads.chunk_threads() == 3
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv("MICROVAE_NUM_THREADS", bad)
        with pytest.raises(ValueError, match="MICROVAE_NUM_THREADS must be a positive integer"):
            threads.chunk_threads()
    monkeypatch.delenv("MICROVAE_NUM_THREADS")
    assert threads.chunk_threads() >= 1


@needs_openblas
def test_map_chunks_runs_every_chunk_once_on_its_fixed_worker():
    chunks = [(s, s + 1) for s in range(7)]
    seen, lock = [], threading.Lock()

    def body(s, e, worker):
        with lock:
            seen.append((s, e, worker, threading.get_ident()))

    with threads.parallel_chunks(threads=3):
        assert threads.map_chunks(chunks, body) == 3
    assert sorted((s, e) for s, e, _, _ in seen) == chunks
    assert all(worker == s % 3 for s, _, worker, _ in seen)  # worker w takes chunks w, w + 3, ...
    idents = {w: {i for _, _, wk, i in seen if wk == w} for w in range(3)}
    assert all(len(v) == 1 for v in idents.values())  # each worker's chunks run in one thread

    seen.clear()
    assert threads.map_chunks(chunks, body) == 1  # outside: in the calling thread, in order
    assert [(s, w, i) for s, _, w, i in seen] == [(s, 0, threading.get_ident()) for s in range(7)]


@needs_openblas
def test_map_chunks_passes_on_a_workers_exception():
    def body(s, e, worker):
        if s == 3:
            raise ValueError("chunk 3 failed")

    with threads.parallel_chunks(threads=2):
        with pytest.raises(ValueError, match="chunk 3 failed"):
            threads.map_chunks([(s, s + 1) for s in range(5)], body)


@needs_openblas
def test_map_chunks_returns_only_when_every_worker_has_finished():
    """A failing worker made map_chunks raise at once while the other worker still ran; a call
    made right after (a retry) could then find its scratch sums written by the stale worker."""
    import time

    finished = []

    def body(s, e, worker):
        if worker == 0:
            raise ValueError("worker 0 failed")
        time.sleep(0.2)
        finished.append(s)

    with threads.parallel_chunks(threads=2) as workers:
        assert workers == 2
        with pytest.raises(ValueError, match="worker 0 failed"):
            threads.map_chunks([(s, s + 1) for s in range(4)], body)
        assert finished == [1, 3]  # worker 1's chunks, done before the error reached the caller


def _forward_backward(layer, x, dy):
    y = layer.forward(x)
    dx = layer.backward(dy)
    return y.copy(), dx.copy(), {k: v.copy() for k, v in layer.grads.items()}


@needs_openblas
@pytest.mark.parametrize("make", [
    lambda: Conv2D(3, 2, 3, padding="same"),              # F ≤ C, stride 1: dX and dW from dY's columns
    lambda: Conv2D(2, 4, 3, stride=2, padding="same"),    # dW from X's columns, dX by col2im
    lambda: Conv2D(4, 4, (3, 2), padding="valid"),
    lambda: Conv2DTranspose(3, 2, 3, stride=2),           # forward by col2im
    lambda: Conv2DTranspose(2, 3, 3, stride=1),           # forward from dY's columns
], ids=["conv-unit-stride", "conv-stride-2", "conv-valid", "convT-stride-2", "convT-stride-1"])
def test_convolutions_on_threads_equal_one_thread(make, monkeypatch):
    """One image per chunk, shared out among 3 workers, gives what one thread gives (to
    rounding: the weight gradients are summed per worker, then across workers)."""
    layer = make().build(dtype="float64", seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, layer.in_channels, 9, 8))
    dy = rng.standard_normal(layer.forward(x).shape)
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)
    serial = _forward_backward(layer, x, dy)
    with threads.parallel_chunks(threads=3) as workers:
        assert workers == 3
        parallel = _forward_backward(layer, x, dy)
        again = _forward_backward(layer, x, dy)
    np.testing.assert_allclose(parallel[0], serial[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(parallel[1], serial[1], rtol=1e-12, atol=1e-12)
    for name in serial[2]:
        np.testing.assert_allclose(parallel[2][name], serial[2][name], rtol=1e-12, atol=1e-12)
    for a, b in zip(parallel[:2], again[:2]):
        np.testing.assert_array_equal(a, b)  # the same every time
    for name in parallel[2]:
        np.testing.assert_array_equal(parallel[2][name], again[2][name])


@needs_openblas
@pytest.mark.parametrize("cls", [Conv2D, Conv2DTranspose])
@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 5), c=st.integers(1, 3), f=st.integers(1, 3), h=st.integers(3, 6), w=st.integers(3, 6),
       stride=st.integers(1, 2), padding=st.sampled_from(["same", "valid"]), seed=st.integers(0, 2**31))
def test_convolution_gradients_on_threads_match_finite_differences(cls, n, c, f, h, w, stride, padding, seed):
    """What fit runs on the CPU: one image per chunk on 3 workers, the weight gradients summed
    per worker and then across workers, checked against finite differences of its own forward
    (itself on the workers) rather than against the one-thread path, which shares its code."""
    options = {"padding": padding} if cls is Conv2D else {}
    layer = cls(c, f, 3, stride=stride, **options).build(dtype="float64", seed=seed % 1000)
    layer.params["b"][...] = np.random.default_rng(seed).uniform(-0.5, 0.5, f)
    x = np.random.default_rng(seed + 1).standard_normal((n, c, h, w))
    with mock.patch.object(conv_module, "CHUNK_BYTES", 1), threads.parallel_chunks(threads=3) as workers:
        assert workers == 3
        result = check_layer(layer, x, seed=seed % 1000)
    assert result.passed(1e-6), result.table()


class _Probe(Callback):
    def __init__(self):
        self.seen = []

    def on_epoch_end(self, model, epoch, record):
        self.seen.append((threads.blas_threads(), threads.chunk_workers([(0, 1)] * 64)))


@needs_openblas
def test_fit_of_a_conv_model_uses_chunk_threads_and_restores_blas(monkeypatch):
    monkeypatch.setenv("MICROVAE_NUM_THREADS", "2")
    before = threads.blas_threads()
    x = np.random.default_rng(0).random((24, 1, 8, 8)).astype(np.float32)
    probe = _Probe()
    mv.ConvVAE(input_shape=(1, 8, 8), latent_dim=2).fit(x, epochs=2, batch_size=8, verbose=0, callbacks=[probe])
    assert probe.seen == [(1, 2), (1, 2)]
    assert threads.blas_threads() == before and threads.chunk_workers([(0, 1)] * 64) == 1

    probe = _Probe()  # a model without convolutions leaves BLAS alone
    mv.VAE(64, (16,), 2).fit(x.reshape(24, -1), epochs=1, batch_size=8, verbose=0, callbacks=[probe])
    assert probe.seen == [(before, 1)]


@needs_openblas
def test_fit_restores_blas_threads_when_training_fails(monkeypatch):
    before = threads.blas_threads()
    x = np.random.default_rng(0).random((16, 1, 8, 8)).astype(np.float32)
    model = mv.ConvVAE(input_shape=(1, 8, 8), latent_dim=2)

    def explode(*args, **kwargs):
        raise RuntimeError("step failed")

    monkeypatch.setattr(model, "_train_batch", explode)
    with pytest.raises(RuntimeError, match="step failed"):
        model.fit(x, epochs=1, batch_size=8, verbose=0)
    assert threads.blas_threads() == before and threads.chunk_workers([(0, 1)] * 64) == 1


@needs_openblas
def test_conv_training_on_threads_is_repeatable(monkeypatch):
    monkeypatch.setenv("MICROVAE_NUM_THREADS", "2")
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)  # several chunks per batch, on both workers
    x = np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32)
    runs = []
    for _ in range(2):
        model = mv.ConvVAE(input_shape=(1, 8, 8), latent_dim=2, seed=3)
        model.fit(x, epochs=2, batch_size=10, verbose=0, seed=5)
        runs.append(model.flat.data.copy() if hasattr(model, "flat") else
                    np.concatenate([f.data.ravel() for f in model.parameter_groups().values()]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_every_loaded_openblas_is_set_to_one_thread_and_restored_to_its_own_count(monkeypatch):
    """Numba can load SciPy (and its own OpenBLAS) in the middle of a run: every copy is set."""
    counts = {"numpy": 2, "scipy": 4}

    def library(name, numpys):
        return (lambda: counts[name], lambda n: counts.__setitem__(name, n), numpys)

    monkeypatch.setattr(threads, "_openblas_libraries", lambda: [library("numpy", True), library("scipy", False)])
    assert threads.blas_threads() == 2
    with threads.parallel_chunks(threads=2) as workers:
        assert workers == 2 and counts == {"numpy": 1, "scipy": 1}
    assert counts == {"numpy": 2, "scipy": 4}
    monkeypatch.setattr(threads, "_openblas_libraries", lambda: [])  # no OpenBLAS: nothing to do, one worker
    with threads.parallel_chunks(threads=2) as workers:
        assert workers == 1 and threads.chunk_workers([(0, 1)] * 4) == 1
    assert threads.blas_threads() is None and threads.set_blas_threads(3) is False


@needs_openblas
def test_numpys_own_openblas_is_the_one_reported():
    libraries = threads._openblas_libraries()
    if not any(numpys for _, _, numpys in libraries):
        pytest.skip("NumPy's OpenBLAS is not in a wheel's numpy.libs directory here")
    assert libraries[0][2] is True


@needs_openblas
def test_a_chunk_loop_inside_a_worker_runs_in_that_worker():
    """A body that itself maps chunks must not wait on the pool it is running in."""
    inner = []

    def body(s, e, worker):
        inner.append(threads.map_chunks([(0, 1), (1, 2), (2, 3)], lambda a, b, w: None))

    with threads.parallel_chunks(threads=2):
        assert threads.map_chunks([(0, 1), (1, 2)], body) == 2
    assert inner == [1, 1]


def _on_one_and_three_workers(monkeypatch, run):
    """run() with MICROVAE_NUM_THREADS 1, then 3 (one image per chunk); asserts that every
    convolution's chunks went to that many workers and that BLAS's count was restored.
    Returns {"1": result, "3": result}."""
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)
    used = []
    real_map = conv_module.map_chunks
    monkeypatch.setattr(conv_module, "map_chunks", lambda chunks, body: used.append(real_map(chunks, body)) or used[-1])
    before = threads.blas_threads()
    results = {}
    for n in ("1", "3"):
        monkeypatch.setenv("MICROVAE_NUM_THREADS", n)
        used.clear()
        results[n] = run()
        assert used and set(used) == {int(n)}  # every convolution's chunks on n workers
        assert threads.blas_threads() == before
    return results


@needs_openblas
def test_conv_inference_runs_on_threads_and_gives_what_one_thread_gives(monkeypatch):
    x = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    model = mv.ConvVAE(input_shape=(1, 8, 8), latent_dim=2, seed=1)

    def run():
        model.backend.seed(0)  # the same ε for both ELBO estimates
        evaluated = model.evaluate(x, seed=0)
        return model.encode(x), model.reconstruct(x), model.elbo(x), [evaluated[k] for k in sorted(evaluated)]

    results = _on_one_and_three_workers(monkeypatch, run)
    for one, three in zip(results["1"], results["3"]):
        np.testing.assert_allclose(three, one, rtol=1e-5, atol=1e-5)


def test_image_chunks_fit_the_buffer_and_give_every_worker_an_equal_share(monkeypatch):
    """Chunks cover the batch in order, each within CHUNK_BYTES; on T workers their number is
    a multiple of T unless every chunk is down to one image (a batch that fits one buffer
    still goes to every worker), and their sizes differ by at most one image."""
    layer = Conv2D(1, 4, 3).build(seed=0)
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1000)
    cases = [(1, 128, 10), (1, 128, 1000), (1, 7, 300), (2, 128, 10), (2, 128, 1000), (2, 128, 333),
             (3, 10, 1000), (3, 2, 1000), (4, 129, 100)]
    for workers, n, bytes_per_image in cases:
        with threads.parallel_chunks(threads=workers) if workers > 1 else threads.parallel_chunks(enabled=False):
            chunks = conv_module._image_chunks(layer, n, bytes_per_image)
        assert chunks[0][0] == 0 and chunks[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
        sizes = [e - s for s, e in chunks]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
        assert max(sizes) * bytes_per_image <= max(conv_module.CHUNK_BYTES, bytes_per_image)
        if len(chunks) < n:
            assert len(chunks) % workers == 0, (workers, n, bytes_per_image, sizes)
        assert len(chunks) >= min(workers, n)
    assert conv_module._image_chunks(layer, 0, 10) == []  # an empty batch: no chunks


@pytest.mark.parametrize("make", [lambda: Conv2D(2, 3, 3), lambda: Conv2D(2, 3, 3, stride=2), lambda: Conv2D(4, 3, 3),
                                  lambda: Conv2DTranspose(3, 2, 3, stride=2), lambda: Conv2DTranspose(3, 2, 3)])
def test_convolutions_take_an_empty_batch(make):
    """An empty batch gives zero gradients, also after a batch that left others behind."""
    layer = make().build(seed=0)
    x = np.random.default_rng(0).random((2, layer.in_channels, 6, 6), dtype=np.float32)
    layer.backward(np.ones_like(layer.forward(x)))
    assert all(np.any(grad != 0) for grad in layer.grads.values())
    y = layer.forward(np.zeros((0, layer.in_channels, 6, 6), np.float32))
    dx = layer.backward(np.zeros_like(y))
    assert y.shape[0] == 0 and dx.shape == (0, layer.in_channels, 6, 6)
    for grad in layer.grads.values():
        np.testing.assert_array_equal(grad, 0)


@needs_openblas
def test_conv_model_metrics_run_on_threads_and_give_what_one_thread_gives(monkeypatch):
    """microvae.metrics (ELBO, IWAE bound, reconstruction error) enter a conv model's thread
    context, as its own inference methods do, and restore BLAS after."""
    from microvae import metrics

    x = np.random.default_rng(1).random((9, 1, 8, 8)).astype(np.float32)
    model = mv.ConvVAE(input_shape=(1, 8, 8), latent_dim=2, seed=2)
    results = _on_one_and_three_workers(monkeypatch, lambda: (
        metrics.elbo(model, x, n_samples=2, batch_size=9), metrics.iwae_bound(model, x, k=3, batch_size=9),
        metrics.reconstruction_error(model, x, batch_size=9)))
    for one, three in zip(results["1"], results["3"]):
        np.testing.assert_allclose(three, one, rtol=1e-5, atol=1e-4)


def test_an_empty_microvae_num_threads_counts_as_unset(monkeypatch):
    """MICROVAE_NUM_THREADS= (set but empty, as shells and CI files leave it) means the default,
    not an error; a fraction is refused like any other non-integer."""
    monkeypatch.delenv("MICROVAE_NUM_THREADS", raising=False)
    default = threads.chunk_threads()
    monkeypatch.setenv("MICROVAE_NUM_THREADS", "")
    assert threads.chunk_threads() == default
    monkeypatch.setenv("MICROVAE_NUM_THREADS", "2.5")
    with pytest.raises(ValueError, match="MICROVAE_NUM_THREADS must be a positive integer, got '2.5'"):
        threads.chunk_threads()


@needs_openblas
def test_the_pool_grows_when_a_later_loop_asks_for_more_workers(monkeypatch):
    """A pool made for 2 workers, then a loop on 3: all 3 run at once (each waits for the
    others here), not 2 at a time in a pool that was never enlarged."""
    monkeypatch.setattr(threads, "_pool", None)
    monkeypatch.setattr(threads, "_pool_size", 0)
    barrier = threading.Barrier(3, timeout=10)
    try:
        with threads.parallel_chunks(threads=2):
            assert threads.map_chunks([(0, 1), (1, 2)], lambda s, e, worker: None) == 2
        with threads.parallel_chunks(threads=3):
            assert threads.map_chunks([(0, 1), (1, 2), (2, 3)], lambda s, e, worker: barrier.wait()) == 3
    finally:
        barrier.abort()
        if threads._pool is not None:
            threads._pool.shutdown(wait=True)


def test_chunk_sums_add_in_worker_order_and_give_zeros_without_terms():
    """Each worker's first term becomes its total (no zeros added); a worker without chunks adds
    nothing; no terms at all give zeros, whatever the buffers held from an earlier step."""
    layer = Conv2D(1, 1, 3).build(dtype="float64", seed=0)
    terms = {0: [1.0, 2.0], 1: [10.0], 2: []}
    for step in range(2):  # the second step reuses the first's buffers, their places traded
        sums = conv_module._ChunkSums(layer, (2,), np.float64, 3)
        for worker, values in terms.items():
            for v in values:
                sums.part(worker)[...] = [v, -v]
                sums.add_part(worker)
        np.testing.assert_array_equal(sums.total(), [13.0, -13.0])
    empty = conv_module._ChunkSums(layer, (2,), np.float64, 3)
    np.testing.assert_array_equal(empty.total(), [0.0, 0.0])


def test_map_chunks_waits_for_every_worker_even_when_interrupted(monkeypatch):
    """A Ctrl-C reaching the caller while it waits must not return before the workers finish:
    a worker still running would write into scratch sums that the next call reuses."""
    import time

    real_wait, calls, done = threads.wait, [], []

    def interrupted_wait(futures, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_wait(futures, *args, **kwargs)

    monkeypatch.setattr(threads, "wait", interrupted_wait)
    monkeypatch.setattr(threads, "_active", 2)

    def body(start, end, worker):
        time.sleep(0.3)
        done.append(start)

    with pytest.raises(KeyboardInterrupt):
        threads.map_chunks([(0, 1), (1, 2)], body)
    assert sorted(done) == [0, 1]


@needs_openblas
def test_a_second_python_thread_entering_parallel_chunks_is_refused(monkeypatch):
    """The chunk threads and BLAS's thread count belong to the process: a second thread that
    entered while another is inside would change them under it (two ConvVAEs in two threads
    gave other parameters, silently). It is refused; its own chunk loops outside stay in it."""
    inside, leave, seen = threading.Event(), threading.Event(), {}

    def first():
        with threads.parallel_chunks(threads=2):
            with threads.parallel_chunks(threads=2) as nested:  # nesting in the same thread is fine
                seen["nested"] = nested
            inside.set()
            leave.wait(30)

    owner = threading.Thread(target=first)
    owner.start()
    try:
        assert inside.wait(30)
        with pytest.raises(RuntimeError, match="already running on microvae's chunk threads in another Python thread"):
            with threads.parallel_chunks(threads=2):
                pass
        assert threads.chunk_workers([(0, 1), (1, 2)]) == 1  # another thread's chunk loop: in its own thread
        with threads.parallel_chunks(enabled=False) as workers:  # a model without convolutions: nothing to refuse
            seen["off"] = workers
    finally:
        leave.set()
        owner.join(30)
    assert seen["nested"] == 2 and seen["off"] == 1  # its chunk loops run in it, as chunk_workers says
    with threads.parallel_chunks(threads=2) as workers:  # once the first has left, a second thread may enter
        assert workers == 2 and threads.chunk_workers([(0, 1), (1, 2)]) == 2
    assert threads._active == 1 and threads._owner is None


@needs_openblas  # without it parallel_chunks changes nothing and makes no pool
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork here")
def test_a_forked_child_runs_a_conv_model_after_the_parent_did():
    """fork copies the chunk pool but not its threads: a child's first convolution waited
    forever on the parent's pool. The child makes a pool of its own."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import faulthandler, os, sys
        import numpy as np
        import microvae as mv
        x = (np.random.default_rng(0).random((16, 1, 8, 8)) > 0.5).astype(np.float32)
        model = mv.ConvVAE((1, 8, 8), latent_dim=2, seed=0)
        model.fit(x, epochs=1, batch_size=8, verbose=0)  # the parent's pool and its threads
        assert mv.threads._pool is not None
        mu = model.encode(x)[0]
        pid = os.fork()
        if pid == 0:
            faulthandler.dump_traceback_later(60, exit=True)  # a hang ends the child with its stacks
            same = np.array_equal(model.encode(x)[0], mu)
            model.fit(x, epochs=1, batch_size=8, verbose=0)
            os._exit(0 if same else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    env = dict(os.environ, MICROVAE_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_openblas
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork here")
def test_a_child_forked_while_another_thread_is_inside_parallel_chunks_starts_outside():
    """That thread is not in the child (fork copies the forking thread only) and would never
    leave: the child refused every model with convolutions as "already running in another
    thread", with BLAS left on one thread. It starts outside, with BLAS's counts put back."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import faulthandler, os, sys, threading
        import numpy as np
        import microvae as mv
        from microvae import threads
        threads.set_blas_threads(2)
        inside, leave = threading.Event(), threading.Event()
        def owner():
            with threads.parallel_chunks(threads=2):
                inside.set()
                leave.wait(60)
        worker = threading.Thread(target=owner)
        worker.start()
        assert inside.wait(60) and threads.blas_threads() == 1 and threads._active == 2
        pid = os.fork()
        if pid == 0:
            faulthandler.dump_traceback_later(60, exit=True)
            ok = threads._active == 1 and threads._owner is None and threads.blas_threads() == 2
            x = (np.random.default_rng(0).random((4, 1, 8, 8)) > 0.5).astype(np.float32)
            model = mv.ConvVAE((1, 8, 8), latent_dim=2, seed=0)
            with threads.parallel_chunks(threads=2) as workers:  # refused before
                ok = ok and workers == 2
            model.fit(x, epochs=1, batch_size=2, verbose=0)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        leave.set()
        worker.join(60)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    env = dict(os.environ, MICROVAE_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
