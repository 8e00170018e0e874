"""fit(): history, determinism, exact resumption, divergence handling, callbacks, progress output."""

import itertools
import json
import linecache
import math
import os
import re
import warnings

import numpy as np
import pytest

import microvae as mv
from microvae.training import Callback


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (300, 16)).astype(np.float32), rng.uniform(0, 1, (60, 16)).astype(np.float32)


def _model(**kw):
    return mv.VAE(16, (12,), 2, seed=0, **kw)


def test_history_records_every_epoch(data):
    x, x_val = data
    history = _model().fit(x, epochs=3, batch_size=64, validation_data=x_val, verbose=0)
    assert len(history) == 3 and history["epoch"] == [1, 2, 3]
    for key in ("loss", "recon", "kl", "val_loss", "val_recon", "val_kl", "seconds"):
        assert key in history and all(np.isfinite(history[key])), key
    record = history.epochs[0]
    assert record["loss"] == pytest.approx(record["recon"] + record["kl"])
    assert history["loss"][-1] < history["loss"][0]


def test_an_epochs_metrics_are_means_over_its_examples(data):
    """300 rows in batches of 128, 128 and 44: each batch's metrics weigh by its size, so the
    short last batch does not count as much as a full one."""
    x, _ = data
    model = _model()
    seen, original = [], model._train_batch

    def spy(batch, optimizers):
        metrics = original(batch, optimizers)
        seen.append((len(batch[0]), metrics))
        return metrics

    model._train_batch = spy
    history = model.fit(x, epochs=1, batch_size=128, verbose=0)
    assert [size for size, _ in seen] == [128, 128, 44]
    for key in ("loss", "recon", "kl"):
        assert history[key][0] == pytest.approx(sum(size * m[key] for size, m in seen) / 300, rel=1e-12, abs=0)


def test_a_history_iterates_over_its_records_and_names_unknown_keys(data):
    """list(history) never ended (iteration fell back to history[0], history[1], ..., each a
    list of NaN) and filled memory; a misspelt key gave a list of NaN."""
    x, _ = data
    history = _model().fit(x, epochs=2, batch_size=64, verbose=0)
    assert list(itertools.islice(history, 3)) == history.epochs  # (islice: no endless loop if it regresses)
    assert list(history) == history.epochs and [r["epoch"] for r in history] == [1, 2]
    with pytest.raises(KeyError, match=r"no epoch recorded 'lss'; the history has 'epoch', 'loss'"):
        history["lss"]
    with pytest.raises(TypeError, match=r"takes a metric name .* history.epochs\[i\]"):
        history[0]
    partial = mv.History([{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5, "val_loss": 1.7}])
    assert partial["val_loss"][0] != partial["val_loss"][0] and partial["val_loss"][1] == 1.7  # NaN where missing
    assert mv.History()["loss"] == []


@pytest.mark.parametrize("epochs, got", [(5, "5"), ("loss", "'loss'"), ({"loss": [2.0]}, r"\{'loss': \[2.0\]\}"),
                                         ([{"epoch": 1}, 2.0], r"2.0 at epochs\[1\]")])
def test_a_history_refuses_what_is_no_list_of_records(epochs, got):
    # History(5) failed with "'int' object is not iterable"; a string or a dict became a list of its characters or keys
    with pytest.raises(TypeError, match=r"epochs must be None or a list of per-epoch records \(dicts such as "
                                        rf"\{{'epoch': 1, 'loss': 2.0\}}\), got {got}$"):
        mv.History(epochs)


def test_history_keeps_a_copy_of_each_record():
    record = {"epoch": 1, "loss": 2.0}
    history = mv.History()
    history.append(record)
    record["loss"] = 9.0
    assert history["loss"] == [2.0]


def test_same_seed_same_data_gives_bit_identical_parameters(data):
    x, _ = data
    a, b = _model(), _model()
    a.fit(x, epochs=2, batch_size=32, seed=3, verbose=0)
    b.fit(x, epochs=2, batch_size=32, seed=3, verbose=0)
    np.testing.assert_array_equal(a.flat.data, b.flat.data)
    c = _model()
    c.fit(x, epochs=2, batch_size=32, seed=4, verbose=0)
    assert not np.array_equal(a.flat.data, c.flat.data)


def test_each_epoch_draws_its_own_order_and_noise(data):
    """The order and the noise of epoch e come from (seed, e): a seed that left the epoch out
    gave every epoch the same batches and the same reparameterization noise."""
    import copy

    x, _ = data
    model = _model()
    batches, noise, original = [], [], model._train_batch

    def spy(batch, optimizers):
        batches.append(batch[0].copy())
        noise.append(copy.deepcopy(model.backend.rng).standard_normal(4))  # what this batch's noise starts from
        return original(batch, optimizers)

    model._train_batch = spy
    model.fit(x, epochs=2, batch_size=100, seed=3, verbose=0)  # 3 batches an epoch
    assert len(batches) == 6
    np.testing.assert_array_equal(np.sort(np.concatenate(batches[3:]), axis=0), np.sort(np.concatenate(batches[:3]), axis=0))
    assert not np.array_equal(batches[0], batches[3])  # epoch 2 is shuffled anew
    assert not np.array_equal(noise[0], noise[3])  # and draws other noise


def test_a_fit_without_a_seed_continues_with_the_seed_of_the_run(data, tmp_path):
    """fit(seed=5) then fit(): the second call goes on with seed 5 (also after a save and load),
    as the uninterrupted fit(seed=5) does, not with the model's construction seed."""
    x, _ = data
    kw = dict(batch_size=32, verbose=0)
    straight = _model()
    straight.fit(x, epochs=3, seed=5, **kw)
    model = _model()
    model.fit(x, epochs=1, seed=5, **kw)
    model.fit(x, epochs=1, **kw)
    model.save(tmp_path / "m.npz")
    resumed = mv.load(tmp_path / "m.npz")
    resumed.fit(x, epochs=1, **kw)
    assert resumed.train_seed == 5
    np.testing.assert_array_equal(resumed.flat.data, straight.flat.data)


@pytest.mark.parametrize("optimizer, options", [("adam", {}), ("sgd", {}), ("sgd", {"momentum": 0.9})])
def test_resuming_from_a_checkpoint_continues_exactly(data, tmp_path, optimizer, options):
    # (at momentum 0 SGD's velocity is the last gradient, so dropping it from a checkpoint passed)
    x, _ = data
    kw = dict(batch_size=32, seed=1, verbose=0, optimizer=optimizer, lr=1e-2 if optimizer == "sgd" else 1e-3, **options)
    straight = _model(beta_warmup=20)
    straight.fit(x, epochs=4, **kw)

    first = _model(beta_warmup=20)
    first.fit(x, epochs=2, **kw)
    first.save(tmp_path / "half.npz")
    resumed = mv.load(tmp_path / "half.npz")
    assert resumed.epochs_trained == 2 and resumed.step == first.step
    resumed.fit(x, epochs=2, **kw)
    np.testing.assert_array_equal(resumed.flat.data, straight.flat.data)
    assert resumed.history["loss"] == straight.history["loss"]


def test_betas_as_a_list_or_a_tuple_continue_the_same_run(data, tmp_path):
    # a checkpoint's JSON gives lists; fit(betas=(...)) must keep those moments
    x, _ = data
    kw = dict(batch_size=32, seed=1, verbose=0)
    straight = _model()
    straight.fit(x, epochs=2, betas=(0.8, 0.99), **kw)
    first = _model()
    first.fit(x, epochs=1, betas=[0.8, 0.99], **kw)
    moments = first.optimizers["model"]
    first.fit(x, epochs=1, betas=(0.8, 0.99), **kw)
    assert first.optimizers["model"] is moments
    np.testing.assert_array_equal(first.flat.data, straight.flat.data)
    first.save(tmp_path / "c.npz")
    resumed = mv.load(tmp_path / "c.npz")
    assert resumed._get_optimizers("adam", 1e-3, {"betas": (0.8, 0.99)}) is resumed.optimizers


@pytest.mark.parametrize("optimizer,options", [
    ("adam", {"clip_norm": None}), ("adam", {"betas": (0.9, 0.999)}), ("adam", {"eps": 1e-8}),
    ("adam", {"betas": np.array([0.9, 0.999])}), ("sgd", {"momentum": 0}), ("sgd", {"clip_norm": None}),
])
def test_an_option_given_at_its_default_continues_the_run(data, tmp_path, optimizer, options):
    """fit(clip_norm=None) is how one writes "no clipping": it changes nothing, so Adam's
    moments and step count carry on (they were thrown away: the run key held the options as
    passed). The same after a checkpoint, whose settings are stored without the defaults."""
    x, _ = data
    kw = dict(batch_size=32, seed=1, verbose=0, optimizer=optimizer, lr=1e-2)
    straight = _model()
    straight.fit(x, epochs=3, **kw)
    split = _model()
    split.fit(x, epochs=1, **kw)
    run = split.optimizers["model"]
    split.fit(x, epochs=1, **kw, **options)
    assert split.optimizers["model"] is run
    split.save(tmp_path / "c.npz")
    resumed = mv.load(tmp_path / "c.npz")
    resumed.fit(x, epochs=1, **kw, **options)
    assert resumed.optimizers["model"].t == straight.optimizers["model"].t
    np.testing.assert_array_equal(resumed.flat.data, straight.flat.data)


