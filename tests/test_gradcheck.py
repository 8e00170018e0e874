"""The gradient checker itself: it passes right gradients and fails wrong ones."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microvae as mv
from microvae import testing
from microvae.verify import numeric_gradient


@given(n=st.integers(1, 12), seed=testing.seeds(), mode=st.sampled_from(["full", "directional"]))
def test_right_gradient_passes_and_wrong_one_fails(n, seed, mode):
    a = testing.normal_array(n, seed)
    w = testing.normal_array(n, seed + 1)

    def f():
        return float(np.sum(np.sin(a) * w))

    right = np.cos(a) * w
    assert mv.gradcheck(f, {"a": a}, {"a": right}, mode=mode).passed(1e-6)
    wrong = right.copy()
    wrong[np.argmax(np.abs(wrong))] *= 1.5  # a 50% error in the largest component
    assert not mv.gradcheck(f, {"a": a}, {"a": wrong}, mode=mode, directions=5).passed(1e-3)


def test_inputs_are_restored_after_the_check():
    a = np.array([1.0, 2.0, 3.0])
    mv.gradcheck(lambda: float((a**2).sum()), {"a": a}, {"a": 2 * a.copy()})
    np.testing.assert_array_equal(a, [1.0, 2.0, 3.0])


def test_float32_is_refused():
    a = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {"a": np.ones(3)})


def test_shape_mismatch_and_missing_gradient():
    a = np.ones(3)
    with pytest.raises(ValueError, match="shape"):
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {"a": np.ones(4)})
    with pytest.raises(ValueError, match="no analytic gradient"):
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {})
    with pytest.raises(ValueError, match="mode"):
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {"a": np.ones(3)}, mode="fast")


def test_report_lists_every_input_and_parameter():
    layer = mv.Dense(3, 2).build(dtype="float64")
    result = mv.check_layer(layer, np.ones((2, 3)))
    assert set(result.errors) == {"x", "W", "b"}
    text = str(result)
    assert "W" in text and "ok" in text and result.max_error < 1e-6
    model = mv.VAE(5, (4,), 2, dtype="float64")
    names = set(mv.check_model(model, np.full((2, 5), 0.5), mode="directional").errors)
    assert names == {name for name, _, _ in model.flat.named()}


def test_check_model_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        mv.check_model(mv.VAE(5, (4,), 2), np.full((2, 5), 0.5))


@pytest.mark.parametrize("eps, error, message", [
    (np.zeros((4, 2)), TypeError, r"finite-difference step.*ndarray of shape \(4, 2\).*eps_noise="),
    (0.0, ValueError, "finite positive number"), (-1e-6, ValueError, "finite positive number"),
    (float("nan"), ValueError, "finite positive number"), (float("inf"), ValueError, "finite positive number"),
    ("1e-6", TypeError, "finite-difference step"), (None, TypeError, "finite-difference step"),
])
def test_the_step_must_be_a_finite_positive_number_and_noise_is_pointed_to_eps_noise(eps, error, message):
    model = mv.VAE(8, (6,), 2, dtype="float64")
    x = np.random.default_rng(0).random((4, 8))
    before = model.flat.data.copy()
    with pytest.raises(error, match=message):
        mv.check_model(model, x, eps=eps)
    assert model.step == 0 and np.array_equal(model.flat.data, before)
    layer = mv.Dense(3, 2).build(dtype="float64")
    with pytest.raises(error, match=message.split(".*")[0]):
        mv.check_layer(layer, np.ones((2, 3)), eps=eps)
    with pytest.raises(error, match=message.split(".*")[0]):
        numeric_gradient(lambda: 0.0, np.zeros(2), eps=eps)
    assert mv.check_model(model, x, eps=np.float64(1e-5)).passed()  # a NumPy scalar is a number


def test_check_model_refuses_a_model_without_a_vae_objective():
    aae = mv.AAE(5, (4,), 2, dtype="float64")
    with pytest.raises(TypeError, match=r"AAE has none: check its phases with gradcheck over model.phase_loss"):
        mv.check_model(aae, np.full((2, 5), 0.5))


@pytest.mark.parametrize("mode,per_item", [("full", 5), ("directional", 3)])
def test_each_element_or_direction_costs_four_evaluations(mode, per_item):
    """The module doc's cost: the fourth-order stencil takes four evaluations per element (full)
    or per direction (directional), plus one for the scale floor."""
    calls = []
    theta = np.linspace(-1.0, 1.0, 5)

    def f():
        calls.append(1)
        return float((theta**2).sum())

    mv.gradcheck(f, {"theta": theta}, {"theta": 2 * theta}, mode=mode, directions=3)
    assert len(calls) == 1 + 4 * per_item


def test_a_nan_error_is_the_max_error_and_fails_wherever_it_sits():
    import math

    for errors in ({"a": math.nan, "b": 1e-9}, {"a": 1e-9, "b": math.nan}):
        result = mv.verify.GradcheckResult(errors, "full")
        assert math.isnan(result.max_error) and not result.passed() and "FAIL" in result.table()
    assert mv.verify.GradcheckResult({}, "full").max_error == 0.0


def test_strategies_generate_valid_objects():
    from hypothesis import find

    layer = find(testing.dense_layers(), lambda l: l.in_features > 3)
    assert isinstance(layer, mv.Dense)
    x = find(testing.float_arrays((3, 4), away_from=0.5), lambda a: True)
    assert x.shape == (3, 4) and np.all(np.abs(x) >= 0.5)
    config, batch = find(testing.vae_configs(), lambda c: c[0]["likelihood"] == "gaussian-learned")
    assert 1 <= batch <= 8 and mv.VAE(**config).likelihood.learned


@pytest.mark.parametrize("directions", [0, -2, 1.5, True, "3"])
def test_directions_must_be_a_positive_integer(directions):
    """Zero directions would compare nothing and report a pass for any gradient."""
    a = np.ones(3)
    with pytest.raises((TypeError, ValueError), match="directions must be a positive integer"):
        mv.gradcheck(lambda: float((a**2).sum()), {"a": a}, {"a": 5 * a}, mode="directional", directions=directions)
    model = mv.VAE(4, (3,), 2, dtype="float64")
    with pytest.raises((TypeError, ValueError), match="directions must be a positive integer"):
        mv.check_model(model, np.full((2, 4), 0.5), mode="directional", directions=directions)


def test_check_layer_on_an_unbuilt_layer_says_build_it():
    with pytest.raises(RuntimeError, match=r"built layer: call Dense\(...\).build"):
        mv.check_layer(mv.Dense(3, 2), np.ones((2, 3)))
