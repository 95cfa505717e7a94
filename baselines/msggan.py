"""MSG-GAN: Karnewar & Wang 2020, "MSG-GAN: Multi-scale gradients for generative adversarial
networks" (CVPR), as the paper's MSG-ProGAN: ProGAN's networks without progressive growing.

The generator emits an image at every block, 4 px … R px, through a 1×1 toRGB per block
(:class:`~baselines.scale_blocks.ProGANGenerator`). The discriminator sees the finest image
through a 1×1 fromRGB at its input and every coarser one at the block of the matching size,
where it joins the features through the paper's combine function φ_simple (§3.1):

    a'_j = d_j(φ(o_(k−j), a'_(j−1))),   φ_simple(o, a') = [o; a']  (channel-wise concatenation)

with no learned projection of the image (the paper's ablation finds φ_simple best for
MSG-ProGAN; φ_lin_cat, a 1×1 fromRGB per scale before concatenation, is what the authors'
PyTorch code BMSG-GAN uses; φ_cat_lin is their MSG-StyleGAN's). So G's every block gets gradient
straight from D at its own scale: no fade-in is needed. Real images of the coarser scales are
made by 2×2 average pooling, as in the authors' code.

Loss: relativistic average hinge (Jolicoeur-Martineau 2019, ICLR), the loss of the authors'
MSG-ProGAN code (BMSG-GAN ``train.py`` default "relativistic-hinge"). Optimiser: Adam with
lr 0.003, β1 = 0, β2 = 0.99, ε = 1e-8 for both networks (the paper's fixed hyper-parameters, and
the official code's ``G_opt`` / ``D_opt``), equalised learning rate, pixel norm in G, and a
minibatch-stddev layer (group size 4) at the start of every block of D, as in the official
discriminator (msg-stylegan-tf ``D_basic``, "the same as MSG-ProGAN's"; BMSG-GAN has one before
its last block only). Samples come from an exponential running average of G's weights, decay
0.999 (BMSG-GAN ``use_ema``, as in ProGAN), with ProGAN's warm-up (``scale_blocks.ema_decay_at``).

Changes from the paper, for a CPU: widths and memory format as in :mod:`baselines.progan`
(paper: 512 feature maps up to 32 px, halved per doubling beyond; defaults here: 128 at 4 px,
halved per doubling above 4 px; channels-last).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mgbench.contract import DataSpec, GenerativeModel, ProducesPyramid
from mgbench.errors import UsageError
from mgbench_baselines.nets import check_image_data, evaluating, gan_optimizers, memory_format
from mgbench_baselines.scale_blocks import (
    DownBlock,
    EqualizedConv2d,
    MinibatchStdDev,
    ProGANGenerator,
    RunningAverage,
    ScoreBlock,
    downsample_to,
    feature_maps,
    lrelu,
    resolutions_up_to,
)


@dataclass(frozen=True)
class MSGGANConfig:
    nz: int = 512  # latent dimension, z on the unit hypersphere (paper: 512)
    ngf: int = 128  # G's feature maps up to width_halves_above px (paper: 512)
    ndf: int = 128  # D's feature maps, the same rule (paper: 512)
    width_halves_above: int = 4  # px; widths halve per doubling above it (paper: 32)
    lr: float = 3e-3  # both networks (paper)
    beta1: float = 0.0
    beta2: float = 0.99
    stddev_group: int = 4  # minibatch-stddev group size
    ema_decay: float = 0.999  # running average of G's weights for sampling; 0: sample G itself
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU


def rahinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's relativistic average hinge loss on its scores for a real and a fake batch:
    E_r[max(0, 1 − (D(x_r) − E_f D(x_f)))] + E_f[max(0, 1 + (D(x_f) − E_r D(x_r)))]."""
    return F.relu(1.0 - (real - fake.mean())).mean() + F.relu(1.0 + (fake - real.mean())).mean()


def rahinge_g_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """G's: the same with the roles of real and fake swapped."""
    return F.relu(1.0 + (real - fake.mean())).mean() + F.relu(1.0 - (fake - real.mean())).mean()


class MultiScaleGenerator(ProGANGenerator):
    """ProGAN's generator with every toRGB in use: z → [4 px, 8 px, …, R px] images."""

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        return [rgb(h) for rgb, h in zip(self.to_rgb, self.features(z), strict=True)]


