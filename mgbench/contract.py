"""The model contract: what the harness asks of every generative model.

The harness owns the loop, the seeds, the device, files, timing and evaluation. A model owns
its networks, its optimisers and its losses. A model never seeds a global RNG, never writes a
file and never moves itself to a device other than the one it is given.

A model is a subclass of :class:`GenerativeModel` with a frozen dataclass ``Config`` of
hyper-parameters (every field with a default), registered under a name (see
:mod:`mgbench.registry`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from mgbench.errors import UsageError


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about the data it is trained on."""

    channels: int
    resolution: int
    num_classes: int = 0  # 0: unlabelled


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """The config of a model without hyper-parameters."""


class GenerativeModel(ABC):
    """Base class of every model in the registry.

    Subclasses set the class attributes, build their networks and optimisers in ``__init__``
    and put them in ``self.networks`` / ``self.optimizers`` (dicts by name), which gives
    :meth:`state_dict`, :meth:`load_state_dict`, :meth:`train` / :meth:`eval` and
    :meth:`num_parameters` for free.

    ``train_step`` returns its losses as 0-d tensors, not floats: converting to a Python
    float forces a host-device sync on a GPU, so the harness does it only when it logs.
    """

    description: ClassVar[str] = ""
    conditional: ClassVar[bool] = False  # True: needs labels to train and to sample
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any, data: DataSpec, device: torch.device) -> None:
        self.config = config
        self.data = data
        self.device = torch.device(device)
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @classmethod
    def check_data(cls, config: Any, data: DataSpec) -> None:
        """Raise :class:`UsageError` if this model cannot train on ``data`` with ``config``."""
        if cls.conditional and data.num_classes < 2:
            raise UsageError(
                "this model is conditional and the dataset has no class labels",
                "use a labelled dataset (shapes, mnist, cifar10, or a folder with one subfolder per class)",
            )

    @abstractmethod
    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch in [-1, 1] (B×C×H×W); returns detached 0-d losses."""

    @abstractmethod
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` images in [-1, 1] (n×C×H×W) on the model's device; all randomness from ``generator``.

        A conditional model draws image i of class ``labels[i]``; ``labels`` is required.
        """

    # Everything below is derived from ``self.networks`` and ``self.optimizers``.

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """Networks AND optimisers, as plain state dicts (safe for ``torch.load(weights_only=True)``)."""
        return {
            "networks": {k: net.state_dict() for k, net in self.networks.items()},
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
        }

    def load_state_dict(self, state: dict[str, dict[str, Any]]) -> None:
        for group, members in (("networks", self.networks), ("optimizers", self.optimizers)):
            if set(state[group]) != set(members):
                raise UsageError(
                    f"checkpoint {group} {sorted(state[group])} do not match this model's {sorted(members)}",
                    "load a checkpoint written by the same model and config",
                )
            for k, obj in members.items():
                obj.load_state_dict(state[group][k])

    def train(self, mode: bool = True) -> GenerativeModel:
        for net in self.networks.values():
            net.train(mode)
        return self

    def eval(self) -> GenerativeModel:
        return self.train(False)

    def num_parameters(self) -> dict[str, int]:
        """Trainable parameter count of each network."""
        return {k: sum(p.numel() for p in net.parameters()) for k, net in self.networks.items()}


class Reconstructs(ABC):
    """Mix-in for models that can reconstruct an input (e.g. a VAE): enables reconstruction metrics."""

    @abstractmethod
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstructions in [-1, 1] of a batch in [-1, 1], same shape."""


def can_reconstruct(model: GenerativeModel) -> bool:
    return isinstance(model, Reconstructs)
