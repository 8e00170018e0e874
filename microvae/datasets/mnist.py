"""MNIST and Fashion-MNIST: finding, downloading and loading the IDX files.

Both datasets consist of four files with the same standard names::

    train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz

(un-gzipped copies without the ``.gz`` suffix are accepted too). The loaders
look for a directory holding all four, in this order:

1. the ``root`` argument, and ``root/<name>``;
2. ``$MICROVAE_DATA`` and ``$MICROVAE_DATA/<name>``;
3. the Debian/Ubuntu dataset directory ``/usr/share/datasets/<name>``
   (Fashion-MNIST is packaged as ``dataset-fashion-mnist``);
4. the download cache ``~/.cache/microvae/<name>``;

where ``<name>`` is ``fashion-mnist`` or ``mnist``. A ``root`` that is not a folder is
an error (a typo would otherwise load data from elsewhere); one without the files is passed
over, as is a folder holding the *other* dataset (the two use the same file names; their
first training labels tell them apart). Only if none of these is
complete, and ``download=True``, are the missing files downloaded into the
cache from the dataset's public mirror, MD5-verified (unless ``$MICROVAE_OFFLINE``
is set to anything but empty or 0: then nothing is fetched and the error says so).
"""

from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass

import numpy as np

from ..checks import as_path, check_bool, check_int
from . import download as _download
from .download import ChecksumError, DatasetNotFoundError
from .idx import read_idx

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "load_fashion_mnist",
    "load_mnist",
]

#: Class names of Fashion-MNIST, indexed by label.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: Class names of MNIST, indexed by label.
MNIST_CLASSES = tuple(str(d) for d in range(10))

#: Environment variable naming a directory to search for datasets.
DATA_ENV_VAR = "MICROVAE_DATA"

# Where Debian's dataset-* packages install their files. Module-level so tests
# can point it elsewhere.
_SYSTEM_DATASETS_DIR = "/usr/share/datasets"

_TRAIN_IMAGES = "train-images-idx3-ubyte"
_TRAIN_LABELS = "train-labels-idx1-ubyte"
_TEST_IMAGES = "t10k-images-idx3-ubyte"
_TEST_LABELS = "t10k-labels-idx1-ubyte"
_STEMS = (_TRAIN_IMAGES, _TRAIN_LABELS, _TEST_IMAGES, _TEST_LABELS)


@dataclass(frozen=True)
class _Source:
    name: str  # directory name under the search roots
    title: str  # human-readable name for messages
    mirrors: tuple  # base URLs, tried in order
    md5: dict  # "<stem>.gz" -> MD5 of the published gzip file
    # The first ten labels of the 60000-example training set: both datasets use the same file
    # names, and copies are often re-compressed (Debian's are), so the MD5s cannot tell them apart
    first_train_labels: tuple
    apt_package: str | None = None


_SOURCES = {
    "fashion-mnist": _Source(
        name="fashion-mnist",
        title="Fashion-MNIST",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        first_train_labels=(9, 0, 0, 3, 0, 2, 7, 2, 5, 5),
        apt_package="dataset-fashion-mnist",
    ),
    "mnist": _Source(
        name="mnist",
        title="MNIST",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        first_train_labels=(5, 0, 4, 1, 9, 2, 1, 3, 1, 4),
    ),
}


def _cache_dir(name: str) -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "microvae", name)


def _find_file(directory: str, stem: str) -> str | None:
    """Path of ``stem.gz`` or ``stem`` in ``directory`` (gzip preferred), else None."""
    for candidate in (stem + ".gz", stem):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _other_dataset(source: _Source, paths) -> str | None:
    """The title of the other dataset if ``paths`` (the four files found) hold its full
    training set, told by its first labels; else None (other data, e.g. made for a test,
    passes)."""
    try:
        labels = read_idx(paths[1])  # 60 kB: cheap beside the images
    except (OSError, ValueError):
        return None  # a damaged file: _read_split reports it
    for other in _SOURCES.values():
        if other is not source and labels.shape == (60000,) and tuple(labels[:10].tolist()) == other.first_train_labels:
            return other.title
    return None


def _candidate_dirs(source: _Source, root) -> list[tuple[str, str]]:
    """Directories to search, in order, as (path, where-it-came-from) pairs."""
    out = []
    if root is not None:
        root = as_path(root, "root")
        if not os.path.isdir(root):  # a typo would otherwise fall through to data from elsewhere
            raise NotADirectoryError(f"root {root!r} is not a folder" if os.path.exists(root) else
                                     f"root {root!r} does not exist")
        out += [(root, "root argument"), (os.path.join(root, source.name), "root argument")]
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        out += [(env, f"${DATA_ENV_VAR}"), (os.path.join(env, source.name), f"${DATA_ENV_VAR}")]
    out.append((os.path.join(_SYSTEM_DATASETS_DIR, source.name), "system datasets directory"))
    out.append((_cache_dir(source.name), "download cache"))
    return out


def _describe(source: _Source, directory: str) -> str:
    if not os.path.isdir(directory):
        return "does not exist"
    paths = [_find_file(directory, s) for s in _STEMS]
    if None not in paths:
        return f"holds {_other_dataset(source, paths)}, not {source.title}"
    return "missing " + ", ".join(s for s, p in zip(_STEMS, paths) if p is None)


