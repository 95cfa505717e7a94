"""Plain PyTorch training loops: the yardsticks the baselines' training speed is measured against.

Each one trains the same network as its baseline the way a short example script would, in the
style of pytorch/examples ``dcgan`` and ``vae``: default (NCHW) memory format, the default
Adam implementation, ``zero_grad()``, a Sigmoid on D with ``BCELoss``, D's weight gradients
computed during G's step, and ``.item()`` on the losses every step for logging. Nothing here
is tuned: a baseline that is not faster than these has no business calling itself fast.

A yardstick is built from a seeded CPU RNG inside a forked RNG state, so building one leaves
the caller's global RNG alone.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mgbench.pyramid import downsample, upsample
from mgbench_baselines.lapgan import (
    COARSEST,
    CoarseDiscriminator,
    CoarseGenerator,
    ResidualDiscriminator,
    ResidualGenerator,
)
from mgbench_baselines.nets import dcgan_discriminator, dcgan_generator, init_dcgan_weights


class Generator(nn.Module):
    """pytorch/examples ``dcgan`` Generator, with one doubling per layer for any 2^k ≥ 16 px.

    At 64 px it is the example's network: nz → (ngf*8)×4×4 → (ngf*4)×8×8 → (ngf*2)×16×16 →
    ngf×32×32 → nc×64×64.
    """

    def __init__(self, nz: int, ngf: int, nc: int, resolution: int) -> None:
        super().__init__()
        mult = resolution // 8  # 8 at 64 px, as the example's ngf * 8
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, ngf * mult, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * mult),
            nn.ReLU(True),
        ]  # (ngf*mult) x 4 x 4
        while mult > 1:
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * mult // 2),
                nn.ReLU(True),
            ]  # (ngf*mult/2) x 2size x 2size
            mult //= 2
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]  # nc x res x res
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class Discriminator(nn.Module):
    """pytorch/examples ``dcgan`` Discriminator (Sigmoid output) for any 2^k ≥ 16 px.

    At 64 px: nc×64×64 → ndf×32×32 → (ndf*2)×16×16 → (ndf*4)×8×8 → (ndf*8)×4×4 → 1.
    """

    def __init__(self, ndf: int, nc: int, resolution: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        mult, size = 1, resolution // 2  # ndf x res/2 x res/2
        while size > 4:
            layers += [
                nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * mult * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]  # (ndf*2mult) x size/2 x size/2
            mult, size = mult * 2, size // 2
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1, 1).squeeze(1)


def _seeded_build(seed: int, build: Any) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class PlainDCGAN:
    """pytorch/examples ``dcgan``'s training step; with ``num_classes`` the label is concatenated
    to z and stacked onto the image as constant planes (CGAN, Mirza & Osindero 2014)."""

    def __init__(self, resolution: int, nz: int = 100, ngf: int = 64, ndf: int = 64, num_classes: int = 0,
                 lr: float = 2e-4, beta1: float = 0.5, seed: int = 0) -> None:
        self.nz, self.num_classes = nz, num_classes

        def build() -> tuple[nn.Module, nn.Module]:
            net_g = Generator(nz + num_classes, ngf, 3, resolution)
            net_d = Discriminator(ndf, 3 + num_classes, resolution)
            init_dcgan_weights(net_g)
            init_dcgan_weights(net_d)
            return net_g, net_d

        self.netG, self.netD = _seeded_build(seed, build)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=lr, betas=(beta1, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=lr, betas=(beta1, 0.999))
        self.log: list[tuple[float, ...]] = []

    def _d(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            return self.netD(x)
        planes = y[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.netD(torch.cat([x, planes], 1))

    def step(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        batch_size = real.size(0)
        y = None if labels is None else F.one_hot(labels, self.num_classes).float()
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad()
        label = torch.full((batch_size,), 1.0, dtype=real.dtype)
        output = self._d(real, y)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(batch_size, self.nz, 1, 1)
        if y is not None:
            noise = torch.cat([noise, y[:, :, None, None]], 1)
        fake = self.netG(noise)
        label.fill_(0.0)
        output = self._d(fake.detach(), y)
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.optimizerD.step()
        # (2) Update G network: maximize log(D(G(z)))
        self.netG.zero_grad()
        label.fill_(1.0)  # fake labels are real for generator cost
        output = self._d(fake, y)
        errG = self.criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optimizerG.step()
        self.log.append((errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))  # the example prints these


class PlainVAE:
    """pytorch/examples ``vae``'s training step on the VAE baseline's networks and loss."""

    def __init__(self, resolution: int, latent_dim: int = 64, ngf: int = 64, ndf: int = 64, sigma: float = 1.0,
                 lr: float = 1e-3, seed: int = 0) -> None:
        def build() -> tuple[nn.Module, nn.Module]:
            enc = dcgan_discriminator(ndf, 3, resolution, out_features=2 * latent_dim, out_bias=True)
            dec = dcgan_generator(latent_dim, ngf, 3, resolution)
            init_dcgan_weights(enc)
            init_dcgan_weights(dec)
            return enc, dec

        self.encoder, self.decoder = _seeded_build(seed, build)
        self.sigma = sigma
        self.optimizer = torch.optim.Adam([*self.encoder.parameters(), *self.decoder.parameters()], lr=lr)
        self.log: list[float] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).flatten(1).chunk(2, dim=1)
        std = torch.exp(0.5 * logvar)
        z = mu + torch.randn_like(std) * std
        return self.decoder(z[:, :, None, None]), mu, logvar

    def loss_function(self, recon_x: torch.Tensor, x: torch.Tensor, mu: torch.Tensor,
                      logvar: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        rec = F.mse_loss(recon_x, x, reduction="sum") / (2 * self.sigma**2 * n)
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
        return rec + kld

    def step(self, data: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        self.optimizer.zero_grad()
        recon_batch, mu, logvar = self.forward(data)
        loss = self.loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        self.log.append(loss.item())  # the example sums these for its epoch report
        self.optimizer.step()


class _Sigmoid(nn.Module):
    """A LAPGAN discriminator with the example's Sigmoid on its output (for BCELoss)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *args: torch.Tensor | None) -> torch.Tensor:
        return torch.sigmoid(self.net(*args))


