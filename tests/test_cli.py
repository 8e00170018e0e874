"""The command line: help, the main job, sampling, gradcheck, and clean failures."""

import shutil
import subprocess
import sys

import pytest

import microvae as mv
from microvae.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 1000, path
    import matplotlib.image

    assert matplotlib.image.imread(str(path)).ndim == 3


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["sample", "--help"], ["gradcheck", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: microvae" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


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
    import json

    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and "val_loss" in history[0]
    assert (out / "history.csv").read_text().startswith("epoch,")


def test_train_with_larger_latent_writes_a_traversal(tmp_path):
    assert main(["train", "--limit", "300", "--epochs", "1", "--hidden", "32", "--latent-dim", "4", "--beta", "4",
                 "--out", str(tmp_path), "--verbose", "0"]) == 0
    _png(tmp_path / "traversal.png")
    assert mv.load(tmp_path / "model.npz").beta == 4.0


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
    assert lines[0].split()[:2] == ["what", "check"] and lines[-1] == "all gradients agree"
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
        assert "--tol: must be a positive number" in capsys.readouterr().err


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
    assert main(["train", *argv, "--epochs", "1", "--hidden", "32", "--rnn-hidden", "16", "--out", str(tmp_path),
                 "--verbose", "0"]) == 0
    for name in pictures:
        _png(tmp_path / f"{name}.png")
    model = mv.load(tmp_path / "model.npz")
    assert model.epochs_trained == 1
    target = tmp_path / "sampled.png"
    extra = ["--label", "3"] if getattr(model, "needs_labels", False) else []
    assert main(["sample", str(tmp_path / "model.npz"), "-n", "8", "--length", "16", "--out", str(target), *extra]) == 0
    _png(target)


def test_sequence_data_needs_a_sequence_model(capsys, tmp_path):
    _fails_cleanly(["train", "--model", "vae", "--data", "sinusoids", "--out", str(tmp_path)], capsys, "sequence data")


def test_a_limit_too_small_for_the_split_is_a_clear_message(capsys, tmp_path):
    out = tmp_path / "o"
    _fails_cleanly(["train", "--limit", "5", "--out", str(out)], capsys, "--limit 11 or more")
    _fails_cleanly(["train", "--limit", "10", "--model", "convvae", "--out", str(out)], capsys, "2 test examples")
    _fails_cleanly(["train", "--limit", "1", "--model", "vrae", "--data", "sinusoids", "--out", str(out)], capsys,
                   "--limit 2 or more")
    assert not out.exists()  # refused before anything was trained or written


@pytest.mark.parametrize("argv", [["--model", "vae", "--limit", "11"], ["--model", "convvae", "--limit", "11"],
                                  ["--model", "vrae", "--data", "sinusoids", "--limit", "2"]], ids=["vae", "convvae", "vrae"])
def test_the_smallest_limit_trains_and_draws_every_picture(argv, tmp_path):
    assert main(["train", *argv, "--epochs", "1", "--hidden", "8", "--rnn-hidden", "4", "--out", str(tmp_path),
                 "--verbose", "0"]) == 0
    _png(tmp_path / "loss_curves.png")
    if argv[1] != "vrae":  # a single-channel ConvVAE example (1, 32, 32) is one example, not a batch of one
        _png(tmp_path / "interpolation.png")


def test_braces_in_the_output_folder_are_literal(tmp_path, capsys):
    for name in ("{epoch}", "run{x}"):
        out = tmp_path / name
        assert main(["train", "--limit", "11", "--epochs", "2", "--hidden", "8", "--out", str(out), "--verbose", "0"]) == 0
        assert mv.load(out / "model.npz").epochs_trained == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run{x}", "{epoch}"]  # no runs/1, runs/2


def test_unusable_output_paths_are_clear_messages(trained_run, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    _fails_cleanly(["train", "--limit", "11", "--out", str(afile)], capsys, "is an existing file")
    _fails_cleanly(["train", "--limit", "11", "--epochs", "1", "--out", str(afile / "run")], capsys, "afile")
    checkpoint = str(trained_run / "model.npz")
    _fails_cleanly(["sample", checkpoint, "--out", str(tmp_path)], capsys, "is a folder")
    _fails_cleanly(["sample", checkpoint, "--out", str(tmp_path / "s.xyz")], capsys, "must name a .png file")
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
