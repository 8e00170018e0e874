"""microvae.applications: noise, PSNR, denoising, interpolation, traversals and their pictures."""

import math

import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microvae as mv
from microvae import applications as app
from microvae.datasets import make_sprites

PNG = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# noise


@given(st.sampled_from(app.NOISE_KINDS), st.floats(0.0, 1.0), st.integers(0, 2 ** 31 - 1))
def test_add_noise_keeps_shape_dtype_and_range_and_is_seeded(kind, level, seed):
    x = np.random.default_rng(seed).random((6, 20)).astype(np.float32)
    noisy = app.add_noise(x, kind, level, seed=seed)
    assert noisy.shape == x.shape and noisy.dtype == np.float32
    assert noisy.min() >= 0 and noisy.max() <= 1
    np.testing.assert_array_equal(noisy, app.add_noise(x, kind, level, seed=seed))
    assert x.dtype == np.float32 and not np.shares_memory(noisy, x)


def test_each_kind_of_noise_does_what_it_says():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, (200, 100))
    np.testing.assert_array_equal(app.add_noise(x, "gaussian", 0.0), x)
    g = app.add_noise(x, "gaussian", 0.1, seed=1)
    assert np.std(g - x) == pytest.approx(0.1, rel=0.05)  # little clipping inside [0.2, 0.8]
    m = app.add_noise(x, "mask", 0.3, seed=1)
    changed = m != x
    assert changed.mean() == pytest.approx(0.3, abs=0.01) and np.all(m[changed] == 0)
    sp = app.add_noise(x, "salt_pepper", 0.2, seed=1)
    changed = sp != x
    assert changed.mean() == pytest.approx(0.2, abs=0.01)
    assert set(np.unique(sp[changed])) == {0.0, 1.0} and (sp[changed] == 1).mean() == pytest.approx(0.5, abs=0.03)
    assert app.add_noise(np.ones((2, 3), dtype=np.uint8), "mask", 0.5).dtype == np.float32


def test_gaussian_noise_clips_only_data_already_in_the_unit_interval():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((50, 40)) * 5  # real-valued data, far outside [0, 1]
    noisy = app.add_noise(real, "gaussian", 0.1, seed=1)
    assert np.std(noisy - real) == pytest.approx(0.1, rel=0.05)  # nothing clipped
    assert noisy.max() > 5 and noisy.min() < -5
    np.testing.assert_array_equal(app.add_noise(real, "gaussian", 0.1, seed=1, clip=False), noisy)
    clipped = app.add_noise(real, "gaussian", 0.1, seed=1, clip=True)
    np.testing.assert_array_equal(clipped, np.clip(noisy, 0, 1))
    images = rng.random((50, 40))
    default = app.add_noise(images, "gaussian", 0.5, seed=2)  # images: clipped by default
    assert default.min() == 0 and default.max() == 1
    np.testing.assert_array_equal(default, app.add_noise(images, "gaussian", 0.5, seed=2, clip=True))
    unclipped = app.add_noise(images, "gaussian", 0.5, seed=2, clip=False)
    assert unclipped.min() < 0 and unclipped.max() > 1
    np.testing.assert_array_equal(default, np.clip(unclipped, 0, 1).astype(default.dtype))
    with pytest.raises(ValueError, match="clip"):
        app.add_noise(images, "gaussian", 0.1, clip="yes")


def test_salt_and_pepper_uses_the_extremes_of_real_valued_data():
    x = np.random.default_rng(0).standard_normal((50, 40)) * 3
    noisy = app.add_noise(x, "salt_pepper", 0.3, seed=1)
    changed = noisy != x
    assert 0.2 < changed.mean() < 0.4
    assert set(np.unique(noisy[changed])) <= {x.min(), x.max()} and len(np.unique(noisy[changed])) == 2
    unit = np.random.default_rng(0).random((50, 40))
    noisy = app.add_noise(unit, "salt_pepper", 0.3, seed=1)
    assert set(np.unique(noisy[noisy != unit])) <= {0.0, 1.0}


def test_add_noise_rejects_bad_arguments():
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match="kind"):
        app.add_noise(x, "speckle", 0.1)
    for kind in ("mask", "salt_pepper"):
        for level in (1.5, -0.1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match=rf"level must be a fraction in \[0, 1\] \(of the pixels hit\) for '{kind}' noise, got {level}"):
                app.add_noise(x, kind, level)
    for level in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"level must be a finite number >= 0 \(the standard deviation\) for gaussian noise, got {level}"):
            app.add_noise(x, "gaussian", level)
    with pytest.raises(ValueError, match="NaN"):
        app.add_noise(np.array([[np.nan]]), "gaussian", 0.1)
    for level in ("0.3", True, None):  # float() took "0.3" and True
        with pytest.raises(TypeError, match="level must be a number"):
            app.add_noise(x, "gaussian", level)


# ---------------------------------------------------------------------------------------------
# PSNR


def test_psnr_known_values():
    clean = np.zeros((4, 16))
    assert app.psnr(clean, clean + 0.1) == pytest.approx(20.0)  # MSE 0.01 -> 10·log10(1/0.01)
    assert app.psnr(clean, clean + 0.5) == pytest.approx(10 * math.log10(4))  # 6.02 dB
    assert app.psnr(clean, clean + 1.0) == pytest.approx(0.0)
    assert app.psnr(clean, clean) == math.inf
    assert app.psnr(np.zeros(3), np.full(3, 25.5), data_range=255.0) == pytest.approx(20.0)
    other = clean.copy()
    other[1] = 0.1
    per = app.psnr(clean, other, per_example=True)
    assert per.shape == (4,) and per[1] == pytest.approx(20.0) and np.isinf(per[[0, 2, 3]]).all()
    # whole-batch PSNR uses the MSE over every value: 1/4 of the rows off by 0.1 -> MSE 0.0025
    assert app.psnr(clean, other) == pytest.approx(10 * math.log10(1 / 0.0025))
    with pytest.raises(ValueError, match="same shape"):
        app.psnr(clean, clean[:2])
    with pytest.raises(ValueError, match="data_range"):
        app.psnr(clean, clean, data_range=0)


@pytest.mark.parametrize("scale", [1e-200, 1e-160, 1e160, 1e200])
@pytest.mark.parametrize("per_example", [False, True])
def test_psnr_does_not_depend_on_the_datas_scale(scale, per_example):
    """PSNR is a ratio of the range to the error: data, error and range scaled together give
    the same dB. It squared the range (an OverflowError past 1.3e154, for a range passed in or
    taken from the data) and the error (+inf for inputs that differ, once the squares vanished)."""
    rng = np.random.default_rng(0)
    clean = rng.random((3, 8))
    other = clean + rng.standard_normal((3, 8)) * 0.01
    want = app.psnr(clean, other, data_range=2.0, per_example=per_example)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = app.psnr(clean * scale, other * scale, data_range=2.0 * scale, per_example=per_example)
        by_default = app.psnr(clean * scale, other * scale, per_example=per_example)  # the data's span
    np.testing.assert_allclose(got, want, rtol=1e-12)
    span = clean.max() - clean.min()  # the default range: the data's span, or 1 for data inside [0, 1]
    default = 1 / scale if scale < 1 else span
    np.testing.assert_allclose(by_default, app.psnr(clean, other, data_range=default, per_example=per_example), rtol=1e-12)
    assert np.isfinite(by_default).all()


