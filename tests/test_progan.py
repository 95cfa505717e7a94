"""ProGAN (baselines.progan) and the shared layers (baselines.scale_blocks): the growth schedule,
the fade-in, equalised learning rate, minibatch stddev, the gradient penalty, exact resume."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F

from mgbench.contract import DataSpec
from mgbench.errors import UsageError
from mgbench.evaluate import cost
from mgbench_baselines.progan import GrowthSchedule, ProGAN, ProGANConfig, gradient_penalty
from mgbench_baselines.scale_blocks import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
    ema_decay_at,
    ema_update,
    feature_maps,
    lrelu,
)

CPU = torch.device("cpu")
TINY = ProGANConfig(nz=8, ngf=8, ndf=8, ema_decay=0.0)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, res: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, res, res, generator=seeded(seed)) * 2 - 1


def model(res: int = 16, config: ProGANConfig = TINY, channels: int = 3, seed: int = 0) -> ProGAN:
    torch.manual_seed(seed)
    return ProGAN(config, DataSpec(channels, res), CPU)


def at_fade(m: ProGAN, level: int, alpha: float, length: int = 10) -> None:
    """Put ``m`` at the point of its schedule where level ``level`` fades in with weight α."""
    m.schedule = GrowthSchedule(len(m.sizes), [length] * (2 * len(m.sizes) - 2))
    fade = m.schedule.phases[2 * level - 1]
    m.images_seen = fade.start + round(alpha * length)
    assert (m.phase.level, m.phase.fading, m.alpha) == (level, True, alpha)


# The schedule


def test_phases_follow_the_paper_order_and_length():
    schedule = GrowthSchedule.for_budget(4, 800_000, 0.5)  # no budget: the paper's 800k per phase
    assert [(p.level, p.fading) for p in schedule.phases] == [
        (0, False), (1, True), (1, False), (2, True), (2, False), (3, True), (3, False)
    ]  # fmt: skip
    assert [p.length for p in schedule.phases] == [800_000] * 6 + [None]
    assert [p.start for p in schedule.phases] == [800_000 * i for i in range(7)]


def test_alpha_is_linear_in_a_fade_and_exact_at_its_boundaries():
    schedule = GrowthSchedule(3, [10, 10, 10, 10])  # 4 px, fade 8, 8, fade 16, 16
    assert [schedule.alpha_at(i) for i in range(10)] == [1.0] * 10  # 4 px: nothing fades
    fade = [schedule.alpha_at(10 + i) for i in range(10)]
    assert fade == [i / 10 for i in range(10)]  # 0 at the fade's first image, exactly linear
    assert all(a < b for a, b in zip(fade, fade[1:], strict=False))  # strictly increasing
    assert schedule.phase_at(19).fading and schedule.phase_at(19).level == 1
    assert schedule.alpha_at(20) == 1.0 and not schedule.phase_at(20).fading  # stabilise at the end
    assert schedule.alpha_at(30) == 0.0 and schedule.phase_at(30).level == 2
    assert schedule.phase_at(40) is schedule.final and schedule.alpha_at(10**9) == 1.0
    every = [schedule.alpha_at(i) for i in range(50)]
    assert min(every) == 0.0 and max(every) == 1.0


@pytest.mark.parametrize(("res", "steps", "batch"), [(32, 1500, 32), (16, 7, 3), (64, 400_000, 64)])
def test_budget_scaling_fits_the_run(res, steps, batch):
    m = model(res, ProGANConfig(nz=8, ngf=8, ndf=8, final_share=0.5))
    m.on_train_start(steps, batch)
    total = steps * batch
    lengths = m.schedule.budget_lengths(total)
    assert sum(lengths) == total
    assert lengths[-1] >= 0.5 * total  # the final resolution's stated share
    assert len(set(lengths[:-1])) == 1 and lengths[0] <= 800_000  # equal phases, never longer than the paper's
    if res == 32:  # 48k images, 7 phases: 4k images (125 steps) per phase, then 24k at 32 px
        assert lengths == [4000] * 6 + [24000]
    if res == 64:  # 6.4M images: the paper's 800k phases fit, the last gets the rest
        assert lengths == [800_000] * 8 + [total - 6_400_000]


def test_a_budget_too_small_for_the_phases_goes_straight_to_the_top():
    schedule = GrowthSchedule.for_budget(3, 800_000, 0.5, total_images=3)
    assert schedule.lengths == [0, 0, 0, 0]
    assert schedule.phase_at(0) is schedule.final


# The fade-in


def test_generator_output_during_a_fade_is_the_blend_of_the_two_blocks():
    m = model(16)
    at_fade(m, level=2, alpha=0.3)
    z = torch.randn(5, TINY.nz, generator=seeded(1))
    g = m.netG
    with torch.no_grad():
        h0 = g.blocks[0](z)
        h1 = g.blocks[1](h0)
        h2 = g.blocks[2](h1)
        old = F.interpolate(g.to_rgb[1](h1), scale_factor=2, mode="nearest")
        expected = 0.7 * old + 0.3 * g.to_rgb[2](h2)
        got = g(z, m.phase.level, m.alpha)
    assert got.shape == (5, 3, 16, 16)
    torch.testing.assert_close(got, expected)
    # the sample is that output (ema off), clamped; the pyramid's entries are each block's toRGB
    torch.manual_seed(0)
    pyramid = m.sample_pyramid(5, generator=seeded(2))
    z = torch.randn(5, TINY.nz, generator=seeded(2))
    with torch.no_grad():
        torch.testing.assert_close(pyramid[-1], g(z, 2, 0.3))
        torch.testing.assert_close(pyramid[1], g.to_rgb[1](g.blocks[1](g.blocks[0](z))))
    torch.testing.assert_close(m.sample(5, generator=seeded(2)), pyramid[-1].clamp(-1, 1))


def test_discriminator_and_real_images_fade_the_same_way():
    m = model(16)
    at_fade(m, level=2, alpha=0.6)
    x = images(4, 16)
    d = m.netD
    with torch.no_grad():
        new = d.blocks[2](lrelu(d.from_rgb[2](x)))  # 16 px block → 8 px features
        old = lrelu(d.from_rgb[1](F.avg_pool2d(x, 2)))  # the 8 px input path
        expected = d.blocks[0](d.blocks[1](0.4 * old + 0.6 * new))
        torch.testing.assert_close(d(x, 2, 0.6), expected)
    low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
    torch.testing.assert_close(m.real_images(x, 2, 0.6), 0.4 * low + 0.6 * x)
    # below the top the real images are average-pooled to the level's size, then blended
    x8 = F.avg_pool2d(x, 2)
    low8 = F.interpolate(F.avg_pool2d(x8, 2), scale_factor=2, mode="nearest")
    torch.testing.assert_close(m.real_images(x, 1, 0.25), 0.75 * low8 + 0.25 * x8)


def test_samples_below_the_top_are_upsampled_to_the_data_resolution():
    m = model(32)
    m.schedule = GrowthSchedule(4, [10] * 6)
    m.images_seen = 25  # stabilising 8 px
    out = m.sample(3, generator=seeded(0))
    assert out.shape == (3, 3, 32, 32)
    z = torch.randn(3, TINY.nz, generator=seeded(0))
    with torch.no_grad():
        small = m.netG(z, 1, 1.0)
    torch.testing.assert_close(out, F.interpolate(small, scale_factor=4, mode="nearest").clamp(-1, 1))
    assert [p.shape[-1] for p in m.sample_pyramid(3, generator=seeded(0))] == [4, 8, 16, 32]


def test_the_schedule_ends_at_full_resolution_with_alpha_one():
    m = model(16)
    m.on_train_start(steps=8, batch_size=2)  # 16 images: 2 per phase before the last (8)
    for step in range(8):
        losses = m.train_step(images(2, 16, seed=step), None)
    assert m.phase is m.schedule.final and m.alpha == 1.0 and m.images_seen == 16
    assert (float(losses["resolution"]), float(losses["alpha"])) == (16.0, 1.0)
    g = m.netG
    assert g.to_rgb[2].weight.grad is not None and g.to_rgb[2].weight.grad.abs().sum() > 0
    assert g.to_rgb[1].weight.grad is None  # retired after its fade: no longer in the loss
    assert m.netD.from_rgb[1].weight.grad is None


def test_every_phase_is_visited_in_order_during_training():
    m = model(16)
    m.on_train_start(steps=8, batch_size=2)  # 16 images: one step per phase, then 4 at the top
    seen = []
    for step in range(8):
        seen.append((float(m.train_step(images(2, 16, seed=step), None)["resolution"]), m.last_phase))
    assert [phase for _, phase in seen] == [0, 1, 2, 3, 4, 4, 4, 4]
    assert [res for res, _ in seen] == [4.0, 8.0, 8.0, 16.0, 16.0, 16.0, 16.0, 16.0]


def test_optimisers_restart_when_a_fade_begins():
    counts = []
    for reset in (True, False):
        m = model(16, ProGANConfig(nz=8, ngf=8, ndf=8, ema_decay=0.0, reset_optimizers=reset))
        m.schedule = GrowthSchedule(3, [4, 4, 4, 4])
        for step in range(4):  # at 0, 2 images: 4 px; at 4, 6 images: the 8 px fade
            m.train_step(images(2, 16, seed=step), None)
        counts.append(float(m.optimizers["G"].state[m.netG.blocks[0].conv.weight]["step"]))
    assert counts == [2, 4]  # reset at the fade's first step, then stepped twice; without: four steps


# Equalised learning rate, pixel norm, minibatch stddev, running average


def test_equalized_layers_scale_by_he_constant():
    m = model(32, ProGANConfig(nz=16, ngf=64, ndf=16))
    convs = [mod for net in (m.netG, m.netD) for mod in net.modules() if isinstance(mod, EqualizedConv2d)]
    for conv in convs:
        out_c, in_c, k, _ = conv.weight.shape
        to_image = out_c == 3 and k == 1 and conv in list(m.netG.to_rgb)
        gain = 1.0 if to_image else math.sqrt(2)
        assert math.isclose(conv.scale, gain / math.sqrt(in_c * k * k), rel_tol=1e-12)
        if not to_image:
            assert math.isclose(conv.scale, math.sqrt(2 / (in_c * k * k)), rel_tol=1e-12)
    big = m.netG.blocks[1].conv1.weight  # stored weights ~ N(0, 1)
    assert abs(float(big.detach().std()) - 1) < 0.05 and abs(float(big.detach().mean())) < 0.05
    conv = m.netD.blocks[1].conv1
    x = torch.randn(2, conv.weight.shape[1], 8, 8)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * math.sqrt(2 / conv.weight[0].numel()),
                                                 conv.bias, padding=1))
    linear = EqualizedLinear(50, 7)
    v = torch.randn(3, 50)
    torch.testing.assert_close(linear(v), v @ (linear.weight * math.sqrt(2 / 50)).T)


def test_pixel_norm_gives_unit_rms_features():
    x = torch.randn(4, 16, 5, 5) * 7
    y = PixelNorm()(x)
    torch.testing.assert_close(y.pow(2).mean(dim=1), torch.ones(4, 5, 5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("batch", "group"), [(8, 4), (6, 3), (4, 4), (2, 2), (5, 1)])
def test_minibatch_stddev_appends_the_mean_std_of_each_group(batch, group):
    layer = MinibatchStdDev(group_size=4)
    assert layer.group(batch) == group
    x = torch.randn(batch, 5, 3, 3, generator=seeded(batch))
    out = layer(x)
    assert out.shape == (batch, 6, 3, 3)
    assert torch.equal(out[:, :5], x)
    groups = batch // group
    for i in range(batch):
        members = x[[j for j in range(batch) if j % groups == i % groups]]  # strided, as the official code
        assert len(members) == group
        value = ((members.var(dim=0, unbiased=False) + 1e-8).sqrt()).mean()
        torch.testing.assert_close(out[i, 5], torch.full((3, 3), float(value)))


def test_running_average_of_the_generator():
    config = ProGANConfig(nz=8, ngf=8, ndf=8, ema_decay=0.9)
    m = model(16, config)
    before = copy.deepcopy(m.g_ema.network)
    m.train_step(images(4, 16), None)
    d = 1 / 10  # the first update's warm-up decay (1 + 0) / (10 + 0), below the configured 0.9
    for avg, old, new in zip(m.g_ema.network.parameters(), before.parameters(), m.netG.parameters(), strict=True):
        torch.testing.assert_close(avg, d * old + (1 - d) * new)
    assert m.g_ema.updates == 1 and not any(p.requires_grad for p in m.g_ema.network.parameters())
    net = torch.nn.Linear(3, 3)
    avg = copy.deepcopy(net)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema_update(avg, net, 0.75, updates=1000)  # past the warm-up: the configured decay
    torch.testing.assert_close(avg.weight, net.weight - 0.75)


def test_running_average_warms_up_to_the_configured_decay():
    """TensorFlow's ExponentialMovingAverage rule: min(decay, (1 + t) / (10 + t))."""
    assert [round(ema_decay_at(0.999, t), 4) for t in (0, 10, 90, 800, 9000, 10**6)] == \
        [0.1, 0.55, 0.91, 0.9889, 0.999, 0.999]
    # After 800 updates the plain 0.999 average keeps 45 % of the initial weights; the warmed-up one none to speak of.
    plain, warm = 0.999 ** 800, math.prod(ema_decay_at(0.999, t) for t in range(800))
    assert plain > 0.44 and warm < 1e-2


