"""``microvae gradcheck --explain``: the VAE's backward pass, one gradient at a time.

A tiny float64 VAE (4 → 3 → μ, logvar of 2 → 3 → 4, one batch of B = 2, the noise ε held
fixed) is run forward through microvae's own layers, then backward through them, stopping
at every intermediate gradient. Each one is printed next to its formula and compared with
a fourth-order central finite difference of the loss *as a function of that quantity alone* (everything
upstream held fixed, everything downstream recomputed), so each line checks one piece of
the chain rule:

    forward   a₁ = x·W₁ + b₁,  h₁ = relu(a₁),  [μ ‖ logvar] = h₁·W₂ + b₂,
              z = μ + exp(½·logvar)·ε,  a₃ = z·W₃ + b₃,  h₃ = relu(a₃),  l = h₃·W₄ + b₄
    loss      L = (1/B) Σ_batch [ BCE(l, x) + β·KL(N(μ, e^logvar) ‖ N(0, I)) ]

The relative error is the one ``microvae.verify`` uses (max-norm, relative to the
gradient's scale). The five parameter gradients it shows (every layer's weights, and the
output layer's bias) are also compared with what ``model.loss_and_grads`` leaves in
``model.flat.grad``: the walk-through is the model's code.

A finite difference checks a backward pass against its own forward pass, so a forward pass
that is wrong the way its backward pass is (σ = exp(logvar) in both) passes every gradient
line. ``explain_forward`` comes first for that: the sample z, the BCE and the KL of the same
tiny VAE against their formulas, written out in plain NumPy.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .checks import check_int, check_number, check_seed
from .losses import bernoulli_nll, kl_normal
from .verify import _relative_error, numeric_gradient, value_error

__all__ = ["ExplainedTerm", "explain_forward", "explain_gradients", "format_explanation", "FORWARD"]

FORWARD = (
    "forward:  a1 = x·W1 + b1,  h1 = relu(a1),  [μ ‖ logvar] = h1·W2 + b2,  z = μ + exp(½·logvar)⊙ε,\n"
    "          a3 = z·W3 + b3,  h3 = relu(a3),  l = h3·W4 + b4\n"
    "loss:     L = (1/B) Σ_batch [ BCE(l, x) + β·KL ],  BCE = Σ (softplus(l) − x·l),  KL = ½ Σ (μ² + e^logvar − 1 − logvar)"
)


class ExplainedTerm(NamedTuple):
    """One line of the walk-through: a gradient (its formula, analytic value, finite-difference
    estimate) or, with ``kind="forward"``, a value (microvae's in ``analytic``, its formula's in
    ``numeric``)."""

    name: str
    formula: str
    analytic: np.ndarray
    numeric: np.ndarray
    error: float
    step: float = 1e-6  # the finite-difference step h that gave ``numeric``
    kind: str = "gradient"


def _tiny_model(seed):
    """A 4→3→(2, 2)→3→4 float64 VAE, its batch and noise: every ReLU input at least 0.05 from the
    kink, each example with an active unit in both hidden layers, and some encoder unit off."""
    from .models import VAE

    rng = np.random.default_rng(check_seed(seed))
    for _ in range(1000):
        model = VAE(input_dim=4, hidden=(3,), latent_dim=2, beta=1.0, fuse_relu=False, dtype="float64",
                    seed=int(rng.integers(1 << 30)))  # separate ReLU layers: the walk-through shows each step
        model.flat.data[...] = rng.standard_normal(model.flat.size) * 0.8
        x = rng.uniform(0.0, 1.0, (2, 4))
        eps = rng.standard_normal((2, 2))
        enc1, _, enc2 = model.encoder.layers
        dec1, _, _ = model.decoder.layers
        a1 = x @ enc1.params["W"] + enc1.params["b"]
        o = np.maximum(a1, 0) @ enc2.params["W"] + enc2.params["b"]
        z = o[:, :2] + np.exp(0.5 * o[:, 2:]) * eps
        a3 = z @ dec1.params["W"] + dec1.params["b"]
        away = np.abs(a1).min() > 0.05 and np.abs(a3).min() > 0.05
        if away and (a1 > 0).any(axis=1).all() and (a3 > 0).any(axis=1).all() and not (a1 > 0).all():
            return model, x, eps
    raise RuntimeError("could not draw a tiny VAE away from the ReLU kinks")  # pragma: no cover


def explain_forward(seed: int = 0) -> list:
    """The tiny VAE's sample z, BCE and KL (microvae's values) against their formulas in plain
    NumPy: a list of ``ExplainedTerm`` with ``kind="forward"``."""
    model, x, eps = _tiny_model(seed)
    latent = model.latent_dim
    out = model.encoder.forward(x)
    mu, logvar = out[:, :latent].copy(), out[:, latent:].copy()
    z = model.sampler.forward(mu, logvar, eps).copy()
    logits = model.decoder.forward(z)
    pairs = [
        ("reparameterization: z", "z = μ + exp(½·logvar) ⊙ ε", z, mu + np.exp(0.5 * logvar) * eps),
        ("BCE from logits, per example", "BCE = Σ (softplus(l) − x·l)", bernoulli_nll(logits, x)[0],
         (np.logaddexp(0.0, logits) - x * logits).sum(axis=1)),
        ("KL, per example", "KL = ½ Σ (μ² + e^logvar − 1 − logvar)", kl_normal(mu, logvar)[0],
         0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(axis=1)),
    ]
    terms = []
    for name, formula, ours, theirs in pairs:
        ours, theirs = np.array(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
        terms.append(ExplainedTerm(name, formula, ours, theirs, value_error(ours, theirs), 0.0, "forward"))
    return terms


def explain_gradients(seed: int = 0, h: float = 1e-6) -> list:
    """Run the walk-through; returns a list of ``ExplainedTerm`` in backward order. ``h`` is the
    finite-difference step."""
    h = check_number("h", h, "a finite positive number (the finite-difference step)")
    if not (h > 0 and math.isfinite(h)):
        raise ValueError(f"h must be a finite positive number (the finite-difference step), got {h!r}")
    model, x, eps = _tiny_model(seed)
    beta = model.beta
    enc1, enc_relu, enc2 = model.encoder.layers
    dec1, dec_relu, dec2 = model.decoder.layers
    sampler = model.sampler
    latent = model.latent_dim

    # forward, keeping every intermediate -----------------------------------------------------
    a1 = enc1.forward(x)
    h1 = enc_relu.forward(a1)
    o = enc2.forward(h1)
    mu, logvar = o[:, :latent].copy(), o[:, latent:].copy()
    z = sampler.forward(mu, logvar, eps)
    a3 = dec1.forward(z)
    h3 = dec_relu.forward(a3)
    logits = dec2.forward(h3)
    _, dlogits = bernoulli_nll(logits, x)
    kl, dmu_kl, dlogvar_kl = kl_normal(mu, logvar)
    kl_mean = float(kl.mean())

    # backward, one microvae piece at a time ----------------------------------------------------
    dh3 = dec2.backward(dlogits)
    dW4, db4 = dec2.grads["W"].copy(), dec2.grads["b"].copy()
    da3 = dec_relu.backward(dh3)
    dz = dec1.backward(da3)
    dW3 = dec1.grads["W"].copy()
    dmu_rec, dlogvar_rec = sampler.backward(dz)
    dmu, dlogvar = dmu_rec + beta * dmu_kl, dlogvar_rec + beta * dlogvar_kl
    # (a model also zeroes dlogvar where its logvar clamp held the value, as VAE._encode_backward
    # does; this tiny VAE's logvar stays well inside the clamp, so there is nothing to mask)
    dh1 = enc2.backward(np.concatenate([dmu, dlogvar], axis=1))
    dW2 = enc2.grads["W"].copy()
    da1 = enc_relu.backward(dh1)
    enc1.backward(da1, input_grad=False)
    dW1 = enc1.grads["W"].copy()
    dlogits, dh3, da3, dz = dlogits.copy(), dh3.copy(), da3.copy(), dz.copy()
    dmu_rec, dlogvar_rec, da1 = dmu_rec.copy(), dlogvar_rec.copy(), da1.copy()

    # the loss as a function of each intermediate, everything downstream recomputed -------------
    def from_logits(lg):
        return float(bernoulli_nll(lg, x)[0].mean())

    def from_h3(h):
        return from_logits(dec2.forward(h))

    def from_a3(a):
        return from_h3(dec_relu.forward(a))

    def from_z(zz):
        return from_a3(dec1.forward(zz))

    def recon_from(m, lv):  # through the model's own sampler: a wrong one is explain_forward's to show
        return from_z(sampler.forward(m, lv, eps))

    def kl_from(m, lv):
        return float(kl_normal(m, lv)[0].mean())

    def from_a1(a):
        oo = enc2.forward(enc_relu.forward(a))
        m, lv = oo[:, :latent], oo[:, latent:]
        return recon_from(m, lv) + beta * kl_from(m, lv)

    def whole_model():
        return model.loss(x, eps=eps).loss

    terms = []

    def add(name, formula, analytic, f, v):
        v = np.array(v, dtype=np.float64, copy=True) if not isinstance(v, np.ndarray) or not v.flags.writeable else v
        numeric = numeric_gradient(f, v, h)
        floor = 1e-3 * max(1.0, abs(float(f())))
        terms.append(ExplainedTerm(name, formula, np.array(analytic, dtype=np.float64),
                                   numeric, _relative_error(np.asarray(analytic).reshape(-1), numeric.reshape(-1), floor), h))

    lg = logits.copy()
    add("BCE from logits", "dL/dl = (σ(l) − x) / B", dlogits, lambda: from_logits(lg) + beta * kl_mean, lg)
    add("decoder Dense (output): weights", "dW4 = h3ᵀ·dl", dW4, whole_model, dec2.params["W"])
    add("decoder Dense (output): bias", "db4 = Σ_batch dl", db4, whole_model, dec2.params["b"])
    hh = h3.copy()
    add("decoder Dense (output): input", "dh3 = dl·W4ᵀ", dh3, lambda: from_h3(hh), hh)
    aa3 = a3.copy()
    add("decoder ReLU mask", "da3 = dh3 ⊙ [a3 > 0]", da3, lambda: from_a3(aa3), aa3)
    add("decoder Dense (input): weights", "dW3 = zᵀ·da3", dW3, whole_model, dec1.params["W"])
    zz = z.copy()
    add("decoder Dense (input): dz", "dz = da3·W3ᵀ", dz, lambda: from_z(zz), zz)
    m, lv = mu.copy(), logvar.copy()
    add("reparameterization: dμ", "dμ_rec = dz", dmu_rec, lambda: recon_from(m, lv), m)
    add("reparameterization: dlogvar", "dlogvar_rec = ½·dz ⊙ ε ⊙ exp(½·logvar)", dlogvar_rec, lambda: recon_from(m, lv), lv)
    add("KL: dμ", "dμ_KL = μ / B", dmu_kl, lambda: kl_from(m, lv), m)
    add("KL: dlogvar", "dlogvar_KL = ½·(exp(logvar) − 1) / B", dlogvar_kl, lambda: kl_from(m, lv), lv)
    add("encoder output: dμ", "dμ = dμ_rec + β·dμ_KL", dmu, lambda: recon_from(m, lv) + beta * kl_from(m, lv), m)
    add("encoder output: dlogvar", "dlogvar = dlogvar_rec + β·dlogvar_KL", dlogvar,
        lambda: recon_from(m, lv) + beta * kl_from(m, lv), lv)
    add("encoder Dense (output): weights", "dW2 = h1ᵀ·[dμ ‖ dlogvar]", dW2, whole_model, enc2.params["W"])
    aa1 = a1.copy()
    add("encoder ReLU mask", "da1 = ([dμ ‖ dlogvar]·W2ᵀ) ⊙ [a1 > 0]", da1, lambda: from_a1(aa1), aa1)
    add("encoder Dense (input): weights", "dW1 = xᵀ·da1", dW1, whole_model, enc1.params["W"])

    # the walk-through is the model's own backward pass: its parameter gradients must match
    model.loss_and_grads(x, eps=eps)
    by_name = {name: grad for name, _, grad in model.flat.named()}
    for ours, key in ((dW4, "decoder.2.W"), (db4, "decoder.2.b"), (dW3, "decoder.0.W"), (dW2, "encoder.2.W"), (dW1, "encoder.0.W")):
        if not np.allclose(ours, by_name[key], rtol=1e-12, atol=1e-15):
            raise AssertionError(f"the walk-through's {key} differs from model.loss_and_grads")
    return terms


def _largest(a, n):
    """Flat indices of ``a``'s ``n`` entries of largest magnitude, in index order: a gradient
    whose first entries are exact zeros (a ReLU unit off for the whole batch) shows 0 against 0."""
    flat = np.abs(np.asarray(a)).reshape(-1)
    return np.sort(np.argsort(-flat, kind="stable")[:n])


def _entries(a, idx):
    flat = np.asarray(a).reshape(-1)
    return "[" + ", ".join(f"{flat[i]:+.8f}" for i in idx) + "]"


def _where(a, idx) -> str:
    """Which entries were shown: all of them, or the flat indices of the largest."""
    a = np.asarray(a)
    if a.size <= len(idx):
        return f"shape {tuple(a.shape)}"
    return f"the {len(idx)} largest |·| of shape {tuple(a.shape)}, at flat indices {', '.join(str(int(i)) for i in idx)}"


def format_explanation(terms, tol: float = 1e-6, entries: int = 4) -> str:
    """The walk-through as text: formula, the ``entries`` analytic values of largest magnitude
    and the numeric values at the same places, error; a ``kind="forward"`` term shows microvae's
    value and its formula's instead."""
    entries = check_int("entries", entries, 1)
    tol = check_number("tol", tol, "a positive number")
    if not (0 < tol < math.inf):  # an infinite tolerance passes anything: a check that cannot fail
        raise ValueError(f"tol must be a finite positive number, got {tol!r}")
    terms = list(terms)
    if not terms:  # "every gradient agrees" of no gradient would be a pass of nothing
        raise ValueError("format_explanation needs at least one term (from explain_forward or explain_gradients)")
    has_forward = any(t.kind == "forward" for t in terms)
    has_gradients = any(t.kind == "gradient" for t in terms)
    step = next((t.step for t in terms if t.kind == "gradient"), 1e-6)
    lines = [
        "microvae gradcheck --explain: a VAE 4 → 3 → (μ, logvar: 2 + 2) → 3 → 4, float64, a batch of B = 2, ε fixed",
        FORWARD,
        *(["each value: microvae's forward pass vs its formula in plain NumPy (finite differences cannot see a wrong "
           "forward pass)"] if has_forward else []),
        f"each gradient of L below (of one term of L where the formula says _rec or _KL): analytic (microvae's "
        f"backward pass) vs numeric (fourth-order central differences, step {f'{step:g}'.replace('e-0', 'e-')}); "
        f"tolerance {tol:g}" if has_gradients else f"tolerance {tol:g}",
        "",
    ]
    labels = {"gradient": ("analytic", "numeric "), "forward": ("microvae", "formula ")}
    failed = {"gradient": 0, "forward": 0}
    for i, t in enumerate(terms, 1):
        ok = np.isfinite(t.error) and t.error <= tol
        failed[t.kind] += not ok
        idx = _largest(t.analytic, entries)
        ours, theirs = labels[t.kind]
        lines += [
            f"{i:2d}. {t.name:<34} {t.formula}",
            f"      {ours}  {_entries(t.analytic, idx)}   {_where(t.analytic, idx)}",
            f"      {theirs}  {_entries(t.numeric, idx)}",
            f"      rel. error {t.error:.2e}  {'ok' if ok else 'FAIL'}",
        ]
    lines.append("")
    if not any(failed.values()):
        lines.append({(False, True): "every gradient agrees with its finite difference",
                      (True, False): "every value agrees with its formula",
                      (True, True): "every value agrees with its formula, and every gradient with its finite difference"}
                     [has_forward, has_gradients])
    else:
        if failed["forward"]:
            lines.append(f"{failed['forward']} forward value(s) FAILED: the forward pass differs from its formula, "
                         "which no finite difference can see (the gradient lines check the backward pass against it)")
        if failed["gradient"]:
            lines.append(f"{failed['gradient']} gradient(s) FAILED")
    return "\n".join(lines)
