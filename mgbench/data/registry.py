"""The dataset registry: one name → one :class:`Dataset`, a registered unit like the models
and metrics (entry-point group ``mgbench.datasets``; mgbench's own in
:mod:`mgbench.data.catalog`), or :func:`register_dataset` in a ``--plugin`` module.

A dataset declares what the harness needs to know: how to load a split as an
:class:`~mgbench.data.images.ImageSet`, whether it is read from files (``data.root``), and the
factors its images are labelled with (the heads of the domain classifier and of the per-scale
mode counts), so the harness never names a dataset's factors itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mgbench.errors import UsageError
from mgbench.plugins import Registry, origin

if TYPE_CHECKING:
    from mgbench.data.images import ImageSet

ENTRY_POINT_GROUP = "mgbench.datasets"
SPLITS: tuple[str, ...] = ("train", "reference")


@dataclass(frozen=True)
class LoadRequest:
    """What a dataset is asked for: one split at one resolution (the fields of ``[data]``)."""

    split: str
    resolution: int
    root: str | None = None
    train_size: int = 20_000
    reference_size: int = 2_000
    seed: int = 0


@dataclass(frozen=True)
class Dataset:
    """``load(request) -> ImageSet``; ``factors``: the label heads, e.g. ("coarse", "fine"), or
    () when unlabelled; ``needs_root``: read from files in ``data.root``."""

    name: str
    load: Callable[[LoadRequest], ImageSet]
    description: str = ""
    factors: tuple[str, ...] = ()
    needs_root: bool = False


def _check(name: str, unit: object) -> None:
    if not isinstance(unit, Dataset):
        raise UsageError(f"dataset {name!r}: {origin(unit)} is not an mgbench Dataset",
                         "build it with mgbench.data.registry.Dataset(name, load, ...)")
    if unit.name != name:
        raise UsageError(f"dataset registered as {name!r} calls itself {unit.name!r}",
                         "use the same name in the entry point and in the Dataset")


DATASETS: Registry[Dataset] = Registry("dataset", ENTRY_POINT_GROUP, _check)


def register_dataset(dataset: Dataset) -> Dataset:
    """Register ``dataset`` under its name (for a ``--plugin`` module)."""
    DATASETS.add(dataset.name, dataset)
    return dataset


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


def get_dataset(name: str) -> Dataset:
    return DATASETS.get(name)
