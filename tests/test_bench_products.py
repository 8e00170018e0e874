"""bench/bench_products.py: its options, its list of products (the BLAS floor's work per step),
its report when a framework is absent or a worker fails, and one real run of the NumPy worker.

Nothing here is timed and no speed is asserted: the report is checked with stand-in workers
that answer fixed figures; the one real run (NumPy alone, two repeats) takes about a second.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from _bench import BENCH, ROOT, load_bench

CRASH = "worker exited with 1: Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom"
# (in, out) of every Dense layer, written out here rather than taken from bench_vae.py
LAYERS = {"textbook": [(784, 512), (512, 256), (256, 4), (2, 256), (256, 512), (512, 784)],
          "examples": [(784, 400), (400, 40), (20, 400), (400, 784)]}


@pytest.fixture()
def bench(monkeypatch):
    """bench_products.py, loaded fresh, with starting a real worker refused."""
    module = load_bench("bench_products")

    def no_worker(*args, **kwargs):
        raise AssertionError("a benchmark worker was started")

    monkeypatch.setattr(module.C, "run_worker", no_worker)
    return module


def fake_workers(module, monkeypatch, answers):
    """Replace run_worker: framework -> a result, or a float (that many µs for every product).
    Returns the list of frameworks started, in order."""
    started = []

    def run_worker(script, args, *rest, **kw):
        fw = args[args.index("--worker") + 1]
        started.append(fw)
        answer = answers[fw]
        if not isinstance(answer, float):
            return answer
        hidden = tuple(int(h) for h in args[args.index("--hidden") + 1].split(","))
        n = len(module.step_products(hidden, int(args[args.index("--latent") + 1])))
        return {"median_us": [answer] * n, "overhead_us": 1.0, "kernels": {"what": fw}, "wall_s": 0.1}

    monkeypatch.setattr(module.C, "run_worker", run_worker)
    return started


# --------------------------------------------------------------------------- options
BAD_OPTIONS = [
    (["--repeats", "0"], "--repeats"),
    (["--repeats", "-3"], "--repeats"),
    (["--rounds", "0"], "--rounds"),
    (["--threads", "0"], "--threads"),
    (["--frameworks", ","], "--frameworks"),
    (["--frameworks", "numpy,microvae"], "--frameworks"),
]


@pytest.mark.parametrize("argv,option", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_out_of_range_options_are_refused_with_status_2(bench, capsys, argv, option):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: must" in err or f"argument {option}: unknown" in err, err


def test_an_empty_framework_list_exits_2_from_the_command_line():
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "bench_products.py"), "--frameworks", ""],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: argument --frameworks: must name at least one framework" in proc.stderr
    assert proc.stdout == ""


# --------------------------------------------------------------------------- the products
def test_textbook_products_are_the_step_in_training_order(bench):
    shapes = [(p["kind"], p["m"], p["k"], p["n"]) for p in bench.step_products((512, 256), 2)]
    forward = [("X·W", 128, i, o) for i, o in LAYERS["textbook"]]
    backward = [("Xᵀ·dY", 512, 128, 784), ("dY·Wᵀ", 128, 784, 512), ("Xᵀ·dY", 256, 128, 512), ("dY·Wᵀ", 128, 512, 256),
                ("Xᵀ·dY", 2, 128, 256), ("dY·Wᵀ", 128, 256, 2), ("Xᵀ·dY", 256, 128, 4), ("dY·Wᵀ", 128, 4, 256),
                ("Xᵀ·dY", 512, 128, 256), ("dY·Wᵀ", 128, 256, 512), ("Xᵀ·dY", 784, 128, 512)]
    assert shapes == forward + backward  # 17: no input gradient for the encoder's first layer


def test_the_own_kernel_floor_runs_the_same_products_through_microvaes_kernels(bench):
    """With a backend's kernels the floor calls matmul, matmul_tn and matmul_nt as Dense does
    (X·W, then Xᵀ·dY from X and dY as stored, dY·Wᵀ from dY and W as stored), for the same
    products in the same order, with the same FLOP count; and they give the BLAS floor's
    results (the operands are drawn from the same seed)."""
    import types

    import bench_vae  # importable once the fixture has put bench/ on sys.path
    import microvae as mv

    kernels = mv.get_backend("numpy").kernels
    done = []

    def recording(kind, kernel):
        def call(a, b, out):
            m, n = (a.shape[1], b.shape[1]) if kind == "tn" else (a.shape[0], b.shape[0] if kind == "nt" else b.shape[1])
            assert out.shape == (m, n) and a.flags.c_contiguous and b.flags.c_contiguous
            done.append((kind, *a.shape, *b.shape))
            return kernel(a, b, out)
        return call

    fake = types.SimpleNamespace(matmul=recording("nn", kernels.matmul), matmul_tn=recording("tn", kernels.matmul_tn),
                                 matmul_nt=recording("nt", kernels.matmul_nt))
    own_epoch, own_flops = bench_vae.matmul_floor(300, (512, 256), 2, 0, kernels=fake)
    blas_epoch, blas_flops = bench_vae.matmul_floor(300, (512, 256), 2, 0)
    assert own_flops == blas_flops and own_epoch.nbytes == blas_epoch.nbytes
    own_epoch()
    layers = LAYERS["textbook"]
    expected = []
    for b in (128, 128, 44):
        expected += [("nn", b, i, i, o) for i, o in layers]
        for li in range(len(layers) - 1, -1, -1):
            i, o = layers[li]
            expected.append(("tn", b, i, b, o))
            if li != 0:
                expected.append(("nt", b, o, i, o))
    assert done == expected
    blas_epoch()
    # every output of both floors, from the last batch of each size: Y = X·W, dX = dY·Wᵀ, dW = Xᵀ·dY
    own, blas = own_epoch.arrays, blas_epoch.arrays
    compared = 0
    for b in (128, 44):
        for (x, y, dy, dx), (x_ref, y_ref, dy_ref, dx_ref), (i, o) in zip(own["batches"][b], blas["batches"][b], layers):
            assert np.array_equal(x, x_ref) and np.array_equal(dy, dy_ref)  # the same operands
            np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-3)
            if i != 784:  # the first layer's input gradient is never formed
                np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-3)
            compared += 1
    for (w, dw), (w_ref, dw_ref) in zip(own["weights"], blas["weights"]):  # from the last batch (44 rows)
        assert np.array_equal(w, w_ref)
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-4, atol=1e-3)
        compared += 1
    assert compared == 3 * len(layers)


@pytest.mark.parametrize("size", ["textbook", "examples"])
def test_products_add_up_to_the_floors_work_per_full_batch(bench, size):
    spec = bench.SIZES[size]
    products = bench.step_products(spec["hidden"], spec["latent"])
    layers = LAYERS[size]
    assert len(products) == 3 * len(layers) - 1
    assert [p for p in products if p["kind"] == "dY·Wᵀ" and p["layer"] == f"enc {layers[0][0]}→{layers[0][1]}"] == []
    work = sum(bench.flops(p) for p in products)
    assert work == 2 * 128 * sum(i * o * (2 if li == 0 else 3) for li, (i, o) in enumerate(layers))
    import bench_vae  # importable once the fixture has put bench/ on sys.path

    _, floor_flops = bench_vae.matmul_floor(128, spec["hidden"], spec["latent"], 0)  # one full batch
    assert work == floor_flops


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("kind", ["X·W", "Xᵀ·dY", "dY·Wᵀ"])
def test_each_framework_computes_the_product_of_the_stored_operands(bench, framework, kind):
    """Transposed operands are views of arrays stored as training stores them; every
    framework's call computes the same (m×n) product from them."""
    if framework != "numpy":
        pytest.importorskip(framework)
    p = {"kind": kind, "m": 6, "k": 5, "n": 3}
    a, b, ta, tb = bench.operands(p, np.random.default_rng(1))
    assert a.shape == ((5, 6) if ta else (6, 5)) and b.shape == ((3, 5) if tb else (5, 3))
    expected = (a.T if ta else a) @ (b.T if tb else b)
    got = np.asarray(getattr(bench, f"{framework}_call")(p, np.random.default_rng(1))())
    assert got.shape == (6, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- the report
def test_totals_ratios_and_epoch_row_from_fixed_figures(bench, monkeypatch, capsys):
    fake_workers(bench, monkeypatch, {"numpy": 100.0, "torch": 50.0, "jax": 200.0})
    bench.main(["--size", "textbook", "--rounds", "1"])
    out = capsys.readouterr().out
    # 17 products of 100 µs; NumPy ÷ PyTorch 2, NumPy ÷ JAX 0.5; 716.31 MFLOP per step
    assert "| **total per step** | 17 products |  | 716.31 | 1700.0 | 850.0 | 3400.0 | 2.00 | 0.50 |" in out, out
    assert "| **per epoch, s** | ≈ 469 × step |  | 335949 | 0.80 | 0.40 | 1.59 | 2.00 | 0.50 |" in out, out
    assert "None" not in out and "skipped" not in out


def test_absent_references_leave_numpy_alone_and_say_why(bench, monkeypatch, capsys):
    started = fake_workers(bench, monkeypatch, {"numpy": 10.0, "torch": {"skipped": "torch not importable (ImportError: x)"},
                                                "jax": {"skipped": "jax not importable (ImportError: y)"}})
    bench.main(["--size", "examples", "--rounds", "3"])  # no SystemExit: skipping is not failing
    out = capsys.readouterr().out
    assert "| NumPy µs |" in out and "PyTorch µs" not in out and "NumPy ÷" not in out
    assert "- PyTorch: skipped — torch not importable (ImportError: x)" in out
    assert "- JAX: skipped — jax not importable (ImportError: y)" in out
    assert started.count("numpy") == 3 and started.count("torch") == 1 and started.count("jax") == 1


def test_nothing_ran_says_so_and_never_prints_none(bench, monkeypatch, capsys):
    fake_workers(bench, monkeypatch, {"torch": {"skipped": "torch not importable"}, "jax": {"skipped": "jax not importable"}})
    bench.main(["--size", "textbook", "--frameworks", "torch,jax"])
    out = capsys.readouterr().out
    assert "No framework ran." in out and "- JAX: skipped — jax not importable" in out and "None" not in out


def test_a_failing_worker_makes_main_exit_non_zero_with_one_line(bench, monkeypatch, capsys):
    fake_workers(bench, monkeypatch, {"numpy": {"error": CRASH, "wall_s": 1.0}, "torch": 50.0})
    with pytest.raises(SystemExit) as exc:
        bench.main(["--size", "textbook", "--frameworks", "numpy,torch", "--rounds", "1"])
    code = exc.value.code
    assert isinstance(code, str) and "\n" not in code, code
    assert "numpy (textbook)" in code and "worker exited with 1" in code and "ValueError: boom" in code
    assert "- NumPy: FAILED" in capsys.readouterr().out  # the report is printed first


def test_numpy_worker_smoke_run_exits_0():
    """The one real run: the NumPy worker alone, examples size, two repeats, one round."""
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "bench_products.py"), "--size", "examples",
                           "--frameworks", "numpy", "--repeats", "2", "--rounds", "1"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    report = proc.stdout.split("### Which kernels")[0]
    assert "| **total per step** | 11 products |" in report and "None" not in report
    assert "- **NumPy**" in proc.stdout


