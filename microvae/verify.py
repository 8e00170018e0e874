"""Gradient verification: analytic gradients against finite differences, in float64.

``gradcheck`` is the general tool; ``check_layer``, ``check_loss`` and ``check_model``
wrap it for the three things one usually checks.

**Error measure.** For each input or parameter the report gives the max-norm relative error

    err = max_i |analytic_i − numeric_i| / max(max_i |analytic_i|, max_i |numeric_i|, floor)

i.e. the worst deviation relative to the gradient's own scale. (Elementwise relative error
blows up on components that are zero up to rounding, which says nothing about the code.)
Numeric gradients use the fourth-order central stencil

    f'(θ) ≈ [8(f(θ + h) − f(θ − h)) − (f(θ + 2h) − f(θ − 2h))] / 12h,

whose truncation error is O(h⁴) (plain central differences, O(h²), are too coarse near a
minimum with a large third derivative) and whose rounding error is about 1e-16·|f|/h; so
that a gradient that is exactly zero is not judged on rounding noise alone, the scale never
drops below ``floor = 1e-3·max(1, |f(θ)|)``.

**Directional mode** (``mode="directional"``) costs four evaluations per direction instead of
four per element: along a random unit vector v it compares ⟨analytic, v⟩ with the same
fourth-order difference of f along v, relative to ‖analytic‖₂ (Cauchy–Schwarz bounds
|⟨analytic, v⟩| by it). It sees an error in a few elements at the scale of the whole
gradient, but a small error spread over a large tensor (every element 1e-5 too large) shows
up only as about 1e-5/√size of it.

**Sampled mode** (``mode="sampled"``) checks that case at the promised scale: in each tensor
it differences the ``samples`` elements of largest |analytic| and ``samples`` others drawn
at random (every element of a tensor of at most 2·``samples``), and judges them as the full
mode does, against the whole tensor's max |analytic|. Directional and sampled checks of one
large tensor complement each other; neither alone is the full check.

**Kinks.** A ReLU input or a max-pool tie sitting exactly at its kink (zero pixels of an
image meeting a freshly built layer's zero biases put whole windows there) has no derivative,
and a finite difference across it gives half the slope: a FAIL that says nothing about the
code. Where a tensor's error exceeds 1e-7, the check also measures, along one random unit
vector v, the jump in slope g(h) = [f(θ + hv) − 2f(θ) + f(θ − hv)]/h at steps h and 2h. A kink
at θ makes it the same at both (relative to the gradient's scale, above 1e-5); a smooth f
doubles it. Such tensors are listed in ``result.kinks`` and marked "at a kink" in the table,
which says what to do: check again at a point off the kink.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import array_module
from .checks import check_int, check_seed, is_choice

__all__ = ["GradcheckResult", "gradcheck", "numeric_gradient", "check_layer", "check_loss", "check_model"]

_TINY = 1e-30


class GradcheckResult:
    """Per-name relative errors of one check. ``passed(tol)`` and a printable table."""

    def __init__(self, errors: dict, mode: str, title: str = "", kinks: dict | None = None):
        self.errors = dict(errors)
        self.mode = mode
        self.title = title
        self.kinks = dict(kinks or {})  # name → the jump in slope at θ, relative to the gradient's scale

    @property
    def max_error(self) -> float:
        """The largest relative error (NaN if any error is NaN; 0 for an empty check)."""
        values = list(self.errors.values())
        if any(math.isnan(e) for e in values):  # max() would skip a NaN that is not first
            return math.nan
        return max(values, default=0.0)

    def passed(self, tol: float = 1e-6) -> bool:
        """True when every error is finite and at most ``tol`` (a NaN error fails)."""
        return all(np.isfinite(e) and e <= tol for e in self.errors.values())

    def table(self, tol: float = 1e-6) -> str:
        """One line per name: its relative error and ok or FAIL against ``tol``."""
        width = max([len(k) for k in self.errors] + [8])
        head = f"{self.title} ({self.mode})\n" if self.title else ""
        at_kinks = {name for name, err in self.errors.items() if name in self.kinks and not err <= tol}
        lines = [f"  {name:<{width}}  {err:9.2e}  {'ok' if err <= tol else 'FAIL'}" + ("  at a kink" if name in at_kinks else "")
                 for name, err in self.errors.items()]
        if at_kinks:
            lines.append("  at a kink: f has no derivative at this point (a ReLU input or a max-pool tie exactly at its kink, "
                         "often zero inputs meeting zero biases), so finite differences there prove nothing either way; "
                         "check again off the kink: other inputs, or biases that are not all zero "
                         "(layer.params['b'][...] = small random values, in a model's layers too)")
        return head + "\n".join(lines)

    __str__ = table

    def __repr__(self):
        return f"GradcheckResult(max_error={self.max_error:.3g}, mode={self.mode!r}, names={list(self.errors)})"


def _relative_error(analytic, numeric, floor) -> float:
    if analytic.size == 0:
        return 0.0
    diff = float(np.max(np.abs(analytic - numeric)))
    return diff / max(float(np.max(np.abs(analytic))), float(np.max(np.abs(numeric))), floor)


def value_error(ours, formula) -> float:
    """A computed value against its formula: the max-norm relative error of ``_relative_error``
    with no floor (a forward value is judged at its own scale), in float64; the shapes must agree."""
    ours, formula = np.asarray(ours, dtype=np.float64), np.asarray(formula, dtype=np.float64)
    if ours.shape != formula.shape:
        raise AssertionError(f"the value has shape {ours.shape}, its formula {formula.shape}")
    return _relative_error(ours.reshape(-1), formula.reshape(-1), _TINY)


def _derivative(at, h):
    """g'(0) by the fourth-order central stencil, from g = ``at``."""
    return (8.0 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12.0 * h)


