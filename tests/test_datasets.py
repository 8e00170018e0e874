"""Tests for microvae.datasets. None of them touches the network."""

from __future__ import annotations

import gzip
import itertools
import os
import re
import struct

import numpy as np
import pytest

import microvae.datasets as ds
from microvae.datasets import idx as idx_mod

# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize(
    "dtype",
    [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64],
)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_all_type_codes(tmp_path, dtype, suffix):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    ds.write_idx(path, array)
    back = ds.read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    assert back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_idx_header_layout_is_big_endian(tmp_path):
    path = tmp_path / "a.idx"
    ds.write_idx(path, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0B, 2])
    assert struct.unpack(">2I", raw[4:12]) == (2, 3)
    assert struct.unpack(">6h", raw[12:]) == (1, 2, 3, 4, 5, 6)


def test_write_idx_gzips_only_for_gz_suffix_and_is_deterministic(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    ds.write_idx(tmp_path / "a.gz", array)
    ds.write_idx(tmp_path / "b.gz", array)
    ds.write_idx(tmp_path / "c", array)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    # two writes in the same second match anyway: the gzip header's MTIME (bytes 4-7) must be zero
    assert (tmp_path / "a.gz").read_bytes()[4:8] == bytes(4)
    assert (tmp_path / "c").read_bytes()[:4] == bytes([0, 0, 8, 1])


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    ds.write_idx(tmp_path / "real.gz", array)
    disguised = tmp_path / "no-suffix"
    disguised.write_bytes((tmp_path / "real.gz").read_bytes())
    np.testing.assert_array_equal(ds.read_idx(disguised), array)
    ds.write_idx(tmp_path / "plain", array)
    misnamed = tmp_path / "plain-but-named.gz"
    misnamed.write_bytes((tmp_path / "plain").read_bytes())
    np.testing.assert_array_equal(ds.read_idx(misnamed), array)


def test_read_idx_truncated_data_names_file_and_sizes(tmp_path):
    path = tmp_path / "images.idx"
    ds.write_idx(path, np.zeros((10, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError) as info:
        ds.read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "expected 7840 bytes" in message
    assert "found 7740" in message
    assert "truncated" in message


def test_read_idx_rejects_trailing_bytes(tmp_path):
    path = tmp_path / "a.idx"
    ds.write_idx(path, np.zeros(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="expected 5 bytes of data after the header, found 6"):
        ds.read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path):
    path = tmp_path / "a.gz"
    ds.write_idx(path, np.arange(1000, dtype=np.int32))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="could not be decompressed"):
        ds.read_idx(path)


def test_read_idx_truncated_gzip_of_valid_prefix_reports_sizes(tmp_path):
    # A complete gzip stream whose *content* is cut short: the IDX check catches it.
    raw = bytes([0, 0, 8, 1]) + struct.pack(">I", 100) + bytes(40)
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(ValueError, match="expected 100 bytes of data after the header, found 40"):
        ds.read_idx(path)


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"", "expected at least 4 bytes"),
        (b"\x00\x00", "expected at least 4 bytes"),
        (bytes([1, 0, 8, 1]) + bytes(8), "two zero bytes"),
        (bytes([0, 7, 8, 1]) + bytes(8), "two zero bytes"),
        (bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 0]), "unknown IDX type code 0x0A"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 1]), "expected a 16-byte header, found only 8"),
        (b"PK\x03\x04 a zip file", "two zero bytes"),
        # sizes whose product overflows int64 (it came out negative) or wraps to 0 (NumPy's reshape error)
        (bytes([0, 0, 8, 4]) + b"\xff\xff\xff\xff" * 4 + bytes(8), r"expected 340282366604025813516997721482669850625 bytes of data .* found 8 \(file truncated\?\)"),
        (bytes([0, 0, 8, 4]) + b"\x00\x01\x00\x00" * 4, r"expected 18446744073709551616 bytes of data .* found 0"),
    ],
)
def test_read_idx_bad_headers(tmp_path, content, pattern):
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=pattern) as info:
        ds.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        ds.read_idx(tmp_path / "nope")


@pytest.mark.parametrize("array", [np.zeros(3, dtype=np.int64), np.zeros(3, dtype=bool), np.float32(1.0)])
def test_write_idx_rejects_unsupported_arrays(tmp_path, array):
    with pytest.raises(ValueError, match="write_idx"):
        ds.write_idx(tmp_path / "x", array)


def test_idx_type_codes_cover_the_format():
    assert sorted(idx_mod.IDX_TYPE_CODES) == [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]
    assert all(d.byteorder in (">", "|") for d in idx_mod.IDX_TYPE_CODES.values())


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST

import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

from microvae.datasets import download as download_mod  # noqa: E402
from microvae.datasets import mnist as mnist_mod  # noqa: E402

_REAL_FETCH = download_mod._fetch

STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
REAL_FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _fake_split(n, fill):
    images = np.full((n, 28, 28), fill, dtype=np.uint8)
    images[:, 0, 0] = np.arange(n, dtype=np.uint8)  # distinguishes rows
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_fake_dataset(directory, n_train=6, n_test=4, fill=51, gz=True):
    """Write the four standard files, small, into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = _fake_split(n, fill)
        ds.write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
        ds.write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return directory


def _no_network(url, *args, **kwargs):
    raise AssertionError(f"test tried to fetch {url}")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $MICROVAE_DATA, a fresh $HOME, a fake system dir, and no network."""
    monkeypatch.delenv("MICROVAE_DATA", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    system = tmp_path / "system"
    monkeypatch.setattr(mnist_mod, "_SYSTEM_DATASETS_DIR", str(system))
    monkeypatch.setattr(download_mod, "_fetch", _no_network)
    return {"tmp": tmp_path, "home": home, "system": system, "cache": home / ".cache" / "microvae"}


def _train_size(result):
    (x_train, _), _ = result
    return len(x_train)


def test_fake_load_types_shapes_and_values(isolated):
    root = write_fake_dataset(isolated["tmp"] / "root", n_train=12, n_test=5, fill=255)
    (x_train, y_train), (x_test, y_test) = ds.load_fashion_mnist(root=root, download=False)
    assert x_train.shape == (12, 784) and x_test.shape == (5, 784)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert y_test.shape == (5,)
    np.testing.assert_array_equal(y_train, np.arange(12) % 10)
    assert x_train[:, 1:].max() == 1.0 and x_train[:, 1:].min() == 1.0
    np.testing.assert_allclose(x_train[:, 0], np.arange(12) / 255.0, rtol=1e-6)


def test_flatten_false_gives_nchw_with_same_pixels(isolated):
    root = write_fake_dataset(isolated["tmp"] / "root")
    (flat, _), _ = ds.load_fashion_mnist(root=root, download=False)
    (nchw, _), (nchw_test, _) = ds.load_fashion_mnist(root=root, download=False, flatten=False)
    assert nchw.shape == (6, 1, 28, 28) and nchw_test.shape == (4, 1, 28, 28)
    np.testing.assert_array_equal(nchw.reshape(6, 784), flat)


def test_limit_takes_first_examples_of_each_split(isolated):
    root = write_fake_dataset(isolated["tmp"] / "root", n_train=8, n_test=5)
    (x_train, y_train), (x_test, y_test) = ds.load_fashion_mnist(root=root, download=False, limit=3)
    assert x_train.shape == (3, 784) and x_test.shape == (3, 784)
    np.testing.assert_array_equal(y_train, [0, 1, 2])
    (x_train, _), (x_test, _) = ds.load_fashion_mnist(root=root, download=False, limit=7)
    assert len(x_train) == 7 and len(x_test) == 5  # fewer than limit available


@pytest.mark.parametrize("limit, error", [(0, ValueError), (-1, ValueError), (2.5, ValueError), (True, TypeError),
                                          ("3", TypeError)])
def test_limit_validation(isolated, limit, error):
    """A wrong type is a TypeError and a wrong value a ValueError, as for every count (check_int)."""
    with pytest.raises(error, match=rf"^limit must be None or a positive integer, got {re.escape(repr(limit))}$"):
        ds.load_fashion_mnist(root=isolated["tmp"], download=False, limit=limit)


@pytest.mark.parametrize("limit", [2.0, np.float64(2.0), np.int32(2)])
def test_limit_takes_a_float_without_a_fraction_as_every_count_does(isolated, limit):
    """limit=10.0 was refused here, while sample(10.0), make_sprites(n=10.0) and fit's counts took it."""
    root = write_fake_dataset(isolated["tmp"] / "root", n_train=8, n_test=5)
    as_float = ds.load_fashion_mnist(root=root, download=False, limit=limit)
    as_int = ds.load_fashion_mnist(root=root, download=False, limit=2)
    for a, b in zip(as_float, as_int):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert len(as_float[0][0]) == 2


@pytest.mark.parametrize("load", [ds.load_fashion_mnist, ds.load_mnist])
@pytest.mark.parametrize("name, value", [("flatten", "no"), ("flatten", None), ("download", "no"), ("download", 1)])
def test_the_loaders_flags_must_be_booleans(isolated, monkeypatch, load, name, value):
    """download="no" is true, so it would download; both are refused before any file is looked for."""
    monkeypatch.setattr(ds.mnist, "_candidate_dirs", lambda *a: pytest.fail("looked for files"))
    with pytest.raises(TypeError, match=f"{name} must be True or False, got {value!r}"):
        load(root=isolated["tmp"], **{name: value})


def test_search_order_root_env_system_cache(isolated, monkeypatch):
    tmp = isolated["tmp"]
    root = write_fake_dataset(tmp / "root", n_train=5)
    env = write_fake_dataset(tmp / "env", n_train=6)
    system = write_fake_dataset(isolated["system"] / "fashion-mnist", n_train=7)
    cache = write_fake_dataset(isolated["cache"] / "fashion-mnist", n_train=8)
    monkeypatch.setenv("MICROVAE_DATA", str(env))

    assert _train_size(ds.load_fashion_mnist(root=root, download=False)) == 5
    assert _train_size(ds.load_fashion_mnist(download=False)) == 6
    monkeypatch.delenv("MICROVAE_DATA")
    assert _train_size(ds.load_fashion_mnist(download=False)) == 7
    for f in system.iterdir():
        f.unlink()
    assert _train_size(ds.load_fashion_mnist(download=False)) == 8
    assert cache.is_dir()


def test_dataset_name_subdirectories_of_root_and_env(isolated, monkeypatch):
    tmp = isolated["tmp"]
    write_fake_dataset(tmp / "root" / "fashion-mnist", n_train=5)
    write_fake_dataset(tmp / "env" / "mnist", n_train=6)
    monkeypatch.setenv("MICROVAE_DATA", str(tmp / "env"))
    assert _train_size(ds.load_fashion_mnist(root=tmp / "root", download=False)) == 5
    assert _train_size(ds.load_mnist(download=False)) == 6
    # The env dir holds no fashion-mnist, the root no mnist: those fall through.
    with pytest.raises(ds.DatasetNotFoundError):
        ds.load_fashion_mnist(download=False)
    assert _train_size(ds.load_mnist(root=tmp / "root", download=False)) == 6


def test_root_that_lacks_files_falls_through_to_later_locations(isolated):
    write_fake_dataset(isolated["system"] / "fashion-mnist", n_train=7)
    empty = isolated["tmp"] / "empty"
    empty.mkdir()
    assert _train_size(ds.load_fashion_mnist(root=empty, download=False)) == 7


def test_a_root_that_is_not_a_folder_is_an_error_not_a_fall_through(isolated):
    """A typo in root= would otherwise load the data from wherever else it is found."""
    write_fake_dataset(isolated["system"] / "fashion-mnist", n_train=7)
    (isolated["tmp"] / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="root '.*typo' does not exist"):
        ds.load_fashion_mnist(root=isolated["tmp"] / "typo", download=False)
    with pytest.raises(NotADirectoryError, match="root '.*afile' is not a folder"):
        ds.load_fashion_mnist(root=isolated["tmp"] / "afile", download=False)


def _disguise_as(directory, first_labels):
    """Give a fake dataset the full training set's 60000 labels, starting as the real one's do."""
    labels = (np.arange(60000) % 10).astype(np.uint8)
    labels[:10] = first_labels
    ds.write_idx(directory / "train-labels-idx1-ubyte.gz", labels)
    return directory


@pytest.mark.parametrize("load, other, title", [
    (ds.load_mnist, mnist_mod._SOURCES["fashion-mnist"], "Fashion-MNIST"),
    (ds.load_fashion_mnist, mnist_mod._SOURCES["mnist"], "MNIST"),
])
def test_a_folder_of_the_other_dataset_is_passed_over(isolated, load, other, title):
    """The two datasets share their file names: load_mnist on a Fashion-MNIST folder returned
    Fashion-MNIST, labelled as digits."""
    root = _disguise_as(write_fake_dataset(isolated["tmp"] / "root"), other.first_train_labels)
    wanted = "MNIST" if title == "Fashion-MNIST" else "Fashion-MNIST"
    with pytest.raises(ds.DatasetNotFoundError, match=rf"\[root argument: holds {title}, not {wanted}\]"):
        load(root=root, download=False)
    write_fake_dataset(isolated["system"] / ("mnist" if load is ds.load_mnist else "fashion-mnist"), n_train=7)
    assert _train_size(load(root=root, download=False)) == 7  # the search goes on to the right one


def test_a_download_cache_holding_the_other_dataset_is_not_loaded_either(isolated):
    """With download=True the cache was loaded whatever it held: nothing was missing there to fetch,
    so MNIST's files in Fashion-MNIST's cache came back as Fashion-MNIST."""
    _disguise_as(write_fake_dataset(isolated["cache"] / "fashion-mnist"), mnist_mod._SOURCES["mnist"].first_train_labels)
    cache_line = r"\[download cache: holds MNIST, not Fashion-MNIST\]"
    reason = r"nothing to fetch: .* already holds MNIST's files under Fashion-MNIST's names"
    with pytest.raises(ds.DatasetNotFoundError, match=rf"(?s){cache_line}.*{reason}"):
        ds.load_fashion_mnist()  # download=True; isolated: any fetch would fail the test


def test_the_installed_fashion_mnist_is_not_loaded_as_mnist(isolated):
    real = "/usr/share/datasets/fashion-mnist"
    if not os.path.isfile(os.path.join(real, "train-labels-idx1-ubyte.gz")):
        pytest.skip("dataset-fashion-mnist is not installed")
    with pytest.raises(ds.DatasetNotFoundError, match="holds Fashion-MNIST, not MNIST"):
        ds.load_mnist(root=real, download=False)
    assert _train_size(ds.load_fashion_mnist(root=real, download=False, limit=3)) == 3


def test_a_small_dataset_starting_with_the_other_datasets_labels_is_not_passed_over(isolated):
    """Only the other dataset's *full* training set (60000 labels) is passed over: ten labels
    that happen to start as MNIST's do are not enough to refuse data made elsewhere."""
    root = write_fake_dataset(isolated["tmp"] / "root", n_train=12)
    labels = (np.arange(12) % 10).astype(np.uint8)
    labels[:10] = mnist_mod._SOURCES["mnist"].first_train_labels
    ds.write_idx(root / "train-labels-idx1-ubyte.gz", labels)
    (_, y_train), _ = ds.load_fashion_mnist(root=root, download=False)
    np.testing.assert_array_equal(y_train, labels)


def test_the_gzipped_copy_is_preferred_when_both_are_present(isolated):
    root = write_fake_dataset(isolated["tmp"] / "root", n_test=4)
    ds.write_idx(root / "t10k-labels-idx1-ubyte", np.full(4, 7, np.uint8))  # a stale raw copy beside the .gz
    (_, _), (_, y_test) = ds.load_fashion_mnist(root=root, download=False)
    np.testing.assert_array_equal(y_test, [0, 1, 2, 3])


def test_uncompressed_and_mixed_file_names_are_accepted(isolated):
    root = write_fake_dataset(isolated["tmp"] / "raw", n_train=9, gz=False)
    assert _train_size(ds.load_fashion_mnist(root=root, download=False)) == 9
    (root / "t10k-labels-idx1-ubyte").unlink()
    ds.write_idx(root / "t10k-labels-idx1-ubyte.gz", _fake_split(4, 0)[1])
    (_, _), (_, y_test) = ds.load_fashion_mnist(root=root, download=False)
    np.testing.assert_array_equal(y_test, [0, 1, 2, 3])


def test_incomplete_directory_is_skipped_and_reported(isolated):
    partial = write_fake_dataset(isolated["tmp"] / "partial")
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ds.DatasetNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        ds.load_fashion_mnist(root=partial, download=False)


def test_download_false_error_lists_directories_and_advice(isolated, monkeypatch):
    monkeypatch.setattr(download_mod, "_fetch", _no_network)
    root = isolated["tmp"] / "nowhere"
    root.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        ds.load_fashion_mnist(root=root, download=False)
    assert isinstance(info.value, ds.DatasetNotFoundError)
    message = str(info.value)
    for directory in (root, root / "fashion-mnist", isolated["system"] / "fashion-mnist",
                      isolated["cache"] / "fashion-mnist"):
        assert str(directory) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download=False" in message
    assert "MICROVAE_DATA" in message
    assert "train-images-idx3-ubyte.gz" in message
    assert not isolated["cache"].exists()


def test_mnist_error_does_not_suggest_the_fashion_package(isolated):
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_mnist(download=False)
    assert "dataset-fashion-mnist" not in str(info.value)
    assert "ossci-datasets.s3.amazonaws.com/mnist" in str(info.value)


def test_no_network_gives_clear_not_found_error(isolated, monkeypatch):
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download_mod, "_fetch", offline)
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_fashion_mnist()
    message = str(info.value)
    assert calls == ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"]
    assert "URLError" in message and "name resolution" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(isolated["cache"] / "fashion-mnist") in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    cache = isolated["cache"] / "fashion-mnist"
    assert not cache.exists() or not any(cache.iterdir())


