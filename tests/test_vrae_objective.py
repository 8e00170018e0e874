"""VRAE and HierarchicalVRAE: the objective's value, recomputed from the documented equations.

Why this file exists. The whole-objective gradient checks in test_vrae.py check the gradient of
whatever function a model computes, so a wiring change made consistently in forward and backward
passes them by construction. A mutation audit (notes/audit3_tests.md, finding 1) found three such
changes that no test pinned:

- the VRAE decoder's initial state s_0 = ReLU(z·W_s + b_s) instead of tanh;
- the HierarchicalVRAE conductor fed zeros instead of z at every step;
- the segment embedding c_u left out of the lower decoder's input (caught only by a statistical
  training test).

Here ``model.loss(x, mask, eps=eps)`` is compared with the objective written out in plain NumPy
float64 from the model's parameter arrays and the docstrings alone: the RNN and GRU cells of
microvae/layers/recurrent.py (gate order [reset | update | candidate], b_hn inside the reset gate's
product, h' = (1 − u)·n + u·h), the decoders of microvae/models/vrae.py (teacher forcing with
x_{t−1}, zeros at the first step), the per-step Bernoulli/Gaussian likelihoods of
microvae/likelihoods.py and microvae/losses, and KL(N(μ, e^{logvar}) ‖ N(0, I)). Sums run over
steps, features and latent dimensions; the mean runs over the batch; padded steps count for
nothing; the KL is weighted by β (0.7 here, no warm-up). No library layer, kernel or loss is called.
"""

import numpy as np
import pytest
from _model_zoo import randomize

from microvae import VRAE, HierarchicalVRAE

F, H, LATENT, T = 2, 3, 2, 4  # features, hidden size, latent dimensions, steps
SEGMENT, CONDUCTOR = 2, 4  # HierarchicalVRAE: segment length S, conductor size
BETA = 0.7
LOGVAR_RANGE = (-30.0, 20.0)  # likelihoods.LOGVAR_RANGE: every learned log-variance is clipped to it


# --- the cells (layers/recurrent.py) ---------------------------------------------------------------


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def rnn_cell(p, x, h):
    """h' = tanh(x·W_x + h·W_h + b)."""
    return np.tanh(x @ p["W_x"] + h @ p["W_h"] + p["b"])


def gru_cell(p, x, h):
    """[gx_r | gx_u | gx_n] = x·W_x + b,  [gh_r | gh_u | gh_n] = h·W_h,
    r = σ(gx_r + gh_r),  u = σ(gx_u + gh_u),  n = tanh(gx_n + r ⊙ (gh_n + b_hn)),  h' = (1 − u) ⊙ n + u ⊙ h."""
    gx, gh = x @ p["W_x"] + p["b"], h @ p["W_h"]
    k = h.shape[1]
    r = sigmoid(gx[:, :k] + gh[:, :k])
    u = sigmoid(gx[:, k:2 * k] + gh[:, k:2 * k])
    n = np.tanh(gx[:, 2 * k:] + r * (gh[:, 2 * k:] + p["b_hn"]))
    return (1 - u) * n + u * h


CELLS = {"rnn": rnn_cell, "gru": gru_cell}


def run(cell, p, xs, h0):
    """Every state h_1..h_T of a cell over inputs xs (n, T, I) from h0: (n, T, hidden)."""
    h, states = h0, []
    for t in range(xs.shape[1]):
        h = cell(p, xs[:, t], h)
        states.append(h)
    return np.stack(states, axis=1)


# --- the model's parts --------------------------------------------------------------------------------


def part(params, name):
    """The parameters of one part, e.g. part(params, "decoder") = {"W_x": …, "W_h": …, "b": …}."""
    return {key.split(".", 1)[1]: value for key, value in params.items() if key.startswith(name + ".")}


def dense(p, x):
    return x @ p["W"] + p["b"]


def teacher_forced(x):
    """The decoder's input at step t is x_{t−1}; zeros at the first step."""
    return np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)


def posterior(params, cell, x, mask):
    """h_t = Enc(x_t, h_{t−1}), h_0 = 0;  e = h at the last real step;  [μ ‖ logvar] = e·W_μ + b_μ."""
    states = run(cell, part(params, "encoder"), x, np.zeros((x.shape[0], H)))
    last = mask.sum(axis=1).astype(int) - 1
    e = states[np.arange(x.shape[0]), last]
    h = dense(part(params, "to_latent"), e)
    return h[:, :LATENT], np.clip(h[:, LATENT:], *LOGVAR_RANGE)


