"""The ``microvae`` command line: train, sample, evaluate, gradcheck.

    microvae train --model vae --data sprites --epochs 10 --out runs/vae
    microvae train --resume --out runs/vae --epochs 5
    microvae sample runs/vae/model.npz -n 64 --out samples.png
    microvae evaluate runs/vae/model.npz
    microvae gradcheck

Bad arguments, a missing dataset or an unwritable output path print a short message, without
a traceback (for a missing dataset: the folders searched and how to get the files), and exit
with status 2. ``train --out`` is a folder (created if missing; any text, braces
included, is taken literally); ``sample --out`` is a ``.png`` file (its folder is created if
missing).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys

import numpy as np

IMAGE_DATASETS = ("sprites", "mnist", "fashion-mnist")
SEQUENCE_DATASETS = ("sinusoids", "piano-rolls")
DATASETS = IMAGE_DATASETS + SEQUENCE_DATASETS
MODELS: dict = {}  # name -> ModelEntry


class CLIError(Exception):
    """A user-facing error: printed without a traceback."""


class ModelEntry:
    """How the CLI builds, trains and pictures one kind of model. ``uses_labels(model)``: whether
    it trains on the data's labels; ``min_test``: how many test examples its pictures need (an
    interpolation needs two)."""

    def __init__(self, build, pictures, uses_labels=lambda model: False, sequences=False, min_test=1):
        self.build, self.pictures, self.uses_labels, self.sequences = build, pictures, uses_labels, sequences
        self.min_test = min_test


def register_model(name: str, build, pictures, uses_labels=lambda model: False, sequences=False, min_test=1):
    """Make ``--model name`` available to ``microvae train`` (see ModelEntry for the arguments)."""
    MODELS[name] = ModelEntry(build, pictures, uses_labels, sequences, min_test)


# data ---------------------------------------------------------------------------------
SPLIT_DATASETS = ("sprites",) + SEQUENCE_DATASETS  # generated here: --limit examples, split 90/10 into train/test


def _train_size(n: int) -> int:
    """How many of n generated examples are for training; the rest are the test set."""
    return int(0.9 * n)


def check_limit(limit: int | None, data: str, min_test: int = 1) -> None:
    """Reject a --limit too small to leave a training example and ``min_test`` test examples."""
    if limit is None or data not in SPLIT_DATASETS:
        return  # the default size, or MNIST: --limit cuts the training set only, the test set keeps >= 100
    smallest = next(n for n in range(2, 100) if _train_size(n) >= 1 and n - _train_size(n) >= min_test)
    if limit < smallest:
        need = "1 training example and " + ("2 test examples (the pictures interpolate between two)" if min_test > 1
                                            else "1 test example")
        raise CLIError(f"--limit {limit} is too small for --data {data}: a tenth of the examples is held out for testing, "
                       f"and this model needs {need}; use --limit {smallest} or more")


def load_data(name: str, limit: int | None, seed: int, flatten: bool = True, sequences: bool = False) -> dict:
    """Train/test arrays plus what the pictures need (image shape, label names).

    With ``sequences=True`` images become sequences of rows, (n, height, width)."""
    from . import datasets

    if name in SEQUENCE_DATASETS:
        if not sequences:
            raise CLIError(f"--data {name} is sequence data; use --model vrae or hvrae (or an image dataset)")
        n = limit or 4000
        if name == "sinusoids":
            x = datasets.make_sinusoids(n=n, length=48, seed=seed, unit_range=True).x
        else:
            x = datasets.make_piano_rolls(n=n, length=32, seed=seed).rolls
        cut = _train_size(n)
        return dict(x_train=x[:cut], y_train=None, x_test=x[cut:], y_test=None, kind=name)
    if sequences:
        data = load_data(name, limit, seed, flatten=True)
        side = data["image_shape"][0]
        for key in ("x_train", "x_test"):
            data[key] = datasets.images_as_sequences(data[key], side, side)
        data["kind"] = "image-rows"
        return data

    if name == "sprites":
        n = limit or 20000
        sprites = datasets.make_sprites(n=n, seed=seed, flatten=flatten)
        cut = _train_size(n)
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


# which model takes which option -----------------------------------------------------------
# An option left out gives the model class's own default, so `microvae train --model X` builds
# what `mv.X(...)` builds. An option given to a model that does not take it is refused.
MODEL_OPTIONS = {
    "latent_dim": ("vae", "cvae", "convvae", "aae", "vrae", "hvrae"),
    "hidden": ("vae", "cvae", "aae"),
    "beta": ("vae", "cvae", "convvae", "vrae", "hvrae"),
    "beta_warmup": ("vae", "cvae", "convvae", "vrae", "hvrae"),
    "capacity": ("vae", "cvae", "convvae"),
    "capacity_warmup": ("vae", "cvae", "convvae"),
    "condition_at": ("cvae",),
    "learned_prior": ("cvae",),
    "variant": ("convvae",),
    "prior": ("aae",),
    "cell": ("vrae", "hvrae"),
    "rnn_hidden": ("vrae", "hvrae"),
    "input_dropout": ("vrae", "hvrae"),
    "segment_length": ("hvrae",),
    "likelihood": ("vae", "cvae", "convvae", "aae", "vrae", "hvrae"),
}
_KEYWORD = {"rnn_hidden": "hidden_size"}  # the constructor's name, where the option's differs


def _is_given(value) -> bool:
    # identity, not ==: 0 (--beta 0, --beta-warmup 0) is given, and 0 == False
    return value is not None and value is not False


def check_model_options(args) -> None:
    """Refuse options the chosen model does not take (they would be silently ignored)."""
    for name, models in MODEL_OPTIONS.items():
        if _is_given(getattr(args, name, None)) and args.model not in models:
            raise CLIError(f"--{name.replace('_', '-')} is an option of --model {' / '.join(models)}; "
                           f"--model {args.model} does not take it")
    if _is_given(getattr(args, "capacity_warmup", None)) and not _is_given(getattr(args, "capacity", None)):
        raise CLIError("--capacity-warmup ramps up a capacity target: give --capacity C (nats) too")


def model_keywords(args) -> dict:
    """Constructor keywords for the model options given on the command line (after
    ``check_model_options``, every given option belongs to ``args.model``)."""
    return {_KEYWORD.get(name, name): getattr(args, name) for name in MODEL_OPTIONS if _is_given(getattr(args, name))}


# the VAE ----------------------------------------------------------------------------------
def _build_vae(args, data):
    from .models import VAE

    return VAE(input_dim=int(np.prod(data["x_train"].shape[1:])), **model_keywords(args), backend=args.backend, seed=args.seed)


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
    if model.latent_dim >= 2:  # a scatter of a 1-D latent has nothing to put on its second axis
        mu, _ = model.encode(x[:2000])
        save("latent_scatter.png", lambda p: plot.plot_latent_scatter(mu, y[:2000], class_names=data.get("class_names"), path=p))
    save("interpolation.png", lambda p: plot.plot_interpolation(model, x[0], x[1], image_shape=shape, path=p))
    if model.latent_dim == 2:
        save("latent_grid.png", lambda p: plot.plot_latent_grid(model, n=15, image_shape=shape, path=p))
    else:
        save("traversal.png", lambda p: plot.plot_traversal(model, x[0], image_shape=shape, path=p))
    save("loss_curves.png", lambda p: plot.plot_loss_curves(model.history.as_dict(), path=p))
    return written


register_model("vae", _build_vae, _vae_pictures, min_test=2)


# the conditional and convolutional VAEs ------------------------------------------------------
def _build_cvae(args, data):
    from .models import CVAE

    return CVAE(input_dim=int(np.prod(data["x_train"].shape[1:])), num_classes=data["num_classes"], **model_keywords(args),
                backend=args.backend, seed=args.seed)


def _cvae_pictures(model, data, out, args):
    from . import plot

    shape, x, y = data["image_shape"], data["x_test"], data["y_test"]
    k, per_class = model.num_classes, 10
    paths = [os.path.join(out, n) for n in ("reconstructions.png", "samples_by_class.png", "loss_curves.png")]
    plot.plot_reconstructions(x[:10], model.reconstruct(x[:10], y[:10]), image_shape=shape, path=paths[0])
    labels = np.repeat(np.arange(k), per_class)
    samples = model.sample(k * per_class, labels, seed=args.seed).reshape(k, per_class, -1)
    plot.plot_samples_by_class(samples, image_shape=shape, class_names=data.get("class_names"), path=paths[1])
    plot.plot_loss_curves(model.history.as_dict(), path=paths[2])
    if model.latent_dim >= 2:  # (a 1-D latent has no second axis to scatter on)
        paths.append(os.path.join(out, "latent_scatter.png"))
        mu, _ = model.encode(x[:2000], y[:2000])
        plot.plot_latent_scatter(mu, y[:2000], class_names=data.get("class_names"), path=paths[-1],
                                 title="q(z|x,y) means by class (the encoder is given the label too)")
    return paths


def _build_convvae(args, data):
    from .models import ConvVAE

    return ConvVAE(input_shape=data["x_train"].shape[1:], **model_keywords(args), backend=args.backend, seed=args.seed)


register_model("cvae", _build_cvae, _cvae_pictures, uses_labels=lambda model: True)
register_model("convvae", _build_convvae, _vae_pictures, min_test=2)


# the adversarial autoencoder -----------------------------------------------------------------
def _build_aae(args, data):
    from .models import AAE

    return AAE(input_dim=int(np.prod(data["x_train"].shape[1:])), num_classes=data["num_classes"], **model_keywords(args),
               backend=args.backend, seed=args.seed)


def _aae_pictures(model, data, out, args):
    from . import plot

    shape, x, y = data["image_shape"], data["x_test"], data["y_test"]
    paths = [os.path.join(out, name) for name in ("reconstructions.png", "samples.png", "loss_curves.png")]
    plot.plot_reconstructions(x[:10], model.reconstruct(x[:10]), image_shape=shape, path=paths[0])
    plot.plot_samples(model.sample(64, seed=args.seed), image_shape=shape, path=paths[1], title="decoded prior samples")
    plot.plot_loss_curves(model.history.as_dict(), path=paths[2])
    if model.latent_dim >= 2:  # (a 1-D latent has no second axis to scatter on)
        paths.append(os.path.join(out, "latent_vs_prior.png"))
        codes = model.encode(x[:2000])
        plot.plot_latent_vs_prior(codes, model.sample_prior(2000, seed=args.seed), labels=y[:2000],
                                  class_names=data.get("class_names"), path=paths[-1])
    if model.latent_dim == 2:
        paths.append(os.path.join(out, "latent_grid.png"))
        span = 1.2 * float(np.abs(model.sample_prior(2000, seed=args.seed)).max())
        plot.plot_latent_grid(model, n=15, span=span, image_shape=shape, path=paths[-1])
    return paths


register_model("aae", _build_aae, _aae_pictures, uses_labels=lambda model: model.prior == "mixture")


# the recurrent models ---------------------------------------------------------------------------
def _sequence_keywords(args, data):
    # sinusoids are real-valued: a learned variance rewards precise reconstructions, where a
    # Bernoulli on values near 0.5 (or a unit variance) makes ignoring z the optimum
    keywords = model_keywords(args)
    keywords.setdefault("likelihood", "gaussian-learned" if data["kind"] == "sinusoids" else "bernoulli")
    return keywords


def _build_vrae(args, data):
    from .models import VRAE

    return VRAE(input_size=data["x_train"].shape[2], **_sequence_keywords(args, data), backend=args.backend, seed=args.seed)


def _build_hvrae(args, data):
    from .models import HierarchicalVRAE

    keywords = _sequence_keywords(args, data)
    if "hidden_size" in keywords:  # --rnn-hidden sizes the conductor too
        keywords["conductor_size"] = keywords["hidden_size"]
    length = data["x_train"].shape[1]
    # the largest segment of at most 8 steps that divides the length (the class's default, 16,
    # does not divide 28 image rows)
    keywords.setdefault("segment_length", next(s for s in (8, 7, 6, 5, 4, 3, 2, 1) if length % s == 0))
    if length % keywords["segment_length"]:
        raise CLIError(f"--segment-length {keywords['segment_length']} must divide the sequence length {length}")
    return HierarchicalVRAE(input_size=data["x_train"].shape[2], **keywords, backend=args.backend, seed=args.seed)


def _sequence_pictures(model, data, out, args):
    from . import plot

    x = data["x_test"][:8]
    recon = model.reconstruct(x)
    samples = model.sample(8, x.shape[1], seed=args.seed)
    paths = [os.path.join(out, n) for n in ("reconstructions.png", "samples.png", "loss_curves.png")]
    if data["kind"] == "image-rows":  # each sequence is an image: (rows, width)
        shape = x.shape[1:]
        plot.plot_reconstructions(x.reshape(len(x), -1), recon.reshape(len(x), -1), n=8, image_shape=shape, path=paths[0])
        plot.plot_samples(samples.reshape(8, -1), nrow=8, image_shape=shape, path=paths[1], title="free-running samples")
    elif data["kind"] == "piano-rolls":
        plot.plot_piano_roll(x[:4], n=4, rolls_rec=recon[:4], path=paths[0], title="test rolls and their reconstructions")
        plot.plot_piano_roll(samples, n=8, path=paths[1], title="free-running samples")
    else:
        plot.plot_sequences(x, recon, n=4, path=paths[0], title="data (solid) and reconstructions (dashed)")
        plot.plot_sequences(samples, n=4, path=paths[1], title="free-running samples")
    plot.plot_loss_curves(model.history.as_dict(), path=paths[2])
    return paths


register_model("vrae", _build_vrae, _sequence_pictures, sequences=True)
register_model("hvrae", _build_hvrae, _sequence_pictures, sequences=True)


# commands ---------------------------------------------------------------------------------
def _comma_ints(text: str):
    """"512,256" as (512, 256); None if an item is not an integer (an empty one, "512,,256", is a typo)."""
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        return None


def _hidden(text: str):
    sizes = _comma_ints(text)
    if sizes is None:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths like 512,256, got {text!r}")
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layer widths must be positive integers, got {text!r}")
    return sizes


def _image_shape(text: str):
    dims = _comma_ints(text)
    if dims is None or len(dims) not in (2, 3) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W or C,H,W in positive integers, like 28,28 or 3,32,32, got {text!r}")
    if len(dims) == 3 and dims[0] not in (1, 3):  # what the pictures draw: grey or RGB
        raise argparse.ArgumentTypeError(f"C must be 1 (grey) or 3 (colour) in C,H,W, got {text!r}")
    return dims


def _number(kind, text: str, expected: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None


def _positive_int(text):
    value = _number(int, text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text):
    value = _number(int, text, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _integer(text):
    return _number(int, text, "an integer")


def _non_negative_float(text):
    value = _number(float, text, "a number >= 0")
    if not (value >= 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive_float(text):
    value = _number(float, text, "a positive number")
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {text}")
    return value


def _probability(text):
    value = _number(float, text, "a number in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


SEQUENCE_DRAWINGS = ("image-rows", "piano-roll", "curves")


# What `microvae train` records in model.npz's info besides how its data looks: the run's
# settings, which --resume reads back (and refuses on its command line, with the model's options)
RUN_SETTINGS = ("model", "data", "limit", "seed", "batch_size")
_MODEL_CLASSES = {"vae": "VAE", "cvae": "CVAE", "convvae": "ConvVAE", "aae": "AAE", "vrae": "VRAE", "hvrae": "HierarchicalVRAE"}


def _run_info(args, data) -> dict:
    """What `microvae sample` needs to draw the model as its training data looked, and what
    `microvae train --resume` needs to continue the run (RUN_SETTINGS)."""
    info = {name: getattr(args, name) for name in RUN_SETTINGS}
    if MODELS[args.model].sequences:
        kind = {"piano-rolls": "piano-roll", "sinusoids": "curves"}.get(data["kind"], data["kind"])
        info.update(draw_as=kind, length=int(data["x_train"].shape[1]))
    else:
        info["image_shape"] = list(data["image_shape"])
    return info


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_seed(value) -> bool:
    return type(value) is int and value >= 0  # (not a bool)


# what each recorded setting may be: a checkpoint's info is any JSON that model.save() was given
_RUN_SETTING_CHECKS = {
    "model": (lambda v: isinstance(v, str) and v in MODELS, f"one of {', '.join(MODELS)}"),
    "data": (lambda v: isinstance(v, str) and v in DATASETS, f"one of {', '.join(DATASETS)}"),
    "limit": (lambda v: v is None or _is_positive_int(v), "null or a positive integer"),
    "seed": (_is_seed, "an integer >= 0"),
    "batch_size": (_is_positive_int, "a positive integer"),
}


def _resume_settings(args) -> dict:
    """For --resume: the info of the run in --out, once nothing on the command line contradicts
    it; sets args' RUN_SETTINGS to the run's."""
    from .checkpoint import read_info

    given = [name for name in RUN_SETTINGS if name in getattr(args, "given", ())]  # (each has a default)
    given += [name for name in MODEL_OPTIONS if _is_given(getattr(args, name))]
    given = [f"--{name.replace('_', '-')}" for name in given]
    if given:
        raise CLIError(f"--resume continues the run in --out with the model, data, --limit, seed and batch size it was "
                       f"trained with (its model.npz records them); leave out {', '.join(given)}, or start a new run in "
                       "another --out")
    if args.overwrite:
        raise CLIError("--resume continues the run in --out and --overwrite replaces it; give one of them")
    path = os.path.join(args.out, "model.npz")
    if not os.path.exists(path):
        others = _earlier_run(args.out)
        if others:  # a plain train would refuse this folder: say what will work
            raise CLIError(f"--resume: {args.out} holds a run's {', '.join(others)} but not its model.npz, so there is "
                           f"nothing to train on; start a new run there with microvae train --overwrite --out "
                           f"{shlex.quote(args.out)}, or in another --out")
        raise CLIError(f"--resume: {args.out} holds no run to continue (no model.npz); start one with "
                       f"microvae train --out {shlex.quote(args.out)}")
    info = read_info(path)
    missing = [name for name in RUN_SETTINGS if name not in info]
    if missing:
        raise CLIError(f"--resume: {path} does not record how it was trained (its info lacks {', '.join(missing)}): "
                       "model.save() or an earlier microvae train wrote it; continue it from Python with "
                       "microvae.load(path).fit(x, epochs=...)")
    for name, (valid, expected) in _RUN_SETTING_CHECKS.items():
        if not valid(info[name]):
            raise CLIError(f"--resume: {path}'s info has {name}={info[name]!r}, not {expected}")
        setattr(args, name, info[name])
    return info


def _resumed_model(args):
    """The model in --out's model.npz, with its optimizer state, checked against the run's info."""
    from .backend import _backend_name
    from .checkpoint import load

    path = os.path.join(args.out, "model.npz")
    model = load(path, backend=_backend_name(args.backend))
    expected = _MODEL_CLASSES.get(args.model)
    if expected is not None and type(model).__name__ != expected:
        raise CLIError(f"--resume: {path} holds a {type(model).__name__}, but its info says model={args.model!r} "
                       f"(a {expected})")
    if not model.epochs_trained or not model.optimizers:
        raise CLIError(f"--resume: {path} holds no optimizer state to continue from (it was saved with "
                       "include_optimizer=False, or before any training)")
    return model


# every file `train` may write into --out: a run's own and, for --overwrite, an earlier run's
RUN_FILES = ("model.npz", "history.json", "history.csv", "reconstructions.png", "samples.png", "samples_by_class.png",
             "latent_scatter.png", "latent_vs_prior.png", "latent_grid.png", "traversal.png", "interpolation.png",
             "loss_curves.png")


def _earlier_run(out: str) -> list:
    return [name for name in RUN_FILES if os.path.exists(os.path.join(out, name))]


class _RunFolder:
    """fit callback: after every epoch, the checkpoint (with the run's info) and the history, so
    that --out always holds one run whole. The first epoch's files replace an earlier run's, and
    its pictures go at once: an interrupted or diverged --overwrite run leaves its own model and
    history, not a new model beside the old run's history and pictures.

    The three files are written beside their targets under hidden names first, and replace them
    only once all three are written: a full disk or a Ctrl-C while they are written leaves the
    folder as the last epoch (or the earlier run) left it, not a new model beside old history.
    As with every file microvae writes (write_atomically), a replaced file keeps its permissions
    (a private 0600 checkpoint stays private) and a write-protected one (chmod a-w) is refused."""

    FILES = ("model.npz", "history.json", "history.csv")  # written every epoch, in this order

    def __init__(self, out: str, earlier: list, info: dict):
        self.out, self.earlier, self.info = out, earlier, info
        self.epochs, self.last_epoch, self.removed = 0, None, []  # epochs written, the last one's number

    def on_epoch_end(self, model, epoch, record):
        from .atomic import keep_mode, refuse_write_protected

        targets = [os.path.realpath(path) for path in self.written()]  # a link is written through, as save() does
        for target, path in zip(targets, self.written()):  # (checked each epoch: chmod a-w may come mid-run)
            refuse_write_protected(target, path)
        staged = [os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.next") for path in targets]
        try:
            model.save(staged[0], info=self.info)
            model.history.to_json(staged[1])
            model.history.to_csv(staged[2])
            for path, target in zip(staged, targets):  # new files, 0666 less the umask: take the targets' modes
                keep_mode(target, path)
        except BaseException:
            for path in staged:
                if os.path.exists(path):
                    os.remove(path)
            raise
        for path, target in zip(staged, targets):  # renames: no space needed, nothing left to fail on
            os.replace(path, target)
        self.epochs, self.last_epoch = self.epochs + 1, epoch
        if self.epochs == 1:
            for name in self.earlier:
                path = os.path.join(self.out, name)
                if name not in self.FILES and os.path.exists(path):
                    os.remove(path)
                    self.removed.append(path)

    def written(self) -> list:
        return [os.path.join(self.out, name) for name in self.FILES]


def _writable_folder(out: str) -> list:
    """Make --out if missing and check that files can be written there, before any data is
    loaded or an epoch trained. Returns the folders this call made, the deepest first."""
    made, folder = [], os.path.abspath(out)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        made.append(folder)
        folder = os.path.dirname(folder)
    os.makedirs(out, exist_ok=True)
    try:
        import tempfile

        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        _remove_empty(made)
        raise CLIError(f"--out {out} cannot be written ({exc.strerror or exc})") from None
    return made


def _remove_empty(folders: list) -> None:
    """Remove the folders a refused or failed run made (the deepest first), while they are empty."""
    for folder in folders:
        if not os.path.isdir(folder) or os.listdir(folder):
            break
        os.rmdir(folder)


@contextlib.contextmanager
def _recorded_settings(args, errors=CLIError):
    """With --resume, an error of the kind ``errors`` from the run's own settings (its data
    refused, or not fitting the model) names them as the checkpoint's info records them, since
    the command line cannot change them."""
    try:
        yield
    except errors as exc:
        if not args.resume:
            raise
        recorded = ", ".join(f"{name}={getattr(args, name)!r}" for name in RUN_SETTINGS)
        raise CLIError(f"--resume: the settings model.npz's info records ({recorded}) do not make a run of this "
                       f"checkpoint: {exc}") from None


def _say_if_the_optimizer_restarts(model, fit_args) -> None:
    """--resume with an --lr or --clip-norm other than the run's: fit starts a new optimizer run
    (fresh moments and step count), as it does for any changed setting; say so."""
    def shown(value):
        return "none" if value is None else f"{value:g}"

    changed = []
    for name in ("lr", "clip_norm"):
        given = fit_args.get(name)
        runs = {group: getattr(optimizer, name) for group, optimizer in model.optimizers.items()}
        if given is None or all(value == given for value in runs.values()):
            continue
        # an AAE's groups may run at settings of their own: the option sets every group's
        run = (shown(next(iter(runs.values()))) if len(set(runs.values())) == 1
               else ", ".join(f"{group} {shown(value)}" for group, value in runs.items()))
        changed.append(f"--{name.replace('_', '-')} {given:g} (the run's: {run})")
    if changed:
        print(f"microvae: {' and '.join(changed)}: a changed optimizer setting starts a new optimizer run, with fresh "
              f"moments and step count, as model.fit does", flush=True)


def cmd_train(args) -> int:
    """``microvae train``: build a model (with --resume, load the run in --out), fit it while
    writing the checkpoint and history every epoch, then draw the pictures."""
    from .atomic import refuse_write_protected
    from .training import TrainingDiverged

    if not args.out:  # os.makedirs("") said only "[Errno 2] No such file or directory: ''"
        raise CLIError("--out is empty; give the folder to write model.npz, history.json/csv and the pictures into, "
                       "e.g. --out runs/vae")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out} is an existing file; --out names the folder to write model.npz, "
                       "history.json/csv and the pictures into")
    info = _resume_settings(args) if args.resume else None
    if args.model not in MODELS:
        raise CLIError(f"unknown model {args.model!r}; choose from {', '.join(sorted(MODELS))}")
    entry = MODELS[args.model]
    check_model_options(args)
    with _recorded_settings(args):
        check_limit(args.limit, args.data, entry.min_test)
    earlier = _earlier_run(args.out)
    # a folder where a run's file goes would fail the first epoch's renames half way, after
    # model.npz was replaced, and the error would name a hidden staging file
    folders = [name for name in earlier if os.path.isdir(os.path.join(args.out, name))]
    if folders:
        raise CLIError(f"--out {args.out} holds a folder where the run writes a file ({', '.join(folders)}); "
                       "move it, or choose another --out")
    if earlier and not (args.overwrite or args.resume):  # a trained model is not replaced unasked
        raise CLIError(f"--out {args.out} already holds a run ({', '.join(earlier)}); choose another --out, "
                       "pass --resume to train it on, or --overwrite to replace it")
    for name in earlier:  # refused now, not after the first epoch's training (or, for a picture, the last's)
        refuse_write_protected(os.path.realpath(os.path.join(args.out, name)), os.path.join(args.out, name))
    made = _writable_folder(args.out)
    run = None
    try:
        with _recorded_settings(args):
            data = load_data(args.data, args.limit, args.seed, flatten=args.model != "convvae", sequences=entry.sequences)
        if args.resume:
            model = _resumed_model(args)
            print(f"microvae: resuming {model!r}\n  after epoch {model.epochs_trained}", flush=True)
        else:
            model = entry.build(args, data)
            info = _run_info(args, data)
            print(f"microvae: training {model!r}", flush=True)
        run = _RunFolder(args.out, earlier, info)
        print(f"  on {args.data}: {len(data['x_train'])} train / {len(data['x_test'])} test examples", flush=True)
        fit_args = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, clip_norm=args.clip_norm,
                        verbose=args.verbose, callbacks=[run])
        if args.resume:  # fit continues the run's seed, and its lr and clip_norm where they are left out
            given = getattr(args, "given", ())
            fit_args.update(seed=None, lr=args.lr if "lr" in given else None)
            if "clip_norm" not in given:
                del fit_args["clip_norm"]
            _say_if_the_optimizer_restarts(model, fit_args)
        # On the way to divergence NumPy would print overflow/NaN warnings over the progress bar; fit
        # checks every batch's loss and each epoch's parameters for non-finite values and its
        # TrainingDiverged names the epoch and batch, which the warnings' line numbers do not.
        labelled = entry.uses_labels(model)
        arrays = (data["x_train"], data["y_train"]) if labelled else (data["x_train"],)
        if args.resume:
            with _recorded_settings(args, (ValueError, TypeError)):  # the recorded data must fit the loaded model
                model._prepare_data(*(a[:1] for a in arrays))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            model.fit(*arrays, validation_data=(data["x_test"], data["y_test"]) if labelled else data["x_test"], **fit_args)
    except BaseException as exc:
        # a resumed run stopped in its first epoch leaves the folder as it was: still worth carrying on
        stopped_at_once = args.resume and run is not None and not run.epochs and isinstance(exc, (TrainingDiverged, KeyboardInterrupt))
        if run is not None and (run.epochs or stopped_at_once):
            command = f"microvae train --resume --out {shlex.quote(args.out)}"
            if isinstance(exc, TrainingDiverged):  # the same learning rate would diverge again
                # with no epoch ended fit has put the run's optimizers back: the rate that diverged is the one
                # fit was given, if any (fit_args is set: only fit raises TrainingDiverged)
                given_lr = fit_args.get("lr") if stopped_at_once else None
                rates = [given_lr] if given_lr is not None else [opt.lr for opt in model.optimizers.values()] or [args.lr]
                command += f" --lr {min(rates) / 10:g}"  # --lr sets every group's: a tenth of the lowest
                how = "trains it on at a tenth of the learning rate that diverged"
            else:
                how = "trains it on"
            if run.epochs:
                where = f"holds this run through epoch {run.last_epoch}: model.npz and history.json/csv, no pictures"
            else:
                where = f"still holds the run as it was, through epoch {model.epochs_trained}"
            print(f"microvae: {args.out} {where}; {command} {how}", file=sys.stderr)
        else:
            _remove_empty(made)  # nothing was written: no empty folder left behind, --out's parents included
        raise
    written = run.written()
    try:
        written += entry.pictures(model, data, args.out, args)
    except ImportError as exc:
        print(f"microvae: pictures skipped: {exc}", file=sys.stderr)
    print("wrote:\n  " + "\n  ".join(written))
    stale = [path for path in run.removed if path not in written]  # pictures this run does not draw (a latent grid)
    if stale:
        print(f"removed, from the run {'before' if args.resume else 'it replaced'}:\n  " + "\n  ".join(stale))
    return 0


def cmd_sample(args) -> int:
    """``microvae sample``: load a checkpoint and write a picture of its samples (a PNG)."""
    from . import plot
    from .backend import _backend_name
    from .checkpoint import load, read_info

    if os.path.isdir(args.out):
        raise CLIError(f"--out {args.out} is a folder; give the PNG file to write, e.g. {os.path.join(args.out, 'samples.png')}")
    if os.path.splitext(args.out)[1].lower() != ".png":
        raise CLIError(f"--out must name a .png file (sample writes a PNG picture), got {args.out or 'an empty name'}")
    model = load(args.checkpoint, backend=_backend_name(args.backend))  # None: $MICROVAE_BACKEND, as train reads it
    info = read_info(args.checkpoint)
    if not getattr(model, "is_sequence_model", False):
        for option, value in (("--length", args.length), ("--draw-as", args.draw_as)):
            if value is not None:
                raise CLIError(f"{option} is for recurrent models (vrae, hvrae); this checkpoint holds a {type(model).__name__}")
    elif args.image_shape is not None:
        raise CLIError("--image-shape is for image models; a recurrent model's sequences are drawn by --draw-as")
    image_shape = args.image_shape or _info_hint(info, "image_shape", lambda v: _is_image_shape(v, model),
                                                 "a list of 2 or 3 positive sizes that hold one sample (1 or 3 channels)")
    image_shape = _sample_image_shape(model, image_shape)
    conditional = getattr(model, "needs_labels", False)
    prior = getattr(model, "prior", None)
    mixture = prior == "mixture"  # an AAE whose prior has one component per class: a label picks the component
    if args.label is not None and not (conditional or mixture):
        name = type(model).__name__ + (f" with prior={prior!r}" if isinstance(prior, str) else "")
        raise CLIError(f"--label needs a conditional model (a CVAE, or an AAE with prior='mixture'); {name} takes no labels")
    if args.label is not None and not (-1 if mixture else 0) <= args.label < model.num_classes:
        allowed = (f"a prior component in [0, {model.num_classes - 1}] (or -1 for any)" if mixture
                   else f"a class in [0, {model.num_classes - 1}]")
        raise CLIError(f"--label must be {allowed} for this {type(model).__name__}, got {args.label}")
    sizes = "-n"  # what to make smaller where the samples do not fit in memory
    try:
        if mixture and args.label is not None:
            samples = model.sample(args.n, y=np.full(args.n, args.label), seed=args.seed)
            plot.plot_samples(samples, nrow=int(np.ceil(np.sqrt(args.n))), image_shape=image_shape, path=args.out)
        elif conditional:
            labels = np.full(args.n, args.label) if args.label is not None else np.arange(args.n) % model.num_classes
            plot.plot_samples(model.sample(args.n, labels, seed=args.seed), nrow=int(np.ceil(np.sqrt(args.n))),
                              image_shape=image_shape, path=args.out)
        elif getattr(model, "is_sequence_model", False):
            recorded = None if args.length else _info_hint(info, "length", _is_positive_int, "a positive integer")
            length = args.length or recorded or 32
            sizes = "-n or --length" + (f" (the length, {length} steps, is the checkpoint's info['length'])"
                                        if recorded else "")
            sequences = model.sample(args.n, length, seed=args.seed)
            draw_as = (args.draw_as or _info_hint(info, "draw_as", lambda v: v in SEQUENCE_DRAWINGS, f"one of {SEQUENCE_DRAWINGS}")
                       or ("piano-roll" if sequences.shape[2] > plot.MAX_CURVE_FEATURES else "curves"))
            if draw_as == "image-rows":  # each sequence is an image, one step per row
                plot.plot_samples(sequences.reshape(len(sequences), -1), nrow=int(np.ceil(np.sqrt(args.n))),
                                  image_shape=sequences.shape[1:], path=args.out)
            elif draw_as == "piano-roll":
                plot.plot_piano_roll(sequences, n=min(args.n, 8), path=args.out)
            else:
                if sequences.shape[2] > plot.MAX_CURVE_FEATURES:  # plot_sequences draws heatmaps: say so
                    print(f"microvae: --draw-as curves: these sequences have {sequences.shape[2]} features, more than "
                          f"the {plot.MAX_CURVE_FEATURES} drawn as lines; each sequence is drawn as a feature-by-time "
                          "heatmap instead", file=sys.stderr)
                plot.plot_sequences(sequences, n=min(args.n, 8), path=args.out)
        else:
            plot.plot_samples(model.sample(args.n, seed=args.seed), nrow=int(np.ceil(np.sqrt(args.n))),
                              image_shape=image_shape, path=args.out)
    except (MemoryError, ValueError) as exc:
        message = _too_large(exc, sizes)  # main's hint names train's options
        if message is None:
            raise
        raise CLIError(message) from None
    print(f"wrote {args.out}")
    return 0


def _evaluation_data(args, model, info: dict):
    """(name, the data dict) of the test set ``evaluate`` measures on: --data and --limit where
    given, else what `microvae train` recorded; generated data (sprites, sequences) with the run's
    seed, as train split it (seed 0 for data the checkpoint does not record). A recorded value
    is read, and checked, only where it is used."""

    def recorded(name, instead):
        valid, expected = _RUN_SETTING_CHECKS[name]
        if not valid(info[name]):
            raise CLIError(f"{args.checkpoint}'s info has {name}={info[name]!r}, not {expected}{instead}")
        return info[name]

    if args.data is None and "data" not in info:
        raise CLIError(f"{args.checkpoint} does not record the data it was trained on (model.save() or an earlier "
                       f"microvae train wrote it); pass --data, one of {', '.join(DATASETS)}")
    name = args.data or recorded("data", "; pass --data to choose the data")
    same = "data" in info and info["data"] == name  # the recorded run's data: its split
    limit = args.limit
    if limit is None and same and "limit" in info:
        limit = recorded("limit", "; pass --limit")
    seed = recorded("seed", " (it seeded the generated data that train split)") if same and "seed" in info else 0
    sequences = getattr(model, "is_sequence_model", False)
    if name in SEQUENCE_DATASETS and not sequences:
        raise CLIError(f"--data {name} is sequence data; this checkpoint holds a {type(model).__name__}, an image model")
    data = load_data(name, limit, seed, flatten=type(model).__name__ != "ConvVAE", sequences=sequences)
    if len(data["x_test"]) == 0:
        raise CLIError(f"--limit {limit} leaves no test examples of {name}; give a larger --limit")
    return name, data


def cmd_evaluate(args) -> int:
    """``microvae evaluate``: a checkpoint's figures on its test set, in nats per example: the
    training objective's terms, and (models with a KL term) the ELBO and the IWAE bound."""
    from . import metrics
    from .backend import _backend_name
    from .checkpoint import load, read_info

    model = load(args.checkpoint, backend=_backend_name(args.backend))
    name, data = _evaluation_data(args, model, read_info(args.checkpoint))
    cli_name = next((key for key, cls in _MODEL_CLASSES.items() if cls == type(model).__name__), None)
    labels = data["y_test"] if cli_name is not None and MODELS[cli_name].uses_labels(model) else None
    x = data["x_test"]
    try:  # first, as it is quick: it also checks that the data fits the model
        with np.errstate(all="ignore"):  # a non-finite figure is said below, once, not as NumPy's warnings
            terms = model.evaluate(x, labels, batch_size=args.batch_size, seed=args.seed)
    except ValueError as exc:
        raise CLIError(f"the test set of {name} does not fit this {type(model).__name__}: {exc}") from None
    examples = f"{len(x)} example{'s' if len(x) != 1 else ''}"
    print(f"microvae: evaluating {model!r}\n  after {model.epochs_trained} epoch(s), on the test set of {name} ({examples}; "
          f"nats per example; noise seeded by --seed {args.seed})", flush=True)
    print("  " + "  ".join(f"{key} {value:.4f}" for key, value in terms.items()) + "   (the training objective's terms)")
    figures = list(terms.values())
    if cli_name == "aae":  # metrics refuse it by name; say why here
        print("  no ELBO or IWAE bound: an AAE has no KL term (its codes are matched to the prior adversarially)")
    else:
        with np.errstate(all="ignore"):
            elbo = metrics.elbo(model, x, n_samples=args.samples, y=labels, batch_size=args.batch_size, seed=args.seed)
            bound = metrics.iwae_bound(model, x, k=args.k, y=labels, batch_size=args.batch_size, seed=args.seed)
            figures += [float(np.mean(elbo)), float(np.mean(bound))]
        draws = f"{args.samples} sample{'s' if args.samples > 1 else ''} of z per example"
        print(f"  ELBO {figures[-2]:.4f}   ({draws})")
        print(f"  IWAE bound {figures[-1]:.4f}   (k = {args.k}; log p(x) ≥ it ≥ the ELBO in expectation)")
    if not np.isfinite(figures).all():
        print("microvae: some figures are not finite: the model's outputs or likelihoods overflow on some test "
              "examples (are its parameters finite and of a sensible size?)", file=sys.stderr)
    return 0


