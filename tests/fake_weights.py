"""Weight files in the right layout with random values: the offline stand-ins for downloads."""

from __future__ import annotations

import io
from pathlib import Path

import torch


def random_inception_state() -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception-v3 layout (built with loading disabled), random values."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    original = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state, strict=True: None
    try:
        empty = io.BytesIO()
        torch.save({}, empty)
        empty.seek(0)
        layout = FeatureExtractorInceptionV3("x", ["2048"], feature_extractor_weights_path=empty).state_dict()
    finally:
        FeatureExtractorInceptionV3.load_state_dict = original
    # He-scaled weights and unit BatchNorm, so activations keep their scale through all 94
    # layers and the features vary between images (with N(0, 0.05²) everywhere they came out
    # the same for every image: FID 0 against anything).
    g = torch.Generator().manual_seed(0)
    state = {}
    for name, t in layout.items():
        if not t.is_floating_point():
            state[name] = t.clone()
        elif name.endswith("running_var") or name.endswith("bn.weight"):
            state[name] = torch.ones(t.shape)
        elif t.dim() >= 2:  # conv and fc weights
            state[name] = torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5
        else:  # biases and running means
            state[name] = torch.randn(t.shape, generator=g) * 0.05
    assert len(state) > 400  # the whole network, not a stub
    return state


def write_inception_weights(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_inception_state(), path)
    return path
