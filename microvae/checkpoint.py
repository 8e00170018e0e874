"""Checkpoints: one ``.npz`` file per model, written atomically, read without pickle.

Contents (all plain arrays; strings are 0-d unicode arrays):

- ``format``          "microvae-checkpoint" (marks the file as ours)
- ``format_version``  integer, currently 1
- ``model``           JSON: {"class": "VAE", "config": {...constructor arguments...}}
- ``layout``          JSON: the parameter layout of each group, checked on load
- ``params/<group>``  the flat parameter buffer of each parameter group
- ``training``        JSON: step, epochs, seed, history and optimizer settings (optional)
- ``optim/<group>/<name>`` optimizer moments, for exact resumption (optional)
- ``info``            JSON: a dict the caller stored with ``save(..., info=...)``, e.g. what
                      data the model was trained on (optional; read with ``read_info``;
                      ``load`` keeps it in ``model.info``, which later saves write again)
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib

import numpy as np

from .atomic import write_atomically
from .checks import as_path, check_bool, check_file_path

__all__ = ["CheckpointError", "save", "load", "read_info", "FORMAT", "FORMAT_VERSION"]

FORMAT = "microvae-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """The file is not a usable microvae checkpoint (corrupt, truncated, foreign or mismatched).

    ``CheckpointError(path, reason)``: the message names the file, then what was wrong with it.
    """

    def __init__(self, path, reason: str):
        super().__init__(as_path(path), reason)  # both in args, so that the error pickles
        self.path, self.reason = as_path(path), reason

    def __str__(self):
        return f"{self.path!r}: {self.reason}"


def _plain(value):
    """``json.dumps`` hook: NumPy scalars and arrays as Python numbers and lists (a config may
    hold ``seed=np.int64(3)`` or ``capacity=np.float32(5)``, which json refuses)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} cannot be stored in a checkpoint: "
                    "only numbers, strings, None, lists and dicts of them")


def _json_array(value, allow_nan: bool = True) -> np.ndarray:
    return np.array(json.dumps(value, default=_plain, allow_nan=allow_nan))


def _second_moment(optimizer, key: str) -> bool:
    """Whether ``optimizer.state_arrays()[key]`` is a running mean of g², so never negative
    (a negative one makes Adam's √v̂ NaN at the next step)."""
    from .optim import Adam

    return isinstance(optimizer, Adam) and key == "v"


def _checked_for_saving(path, what: str, values: np.ndarray, nonnegative: bool = False) -> np.ndarray:
    # load() rejects such a file, so writing it would replace a good checkpoint with a useless one
    if not np.isfinite(values).all():
        raise ValueError(f"not saving {path!r}: {what} contains NaN or Inf (has training diverged?); "
                         "a file already there is left as it was")
    if nonnegative and (values < 0).any():
        raise ValueError(f"not saving {path!r}: {what} has negative values (second moments must be >= 0); "
                         "a file already there is left as it was")
    return values


def _unrebuildable_layers(model) -> list:
    """Paths of layers whose class takes constructor arguments but keeps Layer's empty
    ``get_config``: a checkpoint would rebuild them with their defaults, silently."""
    import inspect

    from .layers.base import Layer

    found = []
    for where, part in model.named_modules():
        cls = type(part)
        if isinstance(part, Layer) and cls.get_config is Layer.get_config and cls.from_config.__func__ is Layer.from_config.__func__:
            if len(inspect.signature(cls.__init__).parameters) > 1:  # more than self
                found.append(f"{where} ({cls.__name__})")
    return found


