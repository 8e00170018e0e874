"""Datasets for microvae: real image data, procedural sprites and sequences.

* :mod:`~microvae.datasets.idx`: read/write the IDX file format.
* :mod:`~microvae.datasets.mnist`: MNIST and Fashion-MNIST loaders (local
  search, then optional checksum-verified download).
* :mod:`~microvae.datasets.sprites`: dSprites-like binary images with known
  generative factors.
* :mod:`~microvae.datasets.sequences`: synthetic sinusoids and piano rolls,
  and a rows-as-time-steps view of images.

Nothing here touches the network unless a loader is called with
``download=True`` and the files are not found locally.
"""

from .download import ChecksumError, DatasetNotFoundError
from .idx import IDX_TYPE_CODES, read_idx, write_idx
from .mnist import FASHION_MNIST_CLASSES, MNIST_CLASSES, load_fashion_mnist, load_mnist
from .sequences import (
    PIANO_CONTOURS,
    PIANO_FACTOR_NAMES,
    PIANO_NOTE_LENGTHS,
    PIANO_SCALES,
    PianoRolls,
    Sinusoids,
    images_as_sequences,
    make_piano_rolls,
    make_sinusoids,
)
from .sprites import SPRITE_FACTOR_NAMES, SPRITE_SHAPES, Sprites, make_sprites

__all__ = [
    "ChecksumError",
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASSES",
    "IDX_TYPE_CODES",
    "MNIST_CLASSES",
    "PIANO_CONTOURS",
    "PIANO_FACTOR_NAMES",
    "PIANO_NOTE_LENGTHS",
    "PIANO_SCALES",
    "PianoRolls",
    "SPRITE_FACTOR_NAMES",
    "SPRITE_SHAPES",
    "Sinusoids",
    "Sprites",
    "images_as_sequences",
    "load_fashion_mnist",
    "load_mnist",
    "make_piano_rolls",
    "make_sinusoids",
    "make_sprites",
    "read_idx",
    "write_idx",
]
