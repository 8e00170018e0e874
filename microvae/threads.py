"""CPU threads: NumPy's BLAS thread count, and microvae's own threads for chunks of images.

Why both. A convolution's work is a loop over chunks of images (im2col into a cache-sized
buffer, one skinny product with 16 or 32 rows, a copy back). BLAS's own threads gain
little on such products, and after each call OpenBLAS's workers spin for about 0.1 s,
which keeps the other cores busy, so the rest of the loop runs on one core. So while a
model with convolutions trains, ``fit`` enters ``parallel_chunks()``: NumPy's OpenBLAS is
set to one thread, and the chunk loops run on microvae's threads instead (``map_chunks``).
Worker w takes chunks w, w + T, w + 2T, ... (a fixed assignment) with scratch buffers of
its own, and per-worker weight-gradient sums are added in worker order, so a run gives
the same numbers every time for a given thread count.

Threads: ``MICROVAE_NUM_THREADS`` if set, else the CPUs this process may run on. Where
NumPy's BLAS is not an OpenBLAS microvae can find (MKL, Accelerate), its thread count
cannot be set, and the chunks stay on one thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["blas_threads", "set_blas_threads", "chunk_threads", "parallel_chunks", "chunk_workers", "map_chunks"]

_blas = None  # (get, set) of NumPy's OpenBLAS, or () if none was found
_pool = None
_pool_lock = threading.Lock()
_active = 1  # workers for chunk loops right now (1: run them in the calling thread)


def _openblas_functions():
    """(get_num_threads, set_num_threads) of the OpenBLAS NumPy loaded, or () if not found."""
    global _blas
    if _blas is not None:
        return _blas
    import numpy

    _blas = ()
    numpy_root = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in os.path.basename(line.split()[-1]).lower()}
    except (OSError, IndexError):
        return _blas
    # NumPy's own copy first (its wheels put it next to the package); other copies after
    for path in sorted(paths, key=lambda p: not p.startswith(numpy_root)):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", "_64_", ""):
                get = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    put.restype, put.argtypes = None, [ctypes.c_int]
                    _blas = (get, put)
                    return _blas
    return _blas


def blas_threads() -> int | None:
    """Threads NumPy's OpenBLAS uses now (None if it cannot be found)."""
    functions = _openblas_functions()
    return int(functions[0]()) if functions else None


def set_blas_threads(n: int) -> bool:
    """Set NumPy's OpenBLAS to ``n`` threads; False (and nothing changed) if it cannot be found."""
    if int(n) < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    functions = _openblas_functions()
    if not functions:
        return False
    functions[1](int(n))
    return True


def chunk_threads() -> int:
    """Threads for chunk loops: MICROVAE_NUM_THREADS, else the CPUs this process may use."""
    value = os.environ.get("MICROVAE_NUM_THREADS")
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"MICROVAE_NUM_THREADS must be a positive integer, got {value!r}") from None
        if n < 1:
            raise ValueError(f"MICROVAE_NUM_THREADS must be a positive integer, got {value!r}")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def parallel_chunks(enabled: bool = True, threads: int | None = None):
    """Within: NumPy's OpenBLAS on one thread, chunk loops on ``threads`` workers (default
    ``chunk_threads()``); both restored on exit. Does nothing when ``enabled`` is False,
    when there is one thread, or when the BLAS thread count cannot be set. Yields the
    number of workers."""
    global _active
    n = chunk_threads() if threads is None else int(threads)
    before = blas_threads() if enabled and n > 1 else None
    if before is None or _active > 1:  # off, one thread, unknown BLAS, or already inside
        yield _active
        return
    set_blas_threads(1)
    _active = n
    try:
        yield n
    finally:
        _active = 1
        set_blas_threads(before)


def chunk_workers(chunks) -> int:
    """How many workers ``map_chunks`` will use for these chunks (1: the calling thread)."""
    return max(1, min(_active, len(chunks)))


def _get_pool(n):
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < n:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="microvae-chunks")
        return _pool


def map_chunks(chunks, body) -> int:
    """Call ``body(start, end, worker)`` for every chunk; worker w of T takes chunks w, w+T, ...
    (T = ``chunk_workers(chunks)``). Chunks must write disjoint outputs; anything summed
    over chunks is summed per worker. Returns T."""
    workers = chunk_workers(chunks)
    if workers == 1:
        for start, end in chunks:
            body(start, end, 0)
        return 1

    def run(worker):
        for start, end in chunks[worker::workers]:
            body(start, end, worker)

    for _ in _get_pool(workers).map(run, range(workers)):  # re-raises a worker's exception
        pass
    return workers
