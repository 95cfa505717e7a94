"""HierGAN: a hierarchical generator trained jointly against a multi-scale discriminator.

Generator. A main generator draws the global structure at 8×8 from z; one auxiliary generator
per finer level of a Laplacian pyramid (:mod:`mgbench.pyramid`, the 5×5 binomial kernel of
Burt & Adelson 1983) adds that level's band-pass detail to the upsampled coarser image:

    I_0 = G_main(z),     I_k = up(I_{k-1}) + G_aux,k(up(I_{k-1}), z_k),     sample = clamp(I_{L-1}, −1, 1)

for levels 8 → 16 → … → the data resolution. Each G_aux,k is a small U-Net (Ronneberger et al.
2015, :mod:`baselines.unet`) on the upsampled image with the noise z_k as an extra plane (as
LAPGAN's "4th colour plane"); its output is signed (no Tanh), as a band is. The residual
composition is LAPGAN's (Denton et al. 2015, NeurIPS, §3); the coarse-to-fine split into a
global generator and local enhancers is pix2pixHD's (Wang et al. 2018, "High-resolution image
synthesis and semantic manipulation with conditional GANs", CVPR, §3.2), here in image space.

Why 8 px: on the shapes data at 32 px the coarse factor (shape, position, size, colour) is
still legible at 8 px while the 2-4 px stripes are gone after those two halvings, so G_main
carries the global structure and the auxiliary generators the texture; 8 px is also LAPGAN's
coarsest level, so the two pyramid models are scored at the same resolutions.

Training, unlike LAPGAN (which trains each level on the real pyramid on its own): all levels
are trained JOINTLY, end to end, through the final image:

    min_{G_main, G_aux} max_{D_1..D_K, D_0}  Σ_k L_GAN(G, D_k) + λ_FM Σ_k L_FM(G, D_k) + L_GAN(G_main, D_0)

* D_1 … D_K: pix2pixHD's multi-scale discriminator (§3.2): K = 3 identical PatchGAN
  discriminators (their ``NLayerDiscriminator``: 4×4 convolutions, padding 2, ``n_layers_D`` = 3
  strided ones, then one of stride 1 and a 1-channel output map; InstanceNorm, LeakyReLU 0.2;
  ``d_norm = "none"`` leaves InstanceNorm out, an ablation),
  D_k on level k−1 of the OUTPUT's Gaussian pyramid: the image, its 2× and its 4×
  downsampling. pix2pixHD downsamples with a 3×3 average pool; here the pyramid's binomial
  filter, so that the discriminator scales are exactly the pyramid the harness scores. The
  coarsest scale stays ≥ 8 px: at 16 px data there are two scales (16, 8).
* L_FM: discriminator feature matching, λ_FM = 10 (pix2pixHD eq. 4): the mean absolute
  difference between D_k's intermediate features (every layer but the output) on real and on
  fake images, summed over layers and scales, the real features held constant. (Their code
  also scales it by 1/K, i.e. λ_FM = 10/3; we follow the paper.) pix2pixHD compares real image
  i with the fake made from ITS label map; unconditionally, real i and fake i are no pair, and
  that L1 pulls every fake towards the median real image: the coarse level collapsed to one
  colour and shape on every seed (reports/multiscale-shapes-cpu, swd_8px 697 against noise
  359). So by default the features are compared as batch means, the unconditional feature
  matching of Salimans et al. 2016 ("Improved techniques for training GANs", §3.1), with
  pix2pixHD's L1 and λ (``feature_matching = "batch_mean"``; ``"paired"`` is pix2pixHD's).
* L_GAN: least squares (LSGAN, Mao et al. 2017), pix2pixHD's default: D minimises
  ½[(D(x) − 1)² + D(G(z))²], G minimises (D(G(z)) − 1)², each averaged over D's output map. It
  is kept because λ_FM = 10 was tuned against it, and its gradient does not vanish on the
  fakes D rejects confidently.
* D_0 (L_main): one more PatchGAN on I_0 against the real 8 px low-pass (the Gaussian pyramid's
  8 px level), with the same LSGAN loss. It anchors G_main to the low-pass band, so the
  pyramid that :meth:`HierGAN.sample_pyramid` returns is a pyramid (the harness scores I_0
  against the real 8 px images); ``coarse_adv = False`` turns it off.
* The update order is pix2pixHD's: one forward pass of D on real and fake, then a G step and
  a D step, both from the losses of that pass. Adam, lr 2e-4, β = (0.5, 0.999), one optimiser
  for all generators and one for all discriminators, as pix2pixHD (without its linear lr decay
  over the second half, which no other baseline has).

Widths. pix2pixHD: ndf = 64, n_layers_D = 3, num_D = 3; its global generator ngf = 64. The
defaults here (ngf 64 for the 8 px G_main, U-Net width 32, ndf 32) make a 32 px model
trainable on a CPU. Unconditional; train in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mgbench.contract import DataSpec, GenerativeModel, ProducesPyramid
from mgbench.errors import UsageError
from mgbench.pyramid import downsample, upsample
from mgbench_baselines.nets import adam, check_image_data, evaluating, init_dcgan_weights, memory_format
from mgbench_baselines.unet import UNet

COARSEST = 8  # pixels of I_0 (see the module docstring)
NORMS = {"instance": nn.InstanceNorm2d, "none": lambda width: nn.Identity()}  # HierGANConfig.d_norm
FEATURE_MATCHING = ("paired", "batch_mean")  # HierGANConfig.feature_matching


@dataclass(frozen=True)
class HierGANConfig:
    nz: int = 100  # dimension of z, the main generator's noise (DCGAN's, Radford et al. 2016)
    ngf: int = 64  # main generator width (pix2pixHD ngf 64)
    width: int = 32  # U-Net width of the 16 px detail generator, halved per finer level (U-Net paper: 64)
    ndf: int = 32  # discriminator width (pix2pixHD: 64)
    d_layers: int = 3  # strided layers per PatchGAN (pix2pixHD n_layers_D = 3)
    d_scales: int = 3  # discriminator scales 1×, ½×, ¼× (pix2pixHD num_D = 3); coarsest kept ≥ 8 px
    d_norm: str = "instance"  # normalisation in the PatchGANs: "instance" (pix2pixHD) or "none"
    lambda_fm: float = 10.0  # feature-matching weight (pix2pixHD λ = 10)
    feature_matching: str = "batch_mean"  # Salimans et al. 2016; "paired": pix2pixHD eq. 4 (module docstring)
    coarse_adv: bool = True  # D_0 on I_0 against the real 8 px low-pass
    lr: float = 2e-4  # pix2pixHD
    beta1: float = 0.5
    beta2: float = 0.999
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU (as baselines.dcgan)


def gaussian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` images, finest first: x, down(x), down(down(x)), … (:func:`mgbench.pyramid.downsample`)."""
    pyramid = [x]
    for _ in range(levels - 1):
        pyramid.append(downsample(pyramid[-1]))
    return pyramid


