"""Evaluating a trained model: likelihood bounds, anomaly scores, ROC curves, disentanglement.

Everything here works on NumPy inputs and returns NumPy arrays or Python floats.

**Likelihood.** ``iwae_bound`` is the importance-weighted bound of Burda et al. (2016):
with z_1..z_k drawn from q(z|x),

    log p(x) ≥ L_k = E[ log (1/k) Σ_i w_i ],   w_i = p(x | z_i) p(z_i) / q(z_i | x)

L_1 is the ELBO, L_k rises with k and tends to log p(x) as k → ∞. The log weights carry all
normalising constants (log 2π terms of p(z) and q(z|x), the likelihood's own constants), so
the mean of the k = 1 estimate is the ELBO exactly, and ``elbo`` below agrees with it.

**Which models.** The model metrics take a model and its data as ``fit`` does (``y``: the
labels of a CVAE, the mask of a VRAE or HierarchicalVRAE, which may be given as ``mask=``
instead, the name the models use):

- ``elbo``, ``iwae_bound``, ``importance_log_weights``: VAE, ConvVAE, CVAE (with its labels;
  its learned prior p(z|y) if it has one), VRAE and HierarchicalVRAE (with the mask, summed
  over the real steps). Not an AAE: it has no KL term (and with its default deterministic
  encoder no posterior variance), so no ELBO; these raise a TypeError for it.
- ``reconstruction_error``: all six; an AAE's x̂ is its public ``reconstruct``.
- ``anomaly_scores``: all six with ``method="recon"``; ``"elbo"`` and ``"iwae"`` as above.
- ``roc_auc``, ``roc_curve`` take scores and labels; ``log_mean_exp``, ``discretize``,
  ``entropy``, ``mutual_information``, ``mutual_information_matrix`` and
  ``mutual_information_gap`` take arrays (codes from ``model.encode``, say): no model.

The prior is N(0, I), or a CVAE's learned p(z|y). A ConvVAE's CPU convolutions run on
microvae's threads here, as in its own inference methods (``microvae.threads``).

(The protocol, for a model of one's own: ``_prepare_data``, ``_encode``, ``_decode``,
``likelihood``, ``latent_dim``, ``backend``, and ``_kl`` for ``elbo``; optionally ``_nll_at``
(a VRAE re-caches the rows it decodes), ``prior`` with ``_prior_moments``, ``reconstruct``.
See the helpers below and tests/test_metrics.py.)

**Anomaly detection.** ``anomaly_scores`` gives higher scores to less likely inputs;
``roc_auc`` is the rank (Mann–Whitney) form of the area under the ROC curve, with tied scores
given their average rank, so a tie counts one half; ``roc_curve`` gives the curve itself.

**Disentanglement.** ``mutual_information_gap`` (MIG, Chen et al., 2018): each latent
dimension is discretised into equal-width bins, its mutual information with each ground-truth
factor is computed from the joint histogram, and for each factor the gap between the two most
informative dimensions is divided by the factor's entropy; MIG is the mean over factors.
All information quantities are in nats.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from .backend import array_module
from .checks import as_array, check_bool, check_int, check_real_array, check_seed, is_choice, labels_or_mask, sorted_unique

__all__ = [
    "log_mean_exp", "importance_log_weights", "iwae_bound", "elbo", "reconstruction_error",
    "anomaly_scores", "roc_auc", "roc_curve", "discretize", "entropy", "mutual_information",
    "mutual_information_matrix", "mutual_information_gap",
]

_LOG_2PI = math.log(2.0 * math.pi)


# a stable log-mean-exp --------------------------------------------------------------------
def log_mean_exp(a, axis=None, keepdims: bool = False):
    """log( mean(exp(a), axis) ), computed without overflow or underflow.

    With m = max(a) along ``axis``:  m + log(mean(exp(a − m))). Every term exp(a − m) is in
    [0, 1] (it may underflow to 0), and the largest is 1, so their sum lies between 1 and the
    number of terms n, and their mean between 1/n and 1: it never overflows and never underflows to 0.
    All −inf along the axis gives −inf; a +inf gives +inf; NaN propagates.
    ``a``: real numbers (ints are taken as float64); ``axis``: None (default) for all of
    them, or an axis or tuple of axes; ``keepdims=True`` keeps the reduced axes, of length 1.
    """
    check_real_array(a, "log_mean_exp", None, "a")  # the cast below would drop an imaginary part
    keepdims = check_bool("keepdims", keepdims)
    xp = array_module(a)
    a = xp.asarray(a)
    if a.dtype.kind != "f":
        a = a.astype(xp.float64)
    if a.size == 0:
        raise ValueError("log_mean_exp of an empty array is undefined")
    m = xp.max(a, axis=axis, keepdims=True)
    shift = xp.where(xp.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = xp.log(xp.mean(xp.exp(a - shift), axis=axis, keepdims=True)) + shift
    if not keepdims:
        out = xp.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return out


# reaching into a model ----------------------------------------------------------------------
def _inputs(model, x, y):
    """(x, condition) as backend arrays, checked the way the model checks its training data."""
    arrays = model._prepare_data(x) if y is None else model._prepare_data(x, y)
    return arrays[0], (arrays[1] if len(arrays) > 1 else None)


def _rows(a, start, stop):
    return None if a is None else a[start:stop]


def _repeat(a, k):
    """Stack k copies of a batch along the batch axis: row i·n + j is a[j]."""
    if a is None:
        return None
    xp = array_module(a)
    return xp.concatenate([a] * k, axis=0) if k > 1 else a


def _log_prior(model, z64, condition):
    """log p(z) per row, in float64: N(0, I), or the model's learned conditional prior."""
    xp = array_module(z64)
    if getattr(model, "prior", None) is not None and hasattr(model, "_prior_moments"):
        mu_p, logvar_p = model._prior_moments(condition)
        mu_p, logvar_p = mu_p.astype(xp.float64), logvar_p.astype(xp.float64)
        diff = z64 - mu_p
        return -0.5 * (diff * diff * xp.exp(-logvar_p) + logvar_p + _LOG_2PI).sum(axis=1)
    return -0.5 * (z64 * z64 + _LOG_2PI).sum(axis=1)