def test_feature_maps_follow_the_paper_rule():
    assert [feature_maps(s, 512) for s in (4, 8, 16, 32, 64, 128, 1024)] == [512, 512, 512, 512, 256, 128, 16]
    assert [feature_maps(s, 128, halves_above=4) for s in (4, 8, 16, 32)] == [128, 64, 32, 16]


# The loss


def test_gradient_penalty_matches_finite_differences():
    """∇D by central differences in float64, an independent route to the same penalty."""
    m = model(16)
    d = copy.deepcopy(m.netD).double()

    def critic(x):
        return d(x, 0, 1.0)  # the 4 px discriminator (minibatch stddev included)

    real, fake = images(4, 4, seed=1).double(), images(4, 4, seed=2).double()
    eps = torch.rand(4, 1, 1, 1, generator=seeded(3), dtype=torch.float64)
    got = gradient_penalty(critic, real, fake, eps)
    mixed = eps * real + (1 - eps) * fake
    grad = torch.zeros_like(mixed).flatten()
    h = 1e-6
    with torch.no_grad():
        for i in range(grad.numel()):
            step = torch.zeros_like(grad)
            step[i] = h
            step = step.view_as(mixed)
            grad[i] = (critic(mixed + step).sum() - critic(mixed - step).sum()) / (2 * h)
    expected = ((grad.view(4, -1).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)
    got.backward()  # the penalty trains D: its graph reaches D's weights
    assert d.blocks[0].conv.weight.grad.abs().sum() > 0


def test_d_loss_is_wgan_gp_with_drift():
    """d_loss = E D(fake) − E D(real) + λ·GP + ε_drift·E D(real)², with train_step's own z and ε."""
    m = model(16)
    at_fade(m, level=1, alpha=0.5)
    x = images(4, 16)
    netG, netD = copy.deepcopy(m.netG), copy.deepcopy(m.netD)
    torch.manual_seed(5)
    z = torch.randn(4, TINY.nz)
    eps = torch.rand(4, 1, 1, 1)
    real = m.real_images(x, 1, 0.5)
    fake = netG(z, 1, 0.5).detach()

    def critic(v):
        return netD(v, 1, 0.5)

    gp = 10.0 * gradient_penalty(critic, real, fake, eps)
    d_real = critic(real)
    expected = critic(fake).mean() - d_real.mean() + gp + 0.001 * d_real.pow(2).mean()
    torch.manual_seed(5)
    losses = m.train_step(x, None)
    torch.testing.assert_close(losses["gp"], gp.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses["d_loss"], expected.detach(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # G's loss is −E D'(G(z)) with D after its step
        torch.testing.assert_close(losses["g_loss"], -m.netD(netG(z, 1, 0.5), 1, 0.5).mean(), rtol=1e-5, atol=1e-6)


# Resume


def _round_trip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_resume_in_the_middle_of_a_fade_is_exact():
    config = ProGANConfig(nz=8, ngf=8, ndf=8, ema_decay=0.9)
    steps, batch, stop = 12, 2, 2
    uninterrupted = model(16, config)
    uninterrupted.on_train_start(steps, batch)  # 24 images: 3 per phase, 12 at the top
    losses = {}
    for step in range(steps):
        if step == stop:
            assert uninterrupted.phase.fading and 0 < uninterrupted.alpha < 1  # mid-fade (8 px)
            checkpoint = _round_trip(uninterrupted.state_dict())
        torch.manual_seed(100 + step)
        losses[step] = uninterrupted.train_step(images(batch, 16, seed=step), None)

    resumed = model(16, config, seed=1)  # other weights, overwritten by the load
    resumed.on_train_start(steps, batch)  # the harness calls it before loading
    resumed.load_state_dict(checkpoint)
    assert resumed.images_seen == 2 * stop and resumed.alpha == uninterrupted.schedule.alpha_at(2 * stop)
    for step in range(stop, steps):  # the rest of this fade, a stabilise, the 16 px fade, the top
        torch.manual_seed(100 + step)
        got = resumed.train_step(images(batch, 16, seed=step), None)
        for key, value in losses[step].items():
            assert torch.equal(got[key], value), (step, key)
    for name, net in uninterrupted.networks.items():
        for key, value in net.state_dict().items():
            assert torch.equal(resumed.networks[name].state_dict()[key], value), (name, key)
    for a, b in zip(resumed.g_ema.network.parameters(), uninterrupted.g_ema.network.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(resumed.sample(4, generator=seeded(0)), uninterrupted.sample(4, generator=seeded(0)))


def test_a_checkpoint_without_the_schedule_is_refused():
    m = model(16)
    state = m.state_dict()
    del state["extra"]
    with pytest.raises(UsageError):
        model(16).load_state_dict(state)


# Shapes and data


@pytest.mark.parametrize(("res", "channels"), [(16, 3), (32, 1), (64, 3)])
def test_resolutions_and_channels(res, channels):
    m = model(res, ProGANConfig(nz=8, ngf=8, ndf=8), channels=channels)
    levels = int(math.log2(res)) - 1
    assert m.resolutions == tuple(4 * 2**k for k in range(levels))
    m.on_train_start(steps=2 * levels, batch_size=2)
    for step in range(2 * levels):
        losses = m.train_step(images(2, res, seed=step, channels=channels), None)
    assert set(losses) == {"d_loss", "g_loss", "gp", "alpha", "resolution"}
    pyramid = m.sample_pyramid(3, generator=seeded(0))
    assert [p.shape for p in pyramid] == [(3, channels, s, s) for s in m.resolutions]
    assert torch.equal(m.sample(3, generator=seeded(0)), pyramid[-1].clamp(-1, 1))


def test_the_harness_can_count_its_flops():
    """mgbench.evaluate.cost runs a training step under FlopCounterMode, whose module hooks break
    autograd.grad on a leaf input: the gradient penalty must survive it (it once did not)."""
    m = model(16)
    m.on_train_start(steps=4, batch_size=2)
    costs = cost(m, (torch.rand(4, 3, 16, 16) * 255).to(torch.uint8), None)
    assert costs["train_gflops_per_img"] > costs["gflops_per_sample"] > 0


def test_rejects_unsupported_data():
    for res in (4, 12, 24):
        with pytest.raises(UsageError):
            ProGAN.check_data(TINY, DataSpec(3, res))
    with pytest.raises(UsageError):
        ProGAN.check_data(ProGANConfig(final_share=1.5), DataSpec(3, 32))
