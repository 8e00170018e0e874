"""microvae.explain and `microvae gradcheck --explain`: every VAE gradient, formula by formula."""

import re

import numpy as np
import pytest

from microvae import explain
from microvae.cli import main
from microvae.reparam import Reparameterization

FORMULAS = [
    "dL/dl = (σ(l) − x) / B",
    "dW4 = h3ᵀ·dl",
    "db4 = Σ_batch dl",
    "dh3 = dl·W4ᵀ",
    "da3 = dh3 ⊙ [a3 > 0]",
    "dW3 = zᵀ·da3",
    "dz = da3·W3ᵀ",
    "dμ_rec = dz",
    "dlogvar_rec = ½·dz ⊙ ε ⊙ exp(½·logvar)",
    "dμ_KL = μ / B",
    "dlogvar_KL = ½·(exp(logvar) − 1) / B",
    "dμ = dμ_rec + β·dμ_KL",
    "dlogvar = dlogvar_rec + β·dlogvar_KL",
    "dW2 = h1ᵀ·[dμ ‖ dlogvar]",
    "da1 = ([dμ ‖ dlogvar]·W2ᵀ) ⊙ [a1 > 0]",
    "dW1 = xᵀ·da1",
]


def _errors(text):
    return [float(e) for e in re.findall(r"rel\. error (\S+)", text)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_gradient_of_the_walk_through_matches_its_finite_difference(seed):
    terms = explain.explain_gradients(seed=seed)
    assert [t.formula for t in terms] == FORMULAS
    for t in terms:
        assert t.analytic.shape == t.numeric.shape and t.analytic.size > 0
        assert t.error <= 1e-6, (t.name, t.error)
        np.testing.assert_allclose(t.analytic, t.numeric, atol=1e-6)
    by_formula = {t.formula: t for t in terms}
    # the pieces fit together the way the formulas say
    np.testing.assert_array_equal(by_formula["dμ_rec = dz"].analytic, by_formula["dz = da3·W3ᵀ"].analytic)
    da3, dh3 = by_formula["da3 = dh3 ⊙ [a3 > 0]"].analytic, by_formula["dh3 = dl·W4ᵀ"].analytic
    assert np.all((da3 == 0) | (da3 == dh3))  # the mask keeps or zeroes each entry
    np.testing.assert_allclose(by_formula["db4 = Σ_batch dl"].analytic, by_formula["dL/dl = (σ(l) − x) / B"].analytic.sum(axis=0))
    np.testing.assert_allclose(by_formula["dμ = dμ_rec + β·dμ_KL"].analytic,
                               by_formula["dμ_rec = dz"].analytic + by_formula["dμ_KL = μ / B"].analytic)


FORWARD_FORMULAS = ["z = μ + exp(½·logvar) ⊙ ε", "BCE = Σ (softplus(l) − x·l)", "KL = ½ Σ (μ² + e^logvar − 1 − logvar)"]


def test_the_command_prints_each_formula_with_values_and_errors(capsys):
    assert main(["gradcheck", "--explain"]) == 0
    out = capsys.readouterr().out
    for i, formula in enumerate(FORWARD_FORMULAS + FORMULAS, 1):
        assert re.search(rf"^ ?{i}\. .* {re.escape(formula)}$", out, re.M), formula  # numbered, values first
    errors = _errors(out)
    assert len(errors) == len(FORMULAS) + 3 and max(errors) <= 1e-6
    assert out.count("analytic  [") == len(FORMULAS) and out.count("numeric   [") == len(FORMULAS)
    assert out.count("microvae  [") == 3 and out.count("formula   [") == 3
    assert "FAIL" not in out
    assert out.rstrip().endswith("every value agrees with its formula, and every gradient with its finite difference")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_sample_bce_and_kl_agree_with_their_formulas(seed):
    terms = explain.explain_forward(seed=seed)
    assert [t.formula for t in terms] == FORWARD_FORMULAS and {t.kind for t in terms} == {"forward"}
    model, x, eps = explain._tiny_model(seed)
    assert terms[0].analytic.shape == eps.shape and terms[1].analytic.shape == terms[2].analytic.shape == (len(x),)
    for t in terms:
        assert t.error <= 1e-14, (t.name, t.error)
    # the model's loss is made of these values: its recon and KL are their batch means
    loss = model.loss(x, eps=eps)
    assert loss.recon == pytest.approx(terms[1].numeric.mean(), rel=1e-12)
    assert loss.kl == pytest.approx(terms[2].numeric.mean(), rel=1e-12)


def _exp_logvar_sampling(monkeypatch, backward_follows):
    """σ = exp(logvar) in the sampler's forward pass (numpy-ml's bug); with ``backward_follows``
    the backward pass that matches it, dlogvar = dz·ε·exp(logvar)."""
    right = Reparameterization.forward

    def forward(self, mu, logvar, eps=None):
        z = right(self, mu, logvar, eps)
        self._std = self._std**2
        return z + (self._std - self._std**0.5) * self._eps

    monkeypatch.setattr(Reparameterization, "forward", forward)
    if backward_follows:
        monkeypatch.setattr(Reparameterization, "backward", lambda self, dz: (dz, dz * self._eps * self._std))


def test_a_forward_bug_the_backward_pass_follows_shows_up_at_the_sample_and_nowhere_else(monkeypatch, capsys):
    """Every gradient agrees with a forward pass that is itself wrong; the z line is the one to fail
    (the walk-through used to blame dμ = dz, differencing the textbook z against the model's)."""
    _exp_logvar_sampling(monkeypatch, backward_follows=True)
    forward = {t.formula: t for t in explain.explain_forward(seed=0)}
    assert forward["z = μ + exp(½·logvar) ⊙ ε"].error > 1e-3
    assert forward["BCE = Σ (softplus(l) − x·l)"].error <= 1e-14 and forward["KL = ½ Σ (μ² + e^logvar − 1 − logvar)"].error <= 1e-14
    assert all(t.error <= 1e-6 for t in explain.explain_gradients(seed=0))
    assert main(["gradcheck", "--explain"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 2  # the z line, and the verdict
    assert out.rstrip().endswith("1 forward value(s) FAILED: the forward pass differs from its formula, which no finite "
                                 "difference can see (the gradient lines check the backward pass against it)")


def test_a_forward_bug_alone_fails_the_sample_and_the_logvar_gradient(monkeypatch):
    """σ = exp(logvar) forward but the right backward pass: the sample is wrong, and so is dlogvar
    against the forward pass the model runs; dμ = dz still holds."""
    _exp_logvar_sampling(monkeypatch, backward_follows=False)
    assert explain.explain_forward(seed=0)[0].error > 1e-3
    terms = {t.formula: t for t in explain.explain_gradients(seed=0)}
    assert terms["dlogvar_rec = ½·dz ⊙ ε ⊙ exp(½·logvar)"].error > 1e-3
    assert terms["dμ_rec = dz"].error <= 1e-6 and terms["dz = da3·W3ᵀ"].error <= 1e-6


def test_a_wrong_gradient_shows_up_at_its_own_line(monkeypatch, capsys):
    """The classic bug: exp(logvar) instead of exp(½·logvar) in the reparameterization's backward."""

    def buggy_backward(self, dz):
        return dz, dz * self._eps * self._std**2 * 0.5

    monkeypatch.setattr(Reparameterization, "backward", buggy_backward)
    terms = {t.formula: t for t in explain.explain_gradients(seed=0)}
    assert terms["dlogvar_rec = ½·dz ⊙ ε ⊙ exp(½·logvar)"].error > 1e-3
    for formula in FORMULAS[:10]:  # everything downstream of the bug, and the KL, is still right
        if formula != "dlogvar_rec = ½·dz ⊙ ε ⊙ exp(½·logvar)":
            assert terms[formula].error <= 1e-6, formula
    assert main(["gradcheck", "--explain"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "FAILED" in out


def test_format_shows_the_largest_entries_and_the_numeric_values_at_the_same_places():
    # the first entries can be exact zeros (a ReLU unit off for the whole batch): 0 against 0 says nothing
    terms = explain.explain_gradients(seed=0)
    text = explain.format_explanation(terms, entries=2)
    for t in terms:
        flat, numeric = t.analytic.reshape(-1), t.numeric.reshape(-1)
        i, j = sorted(np.argsort(-np.abs(flat), kind="stable")[:2]) if flat.size > 1 else (0, None)
        if j is None:
            continue
        where = "shape" if flat.size == 2 else f"the 2 largest |·| of shape {t.analytic.shape}, at flat indices {i}, {j}"
        assert f"analytic  [{flat[i]:+.8f}, {flat[j]:+.8f}]   {where}" in text  # says which entries it shows
        assert f"numeric   [{numeric[i]:+.8f}, {numeric[j]:+.8f}]" in text
        assert np.abs(flat[[i, j]]).min() >= np.sort(np.abs(flat))[-2]
    assert "KL = ½ Σ (μ² + e^logvar − 1 − logvar)" in text and "BCE = Σ (softplus(l) − x·l)" in text


def test_the_step_shown_is_the_step_used_and_bad_arguments_are_named():
    from microvae import explain

    terms = explain.explain_gradients(h=1e-4)
    assert all(t.step == 1e-4 for t in terms)
    assert "central differences, step 0.0001);" in explain.format_explanation(terms)  # it said 1e-6 whatever h was
    default = explain.explain_gradients()  # and the numeric values come from that step, not the default one
    assert any(not np.array_equal(t.numeric, d.numeric) for t, d in zip(terms, default))
    for h, error in (("a", TypeError), (0.0, ValueError), (float("inf"), ValueError)):
        with pytest.raises(error, match="h must be a finite positive number"):  # it named eps and check_model
            explain.explain_gradients(h=h)
    with pytest.raises(ValueError, match="entries must be a positive integer"):  # -1 showed all but one
        explain.format_explanation(terms, entries=-1)
    for tol, error in (("1e-6", TypeError), (None, TypeError), (True, TypeError), (0.0, ValueError),
                       (-1e-6, ValueError), (float("inf"), ValueError), (float("nan"), ValueError)):
        with pytest.raises(error, match="tol must be a"):  # "Unknown format code 'g'"; True was 1.0, inf passed all
            explain.format_explanation(terms, tol=tol)
    with pytest.raises(ValueError, match="needs at least one term"):  # it printed "every gradient agrees"
        explain.format_explanation([])


def test_the_text_of_forward_values_alone_claims_no_gradient():
    """With only explain_forward's terms, the verdict said "...and every gradient with its finite
    difference", and the header named a step for gradients that were not there."""
    text = explain.format_explanation(explain.explain_forward())
    assert text.endswith("every value agrees with its formula") and "gradient" not in text.split("\n", 3)[3]
    assert "central differences" not in text and "tolerance 1e-06" in text
    both = explain.format_explanation(explain.explain_forward() + explain.explain_gradients())
    assert both.endswith("every value agrees with its formula, and every gradient with its finite difference")
    assert "each gradient of L below (of one term of L where the formula says _rec or _KL)" in both


def test_a_nan_error_is_a_failure_in_the_text():
    """``error <= tol`` is False for NaN; ``not error > tol`` would print ok and count no failure."""
    nan = explain.ExplainedTerm("broken", "dθ = ?", np.ones(2), np.full(2, np.nan), float("nan"))
    text = explain.format_explanation([nan, nan._replace(name="fine", numeric=np.ones(2), error=0.0)])
    assert "rel. error nan  FAIL" in text and "rel. error 0.00e+00  ok" in text
    assert text.endswith("1 gradient(s) FAILED")


def test_the_walk_through_refuses_to_differ_from_the_models_own_gradients(monkeypatch):
    """Its closing comparison with model.loss_and_grads is what makes the walk-through the model's
    code; a model whose gradients differ must be reported, not passed over."""
    from microvae.models import VAE

    right = VAE.loss_and_grads

    def doubled(self, *args, **kwargs):
        terms = right(self, *args, **kwargs)
        self.flat.grad *= 2
        return terms

    monkeypatch.setattr(VAE, "loss_and_grads", doubled)
    with pytest.raises(AssertionError, match="differs from model.loss_and_grads"):
        explain.explain_gradients(seed=0)


# gaps found by a mutation review ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_error_is_the_relative_error_of_microvae_verify(seed):
    """The module doc: the error is verify's max-norm relative error with the floor 1e-3·max(1, |L|).
    Every gradient here is larger than that floor, so the error must be the plain
    max|a − n| / max(max|a|, max|n|) (a floor of 0.1·|L| would have shrunk it)."""
    model, x, eps = explain._tiny_model(seed)
    floor = 1e-3 * max(1.0, abs(model.loss(x, eps=eps).loss))
    for t in explain.explain_gradients(seed=seed):
        scale = max(np.abs(t.analytic).max(), np.abs(t.numeric).max())
        assert scale > floor, t.name
        assert t.error == pytest.approx(np.abs(t.analytic - t.numeric).max() / scale, rel=1e-9, abs=1e-300), t.name


@pytest.mark.parametrize("seed", [3, 8, 11])  # seeds whose first draws break one promise or another
def test_the_tiny_model_is_drawn_away_from_the_kinks_with_a_unit_off(seed):
    """_tiny_model's promise: every ReLU input at least 0.05 from 0 (no finite-difference step
    crosses a kink), every example with an active unit in both hidden layers, and some encoder
    unit off, so that the mask lines show zeros the mask put there."""
    model, x, eps = explain._tiny_model(seed)
    enc1, _, enc2 = model.encoder.layers
    dec1 = model.decoder.layers[0]
    a1 = x @ enc1.params["W"] + enc1.params["b"]
    o = np.maximum(a1, 0) @ enc2.params["W"] + enc2.params["b"]
    a3 = (o[:, :2] + np.exp(0.5 * o[:, 2:]) * eps) @ dec1.params["W"] + dec1.params["b"]
    assert np.abs(a1).min() > 0.05 and np.abs(a3).min() > 0.05
    assert (a1 > 0).any(axis=1).all() and (a3 > 0).any(axis=1).all() and not (a1 > 0).all()
    by_formula = {t.formula: t for t in explain.explain_gradients(seed=seed)}
    np.testing.assert_array_equal(by_formula["da1 = ([dμ ‖ dlogvar]·W2ᵀ) ⊙ [a1 > 0]"].analytic[a1 <= 0], 0.0)


def test_a_gradient_shown_whole_says_only_its_shape():
    """Where ``entries`` covers the whole gradient (4 entries of db4 with entries=4), the line gives
    its shape, not "the 4 largest" of it; one entry fewer and it says which it shows."""
    terms = explain.explain_gradients(seed=0)
    db4 = next(t for t in terms if t.formula == "db4 = Σ_batch dl")
    assert db4.analytic.shape == (4,)
    shown = [line for line in explain.format_explanation([db4], entries=4).splitlines() if "analytic  [" in line]
    assert len(shown) == 1 and shown[0].endswith("   shape (4,)")
    shown = [line for line in explain.format_explanation([db4], entries=3).splitlines() if "analytic  [" in line]
    assert "the 3 largest |·| of shape (4,), at flat indices" in shown[0]


def test_an_error_equal_to_the_tolerance_is_ok_in_the_text():
    """As GradcheckResult.passed: an error at most ``tol`` passes."""
    term = explain.ExplainedTerm("at the bar", "dθ = 1", np.ones(2), np.ones(2), 1e-6)
    text = explain.format_explanation([term], tol=1e-6)
    assert "rel. error 1.00e-06  ok" in text and text.endswith("every gradient agrees with its finite difference")
    assert text.replace("ok", "").count("FAIL") == 0


@pytest.mark.parametrize("key", ["decoder.2.W", "decoder.2.b", "decoder.0.W", "encoder.2.W", "encoder.0.W"])
def test_the_walk_through_notices_any_one_parameter_gradient_off_by_a_millionth(monkeypatch, key):
    """Each of the five gradients it shows is compared with the model's own, tightly: one of them
    alone, off by one part in a million, is reported."""
    from microvae.models import VAE

    right = VAE.loss_and_grads

    def one_off(self, *args, **kwargs):
        terms = right(self, *args, **kwargs)
        grad = next(g for name, _, g in self.flat.named() if name == key)
        grad *= 1 + 1e-6
        return terms

    monkeypatch.setattr(VAE, "loss_and_grads", one_off)
    with pytest.raises(AssertionError, match=f"the walk-through's {key} differs from model.loss_and_grads"):
        explain.explain_gradients(seed=0)


def test_the_seed_draws_another_walk_through_and_the_default_step_is_a_millionth():
    """--seed must give another tiny VAE (the same one for the same seed); the default step h is
    1e-6, as the text says."""
    a, b, again = (explain.explain_gradients(seed=s) for s in (1, 2, 1))
    assert not np.allclose(a[0].analytic, b[0].analytic)
    assert all(np.array_equal(t.analytic, u.analytic) and np.array_equal(t.numeric, u.numeric) for t, u in zip(a, again))
    default = explain.explain_gradients()
    assert {t.step for t in default} == {1e-6}
    assert "central differences, step 1e-6);" in explain.format_explanation(default)


def test_the_text_shows_four_entries_by_default():
    terms = explain.explain_gradients(seed=0)
    lines = [line for line in explain.format_explanation(terms).splitlines() if "analytic  [" in line]
    assert len(lines) == len(terms)
    assert all(line.split("[")[1].split("]")[0].count(",") == min(4, t.analytic.size) - 1 for line, t in zip(lines, terms))