def _unrebuildable_model(model) -> str:
    """Why ``load`` would not rebuild ``model`` from its config ("" if it would): it calls
    ``MODEL_TYPES[class name](**config)``, so a subclass must be the class registered under
    its name, and its constructor must take the config and need nothing the config lacks."""
    import inspect

    from .models.base import MODEL_TYPES

    cls = type(model)
    registered = MODEL_TYPES.get(cls.__name__)
    if registered is not cls:
        return (f"another model class is registered under the name {cls.__name__!r} "
                f"({registered.__module__}.{registered.__qualname__}), and load() would build that one; "
                "give your class a name of its own")
    advice = ("; a subclass with constructor arguments of its own sets self.config in its __init__, after "
              "super().__init__, to the arguments its constructor takes (JSON values), e.g. "
              "self.config = {**self.config, 'gamma': gamma}")
    config = cls.config_from_checkpoint(model.config)
    signature = inspect.signature(cls)
    try:
        signature.bind(**config)
    except TypeError as exc:
        return f"{cls.__name__}'s constructor does not take its config ({exc}){advice}"
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    missing = [name for name, p in signature.parameters.items() if p.kind in named and name != "backend" and name not in config]
    if missing:
        return (f"{cls.__name__}'s constructor takes {', '.join(missing)}, which its config does not hold, "
                f"so load() would build it with the defaults{advice}")
    return model._config_out_of_step()


def save(model, path, include_optimizer: bool = True, info: dict | None = None) -> None:
    """Write ``model`` to ``path`` (.npz) atomically: a temporary file in the same folder,
    fsynced, then renamed over the target, so an existing checkpoint is never half-written.
    The name is used as given: unlike ``np.savez``, no ".npz" is appended.

    ``info``: a dict of JSON values (string keys) stored beside the model, e.g. what data it
    was trained on; ``read_info(path)`` gives it back. It becomes ``model.info``, and ``None``
    (the default) writes ``model.info`` again: what ``load`` read, or what the last save was
    given, so a run resumed and checkpointed again (``ModelCheckpoint``) keeps it. ``{}``
    writes none.

    ``include_optimizer`` stores the state of ``fit``'s optimizer run (``model.optimizers``):
    an Optimizer made for a loop of your own, and never given to ``fit``, is not the model's,
    and is not stored. ``include_optimizer=False`` leaves the whole run out, its settings
    too: ``fit`` on the loaded model starts a new run (Adam at lr 1e-3 unless given others).
    Parameter groups whose optimizers were given different settings (an AAE's discriminator
    at a rate of its own) keep each group's.

    Refuses (ValueError, nothing written) parameters, optimizer state or training state that
    ``load`` would reject: NaN, Inf, negative second moments; a history value fit records
    (``loss``, ``val_loss``, ...) that is not a number; a step, epoch count or seed below 0.
    """
    path = check_file_path("path", path)
    include_optimizer = check_bool("include_optimizer", include_optimizer)  # "no" would save it
    if info is None:
        info = getattr(model, "info", None)
    if info is not None and not (isinstance(info, dict) and _string_keys(info)):
        raise TypeError(f"info must be a dict with string keys, nested dicts too (stored as JSON, which would turn "
                        f"other keys into strings), got {info!r}")
    unrebuildable = _unrebuildable_layers(model)
    if unrebuildable:
        raise TypeError(f"not saving {path!r}: {', '.join(unrebuildable)} take constructor arguments but define no "
                        "get_config(), so load() would rebuild them with their defaults; give each class a "
                        "get_config() returning its constructor arguments")
    unrebuildable = _unrebuildable_model(model)
    if unrebuildable:
        raise TypeError(f"not saving {path!r}: {unrebuildable}")
    model._check_layers_bound()  # model.flat would not hold the values the model computes with
    be = model.backend
    groups = model.parameter_groups()
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "model": _json_array({"class": type(model).__name__, "config": model.config}),
        "layout": _json_array({name: flat.layout_signature() for name, flat in groups.items()}),
    }
    for name, flat in groups.items():
        arrays[f"params/{name}"] = _checked_for_saving(path, f"parameter group {name!r}", be.to_numpy(flat.data))
    training = {"step": model.step, "epochs_trained": model.epochs_trained, "train_seed": model.train_seed,
                "history": model.history.epochs, "optimizer": None}
    if include_optimizer and model.optimizers:
        name, lr, options = model.optimizer_spec  # the settings in use (a schedule may have changed optimizer.lr)
        if not isinstance(name, str):
            raise TypeError("only optimizers created by name ('adam', 'sgd') can be checkpointed; save the model "
                            "without its optimizer state with include_optimizer=False")
        training["optimizer"] = {"name": name, "lr": lr, "options": dict(options),
                                 "t": {group: opt.t for group, opt in model.optimizers.items()}}
        differ = model._optimizer_groups_differ()
        if differ:  # an AAE's discriminator at a rate of its own, say: each group's settings, as in use
            training["optimizer"]["group_settings"] = {group: {"lr": group_lr, "options": dict(group_options)}
                                                       for group, (group_lr, group_options) in differ.items()}
        for group, opt in model.optimizers.items():
            for key, value in opt.state_arrays().items():
                arrays[f"optim/{group}/{key}"] = _checked_for_saving(
                    path, f"optimizer state {group}/{key}", be.to_numpy(value), nonnegative=_second_moment(opt, key))
    arrays["training"] = _json_array(training)
    # judged as load will read it back: NumPy scalars have become plain JSON numbers by then
    problem = _training_state_problem(json.loads(str(arrays["training"])), model)
    if problem:
        raise ValueError(f"not saving {path!r}: load() would refuse its training state: {problem} "
                         "(a file already there is left as it was)")
    if info:
        try:
            arrays["info"] = _json_array(info, allow_nan=False)
        except ValueError as exc:  # NaN or Inf, which JSON cannot hold
            raise ValueError(f"not saving {path!r}: info must hold JSON values: {exc}") from None
    write_atomically(path, lambda f: np.savez(f, **arrays))
    # a copy as read back: the caller's dict may change after the save
    model.info = json.loads(str(arrays["info"])) if info else None


