"""Recurrent layers with backpropagation through time written out: a vanilla tanh RNN and a GRU.

Both are batch-first: inputs x are (batch, time, input_size), and ``forward`` returns every
hidden state, H of shape (batch, time, hidden_size).

API (the same for both)::

    layer = GRU(input_size=3, hidden_size=16).build(dtype="float64")
    H = layer.forward(x, h0=None, mask=None)   # (B, T, hidden); h0 (B, hidden) defaults to 0
    dx = layer.backward(dH)                    # dH = dL/dH, (B, T, hidden) -> dL/dx (B, T, input)
    layer.dh0                                  # dL/dh0 (B, hidden), set by every backward
    h = layer.step(x_t, h)                     # one step, no cache (for generation)

**Masks.** ``mask`` (B, T) of 0/1 marks the real steps of variable-length sequences. A
padded step (mask 0) carries the state through unchanged, h_t = h_{t−1} exactly, so the
state at the last real step is carried to the end: ``H[:, -1]`` *is* each sequence's last
(mask-aware) hidden state, and a gradient put there reaches the last real step. Padded
steps get no gradient: dx_t = 0 there, and they add nothing to the parameter gradients,
whatever values (NaN included) the padding holds.

**Backpropagation through time.** With δ_t the total gradient reaching h_t, i.e. the
upstream dH_t plus what flows back from step t+1 (δ_{T+1} = 0), each step's kernel turns
δ_t into the gradient of its pre-activations (da_t), and

    δ_{t−1} = dH_{t−1} + (direct path through h_t's dependence on h_{t−1}) + da_t·W_hᵀ
    dW_x = Σ_t x_tᵀ·da_t,   dW_h = Σ_t h_{t−1}ᵀ·da_t,   db = Σ_t Σ_batch da_t,   dx_t = da_t·W_xᵀ,   dh0 = δ_0

That is the RNN's form. The GRU's reset gate multiplies its recurrent product, so the products
with W_h (in δ_{t−1} and dW_h) take the candidate block's da_n ⊙ r_t in place of da_n: the
``GRU`` docstring writes out both pre-activation gradients, dgx_t and dgh_t.

The sums over t are single matrix products over the stacked steps, done after the loop;
only the recurrence δ_t → δ_{t−1} runs step by step. Elementwise step work runs in the
backend's kernels (``microvae/kernels/rnn_*``); matrix products go through ``backend.xp``.
Sequences are stored time-major inside the layer so each step is a contiguous block.
"""

from __future__ import annotations

from ..checks import check_array_like, check_bool, check_int, check_real_array
from .base import Layer, glorot_uniform, zeros

__all__ = ["RNN", "GRU"]


def orthogonal_blocks(size: int, blocks: int):
    """Initializer for a (size, blocks·size) recurrent matrix: ``blocks`` random orthogonal
    size×size blocks side by side (QR of a Gaussian matrix, signs fixed so the draw is
    uniform). Orthogonal recurrent weights neither shrink nor grow the state at first."""

    def init(backend, shape):
        return backend.xp.concatenate([backend.orthogonal(size) for _ in range(blocks)], axis=1)

    return init


