"""The benchmarks' lockstep protocol (bench/_common.py): workers take turns, one epoch each.

The benchmarks themselves are not run here; a stand-in worker script records when each of
its epochs starts and ends, so the test can check that no two workers' epochs overlap.
"""

import importlib.util
import io
import json
import os
import sys
import textwrap
import types

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


@pytest.fixture()
def common():
    spec = importlib.util.spec_from_file_location("bench_common_under_test", os.path.join(BENCH, "_common.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_epoch_turns_without_lockstep_is_a_plain_range(common, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert list(common.epoch_turns(3)) == [0, 1, 2]
    assert capsys.readouterr().out == ""


def test_epoch_turns_waits_for_a_turn_before_each_epoch_and_one_after_the_last(common, monkeypatch, capsys):
    stdin = io.StringIO("go\ngo\ngo\nleft over\n")
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(common, "LOCKSTEP", True)
    seen = []
    for epoch in common.epoch_turns(2):
        seen.append((epoch, stdin.tell()))
    assert [e for e, _ in seen] == [0, 1]
    assert seen[0][1] == len("go\n") and seen[1][1] == 2 * len("go\n")  # one line read before each epoch
    assert stdin.readline() == "left over\n"  # and exactly one more after the last
    assert capsys.readouterr().out.split() == [common.READY, common.TURN_DONE, common.TURN_DONE]


def test_paired_ratios_pair_epoch_k_with_epoch_k_and_skip_the_warm_up(common):
    mv = {"lockstep": True, "epoch_s_by_round": [[9.0, 2.0, 3.0], [9.0, 4.0, 6.0]]}
    ref = {"lockstep": True, "epoch_s_by_round": [[1.0, 1.0, 2.0], [1.0, 4.0, 2.0]]}
    assert common.paired_ratios(mv, ref) == [2.0, 1.5, 1.0, 3.0]
    assert common.paired_ratios({**mv, "lockstep": False}, ref) == []  # sequential runs are not paired


WORKER = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {bench!r})
    import _common as C
    name, epochs = sys.argv[1], int(sys.argv[2])
    C.LOCKSTEP = "--lockstep" in sys.argv
    if name == "absent":
        C.emit({{"skipped": "not installed"}})
        sys.exit()
    spans = []
    for _ in C.epoch_turns(epochs):
        start = time.time()
        time.sleep(0.05)
        spans.append((start, time.time()))
    C.emit({{"framework": name, "epoch_s": [e - s for s, e in spans], "spans": spans}})
""")


def test_lockstep_round_runs_the_workers_in_turns_without_overlap(common, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(bench=BENCH))
    turns = {"a": 3, "b": 2, "absent": 1}
    a = types.SimpleNamespace(threads=1, no_pin=True)
    results = common.run_lockstep_round(str(script), list(turns), lambda fw: [fw, str(turns[fw])], a, "test")
    assert results["absent"]["skipped"] == "not installed"
    spans = {fw: results[fw]["spans"] for fw in ("a", "b")}
    assert [len(spans["a"]), len(spans["b"])] == [3, 2]
    assert all(results[fw]["lockstep"] for fw in ("a", "b"))
    ordered = sorted((s, e, fw) for fw in spans for s, e in spans[fw])
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(ordered, ordered[1:])), ordered  # never two at once
    # turns alternate A B, B A, A: epoch k of each worker is next to the other's epoch k
    assert [fw for _, _, fw in ordered] == ["a", "b", "b", "a", "a"]
    json.dumps(results)  # the merged results stay JSON-serialisable


def test_lockstep_round_reports_a_worker_that_crashes(common, tmp_path):
    script = tmp_path / "crash.py"
    script.write_text("import sys\nprint('@@ready', flush=True)\nsys.stdin.readline()\nraise SystemExit('boom')\n")
    a = types.SimpleNamespace(threads=1, no_pin=True)
    results = common.run_lockstep_round(str(script), ["x"], lambda fw: [], a, "test")
    assert "error" in results["x"] and "boom" in results["x"]["error"]
