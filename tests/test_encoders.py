"""DINOv2 and CLIP extractors, end to end on random weights in the published layouts, offline.

Each network is checked against its reference written out here from the authors' code (Meta's
DINOv2 hub model; OpenAI's CLIP VisionTransformer), not against timm; the preprocessing against
PIL, the resizer of both reference pipelines; and nothing may touch the network.
"""

from __future__ import annotations

import math
import socket
import sys
import types

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from fake_weights import random_dinov2_state, random_openai_clip_state
from test_features import write_payload

from mgbench.errors import UsageError
from mgbench.features import clip, dinov2, vit
from mgbench.features.extract import extract_features
from mgbench.features.weights import file_sha256


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks on a loaded 2-core machine: one intra-op thread (see test_features.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class NetworkAttempt(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Offline as a user's machine may be: the hub told so, and any socket use fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise NetworkAttempt(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_the_network_guard_is_live():
    with pytest.raises(NetworkAttempt):
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(NetworkAttempt):
        socket.socket().connect(("127.0.0.1", 9))


def images(n: int, h: int = 32, w: int = 32, c: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=g)


def pil_resize(image: torch.Tensor, size: int) -> np.ndarray:
    """PIL's bicubic resize of one uint8 3×H×W image, as dgm-eval and cmmd call it."""
    pil = PIL.Image.fromarray(image.permute(1, 2, 0).numpy())
    return np.asarray(pil.resize((size, size), resample=PIL.Image.BICUBIC))


# --- preprocessing --------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [(32, 224), (28, 224), (64, 336), (512, 224), (300, 336)])
def test_resize_is_pils_bicubic_within_two_levels(src, dst):
    x = images(2, src, src, seed=src)  # noise: the hardest case for two resamplers to agree on
    ours = vit.resize_uint8(x, dst)
    assert ours.dtype == torch.uint8 and ours.shape == (2, 3, dst, dst)
    diff = np.stack([ours[i].permute(1, 2, 0).numpy().astype(int) - pil_resize(x[i], dst) for i in range(2)])
    assert np.abs(diff).max() <= 2
    assert (diff != 0).mean() < 0.02  # measured ≤ 0.9 %


def test_clip_preprocessing_is_cmmds_crop_resize_and_normalise():
    x = images(1, 40, 52, seed=3)  # landscape: cropped to the centre 40×40
    variant = clip.ClipVariant("t", "vit_large_patch14_clip_quickgelu_336", 56, 8, "w", "r")
    ours = clip.centre_crop_square(x)
    # cmmd io_util._center_crop_and_resize, on a PIL image
    pil = PIL.Image.fromarray(x[0].permute(1, 2, 0).numpy())
    w, h = pil.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    ref_crop = np.asarray(pil.crop((left, top, left + side, top + side)))
    np.testing.assert_array_equal(ours[0].permute(1, 2, 0).numpy(), ref_crop)
    ref = (pil_resize(torch.from_numpy(ref_crop.copy()).permute(2, 0, 1), 56) / 255.0 - clip.CLIP_MEAN) / clip.CLIP_STD
    net_input = vit.normalise(vit.resize_uint8(ours, variant.image_size), clip.CLIP_MEAN, clip.CLIP_STD)
    got = net_input[0].permute(1, 2, 0).numpy()
    assert np.abs(got - ref).max() <= 2.01 / 255 / min(clip.CLIP_STD)


def test_dinov2_pos_embed_resampling_is_the_hubs_bicubic_with_offset():
    """Against bicubic resampling written out (PyTorch's cubic, a = −0.75, half-pixel centres,
    edge clamp) with the hub's scale factor (grid + 0.1)/M as the coordinate scale."""
    m, grid, d = 7, 3, 2
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(1, 1 + m * m, d, generator=g)
    ours = dinov2.resample_pos_embed(pos, grid)
    assert ours.shape == (1, 1 + grid * grid, d) and torch.equal(ours[:, 0], pos[:, 0])

    def cubic(t: float, a: float = -0.75) -> float:
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0.0

    scale = (grid + 0.1) / m
    src = pos[0, 1:].reshape(m, m, d).double().numpy()

    def weights(out: int) -> list[tuple[int, float]]:
        centre = (out + 0.5) / scale - 0.5
        base = math.floor(centre)
        return [(min(max(base + k, 0), m - 1), cubic(centre - (base + k))) for k in range(-1, 3)]

    ref = np.zeros((grid, grid, d))
    for i in range(grid):
        for j in range(grid):
            for yi, wy in weights(i):
                for xj, wx in weights(j):
                    ref[i, j] += wy * wx * src[yi, xj]
    np.testing.assert_allclose(ours[0, 1:].reshape(grid, grid, d).numpy(), ref, rtol=1e-5, atol=1e-6)
    # the offset matters: resampling to the exact size gives other embeddings
    plain = F.interpolate(pos[0, 1:].reshape(1, m, m, d).permute(0, 3, 1, 2), size=(grid, grid), mode="bicubic")
    assert not torch.allclose(plain.permute(0, 2, 3, 1).reshape(1, -1, d), ours[:, 1:], atol=1e-3)


# --- DINOv2 ---------------------------------------------------------------------------------

VITS = dinov2.VARIANTS["vits14"]


def hub_dinov2_cls(state: dict[str, torch.Tensor], x: torch.Tensor, heads: int) -> torch.Tensor:
    """``DinoVisionTransformer.forward`` of facebookresearch/dinov2 (hub model, no registers),
    written out: patch embedding, CLS, positional embeddings resampled for this input, pre-norm
    blocks with LayerScale, final LayerNorm, CLS token."""
    d = state["cls_token"].shape[-1]
    tokens = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=14)
    tokens = tokens.flatten(2).transpose(1, 2)
    tokens = torch.cat([state["cls_token"].expand(len(x), -1, -1), tokens], dim=1)
    m, grid = math.isqrt(state["pos_embed"].shape[1] - 1), x.shape[-1] // 14
    patch_pos = F.interpolate(
        state["pos_embed"][:, 1:].reshape(1, m, m, d).permute(0, 3, 1, 2),
        scale_factor=((grid + 0.1) / m, (grid + 0.1) / m),
        mode="bicubic",
        antialias=False,
    )
    pos = torch.cat([state["pos_embed"][:, :1], patch_pos.permute(0, 2, 3, 1).reshape(1, -1, d)], dim=1)
    h = tokens + pos
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})

    def ln(t, p):
        return F.layer_norm(t, (d,), state[f"{p}.weight"], state[f"{p}.bias"], eps=1e-6)

    for i in range(depth):
        b = f"blocks.{i}"
        qkv = F.linear(ln(h, f"{b}.norm1"), state[f"{b}.attn.qkv.weight"], state[f"{b}.attn.qkv.bias"])
        q, k, v = qkv.reshape(len(x), -1, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        att = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(-1)
        a = (att @ v).transpose(1, 2).reshape(len(x), -1, d)
        h = h + state[f"{b}.ls1.gamma"] * F.linear(a, state[f"{b}.attn.proj.weight"], state[f"{b}.attn.proj.bias"])
        f = F.gelu(F.linear(ln(h, f"{b}.norm2"), state[f"{b}.mlp.fc1.weight"], state[f"{b}.mlp.fc1.bias"]))
        h = h + state[f"{b}.ls2.gamma"] * F.linear(f, state[f"{b}.mlp.fc2.weight"], state[f"{b}.mlp.fc2.bias"])
    return ln(h, "norm")[:, 0]


@pytest.fixture(scope="module")
def vits_state() -> dict[str, torch.Tensor]:
    return random_dinov2_state(384, 12)  # ViT-S/14: 384 wide, 12 blocks, 6 heads


def test_dinov2_vits14_end_to_end_matches_the_hub_formula(tmp_path, monkeypatch, vits_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tmp_path / "hub" / "checkpoints" / VITS.weights_file
    path.parent.mkdir(parents=True)
    torch.save(vits_state, path)

    ex = dinov2.DINOv2Extractor(variant="vits14")  # found in $TORCH_HOME/hub/checkpoints
    sha = file_sha256(path)
    assert ex.weights_sha256 == sha and ex.name == f"dinov2-vits14-{sha[:8]}" and ex.feature_names == ("pool",)
    x = images(3, 32, 32, c=1)  # grey: tiled to RGB
    feats = extract_features(ex, x, batch_size=2)
    assert feats["pool"].shape == (3, 384) and feats["pool"].dtype == torch.float64
    assert not torch.allclose(feats["pool"][0], feats["pool"][1], atol=1e-2)  # tells images apart

    net_input = ex.preprocess(x)
    assert net_input.shape == (3, 3, 224, 224)
    ref = hub_dinov2_cls(vits_state, net_input, heads=6)
    # the reference saw one batch of 3, the extractor batches of 2 and 1: same features
    torch.testing.assert_close(feats["pool"].float(), ref, rtol=1e-4, atol=1e-4)


def test_dinov2_reads_a_safetensors_file_and_names_it_by_its_hash(tmp_path):
    from safetensors.torch import save_file

    state = random_dinov2_state(64, 2, seed=4)
    small = {"embed_dim": 64, "depth": 2, "num_heads": 2}
    variant = dinov2.DinoVariant("tiny", "vit_small_patch14_dinov2", timm_kwargs=small)
    pth, st = tmp_path / "w.pth", tmp_path / "w.safetensors"
    torch.save(state, pth)
    save_file(state, st)
    a, b = dinov2.DINOv2Extractor(pth, variant), dinov2.DINOv2Extractor(st, variant)
    assert a.name != b.name and b.name == f"dinov2-tiny-{file_sha256(st)[:8]}"
    x = images(2, 20, 20)
    torch.testing.assert_close(a(x)[0], b(x)[0], rtol=0, atol=0)
    torch.testing.assert_close(a(x)[0], hub_dinov2_cls(state, a.preprocess(x), heads=2), rtol=1e-4, atol=1e-4)


def test_dinov2_missing_weights_names_file_folder_source_and_offline_alternative(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UsageError) as err:
        dinov2.DINOv2Extractor()
    text = str(err.value)
    assert "dinov2_vitl14_pretrain.pth" in text and str(tmp_path / "hub" / "checkpoints") in text
    assert "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth" in text
    assert "--feature-extractor domain" in text and "--weights" in text
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    with pytest.raises(UsageError, match="elsewhere.*dinov2_vits14_pretrain.pth"):
        dinov2.DINOv2Extractor(folder, variant="vits14")
    with pytest.raises(UsageError, match="unknown DINOv2 variant 'vitx'.*vitl14"):
        dinov2.DINOv2Extractor(variant="vitx")


def test_dinov2_refuses_pickled_code_and_a_file_of_another_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, marker = tmp_path / "hub" / "checkpoints" / VITS.weights_file, tmp_path / "pwned"
    write_payload(path, marker)
    with pytest.raises(UsageError, match="pickled code"):
        dinov2.DINOv2Extractor(variant="vits14")
    assert not marker.exists()
    torch.save(random_dinov2_state(384, 2), path)  # 2 blocks where ViT-S has 12
    with pytest.raises(UsageError, match=r"does not fit the DINOv2 vits14 network \(missing: blocks\.1[01]\."):
        dinov2.DINOv2Extractor(variant="vits14")


def test_without_timm_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / VITS.weights_file
    torch.save({"x": torch.zeros(1)}, path)
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(UsageError, match=r"need the package timm.*mgbench\[encoders\].*--feature-extractor domain"):
        dinov2.DINOv2Extractor(path, variant="vits14")
    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(__version__="1.0.17"))
    with pytest.raises(UsageError, match=r"timm 1.0.17 is too old.*timm>=1.0.22"):
        dinov2.DINOv2Extractor(path, variant="vits14")


# --- CLIP -----------------------------------------------------------------------------------

WIDTH, DEPTH, EMBED, GRID = 128, 2, 32, 4  # a small tower: 2 blocks of 128 (2 heads of 64), 56 px
TINY_CLIP = clip.ClipVariant(
    "tiny",
    "vit_large_patch14_clip_quickgelu_336",  # the real architecture, made small
    image_size=14 * GRID,
    embed_dim=EMBED,
    weights_file="tiny-clip.bin",
    hf_repo="nowhere/tiny",
    timm_kwargs={"embed_dim": WIDTH, "depth": DEPTH, "num_heads": WIDTH // 64},
)


def openai_clip_embedding(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """OpenAI CLIP's ``VisionTransformer.forward`` (clip/model.py) and ``encode_image`` + L2
    normalisation as scenic/cmmd apply it, written out: conv1 without bias, class embedding,
    positional embedding, ln_pre, residual attention blocks (heads of 64, QuickGELU MLP),
    ln_post on the class token, ``@ proj``, divided by its norm."""
    s = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
    w = s["class_embedding"].shape[0]
    heads = w // 64
    h = F.conv2d(x, s["conv1.weight"], stride=s["conv1.weight"].shape[-1]).flatten(2).transpose(1, 2)
    h = torch.cat([s["class_embedding"].expand(len(x), 1, -1), h], dim=1) + s["positional_embedding"]

    def ln(t, p):
        return F.layer_norm(t, (w,), s[f"{p}.weight"], s[f"{p}.bias"], eps=1e-5)

    h = ln(h, "ln_pre")
    depth = len({k.split(".")[2] for k in s if k.startswith("transformer.resblocks.")})
    for i in range(depth):
        b = f"transformer.resblocks.{i}"
        q, k, v = F.linear(ln(h, f"{b}.ln_1"), s[f"{b}.attn.in_proj_weight"], s[f"{b}.attn.in_proj_bias"]).chunk(3, -1)
        q, k, v = (t.reshape(len(x), -1, heads, 64).transpose(1, 2) for t in (q, k, v))
        a = ((q @ k.transpose(-2, -1)) / 8.0).softmax(-1) @ v
        a = a.transpose(1, 2).reshape(len(x), -1, w)
        h = h + F.linear(a, s[f"{b}.attn.out_proj.weight"], s[f"{b}.attn.out_proj.bias"])
        f = F.linear(ln(h, f"{b}.ln_2"), s[f"{b}.mlp.c_fc.weight"], s[f"{b}.mlp.c_fc.bias"])
        f = f * torch.sigmoid(1.702 * f)  # QuickGELU
        h = h + F.linear(f, s[f"{b}.mlp.c_proj.weight"], s[f"{b}.mlp.c_proj.bias"])
    e = ln(h[:, 0], "ln_post") @ s["proj"]
    return e / e.norm(dim=-1, keepdim=True)


@pytest.fixture
def clip_state() -> dict[str, torch.Tensor]:
    return random_openai_clip_state(WIDTH, DEPTH, EMBED, grid=GRID)


def test_clip_end_to_end_matches_openais_formula(tmp_path, monkeypatch, clip_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tmp_path / "hub" / "checkpoints" / TINY_CLIP.weights_file
    path.parent.mkdir(parents=True)
    torch.save(clip_state, path)  # OpenAI / open_clip layout, text tensors included

    ex = clip.CLIPExtractor(variant=TINY_CLIP)
    sha = file_sha256(path)
    assert ex.weights_sha256 == sha and ex.name == f"clip-tiny-{sha[:8]}" and ex.feature_names == ("pool",)
    x = images(3, 40, 48)  # not square: centre-cropped
    feats = extract_features(ex, x, batch_size=2)["pool"]
    assert feats.shape == (3, EMBED)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(3, dtype=torch.float64))
    assert not torch.allclose(feats[0], feats[1], atol=1e-2)
    ref = openai_clip_embedding(clip_state, ex.preprocess(x))
    torch.testing.assert_close(feats.float(), ref, rtol=1e-4, atol=1e-5)


def test_clip_reads_timms_layout_from_safetensors(tmp_path, clip_state):
    from safetensors.torch import save_file

    openai = tmp_path / "openai.bin"
    torch.save(clip_state, openai)
    a = clip.CLIPExtractor(openai, TINY_CLIP)
    timm_file = tmp_path / "model.safetensors"  # what timm/vit_large_patch14_clip_336.openai holds
    save_file({k: v.contiguous() for k, v in a.model.state_dict().items()}, timm_file)
    b = clip.CLIPExtractor(timm_file, TINY_CLIP)
    assert b.name == f"clip-tiny-{file_sha256(timm_file)[:8]}" != a.name
    x = images(2, 30, 30)
    # same numbers up to float32 rounding (the converted projection is a transposed view in ``a``)
    torch.testing.assert_close(a(x)[0], b(x)[0], rtol=1e-6, atol=1e-6)


def test_clip_matches_open_clip(tmp_path, clip_state):
    """open_clip (the CLIP library dgm-eval uses) on the same file: layout and embedding agree."""
    open_clip = pytest.importorskip("open_clip")
    model = open_clip.model.CLIP(
        EMBED,
        open_clip.model.CLIPVisionCfg(layers=DEPTH, width=WIDTH, patch_size=14, image_size=14 * GRID),
        open_clip.model.CLIPTextCfg(layers=1, width=64, heads=1),
        quick_gelu=True,
    ).eval()
    visual = {k[len("visual.") :]: v for k, v in clip_state.items() if k.startswith("visual.")}
    model.visual.load_state_dict(visual, strict=True)  # the fake layout is open_clip's
    path = tmp_path / "w.bin"
    torch.save(clip_state, path)
    ex = clip.CLIPExtractor(path, TINY_CLIP)
    x = images(2, 56, 56)
    net_input = ex.preprocess(x)
    with torch.inference_mode():
        ref = model.encode_image(net_input, normalize=True)
    torch.testing.assert_close(ex(x)[0], ref, rtol=1e-4, atol=1e-5)


def test_clip_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UsageError) as err:
        clip.CLIPExtractor()
    text = str(err.value)
    assert "vit_large_patch14_clip_336.openai.safetensors" in text and str(tmp_path / "hub" / "checkpoints") in text
    assert "timm/vit_large_patch14_clip_336.openai" in text and "--feature-extractor domain" in text


def test_clip_refuses_pickled_code_and_torchscript(tmp_path):
    path, marker = tmp_path / "w.bin", tmp_path / "pwned"
    write_payload(path, marker)
    with pytest.raises(UsageError, match="pickled code"):
        clip.CLIPExtractor(path, TINY_CLIP)
    assert not marker.exists()
    scripted = tmp_path / "ViT-L-14-336px.pt"  # OpenAI's original files are TorchScript archives
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), scripted)
    with pytest.raises(UsageError, match="TorchScript archive"):
        clip.CLIPExtractor(scripted, TINY_CLIP)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(UsageError, match="not a valid safetensors file"):
        clip.CLIPExtractor(broken, TINY_CLIP)
    misnamed = tmp_path / "model.safetensors"  # a torch file under a safetensors name
    torch.save({"x": torch.zeros(1)}, misnamed)
    with pytest.raises(UsageError, match="named .safetensors but is not a safetensors file"):
        clip.CLIPExtractor(misnamed, TINY_CLIP)


def test_mgbench_score_with_the_dinov2_extractor_end_to_end(tmp_path, monkeypatch, vits_state):
    """`--feature-extractor dinov2:vits14`: FD_DINOv2 is the fid column of a table keyed by the
    extractor's hashed name; the metrics that need class logits (IS, modes) step aside."""
    from mgbench.api import score

    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(vits_state, path)
    monkeypatch.setenv("MGBENCH_CACHE", str(tmp_path / "cache"))
    real, fake = images(12, seed=1), images(12, seed=2)
    out = score(fake, real, metrics=["fid", "is", "modes", "prdc"], feature_extractor="dinov2:vits14",
                weights=str(path))
    assert out["feature_extractor"].startswith("dinov2-vits14-") and out["fid"] > 0
    assert "is_mean" not in out and "modes_coarse" not in out and 0 <= out["precision"] <= 1
    same = score(real, real, metrics=["fid"], feature_extractor="dinov2:vits14", weights=str(path))
    assert abs(same["fid"]) < 1e-6 * out["fid"]
