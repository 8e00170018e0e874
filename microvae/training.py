"""The training loop behind ``model.fit``: batches, progress, history, callbacks, divergence.

Determinism: the shuffle order and the reparameterization noise of epoch *e* are drawn
from generators seeded by (seed, e) alone. So the same seed and data give bit-identical
parameters on the CPU, and a run resumed from a checkpoint after epoch *e* continues
exactly as the uninterrupted run would. (A model with convolutions sums its weight
gradients per chunk worker, so that holds for a given number of threads; see
``microvae.threads``.)
"""

from __future__ import annotations

import csv
import json
import math
import os
import time

import numpy as np

__all__ = ["History", "Callback", "ModelCheckpoint", "EarlyStopping", "TrainingDiverged", "fit", "epoch_seed"]


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or Inf; the message names the epoch and the batch."""


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed derived from (seed, epoch, stream), independent of everything else."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(stream)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class History:
    """Per-epoch records: ``history.epochs`` is a list of dicts; ``history["loss"]`` a list.

    Each record has ``epoch``, the training metrics (``loss``, ``recon``, ``kl`` for VAEs),
    their ``val_`` twins when validation data is given, and ``seconds``.
    """

    def __init__(self, epochs=None):
        self.epochs: list[dict] = list(epochs or [])

    def append(self, record: dict) -> None:
        self.epochs.append(dict(record))

    def __getitem__(self, key):
        return [record.get(key, float("nan")) for record in self.epochs]

    def __contains__(self, key):
        return any(key in record for record in self.epochs)

    def __len__(self):
        return len(self.epochs)

    def keys(self):
        seen = []
        for record in self.epochs:
            for key in record:
                if key not in seen:
                    seen.append(key)
        return seen

    def as_dict(self) -> dict:
        return {key: self[key] for key in self.keys()}

    def to_json(self, path) -> None:
        _atomic_write_text(path, json.dumps(self.epochs, indent=2))

    def to_csv(self, path) -> None:
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.keys())
        writer.writeheader()
        writer.writerows(self.epochs)
        _atomic_write_text(path, buffer.getvalue())

    def __repr__(self):
        return f"History({len(self.epochs)} epochs, keys={self.keys()})"


def _atomic_write_text(path, text: str) -> None:
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class Callback:
    """Hooks into ``fit``. ``on_epoch_end`` returns True to stop training."""

    def on_train_begin(self, model) -> None: ...

    def on_epoch_end(self, model, epoch: int, record: dict) -> bool | None: ...

    def on_train_end(self, model) -> None: ...


class ModelCheckpoint(Callback):
    """Save the model (and its optimizer state, for exact resumption) every ``every`` epochs.

    ``path`` may contain ``{epoch}``. Writes are atomic, so an interrupted or diverged run
    never damages the last good checkpoint.
    """

    def __init__(self, path, every: int = 1, include_optimizer: bool = True):
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path, self.every, self.include_optimizer = os.fspath(path), int(every), include_optimizer
        self.saved: list[str] = []

    def on_epoch_end(self, model, epoch, record):
        if epoch % self.every == 0:
            path = self.path.format(epoch=epoch)
            model.save(path, include_optimizer=self.include_optimizer)
            self.saved.append(path)


class EarlyStopping(Callback):
    """Stop when ``monitor`` (default val_loss) has not improved by ``min_delta`` for
    ``patience`` epochs; optionally restore the best parameters seen."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, restore_best: bool = True):
        if int(patience) < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, int(patience), float(min_delta), restore_best
        self.best = math.inf
        self.best_epoch = None
        self.stopped_epoch = None
        self._wait = 0
        self._best_params = None

    def on_train_begin(self, model):
        self.best, self.best_epoch, self.stopped_epoch, self._wait, self._best_params = math.inf, None, None, 0, None

    def on_epoch_end(self, model, epoch, record):
        if self.monitor not in record:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which this run does not record "
                           f"(recorded: {sorted(record)}); pass validation_data or monitor='loss'")
        value = record[self.monitor]
        if value < self.best - self.min_delta:
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
        if self.restore_best and self._best_params is not None and self.stopped_epoch is not None:
            for name, flat in model.parameter_groups().items():
                flat.data[...] = self._best_params[name]


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


