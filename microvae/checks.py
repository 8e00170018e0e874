"""Argument checks shared by the layers, models, fit, the optimizers and the metrics.

``int()`` would take "5" and truncate 2.7, and a comparison with a string fails with an error
that names no argument; these name the argument and the form expected. The only import from
the rest of microvae is ``atomic`` (which imports none), so any module can use them.
"""

from __future__ import annotations

import collections.abc
import math
import numbers
import os

import numpy as np

from .atomic import names_a_folder

__all__ = ["check_int", "check_seed", "check_number", "check_bool", "check_dtype", "check_sizes", "as_path", "check_file_path",
           "check_array_like", "check_real_array", "is_choice", "is_unordered", "is_sequence", "is_built_in"]


def check_int(name: str, value, minimum: int | None = None, none_ok: bool = False):
    """``value`` as an int (an integer, or a float without a fraction; never a bool or a string),
    at least ``minimum`` if given; else a TypeError/ValueError naming ``name``."""
    if value is None and none_ok:
        return None
    form = {None: "an integer", 0: "an integer >= 0", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    form = f"None or {form}" if none_ok else form
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {form}, got {value!r}")
    if not (math.isfinite(value) and value == int(value)) or (minimum is not None and value < minimum):
        raise ValueError(f"{name} must be {form}, got {value!r}")
    return int(value)


def check_seed(seed):
    """A random seed: None (fresh entropy) or an integer >= 0, as everywhere in microvae."""
    return check_int("seed", seed, 0, none_ok=True)


def check_number(name: str, value, form: str = "a number") -> float:
    """``value`` as a float if it is a real number (not a bool or a string), else a TypeError naming
    ``name`` and ``form``; the caller checks the range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {form}, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float's range: "int too large to convert to float" named nothing
        raise ValueError(f"{name} must be {form} within float range (about ±1.8e308), "
                         f"got an integer of {len(str(abs(int(value))))} digits") from None


def check_bool(name: str, value) -> bool:
    """``value`` if it is True or False (a NumPy bool too), else a TypeError naming ``name``:
    ``bool("no")`` is True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_dtype(dtype) -> str:
    """'float32' or 'float64' for any spelling NumPy reads ("f8", "double", np.float64, float;
    but not None, NumPy's float64), else a ValueError, also for a name NumPy does not know."""
    try:
        name = None if dtype is None else np.dtype(dtype).name
    except (TypeError, ValueError):  # "foo": NumPy's "data type 'foo' not understood"
        name = None
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name


def is_choice(value, choices) -> bool:
    """Whether ``value`` is one of ``choices`` (a dict's keys or a tuple of names). False, not
    Python's "unhashable type: 'list'" (which names no argument), for a list or an array."""
    return isinstance(value, collections.abc.Hashable) and value in choices


def is_unordered(value) -> bool:
    """Whether ``value`` is a set or a mapping: iterable, but not in the order the caller wrote
    ({256, 512} iterates in hash order), so it is refused wherever the order of items matters
    (layer sizes, a (height, width) pair, a shape)."""
    return isinstance(value, (collections.abc.Set, collections.abc.Mapping))


def is_built_in(cls) -> bool:
    """Whether ``cls`` is one of microvae's own classes (not a user's, nor a subclass defined outside)."""
    return cls.__module__.split(".")[0] == "microvae"


def is_sequence(value) -> bool:
    """Whether ``value`` holds items in the order the caller wrote them: iterable, but not a
    string (whose characters would be taken as items: "28" as (2, 8)) and not a set or mapping."""
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes)) and not is_unordered(value)


def check_sizes(name: str, value) -> tuple:
    """Layer sizes as a tuple of ints (the caller checks that they are positive)."""
    if not is_sequence(value):
        raise TypeError(f"{name} must be a sequence of layer sizes, e.g. (64,) for one hidden layer or () for none, got {value!r}")
    return tuple(check_int(f"{name}[{i}]", size) for i, size in enumerate(value))


