"""bench/profile_step.py: the per-piece profile of a training step.

One real run on 1024 images (a few seconds): every piece is timed as often as the architecture
says it runs, the pieces fit inside the step, and the printed ratio is the step over its
products. The report's arithmetic is checked on fixed figures."""

import json
import os
import subprocess
import sys

import pytest

from _bench import BENCH, ROOT, load_bench

SCRIPT = os.path.join(BENCH, "profile_step.py")


@pytest.mark.parametrize("size, layers", [("examples", 4), ("textbook", 6)])
def test_a_real_run_times_each_piece_as_often_as_the_model_runs_it(tmp_path, size, layers):
    out = tmp_path / "profile.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--size", size, "--epochs", "1", "--limit", "1024", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())["result"]
    pieces = result["pieces"]
    assert result["n_train"] == 1024 and result["steps"] == 2 * 8  # warm-up and profiled epoch, 8 batches each
    calls = {label: piece["calls"] for label, piece in pieces.items()}
    # every Dense layer one forward and one weight-gradient product; all but the first an input gradient;
    # two fused bias+ReLU layers a side (the hidden layers), one of everything else
    assert calls["matmul"] == calls["matmul_tn"] == layers and calls["matmul_nt"] == layers - 1, calls
    assert calls["bias_relu_forward"] == calls["bias_relu_backward"] == layers - 2, calls
    for single in ("step", "adam_update", "likelihood", "bernoulli_nll_logits", "reparam_forward", "normal",
                   "reparam_backward", "kl_normal", "clamp_logvar"):
        assert calls[single] == 1, (single, calls)
    step = pieces["loop"]["us"]
    module = load_bench("profile_step")
    outside = sum(p["us"] for label, p in pieces.items() if label != "loop" and label not in module.NESTED)
    assert 0 < outside < pieces["step"]["us"] < step  # the gather and the checks lie outside _train_batch
    assert pieces["bernoulli_nll_logits"]["us"] < pieces["likelihood"]["us"]
    assert pieces["normal"]["us"] < pieces["reparam_forward"]["us"]
    products = sum(pieces[p]["us"] for p in module.PRODUCTS)
    ratios = result["step_over_products"]
    assert len(ratios) == 1 and abs(ratios[0] - step / products) < 1e-9  # one profiled epoch: its ratio is the table's
    assert f"Step ÷ its products (as they run in training; the median over epochs): **{ratios[0]:.2f}**" in proc.stdout
    assert "| all products |" in proc.stdout and "### Which kernels ran" in proc.stdout


def test_the_report_adds_up_on_fixed_figures(capsys):
    module = load_bench("profile_step")
    us = {label: 10.0 for label, _ in module.PIECES}
    us.update(loop=1000.0, step=950.0, matmul=300.0, matmul_tn=250.0, matmul_nt=150.0)
    res = {"pieces": {label: {"us": v, "calls": 1.0} for label, v in us.items()}, "step_over_products": [1.4, 1.5],
           "epoch_s": [0.5, 0.6], "n_train": 640, "report": {"backend": "x"}, "threads": {}}
    module.print_report(res, "examples")
    out = capsys.readouterr().out
    # 15 pieces: the step (the loop), 3 products, 3 nested (_train_batch and two, not counted again)
    # and 8 others at 10 µs
    assert "| all products | 700.0 | 70.0 |" in out
    assert "| the whole training step (the epoch loop ÷ its steps) | 1000.0 | 100.0 |  |" in out
    assert "|   in it: the model's _train_batch | 950.0 | 95.0 | 1.0 |" in out
    assert "| the rest (Python, bias adds and sums, the batch gather and checks, the timers) | 220.0 | 22.0 |" in out
    assert ("the median over epochs): **1.45** (per epoch 1.40–1.50); outside the products: 300 µs a step, where a 1.10× "
            "target leaves 70 µs") in out


@pytest.mark.parametrize("argv, option", [(["--epochs", "0"], "--epochs"), (["--limit", "0"], "--limit"),
                                          (["--threads", "0"], "--threads"), (["--size", "huge"], "--size")])
def test_out_of_range_options_are_refused(argv, option, capsys):
    module = load_bench("profile_step")
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    assert exc.value.code == 2 and option in capsys.readouterr().err
