"""Bad arguments and data fail at once with an error naming what was expected; nothing good is lost.

Divergence that leaves the loss finite (an overflowing gradient), image layouts, sample counts,
batch sizes, optimizer instances, validation data, callback mistakes and wrongly typed settings.
"""

import os

import numpy as np
import pytest

import microvae as mv
from microvae.checks import check_int, check_number, check_sizes


@pytest.fixture
def x():
    return np.random.default_rng(0).random((64, 16)).astype("f4")


def _vae(**kw):
    return mv.VAE(16, (8,), 2, **kw)


def _aae(**kw):
    return mv.AAE(16, (8,), 2, disc_hidden=(8,), **kw)


def _cvae():
    return mv.CVAE(16, 3, (8,), 2)


def _vrae():
    return mv.VRAE(3, hidden_size=4, latent_dim=2)


def _sequences(n=8):
    return np.random.default_rng(0).random((n, 5, 3))


# --- the shared checks ----------------------------------------------------------------------------------


def test_check_int_accepts_integers_and_integral_floats_only():
    assert check_int("n", 3) == 3 and check_int("n", np.int64(3)) == 3 and check_int("n", 3.0) == 3
    assert type(check_int("n", np.int64(3))) is int
    assert check_int("seed", None, 0, none_ok=True) is None
    for bad, error in [(True, TypeError), (None, TypeError), ("3", TypeError), ([3], TypeError),
                       (2.5, ValueError), (float("nan"), ValueError), (float("inf"), ValueError)]:
        with pytest.raises(error, match=r"^n must be an integer, got "):
            check_int("n", bad)
    with pytest.raises(ValueError, match=r"n must be a positive integer, got 0"):
        check_int("n", 0, 1)
    with pytest.raises(ValueError, match=r"epochs must be an integer >= 0, got -1"):
        check_int("epochs", -1, 0)
    with pytest.raises(ValueError, match=r"seed must be None or an integer >= 0, got -1"):
        check_int("seed", -1, 0, none_ok=True)


def test_check_number_and_check_sizes():
    assert check_number("beta", 2) == 2.0 and check_number("beta", np.float32(0.5)) == 0.5
    for bad in ("1", None, True, [1.0]):
        with pytest.raises(TypeError, match="beta must be a number"):
            check_number("beta", bad)
    with pytest.raises(ValueError, match=r"beta must be a number within float range .*got an integer of 401 digits"):
        check_number("beta", -10**400)  # (float() raised OverflowError, naming no argument)
    assert check_sizes("hidden", [8, np.int64(4)]) == (8, 4) and check_sizes("hidden", ()) == ()
    for bad in (8, "64", None):
        with pytest.raises(TypeError, match=r"hidden must be a sequence of layer sizes, e\.g\. \(64,\)"):
            check_sizes("hidden", bad)
    with pytest.raises(ValueError, match=r"hidden\[1\] must be an integer, got 4\.5"):
        check_sizes("hidden", (8, 4.5))


# --- 1. parameters that become non-finite while the loss stays finite ------------------------------------


def test_overflowing_gradient_raises_restores_and_keeps_the_checkpoint(x, tmp_path):
    model = _vae(likelihood="gaussian")
    ckpt = tmp_path / "good.npz"
    checkpoint = mv.ModelCheckpoint(ckpt)
    model.fit(x, epochs=1, batch_size=64, callbacks=[checkpoint], verbose=0)
    saved, params = ckpt.read_bytes(), model.flat.data.copy()
    adam = model.optimizers["model"]
    moments, t, step = (adam.m.copy(), adam.v.copy()), adam.t, model.step
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(mv.TrainingDiverged, match="epoch 2: the parameters became non-finite"):
        model.fit(x * 7e18, epochs=1, batch_size=64, callbacks=[checkpoint], verbose=0)
    assert ckpt.read_bytes() == saved and checkpoint.saved == [str(ckpt)]  # no save after the bad epoch
    np.testing.assert_array_equal(model.flat.data, params)
    # the optimizer's moments (NaN after the step) and the step counts are those of the epoch start
    np.testing.assert_array_equal(adam.m, moments[0])
    np.testing.assert_array_equal(adam.v, moments[1])
    assert (adam.t, model.step, model.epochs_trained, len(model.history)) == (t, step, 1, 1)
    model.fit(x, epochs=1, batch_size=64, verbose=0)  # so training can go on
    assert np.isfinite(model.flat.data).all() and model.epochs_trained == 2


def test_non_finite_parameters_are_caught_before_any_callback_for_a_multi_group_model(x):
    model = _aae()
    original = model._train_batch

    def overflowing(batch, optimizers):  # the step leaves a NaN parameter; the loss was finite
        metrics = original(batch, optimizers)
        model.flat.data[-1] = np.inf
        return metrics

    model._train_batch = overflowing
    seen = []

    class Spy(mv.training.Callback):
        def on_epoch_end(self, m, epoch, record):
            seen.append(epoch)

    before = model.flat.data.copy()
    with pytest.raises(mv.TrainingDiverged, match="non-finite"):
        model.fit(x, epochs=2, batch_size=64, verbose=0, callbacks=[Spy()])  # one batch: the next loss never sees it
    assert seen == [] and model.epochs_trained == 0
    np.testing.assert_array_equal(model.flat.data, before)


# --- 2. only the exact or the flattened image layout ------------------------------------------------------


def test_complex_inputs_and_labels_are_refused_not_cast():
    # casting to float would drop the imaginary part with only a ComplexWarning
    x = np.random.default_rng(0).random((6, 16))
    with pytest.raises(TypeError, match=r"x must hold real numbers \(integer, float or bool\), got dtype complex128"):
        _vae().loss(x.astype(complex))
    with pytest.raises(ValueError, match="must hold integer class labels, got dtype complex128"):
        _cvae().loss(x, (np.arange(6) % 3).astype(complex))