def test_betas_as_a_numpy_array_continue_the_run_or_change_it(data):
    """A second fit(betas=np.array(...)) raised "truth value of an array is ambiguous"."""
    x, _ = data
    kw = dict(batch_size=32, seed=1, verbose=0)
    model = _model()
    model.fit(x, epochs=1, betas=np.array([0.8, 0.99]), **kw)
    run = model.optimizers["model"]
    model.fit(x, epochs=1, betas=np.array([0.8, 0.99]), **kw)
    model.fit(x, epochs=1, betas=(np.float64(0.8), 0.99), **kw)
    assert model.optimizers["model"] is run and run.t == 3 * 10
    model.fit(x, epochs=1, betas=np.array([0.7, 0.99]), **kw)  # a changed setting: a new run
    assert model.optimizers["model"] is not run and model.optimizers["model"].beta1 == 0.7


def _diverging_fit(model, x, epoch, **kw):
    with pytest.raises(mv.TrainingDiverged, match=f"at epoch {epoch}, batch"), np.errstate(over="ignore", invalid="ignore"):
        model.fit(x, epochs=1, batch_size=32, verbose=0, optimizer="sgd", lr=1e6, **kw)


def test_divergence_under_new_settings_gives_back_the_run_before(data):
    """A fit with new settings (here SGD at lr 100) that diverges in its first epoch rolls the
    model back to before the call: the parameters, and also the Adam run it had, moments and
    settings, which fit had replaced. So a later fit() continues Adam exactly as if the failed
    call had never been made, instead of continuing SGD at lr 100 or Adam from scratch."""
    x, _ = data
    kw = dict(batch_size=32, seed=1, verbose=0)
    never = _model(likelihood="gaussian-learned")
    never.fit(x, epochs=2, **kw)
    model = _model(likelihood="gaussian-learned")
    model.fit(x, epochs=1, **kw)
    run, spec, params = model.optimizers["model"], model.optimizer_spec, model.flat.data.copy()
    _diverging_fit(model, x, epoch=2)
    np.testing.assert_array_equal(model.flat.data, params)
    assert model.optimizers["model"] is run and model.optimizer_spec == spec and run.t == 10
    model.fit(x, epochs=1, **kw)
    np.testing.assert_array_equal(model.flat.data, never.flat.data)


def test_a_seedless_model_whose_first_epoch_fails_trains_the_same_run_when_fit_again(data):
    """The rollback gave back the seed but not the generator it is drawn from, which the draw
    and the epoch's own seeding had moved on: fit again after a Ctrl-C in the first batch, a
    model without a seed trained another run than it would have."""
    x, _ = data

    def seedless():
        return mv.VAE(16, (12,), 2, backend=mv.Backend("numpy", dtype="float32", seed=123))

    straight = seedless()
    straight.fit(x, epochs=1, batch_size=32, verbose=0)
    model = seedless()

    class Interrupt(Callback):
        def on_train_begin(self, model):
            model._train_batch = self.stop

        def stop(self, *args):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, epochs=1, batch_size=32, verbose=0, callbacks=[Interrupt()])
    del model._train_batch
    assert model.train_seed is None and model.epochs_trained == 0
    model.fit(x, epochs=1, batch_size=32, verbose=0)
    assert model.train_seed == straight.train_seed
    np.testing.assert_array_equal(model.flat.data, straight.flat.data)


def test_divergence_in_a_new_models_first_fit_leaves_no_run(data):
    x, _ = data
    model = _model(likelihood="gaussian-learned")
    _diverging_fit(model, x, epoch=1)
    assert model.optimizers == {} and model.optimizer_spec is None and model.step == 0
    fresh = _model(likelihood="gaussian-learned")
    model.fit(x, epochs=1, batch_size=32, seed=1, verbose=0)  # a new run: Adam at lr 1e-3
    fresh.fit(x, epochs=1, batch_size=32, seed=1, verbose=0)
    np.testing.assert_array_equal(model.flat.data, fresh.flat.data)


def _nan_loss_at_step(model, step: int) -> None:
    """Make the model's ``step``-th training step from now report a NaN loss (after its update)."""
    original, calls = model._train_batch, {"n": 0}

    def nan_at_that_step(*args, **kwargs):
        metrics = original(*args, **kwargs)
        calls["n"] += 1
        return {**metrics, "loss": float("nan")} if calls["n"] == step else metrics

    model._train_batch = nan_at_that_step


def test_divergence_after_a_fits_first_epoch_keeps_that_fits_run(data):
    """Only a fit's first epoch gives back the run from before the call: once an epoch under new
    settings is done (and counted in epochs_trained), a later divergence goes back to that
    epoch's end with the new run, its moments and settings, not to the old Adam run."""
    x, _ = data
    model = _model()
    model.fit(x, epochs=1, batch_size=32, seed=1, verbose=0)
    old, after = model.optimizers["model"], {}

    class Keep(Callback):
        def on_epoch_end(self, m, epoch, record):
            after["params"], after["run"] = m.flat.data.copy(), m.optimizers["model"]

    _nan_loss_at_step(model, 13)  # 10 batches an epoch: the second epoch of the fit below, batch 3
    with pytest.raises(mv.TrainingDiverged, match="at epoch 3, batch 3"):
        model.fit(x, epochs=3, batch_size=32, seed=1, verbose=0, optimizer="sgd", lr=1e-2, callbacks=[Keep()])
    assert model.epochs_trained == 2 and model.optimizers["model"] is after["run"] and after["run"] is not old
    assert model.optimizer_spec[0] == "sgd" and after["run"].t == 10
    np.testing.assert_array_equal(model.flat.data, after["params"])


@pytest.mark.parametrize("optimizer, options", [("adam", {}), ("sgd", {"momentum": 0.9})])
def test_a_diverged_epoch_rolls_back_every_optimizer_state_array(data, optimizer, options):
    """Every array of the optimizer's state (Adam's m and v, SGD's velocity) and its step count
    are put back as they were when the epoch began. Every divergence test ran SGD at momentum
    0, where the velocity is only the last gradient: a rollback that left it out passed them."""
    x, _ = data
    model = _model()
    kw = dict(batch_size=32, seed=1, verbose=0, optimizer=optimizer, lr=1e-2, **options)
    model.fit(x, epochs=1, **kw)
    start = {}

    class Keep(Callback):  # the end of the call's first epoch is the start of the one that diverges
        def on_epoch_end(self, m, epoch, record):
            opt = m.optimizers["model"]
            start.update(params=m.flat.data.copy(), t=opt.t, state={k: v.copy() for k, v in opt.state_arrays().items()})

    _nan_loss_at_step(model, 13)  # 10 batches an epoch: the second epoch of the fit below, batch 3
    with pytest.raises(mv.TrainingDiverged, match="at epoch 3, batch 3"):
        model.fit(x, epochs=2, callbacks=[Keep()], **kw)
    opt = model.optimizers["model"]
    assert opt.t == start["t"] == 20 and set(opt.state_arrays()) == set(start["state"])
    for key, value in opt.state_arrays().items():
        assert np.abs(start["state"][key]).max() > 0, key  # a state that an epoch moves
        np.testing.assert_array_equal(value, start["state"][key], err_msg=key)
    np.testing.assert_array_equal(model.flat.data, start["params"])


def test_divergence_names_epoch_and_batch_and_keeps_checkpoint(data, tmp_path):
    x, _ = data
    model = _model()
    ckpt = tmp_path / "good.npz"
    model.fit(x, epochs=1, batch_size=50, verbose=0, callbacks=[mv.ModelCheckpoint(ckpt)])
    saved = ckpt.read_bytes()
    good_params = model.flat.data.copy()

    # poison the model so that the 3rd batch of the next epoch produces NaN
    calls = {"n": 0}
    original = model._objective

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            model.flat.data[0] = np.nan
        return original(*args, **kwargs)

    model._objective = poisoned
    with pytest.raises(mv.TrainingDiverged, match=r"epoch 2, batch 3"):
        model.fit(x, epochs=3, batch_size=50, verbose=0, callbacks=[mv.ModelCheckpoint(ckpt)])
    assert ckpt.read_bytes() == saved  # the last good checkpoint is untouched
    assert np.all(np.isfinite(model.flat.data))  # and the model was rolled back to the epoch start
    np.testing.assert_array_equal(mv.load(ckpt).flat.data, good_params)


@pytest.mark.parametrize("clip_norm", [None, 1.0])
def test_divergence_advises_clipping_only_when_it_was_off(data, clip_norm):
    """An Inf gradient (finite loss, overflowing backward pass) gives Inf parameters; clipping
    cannot rescale it, so with clip_norm set the advice must not be "try gradient clipping"."""
    x, _ = data
    model = _model()
    original = model._objective

    def inf_gradient(*args, **kwargs):
        terms = original(*args, **kwargs)
        model.flat.grad[0] = np.inf
        return terms

    model._objective = inf_gradient
    with pytest.raises(mv.TrainingDiverged) as raised, np.errstate(over="ignore", invalid="ignore"):
        model.fit(x, epochs=1, batch_size=50, verbose=0, clip_norm=clip_norm)
    message = str(raised.value)
    if clip_norm is None:
        assert "Try a lower learning rate or gradient clipping (clip_norm)." in message
    else:
        assert "clip_norm)" not in message and "(gradient clipping was already on)" in message


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_first_loss_that_overflows_points_at_the_data_not_the_learning_rate(dtype):
    """Finite data of 1e20 overflows float32 squares (and float64 ones at 1e160) before any
    update: "try a lower learning rate" sent the user the wrong way. A later batch that overflows
    still gets the learning-rate advice."""
    scale = 1e20 if dtype == "float32" else 1e160
    x = np.random.default_rng(0).standard_normal((64, 4)) * scale
    model = mv.VAE(4, (8,), 2, likelihood="gaussian", seed=0, dtype=dtype)
    with pytest.raises(mv.TrainingDiverged) as raised, np.errstate(over="ignore", invalid="ignore"):
        model.fit(x, epochs=1, batch_size=32, verbose=0, shuffle=False)
    message = str(raised.value)
    largest = np.abs(x[:32]).max()
    assert "at epoch 1, batch 1:" in message and "learning rate is not the cause" in message
    assert f"values as large as {largest:.3g} in magnitude" in message and "lower learning rate" not in message
    assert ("dtype='float64'" in message) == (dtype == "float32")
    assert model.epochs_trained == 0
    x[:32] /= scale  # a first batch of ordinary size, a second that overflows: the usual advice
    with pytest.raises(mv.TrainingDiverged, match="at epoch 1, batch 2: .* Try a lower learning rate"), \
            np.errstate(over="ignore", invalid="ignore"):
        model.fit(x, epochs=1, batch_size=32, verbose=0, shuffle=False)


