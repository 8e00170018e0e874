"""Arrays in any memory layout NumPy can hand over give the same results as plain ones.

A user's array may be read-only (np.load with mmap_mode="r", a broadcast), big-endian (read
from a file written elsewhere), Fortran-ordered or a strided view. The Numba kernels take
none of these as they are (big-endian logits reached the Bernoulli kernel and failed with
Numba's TypingError), so every entry point must bring its inputs into a layout they take.
"""

from __future__ import annotations

import numpy as np
import pytest

import microvae as mv
from microvae.layers import (GRU, RNN, Conv2D, Conv2DTranspose, Dense, Flatten, LeakyReLU, MaxPool2D, ReLU,
                             Sequential, Sigmoid, Tanh)
from microvae.losses import (bce_probabilities, bernoulli_nll, discriminator_loss, gaussian_nll, generator_loss, kl_gaussians,
                             kl_normal, mse)


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {
    "read-only": _read_only,
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "fortran": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "broadcast": lambda a: np.broadcast_to(a[:1], a.shape),
}


def _as_layout(layout, a):
    b = LAYOUTS[layout](a)
    assert b.dtype.isnative != (layout == "big-endian")
    assert layout == "read-only" or layout == "big-endian" or not b.flags.c_contiguous or b.strides[0] == 0
    return b


def _plain(layout, a):
    """The same values as ``_as_layout`` gives, in a plain C-ordered native array."""
    return np.ascontiguousarray(np.broadcast_to(a[:1], a.shape) if layout == "broadcast" else a)


LAYERS = {
    "Dense": (lambda: Dense(12, 7), (6, 12)),
    "Dense+relu": (lambda: Dense(12, 7, activation="relu"), (6, 12)),
    "ReLU": (ReLU, (6, 12)),
    "LeakyReLU": (LeakyReLU, (6, 12)),
    "Sigmoid": (Sigmoid, (6, 12)),
    "Tanh": (Tanh, (6, 12)),
    "Sequential": (lambda: Sequential([Dense(12, 5, activation="relu"), Dense(5, 3)]), (6, 12)),
    "Conv2D": (lambda: Conv2D(2, 3, 3), (3, 2, 6, 6)),
    "Conv2DTranspose": (lambda: Conv2DTranspose(2, 3, 3, stride=2), (3, 2, 6, 6)),
    "MaxPool2D": (lambda: MaxPool2D(2), (3, 2, 6, 6)),
    "Flatten": (Flatten, (3, 2, 6, 6)),
    "GRU": (lambda: GRU(4, 3), (3, 5, 4)),
    "RNN": (lambda: RNN(4, 3), (3, 5, 4)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_layer_gives_the_same_forward_and_backward_for_any_layout(layer, layout, dtype):
    make, shape = LAYERS[layer]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape)).astype(dtype)
    x_plain = _plain(layout, x)
    reference = make().build(dtype=dtype, seed=1)
    y_ref = reference.forward(x_plain)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx_ref = reference.backward(dy)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for input_layout, grad_layout in ((layout, None), (None, layout)):
        model = make().build(dtype=dtype, seed=1)
        y = model.forward(_as_layout(layout, x) if input_layout else x_plain)
        np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=rtol)
        dy_given = _as_layout(layout, dy) if grad_layout else dy
        dy_ref = _plain(layout, dy) if grad_layout else dy
        if grad_layout:  # the reference takes the same values in a plain array
            reference = make().build(dtype=dtype, seed=1)
            reference.forward(x_plain)
            dx_ref = reference.backward(dy_ref)
        dx = model.backward(dy_given)
        np.testing.assert_allclose(dx, dx_ref, rtol=rtol, atol=rtol)
        if model.flat.size:
            np.testing.assert_allclose(model.flat.grad, reference.flat.grad, rtol=rtol, atol=rtol)


LOSSES = {
    "bernoulli_nll": lambda a, b: bernoulli_nll(a, b),
    "bce_probabilities": lambda a, b: bce_probabilities(a, b),
    "gaussian_nll": lambda a, b: gaussian_nll(a, b),
    "mse": lambda a, b: mse(a, b),
    "kl_normal": lambda a, b: kl_normal(a, b),
    "kl_gaussians": lambda a, b: kl_gaussians(a, b, b, a),
    "discriminator_loss": lambda a, b: discriminator_loss(a, b),
    "generator_loss": lambda a, b: generator_loss(a),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_a_loss_gives_the_same_value_and_gradients_for_any_layout(loss, layout, dtype):
    rng = np.random.default_rng(2)
    a = rng.uniform(0.02, 0.98, (5, 9)).astype(dtype)  # logits, means, log-variances, probabilities
    b = rng.random((5, 9)).astype(dtype)  # data in [0, 1]
    fn = LOSSES[loss]
    rtol = 1e-6 if dtype == "float32" else 1e-13
    for first, second in ((True, False), (False, True), (True, True)):
        given = fn(_as_layout(layout, a) if first else a, _as_layout(layout, b) if second else b)
        expected = fn(_plain(layout, a) if first else a, _plain(layout, b) if second else b)
        assert len(given) == len(expected)
        for got, want in zip(given, expected):
            if want is None:
                assert got is None
            else:
                assert np.asarray(got).dtype.isnative
                np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_model_trains_and_scores_data_in_any_layout(layout):
    rng = np.random.default_rng(3)
    x = (rng.random((64, 16)) > 0.5).astype(np.float32)
    eps = rng.standard_normal((64, 3)).astype(np.float32)
    given, plain = _as_layout(layout, x), _plain(layout, x)
    results = []
    for data in (given, plain):
        model = mv.VAE(16, (8,), 3, seed=0)
        model.fit(data, epochs=1, batch_size=16, verbose=0)
        terms = model.loss(data, eps=_as_layout(layout, eps) if data is given else _plain(layout, eps))
        results.append((model.flat.data.copy(), terms.loss, model.encode(data)))
    (params, total, codes), (params_ref, total_ref, codes_ref) = results
    np.testing.assert_array_equal(params, params_ref)
    assert total == total_ref
    np.testing.assert_array_equal(codes[0], codes_ref[0])