class PlainLAPGAN:
    """One example-style GAN step per level of the Laplacian pyramid, on the LAPGAN baseline's
    networks (Denton et al. 2015): level 0 makes the 8 px image, level k the band given up(I_{k-1})."""

    def __init__(self, resolution: int, nz: int = 100, coarse_g_hidden: int = 1200, coarse_d_hidden: int = 600,
                 width: int = 64, lr: float = 2e-4, beta1: float = 0.5, seed: int = 0) -> None:
        self.nz = nz
        self.sizes = [COARSEST * 2**k for k in range(int(math.log2(resolution // COARSEST)) + 1)]

        def build() -> tuple[list[nn.Module], list[nn.Module]]:
            gs: list[nn.Module] = [CoarseGenerator(nz, coarse_g_hidden, 3, 0)]
            ds: list[nn.Module] = [CoarseDiscriminator(coarse_d_hidden, 3, 0)]
            for s in self.sizes[1:]:
                gs.append(ResidualGenerator(3, width, s, 0))
                ds.append(ResidualDiscriminator(3, width, s, 0))
            for net in (*gs, *ds):
                init_dcgan_weights(net)
            return gs, [_Sigmoid(d) for d in ds]

        self.gs, self.ds = _seeded_build(seed, build)
        self.opt_g = [torch.optim.Adam(g.parameters(), lr=lr, betas=(beta1, 0.999)) for g in self.gs]
        self.opt_d = [torch.optim.Adam(d.parameters(), lr=lr, betas=(beta1, 0.999)) for d in self.ds]
        self.criterion = nn.BCELoss()
        self.log: list[list[float]] = []

    def step(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        gauss = [real]
        for _ in self.sizes[1:]:
            gauss.append(downsample(gauss[-1]))
        gauss.reverse()  # coarse to fine
        n = real.shape[0]
        record = []
        for k, (g, d) in enumerate(zip(self.gs, self.ds, strict=True)):
            if k == 0:
                target, cond = gauss[0], ()
                fake = g(torch.randn(n, self.nz), None)
            else:
                low = upsample(gauss[k - 1])
                target, cond = gauss[k] - low, (low,)
                fake = g(low, torch.randn(n, 1, self.sizes[k], self.sizes[k]), None)
            d.zero_grad()
            label = torch.full((n,), 1.0)
            err_real = self.criterion(d(target, *cond, None), label)
            err_real.backward()
            label.fill_(0.0)
            err_fake = self.criterion(d(fake.detach(), *cond, None), label)
            err_fake.backward()
            self.opt_d[k].step()
            g.zero_grad()
            label.fill_(1.0)
            err_g = self.criterion(d(fake, *cond, None), label)
            err_g.backward()
            self.opt_g[k].step()
            record += [(err_real + err_fake).item(), err_g.item()]
        self.log.append(record)


def plain_loop(name: str, resolution: int, overrides: dict[str, Any] | None = None, num_classes: int = 16,
               seed: int = 0) -> Any:
    """The yardstick of registered model ``name``, built with the same hyper-parameters
    (``num_classes``: the conditional model's classes; 16 on shapes)."""
    overrides = dict(overrides or {})
    overrides.pop("channels_last", None)
    if name == "dcgan":
        return PlainDCGAN(resolution, seed=seed, **overrides)
    if name == "cgan":
        return PlainDCGAN(resolution, num_classes=num_classes, seed=seed, **overrides)
    if name == "vae":
        return PlainVAE(resolution, seed=seed, **overrides)
    if name == "lapgan":
        return PlainLAPGAN(resolution, seed=seed, **overrides)
    raise KeyError(f"no plain-loop yardstick for model {name!r}")
