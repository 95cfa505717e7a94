"""HVAE (baselines.hvae): ancestral sampling through every group's prior, input-dependent
posteriors, the per-group KL against the closed form, the KL warm-up and its exact resume."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from mgbench.contract import DataSpec
from mgbench.data import to_float
from mgbench.data.shapes import generate
from mgbench.errors import UsageError
from mgbench_baselines.hvae import GROUP_NAMES, HVAE, HVAEConfig, gaussian_kl, kl_weight

CPU = torch.device("cpu")
TINY = HVAEConfig(latent_dim=8, z_channels=4, width=8)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, res: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, res, res, generator=seeded(seed)) * 2 - 1


def shapes(n: int, res: int, channels: int = 3) -> torch.Tensor:
    """The embedded shapes images (structure at every scale), grey as the channel mean."""
    x = to_float(generate(torch.arange(n), res, seed=0)[0])
    return x if channels == 3 else x.mean(dim=1, keepdim=True)


def trained(res: int = 16, channels: int = 3, steps: int = 30) -> HVAE:
    """A briefly trained model in eval mode. Thirty steps on shapes bring BatchNorm's running statistics
    (momentum 0.1) to the activations' scale (at initialisation the N(0, 0.02) weights make activations far
    smaller than the initial running variance of 1, and every eval-mode output is near zero), and give the
    decoder something to do with its latents (on uniform noise it learns to output the mean and ignore them)."""
    torch.manual_seed(0)
    model = HVAE(TINY, DataSpec(channels, res), CPU)
    data = shapes(16 * steps, res, channels)
    for step in range(steps):
        model.train_step(data[16 * step : 16 * (step + 1)], None)
    return model.eval()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("res", [16, 32, 64])
def test_latent_groups_at_every_resolution(res, channels):
    model = HVAE(TINY, DataSpec(channels, res), CPU)
    x = images(4, res, channels)
    x_hat, stats = model.infer(x)
    assert x_hat.shape == x.shape
    assert [tuple(g.z.shape) for g in stats] == [(4, 8), (4, 4, 4, 4), (4, 4, 8, 8)]
    losses = model.train_step(x, None)
    assert set(losses) == {"loss", "nelbo", "recon", *GROUP_NAMES}
    assert model.sample(2, generator=seeded(0)).shape == (2, channels, res, res)


def test_rejects_8px():
    with pytest.raises(UsageError):
        HVAE.check_data(TINY, DataSpec(3, 8))


def _noise(model: HVAE, n: int, seed: int) -> list[torch.Tensor]:
    g = seeded(seed)
    return [torch.randn(shape, generator=g) for shape in model._latent_shapes(n)]


def test_sample_is_an_ancestral_pass_through_the_priors():
    """sample() draws ε_1, ε_4, ε_8 from the generator in that order and sets z_1 = ε_1,
    z_l = μ_p(z_{<l}) + σ_p(z_{<l}) ε_l: every group from its prior."""
    model = trained()
    eps = _noise(model, 5, seed=3)
    with torch.no_grad():
        x_hat, stats = model.decode_prior(eps)
    assert torch.equal(model.sample(5, generator=seeded(3)), x_hat)
    assert torch.equal(stats[0].z, eps[0])
    for g, e in zip(stats[1:], eps[1:], strict=True):
        torch.testing.assert_close(g.z, g.mu_p + g.log_sigma_p.exp() * e, rtol=0, atol=1e-6)
        assert torch.equal(g.mu_q, g.mu_p) and torch.equal(g.log_sigma_q, g.log_sigma_p)


@pytest.mark.parametrize("group", [0, 1, 2])
def test_every_group_of_noise_changes_the_sample(group):
    """New noise for one group changes the image and leaves the coarser groups' z as they were;
    zeroing that group's noise (its prior mean) changes the image too: no group is ignored."""
    model = trained()
    eps = _noise(model, 5, seed=3)
    other = list(eps)
    other[group] = torch.randn(eps[group].shape, generator=seeded(99))
    zeroed = list(eps)
    zeroed[group] = torch.zeros_like(eps[group])
    with torch.no_grad():
        base, stats = model.decode_prior(eps)
        changed, changed_stats = model.decode_prior(other)
        without, _ = model.decode_prior(zeroed)
    for before, after in zip(stats[:group], changed_stats[:group], strict=True):
        assert torch.equal(before.z, after.z), "a finer group's noise changed a coarser group"
    assert not torch.equal(stats[group].z, changed_stats[group].z)
    for image in (changed, without):
        # measured: 2e-3 to 4e-2 per image (samples differ from each other by ~1e-2 per pixel at this stage)
        assert (image - base).abs().amax(dim=(1, 2, 3)).min() > 5e-4, "this group's noise does not reach the image"