def test_an_overflowing_optimizer_state_is_divergence_too(data, tmp_path):
    """A gradient of 1e21 makes (1 − β₂)·g² Inf in float32: Adam's second moment became Inf and froze
    that parameter for good (every later update m/Inf = 0) while the loss and parameters stayed
    finite, so fit carried on, or a checkpoint callback failed on the Inf. Now the epoch is
    rolled back like any divergence."""
    x, _ = data
    model = _model()
    ckpt = tmp_path / "good.npz"
    model.fit(x, epochs=1, batch_size=50, verbose=0, callbacks=[mv.ModelCheckpoint(ckpt)])
    saved, good_params = ckpt.read_bytes(), model.flat.data.copy()
    adam = model.optimizers["model"]
    good_v = adam.v.copy()
    original, calls = model._objective, {"n": 0}

    def huge_gradient(*args, **kwargs):
        terms = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            model.flat.grad[0] = 1e21
        return terms

    model._objective = huge_gradient
    with pytest.raises(mv.TrainingDiverged, match=r"epoch 2: the optimizer's state became non-finite"):
        model.fit(x, epochs=2, batch_size=50, verbose=0, callbacks=[mv.ModelCheckpoint(ckpt)])
    assert ckpt.read_bytes() == saved and model.epochs_trained == 1
    np.testing.assert_array_equal(model.flat.data, good_params)
    np.testing.assert_array_equal(adam.v, good_v)


def test_parameters_made_non_finite_by_an_epochs_last_step_are_divergence_too(data, tmp_path):
    """An Inf gradient in the last batch leaves Inf parameters that no batch's loss shows, and an
    optimizer without state (a user's plain SGD) has no moments to show it either: the epoch is
    rolled back before a checkpoint can see them."""
    x, _ = data

    class PlainSGD(mv.optim.Optimizer):
        def _update(self):
            self.flat.data -= self.lr * self.flat.grad

    model = _model()
    ckpt = tmp_path / "never.npz"
    original, calls = model._objective, {"n": 0}

    def inf_gradient_in_the_last_batch(*args, **kwargs):
        terms = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 6:  # 300 rows in batches of 50
            model.flat.grad[0] = np.inf
        return terms

    model._objective = inf_gradient_in_the_last_batch
    before = model.flat.data.copy()
    with pytest.raises(mv.TrainingDiverged, match="in epoch 1: the parameters became non-finite"):
        model.fit(x, epochs=1, batch_size=50, verbose=0, optimizer=PlainSGD(model.flat, 1e-2, None),
                  callbacks=[mv.ModelCheckpoint(ckpt, include_optimizer=False)])
    assert not ckpt.exists() and model.epochs_trained == 0 and len(model.history) == 0
    np.testing.assert_array_equal(model.flat.data, before)


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_epoch_is_rolled_back_and_the_run_resumes_exactly(data, error, capsys):
    """Ctrl-C (or any error) in the middle of an epoch kept the epoch's first steps while
    epochs_trained and the history said it never happened: the next fit trained that epoch
    again on top of them, and step (which drives warm-ups) stayed off for good. Now the epoch
    is rolled back as for divergence, and its progress bar closed."""
    from tqdm.auto import tqdm

    x, _ = data
    kw = dict(batch_size=32, seed=1)
    straight = _model(beta_warmup=50)
    straight.fit(x, epochs=3, verbose=0, **kw)
    model = _model(beta_warmup=50)
    model.fit(x, epochs=1, verbose=0, **kw)
    params, step, t = model.flat.data.copy(), model.step, model.optimizers["model"].t
    original, calls = model._train_batch, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise error("stop")
        return original(*args, **kwargs)

    model._train_batch = interrupted
    with pytest.raises(error):
        model.fit(x, epochs=2, verbose=1, **kw)
    assert len(getattr(tqdm, "_instances", ())) == 0  # no bar left open to shift the next one
    np.testing.assert_array_equal(model.flat.data, params)
    assert (model.step, model.optimizers["model"].t, model.epochs_trained, len(model.history)) == (step, t, 1, 1)
    del model._train_batch
    model.fit(x, epochs=2, verbose=0, **kw)
    np.testing.assert_array_equal(model.flat.data, straight.flat.data)
    assert model.step == straight.step and model.history["loss"] == straight.history["loss"]
    capsys.readouterr()


def test_a_fit_that_fails_before_training_changes_no_setting(data):
    """A callback's on_train_begin raising (or a bad $MICROVAE_NUM_THREADS) came after fit had
    replaced the optimizer run and the seed: a call that trained nothing threw the moments away,
    and its lr and seed carried into the next fit."""
    x, _ = data
    model = _model()
    model.fit(x, epochs=1, batch_size=32, verbose=0)
    run, spec, seed = model.optimizers["model"], model.optimizer_spec, model.train_seed

    class FailsAtBegin(Callback):
        def on_train_begin(self, model):
            raise OSError("no room for the log")

    with pytest.raises(OSError, match="no room"):
        model.fit(x, epochs=1, batch_size=32, verbose=0, lr=1e-2, seed=7, callbacks=[FailsAtBegin()])
    assert model.optimizers["model"] is run and model.optimizer_spec == spec and model.train_seed == seed


def test_on_train_begin_sees_the_run_and_its_draws_change_nothing_the_run_does(data):
    """The hooks ran before the training seed was drawn: for a model without a seed, a
    callback whose on_train_begin called sample() changed the whole run. They now run with
    the run set up: its seed drawn and its optimizers (at fit's lr) in model.optimizers."""
    x, _ = data

    class Peek(Callback):
        def on_train_begin(self, model):
            model.sample(4)
            self.lr = model.optimizers["model"].lr

    runs = []
    for callbacks in ([], [Peek()]):
        model = mv.VAE(16, (12,), 2, backend=mv.Backend("numpy", dtype="float32", seed=3))
        model.fit(x, epochs=2, batch_size=32, verbose=0, lr=2e-3, callbacks=callbacks)
        runs.append(model)
    assert runs[1].train_seed == runs[0].train_seed
    np.testing.assert_array_equal(runs[1].flat.data, runs[0].flat.data)
    assert callbacks[0].lr == 2e-3


def test_a_failing_on_train_begin_leaves_the_generator_so_the_next_fit_is_the_same_run(data):
    x, _ = data

    class FailsAtBegin(Callback):
        def on_train_begin(self, model):
            raise OSError("no room for the log")

    plain = mv.VAE(16, (12,), 2, backend=mv.Backend("numpy", dtype="float32", seed=3))
    plain.fit(x, epochs=1, batch_size=32, verbose=0)
    retried = mv.VAE(16, (12,), 2, backend=mv.Backend("numpy", dtype="float32", seed=3))
    with pytest.raises(OSError, match="no room"):
        retried.fit(x, epochs=1, batch_size=32, verbose=0, callbacks=[FailsAtBegin()])
    assert retried.train_seed is None and retried.optimizers == {}
    retried.fit(x, epochs=1, batch_size=32, verbose=0)
    assert retried.train_seed == plain.train_seed
    np.testing.assert_array_equal(retried.flat.data, plain.flat.data)


