"""The reparameterization z = μ + exp(½·logvar)·ε and its backward pass."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microvae as mv
from microvae import testing


@given(shape=testing.matrix_shapes(8, 8), seed=testing.seeds(), data=st.data())
def test_reparameterization_gradient(shape, seed, data):
    be = mv.get_backend("numpy", dtype="float64")
    sampler = mv.Reparameterization(be)
    mu = data.draw(testing.float_arrays(shape))
    logvar = data.draw(testing.float_arrays(shape, -4, 4))
    eps = testing.normal_array(shape, seed)
    upstream = testing.normal_array(shape, seed + 1)
    sampler.forward(mu, logvar, eps)
    dmu, dlogvar = sampler.backward(upstream)

    def f():
        return float((sampler.forward(mu, logvar, eps) * upstream).sum())

    result = mv.gradcheck(f, {"mu": mu, "logvar": logvar}, {"mu": dmu.copy(), "logvar": dlogvar.copy()})
    assert result.passed(1e-6), f"\n{result}"


def test_samples_have_standard_deviation_exp_half_logvar():
    be = mv.get_backend("numpy", dtype="float64", seed=3)
    sampler = mv.Reparameterization(be)
    mu = np.full((200_000, 2), 1.5)
    logvar = np.tile([[np.log(4.0), np.log(0.25)]], (200_000, 1))
    z = sampler.forward(mu, logvar)
    np.testing.assert_allclose(z.mean(axis=0), [1.5, 1.5], atol=0.02)
    np.testing.assert_allclose(z.std(axis=0), [2.0, 0.5], rtol=0.01)  # σ = exp(½·logvar), not exp(logvar)


def test_given_eps_is_used_exactly():
    sampler = mv.Reparameterization(mv.get_backend(dtype="float64"))
    z = sampler.forward(np.array([[1.0]]), np.array([[np.log(9.0)]]), np.array([[2.0]]))
    assert z[0, 0] == pytest.approx(1.0 + 3.0 * 2.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backward_uses_the_given_eps_even_if_the_caller_changes_it_after_forward(dtype):
    """ε was kept by reference (no copy when already in the backend's dtype): eps[:] = 0
    between forward and backward made dlogvar 0."""
    sampler = mv.Reparameterization(mv.get_backend(dtype=dtype))
    rng = np.random.default_rng(0)
    mu, logvar, dz = (rng.standard_normal((3, 2)).astype(dtype) for _ in range(3))
    eps = rng.standard_normal((3, 2)).astype(dtype)
    sampler.forward(mu, logvar, eps.copy())
    _, expected = sampler.backward(dz)
    mine = eps.copy()
    sampler.forward(mu, logvar, mine)
    mine[:] = 0
    _, dlogvar = sampler.backward(dz)
    np.testing.assert_array_equal(dlogvar, expected)
    assert np.abs(expected).min() > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_z_comes_in_the_backends_dtype_whatever_the_inputs(dtype):
    sampler = mv.Reparameterization(mv.get_backend(dtype=dtype))
    mu, logvar, eps = np.zeros((2, 3), "f8"), np.zeros((2, 3), "f4"), [[1.0, 2.0, 3.0]] * 2
    z = sampler.forward(mu, logvar, eps)
    assert z.dtype == dtype and sampler.forward(mu.astype("f4"), logvar, np.asarray(eps)).dtype == dtype
    np.testing.assert_array_equal(z, eps)
    dmu, dlogvar = sampler.backward(np.ones((2, 3), dtype))
    assert dmu.dtype == dlogvar.dtype == dtype


@pytest.mark.parametrize("dtype,other", [("float64", "float32"), ("float32", "float64")])
def test_a_logvar_of_the_other_dtype_is_converted_before_sigma_is_taken(dtype, other):
    """σ = exp(½·logvar) is computed in the backend's dtype, whatever logvar's: a float32 logvar
    left as it is gives a float64 sampler σ to float32 precision, and a float64 one makes a float32
    sampler's z float64. (The test above has logvar = 0, where exp is exact in both.)"""
    sampler = mv.Reparameterization(mv.get_backend(dtype=dtype))
    mu, logvar, eps = (testing.normal_array((3, 4), seed, dtype=dtype) for seed in (1, 2, 3))
    logvar = logvar.astype(other)
    z = sampler.forward(mu, logvar, eps)
    assert z.dtype == dtype
    np.testing.assert_array_equal(z, mu + np.exp(0.5 * logvar.astype(dtype)) * eps)
    dmu, dlogvar = sampler.backward(np.ones((3, 4), dtype))
    assert dlogvar.dtype == dtype


def test_shape_errors():
    sampler = mv.Reparameterization(mv.get_backend(dtype="float64"))
    with pytest.raises(ValueError, match="same shape"):
        sampler.forward(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="eps must have the shape"):
        sampler.forward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 2)))


