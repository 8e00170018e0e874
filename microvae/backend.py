"""The array backend: one object that gives the math its arrays, dtype, randomness and kernels.

Model and layer code never imports NumPy or CuPy for its math. It asks the backend:

    be = get_backend("numpy", dtype="float64", seed=0)
    xp = be.xp                # numpy or cupy
    w = be.normal((3, 4))     # seeded, in be.dtype
    be.kernels.relu_forward(x, out)

`backend="numpy"` runs on the CPU with Numba kernels for the hot loops;
`backend="cupy"` runs on an NVIDIA GPU with CuPy kernels. The choice comes from the
argument, else from the ``MICROVAE_BACKEND`` environment variable, else "numpy".
Setting ``MICROVAE_KERNELS=reference`` swaps the compiled kernels for their plain
NumPy twins (slow, but handy when debugging a kernel).
"""

from __future__ import annotations

import os

import numpy as np

from .checks import check_dtype, check_seed, is_choice

__all__ = ["Backend", "BackendUnavailable", "get_backend", "array_module", "kernels_for"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


class BackendUnavailable(RuntimeError):
    """The requested backend (CuPy or a GPU) is not available on this machine."""


class Backend:
    """Array namespace (``xp``), dtype, seeded generator and kernels, bundled.

    Attributes
    ----------
    name : "numpy" or "cupy"
    xp : the array module (numpy or cupy)
    dtype : numpy dtype used for parameters and activations (float32 by default)
    rng : a seeded ``numpy.random.Generator``: every draw is made on the host and moved to
        the device, so a seed gives the same numbers (and the same initial model) on either
        backend; CuPy's own generators would give other streams
    kernels : module-like object with the hot-loop kernels for this device
    """

    def __init__(self, name: str = "numpy", dtype="float32", seed: int | None = 0, kernels: str | None = None):
        if not is_choice(name, ("numpy", "cupy")):
            raise ValueError(f"backend must be 'numpy' or 'cupy', got {name!r}")
        self.name = name
        self.dtype = np.dtype(_DTYPES[check_dtype(dtype)])  # any spelling NumPy reads: "f8", "double", np.float64
        kernels = _kernel_kind(kernels)
        if name == "numpy":
            self.xp = np
            if kernels == "reference":
                from .kernels import reference as k
            else:
                from .kernels import cpu as k
        else:
            self.xp = _import_cupy()
            if kernels == "reference":
                from .kernels import reference as k
            else:
                from .kernels import gpu as k
        self.kernels = k
        self.kernel_kind = kernels
        self.seed(seed)

    # randomness ---------------------------------------------------------------
    def seed(self, seed: int | None) -> None:
        """Reset the generator; the same seed gives the same stream of numbers, on either backend.
        ``seed`` is None (fresh entropy) or an integer >= 0, as everywhere in microvae."""
        self.rng = np.random.default_rng(check_seed(seed))

    def normal(self, shape, scale=1.0, rng=None):
        """Standard normal draws (times ``scale``) in this backend's dtype, on its device, from
        ``rng`` (a NumPy Generator: a seeded stream of the caller's) or the backend's own.

        Drawn in float64 and cast, so a seed gives the same numbers in float32 and float64."""
        rng = self.rng if rng is None else rng
        return self.to_device((rng.standard_normal(shape) * scale).astype(self.dtype, copy=False))

    def uniform(self, shape, low=0.0, high=1.0):
        """Draws from U[low, high) of ``shape``, in the backend's dtype, on its device. (Drawn in
        float64 and cast: in float32 a draw within 2⁻²⁵ of ``high`` rounds to ``high`` itself.)"""
        return self.to_device(self.rng.uniform(low, high, size=shape).astype(self.dtype, copy=False))

    def orthogonal(self, size: int):
        """A size×size orthogonal matrix drawn uniformly (QR of a Gaussian draw in this dtype, with
        R's diagonal made positive), in this backend's dtype, on its device. The QR runs on the
        host in float64, so the draw is the same on either backend (LAPACK and cuSOLVER round
        differently)."""
        gaussian = self.rng.standard_normal((size, size)).astype(self.dtype, copy=False).astype(np.float64)
        q, r = np.linalg.qr(gaussian)
        diagonal = np.diagonal(r)
        return self.to_device((q * np.sign(diagonal + (diagonal == 0))).astype(self.dtype))

    # arrays -------------------------------------------------------------------
    def asarray(self, x, dtype=None):
        """Move ``x`` to this backend as a C-contiguous array (float arrays in ``self.dtype``)."""
        dtype = self.dtype if dtype is None else dtype
        return self.xp.ascontiguousarray(self.xp.asarray(x, dtype=dtype))

    def to_device(self, x):
        """A host array on this backend's device, dtype kept (no copy on the CPU backend)."""
        return x if self.xp is np else self.xp.asarray(x)

    def to_numpy(self, x):
        """Copy to a host NumPy array (a no-op view on the CPU backend)."""
        if self.name == "cupy":
            return self.xp.asnumpy(x)
        return np.asarray(x)

    def zeros(self, shape, dtype=None):
        """A zero array on the backend's device, in its dtype unless ``dtype`` is given."""
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def empty(self, shape, dtype=None):
        """An uninitialised array on the backend's device, in its dtype unless ``dtype`` is given."""
        return self.xp.empty(shape, dtype=self.dtype if dtype is None else dtype)

    def scalar(self, x) -> float:
        """A Python float from a 0-d array (synchronises on the GPU)."""
        return float(x)

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, dtype={self.dtype.name!r}, kernels={self.kernel_kind!r})"

    def __reduce__(self):
        """copy.copy, copy.deepcopy and pickle make a Backend of the same name, dtype and kernels
        whose generator starts where this one stands and then goes its own way (deepcopy and
        pickle failed on the array module; a shallow copy shared the generator)."""
        return _rebuilt_backend, (self.name, self.dtype.name, self.kernel_kind, self.rng.bit_generator.state)


