"""Checkpoints: settings that must survive a round trip, saves that must be refused, and
malformed-but-readable files that must give a CheckpointError naming the file."""

import json
import os
import pickle

import numpy as np
import pytest

import microvae as mv
from microvae.likelihoods import get_likelihood

X = np.random.default_rng(0).random((32, 16)).astype("f4")  # in [0, 1]: valid for every likelihood
EPS = np.random.default_rng(1).standard_normal((32, 2))


@pytest.fixture
def trained(tmp_path):
    """A VAE trained one epoch with Adam (history, step, moments), saved; and its path."""
    model = mv.VAE(16, (8,), 2, seed=3)
    model.fit(X, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


def _rewrite(path, out, drop=(), **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    arrays.update(changes)
    np.savez(out, **arrays)


def _entry(path, key):
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(str(npz[key]))


def _spec_id(spec):
    return repr(spec.config() if hasattr(spec, "config") else spec)


def _leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# 1. likelihood settings ------------------------------------------------------------------

LIKELIHOODS = ["bernoulli", "gaussian", "gaussian-learned", mv.Gaussian(-2.0), mv.Gaussian(np.float32(1.5)),
               {"name": "gaussian", "logvar": -0.5}, {"name": "bernoulli"}]


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=_spec_id)
def test_every_likelihood_round_trips_with_the_same_objective(likelihood, tmp_path):
    model = mv.VAE(16, (8,), 2, likelihood=likelihood, seed=1)
    model.save(tmp_path / "m.npz")
    loaded = mv.load(tmp_path / "m.npz")
    assert loaded.config == model.config
    assert loaded.likelihood.config() == model.likelihood.config()
    assert getattr(loaded.likelihood, "logvar", None) == getattr(model.likelihood, "logvar", None)
    assert loaded.loss(X, eps=EPS) == model.loss(X, eps=EPS)
    model.backend.seed(7)
    loaded.backend.seed(7)
    np.testing.assert_array_equal(loaded.elbo(X), model.elbo(X))


def test_a_fixed_gaussian_noise_level_is_kept(tmp_path):
    model = mv.VAE(16, (8,), 2, likelihood=mv.Gaussian(-2.0))
    model.save(tmp_path / "g.npz")
    assert mv.load(tmp_path / "g.npz").likelihood.logvar == -2.0
    unit = mv.VAE(16, (8,), 2, likelihood="gaussian")  # same parameters (same seed), unit variance
    assert unit.loss(X, eps=EPS) != model.loss(X, eps=EPS)  # so a lost logvar would show above


@pytest.mark.parametrize("build", [
    lambda lik: mv.CVAE(16, 3, (8,), 2, likelihood=lik),
    lambda lik: mv.ConvVAE((1, 8, 8), 2, likelihood=lik),
    lambda lik: mv.AAE(16, (8,), 2, disc_hidden=(4,), likelihood=lik),
    lambda lik: mv.VRAE(3, hidden_size=4, latent_dim=2, likelihood=lik),
], ids=["CVAE", "ConvVAE", "AAE", "VRAE"])
def test_every_model_class_keeps_the_noise_level(build, tmp_path):
    model = build(mv.Gaussian(-2.0))
    model.save(tmp_path / "m.npz")
    loaded = mv.load(tmp_path / "m.npz")
    assert loaded.config == model.config
    assert loaded.likelihood.config() == {"name": "gaussian", "logvar": -2.0}


@pytest.mark.parametrize("likelihood", [mv.Bernoulli(), mv.Gaussian(), mv.Gaussian(-2.0), mv.Gaussian(3), mv.Gaussian("learned")],
                         ids=_spec_id)
def test_likelihood_config_rebuilds_the_same_likelihood(likelihood):
    again = get_likelihood(json.loads(json.dumps(likelihood.config())))
    assert type(again) is type(likelihood) and again.config() == likelihood.config()
    assert getattr(again, "logvar", None) == getattr(likelihood, "logvar", None)


def test_unit_variance_keeps_its_old_name():
    # configs (and checkpoints) written before logvar was stored still read the same
    assert mv.Gaussian(0.0).config() == "gaussian" and mv.Gaussian("learned").config() == "gaussian-learned"


def test_gaussian_logvar_is_stored_as_a_float():
    g = mv.Gaussian(np.float32(-1.5))
    assert type(g.logvar) is float and g.logvar == -1.5
    json.dumps(g.config())  # plain JSON


@pytest.mark.parametrize("logvar", [float("nan"), float("inf"), True, "big", None, [1.0]], ids=repr)
def test_gaussian_rejects_a_bad_logvar(logvar):
    with pytest.raises(ValueError, match="finite number or 'learned'"):
        mv.Gaussian(logvar)


@pytest.mark.parametrize("logvar", [-100.0, -30.5, 20.5, 800])
def test_gaussian_refuses_a_fixed_logvar_beyond_the_learned_range(logvar):
    """A learned logvar is clamped to LOGVAR_RANGE; a fixed one beyond it made the float32 loss
    NaN (logvar −100: 0·e^{100}) or failed with "math range error" (−800)."""
    with pytest.raises(ValueError, match=r"logvar must be in \[-30, 20\] .* got"):
        mv.Gaussian(logvar)
    assert mv.Gaussian(-30).logvar == -30.0 and mv.Gaussian(20).logvar == 20.0


@pytest.mark.parametrize("spec", [{"name": "gaussian", "sigma": 1.0}, {"name": "bernoulli", "logvar": 0.0}, {"logvar": 1.0},
                                  {"name": "poisson"}, "poisson"], ids=repr)
def test_get_likelihood_rejects_unknown_specs(spec):
    with pytest.raises(ValueError, match="likelihood"):
        get_likelihood(spec)


# 2. refusing to save what load() would reject -----------------------------------------------

@pytest.mark.parametrize("spoil, what", [
    (lambda m: m.flat.data.__setitem__(0, np.nan), "parameter group 'model' contains NaN or Inf"),
    (lambda m: m.flat.data.__setitem__(-1, np.inf), "parameter group 'model' contains NaN or Inf"),
    (lambda m: m.optimizers["model"].m.__setitem__(0, np.inf), "optimizer state model/m contains NaN or Inf"),
    (lambda m: m.optimizers["model"].v.__setitem__(0, np.nan), "optimizer state model/v contains NaN or Inf"),
    (lambda m: m.optimizers["model"].v.__setitem__(0, -1.0), "optimizer state model/v has negative values"),
], ids=["nan-param", "inf-param", "inf-m", "nan-v", "negative-v"])
def test_save_refuses_state_that_load_would_reject(trained, spoil, what):
    model, path = trained
    before = path.read_bytes()
    spoil(model)
    with pytest.raises(ValueError, match=f"not saving .*model.npz.*{what}"):
        model.save(path)
    assert path.read_bytes() == before
    assert _leftovers(path.parent, {path.name}) == []
    mv.load(path)  # the good checkpoint is still there and loads


def test_refused_save_creates_nothing(trained, tmp_path):
    model, _ = trained
    model.flat.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        model.save(tmp_path / "new" / "m.npz")
    assert not (tmp_path / "new").exists()


def test_save_without_optimizer_ignores_its_state(trained, tmp_path):
    model, _ = trained
    model.optimizers["model"].m[0] = np.nan  # not written, so not checked
    model.save(tmp_path / "p.npz", include_optimizer=False)
    assert mv.load(tmp_path / "p.npz").optimizers == {}


# 3. NumPy scalars in configs and training state ------------------------------------------------

@pytest.mark.parametrize("options", [dict(seed=np.int64(3)), dict(capacity=np.float32(5)), dict(beta_warmup=np.int32(4)),
                                     dict(seed=np.uint8(7), capacity=np.float64(2.5), capacity_warmup=np.int16(3))], ids=repr)
def test_numpy_scalars_in_the_config_round_trip(options, tmp_path):
    model = mv.VAE(16, (8,), 2, **options)
    model.save(tmp_path / "s.npz")
    stored = _entry(tmp_path / "s.npz", "model")["config"]
    for key, value in options.items():
        assert stored[key] == value.item() and type(stored[key]) is type(value.item())
    loaded = mv.load(tmp_path / "s.npz")
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)


