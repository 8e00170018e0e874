"""Synthetic sequence datasets (no download) and an image-to-sequence view.

* :func:`make_sinusoids`: noisy sums of sinusoids, shape ``(N, T, 1)``.
* :func:`make_piano_rolls`: binary piano rolls of simple scale melodies,
  shape ``(N, T, P)``, with discrete ground-truth factors.
* :func:`images_as_sequences`: treat the rows of images as time steps.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from ..checks import check_bool, check_int, check_seed, is_sequence

__all__ = [
    "PIANO_CONTOURS",
    "PIANO_FACTOR_NAMES",
    "PIANO_NOTE_LENGTHS",
    "PIANO_SCALES",
    "PianoRolls",
    "Sinusoids",
    "images_as_sequences",
    "make_piano_rolls",
    "make_sinusoids",
]


def _check_range(name: str, value, lower_bound: float) -> tuple:
    # float() of each item read the string "15" as (1.0, 5.0), and True as 1
    items = list(value) if is_sequence(value) else None
    if items is None or len(items) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
                                                   for v in items):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}")
    lo, hi = (float(v) for v in items)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # inf overflowed NumPy's uniform and integers
        raise ValueError(f"{name} must be a (low, high) pair of finite numbers, got {value!r}")
    if not (lower_bound <= lo <= hi):
        raise ValueError(f"{name} must satisfy {lower_bound:g} <= low <= high, got {value!r}")
    return lo, hi


# --------------------------------------------------------------------------- sinusoids


class Sinusoids(NamedTuple):
    """Output of :func:`make_sinusoids`.

    Attributes
    ----------
    x:
        float32 ``(N, T, 1)``, the (possibly rescaled) noisy signals.
    freqs, phases, amps:
        float32 ``(N, K)`` with ``K = max number of components``: frequency in
        cycles per sequence, phase in radians in [0, 2*pi), amplitude.
        Unused components (beyond ``n_components[i]``) have all three set to 0.
    n_components:
        int64 ``(N,)``, how many components each signal has.
    """

    x: np.ndarray
    freqs: np.ndarray
    phases: np.ndarray
    amps: np.ndarray
    n_components: np.ndarray


def make_sinusoids(
    n: int = 1000,
    length: int = 50,
    n_components=(1, 3),
    seed: int = 0,
    noise: float = 0.05,
    *,
    freq_range=(1.0, 5.0),
    amp_range=(0.5, 1.0),
    unit_range: bool = False,
) -> Sinusoids:
    """Generate noisy sums of sinusoids with random frequency, phase and amplitude.

    Signal ``i`` at step ``t = 0..length-1`` is::

        sum_k amps[i,k] * sin(2*pi * freqs[i,k] * t / length + phases[i,k])
            + noise * standard_normal()

    Parameters
    ----------
    n:
        Number of sequences (>= 0).
    length:
        Number of time steps ``T`` (>= 2; with the default ``freq_range``, > 10, since its
        high end must stay below ``length / 2``).
    n_components:
        Number of sinusoids per signal: an int, or an inclusive ``(low, high)``
        pair from which each signal's count is drawn uniformly.
    seed:
        Seed for :func:`numpy.random.default_rng`; equal arguments give
        identical output.
    noise:
        Standard deviation of the additive Gaussian noise (>= 0).
    freq_range:
        ``(low, high)`` frequencies in cycles per sequence, drawn uniformly;
        ``high`` must be below the Nyquist limit ``length / 2``.
    amp_range:
        ``(low, high)`` amplitudes, drawn uniformly, ``low >= 0``.
    unit_range:
        If ``True``, map the signals into [0, 1] with one fixed affine map
        shared by all sequences, ``x01 = clip(0.5 + x / (2 * B), 0, 1)`` with
        ``B = max_components * amp_range[1] + 3 * noise`` (so 0.5 is the zero
        line; clipping only affects noise beyond three standard deviations).
        Useful with Bernoulli or bounded decoders.

    Returns
    -------
    Sinusoids
        ``x`` float32 ``(N, T, 1)`` and the per-component factors, see
        :class:`Sinusoids`.
    """
    n = check_int("n", n, 0)
    length = check_int("length", length, 2)
    if isinstance(n_components, numbers.Real) and not isinstance(n_components, (bool, np.bool_)):
        count = check_int("n_components", n_components, 1)  # 2.0 is a count too, as everywhere
        n_components = (count, count)
    k_lo, k_hi = _check_range("n_components", n_components, 1)
    if k_lo != int(k_lo) or k_hi != int(k_hi):
        raise ValueError(f"n_components must be integers, got {n_components!r}")
    k_lo, k_hi = int(k_lo), int(k_hi)
    f_lo, f_hi = _check_range("freq_range", freq_range, 0.0)
    if f_hi >= length / 2:
        raise ValueError(
            f"freq_range high must be below the Nyquist limit length/2 = {length / 2:g} "
            f"cycles per sequence, got {f_hi:g}"
        )
    a_lo, a_hi = _check_range("amp_range", amp_range, 0.0)
    if isinstance(noise, (bool, np.bool_)) or not isinstance(noise, (int, float, np.integer, np.floating)):
        raise TypeError(f"noise must be a finite number >= 0, got {noise!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    unit_range = check_bool("unit_range", unit_range)  # "no" would rescale

    rng = np.random.default_rng(check_seed(seed))
    counts = rng.integers(k_lo, k_hi + 1, size=n)
    freqs = rng.uniform(f_lo, f_hi, size=(n, k_hi))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(n, k_hi))
    amps = rng.uniform(a_lo, a_hi, size=(n, k_hi))
    used = np.arange(k_hi)[None, :] < counts[:, None]
    freqs, phases, amps = freqs * used, phases * used, amps * used

    t = np.arange(length) / length
    angle = 2.0 * np.pi * freqs[:, None, :] * t[None, :, None] + phases[:, None, :]  # (N, T, K)
    x = (amps[:, None, :] * np.sin(angle)).sum(axis=2)
    x += noise * rng.standard_normal(size=x.shape)
    if unit_range:
        bound = k_hi * a_hi + 3.0 * noise
        x = np.clip(0.5 + x / (2.0 * bound), 0.0, 1.0) if bound > 0 else np.full_like(x, 0.5)
    f32 = np.float32
    return Sinusoids(
        x.astype(f32)[:, :, None],
        freqs.astype(f32),
        phases.astype(f32),
        amps.astype(f32),
        counts.astype(np.int64),
    )


# --------------------------------------------------------------------------- piano rolls

#: Scales as semitone offsets from the root, up to and including the octave.
PIANO_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11, 12),
    "minor": (0, 2, 3, 5, 7, 8, 10, 12),
    "pentatonic": (0, 2, 4, 7, 9, 12),
}

#: Melodic contours; a melody walks through the scale's degrees in this pattern.
PIANO_CONTOURS = ("ascending", "descending", "up-down", "down-up")

#: Possible note lengths in time steps (the "tempo" factor).
PIANO_NOTE_LENGTHS = (1, 2, 4)

PIANO_FACTOR_NAMES = ("root", "scale", "contour", "note_length", "start")

_N_STARTS = 4
_SPAN = max(max(s) for s in PIANO_SCALES.values())  # 12 semitones


def _contour_cycle(contour: str, n_degrees: int) -> np.ndarray:
    """One period of scale-degree indices for a contour."""
    up = np.arange(n_degrees)
    if contour == "ascending":
        return up
    if contour == "descending":
        return up[::-1]
    if contour == "up-down":
        return np.concatenate([up, up[-2:0:-1]])
    return np.concatenate([up[::-1], up[1:-1]])  # down-up


class PianoRolls(NamedTuple):
    """Output of :func:`make_piano_rolls`.

    Attributes
    ----------
    rolls:
        float32 ``(N, T, P)`` in {0, 1}; at most one pitch is active per step.
    factors:
        int64 ``(N, 5)`` with columns ``factor_names``.
    factor_names:
        ``("root", "scale", "contour", "note_length", "start")``.
    factor_values:
        dict from factor name to its possible values: root pitch indices,
        scale names (keys of :data:`PIANO_SCALES`), contour names
        (:data:`PIANO_CONTOURS`), note lengths in steps
        (:data:`PIANO_NOTE_LENGTHS`), and start offsets.
    """

    rolls: np.ndarray
    factors: np.ndarray
    factor_names: tuple
    factor_values: dict


def make_piano_rolls(n: int = 1000, length: int = 32, pitches: int = 16, seed: int = 0) -> PianoRolls:
    """Generate binary piano rolls of simple scale melodies with known factors.

    Each melody plays notes of equal length, one at a time, without rests. Its
    five factors, drawn independently and uniformly from ``seed``, are:

    * ``root``: lowest pitch index of the scale, in ``0 .. pitches - 13``
      (every scale spans one octave, 12 semitones, root included);
    * ``scale``: index into ``("major", "minor", "pentatonic")``; the pitches
      played are ``root + PIANO_SCALES[scale]``;
    * ``contour``: index into :data:`PIANO_CONTOURS`: walk the scale degrees
      upwards, downwards, up-and-down or down-and-up, cyclically;
    * ``note_length``: index into :data:`PIANO_NOTE_LENGTHS` = (1, 2, 4) steps
      per note (notes start at multiples of the note length);
    * ``start``: in ``0..3``, how many notes into the contour's cycle the
      melody starts.

    Parameters
    ----------
    n:
        Number of rolls (>= 0).
    length:
        Number of time steps ``T`` (>= 1).
    pitches:
        Number of pitches ``P`` (>= 13, so one octave fits).
    seed:
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    PianoRolls
        ``rolls`` float32 ``(N, T, P)`` in {0, 1} with exactly one active
        pitch per time step, ``factors`` int64 ``(N, 5)``, and the factor
        names and values (see :class:`PianoRolls`).
    """
    n = check_int("n", n, 0)
    length = check_int("length", length, 1)
    pitches = check_int("pitches", pitches, _SPAN + 1)

    scale_names = tuple(PIANO_SCALES)
    sizes = (pitches - _SPAN, len(scale_names), len(PIANO_CONTOURS), len(PIANO_NOTE_LENGTHS), _N_STARTS)
    rng = np.random.default_rng(check_seed(seed))
    factors = np.stack([rng.integers(0, k, size=n) for k in sizes], axis=1).astype(np.int64)

    # Precompute the pitch sequence (relative to the root) for every
    # (scale, contour, note_length, start) combination; there are only 144.
    table = np.empty((len(scale_names), len(PIANO_CONTOURS), len(PIANO_NOTE_LENGTHS), _N_STARTS, length), np.int64)
    steps = np.arange(length)
    for s, name in enumerate(scale_names):
        offsets = np.array(PIANO_SCALES[name])
        for c, contour in enumerate(PIANO_CONTOURS):
            cycle = _contour_cycle(contour, len(offsets))
            for l_idx, note_len in enumerate(PIANO_NOTE_LENGTHS):
                for start in range(_N_STARTS):
                    note_index = steps // note_len + start
                    table[s, c, l_idx, start] = offsets[cycle[note_index % len(cycle)]]

    pitch = factors[:, :1] + table[factors[:, 1], factors[:, 2], factors[:, 3], factors[:, 4]]  # (N, T)
    rolls = np.zeros((n, length, pitches), dtype=np.float32)
    np.put_along_axis(rolls, pitch[:, :, None], 1.0, axis=2)
    values = {
        "root": np.arange(sizes[0]),
        "scale": np.array(scale_names),
        "contour": np.array(PIANO_CONTOURS),
        "note_length": np.array(PIANO_NOTE_LENGTHS),
        "start": np.arange(_N_STARTS),
    }
    return PianoRolls(rolls, factors, PIANO_FACTOR_NAMES, values)


# --------------------------------------------------------------------------- images as sequences


def images_as_sequences(x, height: int = 28, width: int = 28) -> np.ndarray:
    """View a batch of images as sequences whose time steps are image rows.

    Parameters
    ----------
    x:
        Array of shape ``(N, height*width)`` (flattened, row-major),
        ``(N, height, width)`` or ``(N, 1, height, width)`` (single channel).
    height, width:
        Image size; ``height`` becomes the number of time steps and ``width``
        the features per step.

    Returns
    -------
    numpy.ndarray
        Shape ``(N, height, width)``, same dtype as ``x``; a view of ``x``
        when ``x`` is contiguous (no copy), so writes go through.

    Raises
    ------
    ValueError
        If ``x`` has another shape.
    """
    height = check_int("height", height, 1)
    width = check_int("width", width, 1)
    x = np.asarray(x)
    accepted = f"(N, {height * width}), (N, {height}, {width}) or (N, 1, {height}, {width})"
    if x.ndim == 2 and x.shape[1] == height * width:
        pass
    elif x.ndim == 3 and x.shape[1:] == (height, width):
        pass
    elif x.ndim == 4 and x.shape[1:] == (1, height, width):
        pass
    else:
        raise ValueError(f"images_as_sequences: expected an array of shape {accepted}, got {x.shape}")
    return x.reshape(x.shape[0], height, width)
