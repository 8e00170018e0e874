#!/usr/bin/env python3
"""Where a CPU training step of the MLP VAE goes, piece by piece, timed in training.

    OPENBLAS_CORETYPE=Haswell python3 bench/profile_step.py --size examples --epochs 3
    python3 bench/profile_step.py --size textbook --epochs 1 --limit 4096

Trains bench_vae.py's microvae model (Fashion-MNIST, batch 128, Adam) in a fresh process
pinned to THREADS CPUs, with a timer around each piece of the step: the three kinds of matrix
product (forward X·W, weight gradients Xᵀ·dY, input gradients dY·Wᵀ), the Adam update, the
Bernoulli loss, the reparameterization (and its draw of ε), the fused bias+ReLU kernels, the KL
and the logvar clamp. Prints microseconds per step for each and the step over its products:
issue #6's "≤ 1.10× its own matrix products" target bounds that ratio (bench_vae.py measures
it against the products run alone, on operands in cache; here the products are timed as they
run in training). The step is the epoch loop's time (``training._train_epoch``) over its steps:
the model's ``_train_batch`` and, around it, the batch gather and fit's per-batch checks and
sums. Each timer costs about 1 µs a call, so "the rest" (the step less every piece named)
carries about 30 µs of them. The epochs are fit(epochs=1) calls, the first left out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from bench_vae import SIZES  # noqa: E402

# (label, what is timed); "in" marks a piece timed inside another one listed above it
PIECES = [
    ("loop", "the whole training step (the epoch loop ÷ its steps)"),
    ("step", "  in it: the model's _train_batch"),
    ("matmul", "products X·W (forward)"),
    ("matmul_tn", "products Xᵀ·dY (weight gradients)"),
    ("matmul_nt", "products dY·Wᵀ (input gradients)"),
    ("adam_update", "Adam update kernel"),
    ("likelihood", "Bernoulli loss (likelihood.nll)"),
    ("bernoulli_nll_logits", "  in it: the fused loss kernel"),
    ("reparam_forward", "reparameterization forward"),
    ("normal", "  in it: drawing ε (Backend.normal)"),
    ("reparam_backward", "reparameterization backward"),
    ("bias_relu_forward", "bias + ReLU kernel, forward"),
    ("bias_relu_backward", "bias + ReLU kernel, backward"),
    ("kl_normal", "KL to N(0, I)"),
    ("clamp_logvar", "logvar clamp"),
]
PRODUCTS = ("matmul", "matmul_tn", "matmul_nt")
NESTED = ("step", "bernoulli_nll_logits", "normal")  # inside pieces already counted


def worker(a) -> dict:
    import collections
    import functools

    import microvae as mv
    import microvae.backend as backend_module
    import microvae.models.vae as vae_module
    import microvae.reparam as reparam_module
    import microvae.training as training_module

    x_train, _ = C.load_data(a.limit)
    spec = SIZES[a.size]
    model = mv.VAE(784, hidden=spec["hidden"], latent_dim=spec["latent"], seed=a.seed)
    total = collections.Counter()
    calls = collections.Counter()

    def timed(owner, name, label):
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                total[label] += time.perf_counter() - started
                calls[label] += 1

        setattr(owner, name, wrapper)

    kernels = model.backend.kernels
    for name in ("matmul", "matmul_tn", "matmul_nt", "adam_update", "bernoulli_nll_logits", "bias_relu_forward",
                 "bias_relu_backward"):
        timed(kernels, name, name)
    timed(vae_module, "clamp_logvar", "clamp_logvar")
    timed(vae_module, "kl_normal", "kl_normal")
    timed(reparam_module.Reparameterization, "forward", "reparam_forward")
    timed(reparam_module.Reparameterization, "backward", "reparam_backward")
    timed(backend_module.Backend, "normal", "normal")
    timed(type(model.likelihood), "nll", "likelihood")
    timed(type(model), "_train_batch", "step")
    timed(training_module, "_train_epoch", "loop")

    epochs, per_epoch = [], []
    for _ in range(a.epochs + 1):  # the first epoch compiles and warms up: left out
        before_total, before_calls = total.copy(), calls.copy()
        started = time.perf_counter()
        model.fit(x_train, epochs=1, batch_size=C.BATCH_SIZE, verbose=0)
        epochs.append(time.perf_counter() - started)
        steps = calls["step"] - before_calls["step"]
        per_epoch.append({label: {"us": 1e6 * (total[label] - before_total[label]) / steps,
                                  "calls": (calls[label] - before_calls[label]) / steps} for label, _ in PIECES})
    per_epoch = per_epoch[1:]
    pieces = {label: {"us": statistics.median(e[label]["us"] for e in per_epoch), "calls": per_epoch[-1][label]["calls"]}
              for label, _ in PIECES}
    ratios = [e["loop"]["us"] / sum(e[p]["us"] for p in PRODUCTS) for e in per_epoch]
    return {"pieces": pieces, "step_over_products": ratios, "epoch_s": epochs[1:], "n_train": len(x_train),
            "steps": calls["step"], "report": C.microvae_report(model), "threads": C.thread_report()}


def print_report(res: dict, size: str) -> None:
    pieces = res["pieces"]
    step = pieces["loop"]["us"]
    products = sum(pieces[p]["us"] for p in PRODUCTS)
    named = sum(v["us"] for k, v in pieces.items() if k != "loop" and k not in NESTED)
    rows = [[what, C.fmt(pieces[label]["us"], 1), f"{100 * pieces[label]['us'] / step:.1f}",
             "" if label == "loop" else C.fmt(pieces[label]["calls"], 1)] for label, what in PIECES]
    last_product = max(i for i, (label, _) in enumerate(PIECES) if label in PRODUCTS)
    rows.insert(last_product + 1, ["all products", C.fmt(products, 1), f"{100 * products / step:.1f}", ""])
    rows.append(["the rest (Python, bias adds and sums, the batch gather and checks, the timers)", C.fmt(step - named, 1),
                 f"{100 * (step - named) / step:.1f}", ""])
    print(f"\n## {SIZES[size]['label']}: {res['n_train']} training images, batch {C.BATCH_SIZE}, "
          f"{len(res['epoch_s'])} profiled epoch(s) after a warm-up one (median per step over them)\n")
    print(C.markdown_table(["piece", "µs a step", "% of the step", "calls a step"], rows))
    ratios = res["step_over_products"]
    # the median of the epochs' own ratios: the table's medians, taken piece by piece, may come
    # from different epochs, and their quotient can fall outside every epoch's
    print(f"\nStep ÷ its products (as they run in training; the median over epochs): **{statistics.median(ratios):.2f}** "
          f"(per epoch {min(ratios):.2f}–{max(ratios):.2f}); outside the products: {step - products:.0f} µs a step, "
          f"where a 1.10× target leaves {0.10 * products:.0f} µs.")
    print("Epoch seconds (timers on): " + ", ".join(f"{t:.3f}" for t in res["epoch_s"]))
    print("\n### Which kernels ran\n")
    for key, value in {**res["report"], "threads_env": res["threads"]}.items():
        print(f"  - {key}: {value}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=tuple(SIZES), default="examples")
    p.add_argument("--epochs", type=C.count(1), default=3, help="epochs profiled, after one warm-up epoch")
    p.add_argument("--limit", type=C.count(1), default=None, help="use only the first LIMIT training images")
    p.add_argument("--threads", type=C.count(1), default=C.DEFAULT_THREADS)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        C.emit(worker(a))
        return
    machine = C.print_header("step profile", a)
    args = ["--worker", "--size", a.size, "--epochs", str(a.epochs), "--seed", str(a.seed), "--threads", str(a.threads)]
    if a.limit is not None:
        args += ["--limit", str(a.limit)]
    res = C.run_worker(os.path.abspath(__file__), args, threads=a.threads, pin=not a.no_pin)
    if "error" in res:
        print(res["error"], file=sys.stderr)
        C.exit_if_failed({"microvae": res})
    print_report(res, a.size)
    C.save_json(a.json, {"machine": machine, "result": res})


if __name__ == "__main__":
    main()