@pytest.mark.parametrize("hook", ["on_train_begin", "on_train_end"])
def test_fit_from_the_begin_or_end_hook_is_refused_too(data, hook):
    """Only on_epoch_end's was refused: from on_train_begin a whole nested fit ran first."""
    x, _ = data
    model = _model()
    nested = type("Nested", (Callback,), {hook: lambda self, model: model.fit(x, epochs=1, batch_size=64, verbose=0)})
    with pytest.raises(RuntimeError, match="fit was called while this model's fit is running"):
        model.fit(x, epochs=2, batch_size=64, verbose=0, callbacks=[nested()])
    assert model.history["epoch"] == ([] if hook == "on_train_begin" else [1, 2])
    model.fit(x, epochs=1, batch_size=64, verbose=0)  # and it trains afterwards
    assert model.epochs_trained == (1 if hook == "on_train_begin" else 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_reads_data_in_the_models_dtype_where_they_are_and_others_from_a_copy(data, dtype):
    """As fit's docstring says: a float32 model reads float32 data in place (no copy of the
    training set), so a change made by a callback reaches later epochs; float64 data were
    converted once, so it does not."""
    x = data[0].astype(dtype)

    class Flip(Callback):
        def on_epoch_end(self, model, epoch, record):
            x[:] = 1 - x

    runs = []
    for callbacks in ([], [Flip()]):
        model = _model()
        model.fit(x.copy() if not callbacks else x, epochs=2, batch_size=32, verbose=0, callbacks=callbacks)
        runs.append(model.history["loss"])
    assert runs[0][0] == runs[1][0]
    assert (runs[0][1] != runs[1][1]) == (dtype == np.float32)


def test_fit_from_inside_the_same_models_fit_is_refused(data):
    """It trained, then the outer loop went on with its own epoch numbers: history [1, 2, 2, 3]."""
    x, _ = data
    model = _model()

    class Nested(Callback):
        def on_epoch_end(self, model, epoch, record):
            model.fit(x, epochs=1, batch_size=64, verbose=0)

    with pytest.raises(RuntimeError, match="fit was called while this model's fit is running"):
        model.fit(x, epochs=3, batch_size=64, verbose=0, callbacks=[Nested()])
    assert model.history["epoch"] == [1] and model.epochs_trained == 1
    model.fit(x, epochs=1, batch_size=64, verbose=0)  # and it trains again afterwards
    assert model.history["epoch"] == [1, 2]


def test_a_non_finite_validation_loss_is_divergence_too(data, tmp_path):
    """Parameters finite but extreme can overflow on the validation data alone (seen with a
    learning rate of 1e9); the epoch is rolled back and no checkpoint sees it."""
    x, _ = data
    model = _model()
    ckpt = tmp_path / "good.npz"
    model.fit(x, epochs=1, batch_size=50, verbose=0, validation_data=x[:20], callbacks=[mv.ModelCheckpoint(ckpt)])
    saved, good_params = ckpt.read_bytes(), model.flat.data.copy()
    original = model._evaluate_arrays

    def overflowing(*args, **kwargs):
        return {**original(*args, **kwargs), "kl": float("inf")}

    model._evaluate_arrays = overflowing
    with pytest.raises(mv.TrainingDiverged, match=r"epoch 2: the validation loss is non-finite \(val_kl=inf\)"):
        model.fit(x, epochs=3, batch_size=50, verbose=0, validation_data=x[:20], callbacks=[mv.ModelCheckpoint(ckpt)])
    assert ckpt.read_bytes() == saved and model.epochs_trained == 1 and len(model.history) == 1
    np.testing.assert_array_equal(model.flat.data, good_params)


def test_checkpoint_every_n_epochs(data, tmp_path):
    x, _ = data
    cb = mv.ModelCheckpoint(tmp_path / "ep{epoch}.npz", every=2)
    _model().fit(x, epochs=5, batch_size=100, verbose=0, callbacks=[cb])
    assert sorted(os.listdir(tmp_path)) == ["ep2.npz", "ep4.npz"]
    assert cb.saved == [str(tmp_path / "ep2.npz"), str(tmp_path / "ep4.npz")]
    assert mv.load(tmp_path / "ep4.npz").epochs_trained == 4


def test_checkpoint_without_optimizer_state(data, tmp_path):
    """include_optimizer=False: the files hold no moments, and an Optimizer instance (which
    cannot be checkpointed) trains with the callback."""
    x, _ = data
    model = _model()
    model.fit(x, epochs=1, batch_size=100, verbose=0, callbacks=[mv.ModelCheckpoint(tmp_path / "a.npz", include_optimizer=False)])
    assert mv.load(tmp_path / "a.npz").optimizers == {}
    model.fit(x, epochs=1, batch_size=100, verbose=0, optimizer=mv.Adam(model.flat, 1e-3),
              callbacks=[mv.ModelCheckpoint(tmp_path / "b.npz", include_optimizer=False)])
    assert mv.load(tmp_path / "b.npz").epochs_trained == 2


def test_early_stopping_on_validation_loss(data):
    x, x_val = data
    model = _model()
    stopper = mv.EarlyStopping(patience=0, min_delta=1e9)  # nothing counts as improvement after epoch 1
    history = model.fit(x, epochs=10, batch_size=64, validation_data=x_val, verbose=0, callbacks=[stopper])
    assert len(history) == 2 and stopper.stopped_epoch == 2 and stopper.best_epoch == 1


def test_early_stopping_restores_best_parameters(data):
    x, x_val = data
    model = _model()
    best = {}

    class Spy(mv.training.Callback):
        def on_epoch_end(self, m, epoch, record):
            if epoch == 1:
                best["params"] = m.flat.data.copy()

    model.fit(x, epochs=5, batch_size=64, validation_data=x_val, verbose=0,
              callbacks=[Spy(), mv.EarlyStopping(patience=0, min_delta=1e9, restore_best=True)])
    np.testing.assert_array_equal(model.flat.data, best["params"])


def _drive(stopper, values, model):
    """Feed ``stopper`` one monitored value per epoch, with the parameters set to the epoch
    number, as fit would; return the last epoch run."""
    stopper.on_train_begin(model)
    for epoch, value in enumerate(values, 1):
        model.flat.data[...] = epoch
        if stopper.on_epoch_end(model, epoch, {"val_loss": value}):
            break
    stopper.on_train_end(model)
    return epoch


@pytest.mark.parametrize("patience", [0, 1, 3])
def test_early_stopping_stops_after_patience_epochs_without_improvement(patience):
    model = _model()
    stopper = mv.EarlyStopping(patience=patience)
    last = _drive(stopper, [5.0, 4.0] + [4.0] * 10, model)
    assert last == stopper.stopped_epoch == 2 + patience + 1  # patience epochs tolerated, the next one stops
    assert stopper.best_epoch == 2 and (model.flat.data == 2).all()


def test_early_stopping_counts_only_improvements_beyond_min_delta():
    stopper = mv.EarlyStopping(patience=1, min_delta=0.1)
    assert _drive(stopper, [5.0, 4.95, 4.92, 4.0, 3.95, 3.91], _model()) == 3
    assert stopper.best_epoch == 1 and stopper.best == 5.0
    stopper = mv.EarlyStopping(patience=1, min_delta=0.1)
    assert _drive(stopper, [5.0, 4.85, 4.7, 4.55], _model()) == 4 and stopper.stopped_epoch is None


def test_early_stopping_in_max_mode_keeps_the_highest_value():
    """mode="max" for a metric where higher is better (an accuracy a callback records): the
    mirror image of the min-mode cases above, min_delta included."""
    model = _model()
    stopper = mv.EarlyStopping(patience=1, min_delta=0.1, mode="max")
    assert stopper.best == -math.inf
    assert _drive(stopper, [0.5, 0.7, 0.75, 0.65, 0.9], model) == 4  # 0.75 is within min_delta of 0.7
    assert (stopper.best, stopper.best_epoch, stopper.stopped_epoch) == (0.7, 2, 4) and (model.flat.data == 2).all()
    # the same values in min mode: only the first epoch ever counts as the best
    assert _drive(mv.EarlyStopping(patience=1, min_delta=0.1), [0.5, 0.7, 0.75, 0.65, 0.9], _model()) == 3
    # NaN never improves on anything, in either mode
    nan_stopper = mv.EarlyStopping(patience=0, mode="max")
    assert _drive(nan_stopper, [0.5, math.nan, 0.9], _model()) == 2 and nan_stopper.best_epoch == 1


class _ShapedLikeAScalar:
    """Has a 0-d shape but no dtype: not an array, so not read as a number (nor its .item() called)."""
    shape = ()

    def item(self):
        raise AssertionError("item() was called on a value that is no array")

    def __repr__(self):
        return "_ShapedLikeAScalar()"


@pytest.mark.parametrize("value", [None, "high", True, [0.5], np.ones(2), np.asarray(True), _ShapedLikeAScalar()])
def test_early_stopping_names_its_metric_when_a_callback_records_no_number(data, value):
    """A metric of one's own recorded as None or a string met the comparison as "'<' not
    supported between instances of 'NoneType' and 'float'", naming neither EarlyStopping nor
    the metric; True compared as 1."""

    class Odd(Callback):
        records = ("acc",)

        def on_epoch_end(self, model, epoch, record):
            record["acc"] = value

    x, _ = data
    with pytest.raises(TypeError, match=rf"^EarlyStopping monitors 'acc', which must be a number every epoch; epoch 1's "
                                        rf"record has acc={re.escape(repr(value))}$"):
        _model().fit(x, epochs=2, batch_size=100, verbose=0, callbacks=[Odd(), mv.EarlyStopping(monitor="acc", mode="max")])


def test_early_stopping_takes_numpy_scalars_and_0d_arrays_as_numbers():
    """What np.mean or a CuPy reduction returns for a metric of one's own: a NumPy scalar, or a
    0-d array, compared as its number."""
    stopper = mv.EarlyStopping(patience=0, mode="max")
    assert _drive(stopper, [np.float32(0.5), np.asarray(0.7), np.int64(0), np.asarray(0.9)], _model()) == 3
    assert (stopper.best, stopper.best_epoch) == (0.7, 2) and type(stopper.best) is float


@pytest.mark.parametrize("mode", ["auto", "MAX", None, "lower"])
def test_early_stopping_refuses_a_mode_other_than_min_or_max(mode):
    with pytest.raises(ValueError, match="mode must be 'min' .* or 'max'"):
        mv.EarlyStopping(mode=mode)


class _Accuracy(Callback):
    """A metric of one's own, higher is better: best at epoch 2."""
    records = ("acc",)

    def on_epoch_end(self, model, epoch, record):
        record["acc"] = [0.5, 0.9, 0.6, 0.6, 0.6][epoch - 1]


def test_early_stopping_monitors_a_metric_that_a_callback_before_it_records(data):
    x, _ = data
    model = _model()
    stopper = mv.EarlyStopping(monitor="acc", patience=1, mode="max")
    history = model.fit(x, epochs=5, batch_size=100, verbose=0, callbacks=[_Accuracy(), stopper])
    assert history["acc"] == [0.5, 0.9, 0.6, 0.6] and (stopper.best_epoch, stopper.stopped_epoch) == (2, 4)


def test_early_stopping_refuses_before_training_a_metric_recorded_only_after_it_or_not_declared(data):
    """After EarlyStopping in the list, the callback sets its key too late for it; without
    ``records`` fit cannot know the key will be there. Both are refused before any step."""
    x, _ = data

    class Undeclared(_Accuracy):
        records = ()

    for callbacks in ([mv.EarlyStopping(monitor="acc", mode="max"), _Accuracy()],
                      [Undeclared(), mv.EarlyStopping(monitor="acc", mode="max")]):
        model = _model()
        before = model.flat.data.copy()
        with pytest.raises(ValueError, match="monitors 'acc', which this run will not record.*records of the callback"):
            model.fit(x, epochs=2, batch_size=100, verbose=0, callbacks=callbacks)
        assert model.epochs_trained == 0 and np.array_equal(model.flat.data, before)


@pytest.mark.parametrize("records", ["acc", ("acc", 1), {"acc": 1}, None])
def test_a_callback_whose_records_are_not_names_is_refused(data, records):
    x, _ = data
    callback = _Accuracy()
    callback.records = records
    with pytest.raises(TypeError, match="records must be a tuple of the names"):
        _model().fit(x, epochs=1, batch_size=100, verbose=0, callbacks=[callback])


def test_early_stopping_counts_epochs_without_improvement_in_a_row():
    """An improvement starts the count again: patience=1 never stops a run that improves every other epoch."""
    stopper = mv.EarlyStopping(patience=1)
    assert _drive(stopper, [5.0, 5.0, 4.0, 4.0, 3.0, 3.0, 2.0], _model()) == 7
    assert stopper.stopped_epoch is None and stopper.best_epoch == 7


def test_early_stopping_starts_afresh_in_each_fit():
    """One EarlyStopping in two fits: the second does not measure itself against the first's best."""
    model = _model()
    stopper = mv.EarlyStopping(patience=1)
    _drive(stopper, [3.0, 2.0, 1.0], model)
    assert stopper.restored_epoch is None  # the first fit's last epoch was its best
    assert _drive(stopper, [10.0, 9.0, 9.5, 9.5], model) == 4
    assert (stopper.best, stopper.best_epoch, stopper.stopped_epoch) == (9.0, 2, 4) and (model.flat.data == 2).all()
    assert stopper.restored_epoch == 2


def test_a_callback_that_stops_is_not_overruled_by_the_next_and_every_callback_sees_the_last_epoch(data):
    x, _ = data
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, model, epoch, record):
            seen.append(epoch)  # returns None: "go on"

    stopper = mv.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    history = _model().fit(x, epochs=5, batch_size=100, verbose=0, callbacks=[stopper, Spy()])
    assert len(history) == 2 and stopper.stopped_epoch == 2 and seen == [1, 2]


