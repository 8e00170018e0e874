"""The benchmark scripts' options and exit codes (bench/*.py): counts out of range, an empty
framework list, footers that never print None, and a failing worker making the parent fail.

No benchmark is run here: the scripts' ``main`` is called with the worker launchers replaced
by stand-ins (a test that reaches a real worker by mistake fails at once), except one smoke
run of the BLAS floor on 300 images (about a second).
"""

import os
import subprocess
import sys
import types

import numpy as np
import pytest
from _absent import make_absent
from _bench import BENCH, ROOT, load_bench

SCRIPTS = ("bench_vae", "bench_convvae", "bench_memory", "bench_startup")
CRASH = "worker exited with 1: Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom"


@pytest.fixture()
def scripts(monkeypatch):
    """The four scripts, loaded fresh, with every way of starting a worker refused."""
    modules = {name: load_bench(name) for name in SCRIPTS}
    common = modules["bench_vae"].C

    def no_worker(*args, **kwargs):
        raise AssertionError("a benchmark worker was started")

    for name in ("run_worker", "run_frameworks", "run_lockstep_round"):
        monkeypatch.setattr(common, name, no_worker)
    return modules


BAD_OPTIONS = [
    ("bench_vae", ["--limit", "0"], "--limit"),
    ("bench_vae", ["--limit", "-5"], "--limit"),
    ("bench_vae", ["--floor-repeats", "0"], "--floor-repeats"),
    ("bench_vae", ["--threads", "0"], "--threads"),
    ("bench_vae", ["--rounds", "0"], "--rounds"),
    ("bench_vae", ["--epochs", "0"], "--epochs"),
    ("bench_vae", ["--frameworks", ","], "--frameworks"),
    ("bench_vae", ["--frameworks", "microvae,nope"], "--frameworks"),
    ("bench_convvae", ["--limit", "0"], "--limit"),
    ("bench_convvae", ["--threads", "0"], "--threads"),
    ("bench_convvae", ["--rounds", "0"], "--rounds"),
    ("bench_convvae", ["--latent", "0"], "--latent"),
    ("bench_convvae", ["--frameworks", ""], "--frameworks"),
    ("bench_memory", ["--limit", "0"], "--limit"),
    ("bench_memory", ["--limit", "-5"], "--limit"),
    ("bench_memory", ["--threads", "0"], "--threads"),
    ("bench_memory", ["--epochs", "2"], "--epochs"),
    ("bench_startup", ["--imports", "0"], "--imports"),
    ("bench_startup", ["--step-runs", "1"], "--step-runs"),
    ("bench_startup", ["--threads", "0"], "--threads"),
]


@pytest.mark.parametrize("script,argv,option", BAD_OPTIONS, ids=[f"{s}{' '.join(a)}" for s, a, _ in BAD_OPTIONS])
def test_out_of_range_options_are_refused_by_argparse(scripts, capsys, script, argv, option):
    with pytest.raises(SystemExit) as exc:
        scripts[script].main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: must" in err or (option == "--frameworks" and f"argument {option}: unknown" in err), err


def test_count_type_accepts_the_range_and_names_the_minimum(scripts):
    count = scripts["bench_vae"].C.count
    assert count(1)("3") == 3 and count(2)("2") == 2
    import argparse

    for bad in ("0", "-1", "1.5", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=">= 2"):
            count(2)(bad)


def test_framework_list_keeps_the_order_and_drops_repeats(scripts):
    parse = scripts["bench_vae"].C.framework_list(("microvae", "torch", "jax"))
    assert parse(" jax, microvae ,jax,") == ["jax", "microvae"]


@pytest.mark.parametrize("script", ["bench_vae", "bench_convvae"])
def test_an_empty_framework_list_exits_2_from_the_command_line(script):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, f"{script}.py"), "--frameworks", ","],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: argument --frameworks: must name at least one framework" in proc.stderr
    assert proc.stdout == ""


