"""HVAE: a hierarchical VAE with latents at three spatial scales and top-down inference, after
the Ladder VAE (Sønderby, Raiko, Maaløe, Sønderby & Winther 2016, "Ladder variational
autoencoders", NeurIPS) and NVAE (Vahdat & Kautz 2020, "NVAE: a deep hierarchical variational
autoencoder", NeurIPS), kept small.

Latent groups, coarse to fine: a global vector z_1 (``latent_dim``), then maps z_4 and z_8 of
``z_channels`` channels at 4×4 and 8×8 pixels (whatever the image size: 16, 32 or 64 px).

* Bottom-up pass (encoder): strided convolutions from the image down to features h_8 at 8 px,
  h_4 at 4 px and the top group's posterior q(z_1 | x) from h_4.
* Top-down pass (decoder), NVAE §3 / Ladder VAE §2: from z_1 to a 4 px state d_4; for each
  group l the prior p(z_l | z_{<l}) = N(μ_p, σ_p) is computed from the state d_l alone and the
  posterior q(z_l | x, z_{<l}) from d_l together with the encoder's h_l. The posterior is
  NVAE's residual parameterisation (§3.2, eq. 2), a correction of the prior:
  q = N(μ_p + Δμ, σ_p·Δσ), so KL(q‖p) = ½ Σ (Δμ²/σ_p² + Δσ² − log Δσ² − 1) (NVAE applies its
  soft clamp 5·tanh(·/5) to the summed log σ, as here). z_l (sampled from q in training, from p
  when sampling) joins the state, which is upsampled to the next group and finally decoded to
  the image mean x̂ (Tanh). The top group's prior is N(0, I).
* Loss per image: ‖x − x̂‖² / (2σ²) + β Σ_l KL_l, with a Gaussian likelihood of fixed σ = 1 on
  [−1, 1] pixels. σ = 1 is the plain VAE's default (:mod:`baselines.vae`, chosen there by
  measuring prior samples' FID over σ ∈ [0.1, 2]), kept so the two differ only in the latent
  hierarchy. KL per group is summed over its latent units and averaged over the batch; each
  is returned (``kl_1x1``, ``kl_4px``, ``kl_8px``): a group whose KL stays near 0 has collapsed
  to its prior and carries no information about x.
* KL warm-up (NVAE's ``kl_coeff``, Sønderby et al. §2.3): β = max(min(t / T, 1), β_min) at step
  t with T = 30 % of the steps given by ``on_train_start`` (NVAE's ``kl_anneal_portion`` 0.3,
  ``kl_const_coeff`` β_min = 1e-4; its ``kl_const_portion`` of 1e-4 is under one step here and
  left out). Without a budget β = 1: the plain ELBO. The step count t is a buffer of the
  decoder, so it is checkpointed with the networks and a resume continues the schedule exactly.

Blocks: convolutions with BatchNorm and Swish (SiLU), as NVAE's ``res_bnswish`` cells, one
residual cell at each latent scale in both passes. NVAE's other parts are left out to stay
small: many groups per scale, KL balancing, spectral regularisation, normalising flows, the
discretised logistic mixture likelihood and sampling at reduced temperature.

Optimiser: Adam (Kingma & Ba 2015), lr 1e-3, as the plain VAE, instead of NVAE's Adamax at
1e-2 with cosine decay (tuned for hundreds of epochs). Widths: NVAE uses 20 latent channels per
group (``num_latent_per_group``, the default here) and 32 encoder/decoder channels at its
first scale doubling per halving; here ``width`` channels at the image resolution, doubling
per halving up to 4·width. Unconditional; trains in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from mgbench.contract import DataSpec, GenerativeModel, Reconstructs
from mgbench_baselines.nets import adam, check_image_data, evaluating, init_dcgan_weights

GROUP_SIZES = (4, 8)  # pixels of the latent maps below the global vector
GROUP_NAMES = ("kl_1x1", "kl_4px", "kl_8px")


@dataclass(frozen=True)
class HVAEConfig:
    latent_dim: int = 32  # units of the global latent z_1
    z_channels: int = 20  # channels of the 4 px and 8 px latent maps (NVAE num_latent_per_group 20)
    width: int = 32  # channels at the image resolution, ×2 per halving up to 4·width (NVAE: 32)
    sigma: float = 1.0  # std of the Gaussian likelihood on [-1, 1] pixels (see the module docstring)
    kl_warmup: float = 0.3  # share of the steps over which β rises linearly (NVAE kl_anneal_portion)
    kl_min: float = 1e-4  # β's floor during warm-up (NVAE kl_const_coeff)
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999


class GroupStats(NamedTuple):
    """One latent group of a top-down pass: posterior and prior (mean, log std) and the z used."""

    mu_q: torch.Tensor
    log_sigma_q: torch.Tensor
    mu_p: torch.Tensor
    log_sigma_p: torch.Tensor
    z: torch.Tensor


def soft_clamp(x: torch.Tensor) -> torch.Tensor:
    """NVAE's ``soft_clamp5``: 5·tanh(x/5), keeps log σ in (−5, 5) with a gradient everywhere."""
    return 5.0 * torch.tanh(x / 5.0)


