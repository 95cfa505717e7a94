"""ProGAN: Karras, Aila, Laine & Lehtinen 2018, "Progressive growing of GANs for improved quality,
stability, and variation" (ICLR).

Training starts at 4×4 px, as in the paper (§3, App. A.1; 4 px is the generator's first block,
so no layer is trained at a resolution it never runs at), and adds one block per doubling up
to the data resolution. Each new block is faded in (Fig. 2): while α goes linearly 0 → 1,

    G's output = (1 − α)·up(toRGB_old(h_prev)) + α·toRGB_new(block_new(h_prev))
    D's input  = (1 − α)·fromRGB_old(avgpool(x)) + α·block_new(fromRGB_new(x))

and the real images shown to D are blended between the two resolutions the same way (Fig. 2
caption: x = (1 − α)·up(avgpool(x_r)) + α·x_r). A stabilise phase at α = 1 follows each fade.
Real images are brought to the current resolution by average pooling, as in the official code
(``process_reals``), not by :func:`mgbench.pyramid.downsample`'s binomial filter.

Schedule (:class:`GrowthSchedule`), counted in real images shown: 4 px stabilise, then fade and
stabilise per doubling, then the final stabilise phase. The paper uses 800k images per phase
(App. A.1). :meth:`ProGAN.on_train_start` fits that into the run's budget: the phases before
the final one keep 800k images each unless that would leave the final resolution less than
``final_share`` of the budget, in which case they share the rest equally (the default 0.5:
short runs are judged at the final resolution, and the coarse phases only give it a start).
Without a budget (no ``on_train_start``) the paper's 800k phases are used and the last is
open-ended. The schedule's position is part of :meth:`ProGAN.extra_state`, so a resume is exact.

Networks (Table 2, :mod:`baselines.scale_blocks`): equalised learning rate everywhere, pixel
norm after every convolution of G, leaky ReLU 0.2, nearest-neighbour upsampling, average-pool
downsampling, a minibatch-stddev layer (group size 4, official code) before D's last block.
Loss (App. A.1): WGAN-GP (Gulrajani et al. 2017) with λ = 10, n_critic = 1 and the drift term
ε_drift·E[D(x)²], ε_drift = 0.001. Adam lr 0.001, β1 = 0, β2 = 0.99, ε = 1e-8. As in the
official code, both optimisers' states are reset when a new block starts to fade in
(``reset_opt_for_new_lod``), and images are sampled from an exponential running average of
G's weights, decay 0.999 (App. A.1), warmed up as TensorFlow's moving averages are
(``scale_blocks.ema_decay_at``: short CPU runs would otherwise sample an average that still holds
much of the random initialisation).

Changes from the paper, for a CPU. Widths: the paper's nf() gives 512 feature maps to every
block up to 32 px, halved per doubling beyond (``ngf`` = ``ndf`` = 512, ``width_halves_above`` =
32); 512 channels in full-resolution 3×3 convolutions cost a CPU minutes per step, so the
defaults are 128 feature maps at 4 px halved per doubling above 4 px (128, 64, 32, 16 at 4 … 32
px: the shape of DCGAN's widths). One fixed batch size for all resolutions (the paper shrinks it
at high resolutions). The D and G steps of an iteration share one batch of latents (the
official code draws one per step). Channels-last memory format by default: the training step at
32 px ran 1.55× faster on one AVX2 thread (1,000 → 640 ms, widths 64 halving above 4 px).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    ProGANGenerator,
    RunningAverage,
    ScoreBlock,
    downsample_to,
    feature_maps,
    lrelu,
    resolutions_up_to,
)


@dataclass(frozen=True)
class ProGANConfig:
    nz: int = 512  # latent dimension, z on the unit hypersphere (paper: 512)
    ngf: int = 128  # G's feature maps up to width_halves_above px (paper: 512)
    ndf: int = 128  # D's feature maps, the same rule (paper: 512)
    width_halves_above: int = 4  # px; widths halve per doubling above it (paper: 32)
    lr: float = 1e-3  # App. A.1, both networks
    beta1: float = 0.0
    beta2: float = 0.99
    gp_weight: float = 10.0  # λ of WGAN-GP
    drift: float = 1e-3  # ε_drift
    stddev_group: int = 4  # minibatch-stddev group size (official code)
    phase_images: int = 800_000  # real images per fade and per stabilise phase (App. A.1)
    final_share: float = 0.5  # least share of the budget for the final resolution's stabilise phase
    ema_decay: float = 0.999  # running average of G's weights for sampling; 0: sample G itself
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU (module docstring)
    reset_optimizers: bool = True  # reset Adam's state when a fade starts (official code)


@dataclass(frozen=True)
class Phase:
    """One phase of the schedule: at ``level`` (an index into the resolutions), fading or not."""

    index: int
    level: int
    fading: bool
    start: int  # real images shown before the phase begins
    length: int | None  # images; None: the final phase, open-ended


class GrowthSchedule:
    """Progressive growing over ``levels`` resolutions: phase 0 stabilises level 0, then phase
    2k − 1 fades level k in and phase 2k stabilises it; the last phase never ends.

    ``lengths`` are the 2·levels − 2 phase lengths before the final phase, in images; a phase of
    length 0 is skipped.
    """

    def __init__(self, levels: int, lengths: Sequence[int]) -> None:
        if len(lengths) != 2 * levels - 2 or any(n < 0 for n in lengths):
            raise ValueError(f"{levels} levels need {2 * levels - 2} non-negative phase lengths, got {lengths}")
        self.levels = levels
        self.lengths = [int(n) for n in lengths]
        self.phases: list[Phase] = []
        start = 0
        for i in range(2 * levels - 1):
            length = self.lengths[i] if i < len(self.lengths) else None
            self.phases.append(Phase(i, (i + 1) // 2, i % 2 == 1, start, length))
            start += length or 0

    @classmethod
    def for_budget(
        cls, levels: int, phase_images: int, final_share: float, total_images: int | None = None
    ) -> GrowthSchedule:
        """The paper's ``phase_images`` per phase, shortened (all alike) so that the final
        phase gets at least ``final_share`` of ``total_images`` when a budget is given."""
        per = phase_images
        before = 2 * levels - 2
        if total_images is not None and before:
            per = min(per, int((1.0 - final_share) * total_images) // before)
        return cls(levels, [per] * before)

    @property
    def final(self) -> Phase:
        return self.phases[-1]

    def phase_at(self, images: int) -> Phase:
        """The phase a step starting after ``images`` real images belongs to."""
        for phase in self.phases[:-1]:
            if images < phase.start + phase.length:
                return phase
        return self.final

    def alpha_at(self, images: int) -> float:
        """Fade-in weight of the top block: (images − start) / length in a fade, 1 otherwise."""
        phase = self.phase_at(images)
        return (images - phase.start) / phase.length if phase.fading else 1.0

    def budget_lengths(self, total_images: int) -> list[int]:
        """Every phase's length in a run of ``total_images``, the final one included."""
        return self.lengths + [total_images - self.final.start]


