"""What the DINOv2 and CLIP extractors share: timm, local weight files, resizing as PIL does.

Both are timm Vision Transformers (Dosovitskiy et al., ICLR 2021) built with
``pretrained=False``: timm never downloads anything here. Their weights come only from a local
file, read without unpickling code (a torch file through
:func:`~mgbench.features.weights.safe_load_state_dict`, or a safetensors file, which holds no
code by design), and their SHA-256 goes into the extractor's name and every cache key.

The network is built on the ``meta`` device and the file's tensors are assigned to it: a
random initialisation of ViT-L takes about 25 s on a loaded 2-core CPU and would be thrown away.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from mgbench.errors import UsageError
from mgbench.features.weights import safe_load_state_dict

OFFLINE_ALTERNATIVE = "or score offline with --feature-extractor domain"
# Older timm calls .item() while building a ViT (drop-path rates), which fails on the meta device.
MIN_TIMM = (1, 0, 22)


def import_timm() -> ModuleType:
    """timm, or a :class:`UsageError` saying how to install it (it is the ``encoders`` extra)."""
    install = "pip install 'mgbench[encoders]' (or pip install 'timm>=" + ".".join(map(str, MIN_TIMM)) + "'), "
    try:
        import timm
    except ImportError:
        raise UsageError(
            "the DINOv2 and CLIP feature extractors need the package timm, which is not installed",
            install + OFFLINE_ALTERNATIVE,
        ) from None
    version = tuple(int(p) for p in re.findall(r"\d+", timm.__version__)[:3])
    if version < MIN_TIMM:
        raise UsageError(f"timm {timm.__version__} is too old for the DINOv2 and CLIP extractors", install)
    return timm


def weights_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints``: where torch.hub (and so dgm-eval's DINOv2) keeps weight files."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(path: str | Path | None, file_name: str, what: str, source: str) -> Path:
    """The weight file: ``path`` (a file, or a folder holding ``file_name``) or the torch.hub folder.

    Raises :class:`UsageError` naming the file, the folder it belongs in, where to get it
    (``source``) and the offline alternative, so that a run stops before any training.
    """
    if path is None:
        candidate = weights_dir() / file_name
    else:
        candidate = Path(path).expanduser()
        if candidate.is_dir():
            candidate = candidate / file_name
    if candidate.is_file():
        return candidate
    raise UsageError(
        f"{what} weights {file_name!r} not found at {str(candidate)!r}",
        f"{source}, and put it in the folder {str(candidate.parent)!r} as {candidate.name!r} "
        f"(or pass --weights PATH), {OFFLINE_ALTERNATIVE}",
    )


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header length, then a JSON object."""
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= path.stat().st_size


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive (e.g. OpenAI's original CLIP ``.pt``) holds code next to its tensors."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` dict from a torch file (``weights_only=True``) or a safetensors file,
    floating tensors as float32 (some published files are float16)."""
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(path, device="cpu")
        except (SafetensorError, json.JSONDecodeError, ValueError, OSError) as err:
            raise UsageError(
                f"weight file {str(path)!r} is not a valid safetensors file ({type(err).__name__}: {err})",
                "delete it and put a fresh copy there",
            ) from None
    elif _is_torchscript(path):
        raise UsageError(
            f"weight file {str(path)!r} is a TorchScript archive: it cannot be read without running its code",
            "use a plain state_dict or safetensors file of the same weights (see the extractor's docs)",
        )
    elif path.suffix == ".safetensors":  # torch.load would hand it to safetensors and fail obscurely
        raise UsageError(
            f"weight file {str(path)!r} is named .safetensors but is not a safetensors file",
            "if it is a torch file (.bin, .pth), give it that suffix and pass --weights PATH",
        )
    else:
        state = safe_load_state_dict(path)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def on_meta(make: Callable[[], nn.Module]) -> nn.Module:
    """``make()`` built on the meta device: shapes only, no memory, no initialisation."""
    with torch.device("meta"):
        return make()


def assign_weights(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> nn.Module:
    """``state`` assigned (strict) to ``model``, built by :func:`on_meta`; returned in eval mode.

    A file of another layout or size raises :class:`UsageError` naming the first mismatches.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        details = [
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", wrong))
            if keys
        ]
        raise UsageError(
            f"the weight file does not fit the {what} network ({'; '.join(details)})",
            "check that the file is the one named for this variant",
        )
    model.load_state_dict(state, strict=True, assign=True)
    leftover = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    assert not leftover, f"tensors not loaded from the file: {leftover[:3]}"
    return model.eval().requires_grad_(False)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 B×C×H×W → uint8 B×C×size×size, bicubic with antialiasing, rounded to uint8.

    This is what PIL's ``Image.resize(..., BICUBIC)`` does, which both reference pipelines use
    (dgm-eval through torchvision's ``Resize`` on PIL images, CMMD's ``io_util``): torch's
    antialiased bicubic uses PIL's kernel (a = −0.5) and support. Measured against PIL on
    random noise images, 32→224 and 512→224: at most 2 levels apart, on under 1 % of pixels
    (tests/test_encoders.py checks the bound).
    """
    if images.shape[-2:] == (size, size):
        return images
    return TF.resize(images, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 B×3×H×W → float32 ``(x/255 − mean) / std`` per channel (``ToTensor`` + ``Normalize``)."""
    x = images.float() / 255
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s
