"""Plotting helpers for microvae models (optional: needs matplotlib).

Install matplotlib, or the plot extra from a checkout: ``pip install -e '.[plot]'``.  Importing this
module never imports matplotlib; it is loaded lazily the first time a figure
is drawn, so the rest of the library works without it.

Every ``plot_*`` function builds a fresh :class:`matplotlib.figure.Figure`
attached to an Agg canvas (no ``pyplot`` global state, so nothing leaks
between calls and it works on headless machines), returns it, and -- when
``path`` is given -- also writes it in the format its suffix names (.png, .pdf,
.svg, ...; PNG without a suffix).  The file is written
atomically: to a temporary file in the same directory, then moved into place
with :func:`os.replace`, so a reader never sees a half-written picture.

Images are grey (one channel) or colour (three channels, RGB) and may be
passed as

* flattened rows ``(n, D)`` together with ``image_shape``: ``(H, W)`` or
  ``(1, H, W)`` for grey, ``(3, H, W)`` (channel-first, as the models lay
  out their images) or ``(H, W, 3)`` for colour; without an ``image_shape``
  a grey square is inferred (784 -> 28x28, 1024 -> 32x32) and a
  ``ValueError`` is raised when ``D`` is not a perfect square;
* ``(n, H, W)`` arrays (grey);
* ``(n, C, H, W)`` (NCHW, what ``ConvVAE`` returns) or ``(n, H, W, C)``
  (NHWC) arrays with ``C`` = 1 or 3.  Other channel counts raise a
  ``ValueError``.

Which axis holds the channels is decided by one rule, for arrays and
``image_shape`` alike: a size-1 axis first (channel-first before
channel-last), then a size-3 axis, again channel-first before channel-last.
So ``(n, 3, H, 3)`` is read as NCHW colour (NHWC colour images 3 pixels
high must be passed as NCHW) and ``(n, 3, H, 1)`` as grey NHWC (as before
colour support).

Grey images are drawn with the ``gray`` colormap; colour images are scaled
into [0, 1] over the same display range (one range for all channels, so
hues are kept) and clipped.  One figure never mixes grey and colour images.

Models are duck-typed: anything with ``encode(x) -> (mu, logvar)`` (or the
codes alone, as an adversarial autoencoder's ``encode`` gives them),
``decode(z) -> (n, D)`` and, where needed, ``latent_dim``.  A conditional model
(``needs_labels``, e.g. a CVAE) gets its class label through ``y``:
``encode(x, y)`` and ``decode(z, y)``.
"""

from __future__ import annotations

import math
import numbers
import os
import types
from statistics import NormalDist
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .atomic import write_atomically
from .checks import check_file_path, check_int, check_number, check_real_array, is_choice, is_sequence, sorted_unique

__all__ = [
    "image_grid",
    "plot_reconstructions",
    "plot_samples",
    "plot_latent_grid",
    "plot_latent_scatter",
    "plot_loss_curves",
    "plot_interpolation",
    "plot_traversal",
    "plot_samples_by_class",
    "plot_sequences",
    "plot_piano_roll",
    "plot_latent_vs_prior",
]

_MISSING_MPL = ("microvae.plot needs matplotlib: pip install matplotlib (in a microvae checkout, "
                "pip install -e '.[plot]' installs it as the plot extra)")
_DPI = 100
# Labels with at most this many distinct integer values get a legend;
# anything else is treated as continuous and gets a colorbar.
_MAX_LEGEND_CLASSES = 20


# --------------------------------------------------------------------------
# matplotlib plumbing
# --------------------------------------------------------------------------

def _pyplot() -> types.SimpleNamespace:
    """Import the parts of matplotlib we use, or fail with a clear message.

    Despite the name this does *not* touch ``matplotlib.pyplot``: it returns
    a namespace with ``Figure`` and ``FigureCanvasAgg`` so figures are built
    without any global state.  Raises ``ImportError`` when matplotlib is not
    installed.
    """
    try:
        import matplotlib  # noqa: F401  (top-level first: a clear failure point)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # matplotlib missing (or blocked)
        raise ImportError(_MISSING_MPL) from exc
    return types.SimpleNamespace(Figure=Figure, FigureCanvasAgg=FigureCanvasAgg)


def _new_figure(figsize: tuple[float, float]):
    mpl = _pyplot()
    fig = mpl.Figure(figsize=figsize, dpi=_DPI)
    mpl.FigureCanvasAgg(fig)
    return fig


def _finish(fig, path) -> Any:
    """Save ``fig`` at ``path`` (atomically) if a path is given, in the format its suffix names
    (PNG without one; ValueError for a suffix matplotlib cannot write)."""
    if path is None:
        return fig
    path = check_file_path("path", path, "picture.png")
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    supported = fig.canvas.get_supported_filetypes()
    if suffix and suffix not in supported:
        raise ValueError(f"path {path!r}: matplotlib cannot write .{suffix} files; use one of "
                         f"{', '.join('.' + s for s in sorted(supported))}, or no suffix for PNG")
    write_atomically(path, lambda fh: fig.savefig(fh, format=suffix or "png", dpi=_DPI,
                                                  bbox_inches="tight", pad_inches=0.1))
    return fig


# --------------------------------------------------------------------------
# array helpers (pure NumPy)
# --------------------------------------------------------------------------

# Accepted channel counts: grey and RGB.  Anything else (a 2-channel pair,
# RGBA, feature maps) has no single obvious picture, so it is refused.
_CHANNELS = (1, 3)


def _channel_layout(dims) -> tuple[int, int, int, bool] | None:
    """Read a 3-axis item shape as ``(H, W, C, channel_first)``, or None.

    A size-1 axis is taken as the channel axis first (so single-channel
    shapes read exactly as before colour support), then a size-3 one; at
    each step channel-first wins, since the models are NCHW.
    """
    a, b, c = dims
    for channels in _CHANNELS:
        if a == channels:
            return b, c, channels, True
        if c == channels:
            return a, b, channels, False
    return None


def _to_hwc(batch: np.ndarray, channels: int, channel_first: bool) -> np.ndarray:
    """``(n, C, H, W)`` or ``(n, H, W, C)`` -> ``(n, H, W)`` (grey) or ``(n, H, W, 3)``."""
    if channels == 1:
        return batch[:, 0] if channel_first else batch[..., 0]
    return batch.transpose(0, 2, 3, 1) if channel_first else batch