# what reading a damaged zip member can raise: zipfile's own errors, a bad CRC or deflate
# stream, an encrypted or unsupported-compression member, a short read
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, NotImplementedError, RuntimeError)


def _read(path: str, keys=None) -> dict:
    """The file's entries (those named in ``keys`` that it has, if given: an archive's members
    are read one by one, so read_info need not read the parameters)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}{_neighbour_hint(path)}")
    if os.path.isdir(path):  # microvae train's run folder, most likely: the checkpoint is inside it
        inside = os.path.join(path, "model.npz")
        hint = f"; it holds {inside!r}: load that" if os.path.isfile(inside) else ""
        raise IsADirectoryError(f"{path!r} is a folder, not a checkpoint file{hint} (microvae train writes model.npz "
                                "into its --out folder)")
    # our own file object: np.load given a name leaves its file open when a damaged zip fails to open
    with open(path, "rb") as f:
        head = f.read(6)
        f.seek(0)
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):  # a zip archive (.npz), an .npy file
            raise CheckpointError(path, f"not a microvae checkpoint: not an .npz archive (it starts with {head!r}); "
                                        "expected a file written by model.save()")
        try:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded as npz:
                    return {key: _member(npz, key, path) for key in npz.files if keys is None or key in keys}
        except _UNREADABLE as exc:
            raise CheckpointError(path, f"not a readable microvae checkpoint (truncated, corrupt or not an .npz file): {exc}") from exc
    # a .npy file: np.load gives one bare array, not an archive of named entries
    raise CheckpointError(path, f"not a microvae checkpoint: it holds a single {loaded.dtype} array of shape "
                                f"{loaded.shape} (an .npy file); expected an .npz archive written by model.save()")


def _neighbour_hint(path: str) -> str:
    """"; ... exists" when the name with ".npz" added or removed is a file: save() appends no suffix."""
    other = path[: -len(".npz")] if path.endswith(".npz") else path + ".npz"
    return f"; {other!r} exists (save() writes the name it is given, adding no '.npz')" if os.path.isfile(other) else ""


def _member(npz, key: str, path: str) -> np.ndarray:
    """One array of an archive, once its header's shape and dtype are seen to fit in the bytes
    the member holds: a damaged header (one flipped digit of a shape) otherwise asks for an
    allocation of terabytes, a MemoryError that names neither the file nor the fault."""
    name = key if key in npz.zip.namelist() else f"{key}.npy"
    with npz.zip.open(name) as member:
        version = np.lib.format.read_magic(member)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is not None:  # np.save writes these two; np.load refuses others itself
            shape, _, dtype = read_header(member)
            declared = math.prod(shape) * dtype.itemsize
            if declared > npz.zip.getinfo(name).file_size:
                raise CheckpointError(path, f"entry {key!r} declares a {dtype} array of shape {shape} ({declared:,} bytes), "
                                            f"more than the {npz.zip.getinfo(name).file_size:,} bytes it holds: the file is corrupt")
    return npz[key]


def _describe(arr: np.ndarray) -> str:
    return repr(arr.item()) if arr.ndim == 0 and arr.dtype.kind in "biufU" else f"a {arr.dtype} array of shape {arr.shape}"


def _json_entry(data: dict, key: str, path: str, what: str):
    """The JSON document in entry ``key`` (a 0-d unicode array); ``what`` says what it should hold."""
    if key not in data:
        raise CheckpointError(path, f"malformed metadata: no '{key}' entry; expected {what}")
    arr = data[key]
    if arr.ndim != 0 or arr.dtype.kind != "U":
        raise CheckpointError(path, f"malformed metadata: '{key}' is {_describe(arr)}; expected a JSON string holding {what}")
    try:
        return json.loads(str(arr))
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(path, f"malformed metadata: '{key}' is not valid JSON ({exc}); expected {what}") from exc


def _stored_array(data: dict, key: str, like, path: str, what: str, nonnegative: bool = False) -> np.ndarray:
    """Entry ``key`` as an array of ``like``'s shape and dtype, checked: floating point, the
    right size, finite once cast (float64 values near 1e300 are finite but overflow float32)."""
    values = data.get(key)
    if values is None or values.shape != tuple(like.shape):
        raise CheckpointError(path, f"{what} missing or of the wrong size (expected {like.size} values)")
    if values.dtype.kind != "f":
        raise CheckpointError(path, f"{what} is stored as {values.dtype}; expected floating-point numbers")
    with np.errstate(over="ignore", invalid="ignore"):
        values = values.astype(like.dtype)
    if not np.isfinite(values).all():
        raise CheckpointError(path, f"{what} contains NaN or Inf (in {like.dtype}); expected finite values")
    if nonnegative and (values < 0).any():
        raise CheckpointError(path, f"{what} has negative values; expected second moments >= 0")
    return values


def _read_checkpoint(path: str, keys=None) -> dict:
    """The file's entries (or those in ``keys``), once its marker and format version say it is a
    checkpoint we read: those two are read first, so that another file (a data set given by
    mistake) is refused before its arrays are read."""
    _check_marker(_read(path, {"format", "format_version"}), path)
    data = _read(path, None if keys is None else {"format", "format_version", *keys})
    _check_marker(data, path)  # the file may have been replaced in between
    return data


def _check_marker(data: dict, path: str) -> None:
    if "format" not in data or str(data["format"]) != FORMAT:
        raise CheckpointError(path, f"not a microvae checkpoint (no '{FORMAT}' marker); expected a file written by model.save()")
    version = data.get("format_version")
    if version is None or version.ndim != 0 or version.dtype.kind not in "iu":
        found = "none" if version is None else _describe(version)
        raise CheckpointError(path, f"format_version is {found}; expected the integer {FORMAT_VERSION}")
    if int(version) != FORMAT_VERSION:
        raise CheckpointError(path, f"has checkpoint format version {int(version)}; this microvae reads version {FORMAT_VERSION}")


def _string_keys(value) -> bool:
    """Whether every dict inside ``value`` (lists and dicts, to any depth) has only string keys."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and _string_keys(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_string_keys(item) for item in value)
    return True