def _too_large(exc, sizes: str | None):
    """The message for an array too large for memory (a MemoryError) or to have a shape at all
    (NumPy's ValueError), suggesting a smaller ``sizes`` (the command's options) if given; None
    for any other error."""
    advice = f"; try a smaller {sizes}" if sizes else ""
    if isinstance(exc, MemoryError):
        return f"out of memory{f' ({exc})' if str(exc) else ''}{advice}"
    if isinstance(exc, ValueError) and str(exc) == "Maximum allowed dimension exceeded":
        return f"{exc}{advice}"
    return None


def _info_hint(info: dict, key: str, valid, expected: str):
    """``info[key]`` where ``valid`` holds for it, else None. info is free-form (model.save takes
    any JSON): a value this command cannot use is passed over with a note, not read as a flag."""
    if key not in info:
        return None
    value = info[key]
    if valid(value):
        return value
    print(f"microvae: the checkpoint's info has {key}={value!r}, not {expected}; drawing without it", file=sys.stderr)
    return None


def _is_image_shape(value, model) -> bool:
    """An (H, W), (C, H, W) or (H, W, C) the pictures can draw (C = 1 or 3) with the model's size."""
    return (isinstance(value, (list, tuple)) and len(value) in (2, 3) and all(map(_is_positive_int, value))
            and (len(value) == 2 or value[0] in (1, 3) or value[-1] in (1, 3))
            and math.prod(value) == math.prod(getattr(model, "input_shape", (0,))))


