"""mgbench's own datasets, each one registered unit (entry points in pyproject.toml, group
``mgbench.datasets``, exactly as an outside package registers its dataset).

* ``shapes``: the embedded multi-scale shapes (:mod:`mgbench.data.shapes`), generated, with a
  coarse and a fine factor; the splits are disjoint index ranges.
* ``mnist``, ``cifar10``, ``folder``: real images read from ``data.root``
  (:mod:`mgbench.data.readers`), their one factor the class.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mgbench.data import readers, shapes
from mgbench.data.images import ImageSet
from mgbench.data.registry import Dataset, LoadRequest
from mgbench.errors import UsageError
from mgbench.seeding import derive_seed, generator

SHAPES_REFERENCE_START = 2**31  # the shapes reference split's first index, far from the train range


def labelled(images: torch.Tensor, labels: torch.Tensor | None, num_classes: int) -> ImageSet:
    """A real-data set: its one factor is the class."""
    if labels is None:
        return ImageSet(images, None, 0)
    return ImageSet(images, labels, num_classes, {"class": labels}, {"class": num_classes}, ("class",))


def _root(request: LoadRequest, name: str) -> str:
    if request.root is None:
        raise UsageError(f"dataset {name!r} is read from files and no folder was given", "set data.root to its folder")
    if not Path(request.root).is_dir():
        raise UsageError(f"data folder {request.root} does not exist",
                         f"set data.root to the folder of the {name} files")
    return request.root


def load_shapes(request: LoadRequest) -> ImageSet:
    """``train_size`` / ``reference_size`` images generated from indices [0, train_size) and
    [2³¹, 2³¹ + reference_size), so the splits never share an image."""
    resolution = request.resolution
    if resolution < 16 or resolution & (resolution - 1):
        raise UsageError(f"shapes need a power-of-two resolution of at least 16, got {resolution}", "use 16, 32 or 64")
    size = request.train_size if request.split == "train" else request.reference_size
    if size <= 0:
        raise UsageError(f"data.{request.split}_size must be positive for shapes, got {size}")
    start = 0 if request.split == "train" else SHAPES_REFERENCE_START
    images, coarse, fine = shapes.generate(torch.arange(start, start + size), resolution, request.seed)
    return ImageSet(images, coarse * shapes.NUM_FINE + fine, shapes.NUM_COARSE * shapes.NUM_FINE,
                    {"coarse": coarse, "fine": fine}, {"coarse": shapes.NUM_COARSE, "fine": shapes.NUM_FINE},
                    ("coarse", "fine"))


def _split(images: torch.Tensor, labels: torch.Tensor | None, num_classes: int, request: LoadRequest,
           what: str) -> ImageSet:
    """A seeded permutation of all the images: the reference is its first ``reference_size``,
    train the rest (at most ``train_size``; ≤ 0 means all)."""
    train, reference = readers.split_indices(len(images), request.train_size, request.reference_size,
                                             request.seed, what)
    keep = train if request.split == "train" else reference
    return labelled(images[keep], None if labels is None else labels[keep], num_classes)


def load_mnist(request: LoadRequest) -> ImageSet:
    root = _root(request, "mnist")
    images, labels = readers.read_mnist(root)
    return _split(readers.pad_mnist(images, request.resolution), labels, 10, request, f"mnist folder {root}")


def load_folder(request: LoadRequest) -> ImageSet:
    root = _root(request, "folder")
    images, labels, classes = readers.read_folder(root, request.resolution)
    return _split(images, labels, len(classes), request, f"folder folder {root}")


def load_cifar10(request: LoadRequest) -> ImageSet:
    """The official split: train = data_batch_1..5, reference = ``reference_size`` images of
    test_batch, each subset chosen by a seeded permutation."""
    root = _root(request, "cifar10")
    images, labels = readers.read_cifar10(root, "train" if request.split == "train" else "test")
    size = request.train_size if request.split == "train" else request.reference_size
    if request.split == "reference" and len(images) < size:
        raise UsageError(
            f"CIFAR-10 test_batch in {root} has {len(images)} images, fewer than data.reference_size={size}",
            f"set data.reference_size to at most {len(images)}",
        )
    if 0 < size < len(images):  # a seeded random subset, not simply the first images of the files
        keep = torch.randperm(len(images), generator=generator(derive_seed("cifar10", request.split, request.seed)))
        images, labels = images[keep[:size]], labels[keep[:size]]
    return labelled(readers.resize(images, request.resolution), labels, 10)


SHAPES = Dataset("shapes", load_shapes, "embedded multi-scale shapes: coarse shape × fine stripe texture",
                 factors=("coarse", "fine"))
MNIST = Dataset("mnist", load_mnist, "MNIST digits (IDX files), padded to the resolution", factors=("class",),
                needs_root=True)
CIFAR10 = Dataset("cifar10", load_cifar10, "CIFAR-10 (python batches), official train/test split",
                  factors=("class",), needs_root=True)
FOLDER = Dataset("folder", load_folder, "a folder of images, one subfolder per class (or none: unlabelled)",
                 factors=("class",), needs_root=True)
