"""Recurrent VAEs for sequences: the Variational Recurrent Autoencoder (Fabius & van Amersfoort,
2014) and a hierarchical variant with a "conductor" decoder in the style of MusicVAE
(Roberts et al., 2018).

Data are batches of sequences x of shape (n, T, F): n sequences, T steps, F features per
step. Variable lengths are given by a mask (n, T) of 0/1 whose rows are 1…1 0…0 (each
sequence starts at step 0; the padding follows it). Pass it where a labelled model takes
labels: ``fit(x, mask)``, ``evaluate(x, mask)``, ``validation_data=(x_val, mask_val)``, and
``mask=`` in the other methods. Without a mask every step is real. ``pad_sequences`` turns a
list of (T_i, F) arrays into such an (x, mask) pair.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import array_module
from ..checks import as_array, check_dtype, check_int, check_number, check_real_array, check_seed, is_choice
from ..layers import GRU, RNN, Dense, Tanh
from ..likelihoods import clamp_logvar
from ..reparam import Reparameterization
from . import settings
from .base import Model
from .settings import Fixed, Setting
from .vae import VAE

__all__ = ["VRAE", "HierarchicalVRAE", "SequenceLikelihood", "pad_sequences"]

CELLS = {"gru": GRU, "rnn": RNN}

# sequences of different lengths are padded to one, and the padding masked
_PAD = ("pad the sequences to one length: x, mask = microvae.pad_sequences(list_of_sequences) gives x "
        "(batch, time, features) and its mask (batch, time)")


def pad_sequences(sequences, length: int | None = None, value: float = 0.0):
    """(x, mask) from a list of (T_i, F) arrays: x (n, T, F) padded with ``value`` after each
    sequence, mask (n, T) float32 with ones on the real steps. T = ``length`` or max T_i;
    longer sequences are cut to ``length``. The masked steps add nothing to the loss, so
    ``value`` may be any finite number that x's dtype and the model's hold, whatever the
    likelihood (a model checks that its data fit its dtype before it sets the padding to 0).
    x is float32 unless a sequence is a wider float (float64 input stays float64); integer and
    bool sequences (piano rolls, say) do not widen it to float64."""
    seqs = [np.asarray(s) for s in sequences]
    if not seqs or any(s.ndim != 2 or len(s) == 0 for s in seqs) or len({s.shape[1] for s in seqs}) != 1:
        # which of the three it is: the one message for all of them left the caller guessing
        if not seqs:
            found = "got none"
        elif any(s.ndim != 2 for s in seqs):
            i = next(i for i, s in enumerate(seqs) if s.ndim != 2)
            found = (f"sequences[{i}] has shape {seqs[i].shape}"
                     + ("; a sequence of single values needs a feature axis: s[:, None]" if seqs[i].ndim == 1 else ""))
        elif any(len(s) == 0 for s in seqs):
            found = f"sequences[{next(i for i, s in enumerate(seqs) if len(s) == 0)}] has no steps"
        else:
            found = f"the sequences have F = {sorted({s.shape[1] for s in seqs})}"
        raise ValueError(f"pad_sequences needs a non-empty list of non-empty (T_i, F) arrays with one F; {found}")
    for i, s in enumerate(seqs):  # strings failed in NumPy's copy; complex numbers padded into a complex x
        check_real_array(s, "pad_sequences", None, f"sequences[{i}]")
    length = check_int("length", length, 1, none_ok=True)  # int() would cut 2.7 to 2 steps without a word
    if not math.isfinite(check_number("value", value, "a finite number")):
        raise ValueError(f"value must be a finite number, got {value!r}")
    T = length if length is not None else max(len(s) for s in seqs)
    # NumPy would promote an int64 sequence with float32 to float64: only float inputs count
    dtype = np.result_type(np.float32, *(s.dtype for s in seqs if s.dtype.kind == "f"))
    with np.errstate(over="ignore"):
        padded_value = dtype.type(value)
    if not math.isfinite(padded_value):  # np.full would pad with Inf, with only NumPy's cast warning
        raise ValueError(f"value {value!r} is beyond the range of {dtype.name}, the padded sequences' dtype; pad with "
                         "a smaller number (the masked steps add nothing to the loss, whatever the value)")
    x = np.full((len(seqs), T, seqs[0].shape[1]), value, dtype=dtype)
    mask = np.zeros((len(seqs), T), dtype=np.float32)
    for i, s in enumerate(seqs):
        n = min(len(s), T)
        x[i, :n], mask[i, :n] = s[:n], 1
    return x, mask


class SequenceLikelihood:
    """A per-step likelihood (Bernoulli or Gaussian) for sequences, summed over real steps.

    For decoder output o (n, T, D) and data x (n, T, F), per sequence:

        −log p(x | o) = Σ_t mask_t · (−log p_step(x_t | o_t))

    and its gradient is the step likelihood's gradient times mask_t (then scaled to the
    batch mean over sequences). ``mask`` is the mask of the current pass (None: all
    steps real); the model sets it when it encodes a batch, like a layer caching its input.
    """

    def __init__(self, base):
        self.base = base
        self.name = base.name
        self.mask = None

    def output_dim(self, features: int) -> int:
        """Decoder outputs per step: the per-step likelihood's for ``features``."""
        return self.base.output_dim(features)

    def nll(self, out, x, kernels=None):
        """(per-sequence NLL over real steps, d(batch mean)/d out): the per-step likelihood's
        gradient carries 1/(n·T), so it is scaled by T to the mean over sequences."""
        n, T = x.shape[0], x.shape[1]
        per_step, dout = self.base.nll(out.reshape(n * T, -1), x.reshape(n * T, -1), kernels)  # dout carries 1/(n·T)
        per_step = per_step.reshape(n, T)
        dout = dout.reshape(out.shape) * dout.dtype.type(T)  # now 1/n: the batch mean over sequences
        if self.mask is not None:
            per_step = per_step * self.mask
            dout *= self.mask[:, :, None]
        return per_step.sum(axis=1), dout

    def mean(self, out, kernels):
        """The likelihood's mean for every step of ``out`` (n, T, outputs)."""
        n, T = out.shape[0], out.shape[1]
        xp = array_module(out)
        return xp.ascontiguousarray(self.base.mean(xp.ascontiguousarray(out.reshape(n * T, -1)), kernels)).reshape(n, T, -1)

    def validate(self, x, what: str = "x") -> None:
        """Refuse data the per-step likelihood cannot score (e.g. outside [0, 1] for Bernoulli)."""
        self.base.validate(x, what)

    def config(self):
        """The per-step likelihood's config: what a checkpoint stores to rebuild it."""
        return self.base.config()

    def __repr__(self):
        return f"SequenceLikelihood({self.base!r})"


