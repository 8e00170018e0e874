#!/usr/bin/env python3
"""Memory of microvae training: peak and per-epoch resident set size, and whether it grows.

    python3 bench/bench_memory.py --epochs 5                  # textbook MLP VAE, full Fashion-MNIST
    python3 bench/bench_memory.py --size examples --epochs 3 --limit 2000

Runs bench_vae.py's microvae worker (same model, data and settings) in a fresh process and
prints, after each epoch, the RSS (VmRSS) and its high-water mark (VmHWM) from
/proc/self/status, plus getrusage's ru_maxrss. "Set-up" is the RSS once the data is loaded
and the model built; the training working set is the peak during training minus that.
Memory is flat when the RSS after epoch N equals the RSS after epoch 2 (epoch 1 allocates
the optimizer state and the per-batch buffers, and Numba loads its kernels).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from bench_vae import SIZES  # noqa: E402

GROWTH_TOLERANCE_MIB = 2.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=tuple(SIZES), default="textbook")
    p.add_argument("--epochs", type=C.count(3, "(to tell growth from the first epoch's allocations)"), default=5)
    p.add_argument("--limit", type=C.count(1), default=None, help="use only the first LIMIT train and test images (all of them where a set has fewer)")
    p.add_argument("--threads", type=C.count(1), default=C.DEFAULT_THREADS)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    spec = SIZES[a.size]
    args = ["--worker", "microvae", "--hidden", ",".join(map(str, spec["hidden"])), "--latent", str(spec["latent"]),
            "--epochs", str(a.epochs), "--seed", str(a.seed), "--threads", str(a.threads), "--no-paired-floor"]
    if a.limit is not None:
        args += ["--limit", str(a.limit)]
    print(f"# microvae training memory ({time.strftime('%Y-%m-%d %H:%M')}): {spec['label']}")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_vae.py")
    res = C.run_worker(script, args, threads=a.threads, pin=not a.no_pin)
    if "error" in res:
        print(res["error"], file=sys.stderr)  # the worker's stderr tail
        C.exit_if_failed({"microvae": res})
    mem = res["memory"]
    nan = float("nan")
    ready = mem["ready"].get("VmRSS", nan)
    data_mib = res["n_train"] * 784 * 4 / 2**20 + res["n_test"] * 784 * 4 / 2**20
    rows = [["before import", "", mem["start"].get("VmRSS", nan), mem["start"].get("VmHWM", nan), mem["start"].get("ru_maxrss", nan)],
            ["data loaded, model built", "", ready, mem["ready"].get("VmHWM", nan), mem["ready"].get("ru_maxrss", nan)]]
    for i, (t, m) in enumerate(zip(res["epoch_s"], mem["per_epoch"]), start=1):
        rows.append([f"after epoch {i}", t, m.get("VmRSS", nan), m.get("VmHWM", nan), m.get("ru_maxrss", nan)])
    rows.append(["after the test-ELBO pass", "", mem["after_elbo"].get("VmRSS", nan), mem["after_elbo"].get("VmHWM", nan),
                 mem["after_elbo"].get("ru_maxrss", nan)])
    print(f"\n{res['n_train']} training / {res['n_test']} test images (float32: {data_mib:.1f} MiB), batch {C.BATCH_SIZE}, "
          f"{a.threads} threads, {res['params']} parameters\n")
    rows = [[r[0], r[1]] + [f"{v:.1f}" for v in r[2:]] for r in rows]
    print(C.markdown_table(["point", "epoch s", "VmRSS MiB", "VmHWM MiB", "ru_maxrss MiB"], rows))
    per = [m.get("VmRSS", nan) for m in mem["per_epoch"]]
    peak = mem["after_training"].get("VmHWM", nan)
    if len(per) > 2:
        growth = per[-1] - per[1]
        verdict = "flat" if abs(growth) <= GROWTH_TOLERANCE_MIB else "GROWS" if growth > 0 else "shrinks"
        growth_text = (f"RSS growth from epoch 2 to epoch {len(per)}: **{growth:+.1f} MiB** "
                       f"({verdict}; tolerance ±{GROWTH_TOLERANCE_MIB} MiB)")
    else:
        growth_text = f"RSS growth: not measured (needs 3+ epochs, the worker reported {len(per)})"
    print(f"\nPeak RSS during training (VmHWM): **{peak:.1f} MiB**; training working set above set-up: "
          f"{peak - ready:.1f} MiB; {growth_text}.")
    C.save_json(a.json, {"machine": C.machine_report(), "args": vars(a), "result": res})


if __name__ == "__main__":
    main()