# --------------------------------------------------------------------------- footers
@pytest.mark.parametrize("script,argv", [("bench_vae", ["--size", "textbook", "--frameworks", "torch,jax"]),
                                         ("bench_convvae", ["--frameworks", "torch"])])
def test_footer_never_prints_none_when_nothing_ran(scripts, monkeypatch, capsys, script, argv):
    module = scripts[script]
    monkeypatch.setattr(module.C, "run_frameworks",
                        lambda _s, fws, *args, **kw: {fw: {"skipped": f"{fw} not importable"} for fw in fws})
    module.main(argv)
    out = capsys.readouterr().out
    footer = [line for line in out.splitlines() if "batch 128" in line]
    assert footer and "no training or test images (no framework ran)" in footer[0], out
    assert "None" not in out


def test_footer_with_the_floor_alone_names_its_training_images(scripts, monkeypatch, capsys):
    module = scripts["bench_vae"]
    floor = {"framework": "floor", "epoch_s": [0.1, 0.1], "gflop_per_epoch": 1.0, "gflops": 10.0, "n_train": 300}
    monkeypatch.setattr(module.C, "run_frameworks",
                        lambda _s, fws, *args, **kw: {"floor": module.C.merge_rounds([floor])})
    module.main(["--size", "textbook", "--frameworks", "floor", "--epochs", "2"])
    out = capsys.readouterr().out
    assert "300 training / no test images (no framework evaluated one)" in out and "None" not in out


@pytest.mark.parametrize("lockstep,epochs,repeats,expected", [(True, 10, 6, "10"), (True, 3, 6, "6"), (False, 10, 6, "6")])
def test_the_floor_worker_takes_a_turn_beside_every_epoch_under_lockstep(scripts, monkeypatch, lockstep, epochs,
                                                                          repeats, expected):
    """Paired ratios stop at the shorter list, so under --lockstep the floor worker runs at
    least --epochs epochs, or its paired ratio would cover epochs 2..--floor-repeats only."""
    module = scripts["bench_vae"]
    seen = []
    monkeypatch.setattr(module.C, "run_frameworks", lambda _s, fws, worker_args, *rest: seen.append(worker_args) or {})
    a = types.SimpleNamespace(lockstep=lockstep, epochs=epochs, floor_repeats=repeats)
    module.run_size(a, "textbook", ["microvae", "floor"])
    args = seen[0]
    assert args[args.index("--floor-repeats") + 1] == expected


@pytest.mark.parametrize("own_mib, total", [(None, "16.2"), (16.25, "32.5")])
def test_the_memory_line_says_it_includes_the_paired_floors_operands(scripts, capsys, own_mib, total):
    """The microvae worker allocates the paired floors' operands (BLAS and, in newer results,
    its own kernels') in its own process, so its memory figures include them; the report says
    how much in all, and where to measure without."""
    module = scripts["bench_vae"]
    result = {"framework": "microvae", "epoch_s": [2.0, 1.0, 1.0], "memory": _mem(3),
              "paired_floor": {"epoch_s": [0.5, 0.5, 0.5], "operands_mib": 16.25}}
    if own_mib is not None:
        result["paired_own_floor"] = {"epoch_s": [0.4, 0.4, 0.4], "operands_mib": own_mib}
    mv = module.C.merge_rounds([result])
    a = types.SimpleNamespace(epochs=3, lockstep=False, limit=None, threads=2, rounds=1, seed=0)
    module.report_size(a, "textbook", {"microvae": mv})
    out = capsys.readouterr().out
    assert "microvae memory (MiB): RSS after data+model 100.0" in out
    assert f"These include the paired floors' operands, {total} MiB" in out and "bench_memory.py" in out