def fit(model, data: tuple, *, epochs=10, batch_size=128, validation_data=None, lr=1e-3, optimizer="adam",
        shuffle=True, seed=None, callbacks=None, verbose=1, optimizer_options=None) -> History:
    """Train ``model`` for ``epochs`` more epochs on ``data`` (a tuple of arrays, see ``Model.fit``)."""
    if int(epochs) < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    arrays = model._prepare_data(*data)
    n = len(arrays[0])
    val_arrays = None
    if validation_data is not None:
        val = validation_data if isinstance(validation_data, (tuple, list)) else (validation_data,)
        try:
            val_arrays = model._prepare_data(*val)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"validation_data: {exc}") from exc
    if seed is None:
        seed = model.train_seed if model.train_seed is not None else (model.config.get("seed") or 0)
    model.train_seed = int(seed)
    optimizers = model._get_optimizers(optimizer, lr, optimizer_options or {})
    callbacks = list(callbacks or [])
    for cb in callbacks:
        cb.on_train_begin(model)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a hard dependency
        tqdm = None
    xp = model.backend.xp
    first = model.epochs_trained + 1
    last = model.epochs_trained + int(epochs)
    # convolutions share their image chunks out among microvae's threads, BLAS on one thread
    with model._parallel_chunks():
        for epoch in range(first, last + 1):
            started = time.perf_counter()
            model.backend.seed(epoch_seed(model.train_seed, epoch, 1))
            order = np.random.default_rng(epoch_seed(model.train_seed, epoch, 0)).permutation(n) if shuffle else np.arange(n)
            order = xp.asarray(order)
            snapshot = {name: flat.data.copy() for name, flat in model.parameter_groups().items()}
            totals: dict = {}
            seen = 0
            # no bar object at all unless shown: even a disabled tqdm starts its monitor thread
            bar = tqdm(total=math.ceil(n / batch_size), desc=f"epoch {epoch}/{last}", leave=False, dynamic_ncols=True) if tqdm and verbose == 1 else None
            for batch_index, idx in enumerate(_batches(n, int(batch_size), order), start=1):
                batch = tuple(a[idx] for a in arrays)
                metrics = model._train_batch(batch, optimizers)
                if not all(math.isfinite(v) for v in metrics.values()):
                    for name, flat in model.parameter_groups().items():
                        flat.data[...] = snapshot[name]
                    if bar is not None:
                        bar.close()
                    bad = ", ".join(f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v))
                    raise TrainingDiverged(
                        f"training diverged at epoch {epoch}, batch {batch_index}: {bad}. The parameters were "
                        f"restored to their values at the start of epoch {epoch}; checkpoints already written are intact. "
                        "Try a lower learning rate or gradient clipping (clip_norm)."
                    )
                size = len(idx)
                seen += size
                for key, value in metrics.items():
                    totals[key] = totals.get(key, 0.0) + value * size
                if bar is not None:
                    bar.update(1)
                    if batch_index % 10 == 0 or seen == n:
                        bar.set_postfix(loss=f"{totals['loss'] / seen:.3f}")
            if bar is not None:
                bar.close()
            record = {"epoch": epoch}
            record.update({key: value / max(seen, 1) for key, value in totals.items()})
            if val_arrays is not None:
                record.update({f"val_{k}": v for k, v in model._evaluate_arrays(val_arrays, batch_size=max(int(batch_size), 256)).items()})
            record["seconds"] = time.perf_counter() - started
            model.epochs_trained = epoch
            model.history.append(record)
            if verbose:
                print(_summary(epoch, last, record), flush=True)
            stop = False
            for cb in callbacks:
                stop = bool(cb.on_epoch_end(model, epoch, record)) or stop
            if stop:
                break
    for cb in callbacks:
        cb.on_train_end(model)
    return model.history