def _posterior(model, what: str):
    """``model._encode``, or a TypeError naming what to use instead for a model without q(z|x)."""
    encode = getattr(model, "_encode", None)
    if encode is None:
        raise TypeError(f"{type(model).__name__} has no ELBO (no KL term to a prior), so {what} is undefined for it "
                        "(it needs a model whose _encode gives q(z|x) as (μ, logvar), such as a VAE); use "
                        "reconstruction_error(model, x) or anomaly_scores(model, x, method='recon') instead")
    return encode


def _nll(model, z, x, condition):
    """−log p(x | z) per row, for decoder inputs z and data x with the same number of rows.

    Through the model's ``_nll_at`` where it has one: a VRAE teacher-forces its decoder with
    the batch ``_encode`` cached (and masks its likelihood with the cached mask), so rows
    repeated here must replace that cache, which ``_nll_at`` does."""
    nll_at = getattr(model, "_nll_at", None)
    if nll_at is not None:
        return nll_at(z, x, condition)
    return model.likelihood.nll(model._decode(z, condition), x, model.backend.kernels)[0]


def _model_threads(model):
    """The model's context for a run over batches (a ConvVAE's convolution chunks on
    microvae's threads, and the layers' caches dropped after, as in its own inference
    methods); a no-op for a duck-typed model without one."""
    enter = getattr(model, "_over_batches", None)
    return enter() if enter is not None else contextlib.nullcontext()


_LABELS_BY_KEYWORD = "; a model's labels or mask go in y= (these functions take x, then their options, then y)"


