"""Argument shapes of the convolution, pooling and recurrent kernels, checked before they run
(with their geometry and the dtypes of what they write), the optimizer updates' rule on
dtypes, and every kernel's rule on overlapping arrays.

The compiled twins (Numba on the CPU, CuPy on the GPU) index their arrays without bounds
checks, so an argument of the wrong shape would read or write past its end without a word,
where the NumPy reference raises a broadcast error. Each check raises a ValueError naming the
kernel, the shapes it needs and the shapes it got. (The layers always pass matching shapes;
these guard direct calls. The Numba elementwise kernels check theirs, and contiguity, in
``cpu._checked``; their CuPy twins check here: CuPy would broadcast where the reference raises.)
"""

from __future__ import annotations

import numpy as np

from ..checks import check_int

__all__ = ["elementwise", "rows", "bernoulli", "conv_columns", "pooling", "rnn_step", "gru_step",
           "output", "one_dtype", "apart", "itself_or_apart", "argmax", "conv_geometry", "pool_geometry"]


def _refuse(kernel: str, needs: str, **got):
    shown = ", ".join(f"{name} {tuple(shape)}" for name, shape in got.items())
    raise ValueError(f"{kernel} needs {needs}; got {shown}")


def elementwise(kernel: str, **arrays) -> None:
    """Arrays of one shape, whatever it is."""
    if len({tuple(shape) for shape in arrays.values()}) != 1:
        _refuse(kernel, "arrays of one shape", **arrays)


def rows(kernel: str, vector: str, vector_shape, **matrices) -> None:
    """(batch, n) arrays of one shape, with one (n,) vector (a bias, or its gradient)."""
    first = tuple(next(iter(matrices.values())))
    if (len(first) != 2 or any(tuple(s) != first for s in matrices.values())
            or tuple(vector_shape) != first[1:]):
        _refuse(kernel, f"{', '.join(matrices)} (batch, n) of one shape and {vector} (n,)", **matrices, **{vector: vector_shape})


def bernoulli(logits_shape, x_shape, dlogits_shape, row_loss_shape) -> None:
    """The Bernoulli loss: logits, x and dlogits (batch, d) of one shape, row_loss (batch,)."""
    if (len(logits_shape) != 2 or tuple(x_shape) != tuple(logits_shape) or tuple(dlogits_shape) != tuple(logits_shape)
            or tuple(row_loss_shape) != tuple(logits_shape[:1])):
        _refuse("bernoulli_nll_logits", "logits, x, dlogits (batch, d) of one shape and row_loss (batch,)",
                logits=logits_shape, x=x_shape, dlogits=dlogits_shape, row_loss=row_loss_shape)


def conv_columns(kernel: str, x_shape, cols_shape) -> None:
    """im2col/col2im: x (N, C, H, W) and cols (C, KH, KW, N, OH, OW), of one C and one N."""
    if len(x_shape) != 4 or len(cols_shape) != 6 or cols_shape[0] != x_shape[1] or cols_shape[3] != x_shape[0]:
        _refuse(kernel, "x (N, C, H, W) and cols (C, KH, KW, N, OH, OW) of the same N and C", x=x_shape, cols=cols_shape)


def pooling(kernel: str, x_shape, pool: int, stride: int, y_shape, argmax_shape) -> None:
    """Max pooling: x (N, C, H, W); y and argmax (N, C, OH, OW), every window inside x:
    (OH − 1)·stride + pool ≤ H, and the same along W. (For the backward pass x is dx and y dy.)"""
    fits = (len(x_shape) == 4 and len(y_shape) == 4 and tuple(y_shape) == tuple(argmax_shape)
            and tuple(y_shape[:2]) == tuple(x_shape[:2])
            and all(o == 0 or (o - 1) * stride + pool <= size for o, size in zip(y_shape[2:], x_shape[2:])))
    if not fits:
        _refuse(kernel, f"x (N, C, H, W) and y, argmax (N, C, OH, OW) with (OH − 1)·{stride} + {pool} ≤ H "
                f"and (OW − 1)·{stride} + {pool} ≤ W", x=x_shape, y=y_shape, argmax=argmax_shape)


def rnn_step(kernel: str, mask_shape, **states) -> None:
    """A tanh RNN step: every state array (batch, H) of one shape, mask (batch,)."""
    shapes = {tuple(shape) for shape in states.values()}
    first = next(iter(states.values()))
    if len(shapes) != 1 or len(first) != 2 or tuple(mask_shape) != (first[0],):
        _refuse(kernel, "arrays of one shape (batch, H) and mask (batch,)", **states, mask=mask_shape)