def test_psnr_refuses_data_whose_span_overflows_unless_given_a_range():
    clean, other = np.array([[-1e308, 1e308]]), np.array([[-1e308, 9e307]])
    with pytest.raises(ValueError, match=r"the clean data's max − min overflows float64; pass data_range"):
        app.psnr(clean, other)
    assert app.psnr(clean, other, data_range=1e308) == pytest.approx(10 * math.log10(200), rel=1e-12)  # d = (0, 0.1)


# ---------------------------------------------------------------------------------------------
# a briefly trained model


@pytest.fixture(scope="module")
def sprites_and_model():
    sprites = make_sprites(n=1600, seed=3)
    model = mv.VAE(1024, (64,), 4, seed=0)
    model.fit(sprites.images[:1500], epochs=3, batch_size=50, lr=3e-3, verbose=0)
    return sprites.images[1500:], model


@pytest.mark.parametrize("kind, level", [("gaussian", 0.3), ("salt_pepper", 0.1)])
def test_denoising_gains_psnr_with_a_trained_model(sprites_and_model, kind, level):
    clean, model = sprites_and_model
    report = app.denoising_report(model, clean, kind=kind, level=level, seed=0)
    assert report.gain == pytest.approx(report.psnr_denoised - report.psnr_noisy)
    assert report.psnr_noisy == pytest.approx(app.psnr(clean, app.add_noise(clean, kind, level, seed=0)))
    np.testing.assert_allclose(report.denoised, model.reconstruct(report.noisy))
    assert report.gain > 1.0, report  # dB


def test_an_untrained_model_does_not_denoise(sprites_and_model):
    clean, _ = sprites_and_model
    report = app.denoising_report(mv.VAE(1024, (64,), 4, seed=1), clean, "salt_pepper", 0.1)
    assert report.gain < 0  # its reconstructions are grey blur: worse than the noisy input


def test_slerp_follows_the_great_circle():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 3.0])
    t = np.linspace(0, 1, 7)
    path = app.slerp(a, b, t)
    np.testing.assert_allclose(path[0], a, atol=1e-12)
    np.testing.assert_allclose(path[-1], b, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0)  # equal norms: stays on the circle
    np.testing.assert_allclose(np.arctan2(path[:, 1], path[:, 0]), t * np.pi / 2, atol=1e-12)  # uniform angle
    np.testing.assert_allclose(app.slerp(a, 2 * a, t), (1 - t[:, None]) * a + t[:, None] * 2 * a)  # parallel: a line
    np.testing.assert_allclose(app.slerp(np.zeros(2), b, 0.5), b / 2)


def test_slerp_of_equal_parallel_or_opposite_codes_is_the_straight_line():
    """Their cosine can round past ±1 (a·(2a)/(|a|·|2a|) = 1.0000000000000002 for a = (1, 1, 1)), and
    opposite codes have sin Ω = 0: no math domain error, no 0/0, just the line."""
    a, t = np.array([1.0, 1.0, 1.0]), np.linspace(0, 1, 5)
    for b in (a, 2 * a, 0.5 * a, -a, -2 * a):
        np.testing.assert_allclose(app.slerp(a, b, t), (1 - t[:, None]) * a + t[:, None] * b, atol=1e-12)


def test_slerp_of_nearly_opposite_codes_stays_on_the_circle():
    """Only codes parallel to within rounding take the straight line: 0.005 rad short of
    opposite, the midpoint still has the codes' norm (the line's has 0.0025)."""
    angle = math.pi - 0.005
    a, b = np.array([1.0, 0.0]), np.array([math.cos(angle), math.sin(angle)])
    path = app.slerp(a, b, np.linspace(0, 1, 5))
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.arctan2(path[:, 1], path[:, 0]), np.linspace(0, angle, 5), atol=1e-12)


@pytest.mark.parametrize("scale", [1e-300, 1e-170, 1e-3, 1e160, 1e300])
def test_slerp_of_codes_of_any_finite_scale_is_the_scaled_path(scale):
    """The angle comes from unit vectors made without squaring the codes' values: ‖z‖ squared
    them, so codes past 1e154 gave NaN (Inf/Inf) and codes below 1e-154 the straight line (a
    norm of 0), where the path is the unit-scale one, scaled."""
    a, b, t = np.array([1.0, 0.0, 0.5]), np.array([1.0, 1.0, -0.25]), np.linspace(0, 1, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = app.slerp(a * scale, b * scale, t)
    np.testing.assert_allclose(path / scale, app.slerp(a, b, t), rtol=1e-13)


_NOT_REAL = {"object": np.array([[0.1, None]], dtype=object), "complex128": np.array([[0.1 + 1j, 0.2]]),
             "<U3": np.array([["0.1", "0.2"]])}


@pytest.mark.parametrize("dtype", list(_NOT_REAL))
@pytest.mark.parametrize("call, name", [
    (lambda bad, ok: app.add_noise(bad), "add_noise expects .* for x"),
    (lambda bad, ok: app.psnr(bad, ok), "psnr expects .* for clean"),
    (lambda bad, ok: app.psnr(ok, bad), "psnr expects .* for other"),
    (lambda bad, ok: app.slerp(bad[0], ok[0], 0.5), "slerp expects .* for z_a"),
    (lambda bad, ok: app.slerp(ok[0], bad[0], 0.5), "slerp expects .* for z_b"),
    (lambda bad, ok: app.slerp(ok[0], ok[0][::-1], bad[0]), "slerp expects .* for t"),
    (lambda bad, ok: app.traverse(mv.VAE(2, (3,), 2), ok[0], 0, bad[0]), "traverse expects .* for values"),
    (lambda bad, ok: app.plot_denoising(ok, ok, bad), "plot_denoising expects .* for denoised"),
], ids=["add_noise", "psnr-clean", "psnr-other", "slerp-z_a", "slerp-z_b", "slerp-t", "traverse", "plot_denoising"])
def test_data_that_is_not_real_numbers_is_refused_as_the_models_refuse_it(call, name, dtype):
    """add_noise called None a NaN; the casts to float dropped an imaginary part with only a
    warning, and read strings of digits as their numbers."""
    with pytest.raises(TypeError, match=rf"{name}, got dtype {dtype}$"):
        call(_NOT_REAL[dtype], np.array([[0.1, 0.2]]))


def test_slerp_refuses_codes_it_cannot_join_by_name():
    """Codes of other lengths (NumPy's own error named neither slerp nor what it expects), batches
    of codes (a TypeError from float()), and NaN or Inf anywhere (a path of NaN) are refused."""
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    for z_a, z_b in ((a, np.ones(3)), (np.ones((2, 2)), np.ones((2, 2))), (np.float64(1.0), np.float64(2.0))):
        with pytest.raises(ValueError, match=r"slerp expects two codes of the same length \(vectors\), got shapes"):
            app.slerp(z_a, z_b, 0.5)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="slerp needs finite values: z_a contains NaN or Inf"):
            app.slerp(np.array([bad, 1.0]), b, 0.5)
        with pytest.raises(ValueError, match="slerp needs finite values: z_b contains NaN or Inf"):
            app.slerp(a, np.array([1.0, bad]), 0.5)
        with pytest.raises(ValueError, match="slerp needs finite values: t contains NaN or Inf"):
            app.slerp(a, b, np.array([0.0, bad]))


