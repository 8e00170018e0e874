"""Every function that takes a file or folder path takes it as a str, bytes or os.PathLike, as
Python's own open() does, and refuses anything else with a TypeError naming the argument.

A bytes path used to reach string code (``path.endswith(".gz")``, ``path.format(epoch=1)``,
joins with str names) and fail there with an error about mixing str and bytes."""
import hashlib
import os
import pathlib

import numpy as np
import pytest

import microvae as mv
import microvae.datasets.download as download_mod
from microvae.checks import as_path
from microvae.checkpoint import read_info
from microvae.datasets import load_fashion_mnist
from microvae.datasets.idx import read_idx, write_idx

FASHION = "/usr/share/datasets/fashion-mnist"


def _forms(path: str):
    """The same path as str, bytes and pathlib.Path."""
    return [path, os.fsencode(path), pathlib.Path(path)]


@pytest.mark.parametrize("form", [str, os.fsencode, pathlib.Path])
def test_as_path_gives_a_str_for_every_form_of_path(form):
    assert as_path(form("/tmp/a b/ü.npz")) == "/tmp/a b/ü.npz"


def test_as_path_keeps_undecodable_bytes_as_the_file_system_does():
    raw = b"/tmp/\xff.npz"  # not UTF-8: os.fsdecode maps it to a surrogate, os.fsencode maps it back
    assert os.fsencode(as_path(raw)) == raw


@pytest.mark.parametrize("bad", [3, None, ["a"], 2.5])
def test_as_path_refuses_what_is_no_path_naming_the_argument(bad):
    with pytest.raises(TypeError, match=rf"dest must be a file path \(str, bytes or os.PathLike\), got {type(bad).__name__}"):
        as_path(bad, "dest")


def _model():
    return mv.VAE(6, hidden=(4,), latent_dim=2, seed=0)


def test_checkpoints_save_load_and_read_info_take_every_form_of_path(tmp_path):
    model = _model()
    for i, path in enumerate(_forms(str(tmp_path / "m.npz"))):
        model.save(path, info={"i": i})
        assert read_info(path) == {"i": i}
        again = mv.load(path)
        assert np.array_equal(again.flat.data, model.flat.data)


def test_a_missing_checkpoint_at_a_bytes_path_is_named_as_a_str(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at '.*nothing\.npz'"):
        mv.load(os.fsencode(str(tmp_path / "nothing.npz")))


def test_model_checkpoint_takes_a_bytes_template(tmp_path):
    template = os.fsencode(str(tmp_path / "ckpt_{epoch:02d}.npz"))
    x = np.random.default_rng(0).random((8, 6))
    callback = mv.ModelCheckpoint(template)
    _model().fit(x, epochs=2, batch_size=4, verbose=0, callbacks=[callback])
    assert callback.saved == [str(tmp_path / "ckpt_01.npz"), str(tmp_path / "ckpt_02.npz")]
    assert all(os.path.isfile(p) for p in callback.saved)


def test_history_files_take_every_form_of_path(tmp_path):
    history = _model().fit(np.random.default_rng(0).random((8, 6)), epochs=1, batch_size=4, verbose=0)
    history.to_json(str(tmp_path / "plain.json"))
    history.to_csv(str(tmp_path / "plain.csv"))
    for suffix, write in ((".json", history.to_json), (".csv", history.to_csv)):
        target = tmp_path / f"h{suffix}"
        for path in _forms(str(target)):
            target.unlink(missing_ok=True)
            write(path)  # each form writes what a plain str path writes
            assert target.read_bytes() == (tmp_path / f"plain{suffix}").read_bytes()


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_files_take_every_form_of_path(tmp_path, name):
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    for path in _forms(str(tmp_path / name)):
        write_idx(path, array)  # a bytes ".gz" path was no str to test with endswith(".gz")
        assert np.array_equal(read_idx(path), array)
    with open(tmp_path / name, "rb") as fh:
        assert (fh.read(2) == b"\x1f\x8b") == name.endswith(".gz")


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="needs Debian's dataset-fashion-mnist")
def test_the_loader_takes_a_bytes_root():
    (x, y), _ = load_fashion_mnist(root=os.fsencode(FASHION), download=False, limit=5)
    (x_str, y_str), _ = load_fashion_mnist(root=FASHION, download=False, limit=5)
    assert np.array_equal(x, x_str) and np.array_equal(y, y_str)


def test_the_loader_refuses_a_root_that_is_no_path():
    with pytest.raises(TypeError, match="root must be a file path"):
        load_fashion_mnist(root=7, download=False)


def test_download_file_takes_a_bytes_destination(tmp_path, monkeypatch):
    payload = b"some bytes"
    monkeypatch.setattr(download_mod, "_fetch", lambda url, timeout=60.0: payload)  # never the network
    dest = download_mod.download_file("http://example.invalid/f", os.fsencode(str(tmp_path / "f.bin")),
                                      hashlib.md5(payload).hexdigest(), quiet=True)
    assert dest == str(tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == payload


def test_write_idx_refuses_a_masked_array_and_writes_nothing(tmp_path):
    masked = np.ma.masked_array(np.arange(6, dtype=np.uint8), mask=[1, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"masked array.*array\.filled\(value\).*array\.compressed\(\)"):
        write_idx(tmp_path / "m.idx", masked)  # it wrote the hidden 0 under the mask, as data
    assert not (tmp_path / "m.idx").exists()
    write_idx(tmp_path / "m.idx", masked.filled(255))
    assert read_idx(tmp_path / "m.idx").tolist() == [255, 1, 2, 3, 4, 5]


def test_a_folder_given_as_a_checkpoint_is_named_with_the_model_file_inside_it(tmp_path):
    """microvae train writes its checkpoint into a run folder: loading the folder names the file."""
    with pytest.raises(IsADirectoryError, match=r"is a folder, not a checkpoint file \(microvae train"):
        mv.load(tmp_path)  # an empty folder: no file to point to
    _model().save(tmp_path / "model.npz")
    for call in (mv.load, read_info):
        with pytest.raises(IsADirectoryError, match=r"is a folder.*; it holds '.*model\.npz': load that"):
            call(tmp_path)


@pytest.mark.parametrize("saved,asked", [("m", "m.npz"), ("m.npz", "m")])
def test_a_missing_checkpoint_names_the_file_with_or_without_npz_beside_it(tmp_path, saved, asked):
    """save() writes the name it is given; a load that adds or drops '.npz' is told where the file is."""
    model = _model()
    model.save(tmp_path / saved)
    with pytest.raises(FileNotFoundError, match=rf"no checkpoint at '.*{asked}'; '.*{saved}' exists \(save\(\) writes the name"):
        mv.load(tmp_path / asked)
    assert np.array_equal(mv.load(tmp_path / saved).flat.data, model.flat.data)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at '.*other\.npz'$"):
        mv.load(tmp_path / "other.npz")
