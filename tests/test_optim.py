"""Optimizers on flat buffers, against textbook implementations written out here."""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import microvae as mv
from _strategies import ADAM_SETTINGS, SGD_SETTINGS


def _flat(values, dtype="float64"):
    layer = mv.Dense(len(values), 1, bias=False).build(dtype=dtype)
    layer.flat.data[...] = values
    return layer.flat


@given(n=st.integers(1, 20), steps=st.integers(1, 6), settings=ADAM_SETTINGS, grad_scale=st.sampled_from([1.0, 1e-6]),
       seed=st.integers(0, 999))
def test_adam_matches_the_paper(n, steps, settings, grad_scale, seed):
    """At any (lr, β₁, β₂, ε), with gradients small enough (1e-6) that ε matters: a default
    beta or eps used in place of the given one fails here."""
    lr, b1, b2, eps = settings
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(n)
    flat = _flat(theta.copy())
    opt = mv.Adam(flat, lr=lr, betas=(b1, b2), eps=eps)
    m, v = np.zeros(n), np.zeros(n)
    for t in range(1, steps + 1):
        g = rng.standard_normal(n) * grad_scale
        flat.grad[...] = g
        opt.step()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(flat.data, theta, rtol=1e-12, atol=1e-12)


@given(settings=SGD_SETTINGS, seed=st.integers(0, 999))
def test_sgd_momentum_matches_heavy_ball(settings, seed):
    """u ← μu + g, θ ← θ − lr·u: the velocity holds no lr (a checkpoint's velocity means the
    same at any lr), so the lr changes between steps here, and the velocity is checked too."""
    lr, momentum = settings
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(5)
    flat = _flat(theta.copy())
    opt = mv.SGD(flat, lr=lr, momentum=momentum)
    u = np.zeros(5)
    for step in range(4):
        opt.lr = lr * (1 + step)
        g = rng.standard_normal(5)
        flat.grad[...] = g
        opt.step()
        u = momentum * u + g
        theta = theta - opt.lr * u
    np.testing.assert_allclose(opt.velocity, u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(flat.data, theta, rtol=1e-12, atol=1e-12)


def test_clip_grad_norm():
    g = np.array([3.0, 4.0])
    assert mv.clip_grad_norm(g, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(g, [0.6, 0.8])
    g2 = np.array([0.3, 0.4])
    mv.clip_grad_norm(g2, 1.0)
    np.testing.assert_array_equal(g2, [0.3, 0.4])


@pytest.mark.parametrize("max_norm,error", [(0.0, ValueError), (-1.0, ValueError), (float("inf"), ValueError),
                                            (float("nan"), ValueError), ("1", TypeError), (None, TypeError)])
def test_clip_grad_norm_refuses_a_bound_that_is_not_positive(max_norm, error):
    g = np.array([3.0, 4.0])
    with pytest.raises(error, match="max_norm must be a positive number"):
        mv.clip_grad_norm(g, max_norm)
    np.testing.assert_array_equal(g, [3.0, 4.0])


@pytest.mark.parametrize("grad, got", [([3.0, 4.0], "list"), (np.array([3, 4]), "ndarray of dtype int64"),
                                       (np.array([3 + 0j, 4]), "ndarray of dtype complex128")])
def test_clip_grad_norm_refuses_a_gradient_that_is_not_a_float_array(grad, got):
    # a list failed on a missing .size; an integer array was scaled and then rounded, in place
    with pytest.raises(TypeError, match=rf"grad must be a NumPy or CuPy array of floats \(it is scaled in place\), got {got}"):
        mv.clip_grad_norm(grad, 1.0)


@pytest.mark.parametrize("optimizer", [mv.Adam, mv.SGD])
@pytest.mark.parametrize("flat, got", [(np.zeros(3), "ndarray of dtype float64"), (None, "None"),
                                       (mv.VAE(4, (3,), 2), "VAE")], ids=["array", "None", "model"])
def test_optimizers_refuse_what_is_no_flat_parameter_buffer(optimizer, flat, got):
    # an array, None or the model itself failed on a missing .backend
    with pytest.raises(TypeError, match=rf"{optimizer.__name__}: flat must be a model's flat parameter buffer "
                                        rf"\(a FlatParameters, e.g. model.flat .*\), got {got}$"):
        optimizer(flat)


def test_optimizer_clips_before_the_step():
    flat = _flat(np.zeros(2))
    opt = mv.SGD(flat, lr=1.0, clip_norm=1.0)
    flat.grad[...] = [30.0, 40.0]
    opt.step()
    np.testing.assert_allclose(flat.data, [-0.6, -0.8])


def test_one_pass_updates_every_layer_of_a_model():
    model = mv.VAE(10, (6,), 2, seed=0)
    before = {name: value.copy() for name, value, _ in model.flat.named()}
    model.loss_and_grads(np.random.default_rng(0).uniform(0, 1, (4, 10)))
    mv.Adam(model.flat, lr=1e-2).step()
    for name, value, _ in model.flat.named():
        assert not np.array_equal(value, before[name]), name


def test_adam_minimises_a_quadratic():
    flat = _flat(np.array([5.0, -3.0]))
    opt = mv.Adam(flat, lr=0.1)
    for _ in range(500):
        flat.grad[...] = 2 * flat.data  # d/dθ |θ|²
        opt.step()
    assert np.abs(flat.data).max() < 1e-2


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda f: mv.Adam(f, lr=0), "learning rate must be a positive number"),
        (lambda f: mv.Adam(f, lr=float("nan")), "learning rate must be a positive number"),
        (lambda f: mv.Adam(f, betas=(1.0, 0.9)), r"betas must be in \[0, 1\)"),
        # β₂ = 1 too: v never moves from 0, lr_t = eps_t = 0, and θ -= 0·m/0 makes every parameter NaN
        (lambda f: mv.Adam(f, betas=(0.9, 1.0)), r"betas must be in \[0, 1\)"),
        (lambda f: mv.Adam(f, eps=0), "eps must be a positive finite number"),
        (lambda f: mv.Adam(f, eps=float("inf")), "eps must be a positive finite number"),
        (lambda f: mv.SGD(f, momentum=1.0), r"momentum must be in \[0, 1\)"),
        (lambda f: mv.SGD(f, clip_norm=-1), "clip_norm must be a positive finite number or None"),
        (lambda f: mv.Adam(f, clip_norm=float("inf")), "clip_norm must be a positive finite number or None"),
        (lambda f: mv.SGD(f, clip_norm=float("nan")), "clip_norm must be a positive finite number or None"),
    ],
)
def test_bad_hyperparameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make(_flat(np.zeros(2)))