@pytest.mark.parametrize("options, error, message", [
    ({"min_delta": float("nan")}, ValueError, "min_delta must be a finite number >= 0"),
    ({"min_delta": float("inf")}, ValueError, "min_delta must be a finite number >= 0"),
    ({"min_delta": -0.5}, ValueError, "min_delta must be a finite number >= 0"),
    ({"min_delta": "0.1"}, TypeError, "min_delta must be a finite number >= 0"),
    ({"restore_best": "no"}, TypeError, "restore_best must be True or False"),
])
def test_early_stopping_refuses_settings_that_would_quietly_do_something_else(options, error, message):
    """min_delta=NaN made no epoch an improvement: it stopped after patience + 1 epochs and
    restored nothing; "no" is a true value."""
    with pytest.raises(error, match=message):
        mv.EarlyStopping(monitor="loss", **options)


@pytest.mark.parametrize("restore_best,expected", [(True, 2), (False, 5)])
def test_early_stopping_restores_the_best_epoch_also_when_the_run_ends_without_stopping(restore_best, expected):
    model = _model()
    stopper = mv.EarlyStopping(patience=10, restore_best=restore_best)
    assert _drive(stopper, [5.0, 1.0, 4.0, 4.0, 4.0], model) == 5 and stopper.stopped_epoch is None
    assert (model.flat.data == expected).all()
    assert stopper.restored_epoch == (2 if restore_best else None)


def test_early_stopping_keeps_the_last_parameters_when_the_last_epoch_is_the_best():
    model = _model()
    stopper = mv.EarlyStopping(patience=0)
    assert _drive(stopper, [5.0, 4.0, 3.0], model) == 3 and stopper.best_epoch == 3
    assert (model.flat.data == 3).all() and stopper.restored_epoch is None  # nothing to put back


def test_early_stopping_without_validation_is_a_clear_error(data):
    x, _ = data
    with pytest.raises(ValueError, match="validation_data"):
        _model().fit(x, epochs=2, verbose=0, callbacks=[mv.EarlyStopping()])