def _parse_image_shape(image_shape) -> tuple[int, int, int, bool]:
    """``image_shape`` as ``(H, W, C, channel_first)``; ``(H, W)`` is grey."""
    if not is_sequence(image_shape):
        raise ValueError(  # int() of each character made "28" the shape (2, 8)
            f"image_shape must be a tuple like (H, W), got {image_shape!r}"
        )
    # sizes are whole numbers: int() cut 4.9 to 4 and took True for 1
    dims = tuple(check_int(f"image_shape[{i}]", s, 1) for i, s in enumerate(image_shape))
    layout = None
    if len(dims) == 2:
        layout = (*dims, 1, True)
    elif len(dims) == 3:
        layout = _channel_layout(dims)
    if layout is None or min(dims) < 1:
        raise ValueError(
            f"image_shape must be (H, W), (C, H, W) or (H, W, C) with positive "
            f"sizes and C = 1 or 3 (grey or RGB), got {tuple(image_shape)!r}"
        )
    return layout


def _as_images(images, image_shape=None, what: str = "images") -> np.ndarray:
    """Convert a batch of images in any accepted layout to ``(n, H, W)``
    (grey) or ``(n, H, W, 3)`` (colour)."""
    check_real_array(images, "plot", None, what)  # strings failed in NumPy's cast; complex lost its imaginary part
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{what} is empty")
    _refuse_nan(arr, what, "ordinary pixels")  # imshow draws NaN as a full pixel (grey) or as the white padding (colour)
    if arr.size == 0:  # n items of no pixels: an empty grid, or a zero-sized figure
        raise ValueError(f"{what}: the items have no pixels (shape {arr.shape})")
    n = arr.shape[0]
    if image_shape is not None:
        h, w, c, first = _parse_image_shape(image_shape)
        item = (c, h, w) if first else (h, w, c)
        per_item = int(np.prod(arr.shape[1:], dtype=np.int64))
        if per_item != h * w * c:
            shown, unit = ((h, w), "pixels") if c == 1 else (item, "values")
            raise ValueError(
                f"{what}: each item has {per_item} values, which does not "
                f"match image_shape {shown} ({h * w * c} {unit})"
            )
        # A colour batch already shaped as images in the other layout would
        # be scrambled by a reshape, not transposed: refuse it.
        if c == 3 and arr.ndim == 4 and arr.shape[1:] != item:
            raise ValueError(
                f"{what}: items shaped {arr.shape[1:]} do not match "
                f"image_shape {item}; pass flattened rows or an image_shape "
                f"in the items' own layout"
            )
        return _to_hwc(arr.reshape(n, *item), c, first)
    if arr.ndim == 2:
        d = arr.shape[1]
        side = math.isqrt(d)
        if side * side != d:
            raise ValueError(
                f"{what}: cannot infer a square image from {d} features per "
                f"item; pass image_shape=(H, W), or (3, H, W) for colour"
            )
        return arr.reshape(n, side, side)
    if arr.ndim == 3:
        return arr
    if arr.ndim == 4:
        layout = _channel_layout(arr.shape[1:])
        if layout is None:
            raise ValueError(
                f"{what}: images must have 1 (grey) or 3 (RGB) channels, as "
                f"(n, C, H, W) or (n, H, W, C); got shape {arr.shape}"
            )
        _, _, c, first = layout
        return _to_hwc(arr, c, first)
    raise ValueError(
        f"{what}: expected a batch shaped (n, D), (n, H, W), (n, C, H, W) or "
        f"(n, H, W, C) with C = 1 or 3, got shape {arr.shape}"
    )


def _refuse_nan(arr: np.ndarray, what: str, drawn_as: str) -> None:
    """ValueError if ``arr`` holds NaN, which a picture draws as ``drawn_as``: as if the values
    were data, where NaN output means that the model has diverged."""
    if np.isnan(arr).any():
        raise ValueError(f"{what} contain NaN ({int(np.isnan(arr).sum())} values): a picture would show them as "
                         f"{drawn_as} (a model whose output is NaN has diverged)")


def _check_same_kind(named) -> None:
    """Refuse to put grey and colour images in one figure.

    ``named`` holds ``(name, images)`` pairs as :func:`_as_images` returns
    them.  One display range and one way of drawing serve a whole figure,
    and silently greying the colour images (or tinting the grey) would hide
    a mismatch such as a colour input with a grey reconstruction.
    """
    first_of = {}  # kind -> name of the first batch of that kind
    for name, imgs in named:
        first_of.setdefault("colour" if imgs.ndim == 4 else "grey", name)
    if len(first_of) > 1:
        raise ValueError(
            f"cannot mix grey and colour (RGB) images in one figure: colour "
            f"in {first_of['colour']}, grey in {first_of['grey']}"
        )


def _tile(imgs: np.ndarray, nrow: int, pad: int, pad_value: float) -> np.ndarray:
    """Tile ``(n, H, W)`` or ``(n, H, W, 3)`` images, already in that layout.

    The figures call this directly: sending ``(n, H, W, 3)`` back through
    :func:`_as_images` would misread it when ``H`` is 1 or 3.
    """
    n, h, w = imgs.shape[:3]
    cols = min(int(nrow), n)
    rows = -(-n // cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad) + imgs.shape[3:],
                   float(pad_value), dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, cols)
        top = pad + r * (h + pad)
        left = pad + c * (w + pad)
        grid[top:top + h, left:left + w] = imgs[i]
    return grid


def image_grid(images, nrow: int, image_shape=None, pad: int = 1,
               pad_value: float = 0.0) -> np.ndarray:
    """Tile a batch of images into one array: ``(rows, cols)`` for grey
    images, ``(rows, cols, 3)`` for colour ones.

    ``nrow`` is the number of images per row (as in torchvision's
    ``make_grid``); images fill the grid row by row and there are
    ``ceil(n / nrow)`` rows.  ``pad`` pixels of ``pad_value`` (in every
    channel) separate the tiles and surround the whole grid, so with ``r``
    rows and ``c`` columns of ``H x W`` tiles the grid is
    ``r * (H + pad) + pad`` by ``c * (W + pad) + pad`` pixels.  Unused cells
    in the last row are filled with ``pad_value``.
    """
    nrow, pad = _check_count("nrow", nrow), check_int("pad", pad, 0)
    return _tile(_as_images(images, image_shape), nrow, pad, pad_value)


def _cell_centers(count: int, size: int, pad: int) -> list[float]:
    """Pixel coordinate of the centre of each tile along one grid axis."""
    return [pad + k * (size + pad) + (size - 1) / 2.0 for k in range(count)]


def _display_range(*arrays) -> tuple[float, float]:
    """(vmin, vmax) for imshow: [0, 1] for probabilities, else data range."""
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [a for a in finite if a.size]
    if not finite:
        return 0.0, 1.0
    lo = min(float(a.min()) for a in finite)
    hi = max(float(a.max()) for a in finite)
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    return lo, hi


