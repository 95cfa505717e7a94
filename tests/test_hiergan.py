"""HierGAN (baselines.hiergan): the pyramid composition, joint training through every level,
pix2pixHD's feature matching and multi-scale discriminator, checked against hand computations."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn

from mgbench.contract import DataSpec
from mgbench.errors import UsageError
from mgbench.pyramid import downsample, upsample
from mgbench_baselines.hiergan import (
    HierGAN,
    HierGANConfig,
    MultiScaleDiscriminator,
    detail_width,
    feature_matching_loss,
    lsgan_loss,
)

CPU = torch.device("cpu")
TINY = HierGANConfig(nz=8, ngf=8, width=8, ndf=8)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, res: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, res, res, generator=seeded(seed)) * 2 - 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("res", "sizes", "scales"), [(16, [8, 16], 2), (32, [8, 16, 32], 3), (64, [8, 16, 32, 64], 3)])
def test_levels_and_scales_follow_the_resolution(res, sizes, scales, channels):
    model = HierGAN(TINY, DataSpec(channels, res), CPU)
    assert model.resolutions == tuple(sizes)
    assert set(model.networks) == {"g_main", "d", "d_coarse", *(f"g_aux_{s}px" for s in sizes[1:])}
    assert len(model.d.scales) == scales  # 1×, ½×, ¼×, the coarsest kept ≥ 8 px
    pyramid = model.sample_pyramid(2, generator=seeded(0))
    assert [tuple(p.shape) for p in pyramid] == [(2, channels, s, s) for s in sizes]
    assert torch.equal(model.sample(2, generator=seeded(0)), pyramid[-1].clamp(-1, 1))
    losses = model.train_step(images(4, res, channels), None)
    assert set(losses) == {"d_loss", "g_loss", "g_gan", "g_fm", "d_coarse", "g_coarse"}


def test_detail_widths_halve_per_finer_level():
    assert [detail_width(32, s) for s in (16, 32, 64)] == [32, 16, 8]
    assert [detail_width(16, s) for s in (16, 32, 64)] == [16, 8, 8]  # never below 8
    model = HierGAN(HierGANConfig(nz=8, ngf=8, width=16, ndf=8), DataSpec(3, 64), CPU)
    assert [g.unet.down[0][0].out_channels for g in model.g_aux] == [16, 8, 8]


def test_rejects_8px():
    with pytest.raises(UsageError):
        HierGAN.check_data(TINY, DataSpec(3, 8))


def _zero_output(layer: nn.Conv2d) -> None:
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()


def test_zero_details_give_the_upsampled_coarse_image():
    """With every detail generator's output ≡ 0, each level is exactly up() of the one below,
    and the 32 px sample is up(up(G_main(z))): the coarse image through the pyramid's upsampling."""
    torch.manual_seed(0)
    model = HierGAN(TINY, DataSpec(3, 32), CPU)
    model.train_step(images(4, 32), None)  # BatchNorm running statistics away from their initial values
    for g in model.g_aux:
        _zero_output(g.unet.out)
    pyramid = model.sample_pyramid(3, generator=seeded(4))
    for coarse, fine in pairwise(pyramid):
        assert torch.equal(fine, upsample(coarse))
    z = torch.randn(3, TINY.nz, generator=seeded(4))  # the first draw of sample_pyramid
    model.g_main.eval()  # as sampling runs it: BatchNorm on running statistics
    with torch.no_grad():
        coarse = model.g_main(z)
    assert torch.equal(pyramid[0], coarse)
    assert torch.equal(model.sample(3, generator=seeded(4)), upsample(upsample(coarse)).clamp(-1, 1))


def test_details_change_the_image():
    """The converse: the detail generators' outputs are not zero from the start (training mode: BatchNorm
    on batch statistics; in eval mode at initialisation the running statistics make every output tiny)."""
    torch.manual_seed(0)
    model = HierGAN(TINY, DataSpec(3, 32), CPU)
    with torch.no_grad():
        pyramid = model._generate(*model._noise(8))
    for coarse, fine in pairwise(pyramid):
        assert (fine - upsample(coarse)).abs().mean() > 1e-3


def _grad_norm(net: nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in net.parameters() if p.grad is not None)