def recording_workers(module, monkeypatch, answers):
    """Replace run_worker: framework -> a list of per-round answers (µs for every product, and
    the overhead µs), consumed one per call; returns the calls as (framework, args, threads)."""
    calls, left = [], {fw: list(a) for fw, a in answers.items()}

    def run_worker(script, args, threads=None, **kw):
        fw = args[args.index("--worker") + 1]
        calls.append((fw, args, threads))
        us, overhead = left[fw].pop(0)
        hidden = tuple(int(h) for h in args[args.index("--hidden") + 1].split(","))
        n = len(module.step_products(hidden, int(args[args.index("--latent") + 1])))
        return {"median_us": [us] * n, "overhead_us": overhead, "kernels": {"what": fw}, "wall_s": 0.1}

    monkeypatch.setattr(module.C, "run_worker", run_worker)
    return calls


def test_rounds_alternate_their_order_and_every_worker_gets_the_threads(bench, monkeypatch, capsys):
    """Rounds run A B C, C B A; every worker gets --threads and --repeats; the GFLOP/s columns
    are the step's work over each framework's time; each round's step total is listed."""
    calls = recording_workers(bench, monkeypatch, {"numpy": [(1000.0, 1.0)] * 2, "torch": [(500.0, 1.0)] * 2,
                                                   "jax": [(2000.0, 1.0), (3000.0, 1.0)]})
    bench.main(["--size", "textbook", "--rounds", "2", "--threads", "3", "--repeats", "7"])
    out = capsys.readouterr().out
    assert [fw for fw, _, _ in calls] == ["numpy", "torch", "jax", "jax", "torch", "numpy"]
    for _, args, threads in calls:
        assert threads == 3 and args[args.index("--threads") + 1] == "3" and args[args.index("--repeats") + 1] == "7"
    # 716.31 MFLOP per step: / 17000 µs = 42.1 GFLOP/s, / 8500 = 84.3, / 42500 (JAX: median of 2000 and 3000) = 16.9;
    # an epoch of 60000 images is 469 steps
    assert ("| **total per step** | 17 products |  | 716.31 | 17000.0 | 8500.0 | 42500.0 | 2.00 | 0.40 | 42.1 | 84.3 | 16.9 |"
            in out), out
    assert "| **per epoch, s** | ≈ 469 × step |  | 335949 | 7.97 | 3.99 | 19.93 | 2.00 | 0.40 |" in out, out
    assert "Step total per round (µs): NumPy 17000, 17000; PyTorch 8500, 8500; JAX 34000, 51000" in out, out