def test_boolean_and_integer_data_are_read_as_their_numbers(x):
    """Binary images as bool or as 0/1 integers are data like any other, the same numbers as in
    float (only complex and non-numeric dtypes are refused)."""
    model = _vae(dtype="float64")
    binary = x > 0.5
    eps = np.random.default_rng(1).standard_normal((len(x), 2))
    expected = model.loss(binary.astype(np.float64), eps=eps)
    for data in (binary, binary.astype(np.uint8)):
        assert model.loss(data, eps=eps) == expected
        np.testing.assert_array_equal(model.encode(data)[0], model.encode(binary.astype(np.float64))[0])


def test_conv_vae_rejects_channels_last_images_naming_both_layouts():
    model = mv.ConvVAE((3, 8, 8), 2)
    before = model.flat.data.copy()
    with pytest.raises(ValueError, match=r"shape \(batch, 3, 8, 8\), got \(8, 8, 8, 3\); the flattened form "
                                         r"\(batch, 192\) is accepted too.*channels-first \(NCHW\).*NHWC"):
        model.fit(np.random.rand(8, 8, 8, 3), epochs=1, verbose=0)
    np.testing.assert_array_equal(model.flat.data, before)


@pytest.mark.parametrize("shape", [(8, 8, 24), (8, 192, 1), (8, 3, 64), (8, 1, 3, 8, 8)])
def test_conv_vae_rejects_other_reshapes_of_the_right_size(shape):
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3, 8, 8\), got .*\(batch, 192\)") as info:
        mv.ConvVAE((3, 8, 8), 2).loss(np.random.rand(*shape))
    assert "NHWC" not in str(info.value)


def test_images_without_a_channel_axis_are_taken_for_one_channel_only():
    """(batch, H, W) is read as (batch, 1, H, W) by a one-channel model only; for three channels it is
    refused with the shape error that names x, not left to NumPy's reshape error."""
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3, 8, 8\), got \(4, 8, 8\)"):
        mv.ConvVAE((3, 8, 8), 2).loss(np.random.default_rng(0).random((4, 8, 8)))


def test_exact_and_flattened_images_are_the_same_data():
    model = mv.ConvVAE((3, 8, 8), 2, dtype="float64")
    images = np.random.default_rng(0).random((4, 3, 8, 8))
    np.testing.assert_array_equal(model.encode(images)[0], model.encode(images.reshape(4, -1))[0])


def test_vectors_need_a_batch_axis_and_the_right_size(x):
    model = _vae()
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 16\), got \(16,\)\. A single example needs a batch axis"):
        model.encode(x[0])
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 16\), got \(64, 5\)$"):
        model.encode(np.random.rand(64, 5))


def test_unambiguous_reshapes_are_accepted(x):
    # flattening an image for an MLP, or adding the one channel axis, cannot mix up values
    model = mv.VAE(16, (8,), 2, dtype="float64")
    np.testing.assert_array_equal(model.encode(x.reshape(64, 4, 4))[0], model.encode(x)[0])
    gray = mv.ConvVAE((1, 8, 8), 2, dtype="float64")
    images = np.random.default_rng(0).random((4, 8, 8))
    np.testing.assert_array_equal(gray.encode(images)[0], gray.encode(images[:, None])[0])


# --- 3. n_samples of elbo ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_samples, error", [(0, ValueError), (-1, ValueError), (1.9, ValueError),
                                              (None, TypeError), ("2", TypeError), (True, TypeError)])
def test_elbo_n_samples_must_be_a_positive_integer(x, n_samples, error):
    labels = np.arange(len(x)) % 3
    for elbo in (lambda n: _vae().elbo(x, n_samples=n), lambda n: _cvae().elbo(x, labels, n_samples=n),
                 lambda n: _vrae().elbo(_sequences(), n_samples=n)):
        with pytest.raises(error, match=f"n_samples must be a positive integer, got {n_samples!r}"):
            elbo(n_samples)


def test_elbo_takes_an_integral_float(x):
    model = _vae()
    assert model.elbo(x, n_samples=2.0).shape == (64,)


# --- 4. evaluate's batch_size ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size, error", [(-1, ValueError), (0, ValueError), (2.5, ValueError),
                                               (None, TypeError), ("8", TypeError)])
def test_evaluate_batch_size_must_be_a_positive_integer(x, batch_size, error):
    labels = np.arange(len(x)) % 3
    for evaluate in (lambda b: _vae().evaluate(x, batch_size=b), lambda b: _cvae().evaluate(x, labels, batch_size=b),
                     lambda b: _aae().evaluate(x, batch_size=b), lambda b: _vrae().evaluate(_sequences(), batch_size=b)):
        with pytest.raises(error, match=f"batch_size must be a positive integer, got {batch_size!r}"):
            evaluate(batch_size)


def test_evaluate_batch_size_does_not_change_the_result(x):
    model = _aae()
    assert set(model.evaluate(x, batch_size=5)) == {"loss", "recon", "disc", "gen"}
    vae = _vae()
    # the KL term needs no noise draw: the same whatever the blocks
    assert vae.evaluate(x, batch_size=64)["kl"] == pytest.approx(vae.evaluate(x, batch_size=7.0)["kl"], rel=1e-5)


@pytest.mark.parametrize("make", [_vae, _cvae, _aae, _vrae])
def test_a_seeded_evaluate_repeats_itself_and_leaves_the_models_generator_alone(x, make):
    model = make()
    data = {"VRAE": (_sequences(),), "CVAE": (x, np.arange(len(x)) % 3)}.get(type(model).__name__, (x,))
    twin = make()  # the same seed: the same generator state
    first = model.evaluate(*data, seed=3)
    assert model.evaluate(*data, seed=3) == first
    assert model.evaluate(*data, seed=4) != first  # the noise does come from the seed
    np.testing.assert_array_equal(model.backend.rng.random(5), twin.backend.rng.random(5))
    unseeded = model.evaluate(*data)  # from the model's generator, which moves on
    assert model.evaluate(*data) != unseeded
    with pytest.raises(ValueError, match=r"seed must be None or an integer >= 0, got -1"):
        model.evaluate(*data, seed=-1)


