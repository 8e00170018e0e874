"""What the library is given, and what it has handed back, stays as it was.

The speed work leans on in-place updates and buffers kept between steps; either one can write
through a caller's array (a ReLU backward that masks dY in place, a loss that clips the logits
it was given) or into a result handed out earlier (a forward pass returning a workspace the
next call overwrites). The arrays here already have the model's dtype, so no cast makes a
private copy that would hide such a write.
"""

import numpy as np
import pytest

from _cuda_emulation import leaves
from _model_zoo import API, LAYERS, LOSSES, randomize

DTYPES = ["float32", "float64"]


def _snapshot(tree):
    return [np.array(leaf, copy=True) for leaf in leaves(tree) if isinstance(leaf, np.ndarray)]


def _assert_unchanged(tree, snapshot, what):
    arrays = [leaf for leaf in leaves(tree) if isinstance(leaf, np.ndarray)]
    assert len(arrays) == len(snapshot)
    for i, (now, before) in enumerate(zip(arrays, snapshot)):
        np.testing.assert_array_equal(now, before, err_msg=f"{what}: array {i} was written to")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYERS)
def test_a_layer_leaves_its_inputs_and_its_earlier_results_alone(name, dtype):
    make, shape = LAYERS[name]
    layer = make().build(dtype=dtype, seed=1)
    rng = np.random.default_rng(2)

    def one_pass():
        x = rng.standard_normal(shape).astype(dtype)
        x_given = x.copy()
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        given = _snapshot((x, dy, y))
        dx = layer.backward(dy, input_grad=True)
        np.testing.assert_array_equal(x, x_given, err_msg=f"{name}: forward wrote to x")
        _assert_unchanged((x, dy, y), given, f"{name}: x, dy and y through backward")
        assert x.dtype == dy.dtype == y.dtype == dx.dtype == dtype
        return x, dy, y, dx

    first = one_pass()
    kept = _snapshot(first)
    one_pass()
    _assert_unchanged(first, kept, f"{name}: the first pass's arrays through a second pass")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSSES)
def test_a_loss_leaves_its_inputs_and_its_earlier_results_alone(name, dtype):
    loss, arguments = LOSSES[name]
    rng = np.random.default_rng(3)
    args = arguments(rng, dtype)
    given = _snapshot(args)
    results = loss(*args)
    returned = _snapshot(results)
    _assert_unchanged(args, given, f"{name}'s arguments")
    loss(*arguments(rng, dtype))
    _assert_unchanged(results, returned, f"{name}'s results after a second call")


def _in_dtype(batch, dtype):
    return tuple(b.astype(dtype) if np.issubdtype(b.dtype, np.floating) else b for b in batch)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", API)
def test_a_models_calls_leave_the_callers_arrays_and_earlier_results_alone(name, dtype):
    """Everything users call (encode, decode, sampling, the ELBO, the metrics, the applications),
    the objective with fixed noise, and fit: the batch, the noise and every result handed out
    before stay as they were through later calls and training."""
    build, make_batch, calls = API[name]
    model = build(dtype=dtype, seed=3)
    randomize(model, 2)
    rng = np.random.default_rng(4)
    batch = _in_dtype(make_batch(rng), dtype)
    given = _snapshot(batch)
    results = calls(model, *batch)
    if hasattr(model, "loss_and_grads"):
        noise = model.fixed_noise(*batch, seed=5).astype(dtype)  # (drawn in float64)
        noise_given = noise.copy()
        results["loss_and_grads"] = (noise, model.loss_and_grads(*batch, eps=noise).loss)
        np.testing.assert_array_equal(noise, noise_given, err_msg=f"{name}: loss_and_grads wrote to the noise")
    else:
        results["phase_loss"] = model.phase_loss("recon", *batch)
    returned = _snapshot(results)
    _assert_unchanged(batch, given, f"{name}: the batch after the calls")

    calls(model, *_in_dtype(make_batch(rng), dtype))
    model.fit(*batch, epochs=1, batch_size=2, seed=6, verbose=False)
    _assert_unchanged(batch, given, f"{name}: the batch after fit")
    _assert_unchanged(results, returned, f"{name}: results handed out before more calls and fit")


def test_the_checks_can_see_a_write():
    """_assert_unchanged fails on a write through an argument or into a result."""
    x = np.ones(3)
    snapshot = _snapshot({"a": (x, 2.0)})
    x[1] = 0.0
    with pytest.raises(AssertionError, match="array 0 was written to"):
        _assert_unchanged({"a": (x, 2.0)}, snapshot, "x")