def _rebuilt_backend(name: str, dtype: str, kernels: str, generator_state: dict) -> Backend:
    backend = Backend(name, dtype=dtype, seed=None, kernels=kernels)
    bit_generator = getattr(np.random, generator_state["bit_generator"])()  # PCG64, or whichever was put in its place
    bit_generator.state = generator_state
    backend.rng = np.random.Generator(bit_generator)
    return backend


def _import_cupy():
    try:
        import cupy
    except ImportError as exc:  # pragma: no cover - depends on machine
        raise BackendUnavailable(
            "backend='cupy' needs CuPy and an NVIDIA GPU: pip install cupy-cuda12x (the CuPy build for your CUDA; "
            "in a microvae checkout, pip install -e '.[gpu]') or use backend='numpy'"
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # pragma: no cover - depends on machine
        raise BackendUnavailable(f"backend='cupy' found CuPy but no usable GPU ({exc}); use backend='numpy'") from exc
    if count < 1:  # pragma: no cover
        raise BackendUnavailable("backend='cupy' found CuPy but no GPU; use backend='numpy'")
    return cupy


def get_backend(backend=None, dtype="float32", seed: int | None = 0) -> Backend:
    """Return a Backend. ``backend`` may be a Backend, a name, or None.

    None means ``$MICROVAE_BACKEND`` or "numpy". A Backend is returned as is, with its own
    dtype and generator: ``dtype`` and ``seed`` apply only to a Backend made here.
    """
    if isinstance(backend, Backend):
        return backend
    return Backend(_backend_name(backend), dtype=dtype, seed=seed)


def _backend_name(backend: str | None = None) -> str:
    """The backend's name that ``get_backend(backend)`` uses: ``backend``, else
    ``$MICROVAE_BACKEND`` (checked: a ValueError names the variable), else "numpy"."""
    name = backend if backend is not None else os.environ.get("MICROVAE_BACKEND") or "numpy"
    if backend is None and name not in ("numpy", "cupy"):  # ("" and 0 are names Backend refuses, not None)
        raise ValueError(f"backend must be 'numpy' or 'cupy', got {name!r} (from $MICROVAE_BACKEND)")
    return name


def array_module(a):
    """numpy or cupy, whichever owns ``a`` (CuPy is only imported if it is installed)."""
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def _kernel_kind(kernels: str | None) -> str:
    """'compiled' or 'reference': ``kernels``, else ``$MICROVAE_KERNELS``, else 'compiled'."""
    from_env = kernels is None and bool(os.environ.get("MICROVAE_KERNELS"))
    if kernels is None:  # only None reads the variable: kernels="" or False is refused below
        kernels = os.environ.get("MICROVAE_KERNELS") or "compiled"
    if not is_choice(kernels, ("compiled", "reference")):
        where = " (from $MICROVAE_KERNELS)" if from_env else ""
        raise ValueError(f"kernels must be 'compiled' or 'reference', got {kernels!r}{where}")
    return kernels


def kernels_for(a):
    """The kernel module matching the device of array ``a`` (honours ``$MICROVAE_KERNELS``)."""
    if _kernel_kind(None) == "reference":
        from .kernels import reference as k
    elif array_module(a) is np:
        from .kernels import cpu as k
    else:
        from .kernels import gpu as k
    return k