@pytest.mark.parametrize("make", [_vae, _cvae, _vrae])
def test_a_seeded_elbo_repeats_itself_and_leaves_the_models_generator_alone(x, make):
    model = make()
    data = {"VRAE": (_sequences(),), "CVAE": (x, np.arange(len(x)) % 3)}.get(type(model).__name__, (x,))
    twin = make()
    first = model.elbo(*data, n_samples=2, seed=3)
    np.testing.assert_array_equal(model.elbo(*data, n_samples=2, seed=3), first)
    assert not np.array_equal(model.elbo(*data, n_samples=2, seed=4), first)
    np.testing.assert_array_equal(model.backend.rng.random(5), twin.backend.rng.random(5))
    # seeded, ε is what the model's own generator would draw when started from that seed
    twin.backend.rng = np.random.default_rng(3)
    np.testing.assert_array_equal(twin.elbo(*data, n_samples=2), first)
    unseeded = model.elbo(*data)
    assert not np.array_equal(model.elbo(*data), unseeded)
    for seed, error in ((-1, ValueError), ("3", TypeError)):
        with pytest.raises(error, match=r"seed must be None or an integer >= 0"):
            model.elbo(*data, seed=seed)


@pytest.mark.parametrize("call,match", [
    (lambda x: _vae().fit(x, epoch=3, verbose=0), r"fit\(\) got unexpected keyword argument\(s\) epoch: fit passes its extra "
                                                  r"keywords to the optimizer, and 'adam' takes betas, eps, clip_norm$"),
    (lambda x: _vae().fit(x, optimizer="sgd", betas=(0.9, 0.9), verbose=0), r"'sgd' takes momentum, clip_norm$"),
    (lambda x: _cvae().fit(x, labels=np.arange(len(x)) % 3, verbose=0),
     r"argument\(s\) labels: .*labels \(CVAE, AAE\) and a sequence model's mask are fit's second argument"),
    (lambda x: _vrae().fit(_sequences(), masks=np.ones((8, 5)), verbose=0), r"argument\(s\) masks: .*'adam' takes"),
])
def test_keywords_that_neither_fit_nor_the_optimizer_takes_are_named_before_anything_runs(x, call, match):
    with pytest.raises(TypeError, match=match):
        call(x)


def test_a_sequence_models_fit_and_evaluate_take_the_mask_by_name():
    sequences, mask = _sequences(), np.ones((8, 5))
    mask[:4, 3:] = 0
    by_name, by_position = _vrae(), _vrae()
    by_name.fit(sequences, mask=mask, epochs=1, verbose=0)
    by_position.fit(sequences, mask, epochs=1, verbose=0)
    np.testing.assert_array_equal(by_name.flat.data, by_position.flat.data)
    assert by_name.evaluate(sequences, mask=mask, seed=0) == by_position.evaluate(sequences, mask, seed=0)
    assert by_name.evaluate(sequences, mask=mask, seed=0) != by_name.evaluate(sequences, seed=0)  # the mask counts


class _ArrayLike:
    """What a data frame or a tensor offers: a shape and __array__, but no NumPy dtype."""

    def __init__(self, values):
        self.values, self.shape, self.ndim = values, values.shape, values.ndim

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)


def test_array_likes_without_a_numpy_dtype_are_read_through_numpy(x):
    as_array, as_like = _vae(), _vae()
    as_array.fit(x, epochs=1, verbose=0)
    as_like.fit(_ArrayLike(x), epochs=1, verbose=0)
    np.testing.assert_array_equal(as_like.flat.data, as_array.flat.data)
    np.testing.assert_array_equal(as_like.encode(memoryview(np.ascontiguousarray(x)))[0], as_array.encode(x)[0])


def test_finite_values_beyond_float32_are_reported_as_such_not_as_nan():
    import warnings

    data = np.full((4, 16), 1e300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and without a RuntimeWarning from the cast
        with pytest.raises(ValueError, match=r"x holds values up to 1e\+300, beyond the range of float32 \(they overflow "
                                             r"to Inf\); rescale the data or use dtype='float64'"):
            _vae(likelihood="gaussian").fit(data, verbose=0)
        data[0, 0] = np.nan
        with pytest.raises(ValueError, match=r"^x contains NaN or Inf$"):
            _vae(likelihood="gaussian").fit(data, verbose=0)
    mu, _ = _vae(likelihood="gaussian", dtype="float64").encode(np.full((4, 16), 1e300))  # in range for float64: accepted
    assert mu.shape == (4, 2) and mu.dtype == np.float64



@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (2, 7), (-1, -1)])
def test_a_single_non_finite_value_anywhere_in_the_data_is_refused(bad, where):
    data = np.full((4, 16), 0.5, np.float32)
    data[where] = bad
    for call in (lambda m: m.fit(data, verbose=0), lambda m: m.encode(data), lambda m: m.loss(data)):
        with pytest.raises(ValueError, match=r"^x contains NaN or Inf$"):
            call(_vae(likelihood="gaussian"))


