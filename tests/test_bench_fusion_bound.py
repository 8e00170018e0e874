"""bench/probe_fusion_bound.py: the bound on step ÷ products that the elementwise kernels set.

One real run with few repeats (a few seconds): every figure is there and positive, the parameter
count and hidden layers are the size's, and the printed bounds are the report's arithmetic,
which is also checked on fixed figures."""

import json
import os
import subprocess
import sys

from _bench import BENCH, ROOT, load_bench

SCRIPT = os.path.join(BENCH, "probe_fusion_bound.py")


def test_a_real_run_reports_every_kernel_at_both_sizes(tmp_path):
    out = tmp_path / "bound.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--steps", "2", "--repeats", "2", "--rounds", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())["results"]
    assert results["textbook"]["params"] == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 4 + 4 + 2 * 256 + 256 \
        + 256 * 512 + 512 + 512 * 784 + 784
    assert results["examples"]["params"] == 784 * 400 + 400 + 400 * 40 + 40 + 20 * 400 + 400 + 400 * 784 + 784
    assert results["textbook"]["hidden_layers"] == [512, 256, 256, 512] and results["examples"]["hidden_layers"] == [400, 400]
    for res in results.values():
        for key in ("products_us", "adam_us", "loss_us", "bias_relu_forward_us", "bias_relu_backward_us"):
            assert res[key] > 0, key
        products = res["products_us"]
        hot = (products + res["adam_us"] + res["loss_us"] + res["bias_relu_forward_us"] + res["bias_relu_backward_us"]) / products
        assert f"the kernels as they run on cached operands **{hot:.3f}**" in proc.stdout
    assert proc.stdout.count("### Which kernels ran") == 2


def test_the_report_adds_up_on_fixed_figures(capsys):
    module = load_bench("probe_fusion_bound")
    module.print_report({"products_us": 1000.0, "adam_us": 60.0, "loss_us": 20.0, "bias_relu_forward_us": 5.0, "bias_relu_backward_us": 15.0, "params": 1234,
                         "hidden_layers": [400, 400], "report": {}, "threads": {}}, "examples")
    out = capsys.readouterr().out
    assert "cached operands **1.100**. The target is 1.10: it leaves 100 µs, and these kernels take 100." in out
    assert "| Adam update, 1,234 parameters, operands in cache | 60.0 | 0.060 |" in out
