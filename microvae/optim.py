"""Optimizers that update a whole model's flat parameter buffer in one pass."""

from __future__ import annotations

import inspect
import math

import numpy as np

from .checks import check_number, is_choice
from .kernels.reference import adam_bias_corrected_rates
from .params import FlatParameters

__all__ = ["SGD", "Adam", "clip_grad_norm", "get_optimizer"]


def clip_grad_norm(grad, max_norm: float) -> float:
    """Scale ``grad`` (a float array) in place so its global L2 norm is at most ``max_norm`` (> 0); return the norm before.

    The norm and the scaling are taken in float64; the scaled entries are rounded in grad's dtype, so a clipped
    float32 gradient's norm may exceed max_norm by a few parts in 1e8.

    A gradient holding Inf or NaN has no finite scale, so it is left as it is (scaling by
    max_norm/Inf = 0 would turn its Inf entries into NaN and silently zero the rest) and its
    norm, Inf or NaN, is returned for the caller to see. A float64 gradient whose squares
    overflow or underflow (entries beyond ~1e154 or all below ~1e-140) is measured in units of
    its largest entry, so its norm keeps float64's precision and it is clipped like any other.
    """
    if getattr(getattr(grad, "dtype", None), "kind", None) != "f":  # a list has no .size; an integer array would round
        raise TypeError(f"grad must be a NumPy or CuPy array of floats (it is scaled in place), got {_described(grad)}")
    if not (check_number("max_norm", max_norm, "a positive number") > 0 and math.isfinite(max_norm)):
        raise ValueError(f"max_norm must be a positive number, got {max_norm!r}")
    if not grad.size:
        return 0.0
    wide = grad.astype("float64")
    with np.errstate(over="ignore", under="ignore"):  # out-of-range squares are handled below
        squares = float((wide ** 2).sum())
    norm = math.sqrt(squares)
    if not 1e-280 < squares < math.inf:  # 0, NaN, Inf, or squares that left float64's range
        largest = float(abs(wide).max())  # NaN or Inf when an entry is
        if 0.0 < largest < math.inf:
            norm = largest * math.sqrt(float(((wide / largest) ** 2).sum()))
    if max_norm < norm < math.inf:
        # norm > max_norm > 0: no guard term in the division (norm + 1e-12 over-clipped small
        # norms, by 2e-6 of the bound at a norm of 5e-7). Scaled in float64, each entry rounded
        # once: a scale below float32's normal range (huge gradient, small bound) would keep
        # few digits as a float32, or round to 0 and zero the gradient.
        wide *= max_norm / norm
        grad[...] = wide
    return norm


def _described(value) -> str:
    """``value`` by its type, and an array's dtype (a repr may be huge)."""
    if value is None:
        return "None"
    dtype = getattr(value, "dtype", None)
    return f"{type(value).__name__} of dtype {dtype}" if dtype is not None else type(value).__name__


def _learning_rate(lr) -> float:
    if not (check_number("lr", lr, "a positive number (the learning rate)") > 0 and math.isfinite(lr)):
        raise ValueError(f"learning rate must be a positive number, got lr={lr!r}")
    return float(lr)


def _clip_norm(clip_norm):
    if clip_norm is not None and not (check_number("clip_norm", clip_norm, "a positive number or None") > 0
                                      and math.isfinite(clip_norm)):
        raise ValueError(f"clip_norm must be a positive finite number or None, got {clip_norm!r}")
    return clip_norm


def _unit_interval(name: str):
    def check(value) -> float:
        if not 0 <= check_number(name, value, "a number in [0, 1)") < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
        return float(value)
    return check


def _positive_finite(name: str):
    def check(value) -> float:
        if not (check_number(name, value, "a positive number") > 0 and math.isfinite(value)):  # eps = inf freezes every update
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        return float(value)
    return check


# Each setting's check, run by the constructors and by every later assignment: a schedule
# that sets optimizer.lr between epochs gets the constructor's refusal of lr = -1
_SETTING_CHECKS = {"lr": _learning_rate, "clip_norm": _clip_norm, "momentum": _unit_interval("momentum"),
                   "beta1": _unit_interval("beta1"), "beta2": _unit_interval("beta2"), "eps": _positive_finite("eps")}