class VRAE(VAE):
    """Variational recurrent autoencoder (Fabius & van Amersfoort, 2014).

    **Model.** With an RNN or GRU for each of encoder and decoder:

        encoder:  h_t = Enc(x_t, h_{t−1}), h_0 = 0;  e = h at the last real step
                  [μ ‖ logvar] = e·W_μ + b_μ,   q(z | x) = N(μ, e^{logvar})
        decoder:  s_0 = tanh(z·W_s + b_s)
                  s_t = Dec(x_{t−1}, s_{t−1})   (x_0 = 0: teacher forcing, the previous true step)
                  o_t = s_t·W_o + b_o           logits (Bernoulli) or means (Gaussian) of p(x_t | z, x_{<t})

    **Objective** (VAE's, minimised; nats per sequence, averaged over the batch):

        L = Σ_t mask_t · (−log p(x_t | z, x_{<t})) + β · KL(q(z|x) ‖ N(0, I)),   z = μ + exp(½·logvar)·ε

    β can warm up linearly over ``beta_warmup`` steps (KL annealing, Bowman et al. 2016).
    ``input_dropout`` p: during ``fit`` each teacher-forced input x_{t−1} is zeroed with
    probability p ("word dropout", Bowman et al. 2016), so that the decoder cannot predict
    well without z; it changes no gradient formula (the inputs are data).
    The objective is ``VAE._objective`` itself; this class supplies the hooks
    (``_encode`` also caches the batch, which the decoder needs for teacher forcing, and
    the mask, which the likelihood applies).

    **Generation** (``decode``, ``sample``, ``reconstruct``) runs the decoder free: the
    input at step t is its own previous output mean (probabilities for Bernoulli).

    Masks: see the module docstring (``fit(x, mask)``). Unlike ``VAE``, there is no capacity
    target (``capacity`` stays None) and no ``fuse_relu`` option: the networks are recurrent.

    Parameters
    ----------
    input_size : F, features per step, an int >= 1 (no default)
    hidden_size : the encoder's and decoder's state size, an int >= 1 (default 64)
    latent_dim : the dimension of z, an int >= 1 (default 8)
    cell : "gru" (default, ``GRU``) or "rnn" (``RNN``, tanh), for both networks
    likelihood : p(x_t | z, x_{<t}) per step, as in ``VAE``: "bernoulli" (default),
        "gaussian", "gaussian-learned", a dict {"name": "gaussian", "logvar": v} or an object
    beta : β, a finite number >= 0 (default 1.0)
    beta_warmup : steps over which β rises linearly from 0, an int >= 0 (default 0)
    input_dropout : p, a number in [0, 1) (default 0.0: no dropout)
    backend, dtype, seed : as in ``VAE`` (seed an int >= 0, default 0, or None for fresh entropy)
    """

    is_sequence_model = True  # samples are (n, length, features); the CLI draws them as sequences
    options_added_later = {}  # VAE's fuse_relu is not an option here: the networks are recurrent

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 64,
        latent_dim: int = 8,
        cell: str = "gru",
        likelihood="bernoulli",
        beta: float = 1.0,
        beta_warmup: int = 0,
        input_dropout: float = 0.0,
        backend="numpy",
        dtype="float32",
        seed: int | None = 0,
    ):
        Model.__init__(self)  # VAE.__init__ builds MLPs; the objective and its helpers are what we reuse
        input_size, hidden_size = check_int("input_size", input_size), check_int("hidden_size", hidden_size)
        latent_dim = check_int("latent_dim", latent_dim)
        if input_size < 1 or hidden_size < 1 or latent_dim < 1:
            raise ValueError(f"sizes must be positive: input_size={input_size}, hidden_size={hidden_size}, latent_dim={latent_dim}")
        if not is_choice(cell, CELLS):
            raise ValueError(f"cell must be 'gru' or 'rnn', got {cell!r}")
        # checked as they are assigned (settings.py); no capacity target: it keeps None
        self.beta, self.beta_warmup = beta, beta_warmup
        self.input_dropout = input_dropout
        self.capacity, self.capacity_warmup = None, 0
        self.likelihood = likelihood
        self._training = False
        self.input_size, self.hidden_size, self.latent_dim, self.cell = input_size, hidden_size, latent_dim, cell
        Cell = CELLS[cell]
        self.encoder = Cell(input_size, hidden_size)
        self.to_latent = Dense(hidden_size, 2 * latent_dim)
        self._build_decoder(Cell)
        config = dict(input_size=input_size, hidden_size=hidden_size, latent_dim=latent_dim, cell=cell,
                      likelihood=self.likelihood.config(), beta=self.beta, beta_warmup=self.beta_warmup,
                      input_dropout=self.input_dropout, dtype=check_dtype(dtype),
                      seed=check_seed(seed))  # an int or None: json.dumps refuses a NumPy integer
        config.update(self._extra_config())
        self._setup(backend, dtype, seed, config)
        self.sampler = Reparameterization(self.backend)
        self._x = None

    input_dropout = Setting(settings.input_dropout)
    input_size, hidden_size, cell = Fixed(), Fixed(), Fixed()  # the architecture (latent_dim: VAE's)

    def _wrap_likelihood(self, likelihood):
        return SequenceLikelihood(likelihood)

    # the decoder (what HierarchicalVRAE replaces) -----------------------------------------
    def _build_decoder(self, Cell):
        self.to_state = Dense(self.latent_dim, self.hidden_size)
        self.state_act = Tanh()
        self.decoder = Cell(self.input_size, self.hidden_size)
        self.readout = Dense(self.hidden_size, self.likelihood.output_dim(self.input_size))

    def _extra_config(self) -> dict:
        return {}

    def children(self):
        return {"encoder": self.encoder, "to_latent": self.to_latent, "to_state": self.to_state,
                "state_act": self.state_act, "decoder": self.decoder, "readout": self.readout}

    def _decode(self, z, condition=None):
        """Teacher-forced decoder over the batch cached by ``_encode``: (n, T, D) outputs."""
        x = self._x
        n, T = x.shape[0], x.shape[1]
        h0 = self.state_act.forward(self.to_state.forward(z))
        states = self.decoder.forward(self._shifted(x), h0=h0)
        return self.readout.forward(states.reshape(n * T, self.hidden_size)).reshape(n, T, -1)

    def _decode_backward(self, dout):
        """dz. z reaches the loss only through the first state h₀ = tanh(z·W_s + b_s):
        dout → readout → BPTT through the decoder (its inputs are data) → dh₀ → tanh′ → dz."""
        n, T = dout.shape[0], dout.shape[1]
        dstates = self.readout.backward(dout.reshape(n * T, -1)).reshape(n, T, self.hidden_size)
        self.decoder.backward(dstates, input_grad=False)
        return self.to_state.backward(self.state_act.backward(self.decoder.dh0))

    def _generate(self, z, length):
        """Free-running decoder: the input of step t is the output mean of step t − 1."""
        xp = self.backend.xp
        n = z.shape[0]
        h = self.state_act.forward(self.to_state.forward(z))
        step_input = xp.zeros((n, self.input_size), dtype=self.backend.dtype)
        out = xp.empty((n, length, self.input_size), dtype=self.backend.dtype)
        for t in range(length):
            h = self.decoder.step(step_input, h)
            step_input = self._step_mean(self.readout.forward(h))
            out[:, t] = step_input
        return out

    def _step_mean(self, o):
        return self.backend.xp.ascontiguousarray(self.likelihood.base.mean(o, self.backend.kernels), dtype=self.backend.dtype)

    def _shifted(self, x):
        """Teacher-forcing inputs: x_{t−1} at step t, zeros at step 0.

        During ``fit`` each step's input is zeroed with probability ``input_dropout``
        ("word dropout", Bowman et al. 2016): a decoder that can always see the true past
        predicts smooth sequences without z, and the KL term collapses to 0. The inputs are
        data, so no gradient flows through them and the dropout changes no gradient formula.
        """
        x_in = self.backend.xp.zeros_like(x)
        x_in[:, 1:] = x[:, :-1]
        if self._training and self.input_dropout > 0:
            keep = self.backend.uniform((x.shape[0], x.shape[1], 1)) >= self.input_dropout
            x_in *= keep
        return x_in

    def _train_batch(self, batch, optimizers):
        self._training = True
        try:
            return super()._train_batch(batch, optimizers)
        finally:
            self._training = False

    # the encoder hooks --------------------------------------------------------------------
    def _encode(self, x, condition=None):
        """q(z|x) from the encoder's state at each sequence's last real step (``condition`` is the mask)."""
        self._x = x
        self.likelihood.mask = condition  # the padded steps' terms: nll (in _objective) sums the real steps only
        states = self.encoder.forward(x, mask=condition)
        h = self.to_latent.forward(self.backend.xp.ascontiguousarray(states[:, -1]))  # padded steps carry the last real state
        mu, raw_logvar = h[:, : self.latent_dim], h[:, self.latent_dim :]
        logvar, self._logvar_inside = clamp_logvar(raw_logvar)
        return mu, logvar

    def _encode_backward(self, dmu, dlogvar):
        xp = self.backend.xp
        dlast = self.to_latent.backward(xp.concatenate([dmu, dlogvar * self._logvar_inside], axis=1))
        x = self._x
        dstates = xp.zeros((x.shape[0], x.shape[1], self.hidden_size), dtype=self.backend.dtype)
        dstates[:, -1] = dlast
        self.encoder.backward(dstates, input_grad=False)

    # data -------------------------------------------------------------------------------------
    def _prepare_data(self, x, y=None):
        """(x,) or (x, mask): the second array of ``fit``/``evaluate`` is the mask. With a
        mask, only the real steps must be in the likelihood's range (padding must be finite and
        within the model's dtype), and the padded steps are set to 0 in the model's copy: a
        large padding value would otherwise overflow the masked loss terms ((x − μ)² = Inf, and
        Inf·0 is NaN). Teacher forcing only feeds a step to later ones, and padding only follows
        the real steps."""
        if y is None:
            return (self._data(x),)
        x = self._data(x, check_range=False)
        mask = self._mask(y, x)
        self.likelihood.validate(x[mask > 0], "x (its real steps, where mask is 1)")
        return (self.backend.xp.where(mask[:, :, None] > 0, x, 0), mask)

    def _data(self, x, what="x", check_range=True):
        if not hasattr(x, "shape"):
            x = as_array(x, what, _PAD, f"(batch, time, {self.input_size})")
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            raise ValueError(f"{what} must be a batch of sequences of shape (batch, time, {self.input_size}), got {tuple(x.shape)}")
        x = self._as_batch(x, what, (x.shape[1], self.input_size))
        if check_range:
            self.likelihood.validate(x, what)
        return x

    def _mask(self, mask, x):
        """Check a mask against x: shape (n, T), only 0/1, rows 1…1 0…0 with at least one 1."""
        m = self.backend.to_numpy(mask) if hasattr(mask, "shape") else as_array(mask, "mask", _PAD)
        n, T = x.shape[0], x.shape[1]
        if m.shape != (n, T):
            raise ValueError(f"mask must have shape (batch, time) = {(n, T)} to match x, got {m.shape}")
        check_real_array(m, type(self).__name__, None, "mask")  # the cast below would drop a complex mask's imaginary part
        m = m.astype(np.float64)
        if not np.all((m == 0) | (m == 1)):
            raise ValueError("mask must contain only 0 and 1")
        bad = (m[:, 0] != 1) | (np.diff(m, axis=1) > 0).any(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            steps = "".join(str(int(v)) for v in m[row, :40]) + ("…" if T > 40 else "")
            raise ValueError("each mask row must be 1…1 0…0 (a sequence starts at step 0, padding follows) with at least "
                             f"one 1; row {row} is {steps}")
        return self.backend.asarray(m)

    def _batch(self, x, mask):
        batch = self._prepare_data(x, mask)
        return batch[0], (batch[1] if len(batch) > 1 else None)

    # training and evaluation, with the mask as the second argument --------------------------
    def fit(self, x, mask=None, epochs=10, batch_size=128, validation_data=None, lr=None, optimizer=None,
            shuffle=True, seed=None, callbacks=None, verbose=1, **optimizer_options):
        """``Model.fit`` on sequences x (n, T, F), ``mask`` (n, T) of 0/1 marking the real steps
        (default: all); ``validation_data`` is x or a tuple (x, mask). The other arguments,
        ``epochs``, ``batch_size`` (in sequences), ``lr``, ``optimizer``, ``shuffle``, ``seed``,
        ``callbacks``, ``verbose`` and the optimizer's options as keywords (``optimizer_options``),
        are ``Model.fit``'s, in the same order (help(microvae.VAE.fit))."""
        if "y" in optimizer_options:  # Model.fit's name for its second argument
            raise TypeError(f"{type(self).__name__}.fit takes the mask as its second argument or as mask=, not y=")
        return super().fit(x, mask, epochs=epochs, batch_size=batch_size, validation_data=validation_data, lr=lr,
                           optimizer=optimizer, shuffle=shuffle, seed=seed, callbacks=callbacks, verbose=verbose,
                           **optimizer_options)

    def evaluate(self, x, mask=None, batch_size=512, seed=None) -> dict:
        """``Model.evaluate`` on sequences x (n, T, F) with their ``mask`` (n, T) of 0/1 marking
        the real steps (default: all), ``batch_size`` sequences at a time; ``seed`` fixes the
        noise, as in ``Model.evaluate`` (None: the model's generator, which moves on)."""
        return super().evaluate(x, mask, batch_size=batch_size, seed=seed)

    # the objective with a mask -------------------------------------------------------------
    def loss_and_grads(self, x, mask=None, eps=None):
        """Loss terms of a batch ``x`` (n, T, F) with its ``mask`` (n, T) (default: all steps
        real), with dL/dθ left in ``self.flat.grad``; ``eps`` (n, latent_dim) fixes the
        reparameterization noise (default: drawn from the model's generator).

        It leaves ``model.step``, which the β and capacity warm-ups count, as it is: ``fit``
        counts its steps; a loop of your own adds ``model.step += 1`` after each optimizer step.
        """
        self._check_layers_bound(configs=False)  # gradients of a layer put in later would land outside self.flat.grad
        x, mask = self._batch(x, mask)
        return self._objective(x, mask, eps=self._eps(eps), compute_grads=True)

    def loss(self, x, mask=None, eps=None):
        """Loss terms of a batch ``x`` (n, T, F) with its ``mask`` (n, T) (default: all steps real),
        forward pass only; ``eps`` (n, latent_dim) fixes the reparameterization noise."""
        x, mask = self._batch(x, mask)
        return self._objective(x, mask, eps=self._eps(eps), compute_grads=False)

    # using a trained model (NumPy in, NumPy out; in row blocks, see Model.INFERENCE_BATCH) ----------
    def encode(self, x, mask=None):
        """(μ, logvar) of q(z|x), each (n, latent_dim), for sequences x (n, T, F) with their
        ``mask`` (n, T) (default: all steps real; the padding after a sequence's end is not read)."""
        return self._by_rows(self._encode, *self._batch(x, mask))

    def decode(self, z, length: int):
        """Free-running generation from codes z (n, latent_dim): output means (n, length, F)."""
        length = check_int("length", length, 1)
        z = self._as_batch(z, "z", (self.latent_dim,))
        return self._by_rows(lambda zb: self._generate(zb, length), z)

    def reconstruct(self, x, mask=None):
        """decode(μ(x), T), free-running, with padded steps set to 0: (n, T, F), for sequences x
        (n, T, F) with their ``mask`` (n, T) (default: all steps real)."""
        def rows(xb, mb):
            out = self._generate(self._encode(xb, mb)[0], xb.shape[1])
            return out if mb is None else out * mb[:, :, None]

        return self._by_rows(rows, *self._batch(x, mask))

    def sample(self, n: int, length: int, seed: int | None = None):
        """n sequences of ``length`` steps generated from z ~ N(0, I) (seeded by ``seed``)."""
        n, seed, length = check_int("n", n, 1), check_seed(seed), check_int("length", length, 1)
        z = np.random.default_rng(seed).standard_normal((n, self.latent_dim)) if seed is not None \
            else self.backend.to_numpy(self.backend.normal((n, self.latent_dim)))
        return self.decode(z, length)

    def elbo(self, x, mask=None, n_samples: int = 1, seed: int | None = None):
        """Per-sequence evidence lower bound of sequences ``x`` (n, T, F) in nats (teacher-forced
        likelihood, summed over the real steps that ``mask`` (n, T) marks; default: all), with
        ``n_samples`` draws of z, ε seeded by ``seed`` (as ``VAE.elbo``)."""
        return self._elbo(*self._batch(x, mask), n_samples, seed)

    def _nll_at(self, z, x, mask=None):
        self._x, self.likelihood.mask = x, mask  # as _encode caches them, for this block: teacher forcing and the masked sum read them
        return super()._nll_at(z, x, mask)

    def __repr__(self):
        return self._repr_with_settings(self._plain_repr())

    def _plain_repr(self) -> str:
        return (f"{type(self).__name__}(input_size={self.input_size}, hidden_size={self.hidden_size}, latent_dim={self.latent_dim}, "
                f"cell={self.cell!r}, likelihood={self.likelihood.config()!r}, beta={self.beta}, parameters={self.num_parameters}, "
                f"backend={self.backend!r})")


class HierarchicalVRAE(VRAE):
    """A VRAE with a hierarchical decoder, after MusicVAE (Roberts et al., 2018).

    A sequence of T steps is cut into U = T / S segments of ``segment_length`` S steps
    (T must be a multiple of S). The encoder and q(z|x) are VRAE's. The decoder has two levels:

        conductor:  c_0 = tanh(z·W_c + b_c)
                    c_u = Cond(z, c_{u−1}),  u = 1..U           (one embedding c_u per segment;
                                                                  its input is z at every step)
        segment u:  s_{u,0} = tanh(c_u·W_e + b_e)               (the embedding sets the initial state…)
                    s_{u,k} = Dec([x_{t−1} ‖ c_u], s_{u,k−1})   (…and is appended to every input;
                                                                  t = (u−1)·S + k, x_0 = 0)
                    o_t = s_{u,k}·W_o + b_o                     logits or means of p(x_t | z, x_{<t})

    The lower decoder's state is reset at every segment, so what it knows of the sequence
    beyond its own segment's teacher-forced inputs must come through c_u — from z: this is
    MusicVAE's remedy for a decoder that ignores z. All segments run as one batch of n·U
    sequences. Teacher forcing uses the global previous step, so the first step of a
    segment sees the last step of the previous one.

    **Objective**, as for VRAE (nats per sequence, batch mean):

        L = Σ_t mask_t · (−log p(x_t | z, x_{<t})) + β · KL(q(z|x) ‖ N(0, I))

    ``input_dropout`` works as in VRAE (on the lower decoder's x_{t−1} part of the input).

    Backward: the readout's gradient runs back through the lower decoder to its inputs and
    initial states; the embedding part of the input gradient, summed over a segment's
    steps, plus the gradient through s_{u,0}, is dL/dc_u, which runs back through the
    conductor to z (via its inputs, summed over u, and via c_0).

    Generation runs free, segment after segment (the input of a step is the previous output mean);
    a ``length`` that is not a multiple of ``segment_length`` generates whole segments and keeps
    the first ``length`` steps (training data must be whole segments).

    Parameters
    ----------
    input_size : F, features per step, an int >= 1 (no default)
    segment_length : S, steps per segment, an int >= 1 (default 16); the data's T must be a multiple
    hidden_size : the encoder's and the lower decoder's state size, an int >= 1 (default 64)
    conductor_size : the conductor's state size (of each c_u), an int >= 1 (default 64)
    latent_dim : the dimension of z, an int >= 1 (default 8)
    cell : "gru" (default) or "rnn", for all three networks
    likelihood, beta, beta_warmup, input_dropout, backend, dtype, seed : as in ``VRAE``
        (likelihood per step: "bernoulli", "gaussian", "gaussian-learned", a dict or an object;
        seed an int >= 0, default 0, or None for fresh entropy)
    """

    segment_length, conductor_size = Fixed(), Fixed()  # the architecture

    def __init__(
        self,
        input_size: int,
        segment_length: int = 16,
        hidden_size: int = 64,
        conductor_size: int = 64,
        latent_dim: int = 8,
        cell: str = "gru",
        likelihood="bernoulli",
        beta: float = 1.0,
        beta_warmup: int = 0,
        input_dropout: float = 0.0,
        backend="numpy",
        dtype="float32",
        seed: int | None = 0,
    ):
        self.segment_length = check_int("segment_length", segment_length, 1)
        self.conductor_size = check_int("conductor_size", conductor_size, 1)
        super().__init__(input_size, hidden_size=hidden_size, latent_dim=latent_dim, cell=cell, likelihood=likelihood,
                         beta=beta, beta_warmup=beta_warmup, input_dropout=input_dropout, backend=backend,
                         dtype=dtype, seed=seed)

    def _build_decoder(self, Cell):
        self.to_conductor = Dense(self.latent_dim, self.conductor_size)
        self.conductor_act = Tanh()
        self.conductor = Cell(self.latent_dim, self.conductor_size)
        self.to_segment = Dense(self.conductor_size, self.hidden_size)
        self.segment_act = Tanh()
        self.decoder = Cell(self.input_size + self.conductor_size, self.hidden_size)
        self.readout = Dense(self.hidden_size, self.likelihood.output_dim(self.input_size))

    def _extra_config(self) -> dict:
        return {"segment_length": self.segment_length, "conductor_size": self.conductor_size}

    def children(self):
        return {"encoder": self.encoder, "to_latent": self.to_latent, "to_conductor": self.to_conductor,
                "conductor_act": self.conductor_act, "conductor": self.conductor, "to_segment": self.to_segment,
                "segment_act": self.segment_act, "decoder": self.decoder, "readout": self.readout}

    def _data(self, x, what="x", check_range=True):
        x = super()._data(x, what, check_range)
        if x.shape[1] % self.segment_length:
            raise ValueError(f"{what} has {x.shape[1]} steps, not a multiple of segment_length={self.segment_length}; "
                             "pad the sequences (and mask the padding) to a multiple")
        return x

    def _embeddings(self, z, segments):
        """Conductor: (n, U, conductor_size) segment embeddings from z."""
        xp = self.backend.xp
        c0 = self.conductor_act.forward(self.to_conductor.forward(z))
        z_in = xp.ascontiguousarray(xp.broadcast_to(z[:, None, :], (z.shape[0], segments, self.latent_dim)))
        return self.conductor.forward(z_in, h0=c0)

    def _decode(self, z, condition=None):
        xp = self.backend.xp
        x = self._x
        n, T, F = x.shape
        S, Hc = self.segment_length, self.conductor_size
        U = T // S
        emb = self._embeddings(z, U).reshape(n * U, Hc)
        h0 = self.segment_act.forward(self.to_segment.forward(emb))
        x_in = self._shifted(x).reshape(n * U, S, F)
        inputs = xp.concatenate([x_in, xp.broadcast_to(emb[:, None, :], (n * U, S, Hc))], axis=2)
        states = self.decoder.forward(inputs, h0=h0)
        return self.readout.forward(states.reshape(n * T, self.hidden_size)).reshape(n, T, -1)

    def _decode_backward(self, dout):
        n, T = dout.shape[0], dout.shape[1]
        S, Hc, F = self.segment_length, self.conductor_size, self.input_size
        U = T // S
        dstates = self.readout.backward(dout.reshape(n * T, -1)).reshape(n * U, S, self.hidden_size)
        dinputs = self.decoder.backward(dstates)
        demb = dinputs[:, :, F:].sum(axis=1) + self.to_segment.backward(self.segment_act.backward(self.decoder.dh0))
        dz_in = self.conductor.backward(demb.reshape(n, U, Hc))
        return dz_in.sum(axis=1) + self.to_conductor.backward(self.conductor_act.backward(self.conductor.dh0))

    def _generate(self, z, length):
        xp, dtype = self.backend.xp, self.backend.dtype
        n, S = z.shape[0], self.segment_length
        U = -(-length // S)
        emb = self._embeddings(z, U)
        step_input = xp.zeros((n, self.input_size), dtype=dtype)
        out = xp.empty((n, U * S, self.input_size), dtype=dtype)
        for u in range(U):
            e = xp.ascontiguousarray(emb[:, u])
            h = self.segment_act.forward(self.to_segment.forward(e))
            for k in range(S):
                h = self.decoder.step(xp.concatenate([step_input, e], axis=1), h)
                step_input = self._step_mean(self.readout.forward(h))
                out[:, u * S + k] = step_input
        return out[:, :length]

    def _plain_repr(self) -> str:
        return super()._plain_repr().replace(f"hidden_size={self.hidden_size},",
                                          f"segment_length={self.segment_length}, hidden_size={self.hidden_size}, conductor_size={self.conductor_size},")
