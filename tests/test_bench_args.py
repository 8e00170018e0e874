"""The benchmark scripts' options and exit codes (bench/*.py): counts out of range, an empty
framework list, footers that never print None, and a failing worker making the parent fail.

No benchmark is run here: the scripts' ``main`` is called with the worker launchers replaced
by stand-ins (a test that reaches a real worker by mistake fails at once), except one smoke
run of the BLAS floor on 300 images (about a second).
"""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
SCRIPTS = ("bench_vae", "bench_convvae", "bench_memory", "bench_startup")
CRASH = "worker exited with 1: Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom"


def _load(name):
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def scripts(monkeypatch):
    """The four scripts, loaded fresh, with every way of starting a worker refused."""
    modules = {name: _load(name) for name in SCRIPTS}
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


def _mem(epochs):
    reading = {"VmRSS": 100.0, "VmHWM": 120.0, "ru_maxrss": 120.0}
    return {"start": reading, "ready": reading, "per_epoch": [reading] * epochs, "after_training": reading,
            "after_elbo": reading}


def test_memory_summary_says_why_there_is_no_growth_with_one_or_two_epochs(scripts):
    C = scripts["bench_vae"].C
    for epochs in (1, 2):
        line = C.memory_summary(_mem(epochs))
        assert "2→" not in line and f"needs 3+ epochs, ran {epochs}" in line, line
    assert "growth epoch 2→3: +0.0" in C.memory_summary(_mem(3))


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
    spec = importlib.util.spec_from_file_location("bench_common_args_test", os.path.join(BENCH, "_common.py"))
    C = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(C)
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
