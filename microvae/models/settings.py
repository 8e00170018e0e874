"""Training settings that a model's objective reads at every step: β, its warm-up, the capacity
target, the likelihood, the VRAE's input dropout, the AAE's mixture prior.

They may change between steps (a KL-annealing callback sets ``model.beta`` each epoch). So
every assignment is checked as the constructor checks the argument, and written into
``model.config``: a checkpoint then stores the value in use, and a run resumed from it
continues with that value. (Before, the config kept the constructor's value, so a resumed
annealing run went back to its first β without a word.)

A setting that a model takes no constructor argument for (the VRAE's ``capacity``) keeps the
value it was built with: assigning one is refused, as its checkpoints could not store it.
"""

from __future__ import annotations

import math

from ..checks import check_int, check_number, is_built_in
from ..likelihoods import get_likelihood

__all__ = ["ModelConfig", "Setting", "Fixed", "beta", "warmup", "capacity", "capacity_warmup", "likelihood", "input_dropout", "positive"]


class ModelConfig(dict):
    """``model.config``: the constructor's arguments with the training settings in use, as JSON
    values; what a checkpoint stores and ``load`` rebuilds from. Read-only, its lists and dicts
    too: ``config["beta"] = 4`` was saved (and loaded back as β = 4) while the live model went
    on with its own β, and ``config["latent_dim"] = 3`` or ``config["hidden"].append(64)``
    wrote a checkpoint that would not load. Settings are set on the model (``model.beta = 4``,
    written here); an architecture is a new model (``VAE(**{**model.config, "latent_dim": 3})``).
    ``copy()``, ``copy.deepcopy`` and pickle give plain, writable dicts and lists all the way
    down; ``dict(...)`` and ``{**...}`` copy the top level only. (``yaml.safe_dump`` takes exact
    dicts and lists only: give it ``model.config.copy()``.)"""

    def __init__(self, config=(), model_class=None):
        super().__init__({key: _read_only(value) for key, value in dict(config).items()})
        self.model_class = model_class  # for the refusals' advice

    _READ_ONLY = "model.config is read-only: it records the model as built and the settings in use, which checkpoints store"

    def __setitem__(self, key, value):
        if key not in self:
            raise TypeError(f"{self._READ_ONLY}; {self._kind} takes no {key!r} option (its config holds "
                            f"{', '.join(map(str, self))})")
        if isinstance(getattr(self.model_class, key, None), Setting):
            raise TypeError(f"{self._READ_ONLY}; set {key} on the model: model.{key} = ... (checked, and written here)")
        raise TypeError(f"{self._READ_ONLY}; {key!r} is not a setting to change on a live model: make a new model from "
                        f"a copy: {self._kind}(**{{**model.config, {key!r}: ...}})")

    def _refuse(self, *args, **kwargs):
        """Refused: ``model.config`` is read-only (see the class docstring)."""
        raise TypeError(f"{self._READ_ONLY}; a training setting is set on the model (model.<setting> = ...), and a copy "
                        f"makes a new model: {self._kind}(**{{**model.config, key: ...}})")

    @property
    def _kind(self) -> str:
        return getattr(self.model_class, "__name__", "ModelClass")

    __delitem__ = update = setdefault = pop = popitem = clear = __ior__ = _refuse

    def copy(self) -> dict:
        """A plain, writable copy of the same entries, nested lists and dicts included."""
        return _writable(self)

    def __reduce__(self):  # copy.copy, copy.deepcopy and pickle make plain dicts and lists
        return dict, (_writable(self),)


def _refuse_nested(self, *args, **kwargs):
    raise TypeError("model.config is read-only, its lists and dicts too (a checkpoint stores them, and the layers "
                    "were built from them); edit a copy for a new model: config = model.config.copy(), then "
                    "type(model)(**config)")


