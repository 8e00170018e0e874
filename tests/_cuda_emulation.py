"""Run the CuPy kernels' CUDA C++ bodies on the CPU, so machines without a GPU test them too.

``EmulatedElementwiseKernel`` takes the same four strings as ``cupy.ElementwiseKernel``
(input params, output params, the per-element body, a name; and ``preamble=``). On a call it
writes the C++ that CuPy would wrap around the body -- ``i`` the element's flat index, each
elementwise input a ``const T`` value, each elementwise output a ``T&`` reference, each ``raw``
parameter indexed by flat C-order position -- puts a loop over ``i`` around it in place of the
GPU's threads, compiles it with the host C++ compiler (once per source and type) and runs it
on NumPy arrays through ctypes.

It keeps CuPy's rules that the kernels rely on: a type placeholder such as ``T`` takes its
dtype from the arrays bound to it and a mismatch is a TypeError ("Type is mismatched");
elementwise arguments broadcast and the outputs must have the broadcast shape; scalars are
cast to their declared type. What it cannot show is anything about the GPU itself: threads
run one after another (a race between threads cannot show), raw arrays are C-contiguous
copies indexed in C order (CuPy maps a raw array's flat index through its strides to the same
element, by a reading of CuPy's carray.cuh; no GPU has run it), and the host's
``exp``/``tanh`` round differently from CUDA's in the last bits (the twins' tolerances allow it).

``emulated_cupy()`` is a stand-in ``cupy`` module: NumPy's functions under CuPy's names, on
``DeviceArray``s (NumPy arrays whose type says "cupy", which refuse host arrays beside them as
CuPy does), with this ElementwiseKernel, so the backend's ``"cupy"`` path runs here end to end.
``gpu_kernels()`` is ``microvae.kernels.gpu`` imported against it, and ``installed()`` makes
the stand-in ``cupy`` for a ``with`` block.
Both need a C++ compiler: ``compiler()`` is None when there is none, and tests marked
``needs_compiler`` skip then (but not on CI, whose .ci/run installs g++).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

import numpy as np
import pytest

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.int32): "int",
           np.dtype(np.int64): "long long", np.dtype(np.bool_): "bool"}
_CONCRETE = {name: np.dtype(name) for name in ("float32", "float64", "int32", "int64", "bool")}

_PROLOGUE = """
#include <cmath>
#include <cstddef>
#include <algorithm>
using namespace std;  // CUDA's exp, tanh, fabs, min... are overloaded per type, as std's are
#define __device__
"""


def compiler():
    """The host C++ compiler's path, or None."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


# Where there is no compiler the emulated tests skip, except on CI: .ci/run installs g++, so
# there a missing compiler is a broken install, which a skip would hide.
needs_compiler = pytest.mark.skipif(compiler() is None and not os.environ.get("CI"),
                                    reason="no C++ compiler on this machine (apt-get install g++)")


_build_dir = None
_libraries: dict[str, ctypes.CDLL] = {}


def _library(source):
    """Compile ``source`` into a shared library (cached by its hash for this process)."""
    global _build_dir
    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    if key not in _libraries:
        if _build_dir is None:
            _build_dir = tempfile.mkdtemp(prefix="microvae-cuda-emulation-")
            atexit.register(shutil.rmtree, _build_dir, True)
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("emulating CUDA kernels needs a C++ compiler (g++ or clang++)")
        src, lib = os.path.join(_build_dir, key + ".cpp"), os.path.join(_build_dir, key + ".so")
        with open(src, "w") as f:
            f.write(source)
        done = subprocess.run([cxx, "-std=c++14", "-O1", "-shared", "-fPIC", "-o", lib, src],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"the kernel did not compile:\n{done.stderr}\n--- source ---\n{source}")
        _libraries[key] = ctypes.CDLL(lib)
    return _libraries[key]


class _Param:
    def __init__(self, text):
        words = text.split()
        self.raw = words[0] == "raw"
        if self.raw:
            words = words[1:]
        if len(words) != 2 or not re.fullmatch(r"[A-Za-z_]\w*", words[1]):
            raise ValueError(f"cannot parse the kernel parameter {text!r}")
        self.type, self.name = words
        self.dtype = _CONCRETE.get(self.type)  # None: a placeholder such as T


def _params(text):
    return [_Param(p) for p in text.split(",") if p.strip()]


