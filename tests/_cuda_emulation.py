"""Run the CuPy kernels' CUDA C++ bodies on the CPU, strictly, so machines without a GPU test them too.

``EmulatedElementwiseKernel`` takes the same four strings as ``cupy.ElementwiseKernel``
(input params, output params, the per-element body, a name; and ``preamble=``). On a call it
writes the C++ that CuPy would wrap around the body, puts a loop over the threads ``i`` in place
of the GPU's, compiles it with the host C++ compiler (once per source, types and choice of
scalar arguments) and runs it on the arrays' memory through ctypes.

It binds the arguments as CuPy does: ``i`` is the element's flat index, each elementwise input a
``const T&`` reference to element ``i`` of the caller's array, each elementwise output a ``T&``,
each scalar a ``const T`` kernel parameter, and each ``raw`` parameter is indexed by flat C-order
position (a raw input is read-only: writing it does not compile, as on CuPy's ``const CArray``).
A C-contiguous array is bound where it lies, so an output that is also an input (``relu(x, out=x)``)
is one array, and a thread that writes the output and then reads the input reads what it wrote.
An input that broadcasts or is strided, or a strided output, is a C-contiguous copy (an output is
copied back); that changes no result, because the call is refused when such an array shares
memory with an output (below), and the same elements given twice share one copy.
It keeps CuPy's other rules that the kernels rely on: a type placeholder such as ``T`` takes its
dtype from the arrays bound to it and a mismatch is a TypeError ("Type is mismatched");
elementwise arguments broadcast and the outputs must have the broadcast shape; scalars are
cast to their declared type.

Where a GPU's result is undefined, the call raises instead, naming the kernel:

* ``OutOfBoundsError`` (an IndexError) when a thread indexes a raw parameter outside its
  array: the thread, the parameter, the index and the array's size; the access is not made.
* ``ThreadRaceError`` when two threads meet on an element of a raw output and one of them
  writes it: each element logs the thread that wrote it and the threads that read it. A thread
  that reads and writes its own elements is fine. Raw inputs need no log: nothing writes them
  during a call, as the next point makes sure.
* ``ThreadRaceError`` also when an output shares memory with another argument, except element
  for element (the in-place case above, where each thread reads and writes its own element).
  A shifted or broadcast view of an output is a race on a GPU; a raw parameter may reach any
  element, so one that shares memory with an output would hide races from the logs, and such
  calls, which CuPy would run, are refused.

The threads run in reverse order, ``i = n - 1`` first and ``0`` last: a fixed order, so that a
failure reproduces, and not the index order that a twin's loop follows. With the checks above,
a race through the arrays fails whatever the order; what the order adds is that a result that
depends on which thread runs first through anything else (a global in the preamble) differs
from the twin's, so the comparison with the twin fails.

What it cannot show is anything about the GPU itself: the threads run one at a time, so
nothing here tells how they interleave, and warps, shared memory and atomics (which no kernel of
microvae uses) are not emulated; an output whose own elements overlap (a zero stride) is not
checked; raw arrays that are not C-contiguous are copies indexed in C order (CuPy maps a raw
array's flat index through its strides to the same element, by a reading of CuPy's carray.cuh;
no GPU has run it); and the host's ``exp``/``tanh`` round differently from CUDA's in the last
bits, and CUDA contracts ``a * b + c`` into one rounding where the host compiler may not (the
twins' tolerances allow both).

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

_PROLOGUE = r"""
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <algorithm>
#include <string>
#include <vector>
using namespace std;  // CUDA's exp, tanh, fabs, min... are overloaded per type, as std's are
#define __device__

// What stops a run, for microvae_emulated to return: 1 an out-of-range raw index, 2 a race.
struct EmuFault { int kind; string message; };

[[noreturn]] inline void emu_out_of_bounds(const char* name, long long k, long long size, long long thread) {
    throw EmuFault{1, "thread " + to_string(thread) + " indexed raw parameter '" + name + "' at " + to_string(k)
                      + ", out of range: it has " + to_string(size) + " elements"};
}

[[noreturn]] inline void emu_race(const char* name, long long k, const char* first, long long a,
                                  const char* then, long long b) {
    throw EmuFault{2, "element " + to_string(k) + " of raw parameter '" + name + "' was " + first + " thread "
                      + to_string(a) + " and " + then + " thread " + to_string(b)};
}

// A raw input, CuPy's const CArray: bounds-checked reads. Nothing writes it during the call
// (the call is refused when it shares memory with an output), so its reads need no log.
template <typename T> struct EmuRawIn {
    const T* data; long long n; const char* name; const long long* thread;
    long long size() const { return n; }
    const T& operator[](long long k) const {
        if (k < 0 || k >= n) emu_out_of_bounds(name, k, n, *thread);
        return data[k];
    }
};