def test_convvae_same_window_reaches_the_workers_and_check_gradients_needs_pytorch(scripts, monkeypatch, capsys):
    module = scripts["bench_convvae"]
    seen = []
    monkeypatch.setattr(module.C, "run_frameworks", lambda _s, fws, worker_args, *rest: seen.append(worker_args) or {})
    module.main(["--frameworks", "torch", "--same-window"])
    module.main(["--frameworks", "torch"])
    assert seen == [["--latent", "2", "--same-window"], ["--latent", "2"]]
    capsys.readouterr()
    make_absent(monkeypatch, "torch")  # import torch fails, as where it is not installed
    with pytest.raises(SystemExit) as stop:
        module.main(["--check-gradients"])
    assert stop.value.code == 2 and "--check-gradients needs PyTorch" in capsys.readouterr().out


def _mem(epochs):
    reading = {"VmRSS": 100.0, "VmHWM": 120.0, "ru_maxrss": 120.0}
    return {"start": reading, "ready": reading, "per_epoch": [reading] * epochs, "after_training": reading,
            "after_elbo": reading, "epoch_peak": [110.0] * epochs, "before_epoch": [reading] * epochs}


def test_memory_summary_says_why_there_is_no_growth_with_one_or_two_epochs(scripts):
    C = scripts["bench_vae"].C
    for epochs in (1, 2):
        line = C.memory_summary(_mem(epochs))
        assert "2→" not in line and line.count(f"needs 3+ epochs, ran {epochs}") == 2, line
    assert C.memory_summary(_mem(3)).count("growth epoch 2→3: +0.0") == 2


def test_memory_summary_without_epoch_peaks_says_why(scripts):
    """Where /proc/self/clear_refs cannot be written the epoch peaks are NaN (or absent, in an
    older worker's JSON): said, not printed as nan."""
    C = scripts["bench_vae"].C
    for peaks in ([float("nan")] * 3, None):
        mem = _mem(3)
        if peaks is None:
            del mem["epoch_peak"]
        else:
            mem["epoch_peak"] = peaks
        line = C.memory_summary(mem)
        assert "each epoch's own peak: not measured (needs a writable /proc/self/clear_refs)" in line and "nan" not in line, line


