"""The training loop behind ``model.fit``: batches, progress, history, callbacks, divergence.

Determinism: the shuffle order and the reparameterization noise of epoch *e* are drawn
from generators seeded by (seed, e) alone. So the same seed and data give bit-identical
parameters on the CPU, and a run resumed from a checkpoint after epoch *e* continues
exactly as the uninterrupted run would. (A model with convolutions sums its weight
gradients per chunk worker, so that holds for a given number of threads; see
``microvae.threads``.) An epoch that does not finish (divergence, Ctrl-C, an error) is rolled
back to its start, so the model is always as ``epochs_trained`` says and a later fit continues
exactly too (``EarlyStopping(restore_best=True)`` aside: it puts back an earlier epoch's
parameters, and says which in ``best_epoch``).
"""

from __future__ import annotations

import csv
import json
import math
import numbers
import os
import sys
import time
import warnings

import numpy as np

from .atomic import write_atomically
from .checks import as_path, check_bool, check_file_path, check_int, check_number, check_seed, is_choice, is_sequence
from .likelihoods import LOGVAR_RANGE
from .optim import check_option_names

__all__ = ["History", "Callback", "ModelCheckpoint", "EarlyStopping", "TrainingDiverged", "fit", "epoch_seed"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class TrainingDiverged(FloatingPointError):
    """The loss or the parameters became NaN or Inf; the message names the epoch (and the batch)."""


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed derived from (seed, epoch, stream), independent of everything else."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(stream)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class History:
    """Per-epoch records: ``history.epochs`` is a list of dicts (iterating a History gives them);
    ``history["loss"]`` a list.

    Each record has ``epoch``, the training metrics (``loss``, ``recon``, ``kl`` for VAEs),
    their ``val_`` twins when validation data is given, and ``seconds``. ``History(epochs)``
    starts from such a list of records (anything else is a TypeError); ``History()`` is empty.
    """

    def __init__(self, epochs=None):
        form = "None or a list of per-epoch records (dicts such as {'epoch': 1, 'loss': 2.0})"
        if isinstance(epochs, (str, bytes, dict)) or not (epochs is None or hasattr(epochs, "__iter__")):
            raise TypeError(f"epochs must be {form}, got {epochs!r}")  # list(5) named no argument
        self.epochs: list[dict] = list(epochs or [])
        for i, record in enumerate(self.epochs):
            if not isinstance(record, dict):
                raise TypeError(f"epochs must be {form}, got {record!r} at epochs[{i}]")

    def append(self, record: dict) -> None:
        """Add one epoch's record (copied)."""
        self.epochs.append(dict(record))

    def __getitem__(self, key):
        """The values of ``key`` across epochs, NaN for epochs that lack a key other epochs have."""
        if not isinstance(key, str):  # history[0] is not epoch 1's record, and a loop over history must end
            raise TypeError(f"history[...] takes a metric name such as 'loss' (history.keys() lists them), got {key!r}; "
                            f"history.epochs[i] is epoch i + 1's record")
        if self.epochs and key not in self:
            raise KeyError(f"no epoch recorded {key!r}; the history has {', '.join(map(repr, self.keys()))}")
        return [record.get(key, float("nan")) for record in self.epochs]

    def __iter__(self):
        """The epochs' records, in order (as ``history.epochs``)."""
        return iter(self.epochs)

    def __contains__(self, key):
        return any(key in record for record in self.epochs)

    def __len__(self):
        return len(self.epochs)

    def keys(self):
        """Every key any record has, in first-seen order."""
        seen = []
        for record in self.epochs:
            for key in record:
                if key not in seen:
                    seen.append(key)
        return seen

    def as_dict(self) -> dict:
        """{key: values across epochs} for every key."""
        return {key: self[key] for key in self.keys()}

    def to_json(self, path) -> None:
        """Write the records as a JSON list, atomically (an existing file is replaced whole or kept).
        NumPy scalars (a value a callback added) are written as numbers; NaN and ±Inf, which
        JSON cannot hold, as null, inside lists and dicts too (Python's own NaN token would break
        other JSON readers)."""
        records = [{key: _finite_or_none(value) for key, value in record.items()} for record in self.epochs]
        # allow_nan=False: a non-finite value that slipped past the line above fails here, before the file is touched
        text = json.dumps(records, indent=2, default=_json_value, allow_nan=False)
        _atomic_write_text(check_file_path("path", path, "history.json"), text)

    def to_csv(self, path) -> None:
        """Write one CSV row per epoch (a column per key, empty where a record lacks it), atomically."""
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.keys())
        writer.writeheader()
        writer.writerows(self.epochs)
        _atomic_write_text(check_file_path("path", path, "history.csv"), buffer.getvalue())

    def __repr__(self):
        return f"History({len(self.epochs)} epochs, keys={self.keys()})"


