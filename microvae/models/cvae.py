"""The Conditional VAE (Sohn, Lee & Yan, 2015): a VAE whose encoder and decoder also see a class label."""

from __future__ import annotations

import numpy as np

from ..backend import array_module
from ..checks import check_bool, check_int, check_seed, check_sizes, is_choice
from ..layers import Sequential
from ..likelihoods import clamp_logvar, get_likelihood
from ..losses import kl_gaussians, kl_normal
from .base import LossTerms
from .settings import Fixed
from .vae import VAE, dense_relu, mlp

__all__ = ["CVAE"]

CONDITION_POINTS = ("input", "hidden")


class CVAE(VAE):
    """A VAE conditioned on a class label y (one-hot, K = ``num_classes`` values):
    q(z | x, y) = N(μ, e^{logvar}),  p(x | z, y),  and a prior p(z | y).

    Objective (minimised), per example, averaged over the batch, in nats:

        L = −log p(x | z, y) + β · KL(q(z|x,y) ‖ p(z|y)),   z = μ + exp(½·logvar)·ε

    - Encoder: the one-hot label is joined to the image (``condition_at="input"``:
      [x ‖ onehot(y)] → hidden → μ ‖ logvar) or to the first hidden layer's output
      (``"hidden"``, as in the textbook: x → h₁, [h₁ ‖ onehot(y)] → … → μ ‖ logvar).
    - Decoder: [z ‖ onehot(y)] → hidden (mirrored) → logits/means.
    - Prior: N(0, I) by default. With ``learned_prior=True`` it is N(μ_p(y), e^{logvar_p(y)})
      from a small network onehot(y) → Dense(``prior_hidden``) → ReLU → Dense → μ_p ‖ logvar_p,
      trained through the KL term (``microvae.losses.kl_gaussians``); ``sample`` draws from it.

    The labels are inputs, not parameters, so no gradient is kept for their one-hot part. The
    decoder's input gradient (needed for z) includes it, and it is discarded; so does, with
    ``condition_at="hidden"``, the gradient at [h₁ ‖ onehot(y)] (needed for h₁). With
    ``"input"`` the encoder's input gradient is not computed at all.

    Labels may be given as class indices (n,) of ints in [0, K) or as one-hot rows (n, K).
    The objective, its backward pass, β warm-up and capacity come from ``VAE``: this class
    only overrides its hooks (``_encode``, ``_decode``, ``_kl`` and their backward passes).
    ``fuse_relu`` is as in ``VAE``: every ReLU of these networks runs inside its Dense layer.

    Parameters
    ----------
    input_dim : values per example, an int >= 1 (default 784)
    num_classes : K, the number of classes, an int >= 1 (default 10)
    hidden : hidden sizes, ints >= 1, as in ``VAE`` (default (512, 256)); at least one with
        ``condition_at="hidden"``
    latent_dim : the dimension of z, an int >= 1 (default 2)
    beta : β, a finite number >= 0 (default 1.0)
    condition_at : where the encoder sees the label: "input" (default) or "hidden"
    learned_prior : False (default) for N(0, I), True for the learned prior p(z|y)
    prior_hidden : the learned prior network's hidden width, an int >= 1 (default 64;
        used only with ``learned_prior=True``)
    likelihood, beta_warmup, capacity, capacity_warmup, fuse_relu, backend, dtype, seed : as in ``VAE``
        (likelihood "bernoulli", "gaussian", "gaussian-learned", a dict or an object; seed an
        int >= 0, default 0, or None for fresh entropy)
    """

    needs_labels = True  # fit, encode, decode and sample all take labels
    num_classes, condition_at, learned_prior, prior_hidden = Fixed(), Fixed(), Fixed(), Fixed()  # the architecture

    def __init__(
        self,
        input_dim: int = 784,
        num_classes: int = 10,
        hidden=(512, 256),
        latent_dim: int = 2,
        beta: float = 1.0,
        condition_at: str = "input",
        learned_prior: bool = False,
        prior_hidden: int = 64,
        likelihood="bernoulli",
        beta_warmup: int = 0,
        capacity: float | None = None,
        capacity_warmup: int = 0,
        fuse_relu: bool = True,
        backend="numpy",
        dtype="float32",
        seed: int | None = 0,
    ):
        num_classes = check_int("num_classes", num_classes, 1)
        if not is_choice(condition_at, CONDITION_POINTS):
            raise ValueError(f"condition_at must be one of {CONDITION_POINTS}, got {condition_at!r}")
        hidden = check_sizes("hidden", hidden)
        if condition_at == "hidden" and not hidden:
            raise ValueError("condition_at='hidden' joins the label to the first hidden layer, so hidden needs at least one size")
        prior_hidden = check_int("prior_hidden", prior_hidden, 1)
        input_dim, latent_dim = check_int("input_dim", input_dim), check_int("latent_dim", latent_dim)
        if input_dim < 1 or latent_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"sizes must be positive: input_dim={input_dim}, hidden={hidden}, latent_dim={latent_dim}")
        self.num_classes, self.condition_at = num_classes, condition_at
        self.learned_prior, self.prior_hidden = check_bool("learned_prior", learned_prior), int(prior_hidden)
        lik = get_likelihood(likelihood)
        k = num_classes
        fuse_relu = check_bool("fuse_relu", fuse_relu)
        if condition_at == "input":
            self.encoder_head = None
            encoder = mlp((input_dim + k, *hidden, 2 * latent_dim), fuse_relu=fuse_relu)
        else:
            self.encoder_head = Sequential(*dense_relu(input_dim, hidden[0], fuse_relu))
            encoder = mlp((hidden[0] + k, *hidden[1:], 2 * latent_dim), fuse_relu=fuse_relu)
        decoder = mlp((latent_dim + k, *hidden[::-1], lik.output_dim(input_dim)), fuse_relu=fuse_relu)
        self.prior = mlp((k, self.prior_hidden, 2 * latent_dim), fuse_relu=fuse_relu) if self.learned_prior else None
        super().__init__(input_dim=input_dim, hidden=hidden, latent_dim=latent_dim, beta=beta, likelihood=lik,
                         encoder=encoder, decoder=decoder, beta_warmup=beta_warmup, capacity=capacity,
                         capacity_warmup=capacity_warmup, backend=backend, dtype=dtype, seed=seed)
        self.config = dict(
            input_dim=input_dim, num_classes=num_classes, hidden=list(hidden), latent_dim=latent_dim, beta=self.beta,
            condition_at=condition_at, learned_prior=self.learned_prior, prior_hidden=self.prior_hidden,
            likelihood=self.likelihood.config(), beta_warmup=self.beta_warmup, capacity=self.capacity,
            capacity_warmup=self.capacity_warmup, fuse_relu=fuse_relu, dtype=self.config["dtype"], seed=self.config["seed"],
        )  # dtype and seed as _setup recorded them (a Backend object's, if one was given)

    _builds_own_networks = True

    def children(self):
        parts = {"encoder_head": self.encoder_head, "encoder": self.encoder, "decoder": self.decoder, "prior": self.prior}
        return {name: part for name, part in parts.items() if part is not None}

    # labels -------------------------------------------------------------------------
    def _labels(self, y, n: int | None = None, what: str = "y"):
        """One-hot (n, K) backend array from class indices (n,) or one-hot rows (n, K) (or one int, given n)."""
        k = self.num_classes
        if y is None:
            raise TypeError(f"{type(self).__name__} needs class labels: {what} of shape (n,) with ints in [0, {k - 1}] "
                            f"or one-hot of shape (n, {k})")
        if array_module(y) is not np:
            y = y.get()
        y = np.asarray(y)
        if y.ndim == 0 and n is not None:
            if y.dtype == np.bool_:  # reshaped, it was reported as "a boolean array"
                raise ValueError(f"{what} must be integer class indices in [0, {k - 1}], got the boolean {y.item()!r}")
            y = np.full(n, y.item()) if np.issubdtype(y.dtype, np.number) else y.reshape(1)
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating) or y.dtype == np.bool_):
            raise ValueError(f"{what} must hold integer class labels, got dtype {y.dtype}")
        if y.ndim == 1:
            if y.dtype == np.bool_:
                raise ValueError(f"{what} must be integer class indices in [0, {k - 1}], got a boolean array")
            integral = np.isfinite(y) & (y == np.round(y))
            if not integral.all():
                raise ValueError(f"{what} must be integer class indices in [0, {k - 1}]; found the non-integer value {y[~integral][0].item()!r}")
            bad = (y < 0) | (y >= k)
            if bad.any():
                raise ValueError(f"{what} must be class indices in [0, {k - 1}] for num_classes={k}; found {y[bad][0].item()!r}")
            onehot = np.zeros((len(y), k))
            onehot[np.arange(len(y)), y.astype(np.int64)] = 1.0
        elif y.ndim == 2 and y.shape[1] == k:
            if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=1) == 1):
                raise ValueError(f"one-hot {what} of shape (n, {k}) must hold exactly one 1 per row and 0 elsewhere")
            onehot = y.astype(np.float64)
        else:
            raise ValueError(f"{what} must be class indices of shape (n,) or one-hot of shape (n, {k}), got shape {y.shape}")
        if n is not None and len(onehot) != n:
            raise ValueError(f"{what} has {len(onehot)} labels for {n} examples; expected one label per example")
        if len(onehot) == 0:
            raise ValueError(f"{what} must be a non-empty batch of labels")
        return self.backend.asarray(onehot)

    def _prepare_data(self, x, y=None):
        if y is None:
            self._labels(None)
        x = self._data(x)
        return x, self._labels(y, len(x))

    def fixed_noise(self, x, y=None, seed: int = 0):
        """A reproducible draw of ε (n, latent_dim) for the batch (x, y), for gradient checks,
        from ``seed``; ε depends on len(x) alone, and ``y``, if given, is checked as labels of x."""
        noise = super().fixed_noise(x, seed=seed)
        if y is not None:
            self._labels(y, len(noise))
        return noise

    # the objective: VAE's, with the label as its condition -------------------------------
    def loss_and_grads(self, x, y, eps=None) -> LossTerms:
        """Loss terms of a labelled batch (``x``, its labels ``y``), with dL/dθ left in
        ``self.flat.grad``; ``eps`` (batch, latent_dim) fixes the reparameterization noise
        (default: drawn from the model's generator).

        It leaves ``model.step``, which the β and capacity warm-ups count, as it is: ``fit``
        counts its steps; a loop of your own adds ``model.step += 1`` after each optimizer step.
        """
        self._check_layers_bound(configs=False)  # gradients of a layer put in later would land outside self.flat.grad
        return self._objective(*self._prepare_data(x, y), eps=self._eps(eps), compute_grads=True)

    def loss(self, x, y, eps=None) -> LossTerms:
        """Loss terms of a labelled batch (``x``, its labels ``y``), forward pass only; ``eps`` as
        in ``loss_and_grads``."""
        return self._objective(*self._prepare_data(x, y), eps=self._eps(eps), compute_grads=False)

    def _encode(self, x, condition=None):
        xp = self.backend.xp
        h = x if self.encoder_head is None else self.encoder_head.forward(x)
        return super()._encode(xp.concatenate([h, condition], axis=1))

    def _encode_backward(self, dmu, dlogvar):
        if self.encoder_head is None:
            return super()._encode_backward(dmu, dlogvar)  # the encoder's input is [x ‖ onehot]: no input gradient needed
        dh = super()._encode_backward(dmu, dlogvar, input_grad=True)
        self.encoder_head.backward(self.backend.xp.ascontiguousarray(dh[:, : self.hidden[0]]), input_grad=False)  # one-hot part dropped

    def _decode(self, z, condition=None):
        return self.decoder.forward(self.backend.xp.concatenate([z, condition], axis=1))

    def _decode_backward(self, dout):
        return self.decoder.backward(dout)[:, : self.latent_dim]  # the one-hot part of [z ‖ onehot] is dropped

    def _prior_moments(self, onehot):
        """(μ_p, logvar_p) of p(z | y); logvar_p clamped like the encoder's."""
        h = self.prior.forward(onehot)
        mu_p, raw_logvar = h[:, : self.latent_dim], h[:, self.latent_dim :]
        logvar_p, self._prior_logvar_inside = clamp_logvar(raw_logvar)
        return mu_p, logvar_p

    def _kl(self, mu, logvar, condition=None):
        if self.prior is None:
            return kl_normal(mu, logvar)
        mu_p, logvar_p = self._prior_moments(condition)
        per_example, dmu, dlogvar, dmu_p, dlogvar_p = kl_gaussians(mu, logvar, mu_p, logvar_p)
        self._prior_grads = (dmu_p, dlogvar_p)
        return per_example, dmu, dlogvar

    def _kl_backward(self, kl_slope):
        if self.prior is None:
            return
        dmu_p, dlogvar_p = self._prior_grads
        xp = self.backend.xp
        dh = xp.concatenate([dmu_p * kl_slope, dlogvar_p * self._prior_logvar_inside * kl_slope], axis=1)
        self.prior.backward(dh.astype(self.backend.dtype, copy=False), input_grad=False)

    # using a trained model (NumPy in, NumPy out; in row blocks, see Model.INFERENCE_BATCH) ----------
    def encode(self, x, y):
        """(μ, logvar) of q(z | x, y), as NumPy arrays of shape (n, latent_dim); ``y``: the labels
        of ``x``, as in ``decode``."""
        return self._by_rows(self._encode, *self._prepare_data(x, y))

    def decode(self, z, y):
        """Data-space mean of p(x | z, y) (probabilities for Bernoulli), shape (n, input_dim).

        ``y``: class indices (n,), one-hot (n, K), or one int for all rows."""
        z = self._as_batch(z, "z", (self.latent_dim,))
        return self._by_rows(self._decoded_mean, z, self._labels(y, len(z)))

    def reconstruct(self, x, y):
        """Decode the posterior mean: decode(μ(x, y), y), for ``x`` and its labels ``y`` (as in ``decode``)."""
        return self._by_rows(lambda xb, cb: self._decoded_mean(self._encode(xb, cb)[0], cb), *self._prepare_data(x, y))

    def prior_moments(self, y=None, *, labels=None):
        """(μ_p, logvar_p) of the prior p(z | y) for the labels ``y`` (class indices, one-hot
        rows, or one int), as NumPy arrays of shape (n, latent_dim) (zeros for N(0, I)).
        ``labels=`` is the same argument under its former name, as in ``sample``."""
        y = _classes("prior_moments", y, labels, "the classes (one int, class indices or one-hot rows)")
        onehot = self._labels(y, 1 if getattr(y, "ndim", np.ndim(y)) == 0 else None, "y")
        if self.prior is None:  # in the backend's dtype, as a learned prior's moments are
            zeros = np.zeros((len(onehot), self.latent_dim), dtype=self.backend.dtype)
            return zeros, zeros.copy()
        return self._by_rows(self._prior_moments, onehot)

    def sample(self, n: int, y=None, seed: int | None = None, *, labels=None):
        """n images of the requested classes: z ~ p(z | y), then the decoder mean of p(x | z, y).

        ``y``: one int (every sample of that class) or n class indices / one-hot rows, as in
        ``fit``, ``encode`` and ``decode`` (``labels=`` is the same argument under its former
        name). ``seed`` fixes the draw (else the model's generator is used).
        """
        y = _classes("sample", y, labels, f"the class of each sample (one int, or n = {n!r} class indices or one-hot "
                                          f"rows): model.sample(n, y)")
        n, seed = check_int("n", n, 1), check_seed(seed)
        onehot = self._labels(y, n, "y")
        if seed is not None:
            eps = self.backend.asarray(np.random.default_rng(seed).standard_normal((n, self.latent_dim)))
        else:
            eps = self.backend.normal((n, self.latent_dim))

        def rows(cb, eb):
            if self.prior is None:
                return self._decoded_mean(eb, cb)
            mu_p, logvar_p = self._prior_moments(cb)
            return self._decoded_mean(mu_p + self.backend.xp.exp(0.5 * logvar_p) * eb, cb)

        return self._by_rows(rows, onehot, eps)

    def elbo(self, x, y, n_samples: int = 1, seed: int | None = None):
        """Per-example conditional ELBO, log p(x | y) ≥ E_q[log p(x | z, y)] − KL(q(z|x,y) ‖ p(z|y)),
        in nats, of ``x`` with its labels ``y`` (as in ``decode``), with ``n_samples`` draws of z
        (β plays no part), ε seeded by ``seed`` as in ``VAE.elbo``."""
        return self._elbo(*self._prepare_data(x, y), n_samples, seed)

    def __repr__(self):
        return self._repr_with_settings(
            f"CVAE(input_dim={self.input_dim}, num_classes={self.num_classes}, hidden={self.hidden}, "
            f"latent_dim={self.latent_dim}, beta={self.beta}, condition_at={self.condition_at!r}, "
            f"learned_prior={self.learned_prior}, likelihood={self.likelihood.config()!r}, "
            f"parameters={self.num_parameters}, backend={self.backend!r})")


def _classes(method: str, y, labels, what: str):
    """``y``, or ``labels``, its former name (given once); a TypeError saying ``what`` y is if neither."""
    if labels is not None:
        if y is not None:
            raise TypeError(f"CVAE.{method} takes the classes once: y (or labels, its former name), not both")
        y = labels
    if y is None:
        raise TypeError(f"CVAE.{method} needs y, {what}")
    return y