class _Recurrent(Layer):
    """Shared plumbing of RNN and GRU: checks, time-major storage, the backward sums."""

    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = check_int("input_size", input_size, 1)  # int() would truncate 2.9 and take True
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.dh0 = None
        self._cache = None

    def get_config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size}

    def parameter_specs(self):
        g = self.num_gates * self.hidden_size
        return {
            "W_x": ((self.input_size, g), glorot_uniform(self.input_size, g)),
            "W_h": ((self.hidden_size, g), orthogonal_blocks(self.hidden_size, self.num_gates)),
            "b": ((g,), zeros),
        }

    # inputs -----------------------------------------------------------------------
    def _inputs(self, x, h0, mask):
        """Check shapes; return time-major x (T, B, I), h0 (B, H) and mask (T, B) in the layer's dtype.
        Each may be a list, as every layer's input may (``Layer._input``)."""
        self._require_built()
        xp, dtype = self.backend.xp, self.backend.dtype
        name = type(self).__name__
        x = self._input(x, name="x")
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{name}({self.input_size}, {self.hidden_size}) expects x of shape (batch, time, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        B, T = int(x.shape[0]), int(x.shape[1])
        if B < 1 or T < 1:
            raise ValueError(f"{name} needs at least one sequence and one time step, got x of shape {tuple(x.shape)}")
        # always a copy (ascontiguousarray shares x when B or T is 1): the cache must not
        # change with the caller's array, and padding is zeroed in it below
        xt = xp.array(x.transpose(1, 0, 2), order="C")
        if h0 is None:
            h0 = xp.zeros((B, self.hidden_size), dtype=dtype)
        else:
            h0 = self._input(h0, name="h0")
            if h0.shape != (B, self.hidden_size):
                raise ValueError(f"{name}: h0 must have shape (batch, hidden_size) = {(B, self.hidden_size)}, got {tuple(h0.shape)}")
        if mask is None:
            mt = xp.ones((T, B), dtype=dtype)
        else:
            check_array_like(mask, f"{name}.forward", "mask")
            if not hasattr(mask, "shape"):
                mask = xp.asarray(mask)  # not yet in the layer's dtype: float32 would round 0.99999999 to 1 before the check
            check_real_array(mask, name, "forward", "mask")
            if mask.shape != (B, T):
                raise ValueError(f"{name}: mask must have shape (batch, time) = {(B, T)}, got {tuple(mask.shape)}")
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError(f"{name}: mask must contain only 0 and 1")
            mt = xp.array(xp.asarray(mask, dtype=dtype).T, order="C")  # a copy, as xt above, at every shape
            # padded steps get no gradient, but dW_x = Σ_t x_tᵀ·da_t still multiplies their x by
            # da = 0: padding that holds NaN or Inf (a "missing" marker) would make dW_x NaN
            xt[mt == 0] = 0
        return xt, h0, mt

    def _check_dH(self, dH):
        T, B = self._cache["T"], self._cache["B"]
        check_array_like(dH, f"{type(self).__name__}.backward", "dH")
        if not hasattr(dH, "shape"):  # a nested list, as forward takes one
            dH = self.backend.xp.asarray(dH)
        if dH.shape != (B, T, self.hidden_size):
            raise ValueError(f"{type(self).__name__}.backward expects dH of shape {(B, T, self.hidden_size)}, got {tuple(dH.shape)}")
        check_real_array(dH, type(self).__name__, "backward", "dH")
        return self.backend.xp.asarray(dH, dtype=self.backend.dtype).transpose(1, 0, 2)

    def _parameter_grads(self, xt, hs, da, dgh=None):
        """dW_x = Σ_t x_tᵀ·da_t, dW_h = Σ_t h_{t−1}ᵀ·dgh_t, db = Σ da (one product over all steps)."""
        xp = self.backend.xp
        T, B = xt.shape[0], xt.shape[1]
        da2 = da.reshape(T * B, -1)
        dgh2 = da2 if dgh is None else dgh.reshape(T * B, -1)
        xp.matmul(xt.reshape(T * B, self.input_size).T, da2, out=self.grads["W_x"])
        xp.matmul(hs[:-1].reshape(T * B, self.hidden_size).T, dgh2, out=self.grads["W_h"])
        da2.sum(axis=0, out=self.grads["b"])

    def _input_grad(self, da):
        T, B = da.shape[0], da.shape[1]
        dx = (da.reshape(T * B, -1) @ self.params["W_x"].T).reshape(T, B, self.input_size)
        return self.backend.xp.ascontiguousarray(dx.transpose(1, 0, 2))

    def _step_inputs(self, x_t, h):
        """Check shapes; return x_t and h in the layer's dtype, as ``forward`` takes them."""
        x_t, h = self._input(x_t, method="step", name="x_t"), self._input(h, method="step", name="h")
        B = x_t.shape[0] if x_t.ndim == 2 else None
        if B is None or x_t.shape[1] != self.input_size:
            raise ValueError(f"{type(self).__name__}.step expects x_t of shape (batch, {self.input_size}), got {tuple(x_t.shape)}")
        if h.shape != (B, self.hidden_size):
            raise ValueError(f"{type(self).__name__}.step expects h of shape {(B, self.hidden_size)}, got {tuple(h.shape)}")
        return x_t, h

    def __call__(self, x, h0=None, mask=None):
        return self.forward(x, h0=h0, mask=mask)

    def __repr__(self):
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"


class RNN(_Recurrent):
    """Vanilla (Elman) RNN with tanh: the simplest recurrent layer.

    Forward, for t = 1..T (h_0 = h0, zeros by default):

        a_t = x_t·W_x + h_{t−1}·W_h + b
        h_t = tanh(a_t)                 (h_t = h_{t−1} at padded steps, mask_t = 0)

    Backward, with δ_t = dL/dh_t in total (upstream dH_t plus the path from step t+1):

        da_t    = δ_t ⊙ (1 − h_t²)      (0 at padded steps)
        δ_{t−1} = dH_{t−1} + da_t·W_hᵀ  (+ δ_t itself at a padded step t, whose h_t is h_{t−1})
        dW_x = Σ_t x_tᵀ·da_t,  dW_h = Σ_t h_{t−1}ᵀ·da_t,  db = Σ_t Σ_batch da_t,  dx_t = da_t·W_xᵀ,  dh0 = δ_0

    Parameters: W_x (input, hidden) Glorot, W_h (hidden, hidden) orthogonal, b (hidden,) zeros.
    """

    num_gates = 1

    def forward(self, x, h0=None, mask=None):
        """x (B, T, input) -> H (B, T, hidden), every step's hidden state. ``h0`` (B, hidden):
        the initial state (default 0); ``mask`` (B, T) of 0/1: the real steps (padded steps
        carry the state unchanged, see the module doc)."""
        xt, h0, mt = self._inputs(x, h0, mask)
        xp, k = self.backend.xp, self.backend.kernels
        T, B, H = xt.shape[0], xt.shape[1], self.hidden_size
        W_h = self.params["W_h"]
        gx = (xt.reshape(T * B, self.input_size) @ self.params["W_x"] + self.params["b"]).reshape(T, B, H)
        hs = xp.empty((T + 1, B, H), dtype=self.backend.dtype)
        hs[0] = h0
        for t in range(T):
            a = gx[t] + hs[t] @ W_h
            k.rnn_tanh_forward_step(a, hs[t], mt[t], hs[t + 1])
        self._cache = {"T": T, "B": B, "xt": xt, "hs": hs, "mt": mt}
        return xp.array(hs[1:].transpose(1, 0, 2), order="C")  # a copy at any B and T: hs is the backward's cache

    def backward(self, dy, input_grad: bool = True):
        """dy = dH (B, T, hidden) -> dx (B, T, input) (None if not input_grad); writes the
        parameter gradients and sets ``self.dh0``. (``dy``, as every layer names it.)"""
        input_grad = check_bool("input_grad", input_grad)
        if self._cache is None:
            raise RuntimeError("RNN.backward called before forward (since it was last built, or forget())")
        dHt = self._check_dH(dy)
        xp, k = self.backend.xp, self.backend.kernels
        c = self._cache
        T, B, H, hs, mt = c["T"], c["B"], self.hidden_size, c["hs"], c["mt"]
        W_hT = self.params["W_h"].T
        da = xp.empty((T, B, H), dtype=self.backend.dtype)
        direct = xp.empty((B, H), dtype=self.backend.dtype)
        carry = xp.zeros((B, H), dtype=self.backend.dtype)
        for t in range(T - 1, -1, -1):
            delta = dHt[t] + carry
            k.rnn_tanh_backward_step(delta, hs[t + 1], mt[t], da[t], direct)
            carry = direct + da[t] @ W_hT
        self.dh0 = carry
        self._parameter_grads(c["xt"], hs, da)
        return self._input_grad(da) if input_grad else None

    def step(self, x_t, h):
        """One step h_t = tanh(x_t·W_x + h·W_h + b) for (B, input) and (B, hidden); no cache."""
        x_t, h = self._step_inputs(x_t, h)
        xp = self.backend.xp
        out = xp.empty(h.shape, dtype=self.backend.dtype)
        a = x_t @ self.params["W_x"] + h @ self.params["W_h"] + self.params["b"]
        self.backend.kernels.rnn_tanh_forward_step(xp.ascontiguousarray(a, dtype=self.backend.dtype), h,
                                                   xp.ones(h.shape[0], dtype=self.backend.dtype), out)
        return out


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al., 2014), in the form used by cuDNN and PyTorch: the
    reset gate multiplies the recurrent product h_{t−1}·W_hn rather than h_{t−1}, so all
    three gates share one product h_{t−1}·W_h per step.

    Forward, for t = 1..T (h_0 = h0, zeros by default; σ is the logistic function):

        [gx_r | gx_u | gx_n] = x_t·W_x + b          [gh_r | gh_u | gh_n] = h_{t−1}·W_h
        r_t  = σ(gx_r + gh_r)                         reset gate
        u_t  = σ(gx_u + gh_u)                         update gate
        hn_t = gh_n + b_hn
        n_t  = tanh(gx_n + r_t ⊙ hn_t)                candidate
        h_t  = (1 − u_t) ⊙ n_t + u_t ⊙ h_{t−1}        (h_t = h_{t−1} at padded steps)

    Backward, with δ_t = dL/dh_t in total (0 in place of δ_t at padded steps below, where
    instead δ_t passes straight to h_{t−1}):

        dn   = δ_t ⊙ (1 − u_t)             da_n = dn ⊙ (1 − n_t²)
        du   = δ_t ⊙ (h_{t−1} − n_t)       da_u = du ⊙ u_t(1 − u_t)
        dr   = da_n ⊙ hn_t                 da_r = dr ⊙ r_t(1 − r_t)
        dhn  = da_n ⊙ r_t
        dgx_t = [da_r | da_u | da_n],      dgh_t = [da_r | da_u | dhn]
        δ_{t−1} = dH_{t−1} + δ_t ⊙ u_t + dgh_t·W_hᵀ
        dW_x = Σ_t x_tᵀ·dgx_t,  db = Σ dgx_t,  dW_h = Σ_t h_{t−1}ᵀ·dgh_t,  db_hn = Σ dhn,
        dx_t = dgx_t·W_xᵀ,  dh0 = δ_0

    Parameters: W_x (input, 3·hidden) Glorot, W_h (hidden, 3·hidden) three orthogonal
    blocks, b (3·hidden,) and b_hn (hidden,) zeros; gate order [reset | update | candidate].
    """

    num_gates = 3

    def parameter_specs(self):
        specs = super().parameter_specs()
        specs["b_hn"] = ((self.hidden_size,), zeros)
        return specs

    def forward(self, x, h0=None, mask=None):
        """x (B, T, input) -> H (B, T, hidden), every step's hidden state. ``h0`` (B, hidden):
        the initial state (default 0); ``mask`` (B, T) of 0/1: the real steps (padded steps
        carry the state unchanged, see the module doc)."""
        xt, h0, mt = self._inputs(x, h0, mask)
        xp, k, dtype = self.backend.xp, self.backend.kernels, self.backend.dtype
        T, B, H = xt.shape[0], xt.shape[1], self.hidden_size
        W_h, b_hn = self.params["W_h"], self.params["b_hn"]
        gx = (xt.reshape(T * B, self.input_size) @ self.params["W_x"] + self.params["b"]).reshape(T, B, 3 * H)
        hs = xp.empty((T + 1, B, H), dtype=dtype)
        gates = xp.empty((T, B, 3 * H), dtype=dtype)
        hn = xp.empty((T, B, H), dtype=dtype)
        hs[0] = h0
        for t in range(T):
            k.gru_forward_step(gx[t], hs[t] @ W_h, b_hn, hs[t], mt[t], hs[t + 1], gates[t], hn[t])
        self._cache = {"T": T, "B": B, "xt": xt, "hs": hs, "mt": mt, "gates": gates, "hn": hn}
        return xp.array(hs[1:].transpose(1, 0, 2), order="C")  # a copy at any B and T: hs is the backward's cache

    def backward(self, dy, input_grad: bool = True):
        """dy = dH (B, T, hidden) -> dx (B, T, input) (None if not input_grad); writes the
        parameter gradients and sets ``self.dh0``. (``dy``, as every layer names it.)"""
        input_grad = check_bool("input_grad", input_grad)
        if self._cache is None:
            raise RuntimeError("GRU.backward called before forward (since it was last built, or forget())")
        dHt = self._check_dH(dy)
        xp, k, dtype = self.backend.xp, self.backend.kernels, self.backend.dtype
        c = self._cache
        T, B, H, hs, mt = c["T"], c["B"], self.hidden_size, c["hs"], c["mt"]
        W_hT = self.params["W_h"].T
        dgx = xp.empty((T, B, 3 * H), dtype=dtype)
        dgh = xp.empty((T, B, 3 * H), dtype=dtype)
        dhn = xp.empty((B, H), dtype=dtype)
        direct = xp.empty((B, H), dtype=dtype)
        carry = xp.zeros((B, H), dtype=dtype)
        for t in range(T - 1, -1, -1):
            delta = dHt[t] + carry
            k.gru_backward_step(delta, hs[t], mt[t], c["gates"][t], c["hn"][t], dgx[t], dhn, direct)
            dgh[t, :, : 2 * H] = dgx[t, :, : 2 * H]
            dgh[t, :, 2 * H :] = dhn
            carry = direct + dgh[t] @ W_hT
        self.dh0 = carry
        self._parameter_grads(c["xt"], hs, dgx, dgh)
        dgh[:, :, 2 * H :].sum(axis=(0, 1), out=self.grads["b_hn"])
        return self._input_grad(dgx) if input_grad else None

    def step(self, x_t, h):
        """One GRU step for (B, input) and (B, hidden); no cache."""
        x_t, h = self._step_inputs(x_t, h)
        xp, dtype = self.backend.xp, self.backend.dtype
        B, H = h.shape
        gx = xp.ascontiguousarray(x_t @ self.params["W_x"] + self.params["b"], dtype=dtype)
        out = xp.empty((B, H), dtype=dtype)
        self.backend.kernels.gru_forward_step(gx, xp.ascontiguousarray(h @ self.params["W_h"], dtype=dtype), self.params["b_hn"], h,
                                              xp.ones(B, dtype=dtype), out, xp.empty((B, 3 * H), dtype=dtype), xp.empty((B, H), dtype=dtype))
        return out