def _finite_or_none(value):
    """A record's value for JSON: a non-finite float (Python's or NumPy's) becomes None, also
    inside a list, tuple or dict (a callback's per-dimension KL, say, where it failed in json)."""
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    return value


def _json_value(value):
    """``json.dumps`` hook for a record's values: NumPy scalars as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a history value must be a number, a string or None (JSON), got {value!r} of type {type(value).__name__}")


def _atomic_write_text(path, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


class Callback:
    """Hooks into ``fit``. ``on_epoch_end`` returns True to stop training.

    Subclass it, or pass any object with some of the three hooks: fit skips the ones it lacks.

    ``records``: the names of the values this callback's ``on_epoch_end`` adds to the record.
    A callback after it in the list may then use them: ``EarlyStopping(monitor=...)`` checks
    its metric before training starts, and accepts these names as well as the model's own."""

    records: tuple = ()

    def on_train_begin(self, model) -> None:
        """Called once by every ``fit`` call, before its first epoch, with the run set up:
        ``model.optimizers`` are the ones it trains with (a hook may set their ``lr``), and
        ``model.train_seed`` is drawn already, so an unseeded ``sample()`` here changes nothing
        the run does. A hook that raises leaves the model's run (optimizers, seed, generator) as
        it was before the call."""

    def _check_run(self, recorded: list, optimizer) -> None:
        """Raise now, before fit changes anything, for a run this callback would fail in an epoch's time
        (``recorded``: the history keys each epoch will have; ``optimizer``: fit's argument)."""

    def on_epoch_end(self, model, epoch: int, record: dict) -> bool | None:
        """Called after each epoch (``epoch`` counts from 1 over the model's life) with the
        history record just added (``model.history.epochs[-1]`` itself: a key set on it is
        kept in the history and its files); return True to stop training."""

    def on_train_end(self, model) -> None:
        """Called once when ``fit`` ends, stopped early or not (not when it raises), with the
        ``model`` trained."""


class ModelCheckpoint(Callback):
    """Save the model (and its optimizer state, for exact resumption) every ``every`` epochs.

    ``path`` may contain ``{epoch}``. Writes are atomic, so an interrupted or diverged run
    never damages the last good checkpoint. ``include_optimizer=False`` stores the model
    without its optimizer run (``fit`` on the loaded model starts a new one; see
    ``microvae.checkpoint.save``); it is needed when ``fit`` was given an Optimizer instance,
    whose state a checkpoint stores only for an optimizer named ('adam' or 'sgd').
    """

    def __init__(self, path, every: int = 1, include_optimizer: bool = True):
        self.path, self.every = as_path(path), check_int("every", every, 1)
        self.include_optimizer = check_bool("include_optimizer", include_optimizer)  # "no" would be True
        try:  # a bad template or a folder would otherwise fail only when the first epoch is over
            first = self.path.format(epoch=1)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ValueError(f"path {self.path!r} is not a valid checkpoint name: the only field it may contain is "
                             f"{{epoch}} (e.g. 'ckpt_{{epoch:03d}}.npz'; write {{{{ and }}}} for literal braces); "
                             f"formatting it failed with {type(exc).__name__}: {exc}") from None
        check_file_path("ModelCheckpoint path", first)
        self.saved: list[str] = []

    def _check_run(self, recorded, optimizer):
        if self.include_optimizer and not isinstance(optimizer, str):
            raise TypeError("ModelCheckpoint saves the optimizer state, which it can do only for an optimizer given by "
                            "name ('adam' or 'sgd'), not for an Optimizer instance; pass optimizer by name, or "
                            "ModelCheckpoint(..., include_optimizer=False)")

    def on_epoch_end(self, model, epoch, record):
        if epoch % self.every == 0:
            path = self.path.format(epoch=epoch)
            model.save(path, include_optimizer=self.include_optimizer)
            self.saved.append(path)