def _not_found_message(source: _Source, candidates, download_error: str | None) -> str:
    lines = [f"{source.title} not found: no directory holds its four files "
             f"({', '.join(s + '.gz' for s in _STEMS)}; un-gzipped names are accepted too)."]
    lines.append("Searched, in order:")
    for directory, origin in candidates:
        lines.append(f"  - {directory}  [{origin}: {_describe(source, directory)}]")
    if not os.environ.get(DATA_ENV_VAR):
        lines.append(f"  (${DATA_ENV_VAR} is not set)")
    if download_error is None:
        lines.append("Downloading was not attempted (download=False).")
    else:
        lines.append(f"Downloading from {source.mirrors[0]} failed: {download_error}")
    lines.append("To fix this, put the four files into one of the directories above, e.g.:")
    if source.apt_package:
        lines.append(f"  - sudo apt-get install {source.apt_package}   "
                     f"(installs into {os.path.join(_SYSTEM_DATASETS_DIR, source.name)})")
    lines.append(f"  - download them from {source.mirrors[0]} into {_cache_dir(source.name)}")
    lines.append(f"  - or set ${DATA_ENV_VAR}=<directory> (in Python, root=<directory> works too)")
    return "\n".join(lines)


def _download_missing(source: _Source, directory: str) -> None:
    """Download every file missing from ``directory``; errors propagate."""
    for stem in _STEMS:
        if _find_file(directory, stem) is not None:
            continue
        filename = stem + ".gz"
        errors = []
        for mirror in source.mirrors:
            try:
                _download.download_file(mirror + filename, os.path.join(directory, filename), source.md5[filename])
                break
            except (ChecksumError, urllib.error.URLError, OSError) as exc:
                errors.append(exc)
        else:
            checksum_errors = [e for e in errors if isinstance(e, ChecksumError)]
            raise checksum_errors[-1] if checksum_errors else errors[-1]


def _read_split(images_path: str, labels_path: str, limit, flatten: bool):
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), "
            f"found {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape (N,), found {labels.dtype} of shape {labels.shape}"
        )
    if len(labels) != len(images):
        raise ValueError(
            f"{labels_path}: expected {len(images)} labels to match {images_path}, found {len(labels)}"
        )
    if len(labels) and labels.max() > 9:
        raise ValueError(f"{labels_path}: expected labels in 0..9, found {int(labels.max())}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = images.astype(np.float32)
    np.divide(x, np.float32(255.0), out=x)
    x = x.reshape(len(x), 784) if flatten else x.reshape(len(x), 1, 28, 28)
    return x, labels.astype(np.int64)


def _load(name: str, root, download: bool, flatten: bool, limit):
    limit = check_int("limit", limit, 1, none_ok=True)
    download, flatten = check_bool("download", download), check_bool("flatten", flatten)  # download="no" would download
    source = _SOURCES[name]
    candidates = _candidate_dirs(source, root)
    found = None
    for directory, _origin in candidates:
        paths = [_find_file(directory, stem) for stem in _STEMS]
        if all(p is not None for p in paths) and _other_dataset(source, paths) is None:
            found = paths
            break
    if found is None:
        if not download:
            raise DatasetNotFoundError(_not_found_message(source, candidates, None))
        cache = _cache_dir(source.name)
        try:
            _download_missing(source, cache)
        except (urllib.error.URLError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise DatasetNotFoundError(_not_found_message(source, candidates, reason)) from exc
        found = [_find_file(cache, stem) for stem in _STEMS]
        other = _other_dataset(source, found)
        if other is not None:  # nothing was missing there to fetch: the cache itself holds the other dataset
            reason = (f"nothing to fetch: {cache} already holds {other}'s files under {source.title}'s names "
                      f"(move them away)")
            raise DatasetNotFoundError(_not_found_message(source, candidates, reason))
    train = _read_split(found[0], found[1], limit, flatten)
    test = _read_split(found[2], found[3], limit, flatten)
    return train, test


_LOADER_DOC = """Load {title} as float32 images in [0, 1] and int64 labels.

    Parameters
    ----------
    root:
        Optional directory to search first (itself and ``root/{name}``).
        See :mod:`microvae.datasets.mnist` for the full search order.
    download:
        If no directory with all four files is found, download the missing
        ones into ``~/.cache/microvae/{name}`` (MD5-verified, atomic). With
        ``False`` the network is never touched.
    flatten:
        ``True`` (default): images have shape ``(N, 784)``, each row a 28x28
        image in row-major order. ``False``: shape ``(N, 1, 28, 28)`` (NCHW).
    limit:
        If given, keep only the first ``limit`` examples of each split.

    Returns
    -------
    ((x_train, y_train), (x_test, y_test))
        ``x_*``: float32, values ``pixel / 255`` in [0, 1], shape ``(N, 784)``
        or ``(N, 1, 28, 28)``; ``N`` is 60000 for train and 10000 for test
        (or ``limit``). ``y_*``: int64, shape ``(N,)``, labels 0..9{classes}.

    Raises
    ------
    DatasetNotFoundError
        (a ``FileNotFoundError``) if the files are nowhere to be found and
        could not be downloaded; the message lists the directories searched
        and how to provide the files.
    ChecksumError
        If a downloaded file's MD5 digest is wrong (nothing is saved).
    ValueError
        If a file found is corrupt, truncated or has unexpected contents.
    """


def load_fashion_mnist(root=None, download: bool = True, *, flatten: bool = True, limit: int | None = None):
    return _load("fashion-mnist", root, download, flatten, limit)


def load_mnist(root=None, download: bool = True, *, flatten: bool = True, limit: int | None = None):
    return _load("mnist", root, download, flatten, limit)


load_fashion_mnist.__doc__ = _LOADER_DOC.format(
    title="Fashion-MNIST", name="fashion-mnist", classes=" (names in ``FASHION_MNIST_CLASSES``)"
)
load_mnist.__doc__ = _LOADER_DOC.format(title="MNIST", name="mnist", classes=" (the digit shown)")
