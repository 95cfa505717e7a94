"""Building blocks shared by the baselines: DCGAN networks, their initialisation, the GAN update.

The networks follow Radford et al. 2016 ("Unsupervised representation learning with deep
convolutional generative adversarial networks", ICLR) as written in pytorch/examples ``dcgan``:
strided (4, 2, 1) convolutions instead of pooling, BatchNorm everywhere except the generator's
output and the discriminator's input, ReLU in G, LeakyReLU(0.2) in D, Tanh output, N(0, 0.02)
weights. They are built for any resolution 2^k ≥ 16: at 64 px they are exactly the classic pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mgbench.contract import DataSpec
from mgbench.errors import UsageError


def dcgan_generator(nz: int, ngf: int, channels: int, resolution: int) -> nn.Sequential:
    """z (B×nz×1×1) → image (B×channels×res×res) in [-1, 1]: a 4×4 seed, then one doubling per layer.

    At 64 px: nz → (ngf*8)×4×4 → (ngf*4)×8×8 → (ngf*2)×16×16 → ngf×32×32 → channels×64×64.
    """
    doublings = int(math.log2(resolution)) - 2
    width = ngf * 2 ** (doublings - 1)
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False),  # (ngf*2^(d-1)) x 4 x 4
        nn.BatchNorm2d(width),
        nn.ReLU(True),
    ]
    for _ in range(doublings - 1):  # each block: width/2 x 2size x 2size
        layers += [
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(True),
        ]
        width //= 2
    layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]  # channels x res x res
    return nn.Sequential(*layers)


def dcgan_discriminator(
    ndf: int, channels: int, resolution: int, out_features: int = 1, out_bias: bool = False
) -> nn.Sequential:
    """image (B×channels×res×res) → B×out_features×1×1 (logits: no Sigmoid, the loss applies it).

    At 64 px: channels×64×64 → ndf×32×32 → (ndf*2)×16×16 → (ndf*4)×8×8 → (ndf*8)×4×4 → 1×1×1.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(channels, ndf, 4, 2, 1, bias=False),  # ndf x res/2 x res/2
        nn.LeakyReLU(0.2, True),
    ]
    width, size = ndf, resolution // 2
    while size > 4:  # each block: 2width x size/2 x size/2
        layers += [
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, True),
        ]
        width, size = 2 * width, size // 2
    layers.append(nn.Conv2d(width, out_features, 4, 1, 0, bias=out_bias))  # out_features x 1 x 1
    return nn.Sequential(*layers)


def init_dcgan_weights(net: nn.Module) -> None:
    """Radford et al. 2016: conv (and linear) weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), bias 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def check_image_data(model: str, data: DataSpec, minimum: int = 16) -> None:
    """Raise :class:`UsageError` unless the images are 2^k ≥ ``minimum`` pixels with ≥ 1 channel."""
    res = data.resolution
    if res < minimum or res & (res - 1):
        raise UsageError(
            f"{model} needs a power-of-two resolution of at least {minimum} px, got {res}",
            f"use data.resolution = {max(minimum, 16)}, 32 or 64",
        )
    if data.channels < 1:
        raise UsageError(f"{model} needs images with at least one channel, got {data.channels}")


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return F.one_hot(labels.long(), num_classes).to(dtype)


def require_labels(labels: torch.Tensor | None, n: int, model: str, device: torch.device) -> torch.Tensor:
    """The labels of a conditional model's batch, checked: one class index per image."""
    if labels is None:
        raise ValueError(f"{model} is class-conditional: pass one label per image")
    if labels.shape != (n,):
        raise ValueError(f"{model}: expected {n} labels, got a tensor of shape {tuple(labels.shape)}")
    return labels.to(device)


def adam(
    params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float], device: torch.device
) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015) with torch's fused kernel where it has one (CPU since torch 2.4, CUDA):
    one pass over each parameter instead of about ten small ops, the same update rule. The
    optimiser step alone, 1 CPU thread, median: DCGAN 64 px 93 → 54 ms, LAPGAN's six optimisers
    30 → 9 ms (tests/benchmarks/whole_run.py ``adam``)."""
    params = list(params)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
        except RuntimeError:  # an older torch without the CPU kernel
            pass
    return torch.optim.Adam(params, lr=lr, betas=betas)


def gan_optimizers(netG: nn.Module, netD: nn.Module, config: Any, device: torch.device) -> dict[str, torch.optim.Adam]:
    """One :func:`adam` each for G and D at the config's ``lr`` and ``(beta1, beta2)``."""
    betas = (config.beta1, config.beta2)
    return {"G": adam(netG.parameters(), config.lr, betas, device),
            "D": adam(netD.parameters(), config.lr, betas, device)}


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


@contextmanager
def evaluating(*nets: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm running statistics, no dropout) and no autograd; restores each net's mode."""
    modes = [net.training for net in nets]
    try:
        for net in nets:
            net.eval()
        with torch.no_grad():
            yield
    finally:
        for net, mode in zip(nets, modes, strict=True):
            net.train(mode)


def gan_update(
    discriminator: nn.Module,
    opt_d: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    discriminate: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One discriminator then one generator step of Goodfellow et al. 2014; returns detached (d_loss, g_loss).

    D minimises BCE(D(real), 1) + BCE(D(fake), 0); G minimises the non-saturating BCE(D(fake), 1).
    ``fake`` is the generator output with its graph; ``discriminate`` maps a batch to logits
    through ``discriminator`` (with any conditioning). Real and fake go through D as separate
    batches, as in pytorch/examples, so BatchNorm sees each on its own. Losses are taken in
    float32 (the logits are cast), also when the harness runs the step under bfloat16 autocast.
    """
    opt_d.zero_grad(set_to_none=True)
    real_logits = discriminate(real).float()
    fake_logits = discriminate(fake.detach()).float()
    d_loss = F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    d_loss.backward()
    opt_d.step()

    opt_g.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)  # G's step needs no gradient for D's weights: skip computing it
    try:
        gen_logits = discriminate(fake).float()
        g_loss = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
        g_loss.backward()
    finally:
        discriminator.requires_grad_(True)
    opt_g.step()
    return d_loss.detach(), g_loss.detach()
