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
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for name in ("Dense", "ReLU", "Sigmoid", "Tanh", "Conv2D", "Conv2DTranspose", "MaxPool2D", "RNN", "GRU",
                 "bernoulli_nll", "kl_normal", "kl_gaussians", "discriminator_loss", "generator_loss",
                 "reparameterization", "VAE", "CVAE", "ConvVAE", "AAE", "VRAE", "HierarchicalVRAE"):
        assert name in out
    assert "all gradients agree" in out and "FAIL" not in out


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
    _fails_cleanly(["sample", str(bad), "--out", str(tmp_path / "x.png")], capsys, "not a readable microvae checkpoint")
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
