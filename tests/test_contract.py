"""The model contract (mgbench.contract), checked on every registered model at a tiny size.

Any model registered through an entry point or ``register_model`` before collection is covered;
widths are shrunk through the Config fields it has among ``SMALL``, all others keep defaults.
"""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from mgbench.contract import DataSpec, Reconstructs
from mgbench.errors import UsageError
from mgbench.registry import create_model, get_model_class, list_models

DATA = DataSpec(channels=3, resolution=16, num_classes=4)
BATCH = 8

# Config fields that set a model's size, and a small value for each: a field a model has is shrunk.
SMALL = {
    "nz": 8,
    "latent_dim": 8,
    "ngf": 8,
    "ndf": 8,
    "width": 8,
    "coarse_g_hidden": 32,
    "coarse_d_hidden": 32,
}

MODELS = list_models()


def small_overrides(name: str) -> dict[str, int]:
    fields = {f.name for f in dataclasses.fields(get_model_class(name).Config)}
    return {k: v for k, v in SMALL.items() if k in fields}


def build(name: str, data: DataSpec = DATA):
    return create_model(name, data, small_overrides(name), device="cpu")


def batch(model, n: int = BATCH, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, DATA.channels, DATA.resolution, DATA.resolution, generator=g) * 2 - 1
    labels = torch.arange(n) % DATA.num_classes if model.conditional else None
    return images, labels


def sample_labels(model, n: int) -> torch.Tensor | None:
    return torch.arange(n) % DATA.num_classes if model.conditional else None


def test_baselines_are_registered():
    assert {"dcgan", "vae", "cgan", "lapgan"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_class_attributes(name):
    cls = get_model_class(name)
    assert cls.description and "\n" not in cls.description
    assert isinstance(cls.conditional, bool)
    config = cls.Config()  # every field has a default
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, dataclasses.fields(config)[0].name, None)


@pytest.mark.parametrize("name", MODELS)
def test_train_step_returns_detached_finite_scalars(name):
    torch.manual_seed(0)
    model = build(name)
    model.train()
    keys = None
    for step in range(2):
        losses = model.train_step(*batch(model, seed=step))
        assert losses, "train_step must report at least one loss"
        for key, value in losses.items():
            assert isinstance(value, torch.Tensor), f"{key} is not a tensor"
            assert value.dim() == 0, f"{key} has shape {tuple(value.shape)}"
            assert not value.requires_grad and value.grad_fn is None, f"{key} is not detached"
            assert torch.isfinite(value), f"{key} = {value}"
        assert keys is None or set(losses) == keys, "loss names change between steps"
        keys = set(losses)


@pytest.mark.parametrize("name", MODELS)
def test_sample_shape_dtype_range(name):
    torch.manual_seed(0)
    model = build(name)
    model.eval()
    n = 5
    images = model.sample(n, sample_labels(model, n), generator=torch.Generator().manual_seed(1))
    assert images.shape == (n, DATA.channels, DATA.resolution, DATA.resolution)
    assert images.dtype.is_floating_point
    assert images.device.type == "cpu"
    assert images.min() >= -1 and images.max() <= 1


@pytest.mark.parametrize("name", MODELS)
def test_sample_reproducible_and_private(name):
    torch.manual_seed(0)
    model = build(name)
    model.train_step(*batch(model))  # running statistics away from their initial values
    model.eval()
    n = 6
    labels = sample_labels(model, n)
    global_state = torch.get_rng_state()
    a = model.sample(n, labels, generator=torch.Generator().manual_seed(7))
    b = model.sample(n, labels, generator=torch.Generator().manual_seed(7))
    c = model.sample(n, labels, generator=torch.Generator().manual_seed(8))
    assert torch.equal(torch.get_rng_state(), global_state), "sample() used the global RNG"
    assert torch.equal(a, b), "the same seed gave different samples"
    assert not torch.equal(a, c), "different seeds gave the same samples"


@pytest.mark.parametrize("name", [m for m in MODELS if get_model_class(m).conditional])
def test_conditional_model_requires_labels(name):
    model = build(name)
    model.eval()
    with pytest.raises((ValueError, UsageError)):
        model.sample(4, None, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UsageError):
        build(name, DataSpec(DATA.channels, DATA.resolution, num_classes=0))


def _serialise(state):
    """Through bytes and back, as a checkpoint goes: must load with weights_only=True."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip_resumes_exactly(name):
    torch.manual_seed(0)
    model = build(name)
    model.train()
    for step in range(2):
        model.train_step(*batch(model, seed=step))
    state = _serialise(model.state_dict())
    assert {"networks", "optimizers"} <= set(state) <= {"networks", "optimizers", "extra"}  # extra: extra_state()

    torch.manual_seed(1)  # a different initialisation, overwritten by the load
    resumed = build(name)
    resumed.load_state_dict(state)
    resumed.train()

    images, labels = batch(model, seed=2)
    torch.manual_seed(3)
    expected = model.train_step(images, labels)
    torch.manual_seed(3)
    got = resumed.train_step(images, labels)
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    for net_name, net in model.networks.items():
        other = resumed.networks[net_name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(other[key], value), f"{net_name}.{key} differs after resuming"


@pytest.mark.parametrize("name", MODELS)
def test_num_parameters(name):
    model = build(name)
    counts = model.num_parameters()
    assert set(counts) == set(model.networks)
    assert all(isinstance(v, int) and v > 0 for v in counts.values())


@pytest.mark.parametrize("name", [m for m in MODELS if issubclass(get_model_class(m), Reconstructs)])
def test_reconstruct_shape_and_range(name):
    torch.manual_seed(0)
    model = build(name)
    model.train_step(*batch(model))
    model.eval()
    images, _ = batch(model, n=5, seed=1)
    out = model.reconstruct(images)
    assert out.shape == images.shape
    assert torch.isfinite(out).all()
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("name", MODELS)
def test_check_data_rejects_unsupported_resolution(name):
    with pytest.raises(UsageError):
        build(name, DataSpec(DATA.channels, 24, DATA.num_classes))