def detail_width(width: int, size: int) -> int:
    """U-Net width of the detail generator at ``size`` px: ``width`` at 16 px, halved per finer level,
    never below 8. Fewer feature maps at higher resolutions, as in progressive GAN (Karras et al. 2018,
    ICLR, appendix A, Table 2): the cost per level stays about the same, and the finest bands are the
    simplest (at 32 px on shapes, the stripes)."""
    return max(8, width * 16 // size)


def lsgan_loss(prediction: torch.Tensor, target: float) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017) as pix2pixHD's ``GANLoss(use_lsgan=True)``: mean (D − target)²."""
    return (prediction - target).square().mean()


def feature_matching_loss(
    real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]], weight: float, *, mode: str
) -> torch.Tensor:
    """pix2pixHD eq. 4: ``weight`` · Σ_scales Σ_layers mean |D^(i)(real) − D^(i)(fake)|, real features held constant.

    ``real[k][i]`` is the i-th intermediate feature map of the k-th discriminator scale.
    ``mode = "paired"`` compares image i with image i; ``"batch_mean"`` the features' means over
    the batch (Salimans et al. 2016, §3.1), for images that are no pairs (the module docstring).
    """
    if mode == "batch_mean":
        real = [[r.mean(dim=0) for r in real_k] for real_k in real]
        fake = [[f.mean(dim=0) for f in fake_k] for fake_k in fake]
    terms = [
        (f - r.detach()).abs().mean()
        for real_k, fake_k in zip(real, fake, strict=True)
        for r, f in zip(real_k, fake_k, strict=True)
    ]
    return weight * torch.stack(terms).sum()


