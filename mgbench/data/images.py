"""The images every dataset comes as: an :class:`ImageSet` of uint8 images with its labels and
factors, and the conversions between uint8 images and the models' [-1, 1] floats."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mgbench.contract import DataSpec


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value; sets compare by identity
class ImageSet:
    """Images with their labels and named label heads ("factors") for per-scale scoring."""

    images: torch.Tensor  # uint8 N×C×H×W, C = 1 or 3
    labels: torch.Tensor | None  # int64 N: the class a conditional model is given; None if unlabelled
    num_classes: int  # 0 if unlabelled
    factors: dict[str, torch.Tensor] = field(default_factory=dict)  # name → int64 N
    factor_classes: dict[str, int] = field(default_factory=dict)  # name → number of classes
    # The factors whose combination is the class label, most significant first: shapes'
    # ("coarse", "fine") give y = c·F + f; a labelled real dataset's ("class",) is the label.
    label_heads: tuple[str, ...] = ()

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
        if not set(self.label_heads) <= set(self.factors):
            raise ValueError(f"label_heads {self.label_heads} must be factors ({sorted(self.factors)})")

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