def test_the_data_check_makes_no_copy_the_size_of_the_data():
    """The check reads the min and the max: isfinite(x).all() made a boolean copy of the data,
    a fit call's peak (45 MiB for Fashion-MNIST's training images)."""
    import tracemalloc

    x = np.random.default_rng(0).random((4096, 16), dtype=np.float32)
    model = _vae()
    model._as_batch(x)  # anything cached on first use, outside the measurement
    tracemalloc.start()
    try:
        model._as_batch(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.size // 4, f"the check allocated {peak} bytes for {x.size} values"

# --- 5. optimizer instances --------------------------------------------------------------------------------


def test_a_model_with_several_parameter_groups_rejects_an_optimizer_instance(x):
    model = _aae()
    before = model.flat.data.copy()
    with pytest.raises(TypeError, match=r"AAE trains 3 parameter groups \(autoencoder, discriminator, generator\).*"
                                        r"optimizer='adam' or 'sgd' by name"):
        model.fit(x, epochs=1, verbose=0, optimizer=mv.Adam(model.flat))
    np.testing.assert_array_equal(model.flat.data, before)
    assert model.optimizers == {} and model.epochs_trained == 0


def test_an_optimizer_instance_must_be_built_on_the_models_parameters(x):
    with pytest.raises(TypeError, match=r"an Optimizer built on this model's parameters"):
        _vae().fit(x, epochs=1, verbose=0, optimizer=mv.Adam(_vae().flat))


def test_options_for_an_optimizer_instance_are_refused_not_ignored(x):
    model = _vae()
    with pytest.raises(TypeError, match=r"optimizer options \(clip_norm\) go to the Optimizer's constructor"):
        model.fit(x, epochs=1, verbose=0, optimizer=mv.Adam(model.flat), clip_norm=1.0)
    assert model.epochs_trained == 0
    model.fit(x, epochs=1, verbose=0, optimizer=mv.Adam(model.flat, 1e-3, clip_norm=1.0))
    assert model.epochs_trained == 1


@pytest.mark.parametrize("lr", [1e-3, 0.05])  # 1e-3 too: fit's default, given explicitly, is still refused
def test_a_learning_rate_beside_an_optimizer_instance_is_refused_not_ignored(x, lr):
    model = _vae()
    before = model.flat.data.copy()
    with pytest.raises(TypeError, match=rf"lr goes to the Optimizer's constructor.*Adam\(model.flat, lr={lr!r}\).*"
                                        r"this one has lr=0.01"):
        model.fit(x, epochs=1, verbose=0, optimizer=mv.Adam(model.flat, lr=0.01), lr=lr)
    np.testing.assert_array_equal(model.flat.data, before)
    assert model.epochs_trained == 0


def test_a_new_run_uses_adam_at_1e_3_and_a_named_optimizer_its_own_defaults(x):
    model = _vae()
    model.fit(x, epochs=1, verbose=0)
    adam = model.optimizers["model"]
    assert isinstance(adam, mv.Adam) and adam.lr == 1e-3 and (adam.beta1, adam.beta2, adam.clip_norm) == (0.9, 0.999, None)
    model.fit(x, epochs=1, verbose=0, optimizer="sgd")  # another optimizer: a new run with its defaults and lr 1e-3
    sgd = model.optimizers["model"]
    assert isinstance(sgd, mv.SGD) and (sgd.lr, sgd.momentum, sgd.clip_norm, sgd.t) == (1e-3, 0.0, None, 1)


def test_settings_left_out_continue_the_current_run_also_from_a_checkpoint(x, tmp_path):
    model = _vae()
    model.fit(x, epochs=1, batch_size=16, verbose=0, optimizer="sgd", lr=0.02, momentum=0.9)
    sgd = model.optimizers["model"]
    model.fit(x, epochs=1, batch_size=16, verbose=0)  # nothing named: the same SGD goes on, moments and steps kept
    assert model.optimizers["model"] is sgd and sgd.t == 8
    model.fit(x, epochs=1, batch_size=16, verbose=0, clip_norm=1.0)  # one setting changed: afresh, the others kept
    clipped = model.optimizers["model"]
    assert clipped is not sgd and isinstance(clipped, mv.SGD)
    assert (clipped.lr, clipped.momentum, clipped.clip_norm, clipped.t) == (0.02, 0.9, 1.0, 4)
    model.save(tmp_path / "m.npz")
    loaded = mv.load(tmp_path / "m.npz")
    loaded.fit(x, epochs=1, batch_size=16, verbose=0)
    resumed = loaded.optimizers["model"]
    assert isinstance(resumed, mv.SGD) and (resumed.lr, resumed.momentum, resumed.clip_norm, resumed.t) == (0.02, 0.9, 1.0, 8)
    model.fit(x, epochs=1, batch_size=16, verbose=0)  # the same steps from the same state as the reloaded copy
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)


def test_an_optimizer_instance_goes_on_when_fit_is_called_again_without_one(x):
    model = _vae()
    adam = mv.Adam(model.flat, lr=0.01)
    model.fit(x, epochs=1, batch_size=16, verbose=0, optimizer=adam)
    model.fit(x, epochs=1, batch_size=16, verbose=0)
    assert model.optimizers["model"] is adam and adam.t == 8 and adam.lr == 0.01


def test_checkpointing_an_optimizer_instance_fails_before_training(x, tmp_path):
    model = _vae()
    model.fit(x, epochs=1, verbose=0)
    named, before = model.optimizers, model.flat.data.copy()
    with pytest.raises(TypeError, match=r"optimizer given by name.*include_optimizer=False"):
        model.fit(x, epochs=1, verbose=0, optimizer=mv.SGD(model.flat), callbacks=[mv.ModelCheckpoint(tmp_path / "c.npz")])
    assert list(tmp_path.iterdir()) == [] and model.epochs_trained == 1
    assert model.optimizers is named  # the named optimizer's state is kept
    np.testing.assert_array_equal(model.flat.data, before)
    model.fit(x, epochs=1, verbose=0, optimizer=mv.SGD(model.flat),
              callbacks=[mv.ModelCheckpoint(tmp_path / "c.npz", include_optimizer=False)])
    assert mv.load(tmp_path / "c.npz").epochs_trained == 2


# --- 6. validation_data -----------------------------------------------------------------------------------


