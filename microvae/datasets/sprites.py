"""Sprites: a procedural, dSprites-like dataset with known generative factors.

Each image shows one white shape on a black square canvas. The shape is fully
determined by five discrete factors, in this order:

========  ==========================================================
shape     which shape (index into the ``shapes`` argument)
scale     size, ``n_scales`` values evenly spaced in [0.5, 1] of the largest
rotation  angle, ``n_rotations`` values ``2*pi*k/n_rotations`` (counter-clockwise)
pos_x     horizontal centre, ``n_positions`` values (left to right)
pos_y     vertical centre, ``n_positions`` values (top to bottom)
========  ==========================================================

Images are rendered analytically: every pixel centre is mapped into the
shape's own coordinate frame (undoing translation, rotation and scale) and
tested against the shape's inside/outside rule, so pixels are exactly 0 or 1.
Every shape fits inside a circle of radius ``0.2 * size`` at full scale and the
centres are placed so that this circle never touches the outermost pixels,
whatever the rotation.

Rotational symmetry: a square looks the same after a quarter turn, an ellipse
after a half turn and a triangle after a third of a turn, so for those shapes
several rotation values give identical images (with the default 10 rotations,
rotations ``k`` and ``k + 5`` coincide for squares and ellipses). The heart has
no rotational symmetry. This mirrors dSprites, where rotation is likewise not
identifiable from the image alone for symmetric shapes. Pixel rounding makes a
few more images coincide: in the default full grid (``n=None``), 180 groups of
identical squares span two neighbouring scales, and 12 pairs of hearts differ
only in rotation; 30476 of its 46080 images are distinct.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..checks import check_bool, check_int, check_seed, is_choice, is_sequence

__all__ = ["SPRITE_FACTOR_NAMES", "SPRITE_SHAPES", "Sprites", "make_sprites"]

SPRITE_FACTOR_NAMES = ("shape", "scale", "rotation", "pos_x", "pos_y")

_SQUARE_HALF_SIDE = np.float32(1.0 / np.sqrt(2.0))  # corners on the unit circle
_ELLIPSE_MINOR = np.float32(0.5)  # semi-axes 1 (along u) and 0.5 (along v)
# The heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 spans x in [-1.14, 1.14],
# y in [-1, 1.24]; centred at y = 0.25 it fits in a circle of radius 1.25.
_HEART_SCALE = np.float32(1.26)
_HEART_SHIFT = np.float32(0.25)
_SQRT3_HALF = np.float32(np.sqrt(3.0) / 2.0)


def _inside_square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF_SIDE


def _inside_ellipse(u, v):
    w = v / _ELLIPSE_MINOR
    return u * u + w * w <= 1.0


def _inside_heart(u, v):
    x = u * _HEART_SCALE
    y = v * _HEART_SCALE + _HEART_SHIFT
    x2 = x * x
    r = x2 + y * y - 1.0
    return r * r * r - x2 * y * y * y <= 0.0


def _inside_triangle(u, v):
    # Equilateral, pointing up, vertices on the unit circle: inradius 1/2.
    return (-v <= 0.5) & (_SQRT3_HALF * u + 0.5 * v <= 0.5) & (-_SQRT3_HALF * u + 0.5 * v <= 0.5)


#: Shapes ``make_sprites`` can draw, each a test on shape-frame coordinates
#: ``(u, v)`` (``v`` pointing up) that fits inside the unit circle.
SPRITE_SHAPES = {
    "square": _inside_square,
    "ellipse": _inside_ellipse,
    "heart": _inside_heart,
    "triangle": _inside_triangle,
}

_MIN_SIZE = 16
_MAX_RADIUS_FRACTION = 0.2
_CHUNK = 2048


class Sprites(NamedTuple):
    """Output of :func:`make_sprites`.

    Attributes
    ----------
    images:
        float32 array with values in {0, 1}; shape ``(N, size*size)``
        (row-major) or ``(N, 1, size, size)`` when ``flatten=False``.
    factors:
        int64 array of shape ``(N, 5)``; column ``j`` is the index of the value
        of factor ``factor_names[j]`` in ``factor_values[factor_names[j]]``.
    factor_names:
        ``("shape", "scale", "rotation", "pos_x", "pos_y")``.
    factor_values:
        dict from factor name to the array of its possible values: shape names
        (str), scales as radii in pixels (float32), rotations in radians
        (float32), and x/y centre coordinates in pixels from the top-left
        corner of the canvas (float32).
    factor_sizes:
        (property) the number of values of each factor, in ``factor_names``
        order: ``(3, 6, 10, 16, 16)`` with the default settings.
    """

    images: np.ndarray
    factors: np.ndarray
    factor_names: tuple
    factor_values: dict

    @property
    def factor_sizes(self) -> tuple:
        """Number of distinct values of each factor, in ``factor_names`` order."""
        return tuple(len(self.factor_values[name]) for name in self.factor_names)


def make_sprites(
    n: int | None = 20000,
    size: int = 32,
    seed: int = 0,
    shapes=("square", "ellipse", "heart"),
    *,
    n_scales: int = 6,
    n_rotations: int = 10,
    n_positions: int = 16,
    flatten: bool = True,
) -> Sprites:
    """Render binary sprite images together with their ground-truth factors.

    Parameters
    ----------
    n:
        Number of images. Each image's five factor values are drawn
        independently and uniformly from ``seed``. ``None`` instead enumerates
        every combination once, in order (shape varies slowest, pos_y
        fastest), giving ``len(shapes) * n_scales * n_rotations *
        n_positions**2`` images (46080 with the defaults); ``seed`` is then
        unused. ``n=0`` gives empty arrays.
    size:
        Canvas side length in pixels (at least 16).
    seed:
        Seed for :func:`numpy.random.default_rng`; the same arguments always
        give byte-identical output.
    shapes:
        Names of the shapes to use, from ``"square"``, ``"ellipse"``,
        ``"heart"`` and ``"triangle"``; the ``shape`` factor indexes this
        sequence.
    n_scales, n_rotations, n_positions:
        Number of distinct values of the scale, rotation and (each) position
        factor. Positions are spread evenly over ``0.6 * size - 2`` pixels
        (the sprite stays a pixel inside the canvas); once ``n_positions - 1``
        exceeds that, neighbours lie less than a pixel apart and some images
        render alike although their factors differ.
    flatten:
        ``True``: images of shape ``(N, size*size)``; ``False``:
        ``(N, 1, size, size)``.

    Returns
    -------
    Sprites
        ``images`` float32 in {0, 1}, ``factors`` int64 ``(N, 5)`` with
        column ``j`` in ``range(factor_sizes[j])``, plus the factor names
        and values (see :class:`Sprites`).
    """
    size = check_int("size", size, _MIN_SIZE)
    flatten = check_bool("flatten", flatten)  # before rendering, not after
    n_scales = check_int("n_scales", n_scales, 1)
    n_rotations = check_int("n_rotations", n_rotations, 1)
    n_positions = check_int("n_positions", n_positions, 1)
    if isinstance(shapes, str):
        shapes = (shapes,)
    if not is_sequence(shapes):  # the order of the names gives the labels
        raise TypeError(f"shapes must be a shape name or a list of them, in label order, got {shapes!r}")
    shapes = tuple(shapes)
    if not shapes:
        raise ValueError("shapes must name at least one shape")
    for name in shapes:
        if not is_choice(name, SPRITE_SHAPES):
            raise ValueError(f"unknown shape {name!r}; expected one of {sorted(SPRITE_SHAPES)}")
    if len(set(shapes)) != len(shapes):
        raise ValueError(f"shapes must not repeat a name, got {shapes}")

    sizes = (len(shapes), n_scales, n_rotations, n_positions, n_positions)
    if n is None:
        grids = np.meshgrid(*[np.arange(k) for k in sizes], indexing="ij")
        factors = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
    else:
        n = check_int("n", n, 0)
        rng = np.random.default_rng(check_seed(seed))
        factors = np.stack([rng.integers(0, k, size=n) for k in sizes], axis=1).astype(np.int64)

    max_radius = _MAX_RADIUS_FRACTION * size
    scale_values = (np.linspace(0.5, 1.0, n_scales) * max_radius).astype(np.float32)
    rotation_values = (2.0 * np.pi * np.arange(n_rotations) / n_rotations).astype(np.float32)
    # Keep the bounding circle at least one pixel away from the canvas edge.
    lo, hi = max_radius + 1.0, size - max_radius - 1.0
    position_values = np.linspace(lo, hi, n_positions).astype(np.float32)
    if n_positions == 1:
        position_values[:] = size / 2.0

    images = _render(factors, size, shapes, scale_values, rotation_values, position_values)
    images = images.reshape(len(factors), size * size) if flatten else images.reshape(len(factors), 1, size, size)
    values = {
        "shape": np.array(shapes),
        "scale": scale_values,
        "rotation": rotation_values,
        "pos_x": position_values,
        "pos_y": position_values.copy(),
    }
    return Sprites(images, factors, SPRITE_FACTOR_NAMES, values)


def _render(factors, size, shapes, scale_values, rotation_values, position_values) -> np.ndarray:
    """Rasterise each row of ``factors`` into a (N, size, size) float32 {0,1} array."""
    n = len(factors)
    out = np.zeros((n, size, size), dtype=np.float32)
    centres = np.arange(size, dtype=np.float32) + np.float32(0.5)
    for start in range(0, n, _CHUNK):
        f = factors[start:start + _CHUNK]
        radius = scale_values[f[:, 1]][:, None, None]
        angle = rotation_values[f[:, 2]]
        cos = np.cos(angle)[:, None, None]
        sin = np.sin(angle)[:, None, None]
        dx = (centres[None, None, :] - position_values[f[:, 3]][:, None, None]) / radius  # (b, 1, S)
        dy = (position_values[f[:, 4]][:, None, None] - centres[None, :, None]) / radius  # (b, S, 1), up
        # Undo a counter-clockwise rotation by `angle`.
        u = cos * dx + sin * dy
        v = cos * dy - sin * dx
        block = out[start:start + _CHUNK]
        for k, name in enumerate(shapes):
            sel = f[:, 0] == k
            if sel.any():
                block[sel] = SPRITE_SHAPES[name](u[sel], v[sel])
    return out