def test_interpolate_decodes_the_path_between_two_codes(sprites_and_model):
    x, model = sprites_and_model
    mu, _ = model.encode(x[:2])
    for method in ("linear", "slerp"):
        images = app.interpolate(model, x[0], x[1], steps=5, method=method)
        assert images.shape == (5, 1024)
        np.testing.assert_allclose(images[0], model.decode(mu[:1])[0], atol=1e-6)
        np.testing.assert_allclose(images[-1], model.decode(mu[1:])[0], atol=1e-6)
    mid = app.interpolate(model, x[0], x[1][None], steps=3)[1]  # a batch axis of one is fine too
    np.testing.assert_allclose(mid, model.decode(mu.mean(axis=0, keepdims=True))[0], atol=1e-6)
    with pytest.raises(ValueError, match="method"):
        app.interpolate(model, x[0], x[1], method="cubic")
    with pytest.raises(ValueError, match="steps"):
        app.interpolate(model, x[0], x[1], steps=1)
    for steps, error in ((float("inf"), ValueError), (float("nan"), ValueError), (None, TypeError), ("5", TypeError)):
        with pytest.raises(error, match="steps must be an integer >= 2"):
            app.interpolate(model, x[0], x[1], steps=steps)
    # two examples where one is expected: named as given, not as the (1, 2, 1024) batch it became
    with pytest.raises(ValueError, match=r"x_a must be one example, shaped \(1024,\) .*got shape \(2, 1024\)"):
        app.interpolate(model, x[:2], x[1])
    with pytest.raises(ValueError, match=r"x_b must be one example, shaped \(1024,\) .*got shape \(1023,\)"):
        app.interpolate(model, x[0], x[1][:-1])


def test_traverse_sets_or_moves_one_latent_dimension(sprites_and_model):
    x, model = sprites_and_model
    mu = model.encode(x[:1])[0][0]
    values = np.array([-2.0, 0.0, 2.0])
    images = app.traverse(model, x[0], dim=2, values=values)
    z = np.repeat(mu[None], 3, axis=0)
    z[:, 2] = values
    np.testing.assert_allclose(images, model.decode(z), atol=1e-6)
    z[:, 2] = mu[2] + values
    np.testing.assert_allclose(app.traverse(model, x[0], 2, values, relative=True), model.decode(z), atol=1e-6)
    with pytest.raises(ValueError, match="dim"):
        app.traverse(model, x[0], dim=4, values=values)
    with pytest.raises(TypeError, match="dim must be an integer"):  # a bool or a string, as for every count
        app.traverse(model, x[0], dim=True, values=values)
    with pytest.raises(TypeError, match=r"dim must be an integer in \[0, 3\], got '1'"):
        app.traverse(model, x[0], dim="1", values=values)
    np.testing.assert_array_equal(app.traverse(model, x[0], dim=2.0, values=values), images)  # a whole float, as steps=3.0
    with pytest.raises(ValueError, match="values"):
        app.traverse(model, x[0], dim=0, values=[])


def test_empty_input_and_no_methods_are_named():
    model = mv.VAE(4, (3,), 2, seed=0)
    with pytest.raises(ValueError, match="non-empty"):  # was NumPy's "zero-size array to reduction operation"
        app.denoising_report(model, np.zeros((0, 4)))
    with pytest.raises(ValueError, match="methods must name at least one of 'linear' and 'slerp'"):
        app.plot_interpolations(model, np.full(4, 0.2), np.full(4, 0.8), steps=3, methods=())


def test_denoising_report_blames_the_clean_input_not_its_noisy_copy():
    """0..255 images for a Bernoulli model: the range reported is the input's, as passed."""
    model = mv.VAE(16, (8,), 2, seed=0)
    images = np.tile(np.arange(0, 256, 17, dtype=np.uint8), (3, 1))
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\] for a Bernoulli likelihood \(found values in \[0, 255\]\)"):
        app.denoising_report(model, images)


def test_denoising_report_measures_psnr_on_the_data_range():
    # [0, 1] data: a range of 1; real-valued data: its own max − min (unless given)
    rng = np.random.default_rng(0)
    model = mv.VAE(16, (8,), 2, likelihood="gaussian", seed=0)
    real = rng.standard_normal((6, 16)) * 5
    report = app.denoising_report(model, real, "gaussian", 0.3, seed=0)
    span = real.max() - real.min()
    assert report.psnr_noisy == pytest.approx(app.psnr(real, report.noisy, span))
    assert report.psnr_denoised == pytest.approx(app.psnr(real, report.denoised, span))
    explicit = app.denoising_report(model, real, "gaussian", 0.3, seed=0, data_range=2.0)
    assert explicit.psnr_noisy == pytest.approx(app.psnr(real, report.noisy, 2.0))
    unit = rng.random((6, 16))
    assert app.denoising_report(model, unit, "gaussian", 0.3, seed=0).psnr_noisy == pytest.approx(
        app.psnr(unit, app.add_noise(unit, "gaussian", 0.3, 0)))


def test_psnr_chooses_the_data_range_as_denoising_report_does_when_given_none():
    rng = np.random.default_rng(1)
    real, unit = rng.standard_normal((5, 8)) * 3, rng.random((5, 8))
    assert app.psnr(real, real + 0.1, data_range=None) == pytest.approx(app.psnr(real, real + 0.1, real.max() - real.min()))
    assert app.psnr(unit, unit * 0.9, data_range=None) == app.psnr(unit, unit * 0.9)
    with pytest.raises(TypeError, match=r"data_range must be a positive number or None, got '1'"):
        app.psnr(unit, unit, data_range="1")


