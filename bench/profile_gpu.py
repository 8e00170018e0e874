#!/usr/bin/env python3
"""Where a microvae training step on the GPU spends its time: the host (Python and CuPy's
launches) or the device (the kernels).

    python3 bench/profile_gpu.py                      # both models, 100 steps each
    python3 bench/profile_gpu.py --models convvae --steps 50 --top 30

For each model (the textbook MLP VAE and ConvVAE of bench_gpu.py, batch 128, float32, Adam) it
trains one warm-up epoch of STEPS batches, then times one more: wall-clock and process CPU
time per step. The epoch ends with the loss read back to the host, which waits for the GPU, so
wall ≈ CPU means the host is the bottleneck (the GPU waits for launches), wall > CPU means
the host waits for the GPU. Then it runs a third epoch under cProfile (the host's functions,
by their own time) and, if PyTorch is installed, a fourth under torch.profiler, whose CUPTI
tracing sees every CUDA kernel in the process, CuPy's included: the kernels' summed time and
count per step, and the costliest kernels.

Needs CuPy and an NVIDIA GPU (exit status 2 without them); PyTorch is optional.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_gpu  # noqa: E402


def host_profile(train, top: int) -> str:
    """cProfile's table of ``train()``, by the functions' own time, ``top`` rows."""
    profiler = cProfile.Profile()
    profiler.enable()
    train()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def kernel_profile(train, steps: int, top: int) -> dict:
    """The CUDA kernels (and copies) ``train()`` ran, traced by torch.profiler: ms and count per step."""
    try:
        from torch.profiler import ProfilerActivity, profile
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
        return C.not_importable("torch", exc)
    with profile(activities=[ProfilerActivity.CUDA]) as traced:
        train()
    events = traced.key_averages()
    return {
        "kernel_ms_per_step": sum(e.device_time_total for e in events) / steps / 1e3,
        "kernels_per_step": sum(e.count for e in events) / steps,
        "table": events.table(sort_by="device_time_total", row_limit=top, max_name_column_width=60),
    }


def profile_model(name: str, a) -> dict:
    x, _ = C.load_data(a.steps * C.BATCH_SIZE, flatten=(name == "vae"))
    model = bench_gpu.build_model(name, a.seed)

    def train():
        model.fit(x, epochs=1, batch_size=C.BATCH_SIZE, lr=C.LR, verbose=0, seed=a.seed)

    train()  # warm-up: kernels compiled, CuPy's memory pool filled
    wall, cpu = time.perf_counter(), time.process_time()
    train()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = len(C.epoch_batches(len(x)))
    return {"steps": steps, "wall_ms_per_step": 1e3 * wall / steps, "cpu_ms_per_step": 1e3 * cpu / steps,
            "host": host_profile(train, a.top), "kernels": kernel_profile(train, steps, a.top)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=bench_gpu.model_list, default="vae,convvae", help="comma-separated: vae, convvae")
    p.add_argument("--steps", type=C.count(1), default=100, help="batches of 128 per profiled epoch")
    p.add_argument("--top", type=C.count(1), default=25, help="rows of each profile table")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    import microvae as mv

    try:
        backend = mv.get_backend("cupy")
    except mv.BackendUnavailable as exc:
        print(f"profile_gpu.py profiles microvae's GPU backend, which cannot run here: {exc}", file=sys.stderr)
        return 2
    device = bench_gpu.gpu_report(backend.xp)
    print(f"# microvae GPU step profile ({device['device']}, CuPy {device['cupy']}; {', '.join(a.models)})")
    for name in a.models:
        result = profile_model(name, a)
        print(f"\n## {bench_gpu.MODELS[name]}: {result['steps']} steps of batch {C.BATCH_SIZE}\n")
        print(f"- wall {result['wall_ms_per_step']:.3f} ms/step, host CPU {result['cpu_ms_per_step']:.3f} ms/step")
        kernels = result["kernels"]
        if "skipped" in kernels:
            print(f"- GPU kernels: {kernels['skipped']}")
        else:
            print(f"- GPU kernels: {kernels['kernel_ms_per_step']:.3f} ms/step, {kernels['kernels_per_step']:.1f} per step")
        print(f"\n### The host's functions (cProfile, one epoch)\n\n```\n{result['host'].strip()}\n```")
        if "table" in kernels:
            print(f"\n### The kernels (torch.profiler, one epoch)\n\n```\n{kernels['table'].strip()}\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