@pytest.mark.parametrize("betas", [np.array(0.9), np.array([[0.9, 0.999]]), 0.9])
def test_betas_that_are_no_pair_get_the_betas_message(betas):
    """A 0-d array failed with a bare "len() of unsized object"."""
    with pytest.raises(TypeError, match=r"betas must be a pair \(beta1, beta2\)"):
        mv.Adam(_flat(np.zeros(2)), betas=betas)
    assert mv.Adam(_flat(np.zeros(2)), betas=np.array([0.8, 0.99])).beta1 == 0.8


def test_unknown_optimizer_name():
    from microvae.optim import get_optimizer

    with pytest.raises(ValueError, match="'adam' or 'sgd'"):
        get_optimizer("rmsprop", _flat(np.zeros(2)), 1e-3)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_clip_grad_norm_leaves_a_non_finite_gradient_as_it_is(bad):
    # scaling by max_norm/Inf = 0 turned Inf into NaN and zeroed every finite entry, hiding where
    # the overflow was; no scale can make the gradient finite, so it is returned untouched
    g = np.array([3.0, bad, -4.0], np.float32)
    before = g.copy()
    norm = mv.clip_grad_norm(g, 1.0)
    assert not np.isfinite(norm) and (np.isnan(norm) == np.isnan(bad))
    np.testing.assert_array_equal(g, before)


