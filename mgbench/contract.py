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
    # True: needs labels to train and to sample. A class attribute, never set on an instance:
    # the harness reads it from the class before it builds the model.
    conditional: ClassVar[bool] = False
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

    # Optional hooks; the defaults suit a single-scale model with a fixed schedule.

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The resolutions the model generates at, coarse to fine (reports group single-scale and
        multi-scale models by it). A model with intermediate outputs also implements
        :class:`ProducesPyramid`."""
        return (self.data.resolution,)

    def on_train_start(self, steps: int, batch_size: int) -> None:
        """Called by the harness before training, with the run's budget: ``steps`` of ``batch_size``
        images. Schedules measured in images (progressive growing's phases, KL warm-up) are set
        here. On a resume it is called before the checkpoint is loaded."""
        return None  # a hook: the default does nothing

    def extra_state(self) -> dict[str, Any]:
        """Training state beyond networks and optimisers (a phase, a fade-in α, a step count), as
        plain numbers, strings, lists, dicts or tensors; checkpointed so a resume is exact."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""
        return None  # a hook: the default has nothing to restore

    # Everything below is derived from ``self.networks``, ``self.optimizers`` and the hooks above.

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """Networks AND optimisers (and :meth:`extra_state`), as plain state dicts (safe for
        ``torch.load(weights_only=True)``)."""
        state: dict[str, dict[str, Any]] = {
            "networks": {k: net.state_dict() for k, net in self.networks.items()},
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
        }
        extra = self.extra_state()
        if extra:
            state["extra"] = extra
        return state

    def load_state_dict(self, state: dict[str, dict[str, Any]]) -> None:
        for group, members in (("networks", self.networks), ("optimizers", self.optimizers)):
            if set(state[group]) != set(members):
                raise UsageError(
                    f"checkpoint {group} {sorted(state[group])} do not match this model's {sorted(members)}",
                    "load a checkpoint written by the same model and config",
                )
            for k, obj in members.items():
                obj.load_state_dict(state[group][k])
        self.load_extra_state(state.get("extra", {}))

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


class ProducesPyramid(ABC):
    """Mix-in for models that make intermediate images on the way to the output (LAPGAN's levels,
    a progressive or multi-scale-gradient generator's outputs per block): the harness scores each
    against the real images' Gaussian pyramid at its resolution."""

    @abstractmethod
    def sample_pyramid(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """The images of one sampling chain, coarse to fine (n×C×r×r each, in [-1, 1], unclamped
        allowed), one per entry of ``resolutions``; the last is what :meth:`sample` returns."""


def produces_pyramid(model: GenerativeModel) -> bool:
    return isinstance(model, ProducesPyramid)
