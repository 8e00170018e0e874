"""The Dense layers' matrix products on the CPU: out = A·B, Aᵀ·B and A·Bᵀ as Numba kernels.

Why not NumPy's BLAS. The machines microvae is measured on run OpenBLAS with its Haswell
kernels (256-bit vectors), while LLVM compiles these loops for the CPU at hand (512-bit
vectors where it has them). In one process, one textbook VAE step's products took 0.6× the
BLAS time this way, and a training epoch 0.66× (bench/RESULTS.md has the figures).

How ``A·B`` is formed (``matmul``, and ``matmul_tn``, which is the same with A read by columns):

1. *Packing.* B is copied, in one sequential pass over its rows, into panels of ``wide``
   columns (two 64-byte vectors: 32 float32 or 16 float64), each a contiguous (K, wide)
   block. The last columns go into ``wide/2``-wide panels, the very last one padded with
   zeros. Rows of B lie far apart in memory; in a panel the inner loop's loads follow one
   another.
2. *Tiles.* For each panel and each run of ``_ROWS`` (8) rows of A, ``_tile`` forms
   out[i0:i0+8, panel] = Σ_k A[i0:i0+8, k] ⊗ panel[k, :], a K-long loop of rank-1 updates
   whose 8 × 2 vector accumulators stay in registers. Numba's vectoriser cannot keep such a
   two-dimensional accumulator in registers (written as plain loops it ran at 6–27 GFLOP/s),
   so ``_tile`` is written in LLVM IR, the one place in microvae below Python.
3. Rows left over (M not a multiple of 8) take a plain loop over the panel.

``A·Bᵀ`` with K ≥ 128 (a Dense layer's input gradient dY·Wᵀ) needs no packing: 4×4 tiles of
dot products along K (``_dot_block``), where both operands' rows are contiguous in K, in plain
Numba code that LLVM vectorises. With a short K, Bᵀ is packed (a small transposing copy) and
the panels above take it.

Threads: panels, or blocks of output rows where whole panels would not split evenly (and row
blocks of B while packing), are shared out among Numba's threads. Every output element is
computed by one thread in one fixed order, so the results do not depend on the number of
threads. Serial twins of the drivers run where threads may not
(``numba_threads.run`` decides: in a forked child, on a worker thread, inside
``threads.parallel_chunks``, with one thread).

Falls back to ``numpy.matmul`` (the reference twin) for products of at most ``SMALL``
multiply-adds (OpenBLAS runs those on the calling thread, and faster than a packing pass),
for products with M, K or N below ``NARROW``, for dtypes other than float32 and float64, for arrays that are not C-contiguous, and when
``out`` overlaps an input or is read-only (NumPy then refuses it by name).

Accuracy: each output element of ``matmul`` and ``matmul_tn`` is one K-long chain of fused
multiply-adds, so its rounding error grows in proportion to K, where OpenBLAS sums blocks of
K separately and grows more slowly. Both stay within the worst-case bound 2·K·u·Σ|a||b| that
the tests hold them to. Measured for ``matmul_tn`` of uniform [0, 1) float32 (K, 64) and
(K, 32) operands, the largest relative error equalled NumPy's at K = 128, was 3× it at
K = 784 and 18× at K = 60000 (1.1e-5). In training K is a layer's width (the forward
product) or the batch size (a weight gradient Xᵀ·dY), a few hundred. ``matmul_nt`` sums in
vector lanes and stays at NumPy's level.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .numba_threads import run

__all__ = ["matmul", "matmul_tn", "matmul_nt"]

# At most this many multiply-adds go to numpy.matmul: OpenBLAS keeps products of up to
# 65536·4 on the calling thread, and there a packing pass costs more than it saves.
SMALL = 262144
# So do products with a side shorter than this: a panel 16 wide for a single output column
# (a VRAE's output layer) would be mostly padding, and a 2-row tile mostly the loop around it.
NARROW = 16
_ROWS = 8  # rows of A per tile: 8 × 2 vector accumulators, plus the panel's 2 and a broadcast
_SHORT_K = 128  # below this K, A·Bᵀ packs Bᵀ instead of taking dot products along K

# no "nnan"/"ninf": a NaN in the operands must come out as NaN, as it does from BLAS
_options = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy", fastmath={"reassoc", "contract"})
_kernel = nb.njit(**_options)
_threaded = nb.njit(parallel=True, **_options)


def _make_tile(vectors):
    """The intrinsic for a tile ``_ROWS`` rows × ``vectors`` 64-byte vectors wide."""

    @intrinsic
    def tile(typingctx, a, a_start, a_row_step, a_k_step, panel, panel_start, out, out_start, out_row_step, k_len):
        """out[r, :] = Σ_k a[a_start + r·a_row_step + k·a_k_step] · panel[panel_start + k·width + :]
        for r < _ROWS, with width = vectors × lanes; every argument is a 1-D array or an index."""
        sig = types.void(a, a_start, a_row_step, a_k_step, panel, panel_start, out, out_start, out_row_step, k_len)

        def codegen(context, builder, signature, args):
            a_arr, a_start, a_row_step, a_k_step, panel_arr, panel_start, out_arr, out_start, out_row_step, k_len = args
            a_ptr = context.make_array(signature.args[0])(context, builder, a_arr).data
            panel_ptr = context.make_array(signature.args[4])(context, builder, panel_arr).data
            out_ptr = context.make_array(signature.args[6])(context, builder, out_arr).data
            element = a_ptr.type.pointee
            itemsize = 4 if isinstance(element, ir.FloatType) else 8
            lanes = 64 // itemsize
            vector = ir.VectorType(element, lanes)
            index = ir.IntType(64)
            suffix = f"v{lanes}f{8 * itemsize}"
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.{suffix}")
            width = ir.Constant(index, vectors * lanes)

            def vector_at(ptr, offset):
                return builder.bitcast(builder.gep(ptr, [offset]), vector.as_pointer())

            def broadcast(value):
                one = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
                return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined),
                                              ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))

            # allocas in the entry block: LLVM turns them into registers
            sums = [[cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * lanes)) for _ in range(vectors)]
                    for _ in range(_ROWS)]
            with cgutils.for_range(builder, k_len) as loop:
                k = loop.index
                row = builder.add(panel_start, builder.mul(k, width))
                b = [builder.load(vector_at(panel_ptr, builder.add(row, ir.Constant(index, v * lanes))), align=itemsize)
                     for v in range(vectors)]
                a_k = builder.add(a_start, builder.mul(k, a_k_step))
                for r in range(_ROWS):
                    a_rk = builder.load(builder.gep(a_ptr, [builder.add(a_k, builder.mul(ir.Constant(index, r), a_row_step))]))
                    a_rk = broadcast(a_rk)
                    for v in range(vectors):
                        builder.store(builder.call(fma, [a_rk, b[v], builder.load(sums[r][v])]), sums[r][v])
            for r in range(_ROWS):
                row = builder.add(out_start, builder.mul(ir.Constant(index, r), out_row_step))
                for v in range(vectors):
                    builder.store(builder.load(sums[r][v]), vector_at(out_ptr, builder.add(row, ir.Constant(index, v * lanes))),
                                  align=itemsize)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_tile_wide = _make_tile(2)
_tile_narrow = _make_tile(1)


@_kernel
def _panel_layout(n, itemsize):
    """(wide panels, narrow panels, wide) for n columns: wide is two 64-byte vectors."""
    wide = 128 // itemsize
    n_wide = n // wide
    return n_wide, (n - n_wide * wide + wide // 2 - 1) // (wide // 2), wide


@_kernel
def _pack_rows(b, b_k_step, b_n_step, k_len, n, k0, k1, work):
    """Rows k0..k1 of B(k, j) = b[k·b_k_step + j·b_n_step] into the panels in ``work``;
    panel p (of width w, first column j0) is work[j0·K : (j0 + w)·K] as a (K, w) block."""
    n_wide, n_narrow, wide = _panel_layout(n, work.itemsize)
    narrow = wide // 2
    zero = work.dtype.type(0)
    for k in range(k0, k1):
        if b_n_step == 1:  # a row of B is contiguous: a separate loop, so LLVM copies vectors
            row = b[k * b_k_step: k * b_k_step + n]
            for p in range(n_wide):
                base, first = p * wide * k_len + k * wide, p * wide
                for j in range(wide):
                    # unsigned indices: Numba wraps a negative index around, and that check on
                    # every element kept LLVM from copying vectors (a 784 × 400 W: 111 → 35 µs)
                    work[np.uint64(base + j)] = row[np.uint64(first + j)]
            for p in range(n_narrow):
                j0 = n_wide * wide + p * narrow
                base = j0 * k_len + k * narrow
                for j in range(narrow):
                    work[base + j] = row[j0 + j] if j0 + j < n else zero
        else:
            for p in range(n_wide + n_narrow):
                j0 = p * wide if p < n_wide else n_wide * wide + (p - n_wide) * narrow
                w = wide if p < n_wide else narrow
                base = j0 * k_len + k * w
                for j in range(w):
                    work[base + j] = b[k * b_k_step + (j0 + j) * b_n_step] if j0 + j < n else zero


@_kernel
def _panel(a, a_row_step, a_k_step, k_len, n, out, work, p, i_begin, i_end):
    """Rows i_begin..i_end of panel p of out (m, n) = A·B from the packed panels, where
    A(i, k) = a[i·a_row_step + k·a_k_step]. i_begin is a multiple of _ROWS, so the tiles (and
    the plain loop for the rows past the last whole tile) fall on the same rows however the
    rows are split: the same bits."""
    n_wide, n_narrow, wide = _panel_layout(n, work.itemsize)
    j0 = p * wide if p < n_wide else n_wide * wide + (p - n_wide) * (wide // 2)
    w = wide if p < n_wide else wide // 2
    if j0 + w <= n:  # row i of the panel is dest[start + (i − row0)·step:][:w]
        dest, start, step, row0 = out.reshape(-1), j0, n, 0
    else:  # the padded last panel: into a scratch block, then its real columns into out
        dest, start, step, row0 = np.empty((i_end - i_begin) * w, out.dtype), 0, w, i_begin
    tiled_end = i_begin + (i_end - i_begin) // _ROWS * _ROWS
    for i0 in range(i_begin, tiled_end, _ROWS):
        at = start + (i0 - row0) * step
        if w == wide:
            _tile_wide(a, i0 * a_row_step, a_row_step, a_k_step, work, j0 * k_len, dest, at, step, k_len)
        else:
            _tile_narrow(a, i0 * a_row_step, a_row_step, a_k_step, work, j0 * k_len, dest, at, step, k_len)
    for i in range(tiled_end, i_end):
        at = start + (i - row0) * step
        row = dest[at: at + w]
        row[:] = 0
        for k in range(k_len):
            a_ik = a[i * a_row_step + k * a_k_step]
            panel_row = work[j0 * k_len + k * w: j0 * k_len + (k + 1) * w]
            for j in range(w):
                row[j] += a_ik * panel_row[j]
    if j0 + w > n:
        for i in range(i_begin, i_end):
            for j in range(n - j0):
                out[i, j0 + j] = dest[(i - i_begin) * w + j]


_PACK_ROWS = 64  # rows of B per packing task


@_threaded
def _product_threads(a, a_row_step, a_k_step, m, k_len, b, b_k_step, b_n_step, n, out, work, threads):
    n_wide, n_narrow, _ = _panel_layout(n, work.itemsize)
    for task in nb.prange((k_len + _PACK_ROWS - 1) // _PACK_ROWS):
        _pack_rows(b, b_k_step, b_n_step, k_len, n, task * _PACK_ROWS, min(k_len, (task + 1) * _PACK_ROWS), work)
    # Tasks are (block of rows, panel), block after block, and Numba gives each thread one run
    # of consecutive tasks. Whole panels split evenly when every thread gets as many wide ones;
    # otherwise each thread takes every panel of a block of rows of its own (by panels alone,
    # the 12.5 panels' worth of a 400-wide output went 7 to one thread and 5.5 to the other).
    panels = n_wide + n_narrow
    blocks = 1 if n_narrow == 0 and n_wide % threads == 0 else max(1, min(threads, m // (2 * _ROWS)))
    rows = ((m + blocks - 1) // blocks + _ROWS - 1) // _ROWS * _ROWS
    blocks = (m + rows - 1) // rows
    for task in nb.prange(blocks * panels):
        block = task // panels
        _panel(a, a_row_step, a_k_step, k_len, n, out, work, task % panels, block * rows, min(m, (block + 1) * rows))


@_kernel
def _product_serial(a, a_row_step, a_k_step, m, k_len, b, b_k_step, b_n_step, n, out, work, threads):
    # threads: unused, taken so that the two drivers are called alike
    n_wide, n_narrow, _ = _panel_layout(n, work.itemsize)
    _pack_rows(b, b_k_step, b_n_step, k_len, n, 0, k_len, work)
    for p in range(n_wide + n_narrow):
        _panel(a, a_row_step, a_k_step, k_len, n, out, work, p, 0, m)


@_kernel
def _dot_block(a, bt, out, block):
    """Columns 4·block .. 4·block + 3 of out = a·btᵀ: 4×4 tiles of dot products along K."""
    m, k_len = a.shape
    n = bt.shape[0]
    m_tiled = m - m % 4
    j0 = 4 * block
    zero = a.dtype.type(0)
    if j0 + 4 <= n:
        b0, b1, b2, b3 = bt[j0], bt[j0 + 1], bt[j0 + 2], bt[j0 + 3]
        for i0 in range(0, m_tiled, 4):
            a0, a1, a2, a3 = a[i0], a[i0 + 1], a[i0 + 2], a[i0 + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for k in range(k_len):
                x0, x1, x2, x3 = a0[k], a1[k], a2[k], a3[k]
                y0, y1, y2, y3 = b0[k], b1[k], b2[k], b3[k]
                s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3  # noqa: E702
                s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3  # noqa: E702
                s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3  # noqa: E702
                s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3  # noqa: E702
            out[i0, j0], out[i0, j0 + 1], out[i0, j0 + 2], out[i0, j0 + 3] = s00, s01, s02, s03
            out[i0 + 1, j0], out[i0 + 1, j0 + 1], out[i0 + 1, j0 + 2], out[i0 + 1, j0 + 3] = s10, s11, s12, s13
            out[i0 + 2, j0], out[i0 + 2, j0 + 1], out[i0 + 2, j0 + 2], out[i0 + 2, j0 + 3] = s20, s21, s22, s23
            out[i0 + 3, j0], out[i0 + 3, j0 + 1], out[i0 + 3, j0 + 2], out[i0 + 3, j0 + 3] = s30, s31, s32, s33
        first_row, j_end = m_tiled, j0 + 4
    else:  # the last, partial block of columns: every row, one dot product at a time
        first_row, j_end = 0, n
    for i in range(first_row, m):
        for j in range(j0, j_end):
            total = zero
            for k in range(k_len):
                total += a[i, k] * bt[j, k]
            out[i, j] = total


@_threaded
def _dots_threads(a, bt, out):
    for block in nb.prange((bt.shape[0] + 3) // 4):
        _dot_block(a, bt, out, block)


@_kernel
def _dots_serial(a, bt, out):
    for block in range((bt.shape[0] + 3) // 4):
        _dot_block(a, bt, out, block)


# ---- per-thread buffers and dispatch ------------------------------------------------------

_local = threading.local()  # .work: this thread's packing buffers, by dtype


def _work(dtype, size):
    store = getattr(_local, "work", None)
    if store is None:
        store = _local.work = {}
    buffer = store.get(dtype)
    if buffer is None or buffer.size < size:
        buffer = store[dtype] = np.empty(size, dtype)
    return buffer


def _ours(a, b, out, m, k, n) -> bool:
    """Whether the compiled kernels take this product (else numpy.matmul does)."""
    return (m * k * n > SMALL and min(m, k, n) >= NARROW and a.dtype == b.dtype == out.dtype and a.dtype in (np.float32, np.float64)
            and a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous and out.flags.writeable
            and not np.may_share_memory(out, a) and not np.may_share_memory(out, b))


def _shapes(name, a, b, out, m_k, k_n, expected_k_n):
    if a.ndim != 2 or b.ndim != 2 or out.ndim != 2:
        raise ValueError(f"{name} takes 2-D arrays, got shapes {a.shape}, {b.shape} and {out.shape}")
    (m, k), (k2, n) = m_k, k_n
    if k != k2 or out.shape != (m, n):
        got = f"K = {k} against K = {k2}" if k != k2 else f"out {out.shape}"
        raise ValueError(f"{name}: operands of shapes {a.shape} and {b.shape} need {expected_k_n} and an out of "
                         f"shape (M, N) = ({m}, {n}), got {got}")
    return m, k, n


def _product(a, a_row_step, a_k_step, m, k, b, b_k_step, b_n_step, n, out):
    work = _work(out.dtype, k * (n + 128 // out.itemsize))
    # the thread count as an argument: read inside the kernel, it would keep Numba from caching it
    run(_product_threads, _product_serial,
        a.reshape(-1), a_row_step, a_k_step, m, k, b.reshape(-1), b_k_step, b_n_step, n, out, work, nb.get_num_threads())


def matmul(a, b, out):
    """out = A·B for A (M, K) and B (K, N); returns out."""
    m, k, n = _shapes("matmul", a, b, out, a.shape, b.shape, "A (M, K) and B (K, N)")
    if not _ours(a, b, out, m, k, n):
        return np.matmul(a, b, out=out)
    _product(a, k, 1, m, k, b, n, 1, n, out)
    return out


def matmul_tn(a, b, out):
    """out = Aᵀ·B for A (K, M) and B (K, N) (a weight gradient Xᵀ·dY); returns out."""
    m, k, n = _shapes("matmul_tn", a, b, out, a.shape[::-1], b.shape, "A (K, M) and B (K, N)")
    if not _ours(a, b, out, m, k, n):
        return np.matmul(a.T, b, out=out)
    _product(a, 1, m, m, k, b, n, 1, n, out)
    return out


def matmul_nt(a, b, out):
    """out = A·Bᵀ for A (M, K) and B (N, K) (an input gradient dY·Wᵀ); returns out."""
    m, k, n = _shapes("matmul_nt", a, b, out, a.shape, b.shape[::-1], "A (M, K) and B (N, K)")
    if not _ours(a, b, out, m, k, n):
        return np.matmul(a, b.T, out=out)
    if k < _SHORT_K:  # short dot products vectorise poorly: pack Bᵀ (K·N, small here) instead
        _product(a, k, 1, m, k, b, 1, k, n, out)
        return out
    run(_dots_threads, _dots_serial, a, b, out)
    return out