def _after_x(value) -> str:
    """The hint for an array where an option belongs: metrics.elbo(cvae, x, y) handed the
    labels to n_samples (a model's own methods take them right after x)."""
    if not (hasattr(value, "shape") or isinstance(value, (list, tuple))):
        return ""
    try:
        numeric = np.asarray(value).dtype.kind in "biuf" and np.ndim(value) >= 1
    except ValueError:  # a ragged list
        numeric = False
    return _LABELS_BY_KEYWORD if numeric else ""


def _check_positive(name, value):
    """A count, checked as every count in microvae is (a TypeError for what is not a number)."""
    try:
        return check_int(name, value, 1)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{exc}{_after_x(value)}") from None


def importance_log_weights(model, x, k: int = 50, y=None, batch_size: int = 100, seed: int | None = 0, *, mask=None):
    """log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x) for k draws z_i ~ q(z|x) per example.

    Returns a float64 array of shape (n, k). ``y``: a CVAE's labels or a VRAE's mask, as for
    ``fit`` (None for the others); a VRAE's ``mask`` may be given by that name instead. ``seed`` fixes the draws (None: the model's own
    generator). Examples are processed ``batch_size`` at a time (k·batch_size decoder rows);
    each example's draws depend on the seed and its position in ``x``, not on ``batch_size``,
    and with a seed the first k draws are those of any larger k.

        log q(z|x) = −½ Σ_j [ log 2π + logvar_j + ε_j² ]      (z = μ + e^{½logvar}·ε)
        log p(z)   = −½ Σ_j [ log 2π + z_j² ]                  (N(0, I))
                   = −½ Σ_j [ log 2π + lv_j + (z_j − m_j)²·e^{−lv_j} ]   (a CVAE's learned p(z|y) = N(m, e^{lv}))
        log p(x|z) = −nll(decoder(z), x)                       (e.g. −bernoulli_nll per example)

    All three are taken at the z the decoder is given, rounded to the model's dtype (for
    float32, ε is recomputed from that z in float64), so each weight belongs to one point.
    """
    encode = _posterior(model, "the importance-weighted bound")
    y = labels_or_mask(model, y, mask)
    k = _check_positive("k", k)
    batch_size = _check_positive("batch_size", batch_size)
    x, condition = _inputs(model, x, y)
    backend, xp, latent = model.backend, model.backend.xp, int(model.latent_dim)
    _room_for(backend, x, k, batch_size)
    streams = _noise_streams(check_seed(seed), k)
    n = len(x)
    out = np.empty((n, k))
    with _model_threads(model):
        for start in range(0, n, batch_size):
            xb, cb = x[start : start + batch_size], _rows(condition, start, start + batch_size)
            b = len(xb)
            mu, logvar = encode(xb, cb)
            eps = xp.asarray(_noise(streams, backend, k, b, latent), dtype=xp.float64)
            mu64, logvar64 = mu.astype(xp.float64)[None], logvar.astype(xp.float64)[None]
            z = backend.asarray((mu64 + xp.exp(0.5 * logvar64) * eps).reshape(k * b, latent))
            # all three terms at the z the decoder sees: in the model's dtype, that z is rounded
            z64 = z.astype(xp.float64)
            eps = (z64.reshape(k, b, latent) - mu64) * xp.exp(-0.5 * logvar64)
            c_rep = _repeat(cb, k)
            nll = _nll(model, z, _repeat(xb, k), c_rep)
            log_q = -0.5 * (eps * eps + logvar64 + _LOG_2PI).sum(axis=2).reshape(k * b)
            log_w = -xp.asarray(nll, dtype=xp.float64) + _log_prior(model, z64, c_rep) - log_q
            out[start : start + b] = backend.to_numpy(log_w.reshape(k, b)).T
    return out


def _room_for(backend, x, samples: int, batch_size: int) -> None:
    """Fail at once (NumPy's MemoryError names the size) where one batch's inputs, repeated for
    every draw, cannot be held: spawning the draws' noise streams comes first, and for
    k = 10**8 that alone ran for minutes before the first batch failed."""
    rows = min(batch_size, len(x))
    if rows:
        backend.xp.empty((samples * rows,) + tuple(x.shape[1:]), dtype=x.dtype)


