"""Run configuration: frozen dataclasses, checked on construction, read from TOML or a preset.

A TOML file mirrors the dataclasses; every key is optional and falls back to the preset::

    preset = "quick"            # start from this preset (default: quick)
    models = ["dcgan", "vae"]
    seeds = [0, 1, 2]
    device = "auto"

    [data]
    name = "shapes"
    resolution = 32

    [train]
    steps = 1000

    [model_overrides.dcgan]    # hyper-parameters of one model (its Config dataclass)
    ngf = 32

An unknown key or a value of the wrong type is a :class:`UsageError` that names the valid keys.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgbench.errors import UsageError, unknown_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class DataConfig:
    """Which images, at which resolution, and how many for training and for the reference."""

    name: str = "shapes"
    root: str | None = None  # folder of the files for real datasets
    resolution: int = 32
    train_size: int = 20_000  # shapes: images generated; real data: at most this many
    reference_size: int = 2_000  # held-out images that samples are scored against
    seed: int = 0  # fixes the dataset and its split; the same for every job

    def __post_init__(self) -> None:
        _positive(self, "resolution", "train_size", "reference_size")
        if self.resolution & (self.resolution - 1):
            raise UsageError(
                f"data.resolution must be a power of two, got {self.resolution}", "use 16, 32 or 64"
            )


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1_000
    batch_size: int = 64
    checkpoint_every: int = 500  # steps between checkpoints (networks, optimisers, RNG state)
    log_every: int = 50  # steps between loss records; the only host-device syncs of the loop

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_size", "checkpoint_every", "log_every")
        if self.checkpoint_every % self.log_every:
            # A checkpoint inside a log window would lose the window's partial loss sums on resume.
            raise UsageError(
                f"train.checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                f"train.log_every ({self.log_every})", "so that a resumed run logs the same losses")


@dataclass(frozen=True)
class EvalConfig:
    num_samples: int = 2_000  # samples per job that are scored
    feature_extractor: str = "auto"  # auto (inception if its weights are present, else domain) | inception | domain
    weights: str | None = None  # Inception weights file (default: the torch hub cache)
    lpips_pairs: int = 500  # random sample pairs for LPIPS diversity
    swd_images: int = 1_000  # images per set for MS-SWD: its cost (sorting 128 patches per image) grows with it

    def __post_init__(self) -> None:
        _positive(self, "num_samples", "lpips_pairs", "swd_images")
        if self.feature_extractor not in ("auto", "inception", "domain"):
            raise UsageError(f"unknown feature extractor {self.feature_extractor!r}",
                             "valid: auto, inception, domain")
        if self.num_samples < 10:
            raise UsageError(f"eval.num_samples must be at least 10, got {self.num_samples}")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. Saved as ``config.json`` in the run directory."""

    name: str = "quick"
    models: tuple[str, ...] = ("dcgan", "vae", "cgan", "lapgan")
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = False  # torch.use_deterministic_algorithms (needed for identical GPU runs)
    out: str = "runs"  # the run directory is <out>/<name>
    plugins: tuple[str, ...] = ()  # modules imported to register outside models
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → hyper-parameters
    # How the jobs run, not what they compute (a run may be resumed with other values).
    executor: str = "local"  # local (processes on this machine) | ray (tasks on a Ray cluster)
    workers: int = 1  # local: jobs at once, each with its own GPU (if any) and a share of the cores
    address: str | None = None  # ray: the cluster, e.g. "head-node:6379" (default: $RAY_ADDRESS or a new local one)
    num_cpus: float | None = None  # cores (torch threads) per job; default: local cores/workers, ray 1
    num_gpus: float = 0.0  # ray: GPUs per job (Ray hides the GPUs from a task that asks for none)
    max_retries: int = 2  # ray: reruns of a job whose worker or node died (a job's own error is final)

    def __post_init__(self) -> None:
        if not self.models:
            raise UsageError("no models to run", "name at least one, e.g. --models dcgan")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise UsageError(f"seeds must be non-negative integers, got {list(self.seeds)}")
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.models)) != len(self.models):
            raise UsageError("models and seeds must not repeat")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise UsageError(f"unknown device {self.device!r}", "valid: auto, cpu, cuda, cuda:N")
        self._check_executor()

    def _check_executor(self) -> None:
        if self.executor not in ("local", "ray"):
            raise unknown_name("executor", self.executor, ["local", "ray"])
        if self.workers < 1:
            raise UsageError(f"workers must be at least 1, got {self.workers}")
        if self.num_cpus is not None and self.num_cpus <= 0:
            raise UsageError(f"num_cpus must be positive, got {self.num_cpus}")
        if self.num_gpus < 0 or self.max_retries < 0:
            raise UsageError(f"num_gpus and max_retries must not be negative, "
                             f"got {self.num_gpus} and {self.max_retries}")
        if self.executor == "local" and self.address is not None:
            raise UsageError("an address is for the Ray executor", "add --executor ray, or drop --address")
        if self.executor == "ray" and self.workers != 1:
            raise UsageError("workers is for the local executor",
                             "with --executor ray the cluster runs as many jobs at once as its "
                             "resources allow: set num_cpus / num_gpus per job instead")
        if self.executor == "ray" and self.device.startswith("cuda") and self.num_gpus <= 0:
            raise UsageError(f"device {self.device!r} with the Ray executor needs GPUs per job",
                             "set num_gpus (e.g. 1) in the config file; Ray hides GPUs from tasks that ask for none")

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        return _build(cls, raw, "")


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            section = type(obj).__name__.removesuffix("Config").lower()
            raise UsageError(f"{section}.{name} must be positive, got {value}")


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so the dict round-trips through JSON unchanged."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    """Construct dataclass ``cls`` from ``raw``, checking every key and value type."""
    if not isinstance(raw, dict):
        raise UsageError(f"{prefix.rstrip('.') or 'config'} must be a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            raise unknown_name("config key", prefix + key, [prefix + f for f in fields])
        kwargs[key] = coerce(hints[key], value, prefix + key)
    return cls(**kwargs)


def coerce(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against the type ``hint`` (ints widen to float; ``X | None`` takes None);
    a mismatch is a :class:`UsageError` naming ``where``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return coerce(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{where} must be a list, got {value!r}")
        return tuple(coerce(args[0], v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise UsageError(f"{where} must be a table of tables, got {value!r}")
        return {k: dict(v) for k, v in value.items()}
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise UsageError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base`` (tables merge, other values replace)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {str(path)!r} does not exist", "check the path given to --config") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"config file {str(path)!r} is not valid TOML: {err}") from None