def as_path(path, name: str = "path") -> str:
    """``path`` (str, bytes or os.PathLike) as a str. Bytes are decoded as the file system
    decodes them (``os.fsdecode``: undecodable bytes round-trip), so that every function taking
    a path can join, format and print it alike; anything else is a TypeError naming ``name``."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"{name} must be a file path (str, bytes or os.PathLike), got {type(path).__name__}") from None


def check_file_path(name: str, path, example: str = "model.npz") -> str:
    """``path`` as a string, if it can name a file to write (missing folders are made later);
    else a ValueError naming ``name``: an empty path, one ending in a separator, "." or "..",
    or an existing folder (the atomic writes would otherwise fail on a hidden temporary name)."""
    path = as_path(path, name)
    if names_a_folder(path) or os.path.isdir(path):
        raise ValueError(f"{name} {path!r} names a folder, not a file; give a file name, such as "
                         f"{os.path.join(path or '.', example)!r}")
    return path


def as_array(value, name: str, remedy: str, shape: str | None = None):
    """``np.asarray(value)``, with a ragged list (rows or sequences of different lengths) named
    as ``name`` and followed by ``remedy``, instead of NumPy's "inhomogeneous shape". Given the
    ``shape`` expected (its text, e.g. "(batch, 784)"), what is no array at all (None, a dict:
    NumPy's 0-d object array) is a TypeError saying so, not "a batch of shape ()"."""
    try:
        array = np.asarray(value)
    except ValueError as exc:
        if "inhomogeneous" not in str(exc):
            raise
        raise ValueError(f"{name} is a ragged list (its rows have different lengths); {remedy}") from None
    if shape is not None and array.dtype == object and array.ndim == 0:
        raise TypeError(f"{name} must be an array of shape {shape}, got {type(value).__name__}")
    return array


def labels_or_mask(model, y, mask):
    """The array that follows x, given as ``y`` or, for a sequence model, by the models' own
    name ``mask=``: the metrics and applications take either, never both."""
    if mask is None:
        return y
    name = type(model).__name__
    if not getattr(model, "is_sequence_model", False):
        takes = "its class labels as y=" if getattr(model, "needs_labels", False) else "no second array"
        raise TypeError(f"mask= is a sequence model's (VRAE, HierarchicalVRAE) mask of real steps; {name} takes {takes}")
    if y is not None:
        raise TypeError(f"{name}: pass the mask once, as mask= or as y=, not both")
    return mask


def check_array_like(value, where: str, name: str | None = None) -> None:
    """TypeError naming ``where`` (e.g. "Dense.backward") and the argument ``name`` unless
    ``value`` is an array or a (nested) list or tuple: ``asarray(None)`` is a 0-d object array,
    which a shape check would refuse as "got ()" and a float cast would make NaN."""
    if not hasattr(value, "shape") and not isinstance(value, (list, tuple)):
        what = f" for {name}" if name else ""
        raise TypeError(f"{where} expects an array{what}, got {type(value).__name__}")


def check_real_array(x, owner: str, method: str | None, name: str) -> None:
    """TypeError unless ``x`` holds real numbers (bool, integer or float), naming
    ``owner.method`` (``owner`` alone where method is None) and the argument ``name``.
    Casting a complex array to a float dtype would drop its imaginary part with only a
    warning, and an object array would turn None into NaN.
    Cheap enough for every forward and backward pass: the message is built only on failure."""
    dtype = getattr(x, "dtype", None)
    if dtype is None and not (np.isscalar(x) or any(hasattr(x, a) for a in ("__len__", "__iter__", "__array__"))):
        # an object that is no array-like at all, such as a model where arrays were expected
        # (plot.plot_samples(model)): "got dtype object" would not say so
        hint = "; pass arrays, e.g. model.sample(64) or model.encode(x)[0]" if hasattr(x, "encode") else ""
        found = f"a {type(x).__name__} object{hint}"
    else:
        if dtype is None:  # a list or tuple: NumPy infers its dtype as asarray would
            dtype = as_array(x, name, "give an array, or lists of equal lengths").dtype
        if dtype.kind in "biuf":
            return
        found = f"dtype {dtype}"
    where = owner if method is None else f"{owner}.{method}"
    raise TypeError(f"{where} expects real numbers (bool, integer or float) for {name}, got {found}")


def sorted_unique(values: np.ndarray, name: str, why: str, **unique_options):
    """``np.unique(values, **unique_options)``, with a TypeError naming ``name`` and the kinds
    of value found when an object array mixes kinds that cannot be sorted (None, str, int)."""
    try:
        return np.unique(values, **unique_options)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in values.tolist()})
        raise TypeError(f"{name} must all be numbers or all strings ({why}), got a mix of {', '.join(kinds)}") from None