def _noise_streams(seed, samples: int):
    """One generator per draw index i, the seed's i-th spawned stream (None: no seed)."""
    return None if seed is None else [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(samples)]


def _noise(streams, backend, samples: int, rows: int, latent: int):
    """ε of shape (samples, rows, latent) for the next ``rows`` examples. Draw i of every example
    comes from stream i, read example by example: so an example's draws depend on the seed, its
    position in the data and i, not on ``batch_size``, and the first k draws are the same for any
    larger k. Unseeded, the model's own generator is read example by example."""
    if streams is None:
        return np.ascontiguousarray(backend.to_numpy(backend.normal((rows, samples, latent))).transpose(1, 0, 2))
    return np.stack([stream.standard_normal((rows, latent)) for stream in streams])


def iwae_bound(model, x, k: int = 50, y=None, batch_size: int = 100, seed: int | None = 0, *, mask=None):
    """Importance-weighted lower bound on log p(x) with ``k`` samples, per example, in nats.

        L̂_k(x) = log (1/k) Σ_{i=1..k} p(x, z_i) / q(z_i | x),    z_i ~ q(z | x)

    computed with ``log_mean_exp`` over the log weights of ``importance_log_weights``: one draw
    of the estimate whose mean is the bound L_k of the module doc. k = 1 is a one-sample
    estimate of the ELBO; L_k = E[L̂_k] never decreases with k.
    ``y``: a CVAE's labels or a VRAE's mask (or ``mask=``); ``batch_size`` and ``seed`` (default 0; None:
    the model's generator) as for ``importance_log_weights``. Returns a float64 array of shape (n,).
    """
    return log_mean_exp(importance_log_weights(model, x, k=k, y=y, batch_size=batch_size, seed=seed, mask=mask), axis=1)


def elbo(model, x, n_samples: int = 1, y=None, batch_size: int = 100, seed: int | None = 0, *, mask=None):
    """The evidence lower bound per example, in nats, with the KL term in closed form:

        ELBO(x) = (1/S) Σ_s log p(x | z_s) − KL(q(z|x) ‖ p(z)),   z_s ~ q(z|x)

    with S = ``n_samples`` draws of z per example (default 1) and ``y`` a CVAE's labels or a
    VRAE's mask (or ``mask=``) (β plays no part: this is the true bound). Seeded like ``iwae_bound``: ε comes from
    ``seed`` (default 0), example by example, so the numbers are repeatable whatever the
    ``batch_size``, but are not those of ``model.elbo``, which draws one (n, latent_dim) ε for
    all rows at once (from its ``seed``, else the model's generator). Both are estimates of the same bound.
    """
    encode = _posterior(model, "the ELBO")
    y = labels_or_mask(model, y, mask)
    n_samples = _check_positive("n_samples", n_samples)
    batch_size = _check_positive("batch_size", batch_size)
    x, condition = _inputs(model, x, y)
    backend, xp, latent = model.backend, model.backend.xp, int(model.latent_dim)
    _room_for(backend, x, n_samples, batch_size)
    streams = _noise_streams(check_seed(seed), n_samples)
    out = np.empty(len(x))
    with _model_threads(model):
        for start in range(0, len(x), batch_size):
            xb, cb = x[start : start + batch_size], _rows(condition, start, start + batch_size)
            b = len(xb)
            mu, logvar = encode(xb, cb)
            kl = xp.asarray(model._kl(mu, logvar, cb)[0], dtype=xp.float64)
            eps = _noise(streams, backend, n_samples, b, latent)
            z = (mu[None] + xp.exp(0.5 * logvar)[None] * backend.asarray(eps)).reshape(n_samples * b, latent)
            nll = xp.asarray(_nll(model, z, _repeat(xb, n_samples), _repeat(cb, n_samples)), dtype=xp.float64)
            out[start : start + b] = backend.to_numpy(-nll.reshape(n_samples, b).mean(axis=0) - kl)
    return out