def gaussian_kl(
    mu_q: torch.Tensor, log_sigma_q: torch.Tensor, mu_p: torch.Tensor, log_sigma_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) per image, summed over all but the batch dimension.

    Per unit: log σ_p − log σ_q + (σ_q² + (μ_q − μ_p)²) / (2σ_p²) − ½; with σ_q = σ_p·Δσ and
    μ_q = μ_p + Δμ that is NVAE's eq. 2, ½(Δμ²/σ_p² + Δσ² − log Δσ² − 1).
    """
    var_p = torch.exp(2 * log_sigma_p)
    kl = log_sigma_p - log_sigma_q + (torch.exp(2 * log_sigma_q) + (mu_q - mu_p).square()) / (2 * var_p) - 0.5
    return kl.flatten(1).sum(dim=1)


def kl_weight(step: torch.Tensor, warmup_steps: float, minimum: float) -> torch.Tensor:
    """NVAE ``utils.kl_coeff``: max(min(step / warmup_steps, 1), minimum); 1 when there is no warm-up."""
    if warmup_steps <= 0:
        return torch.ones((), device=step.device)
    return (step.float() / warmup_steps).clamp(minimum, 1.0)


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.SiLU(True)]


def up_bn(cin: int, cout: int) -> list[nn.Module]:
    """Transposed convolution (4, 2, 1), BatchNorm, Swish: s → 2s."""
    return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU(True)]


class ResidualCell(nn.Module):
    """x + (BN-Swish-conv3×3-BN-Swish-conv3×3)(x), NVAE's ``res_bnswish`` cell (without its squeeze-excitation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, 1, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def widths(resolution: int, width: int) -> dict[int, int]:
    """Channels per feature-map size, from the image resolution down to 4 px: width, 2·width, up to 4·width."""
    sizes = [resolution]
    while sizes[-1] > GROUP_SIZES[0]:
        sizes.append(sizes[-1] // 2)
    return {s: width * min(resolution // s, 4) for s in sizes}


class Encoder(nn.Module):
    """Bottom-up pass: image → (q(z_1|x) as (μ, log σ), h_4, h_8).

    At 32 px, width w: C x 32² → w x 32² → 2w x 16² → 4w x 8² (h_8) → 4w x 4² (h_4) → 2·latent_dim.
    """

    def __init__(self, channels: int, resolution: int, width: int, latent_dim: int) -> None:
        super().__init__()
        ch = widths(resolution, width)
        self.stem = nn.Sequential(*conv_bn(channels, ch[resolution]))  # w x res x res
        down: list[nn.Module] = []
        s = resolution
        while s > GROUP_SIZES[-1]:  # halvings down to 8 px
            down += conv_bn(ch[s], ch[s // 2], 4, 2, 1)
            s //= 2
        self.to_8 = nn.Sequential(*down, ResidualCell(ch[8]))  # ch8 x 8 x 8
        self.to_4 = nn.Sequential(*conv_bn(ch[8], ch[4], 4, 2, 1), ResidualCell(ch[4]))  # ch4 x 4 x 4
        self.top = nn.Linear(ch[4] * 16, 2 * latent_dim)  # μ and log σ of q(z_1 | x)

    def forward(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]:
        h8 = self.to_8(self.stem(x))
        h4 = self.to_4(h8)
        mu, log_sigma = self.top(h4.flatten(1)).chunk(2, dim=1)
        return (mu, soft_clamp(log_sigma)), h4, h8


class LatentGroup(nn.Module):
    """One group of the top-down pass at one size: prior from the state d, posterior correction from
    (d, h), then the state absorbs z (NVAE's decoder combiner: a 1×1 convolution over [d, z])."""

    def __init__(self, channels: int, z_channels: int) -> None:
        super().__init__()
        self.prior = nn.Conv2d(channels, 2 * z_channels, 3, 1, 1)  # (μ_p, log σ_p)
        self.posterior = nn.Conv2d(2 * channels, 2 * z_channels, 3, 1, 1)  # (Δμ, log Δσ)
        self.combine = nn.Sequential(nn.Conv2d(channels + z_channels, channels, 1), ResidualCell(channels))

    def forward(
        self, d: torch.Tensor, h: torch.Tensor | None, eps: torch.Tensor | None
    ) -> tuple[torch.Tensor, GroupStats]:
        """``h`` None: z from the prior; ``eps`` None: z is the mean of the distribution it is drawn from."""
        mu_p, log_sigma_p = self.prior(d).chunk(2, dim=1)
        log_sigma_p = soft_clamp(log_sigma_p)
        if h is None:
            mu_q, log_sigma_q = mu_p, log_sigma_p
        else:
            delta_mu, delta_log_sigma = self.posterior(torch.cat([d, h], dim=1)).chunk(2, dim=1)
            mu_q, log_sigma_q = mu_p + delta_mu, soft_clamp(log_sigma_p + delta_log_sigma)
        z = mu_q if eps is None else mu_q + torch.exp(log_sigma_q) * eps
        return self.combine(torch.cat([d, z], dim=1)), GroupStats(mu_q, log_sigma_q, mu_p, log_sigma_p, z)


class Decoder(nn.Module):
    """Top-down pass: z_1 → d_4 → group 4 px → up → d_8 → group 8 px → up to the image (Tanh).

    At 32 px, width w: latent_dim → 4w x 4² → 4w x 8² → 2w x 16² → w x 32² → C x 32².
    ``step`` counts training steps for the KL warm-up (a buffer: checkpointed with the weights).
    """

    def __init__(self, channels: int, resolution: int, width: int, latent_dim: int, z_channels: int) -> None:
        super().__init__()
        ch = widths(resolution, width)
        self.top = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, ch[4], 4, 1, 0, bias=False), nn.BatchNorm2d(ch[4]), nn.SiLU(True)
        )  # ch4 x 4 x 4
        self.groups = nn.ModuleList(LatentGroup(ch[s], z_channels) for s in GROUP_SIZES)
        self.up_to_8 = nn.Sequential(*up_bn(ch[4], ch[8]))  # ch8 x 8 x 8
        tail: list[nn.Module] = []
        s = GROUP_SIZES[-1]
        while s < resolution:
            tail += up_bn(ch[s], ch[2 * s])
            s *= 2
        self.tail = nn.Sequential(*tail, nn.Conv2d(ch[resolution], channels, 3, 1, 1), nn.Tanh())  # C x res x res
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def forward(
        self, z1: torch.Tensor, features: list[torch.Tensor] | None, eps: list[torch.Tensor | None]
    ) -> tuple[torch.Tensor, list[GroupStats]]:
        """Image mean and the stats of the 4 px and 8 px groups; ``features`` (h_4, h_8) or None for the prior."""
        d = self.top(z1[:, :, None, None])
        stats = []
        for k, group in enumerate(self.groups):
            if k > 0:
                d = self.up_to_8(d)
            d, group_stats = group(d, None if features is None else features[k], eps[k])
            stats.append(group_stats)
        return self.tail(d), stats


class HVAE(GenerativeModel, Reconstructs):
    """Hierarchical VAE (latents at 1×1, 4 px, 8 px), top-down inference with NVAE's residual posterior."""

    description: ClassVar[str] = "HVAE (Ladder VAE / NVAE): latents at 1x1, 4 and 8 px, top-down inference, KL warm-up"
    conditional: ClassVar[bool] = False
    Config: ClassVar[type] = HVAEConfig

    def __init__(self, config: HVAEConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        c, res = data.channels, data.resolution
        self.encoder = Encoder(c, res, config.width, config.latent_dim)
        self.decoder = Decoder(c, res, config.width, config.latent_dim, config.z_channels)
        for net in (self.encoder, self.decoder):
            init_dcgan_weights(net)
            net.to(self.device)
        self.networks = {"encoder": self.encoder, "decoder": self.decoder}
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizers = {"adam": adam(params, config.lr, (config.beta1, config.beta2), self.device)}
        self.warmup_steps = 0.0  # set by on_train_start; 0: β = 1 throughout

    @classmethod
    def check_data(cls, config: HVAEConfig, data: DataSpec) -> None:
        super().check_data(config, data)
        check_image_data(cls.__name__, data)

    def on_train_start(self, steps: int, batch_size: int) -> None:
        self.warmup_steps = self.config.kl_warmup * steps

    @property
    def beta(self) -> torch.Tensor:
        """The KL weight of the next training step."""
        return kl_weight(self.decoder.step, self.warmup_steps, self.config.kl_min)

    def _latent_shapes(self, n: int) -> list[tuple[int, ...]]:
        zc = self.config.z_channels
        return [(n, self.config.latent_dim)] + [(n, zc, s, s) for s in GROUP_SIZES]

    def infer(self, images: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, list[GroupStats]]:
        """Posterior pass: the image mean x̂ and every group's stats, coarse to fine (z_1, z_4, z_8).

        ``sample``: z drawn from q with noise from the global RNG (training); otherwise the means.
        """
        (mu1, log_sigma1), h4, h8 = self.encoder(images)
        eps = [torch.randn(shape, device=self.device) if sample else None for shape in self._latent_shapes(len(images))]
        z1 = mu1 if eps[0] is None else mu1 + torch.exp(log_sigma1) * eps[0]
        zeros = torch.zeros_like(mu1)
        top = GroupStats(mu1, log_sigma1, zeros, zeros, z1)  # prior N(0, I)
        x_hat, stats = self.decoder(z1, [h4, h8], eps[1:])
        return x_hat, [top, *stats]

    def decode_prior(self, eps: list[torch.Tensor]) -> tuple[torch.Tensor, list[GroupStats]]:
        """Prior pass from standard-normal noise per group: z_1 = ε_1, z_l = μ_p + σ_p ε_l."""
        x_hat, stats = self.decoder(eps[0], None, eps[1:])
        zeros = torch.zeros_like(eps[0])
        return x_hat, [GroupStats(zeros, zeros, zeros, zeros, eps[0]), *stats]

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        opt = self.optimizers["adam"]
        opt.zero_grad(set_to_none=True)
        x_hat, stats = self.infer(images)
        recon = (x_hat - images).square().flatten(1).sum(dim=1).mean() / (2 * self.config.sigma**2)
        kls = [gaussian_kl(g.mu_q, g.log_sigma_q, g.mu_p, g.log_sigma_p).mean() for g in stats]
        kl = torch.stack(kls).sum()
        loss = recon + self.beta * kl
        loss.backward()
        opt.step()
        self.decoder.step += 1
        return {
            "loss": loss.detach(),
            "nelbo": (recon + kl).detach(),  # the bound itself (β = 1), comparable across steps
            "recon": recon.detach(),
            **{name: value.detach() for name, value in zip(GROUP_NAMES, kls, strict=True)},
        }

    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decoder means of one ancestral pass through the priors; the noise of every group is drawn
        first (z_1, z_4, z_8, in that order) from ``generator``; decoder in eval mode, modes restored."""
        eps = [torch.randn(shape, device=self.device, generator=generator) for shape in self._latent_shapes(n)]
        with evaluating(self.decoder):
            return self.decode_prior(eps)[0].contiguous()

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Decode the posterior means of every group: deterministic, in [-1, 1] (Tanh output)."""
        with evaluating(self.encoder, self.decoder):
            return self.infer(images.to(self.device), sample=False)[0].contiguous()
