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
from _model_zoo import LAYERS, LOSSES

DTYPES = ["float32", "float64"]


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
    # (an (n, 1) array is C-ordered in every one of them)
    assert layout in ("read-only", "big-endian") or min(a.shape) == 1 or not b.flags.c_contiguous
    return b


def _plain(b):
    """The values of ``b`` in a plain, C-ordered, native array."""
    return np.ascontiguousarray(b, dtype=b.dtype.newbyteorder("="))


def _tolerance(dtype):
    return 1e-5 if dtype == "float32" else 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("name", LAYERS)
def test_a_layer_gives_the_same_forward_and_backward_for_any_layout(name, layout, dtype):
    """The input in the layout, then the upstream gradient in it: the same output, input
    gradient and parameter gradients as the same values in plain arrays give."""
    make, shape = LAYERS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(make().build(dtype=dtype, seed=1).forward(x).shape).astype(dtype)
    tol = _tolerance(dtype)
    for x_given, dy_given in ((_as_layout(layout, x), dy), (x, _as_layout(layout, dy))):
        layer, reference = make().build(dtype=dtype, seed=1), make().build(dtype=dtype, seed=1)
        np.testing.assert_allclose(layer.forward(x_given), reference.forward(_plain(x_given)), rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.backward(dy_given, input_grad=True),
                                   reference.backward(_plain(dy_given), input_grad=True), rtol=tol, atol=tol)
        if layer.flat.size:
            np.testing.assert_allclose(layer.flat.grad, reference.flat.grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("name", LOSSES)
def test_a_loss_gives_the_same_value_and_gradients_for_any_layout(name, layout, dtype):
    """Each argument in the layout in turn, then all of them: the same loss and gradients as
    plain arrays give, every gradient in native byte order."""
    loss, arguments = LOSSES[name]
    args = arguments(np.random.default_rng(2), dtype)
    tol = _tolerance(dtype)
    for changed in [(i,) for i in range(len(args))] + [tuple(range(len(args)))]:
        given = [_as_layout(layout, a) if i in changed else a for i, a in enumerate(args)]
        got, want = loss(*given), loss(*map(_plain, given))
        assert len(got) == len(want)
        for result, expected in zip(got, want):
            if expected is None:
                assert result is None
            else:
                assert result.dtype.isnative
                np.testing.assert_allclose(result, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_model_trains_and_scores_data_in_any_layout(layout):
    rng = np.random.default_rng(3)
    x = (rng.random((64, 16)) > 0.5).astype(np.float32)
    eps = rng.standard_normal((64, 3)).astype(np.float32)
    given = _as_layout(layout, x)
    plain = _plain(given)
    results = []
    for data in (given, plain):
        model = mv.VAE(16, (8,), 3, seed=0)
        model.fit(data, epochs=1, batch_size=16, verbose=0)
        eps_given = _as_layout(layout, eps)
        terms = model.loss(data, eps=eps_given if data is given else _plain(eps_given))
        results.append((model.flat.data.copy(), terms.loss, model.encode(data)))
    (params, total, codes), (params_ref, total_ref, codes_ref) = results
    np.testing.assert_array_equal(params, params_ref)
    assert total == total_ref
    np.testing.assert_array_equal(codes[0], codes_ref[0])