class EarlyStopping(Callback):
    """Stop once more than ``patience`` epochs in a row have not improved ``monitor``
    (default val_loss) on its best value by more than ``min_delta``: patience=0 stops at the
    first epoch without an improvement, patience=2 at the third in a row.

    ``mode`` "min" (default: microvae's own metrics are losses, lower is better) or "max",
    for a metric of your own where higher is better, such as an accuracy that a callback
    placed before this one adds to the record and names in its ``records``. The best epoch
    is the last one that improved on the best value by more than ``min_delta``: with
    min_delta > 0, a later epoch slightly better still is not it.

    ``restore_best`` (default True): when training ends, stopped early or not, the
    parameters go back to those of the best epoch (the optimizer state, history, step and
    ``epochs_trained`` stay the last epoch's, as does a checkpoint written by then).
    ``best_epoch``, ``stopped_epoch`` (None if it did not stop) and ``restored_epoch`` (the
    epoch whose parameters were put back; None if none were) say what happened, and a verbose
    ``fit`` prints the last.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, restore_best: bool = True,
                 mode: str = "min"):
        self.monitor, self.patience, self.min_delta, self.restore_best, self.mode = self._checked(
            monitor, patience, min_delta, restore_best, mode)
        self.best = self._worst()
        self.best_epoch = None
        self.stopped_epoch = None
        self.restored_epoch = None
        self._wait = 0
        self._best_params = None
        self._last_epoch = None

    @staticmethod
    def _checked(monitor, patience, min_delta, restore_best, mode) -> tuple:
        """The settings as the constructor takes them, or the error naming the one that is wrong."""
        patience = check_int("patience", patience, 0)
        min_delta = check_number("min_delta", min_delta, "a finite number >= 0")
        if not (math.isfinite(min_delta) and min_delta >= 0):  # NaN: no epoch would ever count as an improvement
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        restore_best = check_bool("restore_best", restore_best)
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be the name of a recorded metric, e.g. 'val_loss', got {monitor!r}")
        if not is_choice(mode, ("min", "max")):  # "auto" guessing from the name would get a custom metric wrong
            raise ValueError(f"mode must be 'min' (lower is better) or 'max' (higher is better), got {mode!r}")
        return monitor, patience, min_delta, restore_best, mode

    def _check_run(self, recorded, optimizer):
        # checked again: an attribute set since construction (es.mode = "maximum") was taken as it came;
        # a subclass that compares values its own way (its own _improves and _worst) owns its mode;
        # while either of the two is the base one, that one reads mode, so mode is checked
        own_comparison = type(self)._improves is not EarlyStopping._improves and type(self)._worst is not EarlyStopping._worst
        self.monitor, self.patience, self.min_delta, self.restore_best, mode = self._checked(
            self.monitor, self.patience, self.min_delta, self.restore_best, "min" if own_comparison else self.mode)
        if not own_comparison:
            self.mode = mode
        if self.monitor not in recorded:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which this run will not record (it records "
                             f"{list(recorded)}); pass validation_data or monitor='loss' (a metric of your own: "
                             "list its name in the records of the callback that sets it, placed before this one)")

    def _worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def _improves(self, value) -> bool:
        """Whether ``value`` beats the best by more than min_delta (never for NaN)."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def _monitored_number(self, value, epoch: int):
        """``value`` if it is a real number (NaN too: it never improves), a 0-d NumPy or CuPy array's
        as a number (what ``xp.mean`` returns), else a TypeError naming the monitored metric:
        None or a string met the comparison as "'<' not supported between instances of ...",
        which named neither this callback nor the metric."""
        if getattr(value, "shape", None) == () and getattr(getattr(value, "dtype", None), "kind", None) in ("i", "u", "f"):
            value = value.item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"EarlyStopping monitors {self.monitor!r}, which must be a number every epoch; epoch {epoch}'s "
                            f"record has {self.monitor}={value!r}")
        return value

    def on_train_begin(self, model):
        self.best, self.best_epoch, self.stopped_epoch, self._wait, self._best_params = self._worst(), None, None, 0, None
        self._last_epoch = self.restored_epoch = None

    def on_epoch_end(self, model, epoch, record):
        if self.monitor not in record:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which this run does not record "
                           f"(recorded: {sorted(record)}); pass validation_data or monitor='loss'")
        value = record[self.monitor]
        if type(self)._improves is EarlyStopping._improves:  # (a subclass comparing its own way takes its own values)
            value = self._monitored_number(value, epoch)
        self._last_epoch = epoch
        if self._improves(value):
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best:
                self._best_params = {name: flat.data.copy() for name, flat in model.parameter_groups().items()}
            return False
        self._wait += 1
        if self._wait > self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model):
        if self.restore_best and self._best_params is not None and self.best_epoch != self._last_epoch:
            for name, flat in model.parameter_groups().items():
                flat.data[...] = self._best_params[name]
            self.restored_epoch = self.best_epoch