def test_epoch_peaks_callback_reads_the_peak_of_the_epoch_alone(scripts):
    """A real fit per epoch: a 64 MiB array allocated and freed before fit (a peak outside the
    epoch) is in the reading taken before the reset and not in the epoch's peak."""
    C = scripts["bench_vae"].C
    if not C.reset_peak():
        pytest.skip("no writable /proc/self/clear_refs here")
    import microvae as mv

    model, x = mv.VAE(16, (8,), 2), np.random.default_rng(0).random((256, 16), dtype=np.float32)
    peaks = C.EpochPeaks()
    model.fit(x, epochs=1, verbose=0, callbacks=[peaks])  # warm
    before = C.memory_now()["VmRSS"]
    big = np.ones(64 * 2**20 // 8)  # touched: resident
    del big
    model.fit(x, epochs=1, verbose=0, callbacks=[peaks])
    assert len(peaks.peaks) == 2 and len(peaks.before) == 2
    assert peaks.before[1]["VmHWM"] >= before + 60, (before, peaks.before[1])
    assert peaks.peaks[1] < before + 30, (before, peaks.peaks)
    mem = {"ready": {"VmHWM": 1.0}, "epoch_peak": peaks.peaks, "before_epoch": peaks.before, "after_elbo": {"VmHWM": 2.0}}
    assert C.process_peak(mem) == max(r["VmHWM"] for r in peaks.before)


# --------------------------------------------------------------------------- failing workers
def _assert_one_line_failure(exc, *words):
    code = exc.value.code
    assert code not in (0, None), code
    assert isinstance(code, str) and "\n" not in code, code  # printed as one line, exit status 1
    for word in words:
        assert word in code, code


@pytest.mark.parametrize("script,argv", [("bench_vae", ["--size", "textbook", "--frameworks", "microvae,floor"]),
                                         ("bench_convvae", ["--frameworks", "microvae,torch"])])
def test_a_failing_worker_makes_the_parent_exit_non_zero(scripts, monkeypatch, capsys, script, argv):
    module = scripts[script]
    results = {"microvae": {"error": CRASH, "wall_s": 1.0}, "floor": {"skipped": "-"}, "torch": {"skipped": "-"}}
    monkeypatch.setattr(module.C, "run_frameworks", lambda _s, fws, *args, **kw: {fw: results[fw] for fw in fws})
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    _assert_one_line_failure(exc, "microvae", "worker exited with 1", "ValueError: boom")
    assert "FAILED" in capsys.readouterr().out  # the report is still printed first


def test_bench_memory_exits_with_a_one_line_reason(scripts, monkeypatch, capsys):
    module = scripts["bench_memory"]
    monkeypatch.setattr(module.C, "run_worker", lambda *args, **kw: {"error": CRASH, "wall_s": 1.0})
    with pytest.raises(SystemExit) as exc:
        module.main(["--epochs", "3", "--limit", "100"])
    _assert_one_line_failure(exc, "worker exited with 1", "ValueError: boom")
    assert "Traceback" in capsys.readouterr().err  # the worker's stderr tail is still shown


def test_bench_startup_exits_non_zero_when_a_step_run_fails(scripts, monkeypatch, capsys):
    module = scripts["bench_startup"]

    def fake(script, args, *rest, **kw):
        if "import" in args:
            return {"import_s": 0.1, "wall_s": 0.2}
        return {"error": CRASH, "wall_s": 1.0}

    monkeypatch.setattr(module.C, "run_worker", fake)
    with pytest.raises(SystemExit) as exc:
        module.main(["--imports", "1", "--step-runs", "2"])
    _assert_one_line_failure(exc, "first step run 1", "ValueError: boom")


def test_run_worker_crash_becomes_an_error_and_a_one_line_exit(tmp_path):
    C = load_bench("_common")
    script = tmp_path / "crash.py"
    script.write_text("import sys\nprint('noise', file=sys.stderr)\nraise ValueError('boom')\n")
    res = C.run_worker(str(script), [], threads=1, pin=False)
    assert "error" in res
    with pytest.raises(SystemExit) as exc:
        C.exit_if_failed({"x": res, "y": {"skipped": "fine"}})
    assert exc.value.code == "1 worker(s) failed; x: worker exited with 1: ValueError: boom"
    C.exit_if_failed({"y": {"skipped": "fine"}, "z": {"epoch_s": [1.0]}})  # nothing failed: no exit


def test_floor_smoke_run_exits_0_with_a_real_worker():
    """The one real run: the BLAS floor on 300 images, one repeat (about a second)."""
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "bench_vae.py"), "--size", "textbook", "--frameworks", "floor",
                           "--epochs", "1", "--limit", "300", "--floor-repeats", "1"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert "300 training / no test images" in proc.stdout and "None" not in proc.stdout.split("### Which kernels")[0]


# --------------------------------------------------------------------------- figures from fixed results
def test_memory_summary_growth_is_from_epoch_2_and_peaks_are_where_they_were_read(scripts):
    """Growth is epoch N's figure minus epoch 2's (epoch 1 allocates), for the RSS after each
    epoch and for each epoch's own peak; the process's peak is the largest VmHWM of any reading."""
    mem = _mem(4)
    mem["per_epoch"] = [{"VmRSS": v} for v in (100.0, 110.0, 111.0, 115.0)]
    mem["epoch_peak"] = [120.0, 121.0, 121.5, 120.5]
    mem["before_epoch"] = [{"VmHWM": v} for v in (101.0, 150.0, 122.0, 123.0)]
    mem["after_training"] = {"VmRSS": 115.0, "VmHWM": 130.0, "ru_maxrss": 131.0}
    mem["after_elbo"] = {"VmRSS": 116.0, "VmHWM": 140.0, "ru_maxrss": 141.0}
    line = scripts["bench_vae"].C.memory_summary(mem)
    assert "RSS after each epoch [100.0, 110.0, 111.0, 115.0]; growth epoch 2→4: +5.0;" in line, line
    assert "each epoch's own peak [120.0, 121.0, 121.5, 120.5]; growth epoch 2→4: -0.5;" in line, line
    assert line.endswith("the test-ELBO pass included) 150.0"), line
    mem["after_elbo"]["VmHWM"] = 160.0
    assert scripts["bench_vae"].C.memory_summary(mem).endswith(" 160.0")