def test_backward_needs_a_forward_pass_and_a_dz_shaped_like_z():
    sampler = mv.Reparameterization(mv.get_backend(dtype="float64"))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        sampler.backward(np.ones((2, 3)))
    sampler.forward(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)))
    for shape in [(1, 3), (2, 1), (3,), (2, 3, 1), (3, 2)]:  # the first three would broadcast
        with pytest.raises(ValueError, match=re.escape(f"expects dz of shape (2, 3) (the shape of z from the last forward pass), got {shape}")):
            sampler.backward(np.ones(shape))
    with pytest.raises(ValueError, match=re.escape("got (2, 2)")):  # a list is read as forward reads one
        sampler.backward([[1.0, 1.0]] * 2)  # (it was refused whatever its shape, as "got ()")
    for dz in (None, 2.0):  # (None was refused as "got ()")
        with pytest.raises(TypeError, match=f"expects an array for dz, got {type(dz).__name__}"):
            sampler.backward(dz)
    dz = np.full((2, 3), 2.0)
    assert sampler.backward(dz)[0] is dz  # as its docstring says: dμ = dz, not copied
    for dmu, dlogvar in (sampler.backward([[2.0, 2.0, 2.0]] * 2), sampler.backward(np.full((2, 3), 2.0))):
        np.testing.assert_array_equal(dmu, 2.0)
        np.testing.assert_array_equal(dlogvar, 1.0)  # dz·ε·σ/2 with ε = 1, σ = 1
    dmu, dlogvar = sampler.backward(np.full((2, 3), 2.0))
    np.testing.assert_array_equal(dmu, 2.0)
    np.testing.assert_array_equal(dlogvar, 1.0)  # dz·ε·σ/2 with ε = 1, σ = 1


@pytest.mark.parametrize("name", ["mu", "logvar", "eps"])
@pytest.mark.parametrize("bad_dtype", [complex, object])
def test_complex_and_object_arguments_are_refused_not_cast(name, bad_dtype):
    """A cast to the backend's dtype would drop the imaginary part with only a warning."""
    sampler = mv.Reparameterization(mv.get_backend(dtype="float64"))
    args = {"mu": np.zeros((2, 3)), "logvar": np.zeros((2, 3)), "eps": np.ones((2, 3))}
    args[name] = args[name].astype(bad_dtype)
    with pytest.raises(TypeError, match=rf"Reparameterization\.forward expects real numbers .* for {name}, got dtype {np.dtype(bad_dtype)}"):
        sampler.forward(**args)
    args[name] = args[name].real.astype(np.float64) if bad_dtype is complex else np.asarray(args[name], np.float64)
    sampler.forward(**args)
    with pytest.raises(TypeError, match=r"Reparameterization\.backward expects real numbers .* for dz, got dtype complex128"):
        sampler.backward(np.ones((2, 3), complex))


def test_dz_of_the_other_float_dtype_gives_gradients_in_the_backends():
    sampler = mv.Reparameterization(mv.get_backend(dtype="float32"))
    sampler.forward(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)))
    dmu, dlogvar = sampler.backward(np.full((2, 3), 0.1))  # float64 dz
    assert dmu.dtype == dlogvar.dtype == np.float32
    np.testing.assert_array_equal(dlogvar, np.float32(0.1) * np.float32(0.5))


@pytest.mark.parametrize("backend", ["numpy", None])
def test_reparameterization_takes_a_backend(backend):
    from microvae.reparam import Reparameterization

    with pytest.raises(TypeError, match="Reparameterization takes a Backend"):  # failed in forward, on .xp
        Reparameterization(backend)
