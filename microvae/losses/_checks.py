"""Type and shape checks shared by the losses (cheap: no pass over the data), and the one
range check the Bernoulli losses make, which a model that checked its data once skips."""

import numpy as np

from ..backend import array_module


def array_of(what: str, name: str, array, data: bool = False) -> None:
    """``array`` must be a float32/float64 array (what a gradient is taken for), or with
    ``data`` an array of any real numbers (data may be float16, integers or bools: 0/1
    pixels; the losses read it in the prediction's dtype). An ``np.matrix`` is refused: its
    ``*`` is a matrix product, and the losses' elementwise products would silently be that."""
    dtype = getattr(array, "dtype", None)
    if dtype is None or not hasattr(array, "shape"):
        raise TypeError(f"{what}: {name} must be a NumPy or CuPy array, got {type(array).__name__}")
    if isinstance(array, np.matrix):
        raise TypeError(f"{what}: {name} is an np.matrix, whose * is a matrix product; pass np.asarray({name})")
    # kind and itemsize, not dtype.name: NumPy builds that string in Python, a few µs a call,
    # and every training step checks four arrays here
    float_sizes = (2, 4, 8) if data else (4, 8)
    if not ((dtype.kind == "f" and dtype.itemsize in float_sizes) or (data and dtype.kind in "biu")):
        expected = "an array of real numbers (bool, integer, float16, float32 or float64)" if data else "a float32 or float64 array"
        raise TypeError(f"{what}: {name} must be {expected}, got dtype {dtype}")


def same_shape(what: str, a, b, names, b_is_data: bool = True) -> None:
    """``a`` a float array and ``b`` data (or floats too, if not ``b_is_data``; see ``array_of``),
    both of one non-empty batch shape."""
    array_of(what, names[0], a)
    array_of(what, names[1], b, data=b_is_data)
    if a.shape != b.shape:
        raise ValueError(f"{what}: {names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim < 1 or a.shape[0] < 1:
        raise ValueError(f"{what}: expected a non-empty batch (batch, ...), got shape {tuple(a.shape)}")


def native(dtype):
    """``dtype`` in this machine's byte order: a gradient goes on to the layers and kernels,
    which take native arrays only, whatever order the caller's array had."""
    return dtype.newbyteorder("=")


def rows(a):
    """View (batch, ...) as (batch, features) for per-example sums."""
    return a.reshape(a.shape[0], -1)


def outside_unit_interval(x):
    """(min, max) of ``x`` as floats if a value lies outside [0, 1] or is NaN, else None: the
    Bernoulli losses' and likelihood's data check, one pass each for the min and the max."""
    xp = array_module(x)
    if x.size == 0:  # no value lies outside (min() of nothing is NumPy's error)
        return None
    lo, hi = float(xp.min(x)), float(xp.max(x))
    return None if 0.0 <= lo and hi <= 1.0 else (lo, hi)


def found_range(lo: float, hi: float) -> str:
    """"found values in [lo, hi]" for a range check's message, each bound written to as many
    digits as it takes to tell it from 0 and 1 (``:g`` wrote float32's 1.0000001 as "1", an
    error that contradicted itself), and a hint to clip when rounding is all that put the data
    outside [0, 1]. A NaN anywhere makes both bounds NaN: then "found NaN" ("[nan, nan]" read
    as though every value were NaN)."""
    if lo != lo or hi != hi:
        return "found NaN"

    def written(value: float) -> str:
        short = f"{value:g}"
        return repr(value) if short in ("0", "-0", "1") and value not in (0.0, 1.0) else short

    text = f"found values in [{written(lo)}, {written(hi)}]"
    beyond = max(0.0 - lo, hi - 1.0)  # NaN compares false: no hint then
    if 0.0 < beyond <= 1e-6:
        text += f", at most {beyond:.2g} outside [0, 1], as rounding leaves: np.clip to [0, 1] puts such values back"
    return text


def bernoulli_targets(what: str, x) -> None:
    """ValueError unless every value of ``x`` lies in [0, 1] (NaN does not): outside it
    softplus(l) − x·l is no log-likelihood, and 0–255 pixels gave a loss of −761 per pixel."""
    found = outside_unit_interval(x)
    if found is not None:
        lo, hi = found
        raise ValueError(f"{what}: x must lie in [0, 1], the pixels' probabilities of being on ({found_range(lo, hi)}); "
                         "scale the data, or use gaussian_nll for real-valued data")