// A raw output: bounds-checked, and each element logs the thread that wrote it and two of the
// threads that read it (enough to tell whether one other than the current thread did).
template <typename T> struct EmuRawOut {
    struct Log { long long writer = -1, reader = -1, other_reader = -1; };  // -1: none yet
    T* data; long long n; const char* name; const long long* thread;
    vector<Log> logs;
    EmuRawOut(T* data, long long n, const char* name, const long long* thread)
        : data(data), n(n), name(name), thread(thread), logs(n) {}
    long long size() const { return n; }

    T read(long long k) {
        Log& log = logs[k];
        long long me = *thread;
        if (log.writer != -1 && log.writer != me) emu_race(name, k, "written by", log.writer, "read by", me);
        if (log.reader == -1) log.reader = me;
        else if (log.reader != me) log.other_reader = me;
        return data[k];
    }
    void write(long long k, T value) {
        Log& log = logs[k];
        long long me = *thread;
        if (log.writer != -1 && log.writer != me) emu_race(name, k, "written by", log.writer, "written again by", me);
        long long other = log.reader != me ? log.reader : log.other_reader;
        if (other != -1) emu_race(name, k, "read by", other, "written by", me);
        log.writer = me;
        data[k] = value;
    }

    struct Element {  // what y[k] gives: reading converts to T, assigning writes
        EmuRawOut* array; long long k;
        operator T() const { return array->read(k); }
        Element& operator=(T value) { array->write(k, value); return *this; }
        Element& operator=(const Element& other) { return *this = (T)other; }
        Element& operator+=(T value) { return *this = (T)*this + value; }
        Element& operator-=(T value) { return *this = (T)*this - value; }
        Element& operator*=(T value) { return *this = (T)*this * value; }
        Element& operator/=(T value) { return *this = (T)*this / value; }
    };
    Element operator[](long long k) {
        if (k < 0 || k >= n) emu_out_of_bounds(name, k, n, *thread);
        return Element{this, k};
    }
};
"""


class OutOfBoundsError(IndexError):
    """A thread of an emulated kernel indexed a raw parameter outside its array."""


class ThreadRaceError(RuntimeError):
    """Two threads of an emulated kernel met on one element and one wrote it (or, where the
    emulation could not see that, an output shares memory with another argument)."""


_FAULTS = {1: OutOfBoundsError, 2: ThreadRaceError}


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
        _libraries[key].microvae_emulated.restype = ctypes.c_int
    return _libraries[key]


class _Param:
    def __init__(self, text, output):
        words = text.split()
        self.raw = words[0] == "raw"
        if self.raw:
            words = words[1:]
        if len(words) != 2 or not re.fullmatch(r"[A-Za-z_]\w*", words[1]):
            raise ValueError(f"cannot parse the kernel parameter {text!r}")
        self.type, self.name = words
        self.dtype = _CONCRETE.get(self.type)  # None: a placeholder such as T
        self.output = output
        self.kind = ("raw " if self.raw else "") + ("output" if output else "input")


def _params(text, output):
    return [_Param(p, output) for p in text.split(",") if p.strip()]


def _placement(a):
    """Where the elements of ``a`` lie: two arrays with equal placements are the same elements
    in the same places (the stride of a dimension of size 1 says nothing)."""
    steps = tuple(step if size > 1 else 0 for step, size in zip(a.strides, a.shape))
    return a.__array_interface__["data"][0], a.shape, steps, a.dtype


class EmulatedElementwiseKernel:
    """``cupy.ElementwiseKernel`` run on the CPU (see the module docstring).

    ``EmulatedElementwiseKernel.calls`` counts the calls per kernel name, so a test can tell
    that the kernels it meant to test ran (and not, say, the reference twins)."""

    calls: collections.Counter = collections.Counter()

    def __init__(self, in_params, out_params, operation, name, preamble="", **options):
        self.inputs, self.outputs = _params(in_params, False), _params(out_params, True)
        self.operation, self.name, self.preamble = operation, name, preamble
        self._compiled = {}  # per binding of the type placeholders and choice of scalar arguments

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
        for p, a in zip(params, args):
            if p.output and not p.raw and (not isinstance(a, np.ndarray) or a.shape != shape):
                raise ValueError(f"{self.name}: output {p.name!r} must have the broadcast shape {shape}")
            if p.raw and not isinstance(a, np.ndarray):
                raise TypeError(f"{self.name}: raw parameter {p.name!r} needs an array")
        # host views, the elementwise inputs broadcast to the threads' shape (the outputs have it)
        views = [None if not isinstance(a, np.ndarray) else _host(a) if p.raw or a.shape == shape
                 else np.broadcast_to(_host(a), shape) for p, a in zip(params, args)]
        self._refuse_shared_memory(params, views)
        buffers, copy_back = self._buffers(params, args, views, types_)
        pointers = (ctypes.c_void_p * len(buffers))(*(b.ctypes.data for b in buffers))
        sizes = (ctypes.c_longlong * len(buffers))(*(b.size for b in buffers))
        fault = ctypes.create_string_buffer(400)
        run = self._library(types_, scalars=tuple(view is None for view in views))
        n = int(np.prod(shape, dtype=np.int64))
        kind = run.microvae_emulated(ctypes.c_longlong(n), pointers, sizes, fault, len(fault))
        if kind:
            raise _FAULTS[kind](f"{self.name}: {fault.value.decode()}")
        for target, work in copy_back:
            target[...] = work
        outs = args[len(self.inputs):]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _buffers(self, params, args, views, types_):
        """The memory each parameter is bound to, and the (output, copy) pairs to copy back."""
        buffers, copy_back, copies = [], [], {}
        for p, a, view in zip(params, args, views):
            if view is None:  # a scalar: a kernel parameter
                buffers.append(np.array(self._scalar(p, a, self._dtype(p, types_))))
            elif view.flags.c_contiguous and (view.flags.writeable or not p.output):
                buffers.append(view)  # its own memory, as on a GPU
            else:  # a C-contiguous copy, one for the same elements given twice
                key = _placement(view)
                if key not in copies:
                    copies[key] = np.array(view, order="C")
                if p.output:
                    copy_back.append((a, copies[key]))
                buffers.append(copies[key])
        return buffers, copy_back

    def _refuse_shared_memory(self, params, views):
        """No output may share memory with another argument, except element for element."""
        for p, a in zip(params, views):
            if not p.output:
                continue
            for q, b in zip(params, views):
                if q is p or b is None or not np.shares_memory(a, b):
                    continue
                if not p.raw and not q.raw and _placement(a) == _placement(b):
                    continue  # in place: each thread reads and writes its own element
                if p.raw or q.raw:
                    why = "a raw parameter may reach any element, so the emulation could not tell whether threads race"
                else:
                    why = "one thread would write an element that another thread reads or writes"
                raise ThreadRaceError(f"{self.name}: {p.kind} {p.name!r} and {q.kind} {q.name!r} share memory, "
                                      f"not element for element: {why}")

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

    def _library(self, types_, scalars):
        key = (tuple(sorted((t, d.str) for t, d in types_.items())), scalars)
        if key not in self._compiled:
            self._compiled[key] = _library(self._source(types_, scalars))
        return self._compiled[key]

    def _source(self, types_, scalars):
        """The C++ of the kernel: microvae_emulated(n, args, sizes, fault, fault_size) runs the
        n threads, and returns 0, or a fault's kind with its message written into ``fault``."""
        params = self.inputs + self.outputs
        before, each = [], []  # the bindings before the threads run, and those of each thread
        for k, (p, scalar) in enumerate(zip(params, scalars)):
            ctype = p.type if p.dtype is None else _CTYPES[p.dtype]
            if scalar:
                before.append(f"const {ctype} {p.name} = *(const {ctype}*)_emu_args[{k}];")
            elif p.raw and not p.output:
                before.append(f'const EmuRawIn<{ctype}> {p.name}{{(const {ctype}*)_emu_args[{k}], _emu_sizes[{k}], '
                              f'"{p.name}", &_emu_thread}};')
            elif p.raw:
                before.append(f'EmuRawOut<{ctype}> {p.name}(({ctype}*)_emu_args[{k}], _emu_sizes[{k}], '
                              f'"{p.name}", &_emu_thread);')
            elif p.output:
                each.append(f"{ctype}& {p.name} = (({ctype}*)_emu_args[{k}])[i];")
            else:
                each.append(f"const {ctype}& {p.name} = ((const {ctype}*)_emu_args[{k}])[i];")
        lines = [_PROLOGUE]
        lines += [f"typedef {_CTYPES[d]} {t};" for t, d in sorted(types_.items())]
        lines += [self.preamble,
                  'extern "C" int microvae_emulated(long long _emu_n, void** _emu_args, const long long* _emu_sizes,',
                  "                                 char* _emu_fault, int _emu_fault_size) {",
                  "    long long _emu_thread = -1;",
                  "    try {"]
        lines += ["        " + line for line in before]
        lines += ["        for (ptrdiff_t i = _emu_n - 1; i >= 0; --i) {  // the threads, the last first",
                  "            _emu_thread = i;"]
        lines += ["            " + line for line in each]
        lines += ["            {", self.operation + ";", "            }"]  # CuPy ends the body with ";" too
        lines += ["        }",
                  "    } catch (const EmuFault& fault) {",
                  '        snprintf(_emu_fault, _emu_fault_size, "%s", fault.message.c_str());',
                  "        return fault.kind;",
                  "    }",
                  "    return 0;",
                  "}"]
        return "\n".join(lines)


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