def reconstruction_error(model, x, kind: str = "bce", y=None, batch_size: int = 500, *, mask=None):
    """Per-example error between x and its reconstruction x̂ = mean of p(x | μ(x)), summed over pixels.

    ``kind="bce"``: −Σ_d [x·log x̂ + (1 − x)·log(1 − x̂)], computed from the decoder's logits
    (exact, no clipping) for a Bernoulli model, else from x̂ clipped to [1e-7, 1 − 1e-7]
    (x must then lie in [0, 1]).  ``kind="mse"``: Σ_d (x − x̂)².

    A model without ``_encode`` (an AAE) is reconstructed through its public API,
    x̂ = ``model.reconstruct(x)`` (the decoder mean at the code E(x)), so its BCE is always
    computed from the clipped x̂. Labels ``y`` are checked as for ``fit`` but play no part there.
    For a VRAE, x̂ is the teacher-forced decoder output (each step predicted from the true
    steps before it, as in training) and only the real steps (``y``, or ``mask=``: the mask) count.
    Examples are reconstructed ``batch_size`` at a time (default 500), which bounds the memory in use.
    """
    from .losses import bce_probabilities, bernoulli_nll, mse
    from .losses._checks import outside_unit_interval

    if not is_choice(kind, ("bce", "mse")):
        raise ValueError(f"kind must be 'bce' or 'mse', got {kind!r}{_after_x(kind)}")
    batch_size = _check_positive("batch_size", batch_size)
    x, condition = _inputs(model, x, labels_or_mask(model, y, mask))
    backend = model.backend
    encode = getattr(model, "_encode", None)  # None: an AAE, reconstructed by model.reconstruct
    sequences = getattr(model, "is_sequence_model", False)  # y is then the mask of real steps
    def bce_of_clipped_mean(mean, target):  # a Gaussian decoder's mean may leave [0, 1]; the docstring's clip
        return bce_probabilities(array_module(mean).clip(mean, 0.0, 1.0), target)

    on_mean = bce_of_clipped_mean if kind == "bce" else mse  # the error of a decoded mean x̂
    bernoulli = getattr(model.likelihood, "name", None) == "bernoulli"
    if kind == "bce" and not bernoulli and outside_unit_interval(x) is not None:
        raise ValueError("kind='bce' needs data in [0, 1]; use kind='mse' for real-valued data")
    out = np.empty(len(x))
    with _model_threads(model):
        for start in range(0, len(x), batch_size):
            xb, cb = x[start : start + batch_size], _rows(condition, start, start + batch_size)
            mask = cb if sequences else None
            if encode is None:  # an AAE: its public reconstruction
                err = _summed(on_mean, backend.asarray(model.reconstruct(xb)).reshape(xb.shape), xb, mask)
            elif kind == "bce" and bernoulli:  # exact, from the logits
                err = _summed(bernoulli_nll, model._decode(encode(xb, cb)[0], cb), xb, mask)
            else:
                mean = model.likelihood.mean(model._decode(encode(xb, cb)[0], cb), backend.kernels)
                err = _summed(on_mean, mean, xb, mask)
            out[start : start + len(xb)] = backend.to_numpy(err)
    return out


def _summed(error, a, b, mask):
    """Per-example sums of ``error(a, b)`` over pixels; for sequences (n, T, F) with a mask
    (n, T), over the real steps only, as the model's own likelihood sums them."""
    if mask is None:
        return error(a, b)[0]
    n, steps = b.shape[0], b.shape[1]
    per_step = error(a.reshape(n * steps, -1), b.reshape(n * steps, -1))[0].reshape(n, steps)
    return (per_step * mask).sum(axis=1)


