"""Execute the notebooks in place, as tests/test_notebooks.py runs them, and record where.

    python3 notebooks/run_notebooks.py                 # every notebook
    python3 notebooks/run_notebooks.py 02 05           # those whose names start so

Each notebook is run top to bottom in a fresh kernel with one OpenBLAS thread (as the test
does) and written back with its outputs and, in its metadata, the environment that decides
its float32 numbers bit for bit (``environment()``). In that same environment the test
holds the stored text outputs equal to a fresh run's, timings aside; elsewhere it only
checks that the notebook runs. Numbers quoted in a notebook's prose or in README.md come
from these outputs: after running this, check them (``git diff``).
"""

from __future__ import annotations

import os
import pathlib
import platform
import re
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
METADATA_KEY = "microvae"

# "trained in 3.9 s", "0.92s" (fit's epoch summary): wall times, which no two runs share
_SECONDS = re.compile(r"\b\d+(?:\.\d+)?\s?s\b")


def environment() -> dict:
    """What a notebook's float32 numbers depend on, besides the code: library versions, the
    CPU that Numba compiles for, the kernels NumPy's OpenBLAS runs, microvae's chunk threads."""
    import llvmlite.binding
    import numba
    import numpy

    from microvae import threads

    return {"python": platform.python_version(), "numpy": numpy.__version__, "numba": numba.__version__,
            "numba_cpu": llvmlite.binding.get_host_cpu_name(), "openblas_core": threads.blas_core(),
            "chunk_threads": threads.chunk_threads()}


def text_outputs(nb) -> list:
    """(cell index, text) of every code cell that prints or returns text, wall times masked.

    A cell's printed text is joined into one string per stream: how the kernel cuts a stream
    into messages depends on timing."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        parts = {}
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                key, text = output["name"], output["text"]
            elif "data" in output and "text/plain" in output["data"] and "image/png" not in output["data"]:
                key, text = "result", output["data"]["text/plain"]
            else:
                continue
            parts[key] = parts.get(key, "") + ("".join(text) if isinstance(text, list) else text)
        found += [(index, _SECONDS.sub("<seconds>", parts[key])) for key in sorted(parts)]
    return found


def kernel_name() -> str:
    """A registered Jupyter kernel for this Python (registered here if ipykernel's is missing)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        import subprocess

        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", "python3"], check=True,
                       capture_output=True)
    return "python3"


def execute(path, timeout: int = 300):
    """Run the notebook at ``path`` in a fresh kernel (one OpenBLAS thread); return it, executed."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    # One BLAS thread: the notebooks multiply small matrices, where OpenBLAS's extra threads
    # only spin against each other (and against other processes on a shared machine).
    saved = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # the kernel inherits this environment
    try:
        NotebookClient(nb, timeout=timeout, kernel_name=kernel_name(), allow_errors=False,
                       resources={"metadata": {"path": str(pathlib.Path(path).parent)}}).execute()
    finally:
        if saved is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = saved
    return nb


def main(argv=None) -> int:
    import nbformat

    sys.path.insert(0, str(HERE.parent))  # this checkout's microvae, as the notebooks import it
    prefixes = (argv if argv is not None else sys.argv[1:]) or [""]
    paths = [p for p in sorted(HERE.glob("*.ipynb")) if any(p.name.startswith(prefix) for prefix in prefixes)]
    if not paths:
        print(f"no notebook in {HERE} starts with {' or '.join(prefixes)}", file=sys.stderr)
        return 2
    for path in paths:
        started = time.perf_counter()
        nb = execute(path)
        nb.metadata[METADATA_KEY] = {"executed_with": environment()}
        nbformat.write(nb, str(path))
        print(f"{path.name}: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
