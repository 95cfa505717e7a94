"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), AlexNet variant, built offline and without unpickling code.

The ``lpips`` wheel ships only the linear heads; the AlexNet backbone is torchvision's ImageNet
checkpoint, which ``lpips`` would download. Here nothing is downloaded: the backbone is read
(``weights_only=True``) from ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` if it is
there, and the label is ``"alex"``. Otherwise the backbone keeps a random initialisation drawn
from a fixed seed, labelled ``"alex-random"``: that is NOT LPIPS and callers must print the
label beside every value (column ``lpips_backbone``).

Input size: AlexNet's five layers need at least 31 px (conv1 stride 4, then two 3×3/2 max
pools), and LPIPS was calibrated on 64×64 patches (BAPPS). Smaller images are upsampled
bilinearly to 64×64, so 16 and 32 px images are compared on the scale the heads were fitted at.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lpips
import torch
import torch.nn.functional as F

from mgbench.errors import UsageError
from mgbench.features.extract import to_rgb_uint8
from mgbench.features.weights import safe_load_state_dict

log = logging.getLogger(__name__)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision AlexNet_Weights.IMAGENET1K_V1
ALEXNET_URL = "https://download.pytorch.org/models/" + ALEXNET_FILE
RANDOM_BACKBONE_SEED = 20180111  # fixed: the random backbone is the same network in every run
MIN_SIZE = 64


def alexnet_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def lpips_model(device: torch.device | str = "cpu") -> tuple[lpips.LPIPS, str]:
    """The LPIPS-alex network on ``device`` and its backbone label (``"alex"`` or ``"alex-random"``)."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # Random init (no download: pnet_rand) drawn from a fixed seed inside a forked RNG.
        warnings.simplefilter("ignore", UserWarning)  # torchvision's "pretrained is deprecated"
        torch.manual_seed(RANDOM_BACKBONE_SEED)
        net = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    heads_file = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    _load(net, safe_load_state_dict(heads_file), prefix="lin")

    path = alexnet_weights_path()
    if path.is_file():
        backbone = safe_load_state_dict(path)
        # torchvision "features.<i>.<p>" → lpips "net.slice<k>.<i>.<p>"
        mapping = {k: "features." + k.split(".", 2)[2] for k in net.state_dict() if k.startswith("net.slice")}
        _load(net, {ours: backbone[theirs] for ours, theirs in mapping.items() if theirs in backbone}, "net.")
        label = "alex"
    else:
        log.warning(
            "LPIPS: AlexNet weights %s not found; using a RANDOM backbone (label alex-random), "
            "not comparable with published LPIPS. Put %s there for real LPIPS.",
            path,
            ALEXNET_URL,
        )
        label = "alex-random"
    return net.to(device).eval().requires_grad_(False), label


def _load(net: lpips.LPIPS, state: dict[str, torch.Tensor], prefix: str) -> None:
    """Load ``state`` into ``net`` and check it covered every parameter whose name starts with ``prefix``."""
    missing, unexpected = net.load_state_dict(state, strict=False)
    uncovered = [k for k in missing if k.startswith(prefix) and not k.startswith("lins.")]  # lins aliases linN
    if unexpected or uncovered:
        raise UsageError(f"LPIPS weights do not match the network (missing {uncovered}, unexpected {unexpected})")


def _prepare(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 N×C×H×W → float N×3×H'×W' in [-1, 1], upsampled to at least MIN_SIZE."""
    x = to_rgb_uint8(images).to(device).float() / 127.5 - 1.0
    if min(x.shape[-2:]) < MIN_SIZE:
        scale = MIN_SIZE / min(x.shape[-2:])
        size = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def lpips_distance(net: lpips.LPIPS, a: torch.Tensor, b: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """LPIPS between ``a[i]`` and ``b[i]`` (uint8 N×C×H×W, C = 1 or 3): float64 tensor (N,) on the CPU."""
    if len(a) != len(b) or a.shape[2:] != b.shape[2:]:
        raise UsageError(f"LPIPS compares images of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    device = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for s in range(0, len(a), batch_size):
            d = net(_prepare(a[s : s + batch_size], device), _prepare(b[s : s + batch_size], device))
            out.append(d.reshape(-1).to("cpu", torch.float64))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def lpips_diversity(
    net: lpips.LPIPS, images: torch.Tensor, pairs: int, generator: torch.Generator, batch_size: int = 100
) -> float:
    """Mean LPIPS over ``pairs`` random pairs of distinct images (diversity of a sample set,
    as in BicycleGAN, Zhu et al. 2017, and MUNIT). Pairs are drawn uniformly with ``generator``."""
    n = len(images)
    if n < 2:
        raise UsageError(f"LPIPS diversity needs at least 2 images, got {n}")
    i = torch.randint(0, n, (pairs,), generator=generator)
    j = (i + torch.randint(1, n, (pairs,), generator=generator)) % n  # uniform over the other n-1
    return lpips_distance(net, images[i], images[j], batch_size).mean().item()