def test_psnr_takes_the_range_of_data_outside_the_unit_interval_by_default():
    """8-bit images measured without a data_range: against a fixed default of 1 the PSNR
    came out 20·log10(255) ≈ 48 dB too low."""
    images = np.array([[0.0, 128.0, 255.0, 64.0]])
    noisy = images + np.array([[2.0, -2.0, 0.0, 2.0]])  # MSE 3
    assert app.psnr(images, noisy) == pytest.approx(10 * math.log10(255.0**2 / 3))
    assert app.psnr(images, noisy) == app.psnr(images, noisy, data_range=255.0)
    assert app.psnr(images, noisy, data_range=1.0) == pytest.approx(10 * math.log10(1 / 3))


@pytest.mark.parametrize("n, error", [(0, ValueError), (-1, ValueError), (2.5, ValueError), (True, TypeError),
                                      ("2", TypeError)])
def test_plot_denoising_refuses_a_count_that_is_not_positive(n, error):
    """A wrong type is a TypeError and a wrong value a ValueError, as for every count (check_int)."""
    pytest.importorskip("matplotlib")
    x = np.random.default_rng(0).random((4, 16))
    with pytest.raises(error, match=rf"^n must be a positive integer, got {re.escape(repr(n))}$"):
        app.plot_denoising(x, x, x, n=n)


def test_plot_denoising_refuses_batches_too_short_for_its_columns():
    """Each batch was cut to [:n] and the cuts drawn one after another: with two noisy images
    of four, the row labelled "noisy" showed two denoised ones."""
    pytest.importorskip("matplotlib")
    clean, noisy, denoised = np.zeros((4, 16)), np.full((2, 16), 0.5), np.ones((4, 16))
    with pytest.raises(ValueError, match="draws the first 4 images of each batch in a column, but noisy has 2"):
        app.plot_denoising(clean, noisy, denoised, n=4, image_shape=(4, 4))
    with pytest.raises(ValueError, match="but noisy has 2 and denoised has 1"):
        app.plot_denoising(clean, noisy, denoised[:1], n=3, image_shape=(4, 4))
    app.plot_denoising(clean, noisy, denoised, n=2, image_shape=(4, 4))  # two columns: every batch has them


def test_plot_denoising_refuses_a_single_flat_image():
    pytest.importorskip("matplotlib")
    image = np.zeros(16)  # a[:8] took its first 8 pixels, and the error then named a shape (24,)
    with pytest.raises(ValueError, match=r"batches of images, one per row; clean has shape \(16,\) \(pass clean\[None\]"):
        app.plot_denoising(image, image, image)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.bool_])
def test_denoising_report_takes_integer_and_boolean_images(dtype):
    """The default range was max − min in the data's own dtype: int8 wrapped round (and the error
    named data_range, which the caller had not given) and bool could not subtract."""
    rng = np.random.default_rng(0)
    if dtype == np.bool_:
        model, clean, span = mv.VAE(12, hidden=(8,), latent_dim=2, seed=0), rng.random((16, 12)) > 0.5, 1.0
    else:
        model = mv.VAE(12, hidden=(8,), latent_dim=2, seed=0, likelihood="gaussian")
        unit = 1 if dtype == np.int8 else 200  # a span of 255 or 51000: either overflows its dtype
        clean = rng.integers(-100, 100, (16, 12)) * unit
        clean[0, :2] = (-128 * unit, 127 * unit)
        clean, span = clean.astype(dtype), 255.0 * unit
    report = app.denoising_report(model, clean, level=10 if span > 1 else 0.3)
    as_float = clean.astype(np.float64)
    assert report.psnr_noisy == pytest.approx(app.psnr(as_float, report.noisy, data_range=span))
    assert report.psnr_denoised == pytest.approx(app.psnr(as_float, report.denoised, data_range=span))


def test_a_single_sequence_of_one_step_is_one_example_not_a_batch():
    model = mv.VRAE(3, hidden_size=4, latent_dim=2, seed=0)
    sequences = np.random.default_rng(0).random((2, 1, 3))
    path = app.interpolate(model, sequences[0], sequences[1], steps=3)  # (T, F) = (1, 3): one sequence
    assert path.shape == (3, 1, 3)
    assert app.traverse(model, sequences[0], dim=0, values=[-1.0, 1.0]).shape == (2, 1, 3)
    np.testing.assert_array_equal(app.interpolate(model, sequences[:1], sequences[1:], steps=3), path)


def test_image_pictures_of_a_sequence_model_point_to_the_sequence_tools():
    pytest.importorskip("matplotlib")
    from microvae import plot

    model = mv.VRAE(3, hidden_size=4, latent_dim=2, seed=0)
    x = np.random.default_rng(0).random((2, 4, 3))
    for draw in (lambda: plot.plot_traversal(model, x[0]), lambda: plot.plot_interpolation(model, x[0], x[1]),
                 lambda: plot.plot_latent_grid(model, n=3)):
        with pytest.raises(TypeError, match=r"this picture decodes images; VRAE generates sequences: use "
                                            r"microvae.applications.interpolate or traverse, and plot_sequences"):
            draw()


def test_denoising_a_conv_vae_given_flat_rows_keeps_their_shape():
    rng = np.random.default_rng(0)
    model = mv.ConvVAE(input_shape=(3, 8, 8), latent_dim=2, seed=0)
    clean = rng.random((8, 3 * 8 * 8)).astype(np.float32)  # flat rows: the ConvVAE reshapes them
    report = app.denoising_report(model, clean, "salt_pepper", 0.1, seed=0)
    assert report.noisy.shape == report.denoised.shape == clean.shape
    np.testing.assert_allclose(report.denoised, model.reconstruct(report.noisy).reshape(clean.shape))
    assert report.psnr_denoised == pytest.approx(app.psnr(clean, report.denoised))
    assert app.denoise(model, clean.reshape(8, 3, 8, 8)).shape == (8, 3, 8, 8)


def test_one_single_channel_image_is_one_example_not_a_batch():
    x = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    model = mv.ConvVAE(input_shape=(1, 8, 8), latent_dim=2, seed=0)  # x[0] has shape (1, 8, 8): the model's input shape
    mu, _ = model.encode(x)
    path = app.interpolate(model, x[0], x[1], steps=3)
    np.testing.assert_allclose(path[[0, -1]], model.decode(mu), atol=1e-6)
    np.testing.assert_allclose(app.interpolate(model, x[:1], x[1:], steps=3), path)  # explicit batches of one
    assert app.traverse(model, x[0], 1, [0.0, 1.0]).shape == (2, 1, 8, 8)


def _tiny(rng):
    return rng.random((4, 16)).astype(np.float32)


def test_denoising_report_noises_with_its_seed_and_measures_the_clean_reconstruction():
    x = _tiny(np.random.default_rng(3))
    model = mv.VAE(16, (8,), 2, seed=0)
    reports = [app.denoising_report(model, x, "gaussian", 0.2, seed=seed) for seed in (0, 5)]
    for seed, report in zip((0, 5), reports):
        np.testing.assert_array_equal(report.noisy, app.add_noise(x, "gaussian", 0.2, seed=seed))
    assert not np.array_equal(reports[0].noisy, reports[1].noisy)
    assert reports[1].psnr_clean_reconstruction == pytest.approx(app.psnr(x, model.reconstruct(x)))
    assert reports[1].psnr_clean_reconstruction != pytest.approx(reports[1].psnr_denoised)