TEXTBOOK_LAYERS = [(784, 512), (512, 256), (256, 4), (2, 256), (256, 512), (512, 784)]
TEXTBOOK_PARAMS = sum(i * o + o for i, o in TEXTBOOK_LAYERS)  # 1068820


def _vae_results(C):
    """microvae (two rounds: fit calls, paired floor), PyTorch skipped, the floor worker."""
    mv = C.merge_rounds([
        {"framework": "microvae", "epoch_s": [9.0, 2.0, 4.0, 3.0], "fit_call_s": [9.5, 2.1, 4.3, 3.2],
         "paired_floor": {"epoch_s": [5.0, 1.0, 1.0, 3.0]}, "paired_own_floor": {"epoch_s": [5.0, 2.0, 2.0, 1.0]},
         "test_elbo": -262.0, "train_loss": [300.0, 262.0],
         "params": TEXTBOOK_PARAMS, "n_train": 300, "n_test": 100, "memory": _mem(4)},
        {"framework": "microvae", "epoch_s": [8.0, 3.0, 3.0, 3.0], "fit_call_s": [8.5, 3.1, 3.1, 3.1],
         "paired_floor": {"epoch_s": [4.0, 1.5, 3.0, 1.0]}, "paired_own_floor": {"epoch_s": [4.0, 3.0, 2.0, 1.5]},
         "test_elbo": -261.0, "train_loss": [300.0, 262.0],
         "params": TEXTBOOK_PARAMS, "n_train": 300, "n_test": 100, "memory": _mem(4)}])
    floor = C.merge_rounds([{"framework": "floor", "epoch_s": [9.0, 1.0, 2.0, 1.5], "gflop_per_epoch": 3.0,
                             "gflops": 2.0, "n_train": 300}])
    return {"microvae": mv, "torch": {"skipped": "torch not importable (ImportError: x)"}, "floor": floor}


def test_bench_vae_report_floor_and_paired_floor_ratios(scripts, monkeypatch, capsys):
    """microvae ÷ floor is microvae's median over the floor's; the paired floor is the median
    of microvae's epoch k ÷ the floor timed right after it (epochs 2..N of every round), with
    their range and the median paired floor; fit's data check is the median of epochs 2..N."""
    module = scripts["bench_vae"]
    captured = {}

    def run_frameworks(script, frameworks, worker_args, a, tag):
        captured.update(frameworks=list(frameworks), worker_args=list(worker_args))
        return _vae_results(module.C)

    monkeypatch.setattr(module.C, "run_frameworks", run_frameworks)
    module.main(["--size", "textbook", "--frameworks", "torch,floor,microvae", "--epochs", "4", "--floor-repeats", "4"])
    out = capsys.readouterr().out
    assert captured["frameworks"] == ["microvae", "torch", "floor"]  # microvae first: the ratios are against it
    assert captured["worker_args"] == ["--hidden", "512,256", "--latent", "2", "--floor-repeats", "4"]
    # microvae's steady epochs 2 4 3 3 3 3: median 3.0; the floor's 1 2 1.5: 1.5
    assert "| microvae | 3.000 | 2.000–4.000 | 9.000 | 1.000 |" in out, out
    assert "BLAS floor: 1.500 s/epoch (3.00 GFLOP per epoch, 2.0 GFLOP/s); **microvae ÷ floor = 2.00**" in out, out
    # pairs (2,1) (4,1) (3,3) (3,1.5) (3,3) (3,1): ratios 2 4 1 2 1 3, floors 1 1 3 1.5 3 1
    assert ("median 1.250 s/epoch; **microvae ÷ paired floor = 2.00** (median of per-epoch ratios, range 1.00–4.00)"
            in out), out
    # own-kernel pairs (2,2) (4,2) (3,1) (3,3) (3,2) (3,1.5): ratios 1 2 3 1 1.5 2, floors 2 2 1 3 2 1.5
    assert ("Own-kernel floor (the same products through microvae's own kernels, as its Dense layers call them, "
            "timed beside the paired floor): median 2.000 s/epoch; **microvae ÷ own-kernel floor = 1.75** "
            "(median of per-epoch ratios, range 1.00–3.00)" in out), out
    # fit_call_s − epoch_s of epochs 2..N: 0.1 0.3 0.2 in round 1 and 0.1 0.1 0.1 in round 2: median 0.1
    assert "+0.100 s per call" in out, out
    assert "- PyTorch (eager, CPU): skipped — torch not importable" in out
    assert "WARNING" not in out  # 1068820 parameters, as the textbook VAE has


