"""CPU threads: NumPy's BLAS thread count, and microvae's own threads for chunks of images.

Why both. A convolution's work is a loop over chunks of images (im2col into a cache-sized
buffer, one skinny product with 16 or 32 rows, a copy back). BLAS's own threads gain
little on such products, and after each call OpenBLAS's workers spin for about 0.1 s,
which keeps the other cores busy, so the rest of the loop runs on one core. So while a
CPU model with convolutions trains (``fit``) or runs its inference methods (``encode``,
``elbo``, ...: ``Model._by_rows``), it enters ``parallel_chunks()``: OpenBLAS is set to one
thread, and the chunk loops run on microvae's threads instead (``map_chunks``). A training
loop of one's own enters it around the loop to compute ``fit``'s bits.
Worker w takes chunks w, w + T, w + 2T, ... (a fixed assignment) with scratch buffers of
its own, and per-worker weight-gradient sums are added in worker order, so a run gives
the same numbers every time for a given thread count. Both settings belong to the process,
not to a model: train or run one model with convolutions at a time per process. A second
Python thread that enters ``parallel_chunks`` while another is inside is refused (a
RuntimeError: the two would change the settings under each other), and chunk loops that a
second thread runs outside it stay in that thread. A model without convolutions beside it,
in another thread, runs correctly, but its NumPy products then have one BLAS thread, whose
float32 sums may differ in the last bits from a run alone.
A forked child starts a pool of its own: the parent's pool threads are not copied by fork.

Threads: ``MICROVAE_NUM_THREADS`` if set, else the CPUs this process may run on. Every
OpenBLAS loaded in the process is set to one thread (SciPy's too, which Numba can load
mid-run) and each is restored to its own count. Where NumPy's BLAS is not an OpenBLAS
microvae can find (MKL, Accelerate), its thread count cannot be set, and the chunks stay
on one thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from .checks import check_int

__all__ = ["blas_threads", "set_blas_threads", "blas_core", "chunk_threads", "parallel_chunks", "chunk_workers", "map_chunks"]

_libraries: dict = {}  # path → (get_num_threads, set_num_threads), or None if it has neither
_pool, _pool_size = None, 0
_pool_lock = threading.Lock()
_active = 1  # workers for chunk loops right now (1: run them in the calling thread)
_owner = None  # the thread inside parallel_chunks while _active > 1
_owner_blas = []  # the BLAS thread counts that thread put back on leaving
_enter_lock = threading.Lock()
_inside = threading.local()  # .worker is set in a pool thread: a chunk loop there runs serially


def _after_fork_in_child():
    """fork copies the pool object but only the forking thread: work submitted to the copy
    would wait forever, so the child makes a pool of its own (and locks of its own, which a
    thread of the parent may have held at the fork). Where another thread of the parent was
    inside ``parallel_chunks``, that thread is not in the child and will never leave it: the
    child puts BLAS's thread counts back and starts outside."""
    global _pool, _pool_size, _pool_lock, _enter_lock, _active, _owner, _owner_blas
    _pool, _pool_size, _pool_lock, _enter_lock = None, 0, threading.Lock(), threading.Lock()
    if _owner is not None and _owner != threading.get_ident():
        _restore_blas_thread_counts(_owner_blas)
        _active, _owner, _owner_blas = 1, None, []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _openblas_paths():
    """[(path, is_numpys)] of every OpenBLAS loaded in this process, NumPy's own first.

    Read from /proc/self/maps each time: libraries load late (Numba can pull in SciPy, and
    with it a second OpenBLAS, in the middle of a run).
    """
    import numpy

    numpy_libs = {os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__))), "numpy.libs"),
                  os.path.join(os.path.dirname(os.path.abspath(numpy.__file__)), ".libs")}
    try:
        with open("/proc/self/maps") as maps:
            paths = {fields[-1] for fields in (line.split() for line in maps)
                     if len(fields) >= 6 and "openblas" in os.path.basename(fields[-1]).lower()}
    except OSError:  # not Linux
        return []
    return sorted(((path, os.path.dirname(path) in numpy_libs) for path in paths), key=lambda entry: (not entry[1], entry[0]))


def _openblas_libraries():
    """[(get, set, is_numpys)] for every OpenBLAS loaded in this process, NumPy's own first
    (every copy gets a thread setting)."""
    found = []
    for path, is_numpys in _openblas_paths():
        if path not in _libraries:
            _libraries[path] = _thread_functions(path)
        if _libraries[path] is not None:
            found.append((*_libraries[path], is_numpys))
    return found