def _sample_image_shape(model, image_shape):
    """The picture shape of an image model's samples: ``image_shape`` if given (checked against
    the model), else None for one the pictures can infer (a square, or a ConvVAE's (C, H, W))."""
    if getattr(model, "is_sequence_model", False):
        return None
    features = int(np.prod(model.input_shape))
    if image_shape is not None:
        if int(np.prod(image_shape)) != features:
            raise CLIError(f"--image-shape {','.join(map(str, image_shape))} has {int(np.prod(image_shape))} values; "
                           f"this {type(model).__name__} draws {features} per sample")
        return tuple(image_shape)
    if len(model.input_shape) == 1 and math.isqrt(features) ** 2 != features:
        raise CLIError(f"this {type(model).__name__} draws {features} values per sample, not a square image; "
                       "pass --image-shape H,W (or C,H,W for colour)")
    return None


def cmd_gradcheck(args) -> int:
    """``microvae gradcheck``: the self-check of the forward formulas and of every analytic gradient
    (0 when all agree)."""
    if args.explain:
        return _gradcheck_explain(args)
    from .selfcheck import run_checks

    failed = 0
    print(f"{'what':<10} {'check':<58} {'max rel. error':>14}  verdict   (float64, tolerance {args.tol:g})")
    for group, name, result in run_checks(seed=args.seed):
        ok = result.passed(args.tol)
        failed += not ok
        print(f"{group:<10} {name:<58} {result.max_error:>14.2e}  {'ok' if ok else 'FAIL'}")
        if args.verbose or not ok:
            for line in result.table(args.tol).splitlines()[1:]:
                print(f"{'':<11}{line}")
    print(f"{'all values and gradients agree' if not failed else f'{failed} check(s) FAILED'}")
    return 1 if failed else 0