def test_bench_vae_parameter_count_is_weights_and_biases(scripts):
    """The expected parameter count the tables warn against: every Dense layer's weights and biases."""
    module = scripts["bench_vae"]
    assert module.count_params((512, 256), 2) == TEXTBOOK_PARAMS == 1068820
    assert module.count_params((400,), 20) == 784 * 400 + 400 + 400 * 40 + 40 + 20 * 400 + 400 + 400 * 784 + 784


def test_bench_vae_floor_gflops_matches_the_printed_floor_time_over_rounds(scripts, monkeypatch, capsys):
    """The floor's line prints s/epoch, GFLOP per epoch and GFLOP/s; the rate must be the work
    over the printed time, also when the floor ran in several rounds."""
    module = scripts["bench_vae"]
    C = module.C
    rounds = [{"framework": "floor", "epoch_s": [9.0, 1.0, 1.0], "gflop_per_epoch": 1.0, "gflops": 1.0, "n_train": 300},
              {"framework": "floor", "epoch_s": [9.0, 3.0, 3.0], "gflop_per_epoch": 1.0, "gflops": 1 / 3, "n_train": 300}]
    mv = C.merge_rounds([{"framework": "microvae", "epoch_s": [9.0, 4.0, 4.0], "n_train": 300}] * 2)
    monkeypatch.setattr(C, "run_frameworks", lambda *args, **kw: {"microvae": mv, "floor": C.merge_rounds(rounds)})
    module.main(["--size", "textbook", "--frameworks", "microvae,floor", "--epochs", "3", "--rounds", "2"])
    out = capsys.readouterr().out
    assert "BLAS floor: 2.000 s/epoch (1.00 GFLOP per epoch, 0.5 GFLOP/s)" in out, out


def test_bench_vae_floor_worker_rate_is_over_its_steady_repeats(scripts, monkeypatch):
    """The floor worker times --floor-repeats epochs of matmuls (not --epochs) and its GFLOP/s is
    the work over the median of repeats 2..R (a fake clock gives repeats of 5, 1, 3, 2 s)."""
    module = scripts["bench_vae"]
    import numpy as np
    monkeypatch.setattr(module.C, "load_data", lambda limit: (np.zeros((300, 784), np.float32), None))
    monkeypatch.setattr(module.C, "numpy_report", lambda: {})
    ticks = iter([0.0, 5.0, 5.0, 6.0, 6.0, 9.0, 9.0, 11.0])
    monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    a = types.SimpleNamespace(limit=300, hidden=(512, 256), latent=2, seed=0, floor_repeats=4, epochs=2)
    res = module.worker_floor(a)
    assert res["epoch_s"] == [5.0, 1.0, 3.0, 2.0]
    work = 2 * (128 + 128 + 44) * sum(i * o * (2 if li == 0 else 3) for li, (i, o) in enumerate(TEXTBOOK_LAYERS))
    assert res["gflop_per_epoch"] == pytest.approx(work / 1e9)
    assert res["gflops"] == pytest.approx(work / 1e9 / 2.0)  # median of 1, 3, 2


