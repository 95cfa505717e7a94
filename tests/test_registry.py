from dataclasses import dataclass

import pytest
import torch

from mgbench import DataSpec, GenerativeModel, registry
from mgbench.errors import UsageError


def test_baselines_come_from_entry_points():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert {"dcgan", "vae", "cgan", "lapgan"} <= names
    assert {"dcgan", "vae", "cgan", "lapgan"} <= set(registry.list_models())
    assert registry.list_models("*gan") == sorted(n for n in registry.list_models() if n.endswith("gan"))


class _Tiny(GenerativeModel):
    @dataclass(frozen=True)
    class Config:
        width: int = 4

    def train_step(self, images, labels):
        return {}

    def sample(self, n, labels=None, generator=None):
        return torch.zeros(n, self.data.channels, self.data.resolution, self.data.resolution)


def test_name_collision_is_an_error():
    with pytest.raises(ValueError, match="taken"):
        registry.register_model("dcgan")(_Tiny)


def test_register_and_create(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "tiny-test", _Tiny)
    model = registry.create_model("tiny-test", DataSpec(3, 16), {"width": 8})
    assert model.config.width == 8
    registry.register_model("tiny-test")(_Tiny)  # the same class again is fine (re-import)


def test_unknown_model_lists_valid_names():
    with pytest.raises(UsageError) as err:
        registry.get_model_class("dcgna")
    assert "dcgna" in str(err.value) and "dcgan" in str(err.value)


def test_unknown_or_mistyped_hyperparameter(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "tiny-test", _Tiny)
    with pytest.raises(UsageError, match="width"):
        registry.model_config("tiny-test", {"widht": 3})
    with pytest.raises(UsageError, match="width must be int"):
        registry.model_config("tiny-test", {"width": "3"})


def test_hyperparameter_types_come_from_the_annotations():
    """A field that defaults to None (bf16: None = auto) still takes its declared bool."""
    assert registry.model_config("dcgan", {"bf16": False}).bf16 is False
    assert registry.model_config("dcgan", {"bf16": None}).bf16 is None
    assert registry.model_config("dcgan", {"lr": 1}).lr == 1.0  # ints widen to float
    with pytest.raises(UsageError, match="bf16 must be bool"):
        registry.model_config("dcgan", {"bf16": "yes"})


def test_non_model_is_rejected():
    with pytest.raises(TypeError):
        registry.register_model("not-a-model")(object)


def test_plugin_import_error_is_usage_error():
    with pytest.raises(UsageError, match="no_such_module"):
        registry.import_plugins(["no_such_module"])
