"""Shared pieces of the benchmark scripts: thread settings, the worker protocol, data,
kernel reports, memory readings and Markdown tables.

Protocol. A benchmark script is both a *parent* and its own *workers*. The parent never
imports NumPy-heavy code or any framework; for each framework it launches
``python3 <script> --worker NAME ...`` in a fresh process whose environment pins the
thread counts (set before NumPy/torch/JAX are imported, because BLAS and OpenMP read them
at load time). A worker does its measurement and prints exactly ONE JSON object on the
last line of its stdout. Anything else it prints goes to stderr. A worker whose framework
cannot be imported prints ``{"skipped": "<why>"}``; a crash is turned into
``{"error": "<stderr tail>"}`` by the parent. Workers run one after another, never at the
same time, so they do not compete for the cores. Under ``--lockstep`` every worker is
alive at once but they still never run together: they take turns, one epoch each
(``epoch_turns``), so that epoch k of every framework lands in the same minute.

This module imports only the standard library at module level, so the parent stays light;
the helpers that need NumPy import it inside the function.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

BATCH_SIZE = 128
LR = 1e-3
LOGVAR_RANGE = (-30.0, 20.0)  # microvae clamps logvar to this range; the references do the same
DEFAULT_THREADS = 2

# XLA's CPU client. jaxlib 0.10.2 accepts --xla_cpu_multi_thread_eigen; it has no flag for the
# intra-op thread count: "--intra_op_parallelism_threads=N" aborts start-up ("Unknown flag in
# XLA_FLAGS"), and the often-quoted bare "intra_op_parallelism_threads=N" (no dashes) is
# silently ignored. XLA sizes its thread pool from the CPUs the process may run on, so the
# parent pins every worker to the same `threads` CPUs (pin_cpus below): that is what limits JAX.
XLA_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=true"


# --------------------------------------------------------------------------- threads
def worker_env(threads: int = DEFAULT_THREADS, extra: dict | None = None) -> dict:
    """The environment of a worker process: thread counts pinned, OPENBLAS_CORETYPE untouched."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = (flags + " " + XLA_THREAD_FLAGS).strip()
    # keep the workers' JAX on the CPU and quiet, and make stray prints unbuffered
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    # the benchmark scripts import microvae from the checkout they live in
    root = repo_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if extra:
        env.update(extra)
    return env


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def thread_report() -> dict:
    """Thread-related environment as the worker saw it (OPENBLAS_CORETYPE as the machine set it)."""
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "XLA_FLAGS", "OPENBLAS_CORETYPE")
    report = {k: os.environ.get(k, "(unset)") for k in keys}
    report["cpu_affinity"] = cpu_affinity()
    return report


def cpu_affinity():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None


def pin_cpus(threads: int):
    """The CPUs a worker is pinned to: the first `threads` of those the parent may use (None: no pinning)."""
    allowed = cpu_affinity()
    if not allowed:
        return None
    return allowed[:threads]


# --------------------------------------------------------------------------- protocol
def emit(result: dict) -> None:
    """A worker's one line of output."""
    sys.stdout.flush()
    print(json.dumps(result, default=_json_default), flush=True)


