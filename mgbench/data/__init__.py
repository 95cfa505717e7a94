"""Datasets: registered units (:mod:`.registry`; mgbench's own in :mod:`.catalog`: the embedded
multi-scale shapes of :mod:`.shapes` and real images on disk read by :mod:`.readers`).

Every dataset comes as an :class:`ImageSet` of uint8 images in two disjoint splits: "train", which
models learn from, and "reference", held out, which samples are scored against. Channels are kept
as stored: MNIST stays grey (C = 1, the metrics tile it to RGB), the other sets are RGB.
"""

from __future__ import annotations

from mgbench.data import readers, shapes
from mgbench.data.batches import BatchSampler
from mgbench.data.images import ImageSet, to_float, to_uint8
from mgbench.data.registry import SPLITS, Dataset, LoadRequest, get_dataset, list_datasets, register_dataset
from mgbench.errors import UsageError, unknown_name

__all__ = ["SPLITS", "BatchSampler", "Dataset", "ImageSet", "LoadRequest", "get_dataset", "list_datasets",
           "load_dataset", "readers", "register_dataset", "shapes", "to_float", "to_uint8"]


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
    """One split ("train" or "reference") of the registered dataset ``name`` at ``resolution`` px."""
    dataset = get_dataset(name)
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS)
    if resolution <= 0:
        raise UsageError(f"data.resolution must be positive, got {resolution}")
    images = dataset.load(LoadRequest(split, resolution, root, train_size, reference_size, seed))
    if not isinstance(images, ImageSet):
        raise UsageError(f"dataset {name!r} returned {type(images).__name__}, not an mgbench ImageSet",
                         "make its load() return mgbench.data.ImageSet(images, labels, num_classes, ...)")
    return images