def blas_core() -> str | None:
    """The CPU kernels NumPy's OpenBLAS runs ("Haswell", "SkylakeX", ...: what
    ``$OPENBLAS_CORETYPE`` names, else what it detected), or None if none can be found.
    float32 results depend on it: kernels differ in their order of operations."""
    for path, _ in _openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in (f"{prefix}get_corename{suffix}" for prefix in ("scipy_openblas_", "openblas_") for suffix in ("64_", "_64_", "")):
            corename = getattr(lib, name, None)
            if corename is not None:
                corename.restype, corename.argtypes = ctypes.c_char_p, []
                return corename().decode()
    return None


def _thread_functions(path):
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix in ("scipy_openblas_", "openblas_"):
        for suffix in ("64_", "_64_", ""):
            get = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                return get, put
    return None


def blas_threads() -> int | None:
    """Threads NumPy's OpenBLAS uses now (None if no OpenBLAS can be found)."""
    libraries = _openblas_libraries()
    return int(libraries[0][0]()) if libraries else None


def set_blas_threads(n: int) -> bool:
    """Set every loaded OpenBLAS (NumPy's and any other) to ``n`` threads; False (and
    nothing changed) if none can be found."""
    n = check_int("thread count", n, 1)  # int() would take '2' and cut 2.7 to 2
    libraries = _openblas_libraries()
    for _, put, _ in libraries:
        put(n)
    return bool(libraries)


def _blas_thread_counts():
    """[(set_num_threads, count)] of every loaded OpenBLAS, to put back later."""
    return [(put, int(get())) for get, put, _ in _openblas_libraries()]


def _restore_blas_thread_counts(counts):
    for put, count in counts:
        put(count)


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
    """Within: every loaded OpenBLAS on one thread, chunk loops on ``threads`` workers
    (default ``chunk_threads()``); both restored on exit. Does nothing when ``enabled`` is False,
    when there is one thread, or when the BLAS thread count cannot be set. Yields the
    number of workers. Entered again inside one (in the same thread: a model's evaluate within
    its fit), it keeps the outer one's workers and settings, whatever its own arguments; in
    another thread, while one is inside, an enabled one is refused (RuntimeError).
    ``MICROVAE_NUM_THREADS`` is read here only when enabled, and by the
    Numba kernels once, when the first one large enough to use threads asks whether it may
    (kernels/numba_threads.py): a bad value stops the first model that would start a thread
    (an MLP of a few hundred units too), while one that starts none trains whatever it holds."""
    global _active, _owner, _owner_blas
    if threads is not None:
        threads = check_int("threads", threads, 1)
    n = (chunk_threads() if threads is None else threads) if enabled else 1
    me, before = threading.get_ident(), []
    try:  # from before anything is set: a Ctrl-C at any point restores what was set
        with _enter_lock:  # two threads' checks and settings, one after the other
            if n > 1 and _active > 1 and _owner != me:
                raise RuntimeError(
                    "a model with convolutions is already running on microvae's chunk threads in another Python thread; "
                    "the chunk threads and BLAS's thread count belong to the process: run one such model at a time "
                    "(or in processes of their own), or set MICROVAE_NUM_THREADS=1 to keep every model's chunks in its "
                    "own thread")
            before = _blas_thread_counts() if n > 1 and _active == 1 else []
            if before:  # (else: off, one thread, no OpenBLAS found, or already inside in this thread)
                _active, _owner, _owner_blas = n, me, before
                set_blas_threads(1)
        yield n if before else 1 if _owner not in (None, me) else _active  # what chunk_workers will allow
    finally:
        if before:
            with _enter_lock:
                _active, _owner, _owner_blas = 1, None, []
                _restore_blas_thread_counts(before)


def chunk_workers(chunks) -> int:
    """How many workers ``map_chunks`` will use for these chunks (1: the calling thread)."""
    if getattr(_inside, "worker", False):  # already on a worker: never wait on the pool from it
        return 1
    if _owner is not None and _owner != threading.get_ident():  # the chunk threads are another thread's
        return 1
    return max(1, min(_active, len(chunks)))


def _get_pool(n):
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(max_workers=n, thread_name_prefix="microvae-chunks"), n
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
        _inside.worker = True
        try:
            for start, end in chunks[worker::workers]:
                body(start, end, worker)
        finally:
            _inside.worker = False

    pool = _get_pool(workers)
    futures = [pool.submit(run, w) for w in range(workers)]
    # every worker finished before the caller goes on, even when one failed or Ctrl-C reached
    # this thread: a worker still running would write into scratch sums the next call reuses
    try:
        wait(futures)
    except BaseException:
        wait(futures)
        raise
    for future in futures:
        future.result()  # the first failed worker's exception, with its traceback
    return workers
