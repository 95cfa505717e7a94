"""CLIP image embeddings for CMMD, as google-research's ``cmmd`` computes them.

Jayasumana et al., CVPR 2024 ("Rethinking FID: Towards a Better Evaluation Metric for Image
Generation", §4) define CMMD as the MMD between CLIP embeddings (Radford et al., ICML 2021) of
real and generated images, with OpenAI's ViT-L/14 at 336 px; the distance is
:func:`mgbench.metrics.cmmd.cmmd` on the ``pool`` features of this extractor.

Matched to google-research ``cmmd/io_util.py`` and ``cmmd/embedding.py`` (scenic's CLIP):

* the image (RGB; grey tiled) centre-cropped to a square of its shorter side (offsets
  ``(h − l)//2``, ``(w − l)//2``), resized to 336×336 with PIL's bicubic filter and kept as
  uint8 values, then ÷255 (their second, JAX bicubic resize is from 336 to 336: the identity),
  then normalised with CLIP's mean and std (``clip.normalize_image``);
* the image tower: patch embedding, class token, positional embedding, ``ln_pre``, 24 blocks
  with QuickGELU, ``ln_post`` on the class token, the projection ``proj`` to 768 numbers;
* ``encode_image(normalize=True)``: the embedding divided by its L2 norm.

The network is timm's ``vit_large_patch14_clip_quickgelu_336``: the image tower only (304 M
parameters; open_clip would build the text tower too, 124 M more), the same timm ViT and
weight conversion as the DINOv2 extractor, one dependency fewer. QuickGELU matters: OpenAI's
CLIP was trained with it, and timm's ``vit_large_patch14_clip_336`` (plain GELU) or open_clip's
``ViT-L-14-336`` config without ``quick_gelu`` give other embeddings with the same file.

Weights: OpenAI's original ``ViT-L-14-336px.pt`` is a TorchScript archive and cannot be read
without running its code, so it is refused. Use the same weights from the Hugging Face
repository ``timm/vit_large_patch14_clip_336.openai``: ``model.safetensors`` (timm's image
tower; the default place is ``$TORCH_HOME/hub/checkpoints/vit_large_patch14_clip_336.openai.safetensors``)
or ``open_clip_pytorch_model.bin`` (the whole CLIP in OpenAI's layout, a plain torch file; the
text tower is ignored), passed with ``--weights``. The file's format is read from its content;
timm's ``checkpoint_filter_fn`` converts either layout.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mgbench.errors import unknown_name
from mgbench.features import vit
from mgbench.features.extract import to_rgb_uint8
from mgbench.features.weights import file_sha256

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # scenic clip/model.py IMAGE_MEAN (OpenAI's)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class ClipVariant:
    """One CLIP image tower: the timm architecture, its input size and embedding width, its file."""

    key: str  # part of the extractor's name: "vitl14-336"
    timm_model: str
    image_size: int
    embed_dim: int  # width of the projected embedding
    weights_file: str
    hf_repo: str  # where the weights are published as plain tensors
    timm_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # overrides (tests: smaller nets)

    @property
    def source(self) -> str:
        return (
            f"download model.safetensors from the Hugging Face repository {self.hf_repo} "
            "(its open_clip_pytorch_model.bin works too, passed with --weights)"
        )


VARIANTS = {
    v.key: v
    for v in (
        ClipVariant(
            "vitl14-336",
            "vit_large_patch14_clip_quickgelu_336",
            image_size=336,
            embed_dim=768,
            weights_file="vit_large_patch14_clip_336.openai.safetensors",
            hf_repo="timm/vit_large_patch14_clip_336.openai",
        ),
    )
}
DEFAULT_VARIANT = "vitl14-336"


def _variant(variant: str | ClipVariant) -> ClipVariant:
    if isinstance(variant, ClipVariant):
        return variant
    if variant not in VARIANTS:
        raise unknown_name("CLIP variant", variant, list(VARIANTS))
    return VARIANTS[variant]


def find_clip_weights(path: str | Path | None = None, variant: str | ClipVariant = DEFAULT_VARIANT) -> Path:
    """The weight file of ``variant``: ``path`` (a file or a folder) or ``$TORCH_HOME/hub/checkpoints``."""
    v = _variant(variant)
    return vit.find_weights(path, v.weights_file, f"CLIP {v.key}", v.source)


def centre_crop_square(images: torch.Tensor) -> torch.Tensor:
    """B×C×H×W → B×C×l×l with l = min(H, W), offsets as in cmmd's ``_center_crop_and_resize``."""
    h, w = images.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return images[..., top : top + side, left : left + side]


class CLIPExtractor:
    """The mgbench :class:`~mgbench.features.extract.Extractor` over a CLIP image tower.

    Feature ``pool``: the L2-normalised projected image embedding, B×768 for ViT-L/14@336,
    float32 on ``device``. Name: ``clip-<variant>-<first 8 hex of the weight file's SHA-256>``.
    """

    feature_names = ("pool",)
    batch_size = 16  # a ViT-L pass holds its activations per image: small batches on a CPU

    def __init__(
        self,
        weights: str | Path | None = None,
        variant: str | ClipVariant = DEFAULT_VARIANT,
        device: torch.device | str = "cpu",
    ) -> None:
        self.variant = _variant(variant)
        path = find_clip_weights(weights, self.variant)
        timm = vit.import_timm()
        from timm.models.vision_transformer import checkpoint_filter_fn

        state = vit.load_weights(path)
        self.weights_path = path
        self.weights_sha256 = file_sha256(path)
        self.name = f"clip-{self.variant.key}-{self.weights_sha256[:8]}"
        self.device = torch.device(device)

        def make() -> torch.nn.Module:
            # The head is CLIP's projection (no bias in CLIP: timm's conversion adds zeros).
            kwargs = {
                "img_size": self.variant.image_size,
                "num_classes": self.variant.embed_dim,
                **self.variant.timm_kwargs,
            }
            return timm.create_model(self.variant.timm_model, pretrained=False, **kwargs)

        model = vit.on_meta(make)
        state = checkpoint_filter_fn(state, model)  # OpenAI / open_clip layout → timm's; timm's own passes
        self.model = vit.assign_weights(model, state, f"CLIP {self.variant.key}").to(self.device)
        self.dim = self.variant.embed_dim

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 B×C×H×W → the tower's float32 input B×3×S×S (S = 336 for ViT-L/14@336)."""
        images = centre_crop_square(to_rgb_uint8(images).to(self.device))
        return vit.normalise(vit.resize_uint8(images, self.variant.image_size), CLIP_MEAN, CLIP_STD)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """uint8 B×3×H×W → (pool B×embed_dim,), unit L2 norm per row."""
        with torch.inference_mode():
            return (F.normalize(self.model(self.preprocess(images)), dim=-1),)
