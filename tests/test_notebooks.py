"""Every notebook in notebooks/ runs top to bottom without an error (they assert their own results)."""

import difflib
import importlib.util
import json
import pathlib
import time

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _runner():
    """notebooks/run_notebooks.py, which executes the notebooks and records where."""
    spec = importlib.util.spec_from_file_location("run_notebooks", NOTEBOOKS[0].parent / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


_executed = {}  # path → the notebook as a fresh run left it, shared by the two tests below


def _fresh_run(path):
    if path not in _executed:
        runner = _runner()
        started = time.perf_counter()
        _executed[path] = runner.execute(path)  # raises CellExecutionError, naming the cell, if any cell fails
        print(f"{path.name}: {time.perf_counter() - started:.1f} s")
    return _executed[path]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path):
    """It runs without an error (the notebooks assert their own results)."""
    pytest.importorskip("nbformat")
    nb = _fresh_run(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_prints_what_is_stored(path):
    """Where the stored outputs were made in this environment (same libraries, CPU, BLAS
    kernels, threads), a fresh run prints exactly the stored text, wall times aside: stale
    printed outputs fail. Elsewhere float32 numbers may differ in their last digits, and the
    comparison is skipped, with the reason shown (``-rs``). Markdown and pictures are not compared."""
    pytest.importorskip("nbformat")
    runner = _runner()
    stored = json.loads(path.read_text(encoding="utf-8"))
    recorded = stored.get("metadata", {}).get(runner.METADATA_KEY, {}).get("executed_with")
    assert recorded, f"{path.name} has no record of where it was executed: run python3 notebooks/run_notebooks.py"
    if recorded != runner.environment():
        pytest.skip(f"{path.name}: stored outputs not compared (executed with {recorded}, this is {runner.environment()})")
    before, after = runner.text_outputs(stored), runner.text_outputs(_fresh_run(path))
    if before != after:
        diff = difflib.unified_diff([f"[cell {i}] {line}" for i, t in before for line in t.splitlines()],
                                    [f"[cell {i}] {line}" for i, t in after for line in t.splitlines()],
                                    "stored", "fresh run", lineterm="", n=0)
        pytest.fail(f"{path.name}: its stored outputs are not what the code prints now; run python3 "
                    "notebooks/run_notebooks.py and update the figures quoted from them\n" + "\n".join(list(diff)[:40]))


def test_stored_outputs_are_compared_as_text_with_wall_times_masked():
    runner = _runner()
    nb = {"cells": [{"cell_type": "markdown", "source": "3 s"}, {"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": ["trained in 3.9 s; epoch 0.92s\n", "6 models, "]},
        {"output_type": "stream", "name": "stdout", "text": "3 seeds, 2 s\n"},  # one print, cut in two messages
        {"output_type": "execute_result", "data": {"text/plain": "0.25"}}]}]}
    assert runner.text_outputs(nb) == [(1, "0.25"), (1, "trained in <seconds>; epoch <seconds>\n6 models, 3 seeds, <seconds>\n")]
