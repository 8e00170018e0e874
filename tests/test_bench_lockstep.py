"""The benchmarks' lockstep protocol (bench/_common.py): workers take turns, one epoch each.

The benchmarks themselves are not run here; a stand-in worker script records when each of
its epochs starts and ends, so the test can check that no two workers' epochs overlap.
"""

import io
import json
import os
import sys
import textwrap
import types

import pytest

from _bench import BENCH, load_bench


@pytest.fixture()
def common():
    return load_bench("_common")


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


# --------------------------------------------------------------------------- statistics and the table
def test_summarize_is_the_median_and_range_of_epochs_2_to_n(common):
    """The headline is the median of epochs 2..N (not the mean, not 1..N-1), the range their
    min–max, epoch 1 is reported on its own; one epoch is used as it is."""
    s = common.summarize([9.0, 1.0, 5.0, 2.0])
    assert (s["median_s"], s["min_s"], s["max_s"], s["first_epoch_s"]) == (2.0, 1.0, 5.0, 9.0)
    assert s["epochs_used"] == "2..4"
    assert common.summarize([9.0, 3.0])["median_s"] == 3.0  # two epochs: the warm-up one is dropped too
    one = common.summarize([7.0])
    assert (one["median_s"], one["first_epoch_s"], one["epochs_used"]) == (7.0, 7.0, "1 (includes warm-up)")
    assert common.epochs_used(types.SimpleNamespace(epochs=10, rounds=3)) == "2..10 of each of 3 rounds"
    assert common.epochs_used(types.SimpleNamespace(epochs=10, rounds=1)) == "2..10"


def _round(epoch_s, elbo, **extra):
    return {"framework": "x", "epoch_s": epoch_s, "train_loss": [300.0, 260.5], "test_elbo": elbo, "params": 1000,
            "n_train": 300, "n_test": 100, **extra}


def test_merge_rounds_drops_each_rounds_first_epoch_and_takes_the_median_elbo(common):
    """Rounds merged: the steady epochs of every round together (each round's epoch 1
    dropped), epoch 1 of the first round shown, per-round medians over epochs 2..N, and the
    median (not the mean) of the rounds' test ELBOs."""
    merged = common.merge_rounds([_round([9.0, 1.0, 2.0], -100.0), _round([8.0, 3.0, 10.0], -90.0),
                                  _round([7.0, 4.0, 5.0], -50.0)])
    s = merged["summary"]
    assert (s["median_s"], s["min_s"], s["max_s"], s["first_epoch_s"]) == (3.5, 1.0, 10.0, 9.0)  # over 1 2 3 10 4 5
    assert merged["round_median_s"] == [1.5, 6.5, 4.5]
    assert merged["round_test_elbos"] == [-100.0, -90.0, -50.0] and merged["test_elbo"] == -90.0
    assert merged["rounds"] == 3 and merged["epoch_s_by_round"] == [[9.0, 1.0, 2.0], [8.0, 3.0, 10.0], [7.0, 4.0, 5.0]]
    assert s["epochs_used"] == "2..3 of each of 3 rounds"  # as the report's footer says, not "2..7"
    assert common.merge_rounds([_round([9.0, 1.0, 2.0], -1.0)])["summary"]["epochs_used"] == "2..3"


def test_merge_rounds_takes_the_median_last_train_loss_and_every_rounds_fit_overhead(common):
    """The table's last training loss is the median over rounds, as the test ELBO is, and fit's
    per-call overhead is collected from epochs 2..N of every round, not round 1's alone."""
    rounds = [_round([9.0, 1.0, 2.0], -1.0, fit_call_s=[9.5, 1.3, 2.1]),
              {**_round([8.0, 3.0, 10.0], -1.0, fit_call_s=[8.1, 3.2, 10.6]), "train_loss": [300.0, 250.0]},
              {**_round([7.0, 4.0, 5.0], -1.0, fit_call_s=[7.2, 4.4, 5.1]), "train_loss": [300.0, 240.0]}]
    merged = common.merge_rounds(rounds)
    assert merged["last_train_loss"] == 250.0  # of 260.5, 250, 240
    assert merged["fit_overhead_s"] == pytest.approx([0.3, 0.1, 0.2, 0.6, 0.4, 0.1])
    table, _ = common.results_table({"microvae": merged}, LABELS, 3)
    assert "| 250.000 | 1000 |" in table.splitlines()[2], table
    assert "+0.250 s per call" in common.fit_overhead_note(merged)  # the median of six: (0.2 + 0.3) / 2
    assert common.fit_overhead_note(common.merge_rounds([_round([9.0, 1.0], -1.0)])) is None


