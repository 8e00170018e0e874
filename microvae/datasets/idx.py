"""Reading and writing IDX files, the format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number followed by the sizes of each dimension
and then the raw array data, all big-endian:

* bytes 0-1: always zero;
* byte 2: type code of the elements (see :data:`IDX_TYPE_CODES`);
* byte 3: number of dimensions ``ndim``;
* then ``ndim`` unsigned 32-bit big-endian integers, the size of each dimension;
* then ``prod(dims) * itemsize`` bytes of data in C (row-major) order.

Files are often distributed gzip-compressed; :func:`read_idx` detects this from
the gzip magic bytes ``1f 8b`` rather than trusting the file name.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from ..atomic import write_atomically
from ..checks import as_path

__all__ = ["IDX_TYPE_CODES", "read_idx", "write_idx"]

#: Map from IDX type code to the big-endian numpy dtype it denotes.
IDX_TYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),  # unsigned byte
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short
    0x0C: np.dtype(">i4"),  # int
    0x0D: np.dtype(">f4"),  # float
    0x0E: np.dtype(">f8"),  # double
}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str, check_magic) -> bytes:
    """Return the (decompressed, if gzipped) contents of ``path``, after ``check_magic`` has
    passed their first 4 bytes: a large file that is no IDX file is refused unread."""
    with open(path, "rb") as raw_file:
        gzipped = raw_file.read(2) == _GZIP_MAGIC
        raw_file.seek(0)
        stream = gzip.GzipFile(fileobj=raw_file, mode="rb") if gzipped else raw_file
        try:
            head = stream.read(4)
            check_magic(head)
            return head + stream.read()
        except (OSError, EOFError, zlib.error) as exc:
            if not gzipped:
                raise
            raise ValueError(
                f"{path}: file starts with the gzip magic bytes 1f 8b but could not be "
                f"decompressed ({exc}); the file is corrupt or truncated"
            ) from exc


def _check_magic(path: str, head: bytes) -> None:
    """The IDX magic number: two zero bytes, a known type code, 1 to 255 dimensions."""
    if len(head) < 4:
        raise ValueError(
            f"{path}: expected at least 4 bytes for the IDX magic number, "
            f"found {len(head)} (empty or truncated file?)"
        )
    zero0, zero1, type_code, ndim = head[0], head[1], head[2], head[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"{path}: not an IDX file: expected the magic number to start with "
            f"two zero bytes, found {head[:4].hex(' ')}"
        )
    if type_code not in IDX_TYPE_CODES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPE_CODES)
        raise ValueError(
            f"{path}: unknown IDX type code 0x{type_code:02X} in magic number "
            f"{head[:4].hex(' ')}; expected one of {known}"
        )
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")


def read_idx(path: str | bytes | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a numpy array.

    Parameters
    ----------
    path:
        Path to the file. Gzip compression is detected from the content (magic
        bytes ``1f 8b``), not from the file name.

    Returns
    -------
    numpy.ndarray
        A new, writable array whose shape is the dimensions stored in the
        header and whose dtype is the *native-endian* equivalent of the IDX
        type code (``uint8`` for 0x08, ``int8`` for 0x09, ``int16`` for 0x0B,
        ``int32`` for 0x0C, ``float32`` for 0x0D, ``float64`` for 0x0E).

    Raises
    ------
    ValueError
        If the magic number is wrong, the type code is unknown, the header is
        incomplete, or the amount of data differs from what the header's
        dimensions require (e.g. a truncated download). The message names the
        file and says what was expected and what was found.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = as_path(path)
    data = _read_bytes(path, lambda head: _check_magic(path, head))
    type_code, ndim = data[2], data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{path}: IDX header declares {ndim} dimensions, so expected a "
            f"{header_size}-byte header, found only {len(data)} bytes (file truncated?)"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = IDX_TYPE_CODES[type_code]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: four dims of 2³²−1 overflow int64
    found = len(data) - header_size
    if found != expected:
        hint = "file truncated?" if found < expected else "trailing garbage?"
        raise ValueError(
            f"{path}: header says shape {tuple(dims)} of {dtype.newbyteorder('=').name}, so "
            f"expected {expected} bytes of data after the header, found {found} ({hint})"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size)
    try:
        array = array.reshape(dims)
    except ValueError as exc:  # more dimensions than NumPy allows (64; 32 before NumPy 2)
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions, more than a NumPy array can have ({exc})") from None
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | bytes | os.PathLike, array) -> None:
    """Write ``array`` to ``path`` in IDX format.

    The file is gzip-compressed if ``path`` ends with ``.gz`` (with a zero
    timestamp, so equal arrays give byte-identical files).

    Parameters
    ----------
    path:
        Destination file; replaced atomically if it exists (missing folders are made).
    array:
        Array-like (not a masked array) with at least one dimension and a dtype that IDX can store:
        ``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or ``float64``
        (any byte order). Other dtypes raise ``ValueError``; cast first.
    """
    path = as_path(path)
    if isinstance(array, np.ma.MaskedArray):  # asarray would write the hidden values under the mask
        raise ValueError("write_idx: got a masked array, and IDX stores no mask; give array.filled(value), "
                         "or array.compressed() for the unmasked values only")
    array = np.asarray(array)
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: expected an array with 1 to 255 dimensions, got {array.ndim}")
    code = None
    for candidate, dtype in IDX_TYPE_CODES.items():
        if array.dtype.newbyteorder("=") == dtype.newbyteorder("="):
            code = candidate
            break
    if code is None:
        names = ", ".join(d.newbyteorder("=").name for d in IDX_TYPE_CODES.values())
        raise ValueError(f"write_idx: cannot store dtype {array.dtype} in IDX; expected one of {names}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"write_idx: every dimension must be < 2**32, got shape {array.shape}")

    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_TYPE_CODES[code]).tobytes()
    if path.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    write_atomically(path, lambda fh: fh.write(payload))  # an existing file is replaced whole or kept