def _json_default(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def run_worker(script: str, args: list[str], threads: int = DEFAULT_THREADS, extra_env: dict | None = None,
               timeout: float | None = None, echo_stderr: bool = False, pin: bool = True) -> dict:
    """Run ``python3 script args`` in a fresh process; return its JSON result.

    With ``pin`` the process is bound to ``pin_cpus(threads)`` before it starts (every
    framework gets the same CPUs). Adds ``wall_s`` (the whole process, start-up included)."""
    cmd = [sys.executable, script, *args]
    cpus = pin_cpus(threads) if pin else None
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=worker_env(threads, extra_env), capture_output=True, text=True, timeout=timeout,
                              preexec_fn=preexec)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s: {' '.join(cmd)}"}
    wall = time.perf_counter() - started
    if echo_stderr and proc.stderr:
        sys.stderr.write(proc.stderr)
    result = None
    for line in reversed(proc.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    if proc.returncode != 0 or result is None:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
        return {"error": f"worker exited with {proc.returncode}: " + "\n".join(tail), "wall_s": wall}
    result["wall_s"] = wall
    return result


def count(minimum: int = 1, why: str = ""):
    """An argparse ``type``: an integer >= ``minimum`` (a count of epochs, images, threads, runs ...).

    Anything else is refused the argparse way: ``error: argument --x: must be >= N`` (exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}{' ' + why if why else ''}, got {value}")
        return value

    return parse


def framework_list(known: tuple):
    """An argparse ``type``: a comma-separated, non-empty list of names from ``known`` (repeats dropped)."""
    def parse(text: str) -> list[str]:
        names = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
        bad = [n for n in names if n not in known]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown framework(s) {', '.join(bad)}; choose from {','.join(known)}")
        if not names:
            raise argparse.ArgumentTypeError(f"must name at least one framework of {','.join(known)}")
        return names

    return parse


def not_importable(framework: str, exc: BaseException) -> dict:
    """A worker's result when its framework cannot be imported: skipped, with the reason."""
    return {"skipped": f"{framework} not importable ({type(exc).__name__}: {exc})"}


def one_line(error) -> str:
    """A worker's error (its stderr tail, several lines) as one line: how it ended and its last line."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return "failed (no output)"
    if len(lines) == 1:
        return lines[0]
    return f"{lines[0].split(':', 1)[0]}: {lines[-1]}"


def exit_if_failed(failed: dict) -> None:
    """Exit non-zero, with a one-line reason, if any worker failed; ``failed`` maps a label to a
    result (only those with an ``error`` count)."""
    reasons = [f"{label}: {one_line(res['error'])}" for label, res in failed.items()
               if isinstance(res, dict) and "error" in res]
    if reasons:
        raise SystemExit(f"{len(reasons)} worker(s) failed; " + "; ".join(reasons))


# --------------------------------------------------------------------------- data
def load_data(limit: int | None = None, flatten: bool = True):
    """Fashion-MNIST (train, test) images, float32 in [0, 1], via microvae's loader."""
    from microvae.datasets import load_fashion_mnist

    (x_train, _), (x_test, _) = load_fashion_mnist(flatten=flatten, limit=limit)
    return x_train, x_test


def epoch_batches(n: int, batch_size: int = BATCH_SIZE) -> list[int]:
    """Sizes of the minibatches of one epoch (the last, partial batch included)."""
    return [min(batch_size, n - start) for start in range(0, n, batch_size)]


# --------------------------------------------------------------------------- statistics
def steady(times: list[float]) -> list[float]:
    """Epochs 2..N (epoch 1 carries compilation and warm-up); all of them if N == 1."""
    return list(times[1:]) if len(times) > 1 else list(times)


def epochs_used(a) -> str:
    """Which epochs the medians are over, for the report."""
    rounds = max(1, int(getattr(a, "rounds", 1) or 1))
    used = summarize([0.0] * a.epochs)["epochs_used"]
    return f"{used} of each of {rounds} rounds" if rounds > 1 else used


def add_common_arguments(p) -> None:
    """Options every benchmark script takes."""
    p.add_argument("--rounds", type=count(1), default=1,
                   help="run every framework's worker this many times, interleaved (A B A B ...), round r with seed SEED + r; "
                        "medians over all rounds (the test ELBO's over seeds)")
    p.add_argument("--lockstep", action="store_true",
                   help="start every framework's worker at once and let them take turns, one epoch each (A B, B A, ...), "
                        "so that epoch k of each framework runs in the same minute: paired per-epoch ratios")


def summarize(times: list[float]) -> dict:
    t = steady(times)
    return {
        "median_s": statistics.median(t) if t else float("nan"),
        "min_s": min(t) if t else float("nan"),
        "max_s": max(t) if t else float("nan"),
        "epochs_used": "2..%d" % len(times) if len(times) > 1 else "1 (includes warm-up)",
        "first_epoch_s": times[0] if times else float("nan"),
    }


# --------------------------------------------------------------------------- memory
def memory_now() -> dict:
    """Resident set size now and its peak (MiB), from /proc/self/status and getrusage."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024.0  # kB -> MiB
    except OSError:
        pass
    try:
        import resource

        out["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB
    except (ImportError, OSError):
        pass
    return out


def reset_peak() -> bool:
    """Start VmHWM (and ru_maxrss with it) again from the current RSS: "5" into
    /proc/self/clear_refs (Linux). False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class EpochPeaks:
    """A ``fit`` callback that measures each epoch's own peak RSS: it resets the high-water mark
    in ``on_train_begin``, which fit calls after its data check, and reads it in ``on_epoch_end``
    (one epoch per fit call, as the workers train). ``before`` keeps the readings just before each
    reset, whose VmHWM holds the peak since the last one (fit's data check included)."""

    def __init__(self):
        self.peaks, self.before = [], []
        self.reset = False

    def on_train_begin(self, model):
        self.before.append(memory_now())
        self.reset = reset_peak()

    def on_epoch_end(self, model, epoch, record):
        self.peaks.append(memory_now().get("VmHWM", float("nan")) if self.reset else float("nan"))


def process_peak(mem: dict) -> float:
    """The largest VmHWM any reading of a microvae worker's ``memory`` saw (MiB): the whole
    process's peak, data checks, compilation and the test-ELBO pass included."""
    readings = [mem.get(k, {}) for k in ("start", "ready", "after_training", "after_elbo")] + mem.get("before_epoch", [])
    values = [r["VmHWM"] for r in readings if "VmHWM" in r] + [v for v in mem.get("epoch_peak", []) if v == v]
    return max(values, default=float("nan"))


# --------------------------------------------------------------------------- kernel reports
def numpy_report() -> dict:
    """NumPy's BLAS as built (show_config) and as running (OpenBLAS core type and threads)."""
    import numpy as np

    report = {"numpy": np.__version__}
    try:
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        report["blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration") if k in blas}
        simd = config.get("SIMD Extensions", {})
        report["simd_found"] = simd.get("found")
    except Exception as exc:  # older NumPy has no mode="dicts"
        report["blas"] = f"show_config(mode='dicts') failed: {exc}"
    report.update(_openblas_runtime())
    report["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    return report


def _openblas_runtime() -> dict:
    """Every OpenBLAS loaded in this process, with its core type and thread count (via ctypes).

    NumPy's own copy is the one under NumPy's wheel directory (``numpy.libs`` or
    ``numpy/.libs``); others (e.g. SciPy's, pulled in by Numba) are listed too."""
    import ctypes

    import numpy

    numpy_dir = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                path = fields[-1] if len(fields) >= 6 else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        return {}
    libraries = []
    for path in paths:
        entry = {"library": os.path.basename(path),
                 "numpy's": os.path.dirname(path) in (os.path.join(numpy_dir, "numpy.libs"), os.path.join(numpy_dir, "numpy", ".libs"))}
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            entry["error"] = str(exc)
            libraries.append(entry)
            continue
        for what, key, restype in (("get_corename", "corename", ctypes.c_char_p), ("get_num_threads", "threads", ctypes.c_int)):
            for name in (f"{pre}{what}{suf}" for pre in ("scipy_openblas_", "openblas_") for suf in ("64_", "_64_", "")):
                if hasattr(lib, name):
                    fn = getattr(lib, name)
                    fn.restype, fn.argtypes = restype, []
                    value = fn()
                    entry[key] = value.decode() if isinstance(value, bytes) else int(value)
                    break
        libraries.append(entry)
    out = {"openblas_loaded": [", ".join(f"{k}={v}" for k, v in e.items()) for e in libraries]}
    mine = [e for e in libraries if e["numpy's"]] or libraries[:1]
    if mine:
        out["numpy_openblas_corename"] = mine[0].get("corename")
        out["numpy_openblas_threads"] = mine[0].get("threads")
    return out


def microvae_report(model=None) -> dict:
    import microvae

    report = {"microvae": microvae.__version__, "microvae_file": microvae.__file__}
    if model is not None:
        report["backend"] = repr(model.backend)
        report["kernels_module"] = getattr(model.backend.kernels, "__name__", str(model.backend.kernels))
    try:
        from microvae import threads

        if model is not None and not model._uses_chunk_threads():
            report["chunk_threads"] = (f"not used (the {model.backend.name} backend runs each convolution in one pass)"
                                       if model.backend.name != "numpy" else
                                       "not used (no convolutions: NumPy's BLAS keeps its own threads)")
        else:
            report["chunk_threads"] = (f"{threads.chunk_threads()} (convolution chunks while training; NumPy's BLAS "
                                       f"{'set to 1 thread then' if threads.blas_threads() is not None else 'thread count not settable: chunks stay serial'})")
    except ImportError:  # an older microvae
        pass
    try:
        import numba

        report["numba"] = numba.__version__
        report["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    except ImportError:  # pragma: no cover
        pass
    return report


def torch_report() -> dict:
    import torch

    text = torch.__config__.show()
    keep = [line.strip() for line in text.splitlines()
            if any(w in line for w in ("MKL", "oneDNN", "MKLDNN", "OpenMP", "BLAS_INFO", "LAPACK_INFO", "CPU capability", "USE_MKL", "USE_OPENMP"))]
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": _torch_cpu_capability(torch),
        "config": keep,
    }


def _torch_cpu_capability(torch):
    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover
        return None


def jax_report() -> dict:
    import jax
    import jaxlib

    return {
        "jax": jax.__version__,
        "jaxlib": getattr(jaxlib, "__version__", "?"),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }


# --------------------------------------------------------------------------- output
def fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c) for c in row) + " |")
    return "\n".join(lines)