def test_a_list_as_validation_data_is_x_not_x_and_y(x):
    as_list = _vae(seed=1).fit(x, epochs=1, verbose=0, validation_data=x[:5].tolist())
    as_array = _vae(seed=1).fit(x, epochs=1, verbose=0, validation_data=x[:5])
    assert as_list["val_loss"] == pytest.approx(as_array["val_loss"], rel=1e-6)
    labels = np.arange(len(x)) % 3
    history = _cvae().fit(x, labels, epochs=1, verbose=0, validation_data=(x[:5], labels[:5]))
    assert "val_loss" in history


def test_validation_data_tuple_of_the_wrong_length(x):
    for bad in ((), (x[:5], None, None)):
        with pytest.raises(ValueError, match=rf"validation_data must be x or a tuple \(x, y\), got a tuple of {len(bad)}"):
            _vae().fit(x, epochs=1, verbose=0, validation_data=bad)


def test_a_list_x_y_as_validation_data_gets_a_hint_to_pass_a_tuple(x):
    labels = np.arange(len(x)) % 3
    with pytest.raises(TypeError, match=r"validation_data: CVAE needs class labels.*; a list is read as x itself: pass "
                                        r"\(x, y\) as a tuple"):
        _cvae().fit(x, labels, epochs=1, verbose=0, validation_data=[x[:5], labels[:5]])


# --- 7. callback mistakes, found before the first epoch ------------------------------------------------------


@pytest.mark.parametrize("path", ["c_{step}.npz", "c_{}.npz", "c_{epoch:s}.npz", "c_{epoch.real.x}.npz", "c_{.npz"])
def test_model_checkpoint_rejects_a_bad_path_template(tmp_path, path):
    with pytest.raises(ValueError, match=r"not a valid checkpoint name: the only field it may contain is \{epoch\}"):
        mv.ModelCheckpoint(str(tmp_path / path))


def test_model_checkpoint_accepts_epoch_fields_and_literal_braces(x, tmp_path):
    cb = mv.ModelCheckpoint(str(tmp_path / "c{{x}}_{epoch:03d}.npz"))
    _vae().fit(x, epochs=1, verbose=0, callbacks=[cb])
    assert [p.name for p in tmp_path.iterdir()] == ["c{x}_001.npz"]
    for every, error in [(0, ValueError), (1.5, ValueError), ("2", TypeError)]:
        with pytest.raises(error, match="every must be a positive integer"):
            mv.ModelCheckpoint(tmp_path / "c.npz", every=every)


def test_early_stopping_on_an_unrecorded_metric_fails_before_training(x):
    model = _vae()
    before = model.flat.data.copy()
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'val_loss', which this run will not record.*validation_data"):
        model.fit(x, epochs=2, verbose=0, callbacks=[mv.EarlyStopping()])
    np.testing.assert_array_equal(model.flat.data, before)
    assert model.epochs_trained == 0
    with pytest.raises(ValueError, match="monitors 'val_gen'"):
        _vae().fit(x, epochs=1, verbose=0, validation_data=x, callbacks=[mv.EarlyStopping("val_gen")])
    # each model's own metrics are known
    _aae().fit(x, epochs=1, verbose=0, validation_data=x[:8], callbacks=[mv.EarlyStopping("val_disc")])
    _vae().fit(x, epochs=1, verbose=0, callbacks=[mv.EarlyStopping("loss")])


def test_early_stopping_settings():
    for kwargs, error, match in [(dict(patience=-1), ValueError, "patience must be an integer >= 0"),
                                 (dict(patience=1.5), ValueError, "patience must be an integer >= 0"),
                                 (dict(min_delta="0.1"), TypeError, "min_delta must be a finite number >= 0"),
                                 (dict(monitor=None), TypeError, "monitor must be the name of a recorded metric")]:
        with pytest.raises(error, match=match):
            mv.EarlyStopping(**kwargs)


def test_a_duck_typed_callback_still_works(x):
    class Minimal:  # no Callback base class
        def on_train_begin(self, model): ...

        def on_epoch_end(self, model, epoch, record): ...

        def on_train_end(self, model): ...

    assert len(_vae().fit(x, epochs=1, verbose=0, callbacks=[Minimal()])) == 1


# --- 8. wrongly typed or fractional settings ------------------------------------------------------------------


