"""Where the CPU kernels may start Numba's threads (kernels/numba_threads.py), and that the
kernels which use them (the Dense products, the optimizer updates) honour it."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from microvae import threads
from microvae.kernels import cpu, matmul_cpu, numba_threads


@pytest.fixture
def threads_allowed(monkeypatch):
    monkeypatch.setitem(numba_threads._state, "threads", True)
    monkeypatch.setitem(numba_threads._state, "layer_checked", True)


@pytest.mark.usefixtures("threads_allowed")
def test_a_microvae_worker_thread_runs_kernels_serially(monkeypatch):
    assert numba_threads.use_threads()
    monkeypatch.setattr(threads._inside, "worker", True, raising=False)
    assert not numba_threads.use_threads()


@pytest.mark.usefixtures("threads_allowed")
def test_kernels_are_serial_while_chunk_loops_have_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "_active", 2)  # inside parallel_chunks (a ConvVAE's fit)
    assert not numba_threads.use_threads()


@pytest.mark.parametrize("setting, threaded", [("1", False), ("2", True)])
def test_microvae_num_threads_decides_whether_kernels_use_threads(setting, threaded, monkeypatch):
    monkeypatch.setenv("MICROVAE_NUM_THREADS", setting)
    monkeypatch.setitem(numba_threads._state, "threads", None)  # not decided yet
    monkeypatch.setattr(numba_threads.nb.config, "NUMBA_NUM_THREADS", 2)
    assert numba_threads.use_threads() is threaded


def test_numba_num_threads_of_one_keeps_kernels_serial(monkeypatch):
    monkeypatch.setenv("MICROVAE_NUM_THREADS", "2")
    monkeypatch.setitem(numba_threads._state, "threads", None)
    monkeypatch.setattr(numba_threads.nb.config, "NUMBA_NUM_THREADS", 1)
    assert not numba_threads.use_threads()


def _recorder(calls, name):
    return lambda *args: calls.append(name)


@pytest.mark.usefixtures("threads_allowed")
def test_run_calls_the_threaded_driver_only_where_threads_may_run(monkeypatch):
    calls = []
    numba_threads.run(_recorder(calls, "threaded"), _recorder(calls, "serial"))
    monkeypatch.setattr(threads, "_active", 2)
    numba_threads.run(_recorder(calls, "threaded"), _recorder(calls, "serial"))
    assert calls == ["threaded", "serial"]


@pytest.mark.parametrize("layer, stays_threaded", [("workqueue", False), ("omp", True), ("tbb", True)])
def test_only_a_thread_safe_threading_layer_keeps_kernels_threaded(layer, stays_threaded, monkeypatch):
    """Numba's workqueue layer aborts when two threads start parallel loops at once; the layer is
    known only after a first parallel loop, so the first threaded call checks it, once."""
    monkeypatch.setitem(numba_threads._state, "threads", True)
    monkeypatch.setitem(numba_threads._state, "layer_checked", False)
    monkeypatch.setattr(numba_threads.nb, "threading_layer", lambda: layer)
    calls = []
    numba_threads.run(_recorder(calls, "threaded"), _recorder(calls, "serial"))
    numba_threads.run(_recorder(calls, "threaded"), _recorder(calls, "serial"))
    assert numba_threads._state["layer_checked"]
    assert numba_threads._state["threads"] is stays_threaded
    assert calls == ["threaded", "threaded" if stays_threaded else "serial"]


@pytest.mark.usefixtures("threads_allowed")
@pytest.mark.parametrize("kernel, threaded_driver, serial_driver", [
    ("adam_update", "_adam_update_threads", "_adam_update"),
    ("sgd_update", "_sgd_update_threads", "_sgd_update"),
])
def test_optimizer_updates_use_threads_from_threaded_update_elements_on(kernel, threaded_driver, serial_driver, monkeypatch):
    calls = []
    monkeypatch.setattr(cpu, threaded_driver, _recorder(calls, "threaded"))
    monkeypatch.setattr(cpu, serial_driver, _recorder(calls, "serial"))
    update = getattr(cpu, kernel)
    extra = (0.9, 0.999, 1e-3, 1e-8) if kernel == "adam_update" else (0.1, 0.9)
    states = 3 if kernel == "adam_update" else 2
    for n in (cpu.THREADED_ELEMENTS - 1, cpu.THREADED_ELEMENTS):
        update(*(np.zeros(n, np.float32) for _ in range(states + 1)), *extra)
    monkeypatch.setattr(threads, "_active", 2)
    update(*(np.zeros(cpu.THREADED_ELEMENTS, np.float32) for _ in range(states + 1)), *extra)
    assert calls == ["serial", "threaded", "serial"]


@pytest.mark.usefixtures("threads_allowed")
def test_the_bernoulli_loss_uses_threads_from_threaded_elements_on(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu, "_bernoulli_nll_f32_threads", _recorder(calls, "threaded"))
    monkeypatch.setattr(cpu, "_bernoulli_nll_f32", _recorder(calls, "serial"))
    cols = 784
    for rows in (cpu.THREADED_ELEMENTS // cols, cpu.THREADED_ELEMENTS // cols + 1):
        logits = np.zeros((rows, cols), np.float32)
        cpu.bernoulli_nll_logits(logits, logits, 1.0, np.empty_like(logits), np.empty(rows))
    assert calls == ["serial", "threaded"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork here")
def test_a_forked_child_runs_the_threaded_kernels_serially_without_aborting():
    """GNU OpenMP aborts a forked child that starts a parallel loop: the child goes serial."""
    script = textwrap.dedent("""
        import os, sys
        import numpy as np
        from microvae.kernels import cpu, numba_threads
        a = np.ones((128, 784), np.float32); b = np.ones((784, 512), np.float32)
        out = np.empty((128, 512), np.float32)
        n = 3 * cpu.THREADED_ELEMENTS
        param, grad, m, v = np.zeros(n, np.float32), np.ones(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
        cpu.matmul(a, b, out)  # threads in the parent
        cpu.adam_update(param, grad, m, v, 0.9, 0.999, 1e-3, 1e-8)
        assert numba_threads._state["threads"], numba_threads._state
        pid = os.fork()
        if pid == 0:
            out[...] = 0
            cpu.matmul(a, b, out)
            cpu.adam_update(param, grad, m, v, 0.9, 0.999, 1e-3, 1e-8)
            good = (out == 784).all() and (m == np.float32(0.9) * np.float32(0.1) + np.float32(0.1)).all()
            os._exit(0 if good and not numba_threads._state["threads"] else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    env = dict(os.environ, MICROVAE_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Terminating" not in done.stderr


def test_the_product_kernels_dispatch_through_numba_threads(monkeypatch):
    """matmul_cpu keeps no policy of its own: serial where numba_threads says so."""
    monkeypatch.setattr(numba_threads, "use_threads", lambda: False)
    calls = []
    monkeypatch.setattr(matmul_cpu, "_product_serial", _recorder(calls, "serial"))
    monkeypatch.setattr(matmul_cpu, "_product_threads", _recorder(calls, "threaded"))
    a, b = np.ones((128, 784), np.float32), np.ones((784, 512), np.float32)
    matmul_cpu.matmul(a, b, np.empty((128, 512), np.float32))
    assert calls == ["serial"]


def test_the_first_threaded_call_runs_alone_and_a_layer_that_takes_one_caller_goes_serial(monkeypatch):
    """Numba's threading layer is known only after a first parallel loop; Numba's workqueue
    aborts the process when two threads call into it at once, so two Python threads' first
    calls (two models trained side by side from the start) must not both reach it: the first
    runs alone, and under workqueue every call after it is serial."""
    import threading
    import time

    monkeypatch.setitem(numba_threads._state, "threads", True)
    monkeypatch.setitem(numba_threads._state, "layer_checked", False)
    monkeypatch.setattr(numba_threads.nb, "threading_layer", lambda: "workqueue")
    inside, most, calls = [0], [0], []
    lock = threading.Lock()

    def threaded():
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.2)  # long enough for the other thread to arrive while this one runs
        with lock:
            inside[0] -= 1
        calls.append("threaded")

    start = threading.Barrier(2)

    def caller():
        start.wait()
        numba_threads.run(threaded, lambda: calls.append("serial"))

    workers = [threading.Thread(target=caller) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert most[0] == 1 and sorted(calls) == ["serial", "threaded"], (most, calls)
    assert numba_threads._state == {"threads": False, "layer_checked": True}