def test_clip_grad_norm_leaves_a_gradient_at_the_bound_untouched():
    """"So its norm is at most max_norm": a gradient whose norm equals the bound already is, and
    must not be rescaled by max_norm/(norm + 1e-12) (which moves every value by ~1e-13)."""
    g = np.array([3.0, 4.0])
    assert mv.clip_grad_norm(g, 5.0) == 5.0
    np.testing.assert_array_equal(g, [3.0, 4.0])


def test_fit_refuses_an_infinite_clip_norm_before_it_becomes_the_runs_setting():
    """fit carries the last run's optimizer options over; a refused one must not stick."""
    x = np.random.default_rng(0).random((6, 4))
    model = mv.VAE(4, (3,), 2)
    with pytest.raises(ValueError, match="clip_norm must be a positive finite number"):
        model.fit(x, epochs=1, clip_norm=float("inf"), verbose=0)
    assert model.optimizer_spec is None and model.step == 0
    model.fit(x, epochs=1, verbose=0)  # the next fit runs with the defaults
    assert model.step > 0 and dict(model.optimizer_spec[2]) == {}


@given(n=st.integers(1, 8), scale=st.floats(0.05, 20.0), max_norm=st.floats(0.1, 10.0), seed=st.integers(0, 2**31))
def test_clip_grad_norm_caps_the_norm_at_the_bound_and_keeps_the_direction(n, scale, max_norm, seed):
    # The fixed cases above clip gradients 5 and 50 times the bound; one just above it (say
    # 1.5×) must be clipped too: the result is min(‖g‖, max_norm)·g/‖g‖, in float64.
    g = np.random.default_rng(seed).standard_normal(n) * scale
    norm = math.sqrt(float(g @ g))
    original = g.copy()
    assert mv.clip_grad_norm(g, max_norm) == pytest.approx(norm, rel=1e-12)
    np.testing.assert_allclose(g, original * min(1.0, max_norm / norm), rtol=1e-10,
                               err_msg=f"‖g‖ = {norm:.4g}, max_norm = {max_norm:.4g}")


@given(n=st.integers(1, 8), scale=st.sampled_from([1e-25, 1e-3, 1.0, 1e20]), seed=st.integers(0, 2**31))
def test_clip_grad_norm_of_a_float32_gradient_is_taken_in_float64(n, scale, seed):
    """A float32 gradient's norm is summed in float64: in float32, g² underflows below ~1e-19,
    overflows above ~1.8e19 (an Inf norm, so a finite gradient would be left unclipped) and the
    sum rounds. The scaled entries are then rounded to float32."""
    g = (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)
    exact = math.sqrt(float(np.sum(g.astype(np.float64) ** 2)))
    original = g.copy()
    assert mv.clip_grad_norm(g, exact / 2) == pytest.approx(exact, rel=1e-12, abs=0)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, original / 2, rtol=1e-6)


@given(n=st.integers(1, 8), exponent=st.integers(-300, 300), ratio=st.floats(1.5, 100.0), seed=st.integers(0, 2**31))
@example(n=2, exponent=-160, ratio=2.0, seed=0)  # squares near 1e-320: subnormal, with few digits left
@example(n=3, exponent=-162, ratio=3.0, seed=1)
def test_clip_grad_norm_caps_a_float64_gradient_at_any_magnitude(n, exponent, ratio, seed):
    """min(‖g‖, max_norm)·g/‖g‖ to float64's rounding whatever the scale: a guard added to the
    norm (max_norm/(norm + 1e-12)) over-clipped small norms (by 2e-6 at a norm of 5e-7), and
    squares summed unscaled overflowed above ~1e154, leaving a finite gradient unclipped (and
    lost their digits in float64's subnormal range below ~1e-154)."""
    g = np.random.default_rng(seed).standard_normal(n) * 10.0 ** exponent
    largest = np.abs(g).max()
    norm = largest * math.sqrt(float(((g / largest) ** 2).sum()))
    original = g.copy()
    assert mv.clip_grad_norm(g, norm / ratio) == pytest.approx(norm, rel=1e-12, abs=0)
    np.testing.assert_allclose(g, original / ratio, rtol=1e-13, atol=0)