def test_pictures_draw_each_row_where_its_label_says():
    pytest.importorskip("matplotlib")
    from microvae import plot

    rng = np.random.default_rng(4)
    clean, noisy, denoised = (rng.random((3, 16)) for _ in range(3))
    fig = app.plot_denoising(clean, noisy, denoised, image_shape=(4, 4))  # n=8 by default: the 3 examples there are
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(),
                                  plot.image_grid(np.concatenate([clean, noisy, denoised]), 3, (4, 4), pad_value=1.0))
    x, model = _tiny(rng), mv.VAE(16, (8,), 2, seed=0)
    fig = app.plot_interpolations(model, x[0], x[1], steps=4, methods=("slerp", "linear"), image_shape=(4, 4))
    assert [label.get_text() for label in fig.axes[0].get_yticklabels()] == ["slerp", "linear"]
    rows = [app.interpolate(model, x[0], x[1], 4, method) for method in ("slerp", "linear")]
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(),
                               plot.image_grid(np.concatenate(rows), 4, (4, 4), pad_value=1.0))


@pytest.mark.parametrize("input_shape", [(3, 8, 8), (1, 8, 12)])
def test_pictures_of_a_colour_or_non_square_convvae_need_no_image_shape(input_shape):
    """Both functions flattened the images to rows and then guessed a square grey size, which
    failed for a (3, 8, 8) or a (1, 8, 12) ConvVAE; plot.plot_interpolation drew the same
    model. The items now keep their shape: the grid is the images tiled as they are."""
    pytest.importorskip("matplotlib")
    from microvae import plot

    rng = np.random.default_rng(5)
    model = mv.ConvVAE(input_shape=input_shape, latent_dim=2, seed=0)
    x = rng.random((4, *input_shape)).astype(np.float32)
    fig = app.plot_interpolations(model, x[0], x[1], steps=3)
    rows = [app.interpolate(model, x[0], x[1], 3, method) for method in ("linear", "slerp")]
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), plot.image_grid(np.concatenate(rows), 3, pad_value=1.0))
    report = app.denoising_report(model, x, "gaussian", 0.2, seed=0)
    fig = app.plot_denoising(x, report.noisy, report.denoised, n=2)
    expected = plot.image_grid(np.concatenate([x[:2], report.noisy[:2], report.denoised[:2]]), 2, pad_value=1.0)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), expected)
    assert expected.shape[:2] == (3 * (input_shape[1] + 1) + 1, 2 * (input_shape[2] + 1) + 1)


def test_interpolate_and_traverse_an_aae_through_its_codes():
    x = _tiny(np.random.default_rng(0))
    model = mv.AAE(16, (8,), 3, seed=0)  # encode returns the codes alone, not (μ, logvar)
    codes = model.encode(x[:2]).astype(np.float64)
    images = app.interpolate(model, x[0], x[1], steps=3)
    assert images.shape == (3, 16)
    np.testing.assert_allclose(images, model.decode(np.stack([codes[0], codes.mean(axis=0), codes[1]])), atol=1e-6)
    values = np.array([-1.0, 1.0])
    z = np.repeat(codes[:1], 2, axis=0)
    z[:, 2] = values
    np.testing.assert_allclose(app.traverse(model, x[0], 2, values), model.decode(z), atol=1e-6)
    with pytest.raises(ValueError, match="dim"):
        app.traverse(model, x[0], 3, values)


@pytest.mark.parametrize("hierarchical", [False, True])
def test_interpolate_and_traverse_a_sequence_model_generate_sequences_as_long_as_the_input(hierarchical):
    from microvae.datasets import make_sinusoids

    seqs = make_sinusoids(n=4, length=12, seed=0, unit_range=True).x
    f = seqs.shape[-1]
    model = (mv.HierarchicalVRAE(f, segment_length=4, hidden_size=8, conductor_size=8, latent_dim=2, dtype="float64")
             if hierarchical else mv.VRAE(f, 8, 2, dtype="float64"))
    mu = model.encode(seqs[:2])[0]
    path = app.interpolate(model, seqs[0], seqs[1], steps=3)
    np.testing.assert_allclose(path, model.decode(np.stack([mu[0], mu.mean(axis=0), mu[1]]), 12), atol=1e-12)
    z = np.repeat(mu[:1], 2, axis=0)
    z[:, 1] = [-1.0, 1.0]
    np.testing.assert_allclose(app.traverse(model, seqs[0], 1, [-1.0, 1.0]), model.decode(z, 12), atol=1e-12)


def test_a_conditional_model_encodes_and_decodes_with_its_label():
    x = _tiny(np.random.default_rng(1))
    model = mv.CVAE(16, 3, (8,), 2, seed=0)
    mu, _ = model.encode(x[:2], [2, 2])
    path = app.interpolate(model, x[0], x[1], steps=3, method="slerp", y=2)
    np.testing.assert_allclose(path[[0, -1]], model.decode(mu, 2), atol=1e-6)
    assert not np.allclose(path, app.interpolate(model, x[0], x[1], steps=3, method="slerp", y=0))
    z = np.repeat(mu[:1], 2, axis=0)
    z[:, 1] = [0.5, -0.5]
    np.testing.assert_allclose(app.traverse(model, x[0], 1, [0.5, -0.5], y=np.int64(2)), model.decode(z, 2), atol=1e-6)
    np.testing.assert_allclose(app.denoise(model, x, y=[0, 1, 2, 0]), model.reconstruct(x, [0, 1, 2, 0]))
    for call in (lambda: app.interpolate(model, x[0], x[1]), lambda: app.traverse(model, x[0], 0, [1.0]),
                 lambda: app.denoise(model, x), lambda: app.denoising_report(model, x)):
        with pytest.raises(TypeError, match="CVAE is conditional: pass y"):
            call()
    with pytest.raises(ValueError, match="one integer class label"):
        app.traverse(model, x[0], 0, [1.0], y=[0, 1])
    vae = mv.VAE(16, (8,), 2, seed=0)
    for call in (lambda: app.interpolate(vae, x[0], x[1], y=1), lambda: app.traverse(vae, x[0], 0, [1.0], y=1),
                 lambda: app.denoise(vae, x, y=[0, 1, 2, 0])):
        with pytest.raises(TypeError, match="VAE is unconditional and takes no"):
            call()
    # a mixture AAE takes y in fit, where it picks prior components: not "unconditional" then
    aae = mv.AAE(16, (8,), 2, disc_hidden=(4,), prior="mixture", num_classes=3, seed=0)
    with pytest.raises(TypeError, match=r"AAE reconstructs without labels \(they choose its mixture prior's components, in fit\): leave y out"):
        app.denoise(aae, x, y=[0, 1, 2, 0])