@pytest.mark.parametrize("make, error, match", [
    (lambda: mv.VAE(16, 8, 2), TypeError, r"hidden must be a sequence of layer sizes"),
    (lambda: mv.VAE(16, (8,), 2.5), ValueError, r"latent_dim must be an integer, got 2\.5"),
    (lambda: mv.VAE(16.5, (8,), 2), ValueError, r"input_dim must be an integer"),
    (lambda: mv.VAE(16, (8,), 2, beta="1"), TypeError, r"beta must be a finite number >= 0, got '1'"),
    (lambda: mv.VAE(16, (8,), 2, capacity="5"), TypeError, r"capacity must be a number >= 0 \(nats\) or None, got '5'"),
    (lambda: mv.VAE(16, (8,), 2, capacity=float("inf")), ValueError, r"capacity must be >= 0 nats"),
    (lambda: mv.VAE(16, (8,), 2, beta_warmup=1.5), ValueError, r"beta_warmup must be an integer >= 0"),
    (lambda: mv.VAE(16, (8,), 2, capacity_warmup=None), TypeError, r"capacity_warmup must be an integer >= 0"),
    (lambda: mv.VAE(16, (8,), 2, seed=-1), ValueError, r"seed must be None or an integer >= 0, got -1"),
    (lambda: mv.VAE(16, (8,), 2, seed="0"), TypeError, r"seed must be None or an integer >= 0"),
    (lambda: mv.CVAE(16, 3, 8, 2), TypeError, r"hidden must be a sequence"),
    (lambda: mv.CVAE(16, 3, (8,), 2.5), ValueError, r"latent_dim must be an integer"),
    (lambda: mv.CVAE(16, "3"), TypeError, r"num_classes must be a positive integer"),
    (lambda: mv.CVAE(16, 3, prior_hidden=2.5), ValueError, r"prior_hidden must be a positive integer"),
    (lambda: mv.ConvVAE((1, 8, 8), 2.5), ValueError, r"latent_dim must be a positive integer, got 2\.5"),
    (lambda: mv.ConvVAE((1, 8.5, 8), 2), ValueError, r"input_shape must be \(channels, height, width\)"),
    (lambda: mv.ConvVAE((1, 8, 8), 2, seed=-1), ValueError, r"seed must be None or an integer >= 0"),
    (lambda: mv.AAE(16, 8, 2), TypeError, r"hidden must be a sequence"),
    (lambda: mv.AAE(16, (8,), 2, disc_hidden=8), TypeError, r"disc_hidden must be a sequence"),
    (lambda: mv.AAE(16, (8,), 2.5), ValueError, r"latent_dim must be an integer"),
    (lambda: mv.AAE(16, (8,), 2, prior="mixture", mixture_std="1"), TypeError, r"mixture_std must be a positive number"),
    (lambda: mv.VRAE(3, hidden_size=4.5), ValueError, r"hidden_size must be an integer"),
    (lambda: mv.VRAE(3, beta="1"), TypeError, r"beta must be a finite number >= 0"),
    (lambda: mv.VRAE(3, beta_warmup=None), TypeError, r"beta_warmup must be an integer >= 0"),
    (lambda: mv.VRAE(3, input_dropout="0.5"), TypeError, r"input_dropout must be a number in \[0, 1\)"),
    (lambda: mv.HierarchicalVRAE(3, segment_length=2.5), ValueError, r"segment_length must be a positive integer"),
    (lambda: mv.HierarchicalVRAE(3, conductor_size=0), ValueError, r"conductor_size must be a positive integer"),
])
def test_bad_constructor_settings_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr="0.01"), TypeError, r"lr must be a positive number \(the learning rate\), got '0\.01'"),
    (dict(lr=0.0), ValueError, r"learning rate must be a positive number, got lr=0\.0"),
    (dict(batch_size=None), TypeError, r"batch_size must be a positive integer, got None"),
    (dict(batch_size=16.5), ValueError, r"batch_size must be a positive integer"),
    (dict(epochs=None), TypeError, r"epochs must be an integer >= 0, got None"),
    (dict(epochs=2.7), ValueError, r"epochs must be an integer >= 0, got 2\.7"),
    (dict(epochs=True), TypeError, r"epochs must be an integer >= 0"),
    (dict(seed=-1), ValueError, r"seed must be None or an integer >= 0, got -1"),
    (dict(betas=0.9), TypeError, r"betas must be a pair \(beta1, beta2\)"),
    (dict(betas=("0.9", 0.999)), TypeError, r"betas must be a pair"),
    (dict(eps="1e-8"), TypeError, r"eps must be a positive number"),
    (dict(clip_norm="5"), TypeError, r"clip_norm must be a positive number or None"),
    (dict(optimizer="sgd", momentum="0.9"), TypeError, r"momentum must be a number in \[0, 1\)"),
])
def test_bad_fit_settings_name_the_argument_and_change_nothing(x, kwargs, error, match):
    model = _vae()
    before = model.flat.data.copy()
    with pytest.raises(error, match=match):
        model.fit(x, verbose=0, **{"epochs": 1, **kwargs})
    np.testing.assert_array_equal(model.flat.data, before)
    assert model.epochs_trained == 0 and len(model.history) == 0


def test_integral_floats_are_taken_as_ints(x):
    model = _vae()
    model.fit(x, epochs=2.0, batch_size=32.0, seed=np.int64(3), verbose=0)
    assert model.epochs_trained == 2 and model.train_seed == 3 and model.step == 4


@pytest.mark.parametrize("call, error, match", [
    (lambda: _vae().sample(2.5), ValueError, r"n must be a positive integer, got 2\.5"),
    (lambda: _vae().sample(None), TypeError, r"n must be a positive integer"),
    (lambda: _vae().sample(2, seed=-1), ValueError, r"seed must be None or an integer >= 0, got -1"),
    (lambda: _cvae().sample(2.5, 0), ValueError, r"n must be a positive integer"),
    (lambda: _cvae().sample(2, 0, seed=-1), ValueError, r"seed must be None or an integer >= 0"),
    (lambda: _aae().sample(2.5), ValueError, r"n must be a positive integer"),
    (lambda: _aae().sample_prior(2, seed=-1), ValueError, r"seed must be None or an integer >= 0"),
    (lambda: _aae().prior_distance(np.random.rand(4, 16), n_prior=1), ValueError, r"n_prior must be None or an integer >= 2"),
    (lambda: _vrae().sample(2.5, 4), ValueError, r"n must be a positive integer"),
    (lambda: _vrae().sample(2, 4.5), ValueError, r"length must be a positive integer"),
    (lambda: _vrae().sample(2, 4, seed=-1), ValueError, r"seed must be None or an integer >= 0"),
    (lambda: _vrae().decode(np.zeros((2, 2)), length="4"), TypeError, r"length must be a positive integer"),
])
def test_bad_sample_settings_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_sample_with_integral_float_n(x):
    assert _vae().sample(3.0, seed=1).shape == (3, 16)
    np.testing.assert_array_equal(_vae().sample(3, seed=1), _vae().sample(3.0, seed=np.int64(1)))


def test_adam_and_sgd_settings_name_the_argument():
    flat = _vae().flat
    with pytest.raises(TypeError, match=r"betas must be a pair \(beta1, beta2\) of numbers in \[0, 1\), got 0\.9"):
        mv.Adam(flat, betas=0.9)
    with pytest.raises(TypeError, match=r"betas must be a pair"):
        mv.Adam(flat, betas=(0.9, 0.99, 0.999))
    with pytest.raises(TypeError, match=r"lr must be a positive number \(the learning rate\), got '0\.01'"):
        mv.SGD(flat, lr="0.01")
    assert mv.Adam(flat, betas=[0.8, 0.9]).beta1 == 0.8