def results_table(results: dict, labels: dict, epochs: int, reference: str = "microvae") -> tuple[str, list[str]]:
    """The Markdown table of one benchmark (one row per framework that ran) and notes on the others."""
    ref = results.get(reference, {})
    ref_med = ref.get("summary", {}).get("median_s")
    rows, notes = [], []
    for fw, res in results.items():
        label = labels.get(fw, fw)
        if "skipped" in res:
            notes.append(f"- {label}: skipped — {res['skipped']}")
            continue
        if "error" in res:
            notes.append(f"- {label}: FAILED — {res['error']}")
            continue
        s = res["summary"]
        ratio = ref_med / s["median_s"] if ref_med and s["median_s"] > 0 else None
        rows.append([label, s["median_s"], f"{s['min_s']:.3f}–{s['max_s']:.3f}", s["first_epoch_s"], ratio,
                     res.get("test_elbo"), res.get("last_train_loss"), res.get("params", "–")])
        if res.get("rounds", 1) > 1:
            elbos = res.get("round_test_elbos")
            notes.append(f"- {label}: medians per round " + ", ".join(f"{m:.3f}" for m in res["round_median_s"])
                         + " s/epoch" + (("; test ELBO per round (seeds SEED, SEED + 1, ...) " + ", ".join(f"{e:.2f}" for e in elbos))
                                         if elbos else ""))
    for fw, res in results.items():
        ratios = paired_ratios(ref, res) if fw != reference else []
        if ratios:
            notes.append(f"- {labels.get(fw, fw)}: paired per-epoch ratio ({reference} ÷ this, epochs taken in turns): median "
                         f"**{statistics.median(ratios):.2f}**, range {min(ratios):.2f}–{max(ratios):.2f} over {len(ratios)} pairs")
    header = ["framework", "s/epoch (median)", "min–max", "epoch 1 s", f"{reference} s ÷ this s",
              f"test ELBO after {epochs} ep. (nats)", "last train loss", "params"]
    return markdown_table(header, rows), notes