def test_every_posterior_depends_on_the_input_at_initialisation():
    torch.manual_seed(0)
    model = HVAE(TINY, DataSpec(3, 16), CPU).eval()
    with torch.no_grad():
        _, a = model.infer(images(4, 16, seed=1), sample=False)
        _, b = model.infer(images(4, 16, seed=2), sample=False)
    for name, ga, gb in zip(GROUP_NAMES, a, b, strict=True):
        assert (ga.mu_q - gb.mu_q).abs().amax() > 1e-4, f"{name}: posterior mean ignores x"
        # the residual correction Δμ itself, not only the prior it is added to, depends on x
        assert ((ga.mu_q - ga.mu_p) - (gb.mu_q - gb.mu_p)).abs().amax() > 1e-4, f"{name}: Δμ ignores x"


def test_gaussian_kl_closed_form_by_hand():
    # KL(N(1, 2²) ‖ N(0, 1)) = log(1/2) + (4 + 1)/2 − ½ ; KL(N(½, ½²) ‖ N(−½, 2²)) = log 4 + (¼ + 1)/8 − ½
    mu_q = torch.tensor([[1.0, 0.5]])
    log_sigma_q = torch.tensor([[math.log(2.0), math.log(0.5)]])
    mu_p = torch.tensor([[0.0, -0.5]])
    log_sigma_p = torch.tensor([[0.0, math.log(2.0)]])
    by_hand = (math.log(0.5) + 2.5 - 0.5) + (math.log(4.0) + 1.25 / 8 - 0.5)
    got = gaussian_kl(mu_q, log_sigma_q, mu_p, log_sigma_p)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(by_hand, rel=1e-6)
    # NVAE eq. 2 in its residual form: ½(Δμ²/σ_p² + Δσ² − log Δσ² − 1)
    d_mu, d_sigma, sigma_p = mu_q - mu_p, (log_sigma_q - log_sigma_p).exp(), log_sigma_p.exp()
    nvae = 0.5 * (d_mu.square() / sigma_p.square() + d_sigma.square() - d_sigma.square().log() - 1).sum()
    assert got.item() == pytest.approx(nvae.item(), rel=1e-6)
    assert gaussian_kl(mu_p, log_sigma_p, mu_p, log_sigma_p).item() == 0.0