class EmulatedElementwiseKernel:
    """``cupy.ElementwiseKernel`` run on the CPU (see the module docstring).

    ``EmulatedElementwiseKernel.calls`` counts the calls per kernel name, so a test can tell
    that the kernels it meant to test ran (and not, say, the reference twins)."""

    calls: collections.Counter = collections.Counter()

    def __init__(self, in_params, out_params, operation, name, preamble="", **options):
        self.inputs, self.outputs = _params(in_params), _params(out_params)
        self.operation, self.name, self.preamble = operation, name, preamble
        self._by_types = {}  # compiled per binding of the type placeholders

    def __call__(self, *args):
        params = self.inputs + self.outputs
        if len(args) not in (len(self.inputs), len(params)):
            raise TypeError(f"{self.name} takes {len(self.inputs)} or {len(params)} arguments, got {len(args)}")
        EmulatedElementwiseKernel.calls[self.name] += 1
        _refuse_host(self.name, args)
        types_ = self._decide_types(args)
        elementwise = [a for p, a in zip(params, args) if not p.raw and isinstance(a, np.ndarray)]
        shape = np.broadcast_shapes(*(a.shape for a in elementwise)) if elementwise else ()
        args = list(args)
        for p in self.outputs[len(args) - len(self.inputs):]:  # outputs not given are allocated, as CuPy does
            if p.raw:
                raise TypeError(f"{self.name}: the raw output {p.name!r} must be given")
            args.append(np.empty(shape, self._dtype(p, types_)).view(DeviceArray))
        buffers, copy_back = [], []
        for p, a in zip(params, args):
            dtype = self._dtype(p, types_)
            if p in self.outputs and not p.raw and (not isinstance(a, np.ndarray) or a.shape != shape):
                raise ValueError(f"{self.name}: output {p.name!r} must have the broadcast shape {shape}")
            if p.raw:
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"{self.name}: raw parameter {p.name!r} needs an array")
                work = np.ascontiguousarray(a, dtype=dtype).copy()
            elif isinstance(a, np.ndarray) and a.ndim:
                work = np.ascontiguousarray(np.broadcast_to(a.astype(dtype, copy=False), shape)).copy()
            else:
                work = np.full(shape, self._scalar(p, a, dtype), dtype)
            buffers.append(work)
            if p in self.outputs:
                copy_back.append((a, work))
        n = int(np.prod(shape, dtype=np.int64))
        pointers = (ctypes.c_void_p * len(buffers))(*(b.ctypes.data for b in buffers))
        self._compiled(types_).microvae_emulated(ctypes.c_longlong(n), pointers)
        for target, work in copy_back:
            target[...] = work
        outs = args[len(self.inputs):]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _decide_types(self, args):
        types_ = {}
        for p, a in zip(self.inputs + self.outputs, args):
            if p.dtype is not None and isinstance(a, np.ndarray) and a.dtype != p.dtype:  # CuPy converts none
                raise TypeError(f"Type is mismatched. {self.name} {p.name} {a.dtype} {p.dtype}")
            if p.dtype is None and isinstance(a, np.ndarray):
                if types_.setdefault(p.type, a.dtype) != a.dtype:
                    raise TypeError(f"Type is mismatched. {self.name} {p.name} {types_[p.type]} {a.dtype} {p.type}")
        for p in self.inputs + self.outputs:
            if p.dtype is None and p.type not in types_:
                raise TypeError(f"{self.name}: no array argument gives the type {p.type} of {p.name!r}")
        return types_

    def _dtype(self, p, types_):
        dtype = p.dtype if p.dtype is not None else types_[p.type]
        if dtype not in _CTYPES:
            raise TypeError(f"{self.name}: the emulation has no C type for {dtype}")
        return dtype

    def _scalar(self, p, value, dtype):
        cast = dtype.type(value)
        if dtype.kind in "iu" and cast != value:
            raise TypeError(f"{self.name}: {p.name!r} is declared {dtype.name}, got {value!r}")
        return cast

    def _compiled(self, types_):
        key = tuple(sorted((t, d.str) for t, d in types_.items()))
        if key not in self._by_types:
            self._by_types[key] = self._compile(types_)
        return self._by_types[key]

    def _compile(self, types_):
        lines = [_PROLOGUE]
        lines += [f"typedef {_CTYPES[d]} {t};" for t, d in sorted(types_.items())]
        lines += [self.preamble, 'extern "C" void microvae_emulated(long long n, void** args) {',
                  "    for (ptrdiff_t i = 0; i < n; ++i) {"]
        for k, p in enumerate(self.inputs + self.outputs):
            ctype = p.type if p.dtype is None else _CTYPES[p.dtype]
            if p.raw:
                lines.append(f"        {ctype}* {p.name} = ({ctype}*)args[{k}];")
            elif p in self.inputs:
                lines.append(f"        const {ctype} {p.name} = (({ctype}*)args[{k}])[i];")
            else:
                lines.append(f"        {ctype}& {p.name} = (({ctype}*)args[{k}])[i];")
        lines += ["        {", self.operation + ";", "        }", "    }", "}"]  # CuPy ends the body with ";" too
        return _library("\n".join(lines))