def test_offline_variable_stops_downloads_before_the_network(isolated, monkeypatch, capsys):
    # the real _fetch this time, with urlopen replaced to record any attempt
    monkeypatch.setattr(download_mod, "_fetch", _REAL_FETCH)
    opened = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, *a, **k: opened.append(url))
    monkeypatch.setenv("MICROVAE_OFFLINE", "1")
    with pytest.raises(ds.DatasetNotFoundError, match=r"\$MICROVAE_OFFLINE is set, so microvae does not use the network"):
        ds.load_fashion_mnist()
    assert opened == [] and "downloading" not in capsys.readouterr().err
    assert download_mod.offline()
    for value in ("", "0"):
        monkeypatch.setenv("MICROVAE_OFFLINE", value)
        assert not download_mod.offline()
    monkeypatch.delenv("MICROVAE_OFFLINE")
    assert not download_mod.offline()


def test_the_test_suite_runs_offline():
    # set by conftest.py for this process and every subprocess and notebook kernel it starts
    assert download_mod.offline()


def _serve_fake_files(monkeypatch, name, source_dir):
    """Make _fetch serve files from source_dir, with matching MD5s; return the URL log."""
    payloads = {f"{s}.gz": (source_dir / f"{s}.gz").read_bytes() for s in STEMS}
    source = mnist_mod._SOURCES[name]
    md5 = {fname: hashlib.md5(data).hexdigest() for fname, data in payloads.items()}
    monkeypatch.setitem(mnist_mod._SOURCES, name, dataclasses.replace(source, md5=md5))
    log = []

    def fake_fetch(url, *args, **kwargs):
        log.append(url)
        return payloads[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(download_mod, "_fetch", fake_fetch)
    return log


@pytest.mark.parametrize(
    "loader, name, mirror",
    [
        (ds.load_fashion_mnist, "fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        (ds.load_mnist, "mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    ],
)
def test_download_into_cache_then_reuse(isolated, monkeypatch, loader, name, mirror):
    served = write_fake_dataset(isolated["tmp"] / "served", n_train=11, n_test=3)
    log = _serve_fake_files(monkeypatch, name, served)
    result = loader()
    assert _train_size(result) == 11
    assert log == [mirror + s + ".gz" for s in STEMS]
    cache = isolated["cache"] / name
    assert sorted(os.listdir(cache)) == sorted(s + ".gz" for s in STEMS)  # no temp files left
    for s in STEMS:
        assert (cache / f"{s}.gz").read_bytes() == (served / f"{s}.gz").read_bytes()
    log.clear()
    assert _train_size(loader()) == 11
    assert log == []


def test_download_fetches_only_missing_files(isolated, monkeypatch):
    served = write_fake_dataset(isolated["tmp"] / "served", n_train=11)
    cache = write_fake_dataset(isolated["cache"] / "fashion-mnist", n_train=11)
    (cache / "t10k-images-idx3-ubyte.gz").unlink()
    log = _serve_fake_files(monkeypatch, "fashion-mnist", served)
    ds.load_fashion_mnist()
    assert [u.rsplit("/", 1)[1] for u in log] == ["t10k-images-idx3-ubyte.gz"]


def test_checksum_mismatch_raises_and_saves_nothing(isolated, monkeypatch):
    served = write_fake_dataset(isolated["tmp"] / "served")
    _serve_fake_files(monkeypatch, "fashion-mnist", served)
    monkeypatch.setattr(download_mod, "_fetch", lambda url, *a, **k: b"<html>captive portal</html>")
    with pytest.raises(ds.ChecksumError) as info:
        ds.load_fashion_mnist()
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "expected MD5" in str(info.value)
    cache = isolated["cache"] / "fashion-mnist"
    assert not cache.exists() or not any(cache.iterdir())


def test_published_checksums_are_wellformed():
    for name in ("fashion-mnist", "mnist"):
        md5 = mnist_mod._SOURCES[name].md5
        assert sorted(md5) == sorted(s + ".gz" for s in STEMS)
        assert all(len(h) == 32 and int(h, 16) >= 0 for h in md5.values())
    assert mnist_mod._SOURCES["fashion-mnist"].md5["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"


def test_download_file_is_atomic_on_write_failure(tmp_path, monkeypatch):
    data = b"payload"
    monkeypatch.setattr(download_mod, "_fetch", lambda url, *a, **k: data)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(download_mod.os, "replace", broken_replace)
    dest = tmp_path / "sub" / "file.gz"
    with pytest.raises(OSError, match="disk full"):
        download_mod.download_file("http://x/file.gz", dest, hashlib.md5(data).hexdigest(), quiet=True)
    assert list(tmp_path.iterdir()) == []  # no temporary file, and not the folder made for it


def test_download_file_writes_to_temp_then_renames(tmp_path, monkeypatch):
    data = b"complete contents"
    monkeypatch.setattr(download_mod, "_fetch", lambda url, *a, **k: data)
    real_replace = os.replace
    renames = []

    def checking_replace(src, dst):
        # At rename time the destination must not exist yet and the complete
        # bytes must already sit in a different file in the same directory.
        assert not os.path.exists(dst)
        assert os.path.dirname(src) == os.path.dirname(dst) and src != dst
        with open(src, "rb") as fh:
            assert fh.read() == data
        renames.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(download_mod.os, "replace", checking_replace)
    dest = tmp_path / "f.gz"
    download_mod.download_file("http://x/f.gz", dest, hashlib.md5(data).hexdigest(), quiet=True)
    assert len(renames) == 1 and renames[0][1] == str(dest)
    assert os.listdir(tmp_path) == ["f.gz"]


def test_download_file_writes_verified_bytes(tmp_path, monkeypatch):
    data = b"\x1f\x8b some bytes"
    monkeypatch.setattr(download_mod, "_fetch", lambda url, *a, **k: data)
    dest = tmp_path / "a" / "b" / "f.gz"
    out = download_mod.download_file("http://x/f.gz", dest, hashlib.md5(data).hexdigest().upper(), quiet=True)
    assert out == str(dest)
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["f.gz"]


def test_fetch_uses_urlopen(monkeypatch):
    seen = {}

    def fake_urlopen(url, timeout=None):
        seen["url"], seen["timeout"] = url, timeout
        return io.BytesIO(b"body")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.delenv("MICROVAE_OFFLINE")  # urlopen is the fake above
    assert download_mod._fetch("http://example.invalid/f") == b"body"
    assert seen["url"] == "http://example.invalid/f" and seen["timeout"] > 0


def test_corrupt_file_in_search_path_is_an_error_not_skipped(isolated):
    root = write_fake_dataset(isolated["tmp"] / "root")
    write_fake_dataset(isolated["system"] / "fashion-mnist")
    bad = root / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(bad.read_bytes())[:-10]))
    with pytest.raises(ValueError, match="truncated") as info:
        ds.load_fashion_mnist(root=root, download=False)
    assert str(bad) in str(info.value)


def test_wrong_magic_in_dataset_file(isolated):
    root = write_fake_dataset(isolated["tmp"] / "root")
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x01\x02\x08\x01" + bytes(8)))
    with pytest.raises(ValueError, match="two zero bytes"):
        ds.load_fashion_mnist(root=root, download=False)


def test_label_count_mismatch(isolated):
    root = write_fake_dataset(isolated["tmp"] / "root", n_train=6)
    ds.write_idx(root / "train-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected 6 labels"):
        ds.load_fashion_mnist(root=root, download=False)


def test_label_out_of_range(isolated):
    root = write_fake_dataset(isolated["tmp"] / "root", n_train=6)
    ds.write_idx(root / "train-labels-idx1-ubyte.gz", np.full(6, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected labels in 0..9, found 10"):
        ds.load_fashion_mnist(root=root, download=False)


@pytest.mark.parametrize("labels", [np.zeros((6, 1), np.uint8), np.zeros(6, np.int32)])
def test_unexpected_label_array(isolated, labels):
    root = write_fake_dataset(isolated["tmp"] / "root", n_train=6)
    ds.write_idx(root / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match=r"expected uint8 labels of shape \(N,\)"):
        ds.load_fashion_mnist(root=root, download=False)


@pytest.mark.parametrize("array", [np.zeros((3, 27, 28), np.uint8), np.zeros((3, 28, 27), np.uint8),
                                   np.zeros((3, 784), np.uint8), np.zeros((3, 28, 28), np.float32)])
def test_unexpected_image_array(isolated, array):
    root = write_fake_dataset(isolated["tmp"] / "root", n_train=3)
    ds.write_idx(root / "train-images-idx3-ubyte.gz", array)
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, 28, 28\)"):
        ds.load_fashion_mnist(root=root, download=False)


def test_class_names():
    assert len(ds.FASHION_MNIST_CLASSES) == 10
    assert ds.FASHION_MNIST_CLASSES[0] == "T-shirt/top" and ds.FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert ds.MNIST_CLASSES == tuple("0123456789")


@pytest.fixture(scope="module")
def real_fashion():
    """The real Fashion-MNIST, found through the default search (Debian dir)."""
    if not os.path.isdir(REAL_FASHION_DIR):
        pytest.fail(f"{REAL_FASHION_DIR} not installed (apt-get install dataset-fashion-mnist; .ci/run does this)")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MICROVAE_DATA", raising=False)
        mp.setenv("HOME", "/nonexistent-home-for-tests")
        mp.setattr(download_mod, "_fetch", _no_network)
        return ds.load_fashion_mnist(download=False)


def test_real_fashion_mnist(real_fashion):
    (x_train, y_train), (x_test, y_test) = real_fashion
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert 0.0 <= x_test.min() and x_test.max() <= 1.0
    # Pixel values are exactly k/255.
    np.testing.assert_array_equal(np.round(x_test[:50] * 255) / 255, x_test[:50])
    assert 0.2 < x_train.mean() < 0.4  # Fashion-MNIST's mean intensity is about 0.286
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)


def test_real_fashion_mnist_nchw_matches_flat(real_fashion):
    (x_flat, y_flat), _ = real_fashion
    (x, y), (x_test, _) = ds.load_fashion_mnist(REAL_FASHION_DIR, download=False, flatten=False, limit=100)
    assert x.shape == (100, 1, 28, 28) and x_test.shape == (100, 1, 28, 28)
    np.testing.assert_array_equal(x.reshape(100, 784), x_flat[:100])
    np.testing.assert_array_equal(y, y_flat[:100])


# --------------------------------------------------------------------------- sprites


@pytest.fixture(scope="module")
def sprite_grid():
    """Every factor combination once, default settings (46080 images)."""
    return ds.make_sprites(None)


def _grid_index(sprites):
    """Map from factor tuple to row index."""
    return {tuple(row): i for i, row in enumerate(sprites.factors.tolist())}


def test_sprites_shapes_dtypes_and_names():
    s = ds.make_sprites(50, size=32, seed=1)
    assert isinstance(s, ds.Sprites)
    assert s.images.shape == (50, 1024) and s.images.dtype == np.float32
    assert s.factors.shape == (50, 5) and s.factors.dtype == np.int64
    assert s.factor_names == ("shape", "scale", "rotation", "pos_x", "pos_y")
    assert list(s.factor_values) == list(s.factor_names)
    assert s.factor_sizes == (3, 6, 10, 16, 16)
    assert list(s.factor_values["shape"]) == ["square", "ellipse", "heart"]
    nchw = ds.make_sprites(50, size=32, seed=1, flatten=False)
    assert nchw.images.shape == (50, 1, 32, 32)
    np.testing.assert_array_equal(nchw.images.reshape(50, 1024), s.images)
    np.testing.assert_array_equal(nchw.factors, s.factors)


def test_sprites_default_size():
    s = ds.make_sprites()
    assert s.images.shape == (20000, 1024)


def test_sprites_binary_and_nonempty(sprite_grid):
    images = sprite_grid.images
    assert set(np.unique(images).tolist()) == {0.0, 1.0}
    assert images.sum(axis=1).min() > 0


def test_sprites_grid_enumerates_every_combination_once(sprite_grid):
    f = sprite_grid.factors
    assert len(f) == 3 * 6 * 10 * 16 * 16
    assert len(np.unique(f, axis=0)) == len(f)
    for j, k in enumerate(sprite_grid.factor_sizes):
        assert f[:, j].min() == 0 and f[:, j].max() == k - 1


def test_sprites_factor_ranges_when_sampled():
    s = ds.make_sprites(3000, seed=5, n_scales=4, n_rotations=8, n_positions=9)
    assert s.factor_sizes == (3, 4, 8, 9, 9)
    for j, k in enumerate(s.factor_sizes):
        assert set(np.unique(s.factors[:, j]).tolist()) == set(range(k))
    values = s.factor_values
    assert np.all(np.diff(values["scale"]) > 0)
    assert values["scale"][-1] == pytest.approx(0.2 * 32) and values["scale"][0] == pytest.approx(0.1 * 32)
    np.testing.assert_allclose(values["rotation"], 2 * np.pi * np.arange(8) / 8, rtol=1e-6)
    assert values["rotation"].max() < 2 * np.pi
    assert np.all(np.diff(values["pos_x"]) > 0)
    assert values["pos_x"].min() > 0.2 * 32 and values["pos_x"].max() < 32 - 0.2 * 32
    # each factor's values are an array of its own: editing one leaves the others as they were
    arrays = list(values.values())
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])


