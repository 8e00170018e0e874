#!/usr/bin/env python3
"""A probe, not a target: how close to its own products could any MLP VAE step get?

    OPENBLAS_CORETYPE=Haswell python3 bench/probe_fusion_bound.py --size examples
    python3 bench/probe_fusion_bound.py --size textbook

Issue #6 asks for a training step of at most 1.10× the time of its own matrix products.
Whatever is fused, a step still does the arithmetic of its elementwise passes: Adam's square
root and division for every parameter, the Bernoulli loss's exp and log1p for every pixel, the
bias and ReLU of the hidden layers. This script times, in one worker process pinned to THREADS
CPUs:

- **products**: one step's matrix products through microvae's own kernels (``matmul``,
  ``matmul_tn``, ``matmul_nt``), on preallocated cache-resident operands: ``bench_vae.py``'s
  own-kernel floor, divided by its steps;
- **each elementwise kernel at the step's shapes, on operands already in cache** (the same
  call repeated): the Adam update over every parameter, the Bernoulli loss and its gradient,
  and the fused bias+ReLU forward and backward of each hidden layer;
It prints (products + those kernels) ÷ products: the ratio a step would reach if everything
else (Python, the batch gather, the reparameterization, KL and clamp, bias sums, the memory
traffic the kernels add in training) cost nothing. A bound above 1.10 says that no fusion of
these kernels could meet the target. The kernels' arithmetic stays as it is:
exact square roots and divisions, which the tests hold bit-equal to the NumPy reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from bench_vae import SIZES, count_params, dense_shapes, matmul_floor  # noqa: E402


def _median_us(call, repeats: int, rounds: int = 7) -> float:
    call()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        times.append((time.perf_counter() - started) / repeats)
    return 1e6 * statistics.median(times)


def worker(a) -> dict:
    import numpy as np

    import microvae as mv

    spec = SIZES[a.size]
    hidden, latent = spec["hidden"], spec["latent"]
    batch = C.BATCH_SIZE
    kernels = mv.Backend("numpy", dtype="float32").kernels
    rng = np.random.default_rng(a.seed)
    f32 = np.float32

    steps = a.steps
    one_epoch, _ = matmul_floor(batch * steps, hidden, latent, a.seed, kernels=kernels)
    products = _median_us(one_epoch, 1, a.rounds) / steps

    params = count_params(hidden, latent)
    p, g, m = (rng.standard_normal(params).astype(f32) for _ in range(3))
    v = np.abs(rng.standard_normal(params)).astype(f32)
    adam = _median_us(lambda: kernels.adam_update(p, g, m, v, 0.9, 0.999, 1e-3, 1e-8), a.repeats, a.rounds)

    logits = rng.standard_normal((batch, 784)).astype(f32)
    x = rng.uniform(0, 1, (batch, 784)).astype(f32)
    dlogits, row_loss = np.empty_like(logits), np.empty(batch, f32)
    loss = _median_us(lambda: kernels.bernoulli_nll_logits(logits, x, 1 / batch, dlogits, row_loss), a.repeats, a.rounds)

    enc, dec = dense_shapes(hidden, latent)
    widths = [o for _, o in enc[:-1]] + [o for _, o in dec[:-1]]  # the hidden layers: Dense with a fused ReLU
    relu_forward = relu_backward = 0.0
    for width in widths:
        y = rng.standard_normal((batch, width)).astype(f32)
        b = rng.standard_normal(width).astype(f32)
        dy, dz, db = np.empty_like(y), np.empty_like(y), np.empty(width, f32)
        dy[...] = rng.standard_normal(y.shape)
        relu_forward += _median_us(lambda: kernels.bias_relu_forward(y, b, dz), a.repeats, a.rounds)
        relu_backward += _median_us(lambda: kernels.bias_relu_backward(dy, y, dz, db), a.repeats, a.rounds)

    return {"products_us": products, "adam_us": adam, "loss_us": loss, "bias_relu_forward_us": relu_forward, "bias_relu_backward_us": relu_backward,
            "params": params, "hidden_layers": widths, "report": C.microvae_report(), "threads": C.thread_report()}


def print_report(res: dict, size: str) -> None:
    products = res["products_us"]
    rows = [
        ["one step's products (own kernels, cache-resident operands)", C.fmt(products, 1), "1.000"],
        [f"Adam update, {res['params']:,} parameters, operands in cache", C.fmt(res["adam_us"], 1),
         f"{res['adam_us'] / products:.3f}"],
        ["Bernoulli loss and gradient, 128 × 784, in cache", C.fmt(res["loss_us"], 1), f"{res['loss_us'] / products:.3f}"],
        [f"bias+ReLU forward, hidden layers {res['hidden_layers']}", C.fmt(res["bias_relu_forward_us"], 1),
         f"{res['bias_relu_forward_us'] / products:.3f}"],
        ["bias+ReLU backward (with the bias sums), the same layers", C.fmt(res["bias_relu_backward_us"], 1),
         f"{res['bias_relu_backward_us'] / products:.3f}"],
    ]
    kernels_hot = res["adam_us"] + res["loss_us"] + res["bias_relu_forward_us"] + res["bias_relu_backward_us"]
    print(f"\n## {SIZES[size]['label']}: batch {C.BATCH_SIZE}, µs a step\n")
    print(C.markdown_table(["piece", "µs", "÷ products"], rows))
    print(f"\nBound on step ÷ products, with everything not listed taken as free: the kernels as they run on "
          f"cached operands **{(products + kernels_hot) / products:.3f}**. The target is 1.10: it leaves "
          f"{0.10 * products:.0f} µs, and these kernels take {kernels_hot:.0f}.")
    print("\n### Which kernels ran\n")
    for key, value in {**res["report"], "threads_env": res["threads"]}.items():
        print(f"  - {key}: {value}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=(*SIZES, "both"), default="both")
    p.add_argument("--steps", type=C.count(1), default=100, help="steps of products per timed floor epoch")
    p.add_argument("--repeats", type=C.count(1), default=200, help="calls per timed round of each kernel")
    p.add_argument("--rounds", type=C.count(1), default=7, help="timed rounds; the median is reported")
    p.add_argument("--threads", type=C.count(1), default=C.DEFAULT_THREADS)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        C.emit(worker(a))
        return
    machine = C.print_header("fusion bound probe", a)
    results = {}
    for size in (SIZES if a.size == "both" else (a.size,)):
        args = ["--worker", "--size", size, "--steps", str(a.steps), "--repeats", str(a.repeats), "--rounds", str(a.rounds),
                "--seed", str(a.seed), "--threads", str(a.threads)]
        res = C.run_worker(os.path.abspath(__file__), args, threads=a.threads, pin=not a.no_pin)
        if "error" in res:
            print(res["error"], file=sys.stderr)
            C.exit_if_failed({"microvae": res})
        print_report(res, size)
        results[size] = res
    C.save_json(a.json, {"machine": machine, "results": results})


if __name__ == "__main__":
    main()
