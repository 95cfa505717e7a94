"""Layers of the progressive GAN family, shared by ProGAN and MSG-GAN.

Karras, Aila, Laine & Lehtinen 2018, "Progressive growing of GANs for improved quality, stability,
and variation" (ICLR), with the details the paper leaves open taken from its official code
(tkarras/progressive_growing_of_gans, ``networks.py``):

* :class:`EqualizedConv2d` / :class:`EqualizedLinear` (§4.1, "equalized learning rate"): weights
  drawn from N(0, 1) and multiplied at run time by He's constant c = gain / sqrt(fan_in), gain
  sqrt(2) for layers followed by a leaky ReLU, 1 for the linear outputs (toRGB, D's score).
  Adam then moves every weight at the same relative speed, whatever its layer's fan-in.
* :class:`PixelNorm` (§4.2): each pixel's feature vector divided by its root mean square, in G
  after every convolution.
* :class:`MinibatchStdDev` (§3): one extra feature map holding the average standard deviation of
  the features across a group of samples, so D can see a lack of variety.
* :class:`ProGANGenerator` (Table 2): z on the unit hypersphere → 4×4 → (upsample ×2, 3×3 conv,
  3×3 conv) per doubling, each resolution with its own 1×1 toRGB.
* :class:`DownBlock` and :class:`ScoreBlock` (Table 2): D's (3×3 conv, 3×3 conv, 2×2 average
  pool) per halving and its 4×4 block (minibatch stddev, 3×3 conv, dense, linear score).

Widths follow the paper's rule min(fmap_max, fmap_base / resolution) (:func:`feature_maps`):
the paper's 512 feature maps up to 32 px, halved per doubling beyond.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2  # every hidden layer of G and D (Table 2)
HE_GAIN = math.sqrt(2.0)  # He et al. 2015 for (leaky) ReLU layers


def feature_maps(resolution: int, width: int, halves_above: int = 32) -> int:
    """Feature maps of the block at ``resolution``: ``width`` up to ``halves_above`` px, halved per
    doubling beyond. The paper's nf() is width 512, halves_above 32 (fmap_base 8192): 512 at
    4-32 px, 256 at 64 px, ... 16 at 1024 px. A smaller ``halves_above`` moves the cost from the
    fine blocks to the coarse ones, as DCGAN's widths do (what a CPU can afford)."""
    return max(1, min(width, width * halves_above // resolution))


def resolutions_up_to(resolution: int, start: int = 4) -> list[int]:
    """start, 2·start, ... resolution (both powers of two)."""
    sizes = [start]
    while sizes[-1] < resolution:
        sizes.append(2 * sizes[-1])
    return sizes


class EqualizedConv2d(nn.Module):
    """Conv2d whose weight, stored ~ N(0, 1), is scaled at run time by ``gain / sqrt(fan_in)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = HE_GAIN) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)  # He's constant, fan_in = in·k·k
        self.padding = kernel_size // 2  # "same" size for the 1×1 and 3×3 kernels used here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        out, inp, k, _ = self.weight.shape
        return f"{inp}, {out}, kernel_size={k}, scale={self.scale:.4g}"


class EqualizedLinear(nn.Module):
    """Linear layer whose weight, stored ~ N(0, 1), is scaled at run time by ``gain / sqrt(fan_in)``."""

    def __init__(self, in_features: int, out_features: int, gain: float = HE_GAIN, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"{inp}, {out}, scale={self.scale:.4g}"


class PixelNorm(nn.Module):
    """b = a / sqrt(mean_j a_j² + 1e-8) over the channels j of each pixel (or of each vector)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class MinibatchStdDev(nn.Module):
    """Append one feature map: the standard deviation of each feature at each pixel across a
    group of samples, averaged over features and pixels (paper §3; official code with groups).

    As in the official ``minibatch_stddev_layer``, the batch is cut into groups of
    ``group_size`` samples taken with a stride (sample i is in group i mod (N / group_size)), the
    deviation is the biased one (mean of squares) plus 1e-8 under the root, and every sample of a
    group gets its group's value. A batch that ``group_size`` does not divide uses the largest
    divisor of the batch below it (the official code asserts instead).
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def group(self, batch: int) -> int:
        return max(g for g in range(1, min(self.group_size, batch) + 1) if batch % g == 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = self.group(n)
        y = x.reshape(g, n // g, c, h, w)  # [group member, group, C, H, W]
        y = (y - y.mean(dim=0)).pow(2).mean(dim=0)  # variance over each group's members
        y = (y + 1e-8).sqrt().mean(dim=(1, 2, 3))  # one value per group
        y = y.view(1, n // g, 1, 1, 1).expand(g, n // g, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


class FirstGeneratorBlock(nn.Module):
    """z (B×nz) → features (B×w×4×4): pixel norm of z, a dense layer to 4×4 (the paper's "Conv 4×4"
    on a 1×1 input, official gain sqrt(2)/4, one bias per channel), then a 3×3 convolution."""

    def __init__(self, nz: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.norm = PixelNorm()
        self.dense = EqualizedLinear(nz, width * 16, gain=HE_GAIN / 4, bias=False)
        self.bias = nn.Parameter(torch.zeros(width))
        self.conv = EqualizedConv2d(width, width, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.dense(self.norm(z)).view(-1, self.width, 4, 4) + self.bias.view(1, -1, 1, 1)  # w x 4 x 4
        x = self.norm(lrelu(x))
        return self.norm(lrelu(self.conv(x)))  # w x 4 x 4


class UpBlock(nn.Module):
    """features (B×c_in×s×s) → (B×c_out×2s×2s): nearest ×2, then two 3×3 convolutions, each
    followed by a leaky ReLU and pixel norm."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3)
        self.conv2 = EqualizedConv2d(out_channels, out_channels, 3)
        self.norm = PixelNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")  # c_in x 2s x 2s
        x = self.norm(lrelu(self.conv1(x)))
        return self.norm(lrelu(self.conv2(x)))  # c_out x 2s x 2s


class ProGANGenerator(nn.Module):
    """The generator of Karras et al. 2018 (Table 2) with one toRGB per resolution.

    ``blocks[k]`` makes the features at ``sizes[k]`` px from those at ``sizes[k-1]`` (``blocks[0]``
    from z); ``to_rgb[k]`` is a linear 1×1 convolution from them to an image. ProGAN uses the
    toRGB of the top one or two active blocks (a fade), MSG-GAN uses every one.
    """

    def __init__(self, nz: int, width: int, channels: int, resolution: int, halves_above: int = 32) -> None:
        super().__init__()
        self.sizes = resolutions_up_to(resolution)
        widths = [feature_maps(s, width, halves_above) for s in self.sizes]
        self.blocks = nn.ModuleList([FirstGeneratorBlock(nz, widths[0])])
        self.blocks.extend(UpBlock(widths[k - 1], widths[k]) for k in range(1, len(self.sizes)))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(w, channels, 1, gain=1.0) for w in widths)

    def features(self, z: torch.Tensor, top: int | None = None) -> list[torch.Tensor]:
        """The features of blocks 0 … ``top`` (default: all), coarse to fine."""
        top = len(self.blocks) - 1 if top is None else top
        out = [self.blocks[0](z)]
        for block in self.blocks[1 : top + 1]:
            out.append(block(out[-1]))
        return out


class DownBlock(nn.Module):
    """(B×c_in×s×s) → (B×c_out×s/2×s/2): two 3×3 convolutions with leaky ReLU, 2×2 average pooling."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualizedConv2d(in_channels, mid_channels, 3)
        self.conv2 = EqualizedConv2d(mid_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(lrelu(self.conv2(lrelu(self.conv1(x)))), 2)


class ScoreBlock(nn.Module):
    """D's 4×4 block (Table 2): minibatch stddev, 3×3 conv, the "Conv 4×4" as a dense layer, and
    a linear output. (B×c_in×4×4) → B scores."""

    def __init__(self, in_channels: int, width: int, group_size: int) -> None:
        super().__init__()
        self.stddev = MinibatchStdDev(group_size)
        self.conv = EqualizedConv2d(in_channels + 1, width, 3)
        self.dense = EqualizedLinear(width * 16, width)
        self.out = EqualizedLinear(width, 1, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.conv(self.stddev(x)))  # w x 4 x 4
        return self.out(lrelu(self.dense(x.flatten(1)))).flatten()


@torch.no_grad()
def ema_decay_at(decay: float, updates: int) -> float:
    """The decay of the ``updates``-th update: min(decay, (1 + t) / (10 + t)), the warm-up of
    TensorFlow's ``ExponentialMovingAverage(num_updates=t)``. Without it, a run of a few hundred
    steps would sample an average still weighted toward G's random initialisation (0.999⁸⁰⁰ =
    0.45 of it after 800 steps); from about 9,000 updates on it is the paper's 0.999."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