@given(n=st.integers(1, 6), exponent=st.integers(20, 38), bound_exponent=st.integers(-30, 0), seed=st.integers(0, 2**31))
def test_clip_grad_norm_of_a_float32_gradient_at_any_scale_below_its_norm(n, exponent, bound_exponent, seed):
    """A scale max_norm/‖g‖ below float32's normal range (1.2e-38: a huge gradient, a small
    bound) kept few digits, or rounded to 0 and zeroed the gradient, when it was a float32."""
    g = (np.random.default_rng(seed).uniform(0.5, 1.0, n) * 10.0 ** exponent / math.sqrt(n)).astype(np.float32)
    exact = math.sqrt(float(np.sum(g.astype(np.float64) ** 2)))
    max_norm = 10.0 ** bound_exponent
    original = g.astype(np.float64)
    mv.clip_grad_norm(g, max_norm)
    np.testing.assert_allclose(g, original * (max_norm / exact), rtol=2e-7)  # each entry rounded once, as it stays normal
    assert math.sqrt(float(np.sum(g.astype(np.float64) ** 2))) == pytest.approx(max_norm, rel=3e-7)


def test_clip_grad_norm_of_a_float64_gradient_beyond_the_squares_range():
    g = np.array([3e200, -4e200])
    assert mv.clip_grad_norm(g, 1.0) == pytest.approx(5e200, rel=1e-15)
    np.testing.assert_allclose(g, [0.6, -0.8], rtol=1e-15)
    g = np.array([3e200, np.inf])  # an Inf entry still leaves it untouched
    assert mv.clip_grad_norm(g, 1.0) == math.inf
    np.testing.assert_array_equal(g, [3e200, np.inf])


def test_run_settings_do_not_depend_on_the_order_options_are_given_in():
    """The run key is sorted: clip_norm then eps and eps then clip_norm are one run, and a
    setting at its default is left out."""
    from microvae.optim import run_settings

    a = run_settings("adam", {"clip_norm": 5.0, "eps": 1e-7, "betas": [0.9, 0.999]})
    b = run_settings("adam", {"betas": (0.9, 0.999), "eps": 1e-7, "clip_norm": 5.0})
    assert a == b == (("clip_norm", 5.0), ("eps", 1e-7))


@pytest.mark.parametrize("betas", [{0.999, 0.9}, {0.9: 1, 0.999: 2}])
def test_adam_takes_its_betas_as_an_ordered_pair(betas):
    # a set gave (0.999, 0.9), β₁ and β₂ swapped; a dict gave its keys
    model, x = mv.VAE(4, (3,), 2, seed=0), np.random.default_rng(0).random((8, 4))
    with pytest.raises(TypeError, match=r"betas must be a pair \(beta1, beta2\)"):
        model.fit(x, epochs=1, batch_size=4, verbose=0, betas=betas)
    model.fit(x, epochs=1, batch_size=4, verbose=0, betas=[0.8, 0.99])  # a list is ordered


# settings changed on a live optimizer (a learning-rate schedule) ------------------------------
LIVE_CHANGES = [
    (mv.Adam, "lr", -1.0, ValueError, r"^learning rate must be a positive number, got lr=-1\.0$"),
    (mv.Adam, "lr", "0.1", TypeError, r"^lr must be a positive number \(the learning rate\), got '0\.1'$"),
    (mv.SGD, "lr", float("inf"), ValueError, r"^learning rate must be a positive number"),
    (mv.Adam, "clip_norm", 0.0, ValueError, r"^clip_norm must be a positive finite number or None, got 0\.0$"),
    (mv.SGD, "momentum", 1.0, ValueError, r"^momentum must be in \[0, 1\), got 1\.0$"),
    (mv.Adam, "beta1", -0.1, ValueError, r"^beta1 must be in \[0, 1\), got -0\.1$"),
    (mv.Adam, "beta2", 1.0, ValueError, r"^beta2 must be in \[0, 1\), got 1\.0$"),
    (mv.Adam, "eps", float("inf"), ValueError, r"^eps must be a positive finite number, got inf$"),
]