def _check_step(eps) -> float:
    """The finite-difference step: one finite positive number (not the reparameterization noise)."""
    if np.ndim(eps) != 0 or isinstance(eps, (bool, str, bytes)):
        raise TypeError(f"eps is the finite-difference step, a small positive number (default 1e-6), got "
                        f"{type(eps).__name__}{' of shape ' + str(np.shape(eps)) if np.ndim(eps) else ''}; "
                        "check_model takes fixed reparameterization noise as eps_noise=")
    try:
        step = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"eps is the finite-difference step, a small positive number (default 1e-6), got {eps!r}") from None
    if not (step > 0 and math.isfinite(step)):
        raise ValueError(f"eps is the finite-difference step and must be a finite positive number (default 1e-6), got {eps!r}")
    return step


def _is_float64(array) -> bool:
    """float64 in either byte order: a big-endian array is perturbed in place all the same."""
    dtype = getattr(array, "dtype", None)
    return dtype is not None and dtype.kind == "f" and dtype.itemsize == 8


def numeric_gradient(fn, array, eps: float = 1e-6):
    """d fn() / d array, element by element, by the fourth-order central stencil.

    ``array`` is perturbed in place (and restored), element by element through its own
    indices, so a transposed or strided view is perturbed where ``fn`` reads it; ``eps`` is
    the step h. Returns a float64 NumPy array of its shape.
    """
    eps = _check_step(eps)
    if not _is_float64(array):  # steps of 1e-6 truncate to 0 in an int array, round in float32
        raise TypeError(f"numeric_gradient perturbs array in place by steps of eps, so it must be a float64 array, "
                        f"got {getattr(array, 'dtype', type(array).__name__)}")
    _check_writable(array, "array")
    numeric = np.empty(tuple(array.shape))
    for index in np.ndindex(*array.shape):
        numeric[index] = _partial(fn, array, index, eps)
    return numeric


def _partial(fn, array, index, eps) -> float:
    """d fn() / d array[index] by the fourth-order stencil; array[index] is restored."""
    saved = float(array[index])

    def at(t):
        array[index] = saved + t
        return float(fn())

    try:
        return _derivative(at, eps)
    finally:
        array[index] = saved