def test_finest_discriminator_loss_reaches_the_main_generator():
    """Joint training: the adversarial loss of D at the finest scale alone backpropagates through
    both detail levels and both upsamplings into G_main (in LAPGAN no level's loss reaches G_0)."""
    torch.manual_seed(0)
    model = HierGAN(TINY, DataSpec(3, 32), CPU)
    fakes = model._generate(*model._noise(4))
    lsgan_loss(model.d.scales[0](fakes[-1])[-1], 1.0).backward()
    grads = {name: p.grad for name, p in model.g_main.named_parameters()}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), "a G_main parameter got no gradient"
    assert _grad_norm(model.g_aux[0]) > 0 and _grad_norm(model.g_aux[1]) > 0


def test_coarse_discriminator_trains_only_the_main_generator():
    """L_main (D_0 on I_0) reaches G_main and no detail generator."""
    torch.manual_seed(0)
    model = HierGAN(TINY, DataSpec(3, 32), CPU)
    fakes = model._generate(*model._noise(4))
    lsgan_loss(model.d_coarse(fakes[0])[-1], 1.0).backward()
    assert _grad_norm(model.g_main) > 0
    assert all(_grad_norm(g) == 0 for g in model.g_aux)


def test_one_step_moves_the_main_generator_without_a_coarse_loss():
    """Only the multi-scale D on the final image (no D_0): G_main still learns, jointly."""
    torch.manual_seed(0)
    model = HierGAN(HierGANConfig(nz=8, ngf=8, width=8, ndf=8, coarse_adv=False), DataSpec(3, 32), CPU)
    before = [p.detach().clone() for p in model.g_main.parameters()]
    model.train_step(images(4, 32), None)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.g_main.parameters(), strict=True))


def test_feature_matching_loss_by_hand():
    real = [[torch.zeros(1, 1, 2, 2), torch.ones(1, 2, 1, 1)], [torch.tensor([[[[0.5]]]])]]
    fake = [
        [torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]]), torch.tensor([[[[2.0]], [[1.0]]]])],
        [torch.tensor([[[[0.25]]]])],
    ]
    # mean |·| per layer: (1 + 1 + 2 + 0)/4 = 1, (1 + 0)/2 = 0.5, 0.25; summed over layers and scales, × λ
    assert feature_matching_loss(real, fake, 10.0, mode="paired").item() == pytest.approx(17.5)
    assert feature_matching_loss(real, real, 10.0, mode="paired").item() == 0.0
    real_leaf = [[r.clone().requires_grad_(True) for r in scale] for scale in real]
    fake_leaf = [[f.clone().requires_grad_(True) for f in scale] for scale in fake]
    feature_matching_loss(real_leaf, fake_leaf, 10.0, mode="paired").backward()
    assert all(r.grad is None for scale in real_leaf for r in scale), "the real features must be held constant"
    assert all(f.grad is not None for scale in fake_leaf for f in scale)


