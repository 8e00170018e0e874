#!/usr/bin/env python3
"""The matrix products of one MLP VAE training step: NumPy's BLAS vs PyTorch vs JAX, product by product.

    python3 bench/bench_products.py                                   # both sizes, every framework
    python3 bench/bench_products.py --size examples --frameworks numpy --repeats 20 --rounds 1   # smoke test

Sizes as in bench_vae.py ("textbook" 784-512-256, latent 2; "examples" 784-400, latent 20),
batch 128, float32. Per Dense layer (in → out) a step needs the forward product X·W
(128×in · in×out), the weight gradient Xᵀ·dY (in×128 · 128×out) and the input gradient
dY·Wᵀ (128×out · out×in), except the encoder's first layer's input gradient: the same list
as bench_vae.py's BLAS floor, so the table's total is the floor's work per full batch.
Transposed operands are views of arrays stored as training stores them (microvae's Dense
passes ``x.T`` and ``W.T``). Each framework runs in its own subprocess, one after another,
with 2 threads on the same pinned CPUs (see bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from bench_vae import SIZES, dense_shapes  # noqa: E402

FRAMEWORKS = ("numpy", "torch", "jax")
LABELS = {"numpy": "NumPy", "torch": "PyTorch", "jax": "JAX"}
TRAIN_IMAGES = 60000  # Fashion-MNIST's training set: the epoch the per-step total is scaled to
WARMUP_STEPS = 10  # untimed passes over every product first (JAX compiles each shape on its first call)
# (a transposed?, b transposed?) of each kind of product, as microvae's Dense forms them
KINDS = {"X·W": (False, False), "Xᵀ·dY": (True, False), "dY·Wᵀ": (False, True)}


def step_products(hidden, latent, batch: int = C.BATCH_SIZE) -> list[dict]:
    """The matrix products of one training step, in the order training runs them: every
    layer's forward, then from the last layer back every weight gradient and input gradient
    (none for the encoder's first layer). Each is (m×k)·(k×n)."""
    enc, dec = dense_shapes(hidden, latent)
    layers = [(f"enc {i}→{o}", i, o) for i, o in enc] + [(f"dec {i}→{o}", i, o) for i, o in dec]
    products = [{"layer": name, "kind": "X·W", "m": batch, "k": i, "n": o} for name, i, o in layers]
    for li in range(len(layers) - 1, -1, -1):
        name, i, o = layers[li]
        products.append({"layer": name, "kind": "Xᵀ·dY", "m": i, "k": batch, "n": o})
        if li != 0:
            products.append({"layer": name, "kind": "dY·Wᵀ", "m": batch, "k": o, "n": i})
    return products


def flops(p: dict) -> int:
    return 2 * p["m"] * p["k"] * p["n"]


# =========================================================================== workers
def operands(p: dict, rng):
    """float32 (a, b) stored as training stores them: a transposed operand is the .T of a
    (k, m) or (n, k) array, not a contiguous copy. Returns the stored arrays and the flags."""
    import numpy as np

    ta, tb = KINDS[p["kind"]]
    a = rng.standard_normal((p["k"], p["m"]) if ta else (p["m"], p["k"])).astype(np.float32)
    b = rng.standard_normal((p["n"], p["k"]) if tb else (p["k"], p["n"])).astype(np.float32)
    return a, b, ta, tb


def numpy_call(p, rng):
    import numpy as np

    a, b, ta, tb = operands(p, rng)
    a, b = (a.T if ta else a), (b.T if tb else b)
    out = np.empty((p["m"], p["n"]), np.float32)
    return lambda: np.matmul(a, b, out=out)


def torch_call(p, rng):
    import torch

    a, b, ta, tb = operands(p, rng)
    a, b = torch.from_numpy(a), torch.from_numpy(b)
    a, b = (a.t() if ta else a), (b.t() if tb else b)
    out = torch.empty((p["m"], p["n"]), dtype=torch.float32)
    return lambda: torch.matmul(a, b, out=out)


def jax_call(p, rng):
    import jax
    import jax.numpy as jnp

    a, b, ta, tb = operands(p, rng)
    a, b = jax.device_put(jnp.asarray(a)), jax.device_put(jnp.asarray(b))
    # the transposes inside the program, as in a jitted training step (XLA folds them into the dot)
    f = jax.jit(lambda x, y: (x.T if ta else x) @ (y.T if tb else y))
    return lambda: f(a, b).block_until_ready()


def time_products(make_call, products, repeats: int) -> dict:
    """Median µs per call of every product. Each repeat runs one step's products in training
    order, so drift within the worker hits every product alike and each product finds the
    cache as the previous one of the step left it. A 1×1·1×1 product timed the same way gives
    the framework's per-call overhead."""
    import numpy as np

    rng = np.random.default_rng(0)
    calls = [make_call(p, rng) for p in products]
    for _ in range(WARMUP_STEPS):
        for call in calls:
            call()
    samples = [[] for _ in calls]
    for _ in range(repeats):
        for call, times in zip(calls, samples):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
    tiny = make_call({"kind": "X·W", "m": 1, "k": 1, "n": 1}, rng)
    for _ in range(WARMUP_STEPS):
        tiny()
    overhead = []
    for _ in range(repeats):
        started = time.perf_counter()
        tiny()
        overhead.append(time.perf_counter() - started)
    return {"median_us": [statistics.median(t) * 1e6 for t in samples], "overhead_us": statistics.median(overhead) * 1e6}


def worker_numpy(a, products):
    return {**time_products(numpy_call, products, a.repeats),
            "kernels": {**C.numpy_report(), "threads_env": C.thread_report()}}


def worker_torch(a, products):
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
        return C.not_importable("torch", exc)
    torch.set_num_threads(a.threads)
    return {**time_products(torch_call, products, a.repeats), "kernels": {**C.torch_report(), "threads_env": C.thread_report()}}


def worker_jax(a, products):
    try:
        import jax  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return C.not_importable("jax", exc)
    return {**time_products(jax_call, products, a.repeats), "kernels": {**C.jax_report(), "threads_env": C.thread_report()}}


WORKERS = {"numpy": worker_numpy, "torch": worker_torch, "jax": worker_jax}


# =========================================================================== parent
def run_size(a, size: str, frameworks) -> dict:
    """Every framework's worker, ``a.rounds`` times, in the order A B C, C B A, ... (each
    framework early and late alike); returns {framework: result} with the rounds merged."""
    spec = SIZES[size]
    args = ["--hidden", ",".join(map(str, spec["hidden"])), "--latent", str(spec["latent"]),
            "--repeats", str(a.repeats), "--threads", str(a.threads)]
    runs = {fw: [] for fw in frameworks}
    for r in range(a.rounds):
        for fw in (frameworks if r % 2 == 0 else frameworks[::-1]):
            if runs[fw] and ("skipped" in runs[fw][-1] or "error" in runs[fw][-1]):
                continue  # absent or failed: not tried again
            which = f"{fw} (round {r + 1}/{a.rounds})"
            print(f"[{size}] running {which} ...", file=sys.stderr, flush=True)
            res = C.run_worker(os.path.abspath(__file__), ["--worker", fw, *args], threads=a.threads,
                               echo_stderr=a.verbose, pin=not a.no_pin)
            runs[fw].append(res)
            state = "skipped" if "skipped" in res else "error" if "error" in res else f"{sum(res['median_us']):.0f} µs/step"
            print(f"[{size}] {which}: {state}", file=sys.stderr, flush=True)
    return {fw: merge_rounds(rs) for fw, rs in runs.items()}


def merge_rounds(runs: list[dict]) -> dict:
    """One result per framework: per product, the median over rounds of each round's median."""
    failed = [r for r in runs if "skipped" in r or "error" in r]
    if failed:
        return failed[0]
    by_round = [r["median_us"] for r in runs]
    return {"median_us": [statistics.median(t) for t in zip(*by_round)], "median_us_by_round": by_round,
            "overhead_us": statistics.median(r["overhead_us"] for r in runs), "rounds": len(runs),
            "kernels": runs[0]["kernels"]}


def report_size(a, size: str, results: dict) -> None:
    products = step_products(SIZES[size]["hidden"], SIZES[size]["latent"])
    ran = [fw for fw in FRAMEWORKS if "median_us" in results.get(fw, {})]
    others = [fw for fw in ran if fw != "numpy"] if "numpy" in ran else []
    batches = len(C.epoch_batches(TRAIN_IMAGES))
    header = (["product", "layer", "m×k · k×n", "MFLOP"] + [f"{LABELS[fw]} µs" for fw in ran]
              + [f"NumPy ÷ {LABELS[fw]}" for fw in others] + [f"{LABELS[fw]} GFLOP/s" for fw in ran])

    def row(label, layer, shape, work, us):
        return ([label, layer, shape, f"{work / 1e6:.2f}"] + [f"{us[fw]:.1f}" for fw in ran]
                + [f"{us['numpy'] / us[fw]:.2f}" for fw in others] + [f"{work / us[fw] / 1e3:.1f}" for fw in ran])

    rows = []
    for i, p in enumerate(products):
        us = {fw: results[fw]["median_us"][i] for fw in ran}
        rows.append(row(p["kind"], p["layer"], f"{p['m']}×{p['k']} · {p['k']}×{p['n']}", flops(p), us))
    total = {fw: sum(results[fw]["median_us"]) for fw in ran}
    work = sum(flops(p) for p in products)
    rows.append(row("**total per step**", f"{len(products)} products", "", work, total))
    epoch = ["**per epoch, s**", f"≈ {batches} × step", "", f"{work * batches / 1e6:.0f}"]
    epoch += [f"{total[fw] * batches / 1e6:.2f}" for fw in ran] + [f"{total['numpy'] / total[fw]:.2f}" for fw in others]
    rows.append(epoch + [""] * len(ran))
    print(f"\n## {SIZES[size]['label']}: the matrix products of one training step\n")
    if ran:
        print(C.markdown_table(header, rows))
        ratios = "NumPy ÷ X above 1: NumPy is slower. " if others else ""
        print(f"\nbatch {C.BATCH_SIZE}, float32, {a.threads} threads; per round each worker runs {WARMUP_STEPS} untimed "
              f"steps' products, then {a.repeats} timed calls of each (one step's products per pass, in training order); "
              f"µs = median over {a.rounds} round(s) of each round's median. {ratios}"
              f"Per epoch: the {TRAIN_IMAGES} training images make {batches} batches, all counted as full ones of "
              f"{C.BATCH_SIZE} (the last has {TRAIN_IMAGES - (batches - 1) * C.BATCH_SIZE}): an approximation, slightly high.")
        print("Per-call overhead (a 1×1 · 1×1 product timed the same way; it is inside every figure above): "
              + ", ".join(f"{LABELS[fw]} {results[fw]['overhead_us']:.1f} µs" for fw in ran) + ".")
        if a.rounds > 1:
            print("Step total per round (µs): " + "; ".join(
                f"{LABELS[fw]} " + ", ".join(f"{sum(r):.0f}" for r in results[fw]["median_us_by_round"]) for fw in ran))
    else:
        print("No framework ran.")
    notes = [f"- {LABELS[fw]}: skipped — {res['skipped']}" if "skipped" in res else f"- {LABELS[fw]}: FAILED — {res['error']}"
             for fw, res in results.items() if "skipped" in res or "error" in res]
    if notes:
        print("\n" + "\n".join(notes))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=("textbook", "examples", "both"), default="both")
    p.add_argument("--frameworks", type=C.framework_list(FRAMEWORKS), default="numpy,torch,jax")
    p.add_argument("--threads", type=C.count(1), default=C.DEFAULT_THREADS)
    p.add_argument("--no-pin", action="store_true", help="do not bind the workers to the first THREADS CPUs")
    p.add_argument("--repeats", type=C.count(1), default=200, help="timed calls of every product per worker")
    p.add_argument("--rounds", type=C.count(1), default=3,
                   help="run every framework's worker this many times, interleaved; medians over the rounds")
    p.add_argument("--json", default=None, help="write the raw results to this file")
    p.add_argument("--verbose", action="store_true", help="echo the workers' stderr")
    # worker side
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--hidden", default=None, help=argparse.SUPPRESS)
    p.add_argument("--latent", type=C.count(1), default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        hidden = tuple(int(h) for h in a.hidden.split(","))
        C.emit(WORKERS[a.worker](a, step_products(hidden, a.latent)))
        return
    sizes = ["textbook", "examples"] if a.size == "both" else [a.size]
    machine = C.print_header("matrix-product benchmark", a)
    all_results = {}
    for size in sizes:
        all_results[size] = run_size(a, size, a.frameworks)
        report_size(a, size, all_results[size])
    C.print_kernel_reports({LABELS[fw]: res for fw, res in all_results[sizes[0]].items()})
    C.save_json(a.json, {"machine": machine, "args": vars(a),
                         "products": {size: step_products(SIZES[size]["hidden"], SIZES[size]["latent"]) for size in sizes},
                         "results": all_results})
    C.exit_if_failed({f"{fw} ({size})": res for size in sizes for fw, res in all_results[size].items()})


if __name__ == "__main__":
    main()