def _sampled_error(fn, array, grad, samples, eps, floor, rng) -> float:
    """The full mode's error over the ``samples`` elements of largest |grad| and ``samples``
    random others (all elements of a small tensor), against the whole tensor's max |grad|."""
    size = grad.size
    if size == 0:
        return 0.0
    magnitude = np.abs(grad).reshape(-1)
    if size <= 2 * samples:
        chosen = np.arange(size)
    else:
        largest = np.argpartition(magnitude, size - samples)[size - samples:]
        others = np.setdiff1d(np.arange(size), largest, assume_unique=True)
        chosen = np.concatenate([largest, rng.choice(others, samples, replace=False)])
    numeric = np.array([_partial(fn, array, np.unravel_index(int(i), grad.shape), eps) for i in chosen])
    # the whole tensor's max |grad| joins the floor: the denominator is then the full mode's
    return _relative_error(grad.reshape(-1)[chosen], numeric, max(floor, float(magnitude.max())))


_KINK_PROBE_ABOVE = 1e-7  # a tensor's error above which the check looks for a kink (a tenth of the usual tolerance)
_KINK_JUMP = 1e-5         # a jump in slope, relative to the gradient's scale, that a smooth f does not show at h = 1e-6


def _random_line(fn, array, saved, rng):
    """(g, v): a random unit vector v of ``array``'s shape and g(t) = f(saved + t·v), which
    leaves ``array`` at saved + t·v (the caller puts ``saved`` back)."""
    v = rng.standard_normal(array.size)
    v /= max(np.linalg.norm(v), _TINY)
    v_dev = array_module(array).asarray(v.reshape(tuple(array.shape)))

    def at(t):
        array[...] = saved + t * v_dev
        return float(fn())

    return at, v


def _kink_jump(fn, array, scale, eps, rng):
    """The jump in slope of f along a random unit vector at θ, relative to ``scale``, if f has
    a kink there (the same jump at steps h and 2h), else None. ``array`` is restored."""
    saved = array.copy()
    at, _ = _random_line(fn, array, saved, rng)
    try:
        middle = at(0.0)
        jumps = [(at(step) - 2.0 * middle + at(-step)) / step / scale for step in (eps, 2.0 * eps)]
    finally:
        array[...] = saved
    near, far = jumps
    if abs(near) > _KINK_JUMP and abs(far - near) <= 0.25 * abs(near):  # a smooth f gives far = 2·near
        return abs(near)
    return None


def _check_writable(array, name):
    """A read-only array cannot be perturbed; say so rather than let NumPy's error name nothing."""
    flags = getattr(array, "flags", None)
    if flags is not None and not getattr(flags, "writeable", True):
        raise ValueError(f"{name} is read-only, but the gradient check perturbs it in place: pass a writable array")


def _host(a):
    xp = array_module(a)
    return xp.asnumpy(a) if xp is not np else np.asarray(a)