def _declared_records(callback) -> list:
    """A callback's ``records``, checked: names (str) of values it adds to each epoch's record."""
    names = getattr(callback, "records", ())
    if isinstance(names, str) or not isinstance(names, (tuple, list)) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"callbacks: {callback!r} has records = {names!r}; records must be a tuple of the names (str) "
                        "its on_epoch_end adds to the record")
    return list(names)


def _snapshot(model, optimizers, run_before=None) -> dict:
    """The parameters and optimizer state at the start of an epoch, for ``_restore``; in a fit
    call's first epoch also the run it found (``_run_of``), which fit may have replaced with a
    new one for new settings."""
    return {"params": {name: flat.data.copy() for name, flat in model.parameter_groups().items()},
            "optim": {group: (opt.t, {k: v.copy() for k, v in opt.state_arrays().items()}) for group, opt in optimizers.items()},
            "step": model.step, "run_before": run_before}


def _restore(model, optimizers, snapshot) -> None:
    """Undo a diverged epoch: parameters, optimizer moments (NaN after a NaN gradient) and step
    counts. In a fit call's first epoch the model also gets back the run it had before the call:
    its optimizers, whose moments new settings did not touch, its settings, its seed and its
    generator, so that a later fit() does not continue the settings of a call that failed."""
    for name, flat in model.parameter_groups().items():
        flat.data[...] = snapshot["params"][name]
    for group, opt in optimizers.items():
        opt.t, state = snapshot["optim"][group]
        for key, value in opt.state_arrays().items():
            value[...] = state[key]
    model.step = snapshot["step"]
    if snapshot["run_before"] is not None:
        _return_to(model, snapshot["run_before"])


def _run_of(model) -> tuple:
    """What a fit call that fails before its first epoch ends goes back to: the optimizers, their
    settings' key, the seed, and the generator a seedless model draws its seed from (so that
    the call made again trains the run the failed one would have)."""
    return model.optimizers, model._optimizer_key, model.train_seed, model.backend.rng.bit_generator.state


def _return_to(model, run) -> None:
    model.optimizers, model._optimizer_key, model.train_seed, model.backend.rng.bit_generator.state = run


def _non_finite(metrics: dict) -> str:
    """"key=value, ..." of the metrics that are NaN or Inf ("" if none)."""
    return ", ".join(f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v))


def _diverged(epoch: int, what: str, advice: str) -> TrainingDiverged:
    """The error for each way fit finds divergence (fit rolls the epoch back as it propagates)."""
    return TrainingDiverged(
        f"training diverged {what}. The parameters and optimizer state were restored to their values at the start of "
        f"epoch {epoch}; checkpoints already written are intact. Try {advice}."
    )


def _advice(optimizers, *remedies: str) -> str:
    """What to try after a divergence: a lower learning rate, gradient clipping unless every
    optimizer already clips, then ``remedies``."""
    clipping = all(opt.clip_norm is not None for opt in optimizers.values())
    found = ["a lower learning rate"] + ([] if clipping else ["gradient clipping (clip_norm)"]) + list(remedies)
    text = ", ".join(found[:-1]) + " or " + found[-1] if len(found) > 1 else found[0]
    if clipping:
        text += " (gradient clipping was already on)"
    return text


def _first_loss_advice(model, arrays, idx) -> str:
    """What to try when the very first batch's loss is non-finite: no learning rate made it so,
    the data's scale did (float32 squares overflow past about 1.8e19)."""
    xp = model.backend.xp
    largest = max((float(xp.abs(a[idx]).max()) for a in arrays if a.dtype.kind == "f" and a[idx].size), default=0.0)
    wider = " or dtype='float64'" if model.backend.dtype == xp.float32 else ""
    return (f"rescaling the data (its first batch has values as large as {largest:.3g} in magnitude){wider}; the loss "
            f"was non-finite at the initial parameters, before any update, so the learning rate is not the cause")