def test_sprites_stay_inside_the_frame(sprite_grid):
    img = sprite_grid.images.reshape(-1, 32, 32)
    border = img[:, 0, :].sum() + img[:, -1, :].sum() + img[:, :, 0].sum() + img[:, :, -1].sum()
    assert border == 0


@pytest.mark.parametrize("size", [16, 21, 48])
def test_sprites_nonempty_and_inside_for_other_sizes(size):
    s = ds.make_sprites(None, size=size, shapes=tuple(ds.SPRITE_SHAPES), n_rotations=6, n_positions=5, flatten=False)
    img = s.images[:, 0]
    assert img.shape[1:] == (size, size)
    assert img.sum(axis=(1, 2)).min() > 0
    assert img[:, [0, -1], :].sum() == 0 and img[:, :, [0, -1]].sum() == 0


def test_sprites_deterministic_from_seed():
    a = ds.make_sprites(500, seed=7)
    b = ds.make_sprites(500, seed=7)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.factors.tobytes() == b.factors.tobytes()
    c = ds.make_sprites(500, seed=8)
    assert not np.array_equal(a.factors, c.factors)
    assert not np.array_equal(a.images, c.images)


def test_sprites_each_factor_changes_the_picture(sprite_grid):
    index = _grid_index(sprite_grid)
    images = sprite_grid.images
    # Changing shape, scale, or either position always changes the image.
    base = (0, 3, 2, 7, 7)
    for j in (0, 1, 3, 4):
        pictures = []
        for value in range(sprite_grid.factor_sizes[j]):
            key = list(base)
            key[j] = value
            pictures.append(images[index[tuple(key)]])
        assert len(np.unique(np.stack(pictures), axis=0)) == len(pictures), sprite_grid.factor_names[j]


@pytest.mark.parametrize("size", [16, 21, 32])
def test_sprites_positions_a_pixel_apart_render_apart_and_closer_ones_may_not(size):
    """The docstring's rule: positions spread over 0.6·size − 2 pixels; while neighbours are at
    least a pixel apart every position gives its own image, and 2·that many do not."""
    span = 0.6 * size - 2
    most = int(span) + 1  # the most positions with a spacing of at least one pixel
    one = dict(shapes=("square",), n_scales=1, n_rotations=1)
    apart = ds.make_sprites(None, size=size, n_positions=most, **one)
    np.testing.assert_allclose(apart.factor_values["pos_x"][[0, -1]], [0.2 * size + 1, 0.8 * size - 1], rtol=1e-6)
    assert np.diff(apart.factor_values["pos_x"]).min() >= 1 - 1e-5
    assert len(np.unique(apart.images, axis=0)) == most**2
    close = ds.make_sprites(None, size=size, n_positions=2 * most, **one)
    assert len(np.unique(close.images, axis=0)) < (2 * most) ** 2


def test_sprites_shape_factor_matters_everywhere(sprite_grid):
    f, images = sprite_grid.factors, sprite_grid.images
    square, ellipse, heart = (images[f[:, 0] == k] for k in range(3))  # same order of other factors
    assert np.all(np.abs(square - ellipse).sum(axis=1) > 0)
    assert np.all(np.abs(square - heart).sum(axis=1) > 0)
    assert np.all(np.abs(ellipse - heart).sum(axis=1) > 0)


def test_sprites_area_grows_with_scale(sprite_grid):
    area = sprite_grid.images.sum(axis=1)
    means = [area[sprite_grid.factors[:, 1] == k].mean() for k in range(6)]
    assert np.all(np.diff(means) > 0)


def test_sprites_centroid_follows_position(sprite_grid):
    f = sprite_grid.factors
    img = sprite_grid.images.reshape(-1, 32, 32)
    symmetric = f[:, 0] < 2  # squares and ellipses are point-symmetric about their centre
    mass = img[symmetric].sum(axis=(1, 2))
    centres = np.arange(32) + 0.5
    cx = (img[symmetric].sum(axis=1) * centres).sum(axis=1) / mass
    cy = (img[symmetric].sum(axis=2) * centres).sum(axis=1) / mass
    px = sprite_grid.factor_values["pos_x"][f[symmetric, 3]]
    py = sprite_grid.factor_values["pos_y"][f[symmetric, 4]]
    assert np.abs(cx - px).max() < 1.0
    assert np.abs(cy - py).max() < 1.0


def test_sprites_rotation_is_counterclockwise_and_heart_is_upright():
    s = ds.make_sprites(None, shapes=("heart",), n_scales=1, n_rotations=4, n_positions=1, flatten=False)
    img = s.images[:, 0]
    for k in range(1, 4):
        assert np.abs(np.rot90(img[k - 1]) - img[k]).sum() <= 2
    rows = np.where(img[0].any(axis=1))[0]
    centre = 16.0
    assert (rows.max() + 0.5 - centre) > (centre - rows.min() - 0.5)  # the point sticks out further, downwards
    widths = img[0].sum(axis=1)
    assert rows[np.argmax(widths[rows])] + 0.5 < centre  # widest part (the lobes) is above the centre


def test_sprites_grid_enumerates_shape_slowest_and_pos_y_fastest():
    s = ds.make_sprites(None, shapes=("square", "heart"), n_scales=3, n_rotations=2, n_positions=2)
    np.testing.assert_array_equal(s.factors, list(itertools.product(range(2), range(3), range(2), range(2), range(2))))