class Optimizer:
    """Base of the optimizers: one update of the whole flat buffer per ``step()``, after an
    optional clip of the global gradient norm; ``t`` counts the steps taken.

    The settings (``lr``, ``clip_norm``; SGD's ``momentum``; Adam's ``beta1``, ``beta2``,
    ``eps``) may change between steps, as a learning-rate schedule in a callback changes
    ``lr``: each assignment is checked as the constructor checks it, and ``settings()``, which
    a model's ``optimizer_spec`` and its checkpoints read, gives the values in use. ``flat``,
    the buffer it updates, is fixed."""

    def __init__(self, flat, lr: float, clip_norm: float | None):
        if not isinstance(flat, FlatParameters):  # an array or None failed on a missing .backend
            raise TypeError(f"{type(self).__name__}: flat must be a model's flat parameter buffer (a FlatParameters, "
                            f"e.g. model.flat or a group of model.parameter_groups()), got {_described(flat)}")
        # clip_norm is checked here, not at the first step, so that fit refuses it before it becomes the run's setting
        self.lr, self.clip_norm = lr, clip_norm
        self.flat = flat
        self.kernels = flat.backend.kernels
        self.t = 0

    def __setattr__(self, name, value):
        check = _SETTING_CHECKS.get(name)
        if check is not None:
            value = check(value)
        elif name == "flat" and "flat" in self.__dict__ and value is not self.flat:
            raise AttributeError(f"{type(self).__name__}.flat is fixed: its moments belong to those parameters; make a new "
                                 f"optimizer for the other buffer")
        super().__setattr__(name, value)

    def __reduce_ex__(self, protocol):
        """It refuses copy and pickle, as a built model does: copy.copy shared the moments and
        the buffer it updates but not the step count ``t``, so a "snapshot" went on moving."""
        raise TypeError(f"an optimizer ({type(self).__name__}) cannot be copied or pickled: its state belongs to the "
                        f"parameters it updates. Keep it with model.save(path) (the optimizer is included) and "
                        f"microvae.load(path), or copy its arrays and step count: "
                        f"{{k: a.copy() for k, a in opt.state_arrays().items()}}, opt.t")

    def settings(self) -> tuple:
        """(lr, {option: value}) in use, the options as the constructor takes them."""
        return self.lr, {"clip_norm": self.clip_norm, **self._options()}

    def _options(self) -> dict:
        return {}

    def step(self) -> None:
        """Clip the gradient (if ``clip_norm``), count the step and update every parameter."""
        if self.flat.replaced:
            raise RuntimeError(f"{type(self).__name__}.step: the layer these parameters belong to was built again, and its "
                               "parameters now live in a new buffer that this optimizer does not update; make a new "
                               "optimizer for layer.flat")
        if self.clip_norm is not None:
            clip_grad_norm(self.flat.grad, self.clip_norm)
        self.t += 1
        self._update()

    def state_arrays(self) -> dict:
        """Arrays to checkpoint for exact resumption (besides ``t``)."""
        return {}


