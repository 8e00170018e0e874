"""Tests for microvae.datasets. None of them touches the network."""

from __future__ import annotations

import gzip
import os
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
