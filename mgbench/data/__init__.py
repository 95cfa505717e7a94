"""Datasets: the embedded multi-scale shapes (:mod:`.shapes`) and real images on disk (:mod:`.readers`).

Every dataset comes as an :class:`ImageSet` of uint8 images in two disjoint splits: "train", which
models learn from, and "reference", held out, which samples are scored against. Channels are kept
as stored: MNIST stays grey (C = 1, the metrics tile it to RGB), the other sets are RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from mgbench.contract import DataSpec
from mgbench.data import readers, shapes
from mgbench.data.batches import BatchSampler
from mgbench.errors import UsageError, unknown_name
from mgbench.seeding import derive_seed, generator

__all__ = ["DATASETS", "SPLITS", "BatchSampler", "ImageSet", "load_dataset", "to_float", "to_uint8"]

DATASETS: tuple[str, ...] = ("shapes", "mnist", "cifar10", "folder")
SPLITS: tuple[str, ...] = ("train", "reference")

SHAPES_REFERENCE_START = 2**31  # the shapes reference split's first index, far from the train range


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value; sets compare by identity
class ImageSet:
    """Images with their labels and named label heads ("factors") for per-scale scoring."""

    images: torch.Tensor  # uint8 N×C×H×W, C = 1 or 3
    labels: torch.Tensor | None  # int64 N: the class a conditional model is given; None if unlabelled
    num_classes: int  # 0 if unlabelled
    factors: dict[str, torch.Tensor] = field(default_factory=dict)  # name → int64 N
    factor_classes: dict[str, int] = field(default_factory=dict)  # name → number of classes

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] not in (1, 3):
            raise ValueError(
                f"images must be uint8 N×C×H×W, C 1 or 3, not {self.images.dtype} {tuple(self.images.shape)}"
            )
        if (self.labels is None) != (self.num_classes == 0):
            raise ValueError("labels and num_classes must agree on whether the set is labelled")
        heads = dict(self.factors, **({} if self.labels is None else {"labels": self.labels}))
        for name, y in heads.items():
            if y.dtype != torch.int64 or y.shape != (n,):
                raise ValueError(f"{name} must be int64 of shape ({n},), got {y.dtype} {tuple(y.shape)}")
        if set(self.factors) != set(self.factor_classes):
            raise ValueError("factors and factor_classes must name the same heads")

    def spec(self) -> DataSpec:
        return DataSpec(
            channels=self.images.shape[1], resolution=self.images.shape[-1], num_classes=self.num_classes
        )

    def __len__(self) -> int:
        return len(self.images)


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [-1, 1] (0 → -1, 255 → 1)."""
    return images_uint8.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(images_float: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8, rounded to the nearest level, values outside [-1, 1] clamped."""
    return images_float.detach().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def load_dataset(
    name: str,
    split: str,
    *,
    resolution: int,
    root: str | None = None,
    train_size: int = 20000,
    reference_size: int = 2000,
    seed: int = 0,
) -> ImageSet:
    """One split ("train" or "reference") of dataset ``name`` at ``resolution`` × ``resolution``.

    shapes: ``train_size`` / ``reference_size`` images generated from indices [0, train_size) and
    [2³¹, 2³¹ + reference_size), so the splits never share an image. mnist / folder: a seeded
    permutation of all the images; the reference is its first ``reference_size``, train the rest
    (at most ``train_size``; ≤ 0 means all). cifar10: the official split, train = data_batch_1..5,
    reference = ``reference_size`` images of test_batch, each subset chosen by a seeded permutation.
    """
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS)
    if resolution <= 0:
        raise UsageError(f"data.resolution must be positive, got {resolution}")
    if name == "shapes":
        return _shapes(split, resolution, train_size, reference_size, seed)

    if root is None:
        raise UsageError(
            f"dataset {name!r} is read from files and no folder was given", "set data.root to its folder"
        )
    if not Path(root).is_dir():
        raise UsageError(
            f"data folder {root} does not exist", f"set data.root to the folder of the {name} files"
        )
    if name == "cifar10":
        return _cifar10(root, split, resolution, train_size, reference_size, seed)

    if name == "mnist":
        images, labels = readers.read_mnist(root)
        images = readers.pad_mnist(images, resolution)
        num_classes = 10
    else:
        images, labels, classes = readers.read_folder(root, resolution)
        num_classes = len(classes)
    train, reference = readers.split_indices(
        len(images), train_size, reference_size, seed, f"{name} folder {root}"
    )
    keep = train if split == "train" else reference
    return _labelled(images[keep], None if labels is None else labels[keep], num_classes)


def _labelled(images: torch.Tensor, labels: torch.Tensor | None, num_classes: int) -> ImageSet:
    """A real-data set: its one factor is the class."""
    if labels is None:
        return ImageSet(images, None, 0)
    return ImageSet(images, labels, num_classes, {"class": labels}, {"class": num_classes})


def _shapes(split: str, resolution: int, train_size: int, reference_size: int, seed: int) -> ImageSet:
    if resolution < 16 or resolution & (resolution - 1):
        raise UsageError(
            f"shapes need a power-of-two resolution of at least 16, got {resolution}", "use 16, 32 or 64"
        )
    size = train_size if split == "train" else reference_size
    if size <= 0:
        raise UsageError(f"data.{split}_size must be positive for shapes, got {size}")
    start = 0 if split == "train" else SHAPES_REFERENCE_START
    images, coarse, fine = shapes.generate(torch.arange(start, start + size), resolution, seed)
    return ImageSet(
        images,
        coarse * shapes.NUM_FINE + fine,
        shapes.NUM_COARSE * shapes.NUM_FINE,
        {"coarse": coarse, "fine": fine},
        {"coarse": shapes.NUM_COARSE, "fine": shapes.NUM_FINE},
    )


def _cifar10(
    root: str, split: str, resolution: int, train_size: int, reference_size: int, seed: int
) -> ImageSet:
    images, labels = readers.read_cifar10(root, "train" if split == "train" else "test")
    size = train_size if split == "train" else reference_size
    if split == "reference" and len(images) < size:
        raise UsageError(
            f"CIFAR-10 test_batch in {root} has {len(images)} images, fewer than data.reference_size={size}",
            f"set data.reference_size to at most {len(images)}",
        )
    if 0 < size < len(images):  # a seeded random subset, not simply the first images of the files
        keep = torch.randperm(len(images), generator=generator(derive_seed("cifar10", split, seed)))
        images, labels = images[keep[:size]], labels[keep[:size]]
    return _labelled(readers.resize(images, resolution), labels, 10)
