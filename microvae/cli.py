"""The ``microvae`` command line: train, sample, gradcheck.

    microvae train --model vae --data sprites --epochs 10 --out runs/vae
    microvae sample runs/vae/model.npz -n 64 --out samples.png
    microvae gradcheck

Bad arguments or a missing dataset print a one-line error and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

DATASETS = ("sprites", "mnist", "fashion-mnist")
MODELS: dict = {}  # name -> (build(args, data) -> model, pictures(model, data, out, args) -> [paths])


class CLIError(Exception):
    """A user-facing error: printed without a traceback."""


def register_model(name: str, build, pictures):
    MODELS[name] = (build, pictures)


# data ---------------------------------------------------------------------------------
def load_data(name: str, limit: int | None, seed: int, flatten: bool = True) -> dict:
    """Train/test arrays plus what the pictures need (image shape, label names)."""
    from . import datasets

    if name == "sprites":
        n = limit or 20000
        sprites = datasets.make_sprites(n=n, seed=seed, flatten=flatten)
        cut = int(0.9 * n)
        labels = sprites.factors[:, 0]
        return dict(x_train=sprites.images[:cut], y_train=labels[:cut], x_test=sprites.images[cut:], y_test=labels[cut:],
                    image_shape=(32, 32), class_names=[str(s) for s in sprites.factor_values["shape"]],
                    num_classes=len(sprites.factor_values["shape"]))
    loader = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist}[name]
    (x_train, y_train), (x_test, y_test) = loader(flatten=flatten)
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
        x_test, y_test = x_test[: max(limit // 6, 100)], y_test[: max(limit // 6, 100)]
    names = list(datasets.FASHION_MNIST_CLASSES) if name == "fashion-mnist" else list(datasets.MNIST_CLASSES)
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, image_shape=(28, 28), class_names=names,
                num_classes=10)


# the VAE ----------------------------------------------------------------------------------
def _build_vae(args, data):
    from .models import VAE

    return VAE(input_dim=int(np.prod(data["x_train"].shape[1:])), hidden=args.hidden, latent_dim=args.latent_dim,
               beta=args.beta, beta_warmup=args.beta_warmup, backend=args.backend, seed=args.seed)


def _vae_pictures(model, data, out, args):
    from . import plot

    shape = data["image_shape"]
    x, y = data["x_test"], data["y_test"]
    written = []

    def save(name, make):
        path = os.path.join(out, name)
        make(path)
        written.append(path)

    save("reconstructions.png", lambda p: plot.plot_reconstructions(x[:10], model.reconstruct(x[:10]), image_shape=shape, path=p))
    save("samples.png", lambda p: plot.plot_samples(model.sample(64, seed=args.seed), image_shape=shape, path=p, title="samples from the prior"))
    mu, _ = model.encode(x[:2000])
    save("latent_scatter.png", lambda p: plot.plot_latent_scatter(mu, y[:2000], class_names=data.get("class_names"), path=p))
    save("interpolation.png", lambda p: plot.plot_interpolation(model, x[0], x[1], image_shape=shape, path=p))
    if model.latent_dim == 2:
        save("latent_grid.png", lambda p: plot.plot_latent_grid(model, n=15, image_shape=shape, path=p))
    else:
        save("traversal.png", lambda p: plot.plot_traversal(model, x[0], image_shape=shape, path=p))
    save("loss_curves.png", lambda p: plot.plot_loss_curves(model.history.as_dict(), path=p))
    return written


register_model("vae", _build_vae, _vae_pictures)


# commands ---------------------------------------------------------------------------------
def _hidden(text: str):
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths like 512,256, got {text!r}")
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer widths must be positive integers, got {text!r}")
    return sizes


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_float(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def cmd_train(args) -> int:
    from .training import ModelCheckpoint

    if args.model not in MODELS:
        raise CLIError(f"unknown model {args.model!r}; choose from {', '.join(sorted(MODELS))}")
    build, pictures = MODELS[args.model]
    data = load_data(args.data, args.limit, args.seed, flatten=args.model != "convvae")
    model = build(args, data)
    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "model.npz")
    print(f"microvae: training {model!r}\n  on {args.data}: {len(data['x_train'])} train / {len(data['x_test'])} test examples", flush=True)
    fit_args = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, verbose=args.verbose,
                    callbacks=[ModelCheckpoint(checkpoint, every=1)])
    if getattr(model, "needs_labels", False):
        model.fit(data["x_train"], data["y_train"], validation_data=(data["x_test"], data["y_test"]), **fit_args)
    else:
        model.fit(data["x_train"], validation_data=data["x_test"], **fit_args)
    model.save(checkpoint)
    model.history.to_json(os.path.join(args.out, "history.json"))
    model.history.to_csv(os.path.join(args.out, "history.csv"))
    written = [checkpoint, os.path.join(args.out, "history.json"), os.path.join(args.out, "history.csv")]
    try:
        written += pictures(model, data, args.out, args)
    except ImportError as exc:
        print(f"microvae: pictures skipped: {exc}", file=sys.stderr)
    print("wrote:\n  " + "\n  ".join(written))
    return 0


def cmd_sample(args) -> int:
    from . import plot
    from .checkpoint import load

    model = load(args.checkpoint, backend=args.backend)
    if getattr(model, "needs_labels", False):
        labels = np.full(args.n, args.label) if args.label is not None else np.arange(args.n) % model.num_classes
        images = model.sample(args.n, labels, seed=args.seed)
    else:
        if args.label is not None:
            raise CLIError(f"--label needs a conditional model; {type(model).__name__} is unconditional")
        images = model.sample(args.n, seed=args.seed)
    if getattr(model, "is_sequence_model", False):
        plot.plot_sequences(images, n=min(args.n, 8), path=args.out)
    else:
        plot.plot_samples(images, nrow=int(np.ceil(np.sqrt(args.n))), path=args.out)
    print(f"wrote {args.out}")
    return 0


def cmd_gradcheck(args) -> int:
    if args.explain:
        return _gradcheck_explain(args)
    from .selfcheck import run_checks

    failed = 0
    print(f"{'what':<10} {'check':<52} {'max rel. error':>14}  verdict   (float64, tolerance {args.tol:g})")
    for group, name, result in run_checks(seed=args.seed):
        ok = result.passed(args.tol)
        failed += not ok
        print(f"{group:<10} {name:<52} {result.max_error:>14.2e}  {'ok' if ok else 'FAIL'}")
        if args.verbose or not ok:
            for line in result.table(args.tol).splitlines()[1:]:
                print(f"{'':<11}{line}")
    print(f"{'all gradients agree' if not failed else f'{failed} check(s) FAILED'}")
    return 1 if failed else 0


def _gradcheck_explain(args) -> int:
    """`gradcheck --explain`: each VAE gradient's formula, analytic value and finite difference (microvae.explain)."""
    from .explain import explain_gradients, format_explanation

    terms = explain_gradients(seed=args.seed)
    print(format_explanation(terms, tol=args.tol))
    return 0 if all(np.isfinite(t.error) and t.error <= args.tol for t in terms) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microvae", description="Variational autoencoders with hand-written gradients.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train a model and write its checkpoint, history and pictures",
                           description="Train a model; writes model.npz, history.json/csv and PNG pictures into --out.")
    train.add_argument("--model", default="vae", help="vae (default), or another registered model: %(default)s")
    train.add_argument("--data", default="sprites", choices=DATASETS, help="dataset (default: the built-in sprites)")
    train.add_argument("--epochs", type=_positive_int, default=10)
    train.add_argument("--batch-size", type=_positive_int, default=128)
    train.add_argument("--latent-dim", type=_positive_int, default=2)
    train.add_argument("--hidden", type=_hidden, default=(512, 256), help="hidden layer widths, e.g. 512,256")
    train.add_argument("--beta", type=_non_negative_float, default=1.0, help="weight of the KL term (β-VAE when ≠ 1)")
    train.add_argument("--beta-warmup", type=int, default=0, help="steps over which β ramps up linearly from 0")
    train.add_argument("--lr", type=_positive_float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--limit", type=_positive_int, default=None, help="use only the first N training examples")
    train.add_argument("--backend", default=None, choices=("numpy", "cupy"), help="default: $MICROVAE_BACKEND or numpy")
    train.add_argument("--out", default="runs/latest", help="output folder (default: %(default)s)")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="1: progress bar + summary, 2: summary only")
    train.set_defaults(func=cmd_train)

    sample = sub.add_parser("sample", help="draw samples from a saved model into a PNG")
    sample.add_argument("checkpoint", help="a model.npz written by `microvae train` or model.save()")
    sample.add_argument("-n", type=_positive_int, default=64, help="number of samples (default 64)")
    sample.add_argument("--out", default="samples.png")
    sample.add_argument("--label", type=int, default=None, help="class to sample (conditional models)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--backend", default=None, choices=("numpy", "cupy"))
    sample.set_defaults(func=cmd_sample)

    check = sub.add_parser("gradcheck", help="check every analytic gradient against finite differences",
                           description="Prints the max relative error of each layer, loss and model gradient (float64).")
    check.add_argument("--tol", type=float, default=1e-6)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("-v", "--verbose", action="store_true", help="show the error of every input and parameter")
    check.add_argument("--explain", action="store_true",
                       help="walk through a tiny VAE's backward pass: each gradient's formula, value and finite difference")
    check.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from .backend import BackendUnavailable
    from .checkpoint import CheckpointError
    from .training import TrainingDiverged

    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, FileNotFoundError, CheckpointError, BackendUnavailable, TrainingDiverged, ImportError) as exc:
        print(f"microvae: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("microvae: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
