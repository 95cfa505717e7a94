"""The standard Inception-v3 feature extractor of FID/IS papers, loaded without unpickling code.

This is torch-fidelity's ``inception-v3-compat`` (a port of the TensorFlow graph
``pt_inception-2015-12-05`` used by Heusel et al. 2017 for FID and Salimans et al. 2016 for IS),
so the numbers are comparable with published ones. torch-fidelity itself reads the weight file
with ``torch.load(..., weights_only=False)``; here the file is read with ``weights_only=True``
first and torch-fidelity only ever sees an in-memory copy made of plain tensors.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

from mgbench.errors import UsageError
from mgbench.features.weights import file_sha256, safe_load_state_dict

log = logging.getLogger(__name__)

NAME = "inception-v3-compat"
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = URL_INCEPTION_V3
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch.hub convention: the file name holds its hash prefix
# torch-fidelity feature name → mgbench feature name (the same names the domain extractor uses)
FEATURES = {"2048": "pool", "logits_unbiased": "logits"}


def weights_dir() -> Path:
    """Where torch.hub (and so torch-fidelity) looks: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_inception_weights(path: str | Path | None = None) -> Path:
    """The Inception weight file: ``path`` (a file, or a folder holding it) or the torch.hub folder.

    Raises :class:`UsageError` when it is missing, with where to get it and the offline
    alternative, so that a run fails before any training.
    """
    if path is None:
        candidate = weights_dir() / WEIGHTS_FILE
    else:
        candidate = Path(path).expanduser()
        if candidate.is_dir():
            candidate = candidate / WEIGHTS_FILE
    if candidate.is_file():
        return candidate
    folder = candidate.parent
    raise UsageError(
        f"Inception-v3 weights {WEIGHTS_FILE!r} not found at {str(candidate)!r}",
        f"download {WEIGHTS_URL} into the folder {str(folder)!r} (or pass --weights PATH), "
        "or run offline with --feature-extractor domain",
    )


def _as_buffer(state: dict[str, torch.Tensor]) -> io.BytesIO:
    """An in-memory torch file holding only ``state``'s tensors: safe for any ``torch.load``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


class SafeInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3 whose weight file is read with ``weights_only=True``.

    Registered with torch-fidelity as ``mgbench-inception-v3-compat`` by
    :func:`register_with_torch_fidelity`; it accepts the same arguments as the original.
    """

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path=None, **kwargs):
        state = safe_load_state_dict(find_inception_weights(feature_extractor_weights_path))
        super().__init__(name, features_list, feature_extractor_weights_path=_as_buffer(state), **kwargs)


class InceptionExtractor:
    """The mgbench :class:`~mgbench.features.extract.Extractor` over Inception-v3.

    Features: ``pool`` (torch-fidelity's "2048", the pool3 embedding for FID/KID/PR) and
    ``logits`` (its "logits_unbiased", 1008 classes, for IS as torch-fidelity computes it).
    """

    name = NAME
    feature_names = tuple(FEATURES.values())

    def __init__(self, weights: str | Path | None = None, device: torch.device | str = "cpu") -> None:
        path = find_inception_weights(weights)
        state = safe_load_state_dict(path, where=str(weights_dir() / WEIGHTS_FILE))
        self.weights_path = path
        self.weights_sha256 = file_sha256(path)
        if not self.weights_sha256.startswith(WEIGHTS_SHA256_PREFIX):
            log.warning(
                "Inception weights %s have SHA-256 %s, not the published file (%s...): "
                "scores will not be comparable with papers",
                path,
                self.weights_sha256,
                WEIGHTS_SHA256_PREFIX,
            )
        self.device = torch.device(device)
        # features_list order fixes the order of the returned tuple.
        self.module = FeatureExtractorInceptionV3(
            NAME, list(FEATURES), feature_extractor_weights_path=_as_buffer(state)
        ).to(self.device)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """uint8 B×3×H×W → (pool B×2048, logits B×1008), float32 on the extractor's device."""
        return self.module(images.to(self.device))


def register_with_torch_fidelity() -> str:
    """Register :class:`SafeInceptionV3` with torch-fidelity (idempotent); returns its name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    name = "mgbench-" + NAME
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, SafeInceptionV3)
    return name