def upsample_nearest(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="nearest")


def blend(old: torch.Tensor, new: torch.Tensor, alpha: float) -> torch.Tensor:
    """The fade-in: (1 − α)·old + α·new."""
    return (1.0 - alpha) * old + alpha * new


class GrowingGenerator(ProGANGenerator):
    """:class:`~baselines.scale_blocks.ProGANGenerator` run up to block ``top`` with the fade."""

    def pyramid(self, z: torch.Tensor, top: int, alpha: float) -> list[torch.Tensor]:
        """toRGB of blocks 0 … top − 1, then the output at block ``top`` (faded in when α < 1)."""
        feats = self.features(z, top)
        images = [rgb(h) for rgb, h in zip(self.to_rgb[:top], feats[:top], strict=True)]
        out = self.to_rgb[top](feats[top])
        if top > 0 and alpha < 1.0:
            out = blend(upsample_nearest(images[-1], self.sizes[top]), out, alpha)
        return images + [out]

    def forward(self, z: torch.Tensor, top: int, alpha: float) -> torch.Tensor:
        """B×C×s×s at s = sizes[top] (the coarser toRGBs cost next to nothing; only the one
        being faded out reaches the loss)."""
        return self.pyramid(z, top, alpha)[-1]


class ProGANDiscriminator(nn.Module):
    """fromRGB at the top active resolution, then the blocks down to 4 px; fades like G."""

    def __init__(self, width: int, channels: int, resolution: int, group_size: int, halves_above: int = 32) -> None:
        super().__init__()
        self.sizes = resolutions_up_to(resolution)
        w = [feature_maps(s, width, halves_above) for s in self.sizes]
        self.from_rgb = nn.ModuleList(EqualizedConv2d(channels, wk, 1) for wk in w)
        self.blocks = nn.ModuleList([ScoreBlock(w[0], w[0], group_size)])
        self.blocks.extend(DownBlock(w[k], w[k], w[k - 1]) for k in range(1, len(w)))

    def forward(self, x: torch.Tensor, top: int, alpha: float) -> torch.Tensor:
        h = lrelu(self.from_rgb[top](x))  # w_top x s x s
        if top > 0:
            h = self.blocks[top](h)  # w_(top-1) x s/2 x s/2
            if alpha < 1.0:
                h = blend(lrelu(self.from_rgb[top - 1](F.avg_pool2d(x, 2))), h, alpha)
            for block in reversed(self.blocks[1:top]):
                h = block(h)
        return self.blocks[0](h)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor) -> torch.Tensor:
    """E[(‖∇ D(x̂)‖₂ − 1)²] at x̂ = ε·real + (1 − ε)·fake (Gulrajani et al. 2017, Alg. 1), with
    the graph kept so that the penalty trains D. ``eps``: B×1×1×1 in [0, 1]."""
    mixed = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    # D sees a non-leaf view of x̂: torch's FlopCounterMode (the harness's cost count) cannot
    # run autograd.grad through module hooks on a leaf tensor
    (grad,) = torch.autograd.grad(critic(mixed.view_as(mixed)).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


class ProGAN(GenerativeModel, ProducesPyramid):
    """Progressively grown WGAN-GP; 4 px → the data resolution (16 px: 3 levels, 32: 4, 64: 5)."""

    description: ClassVar[str] = "ProGAN (Karras et al. 2018): progressive growing from 4 px, WGAN-GP, equalised lr"
    conditional: ClassVar[bool] = False
    Config: ClassVar[type] = ProGANConfig

    def __init__(self, config: ProGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.sizes = resolutions_up_to(data.resolution)
        c, r = data.channels, data.resolution
        self.format = memory_format(config.channels_last)
        self.netG = GrowingGenerator(config.nz, config.ngf, c, r, config.width_halves_above)
        self.netG.to(self.device, memory_format=self.format)
        self.netD = ProGANDiscriminator(config.ndf, c, r, config.stddev_group, config.width_halves_above)
        self.netD.to(self.device, memory_format=self.format)
        self.g_ema = RunningAverage(self.netG, config.ema_decay) if config.ema_decay > 0 else None
        self.networks = {"G": self.netG, "D": self.netD}
        self.optimizers = gan_optimizers(self.netG, self.netD, config, self.device)
        self.schedule = GrowthSchedule.for_budget(len(self.sizes), config.phase_images, config.final_share)
        self.images_seen = 0  # real images trained on so far: the schedule's clock
        self.last_phase = -1  # phase of the last step, to see a fade begin

    @classmethod
    def check_data(cls, config: ProGANConfig, data: DataSpec) -> None:
        super().check_data(config, data)
        check_image_data(cls.__name__, data, minimum=8)
        if not 0.0 <= config.final_share <= 1.0:
            raise UsageError(f"ProGAN final_share must be in [0, 1], got {config.final_share}",
                             "set model_overrides.progan.final_share to e.g. 0.5")

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(self.sizes)

    @property
    def phase(self) -> Phase:
        return self.schedule.phase_at(self.images_seen)

    @property
    def alpha(self) -> float:
        return self.schedule.alpha_at(self.images_seen)

    def on_train_start(self, steps: int, batch_size: int) -> None:
        c = self.config
        self.schedule = GrowthSchedule.for_budget(len(self.sizes), c.phase_images, c.final_share, steps * batch_size)

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "images_seen": self.images_seen,
            "phase_lengths": list(self.schedule.lengths),
            "last_phase": self.last_phase,
            "phase": self.phase.index,  # derived; stored to check a resume lands where it left
            "alpha": self.alpha,
        }
        if self.g_ema is not None:
            state.update(self.g_ema.state())
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "images_seen" not in state or (self.g_ema is not None) != RunningAverage.in_state(state):
            raise UsageError("the checkpoint lacks ProGAN's schedule or running-average state",
                             "load a checkpoint written by ProGAN with the same config")
        self.schedule = GrowthSchedule(len(self.sizes), state["phase_lengths"])
        self.images_seen = int(state["images_seen"])
        self.last_phase = int(state["last_phase"])
        if (self.phase.index, self.alpha) != (state["phase"], state["alpha"]):
            raise UsageError("the checkpoint's growth phase does not follow from its schedule",
                             "delete the checkpoint to retrain this job from the start")
        if self.g_ema is not None:
            self.g_ema.load(state)

    def real_images(self, images: torch.Tensor, top: int, alpha: float) -> torch.Tensor:
        """The real batch at sizes[top], blended with its 2× coarser version during a fade."""
        x = downsample_to(images, self.sizes[top])
        if top > 0 and alpha < 1.0:
            x = blend(upsample_nearest(F.avg_pool2d(x, 2), self.sizes[top]), x, alpha)
        return x

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        c = self.config
        phase, alpha = self.phase, self.alpha
        if phase.index != self.last_phase:
            if phase.fading and c.reset_optimizers:
                for opt in self.optimizers.values():
                    opt.state.clear()
            self.last_phase = phase.index
        top = phase.level
        real = self.real_images(images.contiguous(memory_format=self.format), top, alpha)
        n = real.shape[0]

        def critic(x: torch.Tensor) -> torch.Tensor:
            return self.netD(x, top, alpha)

        z = torch.randn(n, c.nz, device=self.device)
        fake = self.netG(z, top, alpha)

        opt_d, opt_g = self.optimizers["D"], self.optimizers["G"]
        opt_d.zero_grad(set_to_none=True)
        d_real, d_fake = critic(real), critic(fake.detach())
        gp = c.gp_weight * gradient_penalty(critic, real, fake.detach(), torch.rand(n, 1, 1, 1, device=self.device))
        d_loss = d_fake.mean() - d_real.mean() + gp + c.drift * d_real.pow(2).mean()
        d_loss.backward()
        opt_d.step()

        opt_g.zero_grad(set_to_none=True)
        self.netD.requires_grad_(False)  # G's step needs no gradient for D's weights
        try:
            g_loss = -critic(fake).mean()
            g_loss.backward()
        finally:
            self.netD.requires_grad_(True)
        opt_g.step()
        if self.g_ema is not None:
            self.g_ema.update()
        self.images_seen += n
        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "gp": gp.detach(),
            "alpha": torch.tensor(alpha),
            "resolution": torch.tensor(float(self.sizes[top])),
        }

    def sample_pyramid(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """One image per resolution, coarse to fine, unclamped: the toRGB output of each block
        below the current top, the (faded) output at the top, and that output upsampled
        (nearest) to every resolution above it before the schedule reaches the data resolution.

        The toRGB of a block below the top was last trained during the fade that retired it, so
        its images drift from the real pyramid as training goes on: that is ProGAN's design.
        """
        z = torch.randn(n, self.config.nz, device=self.device, generator=generator)
        netG = self.g_ema.network if self.g_ema is not None else self.netG
        top, alpha = self.phase.level, self.alpha
        with evaluating(netG):
            images = netG.pyramid(z, top, alpha)
            images += [upsample_nearest(images[-1], s) for s in self.sizes[top + 1 :]]
        return [x.contiguous() for x in images]

    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` images at the data resolution in [-1, 1]: G's current output (upsampled nearest
        while the schedule is below the data resolution), from the running average of G."""
        return self.sample_pyramid(n, labels, generator)[-1].clamp(-1.0, 1.0)

