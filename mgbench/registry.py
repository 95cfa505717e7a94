"""The model registry: one name → one :class:`~mgbench.contract.GenerativeModel` subclass.

Two ways in (see :mod:`mgbench.plugins`), and the built-in baselines use the first like any
outside package: an entry point in the group ``mgbench.models`` (``dcgan =
"mgbench_baselines.dcgan:DCGAN"`` in pyproject.toml), or the decorator :func:`register_model` in a
module imported with ``mgbench run --plugin my_package.my_models``. The calibration rows'
names (``real-data``, ``noise``) are reserved.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from mgbench.config import coerce
from mgbench.contract import DataSpec, GenerativeModel
from mgbench.errors import UsageError, unknown_name
from mgbench.plugins import Registry, origin
from mgbench.plugins import import_plugins as _import_plugins
from mgbench.schema import CALIBRATION

ENTRY_POINT_GROUP = "mgbench.models"

M = TypeVar("M", bound=type[GenerativeModel])


def _check(name: str, cls: object) -> None:
    """A model is a GenerativeModel subclass whose Config is a dataclass with a default for every field."""
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise UsageError(f"model {name!r}: {origin(cls)} is not a subclass of mgbench.GenerativeModel",
                         "derive the model class from mgbench.GenerativeModel")
    if not dataclasses.is_dataclass(cls.Config):
        raise UsageError(f"model {name!r}: {cls.__name__}.Config must be a dataclass",
                         "decorate it with @dataclasses.dataclass(frozen=True)")
    missing = [f.name for f in dataclasses.fields(cls.Config)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UsageError(f"model {name!r}: {cls.__name__}.Config field(s) {', '.join(missing)} have no default",
                         "give every hyper-parameter a default (the preset or --config overrides it)")


MODELS: Registry[type[GenerativeModel]] = Registry("model", ENTRY_POINT_GROUP, _check, reserved=CALIBRATION)


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: register a :class:`GenerativeModel` subclass under ``name``."""

    def decorate(cls: M) -> M:
        MODELS.add(name, cls)
        return cls

    return decorate


def import_plugins(modules: tuple[str, ...] | list[str]) -> None:
    """Import modules that register models, metrics or datasets (``--plugin``)."""
    from mgbench.data.registry import DATASETS
    from mgbench.metrics.registry import METRICS

    _import_plugins(modules, [MODELS, METRICS, DATASETS])


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard, sorted."""
    return MODELS.names(pattern)


def get_model_class(name: str) -> type[GenerativeModel]:
    return MODELS.get(name)


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


def hyperparameters(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every hyper-parameter of a model as plain data, defaults included (what its numbers depend on)."""
    return dataclasses.asdict(model_config(name, overrides))


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