def vrae_decoder(params, cell, z, x):
    """s_0 = tanh(z·W_s + b_s),  s_t = Dec(x_{t−1}, s_{t−1}),  o_t = s_t·W_o + b_o."""
    s0 = np.tanh(dense(part(params, "to_state"), z))
    states = run(cell, part(params, "decoder"), teacher_forced(x), s0)
    return dense(part(params, "readout"), states)


def hierarchical_decoder(params, cell, z, x):
    """Conductor: c_0 = tanh(z·W_c + b_c), c_u = Cond(z, c_{u−1}) (z the input at every step).
    Segment u: s_{u,0} = tanh(c_u·W_e + b_e),  s_{u,k} = Dec([x_{t−1} ‖ c_u], s_{u,k−1}),  o_t = s_{u,k}·W_o + b_o,
    with x_{t−1} the global previous step (the first step of a segment sees the last of the one before)."""
    U = x.shape[1] // SEGMENT
    c0 = np.tanh(dense(part(params, "to_conductor"), z))
    c = run(cell, part(params, "conductor"), np.repeat(z[:, None, :], U, axis=1), c0)
    x_prev = teacher_forced(x)
    segments = []
    for u in range(U):
        cu = c[:, u]
        s0 = np.tanh(dense(part(params, "to_segment"), cu))
        inputs = np.concatenate([x_prev[:, u * SEGMENT:(u + 1) * SEGMENT], np.repeat(cu[:, None, :], SEGMENT, axis=1)], axis=2)
        segments.append(run(cell, part(params, "decoder"), inputs, s0))
    return dense(part(params, "readout"), np.concatenate(segments, axis=1))


# --- the objective (likelihoods.py, losses/) -------------------------------------------------------


def step_nll(likelihood, o, x):
    """−log p(x_t | o_t) per step and feature: (n, T, F)."""
    if likelihood == "bernoulli":  # o are logits: softplus(l) − x·l
        return np.logaddexp(0.0, o) - x * o
    if likelihood == "gaussian":  # o are means, unit variance
        return 0.5 * ((x - o) ** 2 + np.log(2 * np.pi))
    mu, logvar = o[..., :F], np.clip(o[..., F:], *LOGVAR_RANGE)  # "gaussian-learned": o = μ ‖ logvar
    return 0.5 * ((x - mu) ** 2 * np.exp(-logvar) + logvar + np.log(2 * np.pi))


def objective(params, kind, cell, likelihood, x, mask, eps):
    """(loss, recon, kl): L = Σ_t mask_t·(−log p(x_t | z, x_{<t})) + β·KL(q(z|x) ‖ N(0, I)),
    z = μ + e^{logvar/2}·ε, each term summed per sequence and averaged over the batch."""
    cell = CELLS[cell]
    mu, logvar = posterior(params, cell, x, mask)
    z = mu + np.exp(0.5 * logvar) * eps
    decoder = vrae_decoder if kind == "vrae" else hierarchical_decoder
    o = decoder(params, cell, z, x)
    recon = (mask * step_nll(likelihood, o, x).sum(axis=2)).sum(axis=1).mean()
    kl = (0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(axis=1)).mean()
    return recon + BETA * kl, recon, kl


# --- the test -------------------------------------------------------------------------------------------


def build(kind, cell, likelihood):
    common = dict(hidden_size=H, latent_dim=LATENT, cell=cell, likelihood=likelihood, beta=BETA, beta_warmup=0,
                  dtype="float64", seed=3)
    if kind == "vrae":
        model = VRAE(F, **common)
    else:
        model = HierarchicalVRAE(F, segment_length=SEGMENT, conductor_size=CONDUCTOR, **common)
    randomize(model, 11)  # every parameter, biases and b_hn included, N(0, 0.5²)
    return model


def batch():
    """Three sequences of T steps in [0, 1], of lengths 4, 3 and 1; the padding holds 3.0 (any finite value)."""
    rng = np.random.default_rng(5)
    x = rng.random((3, T, F))
    mask = (np.arange(T)[None, :] < np.array([[4], [3], [1]])).astype(np.float64)
    x[mask == 0] = 3.0
    eps = rng.standard_normal((3, LATENT))
    return x, mask, eps


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize("kind", ["vrae", "hierarchical"])
def test_loss_is_the_documented_objective(kind, cell, likelihood):
    model = build(kind, cell, likelihood)
    params = {name: np.array(value, dtype=np.float64) for name, value, _ in model.flat.named()}
    x, mask, eps = batch()
    terms = model.loss(x, mask, eps=eps)
    loss, recon, kl = objective(params, kind, cell, likelihood, x, mask, eps)
    np.testing.assert_allclose(terms.recon, recon, rtol=1e-12, atol=0)
    np.testing.assert_allclose(terms.kl, kl, rtol=1e-12, atol=0)
    np.testing.assert_allclose(terms.loss, loss, rtol=1e-12, atol=0)
