import os
import subprocess
import sys
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
        scale: float | None = None  # None: a default that is not of the declared type

    def train_step(self, images, labels):
        return {}

    def sample(self, n, labels=None, generator=None):
        return torch.zeros(n, self.data.channels, self.data.resolution, self.data.resolution)


def test_name_collision_is_an_error():
    with pytest.raises(UsageError, match="taken by mgbench_baselines.dcgan:DCGAN"):
        registry.register_model("dcgan")(_Tiny)


def test_register_and_create(monkeypatch):
    monkeypatch.setitem(registry.MODELS._units, "tiny-test", _Tiny)
    model = registry.create_model("tiny-test", DataSpec(3, 16), {"width": 8})
    assert model.config.width == 8
    registry.register_model("tiny-test")(_Tiny)  # the same class again is fine (re-import)


def test_unknown_model_lists_valid_names():
    with pytest.raises(UsageError) as err:
        registry.get_model_class("dcgna")
    assert "dcgna" in str(err.value) and "dcgan" in str(err.value)


def test_unknown_or_mistyped_hyperparameter(monkeypatch):
    monkeypatch.setitem(registry.MODELS._units, "tiny-test", _Tiny)
    with pytest.raises(UsageError, match="width"):
        registry.model_config("tiny-test", {"widht": 3})
    with pytest.raises(UsageError, match="width must be int"):
        registry.model_config("tiny-test", {"width": "3"})


def test_hyperparameter_types_come_from_the_annotations(monkeypatch):
    """A field that defaults to None still takes its declared type."""
    monkeypatch.setitem(registry.MODELS._units, "tiny-test", _Tiny)
    assert registry.model_config("tiny-test", {"scale": 2.0}).scale == 2.0
    assert registry.model_config("tiny-test", {"scale": None}).scale is None
    assert registry.model_config("dcgan", {"lr": 1}).lr == 1.0  # ints widen to float
    with pytest.raises(UsageError, match="scale must be float"):
        registry.model_config("tiny-test", {"scale": "yes"})


def test_non_model_is_rejected():
    with pytest.raises(UsageError, match="not a subclass of mgbench.GenerativeModel"):
        registry.register_model("not-a-model")(object)


def test_a_config_field_without_default_or_not_a_dataclass_is_rejected():
    class NoDefault(_Tiny):
        @dataclass(frozen=True)
        class Config:
            width: int

    class NotADataclass(_Tiny):
        class Config:
            width = 4

    with pytest.raises(UsageError, match="width have no default"):
        registry.register_model("no-default")(NoDefault)
    with pytest.raises(UsageError, match="must be a dataclass"):
        registry.register_model("not-a-dataclass")(NotADataclass)
    assert "no-default" not in registry.list_models()


def test_calibration_names_are_reserved():
    for name in ("real-data", "noise"):
        with pytest.raises(UsageError, match="reserved"):
            registry.register_model(name)(_Tiny)


def test_a_plugin_that_takes_a_baseline_name_fails_whatever_the_import_order(tmp_path):
    """Registering "dcgan" before anything loaded the entry points: a clear error at once, in a
    fresh process (so the test does not depend on what other tests loaded first)."""
    (tmp_path / "clash.py").write_text(
        "from dataclasses import dataclass\n"
        "from mgbench import GenerativeModel, register_model\n"
        "@register_model('dcgan')\n"
        "class Clash(GenerativeModel):\n"
        "    def train_step(self, images, labels): return {}\n"
        "    def sample(self, n, labels=None, generator=None): return None\n")
    code = ("import sys; from mgbench.errors import UsageError\n"
            "try:\n    import clash\nexcept UsageError as e:\n    print(e); sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 3, done.stderr
    assert "'dcgan' is taken by mgbench_baselines.dcgan:DCGAN" in done.stdout


@pytest.mark.parametrize("source, words", [
    ("def broken(:\n", ["SyntaxError", "bad_plugin.py:1"]),
    ("raise RuntimeError('no GPU found')\n", ["RuntimeError: no GPU found", "bad_plugin.py:1"]),
    ("import not_installed_anywhere\n", ["not_installed_anywhere", "install what the plugin needs"]),
])
def test_a_plugin_that_fails_to_import_is_one_usage_error(tmp_path, monkeypatch, source, words):
    (tmp_path / "bad_plugin.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError) as err:
        registry.import_plugins(["bad_plugin"])
    text = f"{err.value.problem} {err.value.fix}"
    assert "plugin module 'bad_plugin'" in text and all(w in text for w in words), text


def test_plugin_import_error_is_usage_error():
    with pytest.raises(UsageError, match="no_such_module"):
        registry.import_plugins(["no_such_module"])