def _train_epoch(model, arrays, val_arrays, order, optimizers, epoch: int, batch_size: int, bar) -> dict:
    """One epoch of steps, then the checks that no callback may see a broken model pass; returns
    the epoch's record (mean training metrics, and validation ones). Raises TrainingDiverged."""
    xp, n = model.backend.xp, len(arrays[0])
    totals: dict = {}
    seen = 0
    for batch_index, idx in enumerate(_batches(n, batch_size, order), start=1):
        metrics = model._train_batch(tuple(a[idx] for a in arrays), optimizers)
        bad = _non_finite(metrics)
        if bad:
            if epoch == 1 and batch_index == 1:  # the loss of the initial parameters: no update had been made
                raise _diverged(epoch, f"at epoch 1, batch 1: {bad}", _first_loss_advice(model, arrays, idx))
            raise _diverged(epoch, f"at epoch {epoch}, batch {batch_index}: {bad}", _advice(optimizers))
        size = len(idx)
        seen += size
        for key, value in metrics.items():
            totals[key] = totals.get(key, 0.0) + value * size
        if bar is not None:
            bar.update(1)
            if batch_index % 10 == 0 or seen == n:
                bar.set_postfix(loss=f"{totals['loss'] / seen:.3f}")
    stuck = _clamped_logvar_columns(model)
    if stuck:  # no message with the epoch in it: Python's filter shows it once, not every epoch
        lo, hi = LOGVAR_RANGE
        warnings.warn(f"the encoder's logvar of latent dimension(s) {stuck} lay beyond LOGVAR_RANGE [{lo:g}, {hi:g}] for "
                      "every example of an epoch's last batch: the clamp passes no gradient there, so training cannot "
                      "bring it back (a learning rate far too large puts it there, or inputs of a large scale from the "
                      "first step); lower the learning rate, or rescale the inputs, and train again",
                      RuntimeWarning, stacklevel=_stacklevel_outside_package())
    # a finite loss is computed before the step: an overflowing gradient can still leave NaN
    # parameters, which callbacks (checkpoints) must never see. One pass per epoch, not per step.
    if not all(bool(xp.isfinite(flat.data).all()) for flat in model.parameter_groups().values()):
        raise _diverged(epoch, f"in epoch {epoch}: the parameters became non-finite (NaN or Inf) although every batch's "
                               "loss was finite (an overflowing gradient)",
                        _advice(optimizers, "rescaled inputs"))
    # Adam squares the gradient: past ~5.8e20, (1 − β₂)·g² is Inf in float32, and every
    # later update of that parameter is m/Inf = 0, frozen for good with nothing else non-finite
    if not all(bool(xp.isfinite(state).all()) for opt in optimizers.values() for state in opt.state_arrays().values()):
        raise _diverged(epoch, f"in epoch {epoch}: the optimizer's state became non-finite (NaN or Inf) although the "
                               "parameters and every batch's loss were finite (a gradient too large to square)",
                        _advice(optimizers, "rescaled inputs"))
    record = {"epoch": epoch}
    record.update({key: value / max(seen, 1) for key, value in totals.items()})
    if val_arrays is not None:
        validation = {f"val_{k}": v for k, v in model._evaluate_arrays(val_arrays, batch_size=max(batch_size, 256)).items()}
        bad = _non_finite(validation)
        if bad:  # finite but extreme parameters (a huge learning rate) that overflow on the validation data
            raise _diverged(epoch, f"in epoch {epoch}: the validation loss is non-finite ({bad}) although every training "
                                   "batch's was finite", _advice(optimizers))
        record.update(validation)
    return record


