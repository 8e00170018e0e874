"""Hypothesis strategies for property-testing layers, losses and models.

Needs hypothesis (``pip install hypothesis``, or ``pip install -e '.[dev]'`` in a checkout). Example::

    from hypothesis import given
    from microvae import check_layer, testing

    @given(testing.dense_layers(), testing.seeds())
    def test_my_dense(layer, seed):
        x = testing.normal_array((4, layer.in_features), seed)
        assert check_layer(layer.build(dtype="float64", seed=seed), x).passed(1e-6)
"""

from __future__ import annotations

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("microvae.testing needs hypothesis: pip install hypothesis (in a microvae checkout, "
                      "pip install -e '.[dev]' installs it with the other test tools)") from exc

from .layers import Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Tanh

__all__ = [
    "batch_sizes", "widths", "seeds", "betas", "matrix_shapes", "float_arrays", "unit_arrays",
    "normal_array", "dense_layers", "activation_layers", "mlp_layers", "vae_configs",
    "CLAMPED_SIDES", "logvar_side_lists", "logvar_sides", "push_logvar_outside", "clear_of_the_clamp",
]


def batch_sizes(min_size: int = 1, max_size: int = 8):
    """Batch sizes from ``min_size`` to ``max_size``."""
    return st.integers(min_size, max_size)


def widths(min_width: int = 1, max_width: int = 16):
    """Layer widths (feature counts) from ``min_width`` to ``max_width``."""
    return st.integers(min_width, max_width)


def seeds():
    """Seeds over NumPy's whole 32-bit range."""
    return st.integers(0, 2**32 - 1)


def betas(max_beta: float = 4.0):
    """β weights of the KL term, finite, from 0 to ``max_beta``."""
    return st.floats(0.0, max_beta, allow_nan=False, allow_infinity=False)


def matrix_shapes(max_batch: int = 8, max_width: int = 16):
    """(batch, width) shapes."""
    return st.tuples(batch_sizes(1, max_batch), widths(1, max_width))


def float_arrays(shape, min_value: float = -3.0, max_value: float = 3.0, away_from: float | None = None, dtype=np.float64):
    """Arrays of finite floats; ``away_from=a`` keeps every element at least ``a`` from 0
    (use for ReLU-like kinks, where a finite difference straddling 0 is meaningless). Every
    element is drawn on its own (``fill=st.nothing()``): hypothesis's default fill repeats one
    value over most of an array, and a gradient checked on near-constant inputs is checked less."""
    elements = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False, width=64)
    if away_from is not None:
        elements = elements.filter(lambda v: abs(v) >= away_from)
    return hnp.arrays(dtype, shape, elements=elements, fill=st.nothing())


def unit_arrays(shape, dtype=np.float64):
    """Arrays with elements in [0, 1] (Bernoulli targets), including exact 0s and 1s, each drawn
    on its own as in ``float_arrays``."""
    return hnp.arrays(dtype, shape, elements=st.floats(0.0, 1.0, allow_nan=False, width=64), fill=st.nothing())