def test_sprites_shapes_have_their_documented_geometry():
    """At full scale r (12.8 px on a 64-px canvas): a square with its corners on the circle of radius
    r (side r·√2), an ellipse with semi-axes r and r/2 (turned upright by a quarter turn), and an
    equilateral triangle with its vertices on that circle (height 1.5·r, width √3·r) pointing up."""
    s = ds.make_sprites(None, size=64, shapes=("square", "ellipse", "triangle"), n_scales=2, n_rotations=4,
                        n_positions=1, flatten=False)
    index, r = _grid_index(s), 12.8

    def extent(shape, rotation):  # (rows, columns) the shape covers, and its width in each row
        img = s.images[index[(shape, 1, rotation, 0, 0)], 0]
        rows = img.any(axis=1)
        return rows.sum(), img.any(axis=0).sum(), img.sum(axis=1)[rows]

    for (shape, rotation), size in {(0, 0): (r * 2 ** 0.5, r * 2 ** 0.5), (1, 0): (r, 2 * r), (1, 1): (2 * r, r),
                                    (2, 0): (1.5 * r, 3 ** 0.5 * r)}.items():
        height, width, _ = extent(shape, rotation)
        assert abs(height - size[0]) <= 1.5 and abs(width - size[1]) <= 1.5, (shape, rotation, height, width)
    widths = extent(2, 0)[2]
    assert widths[0] <= 3 and widths[-1] >= 20 and np.all(np.diff(widths) >= 0)  # apex at the top, base at the bottom


def test_sprites_rotational_symmetry_is_as_documented(sprite_grid):
    f, images = sprite_grid.factors, sprite_grid.images
    index = _grid_index(sprite_grid)
    half_turn = np.array([index[(a, b, (c + 5) % 10, d, e)] for a, b, c, d, e in f.tolist()])
    diff = np.abs(images - images[half_turn]).sum(axis=1)
    assert diff[f[:, 0] == 0].max() <= 2  # square: same after half a turn
    assert diff[f[:, 0] == 1].max() <= 2  # ellipse: same after half a turn
    heart = diff[f[:, 0] == 2]
    assert heart.min() > 0 and heart.mean() > 15  # heart: always different (only slightly when tiny)


def test_sprites_coincidences_from_pixel_rounding_are_as_documented(sprite_grid):
    """The docstring counted only the symmetric shapes' coincidences; rounding adds a few (an audit)."""
    f, images = sprite_grid.factors, sprite_grid.images.astype(np.uint8)
    _, group = np.unique(images, axis=0, return_inverse=True)
    group = group.ravel()
    assert len(np.unique(group)) == 30476 and len(images) == 46080
    members = {}
    for row, g in enumerate(group.tolist()):
        members.setdefault(g, []).append(f[row])
    shared = [np.array(rows) for rows in members.values() if len(rows) > 1]
    squares_over_scales = [g for g in shared if g[0, 0] == 0 and len(set(g[:, 1])) == 2]
    hearts = [g for g in shared if g[0, 0] == 2]
    assert len(squares_over_scales) == 180 and all(np.ptp(g[:, 1]) == 1 for g in squares_over_scales)
    assert len(hearts) == 12 and all(len(g) == 2 and len(set(map(tuple, g[:, [1, 3, 4]]))) == 1 for g in hearts)
    assert all(len(set(g[:, 0])) == 1 for g in shared)  # no two shapes ever look alike


def test_sprites_shapes_argument():
    s = ds.make_sprites(20, shapes=("triangle", "heart"))
    assert list(s.factor_values["shape"]) == ["triangle", "heart"]
    assert set(s.factors[:, 0].tolist()) <= {0, 1}
    single = ds.make_sprites(20, shapes="ellipse")
    assert single.factor_sizes[0] == 1 and np.all(single.factors[:, 0] == 0)
    assert ds.make_sprites(0).images.shape == (0, 1024)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(n=-1), "n must be an integer >= 0, got -1"),
        (dict(n=2.5), "n must be an integer"),
        (dict(size=8), "size must be an integer >= 16, got 8"),
        (dict(shapes=("square", "star")), "unknown shape 'star'; expected one of"),
        (dict(shapes=()), "at least one shape"),
        (dict(shapes=("heart", "heart")), "must not repeat"),
        (dict(n_scales=0), "n_scales must be a positive integer, got 0"),
        (dict(n_positions=0), "n_positions must be a positive integer"),
    ],
)
def test_sprites_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ds.make_sprites(**{"n": 10, **kwargs})


@pytest.mark.parametrize("kwargs, pattern", [(dict(n_rotations=True), "n_rotations must be a positive integer, got True"),
                                             (dict(size="32"), "size must be an integer >= 16, got '32'"),
                                             (dict(n=None, n_scales=None), "n_scales must be a positive integer")])
def test_sprites_counts_that_are_no_numbers_are_type_errors(kwargs, pattern):
    with pytest.raises(TypeError, match=pattern):  # as every count in microvae (checks.check_int)
        ds.make_sprites(**{"n": 10, **kwargs})


def test_sprites_count_given_as_a_whole_float_is_that_count():
    a, b = ds.make_sprites(4, size=16.0, n_scales=2.0, seed=1), ds.make_sprites(4, size=16, n_scales=2, seed=1)
    assert a.images.tobytes() == b.images.tobytes() and a.factor_sizes == b.factor_sizes


# --------------------------------------------------------------------------- sinusoids


def test_sinusoids_shapes_dtypes_and_factor_ranges():
    s = ds.make_sinusoids(n=200, length=40, n_components=(1, 3), seed=0)
    assert isinstance(s, ds.Sinusoids)
    assert s.x.shape == (200, 40, 1) and s.x.dtype == np.float32
    for factor in (s.freqs, s.phases, s.amps):
        assert factor.shape == (200, 3) and factor.dtype == np.float32
    assert s.n_components.shape == (200,) and s.n_components.dtype == np.int64
    assert set(np.unique(s.n_components).tolist()) == {1, 2, 3}
    used = np.arange(3)[None, :] < s.n_components[:, None]
    assert np.all((s.freqs[used] >= 1.0) & (s.freqs[used] <= 5.0))
    assert np.all((s.amps[used] >= 0.5) & (s.amps[used] <= 1.0))
    assert np.all((s.phases[used] >= 0) & (s.phases[used] < 2 * np.pi))
    assert np.all(s.freqs[~used] == 0) and np.all(s.amps[~used] == 0) and np.all(s.phases[~used] == 0)


def test_sinusoids_factors_fill_their_ranges():
    s = ds.make_sinusoids(n=200, length=40, n_components=(1, 3), seed=0)
    used = np.arange(3)[None, :] < s.n_components[:, None]
    for factor, (lo, hi) in ((s.freqs, (1.0, 5.0)), (s.phases, (0.0, 2 * np.pi)), (s.amps, (0.5, 1.0))):
        values, margin = factor[used], 0.05 * (hi - lo)
        assert values.min() < lo + margin and values.max() > hi - margin, (lo, hi)


def test_sinusoids_noise_free_signal_matches_factors():
    s = ds.make_sinusoids(n=50, length=30, seed=3, noise=0.0)
    t = np.arange(30) / 30
    expected = (s.amps[:, None, :] * np.sin(2 * np.pi * s.freqs[:, None, :] * t[None, :, None]
                                             + s.phases[:, None, :])).sum(axis=2)
    np.testing.assert_allclose(s.x[:, :, 0], expected, atol=1e-5)


def test_sinusoids_noise_level():
    clean = ds.make_sinusoids(n=300, length=50, seed=4, noise=0.0)
    noisy = ds.make_sinusoids(n=300, length=50, seed=4, noise=0.2)
    np.testing.assert_array_equal(clean.freqs, noisy.freqs)
    residual = noisy.x - clean.x
    assert residual.std() == pytest.approx(0.2, rel=0.05)
    assert abs(residual.mean()) < 0.01


def test_sinusoids_fixed_component_count():
    s = ds.make_sinusoids(n=20, n_components=2)
    assert np.all(s.n_components == 2) and s.freqs.shape == (20, 2)
    assert np.all(s.amps > 0)


def test_sinusoids_unit_range_is_the_documented_affine_map():
    raw = ds.make_sinusoids(n=100, seed=2, noise=0.05)
    unit = ds.make_sinusoids(n=100, seed=2, noise=0.05, unit_range=True)
    assert unit.x.dtype == np.float32
    assert unit.x.min() >= 0.0 and unit.x.max() <= 1.0
    bound = 3 * 1.0 + 3 * 0.05
    np.testing.assert_allclose(unit.x, np.clip(0.5 + raw.x / (2 * bound), 0, 1), atol=1e-6)
    np.testing.assert_array_equal(unit.amps, raw.amps)


