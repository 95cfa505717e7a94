"""Model-specific checks of the four baselines, against published figures and closed forms."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from mgbench.contract import DataSpec
from mgbench.errors import UsageError
from mgbench.pyramid import laplacian_pyramid, upsample
from mgbench_baselines.cgan import CGAN
from mgbench_baselines.dcgan import DCGAN, DCGANConfig
from mgbench_baselines.lapgan import LAPGAN, ConditionalLAPGAN, LAPGANConfig
from mgbench_baselines.vae import VAE, VAEConfig

CPU = torch.device("cpu")
TINY_GAN = DCGANConfig(nz=8, ngf=8, ndf=8)
TINY_LAPGAN = LAPGANConfig(nz=8, coarse_g_hidden=32, coarse_d_hidden=32, width=8)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, res: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, res, res, generator=seeded(seed)) * 2 - 1


# DCGAN


def test_dcgan_is_the_classic_network_at_64px():
    # pytorch/examples dcgan with nz=100, ngf=ndf=64, nc=3: netG 3,576,704 and netD 2,765,568 parameters
    model = DCGAN(DCGANConfig(), DataSpec(3, 64), CPU)
    assert model.num_parameters() == {"G": 3_576_704, "D": 2_765_568}
    widths = [m.out_channels for m in model.netG if isinstance(m, nn.ConvTranspose2d)]
    assert widths == [512, 256, 128, 64, 3]
    assert [m.out_channels for m in model.netD if isinstance(m, nn.Conv2d)] == [64, 128, 256, 512, 1]


@pytest.mark.parametrize("res", [16, 32, 64])
def test_dcgan_output_sizes(res):
    model = DCGAN(TINY_GAN, DataSpec(3, res), CPU)
    ups = int(math.log2(res)) - 1  # 1 → 4 px, then doublings to res
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in model.netG) == ups
    assert model.sample(3, generator=seeded(0)).shape == (3, 3, res, res)
    assert model.netD(images(3, res)).shape == (3, 1, 1, 1)
    assert model.train_step(images(4, res), None)["d_loss"].shape == ()


def test_dcgan_losses_are_the_gan_objective():
    """d_loss = −E log σ(D(x)) − E log(1 − σ(D(G(z)))) before the D step; g_loss = −E log σ(D'(G(z))) after it."""
    torch.manual_seed(0)
    model = DCGAN(TINY_GAN, DataSpec(3, 16), CPU)
    x = images(8, 16)
    generator_before = copy.deepcopy(model.netG)
    torch.manual_seed(5)
    z = torch.randn(8, TINY_GAN.nz, 1, 1)
    with torch.no_grad():
        fake = generator_before(z)
        d_real, d_fake = model.netD(x).flatten(), model.netD(fake).flatten()
    torch.manual_seed(5)  # train_step draws the same z
    losses = model.train_step(x, None)
    expected_d = -(torch.sigmoid(d_real).log().mean() + (1 - torch.sigmoid(d_fake)).log().mean())
    torch.testing.assert_close(losses["d_loss"], expected_d, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        d_after = model.netD(fake).flatten()  # D after its step; G's step does not change D
    torch.testing.assert_close(losses["g_loss"], -torch.sigmoid(d_after).log().mean(), rtol=1e-5, atol=1e-6)


def test_dcgan_channels_last_computes_the_same():
    models = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        config = DCGANConfig(nz=8, ngf=8, ndf=8, channels_last=channels_last)
        models.append(DCGAN(config, DataSpec(3, 32), CPU))
    x = images(8, 32)
    losses = []
    for model in models:
        torch.manual_seed(1)
        losses.append(model.train_step(x, None))
    for key in losses[0]:
        torch.testing.assert_close(losses[0][key], losses[1][key], rtol=1e-4, atol=1e-5)
    a, b = (m.sample(4, generator=seeded(2)) for m in models)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_resuming_without_optimiser_state_diverges():
    """The converse of the contract's round-trip test: it would catch a state_dict missing Adam's moments."""
    torch.manual_seed(0)
    model = DCGAN(TINY_GAN, DataSpec(3, 16), CPU)
    for step in range(2):
        model.train_step(images(8, 16, seed=step), None)
    networks_only = DCGAN(TINY_GAN, DataSpec(3, 16), CPU)
    for name, net in networks_only.networks.items():
        net.load_state_dict(model.networks[name].state_dict())
    for m in (model, networks_only):
        torch.manual_seed(3)
        m.train_step(images(8, 16, seed=2), None)
    assert not torch.equal(model.netG[0].weight, networks_only.netG[0].weight)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DCGAN(TINY_GAN, DataSpec(3, 16), CPU),
        lambda: CGAN(TINY_GAN, DataSpec(3, 16, 4), CPU),
        lambda: VAE(VAEConfig(latent_dim=8, ngf=8, ndf=8), DataSpec(3, 16), CPU),
        lambda: LAPGAN(TINY_LAPGAN, DataSpec(3, 16), CPU),
    ],
    ids=["dcgan", "cgan", "vae", "lapgan"],
)
def test_sample_restores_network_modes(make):
    model = make()
    labels = torch.arange(4) % 4 if model.conditional else None
    for training in (True, False):
        model.train(training)
        model.sample(4, labels, generator=seeded(0))
        assert all(net.training == training for net in model.networks.values())


