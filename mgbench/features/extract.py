"""ONE feature pass over a set of images, feeding every metric; reference features are cached.

Both extractors (:class:`~mgbench.features.inception.InceptionExtractor` and
:class:`~mgbench.features.domain.DomainExtractor`) follow :class:`Extractor` and name their
features alike: ``pool`` (the embedding for FID, KID, precision/recall, density/coverage) and
``logits`` (class logits for IS), plus ``logits_<head>`` for each head of the domain classifier.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

import torch

from mgbench.cache import cache_root, cached
from mgbench.errors import UsageError

# Bump when the way features are computed changes: invalidates cached ones. 2: Inception's fast
# pass (folded BatchNorm, channels-last, matrix resize), equal to the old one up to float32 rounding.
FEATURES_VERSION = 2
DEFAULT_BATCH = 200  # images per call for an extractor that names no ``batch_size`` of its own


class Extractor(Protocol):
    name: str  # e.g. "inception-v3-compat", "domain-<hash>"
    weights_sha256: str  # content hash of the weights: part of every cache key
    feature_names: tuple[str, ...]  # order of the tuple __call__ returns
    device: torch.device
    # Optional: ``batch_size`` (int), the images per call the extractor runs fastest with.

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """uint8 B×3×H×W on ``device`` → one B×D tensor per name in ``feature_names``."""
        ...


def to_rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    """Check a uint8 N×C×H×W batch and tile grey (C=1) to 3 channels."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"images must be a uint8 tensor N×C×H×W, got {got}")
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] != 3:
        raise UsageError(f"images must have 1 or 3 channels, got {images.shape[1]}")
    return images


def extract_features(
    extractor: Extractor, images: torch.Tensor, batch_size: int | None = None
) -> dict[str, torch.Tensor]:
    """Every feature ``extractor`` provides for ``images`` (uint8 N×C×H×W), as float64 on the CPU.

    ``batch_size``: images per call; None takes the extractor's own ``batch_size`` (Inception:
    32 on the CPU, 200 on a GPU; the ViTs 16) or 200. Features do not depend on it beyond float rounding.
    """
    images = to_rgb_uint8(images)
    if len(images) == 0:
        raise UsageError("no images to extract features from")
    if batch_size is None:
        batch_size = int(getattr(extractor, "batch_size", DEFAULT_BATCH))
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in extractor.feature_names}
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(extractor.device)
            for name, value in zip(extractor.feature_names, extractor(batch), strict=True):
                parts[name].append(value.to("cpu", torch.float64))
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def images_sha256(images: torch.Tensor) -> str:
    """Content hash of a uint8 image tensor (shape included)."""
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def reference_features(
    extractor: Extractor,
    images: torch.Tensor,
    *,
    dataset: dict[str, Any],
    split: str,
    cache_dir: str | Path | None = None,
    batch_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`extract_features` of a real split, cached on disk.

    The key holds the dataset spec (``dataset``: name, resolution, sizes, seed, ...), the split,
    the extractor's name and weight hash, and a hash of the images themselves, so a change of
    any of them (or of the data generator) computes the features afresh.
    """
    key_parts = {
        "kind": "features",
        "version": FEATURES_VERSION,
        "dataset": dataset,
        "split": split,
        "extractor": extractor.name,
        "weights_sha256": extractor.weights_sha256,
        "images_sha256": images_sha256(images),
    }
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "features"
    return cached(
        key_parts, lambda: extract_features(extractor, images, batch_size), folder, label="reference features"
    )
