"""Fetching dataset files over the network, checksum-verified and atomically.

All network access in :mod:`microvae.datasets` goes through the module-level
function :func:`_fetch`, so tests (or users behind unusual proxies) can replace
it, e.g. ``monkeypatch.setattr(microvae.datasets.download, "_fetch", fake)``, and
``$MICROVAE_OFFLINE`` can forbid it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.request

from ..atomic import write_atomically
from ..checks import as_path

__all__ = ["ChecksumError", "DatasetNotFoundError", "download_file"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not present locally and could not be downloaded."""


class ChecksumError(ValueError):
    """Downloaded bytes do not have the published checksum."""


#: Set (to anything but "" or "0") to forbid all network access: downloads then fail with a
#: message naming this variable. The test suite sets it, so no test can reach the network.
OFFLINE_ENV_VAR = "MICROVAE_OFFLINE"


def offline() -> bool:
    """True when ``$MICROVAE_OFFLINE`` forbids network access."""
    return os.environ.get(OFFLINE_ENV_VAR, "") not in ("", "0")


def _fetch(url: str, timeout: float = 60.0) -> bytes:
    """Return the body of ``url``. Raises ``urllib.error.URLError``/``OSError`` on failure (an
    HTTP reply cut short or garbled too), and ``OSError`` without touching the network when
    ``$MICROVAE_OFFLINE`` is set."""
    if offline():
        raise OSError(f"${OFFLINE_ENV_VAR} is set, so microvae does not use the network (wanted {url})")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except http.client.HTTPException as exc:  # a body cut short (IncompleteRead), a garbled reply: not OSErrors
        raise OSError(f"{url}: {type(exc).__name__}: {exc}") from exc


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def download_file(url: str, dest: str | bytes | os.PathLike, md5: str, *, quiet: bool = False) -> str:
    """Download ``url`` to ``dest`` if its MD5 digest equals ``md5``.

    The bytes are checked *before* anything appears at ``dest``; they are then
    written to a temporary file in the same directory and renamed over
    ``dest``, so ``dest`` is either absent or complete, never partial. The
    parent directory is created if needed.

    Returns
    -------
    str
        ``dest`` as a string.

    Raises
    ------
    ChecksumError
        If the downloaded bytes have a different MD5 digest (nothing is written).
    urllib.error.URLError, OSError
        If fetching fails (propagated from :func:`_fetch`).
    """
    dest = as_path(dest, "dest")
    if not quiet and not offline():  # offline, _fetch refuses: no "downloading" line before the error
        print(f"microvae: downloading {url} -> {dest}", file=sys.stderr)
    data = _fetch(url)
    digest = _md5_hex(data)
    if digest != md5.lower():
        raise ChecksumError(
            f"checksum mismatch for {url}: expected MD5 {md5.lower()}, got {digest} "
            f"({len(data)} bytes); the download is corrupt or the mirror changed the file"
        )
    return write_atomically(dest, lambda fh: fh.write(data))