class DeviceArray(np.ndarray):
    """A NumPy array standing in for a CuPy one.

    Its type's module is "cupy", so microvae's ``array_module`` and ``kernels_for`` take it for
    one; NumPy ufuncs and functions on it give device arrays (0-d ones for reductions, as CuPy
    does); and handing a host ``numpy.ndarray`` to a ufunc, a CuPy function or a kernel beside
    it is CuPy's TypeError. Only ``cupy.asarray``/``array`` move host arrays to the device and
    ``asnumpy``/``.get()`` back. (Not caught: ``np.asarray(device_array)`` and assigning a device
    array into a host one, which CuPy refuses but NumPy does for any subclass without asking.)"""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host(f"{ufunc.__name__}.{method}", inputs + (out or ()))
        if out is not None:
            kwargs["out"] = tuple(_host(o) for o in out)
        result = getattr(ufunc, method)(*(_host(a) for a in inputs), **kwargs)
        return _given_out(result, out, kwargs.get("out"))

    def __array_function__(self, func, types_, args, kwargs):
        # CuPy's arrays dispatch NumPy's functions to CuPy's; here NumPy's run on the host views
        _refuse_host(func.__name__, leaves((args, kwargs)))
        host_kwargs = _host_tree(kwargs)
        return _given_out(func(*_host_tree(args), **host_kwargs), kwargs.get("out"), host_kwargs.get("out"))

    def __getitem__(self, index):
        return _to_device(super().__getitem__(_host_tree(index)))

    def get(self):
        """A host copy, as ``cupy.ndarray.get`` gives."""
        return np.array(self.view(np.ndarray))


DeviceArray.__module__ = "cupy"


def _is_host(a):
    return isinstance(a, np.ndarray) and not isinstance(a, DeviceArray)


def leaves(tree):
    """Every item of nested tuples, lists and dicts, in order."""
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in leaves(item)]
    if isinstance(tree, dict):
        return leaves(list(tree.values()))
    return [tree]


def _refuse_host(what, items):
    for a in leaves(list(items)):
        if _is_host(a):
            raise TypeError(f"Unsupported type {type(a)} (the CuPy emulation refuses a host array in {what}; "
                            "move it with cupy.asarray)")


def _host(a):
    return a.view(np.ndarray) if isinstance(a, DeviceArray) else a


def _host_tree(tree):
    if isinstance(tree, tuple):
        return tuple(_host_tree(item) for item in tree)
    if isinstance(tree, list):
        return [_host_tree(item) for item in tree]
    if isinstance(tree, dict):
        return {key: _host_tree(value) for key, value in tree.items()}
    return _host(tree)


def _to_device(result):
    if isinstance(result, tuple):
        return tuple(_to_device(r) for r in result)
    if isinstance(result, list):
        return [_to_device(r) for r in result]
    if isinstance(result, np.generic) and not isinstance(result, (np.str_, np.bytes_)):
        return np.asarray(result).view(DeviceArray)
    if isinstance(result, np.ndarray) and not isinstance(result, DeviceArray):
        return result.view(DeviceArray)
    return result


def _given_out(result, out, host_out):
    """``result`` on the device; where NumPy returned the host view of ``out=`` (``host_out``),
    ``out`` itself, as CuPy returns the very array it was given."""
    if isinstance(out, tuple) and len(out) == 1:
        out, host_out = out[0], host_out[0]
    if out is not None and result is host_out:
        return out
    return _to_device(result)


def to_device(a):
    """``cupy.asarray`` of the emulation: a device copy of ``a``."""
    return np.array(_host(a)).view(DeviceArray)