def read_info(path) -> dict:
    """The ``info`` dict stored by ``save(..., info=...)``; {} for a checkpoint saved without one.

    Raises CheckpointError for a file that is not a microvae checkpoint (or of another format
    version) or whose info is not a JSON object, and FileNotFoundError if there is no file.
    """
    path = as_path(path)
    return _info(_read_checkpoint(path, keys=("info",)), path) or {}


def _info(data: dict, path: str) -> dict | None:
    """The checkpoint's info dict, or None if it has none."""
    if "info" not in data:
        return None
    info = _json_entry(data, "info", path, "a JSON object")
    if not isinstance(info, dict):
        raise CheckpointError(path, f"malformed metadata: 'info' is a {type(info).__name__}; expected a JSON object")
    return info


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _training_state_problem(training, model) -> str:
    """What ``load`` would refuse in a stored training state ("" if nothing): ``save`` asks the
    same question first, so that it never replaces a good checkpoint with one that cannot load."""
    if not isinstance(training, dict):
        return "expected a JSON object {step, epochs_trained, train_seed, history, optimizer}"
    for key in ("step", "epochs_trained"):
        if not _is_count(training.get(key, 0)):
            return f"{key} is {training[key]!r}; expected an integer >= 0"
    seed = training.get("train_seed")
    if seed is not None and not _is_count(seed):  # a negative seed loaded, then failed in fit, deep in NumPy
        return f"train_seed is {seed!r}; expected an integer >= 0 or null"
    history = training.get("history", [])
    # what fit records is numbers; a callback may add any JSON value under a name of its own
    recorded = {"epoch", "seconds", *model.metric_names, *(f"val_{name}" for name in model.metric_names)}
    if not (isinstance(history, list) and all(isinstance(record, dict) for record in history)):
        return f"history must be a list of per-epoch records (JSON objects whose {', '.join(sorted(recorded))} are numbers)"
    for i, record in enumerate(history, 1):
        for key, value in record.items():
            if key in recorded and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                return (f"history must be a list of per-epoch records (JSON objects whose {', '.join(sorted(recorded))} "
                        f"are numbers); record {i} has {key}={value!r}")
    return ""