def anomaly_scores(model, x, method: str = "elbo", y=None, k: int = 50, n_samples: int = 1, seed: int | None = 0,
                   batch_size: int = 100, kind: str = "bce", *, mask=None):
    """Per-example anomaly scores: higher means less like the training data.

    ``method``: ``"elbo"`` → −ELBO(x) (``n_samples`` draws), ``"recon"`` → the
    ``reconstruction_error`` of x from its posterior mean (``kind`` "bce", which needs data in
    [0, 1] unless the model is Bernoulli, or "mse"), ``"iwae"`` → −L̂_k(x) (one draw of the ``k``-sample estimate).
    ``y``: a CVAE's labels or a VRAE's mask, as for ``fit`` (or ``mask=``). ``seed`` (default 0; None: the
    model's generator) fixes the draws of "elbo" and "iwae"; "recon" takes none.
    Every method works through x in blocks of ``batch_size`` examples. A model without an
    ELBO (an AAE) has only ``"recon"``; the others raise a TypeError.
    """
    if not is_choice(method, ("elbo", "recon", "iwae")):
        raise ValueError(f"method must be 'elbo', 'recon' or 'iwae', got {method!r}{_after_x(method)}")
    if method != "recon" and kind != "bce":
        raise ValueError(f"kind={kind!r} applies to method='recon' only, got method={method!r}")
    # checked whichever method uses them, so that a typo is not ignored until the method changes
    k, n_samples, seed = _check_positive("k", k), _check_positive("n_samples", n_samples), check_seed(seed)
    y = labels_or_mask(model, y, mask)
    if method == "elbo":
        return -elbo(model, x, n_samples=n_samples, y=y, batch_size=batch_size, seed=seed)
    if method == "recon":
        return reconstruction_error(model, x, kind=kind, y=y, batch_size=batch_size)
    return -iwae_bound(model, x, k=k, y=y, batch_size=batch_size, seed=seed)


# ROC ------------------------------------------------------------------------------------------
def _scores_and_labels(scores, labels, caller):
    check_real_array(scores, caller, None, "scores")  # the cast below would drop an imaginary part
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1:  # flattening (n, 2) scores would pair them with the wrong labels
        raise ValueError(f"scores and labels must be 1-D, one per example, got shapes {scores.shape} and {labels.shape}")
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels must have the same length, got {scores.size} and {labels.size}")
    if scores.size == 0:
        raise ValueError("the ROC needs scores and labels; both are empty")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if labels.dtype != np.bool_:
        if not np.issubdtype(labels.dtype, np.number) or not np.all((labels == 0) | (labels == 1)):
            raise ValueError("labels must be 0/1 or boolean (1 = positive, e.g. anomalous)")
        labels = labels == 1
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        raise ValueError("the ROC needs both classes among the labels: found only "
                         + ("negatives" if n_pos == 0 else "positives"))
    return scores, labels


def _average_ranks(values):
    """Ranks 1..n of ``values`` (ascending); a group of tied values all get the group's mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    n = len(values)
    # each run of equal values [start, end) gets rank (start + 1 + end) / 2
    # v[1:] != v[:-1], not np.diff: inf − inf is NaN, which would split a run of tied infinities
    boundaries = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [n]])
    run_ranks = (starts + 1 + ends) / 2.0
    ranks = np.empty(n)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve: the probability that a random positive scores higher than a
    random negative, ties counting ½ (the Mann–Whitney U statistic over n₊·n₋):

        AUC = (Σ_{positives} rank − n₊(n₊ + 1)/2) / (n₊ · n₋)

    with ranks ascending by score and tied scores sharing their average rank.
    ``scores``: one real number per example, higher for more likely positives (NaN refused);
    ``labels``: 1/True for positives (anomalies), 0/False for negatives.
    """
    scores, labels = _scores_and_labels(scores, labels, "roc_auc")
    ranks = _average_ranks(scores)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores, labels):
    """(fpr, tpr, thresholds) of the rule "positive if score ≥ threshold", for ``scores`` and
    ``labels`` as in ``roc_auc`` (one each per example; labels 1/True for positives).

    ``thresholds`` are the distinct scores in decreasing order, preceded by +inf (nothing
    flagged), so the curve runs from (0, 0) to (1, 1). That leading +inf stands for "nothing
    flagged" even where some scores are +inf themselves (the rule would flag those; their
    point is the next one, whose threshold is also +inf). Tied scores move the curve in one
    diagonal step; its trapezoidal area equals ``roc_auc``.
    """
    scores, labels = _scores_and_labels(scores, labels, "roc_curve")
    order = np.argsort(-scores, kind="mergesort")
    s, lab = scores[order], labels[order]
    last_of_run = np.concatenate([np.flatnonzero(s[1:] != s[:-1]), [s.size - 1]])  # (ties of ±inf too)
    tp = np.cumsum(lab)[last_of_run]
    fp = np.cumsum(~lab)[last_of_run]
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    fpr = np.concatenate([[0.0], fp / n_neg])
    tpr = np.concatenate([[0.0], tp / n_pos])
    thresholds = np.concatenate([[np.inf], s[last_of_run]])
    return fpr, tpr, thresholds


