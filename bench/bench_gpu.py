#!/usr/bin/env python3
"""microvae on the GPU (backend="cupy") vs PyTorch on CUDA: the textbook MLP VAE and ConvVAE.

    python3 bench/bench_gpu.py --epochs 5
    python3 bench/bench_gpu.py --epochs 2 --limit 2000 --models vae     # smoke test

Same models, data, batch size 128, Adam (lr 1e-3), float32 and loss convention as
bench_vae.py ("textbook": 784-512-256, latent 2) and bench_convvae.py. The two frameworks run
one after the other in this process (the GPU does the work; one process keeps both on the
same device and clock), each model's microvae run first. Every epoch ends with the loss read
back to the host, which waits for the GPU, so wall-clock epochs time the GPU's work.

Needs CuPy and an NVIDIA GPU (pip install 'microvae[gpu]'); without them it says why and exits
with status 2. PyTorch is optional: without CUDA PyTorch, microvae's figures are printed alone.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_convvae  # noqa: E402
import bench_vae  # noqa: E402

MODELS = {
    "vae": "textbook MLP VAE 784-512-256, latent 2",
    "convvae": "textbook ConvVAE, latent 2",
}
LABELS = {"microvae": "microvae (CuPy)", "torch": "PyTorch (CUDA, eager)"}
HIDDEN, LATENT = (512, 256), 2


def model_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(MODELS)}, got {text!r}")
    return list(dict.fromkeys(names))


def gpu_report(xp) -> dict:
    """Which device and CuPy ran microvae's side."""
    try:
        properties = xp.cuda.runtime.getDeviceProperties(0)
        name = properties["name"]
        name = name.decode() if isinstance(name, bytes) else name
    except Exception as exc:  # noqa: BLE001 - a report, not a requirement
        name = f"unknown ({type(exc).__name__})"
    return {"device": name, "cupy": getattr(xp, "__version__", "unknown")}


def build_model(name: str, seed: int):
    """The microvae model ``name`` ("vae" or "convvae") on the CuPy backend."""
    import microvae as mv

    if name == "vae":
        return mv.VAE(784, HIDDEN, LATENT, backend="cupy", seed=seed)
    return mv.ConvVAE((1, 28, 28), latent_dim=LATENT, backend="cupy", seed=seed)


def run_microvae(name: str, a) -> dict:
    x_train, x_test = C.load_data(a.limit, flatten=(name == "vae"))
    model = build_model(name, a.seed)
    result = C.microvae_train(model, x_train, x_test, a.epochs, a.seed, C.memory_now())
    result["kernels"]["gpu"] = gpu_report(model.backend.xp)
    return result


def run_torch(name: str, a) -> dict:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
        return C.not_importable("torch", exc)
    if not torch.cuda.is_available():
        return {"skipped": "PyTorch has no CUDA device here (torch.cuda.is_available() is False)"}
    torch.manual_seed(a.seed)
    device = torch.device("cuda")
    x_train, x_test = C.load_data(a.limit, flatten=(name == "vae"))
    xt, xs = torch.from_numpy(x_train).to(device), torch.from_numpy(x_test).to(device)
    networks = bench_vae.torch_networks(torch, HIDDEN, LATENT) if name == "vae" else bench_convvae.torch_networks(torch, LATENT)
    encoder, decoder = (net.to(device) for net in networks)
    result = C.torch_train_vae(torch, encoder, decoder, LATENT, xt, xs, a.epochs, a.seed)
    result["kernels"]["gpu"] = {"device": torch.cuda.get_device_name(0), "cuda": torch.version.cuda}
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=C.count(1), default=5)
    p.add_argument("--limit", type=C.count(1), default=None, help="use only the first LIMIT train and test images (smoke tests)")
    p.add_argument("--models", type=model_list, default="vae,convvae", help="comma-separated: " + ", ".join(MODELS))
    p.add_argument("--frameworks", type=C.framework_list(("microvae", "torch")), default="microvae,torch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the raw results to this file")
    a = p.parse_args(argv)
    import microvae as mv

    try:
        mv.get_backend("cupy")
    except mv.BackendUnavailable as exc:
        print(f"bench_gpu.py measures microvae's GPU backend, which cannot run here: {exc}", file=sys.stderr)
        return 2
    runners = {"microvae": run_microvae, "torch": run_torch}
    print(f"# microvae GPU benchmark ({', '.join(a.models)}; {a.epochs} epochs)")
    everything, failed = {}, {}
    for name in a.models:
        results = {}
        for framework in a.frameworks:
            try:
                results[framework] = runners[framework](name, a)
            except Exception as exc:  # noqa: BLE001 - report it, go on with the others, exit non-zero at the end
                results[framework] = {"error": f"{type(exc).__name__}: {exc}"}
                failed[f"{name} {framework}"] = results[framework]
            if "epoch_s" in results[framework]:
                results[framework]["summary"] = C.summarize(results[framework]["epoch_s"])
                results[framework]["last_train_loss"] = results[framework]["train_loss"][-1]
        table, notes = C.results_table(results, LABELS, a.epochs)
        print(f"\n## {MODELS[name]}\n\n{table}")
        print(f"\n{C.images_used(results)}, batch {C.BATCH_SIZE}, Adam lr {C.LR}; medians over epochs "
              f"{C.summarize([0.0] * a.epochs)['epochs_used']}; ELBO: one sample of z per test image, nats per example.")
        if notes:
            print("\n" + "\n".join(notes))
        everything[name] = results
    C.print_kernel_reports({f"{name} {fw}": res for name, results in everything.items() for fw, res in results.items()})
    C.save_json(a.json, {"args": vars(a), "results": everything})
    C.exit_if_failed(failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