def test_sinusoids_deterministic_and_seed_dependent():
    a = ds.make_sinusoids(n=30, seed=11)
    b = ds.make_sinusoids(n=30, seed=11)
    c = ds.make_sinusoids(n=30, seed=12)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    assert not np.array_equal(a.x, c.x)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(n=-5), "n must be an integer >= 0, got -5"),
        (dict(length=1), "length must be an integer >= 2"),
        (dict(n_components=0), "n_components"),
        (dict(n_components=(3, 1)), "n_components"),
        (dict(n_components=(1.5, 2)), "n_components must be integers"),
        (dict(n_components="two"), "n_components must be a"),
        (dict(freq_range=(1, 30), length=50), "Nyquist limit length/2 = 25"),
        (dict(freq_range=(1, 25), length=50), "Nyquist limit length/2 = 25"),  # at the limit is not below it
        (dict(freq_range=(-1, 2)), "freq_range"),
        (dict(amp_range=(1.0, 0.5)), "amp_range"),
        (dict(noise=-0.1), "noise must be a finite number >= 0"),
        # inf overflowed inside NumPy's uniform and integers
        (dict(amp_range=(0, float("inf"))), r"amp_range must be a \(low, high\) pair of finite numbers"),
        (dict(amp_range=(float("nan"), 1)), r"amp_range must be a \(low, high\) pair of finite numbers"),
        (dict(freq_range=(float("-inf"), 2)), r"freq_range must be a \(low, high\) pair of finite numbers"),
        (dict(n_components=(1, float("inf"))), r"n_components must be a \(low, high\) pair of finite numbers"),
    ],
)
def test_sinusoids_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ds.make_sinusoids(**{"n": 5, **kwargs})


@pytest.mark.parametrize("unit_range", ["no", None, 1])
def test_sinusoids_unit_range_is_true_or_false(unit_range):
    with pytest.raises(TypeError, match="unit_range must be True or False"):  # "no" rescaled
        ds.make_sinusoids(n=2, length=20, unit_range=unit_range)


# --------------------------------------------------------------------------- piano rolls


@pytest.fixture(scope="module")
def rolls():
    return ds.make_piano_rolls(n=1000, length=32, pitches=16, seed=0)


def _melody(roll):
    """Per-step active pitch of a (T, P) roll."""
    return roll.argmax(axis=1)


def test_piano_rolls_shapes_dtypes_and_one_note_at_a_time(rolls):
    assert isinstance(rolls, ds.PianoRolls)
    assert rolls.rolls.shape == (1000, 32, 16) and rolls.rolls.dtype == np.float32
    assert set(np.unique(rolls.rolls).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(rolls.rolls.sum(axis=2), 1.0)
    assert rolls.factors.shape == (1000, 5) and rolls.factors.dtype == np.int64
    assert rolls.factor_names == ("root", "scale", "contour", "note_length", "start")
    assert list(rolls.factor_values) == list(rolls.factor_names)


def test_piano_rolls_factor_ranges(rolls):
    sizes = (16 - 12, 3, 4, 3, 4)
    for j, k in enumerate(sizes):
        assert set(np.unique(rolls.factors[:, j]).tolist()) == set(range(k)), rolls.factor_names[j]
        assert len(rolls.factor_values[rolls.factor_names[j]]) == k
    assert list(rolls.factor_values["scale"]) == ["major", "minor", "pentatonic"]
    assert list(rolls.factor_values["note_length"]) == [1, 2, 4]


def test_piano_rolls_pitches_belong_to_key_and_scale(rolls):
    names = rolls.factor_values["scale"]
    for roll, (root, scale, _, _, _) in zip(rolls.rolls, rolls.factors):
        allowed = {root + o for o in ds.PIANO_SCALES[names[scale]]}
        assert set(_melody(roll).tolist()) <= allowed


def test_piano_rolls_key_determines_the_pitch_set(rolls):
    # Long enough to visit every degree: the pitch set is exactly the scale.
    long = ds.make_piano_rolls(n=200, length=64, pitches=14, seed=9)
    names = long.factor_values["scale"]
    for roll, (root, scale, _, note_length, _) in zip(long.rolls, long.factors):
        if note_length == 0:  # one step per note: 64 notes cover every degree
            expected = {root + o for o in ds.PIANO_SCALES[names[scale]]}
            assert set(_melody(roll).tolist()) == expected


def test_piano_rolls_notes_change_exactly_at_note_boundaries(rolls):
    lengths = rolls.factor_values["note_length"]
    for roll, factors in zip(rolls.rolls, rolls.factors):
        melody = _melody(roll)
        note_length = lengths[factors[3]]
        changes = np.nonzero(np.diff(melody))[0] + 1
        np.testing.assert_array_equal(changes, np.arange(note_length, 32, note_length))


def test_piano_rolls_contours_and_start(rolls):
    names = rolls.factor_values["scale"]
    lengths = rolls.factor_values["note_length"]
    for roll, (root, scale, contour, length_idx, start) in zip(rolls.rolls, rolls.factors):
        offsets = list(ds.PIANO_SCALES[names[scale]])
        top = len(offsets) - 1
        degrees = [offsets.index(p - root) for p in _melody(roll)[:: lengths[length_idx]]]
        steps = np.diff(degrees)
        name = ds.PIANO_CONTOURS[contour]
        if name == "ascending":
            assert degrees[0] == start
            assert all(d == 1 or d == -top for d in steps)
        elif name == "descending":
            assert degrees[0] == top - start
            assert all(d == -1 or d == top for d in steps)
        else:
            assert all(abs(d) == 1 for d in steps)
            # Direction only turns at the ends of the scale.
            for i in range(1, len(steps)):
                if steps[i] != steps[i - 1]:
                    assert degrees[i] in (0, top)
            first_move = steps[0] if len(steps) else 0
            if name == "up-down":
                assert degrees[0] == start
                assert first_move == 1
            else:
                assert degrees[0] == top - start
                assert first_move == -1


def test_piano_rolls_deterministic_and_seed_dependent():
    a = ds.make_piano_rolls(n=50, seed=1)
    b = ds.make_piano_rolls(n=50, seed=1)
    c = ds.make_piano_rolls(n=50, seed=2)
    assert a.rolls.tobytes() == b.rolls.tobytes() and a.factors.tobytes() == b.factors.tobytes()
    assert not np.array_equal(a.factors, c.factors)


def test_piano_rolls_other_sizes():
    r = ds.make_piano_rolls(n=7, length=5, pitches=13, seed=0)
    assert r.rolls.shape == (7, 5, 13)
    assert np.all(r.factors[:, 0] == 0)  # only one root fits in 13 pitches
    assert ds.make_piano_rolls(n=0).rolls.shape == (0, 32, 16)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(n=-1), "n must be an integer >= 0, got -1"),
        (dict(length=0), "length must be a positive integer"),
        (dict(pitches=12), "pitches must be an integer >= 13, got 12"),
        (dict(pitches=16.5), "pitches must be an integer >= 13, got 16.5"),
    ],
)
def test_piano_rolls_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ds.make_piano_rolls(**{"n": 5, **kwargs})


def test_sequence_sizes_given_as_whole_floats_are_those_sizes():
    # as every count in microvae (checks.check_int): 16.0 is 16, and a string is a TypeError
    a, b = ds.make_piano_rolls(n=3.0, length=8.0, pitches=16.0, seed=2), ds.make_piano_rolls(n=3, length=8, pitches=16, seed=2)
    assert a.rolls.tobytes() == b.rolls.tobytes()
    a, b = ds.make_sinusoids(n=3, length=20.0, n_components=2.0, seed=2), ds.make_sinusoids(n=3, length=20, n_components=2, seed=2)
    assert a.x.tobytes() == b.x.tobytes() and np.all(a.n_components == 2)
    with pytest.raises(TypeError, match="length must be an integer >= 2, got '20'"):
        ds.make_sinusoids(n=3, length="20")


@pytest.mark.parametrize("n_components, pattern", [
    (2.5, "n_components must be a positive integer, got 2.5"),  # said "a (low, high) pair", though a count is taken
    (0, "n_components must be a positive integer, got 0"),  # said "1 <= low <= high, got (0, 0)"
    (np.float64(-1.0), r"n_components must be a positive integer, got np.float64\(-1.0\)"),
])
def test_sinusoids_name_a_bad_single_component_count_as_a_count(n_components, pattern):
    with pytest.raises(ValueError, match=pattern):
        ds.make_sinusoids(n=3, n_components=n_components)


# --------------------------------------------------------------------------- images as sequences


@pytest.mark.parametrize("shape", [(4, 784), (4, 28, 28), (4, 1, 28, 28)])
def test_images_as_sequences_accepts_image_layouts(shape):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    seq = ds.images_as_sequences(x)
    assert seq.shape == (4, 28, 28) and seq.dtype == np.float32
    np.testing.assert_array_equal(seq.reshape(4, 784), x.reshape(4, 784))
    assert np.shares_memory(seq, x)


def test_images_as_sequences_rows_are_time_steps():
    x = np.arange(3 * 6 * 5).reshape(3, 30)
    seq = ds.images_as_sequences(x, height=6, width=5)
    assert seq.shape == (3, 6, 5)
    for t in range(6):
        np.testing.assert_array_equal(seq[:, t, :], x[:, t * 5:(t + 1) * 5])


def test_images_as_sequences_with_sprites():
    s = ds.make_sprites(10, size=32)
    seq = ds.images_as_sequences(s.images, 32, 32)
    assert seq.shape == (10, 32, 32)
    np.testing.assert_array_equal(seq, ds.make_sprites(10, size=32, flatten=False).images[:, 0])


@pytest.mark.parametrize(
    "shape",
    [(4, 783), (4, 28, 27), (4, 3, 28, 28), (784,), (4, 1, 28, 28, 1), (4, 32, 32)],
)
def test_images_as_sequences_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match=r"expected an array of shape \(N, 784\), \(N, 28, 28\) or \(N, 1, 28, 28\)"):
        ds.images_as_sequences(np.zeros(shape))


