#!/usr/bin/env python3
"""Memory of microvae training: peak and per-epoch resident set size, and whether it grows.

    python3 bench/bench_memory.py --epochs 5                  # textbook MLP VAE, full Fashion-MNIST
    python3 bench/bench_memory.py --size examples --epochs 3 --limit 2000

Runs bench_vae.py's microvae worker (same model, data and settings) in a fresh process, one
epoch per ``fit`` call, and prints for each epoch its own peak RSS and the RSS after it, from
/proc/self/status. An epoch's peak is VmHWM read at the epoch's end after resetting it
(/proc/self/clear_refs) at the epoch's start, once fit has checked the data: the peak of the
training loop itself. "Set-up" is the RSS once the data is loaded and the model built; the
training working set is the largest epoch peak minus that. Memory is flat when epoch N's peak
and RSS equal epoch 2's (epoch 1 allocates the optimizer state and the per-batch buffers, and
Numba loads its kernels). The process's peak (VmHWM over its whole life: fit's data checks, a
cold cache's compilation and the test-ELBO pass included) is printed apart.
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
    peaks = mem.get("epoch_peak") or [nan] * len(mem["per_epoch"])
    rows = [["before import", "", "", mem["start"].get("VmRSS", nan)], ["data loaded, model built", "", "", ready]]
    for i, (t, peak, m) in enumerate(zip(res["epoch_s"], peaks, mem["per_epoch"]), start=1):
        rows.append([f"epoch {i}", f"{t:.3f}", f"{peak:.1f}" if peak == peak else "–", m.get("VmRSS", nan)])
    rows.append(["the test-ELBO pass", "", "", mem["after_elbo"].get("VmRSS", nan)])
    print(f"\n{res['n_train']} training / {res['n_test']} test images (float32: {data_mib:.1f} MiB), batch {C.BATCH_SIZE}, "
          f"{a.threads} threads, {res['params']} parameters\n")
    rows = [r[:3] + [f"{r[3]:.1f}"] for r in rows]
    print(C.markdown_table(["point", "epoch s", "the epoch's own peak MiB", "RSS after it MiB"], rows))
    per = [m.get("VmRSS", nan) for m in mem["per_epoch"]]
    texts = [_growth_text("RSS", per)]
    if all(v == v for v in peaks):
        peak = max(peaks)
        head = f"Peak of a training epoch: **{peak:.1f} MiB**; training working set above set-up: {peak - ready:.1f} MiB"
        texts.append(_growth_text("epoch-peak", peaks))
    else:
        head = "Peak of a training epoch: not measured (needs a writable /proc/self/clear_refs)"
    print(f"\n{head}; {'; '.join(texts)}. The process's peak (fit's data checks, compilation, the "
          f"test-ELBO pass): {C.process_peak(mem):.1f} MiB.")
    C.save_json(a.json, {"machine": C.machine_report(), "args": vars(a), "result": res})


def _growth_text(what: str, values: list) -> str:
    """``C.growth_from_epoch_2``, and whether that is flat within the tolerance."""
    growth = C.growth_from_epoch_2(values)
    if growth is None:
        return f"{what} growth: not measured (needs 3+ epochs, the worker reported {len(values)})"
    verdict = "flat" if abs(growth) <= GROWTH_TOLERANCE_MIB else "GROWS" if growth > 0 else "shrinks"
    return (f"{what} growth from epoch 2 to epoch {len(values)}: **{growth:+.1f} MiB** "
            f"({verdict}; tolerance ±{GROWTH_TOLERANCE_MIB} MiB)")


if __name__ == "__main__":
    main()