def _seeded_entry_points():
    from microvae import applications, explain, metrics
    from microvae.datasets import make_piano_rolls, make_sinusoids, make_sprites

    x = np.random.default_rng(0).random((4, 6))
    w = np.ones(2)  # gradcheck refuses a check of nothing, so it gets one array
    model = mv.VAE(6, (5,), 2)
    return {
        "fixed_noise": lambda seed: model.fixed_noise(x, seed=seed),
        "iwae_bound": lambda seed: metrics.iwae_bound(model, x, k=2, seed=seed),
        "metrics.elbo": lambda seed: metrics.elbo(model, x, seed=seed),
        "anomaly_scores": lambda seed: metrics.anomaly_scores(model, x, seed=seed),
        "add_noise": lambda seed: applications.add_noise(x, seed=seed),
        "make_sprites": lambda seed: make_sprites(n=3, seed=seed),
        "make_sinusoids": lambda seed: make_sinusoids(n=3, seed=seed),
        "make_piano_rolls": lambda seed: make_piano_rolls(n=3, seed=seed),
        "gradcheck": lambda seed: mv.gradcheck(lambda: float((w**2).sum()), {"w": w}, {"w": 2 * w}, seed=seed),
        "check_layer": lambda seed: mv.check_layer(mv.Dense(2, 2).build(dtype="float64"), np.ones((1, 2)), seed=seed),
        "explain_gradients": lambda seed: explain.explain_gradients(seed=seed),
    }


@pytest.mark.parametrize("entry", sorted(_seeded_entry_points()))
@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.5, ValueError), ("3", TypeError), (True, TypeError)])
def test_every_seed_is_checked_and_named(entry, seed, error):
    """A seed anywhere is None or an integer >= 0, refused by name (NumPy's own message names nothing)."""
    fn = _seeded_entry_points()[entry]
    with pytest.raises(error, match=r"seed must be None or an integer >= 0"):
        fn(seed)
    fn(2.0)  # an integral float is an integer, as everywhere else


@pytest.mark.parametrize("eps, dtype", [("a", "<U1"), (np.ones((3, 2)) * 1j, "complex128")])
def test_noise_that_is_not_real_numbers_is_refused_by_name(eps, dtype):
    """A string failed in a cast that named nothing; complex noise lost its imaginary part with a warning."""
    model = mv.VAE(8, (6,), 2)
    x = np.random.default_rng(0).random((3, 8))
    for method in (model.loss, model.loss_and_grads):
        with pytest.raises(TypeError, match=rf"eps must be an array of real numbers, .* got dtype {dtype}"):
            method(x, eps=eps)


@pytest.mark.parametrize("noise", ["a", None, True])
def test_make_sinusoids_refuses_a_noise_level_that_is_not_a_number(noise):
    from microvae.datasets import make_sinusoids

    with pytest.raises(TypeError, match="noise must be a finite number >= 0"):
        make_sinusoids(n=2, noise=noise)


@pytest.mark.parametrize("build, name", [
    (lambda v: mv.CVAE(8, 3, learned_prior=v), "learned_prior"),
    (lambda v: mv.ConvVAE((1, 4, 4), fuse_relu=v), "fuse_relu"),
    (lambda v: mv.VAE(8, (4,), fuse_relu=v), "fuse_relu"),
    (lambda v: mv.CVAE(8, 3, (4,), fuse_relu=v), "fuse_relu"),
    (lambda v: mv.AAE(8, (4,), fuse_relu=v), "fuse_relu"),
    (lambda v: mv.EarlyStopping(restore_best=v), "restore_best"),
    (lambda v: mv.ModelCheckpoint("ckpt_{epoch}.npz", include_optimizer=v), "include_optimizer"),
])
def test_switches_are_true_or_false(build, name):
    """bool("no") is True: a switch given a string or a number is refused, not read as on."""
    for value in ("no", 0, None):
        with pytest.raises(TypeError, match=f"{name} must be True or False"):
            build(value)
    build(np.bool_(False))


def test_save_refuses_an_include_optimizer_that_is_not_a_switch_and_writes_nothing(tmp_path):
    model = mv.VAE(6, (5,), 2)
    model.fit(np.random.default_rng(0).random((8, 6)), epochs=1, verbose=0)
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError, match="include_optimizer must be True or False, got 'False'"):
        model.save(path, include_optimizer="False")  # bool("False") is True: the optimizer would be saved
    assert not path.exists()
    model.save(path, include_optimizer=np.bool_(False))
    assert mv.load(path).optimizers == {}


@pytest.mark.parametrize("options, message", [
    ({"num_classes": -3}, "num_classes must be a positive integer"),
    ({"mixture_std": -1.0}, "mixture_std must be a positive, finite number"),
    ({"mixture_radius": float("inf")}, "mixture_radius must be a positive, finite number"),
])
def test_aae_mixture_settings_are_checked_with_either_prior(options, message):
    """They are stored in the config with a Gaussian prior too."""
    for prior in ("gaussian", "mixture"):
        with pytest.raises(ValueError, match=message):
            mv.AAE(8, prior=prior, **options)


@pytest.mark.parametrize("builder", [lambda: mv.VAE(6, (5,), 2), lambda: mv.AAE(6, (5,), 2),
                                     lambda: mv.ConvVAE((1, 8, 8), latent_dim=2), lambda: mv.VRAE(3, 4, 2)],
                         ids=["vae", "aae", "convvae", "vrae"])