def test_bench_convvae_passes_latent_and_reports_fit_overhead_and_params(scripts, monkeypatch, capsys):
    """bench_convvae: --latent reaches the workers, microvae first, the textbook architecture's
    parameter count (no warning for it), fit's data check over epochs 2..N."""
    module = scripts["bench_convvae"]
    C = module.C
    assert module.expected_params(2) == 76181  # 160+2320+4640+50208+132 | 4704+9248+4624+145
    captured = {}
    mv = C.merge_rounds([{"framework": "microvae", "epoch_s": [9.0, 2.0, 4.0, 3.0], "fit_call_s": [9.5, 2.1, 4.3, 3.2],
                          "test_elbo": -270.0, "train_loss": [280.0], "params": 76181, "n_train": 300, "n_test": 100}])

    def run_frameworks(script, frameworks, worker_args, a, tag):
        captured.update(frameworks=list(frameworks), worker_args=list(worker_args))
        return {"microvae": mv, "torch": {"skipped": "torch not importable"}}

    monkeypatch.setattr(C, "run_frameworks", run_frameworks)
    module.main(["--frameworks", "torch,microvae", "--epochs", "4"])
    out = capsys.readouterr().out
    assert captured == {"frameworks": ["microvae", "torch"], "worker_args": ["--latent", "2"]}
    assert "+0.200 s per call" in out and "WARNING" not in out, out
    module.main(["--frameworks", "torch", "--latent", "3"])
    assert captured["worker_args"] == ["--latent", "3"]


def _memory_result(per_epoch_rss, epoch_peaks=(168.0, 170.0, 169.0, 170.5)):
    reading = lambda rss, hwm: {"VmRSS": rss, "VmHWM": hwm, "ru_maxrss": hwm + 1.0}  # noqa: E731
    return {"epoch_s": [5.0, 2.0, 2.1, 2.2][:len(per_epoch_rss)], "n_train": 100, "n_test": 100, "params": 1068820,
            "memory": {"start": reading(50.0, 50.0), "ready": reading(100.0, 101.0),
                       "per_epoch": [reading(r, 165.0) for r in per_epoch_rss],
                       "epoch_peak": list(epoch_peaks)[:len(per_epoch_rss)],
                       "before_epoch": [reading(r, 200.0) for r in per_epoch_rss],
                       "after_training": reading(163.0, 170.0), "after_elbo": reading(164.0, 190.0)}}


def test_bench_memory_table_growth_and_peak(scripts, monkeypatch, capsys):
    """bench_memory: the worker gets --limit and --no-paired-floor (training alone); the table's
    rows are epochs 1..N with each epoch's own peak and the RSS after it; growth is epoch N −
    epoch 2, of both, flat only within ±2 MiB either way; the working set is the largest epoch
    peak above set-up; the process's peak (here the before-epoch readings' 200) is apart."""
    module = scripts["bench_memory"]
    calls = []
    answers = iter([_memory_result([150.0, 160.0, 161.0, 163.0]), _memory_result([150.0, 160.0, 157.0, 155.0]),
                    _memory_result([150.0, 160.0, 160.0, 160.0], [float("nan")] * 4)])

    def run_worker(script, args, **kw):
        calls.append(args)
        return next(answers)

    monkeypatch.setattr(module.C, "run_worker", run_worker)
    module.main(["--epochs", "4", "--limit", "100"])
    out = capsys.readouterr().out
    assert calls[0][calls[0].index("--limit") + 1] == "100" and "--no-paired-floor" in calls[0]
    assert "| epoch 1 | 5.000 | 168.0 | 150.0 |" in out, out
    assert "| epoch 4 | 2.200 | 170.5 | 163.0 |" in out, out
    assert "Peak of a training epoch: **170.5 MiB**; training working set above set-up: 70.5 MiB" in out, out
    assert "RSS growth from epoch 2 to epoch 4: **+3.0 MiB** (GROWS;" in out, out
    assert "epoch-peak growth from epoch 2 to epoch 4: **+0.5 MiB** (flat;" in out, out
    assert "The process's peak (fit's data checks, compilation, the test-ELBO pass): 200.0 MiB." in out, out
    module.main(["--epochs", "4"])
    out = capsys.readouterr().out
    assert "--limit" not in calls[1]
    assert "**-5.0 MiB** (shrinks;" in out, out  # a 5 MiB change is not flat, and not growth either
    module.main(["--epochs", "4"])
    out = capsys.readouterr().out
    assert "Peak of a training epoch: not measured (needs a writable /proc/self/clear_refs)" in out, out
    assert "| epoch 2 | 2.000 | – | 160.0 |" in out and "epoch-peak growth" not in out, out