def load(path, backend=None):
    """Rebuild the model saved at ``path`` (any microvae model class), with its parameters,
    history and, if saved, optimizer state, so ``fit`` continues the same run.

    ``backend`` overrides the device ("numpy" or "cupy"); a ``Backend`` object brings its own
    dtype and generator, as in a model's constructor (a float64 checkpoint loaded onto a
    float32 Backend is rounded to float32, and its seed is not used). Raises CheckpointError, naming the
    file and what was expected, for a corrupt, truncated, foreign or inconsistent file,
    FileNotFoundError if there is none and IsADirectoryError for a folder (a run folder's
    checkpoint is its model.npz).
    """
    from .backend import _kernel_kind, get_backend
    from .models.base import MODEL_TYPES
    from .training import History

    path = as_path(path)
    data = _read_checkpoint(path)
    meta = _json_entry(data, "model", path, '{"class": <model class>, "config": {...}}')
    if not (isinstance(meta, dict) and isinstance(meta.get("class"), str) and isinstance(meta.get("config"), dict)):
        raise CheckpointError(path, 'malformed metadata: \'model\' must be {"class": <model class>, "config": {...}}')
    cls = MODEL_TYPES.get(meta["class"])
    if cls is None:
        raise CheckpointError(path, f"malformed metadata: unknown model class {meta['class']!r}; expected one of {', '.join(sorted(MODEL_TYPES))}")
    if backend is not None:
        get_backend(backend)  # an unusable backend argument is the caller's error, not the file's
    _kernel_kind(None)  # as is a bad $MICROVAE_KERNELS: checked here, before the config is blamed for it
    config = dict(meta["config"])
    if "backend" in config:  # save() never stores one: the device is the loader's choice
        raise CheckpointError(path, "malformed metadata: the config names a backend, which save() never stores "
                                    "(pass backend= to load)")
    if backend is not None:
        config["backend"] = backend
    try:
        model = cls(**cls.config_from_checkpoint(config))
    # RecursionError: a layer spec nested hundreds deep parses as JSON but not as a model
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, MemoryError, RecursionError) as exc:
        raise CheckpointError(path, f"its config does not build a {cls.__name__} (expected the constructor "
                                    f"arguments model.save() stored): {exc}") from exc

    layout = _json_entry(data, "layout", path, "{group: parameter layout}")
    groups = model.parameter_groups()
    if (not isinstance(layout, dict) or set(groups) != set(layout)
            or any(flat.layout_signature() != layout[name] for name, flat in groups.items())):
        raise CheckpointError(path, f"stored parameter layout does not match a {cls.__name__} built from its config "
                                    f"(expected the groups {', '.join(groups)} with the layers of that model)")
    for name, flat in groups.items():
        flat.data[...] = model.backend.asarray(_stored_array(data, f"params/{name}", flat.data, path, f"parameter group {name!r}"))

    training = _json_entry(data, "training", path, "the training state") if "training" in data else {}
    problem = _training_state_problem(training, model)
    if problem:
        raise CheckpointError(path, f"malformed training state: {problem}")
    model.step = training.get("step", 0)
    model.epochs_trained = training.get("epochs_trained", 0)
    model.train_seed = training.get("train_seed")
    model.history = History(training.get("history", []))
    model.info = _info(data, path)
    if training.get("optimizer") is not None:
        model.optimizers, model._optimizer_key = _load_optimizers(training["optimizer"], groups, data, model.backend, path)
    return model