def test_images_as_sequences_refuses_images_of_the_transposed_size():
    for shape in ((2, 5, 6), (2, 1, 5, 6)):  # (width, height): a reshape would scramble the rows
        with pytest.raises(ValueError, match=r"expected an array of shape \(N, 30\), \(N, 6, 5\) or \(N, 1, 6, 5\)"):
            ds.images_as_sequences(np.zeros(shape), height=6, width=5)


def test_images_as_sequences_bad_size_arguments():
    with pytest.raises(ValueError, match="height must be a positive integer"):
        ds.images_as_sequences(np.zeros((2, 4)), height=0, width=4)


def test_public_api_is_exported():
    for name in ds.__all__:
        assert hasattr(ds, name), name
        obj = getattr(ds, name)
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__ and len(obj.__doc__) > 100, name


def test_make_sprites_flatten_is_true_or_false(monkeypatch):
    with pytest.raises(TypeError, match="flatten must be True or False"):  # "no" flattened
        ds.make_sprites(n=2, flatten="no")
    from microvae.datasets import sprites

    monkeypatch.setattr(sprites, "_render", lambda *a: pytest.fail("rendered 46080 images before refusing flatten"))
    with pytest.raises(TypeError, match="flatten must be True or False"):
        ds.make_sprites(None, flatten="no")


# --------------------------------------------------------------------------- gaps found by a mutation review
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402


@given(dtype=st.sampled_from(["u1", "i1", "i2", "i4", "f4", "f8"]), byteorder=st.sampled_from(["<", ">"]),
       shape=hnp.array_shapes(min_dims=2, max_dims=4, max_side=5), data=st.data())
def test_idx_round_trip_of_views_in_any_memory_order_and_byte_order(tmp_path_factory, dtype, byteorder, shape, data):
    """IDX stores C (row-major) order: a transposed or Fortran-ordered view, or a non-native
    byte order, must be written as the array it *is*, not as its memory happens to lie."""
    dt = np.dtype(byteorder + dtype)
    base = data.draw(hnp.arrays(dt, shape, elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False)))
    path = tmp_path_factory.mktemp("idx") / "a.idx"
    for view in (base.T, np.asfortranarray(base), base[..., ::-1]):
        ds.write_idx(path, view)
        back = ds.read_idx(path)
        assert back.shape == view.shape and back.dtype == dt.newbyteorder("=")
        np.testing.assert_array_equal(back, view)


