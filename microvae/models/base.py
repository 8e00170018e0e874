"""What every microvae model shares: backend, flat parameters, input checks, fit/evaluate/save."""

from __future__ import annotations

import contextlib
import math
import reprlib
from typing import NamedTuple

import numpy as np

from ..backend import Backend, array_module, get_backend
from ..checks import as_array, check_int, check_seed, is_built_in
from ..layers.base import Module, layer_to_spec, repeated_module
from ..optim import get_optimizer, run_settings
from ..params import FlatParameters
from ..threads import parallel_chunks
from .settings import Fixed, ModelConfig, Setting

DEFAULT_LR = 1e-3  # fit's learning rate for a named optimizer ('adam' or 'sgd') when lr is left out

MODEL_TYPES: dict = {}


def _layer_configs(modules) -> dict:
    """{path: layer spec} of the leaf layers among ``(path, module)`` pairs whose config comes
    from a built-in class's ``get_config`` (a subclass of Dense that keeps Dense's included): a
    layer of one's own may have no config, or one that does not compare with ==."""
    return {path: layer_to_spec(module) for path, module in modules
            if not module.children() and is_built_in(next(cls for cls in type(module).__mro__ if "get_config" in vars(cls)))}


def _same_modules(built, now) -> bool:
    return len(built) == len(now) and all(a[0] == b[0] and a[1] is b[1] for a, b in zip(built, now))


def _composed_by_library(modules, other) -> tuple:
    """``(path, module)`` pairs less the parameter-free modules inside a module of one's own
    that have no counterpart at their path in ``other`` (a layer that makes its Tanh on its
    first call): such a module holds nothing of ``model.flat``, and checkpoints rebuild its
    parent from the parent's own config. One at a path on both sides stays, so another object
    put in its place is still a changed network."""
    by_path, other_paths = dict(modules), {path for path, _ in other}
    return tuple((path, module) for path, module in modules
                 if not path or path in other_paths or module.parameter_specs()
                 or is_built_in(type(by_path[path.rpartition(".")[0]])))


class LossTerms(NamedTuple):
    """Batch-mean loss and its parts, in nats per example (Python floats)."""

    loss: float
    recon: float
    kl: float


def _as_lists(value):
    """``value`` with its tuples as lists, at any depth: how a config's JSON form compares."""
    if isinstance(value, (list, tuple)):
        return [_as_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_lists(item) for key, item in value.items()}
    return value


def _run_of(key, optimizer) -> tuple:
    """(lr, run_settings) of an optimizer in use: what fit compares to tell one run from another."""
    lr, options = optimizer.settings()
    return float(lr), run_settings(key, options)


