"""The gradient checker itself: it passes right gradients and fails wrong ones."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microvae as mv
from microvae import testing
from microvae.verify import gradcheck, numeric_gradient


@given(n=st.integers(1, 12), seed=testing.seeds(), mode=st.sampled_from(["full", "directional", "sampled"]))
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


def test_big_endian_float64_is_checked_as_native_float64_is():
    """float64 in either byte order is float64: it was refused as "needs float64 arrays"."""
    rng = np.random.default_rng(0)
    logits, x = rng.standard_normal((3, 4)), (rng.random((3, 4)) > 0.5).astype(float)
    native = mv.check_loss(mv.losses.bernoulli_nll, {"logits": logits, "x": x}, grad_names=["logits"])
    swapped = logits.astype(">f8")
    big = mv.check_loss(mv.losses.bernoulli_nll, {"logits": swapped, "x": x}, grad_names=["logits"])
    assert big.errors == native.errors and big.passed()
    np.testing.assert_array_equal(swapped, logits)  # restored after the check


def test_float32_is_refused():
    a = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {"a": np.ones(3)})


def test_shape_mismatch_and_missing_gradient():
    a = np.ones(3)
    with pytest.raises(ValueError, match="shape"):
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {"a": np.ones(4)})
    with pytest.raises(ValueError, match="shape"):  # one value would broadcast against all three and pass
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {"a": np.ones(1)})
    with pytest.raises(ValueError, match="no analytic gradient"):
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {})
    with pytest.raises(ValueError, match="mode"):
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {"a": np.ones(3)}, mode="fast")


def test_report_lists_every_input_and_parameter():
    layer = mv.Dense(3, 2).build(dtype="float64")
    result = mv.check_layer(layer, np.ones((2, 3)))
    assert set(result.errors) == {"x", "W", "b", "W (input_grad=False)", "b (input_grad=False)"}
    text = str(result)
    assert "W" in text and "ok" in text and result.max_error < 1e-6
    model = mv.VAE(5, (4,), 2, dtype="float64")
    names = set(mv.check_model(model, np.full((2, 5), 0.5), mode="directional").errors)
    assert names == {name for name, _, _ in model.flat.named()}


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


@pytest.mark.parametrize("mode,per_item", [("full", 5), ("directional", 3), ("sampled", 5)])
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


def test_passed_table_and_max_error_use_the_tolerance_given():
    """``passed(tol)`` and ``table(tol)`` judge against the tol given, not 1e-6 or a multiple;
    ``max_error`` is the largest error, not the first or the smallest."""
    result = mv.verify.GradcheckResult({"a": 1e-9, "b": 2e-6, "c": 1e-7}, "full")
    assert result.max_error == 2e-6
    assert result.passed(2e-6) and not result.passed(1.9e-6) and not result.passed()
    assert [line.split()[-1] for line in result.table(1e-6).splitlines()] == ["ok", "FAIL", "ok"]
    assert [line.split()[-1] for line in result.table(1e-5).splitlines()] == ["ok", "ok", "ok"]
    assert [line.split()[-1] for line in result.table(1e-8).splitlines()] == ["ok", "FAIL", "FAIL"]


@given(n=st.integers(1, 12), seed=testing.seeds(), g_scale=st.sampled_from([1e-6, 1e-2, 1.0, 1e3]),
       w_scale=st.sampled_from([1e-6, 1e-2, 1.0, 1e3]), offset=st.sampled_from([0.0, -1e4, 1e4]),
       mode=st.sampled_from(["full", "directional", "sampled"]))
def test_the_reported_error_is_the_documented_measure(n, seed, g_scale, w_scale, offset, mode):
    """For a linear f = c + Σ w·a every stencil is exact, so the reported error must be the module
    doc's measure up to rounding: full mode max|g − w| / max(max|g|, max|w|, floor); directional
    mode the worst |⟨g − w, v⟩| / max(‖g‖₂, floor) over its unit directions v, read off the
    perturbations f sees (±h·v and ±2h·v); floor = 1e-3·max(1, |f(θ)|). Passing right gradients
    and failing grossly wrong ones would not notice a floor of 1 or 1e3·|f|, a denominator without
    the numeric gradient, directions that are not unit vectors, or a norm other than ‖·‖₂."""
    a = testing.normal_array(n, seed)
    w = testing.normal_array(n, seed + 1, scale=w_scale)
    g = testing.normal_array(n, seed + 2, scale=g_scale)
    a0, h, seen = a.copy(), 1e-3, []

    def f():
        seen.append(a - a0)
        return float(offset + np.sum(w * a))

    result = mv.gradcheck(f, {"a": a}, {"a": g}, eps=h, mode=mode, directions=3, seed=seed)
    floor = 1e-3 * max(1.0, abs(offset + float(np.sum(w * a0))))
    # f is rounded to its own ulp: the stencil (coefficients summing to 1.5 in absolute value,
    # over h) turns that into an error in the numeric derivative that no implementation avoids
    rounding = 4 * np.finfo(np.float64).eps * (abs(offset) + float(np.sum(np.abs(w * a0))) + 1.0) / h
    if mode in ("full", "sampled"):  # (sampled: n ≤ 12 is at most 2·16, so every element)
        denominator = max(np.max(np.abs(g)), np.max(np.abs(w)), floor)
        expected = np.max(np.abs(g - w)) / denominator
    else:
        steps = [d for d in seen if np.any(d)]
        if result.errors["a"] > 1e-7:  # then the kink probe's ±h and ±2h come last
            steps = steps[:-4]
        lengths = np.array([np.linalg.norm(d) for d in steps])
        assert len(steps) == 4 * 3 and np.allclose(np.sort(lengths), [h] * 6 + [2 * h] * 6, rtol=1e-9)
        units = [d / np.linalg.norm(d) for d in steps]
        distinct = {tuple(np.round(u * np.sign(u[np.argmax(np.abs(u))]), 6)) for u in units}
        assert len(distinct) == (1 if n == 1 else 3)  # three directions, each probed at ±h and ±2h
        denominator = max(float(np.linalg.norm(g)), floor)
        expected = max(abs(float((g - w) @ u)) for u in units) / denominator
    assert result.errors["a"] == pytest.approx(expected, rel=1e-6, abs=rounding / denominator)
    assert result.kinks == {}  # a wrong gradient of a smooth f is never put down to a kink


@given(n=st.integers(1, 6), seed=testing.seeds(), mode=st.sampled_from(["full", "directional", "sampled"]))
def test_the_stencil_is_fourth_order(n, seed, mode):
    """The stencil's truncation error is −h⁴·f⁽⁵⁾/30: none at all on a quartic, even with a step
    of 0.1, where central (h²) or one-sided (h) differences are off by about 1e-2 to 1e-1."""
    a = testing.normal_array(n, seed)
    c = testing.normal_array((5, n), seed + 1)

    def f():
        return float(np.sum(c[0] + c[1] * a + c[2] * a**2 + c[3] * a**3 + c[4] * a**4))

    exact = c[1] + 2 * c[2] * a + 3 * c[3] * a**2 + 4 * c[4] * a**3
    if mode == "full":
        np.testing.assert_allclose(numeric_gradient(f, a, eps=0.1), exact, rtol=1e-9, atol=1e-9)
    assert mv.gradcheck(f, {"a": a}, {"a": exact}, eps=0.1, mode=mode).passed(1e-9)


def test_the_seed_chooses_the_directions():
    """Directional checks along the same directions whatever the seed would make the seed
    (and rerunning with another) meaningless."""
    a = np.linspace(-1.0, 1.0, 5)

    def directions(seed):
        seen = []
        a0 = a.copy()
        mv.gradcheck(lambda: seen.append(a - a0) or float((a**2).sum()), {"a": a}, {"a": 2 * a}, mode="directional",
                     directions=2, seed=seed)
        return np.array([d for d in seen if np.any(d)])

    np.testing.assert_array_equal(directions(3), directions(3))
    assert not np.allclose(directions(3), directions(4))
    layer = mv.Dense(3, 2).build(dtype="float64", seed=0)  # check_layer passes its seed on

    def input_directions(seed):
        seen = []
        layer.forward = lambda x: seen.append(np.array(x)) or mv.Dense.forward(layer, x)
        mv.check_layer(layer, np.ones((2, 3)), mode="directional", seed=seed)
        del layer.forward
        return np.array([x - 1.0 for x in seen if np.any(x != 1.0)])

    assert len(input_directions(3)) == 4 * 3 and not np.allclose(input_directions(3), input_directions(4))


def test_check_layer_catches_a_backward_that_drops_the_upstream_gradient():
    """check_layer's f = Σ forward(x) ⊙ R needs a random R: with R = 1 an activation whose
    backward forgets dy (dx = σ'(x) instead of dy·σ'(x)) would pass."""
    layer = mv.Sigmoid().build(dtype="float64")
    x = testing.normal_array((3, 4), 0)
    assert mv.check_layer(layer, x).passed(1e-6)
    right = layer.backward
    layer.backward = lambda dy, input_grad=True: right(np.ones_like(dy), input_grad)
    assert not mv.check_layer(layer, x).passed(1e-3)


def test_check_layer_checks_the_parameters_of_every_sublayer():
    model = mv.Sequential(mv.Dense(3, 4), mv.Tanh(), mv.Dense(4, 2)).build(dtype="float64", seed=0)
    result = mv.check_layer(model, testing.normal_array((2, 3), 0))
    parameters = {"0.W", "0.b", "2.W", "2.b"}
    assert set(result.errors) == {"x"} | parameters | {f"{p} (input_grad=False)" for p in parameters} and result.passed(1e-6)


def test_check_loss_checks_every_gradient_it_returns():
    from microvae import losses

    mu, logvar = testing.normal_array((3, 2), 0), testing.normal_array((3, 2), 1)
    result = mv.check_loss(losses.kl_normal, {"mu": mu, "logvar": logvar})
    assert set(result.errors) == {"mu", "logvar"} and result.passed(1e-6)

    def wrong_dlogvar(mu, logvar):
        per_example, dmu, dlogvar = losses.kl_normal(mu, logvar)
        return per_example, dmu, 2 * dlogvar

    assert not mv.check_loss(wrong_dlogvar, {"mu": mu, "logvar": logvar}).passed(1e-3)


def test_check_model_checks_in_the_mode_and_directions_asked():
    model = mv.VAE(4, (3,), 2, dtype="float64", seed=0)
    x = np.full((2, 4), 0.5)
    calls = []
    loss = model.loss
    model.loss = lambda *args, **kwargs: calls.append(1) or loss(*args, **kwargs)
    result = mv.check_model(model, x, mode="directional", directions=2)
    assert result.mode == "directional" and result.passed(1e-6)
    assert len(calls) == 1 + 4 * 2 * len(result.errors)  # the floor, then four per direction per tensor


def test_strategy_ranges_and_scales():
    """Seeds span 32 bits, Dense layers come with and without a bias, normal_array scales."""
    from hypothesis import find

    assert find(testing.seeds(), lambda s: s >= 2**31) < 2**32
    assert not find(testing.dense_layers(), lambda l: not l.use_bias).use_bias
    np.testing.assert_array_equal(testing.normal_array((2, 3), 5, scale=0.25), 0.25 * testing.normal_array((2, 3), 5))


def test_the_logvar_clamp_helpers_place_each_column_where_asked():
    """The clamp tests rely on these helpers: each clamped side present, the columns pushed ~5
    beyond LOGVAR_RANGE with ε rescaled so that σ·ε = ε, and a filter that rejects an output
    within 1 of the clamp. Broken, those tests would check only unclamped columns and still pass."""
    from microvae.likelihoods import LOGVAR_RANGE

    lo, hi = LOGVAR_RANGE
    drawn = ["high", "low", "inside", "high", "low"]
    orders = set()
    for seed in range(10):
        sides = testing.logvar_sides(("low",), drawn, np.random.default_rng(seed))
        assert sorted(sides) == ["inside", "inside", "low", "low", "low"]  # "high" is not among the clamped
        orders.add(tuple(sides))
        assert sorted(testing.logvar_sides(("low", "high"), drawn[:2], np.random.default_rng(seed))) == ["high", "low"]
    assert len(orders) > 1  # in random order

    bias, eps = np.zeros(3), testing.normal_array((2, 3), 0)
    scaled = testing.push_logvar_outside(bias, ["low", "inside", "high"], eps)
    np.testing.assert_array_equal(bias, [lo - 5.0, 0.0, hi + 5.0])
    np.testing.assert_allclose(scaled * np.exp(0.5 * np.clip(bias, lo, hi)), eps, rtol=1e-12)
    np.testing.assert_array_equal(eps, testing.normal_array((2, 3), 0))  # the caller's noise is left alone

    head = mv.Dense(1, 4).build(dtype="float64")
    head.params["W"][...] = 0.0

    def clear(logvar_bias):
        head.params["b"][...] = [100.0, *logvar_bias]  # column 0 is μ, not judged
        head.forward(np.ones((2, 1)))
        return testing.clear_of_the_clamp(head, 1, ["low", "inside", "high"])

    assert clear([lo - 2, 0.0, hi + 2])
    for too_near in ([lo - 0.5, 0.0, hi + 2], [lo - 2, 0.0, hi + 0.5], [lo - 2, hi - 0.5, hi + 2], [lo - 2, lo + 0.5, hi + 2]):
        assert not clear(too_near), too_near


@pytest.mark.parametrize("mode", ["full", "directional", "sampled"])
def test_a_nan_or_infinite_gradient_or_function_fails_in_either_mode(mode):
    """Python's max(0.0, nan) is 0.0: the directional worst-so-far dropped every NaN, so an
    analytic gradient of NaN or ∞, or an f that is NaN beside θ, reported 0 and passed."""
    a = np.linspace(-1.0, 1.0, 3)
    for grad in (np.full(3, np.nan), np.array([np.inf, 0.0, 1.0]), np.array([1.0, np.nan, 0.0])):
        result = mv.gradcheck(lambda: float((a**2).sum()), {"a": a}, {"a": grad}, mode=mode)
        assert not result.passed(1e-6) and not np.isfinite(result.max_error), (grad, result.errors)
    b = np.array([0.5, 1e-9, 2.0])  # √b is NaN one step below 1e-9
    with np.errstate(invalid="ignore"):
        result = mv.gradcheck(lambda: float(np.sqrt(b).sum()), {"b": b}, {"b": 0.5 / np.sqrt(b)}, mode=mode, directions=5)
    assert not result.passed(1e-6) and np.isnan(result.max_error), result.errors
    calls = []

    def nan_at_the_second_element_or_direction():  # evaluations 6–9: after the floor's and the first 4
        calls.append(1)
        return float("nan") if 6 <= len(calls) <= 9 else float((a**2).sum())

    result = mv.gradcheck(nan_at_the_second_element_or_direction, {"a": a}, {"a": 2 * a}, mode=mode, directions=3)
    assert len(calls) == 13 and np.isnan(result.errors["a"]) and not result.passed(1e-6)


@pytest.mark.parametrize("mode", ["full", "directional", "sampled"])
@pytest.mark.parametrize("view", ["transposed", "strided", "fortran"])
def test_non_contiguous_arrays_are_perturbed_where_fn_reads_them(mode, view):
    """reshape(-1) of a non-contiguous view is a copy: perturbing that copy left fn unchanged,
    every numeric gradient was 0, a wrong zero gradient passed and the right one failed."""
    base = np.arange(1.0, 13.0).reshape(3, 4)
    a = {"transposed": base.T, "strided": base[:, :3], "fortran": np.asfortranarray(base)}[view]
    assert not a.flags.c_contiguous
    before = a.copy()
    f = lambda: float((a**3).sum())
    right, wrong = 3 * a**2, np.zeros(a.shape)
    assert gradcheck(f, {"a": a}, {"a": right}, mode=mode).passed(1e-6)
    assert not gradcheck(f, {"a": a}, {"a": wrong}, mode=mode).passed(1e-6)
    np.testing.assert_array_equal(a, before)  # restored
    np.testing.assert_allclose(numeric_gradient(f, a), right, rtol=1e-5)


def test_a_read_only_array_is_refused_by_name():
    a = np.ones((2, 2))
    a.flags.writeable = False
    with pytest.raises(ValueError, match=r"wrt\['w'\] is read-only.*in place"):
        gradcheck(lambda: float(a.sum()), {"w": a}, {"w": np.ones((2, 2))})
    with pytest.raises(ValueError, match="read-only"):
        numeric_gradient(lambda: float(a.sum()), a)


# gaps found by a mutation review of the checker (each test fails on the mutant named) ------------
def test_an_infinite_error_fails_even_against_an_infinite_tolerance():
    """``passed`` says "every error is finite and at most tol": without the finiteness test an
    infinite error would pass ``passed(inf)``."""
    import math

    result = mv.verify.GradcheckResult({"a": math.inf, "b": 0.0}, "full")
    assert not result.passed(math.inf)
    assert mv.verify.GradcheckResult({"a": 1e300}, "full").passed(math.inf)


@given(error=st.floats(1e-12, 1.0), mode=st.sampled_from(["full", "directional", "sampled"]))
def test_the_table_and_passed_agree_on_an_error_equal_to_the_tolerance(error, mode):
    """An error exactly at the tolerance passes; the table must say ok where ``passed`` does."""
    result = mv.verify.GradcheckResult({"a": error}, mode)
    assert result.passed(error)
    assert result.table(error).split()[-1] == "ok"
    assert result.table(error * (1 - 1e-9)).split()[-1] == "FAIL" and not result.passed(error * (1 - 1e-9))


@pytest.mark.parametrize("mode", ["full", "directional", "sampled"])
def test_an_empty_tensor_has_error_zero_beside_a_checked_one(mode):
    """A tensor with no elements has nothing to get wrong: its error is 0 (not 1 or NaN), and the
    check of the tensors beside it still decides the verdict."""
    a, empty = np.linspace(-1.0, 1.0, 4), np.zeros((0, 3))

    def f():
        return float((a**2).sum() + empty.sum())

    result = mv.gradcheck(f, {"a": a, "e": empty}, {"a": 2 * a, "e": np.zeros((0, 3))}, mode=mode)
    assert result.errors["e"] == 0.0 and result.passed(1e-6)
    wrong = mv.gradcheck(f, {"a": a, "e": empty}, {"a": 3 * a, "e": np.zeros((0, 3))}, mode=mode)
    assert wrong.errors["e"] == 0.0 and not wrong.passed(1e-3)


def test_an_analytic_gradient_of_none_is_named_as_missing():
    a = np.ones(3)
    with pytest.raises(ValueError, match="no analytic gradient given for 'a'"):
        mv.gradcheck(lambda: float(a.sum()), {"a": a}, {"a": None})


def test_check_loss_skips_a_gradient_of_none_and_checks_the_rest():
    """The docstring's fixed variance: a loss that returns None for an input's gradient has that
    input left out (not refused as missing), and the other gradients are still judged."""
    x = testing.normal_array((3, 2), 0)

    def loss(mean, logvar, right=True):
        per_example = 0.5 * ((mean - x) ** 2 * np.exp(-logvar) + logvar).sum(axis=1)
        dmean = (mean - x) * np.exp(-logvar) / len(x)
        return per_example, dmean if right else 2 * dmean, None

    inputs = {"mean": testing.normal_array((3, 2), 1), "logvar": np.full((3, 2), 0.3)}
    result = mv.check_loss(loss, inputs)
    assert set(result.errors) == {"mean"} and result.passed(1e-6)
    assert not mv.check_loss(lambda **kw: loss(**kw, right=False), inputs).passed(1e-3)


def test_check_loss_keeps_the_gradients_it_was_given_before_perturbing():
    """A correct loss that writes its gradients into buffers it reuses (as the kernels write into
    out=) had its second input's gradient read only after the first input's finite differences
    had overwritten it: check_loss copies them first. A bilinear loss: the stencil is exact."""
    buffers = np.empty(4), np.empty(4)

    def loss(a, b):  # mean(a·b): d/da = b/n, d/db = a/n, into the same two buffers each call
        return a * b, np.multiply(b, 1.0 / a.size, out=buffers[0]), np.multiply(a, 1.0 / a.size, out=buffers[1])

    a, b = np.array([0.5, -1.0, 1.5, 2.0]), np.array([1.0, 2.0, -0.5, 0.25])
    result = mv.check_loss(loss, {"a": a, "b": b}, eps=1e-3)
    assert result.passed(1e-8), result


def test_check_loss_refuses_more_gradients_than_names():
    """zip() would drop the extra gradient unchecked."""
    from microvae import losses

    mu, logvar = testing.normal_array((3, 2), 0), testing.normal_array((3, 2), 1)
    with pytest.raises(ValueError, match="kl_normal returned 2 gradients for 1 names"):
        mv.check_loss(losses.kl_normal, {"mu": mu, "logvar": logvar}, grad_names=["mu"])
    with pytest.raises(ValueError, match="returned 2 gradients for 3 names"):
        mv.check_loss(losses.kl_normal, {"mu": mu, "logvar": logvar}, grad_names=["mu", "logvar", "mu"])


def _steps_seen(arrays):
    """A function to call at each evaluation, and the list where it records how far ``arrays``
    (together, flattened) are from where they started."""
    start = [a.copy() for a in arrays]
    seen = []

    def record():
        seen.append(np.concatenate([(a - s).reshape(-1) for a, s in zip(arrays, start)]))
    return record, seen


@pytest.mark.parametrize("mode", ["full", "directional", "sampled"])
def test_check_loss_uses_the_mode_and_the_step_it_is_given(mode):
    from microvae import losses

    mu, logvar = testing.normal_array((2, 2), 0), testing.normal_array((2, 2), 1)
    record, seen = _steps_seen([mu, logvar])

    def kl(mu, logvar):
        record()
        return losses.kl_normal(mu, logvar)

    result = mv.check_loss(kl, {"mu": mu, "logvar": logvar}, mode=mode, eps=1e-3)
    assert result.mode == mode and result.passed(1e-6)
    moves = [d for d in seen if np.any(d)]
    per_tensor = 3 if mode == "directional" else 4  # the default three directions, or every element
    assert len(moves) == 2 * 4 * per_tensor
    np.testing.assert_allclose(sorted(np.linalg.norm(d) for d in moves),
                               [1e-3] * (4 * per_tensor) + [2e-3] * (4 * per_tensor), rtol=1e-6)


def test_check_model_draws_its_noise_from_its_seed_and_its_directions_too():
    """With no eps_noise, the noise is ``model.fixed_noise(x, seed=seed)``: another seed, other
    noise; and in directional mode the seed chooses the directions, as in gradcheck."""
    model = mv.VAE(4, (3,), 2, dtype="float64", seed=0)
    x = np.full((3, 4), 0.5)
    noises, moves = [], []
    start = model.flat.data.copy()
    loss = model.loss

    def spy(*args, eps=None, **kwargs):
        noises.append(np.array(eps))
        moves.append(model.flat.data - start)
        return loss(*args, eps=eps, **kwargs)

    model.loss = spy

    def run(seed):
        noises.clear()
        moves.clear()
        assert mv.check_model(model, x, mode="directional", directions=1, seed=seed).passed(1e-6)
        return noises[0].copy(), np.array([m for m in moves if np.any(m)])

    noise3, moves3 = run(3)
    np.testing.assert_array_equal(noise3, model.fixed_noise(x, seed=3))
    assert all(np.array_equal(n, noise3) for n in noises)  # held fixed through the check
    noise4, moves4 = run(4)
    np.testing.assert_array_equal(noise4, model.fixed_noise(x, seed=4))
    assert not np.allclose(noise3, noise4) and not np.allclose(moves3, moves4)
    np.testing.assert_array_equal(run(3)[1], moves3)


def test_check_model_on_a_float32_model_says_how_to_build_one():
    with pytest.raises(TypeError, match=r"check_model needs a model built with dtype='float64'"):
        mv.check_model(mv.VAE(5, (4,), 2), np.full((2, 5), 0.5))


def test_directions_point_every_way_not_into_one_orthant():
    """The directions are random unit vectors in all of θ's space: components of both signs, not
    |N(0, 1)| draws that probe only one orthant."""
    a = np.zeros(6)
    seen = []
    mv.gradcheck(lambda: seen.append(a.copy()) or float((a**2).sum()), {"a": a}, {"a": np.zeros(6)},
                 mode="directional", directions=4, seed=0)
    steps = np.array([d for d in seen if np.any(d)])
    assert len(steps) == 16
    forward = steps[::4]  # each direction's first probe, +h·v (the others are −h·v, ±2h·v)
    assert 0.2 < (forward < 0).mean() < 0.8  # 24 components of which about half are negative


def test_strategies_reach_every_variant_their_docstrings_promise():
    """Narrowed strategies would still pass the tests that use them, checking less: VAE configs
    with a capacity, a fixed variance other than 1, warm-ups, two hidden layers; unit arrays with
    exact 0s and 1s; shapes of width and batch 1; LeakyReLU slopes other than one value."""
    from hypothesis import Phase, find, settings

    first = settings(phases=[Phase.generate], database=None, derandomize=True, max_examples=1000)  # no shrinking: fast

    def config(condition):
        return find(testing.vae_configs(), lambda c: condition(c[0]), settings=first)[0]

    assert 0 <= config(lambda c: c["capacity"] is not None)["capacity"] <= 5
    fixed = config(lambda c: isinstance(c["likelihood"], dict))["likelihood"]
    assert fixed["name"] == "gaussian" and -3 <= fixed["logvar"] <= 3
    assert config(lambda c: c["likelihood"] == "bernoulli")
    assert 1 <= config(lambda c: c["beta_warmup"] > 0)["beta_warmup"] <= 20
    assert 1 <= config(lambda c: c["capacity_warmup"] > 0)["capacity_warmup"] <= 20
    assert len(config(lambda c: len(c["hidden"]) == 2)["hidden"]) == 2
    # each end on its own: an array holding both was not among 1000 draws when other test files were
    # collected first (Hypothesis draws from the literals of the modules loaded, so the stream moves)
    for end in (0.0, 1.0):
        reached = find(testing.unit_arrays((8,)), lambda a, end=end: (a == end).any(), settings=first)
        assert end in reached and reached.min() >= 0.0 and reached.max() <= 1.0
    assert find(testing.matrix_shapes(), lambda s: s[1] == 1 and s[0] == 1, settings=first) == (1, 1)
    assert find(testing.matrix_shapes(4, 5), lambda s: s == (4, 5), settings=first) == (4, 5)
    low, high = (find(testing.activation_layers(), lambda l: isinstance(l, mv.LeakyReLU) and cond(l.negative_slope),
                      settings=first).negative_slope for cond in (lambda s: s < 0.05, lambda s: s > 0.45))
    assert low < 0.05 and 0.45 < high <= 0.5


def test_the_dense_relu_self_check_has_units_on_and_off_for_every_seed(monkeypatch):
    """With seed 5 every unit of the 3×4 check was off: all gradients 0, so any backward pass
    (a broken fused ReLU's too) agreed. The check redraws until units are on and off."""
    from microvae import selfcheck

    drawn = []
    monkeypatch.setattr(selfcheck, "check_layer", lambda layer, x: drawn.append((layer, x)))
    for seed in range(300):
        selfcheck.CHECKS[("layer", "Dense(relu)")](np.random.default_rng(seed))
    for layer, x in drawn:
        pre = x @ layer.params["W"] + layer.params["b"]
        assert (pre > 0).any() and (pre < 0).any() and np.abs(pre).min() > 0.05
    assert len(drawn) == 300


def test_the_aae_self_check_fails_a_phase_that_adds_to_its_gradients(monkeypatch):
    """It fills each group's gradients with NaN before a phase: a phase that added its
    gradients to what the buffer held, instead of writing them, passed on a just-zeroed buffer."""
    from microvae import selfcheck
    from microvae.models import AAE

    check = selfcheck.CHECKS[("model", "AAE (Gaussian encoder, mixture prior): all three phases")]
    assert check(np.random.default_rng(0)).passed(1e-6)
    real = AAE.phase_loss

    def adding(self, phase, *args, compute_grads=True, **kwargs):
        before = self.flat.grad.copy()
        out = real(self, phase, *args, compute_grads=compute_grads, **kwargs)
        if compute_grads:
            self.flat.grad[...] += before
        return out

    monkeypatch.setattr(AAE, "phase_loss", adding)
    assert not check(np.random.default_rng(0)).passed(1e-6)


# --------------------------------------------------------------------------- an audit of the checkers (6109c8b and after)


@pytest.mark.parametrize("array", [np.array([1, 2]), np.array([1.0, 2.0], dtype=np.float32), np.array([True, False])])
def test_numeric_gradient_needs_a_float64_array(array):
    # steps of 1e-6 truncated to 0 in the int array ([583333, 1750000] for the gradient of Σa²)
    with pytest.raises(TypeError, match="numeric_gradient perturbs array in place by steps of eps, so it must be a float64"):
        numeric_gradient(lambda: float((array.astype(np.float64) ** 2).sum()), array)


def test_check_layer_needs_a_float64_layer_even_without_parameters():
    from microvae.layers import Sigmoid
    from microvae.verify import check_layer

    x = np.random.default_rng(0).standard_normal((2, 3))
    with pytest.raises(TypeError, match=r"check_layer needs a layer built with dtype='float64', got float32"):
        check_layer(Sigmoid().build(dtype="float32"), x)  # failed a correct layer on float32 rounding (error 0.063)
    assert check_layer(Sigmoid().build(dtype="float64"), x).passed()


def test_checks_of_nothing_are_refused_not_passed():
    from microvae.layers import ReLU
    from microvae.verify import check_layer

    with pytest.raises(ValueError, match="ReLU has no parameters, and check_input=False leaves nothing to check"):
        check_layer(ReLU().build(dtype="float64"), np.ones((2, 3)), check_input=False)
    with pytest.raises(ValueError, match="gradcheck needs at least one array in wrt"):
        gradcheck(lambda: 1.0, {}, {})


class _AddsToItsGradients(mv.Dense):
    """A Dense layer written with another library's habit: += into its gradients."""

    def backward(self, dy, input_grad=True):
        dy = self._upstream(dy)
        self.grads["W"] += self._x.T @ dy
        self.grads["b"] += dy.sum(axis=0)
        return dy @ self.params["W"].T if input_grad else None


class _WrongWithoutInputGrad(mv.Dense):
    """Right with input_grad=True; halves dW on the path a model's first layer takes."""

    def backward(self, dy, input_grad=True):
        dx = super().backward(dy, input_grad=input_grad)
        if not input_grad:
            self.grads["W"] *= 0.5
        return dx


def test_check_layer_fails_a_layer_that_adds_to_its_gradients():
    """Training never zeroes the gradients: backward must overwrite them. The check ran one
    backward pass on a fresh layer, whose gradients were 0, so += passed (and trained with
    t·g at step t)."""
    x = testing.normal_array((3, 4), 0)
    assert mv.check_layer(mv.Dense(4, 2).build(dtype="float64", seed=0), x).passed(1e-6)
    result = mv.check_layer(_AddsToItsGradients(4, 2).build(dtype="float64", seed=0), x)
    assert not result.passed(1e-6) and math.isnan(result.errors["W"]) and math.isnan(result.errors["b"])


def test_check_layer_holds_the_pass_without_an_input_gradient_to_the_other():
    """A model calls its first layer with input_grad=False, on another code path (Conv2D: a
    weight-gradient-only kernel). A layer wrong only there passed check_layer."""
    x = testing.normal_array((3, 4), 0)
    result = mv.check_layer(_WrongWithoutInputGrad(4, 2).build(dtype="float64", seed=0), x)
    assert result.errors["W"] < 1e-8 and result.errors["W (input_grad=False)"] > 0.1 and not result.passed(1e-6)
    assert result.errors["b (input_grad=False)"] < 1e-12


class _StaleBiasWithoutInputGrad(mv.Dense):
    """Writes dW but leaves the bias gradient as it was on the input_grad=False path."""

    def backward(self, dy, input_grad=True):
        if input_grad:
            return super().backward(dy, input_grad=True)
        dy = self._upstream(dy)
        self.grads["W"][...] = self._x.T @ dy
        return None


def test_check_layer_fills_the_gradients_before_the_pass_without_an_input_gradient_too():
    """Left from the other pass, a bias gradient that this path never writes looked right."""
    result = mv.check_layer(_StaleBiasWithoutInputGrad(4, 2).build(dtype="float64", seed=0), testing.normal_array((3, 4), 0))
    assert result.errors["b"] < 1e-8 and math.isnan(result.errors["b (input_grad=False)"]) and not result.passed(1e-6)


def test_check_layer_refuses_an_empty_batch():
    """Every gradient of an empty batch is empty, so any layer, right or wrong, passed."""
    with pytest.raises(ValueError, match=r"non-empty batch, got x of shape \(0, 4\)"):
        mv.check_layer(_AddsToItsGradients(4, 2).build(dtype="float64"), np.zeros((0, 4)))


def test_check_model_fails_a_model_whose_layer_adds_to_its_gradients():
    data = np.random.default_rng(0).random((4, 3))
    good = mv.VAE(3, (4,), 2, dtype="float64", seed=0)
    assert mv.check_model(good, data).passed(1e-6)
    bad = mv.VAE(3, (4,), 2, dtype="float64", seed=0, encoder=mv.Sequential(_AddsToItsGradients(3, 4), mv.ReLU()))
    result = mv.check_model(bad, data)
    assert not result.passed(1e-6) and math.isnan(result.max_error)


# sampled mode: a small error spread over a large tensor, at the promised scale ---------------------
def _spread_error_case(n, seed):
    a, w = testing.normal_array(n, seed), testing.normal_array(n, seed + 1)

    def f():
        return float(np.sum(w * np.sin(a)))

    return f, a, w * np.cos(a)


def test_sampled_mode_catches_a_small_error_spread_over_a_large_tensor_where_directions_do_not():
    """Every element 1e-5 too large (10× the 1e-6 promise): along a random direction of a tensor of
    5000 elements that is about 1e-5/√5000 of ‖g‖₂, under 1e-6, so directional checks pass it;
    the sampled check differences the largest elements and sees 1e-5."""
    f, a, right = _spread_error_case(5000, 0)
    wrong = right * (1 + 1e-5)
    assert gradcheck(f, {"a": a}, {"a": right}, mode="sampled").passed(1e-6)
    sampled = gradcheck(f, {"a": a}, {"a": wrong}, mode="sampled")
    assert not sampled.passed(1e-6) and sampled.errors["a"] == pytest.approx(1e-5, rel=0.05)
    assert gradcheck(f, {"a": a}, {"a": wrong}, mode="directional", seed=0).passed(1e-6)  # what sampled mode is for


@given(seed=testing.seeds(), samples=st.integers(1, 6))
def test_sampled_mode_differences_the_largest_elements_and_random_others(seed, samples):
    """The elements perturbed: the ``samples`` of largest |analytic| (so an error in the largest
    component never escapes) and ``samples`` distinct others; the seed picks the others; the
    reported error is the full mode's measure over them, against the whole tensor's max |g|."""
    n = 40
    rng = np.random.default_rng(seed)
    a, w = rng.standard_normal(n), rng.standard_normal(n)
    g = w + 1e-3 * rng.standard_normal(n)  # analytic: off by 1e-3 scale everywhere, f linear (exact stencil)
    h = 1e-3

    def touched(seed_):
        record, seen = _steps_seen([a])

        def f():
            record()
            return float(np.sum(w * a))

        result = gradcheck(f, {"a": a}, {"a": g}, eps=h, mode="sampled", samples=samples, seed=seed_)
        assert result.errors["a"] > 1e-7 and result.kinks == {}  # so the kink probe ran, last, and found none
        seen = seen[:-5]  # (its f(θ), then ±h and ±2h along a random vector)
        return sorted({int(np.flatnonzero(d)[0]) for d in seen if np.any(d)}), result, seen

    chosen, result, seen = touched(seed)
    assert all(np.count_nonzero(d) <= 1 for d in seen)  # one element at a time
    assert len(chosen) == 2 * samples and len(seen) == 1 + 4 * 2 * samples
    largest = set(np.argsort(np.abs(g))[-samples:].tolist())
    assert largest <= set(chosen)
    floor = 1e-3 * max(1.0, abs(float(np.sum(w * a))))
    expected = np.max(np.abs(g - w)[chosen]) / max(np.max(np.abs(g)), np.max(np.abs(w[chosen])), floor)
    assert result.errors["a"] == pytest.approx(expected, rel=1e-6)
    assert touched(seed)[0] == chosen
    others = {tuple(sorted(set(touched(s)[0]) - largest)) for s in range(seed % 1000, seed % 1000 + 4)}
    assert len(others) > 1  # the seed, not a fixed rule, picks the random ones


def test_sampled_mode_checks_every_element_of_a_small_tensor_and_a_wrong_one_anywhere():
    f, a, right = _spread_error_case(10, 3)
    for i in range(10):
        wrong = right.copy()
        wrong[i] += 1e-3 * np.max(np.abs(right))
        assert not gradcheck(f, {"a": a}, {"a": wrong}, mode="sampled", samples=5).passed(1e-6), i
    f, a, right = _spread_error_case(200, 4)
    wrong = right.copy()
    wrong[np.argmax(np.abs(right))] *= 1.01  # the largest component is always among those checked
    for seed in range(3):
        assert not gradcheck(f, {"a": a}, {"a": wrong}, mode="sampled", samples=2, seed=seed).passed(1e-6)


@pytest.mark.parametrize("samples", [0, -2, 1.5, True, "3"])
def test_samples_must_be_a_positive_integer(samples):
    """Zero samples would compare nothing and pass any gradient."""
    a = np.ones(3)
    with pytest.raises((TypeError, ValueError), match="samples must be a positive integer"):
        gradcheck(lambda: float((a**2).sum()), {"a": a}, {"a": 5 * a}, mode="sampled", samples=samples)
    model = mv.VAE(4, (3,), 2, dtype="float64")
    with pytest.raises((TypeError, ValueError), match="samples must be a positive integer"):
        mv.check_model(model, np.full((2, 4), 0.5), mode="sampled", samples=samples)


def test_check_model_passes_samples_on():
    model = mv.VAE(6, (40,), 2, dtype="float64", seed=0)
    x = np.random.default_rng(0).random((3, 6))
    calls = []
    loss = model.loss
    model.loss = lambda *a, **k: calls.append(1) or loss(*a, **k)
    result = mv.check_model(model, x, mode="sampled", samples=3)
    assert result.mode == "sampled" and result.passed(1e-6)
    # one evaluation for the floor, then 4 per element: 2·3 of each tensor larger than 6, all of the others
    sizes = [value.size for _, value, _ in model.flat.named()]
    assert len(calls) == 1 + 4 * sum(min(size, 6) for size in sizes)


@given(n=st.integers(2, 12), zeros=st.integers(1, 3), seed=testing.seeds(), mode=st.sampled_from(["full", "directional", "sampled"]))
def test_a_relu_input_exactly_at_its_kink_is_named_as_the_cause_of_the_fail(n, zeros, seed, mode):
    """f = Σ w·relu(a) with some a exactly 0 (zero pixels meeting zero biases, in a layer): the
    finite differences give w/2 there, where the analytic gradient, 1[a > 0]·w, gives 0, and the
    check fails on a right gradient. The report says the point is a kink; moved off it, the same
    check passes and names none."""
    a = testing.normal_array(n, seed)
    a[: min(zeros, n - 1)] = 0.0
    w = testing.normal_array(n, seed + 1) + np.sign(testing.normal_array(n, seed + 2))  # |w| ≥ about 1 mostly

    def f():
        return float(np.sum(w * np.maximum(a, 0.0)))

    result = gradcheck(f, {"a": a}, {"a": w * (a > 0)}, mode=mode, seed=seed)
    assert not result.passed(1e-6) and set(result.kinks) == {"a"} and result.kinks["a"] > 1e-5
    assert "FAIL  at a kink" in result.table() and "check again off the kink" in result.table()
    a[a == 0.0] = 0.25
    moved = gradcheck(f, {"a": a}, {"a": w * (a > 0)}, mode=mode, seed=seed)
    assert moved.passed(1e-6) and moved.kinks == {} and "kink" not in moved.table()


@given(n=st.integers(1, 8), seed=testing.seeds(), curvature=st.sampled_from([1.0, 1e3, 1e6]),
       mode=st.sampled_from(["full", "directional", "sampled"]))
def test_a_wrong_gradient_of_a_strongly_curved_smooth_f_is_not_put_down_to_a_kink(n, seed, curvature, mode):
    """A smooth f's slope changes by h·f'' across the stencil, however large f'' is: the probe
    sees that double from h to 2h and names no kink, so a wrong gradient stays a plain FAIL."""
    a = testing.normal_array(n, seed, scale=0.1)
    c = testing.normal_array(n, seed + 1)

    def f():
        return float(np.sum(c * np.cosh(np.sqrt(curvature) * a)))

    right = c * np.sqrt(curvature) * np.sinh(np.sqrt(curvature) * a)
    wrong = right + 1e-2 * np.abs(right).max() + 1e-3
    result = gradcheck(f, {"a": a}, {"a": wrong}, mode=mode, seed=seed)
    assert not result.passed(1e-6) and result.kinks == {} and "kink" not in result.table()


def test_check_layer_and_check_model_name_a_kink_from_zero_pixels_meeting_zero_biases():
    """A freshly built ReLU layer (zero biases) checked on an image with a zero background (any
    Fashion-MNIST image) failed with no reason given; a model built of them too."""
    from microvae.verify import check_layer, check_model

    x = np.zeros((2, 1, 8, 8))
    x[:, :, 2:5, 2:5] = np.random.default_rng(0).uniform(0.1, 1.0, (2, 1, 3, 3))
    layer = mv.Conv2D(1, 3, 3, padding="same", activation="relu").build(dtype="float64", seed=0)
    result = check_layer(layer, x)
    assert not result.passed() and set(result.kinks) == {"x", "b"}  # W meets only the image's own pixels
    marked = [line.split()[0] for line in result.table().splitlines() if line.endswith("FAIL  at a kink")]
    assert marked == ["x", "b"] and result.table().splitlines()[-1].startswith("  at a kink: f has no derivative")
    layer.params["b"][...] = testing.normal_array(3, 1, scale=0.1)
    off = check_layer(layer, x)
    assert off.passed() and off.kinks == {}
    net = mv.Sequential(mv.Dense(4, 3), mv.ReLU()).build(dtype="float64", seed=0)
    rows = np.zeros((3, 4))
    rows[0] = 1.0
    assert "0.b" in check_layer(net, rows).kinks
    model = mv.ConvVAE(input_shape=(1, 8, 8), latent_dim=2, dtype="float64", seed=0)
    result = check_model(model, x, mode="directional")
    assert not result.passed() and result.kinks and all(name.endswith(".b") for name in result.kinks)
    assert set(result.kinks) == {name for name, error in result.errors.items() if error > 1e-6}
