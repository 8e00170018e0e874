"""The Python side of the CuPy kernels, run here without a GPU: a stand-in ``cupy`` module
records each kernel call, so the wrappers' argument handling is checked on every machine
(the kernels themselves run in tests/test_gpu_kernels.py: on a GPU, and compiled for the CPU)."""

import importlib
import sys
import types

import numpy as np
import pytest

from _model_zoo import recurrent_kernel_calls


class _Kernel:
    calls: list = []

    def __init__(self, in_params, out_params, body, name, **options):
        self.name = name

    def __call__(self, *args):
        _Kernel.calls.append((self.name, args))


@pytest.fixture()
def rnn_gpu(monkeypatch):
    fake = types.ModuleType("cupy")
    fake.ElementwiseKernel = _Kernel
    fake.ascontiguousarray = np.ascontiguousarray
    fake.may_share_memory = np.may_share_memory  # (the wrappers' overlap check)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.delitem(sys.modules, "microvae.kernels.rnn_gpu", raising=False)
    _Kernel.calls = []
    yield importlib.import_module("microvae.kernels.rnn_gpu")
    sys.modules.pop("microvae.kernels.rnn_gpu", None)  # not left importable with the stand-in
    vars(sys.modules["microvae.kernels"]).pop("rnn_gpu", None)


def test_recurrent_kernels_take_strided_inputs_as_the_cpu_twins_do(rnn_gpu):
    """GRU.step(x_t, H[:, -1]) passes a strided view of the states; the CPU kernels copy such
    inputs, and the GPU wrappers refused them ("must be C-contiguous")."""
    B, T, H = 2, 3, 4
    states = np.zeros((B, T, H))
    h_prev = states[:, -1]  # a strided view
    assert not h_prev.flags.c_contiguous
    gx, gh, b_hn, mask = np.zeros((B, 3 * H)), np.zeros((B, 3 * H)), np.zeros(H), np.ones(B)  # mask (batch,), as the layers pass it
    h, gates, hn = np.empty((B, H)), np.empty((B, 3 * H)), np.empty((B, H))
    rnn_gpu.gru_forward_step(gx, gh, b_hn, h_prev, mask, h, gates, hn)
    rnn_gpu.gru_backward_step(states[:, 0], h_prev, mask, gates, hn, np.empty((B, 3 * H)), np.empty((B, H)), np.empty((B, H)))
    rnn_gpu.rnn_tanh_forward_step(np.zeros((B, H)), h_prev, mask[::1], h)
    names = [name for name, _ in _Kernel.calls]
    assert names == ["microvae_gru_forward_step", "microvae_gru_backward_step", "microvae_rnn_tanh_forward_step"]
    for name, args in _Kernel.calls[:2]:  # the GRU's arrays are raw, addressed by flat index
        assert all(a.flags.c_contiguous for a in args if isinstance(a, np.ndarray) and a.ndim), name
    # (the tanh RNN's a and h_prev are elementwise arguments, which CuPy indexes with their strides)
    with pytest.raises(ValueError, match="kernel array 'h' must be C-contiguous"):  # outputs are written by flat index
        rnn_gpu.gru_forward_step(gx, gh, b_hn, h_prev, mask, np.empty((B, 2 * H))[:, :H], gates, hn)


@pytest.mark.parametrize("name, output", [(name, out) for name, (_, outs) in recurrent_kernel_calls().items() for out in outs])
def test_recurrent_wrappers_refuse_every_non_contiguous_output(rnn_gpu, name, output):
    """Each output of each recurrent GPU wrapper is refused by name when it is not C-contiguous,
    before the kernel runs, as the Numba twins do (tests/test_rnn_kernels.py). The test above
    tries the GRU forward's h only, and the emulated kernels write any layout back correctly, so a
    wrapper that dropped one output's check (say the GRU backward's dgx) passed every test."""
    inputs, outs = recurrent_kernel_calls()[name]
    args = [np.zeros(shape[::-1]).T if out == output else np.zeros(shape) for out, shape in outs.items()]
    assert not args[list(outs).index(output)].flags.c_contiguous
    with pytest.raises(ValueError, match=rf"^kernel array '{output}' must be C-contiguous$"):
        getattr(rnn_gpu, name)(*inputs, *args)
    assert _Kernel.calls == []


def test_the_self_check_runs_on_numpy_whatever_the_backend_variable_says(monkeypatch):
    """It mixed NumPy arrays with arrays of the $MICROVAE_BACKEND backend (CuPy's multiply
    refuses NumPy arrays); here, without CuPy, the variable made it fail to build at all."""
    from microvae.selfcheck import run_checks

    monkeypatch.setenv("MICROVAE_BACKEND", "cupy")
    results = list(run_checks(groups=["layer", "sampling"]))
    assert results and all(result.passed(1e-6) for _, _, result in results)