def images_used(results: dict) -> str:
    """"N training / M test images" from the workers' results, never printing None."""
    n_train = next((r["n_train"] for r in results.values() if isinstance(r, dict) and "n_train" in r), None)
    n_test = next((r["n_test"] for r in results.values() if isinstance(r, dict) and "n_test" in r), None)
    if n_train is None and n_test is None:
        return "no training or test images (no framework ran)"
    train = f"{n_train} training" if n_train is not None else "no training images reported"
    test = f"{n_test} test images" if n_test is not None else "no test images (no framework evaluated one)"
    return f"{train} / {test}"


def growth_from_epoch_2(values: list) -> float | None:
    """Epoch N's figure minus epoch 2's (epoch 1 allocates the optimizer state and loads
    kernels); None with fewer than 3 epochs."""
    return values[-1] - values[1] if len(values) >= 3 else None


def _growth(values: list) -> str:
    growth = growth_from_epoch_2(values)
    if growth is None:
        return f"growth: – (needs 3+ epochs, ran {len(values)})"
    return f"growth epoch 2→{len(values)}: {growth:+.1f}"


def memory_summary(mem: dict) -> str:
    """One line (MiB): RSS after set-up and after each epoch, and its growth; each epoch's own
    peak (VmHWM reset as the epoch starts, after fit's data check) and its growth; the whole
    process's peak."""
    nan = float("nan")
    per = [round(r.get("VmRSS", nan), 1) for r in mem["per_epoch"]]
    peaks = [round(v, 1) for v in mem.get("epoch_peak", [])]
    peak_text = (f"each epoch's own peak {peaks}; {_growth(peaks)}" if peaks and all(v == v for v in peaks)
                 else "each epoch's own peak: not measured (needs a writable /proc/self/clear_refs)")
    return (f"RSS after data+model {mem['ready'].get('VmRSS', nan):.1f}; RSS after each epoch {per}; "
            f"{_growth(per)}; {peak_text}; the process's peak (fit's data checks and the test-ELBO pass "
            f"included) {process_peak(mem):.1f}")