def test_read_idx_of_three_bytes_names_the_file_and_the_magic_number(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(bytes([0, 0, 8]))
    with pytest.raises(ValueError, match=r"short\.idx: expected at least 4 bytes for the IDX magic number, found 3"):
        ds.read_idx(path)


def test_write_idx_refuses_a_dimension_its_32_bit_header_cannot_hold(tmp_path):
    """An empty array may still have a side of 2**32, which the header's uint32 cannot store."""
    with pytest.raises(ValueError, match=r"write_idx: every dimension must be < 2\*\*32, got shape \(4294967296, 0\)"):
        ds.write_idx(tmp_path / "a.idx", np.zeros((2**32, 0), np.uint8))
    assert not (tmp_path / "a.idx").exists()
    ds.write_idx(tmp_path / "b.idx", np.zeros((2**32 - 1, 0), np.uint8))
    assert ds.read_idx(tmp_path / "b.idx").shape == (2**32 - 1, 0)


def test_write_idx_compresses_only_names_ending_in_dot_gz(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    for name in ("a.tgz", "agz", "a.gz.idx"):
        ds.write_idx(tmp_path / name, array)
        assert (tmp_path / name).read_bytes()[:4] == bytes([0, 0, 8, 1]), name


def test_download_file_announces_itself_unless_quiet(tmp_path, monkeypatch, capsys):
    data = b"bytes"
    monkeypatch.setattr(download_mod, "_fetch", lambda url, *a, **k: data)
    monkeypatch.delenv("MICROVAE_OFFLINE")  # _fetch is the fake above
    dest = tmp_path / "f.gz"
    download_mod.download_file("http://x/f.gz", dest, hashlib.md5(data).hexdigest())
    assert capsys.readouterr().err == f"microvae: downloading http://x/f.gz -> {dest}\n"
    download_mod.download_file("http://x/f.gz", tmp_path / "g.gz", hashlib.md5(data).hexdigest(), quiet=True)
    assert capsys.readouterr().err == ""


def test_download_file_checks_every_byte_of_a_large_download(tmp_path, monkeypatch):
    data = bytes(range(256)) * 40  # 10 kB
    monkeypatch.setattr(download_mod, "_fetch", lambda url, *a, **k: data)
    for damaged in (data[:-1], data[1:], data[:5000] + b"\x00" + data[5001:]):
        with pytest.raises(ds.ChecksumError, match=r"checksum mismatch for http://x/f\.gz: .*\(10240 bytes\)"):
            download_mod.download_file("http://x/f.gz", tmp_path / "f.gz", hashlib.md5(damaged).hexdigest(), quiet=True)
        assert not (tmp_path / "f.gz").exists()
    download_mod.download_file("http://x/f.gz", tmp_path / "f.gz", hashlib.md5(data).hexdigest(), quiet=True)
    assert (tmp_path / "f.gz").read_bytes() == data


def _two_mirrors(monkeypatch, served, first, second):
    """Fashion-MNIST with two mirrors, a/ and b/, each answering as ``first``/``second`` says:
    "ok" (the served file), "corrupt" (other bytes) or "down" (a URLError). Returns the URL log."""
    payloads = {f"{s}.gz": (served / f"{s}.gz").read_bytes() for s in STEMS}
    source = dataclasses.replace(mnist_mod._SOURCES["fashion-mnist"], mirrors=("http://a/", "http://b/"),
                                 md5={name: hashlib.md5(data).hexdigest() for name, data in payloads.items()})
    monkeypatch.setitem(mnist_mod._SOURCES, "fashion-mnist", source)
    log = []

    def fetch(url, *args, **kwargs):
        log.append(url)
        answer = first if url.startswith("http://a/") else second
        if answer == "down":
            raise urllib.error.URLError("unreachable")
        return payloads[url.rsplit("/", 1)[1]] if answer == "ok" else b"<html>not the file</html>"

    monkeypatch.setattr(download_mod, "_fetch", fetch)
    return log


def test_a_second_mirror_is_tried_when_the_first_fails(isolated, monkeypatch):
    served = write_fake_dataset(isolated["tmp"] / "served", n_train=9)
    for first in ("down", "corrupt"):
        log = _two_mirrors(monkeypatch, served, first, "ok")
        assert _train_size(ds.load_fashion_mnist()) == 9
        assert log == [url for s in STEMS for url in (f"http://a/{s}.gz", f"http://b/{s}.gz")]
        for f in (isolated["cache"] / "fashion-mnist").iterdir():
            f.unlink()
    log = _two_mirrors(monkeypatch, served, "ok", "down")  # the first one answering is enough
    assert _train_size(ds.load_fashion_mnist()) == 9 and log == [f"http://a/{s}.gz" for s in STEMS]


def test_a_checksum_error_at_any_mirror_is_reported_over_a_later_network_error(isolated, monkeypatch):
    """A corrupt file says more than an unreachable mirror: it is raised (as ChecksumError, not
    folded into "not found"), whichever mirror gave it, and nothing is saved."""
    served = write_fake_dataset(isolated["tmp"] / "served")
    for first, second in (("corrupt", "down"), ("down", "corrupt")):
        _two_mirrors(monkeypatch, served, first, second)
        with pytest.raises(ds.ChecksumError, match="train-images-idx3-ubyte.gz"):
            ds.load_fashion_mnist()
        cache = isolated["cache"] / "fashion-mnist"
        assert not cache.exists() or not any(cache.iterdir())
    _two_mirrors(monkeypatch, served, "down", "down")
    with pytest.raises(ds.DatasetNotFoundError, match="URLError.*unreachable"):
        ds.load_fashion_mnist()


def test_more_labels_than_images_is_an_error(isolated):
    root = write_fake_dataset(isolated["tmp"] / "root", n_train=6)
    ds.write_idx(root / "train-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected 6 labels to match .*, found 7"):
        ds.load_fashion_mnist(root=root, download=False)


@pytest.mark.parametrize("load, name", [(ds.load_mnist, "mnist"), (ds.load_fashion_mnist, "fashion-mnist")])
def test_both_loaders_take_flatten_and_limit(isolated, load, name):
    root = write_fake_dataset(isolated["tmp"] / "root" / name, n_train=8, n_test=5)
    (x, y), (x_test, y_test) = load(root=root.parent, download=False, flatten=False, limit=4)
    assert x.shape == (4, 1, 28, 28) and x_test.shape == (4, 1, 28, 28)
    np.testing.assert_array_equal(y, [0, 1, 2, 3])
    (flat, _), _ = load(root=root.parent, download=False)
    assert flat.shape == (8, 784)
    np.testing.assert_array_equal(x.reshape(4, 784), flat[:4])


def test_the_not_found_message_says_whether_the_data_variable_is_set(isolated, monkeypatch):
    with pytest.raises(ds.DatasetNotFoundError, match=r"\(\$MICROVAE_DATA is not set\)"):
        ds.load_fashion_mnist(download=False)
    env = isolated["tmp"] / "env"
    env.mkdir()
    monkeypatch.setenv("MICROVAE_DATA", str(env))
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_fashion_mnist(download=False)
    assert "is not set" not in str(info.value) and f"{env}  [$MICROVAE_DATA: " in str(info.value)


def test_the_published_checksums_are_eight_different_ones():
    """A hash pasted into the wrong entry would make that file's download fail every time."""
    digests = [h for name in ("fashion-mnist", "mnist") for h in mnist_mod._SOURCES[name].md5.values()]
    assert len(set(digests)) == 8 and all(h == h.lower() for h in digests)


def test_the_first_training_labels_that_tell_the_datasets_apart_are_the_real_ones():
    """Each dataset is recognised by the first ten labels of its training set: Fashion-MNIST's as
    Debian's copy has them, MNIST's the well-known 5 0 4 1 9 2 1 3 1 4 of LeCun's files."""
    labels = ds.read_idx(os.path.join(REAL_FASHION_DIR, "train-labels-idx1-ubyte.gz"))
    assert tuple(labels[:10].tolist()) == mnist_mod._SOURCES["fashion-mnist"].first_train_labels
    assert mnist_mod._SOURCES["mnist"].first_train_labels == (5, 0, 4, 1, 9, 2, 1, 3, 1, 4)


def test_the_package_exports_everything_its_modules_do():
    """``from microvae.datasets import X`` must work for every public name of idx, mnist, sprites
    and sequences (the download module's helpers aside: only its two errors are exported)."""
    from microvae.datasets import sequences, sprites

    for module in (idx_mod, mnist_mod, sprites, sequences):
        for name in module.__all__:
            assert name in ds.__all__ and getattr(ds, name) is getattr(module, name), (module.__name__, name)
    assert {"ChecksumError", "DatasetNotFoundError"} <= set(ds.__all__)


def test_the_mnist_error_suggests_no_apt_package_at_all():
    """MNIST has no Debian package: no "apt-get install" line (it read "install None")."""
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_mnist(download=False)
    assert "apt-get" not in str(info.value) and "None" not in str(info.value)


@pytest.mark.parametrize("n", [None, 5])
@pytest.mark.parametrize("factor", ["n_scales", "n_rotations", "n_positions"])
def test_sprites_refuse_a_factor_with_no_values(n, factor):
    """With n=None a factor of 0 values would enumerate no combination and return no images."""
    with pytest.raises(ValueError, match=f"{factor} must be a positive integer, got 0"):
        ds.make_sprites(n, **{factor: 0})


# --------------------------------------------------------------------------- sequence generators: second mutation review


@pytest.mark.parametrize("make", [
    lambda: ds.make_sinusoids(n=True),
    lambda: ds.make_sinusoids(n=3, length=True),
    lambda: ds.make_piano_rolls(n=True),
    lambda: ds.make_piano_rolls(n=3, length=True),
    lambda: ds.images_as_sequences(np.zeros((2, 1)), height=True, width=1),
])
def test_sequence_generators_refuse_booleans_as_sizes(make):
    # True is an int to isinstance: without the bool test it made one sequence, or one step
    with pytest.raises(TypeError, match=r"must be (an integer >= \d+|a positive integer), got True"):
        make()


def test_sinusoids_refuse_a_fractional_upper_component_count():
    # int(2.5) would quietly draw 1 or 2 components
    with pytest.raises(ValueError, match="n_components must be integers"):
        ds.make_sinusoids(n=5, n_components=(1, 2.5))


def test_sinusoids_take_a_numpy_integer_component_count_but_not_a_boolean():
    s = ds.make_sinusoids(n=6, n_components=np.int64(2), seed=1)
    assert np.all(s.n_components == 2) and s.freqs.shape == (6, 2)
    with pytest.raises(ValueError, match="n_components must be a"):  # True is no count of sinusoids
        ds.make_sinusoids(n=5, n_components=True)


@pytest.mark.parametrize("noise", [float("inf"), float("nan"), np.float64("inf")])
def test_sinusoids_refuse_a_noise_level_that_is_not_finite(noise):
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        ds.make_sinusoids(n=5, noise=noise)


def test_sinusoids_unit_range_of_silent_signals_is_the_zero_line():
    # amplitudes and noise of 0 make the map's bound B = 0: the signals are the zero line 0.5, not 0/0
    s = ds.make_sinusoids(n=4, length=12, amp_range=(0.0, 0.0), noise=0.0, unit_range=True)
    assert s.x.dtype == np.float32
    np.testing.assert_array_equal(s.x, np.full((4, 12, 1), 0.5, np.float32))


def test_sinusoids_unit_range_clips_the_noise_beyond_three_standard_deviations():
    # one faint sinusoid under heavy noise: B = 0.2 + 3·0.5, and noise beyond about 3σ leaves [0, 1]
    kwargs = dict(n=1000, length=40, n_components=1, amp_range=(0.2, 0.2), noise=0.5, seed=3)
    raw, unit = ds.make_sinusoids(**kwargs), ds.make_sinusoids(**kwargs, unit_range=True)
    mapped = 0.5 + raw.x.astype(np.float64) / (2 * 1.7)
    assert (mapped > 1).sum() > 5 and (mapped < 0).sum() > 5  # the clip has work to do
    assert unit.x.min() == 0.0 and unit.x.max() == 1.0
    np.testing.assert_allclose(unit.x, np.clip(mapped, 0, 1), atol=1e-6)


def test_sinusoids_defaults_are_the_documented_ones():
    default = ds.make_sinusoids()
    assert default.x.shape == (1000, 50, 1) and default.freqs.shape == (1000, 3)
    spelled_out = ds.make_sinusoids(n=1000, length=50, n_components=(1, 3), seed=0, noise=0.05, freq_range=(1.0, 5.0),
                                    amp_range=(0.5, 1.0), unit_range=False)
    for name, a, b in zip(ds.Sinusoids._fields, default, spelled_out):
        assert np.array_equal(a, b), name  # (no == on the bytes: pytest's diff of 200 kB takes minutes)


def test_piano_rolls_defaults_are_the_documented_ones():
    default = ds.make_piano_rolls()
    assert default.rolls.shape == (1000, 32, 16)
    spelled_out = ds.make_piano_rolls(n=1000, length=32, pitches=16, seed=0)
    assert np.array_equal(default.rolls, spelled_out.rolls) and np.array_equal(default.factors, spelled_out.factors)


def test_images_as_sequences_refuses_a_width_of_zero():
    # (2, 0) images of height 3 and width 0 would pass as rows of no pixels
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        ds.images_as_sequences(np.zeros((2, 0)), height=3, width=0)


# found by an audit of the datasets module ---------------------------------------------------------
@pytest.mark.parametrize("error", [lambda: __import__("http.client").client.IncompleteRead(b"abc", 1000),
                                   lambda: __import__("http.client").client.BadStatusLine("garbled")])
def test_a_reply_cut_short_is_a_dataset_not_found_error_like_any_network_failure(isolated, monkeypatch, error):
    """http.client's IncompleteRead (a connection dropped mid-body) is no OSError: it escaped
    the mirror loop, load_fashion_mnist and the CLI as a bare traceback."""
    monkeypatch.setattr(download_mod, "_fetch", _REAL_FETCH)
    monkeypatch.delenv("MICROVAE_OFFLINE")  # urlopen is the fake below: nothing reaches the network

    def cut_short(url, *args, **kwargs):
        raise error()

    monkeypatch.setattr(urllib.request, "urlopen", cut_short)
    with pytest.raises(ds.DatasetNotFoundError, match=r"(IncompleteRead|BadStatusLine)") as info:
        ds.load_fashion_mnist()
    assert isinstance(info.value.__cause__, OSError)
    cache = isolated["cache"] / "fashion-mnist"
    assert not cache.exists() or not any(cache.iterdir())


def test_read_idx_refuses_a_large_foreign_file_before_reading_it(tmp_path):
    """A zip file (or any large file) passed by mistake was read and decompressed whole, 400 MiB
    for a 400 KB gzip, before its 4-byte header was found wrong."""
    import tracemalloc

    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(b"PK\x03\x04" + bytes(64 << 20)))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb\.gz: not an IDX file: .*found 50 4b 03 04"):
            ds.read_idx(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def test_read_idx_names_the_file_when_the_header_declares_more_dimensions_than_numpy_has(tmp_path):
    path = tmp_path / "deep.idx"
    path.write_bytes(bytes([0, 0, 8, 65]) + struct.pack(">65I", *[1] * 65) + b"\x07")
    with pytest.raises(ValueError, match=r"deep\.idx: IDX header declares 65 dimensions, more than a NumPy array can have"):
        ds.read_idx(path)


@pytest.mark.parametrize("kwargs", [dict(n_components="13"), dict(freq_range="15"), dict(n_components=(True, 2)),
                                    dict(amp_range=(0.1, 0.2, 0.3)), dict(amp_range=None)])
def test_sinusoid_ranges_are_pairs_of_numbers(kwargs):
    # float() of each character read "15" as (1.0, 5.0), and True as 1
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=rf"{name} must be a \(low, high\) pair of numbers"):
        ds.make_sinusoids(n=3, **kwargs)
