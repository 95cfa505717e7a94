"""Convolutional VAE: Kingma & Welling 2014, "Auto-encoding variational Bayes" (ICLR).

Encoder and decoder are the DCGAN discriminator and generator (Radford et al. 2016) with the
encoder's last layer widened to (μ, log σ²) of a diagonal Gaussian posterior q(z|x).

Loss per image, the negative ELBO (Kingma & Welling eq. 10, KL term from their appendix B):

    ‖x − x̂(z)‖² / (2σ²)  +  ½ Σ_j (μ_j² + σ_j² − log σ_j² − 1),    z = μ + σ_q ⊙ ε,  ε ~ N(0, I)

where x̂ is the decoder mean of a Gaussian likelihood N(x̂, σ² I) with a fixed σ (the constant
D·log(σ√2π) is left out: it has no gradient). σ sets the balance of the two terms; the loss is a
β-VAE's on the plain squared error with β = 2σ². A small σ buys sharp reconstructions with many
nats of KL, and prior samples z ~ N(0, I) then land where no posterior put mass: garbled images.
A larger σ pays for less detail with posteriors the prior covers, so samples are coherent shapes.
Measured on prior samples (one seed, 1,500 steps × 32, `mgbench run --models vae`, domain FID):

    σ              0.1    0.3    0.5    0.7    1.0    1.5    2.0
    shapes 32 px   213    153    114    100     84     78     71     (uniform noise: 108)
    MNIST          26.5    -     14.2    -     15.5    -      -

σ = 1 (a unit-variance likelihood on [−1, 1] pixels) is the default: near the best on both
(MNIST is past its best, shapes still gains a little beyond it). What it gives up, also
measured: reconstruction LPIPS 0.008 against 0.002 at σ = 0.1 (MNIST). No σ here renders the
shapes' 2-4 px stripes (fine modes covered: 2 of 4 for every σ, as for noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from mgbench.contract import DataSpec, GenerativeModel, Reconstructs
from mgbench_baselines.nets import (
    adam,
    check_image_data,
    dcgan_discriminator,
    dcgan_generator,
    evaluating,
    init_dcgan_weights,
    memory_format,
)


@dataclass(frozen=True)
class VAEConfig:
    """Hyper-parameters; Adam at 1e-3 is the common setting for convolutional VAEs (Kingma & Ba 2015)."""

    latent_dim: int = 64
    ngf: int = 64  # decoder width
    ndf: int = 64  # encoder width
    sigma: float = 1.0  # std of the Gaussian likelihood on [-1, 1] pixels (see the module docstring)
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    channels_last: bool = True


class VAE(GenerativeModel, Reconstructs):
    """Gaussian VAE with DCGAN-shaped encoder/decoder; samples are decoder means of z ~ N(0, I)."""

    description: ClassVar[str] = "VAE (Kingma & Welling 2014): convolutional, Gaussian likelihood, Adam 1e-3"
    conditional: ClassVar[bool] = False
    Config: ClassVar[type] = VAEConfig

    def __init__(self, config: VAEConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.format = memory_format(config.channels_last)
        # encoder: image → (2·latent) x 1 x 1, split into μ and log σ²
        self.encoder = dcgan_discriminator(
            config.ndf, data.channels, data.resolution, out_features=2 * config.latent_dim, out_bias=True
        )
        # decoder: latent x 1 x 1 → image in [-1, 1]
        self.decoder = dcgan_generator(config.latent_dim, config.ngf, data.channels, data.resolution)
        for net in (self.encoder, self.decoder):
            init_dcgan_weights(net)
            net.to(device=self.device, memory_format=self.format)
        self.networks = {"encoder": self.encoder, "decoder": self.decoder}
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizers = {"adam": adam(params, config.lr, (config.beta1, config.beta2), self.device)}

    @classmethod
    def check_data(cls, config: VAEConfig, data: DataSpec) -> None:
        super().check_data(config, data)
        check_image_data(cls.__name__, data)

    def _encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.encoder(images.contiguous(memory_format=self.format)).flatten(1).float()
        mu, logvar = stats.chunk(2, dim=1)
        return mu, logvar

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z[:, :, None, None].contiguous(memory_format=self.format))

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        opt = self.optimizers["adam"]
        opt.zero_grad(set_to_none=True)
        mu, logvar = self._encode(images)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation (K&W §2.4)
        recon_images = self._decode(z).float()
        n = images.shape[0]
        recon = (recon_images - images).square().sum() / (2 * self.config.sigma**2 * n)
        kl = 0.5 * (mu.square() + logvar.exp() - logvar - 1).sum() / n
        loss = recon + kl
        loss.backward()
        opt.step()
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decoder means of z ~ N(0, I), decoder in eval mode; modes restored afterwards."""
        with evaluating(self.decoder):
            z = torch.randn(n, self.config.latent_dim, device=self.device, generator=generator)
            return self._decode(z).contiguous()

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean μ(x): deterministic, in [-1, 1] (Tanh output)."""
        with evaluating(self.encoder, self.decoder):
            mu, _ = self._encode(images.to(self.device))
            return self._decode(mu).contiguous()