class SGD(Optimizer):
    """u ← μ·u + g, then θ ← θ − lr·u  (heavy-ball momentum μ; μ = 0 is plain SGD).

    ``flat`` is the buffer it updates (``model.flat``, or a group of ``model.parameter_groups()``);
    ``lr`` the learning rate (default 1e-2); ``momentum`` is μ in [0, 1); ``clip_norm``, if
    given, first scales g down to that global L2 norm (as ``clip_grad_norm``)."""

    def __init__(self, flat, lr: float = 1e-2, momentum: float = 0.0, clip_norm: float | None = None):
        super().__init__(flat, lr, clip_norm)
        self.momentum = momentum
        self.velocity = flat.backend.zeros(flat.size)

    def _options(self):
        return {"momentum": self.momentum}

    def _update(self):
        self.kernels.sgd_update(self.flat.data, self.flat.grad, self.velocity, self.lr, self.momentum)

    def state_arrays(self):
        return {"velocity": self.velocity}


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba, 2015):

        m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²,   θ ← θ − lr·m̂/(√v̂ + ε)
        m̂ = m/(1−β₁ᵗ),  v̂ = v/(1−β₂ᵗ)

    One fused kernel pass over the flat buffers per step. ``flat`` is the buffer it updates
    (``model.flat``, or a group of ``model.parameter_groups()``); ``lr`` the learning rate
    (default 1e-3); ``betas`` is the pair (β₁, β₂), each in [0, 1) (settable afterwards as
    ``beta1`` and ``beta2``); ``eps`` is ε, which keeps the step finite where v̂ is 0;
    ``clip_norm``, if given, first scales g down to that global L2 norm (as ``clip_grad_norm``).
    """

    def __init__(self, flat, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, clip_norm: float | None = None):
        super().__init__(flat, lr, clip_norm)
        # an ordered pair: a set or a dict would give its two betas in an order of its own
        if not isinstance(betas, (tuple, list, np.ndarray)) or np.ndim(betas) != 1 or len(betas) != 2:  # (a 0-d array has no len)
            raise TypeError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1), got {betas!r}")
        b1, b2 = (check_number("betas", b, "a pair (beta1, beta2) of numbers in [0, 1)") for b in betas)
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.beta1, self.beta2, self.eps = b1, b2, eps
        self.m = flat.backend.zeros(flat.size)
        self.v = flat.backend.zeros(flat.size)

    def _options(self):
        return {"betas": (self.beta1, self.beta2), "eps": self.eps}

    def _update(self):
        lr_t, eps_t = adam_bias_corrected_rates(self.lr, self.beta1, self.beta2, self.eps, self.t)
        self.kernels.adam_update(self.flat.data, self.flat.grad, self.m, self.v, self.beta1, self.beta2, lr_t, eps_t)

    def state_arrays(self):
        return {"m": self.m, "v": self.v}


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def get_optimizer(name_or_optimizer, flat, lr: float, **kwargs) -> Optimizer:
    """A new Adam or SGD on ``flat`` with ``lr`` and options, for 'adam' or 'sgd'; an
    Optimizer is returned as is (it keeps its own buffer, lr and options)."""
    if isinstance(name_or_optimizer, Optimizer):
        return name_or_optimizer
    if name_or_optimizer == "adam":
        return Adam(flat, lr=lr, **kwargs)
    if name_or_optimizer == "sgd":
        return SGD(flat, lr=lr, **kwargs)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name_or_optimizer!r}")


def run_settings(name, options: dict) -> tuple:
    """``options`` as the sorted, hashable key that tells whether fit continues a run: values
    as plain Python (a NumPy scalar as a number; a list, tuple or 1-D array as a tuple), and
    an option at the named optimizer's own default left out, since it changes nothing. So
    ``fit()``, ``fit(clip_norm=None)`` and a checkpoint's JSON lists all name the same run."""
    defaults = _options_of(name) if isinstance(name, str) else {}
    settings = []
    for key, value in options.items():
        value = _hashable(value)
        if key in defaults and _equal(value, defaults[key]):
            continue
        settings.append((key, value))
    return tuple(sorted(settings))


def _options_of(name: str) -> dict:
    """{option: default} of the named optimizer's constructor, beyond the buffer and lr ({} for
    an unknown name: get_optimizer names the valid choices)."""
    if not is_choice(name, OPTIMIZERS):
        return {}
    parameters = inspect.signature(OPTIMIZERS[name].__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.name not in ("self", "flat", "lr")}


def _hashable(value):
    if isinstance(value, np.ndarray) and value.ndim <= 1:
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # an odd value the optimizer will refuse anyway
        return False


def check_option_names(name: str, options: dict) -> None:
    """Refuse keywords that neither fit nor the named optimizer takes (fit hands its extra
    keywords to the optimizer, whose own error would not say where they came from)."""
    accepted = list(_options_of(name))
    if not accepted:
        return  # an unknown name: get_optimizer names the valid choices
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        hint = ""
        if {"labels", "mask", "y"} & set(unknown):
            hint = "; labels (CVAE, AAE) and a sequence model's mask are fit's second argument: fit(x, labels) or fit(x, mask)"
        raise TypeError(f"fit() got unexpected keyword argument(s) {', '.join(unknown)}: fit passes its extra keywords to "
                        f"the optimizer, and {name!r} takes {', '.join(accepted)}{hint}")