class MultiScaleDiscriminator(nn.Module):
    """[4 px, …, R px] images (coarse to fine) → B scores; the image at each scale is
    concatenated (φ_simple) to the features of the block that works at that scale."""

    def __init__(self, width: int, channels: int, resolution: int, group_size: int, halves_above: int = 32) -> None:
        super().__init__()
        self.sizes = resolutions_up_to(resolution)
        w = [feature_maps(s, width, halves_above) for s in self.sizes]
        top = len(w) - 1
        self.from_rgb = EqualizedConv2d(channels, w[top], 1)  # the finest image only
        # blocks[k - 1] takes the features at sizes[k] (with that scale's image below the top)
        # plus one minibatch-stddev map to sizes[k - 1]
        self.blocks = nn.ModuleList()
        for k in range(1, top + 1):
            inputs = w[k] + (channels if k < top else 0) + 1
            self.blocks.append(nn.Sequential(MinibatchStdDev(group_size), DownBlock(inputs, w[k], w[k - 1])))
        self.score = ScoreBlock(w[0] + channels, w[0], group_size)

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        if [x.shape[-1] for x in images] != self.sizes:
            raise ValueError(f"expected images at {self.sizes} px, got {[x.shape[-1] for x in images]}")
        top = len(self.sizes) - 1
        h = lrelu(self.from_rgb(images[top]))  # w_top x R x R
        for k in range(top, 0, -1):
            if k < top:
                h = torch.cat([h, images[k]], dim=1)  # φ_simple
            h = self.blocks[k - 1](h)  # w_(k-1) x sizes[k-1] x sizes[k-1]
        return self.score(torch.cat([h, images[0]], dim=1))


class MSGGAN(GenerativeModel, ProducesPyramid):
    """Multi-scale gradients GAN: one G and one D joined at every resolution, 4 px → data."""

    description: ClassVar[str] = "MSG-GAN (Karnewar & Wang 2020): G's every scale fed to D, RaHinge, no growing"
    conditional: ClassVar[bool] = False
    Config: ClassVar[type] = MSGGANConfig

    def __init__(self, config: MSGGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.sizes = resolutions_up_to(data.resolution)
        c, r = data.channels, data.resolution
        self.format = memory_format(config.channels_last)
        self.netG = MultiScaleGenerator(config.nz, config.ngf, c, r, config.width_halves_above)
        self.netG.to(self.device, memory_format=self.format)
        self.netD = MultiScaleDiscriminator(config.ndf, c, r, config.stddev_group, config.width_halves_above)
        self.netD.to(self.device, memory_format=self.format)
        self.g_ema = RunningAverage(self.netG, config.ema_decay) if config.ema_decay > 0 else None
        self.networks = {"G": self.netG, "D": self.netD}
        self.optimizers = gan_optimizers(self.netG, self.netD, config, self.device)

    @classmethod
    def check_data(cls, config: MSGGANConfig, data: DataSpec) -> None:
        super().check_data(config, data)
        check_image_data(cls.__name__, data, minimum=8)

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(self.sizes)

    def extra_state(self) -> dict[str, Any]:
        return {} if self.g_ema is None else self.g_ema.state()

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.g_ema is None:
            return
        if not RunningAverage.in_state(state):
            raise UsageError("the checkpoint lacks MSG-GAN's running average of G",
                             "load a checkpoint written by MSG-GAN with the same config")
        self.g_ema.load(state)

    def real_pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The real batch at every resolution, coarse to fine (average pooling)."""
        return [downsample_to(images, s) for s in self.sizes]

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        reals = self.real_pyramid(images.contiguous(memory_format=self.format))
        z = torch.randn(images.shape[0], self.config.nz, device=self.device)
        fakes = self.netG(z)

        opt_d, opt_g = self.optimizers["D"], self.optimizers["G"]
        opt_d.zero_grad(set_to_none=True)
        d_loss = rahinge_d_loss(self.netD(reals), self.netD([f.detach() for f in fakes]))
        d_loss.backward()
        opt_d.step()

        opt_g.zero_grad(set_to_none=True)
        self.netD.requires_grad_(False)  # G's step needs no gradient for D's weights
        try:
            with torch.no_grad():  # the relativistic loss needs the updated D's real scores; no gradient flows there
                real_scores = self.netD(reals)
            g_loss = rahinge_g_loss(real_scores, self.netD(fakes))
            g_loss.backward()
        finally:
            self.netD.requires_grad_(True)
        opt_g.step()
        if self.g_ema is not None:
            self.g_ema.update()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    def sample_pyramid(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """G's image at every resolution for one batch of z, coarse to fine, unclamped."""
        z = torch.randn(n, self.config.nz, device=self.device, generator=generator)
        netG = self.g_ema.network if self.g_ema is not None else self.netG
        with evaluating(netG):
            return [x.contiguous() for x in netG(z)]

    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The finest of G's outputs, clamped to [-1, 1], from the running average of G."""
        return self.sample_pyramid(n, labels, generator)[-1].clamp(-1.0, 1.0)