@pytest.mark.parametrize("make, name, value, error, message", LIVE_CHANGES, ids=[f"{c[0].__name__}-{c[1]}" for c in LIVE_CHANGES])
def test_a_setting_assigned_on_a_live_optimizer_is_checked_as_the_constructor_checks_it(make, name, value, error, message):
    """opt.lr = -1 was taken, and training went uphill (the loss from 8.3 to 4.9e8 in three epochs)."""
    opt = make(_flat(np.zeros(3)), clip_norm=5.0)
    before = getattr(opt, name)
    with pytest.raises(error, match=message):
        setattr(opt, name, value)
    assert getattr(opt, name) == before


def test_an_optimizers_buffer_is_fixed_and_its_settings_are_the_values_in_use():
    flat, other = _flat(np.zeros(3)), _flat(np.zeros(3))
    adam, sgd = mv.Adam(flat, lr=0.01, betas=(0.8, 0.99)), mv.SGD(flat, lr=0.1, momentum=0.5, clip_norm=2.0)
    with pytest.raises(AttributeError, match=r"^Adam\.flat is fixed: its moments belong to those parameters; make a new "
                                             r"optimizer for the other buffer$"):
        adam.flat = other
    assert adam.flat is flat
    adam.lr, adam.beta1, sgd.momentum, sgd.clip_norm = 0.002, 0.5, 0.9, None
    assert adam.settings() == (0.002, {"clip_norm": None, "betas": (0.5, 0.99), "eps": 1e-8})
    assert sgd.settings() == (0.1, {"clip_norm": None, "momentum": 0.9})


def _images(n=64, size=8):
    return np.random.default_rng(0).random((n, size))


def test_a_learning_rate_set_on_the_live_optimizer_is_the_runs_in_fit_and_in_its_checkpoint(tmp_path):
    """A schedule's opt.lr = 1e-5 trained at 1e-5, but model.optimizer_spec kept 1e-3: the
    checkpoint stored 1e-3 (a resumed run went back to it), and fit(lr=1e-5), the rate in use,
    started a new run with fresh moments."""
    x = _images()
    model = mv.VAE(8, (6,), 2)
    model.fit(x, epochs=1, batch_size=16, verbose=0, clip_norm=5.0)
    run = model.optimizers["model"]
    run.lr, run.clip_norm = 1e-5, 2.0
    assert model.optimizer_spec == ("adam", 1e-5, (("clip_norm", 2.0),))
    model.fit(x, epochs=1, batch_size=16, verbose=0, lr=1e-5)  # the settings in use: the same run goes on
    assert model.optimizers["model"] is run and run.t == 8 and run.clip_norm == 2.0
    model.save(tmp_path / "model.npz")
    loaded = mv.load(tmp_path / "model.npz")
    assert loaded.optimizer_spec == ("adam", 1e-5, (("clip_norm", 2.0),)) and loaded.optimizers["model"].t == 8
    loaded.fit(x, epochs=1, batch_size=16, verbose=0)
    model.fit(x, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)  # the resumed run is the same run
    model.fit(x, epochs=1, batch_size=16, verbose=0, lr=1e-3)  # another rate: a new run, as before
    assert model.optimizers["model"] is not run and model.optimizers["model"].t == 4