def print_kernel_reports(results: dict) -> None:
    """The 'which kernels ran' section: one bullet list per worker that reported."""
    print("\n### Which kernels ran\n")
    for name, res in results.items():
        kernels = res.get("kernels") if isinstance(res, dict) else None
        if not kernels:
            continue
        print(f"- **{name}**")
        for key, value in kernels.items():
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            elif isinstance(value, dict):
                value = ", ".join(f"{k}: {v}" for k, v in value.items())
            print(f"  - {key}: {value}")


def save_json(path: str | None, payload: dict) -> None:
    if not path:
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, default=_json_default)
    print(f"\nraw results written to {path}")


def print_header(title: str, a) -> dict:
    """Print the report's first lines (title, date, machine, and the CPUs the workers will be
    pinned to, unless ``--no-pin``; this process itself stays unpinned); returns the machine
    report, which the JSON output keeps."""
    print(f"# microvae {title} ({time.strftime('%Y-%m-%d %H:%M')})")
    machine = machine_report()
    machine["worker_cpus"] = "not pinned" if a.no_pin else pin_cpus(a.threads)
    print("\n" + ", ".join(f"{k}: {v}" for k, v in machine.items()))
    return machine


def machine_report() -> dict:
    import platform

    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"python": platform.python_version(), "cpu": cpu, "cpus_visible": os.cpu_count(),
            "platform": platform.platform(), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)")}


