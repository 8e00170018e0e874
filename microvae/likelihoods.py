"""Observation models p(x | decoder output): what the decoder's raw output means.

A likelihood turns the decoder's raw output into a loss ``nll(out, x) -> (per_example,
dout)`` (the convention of ``microvae.losses``) and into the data-space mean ``mean(out)``.
"""

from __future__ import annotations

import math
import numbers

from .backend import array_module, kernels_for
from .losses import bernoulli_nll, gaussian_nll
from .losses._checks import found_range, native, outside_unit_interval

# Every learned log-variance (the encoder's, a learned prior's, a Gaussian decoder's) is
# clamped to this range, with zero gradient outside it: e^{-logvar} overflows float32 below
# about −88 (a decoder's logvar heads there on constant pixels), e^{logvar} above +88.
LOGVAR_RANGE = (-30.0, 20.0)


def clamp_logvar(raw):
    """(raw clipped to LOGVAR_RANGE, mask of the entries strictly inside it): the backward
    pass multiplies dlogvar by the mask, the clamp's derivative."""
    lo, hi = LOGVAR_RANGE
    return array_module(raw).clip(raw, lo, hi), (raw > lo) & (raw < hi)


class Bernoulli:
    """Pixels in [0, 1]; the decoder outputs logits, ``mean`` is σ(logits)."""

    name = "bernoulli"

    def output_dim(self, data_dim: int) -> int:
        """Decoder outputs per example: one logit per pixel."""
        return data_dim

    def nll(self, out, x, kernels=None):
        """(−log p(x | logits) per example, summed over pixels; d(batch mean)/d logits):
        ``losses.bernoulli_nll``, softplus(l) − x·l, through the model's ``kernels``
        (``backend.kernels``; default: those of the logits' device). ``x`` was checked where it
        entered the model (``validate``), so the loss does not check its range again on every batch."""
        return bernoulli_nll(out, x, check_range=False, kernels=kernels)

    def mean(self, out, kernels=None):
        """The pixels' means σ(logits), through the backend's ``kernels`` (``backend.kernels``;
        default: those of the logits' device, as ``nll``'s). Logits of any layout come in as a
        C-contiguous copy in native byte order; integer and float16 ones in float64 (the
        kernels compute in float32 or float64, and an integer σ would be truncated to 0 or 1)."""
        xp = array_module(out)
        dtype = native(out.dtype) if out.dtype.kind == "f" and out.dtype.itemsize in (4, 8) else xp.float64
        out = xp.ascontiguousarray(out, dtype=dtype)
        p = xp.empty_like(out)
        (kernels or kernels_for(out)).sigmoid(out, p)
        return p

    def validate(self, x, what: str = "x") -> None:
        """Raise ValueError unless every value of ``x`` lies in [0, 1]."""
        found = outside_unit_interval(x)
        if found is not None:
            lo, hi = found
            raise ValueError(
                f"{what} must lie in [0, 1] for a Bernoulli likelihood ({found_range(lo, hi)}); "
                "scale the data, or use likelihood='gaussian'"
            )

    def config(self):
        """The spec ``get_likelihood`` rebuilds this from."""
        return "bernoulli"

    def __repr__(self):
        return "Bernoulli()"


