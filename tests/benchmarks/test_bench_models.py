"""Training step and sampling of every registered model; each baseline beside its plain loop.

Groups ``train_step <model> ...`` hold ``mgbench`` (the registered model's ``train_step`` at its
default config, float32), ``mgbench-bf16`` (the same under the harness's bfloat16 autocast, the
protocol's ``precision = "bf16"``) and ``plain`` (the same network trained as pytorch/examples would,
yardsticks.py); the ratio of ``plain`` to ``mgbench`` is the speed-up the baselines owe to
channels_last, the fused Adam, ``set_to_none`` and freezing D during G's step. The
``test_plain_*`` checks (plain tests, not benchmarks) show the yardsticks compute the same
training step, so the comparison is like for like.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from bench_setup import BATCH, RES, model_batch, our_model, plain_model, sampler_of, trainer
from torch import nn
from yardsticks import PlainDCGAN, PlainLAPGAN, PlainVAE, plain_loop

from mgbench.registry import get_model_class, list_models

MODELS = list_models()
YARDSTICKS = ("dcgan", "cgan", "vae", "lapgan")


def contenders(name: str) -> list[str]:
    """mgbench in float32 and under bfloat16 autocast; plain where there is a yardstick."""
    return ["mgbench", "mgbench-bf16"] + ["plain"] * (name in YARDSTICKS)


def under_precision(fn: Any, precision: str) -> Any:
    """``fn`` run as the harness runs a training step at ``precision`` (mgbench/train.py)."""

    def step() -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            return fn()

    return step


CASES = [pytest.param(m, impl, id=f"{m}-{impl}") for m in MODELS for impl in contenders(m)]
CANONICAL = {"nz": 100, "ngf": 64, "ndf": 64, "lr": 2e-4, "beta1": 0.5}  # Radford et al. 2016, 64 px


def _step(name: str, impl: str, resolution: int, overrides: dict[str, Any] | None = None) -> Any:
    """A warmed-up training step of ``name`` (ours or its yardstick) on a fixed shapes batch."""
    images, labels = model_batch(resolution, BATCH)
    if impl == "plain":
        plain = plain_model(name, resolution, overrides)
        fn = trainer(plain.step, images, labels if name == "cgan" else None)
    else:
        model = our_model(name, resolution, overrides)
        fn = trainer(model.train_step, images, labels if model.conditional else None)
        fn = under_precision(fn, "bf16" if impl == "mgbench-bf16" else "fp32")
    fn()  # first call: allocation and kernel choice
    return fn


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_train_step(benchmark, slow, name, impl):
    benchmark.group = f"train_step {name} {RES}px batch {BATCH}"
    slow(_step(name, impl, RES))


@pytest.mark.parametrize("impl", contenders("dcgan"))
def test_train_step_dcgan_canonical(benchmark, slow, impl):
    """The canonical DCGAN (64 px, batch 64, nz 100, ngf = ndf = 64, Adam 2e-4 / 0.5)."""
    benchmark.group = "train_step dcgan 64px batch 64 canonical"
    slow(_step("dcgan", impl, 64, CANONICAL))


@pytest.mark.parametrize("name", MODELS)
def test_sample(benchmark, name):
    benchmark.group = f"sample {RES}px n {BATCH}"
    sample = sampler_of(our_model(name, RES))
    sample()
    benchmark(sample)


# --- the yardsticks train the same networks the same way (plain tests, run in every test run) ---

TINY = 16  # px




def _copy(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters and buffers in order: the two networks differ only in module names."""
    s, d = src.state_dict(), dst.state_dict()
    assert [v.shape for v in s.values()] == [v.shape for v in d.values()]
    dst.load_state_dict(dict(zip(d, s.values(), strict=True)))


def _two_steps(model: Any, plain: Any, conditional: bool) -> tuple[list[dict[str, float]], list[Any]]:
    images, labels = model_batch(TINY, 16)
    y = labels if conditional else None
    ours = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        ours.append({k: v.item() for k, v in model.train_step(images, y).items()})
        torch.manual_seed(seed)  # the same noise draws, in the same order
        plain.step(images, y)
    return ours, plain.log


def test_plain_dcgan_is_the_pytorch_examples_network():
    """At 64 px the yardstick is pytorch/examples' dcgan: 3,576,704 (G) and 2,765,568 (D) parameters."""
    plain = PlainDCGAN(64)
    assert sum(p.numel() for p in plain.netG.parameters()) == 3_576_704
    assert sum(p.numel() for p in plain.netD.parameters()) == 2_765_568


@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_plain_dcgan_step_is_the_same_computation(name):
    small = {"nz": 8, "ngf": 8, "ndf": 8}
    model, plain = our_model(name, TINY, small), plain_loop(name, TINY, small)
    _copy(model.netG, plain.netG)
    _copy(model.netD, plain.netD)
    ours, theirs = _two_steps(model, plain, model.conditional)
    for step, (mine, (err_d, err_g, *_)) in enumerate(zip(ours, theirs, strict=True)):
        assert mine["d_loss"] == pytest.approx(err_d, rel=1e-4), step
        assert mine["g_loss"] == pytest.approx(err_g, rel=1e-4), step


def test_plain_vae_step_is_the_same_computation():
    small = {"latent_dim": 8, "ngf": 8, "ndf": 8}
    model, plain = our_model("vae", TINY, small), PlainVAE(TINY, **small)
    _copy(model.encoder, plain.encoder)
    _copy(model.decoder, plain.decoder)
    ours, theirs = _two_steps(model, plain, False)
    assert [o["loss"] for o in ours] == pytest.approx(theirs, rel=1e-4)


def test_plain_lapgan_step_is_the_same_computation():
    small = {"nz": 8, "coarse_g_hidden": 32, "coarse_d_hidden": 32, "width": 8}
    model, plain = our_model("lapgan", TINY, small), PlainLAPGAN(TINY, **small)
    for k in range(model.num_levels):
        _copy(model.generators[k], plain.gs[k])
        _copy(model.discriminators[k], plain.ds[k].net)
    ours, theirs = _two_steps(model, plain, False)
    for mine, record in zip(ours, theirs, strict=True):
        expected = [mine[f"{kind}_loss_{s}px"] for s in model.sizes for kind in ("d", "g")]
        assert record == pytest.approx(expected, rel=1e-4)


# --- bfloat16 autocast: reproducible, and close to float32 -------------------------------------

SMALL = {"nz": 8, "latent_dim": 8, "ngf": 8, "ndf": 8, "width": 8, "coarse_g_hidden": 32, "coarse_d_hidden": 32}


def _losses(name: str, precision: str) -> list[dict[str, float]]:
    fields = {f.name for f in dataclasses.fields(get_model_class(name).Config)}
    model = our_model(name, TINY, {k: v for k, v in SMALL.items() if k in fields})
    images, labels = model_batch(TINY, 16)
    torch.manual_seed(1)
    step = under_precision(lambda: model.train_step(images, labels if model.conditional else None), precision)
    return [{k: v.item() for k, v in step().items()} for _ in range(3)]


@pytest.mark.parametrize("name", YARDSTICKS)
def test_bf16_training_is_reproducible_and_close_to_float32(name):
    first, again, exact = _losses(name, "bf16"), _losses(name, "bf16"), _losses(name, "fp32")
    assert first == again  # same seed, same bits
    for low, full in zip(first, exact, strict=True):
        assert all(isinstance(v, float) for v in low.values())
        assert low == pytest.approx(full, rel=0.05)  # bfloat16 keeps 8 bits of mantissa
        assert low != full  # the switch does change the arithmetic
