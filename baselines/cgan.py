"""Class-conditional DCGAN: Mirza & Osindero 2014, "Conditional generative adversarial nets"
(arXiv:1411.1784), on the networks of Radford et al. 2016.

The condition y enters both networks by concatenation, as in Mirza & Osindero §3.2:
G gets concat(z, one-hot y) as its input vector; D gets the one-hot y as K constant planes
stacked onto the image channels (the convolutional form of their concatenated input). A
projection discriminator (Miyato & Koyama 2018) is the stronger modern choice; concatenation is
kept because it is the method the name CGAN refers to.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from mgbench.contract import DataSpec
from mgbench_baselines.dcgan import DCGAN, DCGANConfig
from mgbench_baselines.nets import dcgan_discriminator, dcgan_generator, evaluating, one_hot, require_labels


class CGAN(DCGAN):
    """DCGAN with the class label concatenated to G's noise and to D's input planes."""

    description: ClassVar[str] = "CGAN (Mirza & Osindero 2014): class-conditional DCGAN, label concatenated"
    conditional: ClassVar[bool] = True
    Config: ClassVar[type] = DCGANConfig

    def _make_generator(self, config: DCGANConfig, data: DataSpec) -> nn.Module:
        return dcgan_generator(config.nz + data.num_classes, config.ngf, data.channels, data.resolution)

    def _make_discriminator(self, config: DCGANConfig, data: DataSpec) -> nn.Module:
        return dcgan_discriminator(config.ndf, data.channels + data.num_classes, data.resolution)

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        y = one_hot(self._require(labels, z.shape[0]), self.data.num_classes, z.dtype)
        return self.netG(torch.cat([z, y[:, :, None, None].to(memory_format=self.format)], dim=1))

    def _discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        n, _, h, w = images.shape
        y = one_hot(self._require(labels, n), self.data.num_classes, images.dtype)
        planes = y[:, :, None, None].expand(n, y.shape[1], h, w)  # num_classes x h x w
        return self.netD(torch.cat([images, planes], dim=1).contiguous(memory_format=self.format)).flatten()

    def _require(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        return require_labels(labels, n, type(self).__name__, self.device)

    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` images, image i of class ``labels[i]`` (required); G in eval mode, modes restored."""
        labels = self._require(labels, n)
        with evaluating(self.netG):
            return self._generate(self._noise(n, generator), labels).contiguous()