def _stacklevel_outside_package() -> int:
    """The ``stacklevel`` that makes a warning raised by the caller name the first frame outside
    microvae (the user's ``model.fit(...)``), however many of microvae's frames lie between:
    ``VRAE.fit`` adds one to ``Model.fit``, the CLI another."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def _clamped_logvar_columns(model) -> list:
    """The latent dimensions whose encoder logvar lay beyond LOGVAR_RANGE for every example of the
    last batch (the mask the model kept for its backward pass; [] for a model without one)."""
    inside = getattr(model, "_logvar_inside", None)
    if inside is None or inside.ndim != 2 or inside.shape[0] == 0:
        return []
    xp = model.backend.xp
    return [int(j) for j in xp.flatnonzero(~inside.any(axis=0)).tolist()]


def _batches(n: int, batch_size: int, order):
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _summary(epoch, epochs, record) -> str:
    parts = [f"epoch {epoch}/{epochs}"]
    for key, value in record.items():
        if key not in ("epoch", "seconds"):
            parts.append(f"{key} {value:.4f}")
    parts.append(f"{record['seconds']:.2f}s")
    return "  ".join(parts)


def fit(model, data: tuple, *, epochs=10, batch_size=128, validation_data=None, lr=None, optimizer=None,
        shuffle=True, seed=None, callbacks=None, verbose=1, optimizer_options=None) -> History:
    """Train ``model`` for ``epochs`` more epochs on ``data`` (a tuple of arrays, see ``Model.fit``)."""
    epochs = check_int("epochs", epochs, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    seed = check_seed(seed)
    if lr is not None:
        check_number("lr", lr, "a positive number (the learning rate)")
    if not is_choice(verbose, (0, 1, 2)):  # (True and False are 1 and 0)
        raise ValueError(f"verbose must be 0 (silent), 1 (progress bar and a line per epoch) or 2 (a line per epoch), got {verbose!r}")
    shuffle = check_bool("shuffle", shuffle)  # shuffle="no" would shuffle
    # one callback not in a list, a string, or a set (whose hooks would run in hash order)
    if hasattr(callbacks, "on_epoch_end") or not (callbacks is None or is_sequence(callbacks)):
        raise TypeError(f"callbacks must be a list of callbacks, e.g. callbacks=[EarlyStopping()], got {callbacks!r}")
    callbacks = list(callbacks or [])
    for i, cb in enumerate(callbacks):
        if isinstance(cb, type):  # its hooks would run unbound, with the model as self
            raise TypeError(f"callbacks: pass an instance, e.g. {cb.__name__}(...), not the class {cb.__name__}")
        if any(cb is other for other in callbacks[:i]):  # its hooks would run twice an epoch (patience halved)
            raise ValueError(f"callbacks: {cb!r} is listed twice; list each callback once")
        if not any(callable(getattr(cb, hook, None)) for hook in _HOOKS):
            raise TypeError(f"callbacks: {cb!r} is not a callback; a callback subclasses microvae.Callback or has "
                            f"at least one of the methods {', '.join(_HOOKS)}")
        _check_hook_signatures(cb)
    model._check_layers_bound()
    if optimizer is None:
        optimizer = model._current_optimizer()
    if isinstance(optimizer, str) and optimizer_options:  # before the data: fit(x, labels=y) lands here
        check_option_names(optimizer, optimizer_options)
    arrays = model._prepare_data(*data)
    n = len(arrays[0])
    val_arrays = None
    if validation_data is not None:
        # only a tuple is (x, y): a list or an array is x itself (a list of rows would be unpacked)
        val = validation_data if isinstance(validation_data, tuple) else (validation_data,)
        if not 1 <= len(val) <= 2:
            raise ValueError(f"validation_data must be x or a tuple (x, y), got a tuple of {len(val)} items")
        try:
            val_arrays = model._prepare_data(*val)
        except (ValueError, TypeError) as exc:
            hint = "; a list is read as x itself: pass (x, y) as a tuple" if isinstance(validation_data, list) else ""
            raise type(exc)(f"validation_data: {exc}{hint}") from exc
    recorded = ["epoch", *model.metric_names, *(f"val_{k}" for k in model.metric_names if val_arrays is not None), "seconds"]
    for cb in callbacks:
        check = getattr(cb, "_check_run", None)  # a duck-typed callback may lack it
        if check is not None:
            check(recorded, optimizer)
        # in list order: a callback sees the keys set by those before it, not after
        recorded = recorded + [name for name in _declared_records(cb) if name not in recorded]
    if getattr(model, "_fitting", False):  # from a callback: the outer loop's epoch numbers would repeat
        raise RuntimeError(f"{type(model).__name__}.fit was called while this model's fit is running (from a callback?); "
                           "train it after that fit returns")
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a hard dependency
        tqdm = None
    xp = model.backend.xp
    first = model.epochs_trained + 1
    last = model.epochs_trained + epochs
    # convolutions share their image chunks out among microvae's threads, BLAS on one thread;
    # entered before the run changes, so that a bad thread setting changes nothing; on the way
    # out the layers drop their last pass's caches
    with model._over_batches():
        run_before = _run_of(model)  # what a first epoch that fails goes back to
        optimizers = model._get_optimizers(optimizer, lr, optimizer_options or {})
        if seed is None:
            seed = model.train_seed if model.train_seed is not None else model.config.get("seed")
        if seed is None and epochs:  # no seed (seed=None, or a Backend object): from the model's own generator,
            seed = int(model.backend.rng.integers(0, 2**63 - 1))  # kept below; epochs=0 draws none, and changes nothing
        model.train_seed = None if seed is None else int(seed)
        model._fitting = True  # from here to on_train_end: a fit called by a hook is refused
        try:
            # after the seed is drawn: a hook's unseeded sample() would otherwise change the run;
            # the hooks see the run's optimizers, and one that raises leaves the model as it was
            try:
                for cb in callbacks:
                    _call_hook(cb, "on_train_begin", model)
            except BaseException:
                _return_to(model, run_before)
                raise
            for epoch in range(first, last + 1):
                started = time.perf_counter()
                model.backend.seed(epoch_seed(model.train_seed, epoch, 1))
                order = np.random.default_rng(epoch_seed(model.train_seed, epoch, 0)).permutation(n) if shuffle else np.arange(n)
                snapshot = _snapshot(model, optimizers, run_before if epoch == first else None)
                # no bar object at all unless shown: even a disabled tqdm starts its monitor thread
                bar = tqdm(total=math.ceil(n / batch_size), desc=f"epoch {epoch}/{last}", leave=False, dynamic_ncols=True) if tqdm and verbose == 1 else None
                try:
                    record = _train_epoch(model, arrays, val_arrays, xp.asarray(order), optimizers, epoch, batch_size, bar)
                except BaseException:  # divergence, Ctrl-C, a failing batch: back to the epoch's start, as epochs_trained says
                    _restore(model, optimizers, snapshot)
                    raise
                finally:
                    if bar is not None:
                        bar.close()
                record["seconds"] = time.perf_counter() - started
                model.epochs_trained = epoch
                model.history.append(record)
                record = model.history.epochs[-1]  # the stored record, not the copy: what callbacks add to it stays
                if verbose:
                    print(_summary(epoch, last, record), flush=True)
                stopped_by = [cb for cb in callbacks if _call_hook(cb, "on_epoch_end", model, epoch, record)]
                if stopped_by:
                    if verbose:
                        print(f"stopped after epoch {epoch} by {', '.join(type(cb).__name__ for cb in stopped_by)}", flush=True)
                    break
            if epochs == 0:  # the arguments were checked; with no epoch run, the current run stays as it was
                _return_to(model, run_before)
            for cb in callbacks:
                _call_hook(cb, "on_train_end", model)
                # the model is no longer the last epoch's: say so, beside "stopped after epoch ..."
                if verbose and isinstance(cb, EarlyStopping) and cb.restored_epoch is not None:
                    print(f"restored the parameters of epoch {cb.restored_epoch}, the best by {cb.monitor} ({cb.best:.4f}); "
                          f"epochs_trained stays {model.epochs_trained}", flush=True)
        finally:
            model._fitting = False
    return model.history


# each hook, and what fit calls it with
_HOOK_ARGUMENTS = {"on_train_begin": ("model",), "on_epoch_end": ("model", "epoch", "record"), "on_train_end": ("model",)}
_HOOKS = tuple(_HOOK_ARGUMENTS)


def _check_hook_signatures(callback) -> None:
    """Before training: each hook takes what fit passes it. A Keras-style on_epoch_end(epoch, logs)
    would fail only after the first epoch, with Python's bare count of positional arguments."""
    import inspect

    for name, arguments in _HOOK_ARGUMENTS.items():
        hook = getattr(callback, name, None)
        if hook is None:
            continue
        try:
            signature = inspect.signature(hook)
        except (TypeError, ValueError):  # a builtin or C callable: no signature to check against
            continue
        try:
            signature.bind(*arguments)
        except TypeError:
            raise TypeError(f"callbacks: {type(callback).__name__}.{name}{signature} cannot take fit's arguments; fit calls "
                            f"{name}({', '.join(arguments)}) (see microvae.Callback)") from None


def _call_hook(callback, name: str, *args):
    """``callback.name(*args)``; a duck-typed callback may leave out the hooks it does not need."""
    hook = getattr(callback, name, None)
    return hook(*args) if hook is not None else None
