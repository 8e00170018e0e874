"""Every notebook in notebooks/ runs top to bottom without an error (they assert their own results)."""

import json
import pathlib
import time

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _kernel_name():
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:  # ipykernel is installed but its kernelspec is not registered
        import subprocess
        import sys

        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", "python3"], check=True,
                       capture_output=True)
    return "python3"


def test_the_notebooks_are_there():
    names = [p.name for p in NOTEBOOKS]
    for expected in ("01_gradients_by_hand.ipynb", "02_training_a_vae.ipynb", "03_beta_vae_disentanglement.ipynb",
                     "04_conditional_vae.ipynb", "05_convolutional_vae.ipynb", "06_aae_and_recurrent_models.ipynb",
                     "07_applications.ipynb"):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_executed_in_order(path):
    """Committed with its outputs (so it reads well on the web), run once from top to bottom."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert any(o["output_type"] in ("display_data", "stream", "execute_result") for c in code for o in c["outputs"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code"
    # The kernel inherits this environment. One BLAS thread: the notebooks multiply small
    # matrices, where OpenBLAS's extra threads only spin against each other (and against other
    # processes on a shared machine); the results do not depend on it.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    client = NotebookClient(nb, timeout=300, kernel_name=_kernel_name(), allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    print(f"{path.name}: {time.perf_counter() - started:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