def test_numpy_values_in_layer_specs_and_training_state(tmp_path):
    encoder = mv.Sequential(mv.Dense(16, 5), mv.LeakyReLU(np.float32(0.25)), mv.Dense(5, 4))
    model = mv.VAE(16, latent_dim=2, encoder=encoder, seed=np.int64(2))
    model.fit(X, epochs=1, batch_size=16, verbose=0, seed=np.int64(5), clip_norm=np.float32(5.0))
    model.history.epochs[0]["note"] = np.arange(2)  # a callback's array in a history record
    model.save(tmp_path / "n.npz")
    training = _entry(tmp_path / "n.npz", "training")
    assert training["optimizer"]["options"] == {"clip_norm": 5.0} and training["history"][0]["note"] == [0, 1]
    loaded = mv.load(tmp_path / "n.npz")
    assert loaded.config == model.config and loaded.train_seed == 5
    np.testing.assert_array_equal(loaded.optimizers["model"].v, model.optimizers["model"].v)


def test_an_unstorable_config_value_is_named_and_nothing_is_written(tmp_path):
    model = mv.VAE(16, (8,), 2)
    dict.__setitem__(model.config, "seed", np.random.SeedSequence(0))  # (past model.config's read-only guard)
    with pytest.raises(TypeError, match="a SeedSequence cannot be stored in a checkpoint"):
        model.save(tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


# 4. malformed but readable files --------------------------------------------------------------

def _config_with(**changes):
    def change(meta):
        meta["config"].update(changes)
        return meta
    return change


def _json_change(key, change):
    """A rewrite of the JSON entry ``key``: change(document) -> new document."""
    return lambda path: {key: np.array(json.dumps(change(_entry(path, key))))}


def _training(**changes):
    return _json_change("training", lambda t: {**t, **changes})


def _optimizer(**changes):
    return _json_change("training", lambda t: {**t, "optimizer": {**t["optimizer"], **changes}})


MALFORMED = {
    "format_version-string": (lambda p: {"format_version": np.array("x")}, "format_version is 'x'; expected the integer 1"),
    "format_version-array": (lambda p: {"format_version": np.array([1, 1])}, "format_version is a int64 array of shape"),
    "format_version-float": (lambda p: {"format_version": np.array(1.0)}, "format_version is 1.0"),
    "model-not-json": (lambda p: {"model": np.array("{class: VAE")}, "'model' is not valid JSON"),
    "model-as-array": (lambda p: {"model": np.array(["{}", "{}"])}, "'model' is a <U2 array of shape \\(2,\\)"),
    "model-a-list": (_json_change("model", lambda m: [m]), "'model' must be"),
    "unknown-config-key": (_json_change("model", _config_with(colour="red")), "does not build a VAE.*colour"),
    "other-model-class": (_json_change("model", lambda m: {**m, "class": "CVAE"}), "does not build a CVAE"),
    "bad-config-value": (_json_change("model", _config_with(input_dim="abc")), "does not build a VAE.*abc"),
    "infinite-config-value": (_json_change("model", _config_with(input_dim=float("inf"))), "does not build a VAE"),
    "bad-likelihood": (_json_change("model", _config_with(likelihood={"name": "gaussian", "logvar": "wide"})), "does not build a VAE"),
    "layout-a-list": (_json_change("layout", lambda layout: list(layout.items())), "layout does not match"),
    "layout-an-extra-group": (_json_change("layout", lambda layout: {**layout, "critic": layout["model"]}), "layout does not match"),
    "params-as-strings": (lambda p: {"params/model": np.array(["1.0"] * mv.load(p).num_parameters)},
                          "parameter group 'model' is stored as <U3; expected floating-point"),
    "params-as-ints": (lambda p: {"params/model": np.zeros(mv.load(p).num_parameters, dtype=np.int32)}, "stored as int32"),
    "params-2d": (lambda p: {"params/model": np.zeros((1, mv.load(p).num_parameters), dtype=np.float32)}, "wrong size"),
    "training-a-list": (_json_change("training", lambda t: [t]), "training state: expected a JSON object"),
    "training-as-array": (lambda p: {"training": np.zeros(3)}, "'training' is a float64 array"),
    "step-null": (_training(step=None), "step is None; expected an integer >= 0"),
    "step-negative": (_training(step=-1), "step is -1"),
    "step-float": (_training(step=2.5), "step is 2.5"),
    "step-a-bool": (_training(step=True), "step is True"),
    "epochs-string": (_training(epochs_trained="1"), "epochs_trained is '1'"),
    "train_seed-string": (_training(train_seed="x"), "train_seed is 'x'; expected an integer >= 0 or null"),
    "train_seed-a-bool": (_training(train_seed=True), "train_seed is True; expected an integer >= 0 or null"),
    "train_seed-negative": (_training(train_seed=-1), "train_seed is -1; expected an integer >= 0 or null"),
    "history-a-dict": (_training(history={"loss": [1.0]}), "history must be a list of per-epoch records"),
    "history-of-numbers": (_training(history=[1.0, 2.0]), "history must be a list"),
    "history-value-a-string": (_training(history=[{"epoch": 1, "loss": "x"}]), "history must be a list .* whose epoch, kl, loss, recon, seconds, val_kl, val_loss, val_recon are numbers\\); record 1 has loss='x'"),
    "history-value-a-bool": (_training(history=[{"epoch": 1, "loss": True}]), "history must be a list .* whose epoch, kl, loss, recon, seconds, val_kl, val_loss, val_recon are numbers"),
    "config-names-a-backend": (_json_change("model", _config_with(backend="cupy")), "the config names a backend"),
    "config-too-large-to-build": (_json_change("model", _config_with(hidden=[10**12])), "does not build a VAE"),
    "optimizer-a-string": (_training(optimizer="adam"), "malformed optimizer state"),
    "optimizer-no-t-for-group": (_optimizer(t={}), "t\\['model'\\] is None"),
    "optimizer-no-t": (lambda p: _json_change("training", lambda t: {**t, "optimizer": {
        k: v for k, v in t["optimizer"].items() if k != "t"}})(p), "malformed optimizer state"),
    "optimizer-negative-t": (_optimizer(t={"model": -1}), "t\\['model'\\] is -1"),
    "optimizer-unknown-name": (_optimizer(name="rmsprop"), "'rmsprop' .* cannot be rebuilt"),
    "optimizer-unknown-option": (_optimizer(options={"nesterov": True}), "cannot be rebuilt.*nesterov"),
    "optimizer-bad-option": (_optimizer(options={"betas": [0.9]}), "cannot be rebuilt"),
    "optimizer-bad-lr": (_optimizer(lr="fast"), "cannot be rebuilt"),
    "optimizer-zero-lr": (_optimizer(lr=0), "cannot be rebuilt"),
    "optimizer-group-settings-a-list": (_optimizer(group_settings=[{"lr": 0.1}]), "malformed optimizer state: expected .*group_settings"),
    "optimizer-group-settings-no-group": (_optimizer(group_settings={}), "group_settings\\['model'\\] is None"),
    "optimizer-group-settings-no-options": (_optimizer(group_settings={"model": {"lr": 0.1}}), "group_settings\\['model'\\] is"),
    "optimizer-group-settings-bad-lr": (_optimizer(group_settings={"model": {"lr": -1, "options": {}}}),
                                        "optimizer 'adam' of group 'model' with lr=-1 .* cannot be rebuilt"),
    "optimizer-group-settings-a-foreign-group": (
        _optimizer(group_settings={"model": {"lr": 0.1, "options": {}}, "critic": {"lr": 0.1, "options": {}}}),
        "group_settings names the group\\(s\\) 'critic', which this model has not \\(expected 'model'\\)"),
    "optimizer-t-of-a-foreign-group": (_optimizer(t={"model": 3, "critic": 3}),
                                       "t names the group\\(s\\) 'critic', which this model has not"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_checkpoints_name_the_file_and_what_was_expected(trained, tmp_path, case):
    _, path = trained
    changes, message = MALFORMED[case]
    bad = tmp_path / f"bad-{case}.npz"
    _rewrite(path, bad, **changes(path))
    before = bad.read_bytes()
    with pytest.raises(mv.CheckpointError, match=message) as info:
        mv.load(bad)
    assert str(bad) in str(info.value) and info.value.path == str(bad)
    assert bad.read_bytes() == before


@pytest.mark.parametrize("case", ["unknown-config-key", "other-model-class", "bad-config-value",
                                  "optimizer-unknown-name", "optimizer-unknown-option", "model-not-json"])
def test_malformed_checkpoint_errors_keep_the_original_exception(trained, tmp_path, case):
    _, path = trained
    changes, _ = MALFORMED[case]
    _rewrite(path, tmp_path / "bad.npz", **changes(path))
    with pytest.raises(mv.CheckpointError) as info:
        mv.load(tmp_path / "bad.npz")
    assert isinstance(info.value.__cause__, (TypeError, ValueError))


@pytest.mark.parametrize("drop, message", [
    ("format_version", "format_version is none"),
    ("model", "no 'model' entry"),
    ("layout", "no 'layout' entry"),
    ("optim/model/m", "optimizer state model/m missing"),
])
def test_missing_entries(trained, tmp_path, drop, message):
    _, path = trained
    _rewrite(path, tmp_path / "d.npz", drop=(drop,))
    with pytest.raises(mv.CheckpointError, match=message):
        mv.load(tmp_path / "d.npz")


@pytest.mark.parametrize("edit", [{"lr": 0.05}, {"options": {"clip_norm": 1.0}}, {"lr": None}])
def test_top_level_optimizer_settings_that_disagree_with_group_settings_are_refused(tmp_path, edit):
    """With groups at rates of their own, the top level still holds the first group's settings
    (what a reader from before group_settings uses for every group). An edit of it alone would
    be ignored by load, so the file is refused; the unedited one loads with each group's rate."""
    model = mv.AAE(16, (8,), 2, seed=0)
    model.fit(X, epochs=1, batch_size=16, verbose=0)
    model.optimizers["discriminator"].lr = 4e-4
    path = tmp_path / "aae.npz"
    model.save(path)
    stored = _entry(path, "training")["optimizer"]
    assert "group_settings" in stored and (stored["lr"], stored["options"]) == (1e-3, {})
    assert {group: opt.lr for group, opt in mv.load(path).optimizers.items()} == {
        "autoencoder": 1e-3, "discriminator": 4e-4, "generator": 1e-3}
    bad = tmp_path / "edited.npz"
    _rewrite(path, bad, **_optimizer(**edit)(path))
    before = bad.read_bytes()
    with pytest.raises(mv.CheckpointError, match=r"top-level lr=.* must be those of the first group, "
                                                 r"group_settings\['autoencoder'\] = \{'lr': 0.001, 'options': \{\}\}"):
        mv.load(bad)
    assert bad.read_bytes() == before


def test_a_checkpoint_without_training_state_loads_as_an_untrained_run(trained, tmp_path):
    """The training entry is optional: without it the parameters load, with no history, no
    steps and no optimizer run (a later fit starts a new one)."""
    model, path = trained
    _rewrite(path, tmp_path / "bare.npz", drop=("training",))
    bare = mv.load(tmp_path / "bare.npz")
    np.testing.assert_array_equal(bare.flat.data, model.flat.data)
    assert (bare.step, bare.epochs_trained, bare.train_seed, len(bare.history), bare.optimizers) == (0, 0, None, 0, {})


def test_an_npy_file(tmp_path):
    npy = tmp_path / "weights.npy"
    np.save(npy, np.ones(3))
    before = npy.read_bytes()
    with pytest.raises(mv.CheckpointError, match="weights.npy.*single float64 array of shape \\(3,\\).*expected an .npz"):
        mv.load(npy)
    assert npy.read_bytes() == before


def test_a_bad_backend_argument_is_not_blamed_on_the_file(trained):
    _, path = trained
    with pytest.raises(ValueError, match="backend must be") as info:
        mv.load(path, backend="tpu")
    assert not isinstance(info.value, mv.CheckpointError)


def test_checkpoint_error_pickles_and_names_the_file():
    error = pickle.loads(pickle.dumps(mv.CheckpointError("/tmp/m.npz", "something expected")))
    assert (error.path, error.reason, str(error)) == ("/tmp/m.npz", "something expected", "'/tmp/m.npz': something expected")


def test_damaged_files_give_checkpoint_errors(trained, tmp_path):
    # byte flips and truncations anywhere in a real checkpoint: a CheckpointError, or (a flip in
    # a header field nothing reads, or one that rewrites a byte with its own value) the model
    # exactly as saved; never another error, and never altered values
    model, path = trained
    good = path.read_bytes()
    rng = np.random.default_rng(0)
    damaged = tmp_path / "damaged.npz"
    refused = 0
    for trial in range(150):
        if trial % 3 == 0:
            data = good[: rng.integers(len(good))]
        else:
            data = bytearray(good)
            data[rng.integers(len(good))] = rng.integers(256)
        damaged.write_bytes(bytes(data))
        try:
            loaded = mv.load(damaged)
        except mv.CheckpointError:
            refused += 1
            continue
        assert type(loaded) is type(model) and loaded.config == model.config
        np.testing.assert_array_equal(loaded.flat.data, model.flat.data)  # zip's CRC-32 sees every flip in the data
        assert loaded.history.epochs == model.history.epochs and loaded.step == model.step
    assert refused >= 100, refused  # most damage is refused, not shrugged off


# 5. non-finite values on load ------------------------------------------------------------------

def test_float64_parameters_that_overflow_float32_are_refused(trained, tmp_path):
    model, path = trained
    huge = model.flat.data.astype(np.float64)
    huge[0] = 1e300  # finite in float64, inf in the model's float32
    _rewrite(path, tmp_path / "h.npz", **{"params/model": huge})
    with pytest.raises(mv.CheckpointError, match="parameter group 'model' contains NaN or Inf \\(in float32\\)"):
        mv.load(tmp_path / "h.npz")


def test_refusing_float64_parameters_that_overflow_float32_warns_of_nothing(trained, tmp_path):
    """The overflow in the cast is how the check finds them, not news for the caller: the
    CheckpointError is all load raises, also where warnings are errors."""
    import warnings

    model, path = trained
    huge = model.flat.data.astype(np.float64)
    huge[0] = 1e300
    _rewrite(path, tmp_path / "h.npz", **{"params/model": huge})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(mv.CheckpointError, match="contains NaN or Inf"):
            mv.load(tmp_path / "h.npz")


def test_float64_parameters_in_range_are_cast(trained, tmp_path):
    model, path = trained
    _rewrite(path, tmp_path / "w.npz", **{"params/model": model.flat.data.astype(np.float64)})
    loaded = mv.load(tmp_path / "w.npz")
    assert loaded.flat.data.dtype == np.float32
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)


@pytest.mark.parametrize("key, value, message", [
    ("m", np.nan, "optimizer state model/m contains NaN or Inf"),
    ("v", np.nan, "optimizer state model/v contains NaN or Inf"),
    ("v", np.inf, "optimizer state model/v contains NaN or Inf"),
    ("v", 1e300, "optimizer state model/v contains NaN or Inf"),
    ("v", -1e-3, "optimizer state model/v has negative values; expected second moments >= 0"),
])
def test_bad_optimizer_moments_are_refused(trained, tmp_path, key, value, message):
    model, path = trained
    moments = model.optimizers["model"].state_arrays()[key].astype(np.float64)
    moments[3] = value
    _rewrite(path, tmp_path / "o.npz", **{f"optim/model/{key}": moments})
    with pytest.raises(mv.CheckpointError, match=message):
        mv.load(tmp_path / "o.npz")


def test_negative_first_moments_and_sgd_velocity_are_fine(tmp_path):
    model = mv.VAE(16, (8,), 2)
    model.fit(X, epochs=1, batch_size=16, verbose=0, optimizer="sgd", lr=0.1, momentum=0.9)
    assert (model.optimizers["model"].velocity < 0).any()
    model.save(tmp_path / "sgd.npz")
    np.testing.assert_array_equal(mv.load(tmp_path / "sgd.npz").optimizers["model"].velocity, model.optimizers["model"].velocity)


# resuming with tuple options ---------------------------------------------------------------------

def test_resuming_with_the_same_tuple_options_keeps_the_moments(tmp_path):
    model = mv.VAE(16, (8,), 2)
    model.fit(X, epochs=1, batch_size=16, verbose=0, betas=(0.8, 0.99))
    model.save(tmp_path / "b.npz")
    loaded = mv.load(tmp_path / "b.npz")
    adam = loaded.optimizers["model"]
    loaded.fit(X, epochs=1, batch_size=16, verbose=0, betas=(0.8, 0.99))
    model.fit(X, epochs=1, batch_size=16, verbose=0, betas=(0.8, 0.99))
    assert loaded.optimizers["model"] is adam and adam.t == model.optimizers["model"].t
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)


# 6. file permissions --------------------------------------------------------------------------------

@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_checkpoints_get_umask_permissions(tmp_path, umask, mode):
    model = mv.VAE(16, (8,), 2)
    old = os.umask(umask)
    try:
        model.save(tmp_path / "m.npz")
        assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == mode
        (tmp_path / "m.npz").chmod(0o604)
        model.save(tmp_path / "m.npz")  # replacing a file keeps its permissions, as a plain open does
        assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o604
    finally:
        os.umask(old)
    assert _leftovers(tmp_path, {"m.npz"}) == []


# save refuses what load would refuse (found by a bad-input audit) ------------------------------------
class _RecordsNone:
    """A callback that sets a recorded metric to None (JSON null), which load refuses."""

    def on_epoch_end(self, model, epoch, record):
        record["val_loss"] = None


@pytest.mark.parametrize("spoil,message", [
    (lambda m: m.fit(np.random.default_rng(0).random((12, 8)), epochs=1, verbose=0, callbacks=[_RecordsNone()]),
     r"record 2 has val_loss=None"),
    (lambda m: m.history.epochs[0].__setitem__("loss", "x"), r"record 1 has loss='x'"),
    (lambda m: setattr(m, "train_seed", -1), r"train_seed is -1; expected an integer >= 0 or null"),
    (lambda m: setattr(m, "train_seed", 1.5), r"train_seed is 1.5"),
    # model.step = -3 is refused on assignment; save still checks a state that got past it
    (lambda m: m.__dict__.__setitem__("step", -3), r"step is -3; expected an integer >= 0"),
])
def test_save_refuses_a_training_state_load_would_refuse_and_keeps_the_checkpoint(tmp_path, spoil, message):
    """A callback that left None in the history made ModelCheckpoint replace a good checkpoint with
    one that load() refused: the last loadable file was lost."""
    x = np.random.default_rng(0).random((12, 8))
    path = tmp_path / "ck.npz"
    model = mv.VAE(8, (6,), 2, seed=0)
    model.fit(x, epochs=1, verbose=0, callbacks=[mv.ModelCheckpoint(path)])
    before = path.read_bytes()
    with pytest.raises(ValueError, match=f"not saving .*: load\\(\\) would refuse its training state: .*{message}"):
        spoil(model)
        model.save(path)
    assert path.read_bytes() == before and mv.load(path).epochs_trained == 1


def test_save_judges_the_training_state_as_load_reads_it_back(tmp_path):
    """NumPy scalars in the history, step or seed become JSON numbers in the file, which load takes:
    save's check must not refuse them (a first version of the check did)."""
    model = mv.VAE(8, (6,), 2, seed=0)
    model.fit(np.random.default_rng(0).random((12, 8)), epochs=1, verbose=0)
    model.history.epochs[0]["loss"] = np.float32(1.5)
    model.step, model.train_seed = np.int64(3), np.int64(4)
    model.save(tmp_path / "ck.npz")
    back = mv.load(tmp_path / "ck.npz")
    assert back.history.epochs[0]["loss"] == 1.5 and (back.step, back.train_seed) == (3, 4)