class _ReadOnlyList(list):
    """A list inside ``model.config`` (``hidden``, ``input_shape``, a layer spec's ``layers``)."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse_nested
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse_nested

    def __reduce__(self):
        return list, (_writable(self),)


class _ReadOnlyDict(dict):
    """A dict inside ``model.config`` (a network's layer spec)."""

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = __ior__ = _refuse_nested

    def __reduce__(self):
        return dict, (_writable(self),)


def _read_only(value):
    """``value`` with its lists and dicts, at any depth, made read-only."""
    if isinstance(value, list):
        return _ReadOnlyList(_read_only(item) for item in value)
    if type(value) is tuple:
        return tuple(_read_only(item) for item in value)
    if isinstance(value, dict):
        return _ReadOnlyDict({key: _read_only(item) for key, item in value.items()})
    return value


def _writable(value):
    """A plain copy of ``value``'s lists and dicts, at any depth."""
    if isinstance(value, list):
        return [_writable(item) for item in value]
    if type(value) is tuple:
        return tuple(_writable(item) for item in value)
    if isinstance(value, dict):
        return {key: _writable(item) for key, item in value.items()}
    return value


class _Attribute:
    """A model attribute kept in the instance's ``__dict__`` under its own name; subclasses
    decide what an assignment may do."""

    def __set_name__(self, owner, name):
        self.name, self.owner = name, owner

    def __get__(self, model, owner=None):
        if model is None:
            return self
        try:
            return model.__dict__[self.name]
        except KeyError:
            raise AttributeError(f"{type(model).__name__} has no {self.name!r}") from None  # (or not yet, mid-constructor)


class Setting(_Attribute):
    """A model attribute whose every assignment goes through ``check(model, value)``, which
    returns (the value to keep, its JSON form for ``model.config``) or raises."""

    def __init__(self, check):
        self.check = check

    def __set__(self, model, value):
        config = model.__dict__.get("config")  # None while the constructor runs
        if config is not None and self.name not in config:
            if not is_built_in(self.owner):  # declared by a class of one's own
                raise AttributeError(f"{type(model).__name__}.{self.name} is a Setting, written into model.config, which "
                                     f"holds no {self.name!r} yet: add it first (self.config = {{**self.config, "
                                     f"{self.name!r}: ...}}), then assign self.{self.name}")
            raise AttributeError(f"{type(model).__name__} takes no {self.name!r} option and keeps "
                                 f"{self.name}={model.__dict__.get(self.name)!r}: its checkpoints could not store another")
        kept, stored = self.check(model, value)
        model.__dict__[self.name] = kept
        if config is not None:
            dict.__setitem__(config, self.name, _read_only(stored))  # (read-only to everyone else: ModelConfig)


class Fixed(_Attribute):
    """A structural attribute (a size, an architecture choice), set once by the constructor. The
    layers were built from it, so a later assignment would describe another network than the
    one the model holds (``model.latent_dim = 5`` was taken, and then each method's error
    contradicted the next); it is refused, saying how to make the other model."""

    def __set__(self, model, value):
        if self.name in model.__dict__:
            kind = type(model).__name__
            if self.name in (model.__dict__.get("config") or {}):
                how = f"make a new model from its config: {kind}(**{{**model.config, {self.name!r}: ...}})"
            else:
                how = f"it follows from the constructor's arguments: make a new {kind} (see model.config)"
            raise AttributeError(f"{kind}.{self.name} is fixed once the model is built (its layers were made from it); {how}")
        model.__dict__[self.name] = value


def beta(model, value):
    """β, the KL term's weight: a finite number >= 0."""
    value = check_number("beta", value, "a finite number >= 0")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"beta must be a finite number >= 0, got {value}")
    return value, value


def warmup(name: str):
    """A warm-up length in steps (an int >= 0)."""

    def check(model, value):
        value = check_int(name, value, 0)
        return value, value

    return check


def capacity(model, value):
    """The capacity target C in nats, or None; not None while a capacity warm-up is set."""
    if value is None:
        ramp = model.__dict__.get("capacity_warmup", 0)
        if ramp:
            raise ValueError(f"capacity=None would leave capacity_warmup={ramp} ramping up nothing; "
                             "set capacity_warmup to 0 first")
        return None, None
    # a float: a NumPy scalar kept in the config would fail json.dumps(model.config)
    value = check_number("capacity", value, "a number >= 0 (nats) or None")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"capacity must be >= 0 nats or None, got {value}")
    return value, value


def capacity_warmup(model, value):
    """The capacity target's warm-up in steps (an int >= 0); 0 unless there is a target."""
    value = check_int("capacity_warmup", value, 0)
    if value and model.__dict__.get("capacity") is None:  # it would ramp up nothing, silently
        raise ValueError(f"capacity_warmup={value} ramps up a capacity target, but capacity is None; "
                         "give capacity=C (nats) too, or leave capacity_warmup at 0")
    return value, value


def likelihood(model, value):
    """A likelihood spec or object (``get_likelihood``), in the model's own wrapping
    (``model._wrap_likelihood``). Once the decoder is built, a new one must be of the same
    kind, with the same outputs per data value: the decoder's width is fixed, and fit
    checked the data against the old one (Bernoulli data must lie in [0, 1])."""
    new = model._wrap_likelihood(get_likelihood(getattr(value, "base", value)))
    old = model.__dict__.get("likelihood")
    if old is not None:
        old_kind, new_kind = type(getattr(old, "base", old)), type(getattr(new, "base", new))
        if new_kind is not old_kind or new.output_dim(1) != old.output_dim(1):
            raise ValueError(f"{type(model).__name__}.likelihood can change only to another of the same kind with the same "
                             f"decoder outputs (the decoder is built for {old.config()!r}), got {new.config()!r}; "
                             "build a new model for another likelihood")
    return new, new.config()


def input_dropout(model, value):
    """The VRAEs' input dropout probability, in [0, 1)."""
    value = check_number("input_dropout", value, "a number in [0, 1)")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"input_dropout must be in [0, 1), got {value}")
    return value, value


def positive(name: str):
    """A positive, finite number (the AAE's mixture radius and spread)."""

    def check(model, value):
        value = check_number(name, value, "a positive number")
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive, finite number, got {value}")
        return value, value

    return check
