#!/usr/bin/env python3
"""MLP VAE on Fashion-MNIST: microvae vs PyTorch (CPU, eager) vs JAX (jit), and the floors of its matrix products.

    python3 bench/bench_vae.py --epochs 10                       # both sizes, every framework
    python3 bench/bench_vae.py --size textbook --epochs 1 --limit 2000   # smoke test

Sizes: "textbook" is 784-512-256, latent 2; "examples" is the pytorch/examples VAE, 784-400,
latent 20 (decoders mirror the encoders). Every framework trains the same model with the
same data, batch size 128 (last partial batch included, reshuffled each epoch), Adam
(lr 1e-3, β = (0.9, 0.999), ε = 1e-8, bias-corrected), float32, the loss summed over pixels
and latent dimensions and averaged over the batch. Each framework runs in its own
subprocess, one after another, with 2 threads (see bench/README.md).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SIZES = {
    "textbook": {"hidden": (512, 256), "latent": 2, "label": "textbook MLP VAE 784-512-256, latent 2"},
    "examples": {"hidden": (400,), "latent": 20, "label": "pytorch/examples VAE 784-400, latent 20"},
}
FRAMEWORKS = ("microvae", "torch", "jax", "floor")
LABELS = {"microvae": "microvae", "torch": "PyTorch (eager, CPU)", "jax": "JAX (jit)", "floor": "BLAS floor (NumPy matmuls only)"}
LOGVAR_RANGE = C.LOGVAR_RANGE


def dense_shapes(hidden, latent, input_dim=784):
    """(in, out) of every Dense layer: encoder input → hidden → 2·latent, decoder latent → hidden reversed → input."""
    enc = (input_dim, *hidden, 2 * latent)
    dec = (latent, *hidden[::-1], input_dim)
    return list(zip(enc[:-1], enc[1:])), list(zip(dec[:-1], dec[1:]))


def count_params(hidden, latent, input_dim=784):
    enc, dec = dense_shapes(hidden, latent, input_dim)
    return sum(i * o + o for i, o in enc + dec)


# =========================================================================== workers
def worker_microvae(a):
    mem_start = C.memory_now()
    import microvae as mv

    x_train, x_test = C.load_data(a.limit)
    model = mv.VAE(784, a.hidden, a.latent, seed=a.seed)
    if a.no_paired_floor:
        return C.microvae_train(model, x_train, x_test, a.epochs, a.seed, mem_start)
    # one epoch of the floor's products right after each microvae epoch, through BLAS and
    # through microvae's own kernels, in turns (BLAS first after odd epochs): paired ratios
    floors = {"paired_floor": matmul_floor(len(x_train), a.hidden, a.latent, a.seed)[0],
              "paired_own_floor": matmul_floor(len(x_train), a.hidden, a.latent, a.seed, kernels=model.backend.kernels)[0]}
    floor_times = {key: [] for key in floors}

    def time_floors():
        keys = list(floors) if len(floor_times["paired_floor"]) % 2 == 0 else list(floors)[::-1]
        for key in keys:
            started = time.perf_counter()
            floors[key]()
            floor_times[key].append(time.perf_counter() - started)

    result = C.microvae_train(model, x_train, x_test, a.epochs, a.seed, mem_start, after_epoch=time_floors)
    for key, one_epoch in floors.items():
        result[key] = {"epoch_s": floor_times[key], "operands_mib": one_epoch.nbytes / 2**20}
    return result


def worker_torch(a):
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
        return C.not_importable("torch", exc)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x_train, x_test = C.load_data(a.limit)
    xt, xs = torch.from_numpy(x_train), torch.from_numpy(x_test)
    encoder, decoder = torch_networks(torch, a.hidden, a.latent)
    return C.torch_train_vae(torch, encoder, decoder, a.latent, xt, xs, a.epochs, a.seed)


def torch_networks(torch, hidden, latent):
    """The PyTorch encoder and decoder of the MLP VAE, initialised as microvae's (also bench_gpu.py's)."""

    def mlp(shapes):
        layers = []
        for i, (n_in, n_out) in enumerate(shapes):
            lin = torch.nn.Linear(n_in, n_out)
            with torch.no_grad():
                if i < len(shapes) - 1:  # He normal before ReLU, Glorot uniform last, zero biases (as microvae)
                    lin.weight.normal_(0.0, math.sqrt(2.0 / n_in))
                else:
                    torch.nn.init.xavier_uniform_(lin.weight)
                lin.bias.zero_()
            layers.append(lin)
            if i < len(shapes) - 1:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    enc_shapes, dec_shapes = dense_shapes(hidden, latent)
    return mlp(enc_shapes), mlp(dec_shapes)


def worker_jax(a):
    try:
        import jax
        import jax.numpy as jnp
    except Exception as exc:  # noqa: BLE001
        return C.not_importable("jax", exc)
    import numpy as np

    x_train, x_test = C.load_data(a.limit)
    enc_shapes, dec_shapes = dense_shapes(a.hidden, a.latent)
    latent, b1, b2, adam_eps, lr = a.latent, 0.9, 0.999, 1e-8, C.LR

    def init_mlp(key, shapes):
        layers = []
        for i, (n_in, n_out) in enumerate(shapes):
            key, sub = jax.random.split(key)
            if i < len(shapes) - 1:
                w = jax.random.normal(sub, (n_in, n_out), jnp.float32) * math.sqrt(2.0 / n_in)
            else:
                limit = math.sqrt(6.0 / (n_in + n_out))
                w = jax.random.uniform(sub, (n_in, n_out), jnp.float32, -limit, limit)
            layers.append((w, jnp.zeros((n_out,), jnp.float32)))
        return layers

    def mlp(layers, h):
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            if i < len(layers) - 1:
                h = jax.nn.relu(h)
        return h

    def terms(params, x, eps):
        h = mlp(params["enc"], x)
        mu, logvar = h[:, :latent], jnp.clip(h[:, latent:], *LOGVAR_RANGE)
        z = mu + jnp.exp(0.5 * logvar) * eps
        logits = mlp(params["dec"], z)
        recon = jnp.sum(jax.nn.softplus(logits) - x * logits, axis=1)
        kl = 0.5 * jnp.sum(mu * mu + jnp.exp(logvar) - 1.0 - logvar, axis=1)
        return recon, kl

    def loss_fn(params, x, eps):
        recon, kl = terms(params, x, eps)
        return jnp.mean(recon + kl)

    def train_step(params, m, v, t, key, x_all, idx):
        x = x_all[idx]
        key, sub = jax.random.split(key)
        eps = jax.random.normal(sub, (x.shape[0], latent), jnp.float32)
        loss, grads = jax.value_and_grad(loss_fn)(params, x, eps)
        t = t + 1.0
        m = jax.tree_util.tree_map(lambda m_, g: b1 * m_ + (1.0 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v_, g: b2 * v_ + (1.0 - b2) * g * g, v, grads)
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        params = jax.tree_util.tree_map(lambda p, m_, v_: p - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + adam_eps), params, m, v)
        return params, m, v, t, key, loss

    step = jax.jit(train_step, donate_argnums=(0, 1, 2))

    @jax.jit
    def test_elbo(params, x, key):
        eps = jax.random.normal(key, (x.shape[0], latent), jnp.float32)
        recon, kl = terms(params, x, eps)
        return -jnp.mean(recon + kl)

    key = jax.random.PRNGKey(a.seed)
    key, k_enc, k_dec = jax.random.split(key, 3)
    params = {"enc": init_mlp(k_enc, enc_shapes), "dec": init_mlp(k_dec, dec_shapes)}
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    t = jnp.float32(0.0)
    x_all = jax.device_put(jnp.asarray(x_train))
    n = len(x_train)
    rng = np.random.default_rng(a.seed)
    epoch_times, losses, rss = [], [], []
    for _ in C.epoch_turns(a.epochs):
        started = time.perf_counter()
        order = rng.permutation(n).astype(np.int32)
        batch_losses, sizes = [], []
        for start in range(0, n, C.BATCH_SIZE):
            idx = order[start:start + C.BATCH_SIZE]
            params, m, v, t, key, loss = step(params, m, v, t, key, x_all, idx)
            batch_losses.append(loss)
            sizes.append(len(idx))
        jax.block_until_ready(params)
        total = float(np.dot(np.asarray(jnp.stack(batch_losses)), np.asarray(sizes, np.float64)))
        epoch_times.append(time.perf_counter() - started)
        losses.append(total / n)
        rss.append(C.memory_now())
    key, k_test = jax.random.split(key)
    elbo = float(test_elbo(params, jnp.asarray(x_test), k_test))
    return {
        "framework": "jax",
        "epoch_s": epoch_times,
        "train_loss": losses,
        "test_elbo": elbo,
        "params": int(sum(p.size for p in jax.tree_util.tree_leaves(params))),
        "n_train": n, "n_test": len(x_test),
        "memory": {"per_epoch": rss},
        "kernels": {**C.jax_report(), "adam": "hand-written, inside the jitted step (buffers donated)",
                    "threads_env": C.thread_report()},
    }


def matmul_floor(n: int, hidden, latent, seed: int, kernels=None):
    """(one_epoch, flops): the matrix products of one training epoch on n images, through
    NumPy's BLAS (``numpy.matmul``, called by microvae's reference kernels), into preallocated
    outputs; ``one_epoch.nbytes`` is what its operands hold.

    Per minibatch (size b) and Dense layer (in → out): forward X·W (b×in · in×out), weight
    gradient Xᵀ·dY (in×b · b×out), input gradient dY·Wᵀ (b×out · out×in), except the input
    gradient of the encoder's first layer, which training never needs.

    With ``kernels`` (a microvae backend's ``kernels``) the same products go through
    ``kernels.matmul``, ``matmul_tn`` and ``matmul_nt``, called as microvae's Dense layer calls
    them: the floor of microvae's own products."""
    import numpy as np

    enc, dec = dense_shapes(hidden, latent)
    layers = enc + dec
    rng = np.random.default_rng(seed)
    weights = [(rng.standard_normal((i, o)).astype(np.float32), np.empty((i, o), np.float32)) for i, o in layers]
    bufs = {}
    batches = C.epoch_batches(n)
    for b in set(batches):
        bufs[b] = [tuple(rng.standard_normal(s).astype(np.float32) for s in ((b, i), (b, o), (b, o), (b, i)))
                   for i, o in layers]

    if kernels is None:  # numpy.matmul with out=, through microvae's reference twins (they import no Numba)
        from microvae.kernels import reference as kernels
    forward, weight_grad, input_grad = kernels.matmul, kernels.matmul_tn, kernels.matmul_nt

    def one_epoch():
        for b in batches:
            acts = bufs[b]
            for (w, _), (x, y, _, _) in zip(weights, acts):
                forward(x, w, y)
            for li in range(len(layers) - 1, -1, -1):
                (w, gw), (x, _, dy, dx) = weights[li], acts[li]
                weight_grad(x, dy, gw)
                if li != 0:
                    input_grad(dy, w, dx)

    flops = sum(2 * b * i * o * (3 if li != 0 else 2) for b in batches for li, (i, o) in enumerate(layers))
    one_epoch.arrays = {"weights": weights, "batches": bufs}  # [(W, dW)], {b: [(X, Y, dY, dX)]}: for the tests
    one_epoch.nbytes = sum(a.nbytes for pair in weights for a in pair) + sum(a.nbytes for acts in bufs.values()
                                                                             for layer in acts for a in layer)
    return one_epoch, flops


def worker_floor(a):
    """The BLAS floor on its own (``matmul_floor``), timed over ``--floor-repeats`` epochs."""
    x_train, _ = C.load_data(a.limit)  # only its length matters; loading keeps the process comparable
    n = len(x_train)
    del x_train
    one_epoch, flops = matmul_floor(n, a.hidden, a.latent, a.seed)
    times = []
    for _ in C.epoch_turns(a.floor_repeats):
        started = time.perf_counter()
        one_epoch()
        times.append(time.perf_counter() - started)
    med = C.summarize(times)["median_s"]
    return {
        "framework": "floor",
        "epoch_s": times,
        "gflop_per_epoch": flops / 1e9,
        "gflops": flops / 1e9 / med if med > 0 else None,
        "n_train": n,
        "kernels": {**C.numpy_report(), "threads_env": C.thread_report()},
    }


WORKERS = {"microvae": worker_microvae, "torch": worker_torch, "jax": worker_jax, "floor": worker_floor}


# =========================================================================== parent
def run_size(a, size: str, frameworks) -> dict:
    spec = SIZES[size]
    # under --lockstep the floor worker takes a turn beside every epoch, so that its paired
    # ratio covers epochs 2..N like the others' (paired_ratios stops at the shorter list)
    repeats = max(a.floor_repeats, a.epochs) if a.lockstep else a.floor_repeats
    worker_args = ["--hidden", ",".join(map(str, spec["hidden"])), "--latent", str(spec["latent"]),
                   "--floor-repeats", str(repeats)]
    return C.run_frameworks(__file__, frameworks, worker_args, a, size)


def paired_floor_ratios(epoch_s_by_round, paired_rounds):
    """(floor epochs, microvae epoch ÷ the floor epoch timed right after it) over epochs 2..N
    of every round (epoch 1 carries warm-up; a one-epoch round keeps its only pair)."""
    floors, ratios = [], []
    for mv_times, paired in zip(epoch_s_by_round, paired_rounds):
        pairs = list(zip(mv_times, paired["epoch_s"]))
        pairs = pairs[1:] if len(pairs) > 1 else pairs
        ratios += [m / f for m, f in pairs]
        floors += [f for _, f in pairs]
    return floors, ratios


def report_size(a, size: str, results: dict) -> None:
    spec = SIZES[size]
    print(f"\n## {spec['label']}\n")
    mv = results.get("microvae", {})
    mv_med = mv.get("summary", {}).get("median_s")
    table, notes = C.results_table(results, LABELS, a.epochs)
    print(table)
    used = C.epochs_used(a)
    print(f"\n{C.images_used(results)}, batch {C.BATCH_SIZE}, Adam lr {C.LR}, {a.threads} threads; "
          f"medians over epochs {used}; ELBO: one sample of z per test image, nats per example.")
    floor = results.get("floor", {})
    if "summary" in floor and mv_med and floor["summary"]["median_s"] > 0:
        f_med = floor["summary"]["median_s"]
        # the rate over the printed median (over every round), not a round's own "gflops"
        print(f"BLAS floor: {f_med:.3f} s/epoch ({floor['gflop_per_epoch']:.2f} GFLOP per epoch, "
              f"{floor['gflop_per_epoch'] / f_med:.1f} GFLOP/s); **microvae ÷ floor = {mv_med / f_med:.2f}**")
    for key, what, name in (("paired_floor", "Paired floor (one epoch of the same matmuls timed in microvae's process "
                                              "right after each of its epochs)", "paired floor"),
                            ("paired_own_floor", "Own-kernel floor (the same products through microvae's own kernels, "
                                                 "as its Dense layers call them, timed beside the paired floor)",
                             "own-kernel floor")):
        if mv.get(key):
            floors, ratios = paired_floor_ratios(mv["epoch_s_by_round"], mv[key])
            print(f"{what}: median {C.statistics.median(floors):.3f} s/epoch; **microvae ÷ {name} = "
                  f"{C.statistics.median(ratios):.2f}** (median of per-epoch ratios, range {min(ratios):.2f}–{max(ratios):.2f})")
    expected = count_params(spec["hidden"], spec["latent"])
    counts = {fw: r["params"] for fw, r in results.items() if "params" in r}
    if counts and any(c != expected for c in counts.values()):
        notes.append(f"- WARNING: parameter counts differ from the expected {expected}: {counts}")
    if notes:
        print("\n" + "\n".join(notes))
    overhead = C.fit_overhead_note(mv)
    if overhead:
        print(overhead)
    if "memory" in mv:
        print("\nmicrovae memory (MiB): " + C.memory_summary(mv["memory"]))
        floor_mib = [rounds[0].get("operands_mib") for key in ("paired_floor", "paired_own_floor")
                     if (rounds := mv.get(key))]
        if floor_mib and None not in floor_mib:
            print(f"(These include the paired floors' operands, {sum(floor_mib):.1f} MiB, allocated in the same "
                  "process; bench/bench_memory.py measures microvae without them.)")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=("textbook", "examples", "both"), default="both")
    p.add_argument("--epochs", type=C.count(1), default=10)
    p.add_argument("--limit", type=C.count(1), default=None, help="use only the first LIMIT train and test images (smoke tests; all of them where a set has fewer)")
    p.add_argument("--frameworks", type=C.framework_list(FRAMEWORKS), default="microvae,torch,jax,floor")
    p.add_argument("--threads", type=C.count(1), default=C.DEFAULT_THREADS)
    p.add_argument("--no-pin", action="store_true", help="do not bind the workers to the first THREADS CPUs")
    p.add_argument("--seed", type=int, default=0)
    C.add_common_arguments(p)
    p.add_argument("--floor-repeats", type=C.count(1), default=6, help="epochs of matmuls timed for the BLAS floor (under --lockstep at least --epochs)")
    p.add_argument("--json", default=None, help="write the raw results to this file")
    p.add_argument("--verbose", action="store_true", help="echo the workers' stderr")
    # worker side
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--hidden", default=None, help=argparse.SUPPRESS)
    p.add_argument("--latent", type=C.count(1), default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-paired-floor", action="store_true", help=argparse.SUPPRESS)  # bench_memory: training alone
    a = p.parse_args(argv)
    if a.worker:
        C.LOCKSTEP = a.lockstep
        a.hidden = tuple(int(h) for h in a.hidden.split(","))
        C.emit(WORKERS[a.worker](a))
        return
    frameworks = a.frameworks  # a list: argparse runs framework_list on the default too
    if "microvae" in frameworks:  # microvae first: the ratios are against it
        frameworks = ["microvae"] + [f for f in frameworks if f != "microvae"]
    sizes = ["textbook", "examples"] if a.size == "both" else [a.size]
    machine = C.print_header("MLP VAE benchmark", a)
    all_results = {}
    for size in sizes:
        all_results[size] = run_size(a, size, frameworks)
        report_size(a, size, all_results[size])
    C.print_kernel_reports(all_results[sizes[0]])
    C.save_json(a.json, {"machine": machine, "args": vars(a), "results": all_results})
    C.exit_if_failed({f"{fw} ({size})": res for size in sizes for fw, res in all_results[size].items()})


if __name__ == "__main__":
    main()
