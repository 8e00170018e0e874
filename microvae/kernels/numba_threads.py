"""When the CPU kernels may run on Numba's threads, and the one dispatcher that decides it.

Kernels that can use threads come in pairs: a threaded driver (``parallel=True``, work shared
out with ``prange`` so that every output element is computed by one thread in one fixed order)
and a serial twin that gives the same results bit for bit. ``run(threaded, serial, *args)``
calls one of the two. The serial twin runs:

- in a forked child: GNU OpenMP, Numba's usual threading layer, aborts a forked child that
  starts a parallel loop;
- under a threading layer other than ``omp`` or ``tbb`` (Numba's ``workqueue`` cannot take two
  callers at once: it aborts the process); this is known only after a first parallel loop,
  which ``run`` makes alone (two Python threads' first calls at once would both reach it);
- on a microvae worker thread, and inside ``threads.parallel_chunks`` (a model with
  convolutions: its chunk loops have the cores, and OpenMP's threads spinning beside them made
  a ConvVAE epoch 1.3× as long);
- with ``MICROVAE_NUM_THREADS=1`` or ``NUMBA_NUM_THREADS=1``.

The variables are read once per process, at the first call of a kernel large enough to use
threads; a bad ``MICROVAE_NUM_THREADS`` is that call's ValueError.
"""

from __future__ import annotations

import os
import threading

import numba as nb

__all__ = ["use_threads", "run"]

# threads: None until decided in this process, then True or False; layer_checked: whether
# Numba's threading layer has been looked at (it is known only after a first parallel loop)
_state = {"threads": None, "layer_checked": False}
_first_call = threading.Lock()


def _after_fork_in_child():
    _state["threads"] = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def use_threads() -> bool:
    """Whether a kernel called from here, now, may start Numba's threads."""
    if _state["threads"] is None:
        from ..threads import chunk_threads

        _state["threads"] = chunk_threads() > 1 and nb.config.NUMBA_NUM_THREADS > 1
    if not _state["threads"]:
        return False
    from .. import threads

    return threads._active == 1 and not getattr(threads._inside, "worker", False)


def run(threaded, serial, *args):
    """``threaded(*args)`` where threads may be used, else ``serial(*args)``. After the first
    threaded call, only a threading layer that takes concurrent callers stays threaded."""
    if not _state["layer_checked"] and use_threads():
        with _first_call:
            if not _state["layer_checked"]:
                threaded(*args)
                if nb.threading_layer() not in ("omp", "tbb"):
                    _state["threads"] = False  # decided before another thread may see layer_checked
                _state["layer_checked"] = True
                return
    if use_threads():
        threaded(*args)
    else:
        serial(*args)