def ema_update(average: nn.Module, source: nn.Module, decay: float, updates: int) -> None:
    """average ← d·average + (1 − d)·source, parameter by parameter, d = :func:`ema_decay_at`
    (Karras et al. 2018, App. A.1: the generator shown is a running average of G's weights,
    decay 0.999). ``updates``: how many updates came before this one."""
    d = ema_decay_at(decay, updates)
    with torch.no_grad():  # an average, not a graph: autograd would make it require grad
        for avg, src in zip(average.parameters(), source.parameters(), strict=True):
            avg.lerp_(src, 1.0 - d)


class RunningAverage:
    """The generator that is sampled from: a running average of G's weights (Karras et al. 2018,
    App. A.1), updated after each G step with :func:`ema_update`'s warm-up. Kept out of a
    model's ``networks`` (it would count twice in the parameter totals) and checkpointed through
    the model's ``extra_state`` under the keys ``g_ema`` and ``ema_updates``."""

    def __init__(self, source: nn.Module, decay: float) -> None:
        self.source, self.decay = source, decay
        self.network = copy.deepcopy(source).requires_grad_(False)
        self.updates = 0  # the warm-up counts them (ema_decay_at)

    def update(self) -> None:
        ema_update(self.network, self.source, self.decay, self.updates)
        self.updates += 1

    def state(self) -> dict[str, Any]:
        return {"g_ema": self.network.state_dict(), "ema_updates": self.updates}

    @staticmethod
    def in_state(state: dict[str, Any]) -> bool:
        return "g_ema" in state and "ema_updates" in state

    def load(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["g_ema"])
        self.updates = int(state["ema_updates"])


def downsample_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Average pooling by the integer factor from the images' size to ``size`` (the box filter
    with which both papers' code makes the real images of the coarser scales)."""
    factor = images.shape[-1] // size
    return images if factor == 1 else F.avg_pool2d(images, factor)