def test_conditional_pictures_take_the_label(tmp_path):
    pytest.importorskip("matplotlib")
    x = np.random.default_rng(2).random((2, 16)).astype(np.float32)
    model = mv.CVAE(16, 3, (8,), 2, seed=0)
    for name, draw in {"interp": lambda p: app.plot_interpolations(model, x[0], x[1], steps=4, image_shape=(4, 4), path=p, y=1),
                       "trav": lambda p: app.plot_traversal(model, x[0], steps=3, image_shape=(4, 4), path=p, y=1)}.items():
        draw(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG
    with pytest.raises(TypeError, match="pass y"):
        app.plot_traversal(model, x[0], steps=3, image_shape=(4, 4))


def test_picture_functions_write_pngs(sprites_and_model, tmp_path):
    pytest.importorskip("matplotlib")
    x, model = sprites_and_model
    report = app.denoising_report(model, x[:6], "gaussian", 0.3)
    paths = {
        "denoise": lambda p: app.plot_denoising(x[:6], report.noisy, report.denoised, n=6, path=p),
        "interp": lambda p: app.plot_interpolations(model, x[0], x[1], steps=6, path=p),
        "trav": lambda p: app.plot_traversal(model, x[0], steps=5, path=p),
    }
    for name, draw in paths.items():
        path = tmp_path / f"{name}.png"
        fig = draw(path)
        assert path.read_bytes()[:8] == PNG
        assert fig.axes
    fig = app.plot_denoising(x[:6], report.noisy, report.denoised, n=4)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["clean", "noisy", "denoised"]
    # the labels sit on the centres of the three rows of 32-pixel tiles (one pixel of padding)
    np.testing.assert_allclose(fig.axes[0].get_yticks(), [16.5, 49.5, 82.5])


# ---------------------------------------------------------------------------------------------
# gaps found by a mutation review


@given(level=st.floats(1.0, 20.0, exclude_min=True), seed=st.integers(0, 2**31 - 1))
def test_gaussian_noise_takes_any_standard_deviation_above_one(level, seed):
    """Only the fractions (salt_pepper, mask) are bounded by 1: a Gaussian level is a std."""
    x = np.random.default_rng(seed).standard_normal((40, 50)) * 10
    noisy = app.add_noise(x, "gaussian", level, seed=seed)
    assert np.std(noisy - x) == pytest.approx(level, rel=0.1)
    for kind in ("salt_pepper", "mask"):
        with pytest.raises(ValueError, match=rf"a fraction in \[0, 1\] \(of the pixels hit\) for '{kind}' noise, got {level!r}"):
            app.add_noise(x, kind, level)


@pytest.mark.parametrize("kind", app.NOISE_KINDS)
@pytest.mark.parametrize("clip", [None, True, False])
def test_noise_on_an_empty_batch_is_an_empty_batch(kind, clip):
    if kind != "gaussian" and clip is not None:
        clip = None  # (refused for these kinds: the test below)
    for x in (np.zeros((0, 5)), np.zeros((0, 5), np.float32)):
        out = app.add_noise(x, kind, 0.5, clip=clip)
        assert out.shape == (0, 5) and out.dtype == x.dtype


@pytest.mark.parametrize("kind", [kind for kind in app.NOISE_KINDS if kind != "gaussian"])
@pytest.mark.parametrize("clip", [True, False])
def test_clip_is_refused_for_noise_that_has_nothing_to_clip(kind, clip):
    """add_noise(x, "salt_pepper", 0.3, clip=True) was taken and ignored: values stayed in [-2, 3]."""
    x = np.linspace(-2, 3, 12).reshape(3, 4)
    with pytest.raises(ValueError, match=rf"^clip is for gaussian noise: '{kind}' noise sets pixels to values of the "
                                         rf"data's own range, with nothing to clip; leave clip out$"):
        app.add_noise(x, kind, 0.3, clip=clip)
    assert app.add_noise(x, kind, 0.3).min() >= -2


def test_psnr_refuses_empty_inputs_and_shapes_that_merely_broadcast():
    with pytest.raises(ValueError, match="psnr of empty arrays is undefined"):
        app.psnr(np.zeros((0, 4)), np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"same shape, got \(1, 4\) and \(4, 1\)"):  # (4, 4) after broadcasting
        app.psnr(np.zeros((1, 4)), np.full((4, 1), 0.1))
    with pytest.raises(ValueError, match=r"same shape, got \(2, 3\) and \(3, 2\)"):
        app.psnr(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize("shape", [(16,), ()])
def test_psnr_per_example_needs_a_batch(shape):
    """A 1-D image's rows are its pixels: per_example=True gave one PSNR per pixel."""
    clean = np.zeros(shape)
    with pytest.raises(ValueError, match=r"per_example=True needs a batch of shape \(n, \.\.\.\).*x\[None\]"):
        app.psnr(clean, clean + 0.1, per_example=True)
    assert app.psnr(clean, clean + 0.1) == pytest.approx(20.0)  # one number for the whole image still
    assert app.psnr(clean.reshape(1, -1), clean.reshape(1, -1) + 0.1, per_example=True) == pytest.approx([20.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", ["clean", "other"])
def test_psnr_refuses_nan_and_inf_by_name(bad, which):
    """An Inf pixel made the PSNR −inf, a NaN made it NaN, with no word of why."""
    clean, other = np.full((2, 3), 0.5), np.full((2, 3), 0.25)
    (clean if which == "clean" else other)[1, 2] = bad
    for per_example in (False, True):
        with pytest.raises(ValueError, match=f"psnr needs finite values: {which} contains NaN or Inf"):
            app.psnr(clean, other, per_example=per_example)


@given(value=st.floats(-100.0, 100.0).filter(lambda v: not 0 <= v <= 1), seed=st.integers(0, 2**31 - 1))
def test_psnr_of_constant_real_data_falls_back_to_a_range_of_one(value, seed):
    """Constant data has max − min = 0, no peak to measure against: the range is then 1."""
    clean = np.full((3, 4), value)
    other = clean + np.random.default_rng(seed).standard_normal((3, 4)) * 0.1
    assert app.psnr(clean, other, data_range=None) == pytest.approx(app.psnr(clean, other, data_range=1.0))


def test_the_clean_reconstruction_psnr_uses_the_same_data_range():
    """All three PSNRs of a report are measured against one range: real-valued data's own span."""
    rng = np.random.default_rng(5)
    model = mv.VAE(16, (8,), 2, likelihood="gaussian", seed=0)
    real = rng.standard_normal((6, 16)) * 4
    span = real.max() - real.min()
    report = app.denoising_report(model, real, "gaussian", 0.3, seed=0)
    assert report.psnr_clean_reconstruction == pytest.approx(app.psnr(real, model.reconstruct(real), span))
    given = app.denoising_report(model, real, "gaussian", 0.3, seed=0, data_range=3.0)
    assert given.psnr_clean_reconstruction == pytest.approx(app.psnr(real, model.reconstruct(real), 3.0))


def test_traverse_refuses_negative_dimensions_and_values_that_are_not_finite():
    """dim=-1 would quietly pick the last dimension; NaN or ±inf would decode garbage."""
    x, model = _tiny(np.random.default_rng(6)), mv.VAE(16, (8,), 3, seed=0)
    for dim in (-1, -3):
        with pytest.raises(ValueError, match=r"dim must be an integer in \[0, 2\], got -"):
            app.traverse(model, x[0], dim, [0.0])
    for values in ([0.0, np.nan], [np.inf], [1.0, -np.inf]):
        with pytest.raises(ValueError, match=r"values must be a non-empty 1-D list of finite numbers, got an array of "
                                             r"shape \(\d\,\) holding NaN or Inf"):
            app.traverse(model, x[0], 1, values)
    # a grid of values was flattened in silence, and an empty list decoded nothing
    for values, shape in (([[0.0, 1.0], [2.0, 3.0]], r"\(2, 2\)"), ([], r"\(0,\)"), (2.0, r"\(\)")):
        with pytest.raises(ValueError, match=f"values must be a non-empty 1-D list of finite numbers, got an array of "
                                             f"shape {shape}$"):
            app.traverse(model, x[0], 1, values)
    assert app.traverse(model, x[0], 1, [0.0, 1.0]).shape == (2, 16)


def test_denoising_a_sequence_model_takes_its_mask_where_a_cvae_takes_labels():
    model = mv.VRAE(3, hidden_size=4, latent_dim=2, seed=0)
    x = np.random.default_rng(0).random((2, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=np.float32)
    out = app.denoise(model, x, mask)
    np.testing.assert_allclose(out, model.reconstruct(x, mask))
    assert np.all(out[1, 3:] == 0)


def test_plot_interpolations_takes_one_method_by_name():
    pytest.importorskip("matplotlib")
    x, model = _tiny(np.random.default_rng(7)), mv.VAE(16, (8,), 2, seed=0)
    fig = app.plot_interpolations(model, x[0], x[1], steps=3, methods="slerp", image_shape=(4, 4))
    assert [label.get_text() for label in fig.axes[0].get_yticklabels()] == ["slerp"]


def test_plot_interpolations_takes_the_steps_interpolate_takes_and_names_them():
    """steps=3.0, which interpolate takes, failed after every path was decoded, with "nrow must be
    a positive integer, got 3.0", an argument the caller never passed."""
    pytest.importorskip("matplotlib")
    x, model = _tiny(np.random.default_rng(7)), mv.VAE(16, (8,), 2, seed=0)
    fig = app.plot_interpolations(model, x[0], x[1], steps=3.0, image_shape=(4, 4))
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(),
                                  app.plot_interpolations(model, x[0], x[1], steps=3, image_shape=(4, 4)).axes[0].images[0].get_array())
    for steps in (2.5, 1):
        with pytest.raises(ValueError, match="steps must be"):
            app.plot_interpolations(model, x[0], x[1], steps=steps, image_shape=(4, 4))


def test_clip_takes_numpys_booleans_too():
    x = np.random.default_rng(8).standard_normal((5, 6)) * 3
    np.testing.assert_array_equal(app.add_noise(x, clip=np.bool_(True)), app.add_noise(x, clip=True))
    np.testing.assert_array_equal(app.add_noise(x, clip=np.False_), app.add_noise(x, clip=False))


def test_plot_traversal_passes_every_option_on(monkeypatch):
    from microvae import plot

    calls = []
    monkeypatch.setattr(plot, "plot_traversal", lambda *args, **kwargs: calls.append((args, kwargs)))
    model, x = object(), np.zeros(4)
    app.plot_traversal(model, x, dims=[1, 0], steps=5, span=1.5, image_shape=(2, 2), path="p.png", y=3)
    assert calls == [((model, x), dict(dims=[1, 0], steps=5, span=1.5, image_shape=(2, 2), path="p.png", y=3))]
    calls.clear()
    app.plot_traversal(model, x)  # the defaults: every dimension, 9 steps over [−3, 3]
    assert calls == [((model, x), dict(dims=None, steps=9, span=3.0, image_shape=None, path=None, y=None))]


def test_plot_denoising_shows_its_title_and_eight_examples_by_default():
    pytest.importorskip("matplotlib")
    from microvae import plot

    rng = np.random.default_rng(9)
    clean, noisy, denoised = (rng.random((10, 16)) for _ in range(3))
    fig = app.plot_denoising(clean, noisy, denoised, image_shape=(4, 4), title="three rows")
    assert fig.axes[0].get_title() == "three rows"
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(),
                                  plot.image_grid(np.concatenate([clean[:8], noisy[:8], denoised[:8]]), 8, (4, 4), pad_value=1.0))


def test_the_documented_defaults_of_the_noise_the_report_and_the_path():
    """add_noise and denoising_report: Gaussian noise of std 0.3 with seed 0; interpolate: 10 steps."""
    x = _tiny(np.random.default_rng(10))
    np.testing.assert_array_equal(app.add_noise(x), app.add_noise(x, "gaussian", 0.3, seed=0))
    model = mv.VAE(16, (8,), 2, seed=0)
    np.testing.assert_array_equal(app.denoising_report(model, x).noisy, app.add_noise(x, "gaussian", 0.3, seed=0))
    assert app.interpolate(model, x[0], x[1]).shape == (10, 16)


# a sequence model's padding in the denoising report (found by an audit of the uses layer) -----------
def _ragged(pad_value):
    rng = np.random.default_rng(0)
    x, mask = mv.pad_sequences([rng.random((length, 3)) for length in (2, 2, 2, 8)], value=pad_value)
    model = mv.VRAE(3, hidden_size=4, latent_dim=2, seed=0)
    model.fit(x, mask, epochs=1, batch_size=4, verbose=0)
    return model, x, mask.astype(bool)


@pytest.mark.parametrize("kind", app.NOISE_KINDS)
def test_denoising_report_measures_and_corrupts_only_a_sequence_models_real_steps(kind):
    """The padding was noised, and the model's zeros there counted as denoising it: +0.89 dB
    reported where the real steps lost 2.29 dB. Padding of −1 made the noise treat the data
    as real-valued (no clip, −1 as pepper) and the model then refused the noisy copy."""
    for pad_value in (0.0, -1.0):
        model, x, real = _ragged(pad_value)
        report = app.denoising_report(model, x, kind, 0.3, seed=0, y=real.astype(np.float32))
        np.testing.assert_array_equal(report.noisy[~real], x[~real])  # the padding is left as it was
        np.testing.assert_array_equal(report.noisy[real], app.add_noise(x[real], kind, 0.3, seed=0))
        assert report.noisy[real].min() >= 0 and report.noisy[real].max() <= 1  # the real steps are [0, 1] data
        by_hand = {name: 10 * np.log10(1 / np.mean((x[real] - other[real]) ** 2))
                   for name, other in (("noisy", report.noisy), ("denoised", report.denoised),
                                       ("clean", model.reconstruct(x, real.astype(np.float32))))}
        assert report.psnr_noisy == pytest.approx(by_hand["noisy"])
        assert report.psnr_denoised == pytest.approx(by_hand["denoised"])
        assert report.psnr_clean_reconstruction == pytest.approx(by_hand["clean"])
        assert report.gain == pytest.approx(by_hand["denoised"] - by_hand["noisy"])


def test_denoising_report_without_a_mask_is_what_it_was():
    """No mask: every value is data, and the noisy copy is add_noise's of the whole batch."""
    model, x, _ = _ragged(0.0)
    report = app.denoising_report(model, x, "gaussian", 0.3, seed=0)
    np.testing.assert_array_equal(report.noisy, app.add_noise(x, "gaussian", 0.3, seed=0))
    assert report.psnr_noisy == pytest.approx(app.psnr(x, report.noisy))
    assert report.psnr_denoised == pytest.approx(app.psnr(x, model.reconstruct(report.noisy)))


def test_a_hierarchical_vraes_path_needs_whole_segments_and_says_how_to_go_on():
    """interpolate and traverse take no mask, so the model's advice to mask the padding could not be followed."""
    model = mv.HierarchicalVRAE(3, segment_length=2, hidden_size=4, conductor_size=3, latent_dim=2, seed=0)
    x = np.random.default_rng(1).random((2, 5, 3))
    message = r"x_a has 5 steps, not a multiple of the HierarchicalVRAE's segment_length=2, and this takes no mask"
    with pytest.raises(ValueError, match=message):
        app.interpolate(model, x[0], x[1], steps=3)
    with pytest.raises(ValueError, match=r"x has 5 steps.*model\.encode\(x, mask\).*model\.decode\(z, length\)"):
        app.traverse(model, x[0], 0, [0.0])
    assert app.interpolate(model, x[0, :4], x[1, :4], steps=3).shape == (3, 4, 3)


def test_plot_interpolations_refuses_a_sequence_model():
    """Its decoded paths were drawn as grey (T, F) tiles; the plot module's pictures already refused."""
    model = mv.VRAE(3, hidden_size=4, latent_dim=2, seed=0)
    x = np.random.default_rng(2).random((2, 4, 3))
    with pytest.raises(TypeError, match="plot_interpolations draws images; VRAE generates sequences: use interpolate"):
        app.plot_interpolations(model, x[0], x[1], steps=3)


# --------------------------------------------------------------------------- an audit of the checks (876dc64 and after)


def test_psnr_names_a_ragged_list():
    with pytest.raises(ValueError, match=r"clean is a ragged list \(its rows have different lengths\)"):
        app.psnr([[0.1, 0.2], [0.1]], [[0.1, 0.3], [0.2]])


@pytest.mark.parametrize("flag", ["no", 1, None])
def test_application_switches_are_true_or_false(flag):
    model, x = mv.VAE(12, hidden=(8,), latent_dim=2, seed=0), np.random.default_rng(0).random((4, 12))
    with pytest.raises(TypeError, match="per_example must be True or False"):  # "no" gave one PSNR per example
        app.psnr(x, x * 0.9, per_example=flag)
    with pytest.raises(TypeError, match="relative must be True or False"):  # "no" moved the code
        app.traverse(model, x[0], 0, [1.0, 2.0], relative=flag)


@pytest.mark.parametrize("span", ["2", True])
def test_plot_traversal_and_latent_grid_take_a_number_for_span(span):
    pytest.importorskip("matplotlib")
    from microvae import plot

    model, x = mv.VAE(12, hidden=(8,), latent_dim=2, seed=0), np.random.default_rng(0).random((4, 12))
    with pytest.raises(TypeError, match=f"span must be a non-negative number, got {span!r}"):
        app.plot_traversal(model, x[0], span=span, image_shape=(3, 4))  # float("2") drew span 2, float(True) span 1
    with pytest.raises(TypeError, match=f"span must be a positive number, got {span!r}"):
        plot.plot_latent_grid(model, span=span, image_shape=(3, 4))


def test_plot_interpolations_names_methods_that_are_no_list():
    pytest.importorskip("matplotlib")
    model, x = mv.VAE(12, hidden=(8,), latent_dim=2, seed=0), np.random.default_rng(0).random((4, 12))
    with pytest.raises(TypeError, match="methods must be 'linear', 'slerp' or a list of them, got None"):
        app.plot_interpolations(model, x[0], x[1], steps=4, methods=None)  # 'NoneType' object is not iterable


# ---------------------------------------------------------------------------------------------
# bad data and labels at every entry point that takes data


def _entry_points():
    """(name, call(model, x (3, 16), y (3,) or None)): every application and metric that takes
    data, with a label per example for a conditional model (one for the single-input ones)."""
    from microvae import metrics

    def first(y):
        return None if y is None else y[1]

    return [
        ("denoise", lambda m, x, y: app.denoise(m, x, y=y)),
        ("denoising_report", lambda m, x, y: app.denoising_report(m, x, y=y)),
        ("interpolate", lambda m, x, y: app.interpolate(m, x[1], x[0], steps=3, y=first(y))),
        ("traverse", lambda m, x, y: app.traverse(m, x[1], 0, [0.0, 1.0], y=first(y))),
        ("anomaly_scores", lambda m, x, y: metrics.anomaly_scores(m, x, y=y)),
        ("reconstruction_error", lambda m, x, y: metrics.reconstruction_error(m, x, y=y)),
        ("elbo", lambda m, x, y: metrics.elbo(m, x, y=y)),
        ("iwae_bound", lambda m, x, y: metrics.iwae_bound(m, x, k=2, y=y)),
    ]


@pytest.mark.parametrize("name, call", _entry_points(), ids=[name for name, _ in _entry_points()])
def test_every_entry_point_refuses_nan_data_and_labels_out_of_range(name, call):
    """The checks live in the models; each entry point must reach them, so that a refactor
    that bypasses one (scoring raw arrays itself) fails here and not silently."""
    x = np.full((3, 16), 0.5)
    x_nan = x.copy()
    x_nan[1, 2] = np.nan  # row 1: the row the single-input entry points take
    for model, y in ((mv.VAE(16, (4,), 2, seed=0), None), (mv.CVAE(16, 3, (4,), 2, seed=0), np.array([0, 1, 2]))):
        with pytest.raises(ValueError, match="x contains NaN or Inf"):
            call(model, x_nan, y)
        call(model, x, y)  # the same call with clean data runs
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 2\] for num_classes=3; found 3"):
        call(mv.CVAE(16, 3, (4,), 2, seed=0), x, np.array([0, 3, 1]))
