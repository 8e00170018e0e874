"""The command line: help, the main job, sampling, gradcheck, and clean failures."""

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from _absent import make_absent

import microvae as mv
from microvae.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 1000, path
    import matplotlib.image

    assert matplotlib.image.imread(str(path)).ndim == 3


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["sample", "--help"], ["evaluate", "--help"],
                                  ["gradcheck", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: microvae" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert "COMMAND" in captured.err and not captured.out  # a usage error goes where argparse puts its own


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"microvae {mv.__version__}"


@pytest.mark.parametrize("hidden", ["512,,256", "512,", ",8"])
def test_hidden_with_an_empty_item_is_refused(hidden, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--hidden", hidden])
    assert "expected comma-separated layer widths like 512,256" in capsys.readouterr().err


def test_python_dash_m_and_console_script():
    out = subprocess.run([sys.executable, "-m", "microvae", "--help"], capture_output=True, text=True, check=True).stdout
    assert "train" in out and "gradcheck" in out
    script = shutil.which("microvae")
    if script is None:
        pytest.fail("the `microvae` console script is not installed (pip install -e .)")
    assert "sample" in subprocess.run([script, "--help"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--data", "sprites", "--limit", "600", "--epochs", "2", "--hidden", "64,32",
                 "--batch-size", "64", "--out", str(out), "--verbose", "0"])
    assert code == 0
    return out


def test_train_writes_checkpoint_history_and_pictures(trained_run):
    out = trained_run
    for name in ("reconstructions", "samples", "latent_scatter", "interpolation", "latent_grid", "loss_curves"):
        _png(out / f"{name}.png")
    model = mv.load(out / "model.npz")
    assert model.epochs_trained == 2 and model.latent_dim == 2 and model.hidden == (64, 32)
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and "val_loss" in history[0]
    assert (out / "history.csv").read_text().startswith("epoch,")


def test_train_with_larger_latent_writes_a_traversal(tmp_path):
    assert main(["train", "--limit", "300", "--epochs", "1", "--hidden", "32", "--latent-dim", "4", "--beta", "4",
                 "--out", str(tmp_path), "--verbose", "0"]) == 0
    _png(tmp_path / "traversal.png")
    assert mv.load(tmp_path / "model.npz").beta == 4.0


@pytest.mark.parametrize("model_name, drawn", [
    ("vae", {"reconstructions", "samples", "interpolation", "traversal", "loss_curves"}),
    ("cvae", {"reconstructions", "samples_by_class", "loss_curves"}),
    ("convvae", {"reconstructions", "samples", "interpolation", "traversal", "loss_curves"}),
    ("aae", {"reconstructions", "samples", "loss_curves"}),
])
def test_a_one_dimensional_latent_trains_and_draws_every_picture_it_can(model_name, drawn, tmp_path):
    """--latent-dim 1 trained, saved the model, then failed on the 2-D latent scatter ("z needs
    at least 2 latent dimensions"), leaving a half-written run that a second try was refused."""
    size = [] if model_name == "convvae" else ["--hidden", "16"]
    assert main(["train", "--model", model_name, "--latent-dim", "1", "--limit", "200", "--epochs", "1", *size,
                 "--out", str(tmp_path), "--verbose", "0"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"model.npz", "history.json", "history.csv"} | {f"{n}.png" for n in drawn}
    for name in drawn:
        _png(tmp_path / f"{name}.png")


def test_sample_command(trained_run, tmp_path, capsys):
    target = tmp_path / "s.png"
    assert main(["sample", str(trained_run / "model.npz"), "-n", "16", "--out", str(target)]) == 0
    _png(target)
    assert "wrote" in capsys.readouterr().out


def test_gradcheck_command_prints_every_check(capsys):
    import re

    from microvae.selfcheck import CHECKS

    # the registry holds a check of each of these (the first word of its title, exactly)
    first_words = {re.split(r"[ ,:]", name)[0] for _, name in CHECKS}
    for name in ("Dense", "ReLU", "Sigmoid", "Tanh", "Conv2D", "Conv2DTranspose", "MaxPool2D", "RNN", "GRU",
                 "bernoulli_nll", "kl_normal", "kl_gaussians", "discriminator_loss", "generator_loss",
                 "reparameterization", "VAE", "CVAE", "ConvVAE", "AAE", "VRAE", "HierarchicalVRAE"):
        assert name in first_words, name
    assert main(["gradcheck"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["what", "check"] and lines[-1] == "all values and gradients agree"
    rows = lines[1:-1]  # one line per check: group, title, max relative error, verdict
    assert len(rows) == len(CHECKS)
    for group, name in CHECKS:
        row = re.compile(re.escape(f"{group:<10} {name}") + r" +\d\.\d\de[+-]\d+  ok")
        assert sum(bool(row.fullmatch(line)) for line in rows) == 1, (group, name)


def test_gradcheck_tolerance_must_be_positive(capsys):
    for tol in ("-1", "0"):
        with pytest.raises(SystemExit) as exit_info:
            main(["gradcheck", "--tol", tol])
        assert exit_info.value.code == 2
        assert "--tol: must be a finite positive number" in capsys.readouterr().err


def _fails_cleanly(argv, capsys, pattern):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and pattern in err, err


def test_bad_arguments_exit_non_zero(capsys):
    for argv in (["train", "--epochs", "0"], ["train", "--data", "cifar"], ["train", "--hidden", "a,b"], ["sample"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "abc"], "--epochs: must be a positive integer, got 'abc'"),
    (["train", "--beta-warmup", "-5"], "--beta-warmup: must be an integer >= 0, got -5"),
    (["train", "--input-dropout", "1.5"], "--input-dropout: must be a number in [0, 1), got 1.5"),
    (["train", "--input-dropout", "1"], "--input-dropout: must be a number in [0, 1), got 1"),
    (["train", "--input-dropout", "-0.1"], "--input-dropout: must be a number in [0, 1), got -0.1"),
    (["train", "--lr", "inf"], "--lr: must be a finite positive number, got inf"),
    (["train", "--beta", "nan"], "--beta: must be a finite number >= 0, got nan"),
    (["train", "--seed", "x"], "--seed: must be an integer >= 0, got 'x'"),
    (["train", "--seed", "-1"], "--seed: must be an integer >= 0, got -1"),
    (["sample", "m.npz", "--seed", "-3"], "--seed: must be an integer >= 0, got -3"),
    (["sample", "m.npz", "--label", "one"], "--label: must be an integer, got 'one'"),
])
def test_bad_numbers_are_named_in_the_options_words(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "_positive_int" not in err, err


def test_train_help_gives_every_default():
    import argparse

    from microvae.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for action in subparsers.choices["train"]._actions:
        if action.option_strings and action.dest not in ("help", "learned_prior", "limit", "backend", "overwrite", "resume"):
            assert "(default:" in (action.help or ""), action.option_strings


def test_unknown_model(capsys, tmp_path):
    _fails_cleanly(["train", "--model", "gan", "--out", str(tmp_path)], capsys, "unknown model")


def test_missing_dataset_is_a_clear_message(monkeypatch, capsys, tmp_path):
    from urllib.error import URLError

    from microvae.datasets import download

    monkeypatch.setenv("MICROVAE_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise URLError("network is unreachable")

    monkeypatch.setattr(download, "_fetch", no_network)
    _fails_cleanly(["train", "--data", "mnist", "--out", str(tmp_path / "o")], capsys, "mnist")


def test_corrupt_checkpoint_is_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    _fails_cleanly(["sample", str(bad), "--out", str(tmp_path / "x.png")], capsys, "not an .npz archive")
    _fails_cleanly(["sample", str(tmp_path / "none.npz")], capsys, "no checkpoint")


def test_sample_given_the_run_folder_points_to_its_model_file(trained_run, capsys, tmp_path):
    _fails_cleanly(["sample", str(trained_run), "--out", str(tmp_path / "x.png")], capsys,
                   f"is a folder, not a checkpoint file; it holds {str(trained_run / 'model.npz')!r}: load that")


def test_label_on_unconditional_model(trained_run, capsys, tmp_path):
    _fails_cleanly(["sample", str(trained_run / "model.npz"), "--label", "1", "--out", str(tmp_path / "x.png")], capsys,
                   "conditional")


@pytest.mark.parametrize(
    "argv, pictures",
    [
        (["--model", "cvae", "--learned-prior", "--data", "fashion-mnist", "--limit", "600"],
         ["reconstructions", "samples_by_class", "latent_scatter", "loss_curves"]),
        (["--model", "convvae", "--limit", "200", "--batch-size", "50"], ["reconstructions", "samples", "latent_grid"]),
        (["--model", "aae", "--prior", "mixture", "--data", "fashion-mnist", "--limit", "600"],
         ["reconstructions", "samples", "latent_vs_prior", "latent_grid"]),
        (["--model", "vrae", "--data", "sinusoids", "--limit", "200"], ["reconstructions", "samples", "loss_curves"]),
        (["--model", "hvrae", "--data", "piano-rolls", "--limit", "200"], ["reconstructions", "samples"]),
        (["--model", "vrae", "--data", "sprites", "--limit", "200", "--cell", "rnn"], ["reconstructions", "samples"]),
    ],
    ids=["cvae", "convvae", "aae-mixture", "vrae-sinusoids", "hvrae-piano", "vrae-image-rows"],
)
def test_train_every_model(argv, pictures, tmp_path):
    model_name = argv[1]
    size = ["--rnn-hidden", "16"] if model_name in ("vrae", "hvrae") else [] if model_name == "convvae" else ["--hidden", "32"]
    assert main(["train", *argv, "--epochs", "1", *size, "--out", str(tmp_path), "--verbose", "0"]) == 0
    for name in pictures:
        _png(tmp_path / f"{name}.png")
    from microvae.cli import RUN_FILES  # what --overwrite clears must name every file a run writes

    assert {p.name for p in tmp_path.iterdir()} <= set(RUN_FILES)
    model = mv.load(tmp_path / "model.npz")
    assert model.epochs_trained == 1
    target = tmp_path / "sampled.png"
    extra = ["--label", "3"] if getattr(model, "needs_labels", False) else []
    extra += ["--length", "16"] if getattr(model, "is_sequence_model", False) else []
    assert main(["sample", str(tmp_path / "model.npz"), "-n", "8", "--out", str(target), *extra]) == 0
    _png(target)


def _built_by_cli(argv, monkeypatch):
    """The model `microvae train <argv>` builds (its fit and pictures skipped)."""
    from microvae import cli

    built = {}

    def stop_after_building(entry_build):
        def build(args, data):
            built["model"] = entry_build(args, data)
            raise cli.CLIError("built")
        return build

    for name, entry in cli.MODELS.items():
        monkeypatch.setattr(entry, "build", stop_after_building(entry.build))
    assert main(["train", *argv]) == 2
    return built["model"]


@pytest.mark.parametrize("model_name", ["vae", "cvae", "convvae", "aae", "vrae", "hvrae"])
def test_options_left_out_take_the_model_classs_defaults(model_name, monkeypatch, capsys, tmp_path):
    import inspect

    from microvae import cli

    data = "piano-rolls" if model_name == "hvrae" else "sinusoids" if model_name == "vrae" else "sprites"
    model = _built_by_cli(["--model", model_name, "--data", data, "--limit", "40", "--out", str(tmp_path)], monkeypatch)
    defaults = {name: p.default for name, p in inspect.signature(type(model)).parameters.items()
                if p.default is not inspect.Parameter.empty}
    set_from_data = {"input_dim", "input_shape", "input_size", "num_classes", "likelihood", "segment_length", "backend"}
    for name, default in defaults.items():
        if name not in set_from_data and name in model.config:
            assert model.config[name] == (list(default) if isinstance(default, tuple) else default), (model_name, name)
    assert not (tmp_path / "model.npz").exists()
    # every option the table gives to this model reaches it
    taken = [name for name, models in cli.MODEL_OPTIONS.items() if model_name in models]
    assert taken and all(isinstance(name, str) for name in taken)


@pytest.mark.parametrize("option, value", [("--hidden", "16"), ("--beta", "2"), ("--beta", "0"), ("--beta-warmup", "5"),
                                           ("--capacity", "3"), ("--capacity-warmup", "7"), ("--condition-at", "hidden"),
                                           ("--learned-prior", None), ("--variant", "strided"), ("--prior", "mixture"),
                                           ("--cell", "rnn"), ("--rnn-hidden", "12"), ("--input-dropout", "0.25"),
                                           ("--segment-length", "4"), ("--latent-dim", "3"), ("--capacity", "0"),
                                           ("--likelihood", "gaussian"), ("--likelihood", "gaussian-learned")])
def test_each_option_reaches_the_models_that_take_it_and_is_refused_elsewhere(option, value, monkeypatch, capsys, tmp_path):
    from microvae import cli

    dest = option[2:].replace("-", "_")
    takers = cli.MODEL_OPTIONS.get(dest, tuple(cli.MODELS))  # --latent-dim: every model
    argv_option = [option] + ([value] if value is not None else [])
    for model_name in cli.MODELS:
        data = "piano-rolls" if model_name in ("vrae", "hvrae") else "sprites"
        argv = ["--model", model_name, "--data", data, "--limit", "40", *argv_option, "--out", str(tmp_path / model_name)]
        if dest == "capacity_warmup" and model_name in takers:  # a warm-up needs a target
            argv += ["--capacity", "2"]
        if model_name not in takers:
            _fails_cleanly(["train", *argv], capsys, f"{option} is an option of --model")
            continue
        model = _built_by_cli(argv, monkeypatch)
        monkeypatch.undo()
        keyword = {"rnn_hidden": "hidden_size"}.get(dest, dest)
        if dest == "likelihood":
            assert model.likelihood.config() == value, (model_name, option)
            continue
        expected = {"16": (16,)}.get(value, value) if dest == "hidden" else True if value is None else type(
            getattr(model, keyword))(value)
        assert getattr(model, keyword) == expected, (model_name, option)
    assert not any(tmp_path.iterdir())  # nothing trained or written


def test_a_capacity_warmup_without_a_capacity_is_refused_by_its_flag(capsys, tmp_path):
    _fails_cleanly(["train", "--capacity-warmup", "5", "--out", str(tmp_path / "o")], capsys,
                   "--capacity-warmup ramps up a capacity target: give --capacity C (nats) too")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--model", "vrae", "--data", "sinusoids"], "gaussian-learned"),  # real-valued curves: the command line's default
    (["--model", "vrae", "--data", "sinusoids", "--likelihood", "bernoulli"], "bernoulli"),  # (scaled into [0, 1])
    (["--model", "hvrae", "--data", "piano-rolls"], "bernoulli"),
    (["--model", "vae"], "bernoulli"),
])
def test_the_likelihood_left_out_and_given(argv, expected, monkeypatch, tmp_path):
    assert _built_by_cli([*argv, "--limit", "40", "--out", str(tmp_path)], monkeypatch).likelihood.config() == expected


def test_a_gaussian_decoder_trains_from_the_command_line_and_its_checkpoint_samples(tmp_path):
    from microvae import checkpoint

    assert main(["train", "--likelihood", "gaussian-learned", "--hidden", "16", "--limit", "60", "--epochs", "1",
                 "--out", str(tmp_path), "--verbose", "0"]) == 0
    assert checkpoint.load(tmp_path / "model.npz").likelihood.config() == "gaussian-learned"
    assert main(["sample", str(tmp_path / "model.npz"), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0


def test_sample_draws_a_recurrent_model_as_its_training_data(tmp_path, monkeypatch):
    from microvae import checkpoint, plot

    assert main(["train", "--model", "vrae", "--data", "sprites", "--limit", "40", "--epochs", "1", "--rnn-hidden", "8",
                 "--out", str(tmp_path), "--verbose", "0"]) == 0
    assert checkpoint.read_info(tmp_path / "model.npz") == {"model": "vrae", "data": "sprites", "limit": 40, "seed": 0,
                                                            "batch_size": 128, "draw_as": "image-rows", "length": 32}
    drawn = []
    for name in ("plot_samples", "plot_piano_roll", "plot_sequences"):
        monkeypatch.setattr(plot, name, lambda *a, _name=name, **k: drawn.append((_name, a[0].shape, k.get("image_shape"))))
    target = str(tmp_path / "s.png")
    assert main(["sample", str(tmp_path / "model.npz"), "-n", "4", "--out", target]) == 0
    assert drawn[-1] == ("plot_samples", (4, 32 * 32), (32, 32))  # images of the training rows' length and width
    assert main(["sample", str(tmp_path / "model.npz"), "-n", "4", "--length", "8", "--out", target]) == 0
    assert drawn[-1] == ("plot_samples", (4, 8 * 32), (8, 32))
    for draw_as, function in (("piano-roll", "plot_piano_roll"), ("curves", "plot_sequences")):
        assert main(["sample", str(tmp_path / "model.npz"), "-n", "4", "--draw-as", draw_as, "--out", target]) == 0
        assert drawn[-1][0] == function and drawn[-1][1] == (4, 32, 32)


def test_sequence_options_of_sample_are_refused_for_image_models(trained_run, capsys, tmp_path):
    for extra in (["--length", "5"], ["--draw-as", "curves"]):
        _fails_cleanly(["sample", str(trained_run / "model.npz"), *extra, "--out", str(tmp_path / "x.png")], capsys,
                       f"{extra[0]} is for recurrent models")
    assert not (tmp_path / "x.png").exists()


def test_sequence_data_needs_a_sequence_model(capsys, tmp_path):
    _fails_cleanly(["train", "--model", "vae", "--data", "sinusoids", "--out", str(tmp_path)], capsys, "sequence data")


def test_a_limit_too_small_for_the_split_is_a_clear_message(capsys, tmp_path):
    out = tmp_path / "o"
    _fails_cleanly(["train", "--limit", "5", "--out", str(out)], capsys, "--limit 11 or more")
    _fails_cleanly(["train", "--limit", "10", "--model", "convvae", "--out", str(out)], capsys, "2 test examples")
    _fails_cleanly(["train", "--limit", "1", "--model", "vrae", "--data", "sinusoids", "--out", str(out)], capsys,
                   "--limit 2 or more")
    assert not out.exists()  # refused before anything was trained or written


@pytest.mark.parametrize("argv", [["--model", "vae", "--limit", "11", "--hidden", "8"], ["--model", "convvae", "--limit", "11"],
                                  ["--model", "vrae", "--data", "sinusoids", "--limit", "2", "--rnn-hidden", "4"]],
                         ids=["vae", "convvae", "vrae"])
def test_the_smallest_limit_trains_and_draws_every_picture(argv, tmp_path):
    assert main(["train", *argv, "--epochs", "1", "--out", str(tmp_path), "--verbose", "0"]) == 0
    _png(tmp_path / "loss_curves.png")
    if argv[1] != "vrae":  # a single-channel ConvVAE example (1, 32, 32) is one example, not a batch of one
        _png(tmp_path / "interpolation.png")


def test_braces_in_the_output_folder_are_literal(tmp_path, capsys):
    for name in ("{epoch}", "run{x}"):
        out = tmp_path / name
        assert main(["train", "--limit", "11", "--epochs", "2", "--hidden", "8", "--out", str(out), "--verbose", "0"]) == 0
        assert mv.load(out / "model.npz").epochs_trained == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run{x}", "{epoch}"]  # no runs/1, runs/2


def test_an_empty_train_out_is_a_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "[Errno 2] No such file or directory: ''" named no option
    _fails_cleanly(["train", "--limit", "11", "--out", ""], capsys, "--out is empty; give the folder to write model.npz")
    assert not list(tmp_path.iterdir())


def test_unusable_output_paths_are_clear_messages(trained_run, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    _fails_cleanly(["train", "--limit", "11", "--out", str(afile)], capsys, "is an existing file")
    _fails_cleanly(["train", "--limit", "11", "--epochs", "1", "--out", str(afile / "run")], capsys, "afile")
    checkpoint = str(trained_run / "model.npz")
    _fails_cleanly(["sample", checkpoint, "--out", str(tmp_path)], capsys, "is a folder")
    _fails_cleanly(["sample", checkpoint, "--out", str(tmp_path / "s.xyz")], capsys, "must name a .png file")
    _fails_cleanly(["sample", checkpoint, "--out", ""], capsys, "(sample writes a PNG picture), got an empty name")
    _fails_cleanly(["sample", checkpoint, "--out", str(afile / "s.png")], capsys, "afile")  # an OSError, reported
    assert afile.read_text() == "not a folder" and not (tmp_path / "s.xyz").exists()
    nested = tmp_path / "new" / "sub" / "S.PNG"  # the folder is created; the suffix in any case
    assert main(["sample", checkpoint, "-n", "4", "--out", str(nested)]) == 0
    _png(nested)


def test_labels_pick_the_component_of_an_aae_mixture_prior(tmp_path, capsys):
    for prior in ("mixture", "gaussian"):
        assert main(["train", "--model", "aae", "--prior", prior, "--limit", "20", "--epochs", "1", "--hidden", "8",
                     "--out", str(tmp_path / prior), "--verbose", "0"]) == 0
    checkpoint = str(tmp_path / "mixture" / "model.npz")
    for label in ("0", "1"):
        assert main(["sample", checkpoint, "-n", "9", "--label", label, "--out", str(tmp_path / f"{label}.png")]) == 0
        _png(tmp_path / f"{label}.png")
    assert (tmp_path / "0.png").read_bytes() != (tmp_path / "1.png").read_bytes()
    _fails_cleanly(["sample", checkpoint, "--label", "3", "--out", str(tmp_path / "x.png")], capsys,
                   "--label must be a prior component in [0, 2]")
    _fails_cleanly(["sample", str(tmp_path / "gaussian" / "model.npz"), "--label", "1", "--out", str(tmp_path / "x.png")],
                   capsys, "AAE with prior='gaussian' takes no labels")


def test_a_folder_where_a_run_writes_a_file_is_refused_before_training(tmp_path, capsys):
    """With --overwrite, the first epoch's renames failed half way: model.npz already replaced,
    hidden .next files left behind, and the error named ".history.json.next"."""
    out = tmp_path / "run"
    base = ["train", "--limit", "20", "--epochs", "1", "--hidden", "8", "--out", str(out), "--verbose", "0"]
    assert main(base) == 0
    saved = (out / "model.npz").read_bytes()
    (out / "history.json").unlink()
    (out / "history.json").mkdir()
    before = sorted(p.name for p in out.iterdir())
    _fails_cleanly([*base, "--overwrite"], capsys, f"--out {out} holds a folder where the run writes a file (history.json)")
    assert (out / "model.npz").read_bytes() == saved and sorted(p.name for p in out.iterdir()) == before


def test_a_folder_that_holds_a_run_is_refused_unless_overwrite_is_given(tmp_path, capsys):
    """A trained model is not replaced unasked; --overwrite replaces the whole run, removing the
    earlier run's pictures that the new one does not draw (a latent grid at latent 2 and a
    traversal at latent 3 would otherwise sit side by side)."""
    from microvae.cli import RUN_FILES

    out = tmp_path / "run"
    base = ["train", "--limit", "20", "--epochs", "1", "--hidden", "8", "--out", str(out), "--verbose", "0"]
    assert main(base) == 0
    saved = (out / "model.npz").read_bytes()
    assert (out / "latent_grid.png").exists() and not (out / "traversal.png").exists()
    _fails_cleanly([*base, "--latent-dim", "3"], capsys, f"--out {out} already holds a run (model.npz, history.json")
    assert (out / "model.npz").read_bytes() == saved
    capsys.readouterr()
    assert main([*base, "--latent-dim", "3", "--overwrite"]) == 0
    assert mv.load(out / "model.npz").latent_dim == 3
    assert (out / "traversal.png").exists() and not (out / "latent_grid.png").exists()
    assert "removed, from the run it replaced:" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} <= set(RUN_FILES)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")  # a folder with other files is not a run
    assert main([*base[:-4], "--out", str(tmp_path / "other"), "--verbose", "0"]) == 0
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_sample_draws_any_image_model_and_takes_an_image_shape(tmp_path, capsys):
    """A colour ConvVAE, a VAE of 3·8·8 colour pixels and a VAE of a non-square size each
    draw; what cannot be inferred asks for --image-shape, whose size is checked."""
    from PIL import Image

    mv.ConvVAE((3, 8, 8), latent_dim=2).save(tmp_path / "conv.npz")
    mv.VAE(3 * 8 * 8, (4,), 2).save(tmp_path / "rgb.npz")
    mv.VAE(60, (4,), 2).save(tmp_path / "six.npz")
    for checkpoint, extra in (("conv.npz", []), ("rgb.npz", ["--image-shape", "3,8,8"]), ("six.npz", ["--image-shape", "6,10"])):
        target = tmp_path / f"{checkpoint}.png"
        assert main(["sample", str(tmp_path / checkpoint), "-n", "16", "--out", str(target), *extra]) == 0
        _png(target)
    pixels = np.asarray(Image.open(tmp_path / "conv.npz.png").convert("RGB")).astype(int)
    assert np.abs(pixels[..., 0] - pixels[..., 1]).max() > 0  # drawn in colour, not grey
    _fails_cleanly(["sample", str(tmp_path / "six.npz"), "--out", str(tmp_path / "x.png")], capsys,
                   "this VAE draws 60 values per sample, not a square image; pass --image-shape H,W")
    _fails_cleanly(["sample", str(tmp_path / "six.npz"), "--image-shape", "2,2", "--out", str(tmp_path / "x.png")], capsys,
                   "--image-shape 2,2 has 4 values; this VAE draws 60 per sample")
    with pytest.raises(SystemExit):
        main(["sample", str(tmp_path / "six.npz"), "--image-shape", "2,x"])
    assert "expected H,W or C,H,W" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # (the plotting code refused it after loading, naming image_shape)
        main(["sample", str(tmp_path / "six.npz"), "--image-shape", "4,3,5"])
    assert "argument --image-shape: C must be 1 (grey) or 3 (colour) in C,H,W, got '4,3,5'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_train_records_the_image_shape_for_sample(tmp_path):
    from microvae.checkpoint import read_info

    assert main(["train", "--limit", "20", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path / "run"), "--verbose", "0"]) == 0
    assert read_info(tmp_path / "run" / "model.npz")["image_shape"] == [32, 32]


def test_running_out_of_memory_is_a_short_message(capsys, monkeypatch):
    """A --limit of generated data beyond the machine's memory (e.g. 99999999999 piano rolls:
    745 GiB) ended in a NumPy traceback with status 1."""
    from microvae import cli

    def too_large(*args, **kwargs):
        raise MemoryError("Unable to allocate 745. GiB")

    monkeypatch.setattr(cli, "load_data", too_large)
    _fails_cleanly(["train", "--model", "vrae", "--data", "piano-rolls", "--limit", "99999999999", "--epochs", "1",
                    "--out", "never-written"], capsys, "microvae: error: out of memory (Unable to allocate 745. GiB); try a smaller")


def test_run_checks_refuses_a_group_it_does_not_have():
    """An unknown group ran nothing, so a caller would report that every check agreed."""
    from microvae.selfcheck import CHECKS, run_checks

    with pytest.raises(ValueError, match=r"unknown check group\(s\) \['layers'\]; the groups are \['forward', 'layer', 'loss', 'model', 'sampling'\]"):
        next(run_checks(groups="layers"))  # matched as a substring of "layer" before
    ran = [name for _, name, _ in run_checks(groups="loss")]
    assert ran and sorted(ran) == sorted(name for group, name in CHECKS if group == "loss")


def test_the_self_check_fails_a_wrong_gradient_and_the_command_says_so(monkeypatch, capsys):
    """The classic bug, exp(logvar) for exp(½·logvar) in the sampler's backward: the check must
    judge microvae's own backward pass, and a failure must reach the exit status."""
    from microvae import selfcheck
    from microvae.reparam import Reparameterization

    def buggy_backward(self, dz):
        return dz, dz * self._eps * self._std**2 * 0.5

    sigmoid_check = selfcheck.CHECKS[("layer", "Sigmoid")]
    monkeypatch.setattr(Reparameterization, "backward", buggy_backward)
    [(_, _, result)] = selfcheck.run_checks(groups="sampling")
    assert result.errors["logvar"] > 1e-3 and result.errors["mu"] <= 1e-6 and not result.passed(1e-6)
    monkeypatch.setattr(selfcheck, "CHECKS", {key: fn for key, fn in selfcheck.CHECKS.items() if key[0] == "sampling"})
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "logvar" in out and "FAIL" in out and out.rstrip().endswith("1 check(s) FAILED")
    right = mv.Sigmoid.backward  # and a layer's: a backward that forgets to multiply by dy
    monkeypatch.setattr(mv.Sigmoid, "backward", lambda self, dy, input_grad=True: right(self, np.ones_like(dy), input_grad))
    assert not sigmoid_check(np.random.default_rng(0)).passed(1e-3)


def test_each_self_check_covers_its_inputs_and_parameters_and_follows_the_seed():
    """A check that leaves out an input (x, h0), a parameter or a phase passes whatever that
    gradient is; and --seed must give other random instances."""
    from microvae.selfcheck import CHECKS, run_checks

    for (group, name), fn in CHECKS.items():
        if group == "layer" or name.startswith("AAE") or group == "sampling":
            names = set(fn(np.random.default_rng(0)).errors)
            if group == "layer":
                assert "x" in names, name
            if name.startswith(("RNN", "GRU")):
                assert {"h0", "W_x", "W_h", "b"} <= names, name
            if group == "sampling":
                assert names == {"mu", "logvar"}
            if name.startswith("AAE"):
                assert {n.split(":")[0] for n in names} == {"recon", "disc", "gen"}
    errors = [[result.max_error for _, _, result in run_checks(seed=seed, groups="loss")] for seed in (0, 1)]
    assert errors[0] != errors[1]


# options that must reach what they configure (found by a mutation review) -----------------------
def test_train_gives_its_options_to_the_model_the_data_and_fit(tmp_path, monkeypatch):
    """--seed seeds the model, the generated data and the training order; --epochs, --batch-size
    and --lr reach fit. Each was dropped without a test noticing (the run still trained)."""
    from microvae import datasets

    seeds, make_sprites = [], datasets.make_sprites
    monkeypatch.setattr(datasets, "make_sprites", lambda *a, **k: seeds.append(k.get("seed")) or make_sprites(*a, **k))
    assert main(["train", "--limit", "20", "--epochs", "2", "--hidden", "8", "--batch-size", "5", "--lr", "0.002",
                 "--seed", "7", "--clip-norm", "0.5", "--out", str(tmp_path), "--verbose", "0"]) == 0
    model = mv.load(tmp_path / "model.npz")
    assert seeds == [7]  # the sprites
    assert model.config["seed"] == 7 and model.train_seed == 7  # the initial weights, the batches' order
    assert model.optimizer_spec[:2] == ("adam", 0.002) and model.optimizers["model"].clip_norm == 0.5
    assert model.epochs_trained == 2 and model.step == 2 * 4  # 18 training examples in batches of 5


def test_rnn_hidden_sizes_the_conductor_of_an_hvrae_too(monkeypatch, tmp_path):
    model = _built_by_cli(["--model", "hvrae", "--data", "piano-rolls", "--limit", "40", "--rnn-hidden", "12",
                           "--out", str(tmp_path)], monkeypatch)
    assert model.hidden_size == 12 and model.conductor_size == 12  # as --help says


def test_an_interrupt_is_a_short_message_and_status_130(capsys, monkeypatch, tmp_path):
    from microvae import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_data", interrupted)
    assert main(["train", "--out", str(tmp_path / "o")]) == 130
    assert capsys.readouterr().err == "microvae: interrupted\n"
    assert not (tmp_path / "o").exists()  # the folder it made for the run, empty, is not left behind


def _interrupt_at_step(monkeypatch, step):
    """Ctrl-C in the given training step (counted from 1) of any model."""
    from microvae.models.base import Model

    calls, train_batch = [], Model._train_batch

    def counted(self, *args):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return train_batch(self, *args)

    monkeypatch.setattr(Model, "_train_batch", counted)


def _diverge_at_step(monkeypatch, step=None, model_class=None):
    """A NaN loss in the given training step (counted from 1; None: every step) of
    ``model_class`` (default: the models whose step is Model's): fit rolls that epoch back
    and raises TrainingDiverged."""
    from microvae.models.base import Model

    model_class = model_class or Model
    calls, train_batch = [], model_class._train_batch

    def diverging(self, *args):
        calls.append(1)
        metrics = train_batch(self, *args)
        return {**metrics, "loss": float("nan")} if step is None or len(calls) == step else metrics

    monkeypatch.setattr(model_class, "_train_batch", diverging)


def test_an_overwrite_interrupted_before_its_first_epoch_leaves_the_earlier_run_whole(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    base = ["train", "--limit", "20", "--epochs", "3", "--hidden", "8", "--out", str(out), "--verbose", "0"]
    assert main(base) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _interrupt_at_step(monkeypatch, 1)
    assert main([*base, "--latent-dim", "3", "--overwrite"]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_overwrite_interrupted_later_leaves_its_own_epochs_not_a_mix_of_two_runs(tmp_path, monkeypatch, capsys):
    """Only model.npz was replaced, each epoch: the earlier run's history and pictures (a latent
    grid of its 2-D latent) stayed beside the new 3-D model, whose checkpoint also lacked the
    run info `sample` draws by."""
    from microvae.checkpoint import read_info

    out = tmp_path / "run"
    base = ["train", "--limit", "20", "--epochs", "3", "--hidden", "8", "--out", str(out), "--verbose", "0"]
    assert main(base) == 0  # 18 training examples: one step an epoch
    assert (out / "latent_grid.png").exists()
    capsys.readouterr()
    _interrupt_at_step(monkeypatch, 2)
    assert main([*base, "--latent-dim", "3", "--overwrite"]) == 130
    assert (f"holds this run through epoch 1: model.npz and history.json/csv, no pictures; microvae train --resume "
            f"--out {out} trains it on") in capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"model.npz", "history.json", "history.csv"}
    model = mv.load(out / "model.npz")
    assert model.latent_dim == 3 and model.epochs_trained == 1
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]
    assert read_info(out / "model.npz") == {"model": "vae", "data": "sprites", "limit": 20, "seed": 0, "batch_size": 128,
                                            "image_shape": [32, 32]}


def test_an_unwritable_out_is_refused_before_any_data_is_loaded(tmp_path, monkeypatch, capsys):
    """It was found only when the first epoch's checkpoint was written, and the error named a
    hidden temporary file."""
    import tempfile

    from microvae import cli

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    monkeypatch.setattr(cli, "load_data", lambda *a, **k: pytest.fail("data loaded for an unwritable --out"))
    out = tmp_path / "new"
    _fails_cleanly(["train", "--out", str(out)], capsys, f"--out {out} cannot be written (Permission denied)")
    assert not out.exists()


def test_gradcheck_fails_with_status_1_past_its_tolerance(monkeypatch, capsys):
    """A failing check must fail the command (CI runs it), and --tol sets the bar."""
    from microvae import selfcheck
    from microvae.verify import GradcheckResult

    monkeypatch.setattr(selfcheck, "run_checks", lambda seed=0: iter([("layer", "Dense", GradcheckResult({"W": 1e-4}, "analytic"))]))
    assert main(["gradcheck"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("1.00e-04  FAIL") and lines[-1] == "1 check(s) FAILED"
    assert main(["gradcheck", "--tol", "1e-3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "all values and gradients agree"


def _drawn(monkeypatch, name="plot_samples"):
    """Calls of microvae.plot's ``name`` (args, kwargs) from now on; nothing is drawn."""
    from microvae import plot

    calls = []
    monkeypatch.setattr(plot, name, lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


def test_sample_seed_picks_the_samples(tmp_path, monkeypatch):
    mv.VAE(16, (4,), 2, seed=0).save(tmp_path / "m.npz")
    drawn = _drawn(monkeypatch)
    for seed in ("0", "0", "1"):
        assert main(["sample", str(tmp_path / "m.npz"), "-n", "4", "--seed", seed, "--out", str(tmp_path / "s.png")]) == 0
    (first, _), (again, _), (other, _) = drawn
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.allclose(first[0], other[0])


def test_sample_gives_a_cvae_the_label_asked_for_or_every_class_in_turn(tmp_path, monkeypatch):
    mv.CVAE(16, 3, (4,), 2, seed=0).save(tmp_path / "c.npz")
    labels, sample = [], mv.CVAE.sample
    monkeypatch.setattr(mv.CVAE, "sample", lambda self, n, y, **k: labels.append(np.asarray(y)) or sample(self, n, y, **k))
    for extra in ([], ["--label", "2"]):
        assert main(["sample", str(tmp_path / "c.npz"), "-n", "7", *extra, "--out", str(tmp_path / "s.png")]) == 0
    np.testing.assert_array_equal(labels[0], [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(labels[1], [2] * 7)


def test_sample_image_shape_overrides_the_shape_train_recorded(tmp_path, monkeypatch):
    mv.VAE(16, (4,), 2, seed=0).save(tmp_path / "m.npz", info={"image_shape": [4, 4]})
    drawn = _drawn(monkeypatch)
    for extra in ([], ["--image-shape", "2,8"]):
        assert main(["sample", str(tmp_path / "m.npz"), "-n", "4", *extra, "--out", str(tmp_path / "s.png")]) == 0
    assert [kwargs["image_shape"] for _, kwargs in drawn] == [(4, 4), (2, 8)]


@pytest.mark.parametrize("value", ["32x32", 1024, [16, 16], [4, 0], [2.0, 8.0], [True, 16], {"h": 4}, [2, 2, 4]])
def test_sample_passes_over_an_image_shape_in_info_it_cannot_use(tmp_path, monkeypatch, capsys, value):
    """info is free-form (model.save takes any JSON): a string gave a NumPy ufunc error, an int
    "'int' object is not iterable", and a shape of the wrong size was reported as --image-shape's;
    2 channels (neither grey nor colour) failed in the picture's check, with exit code 2."""
    mv.VAE(16, (4,), 2, seed=0).save(tmp_path / "m.npz", info={"image_shape": value})
    drawn = _drawn(monkeypatch)
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert [kwargs["image_shape"] for _, kwargs in drawn] == [None]  # 16 values: a 4×4 square
    assert capsys.readouterr().err == (f"microvae: the checkpoint's info has image_shape={value!r}, not a list of 2 or 3 "
                                       "positive sizes that hold one sample (1 or 3 channels); drawing without it\n")


def test_sample_passes_over_a_sequence_hint_in_info_it_cannot_use(tmp_path, monkeypatch, capsys):
    from microvae import plot

    mv.VRAE(3, 4, 2, seed=0).save(tmp_path / "m.npz", info={"draw_as": "bars", "length": "long"})
    calls = []
    monkeypatch.setattr(plot, "plot_sequences", lambda seqs, **kw: calls.append(seqs.shape))
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert calls == [(2, 32, 3)]  # 32 steps and curves (3 features): the defaults
    err = capsys.readouterr().err
    assert "info has draw_as='bars', not one of ('image-rows', 'piano-roll', 'curves'); drawing without it" in err
    assert "info has length='long', not a positive integer; drawing without it" in err


def test_train_draws_its_pictures_from_the_test_set_and_the_model(tmp_path, monkeypatch):
    """reconstructions.png pairs inputs with the model's reconstructions, the interpolation runs
    between two different inputs, and the latent grid is README's 15×15."""
    rec, interpolation, grid = (_drawn(monkeypatch, name) for name in ("plot_reconstructions", "plot_interpolation", "plot_latent_grid"))
    assert main(["train", "--limit", "20", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path), "--verbose", "0"]) == 0
    model = mv.load(tmp_path / "model.npz")
    ((x, x_rec), _), = rec
    assert len(x) == 2 and not np.allclose(x, x_rec)  # the test set holds 2 of the 20 sprites
    np.testing.assert_allclose(x_rec, model.reconstruct(x), rtol=1e-5, atol=1e-6)
    ((_, x_a, x_b), _), = interpolation
    assert not np.array_equal(x_a, x_b)
    (_, kwargs), = grid
    assert kwargs["n"] == 15


def test_a_cvae_run_is_validated_and_draws_one_class_per_row(tmp_path, monkeypatch):
    labels, sample = [], mv.CVAE.sample
    monkeypatch.setattr(mv.CVAE, "sample", lambda self, n, y, **k: labels.append(np.asarray(y)) or sample(self, n, y, **k))
    assert main(["train", "--model", "cvae", "--limit", "20", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path),
                 "--verbose", "0"]) == 0
    (drawn,) = labels  # samples_by_class.png: 10 samples of each of the 3 shapes, a row each
    np.testing.assert_array_equal(drawn, np.repeat([0, 1, 2], 10))
    assert "val_loss" in json.loads((tmp_path / "history.json").read_text())[0]  # the test set, with its labels


@pytest.mark.parametrize("data, draw_as, length", [("piano-rolls", "piano-roll", 32), ("sinusoids", "curves", 48)])
def test_train_records_how_sample_draws_its_sequences(data, draw_as, length, tmp_path, monkeypatch):
    """... and reconstructions.png shows test sequences beside their reconstructions."""
    from microvae.checkpoint import read_info

    drawn = {name: _drawn(monkeypatch, name) for name in ("plot_piano_roll", "plot_sequences")}
    assert main(["train", "--model", "vrae", "--data", data, "--limit", "20", "--epochs", "1", "--rnn-hidden", "4",
                 "--out", str(tmp_path), "--verbose", "0"]) == 0
    assert read_info(tmp_path / "model.npz") == {"model": "vrae", "data": data, "limit": 20, "seed": 0, "batch_size": 128,
                                                 "draw_as": draw_as, "length": length}
    args, kwargs = drawn["plot_piano_roll" if draw_as == "piano-roll" else "plot_sequences"][0]  # reconstructions.png
    x, x_rec = (args[0], kwargs["rolls_rec"]) if draw_as == "piano-roll" else args[:2]  # (2 test rolls of the 20)
    assert x.shape == x_rec.shape and not np.allclose(x, x_rec)


def test_train_without_matplotlib_writes_the_run_and_skips_the_pictures(tmp_path, monkeypatch, capsys):
    """matplotlib is optional: train still writes the model and its history (status 0), and
    sample fails with a short message."""
    make_absent(monkeypatch, "matplotlib")
    assert main(["train", "--limit", "20", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path), "--verbose", "0"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv", "history.json", "model.npz"]
    assert "microvae: pictures skipped: microvae.plot needs matplotlib" in capsys.readouterr().err
    _fails_cleanly(["sample", str(tmp_path / "model.npz"), "--out", str(tmp_path / "s.png")], capsys, "needs matplotlib")


def test_train_defaults_are_what_readme_says_the_first_command_does(tmp_path, monkeypatch):
    """README: `microvae train --out runs/first` trains the textbook VAE on the sprites for 10
    epochs; its Command line section shows --epochs 10 --batch-size 128 --lr 1e-3 --seed 0."""

    from microvae import cli
    from microvae.models import VAE

    seen = {}
    load_data = cli.load_data

    def small_data(name, limit, seed, **kwargs):
        seen["data"] = (name, limit, seed)
        return load_data(name, 40, seed, **kwargs)

    def no_training(model, *args, **kwargs):
        seen["model"], seen["fit"] = model, kwargs
        return model.history

    monkeypatch.setattr(cli, "load_data", small_data)
    monkeypatch.setattr(VAE, "fit", no_training)
    monkeypatch.setattr(cli.MODELS["vae"], "pictures", lambda *args: [])
    assert main(["train", "--out", str(tmp_path), "--verbose", "0"]) == 0
    assert seen["data"] == ("sprites", None, 0) and type(seen["model"]) is VAE and seen["model"].hidden == (512, 256)
    fit = seen["fit"]
    assert (fit["epochs"], fit["batch_size"], fit["seed"], fit["clip_norm"]) == (10, 128, 0, None)
    assert fit["lr"] == 1e-3


def test_a_vrae_on_image_rows_draws_its_own_samples(tmp_path, monkeypatch):
    """samples.png shows the model's free-running samples (8 of them), not test images."""
    samples = _drawn(monkeypatch, "plot_samples")
    rec = _drawn(monkeypatch, "plot_reconstructions")
    assert main(["train", "--model", "vrae", "--data", "sprites", "--limit", "120", "--epochs", "1", "--rnn-hidden", "4",
                 "--out", str(tmp_path), "--verbose", "0"]) == 0
    model = mv.load(tmp_path / "model.npz")
    ((drawn,), kwargs), = samples
    np.testing.assert_allclose(drawn, model.sample(8, 32, seed=0).reshape(8, -1), rtol=1e-5, atol=1e-6)
    assert kwargs["image_shape"] == (32, 32)
    ((x, _), kwargs), = rec
    assert len(x) == 8 and kwargs["image_shape"] == (32, 32)  # 8 of the 12 test sprites
    assert samples[0][1]["nrow"] == 8  # the 8 samples side by side


# what the data and the pictures are (a second mutation review) ---------------------------------
def test_the_default_data_sizes_and_the_split(monkeypatch):
    """Left without --limit, the sprites are 20000 (README's timings are of those) and the
    generated sequences 4000, each split 90/10; MNIST's --limit N keeps the first N training
    and max(N/6, 100) test examples, with the class names of its own dataset."""
    from microvae import cli, datasets

    sprites = cli.load_data("sprites", None, 0)
    assert (len(sprites["x_train"]), len(sprites["x_test"])) == (18000, 2000)
    assert sprites["num_classes"] == 3 and sprites["class_names"] == ["square", "ellipse", "heart"]
    for name in ("sinusoids", "piano-rolls"):
        data = cli.load_data(name, None, 0, sequences=True)
        assert (len(data["x_train"]), len(data["x_test"])) == (3600, 400), name
    fake = lambda flatten=True: ((np.zeros((3000, 4)), np.zeros(3000, int)), (np.zeros((1000, 4)), np.zeros(1000, int)))  # noqa: E731
    monkeypatch.setattr(datasets, "load_mnist", fake)
    monkeypatch.setattr(datasets, "load_fashion_mnist", fake)
    for limit, test in ((60, 100), (1200, 200)):
        data = cli.load_data("mnist", limit, 0)
        assert (len(data["x_train"]), len(data["y_train"]), len(data["x_test"]), len(data["y_test"])) == (limit, limit, test, test)
    assert cli.load_data("mnist", None, 0)["class_names"] == list(datasets.MNIST_CLASSES)
    assert cli.load_data("fashion-mnist", None, 0)["class_names"] == list(datasets.FASHION_MNIST_CLASSES)


def test_a_vae_run_draws_ten_reconstructions_64_seeded_samples_and_named_classes(tmp_path, monkeypatch):
    """reconstructions.png shows the first 10 test sprites, samples.png 64 prior samples drawn
    with --seed, the scatter names the shapes, and the interpolation and traversal take the
    figures' own step counts (10 and 9)."""
    rec, samples, scatter, interpolation = (_drawn(monkeypatch, name) for name in (
        "plot_reconstructions", "plot_samples", "plot_latent_scatter", "plot_interpolation"))
    assert main(["train", "--limit", "150", "--epochs", "1", "--hidden", "8", "--seed", "3", "--out", str(tmp_path),
                 "--verbose", "0"]) == 0
    model = mv.load(tmp_path / "model.npz")
    ((x, _), _), = rec
    assert len(x) == 10  # of 15 test sprites
    ((drawn,), _), = samples
    np.testing.assert_allclose(drawn, model.sample(64, seed=3), rtol=1e-5, atol=1e-6)
    (_, kwargs), = scatter
    assert kwargs["class_names"] == ["square", "ellipse", "heart"]
    (_, kwargs), = interpolation
    assert "steps" not in kwargs  # plot_interpolation's 10
    traversal = _drawn(monkeypatch, "plot_traversal")
    assert main(["train", "--limit", "20", "--epochs", "1", "--hidden", "8", "--latent-dim", "3",
                 "--out", str(tmp_path / "t"), "--verbose", "0"]) == 0
    (_, kwargs), = traversal
    assert "steps" not in kwargs  # plot_traversal's 9


def test_an_aae_run_draws_its_grid_over_the_priors_reach_and_only_in_2d(tmp_path, monkeypatch):
    """An AAE with a mixture prior is trained with the labels; its latent grid spans 1.2× the largest |z| of 2000 prior samples (a mixture prior
    reaches past the VAE's ±3); every test code (up to 2000) is drawn over the prior; a 3-D
    latent gets no grid (plot_latent_grid refuses it) and still trains."""
    grid, versus = _drawn(monkeypatch, "plot_latent_grid"), _drawn(monkeypatch, "plot_latent_vs_prior")
    samples = _drawn(monkeypatch, "plot_samples")
    labels, fit = [], mv.AAE.fit
    monkeypatch.setattr(mv.AAE, "fit", lambda self, x, y=None, **k: labels.append(y) or fit(self, x, y, **k))
    assert main(["train", "--model", "aae", "--prior", "mixture", "--limit", "2100", "--epochs", "1", "--hidden", "8",
                 "--seed", "1", "--out", str(tmp_path / "a"), "--verbose", "0"]) == 0
    model = mv.load(tmp_path / "a" / "model.npz")
    (_, kwargs), = grid
    assert kwargs["span"] == pytest.approx(1.2 * np.abs(model.sample_prior(2000, seed=1)).max())
    ((codes, prior), kwargs), = versus  # the codes coloured by their class, over --seed's prior samples
    assert len(codes) == 210 and len(kwargs["labels"]) == 210
    np.testing.assert_allclose(prior, model.sample_prior(2000, seed=1))
    ((drawn,), _), = samples
    assert len(drawn) == 64
    (y,) = labels  # a mixture prior has one component per class: training gives each code its class's
    assert y is not None and len(y) == 1890
    assert main(["train", "--model", "aae", "--latent-dim", "3", "--limit", "20", "--epochs", "1", "--hidden", "8",
                 "--out", str(tmp_path / "b"), "--verbose", "0"]) == 0
    assert len(grid) == 1 and len(versus) == 2


def test_hvrae_segments_default_to_the_largest_divisor_up_to_8(monkeypatch, tmp_path):
    model = _built_by_cli(["--model", "hvrae", "--data", "piano-rolls", "--limit", "40", "--out", str(tmp_path)], monkeypatch)
    assert model.segment_length == 8  # of 32 steps (4 divides them too)


def test_sequence_runs_draw_four_curves_and_eight_rolls(tmp_path, monkeypatch):
    """reconstructions.png of sinusoids: 4 test curves over their reconstructions; the piano
    rolls' samples.png: all 8 samples, drawn with --seed."""
    curves, rolls = _drawn(monkeypatch, "plot_sequences"), _drawn(monkeypatch, "plot_piano_roll")
    for data in ("sinusoids", "piano-rolls"):
        assert main(["train", "--model", "vrae", "--data", data, "--limit", "100", "--epochs", "1", "--rnn-hidden", "4",
                     "--seed", "2", "--out", str(tmp_path / data), "--verbose", "0"]) == 0
    (_, kwargs), (_, sample_kwargs) = curves
    assert kwargs["n"] == 4 and sample_kwargs["title"] == "free-running samples"  # not data: no "original"
    _, ((samples,), kwargs) = rolls
    assert len(samples) == 8 and kwargs["n"] == 8
    model = mv.load(tmp_path / "piano-rolls" / "model.npz")
    np.testing.assert_allclose(samples, model.sample(8, 32, seed=2), rtol=1e-5, atol=1e-6)  # drawn with --seed


def test_sample_lays_images_out_in_a_square_and_draws_at_most_8_sequences(tmp_path, monkeypatch):
    """-n N image samples fill ceil(sqrt(N)) columns; a recurrent checkpoint saved from Python
    (no run info) samples 32 steps and is drawn as a piano roll past 4 features, as curves up to
    4, at most 8 of them."""
    mv.VAE(16, (4,), 2, seed=0).save(tmp_path / "m.npz")
    mv.VRAE(5, hidden_size=4, latent_dim=2).save(tmp_path / "r5.npz")
    mv.VRAE(2, hidden_size=4, latent_dim=2).save(tmp_path / "r2.npz")
    images, rolls, curves = (_drawn(monkeypatch, name) for name in ("plot_samples", "plot_piano_roll", "plot_sequences"))
    out = ["--out", str(tmp_path / "s.png")]
    for n in ("10", "16"):
        assert main(["sample", str(tmp_path / "m.npz"), "-n", n, *out]) == 0
    mv.CVAE(16, 3, (4,), 2, seed=0).save(tmp_path / "c.npz")
    assert main(["sample", str(tmp_path / "c.npz"), "-n", "10", *out]) == 0
    assert [kwargs["nrow"] for _, kwargs in images] == [4, 4, 4]
    assert [len(args[0]) for args, _ in images] == [10, 16, 10]  # -n samples drawn, not a fixed number
    assert main(["sample", str(tmp_path / "r5.npz"), "-n", "10", *out]) == 0
    ((sequences,), kwargs), = rolls
    assert sequences.shape == (10, 32, 5) and kwargs["n"] == 8
    assert main(["sample", str(tmp_path / "r2.npz"), "-n", "3", *out]) == 0
    ((sequences,), kwargs), = curves
    assert sequences.shape == (3, 32, 2) and kwargs["n"] == 3


def test_a_cvae_runs_scatter_says_what_it_shows_and_no_more(tmp_path, monkeypatch):
    """The title said "the label is given, so z need not encode it", but the codes do carry the
    class (a class-centroid classifier on them: 0.60 on Fashion-MNIST, either prior; notebook 04
    explains why), and a learned prior pulls them to μ_p(y) by design. It now says what is drawn.
    Its samples' rows are named by class."""
    scatter, by_class = _drawn(monkeypatch, "plot_latent_scatter"), _drawn(monkeypatch, "plot_samples_by_class")
    assert main(["train", "--model", "cvae", "--limit", "20", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path),
                 "--verbose", "0"]) == 0
    (_, kwargs), = scatter
    assert kwargs["title"] == "q(z|x,y) means by class (the encoder is given the label too)"
    (_, kwargs), = by_class  # samples_by_class.png names each row's shape
    assert kwargs["class_names"] == ["square", "ellipse", "heart"]


def test_sample_label_minus_1_draws_the_whole_mixture(tmp_path, monkeypatch, capsys):
    """--help: for an AAE with a mixture prior, --label -1 samples the whole mixture (-2 is refused)."""
    mv.AAE(16, (4,), 2, prior="mixture", num_classes=3, seed=0).save(tmp_path / "a.npz")
    labels, sample = [], mv.AAE.sample
    monkeypatch.setattr(mv.AAE, "sample", lambda self, n, y=None, **k: labels.append(np.asarray(y)) or sample(self, n, y=y, **k))
    _drawn(monkeypatch)
    assert main(["sample", str(tmp_path / "a.npz"), "-n", "5", "--label", "-1", "--out", str(tmp_path / "s.png")]) == 0
    np.testing.assert_array_equal(labels[0], [-1] * 5)
    _fails_cleanly(["sample", str(tmp_path / "a.npz"), "--label", "-2", "--out", str(tmp_path / "s.png")], capsys,
                   "--label must be a prior component in [0, 2] (or -1 for any)")


def test_gradcheck_verbose_shows_every_error_and_explain_fails_past_its_tolerance(monkeypatch, capsys):
    """-v prints each check's table even when it passes; --explain exits 1 when a gradient's
    error exceeds --tol, as gradcheck does."""
    from microvae import explain, selfcheck
    from microvae.verify import GradcheckResult

    result = GradcheckResult({"W": 1e-9, "b": 2e-9}, "analytic")
    monkeypatch.setattr(selfcheck, "run_checks", lambda seed=0: iter([("layer", "Dense", result)]))
    assert main(["gradcheck"]) == 0
    quiet = capsys.readouterr().out.splitlines()
    assert main(["gradcheck", "-v"]) == 0
    verbose = capsys.readouterr().out.splitlines()
    table = [line for line in verbose if line not in quiet]
    assert len(verbose) == len(quiet) + len(table) and table and all(line.startswith(" " * 11) for line in table)
    terms = explain.explain_gradients(seed=0)
    bad = [terms[0]._replace(error=1e-3)] + list(terms[1:])
    monkeypatch.setattr(explain, "explain_gradients", lambda seed=0: bad)
    assert main(["gradcheck", "--explain"]) == 1
    assert main(["gradcheck", "--explain", "--tol", "1e-2"]) == 0


def test_an_os_error_is_said_in_words(tmp_path, capsys, monkeypatch):
    """An OSError with a reason and a file prints "reason: file", not Python's
    "[Errno 2] ... 'file'" form."""
    from microvae import cli

    def missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "/data/train-images.gz")

    monkeypatch.setattr(cli, "load_data", missing)
    _fails_cleanly(["train", "--out", str(tmp_path / "o")], capsys,
                   "microvae: error: No such file or directory: /data/train-images.gz\n")


def test_the_split_check_spares_mnist_and_segments_must_divide_the_length(capsys, tmp_path):
    """MNIST's --limit cuts the training set only (its test set keeps >= 100), so a small one is
    not refused as the generated data's is; --segment-length must divide the sequence length,
    said before anything is built."""
    from microvae import cli

    cli.check_limit(1, "mnist")
    cli.check_limit(5, "fashion-mnist", min_test=2)
    with pytest.raises(cli.CLIError, match="--limit 11 or more"):
        cli.check_limit(5, "sprites", min_test=2)
    _fails_cleanly(["train", "--model", "hvrae", "--data", "piano-rolls", "--limit", "40", "--segment-length", "5",
                    "--out", str(tmp_path / "o")], capsys, "--segment-length 5 must divide the sequence length 32")
    assert not (tmp_path / "o").exists()


# the self-check checks what its titles say (found by a mutation review of selfcheck.py) ----------------
def _spy_on_the_self_check(monkeypatch):
    """Replace the checkers selfcheck calls by spies that record their arguments and pass: the
    instances each check builds can be inspected without running a single finite difference."""
    from microvae import selfcheck
    from microvae.verify import GradcheckResult

    seen = []

    def spy(kind):
        def record(*args, **kwargs):
            seen.append((kind, args, kwargs))
            return GradcheckResult({"spied": 0.0}, kwargs.get("mode", "full"))
        return record

    for kind in ("check_layer", "check_loss", "check_model", "gradcheck"):
        monkeypatch.setattr(selfcheck, kind, spy(kind))
    return seen


def test_each_layer_is_checked_at_a_random_point_away_from_its_kinks(monkeypatch):
    """The module doc: parameters are moved to a random point first (a fresh Dense has zero
    biases, which put ReLU units on their kink), and activations get inputs at least 0.05 from 0."""
    from microvae.selfcheck import run_checks

    for seed in range(4):
        seen = _spy_on_the_self_check(monkeypatch)
        list(run_checks(seed=seed, groups="layer"))
        for _, (layer, x), _ in (s for s in seen if s[0] == "check_layer"):
            name = type(layer).__name__
            if layer.flat.size:
                params = layer.flat.data
                assert np.all(params != 0) and 0.3 < params.std() < 0.7, name  # N(0, 0.5²), biases too
            if name in ("ReLU", "LeakyReLU", "Sigmoid", "Tanh"):
                assert np.abs(x).min() >= 0.05, name


def test_the_convolutions_are_checked_along_each_of_their_three_routes(monkeypatch):
    """Stride 2 with an odd and an even input (general and fast im2col) and stride 1 (the direct
    3×3), for Conv2D and Conv2DTranspose both."""
    from microvae.selfcheck import run_checks

    seen = _spy_on_the_self_check(monkeypatch)
    list(run_checks(groups="layer"))
    routes = {(type(layer).__name__, layer.stride, x.shape[-1] % 2 if layer.stride == 2 else None)
              for kind, (layer, x), _ in (s for s in seen if s[0] == "check_layer") if type(layer).__name__.startswith("Conv2D")}
    assert {(name, 1, None) for name in ("Conv2D", "Conv2DTranspose")} <= routes
    assert {("Conv2D", 2, 0), ("Conv2D", 2, 1)} <= routes
    assert any(r[:2] == ("Conv2DTranspose", 2) for r in routes)


def test_the_recurrent_checks_use_ragged_masks(monkeypatch):
    from microvae import layers
    from microvae.selfcheck import CHECKS

    for kind in ("RNN", "GRU"):
        masks = []
        forward = getattr(layers, kind).forward
        monkeypatch.setattr(getattr(layers, kind), "forward",
                            lambda self, x, h0=None, mask=None, f=forward: masks.append(mask) or f(self, x, h0=h0, mask=mask))
        name = next(n for g, n in CHECKS if n.startswith((kind + " ", kind + ",")))
        assert CHECKS[("layer", name)](np.random.default_rng(0)).passed(1e-6)
        lengths = {tuple(m.sum(axis=1)) for m in masks}
        assert len(lengths) == 1 and len(set(next(iter(lengths)))) == 3, (kind, lengths)  # three rows, three lengths


def test_the_model_checks_build_what_their_titles_say(monkeypatch):
    """β=4 with a capacity and a learned variance, a CVAE with a learned prior, a masked VRAE; full
    mode unless the title says directional (then directional and sampled); parameters at a random point."""
    from microvae.selfcheck import run_checks

    seen = _spy_on_the_self_check(monkeypatch)
    titles = [name for _, name, _ in run_checks(groups="model") if not name.startswith("AAE")]  # AAE: gradcheck
    calls = [(args, kwargs) for kind, args, kwargs in seen if kind == "check_model"]
    # one check_model each, in the order run; two for the ConvVAE: along directions, then sampled
    conv = next(i for i, title in enumerate(titles) if title.startswith("ConvVAE"))
    assert len(calls) == len(titles) + 1 and calls[conv][0][0] is calls[conv + 1][0][0]  # the same model
    assert [calls[conv][1]["mode"], calls[conv + 1][1]["mode"]] == ["directional", "sampled"]
    del calls[conv + 1]
    checked = dict(zip(titles, calls))
    for title, (args, kwargs) in checked.items():
        model = args[0]
        assert type(model).__name__ == title.split()[0].replace("β-VAE", "VAE"), title
        assert kwargs.get("mode", "full") in (("directional", "sampled") if "directional" in title else ("full",)), title
        assert np.all(model.flat.data != 0), title
    by_name = {title.split()[0]: args for title, (args, _) in checked.items()
               if "warming up" not in title and "clamped high" not in title}
    beta_vae, vae = by_name["β-VAE"][0], by_name["VAE"][0]
    assert beta_vae.beta == 4.0 and beta_vae.capacity == 2.0 and beta_vae.likelihood.learned
    # the branches that one does not reach: part-way warm-ups, KL below C, a logvar clamped low
    (warming, x), options = next(call for title, call in checked.items() if "warming up" in title)
    assert 0 < warming.current_beta() < warming.beta and 0 < warming.current_capacity() < warming.capacity
    assert warming.loss(x, eps=options["eps_noise"]).kl < warming.current_capacity()
    head = warming.encoder.layers[-1]
    raw_logvar = (head._x @ head.params["W"] + head.params["b"])[:, warming.latent_dim:]
    assert np.all(raw_logvar[:, 0] < mv.likelihoods.LOGVAR_RANGE[0] - 1)
    assert np.all(np.abs(raw_logvar[:, 1:]) < 10)
    assert vae.beta == 1.0 and vae.config["likelihood"] == "bernoulli"
    # and the clamp's high side alone: one logvar column above it for every example, the rest inside
    (high, x), options = next(call for title, call in checked.items() if "clamped high" in title)
    high.loss(x, eps=options["eps_noise"])
    head = high.encoder.layers[-1]
    raw_logvar = (head._x @ head.params["W"] + head.params["b"])[:, high.latent_dim:]
    assert np.all(raw_logvar[:, 0] > mv.likelihoods.LOGVAR_RANGE[1] + 1)
    assert np.all(np.abs(raw_logvar[:, 1:]) < 10)
    cvae = by_name["CVAE"][0]
    assert cvae.config["learned_prior"] and cvae.config["condition_at"] == "hidden"
    mask = by_name["VRAE"][2]
    assert mask.shape == (2, 4) and len(set(mask.sum(axis=1))) == 2


def test_the_aae_check_reports_each_phases_errors_and_includes_an_unlabelled_example(monkeypatch):
    """Its errors must be the phases' own (a wrong gradient in any phase fails the check), and
    the mixture prior is checked with a label of −1 (any component) beside labelled examples."""
    from microvae.models import AAE
    from microvae.selfcheck import CHECKS

    check = next(fn for (group, name), fn in CHECKS.items() if name.startswith("AAE"))
    labels = []
    right = AAE.phase_loss

    def recording(self, phase, x, y=None, **kwargs):
        labels.append(np.array(y))
        return right(self, phase, x, y, **kwargs)

    monkeypatch.setattr(AAE, "phase_loss", recording)
    assert check(np.random.default_rng(0)).passed(1e-6)
    assert all((y == -1).any() and (y >= 0).any() for y in labels)

    def doubled(self, phase, x, y=None, compute_grads=True, **kwargs):
        loss = right(self, phase, x, y, compute_grads=compute_grads, **kwargs)
        if compute_grads:
            self.flat.grad *= 2
        return loss

    monkeypatch.setattr(AAE, "phase_loss", doubled)
    result = check(np.random.default_rng(0))
    for phase in ("recon", "disc", "gen"):
        assert max(e for name, e in result.errors.items() if name.startswith(phase + ":")) > 0.1, phase


def test_the_self_check_runs_the_forward_formulas_then_layers_losses_sampling_and_models(monkeypatch):
    from microvae.selfcheck import run_checks

    _spy_on_the_self_check(monkeypatch)
    order = [group for group, _, _ in run_checks()]
    assert order == sorted(order, key=["forward", "layer", "loss", "sampling", "model"].index)
    assert order[0] == "forward" and order[-1] == "model"


# the forward checks: what finite differences cannot see -------------------------------------------
def _sampling_with_exp_logvar(monkeypatch, backward_follows=True):
    """numpy-ml's bug: σ = exp(logvar) in the sampler's forward pass; with ``backward_follows`` its
    backward pass is the matching one, dlogvar = dz·ε·exp(logvar), and every gradient agrees."""
    from microvae.reparam import Reparameterization

    right = Reparameterization.forward

    def forward(self, mu, logvar, eps=None):
        z = right(self, mu, logvar, eps)
        self._std = self._std**2  # exp(½·logvar)² = exp(logvar)
        return z + (self._std - self._std**0.5) * self._eps

    monkeypatch.setattr(Reparameterization, "forward", forward)
    if backward_follows:
        monkeypatch.setattr(Reparameterization, "backward", lambda self, dz: (dz, dz * self._eps * self._std))


def test_the_self_check_catches_a_forward_bug_that_every_gradient_check_passes(monkeypatch, capsys):
    """Sampling with σ = exp(logvar), its backward pass to match: each gradient agrees with its
    (wrong) forward pass, so only the forward checks can fail, and the command must."""
    from microvae.selfcheck import run_checks

    _sampling_with_exp_logvar(monkeypatch)
    results = {(group, name): result for group, name, result in run_checks()}
    failed = {key for key, result in results.items() if not result.passed(1e-6)}
    assert failed == {("forward", "reparameterization: z = μ + exp(½·logvar)·ε"),
                      ("forward", "VAE objective (β=4) by a plain NumPy forward pass")}
    assert all(result.passed(1e-6) for (group, _), result in results.items() if group != "forward")
    assert main(["gradcheck"]) == 1
    assert capsys.readouterr().out.rstrip().endswith("2 check(s) FAILED")


def _scaled_per_example(function, factor):
    def scaled(*args, **kwargs):
        per_example, *grads = function(*args, **kwargs)
        return (per_example * factor, *grads)
    return scaled


@pytest.mark.parametrize("function,title", [
    ("bernoulli_nll", "bernoulli_nll: Σ [softplus(l) − x·l]"),
    ("bce_probabilities", "bce_probabilities: −Σ [x·log p + (1 − x)·log(1 − p)]"),
    ("gaussian_nll", "gaussian_nll: ½·Σ [log 2π + logvar + (x − μ)²·e^−logvar]"),
    ("mse", "mse: Σ (prediction − x)²"),
    ("kl_normal", "kl_normal: ½·Σ [μ² + e^logvar − 1 − logvar]"),
    ("kl_gaussians", "kl_gaussians: ½·Σ [lv_p − lv_q + (e^lv_q + Δμ²)·e^−lv_p − 1]"),
    ("discriminator_loss", "GAN losses: softplus(−r) + softplus(f); softplus(−f)"),
    ("generator_loss", "GAN losses: softplus(−r) + softplus(f); softplus(−f)"),
])
def test_each_forward_check_fails_a_value_off_by_a_hundred_thousandth(monkeypatch, function, title):
    """Each loss's value, scaled by 1 + 1e-5 (its gradients untouched), fails its own check."""
    from microvae import losses
    from microvae.selfcheck import CHECKS

    check = CHECKS[("forward", title)]
    assert check(np.random.default_rng(0)).passed(1e-6)
    monkeypatch.setattr(losses, function, _scaled_per_example(getattr(losses, function), 1 + 1e-5))
    result = check(np.random.default_rng(0))
    assert result.max_error == pytest.approx(1e-5, rel=1e-3) and not result.passed(1e-6)


def test_the_vae_objective_check_catches_a_kl_without_its_minus_one(monkeypatch):
    """KL summed without its −1 differs by a constant, which leaves every gradient as it was: the
    kl_normal check and the VAE objective check both fail, and each gradient check passes."""
    from microvae import losses
    from microvae.models import vae
    from microvae.selfcheck import run_checks

    original = losses.kl_normal

    def without_minus_one(mu, logvar):
        per_example, *grads = original(mu, logvar)
        return (per_example + 0.5 * mu.shape[1], *grads)

    monkeypatch.setattr(losses, "kl_normal", without_minus_one)
    monkeypatch.setattr(vae, "kl_normal", without_minus_one)
    results = {(group, name): result for group, name, result in run_checks()}
    failed = {name for (group, name), result in results.items() if not result.passed(1e-6)}
    assert failed == {"kl_normal: ½·Σ [μ² + e^logvar − 1 − logvar]", "VAE objective (β=4) by a plain NumPy forward pass"}
    assert results[("forward", "VAE objective (β=4) by a plain NumPy forward pass")].errors["recon"] <= 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_forward_checks_agree_to_rounding(seed):
    from microvae.selfcheck import run_checks

    results = list(run_checks(seed=seed, groups="forward"))
    assert len(results) == 9
    for _, name, result in results:
        assert result.mode == "formula" and result.errors and result.max_error <= 1e-14, (name, result.errors)


def test_the_loss_checks_are_made_at_varied_points(monkeypatch):
    """A loss checked at one repeated value (all logits 0, say) is checked at one point only."""
    from microvae.selfcheck import run_checks

    seen = _spy_on_the_self_check(monkeypatch)
    list(run_checks(groups="loss"))
    assert seen
    for _, args, _ in seen:
        for name, value in args[1].items():
            assert len(np.unique(value)) == value.size, (getattr(args[0], "__name__", args[0]), name)


def test_divergence_is_one_message_without_numpys_warnings(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--out", str(out), "--limit", "600", "--epochs", "1", "--hidden", "32", "--likelihood", "gaussian",
            "--lr", "1e6", "--batch-size", "32", "--verbose", "0"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning escaping the CLI would fail here instead of printing
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert "training diverged at epoch 1" in err and "lower learning rate" in err
    assert "RuntimeWarning" not in err
    assert not out.exists()  # diverged in the first epoch: nothing written, no empty folder left


# --------------------------------------------------------------------------- an audit of the command line (9a6afa4 and after)


def test_an_overwrite_whose_history_cannot_be_written_leaves_the_earlier_run_whole(tmp_path, monkeypatch, capsys):
    """model.npz was replaced first, then history.json failed (a full disk): the folder held a new
    model beside the old run's history and pictures, and the old model was lost."""
    import errno
    import hashlib

    from microvae import training

    def digests():  # (a failing comparison of the bytes themselves would take pytest minutes to print)
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}

    out = tmp_path / "run"
    base = ["train", "--limit", "20", "--hidden", "8", "--out", str(out), "--verbose", "0"]
    assert main([*base, "--epochs", "2"]) == 0
    before = digests()

    def full_disk(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(training.History, "to_json", full_disk)
    assert main([*base, "--epochs", "1", "--overwrite", "--latent-dim", "3"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert digests() == before  # no staged file left either


def test_a_later_epoch_that_cannot_be_written_leaves_the_run_at_the_epoch_before(tmp_path, monkeypatch, capsys):
    import errno

    from microvae import training

    calls, to_csv = [], training.History.to_csv

    def full_disk_in_epoch_2(self, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        to_csv(self, path)

    monkeypatch.setattr(training.History, "to_csv", full_disk_in_epoch_2)
    out = tmp_path / "run"
    assert main(["train", "--limit", "20", "--hidden", "8", "--epochs", "3", "--out", str(out), "--verbose", "0"]) == 2
    assert "holds this run through epoch 1" in capsys.readouterr().err  # true now: the model too is epoch 1's
    assert mv.load(out / "model.npz").epochs_trained == 1
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "history.json", "model.npz"]


def test_a_refused_run_removes_every_folder_it_made_for_a_nested_out(tmp_path, capsys):
    out = tmp_path / "a" / "b" / "c"  # only c was removed: a and a/b stayed, empty
    assert main(["train", "--limit", "20", "--hidden", "8", "--model", "cvae", "--data", "sinusoids", "--out", str(out)]) == 2
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "keep.txt").write_text("mine")
    assert main(["train", "--limit", "20", "--hidden", "8", "--model", "cvae", "--data", "sinusoids", "--out", str(out)]) == 2
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["keep.txt"]  # a folder that was there stays


def test_sample_reads_microvae_backend_as_its_help_says(tmp_path, monkeypatch, capsys):
    mv.VAE(16, (4,), 2, seed=0).save(tmp_path / "m.npz")
    monkeypatch.setenv("MICROVAE_BACKEND", "bogus")  # was ignored: sample ran on NumPy
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "4", "--out", str(tmp_path / "s.png")]) == 2
    assert "backend must be 'numpy' or 'cupy', got 'bogus' (from $MICROVAE_BACKEND)" in capsys.readouterr().err
    drawn = _drawn(monkeypatch)
    monkeypatch.setenv("MICROVAE_BACKEND", "numpy")
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert len(drawn) == 1


def test_evaluate_reads_microvae_backend_as_its_help_says(tmp_path, monkeypatch, capsys):
    mv.VAE(1024, (4,), 2, seed=0).save(tmp_path / "m.npz")
    argv = ["evaluate", str(tmp_path / "m.npz"), "--data", "sprites", "--limit", "40", "--k", "2"]
    monkeypatch.setenv("MICROVAE_BACKEND", "bogus")
    assert main(argv) == 2
    assert "backend must be 'numpy' or 'cupy', got 'bogus' (from $MICROVAE_BACKEND)" in capsys.readouterr().err
    monkeypatch.setenv("MICROVAE_BACKEND", "numpy")
    assert main(argv) == 0
    assert "IWAE bound" in capsys.readouterr().out


def test_sample_refuses_a_label_beyond_the_cvaes_classes(tmp_path, capsys):
    mv.CVAE(16, 3, (4,), 2, seed=0).save(tmp_path / "c.npz")
    out = ["-n", "4", "--out", str(tmp_path / "s.png")]
    for label in ("3", "-2"):
        assert main(["sample", str(tmp_path / "c.npz"), "--label", label, *out]) == 2
        assert f"--label must be a class in [0, 2] for this CVAE, got {label}" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()
    assert main(["sample", str(tmp_path / "c.npz"), "--label", "2", *out]) == 0


def test_the_backend_flag_overrides_microvae_backend(tmp_path, monkeypatch):
    """--backend numpy wins over a $MICROVAE_BACKEND that names no backend, in sample and in
    train (the help says the variable is the default only); ignoring the flag would fail."""
    mv.VAE(16, (4,), 2, seed=0).save(tmp_path / "m.npz")
    monkeypatch.setenv("MICROVAE_BACKEND", "bogus")
    drawn = _drawn(monkeypatch)
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "4", "--backend", "numpy", "--out", str(tmp_path / "s.png")]) == 0
    assert len(drawn) == 1 and len(drawn[0][0][0]) == 4
    assert main(["train", "--limit", "40", "--epochs", "1", "--hidden", "8", "--backend", "numpy", "--verbose", "0",
                 "--out", str(tmp_path / "run")]) == 0
    assert mv.load(tmp_path / "run" / "model.npz", backend="numpy").backend.name == "numpy"


def test_a_bad_microvae_kernels_is_not_blamed_on_the_checkpoint(tmp_path, monkeypatch):
    from microvae.checkpoint import CheckpointError

    mv.VAE(16, (4,), 2, seed=0).save(tmp_path / "m.npz")
    monkeypatch.setenv("MICROVAE_KERNELS", "bogus")
    with pytest.raises(ValueError, match=r"kernels must be 'compiled' or 'reference', got 'bogus' \(from \$MICROVAE_KERNELS\)") as info:
        mv.load(tmp_path / "m.npz")
    assert not isinstance(info.value, CheckpointError)  # it said "its config does not build a VAE"


def test_an_array_too_large_to_shape_gets_the_memory_hint(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--limit", "20", "--model", "vrae", "--data", "sinusoids",
                 "--rnn-hidden", "99999999999", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.endswith(
        "microvae: error: Maximum allowed dimension exceeded; try a smaller --limit, --batch-size or model\n")


def _after_each_epoch(monkeypatch, then):
    """Call ``then(epoch)`` after train's run folder has written each epoch's files."""
    from microvae import cli

    on_epoch_end = cli._RunFolder.on_epoch_end

    def wrapped(self, model, epoch, record):
        on_epoch_end(self, model, epoch, record)
        then(self.epochs)

    monkeypatch.setattr(cli._RunFolder, "on_epoch_end", wrapped)


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_the_run_files_keep_their_permissions_as_save_keeps_them(tmp_path, monkeypatch):
    """Each epoch's model.npz and history.json/csv were new files renamed over the old ones, so a
    private (0600) checkpoint and history became 0644, readable by everyone, at the next epoch
    or --overwrite (model.save keeps the mode)."""
    out = tmp_path / "run"
    base = ["train", "--limit", "20", "--hidden", "8", "--out", str(out), "--verbose", "0"]
    files = [out / name for name in ("model.npz", "history.json", "history.csv")]
    old = os.umask(0o022)  # new files 0644
    try:
        assert main([*base, "--epochs", "1"]) == 0
        for path in files:
            os.chmod(path, 0o600)
        assert main([*base, "--epochs", "1", "--overwrite"]) == 0
        assert [os.stat(path).st_mode & 0o777 for path in files] == [0o600] * 3
        _after_each_epoch(monkeypatch, lambda epoch: [os.chmod(path, 0o640) for path in files if epoch == 1])
        assert main([*base, "--epochs", "2", "--overwrite"]) == 0  # a chmod while the run goes on holds too
        assert [os.stat(path).st_mode & 0o777 for path in files] == [0o640] * 3
        assert mv.load(out / "model.npz").epochs_trained == 2
    finally:
        os.umask(old)


def test_a_write_protected_run_file_is_refused_as_save_refuses_it(tmp_path, monkeypatch, capsys):
    """--overwrite (or the next epoch, after a chmod a-w mid-run) renamed a new model.npz over a
    checkpoint kept write-protected, which model.save refuses, and left it writable. (The tests
    run as root, for whom the mode bits refuse nothing, so the process's answer is stood in for.)"""
    import hashlib

    def digests():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}

    out = tmp_path / "run"
    base = ["train", "--limit", "20", "--hidden", "8", "--out", str(out), "--verbose", "0"]
    assert main([*base, "--epochs", "1"]) == 0
    protected, real_access = set(), os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode == os.W_OK and os.fspath(p) in protected
                        else real_access(p, mode, **kw))
    for name in ("model.npz", "loss_curves.png"):  # a picture too: refused before training, not after it
        protected.add(os.path.realpath(out / name))
        before = digests()
        _fails_cleanly([*base, "--epochs", "1", "--overwrite"], capsys,
                       f"microvae: error: the file is write-protected: {out / name}\n")
        assert digests() == before
        protected.clear()
    _after_each_epoch(monkeypatch, lambda epoch: protected.add(os.path.realpath(out / "history.csv")))
    assert main([*base, "--epochs", "3", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"microvae: error: the file is write-protected: {out / 'history.csv'}" in err
    assert "holds this run through epoch 1" in err
    assert mv.load(out / "model.npz").epochs_trained == 1
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "history.json", "model.npz"]  # nothing staged left


def test_a_write_protected_run_file_is_named_as_given_through_a_link(tmp_path, monkeypatch, capsys):
    """The refusal names the path the user gave (--out through a symbolic link), not the
    link's target, as a plain open(path, "wb") would name it."""
    real, link = tmp_path / "real", tmp_path / "link"
    base = ["train", "--limit", "20", "--hidden", "8", "--verbose", "0", "--epochs", "1"]
    assert main([*base, "--out", str(real)]) == 0
    link.symlink_to(real, target_is_directory=True)
    target, real_access = os.path.realpath(real / "model.npz"), os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode == os.W_OK and os.fspath(p) == target
                        else real_access(p, mode, **kw))
    _fails_cleanly([*base, "--out", str(link), "--overwrite"], capsys,
                   f"microvae: error: the file is write-protected: {link / 'model.npz'}\n")


@pytest.mark.parametrize("features, drawing", [(4, "plot_sequences"), (5, "plot_piano_roll")])
def test_sample_draws_a_model_from_python_as_curves_up_to_four_features(tmp_path, monkeypatch, features, drawing):
    """Without the training run's info, sample draws up to 4 features as curves, more as a piano roll."""
    mv.VRAE(features, 8, 4, seed=0).save(tmp_path / "v.npz")
    drawn = _drawn(monkeypatch, drawing)
    assert main(["sample", str(tmp_path / "v.npz"), "-n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert len(drawn) == 1 and drawn[0][0][0].shape == (2, 32, features)


def test_a_piano_roll_runs_reconstructions_say_which_rolls_are_data(tmp_path, monkeypatch):
    """reconstructions.png was one column of "roll 0" .. "roll 7", the test rolls then their
    reconstructions, with nothing to tell them apart (and with 2 test rolls, 0-1 were data and
    2-3 reconstructions)."""
    from microvae import plot

    figures, draw = [], plot.plot_piano_roll
    monkeypatch.setattr(plot, "plot_piano_roll", lambda *a, **k: figures.append(draw(*a, **k)) or figures[-1])
    assert main(["train", "--model", "vrae", "--data", "piano-rolls", "--limit", "20", "--epochs", "1", "--rnn-hidden", "4",
                 "--out", str(tmp_path), "--verbose", "0"]) == 0
    reconstructions, samples = figures
    assert [ax.get_title() for ax in reconstructions.axes] == ["original", "reconstruction", "", ""]
    assert [ax.get_ylabel() for ax in reconstructions.axes] == ["roll 0\npitch", "", "roll 1\npitch", ""]
    assert reconstructions._suptitle.get_text() == "test rolls and their reconstructions"
    assert samples._suptitle.get_text() == "free-running samples" and len(samples.axes) == 8
    assert "original" not in [ax.get_title() for ax in samples.axes]


def test_sample_names_its_own_options_when_the_samples_are_too_large(tmp_path, monkeypatch, capsys):
    """sample's size errors said "try a smaller --limit, --batch-size or model", options of train
    that sample does not have, and did not say that the length came from the checkpoint's info."""
    mv.VAE(16, (4,), 2, seed=0).save(tmp_path / "m.npz")
    out = ["--out", str(tmp_path / "s.png")]
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "99999999999999999999", *out]) == 2
    assert capsys.readouterr().err == "microvae: error: Maximum allowed dimension exceeded; try a smaller -n\n"
    mv.VRAE(6, 8, 4, seed=0).save(tmp_path / "v.npz", info={"length": 10 ** 9})
    lengths = []

    def too_large(self, n, length, seed=None):  # (allocating the 89 GiB asked for may not fail at once everywhere)
        lengths.append(length)
        raise MemoryError("Unable to allocate 89.4 GiB")

    monkeypatch.setattr(mv.VRAE, "sample", too_large)
    assert main(["sample", str(tmp_path / "v.npz"), "-n", "4", *out]) == 2
    assert capsys.readouterr().err == ("microvae: error: out of memory (Unable to allocate 89.4 GiB); try a smaller -n or "
                                       "--length (the length, 1000000000 steps, is the checkpoint's info['length'])\n")
    assert main(["sample", str(tmp_path / "v.npz"), "-n", "4", "--length", "999999999", *out]) == 2
    assert capsys.readouterr().err.endswith("; try a smaller -n or --length\n")
    assert lengths == [10 ** 9, 999999999] and not (tmp_path / "s.png").exists()


def test_sample_says_that_curves_of_more_than_4_features_are_drawn_as_heatmaps(tmp_path, monkeypatch, capsys):
    """--draw-as curves drew a 6-feature model's samples as feature-by-time heatmaps, and neither
    the help nor the command said so."""
    import argparse

    from microvae.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    help_text = next(a.help for a in subparsers.choices["sample"]._actions if "--draw-as" in a.option_strings)
    assert "curves draws up to 4 features as lines, more as feature-by-time heatmaps" in help_text
    drawn = _drawn(monkeypatch, "plot_sequences")
    for features in (6, 4):
        mv.VRAE(features, 8, 4, seed=0).save(tmp_path / "v.npz")
        assert main(["sample", str(tmp_path / "v.npz"), "--draw-as", "curves", "-n", "3", "--out", str(tmp_path / "s.png")]) == 0
        assert drawn[-1][0][0].shape == (3, 32, features)
        err = capsys.readouterr().err
        assert (err == "microvae: --draw-as curves: these sequences have 6 features, more than the 4 drawn as lines; each "
                       "sequence is drawn as a feature-by-time heatmap instead\n") if features == 6 else err == ""


# --resume: training a run on ------------------------------------------------------------------
def _run_files(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _history_without_times(out):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in json.loads((out / "history.json").read_text())]


@pytest.mark.parametrize("options", [
    ["--hidden", "8"],
    ["--model", "cvae", "--hidden", "8", "--lr", "2e-3"],
    ["--model", "aae", "--prior", "mixture", "--hidden", "8", "--clip-norm", "1"],
    ["--model", "vrae", "--rnn-hidden", "4", "--batch-size", "16"],
    ["--model", "convvae", "--variant", "strided"],
], ids=["vae", "cvae-lr", "aae-mixture-clip", "vrae", "convvae"])
def test_resume_trains_on_exactly_as_one_longer_run(options, tmp_path, capsys):
    """Two epochs, then --resume for one more: the parameters, optimizer state and history of
    three epochs in one run, with the run's own data, seed, batch size and optimizer settings."""
    common = ["train", "--limit", "60", "--seed", "3", *options, "--verbose", "0"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*common, "--epochs", "3", "--out", str(straight)]) == 0
    assert main([*common, "--epochs", "2", "--out", str(resumed)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--epochs", "1", "--out", str(resumed), "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "microvae: resuming" in out and "after epoch 2" in out
    a, b = mv.load(straight / "model.npz"), mv.load(resumed / "model.npz")
    assert a.epochs_trained == b.epochs_trained == 3 and a.step == b.step
    np.testing.assert_array_equal(a.flat.data, b.flat.data)
    assert a.optimizers.keys() == b.optimizers.keys()
    for group in a.optimizers:
        state_a, state_b = a.optimizers[group].state_arrays(), b.optimizers[group].state_arrays()
        assert state_a.keys() == state_b.keys() and a.optimizers[group].t == b.optimizers[group].t
        for key, value in state_a.items():
            np.testing.assert_array_equal(value, state_b[key])
    assert a.optimizer_spec == b.optimizer_spec
    assert _history_without_times(straight) == _history_without_times(resumed)
    assert (straight / "history.csv").read_text().splitlines()[0] == (resumed / "history.csv").read_text().splitlines()[0]
    from microvae.checkpoint import read_info

    assert read_info(straight / "model.npz") == read_info(resumed / "model.npz")
    assert sorted(p.name for p in straight.iterdir()) == sorted(p.name for p in resumed.iterdir())  # pictures drawn again


def test_resume_takes_a_new_lr_or_clip_norm_and_keeps_the_run_s_otherwise(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--limit", "40", "--hidden", "8", "--epochs", "1", "--lr", "2e-3", "--clip-norm", "3",
                 "--out", str(out), "--verbose", "0"]) == 0
    assert main(["train", "--resume", "--epochs", "1", "--out", str(out), "--verbose", "0"]) == 0
    optimizer = mv.load(out / "model.npz").optimizers["model"]
    assert (optimizer.lr, optimizer.clip_norm) == (2e-3, 3.0)
    assert main(["train", "--resume", "--epochs", "1", "--lr", "5e-4", "--out", str(out), "--verbose", "0"]) == 0
    model = mv.load(out / "model.npz")
    assert (model.optimizers["model"].lr, model.optimizers["model"].clip_norm, model.epochs_trained) == (5e-4, 3.0, 3)
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3]


@pytest.mark.parametrize("option", [["--hidden", "8"], ["--model", "vae"], ["--data", "sprites"], ["--seed", "0"],
                                    ["--limit", "40"], ["--batch-size", "128"], ["--latent-dim", "2"], ["--beta", "0"]])
def test_resume_refuses_options_that_the_run_recorded_or_built_its_model_with(option, tmp_path, capsys, trained_run):
    before = _run_files(trained_run)
    _fails_cleanly(["train", "--resume", *option, "--out", str(trained_run)], capsys,
                   f"--resume continues the run in --out with the model, data, --limit, seed and batch size it was trained with "
                   f"(its model.npz records them); leave out {option[0]}, or start a new run in another --out")
    assert _run_files(trained_run) == before


def test_resume_with_overwrite_is_refused(capsys, trained_run):
    before = _run_files(trained_run)
    _fails_cleanly(["train", "--resume", "--overwrite", "--out", str(trained_run)], capsys,
                   "--resume continues the run in --out and --overwrite replaces it; give one of them")
    assert _run_files(trained_run) == before


def test_resume_of_a_folder_without_a_run_says_so_and_makes_no_folder(tmp_path, capsys):
    out = tmp_path / "none" / "run"
    _fails_cleanly(["train", "--resume", "--out", str(out)], capsys,
                   f"--resume: {out} holds no run to continue (no model.npz); start one with microvae train --out {out}")
    assert not (tmp_path / "none").exists()


def test_a_run_in_out_still_names_resume_and_overwrite(capsys, trained_run):
    _fails_cleanly(["train", "--out", str(trained_run)], capsys,
                   "choose another --out, pass --resume to train it on, or --overwrite to replace it")


@pytest.mark.parametrize("info, message", [
    (None, "does not record how it was trained (its info lacks model, data, limit, seed, batch_size): model.save() or "
           "an earlier microvae train wrote it; continue it from Python with microvae.load(path).fit(x, epochs=...)"),
    ({"data": "sprites", "image_shape": [4, 4]}, "its info lacks model, limit, seed, batch_size"),
    ({"model": "gan", "data": "sprites", "limit": 40, "seed": 0, "batch_size": 8}, "'s info has model='gan', not one of vae, "),
    ({"model": "vae", "data": ["sprites"], "limit": 40, "seed": 0, "batch_size": 8}, "'s info has data=['sprites'], not one of "),
    ({"model": "vae", "data": "sprites", "limit": 0, "seed": 0, "batch_size": 8}, "limit=0, not null or a positive integer"),
    ({"model": "vae", "data": "sprites", "limit": 40, "seed": -1, "batch_size": 8}, "seed=-1, not an integer >= 0"),
    ({"model": "vae", "data": "sprites", "limit": 40, "seed": False, "batch_size": 8}, "seed=False, not an integer >= 0"),
    ({"model": "vae", "data": "sprites", "limit": 40, "seed": 0, "batch_size": 2.0}, "batch_size=2.0, not a positive integer"),
    ({"model": "cvae", "data": "sprites", "limit": 40, "seed": 0, "batch_size": 8},
     "holds a VAE, but its info says model='cvae' (a CVAE)"),
])
def test_resume_refuses_a_checkpoint_that_does_not_record_its_run(info, message, tmp_path, capsys):
    """A checkpoint written by model.save(), or with an info that is not a run's: nothing is
    trained and the file is left as it was."""
    out = tmp_path / "run"
    out.mkdir()
    model = mv.VAE(1024, (4,), 2, seed=0)
    model.fit(np.random.default_rng(0).random((16, 1024)).round(), epochs=1, batch_size=8, verbose=0)
    model.save(out / "model.npz", info=info)
    before = _run_files(out)
    _fails_cleanly(["train", "--resume", "--out", str(out)], capsys, message)
    assert _run_files(out) == before


def test_resume_refuses_a_checkpoint_without_optimizer_state(tmp_path, capsys, trained_run):
    out = tmp_path / "run"
    out.mkdir()
    from microvae.checkpoint import read_info

    mv.load(trained_run / "model.npz").save(out / "model.npz", include_optimizer=False, info=read_info(trained_run / "model.npz"))
    before = _run_files(out)
    _fails_cleanly(["train", "--resume", "--out", str(out)], capsys,
                   "holds no optimizer state to continue from (it was saved with include_optimizer=False, or before any training)")
    assert _run_files(out) == before


def test_an_interrupted_resume_counts_the_run_s_epochs_and_keeps_its_history(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(["train", "--limit", "20", "--hidden", "8", "--epochs", "2", "--out", str(out), "--verbose", "0"]) == 0
    capsys.readouterr()
    _interrupt_at_step(monkeypatch, 2)  # 18 training examples: one step an epoch
    assert main(["train", "--resume", "--epochs", "3", "--out", str(out), "--verbose", "0"]) == 130
    assert (f"holds this run through epoch 3: model.npz and history.json/csv, no pictures; microvae train --resume "
            f"--out {out} trains it on") in capsys.readouterr().err
    assert mv.load(out / "model.npz").epochs_trained == 3
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3]
    monkeypatch.undo()
    assert main(["train", "--resume", "--epochs", "1", "--out", str(out), "--verbose", "0"]) == 0
    assert mv.load(out / "model.npz").epochs_trained == 4 and (out / "samples.png").exists()


# evaluate ---------------------------------------------------------------------------------------
def _evaluated(argv, capsys):
    assert main(["evaluate", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    figures = {}
    for line in lines[2:]:
        words = line.split()
        if words[0] == "ELBO":
            figures["elbo"] = float(words[1])
        elif words[:2] == ["IWAE", "bound"]:
            figures["iwae"] = float(words[2])
        elif words[0] != "no":
            pairs = line.split("   (")[0].split()
            figures.update({key: float(value) for key, value in zip(pairs[::2], pairs[1::2])})
    return lines, figures


def _trained(folder, capsys, *options):
    """A one-epoch run of a small model in ``folder``, the output it printed cleared."""
    assert main(["train", *options, "--epochs", "1", "--out", str(folder), "--verbose", "0"]) == 0
    capsys.readouterr()
    return folder / "model.npz"


def test_evaluate_prints_the_figures_metrics_gives_on_the_run_s_own_test_set(trained_run, capsys):
    """The test split is the one train made (sprites: its seed and --limit, a tenth held out)."""
    import microvae.metrics as M
    from microvae.cli import load_data

    lines, figures = _evaluated([str(trained_run / "model.npz"), "--k", "7", "--samples", "2", "--seed", "4"], capsys)
    assert "after 2 epoch(s), on the test set of sprites (60 examples; nats per example; noise seeded by --seed 4)" in lines[1]
    model = mv.load(trained_run / "model.npz")
    x = load_data("sprites", 600, 0)["x_test"]
    expected = model.evaluate(x, seed=4, batch_size=100)
    assert figures.keys() == {"loss", "recon", "kl", "elbo", "iwae"}
    for key in ("loss", "recon", "kl"):
        assert figures[key] == pytest.approx(expected[key], abs=1e-4)
    assert figures["elbo"] == pytest.approx(float(M.elbo(model, x, n_samples=2, seed=4).mean()), abs=1e-4)
    assert figures["iwae"] == pytest.approx(float(M.iwae_bound(model, x, k=7, seed=4).mean()), abs=1e-4)
    assert "(2 samples of z per example)" in lines[3] and "(k = 7;" in lines[4]


def test_evaluate_passes_a_cvae_its_labels_and_takes_the_run_s_seed_for_generated_data(tmp_path, capsys):
    import microvae.metrics as M
    from microvae.cli import load_data

    checkpoint = _trained(tmp_path, capsys, "--model", "cvae", "--hidden", "8", "--limit", "50", "--seed", "2")
    _, figures = _evaluated([str(checkpoint), "--k", "3"], capsys)
    data = load_data("sprites", 50, 2)
    model = mv.load(checkpoint)
    assert figures["iwae"] == pytest.approx(float(M.iwae_bound(model, data["x_test"], k=3, y=data["y_test"]).mean()), abs=1e-4)
    assert figures["loss"] == pytest.approx(model.evaluate(data["x_test"], data["y_test"], seed=0)["loss"], abs=1e-4)


def test_evaluate_an_aae_gives_its_terms_and_says_why_there_is_no_elbo(tmp_path, capsys):
    checkpoint = _trained(tmp_path, capsys, "--model", "aae", "--prior", "mixture", "--hidden", "8", "--limit", "50")
    lines, figures = _evaluated([str(checkpoint)], capsys)
    assert figures.keys() == {"loss", "recon", "disc", "gen"}
    assert lines[-1] == "  no ELBO or IWAE bound: an AAE has no KL term (its codes are matched to the prior adversarially)"


def test_evaluate_a_sequence_model(tmp_path, capsys):
    import microvae.metrics as M
    from microvae.cli import load_data

    checkpoint = _trained(tmp_path, capsys, "--model", "vrae", "--data", "sinusoids", "--rnn-hidden", "4", "--limit", "30")
    _, figures = _evaluated([str(checkpoint), "--k", "2"], capsys)
    x = load_data("sinusoids", 30, 0, sequences=True)["x_test"]
    assert figures["elbo"] == pytest.approx(float(M.elbo(mv.load(checkpoint), x).mean()), abs=1e-4)


def test_evaluate_needs_data_for_a_checkpoint_that_records_none(tmp_path, capsys):
    model = mv.VAE(1024, (4,), 2, seed=0)
    model.save(tmp_path / "m.npz")
    _fails_cleanly(["evaluate", str(tmp_path / "m.npz")], capsys,
                   "does not record the data it was trained on (model.save() or an earlier microvae train wrote it); "
                   "pass --data, one of sprites, ")
    lines, _ = _evaluated([str(tmp_path / "m.npz"), "--data", "sprites", "--limit", "40", "--k", "2"], capsys)
    assert "after 0 epoch(s), on the test set of sprites (4 examples;" in lines[1]


@pytest.mark.parametrize("argv, message", [
    (["--data", "sinusoids"], "--data sinusoids is sequence data; this checkpoint holds a VAE, an image model"),
    (["--data", "fashion-mnist", "--limit", "10"],
     "error: the test set of fashion-mnist does not fit this VAE: x must have shape (batch, 1024), got (100, 784)"),
])
def test_evaluate_refuses_data_the_model_cannot_take(argv, message, trained_run, capsys):
    assert main(["evaluate", str(trained_run / "model.npz"), *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err and not captured.out  # refused before the header


def test_evaluate_counts_one_example_as_one(trained_run, capsys):
    lines, _ = _evaluated([str(trained_run / "model.npz"), "--limit", "10", "--k", "2"], capsys)
    assert "on the test set of sprites (1 example; nats" in lines[1]


def test_evaluate_refuses_a_recorded_run_it_cannot_read(tmp_path, capsys):
    mv.VAE(1024, (4,), 2, seed=0).save(tmp_path / "m.npz", info={"data": "cifar"})
    _fails_cleanly(["evaluate", str(tmp_path / "m.npz")], capsys, "'s info has data='cifar', not one of sprites, ")


# the review of --resume and evaluate (audit of cd9deca) -------------------------------------------
def test_resume_with_a_changed_lr_says_the_optimizer_starts_afresh_and_it_does(tmp_path, capsys):
    """fit's rule: a changed setting starts a new optimizer run. The CLI text had promised to
    "change the run's" setting, and the moments were dropped without a word."""
    out = tmp_path / "run"
    common = ["--out", str(out), "--verbose", "0"]
    assert main(["train", "--limit", "40", "--hidden", "8", "--epochs", "2", "--batch-size", "12", *common]) == 0
    assert mv.load(out / "model.npz").optimizers["model"].t == 6  # 36 training examples: 3 steps an epoch
    capsys.readouterr()
    assert main(["train", "--resume", "--epochs", "1", "--lr", "1e-3", *common]) == 0  # the run's own: continued
    assert "new optimizer run" not in capsys.readouterr().out
    assert mv.load(out / "model.npz").optimizers["model"].t == 9
    assert main(["train", "--resume", "--epochs", "1", "--lr", "5e-4", "--clip-norm", "2", *common]) == 0
    assert ("microvae: --lr 0.0005 (the run's: 0.001) and --clip-norm 2 (the run's: none): a changed optimizer setting "
            "starts a new optimizer run, with fresh moments and step count, as model.fit does") in capsys.readouterr().out
    model = mv.load(out / "model.npz")
    assert model.optimizers["model"].t == 3 and model.step == 12  # the optimizer's steps start again; the model's do not


def test_resume_of_an_aae_whose_discriminator_runs_at_its_own_rate_names_each_group_s(tmp_path, capsys):
    """--lr set to the first group's rate used to pass for the run's own, while fit gave the
    discriminator that rate and restarted every group without a word."""
    from microvae.checkpoint import read_info

    out = tmp_path / "run"
    common = ["--out", str(out), "--verbose", "0"]
    assert main(["train", "--model", "aae", "--limit", "40", "--hidden", "8", "--epochs", "1", "--batch-size", "12", *common]) == 0
    model = mv.load(out / "model.npz")
    model.optimizers["discriminator"].lr = 4e-4
    model.save(out / "model.npz", info=read_info(out / "model.npz"))
    capsys.readouterr()
    assert main(["train", "--resume", "--epochs", "1", *common]) == 0  # no --lr: each group's run goes on
    assert "new optimizer run" not in capsys.readouterr().out
    model = mv.load(out / "model.npz")
    assert model.optimizers["discriminator"].lr == 4e-4 and all(opt.t == 6 for opt in model.optimizers.values())
    assert main(["train", "--resume", "--epochs", "1", "--lr", "1e-3", *common]) == 0
    assert ("microvae: --lr 0.001 (the run's: autoencoder 0.001, discriminator 0.0004, generator 0.001): a changed "
            "optimizer setting starts a new optimizer run") in capsys.readouterr().out
    model = mv.load(out / "model.npz")
    assert all(opt.lr == 1e-3 and opt.t == 3 for opt in model.optimizers.values())


def test_resume_of_a_folder_with_a_run_s_files_but_no_checkpoint_points_to_overwrite(tmp_path, capsys, trained_run):
    out = tmp_path / "kept history"
    out.mkdir()
    for name in ("history.json", "history.csv", "samples.png"):
        shutil.copy(trained_run / name, out / name)
    _fails_cleanly(["train", "--resume", "--out", str(out)], capsys,
                   f"--resume: {out} holds a run's history.json, history.csv, samples.png but not its model.npz, so there "
                   f"is nothing to train on; start a new run there with microvae train --overwrite --out '{out}', or in "
                   "another --out")


@pytest.mark.parametrize("edit, message", [
    ({"limit": 5}, "--limit 5 is too small for --data sprites"),
    ({"data": "sinusoids"}, "--data sinusoids is sequence data"),
    ({"data": "fashion-mnist", "limit": 40}, "x must have shape (batch, 1024), got (1, 784)"),
])
def test_resume_names_the_recorded_settings_when_they_do_not_make_a_run(edit, message, tmp_path, capsys, trained_run):
    """Only an edited info gets here; the advice inside names options --resume refuses, so the
    message says first that the checkpoint's info is what is wrong."""
    from microvae.checkpoint import read_info

    out = tmp_path / "run"
    out.mkdir()
    info = {**read_info(trained_run / "model.npz"), **edit}
    mv.load(trained_run / "model.npz").save(out / "model.npz", info=info)
    before = _run_files(out)
    recorded = ", ".join(f"{name}={info[name]!r}" for name in ("model", "data", "limit", "seed", "batch_size"))
    _fails_cleanly(["train", "--resume", "--out", str(out)], capsys,
                   f"--resume: the settings model.npz's info records ({recorded}) do not make a run of this checkpoint: "
                   f"{message}")
    assert _run_files(out) == before


def test_the_resume_command_in_the_interrupted_message_is_quoted_for_the_shell(tmp_path, monkeypatch, capsys):
    import shlex

    out = tmp_path / "a run" / "no. 1"
    _interrupt_at_step(monkeypatch, 2)
    assert main(["train", "--limit", "20", "--hidden", "8", "--epochs", "3", "--out", str(out), "--verbose", "0"]) == 130
    err = capsys.readouterr().err
    command = err.split("; ")[1].split(" trains it on")[0]
    assert shlex.split(command) == ["microvae", "train", "--resume", "--out", str(out)]


def test_after_a_divergence_the_resume_command_lowers_the_learning_rate(tmp_path, monkeypatch, capsys):
    """The same learning rate would diverge again: the command printed after a divergence
    takes a tenth of it, and runs."""
    import shlex

    _diverge_at_step(monkeypatch, 2)
    out = tmp_path / "run"
    argv = ["train", "--limit", "20", "--hidden", "8", "--epochs", "3", "--lr", "0.003", "--out", str(out), "--verbose", "0"]
    assert main(argv) == 2  # 18 training examples: one step an epoch
    err = capsys.readouterr().err
    assert "training diverged at epoch 2, batch 1" in err
    assert "holds this run through epoch 1: model.npz and history.json/csv, no pictures; " in err
    command = err.split("no pictures; ")[1].split(" trains it on at a tenth of the learning rate that diverged")[0]
    assert shlex.split(command) == ["microvae", "train", "--resume", "--out", str(out), "--lr", "0.0003"]
    monkeypatch.undo()
    assert main(shlex.split(command)[1:] + ["--epochs", "1", "--verbose", "0"]) == 0
    model = mv.load(out / "model.npz")
    assert model.epochs_trained == 2 and model.optimizer_spec[1] == pytest.approx(0.0003)


@pytest.mark.parametrize("lr_given", [False, True])
def test_a_resumed_run_that_diverges_at_once_still_gets_the_command_to_carry_on(tmp_path, monkeypatch, capsys, lr_given):
    """A --resume whose first epoch diverges leaves the folder as it was (fit rolls the epoch
    back, nothing is written): the message says so and gives the command with a tenth of the
    rate that diverged, --lr's when given, else the run's."""
    import shlex

    out = tmp_path / "run"
    assert main(["train", "--limit", "20", "--hidden", "8", "--epochs", "2", "--lr", "0.003", "--out", str(out),
                 "--verbose", "0"]) == 0
    before = _run_files(out)
    capsys.readouterr()
    _diverge_at_step(monkeypatch)
    argv = ["train", "--resume", "--out", str(out), "--epochs", "2", "--verbose", "0"] + (["--lr", "0.5"] if lr_given else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "training diverged at epoch 3, batch 1" in err
    assert f"microvae: {out} still holds the run as it was, through epoch 2; " in err
    command = err.split("through epoch 2; ")[1].split(" trains it on at a tenth of the learning rate that diverged")[0]
    assert shlex.split(command) == ["microvae", "train", "--resume", "--out", str(out), "--lr", "0.05" if lr_given else "0.0003"]
    assert _run_files(out) == before
    monkeypatch.undo()
    assert main(shlex.split(command)[1:] + ["--epochs", "1", "--verbose", "0"]) == 0
    assert mv.load(out / "model.npz").epochs_trained == 3


def test_a_resumed_run_interrupted_at_once_keeps_its_learning_rate_in_the_command(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _trained(out, capsys, "--limit", "20", "--hidden", "8")
    _interrupt_at_step(monkeypatch, 1)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--verbose", "0"]) == 130
    line = next(line for line in capsys.readouterr().err.splitlines() if "holds the run" in line)
    assert line == f"microvae: {out} still holds the run as it was, through epoch 1; microvae train --resume --out {out} trains it on"


def test_a_resumed_run_that_fails_at_once_for_another_reason_gets_no_command(tmp_path, monkeypatch, capsys):
    """Only a divergence or Ctrl-C is worth the carry-on command; an error in the data or
    settings would stop it again."""
    from microvae.models.base import Model

    out = tmp_path / "run"
    _trained(out, capsys, "--limit", "20", "--hidden", "8")

    def failing(self, *args):
        raise RuntimeError("a bug in a batch")

    monkeypatch.setattr(Model, "_train_batch", failing)
    with pytest.raises(RuntimeError, match="a bug in a batch"):
        main(["train", "--resume", "--out", str(out), "--epochs", "1", "--verbose", "0"])
    assert "--resume" not in capsys.readouterr().err


def test_an_interruption_that_is_not_a_divergence_keeps_the_learning_rate(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _interrupt_at_step(monkeypatch, 2)
    assert main(["train", "--limit", "20", "--hidden", "8", "--epochs", "3", "--out", str(out), "--verbose", "0"]) == 130
    line = next(line for line in capsys.readouterr().err.splitlines() if "holds this run" in line)
    assert line.endswith(f"no pictures; microvae train --resume --out {out} trains it on")


def _saved_with_info(model, folder, **info):
    folder.mkdir(exist_ok=True)
    model.save(folder / "model.npz", info=info)
    return str(folder / "model.npz")


@pytest.mark.parametrize("info, argv, works", [
    ({"data": "sprites", "limit": "600", "seed": 0}, ["--limit", "600"], True),  # a bad recorded limit, given anew
    ({"data": "cifar", "limit": 600, "seed": 0}, ["--data", "sprites", "--limit", "600"], True),
    ({"data": "sprites", "limit": 600, "seed": -5}, ["--data", "mnist"], False),  # (the test set has no mnist)
    ({"data": "sprites", "limit": 600, "seed": -5}, ["--limit", "600"], False),
])
def test_evaluate_reads_a_recorded_value_only_where_it_uses_it(info, argv, works, tmp_path, capsys, trained_run):
    """The recorded data, limit and seed were all checked first: "pass --data (and --limit)"
    then failed the same way."""
    checkpoint = _saved_with_info(mv.load(trained_run / "model.npz"), tmp_path / "run", **info)
    if works:
        lines, _ = _evaluated([checkpoint, "--k", "2"] + argv, capsys)
        assert "on the test set of sprites (60 examples;" in lines[1]
    elif "mnist" in argv:  # the bad seed is not read for other data: what fails is the missing dataset, not the seed
        assert main(["evaluate", checkpoint, *argv]) == 2
        assert "seed=-5" not in capsys.readouterr().err
    else:
        _fails_cleanly(["evaluate", checkpoint, *argv], capsys,
                       "'s info has seed=-5, not an integer >= 0 (it seeded the generated data that train split)")


def test_evaluate_takes_the_recorded_limit_and_seed_only_for_the_recorded_data(tmp_path, monkeypatch, capsys, trained_run):
    """They describe the recorded run's split: other data (MNIST for a Fashion-MNIST run, say,
    the one pair of datasets that share a shape) is evaluated on its whole test set."""
    import microvae.cli as cli

    calls, load_data = [], cli.load_data

    def recorded(name, limit, seed, **options):
        calls.append((name, limit, seed))
        return load_data(name, 40, seed, **options)  # small, whatever was asked

    monkeypatch.setattr(cli, "load_data", recorded)
    model = mv.load(trained_run / "model.npz")
    for data, expected in (("fashion-mnist", ("sprites", None, 0)), ("sprites", ("sprites", 600, 3))):
        checkpoint = _saved_with_info(model, tmp_path / data, data=data, limit=600, seed=3)
        _evaluated([checkpoint, "--data", "sprites", "--k", "2"], capsys)
        assert calls.pop() == expected


def test_evaluate_refuses_data_that_leaves_no_test_examples(tmp_path, monkeypatch, capsys, trained_run):
    """No built-in dataset leaves none (a tenth is held out, MNIST keeps at least 100), but the
    guard names the cause if one ever does, rather than a mean over nothing."""
    import microvae.cli as cli

    load_data = cli.load_data

    def no_test_set(*args, **options):
        data = load_data(*args, **options)
        return {**data, "x_test": data["x_test"][:0], "y_test": data["y_test"][:0]}

    monkeypatch.setattr(cli, "load_data", no_test_set)
    _fails_cleanly(["evaluate", str(trained_run / "model.npz"), "--limit", "40"], capsys,
                   "--limit 40 leaves no test examples of sprites; give a larger --limit")


def test_after_a_divergence_the_command_takes_a_tenth_of_the_lowest_groups_rate(tmp_path, monkeypatch, capsys):
    """--lr sets every group's rate: for an AAE whose discriminator has a rate of its own, a
    tenth of the lowest, so that no group carries on at a rate that diverged."""
    import shlex

    out = tmp_path / "run"
    checkpoint = _trained(out, capsys, "--model", "aae", "--hidden", "8", "--limit", "20")
    model = mv.load(checkpoint)
    model.optimizers["discriminator"].lr = 2e-4  # the others keep Adam's 1e-3
    model.save(checkpoint)
    _diverge_at_step(monkeypatch, 2, mv.AAE)  # one step an epoch: the resumed run's second epoch diverges
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--verbose", "0"]) == 2
    err = capsys.readouterr().err
    command = err.split("no pictures; ")[1].split(" trains it on at a tenth")[0]
    assert shlex.split(command) == ["microvae", "train", "--resume", "--out", str(out), "--lr", "2e-05"]


def test_evaluate_out_of_memory_names_its_own_options_and_a_resume_names_none(tmp_path, monkeypatch, capsys, trained_run):
    import microvae.metrics as M
    from microvae.models.base import Model

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(M, "iwae_bound", no_memory)
    _fails_cleanly(["evaluate", str(trained_run / "model.npz")], capsys,
                   "microvae: error: out of memory; try a smaller --k, --samples or --batch-size")
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    monkeypatch.setattr(Model, "_train_batch", no_memory)
    _fails_cleanly(["train", "--resume", "--out", str(out)], capsys, "microvae: error: out of memory\n")


def test_evaluate_says_once_why_figures_are_not_finite(tmp_path, capsys):
    model = mv.VAE(1024, (4,), 2, likelihood="gaussian", seed=0)
    model.flat.data[:] = 1e18
    checkpoint = _saved_with_info(model, tmp_path / "huge", data="sprites", limit=40, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's RuntimeWarnings would fail here
        assert main(["evaluate", checkpoint, "--k", "2"]) == 0
    err = capsys.readouterr().err
    assert err == ("microvae: some figures are not finite: the model's outputs or likelihoods overflow on some test "
                   "examples (are its parameters finite and of a sensible size?)\n")
