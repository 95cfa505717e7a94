"""LAPGAN: Denton, Chintala, Szlam & Fergus 2015, "Deep generative image models using a
Laplacian pyramid of adversarial networks" (NeurIPS).

One GAN per level of a Laplacian pyramid (:mod:`mgbench.pyramid`, the 5×5 binomial kernel of
Burt & Adelson 1983). Level 0 makes the 8×8 low-pass image from noise; level k ≥ 1, at
s = 8·2^k pixels, makes the band-pass residual h_k given the upsampled coarser image
l_k = up(I_{k-1}):

    I_0 = G_0(z_0),     I_k = l_k + G_k(z_k, l_k),     sample = clamp(I_{L-1}, −1, 1)

Each level trains on the real pyramid independently (paper §3.2): D_0 sees the real 8×8
low-pass image, D_k the real band L_k = G_k − up(G_{k-1}) beside the real l_k = up(G_{k-1}).

Architecture of the paper's CIFAR-10 model (§4), with the widths made configurable:

* G_0 / D_0: fully connected, two hidden layers (paper: 1200 units in G, 600 in D).
* G_k: three 3×3 convolutions, BatchNorm + ReLU between them, no output non-linearity (bands are
  signed); its input is l_k with the noise z_k as an extra plane (paper: "a 4th colour plane").
* D_k: two strided convolutions then a linear layer; it sees h_k concatenated with l_k (the paper
  adds l_k to h_k before its first layer, which a first convolution over the concatenation can
  represent).
* Class conditioning (:class:`ConditionalLAPGAN`): the one-hot label is concatenated to the inputs
  of G_0 / D_0 and, through a linear layer reshaped to one s×s plane, to those of G_k / D_k (§4).

Changes from the paper, for parity with the other baselines: Adam (lr 2e-4, β1 0.5) instead of
SGD with momentum, LeakyReLU(0.2) in the discriminators, no dropout, BCE with logits, BatchNorm
in G_0's hidden layers (see :class:`CoarseGenerator`), and a default width of 64 feature maps
instead of 128 so that it trains on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mgbench.contract import DataSpec, GenerativeModel, ProducesPyramid
from mgbench.pyramid import downsample, upsample
from mgbench_baselines.nets import (
    adam,
    check_image_data,
    evaluating,
    gan_update,
    init_dcgan_weights,
    one_hot,
    require_labels,
)

COARSEST = 8  # pixels of level 0, as in the paper's CIFAR-10 model (8 → 16 → 32)


@dataclass(frozen=True)
class LAPGANConfig:
    nz: int = 100  # noise dimension of the 8×8 generator
    coarse_g_hidden: int = 1200  # paper §4 (CIFAR-10)
    coarse_d_hidden: int = 600  # paper §4 (CIFAR-10)
    width: int = 64  # feature maps of G_k and D_k, k ≥ 1 (paper: 128)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


class CoarseGenerator(nn.Module):
    """(z [, one-hot y]) → channels×8×8 low-pass image in [-1, 1] (Tanh).

    BatchNorm after each hidden layer, as in every hidden layer of DCGAN's generator: without it
    the N(0, 0.02) weights shrink z's influence about 4× per layer, G_0 starts (and stays)
    collapsed near one image, and D_0 soon outputs 0.5 for everything (measured on shapes 32 px:
    per-pixel std across samples 0.14 against the real 0.46 after 1,500 steps; with BatchNorm 0.43).
    """

    def __init__(self, nz: int, hidden: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.shape = (channels, COARSEST, COARSEST)
        self.net = nn.Sequential(
            nn.Linear(nz + num_classes, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True),
            nn.Linear(hidden, channels * COARSEST**2), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.net(torch.cat([z] if y is None else [z, y], dim=1)).view(-1, *self.shape)


class CoarseDiscriminator(nn.Module):
    """(channels×8×8 image [, one-hot y]) → logit."""

    def __init__(self, hidden: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(channels * COARSEST**2 + num_classes, hidden), nn.LeakyReLU(0.2, True),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2, True),
            nn.Linear(hidden, 1),
        )  # fmt: skip

    def forward(self, image: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        flat = image.flatten(1)
        return self.net(torch.cat([flat] if y is None else [flat, y], dim=1)).flatten()


class LabelPlane(nn.Module):
    """One-hot y → one s×s feature plane through a linear layer (paper §4), or nothing if unconditional."""

    def __init__(self, num_classes: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.linear = nn.Linear(num_classes, size * size) if num_classes else None

    def forward(self, y: torch.Tensor | None) -> list[torch.Tensor]:
        if self.linear is None or y is None:
            return []
        return [self.linear(y).view(-1, 1, self.size, self.size)]


class ResidualGenerator(nn.Module):
    """(l_k, noise plane [, label plane]) → band-pass residual h_k, channels×s×s."""

    def __init__(self, channels: int, width: int, size: int, num_classes: int) -> None:
        super().__init__()
        self.label = LabelPlane(num_classes, size)
        inputs = channels + 1 + (1 if num_classes else 0)
        self.net = nn.Sequential(
            nn.Conv2d(inputs, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),  # w x s x s
            nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),  # w x s x s
            nn.Conv2d(width, channels, 3, 1, 1),  # channels x s x s, signed
        )  # fmt: skip

    def forward(self, low: torch.Tensor, noise: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.net(torch.cat([low, noise, *self.label(y)], dim=1))


class ResidualDiscriminator(nn.Module):
    """(h_k, l_k [, label plane]) → logit."""

    def __init__(self, channels: int, width: int, size: int, num_classes: int) -> None:
        super().__init__()
        self.label = LabelPlane(num_classes, size)
        inputs = 2 * channels + (1 if num_classes else 0)
        self.net = nn.Sequential(
            nn.Conv2d(inputs, width, 4, 2, 1), nn.LeakyReLU(0.2, True),  # width x s/2 x s/2
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, True),  # 2width x s/4 x s/4
            nn.Flatten(),
            nn.Linear(2 * width * (size // 4) ** 2, 1),
        )  # fmt: skip

    def forward(self, band: torch.Tensor, low: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.net(torch.cat([band, low, *self.label(y)], dim=1)).flatten()


class LAPGAN(GenerativeModel, ProducesPyramid):
    """Laplacian pyramid of GANs; levels 8 px → ×2 → the data resolution (16 px: 2, 32 px: 3, 64 px: 4)."""

    description: ClassVar[str] = "LAPGAN (Denton et al. 2015): one GAN per Laplacian pyramid level, 8 px up"
    conditional: ClassVar[bool] = False
    Config: ClassVar[type] = LAPGANConfig

    def __init__(self, config: LAPGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        classes = data.num_classes if self.conditional else 0
        self.sizes = [COARSEST]  # pixels per level, coarse to fine
        while self.sizes[-1] < data.resolution:
            self.sizes.append(2 * self.sizes[-1])
        c = data.channels
        self.generators: list[nn.Module] = [CoarseGenerator(config.nz, config.coarse_g_hidden, c, classes)]
        self.discriminators: list[nn.Module] = [CoarseDiscriminator(config.coarse_d_hidden, c, classes)]
        for s in self.sizes[1:]:
            self.generators.append(ResidualGenerator(c, config.width, s, classes))
            self.discriminators.append(ResidualDiscriminator(c, config.width, s, classes))
        betas = (config.beta1, config.beta2)
        for k, (g, d) in enumerate(zip(self.generators, self.discriminators, strict=True)):
            for name, net in ((f"g{k}", g), (f"d{k}", d)):
                init_dcgan_weights(net)
                net.to(self.device)
                self.networks[name] = net
                self.optimizers[name] = adam(net.parameters(), config.lr, betas, self.device)

    @property
    def num_levels(self) -> int:
        return len(self.sizes)

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(self.sizes)

    @classmethod
    def check_data(cls, config: LAPGANConfig, data: DataSpec) -> None:
        super().check_data(config, data)
        check_image_data(cls.__name__, data, minimum=2 * COARSEST)

    def _labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        return one_hot(require_labels(labels, n, "LAPGAN", self.device), self.data.num_classes)

    def real_levels(self, images: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        """Per level, coarse to fine, (l_k, target): (None, 8×8 low-pass) then (up(G_{k-1}), L_k)."""
        gauss = [images]  # Gaussian pyramid, fine to coarse
        for _ in self.sizes[1:]:
            gauss.append(downsample(gauss[-1]))
        gauss.reverse()
        levels: list[tuple[torch.Tensor | None, torch.Tensor]] = [(None, gauss[0])]
        for k in range(1, self.num_levels):
            low = upsample(gauss[k - 1])
            levels.append((low, gauss[k] - low))
        return levels

    def _level(
        self, k: int, low: torch.Tensor | None, y: torch.Tensor | None, n: int
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """Level k's fake output (training noise from the global RNG) and its discriminator call."""
        g, d = self.generators[k], self.discriminators[k]
        if low is None:  # level 0: the low-pass image from noise alone
            return g(torch.randn(n, self.config.nz, device=self.device), y), lambda x: d(x, y)
        s = self.sizes[k]
        return g(low, torch.randn(n, 1, s, s, device=self.device), y), lambda h: d(h, low, y)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        n = images.shape[0]
        y = self._labels(labels, n)
        losses: dict[str, torch.Tensor] = {}
        for k, (low, target) in enumerate(self.real_levels(images)):
            fake, discriminate = self._level(k, low, y, n)
            opt_d, opt_g = self.optimizers[f"d{k}"], self.optimizers[f"g{k}"]
            d_loss, g_loss = gan_update(self.discriminators[k], opt_d, opt_g, discriminate, target, fake)
            losses[f"d_loss_{self.sizes[k]}px"] = d_loss
            losses[f"g_loss_{self.sizes[k]}px"] = g_loss
        return {
            "d_loss": torch.stack([v for k, v in losses.items() if k.startswith("d_")]).sum(),
            "g_loss": torch.stack([v for k, v in losses.items() if k.startswith("g_")]).sum(),
            **losses,
        }

    def sample_pyramid(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """The images I_0 … I_{L-1} of the sampling chain, coarse to fine, unclamped.

        All noise is drawn first, z_0 then one plane per finer level, so the draws do not depend
        on the networks. The networks run in eval mode; their modes are restored afterwards.
        """
        y = self._labels(labels, n)
        z = torch.randn(n, self.config.nz, device=self.device, generator=generator)
        planes = [torch.randn(n, 1, s, s, device=self.device, generator=generator) for s in self.sizes[1:]]
        with evaluating(*self.generators):
            images = [self.generators[0](z, y)]
            for g, noise in zip(self.generators[1:], planes, strict=True):
                low = upsample(images[-1])
                images.append(low + g(low, noise, y))
        return images

    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Coarse to fine through the pyramid (:meth:`sample_pyramid`), clamped to [-1, 1]."""
        return self.sample_pyramid(n, labels, generator)[-1].clamp(-1.0, 1.0)


class ConditionalLAPGAN(LAPGAN):
    """Class-conditional LAPGAN (paper §4, CIFAR-10 "CC-LAPGAN"). Not registered by default:
    register it with ``register_model("cc-lapgan")(ConditionalLAPGAN)`` in a plugin module."""

    description: ClassVar[str] = "Class-conditional LAPGAN (Denton et al. 2015): label as an input plane"
    conditional: ClassVar[bool] = True
