"""DINOv2 features for FD_DINOv2, as dgm-eval computes them.

Stein et al., NeurIPS 2023 ("Exposing flaws of generative model evaluation metrics and their
unfair treatment of diffusion models", §4 and their code layer6ai-labs/dgm-eval) find that
Inception features misjudge modern generative models and recommend the Fréchet distance on
DINOv2 ViT-L/14 features (Oquab et al., TMLR 2024, "DINOv2: Learning Robust Visual Features
without Supervision"). FD_DINOv2 is the Fréchet distance of :mod:`mgbench.metrics.frechet`
(``frechet_distance(*feature_statistics(a), *feature_statistics(b))``) on the ``pool`` features
of this extractor.

Matched to dgm-eval's ``models/dinov2.py`` (its default, ``clean_resize=False``):

* the image (RGB; grey tiled) resized to 224×224 with PIL's bicubic filter (torchvision
  ``Resize((224, 224), BICUBIC)`` on a PIL image: no crop, the aspect ratio is not kept),
  rounded to uint8, then ``ToTensor`` and ``Normalize`` with the ImageNet mean and std;
* the network ``torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')``, whose forward
  returns the CLS token after the final LayerNorm (``x_norm_clstoken``; its head is the
  identity): 1024 numbers for ViT-L/14. Here it is timm's ``vit_large_patch14_dinov2``
  (the ``.lvd142m`` layout, no classifier), whose ``forward`` gives the same token;
* positional embeddings: the checkpoint's are for 518 px (37×37 patches). The hub model
  resamples them to the 16×16 grid of a 224 px input at every call, bicubic, without
  antialiasing, with scale factor (16 + 0.1)/37 (its ``interpolate_offset``); timm would
  resample differently (antialiased, to the exact size), so :func:`resample_pos_embed`
  does it the hub's way, once, at load time.

Weights: Meta's file ``dinov2_vitl14_pretrain.pth`` (a plain state dict), at
``$TORCH_HOME/hub/checkpoints/``, where ``torch.hub`` (and so dgm-eval) keeps it, or any path
given; timm's ``model.safetensors`` of ``timm/vit_large_patch14_dinov2.lvd142m`` works too
(another file, so another name: the name holds the file's hash).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mgbench.errors import unknown_name
from mgbench.features import vit
from mgbench.features.extract import to_rgb_uint8
from mgbench.features.weights import file_sha256

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # dgm-eval's models/dinov2.py
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATE_OFFSET = 0.1  # dinov2 hub models: interpolate_offset=0.1, interpolate_antialias=False


@dataclasses.dataclass(frozen=True)
class DinoVariant:
    """One DINOv2 network: the timm architecture and the Meta weight file it reads."""

    key: str  # part of the extractor's name: "vitl14"
    timm_model: str
    image_size: int = 224  # dgm-eval resizes every image to 224×224
    timm_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # overrides (tests: smaller nets)

    @property
    def weights_file(self) -> str:
        return f"dinov2_{self.key}_pretrain.pth"

    @property
    def source(self) -> str:
        return f"download https://dl.fbaipublicfiles.com/dinov2/dinov2_{self.key}/{self.weights_file}"


VARIANTS = {
    v.key: v
    for v in (
        DinoVariant("vits14", "vit_small_patch14_dinov2"),  # 384-d, 21 M parameters
        DinoVariant("vitb14", "vit_base_patch14_dinov2"),  # 768-d, 86 M
        DinoVariant("vitl14", "vit_large_patch14_dinov2"),  # 1024-d, 304 M: the paper's
    )
}
DEFAULT_VARIANT = "vitl14"


def resample_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """1×(1+M²)×D positional embeddings → 1×(1+grid²)×D as the DINOv2 hub model does it
    (``DinoVisionTransformer.interpolate_pos_encoding``): bicubic, no antialiasing, scale factor
    (grid + 0.1)/M, in float32; the CLS position is kept."""
    n = pos_embed.shape[1] - 1
    m = math.isqrt(n)
    if m * m != n:
        raise ValueError(f"positional embeddings of {n} patches are not a square grid")
    if m == grid:
        return pos_embed
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:].float()
    scale = (grid + INTERPOLATE_OFFSET) / m
    patch_pos = F.interpolate(
        patch_pos.reshape(1, m, m, -1).permute(0, 3, 1, 2), scale_factor=(scale, scale), mode="bicubic", antialias=False
    )
    assert patch_pos.shape[-2:] == (grid, grid), patch_pos.shape
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
    return torch.cat([cls_pos, patch_pos.to(pos_embed.dtype)], dim=1)


def find_dinov2_weights(path: str | Path | None = None, variant: str | DinoVariant = DEFAULT_VARIANT) -> Path:
    """The weight file of ``variant``: ``path`` (a file or a folder) or ``$TORCH_HOME/hub/checkpoints``."""
    v = _variant(variant)
    return vit.find_weights(path, v.weights_file, f"DINOv2 {v.key}", v.source)


def _variant(variant: str | DinoVariant) -> DinoVariant:
    if isinstance(variant, DinoVariant):
        return variant
    if variant not in VARIANTS:
        raise unknown_name("DINOv2 variant", variant, list(VARIANTS))
    return VARIANTS[variant]


class DINOv2Extractor:
    """The mgbench :class:`~mgbench.features.extract.Extractor` over DINOv2 (timm, local weights).

    Feature ``pool``: the CLS token after the final LayerNorm, B×D (D = 1024 for ViT-L/14,
    384 for ViT-S/14), float32 on ``device``. Name: ``dinov2-<variant>-<first 8 hex of the
    weight file's SHA-256>``.
    """

    feature_names = ("pool",)
    batch_size = 16  # a ViT-L pass holds its activations per image: small batches on a CPU

    def __init__(
        self,
        weights: str | Path | None = None,
        variant: str | DinoVariant = DEFAULT_VARIANT,
        device: torch.device | str = "cpu",
    ) -> None:
        self.variant = _variant(variant)
        path = find_dinov2_weights(weights, self.variant)
        timm = vit.import_timm()
        from timm.models.vision_transformer import checkpoint_filter_fn

        state = vit.load_weights(path)
        self.weights_path = path
        self.weights_sha256 = file_sha256(path)
        self.name = f"dinov2-{self.variant.key}-{self.weights_sha256[:8]}"
        self.device = torch.device(device)

        def make() -> torch.nn.Module:
            # num_classes=0: no head, forward() returns the pooled CLS token; pretrained=False: no download.
            kwargs = {"img_size": self.variant.image_size, "num_classes": 0, **self.variant.timm_kwargs}
            return timm.create_model(self.variant.timm_model, pretrained=False, **kwargs)

        model = vit.on_meta(make)
        if "pos_embed" in state:
            state["pos_embed"] = resample_pos_embed(state["pos_embed"], model.patch_embed.grid_size[0])
        # timm's own conversion of Meta's layout (drops mask_token; renames SwiGLU weights).
        state = checkpoint_filter_fn(state, model)
        self.model = vit.assign_weights(model, state, f"DINOv2 {self.variant.key}").to(self.device)
        self.dim = self.model.num_features

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 B×C×H×W → the network's float32 input B×3×224×224 (dgm-eval's transform)."""
        images = to_rgb_uint8(images).to(self.device)
        return vit.normalise(vit.resize_uint8(images, self.variant.image_size), IMAGENET_MEAN, IMAGENET_STD)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """uint8 B×3×H×W → (pool B×D,), the CLS token after the final norm."""
        with torch.inference_mode():
            return (self.model(self.preprocess(images)),)