def test_verbose_prints_one_summary_line_per_epoch(data, capsys):
    x, _ = data
    _model().fit(x, epochs=2, batch_size=100, verbose=2)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    assert len(lines) == 2 and "loss" in lines[0] and lines[1].startswith("epoch 2/2")
    _model().fit(x, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_bar_shows_running_loss(data, capsys):
    x, _ = data
    _model().fit(x, epochs=1, batch_size=10, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err


@pytest.mark.parametrize("verbose", [0, 2])
def test_no_progress_bar_object_unless_shown(data, monkeypatch, verbose):
    # a disabled tqdm bar still starts tqdm's monitor thread, so none is made at all
    import tqdm.auto

    def no_bar(*args, **kwargs):
        raise AssertionError("fit made a tqdm bar with verbose != 1")

    monkeypatch.setattr(tqdm.auto, "tqdm", no_bar)
    x, _ = data
    history = _model().fit(x, epochs=2, batch_size=100, verbose=verbose)
    assert len(history) == 2


def test_history_files(data, tmp_path):
    x, _ = data
    history = _model().fit(x, epochs=2, batch_size=100, verbose=0)
    history.to_json(tmp_path / "h.json")
    history.to_csv(tmp_path / "h.csv")
    assert json.loads((tmp_path / "h.json").read_text())[1]["epoch"] == 2
    rows = (tmp_path / "h.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss") and len(rows) == 3


@pytest.mark.parametrize("kwargs, error", [({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"),
                                           ({"optimizer": "rmsprop"}, "optimizer"), ({"lr": -1.0}, "learning rate"),
                                           ({"verbose": 3}, "verbose must be 0"), ({"verbose": "x"}, "verbose must be 0")])
def test_bad_fit_arguments(data, kwargs, error):
    x, _ = data
    with pytest.raises(ValueError, match=error):
        _model().fit(x, **{"epochs": 1, "verbose": 0, **kwargs})


@pytest.mark.parametrize("kwargs, message", [
    ({"shuffle": "no"}, "shuffle must be True or False"),
    ({"callbacks": mv.EarlyStopping(monitor="loss")}, r"callbacks must be a list of callbacks, e.g. callbacks=\[EarlyStopping\(\)\]"),
    ({"callbacks": 3}, "callbacks must be a list of callbacks"),
    ({"callbacks": "abc"}, "callbacks must be a list of callbacks"),  # was list("abc"), then an AttributeError
    ({"callbacks": [mv.EarlyStopping(monitor="loss"), "abc"]}, r"callbacks: 'abc' is not a callback; a callback subclasses "
                                                               r"microvae.Callback or has at least one of the methods"),
])
def test_fit_arguments_of_the_wrong_type_are_named(data, kwargs, message):
    x, _ = data
    model = _model()
    with pytest.raises(TypeError, match=message):
        model.fit(x, epochs=1, verbose=0, **kwargs)
    assert model.step == 0


def test_history_files_go_into_folders_made_for_them(data, tmp_path):
    history = _model().fit(data[0], epochs=1, batch_size=100, verbose=0)
    history.to_json(tmp_path / "new" / "h.json")
    history.to_csv(tmp_path / "other" / "h.csv")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["h.csv", "h.json"]


def test_bad_training_data_is_rejected_before_training(data):
    x, _ = data
    bad = x.copy()
    bad[7, 3] = np.nan
    model = _model()
    before = model.flat.data.copy()
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.flat.data, before)
    with pytest.raises(ValueError, match="validation"):
        model.fit(x, epochs=1, verbose=0, validation_data=x[:, :5])


def test_evaluate_takes_the_capacity_term_on_the_mean_kl():
    # β·|KL − C| is nonlinear in KL: averaged over batches it would depend on batch_size; it is
    # taken on the dataset's mean KL (batches of one example make the difference plain)
    x = np.random.default_rng(0).random((50, 10))
    capacity = mv.VAE(10, (8,), 2, dtype="float64").evaluate(x)["kl"]  # KL has no noise: per-example KLs straddle it
    model = mv.VAE(10, (8,), 2, capacity=capacity, beta=4.0, dtype="float64")  # the same initial parameters
    for batch_size in (1, 7, 64):
        means = model.evaluate(x, batch_size=batch_size)
        assert means["kl"] == pytest.approx(capacity, rel=1e-12)
        assert means["loss"] == pytest.approx(means["recon"], rel=1e-12)  # β·|KL − C| = 0 on the mean


# second mutation review of training and checkpoints -------------------------------------------

def test_a_callback_that_stops_in_a_fits_first_epoch_ends_the_fit_there(data):
    """A True from on_epoch_end stops at once, also after the first epoch of a call (a stop
    honoured only from the second epoch on trained one epoch too many)."""
    x, _ = data

    class StopNow(Callback):
        def on_epoch_end(self, model, epoch, record):
            return True

    model = _model()
    history = model.fit(x, epochs=5, batch_size=100, verbose=0, callbacks=[StopNow()])
    assert len(history) == 1 and model.epochs_trained == 1
    model.fit(x, epochs=5, batch_size=100, verbose=0, callbacks=[StopNow()])  # and in a later call's first epoch
    assert model.epochs_trained == 2 and history["epoch"] == [1, 2]


def test_a_new_seed_starts_a_new_run_seed(data):
    """fit(seed=7) on a model trained with seed 3 trains on with seed 7 (and a later fit()
    keeps 7): an explicit seed is never overruled by the run's old one."""
    x, _ = data
    kw = dict(batch_size=32, verbose=0)
    model, old = _model(), _model()
    model.fit(x, epochs=1, seed=3, **kw)
    old.fit(x, epochs=2, seed=3, **kw)
    model.fit(x, epochs=1, seed=7, **kw)
    assert model.train_seed == 7 and not np.array_equal(model.flat.data, old.flat.data)
    model.fit(x, epochs=1, **kw)
    assert model.train_seed == 7


def test_divergence_in_a_fits_first_epoch_gives_back_the_runs_seed(data):
    """The run a failed first epoch gives back includes its seed: fit(seed=9) that diverges at
    once leaves seed 3, so a later fit() continues the seed-3 run, not a seed-9 one."""
    x, _ = data
    model = _model()
    model.fit(x, epochs=1, batch_size=32, seed=3, verbose=0)
    _diverging_fit(model, x, epoch=2, seed=9)
    assert model.train_seed == 3


def test_the_divergence_message_names_the_epoch_restored_to(data):
    """"restored to their values at the start of epoch 2": the epoch that failed, whose start
    the model is back at (and epochs_trained says 1)."""
    x, _ = data
    model = _model(likelihood="gaussian-learned")
    model.fit(x, epochs=1, batch_size=32, seed=1, verbose=0)
    with pytest.raises(mv.TrainingDiverged, match="restored to their values at the start of epoch 2;"):
        with np.errstate(over="ignore", invalid="ignore"):
            model.fit(x, epochs=1, batch_size=32, verbose=0, optimizer="sgd", lr=1e6)
    assert model.epochs_trained == 1


def test_epoch_seeds_differ_for_every_epoch_and_stream():
    """epoch_seed(seed, e, stream) mixes all three: a seed built from epoch + stream made the
    noise of epoch e the order of epoch e + 1."""
    from microvae.training import epoch_seed

    seeds = [epoch_seed(s, e, k) for s in (0, 1) for e in range(1, 30) for k in (0, 1)]
    assert len(set(seeds)) == len(seeds) and all(0 <= v < 2**63 for v in seeds)


def test_an_epochs_noise_and_its_order_come_from_different_streams(data, monkeypatch):
    """The backend's noise generator of epoch e is seeded with epoch_seed(seed, e, 1), the
    shuffle with stream 0: one seed for both would draw correlated order and noise (and a
    changed stream would not continue a checkpoint of this version exactly)."""
    from microvae.training import epoch_seed

    x, _ = data
    model = _model()
    seeded, original = [], model.backend.seed
    monkeypatch.setattr(model.backend, "seed", lambda s: (seeded.append(s), original(s))[1])
    model.fit(x, epochs=3, batch_size=100, seed=4, verbose=0)
    assert seeded == [epoch_seed(4, e, 1) for e in (1, 2, 3)]
    assert not set(seeded) & {epoch_seed(4, e, 0) for e in (1, 2, 3)}


def test_without_shuffling_every_epoch_takes_the_rows_in_order(data):
    x, _ = data
    model = _model()
    batches, original = [], model._train_batch

    def spy(batch, optimizers):
        batches.append(batch[0].copy())
        return original(batch, optimizers)

    model._train_batch = spy
    model.fit(x, epochs=2, batch_size=100, shuffle=False, verbose=0)
    assert len(batches) == 6
    for i, batch in enumerate(batches):
        np.testing.assert_array_equal(batch, x[(i % 3) * 100:(i % 3 + 1) * 100])


def test_the_summary_line_lists_the_metrics_and_the_epochs_seconds(data, capsys):
    """"epoch 1/2  loss …  recon …  kl …  0.01s": the epoch number is not repeated as a metric."""
    x, _ = data
    history = _model().fit(x, epochs=2, batch_size=100, verbose=2)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    number = r"-?\d+\.\d{4}"
    assert re.fullmatch(rf"epoch 1/2  loss {number}  recon {number}  kl {number}  \d+\.\d\ds", lines[0]), lines[0]
    assert all(s > 0 for s in history["seconds"])  # every epoch timed, the first too


def test_a_csv_history_has_a_column_for_a_key_only_later_epochs_have(tmp_path):
    """A metric that first appears in a later record (a callback's, validation from a later
    fit) gets its column, empty in the epochs that lack it."""
    history = mv.History([{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5, "val_loss": 1.7}])
    history.to_csv(tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text().splitlines() == ["epoch,loss,val_loss", "1,2.0,", "2,1.5,1.7"]


def test_early_stopping_restores_every_parameter_group():
    """An AAE trains three parameter groups (autoencoder, discriminator, generator): restoring
    the best epoch puts back all of them, not only the first."""
    model = mv.AAE(16, (8,), 2, disc_hidden=(4,), seed=0)
    groups = model.parameter_groups()
    assert len(groups) > 1
    stopper = mv.EarlyStopping(patience=5)
    stopper.on_train_begin(model)
    for epoch, value in enumerate([5.0, 1.0, 4.0], 1):
        for flat in groups.values():
            flat.data[...] = epoch
        stopper.on_epoch_end(model, epoch, {"val_loss": value})
    stopper.on_train_end(model)
    assert stopper.best_epoch == 2 and all((flat.data == 2).all() for flat in groups.values())


def test_early_stopping_called_without_its_metric_names_it():
    """Driven directly (a duck-typed loop, no fit to check the run first), a record without the
    monitored metric is a KeyError that says what to pass."""
    stopper = mv.EarlyStopping()
    stopper.on_train_begin(_model())
    with pytest.raises(KeyError, match="monitors 'val_loss'.*pass validation_data or monitor='loss'"):
        stopper.on_epoch_end(_model(), 1, {"epoch": 1, "loss": 1.0})


def test_without_restoring_early_stopping_still_names_the_best_epoch():
    """restore_best=False only keeps the last parameters; best_epoch still says which was best."""
    stopper = mv.EarlyStopping(patience=10, restore_best=False)
    _drive(stopper, [5.0, 1.0, 4.0], _model())
    assert stopper.best_epoch == 2 and stopper.best == 1.0


def test_a_first_fit_without_a_seed_uses_the_models_seed(data):
    """A new model's first fit() draws its orders and noise from the seed the model was built
    with, as fit(seed=<that seed>) does, not from seed 0."""
    x, _ = data
    kw = dict(epochs=1, batch_size=32, verbose=0)
    implicit, explicit, zero = (mv.VAE(16, (12,), 2, seed=5) for _ in range(3))
    implicit.fit(x, **kw)
    explicit.fit(x, seed=5, **kw)
    zero.fit(x, seed=0, **kw)
    assert implicit.train_seed == 5
    np.testing.assert_array_equal(implicit.flat.data, explicit.flat.data)
    assert not np.array_equal(implicit.flat.data, zero.flat.data)


def test_the_restored_best_parameters_are_the_ones_the_model_computes_with(data):
    """Restoring writes into the model's own parameter buffer, which its layers view: the
    model then computes as at the best epoch (a new array bound to flat.data showed the best
    values while every layer still used the last epoch's)."""
    x, x_val = data
    model = _model()
    best = {}

    class Spy(Callback):
        def on_epoch_end(self, m, epoch, record):
            if epoch == 1:
                best["loss"] = m.evaluate(x_val, seed=0)["loss"]

    model.fit(x, epochs=3, batch_size=64, validation_data=x_val, verbose=0,
              callbacks=[Spy(), mv.EarlyStopping(patience=5, min_delta=1e9)])
    assert model.evaluate(x_val, seed=0)["loss"] == best["loss"]


def test_a_checkpoint_path_given_as_bytes_is_decoded_not_written_under_its_repr():
    """A bytes path is decoded as open() would take it (tests/test_paths.py has the rest); it was
    once refused, and before that written under the name "b'...'"."""
    assert mv.ModelCheckpoint(b"ckpt_{epoch}.npz").path == "ckpt_{epoch}.npz"


def test_a_history_made_from_a_list_keeps_its_own_copy():
    records = [{"epoch": 1, "loss": 2.0}]
    history = mv.History(records)
    history.append({"epoch": 2, "loss": 1.0})
    assert len(records) == 1 and len(history) == 2


def test_a_one_epoch_history_names_an_unknown_key_too():
    with pytest.raises(KeyError, match="no epoch recorded 'lss'"):
        mv.History([{"epoch": 1, "loss": 2.0}])["lss"]


def test_a_duck_typed_callback_needs_only_the_hooks_it_uses(data):
    """fit called on_train_begin on every callback, so an object with on_epoch_end alone
    raised AttributeError before the first epoch."""
    x, _ = data
    seen = []

    class StopAfterTwo:
        def on_epoch_end(self, model, epoch, record):
            seen.append((epoch, record["epoch"]))
            return epoch == 2

    class Ends:
        def on_train_end(self, model):
            seen.append("end")

    model = _model()
    model.fit(x, epochs=5, verbose=0, callbacks=[StopAfterTwo(), Ends()])
    assert seen == [(1, 1), (2, 2), "end"] and model.epochs_trained == 2
    assert issubclass(mv.EarlyStopping, mv.Callback) and mv.Callback is Callback


def test_a_model_built_without_a_seed_trains_with_fresh_entropy_kept_for_the_run(data):
    """seed=None means fresh entropy everywhere; fit fell back to seed 0, so every such model
    shuffled and drew its noise as a seed-0 one. The seed drawn is kept: the run continues
    exactly. A model built on a seeded Backend draws it from that stream: the same each time."""
    x, _ = data
    start = _model().flat.data.copy()
    models = []
    for _ in range(2):
        model = mv.VAE(16, (12,), 2, seed=None)
        model.flat.data[:] = start  # the same initial weights: only the training seed differs
        model.fit(x, epochs=1, verbose=0)
        models.append(model)
    seeded = _model()
    seeded.fit(x, epochs=1, verbose=0)
    first, second = models
    assert isinstance(first.train_seed, int) and first.train_seed != second.train_seed
    assert not np.array_equal(first.flat.data, second.flat.data)
    assert not np.array_equal(first.flat.data, seeded.flat.data) and seeded.train_seed == 0
    # the run continues with the seed it drew: two epochs in one go equal one and one
    again = mv.VAE(16, (12,), 2, seed=None)
    again.flat.data[:] = start
    again.fit(x, epochs=2, verbose=0, seed=first.train_seed)
    first.fit(x, epochs=1, verbose=0)
    np.testing.assert_array_equal(first.flat.data, again.flat.data)
    on_backend = [mv.VAE(16, (12,), 2, backend=mv.Backend("numpy", seed=3)) for _ in range(2)]
    for model in on_backend:
        model.fit(x, epochs=1, verbose=0)
    assert on_backend[0].train_seed == on_backend[1].train_seed != 0
    np.testing.assert_array_equal(on_backend[0].flat.data, on_backend[1].flat.data)


# --- what callbacks get, and which callbacks fit takes ----------------------------------------


@pytest.fixture
def x(data):
    return data[0][:64]


def test_a_key_a_callback_sets_on_its_record_reaches_the_history_and_its_files(tmp_path, x):
    """on_epoch_end gets the history's own record: a key set on it (Keras style, here a NumPy
    scalar) is kept in the history, the checkpoint and history.json, not dropped with a copy."""
    class LogLR(Callback):
        def on_epoch_end(self, model, epoch, record):
            record["lr"] = np.float32(model.optimizers["model"].lr)

    model = _model()
    ckpt = mv.ModelCheckpoint(tmp_path / "m.npz")
    model.fit(x, epochs=2, batch_size=16, verbose=0, callbacks=[LogLR(), ckpt])
    assert model.history["lr"] == [np.float32(1e-3)] * 2
    assert mv.load(tmp_path / "m.npz").history["lr"] == pytest.approx([1e-3] * 2)
    model.history.to_json(tmp_path / "h.json")
    assert [r["lr"] for r in json.loads((tmp_path / "h.json").read_text())] == pytest.approx([1e-3] * 2)


def test_history_to_json_refuses_a_value_json_cannot_hold_and_keeps_the_file(tmp_path):
    path = tmp_path / "h.json"
    path.write_text("earlier")
    with pytest.raises(TypeError, match=r"a history value must be a number, a string or None \(JSON\), got <object .*> of type object"):
        mv.History([{"epoch": 1, "loss": 2.0, "what": object()}]).to_json(path)
    assert path.read_text() == "earlier"


def test_history_to_json_writes_non_finite_values_as_null(tmp_path):
    """JSON has no NaN or Infinity: Python's json would write bare NaN tokens that other readers
    refuse; they are written as null, Python's and NumPy's alike, and the file is strict JSON."""
    path = tmp_path / "h.json"
    records = [{"epoch": 1, "loss": 2.5, "test_elbo": float("nan"), "kl": np.float32("inf"), "gap": -np.inf, "note": "ok"}]
    mv.History(records).to_json(path)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    strict = json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    assert strict == [{"epoch": 1, "loss": 2.5, "test_elbo": None, "kl": None, "gap": None, "note": "ok"}]
    assert records[0]["test_elbo"] != records[0]["test_elbo"]  # the history itself keeps its NaN


def test_history_to_json_writes_non_finite_values_inside_lists_as_null_too(tmp_path):
    """Only top-level values were looked at: a NaN in a list (a callback's per-dimension KL)
    failed with json's "Out of range float values are not JSON compliant", naming neither the
    key nor the record, where model.save stores the same history."""
    path = tmp_path / "h.json"
    records = [{"epoch": 1, "loss": 1.0, "kl_per_dim": [0.1, float("nan")],
                "per_class": {"a": (np.float32("inf"), 2.0), "b": [[-np.inf]]}}]
    mv.History(records).to_json(path)
    strict = json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    assert strict == [{"epoch": 1, "loss": 1.0, "kl_per_dim": [0.1, None], "per_class": {"a": [None, 2.0], "b": [[None]]}}]
    assert math.isnan(records[0]["kl_per_dim"][1])  # the history itself keeps its NaN


def test_a_callback_class_or_a_callback_listed_twice_is_refused_before_training(x):
    model = _model()
    before = model.flat.data.copy()
    with pytest.raises(TypeError, match=r"pass an instance, e.g. EarlyStopping\(...\), not the class EarlyStopping"):
        model.fit(x, epochs=1, verbose=0, callbacks=[mv.EarlyStopping])
    stopper = mv.EarlyStopping(monitor="loss")
    with pytest.raises(ValueError, match="is listed twice"):  # its patience would count two an epoch
        model.fit(x, epochs=1, verbose=0, callbacks=[stopper, stopper])
    np.testing.assert_array_equal(model.flat.data, before)
    assert model.epochs_trained == 0
    model.fit(x, epochs=1, verbose=0, callbacks=[mv.EarlyStopping(monitor="loss"), mv.EarlyStopping(monitor="loss")])


def test_fit_with_no_epochs_keeps_the_run_it_found(x):
    """fit(epochs=0, lr=...) replaced the optimizer run (moments and step count gone) and the
    seed without training; a loop fitting the epochs that remain must not lose them at 0."""
    model = _model()
    model.fit(x, epochs=1, batch_size=16, verbose=0)
    optimizers, spec, seed = model.optimizers, model.optimizer_spec, model.train_seed
    moments = optimizers["model"].m.copy()
    model.fit(x, epochs=0, lr=1e-2, seed=9, verbose=0)
    model.fit(x, epochs=0, optimizer="sgd", verbose=0)
    assert model.optimizers is optimizers and model.optimizer_spec == spec and model.train_seed == seed
    np.testing.assert_array_equal(model.optimizers["model"].m, moments)
    assert optimizers["model"].t > 0 and model.epochs_trained == 1
    with pytest.raises(ValueError, match="learning rate must be a positive number"):  # its arguments are still checked
        model.fit(x, epochs=0, lr=-1.0, verbose=0)
    fresh = _model()
    fresh.fit(x, epochs=0, verbose=0)
    assert fresh.optimizers == {} and fresh.train_seed is None


def test_an_early_stop_is_said_when_verbose(x, capsys):
    model = _model()
    model.fit(x, epochs=5, verbose=2, callbacks=[mv.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == "stopped after epoch 2 by EarlyStopping"  # epoch 1 improves on no value yet
    best = model.history["loss"][0]
    assert lines[-1] == f"restored the parameters of epoch 1, the best by loss ({best:.4f}); epochs_trained stays 2"
    model.fit(x, epochs=2, verbose=0, callbacks=[mv.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)])
    assert capsys.readouterr().out == ""
    kept = mv.EarlyStopping(monitor="loss", patience=0, min_delta=1e9, restore_best=False)
    model.fit(x, epochs=2, verbose=2, callbacks=[kept])
    assert capsys.readouterr().out.splitlines()[-1].startswith("stopped after epoch")
    assert kept.restored_epoch is None and kept.stopped_epoch is not None


# a logvar pushed beyond the clamp (found by a numerics audit) ----------------------------------------
@pytest.mark.parametrize("side", [-40.0, 25.0])
def test_fit_warns_when_a_latent_logvar_sits_beyond_the_clamp_for_a_whole_batch(side):
    """Beyond LOGVAR_RANGE the clamp passes no gradient, so a logvar a huge learning rate put there
    stays (a KL of 2.4e8 nats, epoch after epoch, at e^20): fit said nothing. It warns now, naming
    the dimension, at the user's call; an ordinary run does not warn."""
    x = (np.random.default_rng(0).random((256, 16)) > 0.5).astype(np.float32)
    model = mv.VAE(16, (32,), 2, seed=0)
    model.encoder.layers[-1].params["b"][3] = side  # logvar of latent dimension 1
    with pytest.warns(RuntimeWarning, match=r"logvar of latent dimension\(s\) \[1\] lay beyond LOGVAR_RANGE \[-30, 20\].*"
                                            r"or inputs of a large scale from the first step\); lower the learning rate, or rescale") as caught:
        model.fit(x, epochs=2, lr=1e-3, verbose=0, batch_size=64)
    assert {w.filename for w in caught} == {__file__}
    assert model.encoder.layers[-1].params["b"][3] == side  # no gradient reached it
    # VRAE.fit adds a frame of microvae's own to Model.fit: the warning still names the user's line
    sequences = (np.random.default_rng(1).random((64, 3, 2)) > 0.5).astype(np.float32)
    recurrent = mv.VRAE(2, hidden_size=4, latent_dim=2, seed=0)
    recurrent.to_latent.params["b"][3] = side
    with pytest.warns(RuntimeWarning, match=r"latent dimension\(s\) \[1\] lay beyond") as caught:
        recurrent.fit(sequences, epochs=1, lr=1e-3, verbose=0, batch_size=32)
    assert {w.filename for w in caught} == {__file__}
    assert all(linecache.getline(w.filename, w.lineno).strip().startswith("recurrent.fit(") for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mv.VAE(16, (32,), 2, seed=0).fit(x, epochs=2, verbose=0, batch_size=64)


def test_fit_does_not_warn_when_only_some_examples_logvar_lie_beyond_the_clamp():
    """The warning is for a dimension stuck beyond the clamp for every example of a batch; one
    outlier beyond it is an ordinary event (the others still pass gradient), and warning then
    would tell a healthy run that "training cannot bring it back"."""
    from microvae.training import _clamped_logvar_columns

    encoder = mv.Sequential(mv.Dense(16, 4))  # μ ‖ logvar straight from the pixels
    model = mv.VAE(16, latent_dim=2, encoder=encoder, seed=0)
    w, b = encoder.layers[0].params["W"], encoder.layers[0].params["b"]
    w[:, 3], b[3] = 0.0, 0.0
    w[0, 3] = 50.0  # logvar of dimension 1 is 50·x₀: beyond the clamp's 20 exactly where pixel 0 is on
    x = np.zeros((64, 16), np.float32)
    x[::8, 0] = 1.0  # one example in 8: each batch of 8 has exactly one beyond the clamp
    model.loss(x[:8])
    assert _clamped_logvar_columns(model) == []
    model.loss(x[::8])  # every example of this batch beyond it
    assert _clamped_logvar_columns(model) == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, epochs=1, batch_size=8, shuffle=False, verbose=0)


def test_fit_with_no_epochs_leaves_an_unseeded_models_generator_alone():
    """A training seed was drawn from the model's generator and thrown away, so the samples of an
    unseeded model changed after fit(epochs=0), which "changes nothing"."""
    x = np.random.default_rng(0).random((50, 16)).astype(np.float32)
    model = mv.VAE(16, (8,), 2, seed=None)
    state = model.backend.rng.bit_generator.state
    model.fit(x, epochs=0, verbose=0)
    assert model.backend.rng.bit_generator.state == state and model.train_seed is None
    model.fit(x, epochs=1, verbose=0)  # a real run still draws its seed there
    assert model.train_seed is not None and model.backend.rng.bit_generator.state != state


@pytest.mark.parametrize("hooks,named", [
    ({"on_epoch_end": lambda self, epoch, logs=None: None}, r"on_epoch_end\(epoch, logs=None\).*fit calls on_epoch_end\(model, epoch, record\)"),
    ({"on_train_begin": lambda self: None}, r"on_train_begin\(\).*fit calls on_train_begin\(model\)"),
    ({"on_train_end": lambda self, model, logs: None}, r"on_train_end\(model, logs\).*fit calls on_train_end\(model\)"),
])
def test_a_callback_whose_hooks_cannot_take_fits_arguments_is_refused_before_training(hooks, named):
    """A Keras-style on_epoch_end(epoch, logs) failed after the first epoch with Python's bare
    "takes from 2 to 3 positional arguments but 4 were given"; now before any step, naming the call."""
    callback = type("Keras", (), hooks)()
    model = mv.VAE(6, (4,), 2, seed=0)
    before = model.flat.data.copy()
    with pytest.raises(TypeError, match=named):
        model.fit(np.random.default_rng(0).random((8, 6)), epochs=1, batch_size=4, verbose=0, callbacks=[callback])
    assert model.epochs_trained == 0 and np.array_equal(model.flat.data, before)


def test_hooks_taking_any_arguments_or_microvaes_own_signature_are_accepted():
    seen = []
    flexible = type("Flexible", (), {"on_epoch_end": lambda self, *args, **kwargs: seen.append(args)})()
    plain = type("Plain", (), {"on_train_begin": lambda self, model: seen.append("begin"),
                               "on_epoch_end": lambda self, model, epoch, record=None: seen.append(epoch)})()
    mv.VAE(6, (4,), 2, seed=0).fit(np.random.default_rng(0).random((8, 6)), epochs=2, batch_size=4, verbose=0,
                                   callbacks=[flexible, plain])
    assert "begin" in seen and 1 in seen and 2 in seen and sum(isinstance(s, tuple) and len(s) == 3 for s in seen) == 2


# attributes changed after construction -------------------------------------------------------------
ES_CHANGES = [("mode", "maximum", ValueError, r"^mode must be 'min' \(lower is better\) or 'max' \(higher is better\), got 'maximum'$"),
              ("patience", -1, ValueError, r"^patience must be an integer >= 0, got -1$"),
              ("restore_best", "no", TypeError, r"^restore_best must be True or False, got 'no'$"),
              ("min_delta", float("nan"), ValueError, r"^min_delta must be a finite number >= 0, got nan$"),
              ("monitor", 3, TypeError, r"^monitor must be the name of a recorded metric")]


@pytest.mark.parametrize("name, value, error, message", ES_CHANGES, ids=[c[0] for c in ES_CHANGES])
def test_an_early_stopping_setting_changed_after_construction_is_checked_when_fit_starts(name, value, error, message):
    """es.mode = "maximum" was taken as "max", es.restore_best = "no" restored, es.patience = -1 ran."""
    x = np.random.default_rng(0).random((16, 6))
    model = mv.VAE(6, (4,), 2)
    stopper = mv.EarlyStopping(monitor="loss")
    setattr(stopper, name, value)
    flat = model.flat.data.copy()
    with pytest.raises(error, match=message):
        model.fit(x, epochs=1, batch_size=8, verbose=0, callbacks=[stopper])
    assert model.step == 0 and np.array_equal(model.flat.data, flat)
    setattr(stopper, name, getattr(mv.EarlyStopping(monitor="loss"), name))
    stopper.patience = 2.0  # an integral float is taken as the constructor takes it
    model.fit(x, epochs=1, batch_size=8, verbose=0, callbacks=[stopper])
    assert stopper.patience == 2 and type(stopper.patience) is int


def test_an_early_stopping_subclass_that_compares_its_own_way_keeps_a_mode_of_its_own():
    """Re-checking mode when fit starts refused a subclass's own mode ("auto", with its own
    _improves and _worst); the other settings are still checked."""

    class AutoStopping(mv.EarlyStopping):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.mode = "auto"
            self.best = self._worst()

        def _worst(self):
            return -math.inf if self.monitor.endswith("acc") else math.inf

        def _improves(self, value):
            return value < self.best - self.min_delta

    x = np.random.default_rng(0).random((16, 6))
    stopper = AutoStopping(monitor="loss", patience=1)
    mv.VAE(6, (4,), 2).fit(x, epochs=2, batch_size=8, verbose=0, callbacks=[stopper])
    assert stopper.mode == "auto" and stopper.best_epoch is not None
    stopper.patience = -1
    with pytest.raises(ValueError, match=r"^patience must be an integer >= 0, got -1$"):
        mv.VAE(6, (4,), 2).fit(x, epochs=1, batch_size=8, verbose=0, callbacks=[stopper])


def test_an_early_stopping_subclass_that_keeps_one_of_the_base_comparisons_has_its_mode_checked():
    """With only _worst of its own, the base _improves still reads mode: "minimum" was taken and
    tracked the loss as higher-is-better."""

    class Threshold(mv.EarlyStopping):
        def _worst(self):
            return 1e9 if self.mode == "min" else -1e9

    x = np.random.default_rng(0).random((16, 6))
    stopper = Threshold(monitor="loss", patience=0)
    stopper.mode = "minimum"
    with pytest.raises(ValueError, match=r"^mode must be 'min' \(lower is better\) or 'max' \(higher is better\), got "
                                         r"'minimum'$"):
        mv.VAE(6, (4,), 2).fit(x, epochs=1, batch_size=8, verbose=0, callbacks=[stopper])


@pytest.mark.parametrize("name", ["step", "epochs_trained"])
@pytest.mark.parametrize("value, error", [(-50, ValueError), (2.5, ValueError), ("3", TypeError), (True, TypeError)])
def test_a_models_step_and_epoch_counts_are_checked_as_they_are_set(name, value, error):
    """model.step = -50 trained an epoch at a negative β (β·step/warm-up); save refused it only afterwards."""
    model = mv.VAE(6, (4,), 2, beta_warmup=100)
    with pytest.raises(error, match=rf"^{name} must be an integer >= 0, got {re.escape(repr(value))}$"):
        setattr(model, name, value)
    assert getattr(model, name) == 0
    setattr(model, name, 3.0)
    assert getattr(model, name) == 3 and type(getattr(model, name)) is int
