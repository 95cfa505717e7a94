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


def _randn(g: torch.Generator, *shape: int, std: float = 0.02) -> torch.Tensor:
    return torch.randn(shape, generator=g) * std


def _layer_norm(g: torch.Generator, prefix: str, dim: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": 1 + _randn(g, dim, std=0.1), f"{prefix}.bias": _randn(g, dim, std=0.1)}


def random_dinov2_state(
    embed_dim: int, depth: int, *, grid: int = 37, patch: int = 14, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Meta's DINOv2 checkpoint layout (``dinov2_vit*14_pretrain.pth``, the hub model built with
    ``block_chunks=0``): positional embeddings for a ``grid``×``grid`` patch grid (37 = 518 px),
    LayerScale ``ls1``/``ls2``, an MLP of width 4·D, and the ``mask_token`` the hub keeps.
    Checked once against the hub code (facebookresearch/dinov2, vits14): same keys and shapes."""
    g = torch.Generator().manual_seed(seed)
    d, hidden = embed_dim, 4 * embed_dim
    state = {
        "cls_token": _randn(g, 1, 1, d, std=1.0),
        "pos_embed": _randn(g, 1, 1 + grid * grid, d, std=0.5),
        "mask_token": torch.zeros(1, d),
        "patch_embed.proj.weight": _randn(g, d, 3, patch, patch, std=(1 / (3 * patch * patch)) ** 0.5),
        "patch_embed.proj.bias": _randn(g, d),
        **_layer_norm(g, "norm", d),
    }
    for i in range(depth):
        b = f"blocks.{i}"
        state.update(_layer_norm(g, f"{b}.norm1", d))
        state.update(_layer_norm(g, f"{b}.norm2", d))
        state[f"{b}.attn.qkv.weight"] = _randn(g, 3 * d, d, std=d**-0.5)
        state[f"{b}.attn.qkv.bias"] = _randn(g, 3 * d)
        state[f"{b}.attn.proj.weight"] = _randn(g, d, d, std=d**-0.5)
        state[f"{b}.attn.proj.bias"] = _randn(g, d)
        state[f"{b}.ls1.gamma"] = 0.5 + _randn(g, d, std=0.1)
        state[f"{b}.mlp.fc1.weight"] = _randn(g, hidden, d, std=d**-0.5)
        state[f"{b}.mlp.fc1.bias"] = _randn(g, hidden)
        state[f"{b}.mlp.fc2.weight"] = _randn(g, d, hidden, std=hidden**-0.5)
        state[f"{b}.mlp.fc2.bias"] = _randn(g, d)
        state[f"{b}.ls2.gamma"] = 0.5 + _randn(g, d, std=0.1)
    return state


def random_openai_clip_state(
    width: int, depth: int, embed_dim: int, *, grid: int, patch: int = 14, seed: int = 0
) -> dict[str, torch.Tensor]:
    """OpenAI's CLIP state-dict layout (also open_clip's ``open_clip_pytorch_model.bin``): the image
    tower under ``visual.`` (conv1 without bias, class and positional embeddings, ln_pre, resblocks
    with a packed ``in_proj`` attention and ``c_fc``/``c_proj`` MLP, ln_post, ``proj``), plus a few
    text-tower tensors that an image extractor must ignore. Checked against open_clip's
    VisionTransformer by tests/test_encoders.py when open_clip is installed."""
    g = torch.Generator().manual_seed(seed)
    w, hidden = width, 4 * width
    v = "visual"
    state = {
        f"{v}.class_embedding": _randn(g, w, std=w**-0.5),
        f"{v}.positional_embedding": _randn(g, 1 + grid * grid, w, std=w**-0.5),
        f"{v}.conv1.weight": _randn(g, w, 3, patch, patch, std=(1 / (3 * patch * patch)) ** 0.5),
        f"{v}.proj": _randn(g, w, embed_dim, std=w**-0.5),
        **_layer_norm(g, f"{v}.ln_pre", w),
        **_layer_norm(g, f"{v}.ln_post", w),
        # text tower (a few of its tensors): not part of the image embedding
        "logit_scale": torch.tensor(4.6052),
        "text_projection": _randn(g, w, embed_dim),
        **_layer_norm(g, "ln_final", w),
    }
    for i in range(depth):
        b = f"{v}.transformer.resblocks.{i}"
        state.update(_layer_norm(g, f"{b}.ln_1", w))
        state.update(_layer_norm(g, f"{b}.ln_2", w))
        state[f"{b}.attn.in_proj_weight"] = _randn(g, 3 * w, w, std=w**-0.5)
        state[f"{b}.attn.in_proj_bias"] = _randn(g, 3 * w)
        state[f"{b}.attn.out_proj.weight"] = _randn(g, w, w, std=w**-0.5)
        state[f"{b}.attn.out_proj.bias"] = _randn(g, w)
        state[f"{b}.mlp.c_fc.weight"] = _randn(g, hidden, w, std=w**-0.5)
        state[f"{b}.mlp.c_fc.bias"] = _randn(g, hidden)
        state[f"{b}.mlp.c_proj.weight"] = _randn(g, w, hidden, std=hidden**-0.5)
        state[f"{b}.mlp.c_proj.bias"] = _randn(g, w)
    return state
