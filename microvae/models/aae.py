"""The Adversarial Autoencoder (Makhzani et al., 2015): an autoencoder whose codes are pushed
towards a chosen prior by a GAN played in latent space, instead of by a KL term."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..backend import array_module
from ..checks import check_bool, check_dtype, check_int, check_real_array, check_seed, check_sizes, is_choice
from ..likelihoods import clamp_logvar
from ..losses import discriminator_loss, generator_loss
from ..reparam import Reparameterization
from . import settings
from .base import Model
from .settings import Fixed, Setting
from .vae import mlp

__all__ = ["AAE", "prior_distance"]


def prior_distance(codes, prior_samples, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0)) -> dict:
    """How far a set of codes is from samples of the prior, three ways.

    - ``mmd2``: the unbiased estimate of the squared maximum mean discrepancy
      (Gretton et al., 2012) with the kernel k(a, b) = mean_h exp(−‖a − b‖² / 2h²) over
      the given bandwidths h (several scales, so both the spread and the finer shape count):

          MMD² = mean_{i≠j} k(c_i, c_j) + mean_{i≠j} k(p_i, p_j) − 2·mean_{i,j} k(c_i, p_j)

      It is 0 in expectation when the codes follow the prior (an estimate can dip just below 0).
    - ``mean_gap``: ‖mean(codes) − mean(prior)‖₂
    - ``cov_gap``: ‖cov(codes) − cov(prior)‖_F (Frobenius norm)

    ``codes`` (n, d) and ``prior_samples`` (m, d), n, m ≥ 2, NumPy or CuPy; ``bandwidths``
    a sequence or array of positive numbers, or one number. Returns floats. Complex and
    non-finite values are refused: every distance would be NaN, or the imaginary part dropped.
    """
    for name, array in (("codes", codes), ("prior_samples", prior_samples)):
        check_real_array(array, "prior_distance", None, name)
    xp = array_module(codes)
    c = xp.asarray(codes, dtype=xp.float64)
    p = xp.asarray(prior_samples, dtype=xp.float64)
    if c.ndim != 2 or p.ndim != 2 or c.shape[1] != p.shape[1] or len(c) < 2 or len(p) < 2:
        raise ValueError(f"prior_distance needs codes (n, d) and prior_samples (m, d) with n, m >= 2, "
                         f"got {tuple(c.shape)} and {tuple(p.shape)}")
    for name, array in (("codes", c), ("prior_samples", p)):
        if not bool(xp.isfinite(array).all()):
            raise ValueError(f"prior_distance needs finite values: {name} contains NaN or Inf")
    try:  # a list, a tuple, a NumPy array (np.geomspace) or one number
        items = list(np.ravel(bandwidths.tolist() if hasattr(bandwidths, "tolist") else bandwidths))
    except (TypeError, ValueError):
        items = []
    # numbers only: float() took "1" and True as 1.0. And 2h² must stay a positive float
    # (a width of 1e-300 squared to 0, and every kernel value came out NaN)
    widths = [float(h) for h in items if isinstance(h, numbers.Real) and not isinstance(h, (bool, np.bool_))]
    if not widths or len(widths) < len(items) or any(not (2 * h * h > 0 and math.isfinite(2 * h * h)) for h in widths):
        raise ValueError(f"bandwidths must be one or more positive numbers whose 2h² is a positive, finite float "
                         f"(about 1e-154 < h < 9e153), got {bandwidths!r}")
    # every term depends only on differences: centred on the pooled mean, ‖a‖² + ‖b‖² − 2a·b
    # keeps its precision for codes far from the origin (at 1e8 it came in steps of 8)
    centre = xp.concatenate([c, p]).mean(0)
    c, p = c - centre, p - centre

    def kernel_mean(a, b, same):
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        sq = xp.maximum(sq, 0)
        k = sum(xp.exp(-sq / (2 * h * h)) for h in widths) / len(widths)
        if same:
            n = len(a)
            return float((k.sum() - xp.trace(k)) / (n * (n - 1)))
        return float(k.mean())

    mmd2 = kernel_mean(c, c, True) + kernel_mean(p, p, True) - 2 * kernel_mean(c, p, False)
    mean_gap = float(xp.linalg.norm(c.mean(0) - p.mean(0)))
    cov_gap = float(xp.linalg.norm(xp.atleast_2d(xp.cov(c, rowvar=False)) - xp.atleast_2d(xp.cov(p, rowvar=False))))
    return {"mmd2": mmd2, "mean_gap": mean_gap, "cov_gap": cov_gap}


class AAE(Model):
    """Adversarial autoencoder: encoder q(z|x), decoder p(x|z), and a discriminator D on codes.

    **Parts.** The encoder is deterministic (``encoder_type="deterministic"``, the default:
    z = E(x)) or Gaussian (``encoder_type="gaussian"``: z = μ(x) + σ(x)·ε, the
    reparameterization; it has no KL term: only the adversarial game shapes its spread).
    The decoder maps z to logits (Bernoulli) or means (Gaussian) as in ``VAE``. The
    discriminator is an MLP from a code to one logit D(z):
    sigmoid(D(z)) is the probability it gives z of being a draw from the prior.

    **Priors.** ``prior="gaussian"``: N(0, I). ``prior="mixture"``: an equal mixture of
    ``num_classes`` Gaussians N(μ_k, s²I), s = ``mixture_std``, with means on a circle of
    radius ``mixture_radius`` in the first two latent dimensions,
    μ_k = r·(cos 2πk/K, sin 2πk/K, 0, …, 0) — a prior with visible structure, to show that
    the adversarial game imposes whatever shape the prior has.

    **Labels (mixture prior only).** ``fit(x, y)`` uses the label trick of Makhzani et al.
    (§2.3): the discriminator also sees a one-hot of the label (K + 1 slots; the last one
    means "unlabelled"), and the prior sample paired with example i is drawn from
    component y_i. The encoder then has to put class k's codes into component k to fool
    D. y = −1 marks an unlabelled example (semi-supervised use); with no labels every
    example is unlabelled and D compares the codes with the whole mixture.

    **Training step** (``_train_batch``), on a batch x with prior draws z' ~ p(z):

        1. reconstruction:  L_rec = −log p(x | z),  z from the encoder;  updates encoder + decoder
        2. discriminator:   L_D = −log sigmoid(D(z')) − log(1 − sigmoid(D(z))),  z fixed;  updates D
        3. generator:       L_G = −log sigmoid(D(z))  (non-saturating);  updates the encoder

    All three are nats per example, averaged over the batch (GAN losses from logits via
    softplus, ``microvae.losses.adversarial``).

    **Parameter groups and optimizers.** One optimizer per phase, each over the parameters
    its phase updates: ``"autoencoder"`` (encoder + decoder), ``"discriminator"`` and
    ``"generator"`` (the encoder). The groups are contiguous slices of the model's one
    flat buffer (``FlatParameters.subset``); "generator" overlaps "autoencoder" — the same
    memory — so that the encoder's two objectives keep separate optimizer state. (Shared
    Adam moments let the reconstruction gradient, hundreds of nats in scale, swamp the
    generator's, about one nat: the codes then barely move toward the prior.) A
    checkpoint stores every group and its optimizer state, so resumption is exact; the
    encoder's values are simply stored twice. ``num_parameters`` counts them once.

    The history records ``loss`` (= ``recon``), ``recon``, ``disc`` and ``gen`` per epoch.
    ``prior_distance(x)`` measures how close the codes of x are to the prior.

    Parameters
    ----------
    input_dim : values per example, an int >= 1 (default 784)
    hidden : the encoder's hidden sizes, ints >= 1, mirrored by the decoder; default (512, 256),
        () for none
    latent_dim : the dimension of z, an int >= 1 (default 2; >= 2 with the mixture prior)
    encoder_type : "deterministic" (default) or "gaussian", as above
    prior : "gaussian" (default, N(0, I)) or "mixture", as above
    num_classes : K, the mixture's components and the number of label classes, an int >= 1
        (default 10; >= 2 with the mixture prior, unused with the Gaussian one)
    disc_hidden : the discriminator's hidden sizes, ints >= 1; default (256, 256), () for none
    likelihood : p(x|z), as in ``VAE``: "bernoulli" (default), "gaussian", "gaussian-learned",
        a dict {"name": "gaussian", "logvar": v} or a likelihood object
    mixture_radius : r, a positive finite number (default 4.0)
    mixture_std : s, a positive finite number (default 0.5); both are checked and stored with
        either prior, and used by the mixture
    fuse_relu : True (default) or False: each ReLU runs inside the Dense layer before it, in
        all three networks (as in ``VAE``)
    backend, dtype, seed : as in ``VAE`` (seed an int >= 0, default 0, or None for fresh entropy)
    """

    metric_names = ("loss", "recon", "disc", "gen")

    def __init__(
        self,
        input_dim: int = 784,
        hidden=(512, 256),
        latent_dim: int = 2,
        encoder_type: str = "deterministic",
        prior: str = "gaussian",
        num_classes: int = 10,
        disc_hidden=(256, 256),
        likelihood="bernoulli",
        mixture_radius: float = 4.0,
        mixture_std: float = 0.5,
        fuse_relu: bool = True,
        backend="numpy",
        dtype="float32",
        seed: int | None = 0,
    ):
        super().__init__()
        input_dim, latent_dim = check_int("input_dim", input_dim), check_int("latent_dim", latent_dim)
        num_classes = check_int("num_classes", num_classes)
        hidden, disc_hidden = check_sizes("hidden", hidden), check_sizes("disc_hidden", disc_hidden)
        if input_dim < 1 or latent_dim < 1 or any(h < 1 for h in hidden + disc_hidden):
            raise ValueError(f"sizes must be positive: input_dim={input_dim}, hidden={hidden}, latent_dim={latent_dim}, disc_hidden={disc_hidden}")
        if not is_choice(encoder_type, ("deterministic", "gaussian")):
            raise ValueError(f"encoder_type must be 'deterministic' or 'gaussian', got {encoder_type!r}")
        if not is_choice(prior, ("gaussian", "mixture")):
            raise ValueError(f"prior must be 'gaussian' or 'mixture', got {prior!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        # checked with either prior (settings.py): they are stored in the config, and read if it is changed to 'mixture'
        self.mixture_radius, self.mixture_std = mixture_radius, mixture_std
        if prior == "mixture":
            if latent_dim < 2:
                raise ValueError("prior='mixture' places its components on a circle and needs latent_dim >= 2")
            if num_classes < 2:
                raise ValueError(f"prior='mixture' needs num_classes >= 2 components, got {num_classes}")
        self.input_dim, self.latent_dim, self.hidden, self.disc_hidden = input_dim, latent_dim, hidden, disc_hidden
        self.input_shape = (input_dim,)
        self.encoder_type, self.prior, self.num_classes = encoder_type, prior, num_classes
        self.likelihood = likelihood
        code_dim = 2 * latent_dim if encoder_type == "gaussian" else latent_dim
        self.disc_input_dim = latent_dim + (num_classes + 1 if prior == "mixture" else 0)
        fuse_relu = check_bool("fuse_relu", fuse_relu)
        self.encoder = mlp((input_dim, *hidden, code_dim), fuse_relu=fuse_relu)
        self.decoder = mlp((latent_dim, *hidden[::-1], self.likelihood.output_dim(input_dim)), fuse_relu=fuse_relu)
        self.discriminator = mlp((self.disc_input_dim, *disc_hidden, 1), fuse_relu=fuse_relu)
        config = dict(
            input_dim=input_dim, hidden=list(hidden), latent_dim=latent_dim, encoder_type=encoder_type, prior=prior,
            num_classes=num_classes, disc_hidden=list(disc_hidden), likelihood=self.likelihood.config(),
            mixture_radius=self.mixture_radius, mixture_std=self.mixture_std, fuse_relu=fuse_relu, dtype=check_dtype(dtype),
            seed=check_seed(seed),  # an int or None: json.dumps refuses a NumPy integer
        )
        self._setup(backend, dtype, seed, config)
        self.sampler = Reparameterization(self.backend)
        self._groups = {
            "autoencoder": self.flat.subset("encoder", "decoder"),
            "discriminator": self.flat.subset("discriminator"),
            "generator": self.flat.subset("encoder"),
        }

    # settings the objective reads at every step: checked on each assignment, kept in the config
    likelihood = Setting(settings.likelihood)
    mixture_radius = Setting(settings.positive("mixture_radius"))
    mixture_std = Setting(settings.positive("mixture_std"))
    # the architecture: set by the constructor, read-only after
    input_dim, latent_dim, hidden, disc_hidden, input_shape = Fixed(), Fixed(), Fixed(), Fixed(), Fixed()
    encoder_type, prior, num_classes = Fixed(), Fixed(), Fixed()

    options_added_later = {"fuse_relu": False}  # checkpoints from before it have separate ReLU layers

    def children(self):
        return {"encoder": self.encoder, "decoder": self.decoder, "discriminator": self.discriminator}

    def parameter_groups(self) -> dict:
        """{"autoencoder", "discriminator", "generator"}: one optimizer each. "generator" is
        the encoder's part of "autoencoder" again (the same memory), so that phase 3 has
        its own optimizer state; see the class docstring."""
        return dict(self._groups)

    @property
    def num_parameters(self) -> int:
        """Trainable values, each counted once (the encoder belongs to two groups)."""
        return self.flat.size  # the groups overlap: count every parameter once

    # the prior -------------------------------------------------------------------
    def component_means(self):
        """(num_classes, latent_dim) means of the mixture prior's components (NumPy)."""
        angles = 2 * np.pi * np.arange(self.num_classes) / self.num_classes
        means = np.zeros((self.num_classes, self.latent_dim))
        means[:, 0], means[:, 1] = self.mixture_radius * np.cos(angles), self.mixture_radius * np.sin(angles)
        return means

    def _draw_prior(self, n, labels=None, rng=None):
        """n prior draws on the backend; with the mixture and labels, draw i comes from component labels[i] (if >= 0)."""
        be, xp = self.backend, self.backend.xp
        rng = be.rng if rng is None else rng  # a NumPy generator: drawn on the host, as Backend draws
        noise = be.normal((n, self.latent_dim), rng=rng)
        if self.prior == "gaussian":
            return noise
        components = be.to_device(rng.integers(0, self.num_classes, size=n))
        if labels is not None:
            components = xp.where(labels >= 0, labels, components)
        means = be.asarray(self.component_means())
        return (means[components] + noise * be.dtype.type(self.mixture_std)).astype(be.dtype, copy=False)

    def _disc_input(self, z, labels):
        """What D sees: the code, plus (mixture prior) a one-hot label with an 'unlabelled' slot."""
        if self.prior == "gaussian":
            return z
        xp = self.backend.xp
        n = z.shape[0]
        slot = xp.full(n, self.num_classes, dtype=xp.int64) if labels is None else xp.where(labels >= 0, labels, self.num_classes)
        onehot = xp.zeros((n, self.num_classes + 1), dtype=z.dtype)
        onehot[xp.arange(n), slot] = 1
        return xp.concatenate([z, onehot], axis=1)

    # the three phases (backend arrays in, float losses out) ---------------------------
    def _codes(self, x, eps=None):
        """Encoder forward: z = E(x), or z = μ + σ·ε for the Gaussian encoder."""
        h = self.encoder.forward(x)
        if self.encoder_type == "deterministic":
            return h
        mu, raw_logvar = h[:, : self.latent_dim], h[:, self.latent_dim :]
        logvar, self._logvar_inside = clamp_logvar(raw_logvar)
        return self.sampler.forward(mu, logvar, eps)

    def _codes_backward(self, dz):
        if self.encoder_type == "deterministic":
            self.encoder.backward(dz, input_grad=False)
            return
        dmu, dlogvar = self.sampler.backward(dz)
        self.encoder.backward(self.backend.xp.concatenate([dmu, dlogvar * self._logvar_inside], axis=1), input_grad=False)

    def _reconstruction_phase(self, x, eps=None, compute_grads=True) -> float:
        """L_rec = mean −log p(x | z); gradients into encoder and decoder."""
        z = self._codes(x, eps)
        recon, dout = self.likelihood.nll(self.decoder.forward(z), x, self.backend.kernels)
        if compute_grads:
            self._codes_backward(self.decoder.backward(dout))
        return float(recon.mean())

    def _discriminator_phase(self, z, labels, real, compute_grads=True) -> float:
        """L_D = mean softplus(−D(z')) + softplus(D(z)); gradients into D only (z is fixed).

        Real and fake codes go through D as one batch (a layer is used once per pass)."""
        xp = self.backend.xp
        n = z.shape[0]
        logits = self.discriminator.forward(xp.concatenate([self._disc_input(real, labels), self._disc_input(z, labels)], axis=0))
        per_example, d_real, d_fake = discriminator_loss(logits[:n], logits[n:])
        if compute_grads:
            self.discriminator.backward(xp.concatenate([d_real, d_fake], axis=0), input_grad=False)
        return float(per_example.mean())

    def _generator_phase(self, z, labels, compute_grads=True) -> float:
        """L_G = mean softplus(−D(z)); gradients through D (not updated) into the encoder.

        Needs the encoder's cache from the ``_codes`` call that produced z."""
        logits = self.discriminator.forward(self._disc_input(z, labels))
        per_example, d_logits = generator_loss(logits)
        if compute_grads:
            d_input = self.discriminator.backward(d_logits)
            self._codes_backward(self.backend.xp.ascontiguousarray(d_input[:, : self.latent_dim]))
        return float(per_example.mean())

    def phase_loss(self, phase, x, y=None, *, eps=None, prior_samples=None, compute_grads=True) -> float:
        """One training phase's loss on a batch ``x`` (no optimizer step), for inspection and gradient checks.

        ``phase`` is "recon" (gradients written for the encoder and decoder groups), "disc"
        (discriminator group) or "gen" (encoder group; D's gradient buffer is used as scratch).
        ``eps`` (n, latent_dim) fixes the Gaussian encoder's noise (a deterministic encoder has
        none, and refuses it), ``prior_samples`` (n, latent_dim) the discriminator's real
        examples (default: drawn); only phase "disc" has real examples, and the other two
        ignore them, so that one set of arguments serves a loop over the three phases.
        ``y``: with the mixture prior, the labels that pick each prior draw's component (as in
        ``fit``; −1 for unlabelled). ``compute_grads=False`` computes the loss alone and
        leaves the gradient buffers as they were.
        """
        if not is_choice(phase, ("recon", "disc", "gen")):
            raise ValueError(f"phase must be 'recon', 'disc' or 'gen', got {phase!r}")
        if eps is not None and self.encoder_type == "deterministic":
            raise ValueError("eps fixes a Gaussian encoder's noise; this AAE's encoder is deterministic "
                             "(encoder_type='deterministic'), so there is none to fix: leave eps out")
        batch = self._prepare_data(x, y)
        x, labels = batch[0], (batch[1] if len(batch) > 1 else None)
        if eps is not None:
            self._check_noise_dtype(eps)  # as the VAEs check it ("got ()" for a string named no type)
            eps = self._as_batch(eps, "eps", (self.latent_dim,))
        if phase == "recon":
            return self._reconstruction_phase(x, eps, compute_grads)
        z = self._codes(x, eps)
        if phase == "gen":
            return self._generator_phase(z, labels, compute_grads)
        real = self._draw_prior(len(x), labels) if prior_samples is None else self._as_batch(prior_samples, "prior_samples", (self.latent_dim,))
        if len(real) != len(x):
            raise ValueError(f"prior_samples must have one row per example ({len(x)}), got {len(real)}")
        return self._discriminator_phase(z, labels, real, compute_grads)

    # training hooks ------------------------------------------------------------------
    def _train_batch(self, batch, optimizers) -> dict:
        x, labels = batch[0], (batch[1] if len(batch) > 1 else None)
        recon = self._reconstruction_phase(x)
        optimizers["autoencoder"].step()
        z = self._codes(x)  # codes of the updated encoder; its cache serves phase 3
        disc = self._discriminator_phase(z, labels, self._draw_prior(len(x), labels))
        optimizers["discriminator"].step()
        gen = self._generator_phase(z, labels)
        optimizers["generator"].step()
        self.step += 1
        return {"loss": recon, "recon": recon, "disc": disc, "gen": gen}

    def _evaluate_arrays(self, arrays, batch_size=512) -> dict:
        totals, n = {"loss": 0.0, "recon": 0.0, "disc": 0.0, "gen": 0.0}, len(arrays[0])
        for start in range(0, n, batch_size):
            x = arrays[0][start : start + batch_size]
            labels = arrays[1][start : start + batch_size] if len(arrays) > 1 else None
            recon = self._reconstruction_phase(x, compute_grads=False)
            z = self._codes(x)
            disc = self._discriminator_phase(z, labels, self._draw_prior(len(x), labels), compute_grads=False)
            gen = self._generator_phase(z, labels, compute_grads=False)
            for key, value in (("loss", recon), ("recon", recon), ("disc", disc), ("gen", gen)):
                totals[key] += value * len(x)
        return {key: value / n for key, value in totals.items()}

    def _prepare_data(self, x, y=None):
        x = self._as_batch(x, "x")
        self.likelihood.validate(x, "x")
        if y is None:
            return (x,)
        return (x, self._labels(y, len(x)))

    def _labels(self, y, n):
        if self.prior != "mixture":
            raise TypeError("AAE uses labels only with prior='mixture' (to pick each code's component); "
                            "with prior='gaussian' leave y out")
        y = np.asarray(self.backend.to_numpy(y) if hasattr(y, "shape") else y)
        if y.ndim == 0:  # one label for every example, as a CVAE takes it
            if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.number):  # the shape test named shape ()
                raise ValueError(f"y must hold integer labels (one label for all, here), "
                                 f"got {y.item()!r} of dtype {y.dtype}")
            y = np.full(n, y.item())
        elif y.shape == (n, self.num_classes):  # one-hot rows, as a CVAE takes them
            if not (np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)):
                raise ValueError(f"one-hot y of shape ({n}, {self.num_classes}) must hold exactly one 1 per row and 0 elsewhere")
            y = y.argmax(axis=1)
        if y.shape != (n,):
            raise ValueError(f"y must be {n} integer labels (or one label for all, or one-hot rows of shape "
                             f"({n}, {self.num_classes})), got shape {y.shape}")
        if np.issubdtype(y.dtype, np.floating):  # whole numbers only: 2.0 is label 2, NaN and 0.5 are no label
            whole = np.isfinite(y) & (np.mod(y, 1) == 0)
            if not whole.all():
                raise ValueError(f"y must hold whole-number labels, found {y[~whole][0].item()!r}")
        elif not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must hold integer labels, got dtype {y.dtype}")
        if y.size and (y.min() < -1 or y.max() >= self.num_classes):
            raise ValueError(f"y must lie in [0, {self.num_classes - 1}] (or -1 for unlabelled), found [{int(y.min())}, {int(y.max())}]")
        return self.backend.asarray(y, dtype=np.int64)

    # using a trained model (NumPy in, NumPy out; in row blocks, see Model.INFERENCE_BATCH) ------------
    def encode(self, x):
        """Codes of x, shape (n, latent_dim): E(x), or the posterior mean μ(x) for the Gaussian encoder."""
        return self._by_rows(self._code_means, self._prepare_data(x)[0])

    def decode(self, z):
        """Data-space mean of p(x|z) (probabilities for Bernoulli), shape (n, input_dim)."""
        return self._by_rows(self._decoded_mean, self._as_batch(z, "z", (self.latent_dim,)))

    def reconstruct(self, x):
        """decode(encode(x)), each block's codes going straight to the decoder."""
        return self._by_rows(lambda xb: self._decoded_mean(self._code_means(xb)), self._prepare_data(x)[0])

    def _code_means(self, x):
        """E(x), or μ(x) for the Gaussian encoder: no noise, unlike training's ``_codes``."""
        return self.encoder.forward(x)[:, : self.latent_dim]

    def _decoded_mean(self, z):
        return self.likelihood.mean(self.decoder.forward(z), self.backend.kernels)

    def sample_prior(self, n: int, y=None, seed: int | None = None):
        """n draws from the prior (NumPy); with the mixture, ``y`` picks each draw's component.
        ``seed`` fixes the draws (default None: the model's own generator, which moves on)."""
        n, seed = check_int("n", n, 1), check_seed(seed)
        labels = None if y is None else self._labels(y, n)
        rng = None if seed is None else np.random.default_rng(seed)
        return self.backend.to_numpy(self._draw_prior(n, labels, rng)).copy()

    def sample(self, n: int, y=None, seed: int | None = None):
        """Decoder means at n prior draws (components chosen by ``y`` for the mixture); ``seed``
        as in ``sample_prior``."""
        return self.decode(self.sample_prior(n, y=y, seed=seed))

    def prior_distance(self, x, seed: int = 0, n_prior: int | None = None) -> dict:
        """``prior_distance(codes of x, prior draws)``: {"mmd2", "mean_gap", "cov_gap"}, with
        ``n_prior`` (default len(x)) draws from the prior seeded by ``seed``.

        The codes are those training matches to the prior: E(x) for the deterministic encoder,
        and for the Gaussian encoder sampled codes μ(x) + σ(x)·ε (ε seeded by ``seed`` too, in
        a stream of its own). The means μ(x) alone (``encode``) lack the spread σ(x) adds, so
        they stay measurably far from a prior the sampled codes match.
        """
        n_prior, seed = check_int("n_prior", n_prior, 2, none_ok=True), check_seed(seed)
        data = self._prepare_data(x)[0]
        if self.encoder_type == "deterministic":
            codes = self._by_rows(self._code_means, data)
        else:
            be = self.backend
            rng = be.rng if seed is None else np.random.default_rng((seed, 1))  # not the prior draws' stream
            codes = self._by_rows(lambda xb: self._codes(xb, be.normal((len(xb), self.latent_dim), rng=rng)), data)
        return prior_distance(codes, self.sample_prior(n_prior or len(codes), seed=seed))

    def __repr__(self):
        return self._repr_with_settings(
            f"AAE(input_dim={self.input_dim}, hidden={self.hidden}, latent_dim={self.latent_dim}, encoder_type={self.encoder_type!r}, "
            f"prior={self.prior!r}, disc_hidden={self.disc_hidden}, parameters={self.num_parameters}, backend={self.backend!r})")
