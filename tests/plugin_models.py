"""A model from outside mgbench, registered with the public decorator and loaded with --plugin.

It fits a per-pixel Gaussian by maximum likelihood: trivial, but a real generative model that
exercises the same contract as the baselines.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mgbench import DataSpec, GenerativeModel, register_model


class PixelGaussianNet(nn.Module):
    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(shape))
        self.log_std = nn.Parameter(torch.zeros(shape))


@register_model("pixel-gaussian")
class PixelGaussian(GenerativeModel):
    """Independent Gaussian per pixel, fitted by maximum likelihood."""

    description = "per-pixel Gaussian (test plugin)"

    @dataclass(frozen=True)
    class Config:
        lr: float = 0.05

    def __init__(self, config: Config, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.net = PixelGaussianNet((data.channels, data.resolution, data.resolution)).to(device)
        self.networks = {"net": self.net}
        self.optimizers = {"opt": torch.optim.Adam(self.net.parameters(), lr=config.lr)}

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        opt = self.optimizers["opt"]
        opt.zero_grad(set_to_none=True)
        z = (images - self.net.mean) * torch.exp(-self.net.log_std)
        nll = (0.5 * z**2 + self.net.log_std).mean()
        nll.backward()
        opt.step()
        return {"nll": nll.detach()}

    def sample(self, n: int, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn((n, *self.net.mean.shape), generator=generator, device=self.device)
        with torch.no_grad():
            return (self.net.mean + noise * self.net.log_std.exp()).clamp(-1, 1)


@register_model("test-diverges")
class Diverges(PixelGaussian):
    """Its loss turns NaN after a few steps: the job must end with status ``diverged``."""

    description = "diverges (test plugin)"

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        losses = super().train_step(images, labels)
        self.steps = getattr(self, "steps", 0) + 1
        return {"nll": losses["nll"] * (float("nan") if self.steps > 5 else 1.0)}


@register_model("test-raises")
class Raises(PixelGaussian):
    """Raises inside a training step: the job must end with status ``failed``."""

    description = "raises (test plugin)"

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        raise RuntimeError("boom in train_step")


@register_model("test-dies")
class Dies(PixelGaussian):
    """Kills its own process (as the OOM killer would): the job must end with status ``crashed``."""

    description = "dies (test plugin)"

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")
