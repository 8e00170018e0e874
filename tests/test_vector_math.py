"""The vectorisable float32 exp(−a) and log1p(e) (microvae.kernels.cpu) against float64 math."""

import numba as nb
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from microvae.kernels.cpu import exp_neg_f32, log1p_unit_f32


@nb.njit(error_model="numpy", fastmath={"contract"})
def _exp_neg_all(a, out):
    for i in range(a.size):
        out[i] = exp_neg_f32(a[i])


@nb.njit(error_model="numpy", fastmath={"contract"})
def _log1p_all(e, out):
    for i in range(e.size):
        out[i] = log1p_unit_f32(e[i])


def _ulps(approx, exact):
    """|approx − exact| in units of the float32 spacing at exact."""
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(approx.astype(np.float64) - exact) / spacing


def _exp_neg(a):
    a = np.asarray(a, dtype=np.float32)
    out = np.empty_like(a)
    _exp_neg_all(a.ravel(), out.ravel())
    return out


def _log1p(e):
    e = np.asarray(e, dtype=np.float32)
    out = np.empty_like(e)
    _log1p_all(e.ravel(), out.ravel())
    return out


def test_exp_neg_within_one_and_a_half_ulp_over_its_whole_range():
    a = np.linspace(0, 87, 1_000_001, dtype=np.float32)
    err = _ulps(_exp_neg(a), np.exp(-a.astype(np.float64)))
    assert err.max() <= 1.5, err.max()
    assert _exp_neg([0.0])[0] == 1.0


def test_log1p_within_two_ulp_on_the_unit_interval():
    e = np.concatenate([np.linspace(0, 1, 1_000_001, dtype=np.float32),
                        np.geomspace(1e-38, 1e-3, 100_001).astype(np.float32)])  # tiny e: log1p(e) ≈ e
    err = _ulps(_log1p(e), np.log1p(e.astype(np.float64)))
    assert err.max() <= 2.0, err.max()
    assert _log1p([0.0])[0] == 0.0


@given(a=st.floats(0, 200, width=32))
def test_exp_neg_at_any_point(a):
    got = float(_exp_neg([a])[0])
    exact = np.exp(-np.float64(a))
    if a <= 87:
        assert abs(got - exact) <= 1.5 * float(np.spacing(np.float32(exact)))
    else:  # beyond 87: 0, within 2e-38 of the exact value
        assert got == 0.0 and exact < 2e-38


def test_exp_neg_is_zero_for_every_float32_beyond_87():
    """"0 for a > 87", for every float32 in (87, 90] and on a grid up to 1e30: there 2^{−n} has
    no exponent field left, so a clamp moved to 88 returned e^{−a} for a ≤ 87.33 (not 0), and
    one at 89 gave −Inf. The point-sampled test above rarely draws from (87, 88)."""
    first, last = np.float32(87).view(np.int32) + 1, np.float32(90).view(np.int32)
    a = np.concatenate([np.arange(first, last + 1, dtype=np.int32).view(np.float32),
                        np.geomspace(90, 1e30, 1001).astype(np.float32)])
    out = _exp_neg(a)
    assert np.all(out == 0.0), (a[out != 0.0][:5], out[out != 0.0][:5])
    assert _exp_neg([87.0])[0] > 0.0  # and 87 itself is still computed


def test_nan_stays_nan_and_infinity_gives_zero():
    assert np.isnan(_exp_neg([np.nan])[0])
    assert _exp_neg([np.inf])[0] == 0.0
    assert np.isnan(_log1p([np.nan])[0])
