"""MSG-GAN (baselines.msggan): gradients reach every scale of G, D reads every scale, the
relativistic average hinge loss, determinism."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F

from mgbench.contract import DataSpec
from mgbench.errors import UsageError
from mgbench.evaluate import cost
from mgbench_baselines.msggan import MSGGAN, MSGGANConfig, rahinge_d_loss, rahinge_g_loss

CPU = torch.device("cpu")
TINY = MSGGANConfig(nz=8, ngf=8, ndf=8, ema_decay=0.0)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, res: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, res, res, generator=seeded(seed)) * 2 - 1


def model(res: int = 16, config: MSGGANConfig = TINY, channels: int = 3, seed: int = 0) -> MSGGAN:
    torch.manual_seed(seed)
    return MSGGAN(config, DataSpec(channels, res), CPU)


def test_rahinge_on_fixed_scores():
    """By hand: E_f D = −1/6, E_r D = 5/6.
    D: mean relu(1 − [7/6, −1/3, 13/6]) + mean relu(1 + [−1/3, −11/6, −5/6]) = 4/9 + 5/18 = 13/18.
    G: mean relu(1 + [7/6, −1/3, 13/6]) + mean relu(1 − [−1/3, −11/6, −5/6]) = 2 + 2 = 4."""
    real = torch.tensor([1.0, -0.5, 2.0])
    fake = torch.tensor([0.5, -1.0, 0.0])
    torch.testing.assert_close(rahinge_d_loss(real, fake), torch.tensor(13 / 18))
    torch.testing.assert_close(rahinge_g_loss(real, fake), torch.tensor(4.0))
    # a D that separates by a margin of 2 or more pays nothing; G then pays the most
    assert float(rahinge_d_loss(torch.full((4,), 1.0), torch.full((4,), -1.0))) == 0.0
    assert float(rahinge_g_loss(torch.full((4,), 1.0), torch.full((4,), -1.0))) == 6.0


def test_train_step_losses_are_the_rahinge_of_the_networks():
    m = model(16)
    x = images(4, 16)
    netG, netD = copy.deepcopy(m.netG), copy.deepcopy(m.netD)
    torch.manual_seed(3)
    z = torch.randn(4, TINY.nz)
    reals = [F.avg_pool2d(x, 16 // s) if s < 16 else x for s in (4, 8, 16)]
    with torch.no_grad():
        fakes = netG(z)
        expected_d = rahinge_d_loss(netD(reals), netD(fakes))
    torch.manual_seed(3)
    losses = m.train_step(x, None)
    torch.testing.assert_close(losses["d_loss"], expected_d, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # G's loss with D after its step
        expected_g = rahinge_g_loss(m.netD(reals), m.netD(fakes))
    torch.testing.assert_close(losses["g_loss"], expected_g, rtol=1e-5, atol=1e-6)


def test_generator_loss_reaches_every_scale_and_every_to_rgb():
    m = model(32)
    x = images(4, 32)
    torch.manual_seed(0)
    fakes = m.netG(torch.randn(4, TINY.nz))
    loss = rahinge_g_loss(m.netD(m.real_pyramid(x)), m.netD(fakes))
    grads = torch.autograd.grad(loss, fakes)
    assert [g.shape[-1] for g in grads] == [4, 8, 16, 32]
    assert all(g.abs().sum() > 0 for g in grads), "D passes no gradient to one of G's scales"
    m.train_step(x, None)  # the G step leaves its gradients on G's parameters
    for k, rgb in enumerate(m.netG.to_rgb):
        assert rgb.weight.grad is not None and rgb.weight.grad.abs().sum() > 0, f"toRGB {m.sizes[k]} px"


def test_discriminator_depends_on_every_scale():
    m = model(32)
    pyramid = m.real_pyramid(images(4, 32))
    with torch.no_grad():
        base = m.netD(pyramid)
        assert torch.equal(m.netD([p.clone() for p in pyramid]), base)
        for k in range(len(pyramid)):
            changed = list(pyramid)
            changed[k] = pyramid[k] + 0.5 * torch.randn(pyramid[k].shape, generator=seeded(k))
            assert (m.netD(changed) - base).abs().max() > 1e-4, f"D ignores its {m.sizes[k]} px input"
    with pytest.raises(ValueError):
        m.netD(pyramid[1:])


def test_real_pyramid_is_average_pooling():
    m = model(16)
    x = images(2, 16)
    pyramid = m.real_pyramid(x)
    assert [p.shape[-1] for p in pyramid] == [4, 8, 16]
    torch.testing.assert_close(pyramid[0], x.unflatten(2, (4, 4)).unflatten(4, (4, 4)).mean(dim=(3, 5)))
    assert torch.equal(pyramid[-1], x)


def test_deterministic_under_a_seed():
    runs = []
    for _ in range(2):
        m = model(16, MSGGANConfig(nz=8, ngf=8, ndf=8), seed=4)
        losses = []
        for step in range(2):
            torch.manual_seed(step)
            losses.append(m.train_step(images(4, 16, seed=step), None))
        runs.append((m, losses))
    (a, la), (b, lb) = runs
    assert all(torch.equal(x[k], y[k]) for x, y in zip(la, lb, strict=True) for k in x)
    assert all(torch.equal(p, q) for p, q in zip(a.netG.parameters(), b.netG.parameters(), strict=True))
    global_state = torch.get_rng_state()
    s1, s2 = a.sample(5, generator=seeded(9)), b.sample(5, generator=seeded(9))
    assert torch.equal(s1, s2) and torch.equal(torch.get_rng_state(), global_state)
    assert not torch.equal(s1, a.sample(5, generator=seeded(10)))


def test_samples_come_from_the_running_average():
    config = MSGGANConfig(nz=8, ngf=8, ndf=8, ema_decay=0.5)
    m = model(16, config)
    m.train_step(images(4, 16), None)
    z = torch.randn(3, config.nz, generator=seeded(1))
    pyramid = m.sample_pyramid(3, generator=seeded(1))
    with torch.no_grad():
        expected, trained = m.g_ema.network(z), m.netG(z)
    for got, want in zip(pyramid, expected, strict=True):
        torch.testing.assert_close(got, want)
    assert not torch.allclose(pyramid[-1], trained[-1])  # the average is not G itself
    torch.testing.assert_close(m.sample(3, generator=seeded(1)), pyramid[-1].clamp(-1, 1))


def test_state_round_trip_includes_the_running_average():
    config = MSGGANConfig(nz=8, ngf=8, ndf=8, ema_decay=0.9)
    m = model(16, config)
    m.train_step(images(4, 16), None)
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    other = model(16, config, seed=1)
    other.load_state_dict(state)
    assert torch.equal(other.sample(4, generator=seeded(0)), m.sample(4, generator=seeded(0)))
    del state["extra"]
    with pytest.raises(UsageError):
        other.load_state_dict(state)


@pytest.mark.parametrize(("res", "channels"), [(16, 3), (32, 1), (64, 3)])
def test_resolutions_and_channels(res, channels):
    m = model(res, MSGGANConfig(nz=8, ngf=8, ndf=8), channels=channels)
    assert m.resolutions == tuple(s for s in (4, 8, 16, 32, 64) if s <= res)
    losses = m.train_step(images(4, res, channels=channels), None)
    assert set(losses) == {"d_loss", "g_loss"} and all(v.dim() == 0 for v in losses.values())
    pyramid = m.sample_pyramid(3, generator=seeded(0))
    assert [p.shape for p in pyramid] == [(3, channels, s, s) for s in m.resolutions]
    assert torch.equal(m.sample(3, generator=seeded(0)), pyramid[-1].clamp(-1, 1))


def test_the_harness_can_count_its_flops():
    costs = cost(model(16), (torch.rand(4, 3, 16, 16) * 255).to(torch.uint8), None)
    assert costs["train_gflops_per_img"] > costs["gflops_per_sample"] > 0


def test_rejects_unsupported_resolutions():
    for res in (4, 12, 24):
        with pytest.raises(UsageError):
            MSGGAN.check_data(TINY, DataSpec(3, res))
