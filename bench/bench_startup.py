#!/usr/bin/env python3
"""Start-up costs of microvae: `import microvae` in a fresh process, and the first training step.

    python3 bench/bench_startup.py                 # 7 imports, 3 first-step runs
    python3 bench/bench_startup.py --imports 3     # quicker

Import: each run is a fresh interpreter that times ``import microvae`` with perf_counter
(NumPy, Numba and tqdm come in with it); one untimed run first warms the OS file cache.
For context the same is done for ``import numpy`` and ``import numba`` alone.

First training step: a fresh process builds the textbook VAE (784-512-256, latent 2) and
times its first ``fit`` call on one batch of 128 Fashion-MNIST images (one forward,
backward and Adam step, plus fit's bookkeeping), then a second identical call for the
steady-state figure. The Numba kernels compile on first use (``cache=True``), so the runs
share a fresh, empty NUMBA_CACHE_DIR: run 1 compiles and fills it (cold), run 2 loads
from it (warm, the reported figure), run 3 confirms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

IMPORTS = ("microvae", "numpy", "numba")


def worker_import(a):
    started = time.perf_counter()
    __import__(a.module)
    return {"module": a.module, "import_s": time.perf_counter() - started}


def worker_first_step(a):
    started = time.perf_counter()
    import microvae as mv

    import_s = time.perf_counter() - started
    lazy = {m: m not in sys.modules for m in ("numba", "scipy", "tqdm")}
    x_train, _ = C.load_data(limit=C.BATCH_SIZE)
    started = time.perf_counter()
    model = mv.VAE(784, (512, 256), 2, seed=0)
    build_s = time.perf_counter() - started
    steps = []
    for _ in range(2):
        started = time.perf_counter()
        model.fit(x_train, epochs=1, batch_size=C.BATCH_SIZE, lr=C.LR, verbose=0, seed=0)
        steps.append(time.perf_counter() - started)
    return {"import_s": import_s, "build_s": build_s, "first_step_s": steps[0], "second_step_s": steps[1],
            "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
            "not_loaded_by_import_microvae": [m for m, absent in lazy.items() if absent],
            "kernels": {**C.microvae_report(model), **C.numpy_report(), "threads_env": C.thread_report()}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--imports", type=C.count(1), default=7, help="timed fresh-process imports per module")
    p.add_argument("--step-runs", type=C.count(2, "(the second run is the warm-cache one)"), default=3,
                   help="fresh processes timing the first step (>= 2)")
    p.add_argument("--threads", type=C.count(1), default=C.DEFAULT_THREADS)
    p.add_argument("--no-pin", action="store_true", help="do not bind the workers to the first THREADS CPUs")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", choices=("import", "step"), help=argparse.SUPPRESS)
    p.add_argument("--module", default="microvae", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        C.emit(worker_import(a) if a.worker == "import" else worker_first_step(a))
        return
    script = os.path.abspath(__file__)
    run = lambda args, env=None: C.run_worker(script, args, a.threads, extra_env=env, pin=not a.no_pin)  # noqa: E731
    machine = C.print_header("start-up benchmark", a)

    imports, rows, failed = {}, [], {}
    for module in IMPORTS:
        print(f"[startup] import {module} x{a.imports} ...", file=sys.stderr, flush=True)
        run(["--worker", "import", "--module", module])  # warm the file cache, untimed
        runs = [run(["--worker", "import", "--module", module]) for _ in range(a.imports)]
        bad = [r["error"] for r in runs if "error" in r]
        if bad:
            failed[f"import {module}"] = {"error": bad[0]}
            rows.append([f"import {module}", "FAILED: " + bad[0].splitlines()[-1], "", "", ""])
            continue
        times = [r["import_s"] for r in runs]
        walls = [r["wall_s"] for r in runs]
        imports[module] = {"import_s": times, "process_wall_s": walls}
        rows.append([f"`import {module}`", statistics.median(times), min(times), max(times), statistics.median(walls)])
    print("\n## Import time (fresh process each run)\n")
    print(C.markdown_table(["what", "median s", "min s", "max s", "median process wall s (interpreter start + import + exit)"], rows))

    steps = []
    with tempfile.TemporaryDirectory(prefix="microvae-numba-cache-") as cache:
        for i in range(a.step_runs):
            print(f"[startup] first training step, run {i + 1} ...", file=sys.stderr, flush=True)
            steps.append(run(["--worker", "step"], {"NUMBA_CACHE_DIR": cache}))
    print("\n## First training step (textbook VAE, batch 128; fresh process each run, shared Numba cache)\n")
    rows = []
    for i, r in enumerate(steps, start=1):
        kind = "cold cache (compiles)" if i == 1 else "warm cache"
        if "error" in r:
            failed[f"first step run {i}"] = r
            rows.append([f"run {i}: {kind}", "FAILED: " + r["error"].splitlines()[-1], "", "", ""])
        else:
            rows.append([f"run {i}: {kind}", r["first_step_s"], r["second_step_s"], r["import_s"], r["build_s"]])
    print(C.markdown_table(["run", "first step s", "second step s", "import s", "build model s"], rows))
    if "first_step_s" in steps[1]:
        print(f"\n**First training step with a warm Numba cache: {steps[1]['first_step_s']:.3f} s** "
              f"(steady-state step {steps[1]['second_step_s']:.4f} s; cold cache: "
              f"{steps[0].get('first_step_s', float('nan')):.3f} s).")
    if steps[1].get("not_loaded_by_import_microvae"):
        print(f"(`import microvae` does not load {', '.join(steps[1]['not_loaded_by_import_microvae'])}: "
              "what it defers is paid when the first model is built or trained, i.e. in 'build model s' and the first step.)")
    if "import_s" in imports.get("microvae", {}):
        print(f"**`import microvae`: {statistics.median(imports['microvae']['import_s']):.3f} s** (median of {a.imports}).")
    C.print_kernel_reports({"first-step worker": steps[1]})
    C.save_json(a.json, {"machine": machine, "args": vars(a), "imports": imports, "first_step": steps})
    C.exit_if_failed(failed)


if __name__ == "__main__":
    main()