# information from histograms -------------------------------------------------------------------
def discretize(codes, n_bins: int = 20):
    """Each column of ``codes`` (n, d) cut into ``n_bins`` equal-width bins over its own range.

    Returns int64 bin indices in [0, n_bins). A constant column falls entirely in bin 0.
    """
    n_bins = _check_positive("n_bins", n_bins)
    check_real_array(codes, "discretize", None, "codes")  # the cast below would drop an imaginary part
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim == 1:
        codes = codes[:, None]
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"codes must have shape (n, d) with n >= 1, got {codes.shape}")
    if not np.isfinite(codes).all():
        raise ValueError("codes contain NaN or Inf")
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    with np.errstate(over="ignore"):
        span = hi - lo
    wide = ~np.isfinite(span)  # a range beyond the largest double (−1e308 to 1e308): in halves, which are exact
    if wide.any():
        codes, lo, hi = np.where(wide, codes / 2, codes), np.where(wide, lo / 2, lo), np.where(wide, hi / 2, hi)
        span = hi - lo
    width = np.where(hi > lo, span, 1.0)
    bins = np.floor((codes - lo) / width * n_bins).astype(np.int64)
    return np.clip(bins, 0, n_bins - 1)


def _check_discrete(values, what: str, kind: str) -> None:
    """Refuse float ``values`` that are no labels (NaN, Inf or a fraction: a measurement would be
    read as n classes seen once each); class values stored as floats are fine."""
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            plural = what.endswith("s")  # "factors contain ...; they", "a contains ...; it"
            raise ValueError(f"{what} {'contain' if plural else 'contains'} NaN or Inf; "
                             f"{'they must be' if plural else 'it must hold'} discrete labels")
        fractional = values[values != np.round(values)]
        if fractional.size:
            raise ValueError(f"{what} must be discrete labels (integers, booleans or strings), found the value "
                             f"{float(fractional[0])!r}: cut a continuous {kind} into bins first (e.g. metrics.discretize)")


def _as_labels(values, what="labels"):
    """Map any 1-D array of discrete values to 0..K−1 (floats only if whole numbers)."""
    values = as_array(values, what, "give one label per example")
    if values.ndim != 1:  # flattening would read a table (or None, an object scalar) as one variable
        raise ValueError(f"{what} must be 1-D, one label per example, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{what} is empty")
    _check_discrete(values, what, "variable")
    return sorted_unique(values, what, "the classes are sorted", return_inverse=True)[1].reshape(-1)


def entropy(labels) -> float:
    """H(a) = −Σ_v p(v) log p(v) of a discrete variable from its empirical frequencies, in nats.
    ``labels``: integers, booleans, strings, or floats holding whole numbers."""
    counts = np.bincount(_as_labels(labels))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum()) + 0.0  # one value: −(1·log 1) is −0.0, and −0.0 + 0.0 is 0.0