def test_train_step_kl_per_group_is_the_closed_form_of_its_posterior_and_prior():
    """kl_1x1 / kl_4px / kl_8px = KL(q ‖ p) of that group (torch.distributions), summed over its
    units, averaged over the batch; recon = ‖x − x̂‖²/(2σ²); loss = recon + β Σ KL."""
    torch.manual_seed(0)
    config = HVAEConfig(latent_dim=8, z_channels=4, width=8, sigma=0.5)
    model = HVAE(config, DataSpec(3, 16), CPU)
    model.on_train_start(10, 8)
    model.train_step(images(8, 16, seed=1), None)  # β > β_min from here on
    x = images(8, 16)
    torch.manual_seed(7)
    with torch.no_grad():
        x_hat, stats = model.infer(x)
    beta = model.beta.item()
    assert beta == pytest.approx(1 / 3)  # step 1 of a 3-step warm-up
    torch.manual_seed(7)  # train_step draws the same ε
    losses = model.train_step(x, None)
    kl_total = 0.0
    for name, g in zip(GROUP_NAMES, stats, strict=True):
        q = Normal(g.mu_q, g.log_sigma_q.exp())
        p = Normal(g.mu_p, g.log_sigma_p.exp())
        kl = kl_divergence(q, p).flatten(1).sum(1).mean()
        torch.testing.assert_close(losses[name], kl, rtol=1e-4, atol=1e-4)
        kl_total += kl
    recon = ((x_hat - x).square().flatten(1).sum(1) / (2 * 0.5**2)).mean()
    torch.testing.assert_close(losses["recon"], recon, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(losses["loss"], recon + beta * kl_total, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(losses["nelbo"], recon + kl_total, rtol=1e-5, atol=1e-3)


def test_warmup_schedule():
    """β = max(min(t / (0.3 · steps), 1), 1e-4) at step t (NVAE's kl_coeff), 1 without a budget."""
    model = HVAE(TINY, DataSpec(3, 16), CPU)
    assert model.beta.item() == 1.0  # no on_train_start: the plain ELBO
    model.on_train_start(1000, 32)  # warm-up over 300 steps
    expected = {0: 1e-4, 15: 0.05, 150: 0.5, 299: 299 / 300, 300: 1.0, 900: 1.0}
    for step, beta in expected.items():
        model.decoder.step.fill_(step)
        assert model.beta.item() == pytest.approx(beta, rel=1e-6), step
    assert kl_weight(torch.tensor(5), 0.0, 1e-4).item() == 1.0
    model.decoder.step.zero_()
    model.train_step(images(4, 16), None)
    assert model.decoder.step.item() == 1  # each training step advances the schedule


def _through_bytes(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_resume_continues_the_warmup_exactly():
    torch.manual_seed(0)
    model = HVAE(TINY, DataSpec(3, 16), CPU)
    model.on_train_start(20, 8)
    for step in range(3):
        model.train_step(images(8, 16, seed=step), None)
    state = _through_bytes(model.state_dict())

    torch.manual_seed(1)
    resumed = HVAE(TINY, DataSpec(3, 16), CPU)
    resumed.on_train_start(20, 8)  # the harness calls it before loading the checkpoint
    assert resumed.beta.item() == pytest.approx(1e-4)
    resumed.load_state_dict(state)
    assert resumed.beta.item() == model.beta.item() == pytest.approx(0.5)  # step 3 of 6

    x = images(8, 16, seed=5)
    torch.manual_seed(3)
    expected = model.train_step(x, None)
    torch.manual_seed(3)
    got = resumed.train_step(x, None)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


def test_reconstruct_shape_range_and_determinism():
    model = trained(res=32, channels=1)
    x = images(5, 32, channels=1, seed=4)
    model.train()
    out = model.reconstruct(x)
    assert out.shape == x.shape
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, model.reconstruct(x))  # posterior means: no noise
    assert all(net.training for net in model.networks.values())  # modes restored


def test_hvae_learns_to_reconstruct_flat_colours():
    """The latents carry the input: after a short training on flat colours the reconstruction error is
    far below that of one mean image for all. lr 3e-3 for a 100-step test (1e-2, which the plain VAE's
    test uses, is unstable for the deeper top-down network: KL of the top group up to ~100 nats)."""
    torch.manual_seed(0)
    model = HVAE(HVAEConfig(latent_dim=8, z_channels=4, width=8, lr=3e-3), DataSpec(3, 16), CPU)
    colours = torch.rand(8, 3, 1, 1, generator=seeded(1)) * 1.6 - 0.8
    x = colours.expand(8, 3, 16, 16).contiguous()
    for _ in range(100):
        model.train_step(x, None)
    model.eval()
    error = torch.nn.functional.mse_loss(model.reconstruct(x), x)
    spread = torch.nn.functional.mse_loss(x, x.mean(dim=0, keepdim=True).expand_as(x))
    assert error < 0.35 * spread  # measured: 0.20 × spread; an untrained HVAE is at about 1×
