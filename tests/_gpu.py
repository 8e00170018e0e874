"""The two places the ``backend="cupy"`` code path runs in the tests: a real GPU ("gpu"; skipped
cleanly where CuPy or a device is missing, as on CI) and the CuPy emulation on the CPU
("emulated", tests/_cuda_emulation.py; skipped where there is no C++ compiler, but not on CI).
"""

from __future__ import annotations

import collections
import contextlib
import functools

import pytest

from _cuda_emulation import DeviceArray, EmulatedElementwiseKernel, gpu_kernels, installed, needs_compiler


@functools.cache
def gpu_available() -> bool:
    """CuPy imports and sees at least one device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device: all mean "no GPU here"
        return False


needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CuPy/GPU on this machine")
GPU_PATHS = [pytest.param("emulated", marks=needs_compiler), pytest.param("gpu", marks=needs_gpu)]


class _Counted:
    """A real ``cupy.ElementwiseKernel`` that counts its calls, as the emulated kernels do."""

    def __init__(self, kernel, calls):
        self.kernel, self.calls = kernel, calls

    def __call__(self, *args, **kwargs):
        self.calls[self.kernel.name] += 1
        return self.kernel(*args, **kwargs)


class GpuPath:
    """One of GPU_PATHS: how to open it, its device array type, its kernels and their calls.

    ``opened()`` makes ``backend="cupy"`` build on this path while it is open; ``calls`` counts
    the ElementwiseKernels run by name (clear it before the code under test)."""

    def __init__(self, name: str):
        self.name = name
        if name == "emulated":
            self.array_type, self.calls = DeviceArray, EmulatedElementwiseKernel.calls
        else:
            import cupy

            self.array_type, self.calls = cupy.ndarray, collections.Counter()

    @property
    def kernels(self):
        if self.name == "emulated":
            return gpu_kernels()
        from microvae.kernels import gpu

        return gpu

    @contextlib.contextmanager
    def opened(self):
        if self.name == "emulated":
            with installed():
                yield
            return
        import cupy

        from microvae.kernels import conv_gpu, gpu, rnn_gpu

        with pytest.MonkeyPatch.context() as patch:
            for module in (gpu, rnn_gpu, conv_gpu):
                for attribute, value in list(vars(module).items()):
                    if isinstance(value, cupy.ElementwiseKernel):
                        patch.setattr(module, attribute, _Counted(value, self.calls))
            yield

    def host(self, a):
        """A host copy of a device array; anything else as it is."""
        return a.get() if isinstance(a, self.array_type) else a

    def __repr__(self) -> str:
        return f"GpuPath({self.name!r})"