def gradcheck(fn, wrt: dict, analytic: dict, *, eps: float = 1e-6, mode: str = "full", directions: int = 3, samples: int = 16,
              seed: int = 0, title: str = "") -> GradcheckResult:
    """Compare ``analytic[name]`` with the numeric gradient of ``fn()`` w.r.t. ``wrt[name]``.

    ``fn`` takes no arguments and returns a float computed from the arrays in ``wrt``, which
    are perturbed *in place* (so they may be parameter views of a model). Arrays must be
    float64. ``eps`` is the finite-difference step h. ``mode`` is "full" (every element),
    "directional" (``directions`` random directions) or "sampled" (2·``samples`` elements of
    each array; see the module's docstring). Returns a GradcheckResult of per-name max-norm
    relative errors.
    """
    eps = _check_step(eps)
    if not is_choice(mode, ("full", "directional", "sampled")):
        raise ValueError(f"mode must be 'full', 'directional' or 'sampled', got {mode!r}")
    directions = check_int("directions", directions, 1)  # 0 directions would compare nothing and pass
    samples = check_int("samples", samples, 1)
    rng = np.random.default_rng(check_seed(seed))
    if not wrt:  # as with 0 directions: a check of nothing would pass
        raise ValueError("gradcheck needs at least one array in wrt to check; got none")
    floor = 1e-3 * max(1.0, abs(float(fn())))
    errors, kinks = {}, {}
    kink_rng = np.random.default_rng([check_seed(seed), 1])  # its own stream: the checks' draws stay as they were
    for name, array in wrt.items():
        if not _is_float64(array):
            raise TypeError(f"gradcheck needs float64 arrays for a meaningful check; {name!r} is {array.dtype}")
        if name not in analytic or analytic[name] is None:
            raise ValueError(f"no analytic gradient given for {name!r}")
        grad = _host(analytic[name]).astype(np.float64)
        if grad.shape != tuple(array.shape):
            raise ValueError(f"analytic gradient of {name!r} has shape {grad.shape}, expected {tuple(array.shape)}")
        _check_writable(array, f"wrt[{name!r}]")
        # perturbed through the array itself, never through reshape(-1): for a non-contiguous
        # view that is a copy, fn would never see the change, and every numeric gradient is 0
        if mode == "full":
            errors[name] = _relative_error(grad.reshape(-1), numeric_gradient(fn, array, eps).reshape(-1), floor)
        elif mode == "sampled":
            errors[name] = _sampled_error(fn, array, grad, samples, eps, floor, rng)
        else:
            saved = array.copy()
            per_direction = []
            norm = max(float(np.linalg.norm(grad)), floor)
            for _ in range(directions):
                at, v = _random_line(fn, array, saved, rng)
                numeric = _derivative(at, eps)
                array[...] = saved
                per_direction.append(abs(float(grad.reshape(-1) @ v) - numeric) / norm)
            errors[name] = float(np.max(per_direction))  # NaN if any is (max(0.0, nan) is 0.0)
        if errors[name] > _KINK_PROBE_ABOVE:
            jump = _kink_jump(fn, array, max(float(np.linalg.norm(grad)), floor), eps, kink_rng)
            if jump is not None:
                kinks[name] = jump
    return GradcheckResult(errors, mode, title, kinks)


def _parameters(layer):
    """(key, value, grads dict, name) of every parameter of ``layer`` and its sub-layers."""
    for path, module in layer.named_modules():
        for name, value in module.params.items():
            yield (f"{path}.{name}" if path else name), value, module.grads, name


def check_layer(layer, x, *, seed: int = 0, eps: float = 1e-6, mode: str = "full", check_input: bool = True) -> GradcheckResult:
    """Check a built float64 layer: f(x, θ) = Σ forward(x) ⊙ R for a fixed random R.

    Its gradient is exactly what ``backward(R)`` returns (dx) and writes (parameter grads).
    The gradients are filled with NaN before each backward pass, so a layer that adds to them
    instead of overwriting them fails (training never zeroes them). The parameter gradients
    of ``backward(R, input_grad=False)``, the pass a model's first layer takes, are held to
    those of ``input_grad=True`` and reported as "<name> (input_grad=False)".
    """
    if getattr(layer, "backend", None) is None:
        raise RuntimeError(f"check_layer needs a built layer: call {type(layer).__name__}(...).build(dtype='float64') first")
    if layer.backend.dtype != np.float64:  # a parameter-free layer's float32 pass failed a correct layer
        raise TypeError(f"check_layer needs a layer built with dtype='float64', got {layer.backend.dtype}: "
                        f"{type(layer).__name__}(...).build(dtype='float64')")
    xp = layer.backend.xp
    x = xp.array(x, dtype=np.float64)
    if x.size == 0:  # every gradient would be empty, and any layer would pass
        raise ValueError(f"check_layer needs a non-empty batch, got x of shape {tuple(x.shape)}")
    parameters = list(_parameters(layer))

    def backward(upstream, input_grad):
        for _, _, grads, name in parameters:
            grads[name][...] = np.nan
        return layer.backward(upstream, input_grad=input_grad)

    y = layer.forward(x)
    upstream = xp.asarray(np.random.default_rng(check_seed(seed)).standard_normal(tuple(y.shape)))
    dx = backward(upstream, True)
    wrt, analytic = {}, {}
    if check_input:
        wrt["x"], analytic["x"] = x, dx.copy()
    for key, value, grads, name in parameters:
        wrt[key], analytic[key] = value, grads[name].copy()
    if not wrt:
        raise ValueError(f"{type(layer).__name__} has no parameters, and check_input=False leaves nothing to check")
    backward(upstream, False)
    floor = 1e-3 * max(1.0, abs(float((y * upstream).sum())))
    without_dx = {f"{key} (input_grad=False)": _relative_error(_host(grads[name]).reshape(-1), _host(analytic[key]).reshape(-1), floor)
                  for key, _, grads, name in parameters}

    def f():
        return float((layer.forward(x) * upstream).sum())

    result = gradcheck(f, wrt, analytic, eps=eps, mode=mode, seed=seed, title=repr(layer).split("\n")[0])
    result.errors.update(without_dx)
    return result