def test_an_aae_whose_groups_were_given_different_settings_keeps_each_groups_in_its_checkpoint(tmp_path):
    """A discriminator at a rate of its own (common GAN practice) was stored at the first
    group's rate, and then refused by save, which stopped a fit with a ModelCheckpoint."""
    x = _images(32, 6)
    model = mv.AAE(6, (4,), 2)
    model.fit(x, epochs=1, batch_size=16, verbose=0)

    class SlowDiscriminator(mv.Callback):
        def on_train_begin(self, model):
            model.optimizers["discriminator"].lr = 4e-4
            model.optimizers["discriminator"].clip_norm = 1.0

    path = tmp_path / "aae-{epoch}.npz"
    model.fit(x, epochs=2, batch_size=16, verbose=0, callbacks=[SlowDiscriminator(), mv.ModelCheckpoint(path)])
    loaded = mv.load(tmp_path / "aae-3.npz")
    assert {group: opt.settings() for group, opt in loaded.optimizers.items()} == {
        group: opt.settings() for group, opt in model.optimizers.items()}
    assert loaded.optimizers["discriminator"].settings()[0] == 4e-4 and loaded.optimizers["generator"].settings()[0] == 1e-3
    loaded.fit(x, epochs=1, batch_size=16, verbose=0)  # settings left out: each group's run goes on
    model.fit(x, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)
    model.fit(x, epochs=1, batch_size=16, verbose=0, lr=1e-3)  # one rate for all: a new run; options left out go on
    assert all(opt.lr == 1e-3 and opt.t == 2 for opt in model.optimizers.values())
    assert {group: opt.clip_norm for group, opt in model.optimizers.items()} == {
        "autoencoder": None, "discriminator": 1.0, "generator": None}
    model.save(tmp_path / "same.npz")
    again = mv.load(tmp_path / "same.npz")
    assert again.optimizer_spec == ("adam", 1e-3, ()) and again.optimizers["discriminator"].clip_norm == 1.0


@pytest.mark.parametrize("loaded", [False, True])
def test_an_aae_group_at_its_own_rate_keeps_it_when_fit_is_given_other_settings(tmp_path, loaded):
    """fit(clip_norm=None) names the run it continues, and a setting given applies to every
    group while the others continue each group's own: the discriminator's own rate used to be
    dropped for the first group's, and clip_norm=None restarted every group."""
    x = _images(32, 6)
    model = mv.AAE(6, (4,), 2)
    model.fit(x, epochs=1, batch_size=16, verbose=0)
    model.optimizers["discriminator"].lr = 4e-4
    if loaded:
        model.save(tmp_path / "aae.npz")
        model = mv.load(tmp_path / "aae.npz")
    runs = dict(model.optimizers)
    model.fit(x, epochs=1, batch_size=16, verbose=0, clip_norm=None)  # the same run: continued
    assert all(model.optimizers[group] is runs[group] and runs[group].t == 4 for group in runs)
    assert model.optimizers["discriminator"].lr == 4e-4 and model.optimizers["generator"].lr == 1e-3
    model.fit(x, epochs=1, batch_size=16, verbose=0, clip_norm=5.0)  # another setting: a new run, each group's lr kept
    assert {group: (opt.lr, opt.clip_norm, opt.t) for group, opt in model.optimizers.items()} == {
        "autoencoder": (1e-3, 5.0, 2), "discriminator": (4e-4, 5.0, 2), "generator": (1e-3, 5.0, 2)}
    runs = dict(model.optimizers)
    model.fit(x, epochs=1, batch_size=16, verbose=0, lr=1e-3, clip_norm=5.0)  # not every group's lr: a new run
    assert all(opt.lr == 1e-3 and opt.t == 2 and opt is not runs[group] for group, opt in model.optimizers.items())
    runs = dict(model.optimizers)
    model.fit(x, epochs=1, batch_size=16, verbose=0, lr=1e-3, clip_norm=5.0)  # every group's settings: continued
    assert all(opt is runs[group] and opt.t == 4 for group, opt in model.optimizers.items())


def test_fit_gives_a_named_sgd_fits_learning_rate_not_sgds_own_default():
    """As fit's docstring says: lr left out is 1e-3 for either name; SGD(flat) alone is 1e-2."""
    x = np.full((4, 4), 0.5)
    model = mv.VAE(4, (3,), 2)
    model.fit(x, epochs=1, optimizer="sgd", verbose=0)
    assert isinstance(model.optimizers["model"], mv.SGD) and model.optimizers["model"].lr == 1e-3
    assert mv.SGD(model.flat).lr == 1e-2 and "even 'sgd', whose own default" in mv.VAE.fit.__doc__