class MainGenerator(nn.Module):
    """z (B×nz) → channels×8×8 image in [-1, 1]: DCGAN-style (Radford et al. 2016) transposed
    convolutions to 4 then 8 px, then one 3×3 convolution at 8 px for the detail of that level."""

    def __init__(self, nz: int, ngf: int, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, 4 * ngf, 4, 1, 0, bias=False),  # 4ngf x 4 x 4
            nn.BatchNorm2d(4 * ngf), nn.ReLU(True),
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False),  # 2ngf x 8 x 8
            nn.BatchNorm2d(2 * ngf), nn.ReLU(True),
            nn.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),  # ngf x 8 x 8
            nn.Conv2d(ngf, channels, 3, 1, 1), nn.Tanh(),  # channels x 8 x 8
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class DetailGenerator(nn.Module):
    """(up(I_{k-1}), noise plane) → signed band-pass detail of level k: a U-Net of depth 2."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.unet = UNet(channels + 1, channels, width, depth=2)

    def forward(self, low: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([low, noise], dim=1))


class PatchDiscriminator(nn.Module):
    """pix2pixHD's ``NLayerDiscriminator`` with intermediate features: image → [feature maps…, logit map].

    For n_layers = 3 at 32 px: ndf x 17² → 2ndf x 9² → 4ndf x 5² → (stride 1) 8ndf x 6² → 1 x 7²
    (4×4 kernels, padding 2 as theirs; widths capped at 8·ndf, their 512 at ndf = 64).
    """

    def __init__(self, channels: int, ndf: int, n_layers: int, norm: str = "instance") -> None:
        super().__init__()
        pad = 2  # ceil((4 - 1) / 2), pix2pixHD
        blocks = [nn.Sequential(nn.Conv2d(channels, ndf, 4, 2, pad), nn.LeakyReLU(0.2, True))]
        width = ndf
        for stride in [2] * (n_layers - 1) + [1]:
            prev, width = width, min(2 * width, 8 * ndf)
            blocks.append(
                nn.Sequential(nn.Conv2d(prev, width, 4, stride, pad), NORMS[norm](width), nn.LeakyReLU(0.2, True))
            )
        blocks.append(nn.Sequential(nn.Conv2d(width, 1, 4, 1, pad)))  # 1 x h x w logit map (no sigmoid: LSGAN)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD §3.2: identical PatchGANs on the input's Gaussian pyramid, finest first."""

    def __init__(self, channels: int, ndf: int, n_layers: int, scales: int, norm: str = "instance") -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(channels, ndf, n_layers, norm) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per scale (1×, ½×, ¼×, …) the list of that discriminator's outputs, its logit map last."""
        pyramid = gaussian_pyramid(x, len(self.scales))
        return [d(level) for d, level in zip(self.scales, pyramid, strict=True)]


