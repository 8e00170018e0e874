#!/usr/bin/env python3
"""Could microvae's own product kernel beat NumPy's BLAS? One step's products both ways, in one process.

    python3 bench/probe_tiled_products.py                       # both sizes
    python3 bench/probe_tiled_products.py --size examples --rounds 2 --passes 20   # smoke test

A probe. Its tile kernel has since become microvae's kernel for A·Bᵀ (``_dots_threads`` in
microvae/kernels/matmul_cpu.py, imported here), and microvae's Dense layers now use it and a
second kernel that needs no copies (bench/RESULTS.md). It forms C = A·Bᵀ from 4×4 tiles of
dot products along K, where both A's rows and Bᵀ's rows are contiguous in K:
the inner loop is then a plain reduction, which LLVM vectorises (AVX-512 where the CPU has
it, whatever OPENBLAS_CORETYPE says), over 4×4 accumulators that stay in registers. Output
columns are shared out among Numba's threads (``prange``).

Each of a Dense layer's three products needs its own layout for that:

    forward      X·W   = tiles(X,  Wᵀ)    needs a contiguous copy of Wᵀ
    weight grad  Xᵀ·dY = tiles(Xᵀ, dYᵀ)   needs contiguous copies of Xᵀ and dYᵀ
    input grad   dY·Wᵀ = tiles(dY, W)     needs nothing

so the probe times, alternating within each round: the step's products through NumPy's BLAS
as training forms them (``np.matmul`` on the views ``x.T``, ``W.T``: the BLAS floor's list,
see bench_products.py), the same products through the tile kernel on operands already laid
out for it, and the tile kernel together with the transposed copies it would need (a
blocked Numba transpose, faster here than NumPy's own copy of a ``.T`` view). Every result
is checked against the BLAS one first, and each timed block starts after a pause (SETTLE_S) in
which the other side's spinning threads go to sleep. Figures: milliseconds per step, median over rounds,
and the median of the per-round ratios against BLAS. The finding is in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from bench_products import KINDS, flops, step_products  # noqa: E402
from bench_vae import SIZES  # noqa: E402

VARIANTS = ("blas", "tiles", "tiles+copies")
# OpenBLAS's threads spin for about 0.1 s after a call, and OpenMP's (Numba's threads) for a
# while too: before each timed block the other side's threads are given time to go to sleep,
# or the block's first passes share the cores with them
SETTLE_S = 0.3


def build_kernels():
    import numba

    options = dict(fastmath=True, boundscheck=False, error_model="numpy", parallel=True, nogil=True)

    # the 4×4 dot-product tiles, now microvae's own kernel for A·Bᵀ (kernels/matmul_cpu.py)
    from microvae.kernels.matmul_cpu import _dots_threads as tiles

    @numba.njit(**options)
    def transpose(a, at):
        """at = aᵀ, in 32×32 blocks so both sides stay in cache."""
        m, n = a.shape
        for block in numba.prange((m + 31) // 32):
            i0 = 32 * block
            i1 = min(i0 + 32, m)
            for j0 in range(0, n, 32):
                for j in range(j0, min(j0 + 32, n)):
                    for i in range(i0, i1):
                        at[j, i] = a[i, j]

    return tiles, transpose


def prepare(products, rng):
    """Per product: the stored operands (as training stores them), the tile kernel's
    contiguous layouts of them, and the outputs."""
    import numpy as np

    prepared = []
    for p in products:
        a_t, b_t = KINDS[p["kind"]]
        m, k, n = p["m"], p["k"], p["n"]
        a_stored = rng.standard_normal((k, m) if a_t else (m, k)).astype(np.float32)
        b_stored = rng.standard_normal((n, k) if b_t else (k, n)).astype(np.float32)
        a_view = a_stored.T if a_t else a_stored  # (m, k)
        b_view = b_stored.T if b_t else b_stored  # (k, n)
        prepared.append({**p, "a_view": a_view, "b_view": b_view,
                         # the tile kernel wants A (m, k) and Bᵀ (n, k) with k contiguous
                         "a_rows": np.ascontiguousarray(a_view), "bt_rows": np.ascontiguousarray(b_view.T),
                         "a_copy": not a_view.flags.c_contiguous, "bt_copy": not b_view.T.flags.c_contiguous,
                         "out": np.empty((m, n), np.float32)})
    return prepared


def worker(a) -> dict:
    import numpy as np

    tiles, transpose = build_kernels()
    products = step_products(SIZES[a.size]["hidden"], SIZES[a.size]["latent"])
    prepared = prepare(products, np.random.default_rng(a.seed))

    def blas_one(p):
        np.matmul(p["a_view"], p["b_view"], out=p["out"])

    def tiles_one(p):
        tiles(p["a_rows"], p["bt_rows"], p["out"])

    def blas():
        for p in prepared:
            blas_one(p)

    def tiled():
        for p in prepared:
            tiles_one(p)

    def tiled_with_copies():
        for p in prepared:
            if p["a_copy"]:
                transpose(p["a_view"].T, p["a_rows"])  # the stored (k, m) array, transposed
            if p["bt_copy"]:
                transpose(p["b_view"], p["bt_rows"])  # the stored (k, n) array, transposed
            tiles_one(p)

    for p in prepared:  # compile, then check every product against NumPy's
        expected = p["a_view"] @ p["b_view"]
        tiles_one(p)
        scale = float(np.abs(expected).max()) or 1.0
        error = float(np.abs(p["out"] - expected).max()) / scale
        if not error < 1e-5:
            raise AssertionError(f"{p['layer']} {p['kind']}: tile kernel off by {error:.2e} of the largest entry")
    runs = {"blas": blas, "tiles": tiled, "tiles+copies": tiled_with_copies}
    for run in runs.values():
        run()
    seconds = {name: [] for name in VARIANTS}
    for round_ in range(a.rounds):
        order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
        for name in order:
            time.sleep(SETTLE_S)
            started = time.perf_counter()
            for _ in range(a.passes):
                runs[name]()
            seconds[name].append((time.perf_counter() - started) / a.passes)
    # each kind of product alone, once per variant, for the per-kind table
    per_kind = {}
    for kind in KINDS:
        mine = [p for p in prepared if p["kind"] == kind]
        for name, call in (("blas", blas_one), ("tiles", tiles_one)):
            samples = []
            for _ in range(a.rounds):
                time.sleep(SETTLE_S)
                started = time.perf_counter()
                for _ in range(a.passes):
                    for p in mine:
                        call(p)
                samples.append((time.perf_counter() - started) / a.passes)
            per_kind[f"{kind} {name}"] = statistics.median(samples)
        per_kind[f"{kind} gflop"] = sum(map(flops, mine)) / 1e9
    import numba

    return {"seconds": seconds, "per_kind": per_kind, "numpy": C.numpy_report(), "threads": C.thread_report(),
            "numba": numba.__version__, "numba_threading_layer": numba.threading_layer(),
            "gflop_per_step": sum(map(flops, prepared)) / 1e9}


def report(size: str, r: dict) -> None:
    s = r["seconds"]
    blas = s["blas"]
    print(f"\n### {size}: {r['gflop_per_step']:.3f} GFLOP a step; ms per step (median of {len(blas)} rounds)\n")
    rows = []
    for name in VARIANTS:
        ratios = [x / y for x, y in zip(s[name], blas)]
        rows.append([name, C.fmt(1e3 * statistics.median(s[name])), C.fmt(statistics.median(ratios)),
                     f"{C.fmt(min(ratios))}–{C.fmt(max(ratios))}"])
    print(C.markdown_table(["products", "ms/step", "÷ BLAS", "range"], rows))
    print()
    kinds = []
    for kind in KINDS:
        pk = r["per_kind"]
        gflop = pk[f"{kind} gflop"]
        kinds.append([kind, C.fmt(gflop / pk[f"{kind} blas"]), C.fmt(gflop / pk[f"{kind} tiles"]),
                      C.fmt(pk[f"{kind} tiles"] / pk[f"{kind} blas"])])
    print(C.markdown_table(["kind", "BLAS GFLOP/s", "tiles GFLOP/s", "tiles ÷ BLAS (time)"], kinds))
    np_report = r["numpy"]
    print(f"\nNumPy {np_report.get('numpy')}, OpenBLAS core {np_report.get('numpy_openblas_corename')} "
          f"(OPENBLAS_CORETYPE={np_report.get('OPENBLAS_CORETYPE')}), {np_report.get('numpy_openblas_threads')} BLAS threads; "
          f"Numba {r['numba']} ({r['numba_threading_layer']} threading layer), CPUs {r['threads'].get('cpu_affinity')}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=(*SIZES, "both"), default="both")
    p.add_argument("--rounds", type=C.count(1), default=9)
    p.add_argument("--passes", type=C.count(1), default=100, help="timed passes over the step's products per variant and round")
    p.add_argument("--threads", type=C.count(1), default=C.DEFAULT_THREADS)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        C.emit(worker(a))
        return
    failed = {}
    for size in (SIZES if a.size == "both" else (a.size,)):
        args = ["--worker", "--size", size, "--rounds", str(a.rounds), "--passes", str(a.passes), "--seed", str(a.seed)]
        result = C.run_worker(os.path.abspath(__file__), args, threads=a.threads, pin=not a.no_pin)
        if "error" in result:
            failed[size] = result
            print(f"\n### {size}: failed\n\n{result['error']}")
            continue
        report(size, result)
    C.exit_if_failed(failed)


if __name__ == "__main__":
    main()