def test_merge_rounds_reports_a_failure_in_any_round_and_keeps_every_paired_floor(common):
    """A framework that failed or was skipped in any round is reported as such, not merged;
    microvae's paired floor is kept for every round."""
    ok = _round([9.0, 1.0], -1.0, paired_floor={"epoch_s": [2.0, 0.5]})
    assert common.merge_rounds([ok, {"error": "boom"}]) == {"error": "boom"}
    assert common.merge_rounds([{"skipped": "absent"}]) == {"skipped": "absent"}
    later = _round([8.0, 2.0], -1.0, paired_floor={"epoch_s": [3.0, 0.7]})
    assert common.merge_rounds([ok, later])["paired_floor"] == [{"epoch_s": [2.0, 0.5]}, {"epoch_s": [3.0, 0.7]}]
    assert "paired_own_floor" not in common.merge_rounds([ok, later])  # results from before it was timed
    own = [_round([9.0, 1.0], -1.0, paired_own_floor={"epoch_s": [1.0, 0.4]}),
           _round([8.0, 2.0], -1.0, paired_own_floor={"epoch_s": [1.5, 0.6]})]
    assert common.merge_rounds(own)["paired_own_floor"] == [{"epoch_s": [1.0, 0.4]}, {"epoch_s": [1.5, 0.6]}]


LABELS = {"microvae": "microvae", "torch": "PyTorch", "jax": "JAX"}


def test_results_table_rows_ratios_and_notes_with_a_reference_absent(common):
    """The table from fixed figures: median, min–max, epoch 1, microvae ÷ row (microvae's own
    row 1.000), ELBO, last train loss; a skipped framework becomes a note and the rows after it
    are still printed; per-round medians and ELBOs are listed under a multi-round table."""
    results = {"microvae": common.merge_rounds([_round([9.0, 1.5, 2.0], -262.1), _round([8.0, 3.0, 2.5], -261.0)]),
               "torch": {"skipped": "torch not importable (ImportError: x)"},
               "jax": common.merge_rounds([_round([5.0, 4.0, 4.5], -250.0), _round([6.0, 3.5, 4.0], -249.0)])}
    table, notes = common.results_table(results, LABELS, 3)
    rows = table.splitlines()
    assert rows[2] == "| microvae | 2.250 | 1.500–3.000 | 9.000 | 1.000 | -261.550 | 260.500 | 1000 |", table
    assert rows[3] == "| JAX | 4.000 | 3.500–4.500 | 5.000 | 0.562 | -249.500 | 260.500 | 1000 |", table
    assert len(rows) == 4
    assert "- PyTorch: skipped — torch not importable (ImportError: x)" in notes
    assert "- microvae: medians per round 1.750, 2.750 s/epoch; test ELBO per round (seeds SEED, SEED + 1, ...) -262.10, -261.00" in notes
    assert not any("paired" in n for n in notes)  # sequential rounds are not paired


def test_results_table_paired_note_is_median_and_range_of_microvae_over_this(common):
    """Under --lockstep the note under the table is microvae ÷ that framework, epoch k with
    epoch k (epochs 2..N): the median of the ratios, their min–max and their count."""
    mv = common.merge_rounds([{**_round([9.0, 2.0, 3.0, 8.0], -1.0), "lockstep": True}])
    jax = common.merge_rounds([{**_round([5.0, 1.0, 2.0, 2.0], -1.0), "lockstep": True}])
    _, notes = common.results_table({"microvae": mv, "jax": jax}, LABELS, 4)
    assert notes == ["- JAX: paired per-epoch ratio (microvae ÷ this, epochs taken in turns): median **2.00**, "
                     "range 1.50–4.00 over 3 pairs"]  # ratios 2, 1.5, 4


# --------------------------------------------------------------------------- launching workers
ENV_PROBE = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {bench!r})
    import _common as C
    C.LOCKSTEP = "--lockstep" in sys.argv
    print("{{progress, not JSON", flush=True)
    for _ in C.epoch_turns(1):
        pass
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "XLA_FLAGS",
            "PYTHONPATH", "NUMBA_CACHE_DIR")
    print(json.dumps({{"first": True}}))
    C.emit({{"env": {{k: os.environ.get(k) for k in keys}}, "cpus": sorted(os.sched_getaffinity(0))}})
    print("{{trailing, not JSON")
""")


def _probe(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(ENV_PROBE.format(bench=BENCH))
    return str(script)


def _parent_env(monkeypatch):
    """A parent whose own settings differ from what the workers must get."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.setenv(var, "7")
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/nowhere")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")