def test_each_figure_is_the_median_over_rounds_of_the_round_medians(bench, monkeypatch, capsys):
    """Per product and for the per-call overhead: the median over rounds (not the mean, not
    the first round) of what each round's worker answered."""
    recording_workers(bench, monkeypatch, {"numpy": [(100.0, 1.0), (300.0, 9.0), (110.0, 2.0)]})
    bench.main(["--size", "textbook", "--frameworks", "numpy", "--rounds", "3"])
    out = capsys.readouterr().out
    assert "| **total per step** | 17 products |  | 716.31 | 1870.0 | 383.1 |" in out, out  # 17 × 110 µs
    assert "Per-call overhead (a 1×1 · 1×1 product timed the same way; it is inside every figure above): NumPy 2.0 µs." in out
    assert "Step total per round (µs): NumPy 1700, 5100, 1870" in out, out


def test_time_products_medians_after_the_untimed_warm_up(bench, monkeypatch):
    """A worker's figure per product is the median of its timed calls, taken after the untimed
    warm-up passes, product by product in order; the overhead the median of the 1×1 product's.
    A fake clock: every warm-up call takes 1 s, then product j's calls take 1, 2, 9 (×(j+2)) µs,
    the 1×1 product's 3, 4, 20 µs."""
    clock = [0.0]
    monkeypatch.setattr(bench, "time", type("T", (), {"perf_counter": staticmethod(lambda: clock[0])}))

    def make_call(p, rng):
        pattern = [3.0, 4.0, 20.0] if p["m"] == 1 else [1.0 * p["m"], 2.0 * p["m"], 9.0 * p["m"]]
        made = [0]

        def call():
            k = made[0]
            made[0] += 1
            clock[0] += 1.0 if k < bench.WARMUP_STEPS else pattern[(k - bench.WARMUP_STEPS) % 3] * 1e-6
        return call

    products = [{"kind": "X·W", "m": 2, "k": 5, "n": 1}, {"kind": "X·W", "m": 3, "k": 7, "n": 1}]
    res = bench.time_products(make_call, products, repeats=3)
    assert res["median_us"] == pytest.approx([4.0, 6.0])
    assert res["overhead_us"] == pytest.approx(4.0)