# CGAN


def test_cgan_samples_follow_the_label():
    torch.manual_seed(0)
    model = CGAN(TINY_GAN, DataSpec(3, 16, num_classes=4), CPU)
    model.train_step(images(8, 16), torch.arange(8) % 4)
    zeros = model.sample(4, torch.zeros(4, dtype=torch.long), generator=seeded(1))
    ones = model.sample(4, torch.ones(4, dtype=torch.long), generator=seeded(1))
    assert (zeros - ones).abs().amax(dim=(1, 2, 3)).min() > 1e-4, "the label does not change the image"
    # eval-mode BatchNorm: image i depends on (z_i, y_i) only, so mixing labels mixes the images
    mixed = model.sample(4, torch.tensor([0, 1, 0, 1]), generator=seeded(1))
    torch.testing.assert_close(mixed[0::2], zeros[0::2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mixed[1::2], ones[1::2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        model.sample(4, torch.zeros(3, dtype=torch.long), generator=seeded(1))


# VAE


def test_vae_loss_is_the_negative_elbo():
    """recon = −log N(x; x̂, σ²I) without its constant; kl = KL(q(z|x) ‖ N(0, I)); per image."""
    torch.manual_seed(0)
    config = VAEConfig(latent_dim=8, ngf=8, ndf=8, sigma=0.2)
    model = VAE(config, DataSpec(3, 16), CPU)
    x = images(6, 16)
    with torch.no_grad():
        mu, logvar = model._encode(x)
        torch.manual_seed(9)
        z = mu + torch.randn(mu.shape) * (0.5 * logvar).exp()
        x_hat = model._decode(z)
    torch.manual_seed(9)  # train_step draws the same ε
    losses = model.train_step(x, None)
    constant = x[0].numel() * math.log(config.sigma * math.sqrt(2 * math.pi))
    nll = -Normal(x_hat, config.sigma).log_prob(x).sum() / len(x) - constant
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum() / len(x)
    torch.testing.assert_close(losses["recon"], nll, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(losses["kl"], kl, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(losses["loss"], nll + kl, rtol=1e-4, atol=1e-3)


def test_vae_learns_to_reconstruct_flat_colours():
    # Adam moves a weight by about lr per step: 50 steps at the default 1e-3 barely shrink the
    # posterior's log-variance from its initial 0, so this short test trains at 1e-2.
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=8, ngf=16, ndf=16, lr=1e-2), DataSpec(3, 16), CPU)
    colours = torch.rand(8, 3, 1, 1, generator=seeded(1)) * 1.6 - 0.8
    x = colours.expand(8, 3, 16, 16).contiguous()
    losses = [float(model.train_step(x, None)["loss"]) for _ in range(50)]
    assert sum(losses[-5:]) < 0.4 * sum(losses[:5])  # measured: 0.08
    model.eval()
    error = F.mse_loss(model.reconstruct(x), x)
    spread = F.mse_loss(x, x.mean(dim=0, keepdim=True).expand_as(x))  # error of one mean image for all
    assert error < 0.3 * spread  # measured: 0.08 × spread; an untrained VAE is at about 1×


# LAPGAN


@pytest.mark.parametrize(("res", "levels"), [(16, 2), (32, 3), (64, 4)])
def test_lapgan_levels_follow_the_resolution(res, levels):
    model = LAPGAN(TINY_LAPGAN, DataSpec(3, res), CPU)
    assert model.num_levels == levels
    assert model.sizes == [8 * 2**k for k in range(levels)]
    assert set(model.networks) == {f"{kind}{k}" for k in range(levels) for kind in "gd"}
    pyramid = model.sample_pyramid(2, generator=seeded(0))
    assert [p.shape[-1] for p in pyramid] == model.sizes
    losses = model.train_step(images(4, res), None)
    assert {f"d_loss_{s}px" for s in model.sizes} <= set(losses)


def test_lapgan_rejects_8px():
    with pytest.raises(UsageError):
        LAPGAN.check_data(TINY_LAPGAN, DataSpec(3, 8))


def test_lapgan_coarse_generator_depends_on_its_noise_at_initialisation():
    """The 8 px generator's samples must differ from the start, or G_0 collapses to one image
    (as it did without BatchNorm: the N(0, 0.02) layers shrank z's effect ~4× each, std ≈ 0.02)."""
    torch.manual_seed(0)
    g0 = LAPGAN(LAPGANConfig(), DataSpec(3, 32), CPU).generators[0]  # the paper's widths
    with torch.no_grad():
        fakes = g0(torch.randn(256, LAPGANConfig().nz), None)
    assert fakes.std(dim=0).mean() > 0.2  # per-pixel spread across samples; real shapes: ~0.46


def test_lapgan_trains_each_level_on_the_real_laplacian_pyramid():
    model = LAPGAN(TINY_LAPGAN, DataSpec(3, 32), CPU)
    x = images(4, 32)
    levels = model.real_levels(x)
    bands = laplacian_pyramid(x, 3)  # 32 px band, 16 px band, 8 px low-pass
    assert levels[0][0] is None
    torch.testing.assert_close(levels[0][1], bands[2])
    torch.testing.assert_close(levels[1][1], bands[1])
    torch.testing.assert_close(levels[1][0], upsample(bands[2]))
    torch.testing.assert_close(levels[2][1], bands[0])
    torch.testing.assert_close(levels[2][0] + levels[2][1], x)


def _set_output(layer: nn.Module, bias: float) -> None:
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.fill_(bias)


def test_lapgan_sampling_upsamples_the_coarse_image():
    """With zero residuals, a 32 px sample is up(up(G_0(z_0))): the 8 px image through the pyramid."""
    torch.manual_seed(0)
    model = LAPGAN(TINY_LAPGAN, DataSpec(3, 32), CPU)
    for g in model.generators[1:]:
        _set_output(g.net[-1], 0.0)
    z0 = torch.randn(3, TINY_LAPGAN.nz, generator=seeded(4))  # the first draw of sample()
    with torch.no_grad():
        model.generators[0].eval()  # as sample() runs it: BatchNorm on its running statistics
        expected = upsample(upsample(model.generators[0](z0, None))).clamp(-1, 1)
        model.generators[0].train()
    torch.testing.assert_close(model.sample(3, generator=seeded(4)), expected)


@pytest.mark.parametrize(("residuals", "value"), [((0.3, -0.5), -0.2), ((0.8, 0.7), 1.0)])
def test_lapgan_sampling_adds_every_residual(residuals, value):
    """G_0 ≡ 0 and G_k ≡ c_k: up() keeps constants, so the sample is clamp(Σ c_k) everywhere."""
    model = LAPGAN(TINY_LAPGAN, DataSpec(3, 32), CPU)
    _set_output(model.generators[0].net[-2], 0.0)  # Tanh(0) = 0
    for g, c in zip(model.generators[1:], residuals, strict=True):
        _set_output(g.net[-1], c)
    out = model.sample(2, generator=seeded(0))
    torch.testing.assert_close(out, torch.full_like(out, value), rtol=0, atol=1e-5)


def test_conditional_lapgan_uses_labels():
    torch.manual_seed(0)
    data = DataSpec(3, 16, num_classes=4)
    config = ConditionalLAPGAN.Config(nz=8, coarse_g_hidden=32, coarse_d_hidden=32, width=8)
    model = ConditionalLAPGAN(config, data, CPU)
    assert model.conditional
    model.train_step(images(8, 16), torch.arange(8) % 4)
    a = model.sample(4, torch.zeros(4, dtype=torch.long), generator=seeded(1))
    b = model.sample(4, torch.full((4,), 3), generator=seeded(1))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError):
        model.sample(4, None, generator=seeded(1))
    assert not LAPGAN(TINY_LAPGAN, data, CPU).conditional
    with pytest.raises(UsageError):
        ConditionalLAPGAN.check_data(LAPGANConfig(), DataSpec(3, 16))  # conditional: needs labels
