"""Checkpoints: one ``.npz`` file per model, written atomically, read without pickle.

Contents (all plain arrays; strings are 0-d unicode arrays):

- ``format``          "microvae-checkpoint" (marks the file as ours)
- ``format_version``  integer, currently 1
- ``model``           JSON: {"class": "VAE", "config": {...constructor arguments...}}
- ``layout``          JSON: the parameter layout of each group, checked on load
- ``params/<group>``  the flat parameter buffer of each parameter group
- ``training``        JSON: step, epochs, seed, history and optimizer settings (optional)
- ``optim/<group>/<name>`` optimizer moments, for exact resumption (optional)
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["CheckpointError", "save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "microvae-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """The file is not a usable microvae checkpoint (corrupt, truncated, foreign or mismatched)."""


def save(model, path, include_optimizer: bool = True) -> None:
    """Write ``model`` to ``path`` (.npz) atomically: a temporary file in the same folder,
    fsynced, then renamed over the target, so an existing checkpoint is never half-written."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    be = model.backend
    groups = model.parameter_groups()
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "model": np.array(json.dumps({"class": type(model).__name__, "config": model.config})),
        "layout": np.array(json.dumps({name: flat.layout_signature() for name, flat in groups.items()})),
    }
    for name, flat in groups.items():
        arrays[f"params/{name}"] = be.to_numpy(flat.data)
    training = {"step": model.step, "epochs_trained": model.epochs_trained, "train_seed": model.train_seed,
                "history": model.history.epochs, "optimizer": None}
    if include_optimizer and model.optimizers:
        name, lr, options = model.optimizer_spec
        if not isinstance(name, str):
            raise TypeError("only optimizers created by name ('adam', 'sgd') can be checkpointed")
        training["optimizer"] = {"name": name, "lr": lr, "options": dict(options),
                                 "t": {group: opt.t for group, opt in model.optimizers.items()}}
        for group, opt in model.optimizers.items():
            for key, value in opt.state_arrays().items():
                arrays[f"optim/{group}/{key}"] = be.to_numpy(value)
    arrays["training"] = np.array(json.dumps(training))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read(path) -> dict:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path!r} is not a readable microvae checkpoint (truncated, corrupt or not an .npz file): {exc}") from exc


def load(path, backend=None):
    """Rebuild the model saved at ``path`` (any microvae model class), with its parameters,
    history and, if saved, optimizer state, so ``fit`` continues the same run.

    ``backend`` overrides the device ("numpy" or "cupy"). Raises CheckpointError for a
    corrupt, truncated, foreign or inconsistent file, FileNotFoundError if there is none.
    """
    from .models.base import MODEL_TYPES
    from .optim import get_optimizer

    data = _read(path)
    if "format" not in data or str(data["format"]) != FORMAT:
        raise CheckpointError(f"{os.fspath(path)!r} is not a microvae checkpoint (no '{FORMAT}' marker); "
                              "expected a file written by model.save()")
    version = int(data["format_version"]) if "format_version" in data else -1
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{os.fspath(path)!r} has checkpoint format version {version}; this microvae reads version {FORMAT_VERSION}")
    try:
        meta = json.loads(str(data["model"]))
        layout = json.loads(str(data["layout"]))
        training = json.loads(str(data["training"])) if "training" in data else {}
        cls = MODEL_TYPES[meta["class"]]
        config = dict(meta["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{os.fspath(path)!r} has missing or malformed metadata: {exc!r}") from exc
    if backend is not None:
        config["backend"] = backend
    model = cls(**cls.config_from_checkpoint(config))
    groups = model.parameter_groups()
    if set(groups) != set(layout) or any(flat.layout_signature() != layout[name] for name, flat in groups.items()):
        raise CheckpointError(f"{os.fspath(path)!r}: stored parameter layout does not match a {meta['class']} built from its config")
    for name, flat in groups.items():
        values = data.get(f"params/{name}")
        if values is None or values.shape != (flat.size,):
            raise CheckpointError(f"{os.fspath(path)!r}: parameter group {name!r} missing or of the wrong size")
        if not np.isfinite(values).all():
            raise CheckpointError(f"{os.fspath(path)!r}: parameter group {name!r} contains NaN or Inf")
        flat.data[...] = model.backend.asarray(values)
    from .training import History

    model.step = int(training.get("step", 0))
    model.epochs_trained = int(training.get("epochs_trained", 0))
    model.train_seed = training.get("train_seed")
    model.history = History(training.get("history", []))
    opt = training.get("optimizer")
    if opt:
        model.optimizers = {}
        for group, flat in groups.items():
            optimizer = get_optimizer(opt["name"], flat, opt["lr"], **opt["options"])
            optimizer.t = int(opt["t"][group])
            for key, value in optimizer.state_arrays().items():
                stored = data.get(f"optim/{group}/{key}")
                if stored is None or stored.shape != value.shape:
                    raise CheckpointError(f"{os.fspath(path)!r}: optimizer state {group}/{key} missing or of the wrong size")
                value[...] = model.backend.asarray(stored)
            model.optimizers[group] = optimizer
        model.optimizer_spec = (opt["name"], float(opt["lr"]), tuple(sorted(opt["options"].items())))
    return model
