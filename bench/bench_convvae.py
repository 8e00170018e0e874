#!/usr/bin/env python3
"""Convolutional VAE on Fashion-MNIST: microvae.ConvVAE vs the same network in PyTorch (CPU, eager).

    python3 bench/bench_convvae.py --epochs 5
    python3 bench/bench_convvae.py --epochs 1 --limit 1000              # smoke test

The textbook architecture, latent 2 (padding "same" everywhere):

    encoder  Conv2D(16, 3, ReLU) → Conv2D(16, 3, ReLU) → MaxPool 2 → Conv2D(32, 3, ReLU) → MaxPool 2
             → Flatten → Dense(32, ReLU) → Dense(2·latent)                       (μ then logvar)
    decoder  Dense(7·7·32, ReLU) → Reshape(32, 7, 7) → ConvTranspose(32, 3, stride 2, ReLU)
             → ConvTranspose(16, 3, stride 2, ReLU) → ConvTranspose(1, 3) → logits (1, 28, 28)

In PyTorch the stride-2 transposed convolutions use padding=1, output_padding=1 (7 → 14 → 28),
the form PyTorch users write. Of the full 15×15 (29×29) output it keeps rows and columns
1..14, where microvae's "same" keeps 0..13: the same work and parameters, a function shifted
by one pixel. ``--same-window`` builds PyTorch's decoder with padding=0 and the last row and
column dropped instead, the same function as microvae's, which oneDNN runs about 1.5× slower
per layer. ``--check-gradients`` copies microvae's weights into that twin and compares the
whole objective and every gradient in float64, with the same noise (no training).

    python3 bench/bench_convvae.py --check-gradients

microvae.ConvVAE(input_shape=(1, 28, 28), latent_dim=2) is imported lazily: until it exists
the script says "ConvVAE not available" and reports PyTorch alone. Same data, batch size 128,
Adam (lr 1e-3), float32 and loss convention as bench_vae.py.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

FRAMEWORKS = ("microvae", "torch")
LABELS = {"microvae": "microvae ConvVAE", "torch": "PyTorch (eager, CPU)"}
LOGVAR_RANGE = C.LOGVAR_RANGE


def expected_params(latent: int) -> int:
    conv = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731 - 3×3 kernels with a bias
    dense = lambda n_in, n_out: n_in * n_out + n_out  # noqa: E731
    encoder = conv(1, 16) + conv(16, 16) + conv(16, 32) + dense(7 * 7 * 32, 32) + dense(32, 2 * latent)
    decoder = dense(latent, 7 * 7 * 32) + conv(32, 32) + conv(32, 16) + conv(16, 1)
    return encoder + decoder


# =========================================================================== workers
def worker_microvae(a):
    mem_start = C.memory_now()
    import microvae as mv

    if not hasattr(mv, "ConvVAE"):
        return {"skipped": "ConvVAE not available (microvae has no ConvVAE yet)"}
    x_train, x_test = C.load_data(a.limit, flatten=False)  # (n, 1, 28, 28)
    model = mv.ConvVAE(input_shape=(1, 28, 28), latent_dim=a.latent, seed=a.seed)
    layout = "NCHW (n, 1, 28, 28)"
    try:
        model.evaluate(x_train[:4])
    except ValueError:  # a ConvVAE that takes flat rows
        x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
        layout = "flat (n, 784)"
    return C.microvae_train(model, x_train, x_test, a.epochs, a.seed, mem_start,
                            extra={"model": repr(model), "input_layout": layout})


def worker_torch(a):
    try:
        import torch
        from torch import nn  # noqa: F401 - torch.nn must import too
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
        return C.not_importable("torch", exc)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x_train, x_test = C.load_data(a.limit, flatten=False)
    xt, xs = torch.from_numpy(x_train), torch.from_numpy(x_test)
    encoder, decoder = torch_networks(torch, a.latent, same_window=a.same_window)
    return C.torch_train_vae(torch, encoder, decoder, a.latent, xt, xs, a.epochs, a.seed)


def torch_networks(torch, latent, same_window=False):
    """The textbook ConvVAE's encoder and decoder in PyTorch, initialised as microvae's (also
    bench_gpu.py's); ``same_window``: the stride-2 transposed convolutions keep microvae's
    output window (see the module's docstring)."""
    from torch import nn

    encoder = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(7 * 7 * 32, 32), nn.ReLU(),
        nn.Linear(32, 2 * latent),
    )

    class DropLastRowAndColumn(nn.Module):  # what microvae's "same" keeps of a stride-2 output
        def forward(self, x):
            return x[..., :-1, :-1]

    def upsample(cin, cout):
        if same_window:
            return [nn.ConvTranspose2d(cin, cout, 3, stride=2), DropLastRowAndColumn(), nn.ReLU()]
        return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), nn.ReLU()]

    decoder = nn.Sequential(
        nn.Linear(latent, 7 * 7 * 32), nn.ReLU(),
        nn.Unflatten(1, (32, 7, 7)),
        *upsample(32, 32),
        *upsample(32, 16),
        nn.ConvTranspose2d(16, 1, 3, padding=1),
    )
    for net in (encoder, decoder):  # He normal before a ReLU, Glorot uniform for the last layer, zero biases
        weighted = [m for m in net if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
        with torch.no_grad():
            for i, layer in enumerate(weighted):
                if i < len(weighted) - 1:
                    # fan-in = in_channels·9 as in microvae; a transposed layer's weight is
                    # (in, out, 3, 3), so PyTorch calls that its fan-out
                    mode = "fan_out" if isinstance(layer, nn.ConvTranspose2d) else "fan_in"
                    nn.init.kaiming_normal_(layer.weight, mode=mode, nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(layer.weight)
                layer.bias.zero_()
    return encoder, decoder


WORKERS = {"microvae": worker_microvae, "torch": worker_torch}


def check_gradients(seed: int = 0, batch: int = 16) -> int:
    """microvae's ConvVAE against PyTorch autograd in float64: microvae's weights copied into
    the same-window twin, the same images and noise; prints the loss on each side and the
    largest relative difference of any weight or bias gradient; 0 if within 1e-10."""
    try:
        import torch
        import torch.nn.functional as F
    except Exception as exc:  # noqa: BLE001 - any import failure means "cannot check"
        print(f"--check-gradients needs PyTorch: {exc}")
        return 2
    import numpy as np

    import microvae as mv

    torch.set_default_dtype(torch.float64)
    model = mv.ConvVAE(input_shape=(1, 28, 28), latent_dim=2, seed=seed, backend=mv.Backend("numpy", dtype="float64"))
    encoder, decoder = torch_networks(torch, 2, same_window=True)
    pairs = []
    for ours, theirs in ((model.encoder, encoder), (model.decoder, decoder)):
        weighted = [m for m in theirs if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        with torch.no_grad():
            for layer, twin in zip([l for l in ours.layers if l.params], weighted, strict=True):
                w = np.asarray(layer.params["W"])
                twin.weight.copy_(torch.from_numpy(w.T.copy() if isinstance(twin, torch.nn.Linear) else w))
                twin.bias.copy_(torch.from_numpy(np.asarray(layer.params["b"])))
                pairs.append((layer, twin))
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 1, 28, 28)) * (rng.random((batch, 1, 28, 28)) < 0.3)
    eps = rng.standard_normal((batch, 2))
    terms = model.loss_and_grads(x, eps=eps)
    xt = torch.from_numpy(x)
    h = encoder(xt)
    mu, logvar = h[:, :2], h[:, 2:].clamp(*LOGVAR_RANGE)
    logits = decoder(mu + torch.exp(0.5 * logvar) * torch.from_numpy(eps)).reshape(xt.shape)
    loss = (F.binary_cross_entropy_with_logits(logits, xt, reduction="sum")
            + 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum()) / batch
    loss.backward()
    worst = 0.0
    for layer, twin in pairs:
        theirs_w = twin.weight.grad.numpy()
        for ours_g, theirs_g in ((np.asarray(layer.grads["W"]), theirs_w.T if isinstance(twin, torch.nn.Linear) else theirs_w),
                                 (np.asarray(layer.grads["b"]), twin.bias.grad.numpy())):
            worst = max(worst, float(np.abs(ours_g - theirs_g).max() / np.abs(theirs_g).max()))
    print(f"ConvVAE, float64, batch {batch}, seed {seed}: loss microvae {terms.loss:.12f}, PyTorch {loss.item():.12f}; "
          f"largest relative gradient difference over {len(pairs)} layers' weights and biases: {worst:.2e}")
    return 0 if worst <= 1e-10 and abs(terms.loss - loss.item()) <= 1e-10 * abs(loss.item()) else 1


# =========================================================================== parent
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=C.count(1), default=5)
    p.add_argument("--latent", type=C.count(1), default=2)
    p.add_argument("--limit", type=C.count(1), default=None, help="use only the first LIMIT train and test images (smoke tests; all of them where a set has fewer)")
    p.add_argument("--frameworks", type=C.framework_list(FRAMEWORKS), default="microvae,torch")
    p.add_argument("--threads", type=C.count(1), default=C.DEFAULT_THREADS)
    p.add_argument("--no-pin", action="store_true", help="do not bind the workers to the first THREADS CPUs")
    p.add_argument("--seed", type=int, default=0)
    C.add_common_arguments(p)
    p.add_argument("--json", default=None, help="write the raw results to this file")
    p.add_argument("--verbose", action="store_true", help="echo the workers' stderr")
    p.add_argument("--same-window", action="store_true",
                   help="PyTorch's stride-2 transposed convolutions keep microvae's output window (padding=0, last row "
                        "and column dropped: the same function, slower in oneDNN) instead of padding=1, output_padding=1")
    p.add_argument("--check-gradients", action="store_true",
                   help="compare the whole objective and every gradient with PyTorch autograd in float64, then exit")
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.check_gradients:
        sys.exit(check_gradients(a.seed))
    if a.worker:
        C.LOCKSTEP = a.lockstep
        C.emit(WORKERS[a.worker](a))
        return
    frameworks = a.frameworks  # a list: argparse runs framework_list on the default too
    if "microvae" in frameworks:
        frameworks = ["microvae"] + [f for f in frameworks if f != "microvae"]
    machine = C.print_header("ConvVAE benchmark", a)
    worker_args = ["--latent", str(a.latent)] + (["--same-window"] if a.same_window else [])
    results = C.run_frameworks(__file__, frameworks, worker_args, a, "conv")

    print(f"\n## ConvVAE (textbook architecture), latent {a.latent}\n")
    mv = results.get("microvae", {})
    if "skipped" in mv and "ConvVAE not available" in mv["skipped"]:
        print("ConvVAE not available: microvae.ConvVAE does not exist in this checkout; PyTorch alone is reported.\n")
    table, notes = C.results_table(results, LABELS, a.epochs)
    print(table)
    used = C.epochs_used(a)
    print(f"\n{C.images_used(results)}, batch {C.BATCH_SIZE}, Adam lr {C.LR}, {a.threads} threads; "
          f"medians over epochs {used}; ELBO: one sample of z per test image, nats per example.")
    expected = expected_params(a.latent)
    counts = {fw: r["params"] for fw, r in results.items() if "params" in r}
    if counts and any(c != expected for c in counts.values()):
        notes.append(f"- WARNING: parameter counts differ from the textbook architecture's {expected}: {counts}")
    if "model" in mv:
        notes.append(f"- microvae model: {mv['model']}; input layout {mv.get('input_layout')}")
    if notes:
        print("\n" + "\n".join(notes))
    overhead = C.fit_overhead_note(mv)
    if overhead:
        print(overhead)
    if "memory" in mv:
        print("\nmicrovae memory (MiB): " + C.memory_summary(mv["memory"]))
    C.print_kernel_reports(results)
    C.save_json(a.json, {"machine": machine, "args": vars(a), "results": results})
    C.exit_if_failed(results)


if __name__ == "__main__":
    main()
