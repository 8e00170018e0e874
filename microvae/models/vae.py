"""The Variational Autoencoder (Kingma & Welling, 2014), and β-VAE as its β ≠ 1 case."""

from __future__ import annotations

import numpy as np

from ..checks import check_bool, check_dtype, check_int, check_seed, check_sizes
from ..layers import Dense, ReLU, Sequential
from ..layers.base import Layer, layer_from_spec, layer_to_spec
from ..likelihoods import clamp_logvar
from ..losses import kl_normal
from ..params import release
from ..reparam import Reparameterization
from . import settings
from .base import LossTerms, Model
from .settings import Fixed, Setting



def dense_relu(n_in: int, n_out: int, fuse_relu: bool = True) -> list:
    """A He-initialised Dense layer and its ReLU: one layer with the ReLU fused in, or two."""
    if fuse_relu:
        return [Dense(n_in, n_out, init="he", activation="relu")]
    return [Dense(n_in, n_out, init="he"), ReLU()]


def mlp(sizes, final_activation=None, fuse_relu: bool = True) -> Sequential:
    """Dense layers with ReLU between them (He init before each ReLU, Glorot for the last).

    With ``fuse_relu`` each ReLU runs inside the Dense layer before it (``activation="relu"``):
    the same function, parameters and gradients, one layer fewer per ReLU, and so other
    parameter names ("encoder.1.W" where the separate layers have "encoder.2.W")."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers += [Dense(n_in, n_out, init="glorot")] if last else dense_relu(n_in, n_out, fuse_relu)
    if final_activation is not None:
        layers.append(final_activation)
    return Sequential(*layers)


class VAE(Model):
    """A VAE with a Gaussian encoder q(z|x) = N(μ, e^{logvar}), a N(0, I) prior and a
    Bernoulli or Gaussian decoder p(x|z).

    Objective (minimised), per example, averaged over the batch, in nats:

        L = −log p(x | z) + β · KL(q(z|x) ‖ N(0, I)),   z = μ + exp(½·logvar)·ε

    With a capacity target C (Burgess et al., 2018) the KL term becomes β·|KL̄ − C|, where
    KL̄ is the batch's mean KL (the whole dataset's in ``evaluate``), not a mean of
    per-example β·|KL_i − C|: the target is for the average code, as in the paper. So with a
    capacity the history's training ``loss`` (the mean of the steps' objectives weighted by
    their batch sizes, each on its batch's KL̄) is not comparable with ``val_loss`` and ``evaluate`` (on the whole set's
    KL̄): it is larger for smaller batches, whose KL̄ scatter more about C. Compare
    ``recon`` and ``kl``, which are plain means either way.
    β can warm up linearly from 0 over ``beta_warmup`` optimizer steps, and C from 0 over
    ``capacity_warmup`` steps. These four and ``likelihood`` may also be set on a live model
    (a callback that anneals β): each assignment is checked, and checkpoints store the value
    in use (see ``models/settings.py``).

    Architecture (default, as in the textbook): encoder 784→512→256 (ReLU) → μ ‖ logvar;
    the decoder mirrors it (latent→256→512→784) and outputs logits (Bernoulli) or means.
    Any ``Sequential`` may be passed: the encoder must map inputs to 2·latent_dim values
    (μ then logvar), the decoder latent_dim values to the likelihood's output size.

    ``fuse_relu`` (default True): the networks built from ``hidden`` run each ReLU inside the
    Dense layer before it (``Dense(..., activation="relu")``), which spares the separate
    passes of the bias add, the ReLU and the bias sum. The function, the parameters and
    their initial values are the same either way; only the layer list, and so the
    parameters' names, differ. Checkpoints written before this option existed have separate
    ReLU layers and load with ``fuse_relu=False``.

    Parameters
    ----------
    input_dim : values per example, an int >= 1 (default 784: 28×28 images, flattened)
    hidden : the default encoder's hidden sizes, ints >= 1, mirrored by the default decoder;
        default (512, 256), () for none. A network passed in does not use them
    latent_dim : the dimension of z, an int >= 1 (default 2)
    beta : β, the KL term's weight, a finite number >= 0 (default 1.0: the plain VAE)
    likelihood : p(x|z), one of
        "bernoulli" (default): data in [0, 1], the decoder outputs logits;
        "gaussian": unit variance, −log p(x|z) = ½‖x − μ‖² + const;
        "gaussian-learned": a variance per value, the decoder outputs μ ‖ logvar (2·input_dim);
        {"name": "gaussian", "logvar": v}: a fixed variance e^v, v in [−30, 20] (``LOGVAR_RANGE``);
        or a ``Bernoulli()`` / ``Gaussian(logvar)`` object (``microvae.likelihoods``)
    encoder, decoder : a ``Layer`` such as a ``Sequential``, its layer spec (a dict), or None
        (default) for the MLP built from ``hidden``; sizes are checked when the model is built.
        A network that was part of a model now gone (``microvae.load(path).encoder``) keeps
        its trained values (``seed`` draws the other layers' only; for fresh ones pass
        ``Sequential.from_config(network.get_config())``); one that a live model still holds is refused
    beta_warmup : steps over which β rises linearly from 0, an int >= 0 (default 0: none)
    capacity : the capacity target C in nats, a finite number >= 0, or None (default: no target, β·KL)
    capacity_warmup : steps over which C rises linearly from 0, an int >= 0 (default 0);
        nonzero only with a ``capacity``
    fuse_relu : True (default) or False, as above; only the networks built from ``hidden``
    backend : "numpy" (default), "cupy", None for ``$MICROVAE_BACKEND`` (else "numpy"),
        or a ``Backend`` object, whose own dtype and generator are then used (see ``Model``)
    dtype : "float32" (default) or "float64", in any spelling NumPy reads (np.float64, "f8")
    seed : seeds the initial parameters and the model's generator: an int >= 0 (default 0),
        or None for fresh entropy from the OS (another initialisation each time)
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden=(512, 256),
        latent_dim: int = 2,
        beta: float = 1.0,
        likelihood="bernoulli",
        encoder: Layer | None = None,
        decoder: Layer | None = None,
        beta_warmup: int = 0,
        capacity: float | None = None,
        capacity_warmup: int = 0,
        fuse_relu: bool = True,
        backend="numpy",
        dtype="float32",
        seed: int | None = 0,
    ):
        super().__init__()
        if isinstance(encoder, dict):
            encoder = layer_from_spec(encoder)
        if isinstance(decoder, dict):
            decoder = layer_from_spec(decoder)
        for name, network in (("encoder", encoder), ("decoder", decoder)):
            if network is not None and not isinstance(network, Layer):  # "mlp" failed on a missing get_config
                raise TypeError(f"{name} must be a Layer such as a Sequential, its layer spec (a dict), or None for "
                                f"the default MLP, got {network!r}")
        input_dim, latent_dim = check_int("input_dim", input_dim), check_int("latent_dim", latent_dim)
        hidden = check_sizes("hidden", hidden)
        if input_dim < 1 or latent_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"sizes must be positive: input_dim={input_dim}, hidden={hidden}, latent_dim={latent_dim}")
        # checked as they are assigned (settings.py), here and on a live model
        self.beta, self.beta_warmup = beta, beta_warmup
        self.capacity, self.capacity_warmup = capacity, capacity_warmup
        self.likelihood = likelihood
        self.input_dim, self.latent_dim, self.hidden = input_dim, latent_dim, hidden
        if "input_shape" not in self.__dict__:  # (a ConvVAE sets its image shape first)
            self.input_shape = (input_dim,)
        fuse_relu = check_bool("fuse_relu", fuse_relu)
        self.encoder = encoder if encoder is not None else mlp((input_dim, *hidden, 2 * latent_dim), fuse_relu=fuse_relu)
        self.decoder = (decoder if decoder is not None
                        else mlp((latent_dim, *hidden[::-1], self.likelihood.output_dim(input_dim)), fuse_relu=fuse_relu))
        config = dict(
            input_dim=input_dim, hidden=list(hidden), latent_dim=latent_dim, beta=self.beta,
            likelihood=self.likelihood.config(), beta_warmup=self.beta_warmup, capacity=self.capacity,
            capacity_warmup=self.capacity_warmup, fuse_relu=fuse_relu, dtype=check_dtype(dtype),
            seed=check_seed(seed),  # an int or None: json.dumps refuses a NumPy integer
            encoder=layer_to_spec(encoder) if encoder is not None else None,
            decoder=layer_to_spec(decoder) if decoder is not None else None,
        )
        self._setup(backend, dtype, seed, config)
        self.sampler = Reparameterization(self.backend)
        if (encoder is not None or decoder is not None) and not self._builds_own_networks:
            try:
                self._check_network_sizes()
            except ValueError:
                release(self)  # the caller's layers are theirs again, for a retry
                raise

    # settings the objective reads at every step: checked on each assignment, kept in the config
    beta = Setting(settings.beta)
    beta_warmup = Setting(settings.warmup("beta_warmup"))
    capacity = Setting(settings.capacity)
    capacity_warmup = Setting(settings.capacity_warmup)
    likelihood = Setting(settings.likelihood)
    # the architecture: set by the constructor, read-only after
    input_dim, latent_dim, hidden, input_shape = Fixed(), Fixed(), Fixed(), Fixed()

    _builds_own_networks = False  # True in subclasses that pass their own encoder and decoder

    options_added_later = {"fuse_relu": False}  # checkpoints from before it have separate ReLU layers

    @classmethod
    def config_from_checkpoint(cls, config: dict) -> dict:
        config = super().config_from_checkpoint(config)
        if config.get("capacity") is None and config.get("capacity_warmup"):
            # saved before a warm-up without a target was refused; it changed nothing then
            config = {**config, "capacity_warmup": 0}
        return config

    def _check_network_sizes(self):
        """A network passed in with the wrong sizes is refused now, not at the first batch or
        (a decoder's) only when the loss meets the data."""
        xp, dtype = self.backend.xp, self.backend.dtype
        try:
            h = self.encoder.forward(xp.zeros((1, self.input_dim), dtype=dtype))
        except ValueError as exc:
            raise ValueError(f"the encoder must take input_dim = {self.input_dim} values per example: {exc}") from None
        if tuple(h.shape) != (1, 2 * self.latent_dim):
            raise ValueError(f"the encoder must map input_dim = {self.input_dim} values to 2·latent_dim = "
                             f"{2 * self.latent_dim} (μ then logvar), got {tuple(h.shape[1:])}")
        expected = self.likelihood.output_dim(self.input_dim)
        try:
            out = self.decoder.forward(xp.zeros((1, self.latent_dim), dtype=dtype))
        except ValueError as exc:
            raise ValueError(f"the decoder must take latent_dim = {self.latent_dim} values per example: {exc}") from None
        if tuple(out.shape) != (1, expected):
            raise ValueError(f"the decoder must map latent_dim = {self.latent_dim} values to the {type(self.likelihood).__name__} "
                             f"likelihood's {expected} outputs for input_dim = {self.input_dim}, got {tuple(out.shape[1:])}")

    def children(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    # the objective ----------------------------------------------------------------
    def loss_and_grads(self, x, eps=None) -> LossTerms:
        """Loss terms of a batch ``x``, with dL/dθ left in ``self.flat.grad`` (one forward/backward sweep).

        ``eps`` (batch, latent_dim) fixes the reparameterization noise; by default it is drawn
        from the model's generator.

        It leaves ``model.step``, which the β and capacity warm-ups count, as it is: ``fit``
        counts its steps; a loop of your own adds ``model.step += 1`` after each optimizer step.
        With convolutions on the CPU it runs them in the calling thread, where ``fit`` shares
        their image chunks out among microvae's threads and so adds the weight gradients' sums
        in another order: a loop of your own gives ``fit``'s bits inside
        ``with microvae.threads.parallel_chunks():`` (entered once, around the loop: each entry
        resets BLAS's thread count, which costs milliseconds).
        """
        self._check_layers_bound(configs=False)  # gradients of a layer put in later would land outside self.flat.grad
        return self._objective(self._data(x), eps=self._eps(eps), compute_grads=True)

    def loss(self, x, eps=None) -> LossTerms:
        """Loss terms of a batch ``x``, forward pass only; ``eps`` as in ``loss_and_grads``."""
        return self._objective(self._data(x), eps=self._eps(eps), compute_grads=False)

    def _objective(self, x, condition=None, eps=None, compute_grads=True) -> LossTerms:
        """The batch tuple is (x,) or (x, condition): labels for the CVAE, masks for the VRAEs."""
        # forward: x → (μ, logvar) → z → decoder output → −log p(x|z) and KL
        mu, logvar = self._encode(x, condition)
        z = self.sampler.forward(mu, logvar, eps)
        out = self._decode(z, condition)
        recon, dout = self.likelihood.nll(out, x, self.backend.kernels)
        kl, dmu_kl, dlogvar_kl = self._kl(mu, logvar, condition)
        recon_mean, kl_mean = float(recon.mean()), float(kl.mean())
        kl_term, kl_slope = self.kl_weighting(kl_mean)
        terms = LossTerms(recon_mean + kl_term, recon_mean, kl_mean)
        if not compute_grads:
            return terms
        # backward: dout → decoder.backward → dz → (dμ, dlogvar) + kl_slope·dKL → encoder.backward
        # (kl_slope: β(t), or β·sign(KL̄ − C) with a capacity; a learned prior takes its share in _kl_backward)
        dz = self._decode_backward(dout)
        dmu, dlogvar = self.sampler.backward(dz)
        self._encode_backward(dmu + kl_slope * dmu_kl, dlogvar + kl_slope * dlogvar_kl)
        self._kl_backward(kl_slope)
        return terms

    def kl_weighting(self, kl_mean: float):
        """(KL term of the loss, its derivative w.r.t. the batch-mean KL) at the current step,
        for ``kl_mean``, the batch-mean KL in nats.

        β·KL, or with a capacity target C: β·|KL − C| (derivative β·sign(KL − C)).
        """
        beta = self.current_beta()
        if self.capacity is None:
            return beta * kl_mean, beta
        gap = kl_mean - self.current_capacity()
        return beta * abs(gap), beta * (1.0 if gap > 0 else -1.0 if gap < 0 else 0.0)

    def _evaluate_arrays(self, arrays, batch_size=512) -> dict:
        means = super()._evaluate_arrays(arrays, batch_size=batch_size)
        if getattr(self, "capacity", None) is not None:
            # β·|KL − C| is not linear in KL: taken per batch and averaged, it would depend on batch_size
            means["loss"] = means["recon"] + self.kl_weighting(means["kl"])[0]
        return means

    def current_beta(self) -> float:
        """β, ramped linearly from 0 over the first ``beta_warmup`` steps."""
        if self.beta_warmup == 0:
            return self.beta
        return self.beta * min(1.0, self.step / self.beta_warmup)

    def current_capacity(self) -> float:
        """The capacity target C, ramped linearly from 0 over the first ``capacity_warmup``
        steps (0 without a target)."""
        if self.capacity is None:
            return 0.0
        if self.capacity_warmup == 0:
            return float(self.capacity)
        return float(self.capacity) * min(1.0, self.step / self.capacity_warmup)

    # the parts of the objective that conditional/convolutional variants override ----------
    def _encode(self, x, condition=None):
        h = self.encoder.forward(x)
        if h.ndim != 2 or h.shape[1] != 2 * self.latent_dim:
            raise ValueError(f"the encoder must output (batch, 2·latent_dim = {2 * self.latent_dim}) values (μ then logvar), got {tuple(h.shape)}")
        mu, raw_logvar = h[:, : self.latent_dim], h[:, self.latent_dim :]
        logvar, self._logvar_inside = clamp_logvar(raw_logvar)
        return mu, logvar

    def _encode_backward(self, dmu, dlogvar, input_grad=False):
        """Backward through the logvar clamp and the encoder; returns dL/d(encoder input) if asked."""
        xp = self.backend.xp
        return self.encoder.backward(xp.concatenate([dmu, dlogvar * self._logvar_inside], axis=1), input_grad=input_grad)

    def _decode(self, z, condition=None):
        return self.decoder.forward(z)

    def _decode_backward(self, dout):
        return self.decoder.backward(dout)

    def _kl(self, mu, logvar, condition=None):
        return kl_normal(mu, logvar)

    def _kl_backward(self, kl_slope):
        """Gradient into a learned prior's parameters; the N(0, I) prior has none."""

    def _prepare_data(self, x, y=None):
        if y is not None:
            raise TypeError(f"{type(self).__name__} is unconditional and takes no labels, but got y (fit's and evaluate's "
                            f"second positional argument is y, the labels: pass epochs and other settings by keyword, "
                            f"fit(x, epochs=5); validation data as validation_data=x_val); use microvae.CVAE for labels")
        return (self._data(x),)

    def _data(self, x, what="x"):
        """A checked data batch: right shape, finite, and in range for the likelihood."""
        x = self._as_batch(x, what)
        self.likelihood.validate(x, what)
        return x

    def _eps(self, eps):
        """A given ε on the device, checked: NaN noise would make every loss and gradient NaN."""
        if eps is None:
            return None
        self._check_noise_dtype(eps)
        eps = self.backend.asarray(eps)
        if not bool(self.backend.xp.isfinite(eps).all()):
            raise ValueError("eps contains NaN or Inf; the reparameterization noise must be finite")
        return eps

    # using a trained model (NumPy in, NumPy out; in row blocks, see Model.INFERENCE_BATCH) ----------
    def encode(self, x):
        """(μ, logvar) of q(z|x), as NumPy arrays of shape (n, latent_dim)."""
        return self._by_rows(self._encode, self._data(x))

    def decode(self, z):
        """Data-space mean of p(x|z) (probabilities for Bernoulli), shape (n, *input_shape)."""
        return self._by_rows(self._decoded_mean, self._as_batch(z, "z", (self.latent_dim,)))

    def reconstruct(self, x):
        """Decode the posterior mean: decode(μ(x))."""
        return self._by_rows(lambda xb: self._decoded_mean(self._encode(xb)[0]), self._data(x))

    def sample(self, n: int, seed: int | None = None):
        """n draws of the decoder mean at z ~ N(0, I) (seeded by ``seed``, else the model's generator)."""
        n, seed = check_int("n", n, 1), check_seed(seed)
        z = np.random.default_rng(seed).standard_normal((n, self.latent_dim)) if seed is not None else self.backend.to_numpy(self.backend.normal((n, self.latent_dim)))
        return self.decode(z)

    def elbo(self, x, n_samples: int = 1, seed: int | None = None):
        """Per-example evidence lower bound log p(x) ≥ E_q[log p(x|z)] − KL(q‖p), in nats,
        estimated with ``n_samples`` draws of z (β plays no part: this is the true bound).
        ε comes from ``seed`` when it is given (the same figures on every call, the model's own
        generator untouched), else from the model's generator, which moves on."""
        return self._elbo(self._data(x), None, n_samples, seed)

    def _decoded_mean(self, z, condition=None):
        return self.likelihood.mean(self._decode(z, condition), self.backend.kernels)

    def _elbo(self, x, condition, n_samples, seed=None):
        """The ELBO of checked data (condition: labels, a mask or None), in row blocks.

        Draw k's ε is one (n, latent_dim) array, taken for all rows before its blocks are
        decoded: the generator's stream is used as by one pass over all rows, so the block
        size changes no draw of ε, whatever ``n_samples`` (drawing inside each block, draw after
        draw, would give the rows other noise once n_samples > 1); in float32 the products of
        blocks of another size may still round differently, in the last bits. Between draws only
        (μ, logvar) of all rows are kept, not activations or an (n_samples, n, latent_dim) ε."""
        n_samples, seed = check_int("n_samples", n_samples, 1), check_seed(seed)  # every model's elbo comes here
        def posterior(xb, cb):
            mu, logvar = self._encode(xb, cb)
            return mu, logvar, self._kl(mu, logvar, cb)[0]

        mu, logvar, kl = self._by_rows(posterior, x, condition)
        mu, logvar = self.backend.asarray(mu), self.backend.asarray(logvar)
        recon = 0.0
        with self._draws_from(seed):
            for _ in range(n_samples):
                eps = self.backend.normal(mu.shape)
                recon = recon + self._by_rows(lambda xb, cb, mb, lb, eb: self._nll_at(self.sampler.forward(mb, lb, eb), xb, cb),
                                              x, condition, mu, logvar, eps)
        return -(recon / n_samples) - kl

    def _nll_at(self, z, x, condition=None):
        """−log p(x | z) per row."""
        return self.likelihood.nll(self._decode(z, condition), x, self.backend.kernels)[0]

    def __repr__(self):
        return self._repr_with_settings(
            f"{type(self).__name__}(input_dim={self.input_dim}, hidden={self.hidden}, latent_dim={self.latent_dim}, "
            f"beta={self.beta}, likelihood={self.likelihood.config()!r}, parameters={self.num_parameters}, backend={self.backend!r})")