def test_batch_mean_feature_matching_ignores_which_fake_meets_which_real():
    # Unconditional: real image i and fake image i are no pair, so only the batch statistics may count
    # (Salimans et al. 2016). A permuted batch of the real features matches; paired L1 says it does not.
    real = [[torch.randn(6, 4, 3, 3, generator=seeded(1)), torch.randn(6, 2, 2, 2, generator=seeded(2))]]
    shuffled = [[r[torch.randperm(6, generator=seeded(3))] for r in scale] for scale in real]
    assert feature_matching_loss(real, shuffled, 10.0, mode="batch_mean").item() == pytest.approx(0.0, abs=1e-6)
    assert feature_matching_loss(real, shuffled, 10.0, mode="paired").item() > 1.0
    # by hand: the batch means 0 and 1 per unit differ by 1 in every unit of one layer → λ · 1
    zeros, ones = [[torch.zeros(2, 3, 1, 1)]], [[torch.tensor([0.0, 2.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1)]]
    assert feature_matching_loss(zeros, ones, 10.0, mode="batch_mean").item() == pytest.approx(10.0)


@pytest.mark.parametrize(("norm", "instance_norms"), [("instance", 3), ("none", 0)])
def test_discriminator_normalisation_is_a_setting(norm, instance_norms):
    model = HierGAN(HierGANConfig(nz=8, ngf=8, width=8, ndf=8, d_norm=norm), DataSpec(3, 32), CPU)
    for d in [*model.d.scales, model.d_coarse]:
        assert sum(isinstance(m, nn.InstanceNorm2d) for m in d.modules()) == instance_norms  # pix2pixHD: one per layer after the first


def test_unknown_settings_are_refused_by_name():
    with pytest.raises(UsageError, match="d_norm"):
        HierGAN.check_data(HierGANConfig(d_norm="batch"), DataSpec(3, 32))
    with pytest.raises(UsageError, match="feature_matching"):
        HierGAN.check_data(HierGANConfig(feature_matching="mean"), DataSpec(3, 32))


def test_discriminator_scales_are_the_gaussian_pyramid_of_the_input():
    d = MultiScaleDiscriminator(channels=3, ndf=8, n_layers=3, scales=3)
    seen: list[torch.Tensor] = []
    for scale in d.scales:
        scale.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    x = images(2, 32)
    outputs = d(x)
    assert len(outputs) == 3 and [t.shape[-1] for t in seen] == [32, 16, 8]
    assert torch.equal(seen[0], x)
    assert torch.equal(seen[1], downsample(x))
    assert torch.equal(seen[2], downsample(downsample(x)))
    # each scale's outputs: 4 feature maps (n_layers strided + 1 stride-1 layer), then a 1-channel logit map
    assert all(len(out) == 5 and out[-1].shape[1] == 1 for out in outputs)


def test_train_step_losses_are_the_pix2pixhd_objective():
    """d_loss, g_gan, g_fm and the coarse terms, recomputed by hand from the networks before the step
    (pix2pixHD: G's and D's losses both come from the same, not yet updated, discriminators; the
    default feature matching compares batch means)."""
    torch.manual_seed(0)
    model = HierGAN(TINY, DataSpec(3, 32), CPU)
    model.train_step(images(8, 32, seed=1), None)  # Adam moments and BatchNorm statistics in use
    x = images(8, 32)
    torch.manual_seed(5)
    with torch.no_grad():
        fakes = model._generate(*model._noise(8))  # BatchNorm in training mode, as train_step runs it
        real_out, fake_out = model.d(x), model.d(fakes[-1])
        low = downsample(downsample(x))
        dc_real, dc_fake = model.d_coarse(low)[-1], model.d_coarse(fakes[0])[-1]
    mse = torch.nn.functional.mse_loss
    d_multi = sum(0.5 * (mse(r[-1], torch.ones_like(r[-1])) + mse(f[-1], torch.zeros_like(f[-1])))
                  for r, f in zip(real_out, fake_out, strict=True))
    d_coarse = 0.5 * (mse(dc_real, torch.ones_like(dc_real)) + mse(dc_fake, torch.zeros_like(dc_fake)))
    g_gan = sum(mse(f[-1], torch.ones_like(f[-1])) for f in fake_out)
    g_fm = 10.0 * sum((f.mean(0) - r.mean(0)).abs().mean() for rs, fs in zip(real_out, fake_out, strict=True)
                      for r, f in zip(rs[:-1], fs[:-1], strict=True))  # batch means (Salimans et al. 2016)
    g_coarse = mse(dc_fake, torch.ones_like(dc_fake))
    torch.manual_seed(5)  # train_step draws the same noise
    losses = model.train_step(x, None)
    close = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses["d_loss"], d_multi + d_coarse, **close)
    torch.testing.assert_close(losses["g_gan"], g_gan, **close)
    torch.testing.assert_close(losses["g_fm"], g_fm, **close)
    torch.testing.assert_close(losses["d_coarse"], d_coarse, **close)
    torch.testing.assert_close(losses["g_coarse"], g_coarse, **close)
    torch.testing.assert_close(losses["g_loss"], g_gan + g_fm + g_coarse, **close)


def test_sampling_uses_only_the_generator_and_restores_modes():
    torch.manual_seed(0)
    model = HierGAN(TINY, DataSpec(1, 16), CPU)
    model.train_step(images(4, 16, channels=1), None)
    for training in (True, False):
        model.train(training)
        state = torch.get_rng_state()
        a = model.sample(4, generator=seeded(3))
        assert torch.equal(torch.get_rng_state(), state)
        assert torch.equal(a, model.sample(4, generator=seeded(3)))
        assert all(net.training == training for net in model.networks.values())
