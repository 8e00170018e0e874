"""Putting a trained VAE to work: denoising, latent interpolation and traversals.

All functions take and return NumPy arrays. Models are duck-typed like ``microvae.plot``:
``encode(x) -> (μ, logvar)`` (or the codes alone, as an AAE's ``encode`` gives them),
``decode(z) -> images`` and ``reconstruct(x)``. A conditional model (``needs_labels``: a CVAE)
takes its class labels through ``y`` everywhere it encodes or decodes, and without them is a
TypeError.

**Denoising.** A VAE trained on clean images maps a corrupted image to the code of a nearby
clean one, and its decoder only draws what it learned: reconstructing the noisy image is a
denoiser. ``denoising_report`` measures it by the PSNR gain

    gain = PSNR(clean, reconstruct(noisy)) − PSNR(clean, noisy)        (dB; > 0 helps)

**Interpolation.** Between the posterior means of two inputs, linearly or along the great
circle (``slerp``), which keeps the norm of the code closer to the typical norm of prior
draws (high-dimensional Gaussian mass lies near a sphere, not at its centre).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .checks import check_bool, check_int, check_number, check_real_array, check_seed, is_choice, labels_or_mask

__all__ = [
    "NOISE_KINDS", "add_noise", "denoise", "psnr", "DenoisingReport", "denoising_report", "plot_denoising",
    "slerp", "interpolate", "plot_interpolations", "traverse", "plot_traversal",
]

NOISE_KINDS = ("gaussian", "salt_pepper", "mask")


# denoising ------------------------------------------------------------------------------------
def _in_unit_interval(x) -> bool:
    """Whether ``x`` lies in [0, 1] (images, probabilities): what the noise and the PSNR's
    data range treat as image data rather than real-valued data."""
    x = np.asarray(x)
    return bool(x.size == 0 or (x.min() >= 0 and x.max() <= 1))


def add_noise(x, kind: str = "gaussian", level: float = 0.3, seed: int | None = 0, clip: bool | None = None):
    """A corrupted copy of ``x`` (same shape and float dtype), usually images with values in [0, 1].

    ``kind`` is one of ``NOISE_KINDS``; ``seed`` (default 0) makes the noise repeatable, None
    draws it from fresh entropy:

    - ``"gaussian"``: x + level·N(0, 1) per pixel (``level`` is the std), clipped to [0, 1]
      as ``clip`` says;
    - ``"salt_pepper"``: a fraction ``level`` of the pixels set to 0 or 1 (equally likely),
      or, for data not in [0, 1], to its minimum or maximum;
    - ``"mask"``: a fraction ``level`` of the pixels set to 0 (dropped out).

    ``clip``: None (the default) clips the Gaussian-noised values to [0, 1] only when x
    already lies in [0, 1] (images and probabilities stay valid data), and leaves real-valued
    data unclipped; True always clips to [0, 1]; False never does. The other kinds take no ``clip``.
    """
    if not is_choice(kind, NOISE_KINDS):
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    level = check_number("level", level, "a number")
    if kind == "gaussian" and not (math.isfinite(level) and level >= 0):
        raise ValueError(f"level must be a finite number >= 0 (the standard deviation) for gaussian noise, got {level!r}")
    if kind != "gaussian" and not 0 <= level <= 1:
        raise ValueError(f"level must be a fraction in [0, 1] (of the pixels hit) for {kind!r} noise, got {level!r}")
    if clip is not None and not isinstance(clip, (bool, np.bool_)):
        raise ValueError(f"clip must be True, False or None (clip only data already in [0, 1]), got {clip!r}")
    if clip is not None and kind != "gaussian":  # it was taken and ignored
        raise ValueError(f"clip is for gaussian noise: {kind!r} noise sets pixels to values of the data's own range, "
                         f"with nothing to clip; leave clip out")
    x = np.asarray(x)
    check_real_array(x, "add_noise", None, "x")  # an object array turned None into NaN, strings failed in the cast
    dtype = x.dtype if x.dtype.kind == "f" else np.float32
    x = x.astype(dtype)
    if x.size and not np.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    rng = np.random.default_rng(check_seed(seed))
    if kind == "gaussian":
        noisy = x + level * rng.standard_normal(x.shape)
        if clip is None:
            clip = _in_unit_interval(x)
        return (np.clip(noisy, 0.0, 1.0) if clip else noisy).astype(dtype)
    hit = rng.random(x.shape) < level
    out = x.copy()
    if kind == "mask":
        out[hit] = 0
    else:
        # the extremes of the data: 0 and 1 for images; 0/1 would be ordinary values of real-valued data
        low, high = (0.0, 1.0) if _in_unit_interval(x) else (float(x.min()), float(x.max()))
        out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, high, low).astype(dtype)
    return out


def _check_labels(model, y):
    """A conditional model needs its labels ``y``; an unconditional one (other than a
    sequence model, whose second array is a mask) takes none."""
    name = type(model).__name__
    if getattr(model, "needs_labels", False):
        if y is None:
            raise TypeError(f"{name} is conditional: pass y, the class labels of the examples")
    elif y is not None and not getattr(model, "is_sequence_model", False):
        shapes_prior = getattr(model, "prior", None) == "mixture"  # an AAE's labels pick prior components in fit
        kind = "reconstructs without labels (they choose its mixture prior's components, in fit)" if shapes_prior else \
            "is unconditional and takes no labels"
        raise TypeError(f"y is for a conditional model (such as a CVAE); {name} {kind}: leave y out")


def denoise(model, x_noisy, y=None, *, mask=None):
    """The model's reconstruction of ``x_noisy``: decode(μ(x_noisy)) (labels ``y`` for a
    conditional model, or a sequence model's mask, as ``y`` or ``mask=``), in the shape of
    ``x_noisy`` (a ConvVAE given flat rows returns flat rows)."""
    y = labels_or_mask(model, y, mask)
    _check_labels(model, y)
    x_noisy = np.asarray(x_noisy)
    out = np.asarray(model.reconstruct(x_noisy) if y is None else model.reconstruct(x_noisy, y))
    return out.reshape(x_noisy.shape) if out.size == x_noisy.size else out


def _data_range(clean) -> float:
    """PSNR's default peak: 1 for data in [0, 1] (or constant data), else the data's max − min."""
    clean = np.asarray(clean, dtype=np.float64)  # int8 would wrap round in max − min; bool cannot subtract
    with np.errstate(over="ignore"):  # refused below, by name
        span = float(np.max(clean) - np.min(clean))
    if math.isinf(span):
        raise ValueError("psnr: the clean data's max − min overflows float64; pass data_range")
    return 1.0 if _in_unit_interval(clean) or span == 0 else span


def psnr(clean, other, data_range: float | None = None, per_example: bool = False):
    """Peak signal-to-noise ratio in dB:  10·log10(data_range² / MSE), of ``other`` (a noisy
    or reconstructed copy) against ``clean``, two arrays of the same shape.

    By default one number for the whole batch (MSE over every value); with ``per_example``
    an array with one PSNR per row of a batch (n, ...). Identical inputs give +inf.
    ``data_range`` (default None): 1 for data in [0, 1], else the clean data's max − min, as
    ``denoising_report`` chooses it (a fixed default of 1 would put images in [0, 255] some
    48 dB too low without a word); give it for data whose nominal range it does not span.
    """
    per_example = check_bool("per_example", per_example)  # "no" would be True
    for name, array in (("clean", clean), ("other", other)):  # the casts below would drop an imaginary part
        check_real_array(array, "psnr", None, name)
    clean = np.asarray(clean, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if clean.shape != other.shape:
        raise ValueError(f"clean and other must have the same shape, got {clean.shape} and {other.shape}")
    if clean.size == 0:
        raise ValueError("psnr of empty arrays is undefined")
    if per_example and clean.ndim < 2:  # a 1-D image's rows are its pixels: one PSNR per pixel
        raise ValueError(f"per_example=True needs a batch of shape (n, ...) with one example per row, got shape "
                         f"{clean.shape}; pass x[None] for a single example")
    for name, array in (("clean", clean), ("other", other)):
        if not np.isfinite(array).all():
            raise ValueError(f"psnr needs finite values: {name} contains NaN or Inf")
    data_range = _data_range(clean) if data_range is None else check_number("data_range", data_range, "a positive number or None")
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    # 10·log10(range² / MSE) = −20·log10(m) − 10·log10(mean((d/m)²)) for d = (clean − other)/range
    # and m = max |d|: no square of a value, which would overflow past 1e154 and vanish below 1e-154
    d = clean / data_range - other / data_range
    d = d.reshape(len(d), -1) if per_example else d.reshape(1, -1)
    largest = np.abs(d).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = d / np.where(largest > 0, largest, 1.0)[:, None]
        value = np.where(largest > 0, -20.0 * np.log10(largest) - 10.0 * np.log10((unit**2).mean(axis=1)), np.inf)
    return value if per_example else float(value[0])


class DenoisingReport(NamedTuple):
    """What ``denoising_report`` measured (PSNRs in dB over the whole batch)."""

    noisy: np.ndarray
    denoised: np.ndarray
    psnr_noisy: float
    psnr_denoised: float
    gain: float
    psnr_clean_reconstruction: float  # how well the model reconstructs the clean images (a ceiling of sorts)

    def __repr__(self) -> str:  # the figures first; the two image arrays by shape, not a screenful of pixels
        return (f"DenoisingReport(gain={self.gain:.3f}, psnr_noisy={self.psnr_noisy:.3f}, psnr_denoised={self.psnr_denoised:.3f}, "
                f"psnr_clean_reconstruction={self.psnr_clean_reconstruction:.3f}, noisy=<array {self.noisy.shape}>, "
                f"denoised=<array {self.denoised.shape}>)")


def denoising_report(model, clean, kind: str = "gaussian", level: float = 0.3, seed: int | None = 0, y=None,
                     data_range: float | None = None, *, mask=None) -> DenoisingReport:
    """Corrupt ``clean``, reconstruct it with the model, and compare PSNRs against the clean images.

    The noise is ``add_noise(clean, kind, level, seed)``'s: ``kind``, ``level`` and ``seed``
    as there (default Gaussian noise of std 0.3, seed 0).
    The reconstructions have the shape of ``clean`` (see ``denoise``). PSNRs use ``data_range``;
    by default 1 for data in [0, 1], else the clean data's max − min (a range of 1 would make
    real-valued data's PSNRs meaningless).

    A sequence model's mask (``y``, or ``mask=``) marks the real steps: only they are corrupted, set the
    default range and count in the PSNRs. The padding stays as it was in ``noisy``; the model
    reconstructs it as 0, which would otherwise count as denoising it."""
    y = labels_or_mask(model, y, mask)
    reconstructed = denoise(model, clean, y)  # first: bad data is reported as the caller's clean input, not its noisy copy
    clean = np.asarray(clean)
    real = _real_steps(model, clean, y)
    if data_range is None:  # (after the check: an empty batch has no range)
        data_range = _data_range(clean[real])
    noisy_real = add_noise(clean[real], kind, level, seed)
    noisy = clean.astype(noisy_real.dtype)  # a copy in add_noise's dtype: the padding stays as it was
    noisy[real] = noisy_real
    denoised = denoise(model, noisy, y)
    p_noisy = psnr(clean[real], noisy[real], data_range)
    p_denoised = psnr(clean[real], denoised[real], data_range)
    p_rec = psnr(clean[real], reconstructed[real], data_range)
    return DenoisingReport(noisy, denoised, p_noisy, p_denoised, p_denoised - p_noisy, p_rec)


def _real_steps(model, x, mask):
    """The index of the values that are data: a sequence model's real steps (the mask's 1s,
    a boolean (n, T) index, already checked by the model), else everything."""
    if mask is None or not getattr(model, "is_sequence_model", False):
        return Ellipsis
    return np.asarray(mask).reshape(x.shape[:2]) != 0


def plot_denoising(clean, noisy, denoised, n: int = 8, image_shape=None, path=None, title=None):
    """Three rows of the first ``n`` images: ``clean`` ones, their corrupted versions ``noisy``
    and the model's reconstructions of those, ``denoised``: arrays, not a model (e.g. the
    report's: ``r = denoising_report(model, x); plot_denoising(x, r.noisy, r.denoised)``,
    or ``x``, ``add_noise(x, ...)`` and ``denoise(model, noisy)``). ``image_shape`` tells how
    flat rows are images, as in ``microvae.plot``; ``title`` goes above the grid; with a
    ``path`` the figure is also saved there. Returns the figure."""
    from . import plot

    n = plot._check_count("n", n)
    batches = {"clean": clean, "noisy": noisy, "denoised": denoised}
    for name, array in batches.items():
        check_real_array(array, "plot_denoising", None, name)
    batches = {name: np.asarray(array, dtype=np.float64) for name, array in batches.items()}
    for name, array in batches.items():  # a[:n] of one flat image would take its first pixels
        if array.ndim < 2:
            raise ValueError(f"plot_denoising expects batches of images, one per row; {name} has shape {array.shape} "
                             f"(pass {name}[None] for a single image)")
    n = min(n, len(batches["clean"]))
    short = [f"{name} has {len(array)}" for name, array in batches.items() if len(array) < n]
    if short:  # the rows would shift, and one labelled "noisy" show denoised images
        raise ValueError(f"plot_denoising draws the first {n} images of each batch in a column, but "
                         f"{' and '.join(short)}; give the same examples in all three")
    rows = _stack_images([array[:n] for array in batches.values()])
    fig = plot.plot_samples(rows, nrow=n, image_shape=image_shape, title=title)
    return _label_rows(fig, ["clean", "noisy", "denoised"], path)


def _stack_images(batches):
    """Batches of images one after another, for one grid. Items keep their own shape when every
    batch has the same one, so a colour or non-square image (a ConvVAE's (C, H, W)) is drawn as
    itself; otherwise they become flat rows, which need a square size or an image_shape."""
    if len({b.shape[1:] for b in batches}) == 1:
        return np.concatenate(batches)
    return np.concatenate([b.reshape(len(b), -1) for b in batches])


def _label_rows(fig, labels, path):
    """Put row labels on a one-axes image-grid figure, then save it if asked."""
    from .plot import _cell_centers

    ax = fig.axes[0]
    height = ax.images[0].get_array().shape[0]  # rows·(h + 1) + 1 with one pixel of padding
    ax.set_yticks(_cell_centers(len(labels), (height - 1) // len(labels) - 1, 1))
    ax.set_yticklabels(labels)
    ax.tick_params(axis="y", length=0)
    fig.tight_layout()
    if path is not None:
        from .plot import _finish

        _finish(fig, path)
    return fig


# interpolation and traversals ---------------------------------------------------------------------
def _unit(z):
    """z / ‖z‖ (None for a zero or empty z), divided by its largest |entry| first: the squares
    in ‖z‖ would overflow past |z| ≈ 1e154 and vanish below 1e-154."""
    largest = np.abs(z).max() if z.size else 0.0
    if largest == 0:
        return None
    z = z / largest
    return z / np.linalg.norm(z)


def slerp(z_a, z_b, t):
    """Spherical interpolation between codes: for Ω the angle between z_a and z_b,

        z(t) = sin((1 − t)Ω)/sin Ω · z_a + sin(tΩ)/sin Ω · z_b

    (t may be an array; the result then has one row per t). Falls back to a straight line
    when the codes are (nearly) parallel or opposite, where the formula is 0/0, or one is 0.
    z_a and z_b are codes of one example: vectors of the same length.
    """
    for name, array in (("z_a", z_a), ("z_b", z_b), ("t", t)):  # the casts below would drop an imaginary part
        check_real_array(array, "slerp", None, name)
    z_a, z_b = np.asarray(z_a, dtype=np.float64), np.asarray(z_b, dtype=np.float64)
    if z_a.ndim != 1 or z_a.shape != z_b.shape:
        raise ValueError(f"slerp expects two codes of the same length (vectors), got shapes {z_a.shape} and {z_b.shape}")
    t = np.asarray(t, dtype=np.float64)
    for name, array in (("z_a", z_a), ("z_b", z_b), ("t", t)):
        if not np.isfinite(array).all():
            raise ValueError(f"slerp needs finite values: {name} contains NaN or Inf")
    t = t[..., None]
    unit_a, unit_b = _unit(z_a), _unit(z_b)
    if unit_a is None or unit_b is None:
        return (1 - t) * z_a + t * z_b
    # for unit vectors Ω = 2·atan2(‖a − b‖, ‖a + b‖): accurate near 0 and π, where the acos of
    # the cosine loses half the digits (it is 4e-12 off at π − 0.005)
    omega = 2.0 * math.atan2(float(np.linalg.norm(unit_a - unit_b)), float(np.linalg.norm(unit_a + unit_b)))
    if math.sin(omega) < 1e-6:
        return (1 - t) * z_a + t * z_b
    return (np.sin((1 - t) * omega) * z_a + np.sin(t * omega) * z_b) / math.sin(omega)


def _code(model, x, y=None, what="x"):
    """The posterior mean μ of one example (with or without a batch axis of size 1); an AAE's code."""
    from .plot import _encode_mean, _one_example

    return _encode_mean(model, _one_example(x, model, what), y)[0]


def _decode(model, z, y=None, like=None):
    """Decoder means at codes z, with the label ``y`` of a conditional model; a sequence model
    (a VRAE) generates as many steps as the example ``like`` has."""
    from .plot import _decoder

    if getattr(model, "is_sequence_model", False):
        return np.asarray(model.decode(z, np.shape(like)[-2]))
    return np.asarray(_decoder(model, y)(z))


def interpolate(model, x_a, x_b, steps: int = 10, method: str = "linear", y=None):
    """Decode ``steps`` codes on the path from μ(x_a) to μ(x_b), ends included.

    ``method``: ``"linear"`` ((1 − t)·z_a + t·z_b) or ``"slerp"`` (see ``slerp``).
    ``y``: for a conditional model, one class label (an int), used to encode both ends and
    decode the whole path (so the path changes the style, not the class).
    Returns decoded images of shape (steps, *image) (the decoder mean); for a sequence
    model, sequences as long as x_a, generated freely from each code.
    """
    if not is_choice(method, ("linear", "slerp")):
        raise ValueError(f"method must be 'linear' or 'slerp', got {method!r}")
    steps = check_int("steps", steps, 2)
    z_a, z_b = _code(model, x_a, y, "x_a"), _code(model, x_b, y, "x_b")
    t = np.linspace(0.0, 1.0, steps)
    z = slerp(z_a, z_b, t) if method == "slerp" else (1 - t[:, None]) * z_a + t[:, None] * z_b
    return _decode(model, z, y, like=x_a)


def plot_interpolations(model, x_a, x_b, steps: int = 10, methods=("linear", "slerp"), image_shape=None, path=None,
                        y=None):
    """One row per method: the decoded path from x_a to x_b (for a single linear path with the
    inputs at its ends, ``microvae.plot.plot_interpolation`` draws the same row). ``methods``:
    "linear", "slerp" or a list of them (default both); ``steps`` codes per row, ends included
    (an int >= 2); ``y``: the class label of a conditional model, as in ``interpolate``.
    ``image_shape`` and ``path`` as in ``microvae.plot``. Returns the figure."""
    if getattr(model, "is_sequence_model", False):  # the decoded paths would be drawn as grey (T, F) images
        raise TypeError(f"plot_interpolations draws images; {type(model).__name__} generates sequences: use "
                        "interpolate, and microvae.plot.plot_sequences or plot_piano_roll to draw them")
    if not isinstance(methods, str) and not hasattr(methods, "__iter__"):
        raise TypeError(f"methods must be 'linear', 'slerp' or a list of them, got {methods!r}")
    methods = [methods] if isinstance(methods, str) else list(methods)
    if not methods:
        raise ValueError("methods must name at least one of 'linear' and 'slerp', got none")
    # checked here as interpolate checks it: steps=3.0 was then refused by plot_samples as "nrow"
    steps = check_int("steps", steps, 2)
    rows = [np.asarray(interpolate(model, x_a, x_b, steps, m, y=y), dtype=np.float64) for m in methods]
    from . import plot

    fig = plot.plot_samples(_stack_images(rows), nrow=steps, image_shape=image_shape)
    return _label_rows(fig, list(methods), path)


def traverse(model, x, dim: int, values, relative: bool = False, y=None):
    """Decode the code of ``x`` with latent dimension ``dim`` set to each of ``values``
    (or moved by them, with ``relative=True``). Returns images of shape (len(values), *image).
    ``y``: for a conditional model, the class label (an int) of x, used for every decoding."""
    relative = check_bool("relative", relative)  # "no" would move the code
    z0 = _code(model, x, y)
    wanted = f"dim must be an integer in [0, {len(z0) - 1}], got {dim!r}"
    try:  # as every count: a whole float is taken, a bool or a string is a TypeError
        dim = check_int("dim", dim, 0)
    except (TypeError, ValueError) as exc:
        raise type(exc)(wanted) from None
    if dim >= len(z0):
        raise ValueError(wanted)
    check_real_array(values, "traverse", None, "values")  # the cast below would drop an imaginary part
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"values must be a non-empty 1-D list of finite numbers, got an array of shape {values.shape}"
                         + ("" if values.ndim != 1 or values.size == 0 else " holding NaN or Inf"))
    z = np.repeat(z0[None], len(values), axis=0)
    z[:, dim] = z0[dim] + values if relative else values
    return _decode(model, z, y, like=x)


def plot_traversal(model, x, dims=None, steps: int = 9, span: float = 3.0, image_shape=None, path=None, y=None):
    """The traversal figure of ``microvae.plot.plot_traversal``, re-exported here next to
    ``traverse``: one row per dimension of ``dims`` (None, the default: all, at most the
    first 10), each decoding ``steps`` offsets in [−span, span] around μ(x); ``y``: a
    conditional model's class label; ``image_shape`` and ``path`` as in ``microvae.plot``."""
    from . import plot

    return plot.plot_traversal(model, x, dims=dims, steps=steps, span=span, image_shape=image_shape, path=path, y=y)