def _onto_device(a, *args, **kwargs):
    """``cupy.asarray``: a device array is returned as it is (or cast), but anything from the host
    is copied, so the device array never shares memory with a host one (a view would let code
    that writes through one see the change in the other, which a real GPU never does)."""
    if isinstance(a, DeviceArray):
        view = _host(a)
        result = np.asarray(view, *args, **kwargs)
        return a if result is view else _to_device(result)
    return np.array(a, *args, copy=True, **kwargs).view(DeviceArray)


def _device_function(func, takes_host=False):
    def call(*args, **kwargs):
        if not takes_host:
            _refuse_host(getattr(func, "__name__", "a CuPy function"), leaves((args, kwargs)))
        host_kwargs = _host_tree(kwargs)
        return _given_out(func(*_host_tree(args), **host_kwargs), kwargs.get("out"), host_kwargs.get("out"))

    call.__name__ = getattr(func, "__name__", "function")
    return call


class _DeviceUfunc:
    """A NumPy ufunc under CuPy's rules (its methods too: ``cupy.add.at``)."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _device_function(self._ufunc)(*args, **kwargs)

    def __getattr__(self, name):
        method = getattr(self._ufunc, name)
        return _device_function(method) if callable(method) else method


def _no_device_generator(*args, **kwargs):
    """CuPy's generators give other streams than NumPy's, which the emulation cannot give, so
    it refuses them: microvae draws on the host (Backend.rng), the same numbers on either backend."""
    raise AssertionError("cupy.random was called: microvae draws with NumPy's generator on the host "
                         "(Backend.rng) and moves the draws to the device")


def _namespace(numpy_module, names):
    return types.SimpleNamespace(**{name: _device_function(getattr(numpy_module, name)) for name in names})


def emulated_cupy():
    """A stand-in ``cupy`` module: NumPy under CuPy's names on ``DeviceArray``s, kernels run by the emulation."""
    fake = types.ModuleType("cupy")

    def lookup(name):
        value = getattr(np, name)
        if isinstance(value, np.ufunc):
            return _DeviceUfunc(value)
        if callable(value) and not isinstance(value, type):
            return _device_function(value)
        return value  # dtypes and constants

    fake.__getattr__ = lookup
    fake.ndarray = DeviceArray
    fake.ElementwiseKernel = EmulatedElementwiseKernel
    fake.asarray = fake.asanyarray = _onto_device  # with fake.array, the only ways onto the device
    fake.array = _device_function(np.array, takes_host=True)
    fake.asnumpy = lambda a: np.array(_host(a))
    fake.get_array_module = lambda *arrays: fake if any(isinstance(a, DeviceArray) for a in arrays) else np
    fake.random = types.SimpleNamespace(default_rng=_no_device_generator, Generator=_no_device_generator)
    fake.linalg = _namespace(np.linalg, ("norm", "qr", "svd", "det", "inv", "cholesky", "slogdet"))
    fake.__version__ = "emulated"
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=lambda: 1, getDeviceProperties=lambda device: {"name": b"CuPy emulation on the CPU"}))
    return fake


_GPU_MODULES = ("microvae.kernels.gpu", "microvae.kernels.rnn_gpu", "microvae.kernels.conv_gpu")
_gpu_kernels = None


def gpu_kernels():
    """``microvae.kernels.gpu`` imported against the stand-in ``cupy`` (once per process).

    The real modules' entries are put back afterwards, so nothing else sees the stand-in."""
    global _gpu_kernels
    if _gpu_kernels is None:
        import importlib

        import microvae.kernels as package

        saved = {name: sys.modules.get(name) for name in ("cupy", *_GPU_MODULES)}
        saved_attributes = {name: vars(package).get(name) for name in ("gpu", "rnn_gpu", "conv_gpu")}
        try:
            sys.modules["cupy"] = emulated_cupy()
            for name in _GPU_MODULES:
                sys.modules.pop(name, None)
            _gpu_kernels = importlib.import_module("microvae.kernels.gpu")
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module
            for name, module in saved_attributes.items():
                if module is None:
                    vars(package).pop(name, None)
                else:
                    setattr(package, name, module)
    return _gpu_kernels


@contextlib.contextmanager
def installed():
    """The stand-in is ``cupy`` while this is open: ``backend="cupy"`` builds on it, and device
    arrays, whose type's module is "cupy", import it. Use what is built inside it there too."""
    import microvae.kernels as package

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "cupy", emulated_cupy())
        kernels = gpu_kernels()
        patch.setitem(sys.modules, "microvae.kernels.gpu", kernels)
        patch.setattr(package, "gpu", kernels, raising=False)
        yield kernels
