"""bench/bench_gpu.py (microvae on CuPy against PyTorch on CUDA): it refuses to run without a
GPU backend, and its microvae side runs end to end on the CPU through the CuPy emulation
(tests/_cuda_emulation.py), so the script is known to work before a GPU is at hand."""

import importlib.util
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from _absent import make_absent
from _bench import BENCH, load_bench
from _cuda_emulation import installed, needs_compiler



def _bench_gpu():
    return load_bench("bench_gpu")


def _cupy_importable():
    return importlib.util.find_spec("cupy") is not None


@pytest.mark.skipif(_cupy_importable(), reason="CuPy is installed here")
def test_without_cupy_it_says_why_and_exits_2():
    done = subprocess.run([sys.executable, os.path.join(BENCH, "bench_gpu.py"), "--epochs", "1", "--limit", "10"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cannot run here: backend='cupy' needs CuPy and an NVIDIA GPU" in done.stderr
    assert done.stdout == ""


def test_model_and_framework_lists_are_checked(capsys):
    bench = _bench_gpu()
    assert bench.model_list("convvae, vae,convvae") == ["convvae", "vae"]
    for bad in ("", "vae,mlp"):
        with pytest.raises(SystemExit):
            bench.main(["--models", bad])
        assert "--models: expected a comma-separated list of vae, convvae" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--epochs", "0"])


def test_pytorch_without_cuda_is_skipped_with_the_reason(monkeypatch):
    bench = _bench_gpu()
    make_absent(monkeypatch, "torch")  # its submodules too, where PyTorch is installed
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: False)))
    result = bench.run_torch("vae", types.SimpleNamespace(seed=0, limit=10, epochs=1))
    assert result == {"skipped": "PyTorch has no CUDA device here (torch.cuda.is_available() is False)"}


@needs_compiler
def test_the_microvae_side_runs_on_the_emulated_gpu_and_prints_its_table(monkeypatch, capsys, tmp_path):
    make_absent(monkeypatch, "torch")  # PyTorch absent: microvae's figures alone
    bench = _bench_gpu()
    with installed():
        assert bench.main(["--epochs", "2", "--limit", "130", "--json", str(tmp_path / "gpu.json")]) == 0
    out = capsys.readouterr().out
    for heading in ("## textbook MLP VAE 784-512-256, latent 2", "## textbook ConvVAE, latent 2"):
        section = out.split(heading)[1].split("##")[0]
        row = next(line for line in section.splitlines() if line.startswith("| microvae (CuPy) |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) > 0 and np.isfinite(float(cells[5])), row  # s/epoch and the test ELBO
        assert "- PyTorch (CUDA, eager): skipped — torch not importable" in section
        assert "130 training / 130 test images" in section
    assert "kernels_module: microvae.kernels.gpu" in out and "device: CuPy emulation on the CPU" in out
    assert "chunk_threads: not used (the cupy backend runs each convolution in one pass)" in out
    assert (tmp_path / "gpu.json").stat().st_size > 0


@pytest.mark.skipif(_cupy_importable(), reason="CuPy is installed here")
def test_the_profile_without_cupy_says_why_and_exits_2():
    done = subprocess.run([sys.executable, os.path.join(BENCH, "profile_gpu.py"), "--steps", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cannot run here: backend='cupy' needs CuPy and an NVIDIA GPU" in done.stderr
    assert done.stdout == ""


@needs_compiler
def test_the_profile_runs_on_the_emulated_gpu_and_prints_both_times_and_the_hosts_functions(monkeypatch, capsys):
    make_absent(monkeypatch, "torch")  # PyTorch absent: no kernel trace, said so
    profile = load_bench("profile_gpu")
    with installed():
        assert profile.main(["--models", "vae", "--steps", "2", "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "# microvae GPU step profile (CuPy emulation on the CPU" in out
    assert "## textbook MLP VAE 784-512-256, latent 2: 2 steps of batch 128" in out
    times = next(line for line in out.splitlines() if line.startswith("- wall "))
    wall, cpu = (float(part.split()[-2]) for part in times.split(","))
    assert wall > 0 and cpu > 0, times
    assert "- GPU kernels: torch not importable (" in out
    host = out.split("### The host's functions (cProfile, one epoch)")[1]
    assert "Ordered by: internal time" in host and "due to restriction <5>" in host
