"""The model registry: one name → one :class:`~mgbench.contract.GenerativeModel` subclass.

Two ways in, both public, and the built-in baselines use the first like any outside package:

* an entry point in the group ``mgbench.models`` of an installed distribution
  (``dcgan = "baselines.dcgan:DCGAN"`` in pyproject.toml), discovered on first use;
* the decorator :func:`register_model` in a module the user imports, e.g. with
  ``mgbench run --plugin my_package.my_models``.

Unlike timm's registry, a second class under a taken name is an error, never a silent override.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import typing
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

import torch

from mgbench.config import coerce
from mgbench.contract import DataSpec, GenerativeModel
from mgbench.errors import UsageError, unknown_name

ENTRY_POINT_GROUP = "mgbench.models"

_REGISTRY: dict[str, type[GenerativeModel]] = {}
_entry_points_loaded = False

M = TypeVar("M", bound=type[GenerativeModel])


def _add(name: str, cls: type[GenerativeModel]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise TypeError(f"model {name!r}: {cls!r} is not a subclass of mgbench.GenerativeModel")
    if not dataclasses.is_dataclass(cls.Config):
        raise TypeError(f"model {name!r}: {cls.__name__}.Config must be a dataclass")
    taken = _REGISTRY.get(name)
    if taken is not None and taken is not cls:
        raise ValueError(
            f"model name {name!r} is taken by {taken.__module__}.{taken.__qualname__}; "
            f"cannot register {cls.__module__}.{cls.__qualname__} under it"
        )
    _REGISTRY[name] = cls


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: register a :class:`GenerativeModel` subclass under ``name``."""

    def decorate(cls: M) -> M:
        _add(name, cls)
        return cls

    return decorate


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _add(ep.name, ep.load())


def import_plugins(modules: tuple[str, ...] | list[str]) -> None:
    """Import modules that register models (``--plugin``)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise UsageError(
                f"plugin module {module!r} cannot be imported: {err}",
                "give an importable module path, and make sure its folder is on PYTHONPATH",
            ) from None


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard, sorted."""
    _load_entry_points()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_model_class(name: str) -> type[GenerativeModel]:
    _load_entry_points()
    if name not in _REGISTRY:
        raise unknown_name("model", name, list(_REGISTRY))
    return _REGISTRY[name]


def model_config(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """The model's Config with ``overrides`` applied; unknown keys are an error naming the valid ones."""
    cls = get_model_class(name)
    overrides = dict(overrides or {})
    fields = [f.name for f in dataclasses.fields(cls.Config)]
    hints = typing.get_type_hints(cls.Config)  # the declared types: a field may default to None
    for key, value in overrides.items():
        if key not in fields:
            raise unknown_name(f"hyper-parameter of model {name!r}:", key, fields)
        overrides[key] = coerce(hints[key], value, f"model_overrides.{name}.{key}")
    return cls.Config(**overrides)


def create_model(
    name: str,
    data: DataSpec,
    overrides: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
) -> GenerativeModel:
    """Build a registered model for ``data`` on ``device``, after checking it can handle the data."""
    cls = get_model_class(name)
    config = model_config(name, overrides)
    try:
        cls.check_data(config, data)
    except UsageError as err:
        raise UsageError(f"model {name!r}: {err.problem}", err.fix) from None
    return cls(config, data, torch.device(device))