def _assert_worker_env(env, threads):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        assert env[var] == str(threads), (var, env)
    assert env["XLA_FLAGS"] == "--xla_dump_to=/nowhere --xla_cpu_multi_thread_eigen=true"  # kept, flag appended
    root = os.path.dirname(BENCH)
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "/elsewhere"]  # this checkout's microvae first


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_run_worker_sets_threads_env_pins_cpus_and_reads_the_last_json_line(common, tmp_path, monkeypatch):
    """A worker gets the thread counts whatever the parent's environment says, the parent's
    XLA_FLAGS plus the thread flag, this checkout first on PYTHONPATH, the extra environment,
    and the first `threads` of the parent's CPUs; its result is its last JSON line, plus wall_s."""
    _parent_env(monkeypatch)
    res = common.run_worker(_probe(tmp_path), [], threads=3, extra_env={"NUMBA_CACHE_DIR": "/tmp/cache-x"}, pin=False)
    assert "first" not in res and res["wall_s"] > 0, res
    _assert_worker_env(res["env"], 3)
    assert res["env"]["NUMBA_CACHE_DIR"] == "/tmp/cache-x"
    allowed = sorted(os.sched_getaffinity(0))
    assert res["cpus"] == allowed  # not pinned
    if len(allowed) >= 2:
        assert common.run_worker(_probe(tmp_path), [], threads=1, pin=True)["cpus"] == allowed[:1]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_lockstep_workers_get_the_same_env_and_cpus_as_sequential_ones(common, tmp_path, monkeypatch):
    """Under --lockstep too: thread counts, XLA_FLAGS, PYTHONPATH and pinning to the first
    `threads` CPUs; a stray line starting with '{' that is not JSON is skipped."""
    _parent_env(monkeypatch)
    allowed = sorted(os.sched_getaffinity(0))
    a = types.SimpleNamespace(threads=1, no_pin=False)
    res = common.run_lockstep_round(_probe(tmp_path), ["x"], lambda fw: [], a, "test")["x"]
    assert "error" not in res, res
    _assert_worker_env(res["env"], 1)
    assert res["cpus"] == allowed[:1]


# --------------------------------------------------------------------------- run_frameworks
def _fake_worker(calls, answers):
    def run_worker(script, args, threads=None, echo_stderr=False, pin=True, **kw):
        fw = args[args.index("--worker") + 1]
        calls.append({"fw": fw, "args": args, "threads": threads, "pin": pin})
        return dict(answers[fw])
    return run_worker


def test_run_frameworks_interleaves_rounds_and_passes_the_options(common, monkeypatch):
    """Sequential rounds run A B C, A B C; a skipped framework is not tried again; every worker
    gets --epochs, --seed, --threads, --limit and the script's own arguments, the threads and
    the pinning choice."""
    calls = []
    answers = {"microvae": {"epoch_s": [5.0, 1.0]}, "torch": {"skipped": "absent"}, "jax": {"epoch_s": [6.0, 2.0]}}
    monkeypatch.setattr(common, "run_worker", _fake_worker(calls, answers))
    a = types.SimpleNamespace(epochs=2, seed=5, threads=3, limit=200, rounds=2, lockstep=False, verbose=False, no_pin=True)
    results = common.run_frameworks("bench_x.py", ["microvae", "torch", "jax"], ["--hidden", "8"], a, "test")
    assert [c["fw"] for c in calls] == ["microvae", "torch", "jax", "microvae", "jax"]
    for c, seed in zip(calls, ["5", "5", "5", "6", "6"]):  # round r: seed 5 + r
        assert c["args"] == ["--worker", c["fw"], "--hidden", "8", "--epochs", "2", "--seed", seed, "--threads", "3",
                             "--limit", "200"]
        assert (c["threads"], c["pin"]) == (3, False)
    assert results["microvae"]["rounds"] == 2 and results["torch"] == {"skipped": "absent"}
    calls.clear()
    common.run_frameworks("bench_x.py", ["jax"], [], types.SimpleNamespace(**{**vars(a), "limit": None, "rounds": 1}), "t")
    assert "--limit" not in calls[0]["args"]


def test_run_frameworks_with_lockstep_runs_lockstep_rounds(common, monkeypatch):
    """--lockstep goes through run_lockstep_round, once per round, never run_worker."""
    monkeypatch.setattr(common, "run_worker", lambda *args, **kw: pytest.fail("sequential worker started"))
    rounds = []

    def lockstep_round(script, frameworks, args_for, a, tag):
        rounds.append(args_for("jax"))
        return {fw: {"epoch_s": [3.0, 1.0 + len(rounds)], "lockstep": True} for fw in frameworks}

    monkeypatch.setattr(common, "run_lockstep_round", lockstep_round)
    a = types.SimpleNamespace(epochs=2, seed=0, threads=2, limit=None, rounds=2, lockstep=True, verbose=False, no_pin=True)
    results = common.run_frameworks("bench_x.py", ["microvae", "jax"], [], a, "test")
    assert len(rounds) == 2 and rounds[0][:2] == ["--worker", "jax"]
    assert [r[r.index("--seed") + 1] for r in rounds] == ["0", "1"]  # one seed per round, as without lockstep
    assert results["jax"]["epoch_s_by_round"] == [[3.0, 2.0], [3.0, 3.0]]