class HierGAN(GenerativeModel, ProducesPyramid):
    """Hierarchical generator (8 px G_main + U-Net detail generators per Laplacian level), trained
    jointly against pix2pixHD's multi-scale discriminator with feature matching."""

    description: ClassVar[str] = (
        "HierGAN: 8 px main G + U-Net Laplacian detail Gs, trained jointly vs a pix2pixHD multi-scale D"
    )
    conditional: ClassVar[bool] = False
    Config: ClassVar[type] = HierGANConfig

    def __init__(self, config: HierGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.format = memory_format(config.channels_last)
        self.sizes = [COARSEST]  # pixels per level, coarse to fine
        while self.sizes[-1] < data.resolution:
            self.sizes.append(2 * self.sizes[-1])
        c = data.channels
        self.g_main = MainGenerator(config.nz, config.ngf, c)
        self.g_aux = [DetailGenerator(c, detail_width(config.width, s)) for s in self.sizes[1:]]
        scales = max(1, min(config.d_scales, len(self.sizes)))  # the coarsest scale stays ≥ 8 px
        self.d = MultiScaleDiscriminator(c, config.ndf, config.d_layers, scales, config.d_norm)
        self.d_coarse = PatchDiscriminator(c, config.ndf, config.d_layers, config.d_norm) if config.coarse_adv else None

        self.networks = {"g_main": self.g_main}
        self.networks.update({f"g_aux_{s}px": g for s, g in zip(self.sizes[1:], self.g_aux, strict=True)})
        self.networks["d"] = self.d
        if self.d_coarse is not None:
            self.networks["d_coarse"] = self.d_coarse
        for net in self.networks.values():
            init_dcgan_weights(net)  # pix2pixHD's weights_init: N(0, 0.02) convs, N(1, 0.02) BatchNorm scales
            net.to(device=self.device, memory_format=self.format)
        betas = (config.beta1, config.beta2)
        self.generators = [self.g_main, *self.g_aux]
        self.discriminators = [self.d] + ([] if self.d_coarse is None else [self.d_coarse])
        self.optimizers = {
            "g": adam([p for g in self.generators for p in g.parameters()], config.lr, betas, self.device),
            "d": adam([p for d in self.discriminators for p in d.parameters()], config.lr, betas, self.device),
        }

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(self.sizes)

    @classmethod
    def check_data(cls, config: HierGANConfig, data: DataSpec) -> None:
        super().check_data(config, data)
        check_image_data(cls.__name__, data, minimum=2 * COARSEST)
        for name, value, allowed in (("d_norm", config.d_norm, NORMS),
                                     ("feature_matching", config.feature_matching, FEATURE_MATCHING)):
            if value not in allowed:
                raise UsageError(f"HierGAN {name} must be one of {', '.join(sorted(allowed))}, not {value!r}",
                                 f"set model_overrides.hiergan.{name} to one of them")

    def _noise(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """z for G_main, then one noise plane per finer level, in that order."""
        z = torch.randn(n, self.config.nz, device=self.device, generator=generator)
        planes = [torch.randn(n, 1, s, s, device=self.device, generator=generator) for s in self.sizes[1:]]
        return z, planes

    def _generate(self, z: torch.Tensor, planes: list[torch.Tensor]) -> list[torch.Tensor]:
        """I_0 … I_{L-1}, coarse to fine, unclamped, with their graph (joint training backpropagates
        through every up(I_{k-1}) into G_main)."""
        images = [self.g_main(z)]  # channels x 8 x 8
        for g, noise in zip(self.g_aux, planes, strict=True):
            low = upsample(images[-1])  # channels x 2s x 2s
            images.append(low + g(low, noise))
        return images

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        images = images.contiguous(memory_format=self.format)
        fakes = self._generate(*self._noise(images.shape[0]))
        fake = fakes[-1]

        # Discriminator losses on real and detached fake images (pix2pixHD: loss_D_real, loss_D_fake).
        real_out = self.d(images)
        fake_out = self.d(fake.detach())
        d_multi = sum(
            0.5 * (lsgan_loss(r[-1], 1.0) + lsgan_loss(f[-1], 0.0)) for r, f in zip(real_out, fake_out, strict=True)
        )
        d_coarse = torch.zeros((), device=self.device)
        if self.d_coarse is not None:
            real_low = gaussian_pyramid(images, len(self.sizes))[-1]  # the real 8 px low-pass
            d_coarse = 0.5 * (lsgan_loss(self.d_coarse(real_low)[-1], 1.0)
                              + lsgan_loss(self.d_coarse(fakes[0].detach())[-1], 0.0))

        # Generator losses through the same (not yet updated) discriminators; D needs no weight gradients here.
        for d in self.discriminators:
            d.requires_grad_(False)
        try:
            gen_out = self.d(fake)
            g_gan = sum(lsgan_loss(out[-1], 1.0) for out in gen_out)
            g_fm = feature_matching_loss([r[:-1] for r in real_out], [g[:-1] for g in gen_out], self.config.lambda_fm,
                                         mode=self.config.feature_matching)
            g_coarse = torch.zeros((), device=self.device)
            if self.d_coarse is not None:
                g_coarse = lsgan_loss(self.d_coarse(fakes[0])[-1], 1.0)
        finally:
            for d in self.discriminators:
                d.requires_grad_(True)
        g_loss = g_gan + g_fm + g_coarse
        opt_g, opt_d = self.optimizers["g"], self.optimizers["d"]
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

        d_loss = d_multi + d_coarse
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "g_gan": g_gan.detach(),
            "g_fm": g_fm.detach(),
            "d_coarse": d_coarse.detach(),
            "g_coarse": g_coarse.detach(),
        }

    def sample_pyramid(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """I_0 … I_{L-1} of one sampling chain, coarse to fine, unclamped. All noise is drawn
        first (z, then one plane per level); generators in eval mode, modes restored afterwards."""
        z, planes = self._noise(n, generator)
        with evaluating(*self.generators):
            return [image.contiguous() for image in self._generate(z, planes)]

    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The finest image of :meth:`sample_pyramid`, clamped to [-1, 1]."""
        return self.sample_pyramid(n, labels, generator)[-1].clamp(-1.0, 1.0)