def _gradcheck_explain(args) -> int:
    """`gradcheck --explain`: a tiny VAE's sample, BCE and KL against their formulas, then each of its
    gradients' formula, analytic value and finite difference (microvae.explain)."""
    from .explain import explain_forward, explain_gradients, format_explanation

    terms = explain_forward(seed=args.seed) + explain_gradients(seed=args.seed)
    print(format_explanation(terms, tol=args.tol))
    return 0 if all(np.isfinite(t.error) and t.error <= args.tol for t in terms) else 1


class _Given(argparse.Action):
    """Stores the option's value, as the default action does, and adds its name to
    ``args.given``: --resume refuses the run's own settings, even when given at their defaults."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = (*getattr(namespace, "given", ()), self.dest)


def build_parser() -> argparse.ArgumentParser:
    """The ``microvae`` command's parser, with its train, sample, evaluate and gradcheck subcommands."""
    from . import __version__
    from .likelihoods import LIKELIHOOD_NAMES

    parser = argparse.ArgumentParser(prog="microvae", description="Variational autoencoders with hand-written gradients.")
    parser.add_argument("--version", action="version", version=f"microvae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train a model and write its checkpoint, history and pictures",
                           description="Train a model; writes model.npz, history.json/csv and PNG pictures into --out. "
                                       "Options marked (model) belong to the models named; left out, they take that "
                                       "model class's own default, as in Python.")
    train.add_argument("--model", default="vae", action=_Given, help=f"one of: {', '.join(MODELS)} (default: %(default)s)")
    train.add_argument("--data", default="sprites", action=_Given, choices=DATASETS,
                       help="dataset (default: the built-in sprites; sinusoids and piano-rolls are for vrae/hvrae, "
                            "which model sinusoids with a Gaussian likelihood of learned variance; "
                            "mnist and fashion-mnist are read from $MICROVAE_DATA, /usr/share/datasets or ~/.cache/microvae, "
                            "and downloaded into ~/.cache/microvae if absent, unless $MICROVAE_OFFLINE is set to anything but empty or 0)")
    train.add_argument("--epochs", type=_positive_int, default=10,
                       help="passes over the training set; with --resume, more of them (default: %(default)s)")
    train.add_argument("--batch-size", type=_positive_int, default=128, action=_Given,
                       help="examples per step (default: %(default)s)")
    train.add_argument("--latent-dim", type=_positive_int, default=None,
                       help="size of z (default: the model's: 2, and 8 for vrae/hvrae)")
    train.add_argument("--hidden", type=_hidden, default=None,
                       help="(vae, cvae, aae) hidden layer widths, e.g. 512,256 (default: 512,256)")
    train.add_argument("--beta", type=_non_negative_float, default=None,
                       help="(all but aae) weight of the KL term, a β-VAE when ≠ 1 (default: 1)")
    train.add_argument("--beta-warmup", type=_non_negative_int, default=None,
                       help="(all but aae) steps over which β ramps up linearly from 0 (default: 0)")
    train.add_argument("--capacity", type=_non_negative_float, default=None,
                       help="(vae, cvae, convvae) capacity target C in nats: the KL term becomes β·|KL̄ − C|, KL̄ the batch's mean KL (default: none)")
    train.add_argument("--capacity-warmup", type=_non_negative_int, default=None,
                       help="(vae, cvae, convvae) steps over which C ramps up linearly from 0 (default: 0)")
    train.add_argument("--condition-at", default=None, choices=("input", "hidden"),
                       help="(cvae) where the label joins the encoder (default: input)")
    train.add_argument("--learned-prior", action="store_true", help="(cvae) learn p(z|y) instead of N(0, I)")
    train.add_argument("--variant", default=None, choices=("pooling", "strided"), help="(convvae) architecture (default: pooling)")
    train.add_argument("--prior", default=None, choices=("gaussian", "mixture"),
                       help="(aae) prior; mixture: one component per class (default: gaussian)")
    train.add_argument("--cell", default=None, choices=("gru", "rnn"), help="(vrae, hvrae) recurrent cell (default: gru)")
    train.add_argument("--rnn-hidden", type=_positive_int, default=None,
                       help="(vrae, hvrae) recurrent state size; hvrae: of the conductor too (default: 64)")
    train.add_argument("--input-dropout", type=_probability, default=None,
                       help="(vrae, hvrae) probability of hiding each teacher-forced input during training (default: 0)")
    train.add_argument("--segment-length", type=_positive_int, default=None,
                       help="(hvrae) steps per segment, dividing the length (default: the largest divisor up to 8)")
    train.add_argument("--likelihood", default=None, choices=LIKELIHOOD_NAMES,
                       help="(all models) p(x|z): bernoulli for data in [0, 1]; gaussian, unit variance (a squared "
                            "error); gaussian-learned, a variance per value that the decoder outputs (default: "
                            "bernoulli; gaussian-learned for vrae/hvrae on sinusoids)")
    train.add_argument("--lr", type=_positive_float, default=1e-3, action=_Given,
                       help="Adam's learning rate (default: %(default)s; with --resume, the run's)")
    train.add_argument("--clip-norm", type=_positive_float, default=None, action=_Given,
                       help="rescale each step's gradient to at most this global L2 norm (default: no clipping; "
                            "with --resume, the run's)")
    train.add_argument("--seed", type=_non_negative_int, default=0, action=_Given,
                       help="seeds the model, the data order and generated data (default: %(default)s)")
    train.add_argument("--limit", type=_positive_int, default=None, action=_Given,
                       help="use fewer examples: sprites, sinusoids, piano-rolls: N in all, a tenth held out for "
                            "testing; mnist, fashion-mnist: the first N training and max(N/6, 100) test examples")
    train.add_argument("--backend", default=None, choices=("numpy", "cupy"), help="default: $MICROVAE_BACKEND or numpy")
    train.add_argument("--out", default="runs/latest",
                       help="output folder, created if missing; one that holds a run is refused, unless --resume or "
                            "--overwrite is given (default: %(default)s)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out: its checkpoint, history and pictures")
    train.add_argument("--resume", action="store_true",
                       help="train the run in --out on for --epochs more epochs, from its model.npz (optimizer state "
                            "included), with the model, data, --limit, seed and batch size it recorded; its history "
                            "grows and its pictures are drawn again. An --lr or --clip-norm other than the run's "
                            "starts the optimizer afresh, as model.fit does")
    train.add_argument("--verbose", type=_integer, default=1, choices=(0, 1, 2),
                       help="0: no progress bar or epoch lines (what was trained and written is still said), 1: progress bar and "
                            "a summary per epoch, 2: the summary only (default: %(default)s)")
    train.set_defaults(func=cmd_train, given=())

    sample = sub.add_parser("sample", help="draw samples from a saved model into a PNG")
    sample.add_argument("checkpoint", help="a model.npz written by `microvae train` or model.save()")
    sample.add_argument("-n", type=_positive_int, default=64,
                        help="number of samples (default: %(default)s; piano rolls and curves show at most 8)")
    sample.add_argument("--out", default="samples.png", help="the .png file to write; its folder is created if missing "
                                                             "(default: %(default)s)")
    sample.add_argument("--label", type=_integer, default=None,
                        help="class to sample (a CVAE; for an AAE with a mixture prior, the prior component, "
                             "or -1 for the whole mixture; default: a CVAE's classes in turn, an AAE's whole mixture)")
    sample.add_argument("--image-shape", type=_image_shape, default=None,
                        help="how to draw each sample, H,W or C,H,W (image models; default: the training images' "
                             "shape if `microvae train` wrote the checkpoint, else a square or a ConvVAE's own shape)")
    sample.add_argument("--length", type=_positive_int, default=None,
                        help="steps per sequence (recurrent models; default: the training sequences' length "
                             "if `microvae train` wrote the checkpoint, else 32)")
    sample.add_argument("--draw-as", default=None, choices=SEQUENCE_DRAWINGS,
                        help="how to draw a recurrent model's sequences; curves draws up to 4 features as lines, more "
                             "as feature-by-time heatmaps (default: as its training data, if `microvae train` wrote the "
                             "checkpoint; else piano-roll for more than 4 features, curves otherwise)")
    sample.add_argument("--seed", type=_non_negative_int, default=0, help="seeds the samples (default: %(default)s)")
    sample.add_argument("--backend", default=None, choices=("numpy", "cupy"), help="default: $MICROVAE_BACKEND or numpy")
    sample.set_defaults(func=cmd_sample)

    evaluate = sub.add_parser("evaluate", help="a saved model's ELBO, IWAE bound and loss terms on its test set",
                              description="Prints, in nats per example on the test set, the training objective's terms "
                                          "(model.evaluate), the ELBO and the importance-weighted bound of "
                                          "microvae.metrics (not for an AAE, which has no KL term).")
    evaluate.add_argument("checkpoint", help="a model.npz written by `microvae train` or model.save()")
    evaluate.add_argument("--data", default=None, choices=DATASETS,
                          help="the dataset whose test set to use (default: the one `microvae train` recorded, with its "
                               "--limit and seed; required for a checkpoint that records none). Data the checkpoint "
                               "does not record is taken whole, or as --limit says, and generated with seed 0")
    evaluate.add_argument("--limit", type=_positive_int, default=None,
                          help="as for train: fewer examples (default: the recorded run's, with its data)")
    evaluate.add_argument("--k", type=_positive_int, default=50,
                          help="importance samples per example for the IWAE bound (default: %(default)s)")
    evaluate.add_argument("--samples", type=_positive_int, default=1,
                          help="samples of z per example for the ELBO (default: %(default)s)")
    evaluate.add_argument("--batch-size", type=_positive_int, default=100,
                          help="examples per pass; the IWAE bound's passes hold k times as many (default: %(default)s)")
    evaluate.add_argument("--seed", type=_non_negative_int, default=0, help="seeds the estimates' noise (default: %(default)s)")
    evaluate.add_argument("--backend", default=None, choices=("numpy", "cupy"), help="default: $MICROVAE_BACKEND or numpy")
    evaluate.set_defaults(func=cmd_evaluate)

    check = sub.add_parser("gradcheck", help="check every analytic gradient against finite differences",
                           description="Prints the max relative error of the sampling's and the losses' values against "
                                       "their formulas, and of each layer, loss and model gradient against finite "
                                       "differences (float64).")
    check.add_argument("--tol", type=_positive_float, default=1e-6,
                       help="largest relative error accepted (> 0; default: %(default)s)")
    check.add_argument("--seed", type=_non_negative_int, default=0,
                       help="seeds the inputs, parameters and directions checked (default: %(default)s)")
    check.add_argument("-v", "--verbose", action="store_true", help="show the error of every input and parameter")
    check.add_argument("--explain", action="store_true",
                       help="walk through a tiny VAE's backward pass: each gradient's formula, value and finite difference")
    check.set_defaults(func=cmd_gradcheck)
    return parser


TRAIN_SIZES = "--limit, --batch-size or model"  # what train can make smaller where an array is too large


def _sizes(args) -> str | None:
    """What the command run can make smaller where an array is too large (sample gives its own
    advice; a resumed run's sizes are recorded in its checkpoint, not options)."""
    if args.command == "train":
        return None if args.resume else TRAIN_SIZES
    return "--k, --samples or --batch-size" if args.command == "evaluate" else None


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default: sys.argv); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)  # a usage error, as argparse reports its own: on stderr
        return 2
    from .backend import BackendUnavailable
    from .checkpoint import CheckpointError
    from .training import TrainingDiverged

    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, CheckpointError, BackendUnavailable, TrainingDiverged, ImportError) as exc:
        # NumPy's words for an array too large to have a shape at all get a MemoryError's hint (sample gives its own)
        message = _too_large(exc, _sizes(args)) if args.command != "sample" else None
        print(f"microvae: error: {message or exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing checkpoint, an unwritable --out, a full disk, ...
        what = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"microvae: error: {what}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # e.g. a --limit of generated data beyond the machine's memory
        print(f"microvae: error: {_too_large(exc, _sizes(args))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("microvae: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