def test_build_on_a_model_is_refused_and_changes_nothing(builder):
    """Module.build gave a model a new buffer while its parameter groups and config kept the old
    one: an AAE then trained nothing, and a VAE rebuilt in float64 saved as float32."""
    model = builder()
    flat, data, config, groups = model.flat, model.flat.data.copy(), dict(model.config), model.parameter_groups()
    name = type(model).__name__
    with pytest.raises(TypeError, match=rf"{name}.build\(\) is for layers used on their own; .*pass backend=, dtype= "
                                        rf"and seed= to {name}\(...\)"):
        model.build(dtype="float64")
    assert model.flat is flat and model.config == config and model.flat.data.dtype == np.float32
    np.testing.assert_array_equal(model.flat.data, data)
    assert {k: id(g) for k, g in model.parameter_groups().items()} == {k: id(g) for k, g in groups.items()}


@pytest.mark.parametrize("call, name", [
    (lambda m: m.fit([[0, 1, 0, 1, 0, 1], [0, 1]], epochs=1, verbose=0), "x"),
    (lambda m: m.encode([[0.5] * 6, [0.5] * 5]), "x"),
    (lambda m: m.decode([[0.1], [0.2, 0.3]]), "z"),
])
def test_a_ragged_list_is_named_not_left_to_numpys_inhomogeneous_shape_error(call, name):
    with pytest.raises(ValueError, match=rf"^{name} is a ragged list \(its rows have different lengths\); give {name} as an "
                                         rf"array of shape \(batch, \d\)$"):
        call(mv.VAE(6, (5,), 2))


@pytest.mark.parametrize("path", ["", "out/", "a/.", "a/..", ".", ".."])
def test_check_file_path_refuses_a_path_that_can_only_name_a_folder(tmp_path, monkeypatch, path):
    """"a/." passed, and the atomic write resolved it to "a" and wrote a file there."""
    from microvae.checks import check_file_path

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="names a folder, not a file"):
        check_file_path("path", path)
    assert check_file_path("path", "a/model.npz") == "a/model.npz" and os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", [None, {"x": [0.5]}, (v for v in [0.5]), object()], ids=["None", "dict", "generator", "object"])
@pytest.mark.parametrize("method", ["encode", "reconstruct", "fit"])
def test_a_batch_that_is_no_array_is_named_by_its_type(bad, method):
    """NumPy makes these a 0-d object array, which the shape check reported as "got ()", a
    shape the caller never gave."""
    model = mv.VAE(4, (3,), 2)
    with pytest.raises(TypeError, match=rf"^x must be an array of shape \(batch, 4\), got {type(bad).__name__}$"):
        getattr(model, method)(bad, **({"verbose": 0} if method == "fit" else {}))


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")  # what users still pass
def test_a_numpy_matrix_is_taken_as_the_array_it_holds():
    """np.matrix stays 2-D through reshape, so a ConvVAE failed inside NumPy ("shape too large to
    be a matrix") on data the MLP models take."""
    data = np.random.default_rng(0).random((6, 16))
    model = mv.ConvVAE((1, 4, 4), 2, variant="strided")
    np.testing.assert_array_equal(model.encode(np.matrix(data))[0], model.encode(data)[0])


@pytest.mark.parametrize("build, x", [(_vae, np.full((3, 16), 0.5)), (_aae, np.full((3, 16), 0.5)),
                                      (_vrae, _sequences(3)), (lambda: mv.HierarchicalVRAE(3, segment_length=5, hidden_size=4, conductor_size=4, latent_dim=2), _sequences(3))],
                         ids=["VAE", "AAE", "VRAE", "HVRAE"])
def test_fixed_noise_refuses_a_seed_given_by_position(build, x):
    """fixed_noise(x, 7) drew seed 0's noise, the 7 taken as part of the batch and ignored; a
    seed goes by keyword, and the rest of a batch (a VRAE's mask) is still passed through."""
    model = build()
    for extra in (7, "garbage", 2.5):
        with pytest.raises(TypeError, match=rf"fixed_noise takes the batch positionally and the seed by keyword: "
                                            rf"fixed_noise\(x, seed={extra!r}\); got {extra!r} after x"):
            model.fixed_noise(x, extra)
    np.testing.assert_array_equal(model.fixed_noise(x, seed=7), np.random.default_rng(7).standard_normal((3, 2)))
    np.testing.assert_array_equal(model.fixed_noise(x, np.ones(x.shape[:2]), seed=7), model.fixed_noise(x, seed=7))


def test_a_cvaes_fixed_noise_checks_the_labels_it_is_given():
    """CVAE.fixed_noise(x, y, seed) took any y, "garbage" included, unchecked."""
    model, x = _cvae(), np.full((4, 16), 0.5)
    with pytest.raises(ValueError, match="must hold integer class labels"):
        model.fixed_noise(x, "garbage")
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        model.fixed_noise(x, 7)
    with pytest.raises(ValueError, match="3 labels for 4 examples"):
        model.fixed_noise(x, [0, 1, 2])
    np.testing.assert_array_equal(model.fixed_noise(x, [0, 1, 2, 0], 5), np.random.default_rng(5).standard_normal((4, 2)))
    np.testing.assert_array_equal(model.fixed_noise(x, 1, seed=5), model.fixed_noise(x, seed=5))


@pytest.mark.parametrize("hierarchical", [False, True])
@pytest.mark.parametrize("bad", [None, {"a": 1}])
def test_a_sequence_model_refuses_what_is_no_array_with_a_type_error_as_the_others_do(hierarchical, bad):
    """VAE, CVAE, ConvVAE and AAE said "x must be an array ..., got NoneType" (a TypeError);
    the VRAEs "x must be a batch of sequences ..., got ()" (a ValueError)."""
    model = mv.HierarchicalVRAE(3, segment_length=5, hidden_size=4, conductor_size=4, latent_dim=2) if hierarchical else _vrae()
    for call in (model.encode, model.reconstruct, lambda v: model.fit(v, epochs=1, verbose=0)):
        with pytest.raises(TypeError, match=rf"x must be an array of shape \(batch, time, 3\), got {type(bad).__name__}$"):
            call(bad)