def normal_array(shape, seed: int, scale: float = 1.0, dtype=np.float64):
    """A seeded standard-normal array: continuous values, so ties and exact kinks have probability 0."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def dense_layers(max_width: int = 16):
    """Unbuilt Dense layers: any widths up to ``max_width``, either init, with or without a bias,
    with or without a fused ReLU."""
    return st.builds(Dense, widths(1, max_width), widths(1, max_width), init=st.sampled_from(["he", "glorot"]),
                     bias=st.booleans(), activation=st.sampled_from([None, "relu"]))


def activation_layers():
    """A fresh activation layer of each kind (LeakyReLU with a drawn slope)."""
    return st.one_of(
        st.just(ReLU()).map(lambda _: ReLU()),
        st.floats(0.0, 0.5).map(LeakyReLU),
        st.just(None).map(lambda _: Sigmoid()),
        st.just(None).map(lambda _: Tanh()),
    )


@st.composite
def mlp_layers(draw, max_depth: int = 3, max_width: int = 16):
    """A Sequential of Dense layers with random activations between them; ``.in_features`` set."""
    sizes = draw(st.lists(widths(1, max_width), min_size=2, max_size=max_depth + 1))
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers.append(Dense(n_in, n_out))
        layers.append(draw(activation_layers()))
    model = Sequential(*layers)
    model.in_features = sizes[0]
    return model


@st.composite
def vae_configs(draw, max_batch: int = 8, max_width: int = 16):
    """Keyword arguments for a small float64 ``microvae.VAE`` plus a batch size: every
    likelihood (a fixed variance other than 1 too), with or without a capacity target, and
    warm-ups of β and C (0: none) that a check part-way through them exercises, and ReLUs
    fused into the Dense layers or as layers of their own."""
    depth = draw(st.integers(1, 2))
    fixed_variance = st.builds(lambda logvar: {"name": "gaussian", "logvar": logvar}, st.floats(-3.0, 3.0))
    warmup = st.one_of(st.just(0), st.integers(1, 20))
    config = dict(
        input_dim=draw(widths(1, max_width)),
        hidden=tuple(draw(widths(1, max_width)) for _ in range(depth)),
        latent_dim=draw(widths(1, 4)),
        beta=draw(betas()),
        likelihood=draw(st.one_of(st.sampled_from(["bernoulli", "gaussian", "gaussian-learned"]), fixed_variance)),
        capacity=draw(st.one_of(st.none(), st.floats(0.0, 5.0))),
        beta_warmup=draw(warmup),
        capacity_warmup=draw(warmup),
        fuse_relu=draw(st.booleans()),
        dtype="float64",
        seed=draw(st.integers(0, 1000)),
    )
    if config["capacity"] is None:  # a warm-up of no target is refused (drawn all the same: the same examples)
        config["capacity_warmup"] = 0
    return config, draw(batch_sizes(1, max_batch))


# logvar beyond the clamp ------------------------------------------------------------------------
# Models clamp every learned logvar to LOGVAR_RANGE with zero gradient outside it. A check that
# draws logvar inside the range never sees that mask, so these helpers place chosen logvar
# columns beyond it: "low" (below −30), "high" (above 20) or "inside".

# Each side alone, then both: a column clamped high (in q; low in a learned prior) puts ~β·e^20
# (e^30) into the loss L, and check_model judges each tensor against at least 1e-3·|L|, which
# would hide a leak of O(1) through the other side's mask.
CLAMPED_SIDES = [("low",), ("high",), ("low", "high")]


def logvar_side_lists(size: int = 4):
    """A side for each of ``size`` logvar columns (sliced to the model's latent_dim)."""
    return st.lists(st.sampled_from(["low", "inside", "high"]), min_size=size, max_size=size)


def logvar_sides(clamped, drawn, rng):
    """A side per logvar column, len(drawn) of them in random order: each kind in ``clamped`` at
    least once; each other column its drawn side if that is in ``clamped``, else "inside"."""
    sides = list(clamped) + [s if s in clamped else "inside" for s in drawn[len(clamped):]]
    return [sides[i] for i in rng.permutation(len(sides))]


def push_logvar_outside(bias, sides, eps=None):
    """Set the logvar bias of each "low"/"high" column so that logvar lands ~5 beyond LOGVAR_RANGE;
    return ε scaled there by exp(−½·clamped logvar), so that σ·ε stays O(1): z stays moderate,
    and a missing mask would leak a dlogvar of O(1) through the sampler (not ~e^−15 or e^10)."""
    from .likelihoods import LOGVAR_RANGE

    eps = None if eps is None else eps.copy()
    for j, side in enumerate(sides):
        if side != "inside":
            bias[j] = {"low": LOGVAR_RANGE[0] - 5.0, "high": LOGVAR_RANGE[1] + 5.0}[side]
            if eps is not None:
                eps[:, j] *= np.exp(-0.5 * LOGVAR_RANGE[side == "high"])
    return eps


def clear_of_the_clamp(head, offset, sides) -> bool:
    """Whether the logvar outputs (columns ``offset:``) of Dense ``head``'s last forward pass lie
    >= 1 beyond the clamp where meant to and >= 1 inside it elsewhere, so that no
    finite-difference step crosses the boundary."""
    from .likelihoods import LOGVAR_RANGE

    raw = (head._x @ head.params["W"] + head.params["b"])[:, offset:]
    lo, hi = LOGVAR_RANGE
    sides = np.asarray(sides)
    inside = raw[:, sides == "inside"]
    return bool(np.all(raw[:, sides == "high"] > hi + 1) and np.all(raw[:, sides == "low"] < lo - 1)
                and np.all((inside > lo + 1) & (inside < hi - 1)))