def test_the_floor_epoch_runs_exactly_the_products_it_counts(bench, monkeypatch):
    """bench_vae's floor (300 images: batches 128, 128, 44): every product of every batch, no
    input gradient for the encoder's first layer, and the FLOP figure is the work its matmuls do."""
    import bench_vae  # importable once the fixture has put bench/ on sys.path

    assert bench_vae.C.epoch_batches(300) == [128, 128, 44] and bench_vae.C.epoch_batches(256) == [128, 128]
    one_epoch, counted = bench_vae.matmul_floor(300, (512, 256), 2, 0)
    done, real = [], np.matmul

    def matmul(a, b, out=None):
        done.append((a.shape[0], a.shape[1], b.shape[1]))
        assert out is not None and out.shape == (a.shape[0], b.shape[1])
        return real(a, b, out=out)

    monkeypatch.setattr(np, "matmul", matmul)
    one_epoch()
    layers = LAYERS["textbook"]
    assert len(done) == 3 * (3 * len(layers) - 1)
    per_batch = lambda b: [(b, i, o) for i, o in layers]  # noqa: E731 - forward, then backward from the last layer
    expected = []
    for b in (128, 128, 44):
        expected += per_batch(b)
        for li in range(len(layers) - 1, -1, -1):
            i, o = layers[li]
            expected.append((i, b, o))
            if li != 0:
                expected.append((b, o, i))
    assert done == expected
    assert counted == sum(2 * m * k * n for m, k, n in done)
    # what its operands hold, which the microvae worker's memory figures include: each layer's
    # weight and weight gradient, and X, Y, dY, dX for each batch size (128 and 44)
    weights = sum(2 * i * o for i, o in layers)
    activations = sum(b * (2 * i + 2 * o) for b in (128, 44) for i, o in layers)
    assert one_epoch.nbytes == 4 * (weights + activations)