def mutual_information(a, b) -> float:
    """I(a; b) = Σ p(u, v) log[ p(u, v) / (p(u) p(v)) ] of two discrete variables, from their
    joint histogram, in nats. (The plug-in estimate: biased upwards by about
    (|a| − 1)(|b| − 1) / 2n for independent variables.) ``a`` and ``b`` are labels, as for
    ``entropy``: a continuous variable is refused (each value would be a class of its own),
    as ``mutual_information_matrix`` refuses a continuous factor."""
    return _mutual_information(_as_labels(a, "a"), _as_labels(b, "b"))


def _mutual_information(a, b) -> float:
    """I(a; b) of two label arrays already mapped to 0..K−1."""
    if a.size != b.size:
        raise ValueError(f"a and b must have the same length, got {a.size} and {b.size}")
    ka, kb = a.max() + 1, b.max() + 1
    joint = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb) / a.size
    pa, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    value = float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())
    return max(value, 0.0)  # rounding can leave −1e-17 for independent variables


def mutual_information_matrix(codes, factors, n_bins: int = 20):
    """M[j, f] = I(discretised code j; factor f) in nats, shape (d, n_factors). ``codes`` (n, d)
    are cut into ``n_bins`` bins per column by ``discretize``; ``factors`` (n,) or (n, n_factors)
    are discrete labels (integers, booleans, strings, or floats holding whole numbers)."""
    bins = discretize(codes, n_bins)
    factors = as_array(factors, "factors", "give one row of labels per example")
    if factors.ndim == 1:
        factors = factors[:, None]
    if factors.ndim != 2 or factors.shape[1] == 0:  # before len(): None is an array of no length
        raise ValueError(f"factors must be shaped (n,) or (n, n_factors) with at least one factor, got {factors.shape}")
    if len(factors) != len(bins):
        raise ValueError(f"codes and factors must have the same number of rows, got {len(bins)} and {len(factors)}")
    _check_discrete(factors, "factors", "factor")  # class values stored as floats are fine; measurements are not labels
    factor_labels = [_as_labels(factors[:, f], f"factors[:, {f}]") for f in range(factors.shape[1])]
    code_labels = [_as_labels(bins[:, j], f"codes[:, {j}]") for j in range(bins.shape[1])]
    return np.array([[_mutual_information(code, factor) for factor in factor_labels]
                     for code in code_labels]).reshape(bins.shape[1], factors.shape[1])


def mutual_information_gap(codes, factors, n_bins: int = 20, return_per_factor: bool = False):
    """MIG of latent codes (n, d) against discrete ground-truth factors (n, K):

        MIG = (1/K) Σ_k [ I(z_{j(1)}; v_k) − I(z_{j(2)}; v_k) ] / H(v_k)

    where j(1), j(2) are the code dimensions with the largest and second-largest mutual
    information with factor v_k. Near 1: each factor is captured by one dimension alone;
    near 0: no dimension stands out. Constant factors (H = 0) are left out. The codes are
    discretised into ``n_bins`` equal-width bins per dimension (default 20), as by
    ``mutual_information_matrix``. With
    ``return_per_factor`` it returns (MIG, per-factor gaps, the MI matrix).
    """
    check_real_array(codes, "mutual_information_gap", None, "codes")  # the cast below would drop an imaginary part
    return_per_factor = check_bool("return_per_factor", return_per_factor)  # "no" would give the 3-tuple
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[1] < 2:
        raise ValueError(f"MIG needs codes of shape (n, d) with at least 2 dimensions, got {codes.shape}")
    mi = mutual_information_matrix(codes, factors, n_bins)  # checks the factors
    factors = np.asarray(factors)
    if factors.ndim == 1:
        factors = factors[:, None]
    gaps = np.full(factors.shape[1], np.nan)
    for f in range(factors.shape[1]):
        h = entropy(factors[:, f])
        if h <= 0:
            continue
        top = np.sort(mi[:, f])[::-1]
        gaps[f] = (top[0] - top[1]) / h
    if np.isnan(gaps).all():
        raise ValueError("every factor is constant: MIG is undefined")
    value = float(np.nanmean(gaps))
    return (value, gaps, mi) if return_per_factor else value