def test_bench_startup_medians_warm_run_and_shared_cache(scripts, monkeypatch, capsys):
    """bench_startup: one untimed import first, then the median (and min, max) of the timed
    imports and the median process wall time; the first-step runs share one new, empty Numba
    cache, and the warm figure is run 2's."""
    module = scripts["bench_startup"]
    imports = {m: iter([0.5, 0.10, 0.40, 0.13]) for m in module.IMPORTS}  # the first one is the untimed warm-up
    steps = iter([(5.0, 0.01), (1.0, 0.011), (1.2, 0.012)])
    caches = []

    def run_worker(script, args, threads=None, extra_env=None, pin=True, **kw):
        if "import" in args:
            t = next(imports[args[args.index("--module") + 1]])
            return {"import_s": t, "wall_s": t + 1.0}
        cache = extra_env["NUMBA_CACHE_DIR"]
        caches.append((cache, os.path.isdir(cache) and not os.listdir(cache)))
        first, second = next(steps)
        return {"first_step_s": first, "second_step_s": second, "import_s": 0.2, "build_s": 0.3, "wall_s": 2.0}

    monkeypatch.setattr(module.C, "run_worker", run_worker)
    module.main(["--imports", "3", "--step-runs", "3"])
    out = capsys.readouterr().out
    assert "| `import microvae` | 0.130 | 0.100 | 0.400 | 1.130 |" in out, out
    assert "**`import microvae`: 0.130 s** (median of 3)" in out, out
    assert "| run 2: warm cache | 1.000 | 0.011 | 0.200 | 0.300 |" in out, out
    assert "**First training step with a warm Numba cache: 1.000 s** (steady-state step 0.0110 s; cold cache: 5.000 s)" in out
    assert len(caches) == 3 and len({c for c, _ in caches}) == 1 and all(empty for _, empty in caches)
    assert caches[0][0] != os.environ.get("NUMBA_CACHE_DIR")


def test_the_kernel_report_says_whether_convolution_chunks_use_threads(monkeypatch):
    """The chunk-thread line describes what fit does for that model: threads only for a CPU model
    with convolutions (a dense VAE keeps BLAS's threads; a GPU runs each convolution in one pass)."""
    import microvae as mv

    C = load_bench("bench_vae").C
    monkeypatch.setenv("MICROVAE_NUM_THREADS", "3")
    conv = C.microvae_report(mv.ConvVAE(input_shape=(1, 8, 8), latent_dim=2))["chunk_threads"]
    assert conv.startswith("3 (convolution chunks while training")
    dense = C.microvae_report(mv.VAE(6, (4,), 2))["chunk_threads"]
    assert dense == "not used (no convolutions: NumPy's BLAS keeps its own threads)"
    assert C.microvae_report()["chunk_threads"].startswith("3 (")  # no model: the setting alone
