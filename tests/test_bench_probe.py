"""bench/probe_tiled_products.py: its tile kernel and transpose compute what NumPy computes
(any shape, full tiles or not), its options, a failing worker, and one real run.

Nothing here is timed and no speed is asserted. The kernels live in the probe only; they are
checked because the probe's figures compare them with BLAS, and a wrong product would make
those figures meaningless.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _bench import BENCH, ROOT, load_bench

SCRIPT = os.path.join(BENCH, "probe_tiled_products.py")


@pytest.fixture(scope="module")
def probe():
    return load_bench("probe_tiled_products")


@pytest.fixture(scope="module")
def kernels(probe):
    return probe.build_kernels()


@given(m=st.integers(1, 11), k=st.integers(1, 9), n=st.integers(1, 11), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_tile_kernel_is_a_times_bt_transposed(kernels, m, k, n, dtype, seed):
    """Sizes on both sides of 4 (full tiles, partial column blocks, leftover rows); every
    entry is written (the output starts as NaN)."""
    tiles, _ = kernels
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    bt = rng.standard_normal((n, k)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)
    tiles(a, bt, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ bt.T.astype(np.float64),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32 else 1e-12)


@given(m=st.integers(1, 70), n=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_transpose_is_exact(kernels, m, n, seed):
    """Sizes on both sides of the 32×32 blocks."""
    _, transpose = kernels
    a = np.random.default_rng(seed).standard_normal((m, n)).astype(np.float32)
    out = np.full((n, m), np.nan, np.float32)
    transpose(a, out)
    assert np.array_equal(out, a.T)


def test_each_product_gets_the_layout_the_kernel_needs(probe):
    """Forward products need a copy of Wᵀ only, weight gradients copies of both operands, input
    gradients none; the contiguous layouts hold the same numbers as the stored operands."""
    products = probe.step_products((16, 8), 2, batch=4)
    prepared = probe.prepare(products, np.random.default_rng(0))
    needs = {(p["kind"], p["a_copy"], p["bt_copy"]) for p in prepared}
    assert needs == {("X·W", False, True), ("Xᵀ·dY", True, True), ("dY·Wᵀ", False, False)}
    for p in prepared:
        assert p["a_rows"].flags.c_contiguous and p["bt_rows"].flags.c_contiguous
        assert np.array_equal(p["a_rows"], p["a_view"]) and np.array_equal(p["bt_rows"], p["b_view"].T)


@pytest.mark.parametrize("option", ["--rounds", "--passes", "--threads"])
def test_counts_below_one_are_refused(probe, capsys, option):
    with pytest.raises(SystemExit) as exc:
        probe.main([option, "0"])
    assert exc.value.code == 2
    assert f"argument {option}: must" in capsys.readouterr().err


def test_a_failing_worker_fails_the_run_with_one_line(probe, monkeypatch, capsys):
    monkeypatch.setattr(probe.C, "run_worker", lambda *a, **kw: {"error": "worker exited with 1: Traceback\nValueError: boom"})
    with pytest.raises(SystemExit) as exc:
        probe.main(["--size", "examples"])
    assert isinstance(exc.value.code, str) and "\n" not in exc.value.code and "examples" in exc.value.code
    assert "ValueError: boom" in exc.value.code
    assert "### examples: failed" in capsys.readouterr().out


def test_smoke_run_prints_both_tables():
    proc = subprocess.run([sys.executable, SCRIPT, "--size", "examples", "--rounds", "1", "--passes", "2"],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for row in ("| blas |", "| tiles |", "| tiles+copies |", "| X·W |", "| Xᵀ·dY |", "| dY·Wᵀ |"):
        assert row in out, out
    assert "None" not in out and "OpenBLAS core" in out