def _grid_figsize(grid_shape, extra_w: float = 0.0,
                  extra_h: float = 0.0) -> tuple[float, float]:
    gh, gw = grid_shape[:2]
    scale = min(0.04, 10.0 / max(gh, gw))  # inches per pixel, capped at ~10in
    return (max(gw * scale + 0.4 + extra_w, 2.5),
            max(gh * scale + 0.4 + extra_h, 1.5))


def _draw(ax, grid, vmin, vmax):
    """imshow a grey ``(rows, cols)`` or colour ``(rows, cols, 3)`` grid over [vmin, vmax]."""
    if grid.ndim == 3:
        # imshow ignores cmap/vmin/vmax for RGB and wants floats in [0, 1]:
        # scale with the range grey images get, and clip what lies outside.
        rgb = np.clip((grid - vmin) / (vmax - vmin), 0.0, 1.0)
        return ax.imshow(rgb, interpolation="nearest")
    return ax.imshow(grid, cmap="gray", vmin=vmin, vmax=vmax,
                     interpolation="nearest")


def _show_grid(ax, grid, vmin, vmax):
    _draw(ax, grid, vmin, vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _check_count(name: str, value) -> int:
    """A count (n, steps, nrow) as ``check_int`` takes every count in microvae: an integer, or a
    float without a fraction (steps=3.0 was refused here but taken by ``interpolate``)."""
    return check_int(name, value, 1)


def _as_batch_of_one(x, model=None) -> np.ndarray:
    """Give a single example a leading batch axis of size 1.

    An input shaped like one example of ``model`` (its ``input_shape``, e.g.
    a single-channel image ``(1, H, W)``) gets the batch axis.  Otherwise an
    input whose first axis already has size 1 (and at least two axes) is
    taken to be a batch of one and left alone.
    """
    arr = np.asarray(x)
    if getattr(model, "is_sequence_model", False) and arr.ndim == 2:
        return arr[np.newaxis]  # one sequence (T, F), also when T = 1
    shape = getattr(model, "input_shape", None)
    if shape is not None and arr.shape == tuple(shape):
        return arr[np.newaxis]
    if arr.ndim >= 2 and arr.shape[0] == 1:
        return arr
    return arr[np.newaxis]


def _one_example(x, model, what="x") -> np.ndarray:
    """``x`` as a batch of one, refusing anything that is not one example of ``model``: a
    batch of several would otherwise reach the model's own check with an axis the caller
    never passed. A HierarchicalVRAE's sequence must come whole, in segments: these
    pictures and paths take no mask."""
    batch = _as_batch_of_one(x, model)
    if getattr(model, "is_sequence_model", False):
        one, shape = batch.ndim == 3 and len(batch) == 1, ", a sequence (time, features)"
        segment = getattr(model, "segment_length", None)
        if one and segment and batch.shape[1] % segment:
            raise ValueError(f"{what} has {batch.shape[1]} steps, not a multiple of the {type(model).__name__}'s "
                             f"segment_length={segment}, and this takes no mask: trim it to a multiple, or encode a "
                             "padded batch with its mask (model.encode(x, mask)) and decode the codes you choose "
                             "(model.decode(z, length))")
    else:  # a duck-typed model without input_shape: a batch axis of one is all there is to check
        input_shape = getattr(model, "input_shape", None)
        one = len(batch) == 1 and (input_shape is None or batch.size == math.prod(input_shape))  # (H, W) for (1, H, W)
        shape = "" if input_shape is None else f", shaped {tuple(input_shape)}"
    if not one:
        raise ValueError(f"{what} must be one example{shape} (or with a batch axis of one), got shape {np.shape(x)}")
    return batch


def _check_label(model, y):
    """``y`` for a conditional model (``needs_labels``) as one class label, else None.

    One label serves a whole batch: it encodes the inputs and decodes every code, so a
    path or traversal varies the style within one class.
    """
    name = type(model).__name__
    if not getattr(model, "needs_labels", False):
        if y is not None:
            raise TypeError(
                f"y is the class label of a conditional model (such as a CVAE); "
                f"{name} is unconditional and takes none"
            )
        return None
    if y is None:
        raise TypeError(
            f"{name} is conditional: pass y, the class label to encode and "
            f"decode with (an int)"
        )
    label = np.asarray(y)
    if label.size != 1 or not (np.issubdtype(label.dtype, np.integer)
                               or (np.issubdtype(label.dtype, np.floating)
                                   and float(label.reshape(-1)[0]).is_integer())):
        raise ValueError(
            f"y must be one integer class label, got {y!r}"
        )
    return int(label.reshape(-1)[0])


def _encoder(model, y=None) -> Callable:
    """``model.encode``, with the label ``y`` of a conditional model bound."""
    y = _check_label(model, y)
    return model.encode if y is None else (lambda x: model.encode(x, y))


def _decoder(model, y=None) -> Callable:
    """``model.decode``, with the label ``y`` of a conditional model bound."""
    if getattr(model, "is_sequence_model", False):
        raise TypeError(f"this picture decodes images; {type(model).__name__} generates sequences: use "
                        "microvae.applications.interpolate or traverse, and plot_sequences or plot_piano_roll to draw them")
    y = _check_label(model, y)
    return model.decode if y is None else (lambda z: model.decode(z, y))


def _encode_mean(model, x, y=None) -> np.ndarray:
    """Return the posterior mean ``mu`` (n, L) for a batch ``x`` (labels ``y``
    for a conditional model); a model whose ``encode`` returns the codes alone
    (an AAE) gives those."""
    out = _encoder(model, y)(x)
    mu = out[0] if isinstance(out, (tuple, list)) else out
    mu = np.asarray(mu, dtype=np.float64)
    return mu.reshape(mu.shape[0], -1)


def _decode(decode: Callable, z: np.ndarray, expected: int) -> np.ndarray:
    out = np.asarray(decode(z))
    if out.ndim == 0 or out.shape[0] != expected:
        raise ValueError(
            f"decode returned shape {out.shape}, expected a batch of "
            f"{expected} images"
        )
    return out


# --------------------------------------------------------------------------
# image figures
# --------------------------------------------------------------------------

def plot_reconstructions(x, x_rec, n: int = 10, image_shape=None, path=None,
                         title=None):
    """Inputs in the top row, their reconstructions in the row below.

    Shows the first ``n`` items (fewer if there are fewer).  ``x`` and
    ``x_rec`` must both be grey or both colour.
    """
    n = _check_count("n", n)
    check_real_array(x, "plot_reconstructions", None, "x")  # a model given for x is named as one
    check_real_array(x_rec, "plot_reconstructions", None, "x_rec")
    x_arr = np.asarray(x)
    rec_arr = np.asarray(x_rec)
    if x_arr.ndim == 0 or rec_arr.ndim == 0 or len(x_arr) != len(rec_arr):
        raise ValueError(
            f"x and x_rec must hold the same number of items, got "
            f"{len(x_arr) if x_arr.ndim else 'a scalar'} and "
            f"{len(rec_arr) if rec_arr.ndim else 'a scalar'}"
        )
    k = min(n, len(x_arr))
    top = _as_images(x_arr[:k], image_shape, "x")
    bottom = _as_images(rec_arr[:k], image_shape, "x_rec")
    _check_same_kind([("x", top), ("x_rec", bottom)])
    if top.shape != bottom.shape:
        raise ValueError(
            f"x and x_rec images differ in shape: {top.shape[1:]} vs "
            f"{bottom.shape[1:]}"
        )
    vmin, vmax = _display_range(top, bottom)
    pad = 1
    grid = _tile(np.concatenate([top, bottom]), k, pad, vmax)
    fig = _new_figure(_grid_figsize(grid.shape, extra_w=1.2,
                                    extra_h=0.4 if title else 0.0))
    ax = fig.add_subplot(1, 1, 1)
    _show_grid(ax, grid, vmin, vmax)
    h = top.shape[1]
    ax.set_yticks(_cell_centers(2, h, pad))
    ax.set_yticklabels(["input", "reconstruction"])
    ax.tick_params(axis="y", length=0)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _finish(fig, path)


def plot_samples(images, nrow: int = 8, image_shape=None, path=None,
                 title=None):
    """Tile a batch of grey or colour images (e.g. samples from the prior)
    into a grid.

    ``nrow`` is the number of images per row.
    """
    nrow = _check_count("nrow", nrow)
    imgs = _as_images(images, image_shape)
    vmin, vmax = _display_range(imgs)
    grid = _tile(imgs, nrow, 1, vmax)
    fig = _new_figure(_grid_figsize(grid.shape, extra_h=0.4 if title else 0.0))
    ax = fig.add_subplot(1, 1, 1)
    _show_grid(ax, grid, vmin, vmax)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _finish(fig, path)


def _latent_axis(n: int, span: float, spacing: str) -> np.ndarray:
    """``n`` ascending coordinates from ``-span`` to ``span``.

    ``"linear"`` spaces them evenly.  ``"quantile"`` spaces them evenly in
    probability under a standard normal: the points are the normal inverse
    CDF of probabilities evenly spaced between ``Phi(-span)`` and
    ``Phi(span)``, so they crowd near 0 where the prior has its mass.
    The points are symmetric about 0; for an odd ``n`` the middle one is 0
    (an even ``n`` has no point at 0), with either spacing.
    """
    if not is_choice(spacing, ("linear", "quantile")):
        raise ValueError(
            f"spacing must be 'linear' or 'quantile', got {spacing!r}"
        )
    if n == 1:  # (linspace would give -span)
        return np.zeros(1)
    if spacing == "linear":
        return np.linspace(-span, span, n)
    normal = NormalDist()
    p_lo = normal.cdf(-span)
    probs = np.linspace(p_lo, 1.0 - p_lo, n)
    # the lower half only, mirrored: past span ≈ 8.3, 1 − Φ(−span) rounds to 1.0, where
    # inv_cdf fails; the endpoints are ±span exactly and the middle point of an odd n is 0
    vals = np.zeros(n)
    for i in range(1, n // 2):
        vals[i] = normal.inv_cdf(float(probs[i]))
    vals[0] = -span
    vals[n - (n + 1) // 2 :] = -vals[: (n + 1) // 2][::-1]
    if n % 2:
        vals[n // 2] = 0.0  # not −0.0
    return vals


def plot_latent_grid(model_or_decode, n: int = 15, span: float = 3.0,
                     image_shape=None, path=None, spacing: str = "linear", y=None):
    """Decode an ``n x n`` grid of 2-D latent codes into one picture.

    ``model_or_decode`` is either a model with ``.decode`` (whose
    ``latent_dim``, if present, must be 2; ``y``: the class to decode with, for
    a conditional model) or a plain callable
    ``decode(z) -> images`` (grey or colour) taking ``z`` of shape ``(n*n, 2)``.  Columns go
    from ``z[0] = -span`` (left) to ``+span`` (right); rows from
    ``z[1] = +span`` (top) to ``-span`` (bottom), like a usual plot.
    ``spacing`` is ``"linear"`` or ``"quantile"`` (see :func:`_latent_axis`).
    """
    n = _check_count("n", n)
    span = check_number("span", span, "a positive number")  # float("2") and float(True) passed
    if not (math.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive number, got {span!r}")
    if hasattr(model_or_decode, "decode"):
        latent_dim = getattr(model_or_decode, "latent_dim", 2)
        if latent_dim != 2:
            raise ValueError(
                f"plot_latent_grid needs a 2-D latent space, but the model "
                f"has latent_dim={latent_dim}; use plot_traversal for "
                f"higher-dimensional latents"
            )
        decode = _decoder(model_or_decode, y)
    elif callable(model_or_decode):
        if y is not None:
            raise TypeError("y is the class label of a conditional model; a decode callable takes none "
                            "(bind the label in it)")
        decode = model_or_decode
    else:
        raise TypeError(
            "plot_latent_grid expects a model with .decode or a callable "
            f"decode(z), got {type(model_or_decode).__name__}"
        )
    axis = _latent_axis(n, span, spacing)
    z1_top_down = axis[::-1]
    # Row-major: row r has z[1] = z1_top_down[r], column c has z[0] = axis[c].
    zz0, zz1 = np.meshgrid(axis, z1_top_down)
    z = np.stack([zz0.ravel(), zz1.ravel()], axis=1)
    imgs = _as_images(_decode(decode, z, n * n), image_shape, "decoded images")
    vmin, vmax = _display_range(imgs)
    pad = 0
    grid = _tile(imgs, n, pad, 0.0)
    fig = _new_figure(_grid_figsize(grid.shape, extra_w=0.8, extra_h=0.6))
    ax = fig.add_subplot(1, 1, 1)
    _draw(ax, grid, vmin, vmax)
    h, w = imgs.shape[1:3]
    # Label a handful of tiles with their latent coordinate.
    if n <= 15:
        idx = np.arange(n)
    else:
        idx = np.unique(np.round(np.linspace(0, n - 1, 9)).astype(int))
    xc = _cell_centers(n, w, pad)
    yc = _cell_centers(n, h, pad)
    ax.set_xticks([xc[i] for i in idx])
    ax.set_xticklabels([f"{axis[i]:.2g}" for i in idx], fontsize=7,
                       rotation=90)
    ax.set_yticks([yc[i] for i in idx])
    ax.set_yticklabels([f"{z1_top_down[i]:.2g}" for i in idx], fontsize=7)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(f"decoded latent grid ({spacing} spacing)")
    fig.tight_layout()
    return _finish(fig, path)


def plot_interpolation(model, x_a, x_b, steps: int = 10, image_shape=None,
                       path=None, y=None):
    """Decode a straight line between the codes (means) of two inputs.

    ``x_a`` and ``x_b`` are single examples in the layout ``model.encode``
    expects, without a batch axis or with a batch axis of size 1.  The row
    shows ``x_a``, then ``steps`` decodings at ``t = 0 .. 1`` (both ends
    included), then ``x_b``.  ``y``: the class label (an int) of a
    conditional model, used for both ends and every decoding.  The inputs
    and the decodings must both be grey or both colour.
    """
    steps = _check_count("steps", steps)
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    a = _one_example(x_a, model, "x_a")
    b = _one_example(x_b, model, "x_b")
    if a.shape != b.shape:
        raise ValueError(
            f"x_a and x_b must have the same shape, got {np.shape(x_a)} and "
            f"{np.shape(x_b)}"
        )
    mu = _encode_mean(model, np.concatenate([a, b]), y)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    z = (1.0 - t) * mu[0] + t * mu[1]
    decoded = _as_images(_decode(_decoder(model, y), z, steps), image_shape,
                         "decoded images")
    ends = _as_images(np.concatenate([a, b]), image_shape, "x_a/x_b")
    _check_same_kind([("x_a/x_b", ends), ("the decoded images", decoded)])
    if ends.shape[1:] != decoded.shape[1:]:
        raise ValueError(
            f"inputs are {ends.shape[1:]} images but decode returned "
            f"{decoded.shape[1:]} images; pass image_shape"
        )
    row = np.concatenate([ends[:1], decoded, ends[1:]])
    vmin, vmax = _display_range(row)
    pad = 1
    grid = _tile(row, len(row), pad, vmax)
    fig = _new_figure(_grid_figsize(grid.shape, extra_h=0.6))
    ax = fig.add_subplot(1, 1, 1)
    _show_grid(ax, grid, vmin, vmax)
    labels = ["x_a"] + [f"{v:.2f}" for v in t[:, 0]] + ["x_b"]
    ax.set_xticks(_cell_centers(len(row), row.shape[2], pad))
    ax.set_xticklabels(labels, fontsize=7)
    ax.tick_params(axis="x", length=0)
    ax.set_xlabel("interpolation weight t")
    fig.tight_layout()
    return _finish(fig, path)


def plot_traversal(model, x, dims=None, steps: int = 9, span: float = 3.0,
                   image_shape=None, path=None, y=None):
    """Latent traversal: vary one latent dimension at a time around ``x``.

    ``x`` is a single example (no batch axis, or a batch axis of size 1).
    Its code ``mu`` is the centre; row ``k`` decodes ``mu`` with dimension
    ``dims[k]`` replaced by ``mu[dims[k]] + offset`` for ``steps`` offsets
    evenly spaced over ``[-span, span]``.  ``dims=None`` means all
    dimensions, but at most the first 10.  ``y``: the class label (an int) of
    a conditional model.
    """
    steps = _check_count("steps", steps)
    span = check_number("span", span, "a non-negative number")  # float("2") and float(True) passed
    if not (math.isfinite(span) and span >= 0):
        raise ValueError(f"span must be a non-negative number, got {span!r}")
    mu = _encode_mean(model, _one_example(x, model), y)[0]
    latent_dim = mu.shape[0]
    if dims is None:
        dims = list(range(min(latent_dim, 10)))
    else:
        given = np.atleast_1d(np.asarray(dims, dtype=object))
        if given.ndim != 1 or not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_))
                                      for d in given):  # int() made 0.7 dimension 0 and True dimension 1
            raise ValueError(f"dims must be latent dimensions: integers, or a list of them, got {dims!r}")
        dims = [int(d) for d in given]
        if not dims:
            raise ValueError("dims must name at least one latent dimension")
        bad = [d for d in dims if not 0 <= d < latent_dim]
        if bad:
            raise ValueError(
                f"dims {bad} out of range for a latent space of dimension "
                f"{latent_dim}"
            )
    offsets = np.linspace(-span, span, steps) if steps > 1 else np.zeros(1)  # one step: the code itself
    z = np.repeat(mu[None, :], len(dims) * steps, axis=0)
    for k, d in enumerate(dims):
        z[k * steps:(k + 1) * steps, d] += offsets
    imgs = _as_images(_decode(_decoder(model, y), z, len(z)), image_shape,
                      "decoded images")
    vmin, vmax = _display_range(imgs)
    pad = 1
    grid = _tile(imgs, steps, pad, vmax)
    fig = _new_figure(_grid_figsize(grid.shape, extra_w=0.6, extra_h=0.6))
    ax = fig.add_subplot(1, 1, 1)
    _show_grid(ax, grid, vmin, vmax)
    h, w = imgs.shape[1:3]
    ax.set_yticks(_cell_centers(len(dims), h, pad))
    ax.set_yticklabels([f"z[{d}]" for d in dims])
    ax.set_xticks(_cell_centers(steps, w, pad))
    ax.set_xticklabels([f"{o:+.1f}" for o in offsets], fontsize=7)
    ax.tick_params(length=0)
    ax.set_xlabel("offset from the code of x")
    fig.tight_layout()
    return _finish(fig, path)


def plot_samples_by_class(images_per_class, image_shape=None, path=None,
                          class_names=None):
    """One row of images per class, labelled on the left.

    ``images_per_class`` is an array ``(num_classes, n_per_class, ...)`` or a
    list with one batch per class (rows may differ in length; short rows are
    left blank at the end).  All classes must be grey or all colour.
    ``class_names`` defaults to ``class 0``, ``class 1``, ...
    """
    if isinstance(images_per_class, np.ndarray):
        if images_per_class.ndim < 3:
            raise ValueError(
                "images_per_class must be shaped (num_classes, n_per_class, "
                f"...), got {images_per_class.shape}"
            )
        batches = list(images_per_class)
    else:
        batches = list(images_per_class)
    if not batches:
        raise ValueError("images_per_class is empty")
    rows = [_as_images(b, image_shape, f"images_per_class[{i}]")
            for i, b in enumerate(batches)]
    _check_same_kind([(f"images_per_class[{i}]", r) for i, r in enumerate(rows)])
    shapes = {r.shape[1:] for r in rows}
    if len(shapes) != 1:
        raise ValueError(f"all classes must share one image shape, got {shapes}")
    class_names = _check_class_names(class_names)
    if class_names is None:
        names = [f"class {i}" for i in range(len(rows))]
    elif isinstance(class_names, Mapping):  # as plot_latent_scatter takes it: {label: name}
        names = [str(class_names.get(i, f"class {i}")) for i in range(len(rows))]
    else:
        names = [str(c) for c in class_names]
        if len(names) != len(rows):
            raise ValueError(
                f"got {len(names)} class_names for {len(rows)} classes"
            )
    vmin, vmax = _display_range(*rows)
    h = rows[0].shape[1]
    per_row = max(len(r) for r in rows)
    cells = np.full((len(rows) * per_row,) + rows[0].shape[1:], vmax)
    for i, r in enumerate(rows):
        cells[i * per_row:i * per_row + len(r)] = r
    pad = 1
    grid = _tile(cells, per_row, pad, vmax)
    longest = max(len(s) for s in names)
    fig = _new_figure(_grid_figsize(grid.shape, extra_w=0.1 * longest))
    ax = fig.add_subplot(1, 1, 1)
    _show_grid(ax, grid, vmin, vmax)
    ax.set_yticks(_cell_centers(len(rows), h, pad))
    ax.set_yticklabels(names)
    ax.tick_params(axis="y", length=0)
    fig.tight_layout()
    return _finish(fig, path)


# --------------------------------------------------------------------------
# latent-space scatters
# --------------------------------------------------------------------------

def _as_codes(z, what: str) -> np.ndarray:
    """``z`` as a float64 (n, d) array of finite codes: matplotlib would quietly drop the NaN
    points from a scatter, and the cast to float64 the imaginary part of complex codes."""
    check_real_array(z, "plot", None, what)
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        pair = ("; model.encode returns the pair (μ, logvar): pass its first element, model.encode(x)[0]"
                if isinstance(z, tuple) and len(z) == 2 else "")
        raise ValueError(f"{what} must be a non-empty (n, d) array, got shape {arr.shape}{pair}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or Inf; the codes to scatter must be finite")
    if arr.shape[1] < 2:
        raise ValueError(
            f"{what} needs at least 2 latent dimensions to scatter, got {arr.shape[1]}"
        )
    return arr


def _axis_labels(ax, d: int):
    suffix = f" (first 2 of {d} dims)" if d > 2 else ""
    ax.set_xlabel(f"z[0]{suffix}")
    ax.set_ylabel(f"z[1]{suffix}")


def _check_class_names(class_names):
    """``class_names`` as given: None, a dict from label to name, or a sequence of names indexed
    by label. Anything else is a TypeError: an int failed in len(), and a string's characters
    were taken as the names."""
    if class_names is None or isinstance(class_names, Mapping) or (is_sequence(class_names)
                                                                   and hasattr(class_names, "__len__")):
        return class_names
    raise TypeError(f"class_names must be a sequence of names indexed by label (e.g. ['cat', 'dog']) or a dict "
                    f"from label to name, got {class_names!r}")


def _class_name(class_names, value) -> str:
    if class_names is None:
        return str(value)
    if isinstance(class_names, Mapping):
        return str(class_names.get(value, value))
    if isinstance(value, (int, np.integer)) and 0 <= value < len(class_names):
        return str(class_names[value])
    return str(value)


# tab10's grey (class 7) and tab20's two greys, as classes drawn over the grey prior cloud of
# plot_latent_vs_prior: there they take colours of their own (Sneaker codes looked like prior draws)
_GREYS_REPLACED = {"tab10": {7: "black"}, "tab20": {14: "black", 15: "#8c6d31"}}


def _scatter_labelled(fig, ax, z, labels, class_names, size, alpha, grey_taken=False):
    """Scatter z[:, :2] coloured by ``labels``; legend or colorbar. ``grey_taken``: no class
    is drawn in grey (another layer of the picture is)."""
    class_names = _check_class_names(class_names)
    lab = np.asarray(labels)
    if lab.dtype.kind == "c":  # the cast to float for the colours dropped the imaginary part, with only a warning
        raise TypeError(f"labels must be real numbers or names (str), got dtype {lab.dtype}")
    if lab.ndim == 2 and lab.shape[1] == 1:  # a column of labels: argmax of one column made every label 0
        lab = lab[:, 0]
    elif lab.ndim == 2:  # one-hot / probabilities -> class index
        lab = lab.argmax(axis=1)
    if lab.ndim != 1 or len(lab) != len(z):
        raise ValueError(
            f"labels must hold one label per code ({len(z)}), got shape "
            f"{np.shape(labels)}"
        )
    if lab.dtype.kind in "fc" and not np.isfinite(lab).all():  # NaN points were drawn transparent, without a word
        raise ValueError("labels contain NaN or Inf; give every code a finite label")
    uniq = sorted_unique(lab, "labels", "they are sorted for the legend")
    if len(uniq) > _MAX_LEGEND_CLASSES and lab.dtype.kind in "OUS":  # no colour scale for names
        raise ValueError(f"labels hold {len(uniq)} distinct names; a legend takes at most {_MAX_LEGEND_CLASSES} "
                         "classes, and names have no colour scale: give numbers for a colour bar")
    discrete = (
        len(uniq) <= _MAX_LEGEND_CLASSES
        and (lab.dtype.kind in "iub" or lab.dtype.kind in "OUS"
             or (lab.dtype.kind == "f" and np.all(np.mod(lab, 1) == 0)))
    )
    if discrete:
        palette = "tab10" if len(uniq) <= 10 else "tab20"
        cmap = _colormap(palette)
        replaced = _GREYS_REPLACED[palette] if grey_taken else {}
        for k, u in enumerate(uniq):
            sel = lab == u
            value = u.item() if hasattr(u, "item") else u
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            ax.scatter(z[sel, 0], z[sel, 1], s=size, alpha=alpha,
                       color=replaced.get(k % cmap.N, cmap(k % cmap.N)), label=_class_name(class_names, value),
                       edgecolors="none")
        ax.legend(markerscale=max(1.0, 20.0 / size), fontsize=8,
                  loc="best", framealpha=0.8)
    else:
        sc = ax.scatter(z[:, 0], z[:, 1], c=lab.astype(np.float64), s=size,
                        alpha=alpha, cmap="viridis", edgecolors="none")
        fig.colorbar(sc, ax=ax, label="label")


def _integer_locator():
    """Integer ticks only: with the default min_n_ticks=2, a view holding one integer (one
    epoch's point) fell back to ticks 0.945, 0.960, ..."""
    from matplotlib.ticker import MaxNLocator
    return MaxNLocator(integer=True, min_n_ticks=1)


def _colormap(name: str):
    from matplotlib import colormaps  # matplotlib already imported by now
    return colormaps[name]


def plot_latent_scatter(z, labels=None, path=None, class_names=None,
                        title=None):
    """Scatter of latent codes ``z`` (n, d), coloured by ``labels``.

    Integer/string labels with at most 20 distinct values get one colour per
    class and a legend (``class_names`` maps a label to its display name, as
    a sequence indexed by label or a dict); other labels are treated as
    continuous and get a colorbar.  One-hot labels are accepted.  When ``d >
    2`` the first two dimensions are plotted and the axis labels say so.
    """
    if labels is None and class_names is not None:  # they name classes of labels; they were ignored
        raise ValueError("class_names names the classes of labels, and no labels were given: pass labels= as well")
    codes = _as_codes(z, "z")
    fig = _new_figure((6.0, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    size = 6.0 if len(codes) > 2000 else 14.0
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=size, alpha=0.7,
                   edgecolors="none")
    else:
        _scatter_labelled(fig, ax, codes, labels, class_names, size, 0.7)
    _axis_labels(ax, codes.shape[1])
    ax.set_title(title if title else "latent codes")
    fig.tight_layout()
    return _finish(fig, path)


def plot_latent_vs_prior(codes, prior_samples, path=None, labels=None,
                         class_names=None, title=None):
    """Encoded codes drawn over samples from the prior (first two dims; both of one latent dimension d).

    Meant for adversarial autoencoders, where the encoder is trained to make
    the aggregate posterior match the prior: the grey cloud is the prior,
    the coloured points are the codes (optionally coloured by ``labels``).
    """
    if labels is None and class_names is not None:  # they name classes of labels; they were ignored
        raise ValueError("class_names names the classes of labels, and no labels were given: pass labels= as well")
    c = _as_codes(codes, "codes")
    p = _as_codes(prior_samples, "prior_samples")
    if c.shape[1] != p.shape[1]:  # their first two dimensions would be drawn as if they were one space
        raise ValueError(f"codes and prior_samples must have the same number of latent dimensions, got "
                         f"{c.shape[1]} and {p.shape[1]}: draw the prior samples from the model that encoded the codes")
    fig = _new_figure((6.0, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(p[:, 0], p[:, 1], s=6, alpha=0.25, color="0.5",
               edgecolors="none", label="prior samples")
    if labels is None:
        ax.scatter(c[:, 0], c[:, 1], s=8, alpha=0.7, color="tab:blue",
                   edgecolors="none", label="encoded codes")
        ax.legend(markerscale=2.5, fontsize=8, loc="best", framealpha=0.8)
    else:
        _scatter_labelled(fig, ax, c, labels, class_names, 8.0, 0.7, grey_taken=True)
    _axis_labels(ax, max(c.shape[1], p.shape[1]))
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title if title else "encoded codes vs prior")
    fig.tight_layout()
    return _finish(fig, path)


# --------------------------------------------------------------------------
# training curves
# --------------------------------------------------------------------------

_CURVE_KEYS = ("loss", "recon", "kl")


def _history_columns(history) -> dict[str, list]:
    """Normalise a training history to a dict of per-epoch lists."""
    history = getattr(history, "history", history)  # a model (its History), or a Keras-style object
    if callable(getattr(history, "as_dict", None)):  # microvae.training.History (model.history)
        history = history.as_dict()
    if isinstance(history, Mapping):
        # a 2-D value keeps its rows (flattened, they were drawn as extra epochs); _to_float
        # refuses a row where a curve is drawn, and a column that is not drawn may hold lists
        cols = {str(k): list(a) if a.ndim else [a.item()]
                for k, a in ((k, np.asarray(v, dtype=object)) for k, v in history.items())}
    elif isinstance(history, Sequence) and not isinstance(history, (str, bytes)):
        rows = list(history)
        if not all(isinstance(r, Mapping) for r in rows):
            raise TypeError(
                "history must be a History (model.history), a dict of lists "
                "or a list of per-epoch dicts"
            )
        keys: list[str] = []
        for r in rows:
            for k in r:
                if k not in keys:
                    keys.append(k)
        cols = {str(k): [r.get(k) for r in rows] for k in keys}
    else:
        raise TypeError(
            "history must be a History (model.history), a dict of lists or "
            f"a list of per-epoch dicts, got {type(history).__name__}"
        )
    # Accept train_loss/train_recon/train_kl as aliases.
    for key in _CURVE_KEYS:
        if key not in cols and f"train_{key}" in cols:
            cols[key] = cols[f"train_{key}"]
    return cols


def _to_float(values, key: str) -> np.ndarray:
    """A history column as floats, None as NaN (skipped); anything else but a number is named."""
    out = []
    for v in values:
        if np.ndim(v) > 0:  # a list per epoch (kl_per_dim, say) has no one point to draw
            raise ValueError(f"history[{key!r}] must hold one number per epoch, found {np.asarray(v).tolist()!r}")
        if v is not None and (isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real)):
            raise TypeError(f"history[{key!r}] must hold numbers (or None for a missing value), found {v!r}")
        out.append(np.nan if v is None else float(v))
    return np.array(out, dtype=np.float64)


def plot_loss_curves(history, path=None):
    """Training curves: total loss in one panel, recon and KL in another, and an AAE's
    discriminator and generator losses in a third.

    ``history`` is the :class:`microvae.training.History` that ``fit``
    returns (``model.history``, or the model itself), a dict of per-epoch lists (any subset of
    ``loss``, ``recon``, ``kl``, ``disc``, ``gen`` and their ``val_`` versions; ``train_``
    prefixes are accepted too) or a list of per-epoch dicts.  An ``epoch`` entry, when
    present and of matching length, is used for the x axis; missing values
    (``None``) are skipped; a curve's other values are one number per epoch
    (a list in their place is a ValueError; keys that are not drawn, such as a
    callback's lists, may hold anything).  A panel is drawn only if it has something to
    show, and is titled by what it shows.  An adversarial history (``disc`` or
    ``gen``: an AAE's, whose ``loss`` is its ``recon``) gets no total-loss panel.
    """
    cols = _history_columns(history)

    def shown(keys):
        return [k for k in keys if k in cols or f"val_{k}" in cols]

    adversarial = shown(["disc", "gen"])
    parts = shown(["recon", "kl"])
    present = [("total loss", [] if adversarial else shown(["loss"])),
               (" and ".join({"recon": "reconstruction", "kl": "KL"}[k] for k in parts), parts),
               ("discriminator and generator", adversarial)]
    present = [(name, keys) for name, keys in present if keys]
    if not present:
        raise ValueError(
            "history has none of the keys loss/recon/kl/disc/gen (or their val_ "
            f"versions); found {sorted(cols)}"
        )
    epochs = _to_float(cols["epoch"], "epoch") if "epoch" in cols else None
    fig = _new_figure((5.0 * len(present), 3.8))
    axes = [fig.add_subplot(1, len(present), i + 1) for i in range(len(present))]
    colors = {"loss": "tab:blue", "recon": "tab:orange", "kl": "tab:green", "disc": "tab:red", "gen": "tab:purple"}
    for ax, (name, keys) in zip(axes, present):
        for key in keys:
            for series, style, label in ((key, "-", key),
                                         (f"val_{key}", "--", f"val_{key}")):
                if series not in cols:
                    continue
                y = _to_float(cols[series], series)
                if epochs is not None and len(epochs) == len(y):
                    x = epochs
                else:
                    x = np.arange(1, len(y) + 1, dtype=np.float64)
                ok = np.isfinite(y) & np.isfinite(x)
                ax.plot(x[ok], y[ok], style, color=colors[key], label=label,
                        marker="o" if ok.sum() <= 30 else None, markersize=3)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(_integer_locator())
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, path)


# --------------------------------------------------------------------------
# sequences
# --------------------------------------------------------------------------

MAX_CURVE_FEATURES = 4  # plot_sequences draws up to this many features as lines, more as heatmaps


def _as_sequences(x, what: str) -> np.ndarray:
    check_real_array(x, "plot_sequences", None, what)  # strings failed in NumPy's cast
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or 0 in arr.shape:  # no steps or no features drew empty axes
        raise ValueError(
            f"{what} must be shaped (n, T, F) or (n, T), none of them 0, got {np.shape(x)}"
        )
    # a curve leaves NaN out and a heatmap draws it as a blank cell, without a word
    _refuse_nan(arr, what, "gaps in the curves or blank cells")
    return arr


def plot_sequences(x, x_rec=None, n: int = 4, path=None, title=None):
    """Plot up to ``n`` sequences shaped ``(n, T, F)`` (or ``(n, T)``).

    With at most 4 features each feature is a line (original solid,
    reconstruction dashed in the same colour).  With more features each
    sequence is shown as a feature-by-time heatmap, the reconstruction
    beside it.  Without ``x_rec`` nothing is labelled "original": the
    sequences may be samples.
    """
    n = _check_count("n", n)
    seqs = _as_sequences(x, "x")
    rec = None
    if x_rec is not None:
        rec = _as_sequences(x_rec, "x_rec")
        if rec.shape != seqs.shape:
            raise ValueError(
                f"x and x_rec must have the same shape, got {seqs.shape} and "
                f"{rec.shape}"
            )
    k = min(n, len(seqs))
    _, t_len, feats = seqs.shape
    if feats <= MAX_CURVE_FEATURES:
        fig = _new_figure((7.0, 1.8 * k + 0.6))
        colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
        t = np.arange(t_len)
        for i in range(k):
            ax = fig.add_subplot(k, 1, i + 1)
            for f in range(feats):
                tag = f" f{f}" if feats > 1 else ""
                # without reconstructions the lines are whatever was given (samples, say): name
                # only the features, and with one feature nothing
                ax.plot(t, seqs[i, :, f], "-", color=colors[f],
                        label=f"original{tag}" if rec is not None else tag.strip() or None)
                if rec is not None:
                    ax.plot(t, rec[i, :, f], "--", color=colors[f],
                            label=f"reconstruction{tag}")
            ax.set_ylabel(f"seq {i}")
            ax.grid(True, alpha=0.3)
            if i == 0 and (rec is not None or feats > 1):
                ax.legend(fontsize=7, ncol=2, loc="best")
            if i == k - 1:
                ax.set_xlabel("time step")
            else:
                ax.tick_params(labelbottom=False)
    else:
        ncols = 1 if rec is None else 2
        vmin, vmax = _display_range(seqs[:k], *(() if rec is None else (rec[:k],)))
        fig = _new_figure((4.0 * ncols + 0.8, 1.8 * k + 0.6))
        for i in range(k):
            panels = [("original" if rec is not None else "", seqs[i])] + ([] if rec is None else
                                                                            [("reconstruction", rec[i])])
            for j, (name, data) in enumerate(panels):
                ax = fig.add_subplot(k, ncols, i * ncols + j + 1)
                im = ax.imshow(data.T, aspect="auto", origin="lower",
                               cmap="viridis", vmin=vmin, vmax=vmax,
                               interpolation="nearest")
                if i == 0:
                    ax.set_title(name)
                if j == 0:
                    ax.set_ylabel(f"seq {i}\nfeature")
                if i == k - 1:
                    ax.set_xlabel("time step")
        fig.colorbar(im, ax=fig.axes)
    if title:
        fig.suptitle(title)
    if feats <= MAX_CURVE_FEATURES:
        fig.tight_layout()
    return _finish(fig, path)


def _as_rolls(rolls, what: str) -> np.ndarray:
    check_real_array(rolls, "plot_piano_roll", None, what)  # strings failed in NumPy's cast
    arr = np.asarray(rolls, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or 0 in arr.shape:  # no steps or no pitches drew empty axes
        raise ValueError(
            f"{what} must be shaped (n, T, P) or (T, P), none of them 0, got {np.shape(rolls)}"
        )
    _refuse_nan(arr, what, "blank cells, as if no note were played")
    return arr


def plot_piano_roll(rolls, n: int = 4, path=None, rolls_rec=None, title=None):
    """Show up to ``n`` piano rolls ``(n, T, P)`` as images.

    Time runs along x and pitch along y (low pitches at the bottom); active
    notes are dark.  Values are drawn on a 0..1 scale, so probabilities
    (e.g. decoder outputs) can be shown as well as binary rolls.  A single
    roll ``(T, P)`` is accepted.  With ``rolls_rec`` (reconstructions, shaped
    as ``rolls``) each roll is drawn beside its reconstruction, the columns
    titled "original" and "reconstruction", on one scale.  ``title`` goes
    above the figure.
    """
    n = _check_count("n", n)
    arr = _as_rolls(rolls, "rolls")
    rec = None
    if rolls_rec is not None:
        rec = _as_rolls(rolls_rec, "rolls_rec")
        if rec.shape != arr.shape:
            raise ValueError(f"rolls and rolls_rec must have the same shape, got {arr.shape} and {rec.shape}")
    k = min(n, len(arr))
    vmin, vmax = _display_range(arr[:k], *(() if rec is None else (rec[:k],)))
    ncols = 1 if rec is None else 2
    fig = _new_figure((7.0 if rec is None else 11.0, 1.9 * k + 0.5 + 0.3 * bool(title)))
    for i in range(k):
        panels = [("original", arr[i])] + ([] if rec is None else [("reconstruction", rec[i])])
        for j, (name, data) in enumerate(panels):
            ax = fig.add_subplot(k, ncols, i * ncols + j + 1)
            ax.imshow(data.T, aspect="auto", origin="lower", cmap="gray_r",
                      vmin=vmin, vmax=vmax, interpolation="nearest")
            if i == 0 and rec is not None:  # alone, the rolls may be samples: nothing is called "original"
                ax.set_title(name)
            if j == 0:
                ax.set_ylabel(f"roll {i}\npitch")
            if i == k - 1:
                ax.set_xlabel("time step")
            else:
                ax.tick_params(labelbottom=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)