def check_loss(loss_fn, inputs: dict, *, grad_names=None, eps: float = 1e-6, mode: str = "full", seed: int = 0) -> GradcheckResult:
    """Check a loss in the ``(per_example, *grads)`` convention: f = per_example.mean().

    ``inputs`` are keyword arguments of ``loss_fn``; ``grad_names`` names the inputs that the
    returned gradients belong to, in order (default: all inputs, in order). A gradient of
    None (e.g. a fixed variance) is skipped.
    """
    names = list(grad_names) if grad_names is not None else list(inputs)
    result = loss_fn(**inputs)
    grads = result[1:]
    if len(grads) != len(names):
        raise ValueError(f"{getattr(loss_fn, '__name__', 'loss')} returned {len(grads)} gradients for {len(names)} names")
    wrt = {n: inputs[n] for n, g in zip(names, grads) if g is not None}
    analytic = {n: g.copy() for n, g in zip(names, grads) if g is not None}

    def f():
        return float(loss_fn(**inputs)[0].mean())

    return gradcheck(f, wrt, analytic, eps=eps, mode=mode, seed=seed, title=getattr(loss_fn, "__name__", "loss"))


def check_model(model, *batch, eps_noise=None, eps: float = 1e-6, mode: str = "full", directions: int = 3,
                samples: int = 16, seed: int = 0) -> GradcheckResult:
    """Check a float64 model's whole objective as a function of all its parameters.

    The reparameterization noise is held fixed (``eps_noise``, drawn from ``seed`` if not
    given), so encoder → sampling → decoder → loss is one deterministic function of θ.
    ``batch`` is what ``model.loss_and_grads`` takes before its noise (x, or x and labels);
    the gradients are filled with NaN first, so every one must be written, not added to;
    ``eps`` here is the finite-difference step h, as in ``gradcheck``. For the VAEs (every model with ``loss_and_grads``); an AAE's three phases are checked
    with ``gradcheck`` over ``model.phase_loss`` (see tests/test_aae.py).
    """
    if not hasattr(model, "loss_and_grads"):
        raise TypeError(f"check_model checks a VAE's objective (a model with loss_and_grads); {type(model).__name__} "
                        "has none: check its phases with gradcheck over model.phase_loss")
    _check_step(eps)  # before any work: an array here is most likely noise meant for eps_noise
    check_int("directions", directions, 1)
    check_int("samples", samples, 1)
    if model.backend.dtype != np.float64:
        raise TypeError("check_model needs a model built with dtype='float64'")
    if eps_noise is None:
        eps_noise = model.fixed_noise(*batch, seed=seed)
    model.flat.grad[...] = np.nan  # a layer that adds to its gradients, not overwrites them, fails
    model.loss_and_grads(*batch, eps=eps_noise)
    wrt, analytic = {}, {}
    for name, value, grad in model.flat.named():
        wrt[name], analytic[name] = value, grad.copy()

    def f():
        return model.loss(*batch, eps=eps_noise).loss

    return gradcheck(f, wrt, analytic, eps=eps, mode=mode, directions=directions, samples=samples, seed=seed,
                     title=type(model).__name__)
