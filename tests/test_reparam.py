"""The reparameterization z = μ + exp(½·logvar)·ε and its backward pass."""

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
def test_z_comes_in_the_backends_dtype_whatever_the_inputs(dtype):
    sampler = mv.Reparameterization(mv.get_backend(dtype=dtype))
    mu, logvar, eps = np.zeros((2, 3), "f8"), np.zeros((2, 3), "f4"), [[1.0, 2.0, 3.0]] * 2
    z = sampler.forward(mu, logvar, eps)
    assert z.dtype == dtype and sampler.forward(mu.astype("f4"), logvar, np.asarray(eps)).dtype == dtype
    np.testing.assert_array_equal(z, eps)
    dmu, dlogvar = sampler.backward(np.ones((2, 3), dtype))
    assert dmu.dtype == dlogvar.dtype == dtype


def test_shape_errors():
    sampler = mv.Reparameterization(mv.get_backend(dtype="float64"))
    with pytest.raises(ValueError, match="same shape"):
        sampler.forward(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="eps must have the shape"):
        sampler.forward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 2)))