def _load_optimizers(opt, groups: dict, data: dict, backend, path: str):
    """({group: optimizer}, the optimizer's name) rebuilt from the stored settings and moments."""
    from .optim import get_optimizer

    expected = ("{name, lr, options: {...}, t: {group: steps taken}, and where the groups' settings differ "
                "group_settings: {group: {lr, options: {...}}}}")
    if not (isinstance(opt, dict) and isinstance(opt.get("name"), str) and isinstance(opt.get("options"), dict)
            and isinstance(opt.get("t"), dict) and isinstance(opt.get("group_settings", {}), dict)):
        raise CheckpointError(path, f"malformed optimizer state: expected {expected}, got {opt!r}")
    for key in ("t", "group_settings"):  # a group this model has not: a file of another model, or edited
        foreign = [group for group in opt.get(key, {}) if group not in groups]
        if foreign:
            raise CheckpointError(path, f"malformed optimizer state: {key} names the group(s) {', '.join(map(repr, foreign))}, "
                                        f"which this model has not (expected {', '.join(map(repr, groups))})")
    optimizers = {}
    for group, flat in groups.items():
        t = opt["t"].get(group)
        if not _is_count(t):
            raise CheckpointError(path, f"malformed optimizer state: t[{group!r}] is {t!r}; expected an integer >= 0")
        settings = opt["group_settings"].get(group) if "group_settings" in opt else opt
        if not (isinstance(settings, dict) and isinstance(settings.get("options"), dict)):
            raise CheckpointError(path, f"malformed optimizer state: group_settings[{group!r}] is {settings!r}; expected "
                                        f"{{lr, options: {{...}}}}")
        lr, options = settings.get("lr"), settings["options"]
        try:
            optimizer = get_optimizer(opt["name"], flat, lr, **options)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(path, f"optimizer {opt['name']!r} of group {group!r} with lr={lr!r} and options "
                                        f"{options!r} cannot be rebuilt (expected 'adam' or 'sgd' with their options): "
                                        f"{exc}") from exc
        optimizer.t = t
        for key, value in optimizer.state_arrays().items():
            value[...] = backend.asarray(_stored_array(data, f"optim/{group}/{key}", value, path, f"optimizer state {group}/{key}",
                                                       nonnegative=_second_moment(optimizer, key)))
        optimizers[group] = optimizer
    if "group_settings" in opt:
        # save writes the first group's settings at the top level too (what a reader from before
        # group_settings uses for every group): an edit of one but not the other would be ignored
        first = next(iter(groups))
        stored = {key: opt.get(key) for key in ("lr", "options")}
        if stored != {key: opt["group_settings"][first][key] for key in ("lr", "options")}:
            raise CheckpointError(path, f"malformed optimizer state: the top-level lr={stored['lr']!r}, options="
                                        f"{stored['options']!r} must be those of the first group, group_settings"
                                        f"[{first!r}] = {opt['group_settings'][first]!r}")
    return optimizers, opt["name"]
