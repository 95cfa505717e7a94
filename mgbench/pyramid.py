"""Gaussian and Laplacian pyramids with the 5×5 binomial kernel (Burt & Adelson 1983).

Shared by the LAPGAN baseline (Denton et al. 2015) and the multi-scale sliced Wasserstein
distance (Karras et al. 2018), so the model and the metric cut an image into the same bands.
Edges are mirrored (reflect padding); inputs are float N×C×H×W with H and W even at every level.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Depthwise 5×5 binomial filter, [1,4,6,4,1]ᵀ[1,4,6,4,1]/256 × gain, mirrored edges."""
    k1 = _BINOMIAL.to(x.device, x.dtype)
    kernel = (torch.outer(k1, k1) / 256.0 * gain).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def downsample(x: torch.Tensor) -> torch.Tensor:
    """Filter, then keep every second pixel: H×W → H/2×W/2."""
    return _blur(x)[:, :, ::2, ::2]


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Insert zeros between pixels, then filter ×4: H×W → 2H×2W."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=4.0)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` bands, finest first: L_i = G_i − up(G_{i+1}); the last is the low-pass G_{levels-1}."""
    bands = []
    for _ in range(levels - 1):
        low = downsample(x)
        bands.append(x - upsample(low))
        x = low
    bands.append(x)
    return bands


def reconstruct(bands: list[torch.Tensor]) -> torch.Tensor:
    """Invert :func:`laplacian_pyramid` exactly: G_i = L_i + up(G_{i+1})."""
    x = bands[-1]
    for band in reversed(bands[:-1]):
        x = band + upsample(x)
    return x