def torch_train_vae(torch, encoder, decoder, latent: int, xt, xs, epochs: int, seed: int, eval_chunk: int = 1000) -> dict:
    """Train a PyTorch VAE exactly as microvae's benchmark does (same loss convention, Adam,
    shuffled minibatches with the last partial batch) and return the worker's JSON fields."""
    import torch.nn.functional as F

    params = list(encoder.parameters()) + list(decoder.parameters())

    def terms(x):
        h = encoder(x)
        mu, logvar = h[:, :latent], h[:, latent:].clamp(*LOGVAR_RANGE)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = decoder(z)
        if logits.shape != x.shape:
            raise RuntimeError(f"decoder output {tuple(logits.shape)} != input {tuple(x.shape)}")
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)
        kl = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return recon, kl

    opt = torch.optim.Adam(params, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(seed)
    n = len(xt)
    epoch_times, losses, rss = [], [], []
    for _ in epoch_turns(epochs):
        started = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, BATCH_SIZE):
            xb = xt[order[start:start + BATCH_SIZE]]
            recon, kl = terms(xb)
            loss = (recon + kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        epoch_times.append(time.perf_counter() - started)
        losses.append(total / n)
        rss.append(memory_now())
    with torch.no_grad():
        parts = [terms(xs[start:start + eval_chunk]) for start in range(0, len(xs), eval_chunk)]
        elbo = float(-(torch.cat([r for r, _ in parts]) + torch.cat([k for _, k in parts])).mean())
    return {
        "framework": "torch",
        "epoch_s": epoch_times,
        "train_loss": losses,
        "test_elbo": elbo,
        "params": int(sum(p.numel() for p in params)),
        "n_train": n, "n_test": len(xs),
        "memory": {"per_epoch": rss},
        "kernels": {**torch_report(), "adam": "torch.optim.Adam defaults (foreach=None, fused=None)",
                    "threads_env": thread_report()},
    }


def microvae_train(model, x_train, x_test, epochs: int, seed: int, mem_start: dict, extra: dict | None = None,
                   after_epoch=None) -> dict:
    """Train a microvae model one epoch per ``fit`` call (timing each epoch loop) and return
    the worker's JSON fields, including the test ELBO and memory after every epoch.
    ``after_epoch()``, if given, runs after each epoch, outside the timed loop."""
    mem_ready = memory_now()
    fit_times, epoch_times, losses, rss = [], [], [], []
    peaks = EpochPeaks()
    for _ in epoch_turns(epochs):
        started = time.perf_counter()
        history = model.fit(x_train, epochs=1, batch_size=BATCH_SIZE, lr=LR, verbose=0, seed=seed, callbacks=[peaks])
        fit_times.append(time.perf_counter() - started)
        epoch_times.append(history["seconds"][-1])  # the epoch loop itself, without fit's data check
        losses.append(history["loss"][-1])
        rss.append(memory_now())
        if after_epoch is not None:
            after_epoch()
    mem_trained = memory_now()
    elbo = float(model.elbo(x_test).mean())
    return {
        "framework": "microvae",
        "epoch_s": epoch_times,
        "fit_call_s": fit_times,
        "train_loss": losses,
        "test_elbo": elbo,
        "params": model.num_parameters,
        "n_train": len(x_train), "n_test": len(x_test),
        **(extra or {}),
        "memory": {"start": mem_start, "ready": mem_ready, "per_epoch": rss, "after_training": mem_trained,
                   "after_elbo": memory_now(), "epoch_peak": peaks.peaks, "before_epoch": peaks.before},
        "kernels": {**microvae_report(model), **numpy_report(), "threads_env": thread_report()},
    }


# --------------------------------------------------------------------------- lockstep
LOCKSTEP = False  # True in a worker started with --lockstep (set by the script's main)
READY, TURN_DONE = "@@ready", "@@epoch"


def epoch_turns(epochs: int):
    """``range(epochs)``, taking turns with the other workers under ``--lockstep``.

    A lockstep worker says READY on stdout once its data and model are set up, then before
    each epoch waits for a line from the parent on stdin, and after it prints TURN_DONE.
    After the last epoch it waits for one more turn (or for stdin to close), so what it does
    next (the test ELBO, its JSON line) never overlaps another worker's epoch.
    """
    for epoch in range(epochs):
        if LOCKSTEP:
            if epoch == 0:
                print(READY, flush=True)
            sys.stdin.readline()
        yield epoch
        if LOCKSTEP:
            print(TURN_DONE, flush=True)
    if LOCKSTEP:
        if epochs == 0:
            print(READY, flush=True)
        sys.stdin.readline()


class _LockstepWorker:
    """A worker process driven one turn at a time (see ``epoch_turns``)."""

    def __init__(self, script: str, args: list[str], threads: int, pin: bool):
        import tempfile

        self.cmd = [sys.executable, script, *args, "--lockstep"]
        cpus = pin_cpus(threads) if pin else None
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, env=worker_env(threads), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self.result = None  # the worker's JSON object, once it has printed it

    @property
    def finished(self) -> bool:
        return self.result is not None or self.proc.poll() is not None

    def _read_until(self, marker: str) -> bool:
        """Read stdout until ``marker`` (True), or the worker's JSON line or its exit (False)."""
        for line in self.proc.stdout:
            line = line.strip()
            if line == marker:
                return True
            if line.startswith("{"):
                try:
                    self.result = json.loads(line)
                except json.JSONDecodeError:
                    continue
        return False

    def wait_ready(self) -> None:
        self._read_until(READY)

    def take_turn(self) -> None:
        try:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return
        self._read_until(TURN_DONE)

    def finish(self) -> dict:
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        if self.result is None:
            self._read_until("\0")
        code = self.proc.wait()
        wall = time.perf_counter() - self.started
        self.proc.stdout.close()
        with self.stderr:  # closed once read: a temporary file per worker
            if code != 0 or self.result is None:
                self.stderr.seek(0)
                tail = self.stderr.read().strip().splitlines()[-15:]
                return {"error": f"worker exited with {code}: " + "\n".join(tail), "wall_s": wall}
        self.result["wall_s"] = wall
        self.result["lockstep"] = True
        return self.result


def run_lockstep_round(script: str, frameworks, args_for, a, tag: str) -> dict:
    """One round under ``--lockstep``: every framework's worker is started (one at a time,
    each waiting until it is set up), then they take turns, one epoch each, in the order
    A B C, C B A, A B C, ... until every worker is done; returns {framework: result}."""
    workers = {}
    for fw in frameworks:
        print(f"[{tag}] starting {fw} ...", file=sys.stderr, flush=True)
        workers[fw] = _LockstepWorker(os.path.abspath(script), args_for(fw), a.threads, pin=not a.no_pin)
        workers[fw].wait_ready()
    turn = 0
    while True:
        alive = [fw for fw in frameworks if not workers[fw].finished]
        if not alive:
            break
        for fw in (alive if turn % 2 == 0 else alive[::-1]):
            workers[fw].take_turn()
        turn += 1
        print(f"[{tag}] turn {turn} done", file=sys.stderr, flush=True)
    return {fw: w.finish() for fw, w in workers.items()}


def paired_ratios(mv: dict, other: dict) -> list[float]:
    """microvae's epoch time ÷ the other's, epoch by epoch within each round (epochs 2..N),
    for results measured under ``--lockstep``; [] otherwise."""
    if not (mv.get("lockstep") and other.get("lockstep")):
        return []
    ratios = []
    for mine, theirs in zip(mv.get("epoch_s_by_round", [mv.get("epoch_s", [])]),
                            other.get("epoch_s_by_round", [other.get("epoch_s", [])])):
        pairs = list(zip(mine, theirs))
        ratios += [m / t for m, t in steady(pairs) if t > 0]
    return ratios


def run_frameworks(script: str, frameworks, worker_args: list, a, tag: str) -> dict:
    """Run each framework's worker of ``script`` in its own process, one after another, for
    ``a.rounds`` rounds (framework order A, B, C, A, B, C, ...); returns {framework: result}
    with the rounds merged (``merge_rounds``) and a ``summary`` of epoch times added.

    Rounds guard the ratios against the machine's own drift (other tenants, turbo, memory
    traffic): every framework is timed early and late in the run, not once each. Round r
    trains with seed ``a.seed + r``: every side is deterministic, so one seed per round makes
    the median test ELBO a median over seeds (which move it by about a nat after 10 epochs),
    not one figure repeated.
    """
    rounds = max(1, int(getattr(a, "rounds", 1) or 1))
    runs: dict = {fw: [] for fw in frameworks}

    def args_for(fw, r=0):
        args = ["--worker", fw, *worker_args, "--epochs", str(a.epochs), "--seed", str(a.seed + r), "--threads", str(a.threads)]
        return args + (["--limit", str(a.limit)] if a.limit is not None else [])

    if getattr(a, "lockstep", False):
        for r in range(rounds):
            print(f"[{tag}] lockstep round {r + 1}/{rounds}", file=sys.stderr, flush=True)
            round_args = lambda fw, r=r: args_for(fw, r)  # noqa: E731
            for fw, res in run_lockstep_round(script, frameworks, round_args, a, tag).items():
                runs[fw].append(res)
        return {fw: merge_rounds(rs) for fw, rs in runs.items()}
    for r in range(rounds):
        for fw in frameworks:
            if runs[fw] and ("skipped" in runs[fw][-1] or "error" in runs[fw][-1]):
                continue  # a framework that is absent or failed is not tried again
            args = args_for(fw, r)
            which = f"{fw} (round {r + 1}/{rounds})" if rounds > 1 else fw
            print(f"[{tag}] running {which} ...", file=sys.stderr, flush=True)
            res = run_worker(os.path.abspath(script), args, threads=a.threads, echo_stderr=a.verbose, pin=not a.no_pin)
            runs[fw].append(res)
            state = ("skipped" if "skipped" in res else "error" if "error" in res
                     else f"{summarize(res['epoch_s'])['median_s']:.3f} s/epoch")
            print(f"[{tag}] {which}: {state}", file=sys.stderr, flush=True)
    return {fw: merge_rounds(rs) for fw, rs in runs.items()}


def merge_rounds(runs: list[dict]) -> dict:
    """One result from a framework's rounds: the first round's fields, with the epoch times
    of every round (the first epoch of each dropped as warm-up) summarised together, the
    median test ELBO and last training loss, the per-round medians and ELBOs kept for the
    report, and fit's per-call overhead over every round's epochs 2..N (``fit_overhead_s``)."""
    failed = [r for r in runs if "skipped" in r or "error" in r]
    if failed:
        return failed[0]
    merged = dict(runs[0])
    times = [runs[0]["epoch_s"][0]] + [t for r in runs for t in steady(r["epoch_s"])]
    merged["summary"] = summarize(times)
    if len(runs) > 1:  # summarize saw the rounds' epochs as one run: "2..28" for 3 rounds of 10
        merged["summary"]["epochs_used"] = (f"{summarize(runs[0]['epoch_s'])['epochs_used']} of each of "
                                            f"{len(runs)} rounds")
    merged["rounds"] = len(runs)
    merged["epoch_s_by_round"] = [r["epoch_s"] for r in runs]
    merged["round_median_s"] = [summarize(r["epoch_s"])["median_s"] for r in runs]
    if all("test_elbo" in r for r in runs):
        merged["round_test_elbos"] = [r["test_elbo"] for r in runs]
        merged["test_elbo"] = statistics.median(merged["round_test_elbos"])
    for key in ("paired_floor", "paired_own_floor"):
        if all(key in r for r in runs):
            merged[key] = [r[key] for r in runs]
    if all(r.get("train_loss") for r in runs):
        merged["last_train_loss"] = statistics.median(r["train_loss"][-1] for r in runs)
    if all("fit_call_s" in r for r in runs):
        merged["fit_overhead_s"] = [f - e for r in runs for f, e in zip(steady(r["fit_call_s"]), steady(r["epoch_s"]))]
    return merged


def fit_overhead_note(result: dict) -> str | None:
    """The note on what each fit(epochs=1) call adds to microvae's epoch (its data check):
    the median over epochs 2..N of every round, or None where fit's calls were not timed."""
    extra = result.get("fit_overhead_s")
    if not extra:
        return None
    return (f"microvae's s/epoch is fit's own per-epoch `seconds` (the epoch loop); each fit(epochs=1) call also "
            f"checks the whole dataset first: +{statistics.median(extra):.3f} s per call, not counted.")