class Gaussian:
    """Real-valued data: N(x; μ, σ²) with a fixed σ² (``logvar`` a number, default 0: unit
    variance; in ``LOGVAR_RANGE``) or a learned per-pixel variance (``logvar="learned"``: the
    decoder outputs μ ‖ logvar, twice the data dimension; logvar clamped to ``LOGVAR_RANGE``)."""

    name = "gaussian"

    def __init__(self, logvar=0.0):
        learned = isinstance(logvar, str) and logvar == "learned"
        if not learned:
            # any real number, NumPy scalars included, stored as a float so that the config is
            # plain JSON; a NaN or infinite variance would make every loss NaN
            if not isinstance(logvar, numbers.Real) or isinstance(logvar, bool) or not math.isfinite(logvar):
                raise ValueError(f"Gaussian logvar must be a finite number or 'learned', got {logvar!r}")
            lo, hi = LOGVAR_RANGE  # what a learned one may take, a margin inside float32's e^{±88}
            if not lo <= logvar <= hi:
                raise ValueError(f"Gaussian logvar must be in [{lo:g}, {hi:g}] (a variance from {math.exp(lo):.1e} to "
                                 f"{math.exp(hi):.1e}: the range a learned log-variance is clamped to), got {logvar!r}")
            logvar = float(logvar)
        self._logvar = logvar

    # fixed once built: a model's config (what its checkpoints store) holds the likelihood's
    # config() as it was assigned, so another variance is a new Gaussian, assigned to the model
    @property
    def logvar(self):
        """The fixed log-variance (a float), or "learned"."""
        return self._logvar

    @logvar.setter
    def logvar(self, value):
        raise AttributeError(f"a Gaussian's logvar is fixed once built; assign a new one to the model instead, "
                             f"e.g. model.likelihood = Gaussian({value!r})")

    @property
    def learned(self) -> bool:
        """True for a learned per-pixel variance (the decoder outputs μ ‖ logvar)."""
        return isinstance(self._logvar, str)

    def output_dim(self, data_dim: int) -> int:
        """Decoder outputs per example: the means, and with a learned variance the log-variances too."""
        return 2 * data_dim if self.learned else data_dim

    def nll(self, out, x, kernels=None):
        """(−log N(x; μ, σ²) per example, summed over pixels; d(batch mean)/d out), with
        out = μ, or μ ‖ logvar (logvar clamped, zero gradient beyond the clamp); ``kernels``
        unused (NumPy/CuPy operations only)."""
        if not self.learned:
            per_example, dmean, _ = gaussian_nll(out, x, float(self.logvar))
            return per_example, dmean
        xp = array_module(out)
        if x.ndim < 2:
            raise ValueError(f"Gaussian(logvar='learned').nll needs x of shape (batch, features, ...), got {tuple(x.shape)}")
        expected = (x.shape[0], 2 * x.shape[1], *x.shape[2:])
        if tuple(out.shape) != expected:  # gaussian_nll would name the half it was given, not the output
            raise ValueError(f"Gaussian(logvar='learned').nll: the decoder output must be μ ‖ logvar, twice the data's "
                             f"width, of shape {expected} for x of shape {tuple(x.shape)}, got {tuple(out.shape)}")
        d = out.shape[1] // 2
        logvar, inside = clamp_logvar(out[:, d:])
        per_example, dmean, dlogvar = gaussian_nll(out[:, :d], x, logvar)
        return per_example, xp.concatenate([dmean, dlogvar * inside], axis=1)

    def mean(self, out, kernels=None):
        """The means μ (the first half of ``out`` with a learned variance), a new array, as
        ``Bernoulli.mean``'s is: never ``out`` or a view of it; ``kernels`` unused."""
        return (out[:, : out.shape[1] // 2] if self.learned else out).copy()

    def validate(self, x, what: str = "x") -> None:
        """Any real values are valid (NaN and Inf are refused where data enters a model)."""
        return None

    def config(self):
        """A spec ``get_likelihood`` rebuilds this from: a name, or for a fixed variance other
        than 1 a dict that keeps ``logvar`` (a bare "gaussian" lost it in checkpoints)."""
        if self.learned:
            return "gaussian-learned"
        return "gaussian" if self.logvar == 0.0 else {"name": "gaussian", "logvar": self.logvar}

    def __repr__(self):
        return f"Gaussian(logvar={self.logvar!r})"


# the names get_likelihood takes (each one's config() gives it back); a fixed variance other
# than 1 is a dict or a Gaussian object
LIKELIHOOD_NAMES = ("bernoulli", "gaussian", "gaussian-learned")


def get_likelihood(spec):
    """'bernoulli', 'gaussian' (unit variance), 'gaussian-learned', a dict such as
    ``{"name": "gaussian", "logvar": -2.0}`` (what ``config()`` gives), or a likelihood object."""
    if isinstance(spec, (Bernoulli, Gaussian)):
        return spec
    if isinstance(spec, dict):
        name, settings = spec.get("name"), {k: v for k, v in spec.items() if k != "name"}
        if name == "gaussian" and set(settings) <= {"logvar"}:
            return Gaussian(settings.get("logvar", 0.0))
        if name == "bernoulli" and not settings:
            return Bernoulli()
        raise ValueError(f"likelihood dict must be {{'name': 'bernoulli'}} or {{'name': 'gaussian', 'logvar': <number "
                         f"or 'learned'>}}, got {spec!r}")
    if spec == "bernoulli":
        return Bernoulli()
    if spec == "gaussian":
        return Gaussian(0.0)
    if spec == "gaussian-learned":
        return Gaussian("learned")
    names = ", ".join(map(repr, LIKELIHOOD_NAMES))
    raise ValueError(f"likelihood must be {names}, a dict or a likelihood object, got {spec!r}")
