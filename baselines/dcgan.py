"""DCGAN: Radford, Metz & Chintala 2016, "Unsupervised representation learning with deep
convolutional generative adversarial networks" (ICLR), trained as in pytorch/examples ``dcgan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mgbench.contract import DataSpec, GenerativeModel
from mgbench_baselines.nets import (
    check_image_data,
    dcgan_discriminator,
    dcgan_generator,
    evaluating,
    gan_optimizers,
    gan_update,
    init_dcgan_weights,
    memory_format,
)


@dataclass(frozen=True)
class DCGANConfig:
    """Hyper-parameters of Radford et al. 2016 (§4: Adam, lr 0.0002, β1 0.5; z of 100 dimensions)."""

    nz: int = 100  # latent dimension
    ngf: int = 64  # generator width (channels of its last hidden layer)
    ndf: int = 64  # discriminator width (channels of its first layer)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU (see the report)


class DCGAN(GenerativeModel):
    """Deep convolutional GAN with the non-saturating loss (Goodfellow et al. 2014, §3)."""

    description: ClassVar[str] = "DCGAN (Radford et al. 2016): all-convolutional GAN, BatchNorm, Adam"
    conditional: ClassVar[bool] = False
    Config: ClassVar[type] = DCGANConfig

    def __init__(self, config: DCGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.format = memory_format(config.channels_last)
        self.netG = self._make_generator(config, data)
        self.netD = self._make_discriminator(config, data)
        for net in (self.netG, self.netD):
            init_dcgan_weights(net)
            net.to(device=self.device, memory_format=self.format)
        self.networks = {"G": self.netG, "D": self.netD}
        self.optimizers = gan_optimizers(self.netG, self.netD, config, self.device)

    @classmethod
    def check_data(cls, config: DCGANConfig, data: DataSpec) -> None:
        super().check_data(config, data)
        check_image_data(cls.__name__, data)

    # The two hooks a conditional variant (CGAN) overrides.
    def _make_generator(self, config: DCGANConfig, data: DataSpec) -> nn.Module:
        return dcgan_generator(config.nz, config.ngf, data.channels, data.resolution)

    def _make_discriminator(self, config: DCGANConfig, data: DataSpec) -> nn.Module:
        return dcgan_discriminator(config.ndf, data.channels, data.resolution)

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.netG(z)

    def _discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.netD(images).flatten()

    def _noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.config.nz, 1, 1, device=self.device, generator=generator)
        return z.contiguous(memory_format=self.format)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        real = images.contiguous(memory_format=self.format)
        fake = self._generate(self._noise(real.shape[0]), labels)
        d_loss, g_loss = gan_update(
            self.netD,
            self.optimizers["D"],
            self.optimizers["G"],
            lambda x: self._discriminate(x, labels),
            real,
            fake,
        )
        return {"d_loss": d_loss, "g_loss": g_loss}

    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` images from G in eval mode (BatchNorm running statistics), so each image depends
        only on its own noise; the networks' train/eval modes are restored afterwards."""
        with evaluating(self.netG):
            return self._generate(self._noise(n, generator), labels).contiguous()