def gru_step(kernel: str, mask_shape, wide: dict, narrow: dict, b_hn_shape=None) -> None:
    """A GRU step: the ``wide`` arrays (batch, 3H), the ``narrow`` ones (batch, H), mask (batch,)
    and, in the forward step, b_hn (H,)."""
    first = next(iter(narrow.values()))
    ok = len(first) == 2
    if ok:
        batch, hidden = first
        ok = (all(tuple(s) == (batch, hidden) for s in narrow.values())
              and all(tuple(s) == (batch, 3 * hidden) for s in wide.values())
              and tuple(mask_shape) == (batch,) and (b_hn_shape is None or tuple(b_hn_shape) == (hidden,)))
    if not ok:
        extra = {} if b_hn_shape is None else {"b_hn": b_hn_shape}
        _refuse(kernel, f"{', '.join(wide)} (batch, 3H), {', '.join(narrow)} (batch, H), mask (batch,)"
                + (" and b_hn (H,)" if b_hn_shape is not None else ""), **wide, **narrow, mask=mask_shape, **extra)


def output(kernel: str, **arrays) -> None:
    """Arrays a kernel writes: float32 or float64 (a compiled loop would truncate its results
    into an integer array, where the reference refuses), and writeable."""
    for name, a in arrays.items():
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{kernel} writes {name} in float32 or float64, got an array of dtype {a.dtype}")
        if not getattr(a.flags, "writeable", True):  # (CuPy arrays have no such flag)
            raise ValueError(f"{kernel} writes {name}, got a read-only array")


def one_dtype(kernel: str, **arrays) -> None:
    """The optimizer updates' arrays share one dtype, the one they compute in: a float64
    gradient for float32 parameters would be used unrounded by a compiled loop and rounded by
    the reference (and CuPy's kernels, with one type T, refuse it in their own words)."""
    dtypes = {name: a.dtype for name, a in arrays.items()}
    if len(set(dtypes.values())) != 1:
        raise TypeError(f"{kernel} needs {', '.join(dtypes)} of one dtype; got "
                        + ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items()))


def apart(kernel: str, outputs: dict, inputs: dict, xp=np) -> None:
    """No output shares memory with any other argument, input or output. The compiled loops
    read and write through the arrays' memory in an order of their own (a GPU's threads in
    none), so with an overlap their results would depend on that order, where the reference
    (NumPy buffers overlaps) is right. An output that may be x itself is checked by
    ``itself_or_apart`` instead, and its other arguments here. ``xp``: the arrays' module."""
    earlier = dict(inputs)
    for name, out in outputs.items():
        for other_name, other in earlier.items():
            if xp.may_share_memory(out, other):
                raise ValueError(f"{kernel} writes {name}, which must not share memory with {other_name}; got {name} "
                                 f"{tuple(out.shape)} {out.dtype} and {other_name} {tuple(other.shape)} {other.dtype} overlapping")
        earlier[name] = out


def _placement(a) -> tuple:
    """Where a's elements lie: its first one's address (NumPy's array interface, or CuPy's CUDA
    one), its shape, dtype and strides (a stride along an axis of length 1 is never taken)."""
    interface = getattr(a, "__cuda_array_interface__", None) or a.__array_interface__
    return interface["data"][0], a.shape, a.dtype, tuple(s for s, n in zip(a.strides, a.shape) if n > 1)


def itself_or_apart(kernel: str, x, out, name: str = "out",
                    why: str = "each value is read just before its position is written", xp=np) -> None:
    """``out`` is ``x`` itself (in place: the same memory, shape, dtype and strides, if not the
    same object) or shares no memory with it (``xp``: the arrays' module). A compiled loop that
    reads each value (image) of x just before it writes that position is right in those two
    cases, and so is a GPU thread that reads and writes its own element; an ``out``
    that starts further along in x's memory, or at x's address in another dtype, has values
    read after they were written, where the reference (NumPy buffers overlaps) is right. Any
    other overlap is refused too: nothing the layers do needs it."""
    if out is x or not xp.may_share_memory(x, out):
        return
    if _placement(x) != _placement(out):
        raise ValueError(f"{kernel}: {name} must be x itself or not overlap it ({why}); got x {x.shape} {x.dtype} "
                         f"and {name} {out.shape} {out.dtype} sharing memory")


def argmax(kernel: str, a) -> None:
    """A max-pooling argmax: integers (flat positions h·W + w)."""
    if a.dtype.kind not in "iu":
        raise TypeError(f"{kernel} needs argmax of an integer dtype (positions h·W + w), got {a.dtype}")


def conv_geometry(kernel: str, stride, pad_top, pad_left) -> tuple[int, int, int]:
    """im2col/col2im's stride (≥ 1) and pads (≥ 0), as ints: a fraction is refused, not cut."""
    return (check_int(f"{kernel}'s stride", stride, 1), check_int(f"{kernel}'s pad_top", pad_top, 0),
            check_int(f"{kernel}'s pad_left", pad_left, 0))


def pool_geometry(kernel: str, pool, stride) -> tuple[int, int]:
    """Max pooling's window and stride, ints ≥ 1 (a window of 0 would read outside x)."""
    return check_int(f"{kernel}'s pool", pool, 1), check_int(f"{kernel}'s stride", stride, 1)