class Model(Module):
    """Base class of the models. Subclasses build their parts, then call ``_setup``.

    A subclass provides ``_prepare_data(*arrays)`` (check a dataset once, move it to the
    device) and ``_objective(*batch, eps=..., compute_grads=...)``; models with several networks
    also override ``parameter_groups`` (one optimizer each, made by ``_get_optimizers``) and
    ``_train_batch``.

    Every model takes ``backend`` ("numpy", "cupy", None for ``$MICROVAE_BACKEND``, or a
    ``Backend``), ``dtype`` and ``seed`` (initial parameters and the model's generator). A
    ``Backend`` object brings its own dtype and generator, so the model's ``dtype`` and
    ``seed`` are then not used (a bad one is still refused): ``config`` records the backend's
    dtype and seed=None (the parameters came from the backend's generator as it stood, not
    from a seed).

    A subclass with constructor arguments of its own adds them to ``self.config`` in its
    ``__init__``, after ``super().__init__`` (``self.config = {**self.config, "gamma": gamma}``),
    so that ``load`` rebuilds it. A setting of its own that may change on a live model is best
    declared on the class as ``gamma = microvae.models.settings.Setting(check)``,
    ``check(model, value)`` returning (the value to keep, its JSON form); the key goes into
    ``self.config`` first, then ``self.gamma = gamma`` is assigned: each assignment is then
    checked and written into ``config``, and checkpoints store the value in use. A plain
    attribute is the subclass's to manage. Once built, the networks, ``backend``, ``flat``, the
    sizes, ``dtype``, ``seed`` and ``fuse_relu`` are fixed (``_refused_assignment``), and a
    config assigned whole that gives a setting or a size another value than the model's own is
    refused by ``save`` (``_config_out_of_step``).
    """

    metric_names = ("loss", "recon", "kl")  # what _train_batch and _evaluate_arrays report: the history's keys

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # load() finds a checkpoint's class by name. A class of one's own named as a built-in
        # one (ConvVAE) must not take the built-in's place: its checkpoints would no longer load.
        # (save() refuses to write a model that load would not rebuild as it is.)
        registered = MODEL_TYPES.get(cls.__name__)
        if registered is None or not is_built_in(registered) or is_built_in(cls):
            MODEL_TYPES[cls.__name__] = cls

    # Constructor options added after checkpoints were first written, each with the value that
    # rebuilds what a checkpoint written before it holds (e.g. {"fuse_relu": False}: separate
    # ReLU layers, and so the parameter names stored in that checkpoint).
    options_added_later: dict = {}

    def _wrap_likelihood(self, likelihood):
        """The likelihood as this model's objective uses it (the VRAEs wrap a per-step one)."""
        return likelihood

    def _repr_with_settings(self, text: str) -> str:
        """``text``, a repr ending in "parameters=..., backend=...)", with the constructor settings
        it does not show that differ from their defaults put in before "parameters=": the CLI
        prints this line, where a β warm-up or a capacity left out could not be confirmed."""
        import inspect
        import re

        try:
            parameters = inspect.signature(type(self)).parameters.items()
        except (TypeError, ValueError):
            return text
        defaults = {key: p.default for key, p in parameters if p.default is not inspect.Parameter.empty}
        extras = []
        for key, value in self.config.items():
            if key in ("dtype", "seed") or key not in defaults or isinstance(value, dict) or re.search(rf"[(, ]{key}=", text):
                continue  # (the backend shows dtype; a network given as a spec would fill the screen)
            default = defaults[key]
            if value == default or (isinstance(value, list) and isinstance(default, tuple) and tuple(value) == default):
                continue
            extras.append(f", {key}={value!r}")
        return text.replace(", parameters=", "".join(extras) + ", parameters=", 1)

    @classmethod
    def config_from_checkpoint(cls, config: dict) -> dict:
        """Constructor arguments for a checkpoint's stored config: where an option was added
        later (``options_added_later``), the value that rebuilds what older checkpoints hold."""
        return {**cls.options_added_later, **config}

    def _setup(self, backend, dtype, seed, config: dict):
        self.backend = get_backend(backend, dtype=dtype, seed=check_seed(seed))
        self.flat = FlatParameters(self, self.backend)
        self._built_modules = tuple(self.named_modules())  # (path, module) as built: see _check_layers_bound
        self._built_configs = _layer_configs(self._built_modules)
        if isinstance(backend, Backend):  # its dtype and generator, not the model's arguments (see the class doc)
            config = {**config, "dtype": self.backend.dtype.name, "seed": None}
        self.config = config  # JSON-friendly constructor arguments, for checkpoints
        self.step = 0  # optimizer steps taken; drives warm-up schedules
        self.info = None  # the checkpoint's info dict (see checkpoint.save), once loaded or saved with one
        self.epochs_trained = 0
        self.train_seed = None
        self.optimizers: dict = {}
        self._optimizer_key = None  # the optimizers' name, or id() of an Optimizer instance (see optimizer_spec)
        from ..training import History

        self.history = History()

    def build(self, backend=None, dtype="float32", seed=None):
        """Refused: a model builds its parameters when constructed. Building them again would give
        it a new buffer while its parameter groups, optimizers and config kept the old one (an
        AAE then trained nothing, and a VAE saved as float64 loaded as float32). ``backend``,
        ``dtype`` and ``seed`` are ``Module.build``'s, taken only to refuse them by name: they
        go to the model's constructor."""
        name = type(self).__name__
        raise TypeError(f"{name}.build() is for layers used on their own; a model builds its parameters when it is "
                        f"constructed: pass backend=, dtype= and seed= to {name}(...)")

    def __setattr__(self, name, value):
        # Once built (``_setup`` has stored the config), the parts the parameters were made from
        # stay: an assignment taken there would be silently ignored, or worse, a network put in
        # a child's place would run while the optimizer updated the old one's values.
        state = self.__dict__
        if name == "config":  # set by _setup, and by subclasses that add arguments of their own
            value = ModelConfig(value, type(self))
        elif name in ("step", "epochs_trained"):  # the warm-ups and the epochs' seeds read them: -50 trained at β < 0
            value = check_int(name, value, 0)
        elif ("config" in state and value is not state.get(name, self)  # (the same object again changes nothing)
              and (name in state["config"] or name in ("backend", "flat") or isinstance(state.get(name), Module))):
            refusal = self._refused_assignment(name)  # (the step counter and the caches skip this: a few per step)
            if refusal:
                raise AttributeError(refusal)
        super().__setattr__(name, value)

    def _refused_assignment(self, name: str) -> str | None:
        """Why ``model.<name> = ...`` is refused on a built model, or None when it may be set.

        Refused: a network of the built tree, ``backend``, ``flat``, and the config's ``dtype``,
        ``seed`` and ``fuse_relu``. The training settings and the ``Fixed`` sizes check
        themselves (``models/settings.py``), as does a property of a subclass; any other
        attribute, a subclass's own setting included, is the subclass's to manage (declared
        as a ``Setting``, its assignments are checked and written into ``model.config``)."""
        kind = type(self).__name__
        fixed = f"{kind}.{name} is fixed once the model is built"
        current = self.__dict__.get(name)
        if isinstance(current, Module) and any(module is current for _, module in self.__dict__["_built_modules"]):
            how = f"pass it to the constructor: {kind}(..., {name}=network)" if name in self.config else f"make a new {kind}"
            return (f"{fixed}: model.flat holds its parameters and the optimizers update them there, so a network put "
                    f"in its place would not train; {how}")
        if name == "backend":
            return f"{fixed} (its parameters live there); to move the model, save it and load it: microvae.load(path, backend=...)"
        if name == "flat":
            return f"{fixed} (the optimizers update it); model.flat.data[...] = values writes new values into it"
        if name not in self.config or hasattr(getattr(type(self), name, None), "__set__"):
            return None
        if name == "seed":
            return (f"{fixed}: config['seed'] is the seed its initial parameters were drawn with; fit(..., seed=n) seeds "
                    f"a training run's shuffling and noise, and model.backend.seed(n) reseeds the model's generator")
        if name == "dtype":
            return (f"{fixed} (its parameters are {self.backend.dtype.name} arrays: model.backend.dtype); make a new "
                    f"model from its config and copy the values: new = {kind}(**{{**model.config, 'dtype': ...}}); "
                    f"new.flat.data[...] = model.flat.data")
        if name == "fuse_relu":
            return (f"{fixed} (its layers were made from it); make a new model from its config: "
                    f"{kind}(**{{**model.config, {name!r}: ...}})")
        return None

    def _config_out_of_step(self) -> str:
        """Why ``model.config`` no longer describes the model ("" when it does). Assigning a
        setting writes it into the config, but a config assigned whole after the model was built
        (``model.config = {**model.config, "beta": 4}``) sets no setting and rebuilds no layer:
        checkpoints would store another β than the model ran with, or a size that no longer
        matches its parameters."""
        kind = type(self).__name__
        for key, stored in self.config.items():
            attribute = getattr(type(self), key, None)
            if not isinstance(attribute, (Setting, Fixed)) or key not in self.__dict__:
                continue
            live = self.__dict__[key]
            if isinstance(attribute, Setting):
                live = attribute.check(self, live)[1]
            if _as_lists(live) == _as_lists(stored):
                continue
            if isinstance(attribute, Setting):
                return (f"model.config holds {key}={stored!r}, but the model runs with {key}={live!r}: a config "
                        f"assigned whole (model.config = ...) sets no setting; set model.{key} = ... instead (checked, "
                        f"and written into model.config)")
            return (f"model.config holds {key}={stored!r}, but the model was built with {key}={live!r}: a config "
                    f"assigned whole (model.config = ...) rebuilds no layer, so load would build another model; make a "
                    f"new one from a copy: {kind}(**{{**model.config, {key!r}: ...}})")
        return ""

    def _check_layers_bound(self, configs: bool = True) -> None:
        """Refuse networks changed after the model was built: a layer put into, taken out of or
        moved within a Sequential's ``layers``. ``model.flat`` holds the values of the layers it
        was built with, so the optimizer would not update a new one, a checkpoint would rebuild
        the networks as built, and one layer object at two places mixes its two passes' caches.
        (A standalone Sequential is built again after such a change; a model cannot be.)"""
        built, now = self.__dict__["_built_modules"], tuple(self.named_modules())
        if not _same_modules(built, now):
            built, now = _composed_by_library(built, now), _composed_by_library(now, built)
        if _same_modules(built, now):
            if configs:
                self._check_layer_configs(now)
            return
        was = {id(module): path for path, module in built}
        repeat = repeated_module(now)
        added = next(((path, module) for path, module in now if id(module) not in was), None)
        kept = {id(module) for _, module in now}
        removed = next(((path, module) for path, module in built if id(module) not in kept), None)
        if repeat is not None:
            what = f"one {type(repeat[2]).__name__} object is at {repeat[0]} and at {repeat[1]}"
        elif added is not None:
            what = f"a {type(added[1]).__name__} was put in at {added[0]}"
        elif removed is not None:
            what = f"the {type(removed[1]).__name__} at {removed[0]} was taken out"
        else:
            path, module = next((path, module) for path, module in now if was[id(module)] != path)
            what = f"the {type(module).__name__} built at {was[id(module)]} was moved to {path}"
        kind = type(self).__name__
        raise RuntimeError(f"the networks of this {kind} changed after it was built: {what}. model.flat holds the values of the "
                           f"layers it was built with (the ones the optimizer updates and checkpoints store); make a new "
                           f"{kind} with the network you want, or write new values into its layers "
                           f"(layer.params['W'][...] = values)")

    def _check_layer_configs(self, modules) -> None:
        """Refuse a layer whose settings were assigned after the model was built (``dense.activation
        = None``, ``leaky.negative_slope = 0``): the model computed with them while ``model.config``
        and checkpoints kept the layers as built, so a saved model loaded as another function."""
        for path, config in _layer_configs(modules).items():
            before = self.__dict__["_built_configs"].get(path)
            if before is not None and config != before:
                changed = ", ".join(f"{key}={config['config'].get(key)!r} (built with {before['config'].get(key)!r})"
                                    for key in sorted(set(config["config"]) | set(before["config"]))
                                    if config["config"].get(key) != before["config"].get(key))
                kind = type(self).__name__
                raise RuntimeError(f"the networks of this {kind} changed after it was built: {path} ({config['type']}) now has "
                                   f"{changed}. Checkpoints rebuild the layers as built; make a new {kind} with the "
                                   f"network you want")

    @property
    def num_parameters(self) -> int:
        """Trainable values over all parameter groups."""
        return sum(flat.size for flat in self.parameter_groups().values())

    def parameter_groups(self) -> dict:
        """{name: FlatParameters}; each group has its own optimizer. One group by default."""
        return {"model": self.flat}

    # inputs -------------------------------------------------------------------
    def _as_batch(self, x, what="x", feature_shape=None):
        """Check a batch (finite, right trailing shape) and move it to the backend's device and dtype."""
        xp = self.backend.xp
        expected = tuple(feature_shape if feature_shape is not None else self.input_shape)
        if not isinstance(x, (np.ndarray, xp.ndarray)):  # lists, and array-likes (torch tensors, data frames)
            shape = f"(batch, {', '.join(map(str, expected))})"
            x = as_array(x, what, f"give {what} as an array of shape {shape}", shape)
        elif isinstance(x, np.matrix):  # always 2-D: it could not be reshaped to images
            x = np.asarray(x)
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"{what} must be a non-empty batch of shape (batch, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        if tuple(x.shape[1:]) != expected:
            # Reshaped only where that cannot scramble the data: flattened examples; anything of the
            # right size for a flat input (images for an MLP); one-channel images without their
            # channel axis. Channels-last images, say, would be silently mixed up.
            size, shape = math.prod(expected), tuple(x.shape[1:])
            unambiguous = (shape == (size,) or (len(expected) == 1 and math.prod(shape) == size)
                           or (len(expected) == 3 and expected[0] == 1 and shape == expected[1:]))
            if not unambiguous:
                raise ValueError(self._shape_error(what, tuple(x.shape), expected))
            x = x.reshape((x.shape[0],) + expected)
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_):
            # complex too: casting would drop the imaginary part with only a warning
            raise TypeError(f"{what} must hold real numbers (integer, float or bool), got dtype {x.dtype}")
        with np.errstate(over="ignore"):  # a finite value beyond float32's range: reported below
            cast = self.backend.asarray(x)
        # from the min and the max (NaN propagates through both, and an infinity is one of them):
        # two reads, no copy, where isfinite(cast).all() made a boolean one of the whole data set
        # (45 MiB for Fashion-MNIST's training images), the peak of a fit call
        if cast.size and not (math.isfinite(float(xp.min(cast))) and math.isfinite(float(xp.max(cast)))):
            if np.issubdtype(x.dtype, np.floating) and bool(array_module(x).isfinite(x).all()):
                raise ValueError(f"{what} holds values up to {float(array_module(x).abs(x).max()):g}, beyond the range of "
                                 f"{self.backend.dtype.name} (they overflow to Inf); rescale the data or use dtype='float64'")
            raise ValueError(f"{what} contains NaN or Inf")
        return cast

    @staticmethod
    def _shape_error(what, shape, expected) -> str:
        """What is wrong with a batch of ``shape`` whose examples should be ``expected``, and the likely fix."""
        message = f"{what} must have shape (batch, {', '.join(map(str, expected))}), got {shape}"
        if len(expected) > 1:
            message += f"; the flattened form (batch, {math.prod(expected)}) is accepted too"
        if len(expected) == 3 and shape[1:] == expected[1:] + expected[:1]:
            message += (". Images are channels-first (NCHW); this looks channels-last (NHWC): "
                        f"pass {what}.transpose(0, 3, 1, 2)")
        elif shape == expected:
            message += f". A single example needs a batch axis: {what}[None]"
        return message

    def _check_noise_dtype(self, eps) -> None:
        """A TypeError for reparameterization noise ``eps`` that is not real numbers: a string
        failed in a cast that named nothing, and a complex one would lose its imaginary part."""
        dtype = eps.dtype if hasattr(eps, "dtype") else np.asarray(eps).dtype
        if dtype.kind not in "biuf":
            raise TypeError(f"eps must be an array of real numbers, the reparameterization noise of shape "
                            f"(batch, {self.latent_dim}), got dtype {dtype}")

    def fixed_noise(self, x, *rest, seed: int = 0):
        """A reproducible draw of the reparameterization noise ε for this batch (NumPy, float64):
        shape (len(x), latent_dim), from ``seed`` (keyword only).

        ``rest`` is the rest of the batch, as ``loss_and_grads`` takes it after x (a VRAE's
        mask), so that ``check_model(model, *batch)`` can pass the whole batch on; ε depends
        on len(x) alone."""
        for extra in rest:
            if extra is not None and np.ndim(extra) == 0:  # fixed_noise(x, 7) drew seed 0's noise, the 7 ignored
                raise TypeError(f"{type(self).__name__}.fixed_noise takes the batch positionally and the seed by keyword: "
                                f"fixed_noise(x, seed={extra!r}); got {extra!r} after x, which is not part of a batch")
        shape = getattr(x, "shape", None)
        if shape is None:  # a list of examples; a number or a string has no batch
            shape = np.shape(as_array(x, "x", "give a batch of examples of one shape"))
        if len(shape) == 0:
            raise ValueError(f"fixed_noise needs the batch x, shaped (batch, ...), got {type(x).__name__} {reprlib.repr(x)}")
        return np.random.default_rng(check_seed(seed)).standard_normal((shape[0], self.latent_dim))

    # using a trained model (NumPy in, NumPy out) ------------------------------------
    # Inputs go through the networks INFERENCE_BATCH rows at a time: a ConvVAE's activations
    # for 10000 images in one pass took 3.5 GB; results are the same either way, up to the
    # last bits of float32 rounding (the products of a block of other rows may sum in another order).
    INFERENCE_BATCH = 256

    def _uses_chunk_threads(self) -> bool:
        """Whether fit and inference share image chunks out among microvae's threads: a CPU
        model with convolutions (a GPU runs each convolution in one pass)."""
        return self.backend.name == "numpy" and any(getattr(layer, "chunk_parallel", False)
                                                    for _, layer in self.named_modules())

    def _parallel_chunks(self):
        """``microvae.threads.parallel_chunks``, switched on when ``_uses_chunk_threads()``."""
        return parallel_chunks(enabled=self._uses_chunk_threads())

    @contextlib.contextmanager
    def _over_batches(self):
        """Around a run over many batches with no backward pass after it (inference,
        ``evaluate``, the metrics, and ``fit`` as a whole): the convolutions' chunks on
        microvae's threads (``_parallel_chunks``), and on the way out, however it ends, every
        layer's cache of its last forward pass dropped (``Layer.forget``)."""
        try:
            with self._parallel_chunks():
                yield
        finally:
            self._forget_passes()

    # what the objective's forward pass keeps at the model's level for its backward pass (the
    # logvar clamps' masks, a learned prior's gradients, a VRAE's batch): dropped with the layers'
    _FORWARD_CACHE = ("_logvar_inside", "_prior_logvar_inside", "_prior_grads", "_x")

    def _forget_passes(self):
        for network in self.children().values():
            network.forget()
        for name in self._FORWARD_CACHE:
            if self.__dict__.get(name) is not None:
                setattr(self, name, None)
        sampler = self.__dict__.get("sampler")
        if sampler is not None:
            sampler.forget()
        if getattr(getattr(self, "likelihood", None), "mask", None) is not None:
            self.likelihood.mask = None  # a sequence model's padding mask for the masked sum

    def _by_rows(self, fn, *arrays):
        """fn applied to consecutive row blocks of ``arrays`` (backend arrays of equal length;
        a None, e.g. an absent mask, goes to every call as None), its outputs (one array or a
        tuple of them) moved to NumPy and concatenated."""
        n, step = len(arrays[0]), self.INFERENCE_BATCH
        with self._over_batches():
            parts = [fn(*(None if a is None else a[s : s + step] for a in arrays)) for s in range(0, n, step)]
        to_numpy = self.backend.to_numpy
        if isinstance(parts[0], tuple):
            return tuple(np.concatenate([to_numpy(p[i]) for p in parts]) for i in range(len(parts[0])))
        return np.concatenate([to_numpy(p) for p in parts])

    # training -------------------------------------------------------------------
    def fit(self, x, y=None, epochs=10, batch_size=128, validation_data=None, lr=None, optimizer=None,
            shuffle=True, seed=None, callbacks=None, verbose=1, **optimizer_options):
        """Train for ``epochs`` more epochs; returns the model's History (all epochs so far).

        ``x`` is the training data and ``y`` its labels where the model takes them (a CVAE's
        classes, a mixture-prior AAE's components; None for the others). Each optimizer step
        takes ``batch_size`` examples (default 128; an epoch's last batch may be smaller), in
        an order drawn afresh each epoch, or in the data's own order with ``shuffle=False``.
        ``callbacks``: a list of ``Callback`` objects (``EarlyStopping``, ``ModelCheckpoint``),
        whose hooks run in list order.

        Per epoch the history records the model's ``metric_names`` on the training data
        (nats per example: ``loss``, ``recon``, ``kl`` for the VAEs; ``loss``, ``recon``,
        ``disc``, ``gen`` for the AAE), their ``val_`` versions if ``validation_data`` (x, or a
        tuple (x, y)) is given, and ``seconds``.
        ``verbose=1`` shows a progress bar and one summary line per epoch, ``2`` only the
        lines, ``0`` nothing. ``seed`` fixes shuffling and noise (default: the model's seed; a
        model without one, built with ``seed=None`` or a ``Backend`` object, draws it from its
        own generator on its first fit: fresh entropy, or the Backend's seeded stream); the seed
        in use is ``model.train_seed``, and calling ``fit`` again, or on a loaded checkpoint,
        continues the same run.
        ``optimizer`` is 'adam', 'sgd' or an Optimizer built on ``model.flat``; ``lr`` is a named
        optimizer's learning rate and extra keywords (``optimizer_options``) are its options
        (e.g. ``clip_norm=5.0``, ``momentum=0.9``). Settings left out continue the current run's (a new run: 'adam',
        lr 1e-3 whichever optimizer is named, even 'sgd', whose own default, ``SGD(flat)``,
        is 1e-2; the optimizer's defaults for its other options), and so do options given at the optimizer's own
        default (``clip_norm=None``); a changed setting starts the optimizer afresh. An
        Optimizer instance brings its own settings, so ``lr`` and the options must then be left out;
        a model with several parameter groups (the AAE) takes its optimizer by name only, and
        compares group by group: a setting given applies to every group, one left out stays each
        group's own (a discriminator given a rate of its own keeps it).
        A NaN or Inf loss raises ``TrainingDiverged`` and rolls the model back to the start of
        that epoch, as does any other way an epoch fails to finish (Ctrl-C, an error); in the
        call's first epoch that includes the optimizer run and seed it had before the call, so
        new settings that fail leave the old run to continue. ``epochs=0`` checks the
        arguments and changes nothing (the current run, its settings and seed stay). ``fit``
        cannot be called from within the same model's ``fit`` (a callback).
        The data are checked once, when ``fit`` starts, and then read batch by batch: an array
        already in the model's dtype, C order and device (a float32 model's float32 images) is
        read where it is, not copied; any other is converted once, into a copy. So a callback
        that changes ``x`` in place changes later epochs' data in the first case only, unchecked;
        to train on new data, call ``fit`` again with it.
        """
        from ..training import fit

        data = (x,) if y is None else (x, y)
        return fit(self, data, epochs=epochs, batch_size=batch_size, validation_data=validation_data, lr=lr,
                   optimizer=optimizer, shuffle=shuffle, seed=seed, callbacks=callbacks, verbose=verbose,
                   optimizer_options=optimizer_options)

    def evaluate(self, x, y=None, batch_size=512, seed=None) -> dict:
        """Mean loss terms over a dataset ``x`` (with its labels ``y``, as for ``fit``), e.g.
        {"loss", "recon", "kl"}, from forward passes over ``batch_size`` examples at a time
        (default 512).

        A one-sample Monte-Carlo estimate: each example's ε (and an AAE's prior draws) come
        from ``seed`` when it is given (the same figures on every call, and the model's own
        generator untouched), else from the model's generator, which then moves on, so the
        figures vary between calls and later unseeded draws (``sample``) change.
        """
        batch_size = check_int("batch_size", batch_size, 1)
        seed = check_seed(seed)
        data = (x,) if y is None else (x, y)
        arrays = self._prepare_data(*data)
        with self._over_batches(), self._draws_from(seed):  # as fit's validation pass runs (a model with convolutions)
            return self._evaluate_arrays(arrays, batch_size=batch_size)

    @contextlib.contextmanager
    def _draws_from(self, seed):
        """Within: the backend draws from a new generator seeded by ``seed`` (an int its callers
        have checked), and the model's own is put back untouched after; ``seed=None``: from the
        model's own, which moves on."""
        if seed is None:
            yield
            return
        backend = self.backend
        own = backend.rng
        backend.rng = np.random.default_rng(seed)
        try:
            yield
        finally:
            backend.rng = own

    @property
    def optimizer_spec(self):
        """(name, lr, options) of the current optimizer run, None before the first ``fit``: read
        from the optimizers themselves, so a callback that sets ``optimizer.lr`` changes it, and
        a checkpoint stores the settings in use. (The name is ``id()`` of an Optimizer instance
        given to fit; options at the named optimizer's defaults are left out, see
        ``optim.run_settings``.) Where an AAE's groups were given different settings, the first
        group's."""
        if not self.optimizers:
            return None
        return (self._optimizer_key, *_run_of(self._optimizer_key, next(iter(self.optimizers.values()))))

    @optimizer_spec.setter
    def optimizer_spec(self, value):
        raise AttributeError("model.optimizer_spec is read from the optimizers in use (model.optimizers) and cannot be "
                             "set; fit(..., optimizer=..., lr=...) with other settings starts a new run, as does "
                             "fit after model.optimizers = {}")

    def _optimizer_groups_differ(self) -> dict:
        """{group: (lr, run_settings)} where the groups' optimizers run at different settings, else {}:
        compared as fit compares runs (``_run_of``)."""
        runs = self._optimizer_runs()
        return runs if len(set(runs.values())) > 1 else {}

    def _optimizer_runs(self) -> dict:
        """{group: (lr, run_settings)} of the optimizers in use (``_run_of``)."""
        return {group: _run_of(self._optimizer_key, opt) for group, opt in self.optimizers.items()}

    def _current_optimizer(self):
        """What fit uses when no optimizer is named: the current run's, or 'adam' for a new run."""
        if not self.optimizers:
            return "adam"
        name = self._optimizer_key
        return name if isinstance(name, str) else next(iter(self.optimizers.values()))  # an instance (one group)

    def _get_optimizers(self, name, lr, options) -> dict:
        if not isinstance(name, str):
            groups = self.parameter_groups()
            if len(groups) > 1:  # one instance would step every phase's parameters with stale gradients
                raise TypeError(f"{type(self).__name__} trains {len(groups)} parameter groups ({', '.join(groups)}), each with "
                                "its own optimizer, so it cannot take an optimizer instance; pass optimizer='adam' or "
                                "'sgd' by name (with lr= and options such as clip_norm=)")
            if getattr(name, "flat", None) is not next(iter(groups.values())):
                raise TypeError(f"optimizer must be 'adam', 'sgd' or an Optimizer built on this model's parameters "
                                f"(e.g. microvae.Adam(model.flat)), got {name!r}")
            if lr is not None:  # it would be ignored: the instance was built with its own
                raise TypeError(f"lr goes to the Optimizer's constructor when an instance is given "
                                f"(e.g. microvae.Adam(model.flat, lr={lr!r})), not to fit; this one has lr={name.lr!r}")
            if options:  # they would be ignored: the instance was built with its own
                raise TypeError(f"optimizer options ({', '.join(sorted(options))}) go to the Optimizer's constructor when "
                                f"an instance is given (e.g. microvae.Adam(model.flat, lr, clip_norm=5.0)), not to fit")
        key = name if isinstance(name, str) else id(name)
        same_optimizer = bool(self.optimizers) and self._optimizer_key == key
        if same_optimizer and lr is None and not options:
            return self.optimizers  # continue the same run (moments and step count kept), whatever its settings now
        # Settings left out continue the current run's (fit again, or on a loaded checkpoint, with
        # the same optimizer), group by group: an AAE's discriminator may run at a rate of its own,
        # and fit(clip_norm=None) must neither restart it nor hand it the other groups' lr.
        live = self._optimizer_runs() if same_optimizer else {}  # (same_optimizer: key is the run's own)
        groups, wanted = self.parameter_groups(), {}
        for group in groups:
            group_lr, group_options = live.get(group, (DEFAULT_LR, ()))
            wanted[group] = (group_lr if lr is None else lr, run_settings(key, {**dict(group_options), **options}))
        if same_optimizer and wanted == live:
            return self.optimizers
        self.optimizers = {group: get_optimizer(name, flat, wanted[group][0], **dict(wanted[group][1]))
                           for group, flat in groups.items()}
        self._optimizer_key = key
        return self.optimizers

    def _train_batch(self, batch, optimizers) -> dict:
        terms = self._objective(*batch, eps=None, compute_grads=True)
        optimizers["model"].step()
        self.step += 1
        return terms._asdict()

    def _evaluate_arrays(self, arrays, batch_size=512) -> dict:
        totals, n = {}, len(arrays[0])
        for start in range(0, n, batch_size):
            batch = tuple(a[start : start + batch_size] for a in arrays)
            for key, value in self._objective(*batch, eps=None, compute_grads=False)._asdict().items():
                totals[key] = totals.get(key, 0.0) + value * len(batch[0])
        return {key: value / n for key, value in totals.items()}

    # persistence ----------------------------------------------------------------
    def _how_to_copy(self) -> str:  # (Module.__reduce_ex__'s advice, for a model)
        return (f"save and load it (model.save(path); microvae.load(path)), or make a new one from its config and "
                f"copy the values: new = {type(self).__name__}(**model.config); new.flat.data[...] = model.flat.data")

    def save(self, path, include_optimizer: bool = True, info: dict | None = None) -> None:
        """Write one ``.npz`` checkpoint atomically at ``path``, the name as given (no ".npz" is
        appended; see ``microvae.checkpoint``); ``info``, a
        dict of JSON values, is stored beside the model (``microvae.checkpoint.read_info``) and
        kept in ``model.info``; left out, ``model.info`` is written again.
        ``include_optimizer`` (default True) stores ``fit``'s optimizer run too, so that ``fit``
        on the loaded model continues it; False leaves it out (a new run then starts), as it
        must for an Optimizer instance given to ``fit``, whose state is not stored (TypeError)."""
        from ..checkpoint import save

        save(self, path, include_optimizer=include_optimizer, info=info)
