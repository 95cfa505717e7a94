"""Run configuration: frozen dataclasses, checked on construction, read from TOML or a preset.

A TOML file mirrors the dataclasses; every key is optional and falls back to the preset::

    preset = "quick"            # start from this preset (default: quick)
    models = ["dcgan", "vae"]
    seeds = [0, 1, 2]
    precision = "fp32"          # part of the protocol, as are threads, data, train and eval
    threads = 1

    [data]
    name = "shapes"
    resolution = 32

    [train]
    steps = 1000

    [model_overrides.dcgan]    # hyper-parameters of one model (its Config dataclass)
    ngf = 32

    [execution]                # how the jobs run, not what they compute
    workers = 2

An unknown key or a value of the wrong type is a :class:`UsageError` that names the valid keys.

Two kinds of settings, two types. :class:`RunConfig` minus its ``execution`` is the *protocol*:
everything that changes a number (precision, torch threads per job, seeds, data, steps, the
metrics and their sample sizes, the models' hyper-parameters) is set here, by the preset or
the user, and recorded in every results row; nothing is detected from the host.
:class:`ExecutionConfig` is how the jobs run (executor, workers, cluster): a run may be resumed
with other values, and they never change a number.

:func:`resolve` (preset ← TOML file ← overrides) and :func:`resume` are what the CLI calls, so a
Python caller gets exactly the same run.
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

from mgbench import presets
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
    """How long and how each model trains. The length is ONE of: ``steps`` (the same for every
    model), ``budget_gflops`` (the same training compute: each model's steps come from its
    counted FLOPs per training image, :mod:`mgbench.budget`) or ``budget_images``."""

    steps: int | None = 1_000  # None when a budget decides each model's steps
    batch_size: int = 64
    checkpoint_every: int = 500  # steps between checkpoints (networks, optimisers, RNG state)
    log_every: int = 50  # steps between loss records; the only host-device syncs of the loop
    budget_gflops: float | None = None  # training GFLOPs per job (forward and backward of every network)
    budget_images: int | None = None  # training images per job
    tensorboard: bool = False  # TensorBoard event files (losses, curves) in RUN_DIR/tensorboard/<job>/

    def __post_init__(self) -> None:
        _positive(self, "batch_size", "checkpoint_every", "log_every")
        given = [k for k in TRAINING_LENGTH if getattr(self, k) is not None]
        if len(given) != 1:
            raise UsageError(
                f"give exactly one of train.{', train.'.join(TRAINING_LENGTH)}, got "
                + (", ".join(f"train.{k} = {getattr(self, k)}" for k in given) if given else "none"),
                "steps trains every model as long; a budget gives every model the same training compute "
                "(--steps, --budget-gflops or --budget-images)")
        _positive(self, given[0])
        if self.checkpoint_every % self.log_every:
            # A checkpoint inside a log window would lose the window's partial loss sums on resume.
            raise UsageError(
                f"train.checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                f"train.log_every ({self.log_every})", "so that a resumed run logs the same losses")


EXTRACTORS = ("auto", "inception", "domain", "dinov2", "clip")
TRAINING_LENGTH = ("steps", "budget_gflops", "budget_images")


@dataclass(frozen=True)
class EvalConfig:
    num_samples: int = 2_000  # samples per job that are scored
    # auto (inception if its weights are present, else domain) | inception | domain | dinov2 | clip;
    # dinov2 and clip take a variant after a colon (dinov2:vits14; default: the papers' ViT-L/14)
    feature_extractor: str = "auto"
    weights: str | None = None  # Inception weights file (default: the torch hub cache)
    lpips_pairs: int = 500  # random sample pairs for LPIPS diversity
    swd_images: int = 1_000  # images per set for MS-SWD: its cost (sorting 128 patches per image) grows with it
    metrics: tuple[str, ...] | None = None  # registered metrics to compute (`mgbench list --metrics`); None: all
    # Metrics during training (mgbench.curves): a cheap subset of the metrics on a smaller sample,
    # against the same reference, into RUN_DIR/curves/<job>.csv. ``every``: None (default) ten
    # times a job, every tenth of its steps; N: every N steps; a list: at those steps; 0: never.
    # A job's last step is always one. None of these four settings changes a results row.
    every: int | tuple[int, ...] | None = None
    every_metrics: tuple[str, ...] | None = None  # None: fid, swd and modes, those of them the run computes
    every_samples: int = 500  # samples per evaluation during training (at most num_samples)
    sampling_seeds: int = 1  # sample draws scored per trained model (the extra ones: RUN_DIR/sampling/<job>.csv)

    def __post_init__(self) -> None:
        _positive(self, "num_samples", "lpips_pairs", "swd_images")
        kind, _, variant = self.feature_extractor.partition(":")
        if kind not in EXTRACTORS or (variant and kind not in ("dinov2", "clip")):
            raise UsageError(f"unknown feature extractor {self.feature_extractor!r}",
                             f"valid: {', '.join(EXTRACTORS)} (dinov2 and clip take a variant: dinov2:vits14)")
        if self.num_samples < 10:
            raise UsageError(f"eval.num_samples must be at least 10, got {self.num_samples}")
        if self.metrics is not None and (not self.metrics or len(set(self.metrics)) != len(self.metrics)):
            raise UsageError(f"eval.metrics must name at least one metric, each once, got {list(self.metrics)}",
                             "e.g. --metrics fid,swd; `mgbench list --metrics` lists them")
        _positive(self, "every_samples", "sampling_seeds")
        if self.every_samples < 10:
            raise UsageError(f"eval.every_samples must be at least 10, got {self.every_samples}")
        every = self.every
        if isinstance(every, int) and every < 0 or isinstance(every, tuple) and (
                not every or min(every) < 1 or list(every) != sorted(set(every))):
            raise UsageError(f"eval.every must be a number of steps (0: never) or a rising list of steps, "
                             f"got {every!r}", "e.g. every = 100, or every = [100, 500, 1000]")
        if self.every_metrics is not None:
            if not self.every_metrics or len(set(self.every_metrics)) != len(self.every_metrics):
                raise UsageError(f"eval.every_metrics must name at least one metric, each once, "
                                 f"got {list(self.every_metrics)}", "e.g. every_metrics = [\"fid\", \"modes\"]")
            extra = [m for m in self.every_metrics if self.metrics is not None and m not in self.metrics]
            if extra:
                raise UsageError(f"eval.every_metrics {extra} are not among the run's metrics {list(self.metrics)}",
                                 "score during training only metrics that the run computes at the end")


@dataclass(frozen=True)
class ExecutionConfig:
    """How the jobs run, not what they compute: a run may be resumed with other values of these,
    and none of them changes a number (the protocol's ``threads`` fixes the bits)."""

    executor: str = "local"  # local (processes on this machine) | ray (tasks on a Ray cluster)
    # local: jobs at once, each with its own GPU (if any) and `threads` cores. None (auto): one
    # per GPU on a GPU run, else as many as the cores hold (cores // threads).
    workers: int | None = None
    address: str | None = None  # ray: the cluster, e.g. "head-node:6379" (default: $RAY_ADDRESS or a new local one)
    num_gpus: float = 0.0  # ray: GPUs per job (Ray hides the GPUs from a task that asks for none)
    max_retries: int = 2  # ray: reruns of a job whose worker or node died (a job's own error is final)
    # Seconds a job's process may run before it is ended (status ``timeout``; a resume continues it
    # from its last checkpoint). None: no limit. A guard against a model that hangs, not a budget.
    job_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.executor not in ("local", "ray"):
            raise unknown_name("executor", self.executor, ["local", "ray"])
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"workers must be at least 1, got {self.workers}")
        if self.job_timeout_s is not None and not self.job_timeout_s > 0:
            raise UsageError(f"execution.job_timeout_s must be positive seconds, got {self.job_timeout_s}",
                             "leave it out for no limit")
        if self.num_gpus < 0 or self.max_retries < 0:
            raise UsageError(f"num_gpus and max_retries must not be negative, "
                             f"got {self.num_gpus} and {self.max_retries}")
        if self.executor == "local" and self.address is not None:
            raise UsageError("an address is for the Ray executor", "add --executor ray, or drop --address")
        if self.executor == "ray" and self.workers is not None:
            raise UsageError("workers is for the local executor",
                             "with --executor ray the cluster runs as many jobs at once as its "
                             "resources allow: set threads / execution.num_gpus per job instead")


PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. Saved as ``config.json`` in the run directory."""

    name: str = "quick"
    models: tuple[str, ...] = ("dcgan", "vae", "cgan", "lapgan")
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = False  # torch.use_deterministic_algorithms (needed for identical GPU runs)
    # fp32, or bf16: bfloat16 autocast in every model's training steps (fast on CPUs with native
    # bfloat16 and on GPUs; emulated and slower elsewhere). Never chosen from the host.
    precision: str = "fp32"
    threads: int = 1  # torch threads per job: float sums split over another number round differently
    out: str = "runs"  # the run directory is <out>/<name>
    plugins: tuple[str, ...] = ()  # modules imported to register outside models, metrics, datasets
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → hyper-parameters
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    def __post_init__(self) -> None:
        if not self.models:
            raise UsageError("no models to run", "name at least one, e.g. --models dcgan")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise UsageError(f"seeds must be non-negative integers, got {list(self.seeds)}")
        if any(s >= 2**63 for s in self.seeds):
            raise UsageError(f"seeds must be below 2^63, got {max(self.seeds)}", "use seeds such as 0, 1, 2")
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.models)) != len(self.models):
            raise UsageError("models and seeds must not repeat")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise UsageError(f"unknown device {self.device!r}", "valid: auto, cpu, cuda, cuda:N")
        if self.precision not in PRECISIONS:
            raise unknown_name("precision", self.precision, PRECISIONS)
        if self.threads < 1:
            raise UsageError(f"threads must be at least 1, got {self.threads}")
        if self.execution.executor == "ray" and self.device.startswith("cuda") and self.execution.num_gpus <= 0:
            raise UsageError(f"device {self.device!r} with the Ray executor needs GPUs per job",
                             "set execution.num_gpus (e.g. 1) in the config file; Ray hides GPUs from tasks "
                             "that ask for none")

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    def protocol(self) -> dict[str, Any]:
        """What a run computes: everything but where it is written and how its jobs run."""
        return {k: v for k, v in self.to_dict().items() if k not in ("name", "out", "execution")}

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        return _build(cls, _upgrade(raw), "")


# config.json files written before the execution settings had their own table kept them at the
# top level, with the torch threads as num_cpus.
_LEGACY_EXECUTION = ("executor", "workers", "address", "num_gpus", "max_retries")


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A saved config of an older layout in today's (a published run must stay resumable)."""
    if not isinstance(raw, dict) or not any(k in raw for k in (*_LEGACY_EXECUTION, "num_cpus")):
        return raw
    raw = dict(raw)
    execution = dict(raw.get("execution", {}))
    for key in _LEGACY_EXECUTION:
        if key in raw:
            execution[key] = raw.pop(key)
    if execution.get("executor") == "ray":
        execution.pop("workers", None)  # it was always 1 there: the cluster schedules the jobs
    num_cpus = raw.pop("num_cpus", None)
    if num_cpus is not None and "threads" not in raw:
        raw["threads"] = int(num_cpus)
    raw["execution"] = execution
    return raw


def resolve(preset: str | None = None, file: str | Path | None = None,
            overrides: dict[str, Any] | None = None) -> RunConfig:
    """The run's configuration: ``preset`` (default: the file's ``preset``, else ``quick``) ←
    the TOML ``file`` ← ``overrides`` (a TOML-shaped dict, e.g. from command-line flags), each
    overriding the one before. The preset's hyper-parameters apply to the models that run."""
    overrides = dict(overrides or {})
    file_cfg = load_toml(file) if file is not None else {}
    base = dict(presets.preset(preset or file_cfg.pop("preset", None) or presets.DEFAULT))
    file_cfg.pop("preset", None)
    base, file_cfg, overrides = _one_training_length(base, file_cfg, overrides)
    models = overrides.get("models") or file_cfg.get("models") or base["models"]
    base["model_overrides"] = {k: v for k, v in base.get("model_overrides", {}).items() if k in models}
    return RunConfig.from_dict(merge(merge(base, file_cfg), overrides))


def _one_training_length(*layers: dict[str, Any]) -> list[dict[str, Any]]:
    """The last of the layers (preset, file, flags) that sets a training length (steps or a
    budget, :data:`TRAINING_LENGTH`) decides it: the earlier layers' lengths are dropped, so a
    budget given in a file or a flag replaces the preset's steps. One layer that sets two is
    left as it is (:class:`TrainConfig` refuses it)."""
    def lengths(layer: dict[str, Any]) -> bool:
        train = layer.get("train")
        return isinstance(train, dict) and any(k in train for k in TRAINING_LENGTH)

    deciding = [i for i, layer in enumerate(layers) if lengths(layer)]
    if not deciding:
        return list(layers)
    out = []
    for i, layer in enumerate(layers):
        if i < deciding[-1] and lengths(layer):
            layer = {**layer, "train": {k: v for k, v in layer["train"].items() if k not in TRAINING_LENGTH}}
        elif i == deciding[-1] and "steps" not in layer["train"]:
            layer = {**layer, "train": {**layer["train"], "steps": None}}  # a budget: no fixed steps
        out.append(layer)
    return out


# Settings that never change a number of a results row (they add files: curves, TensorBoard
# events, the scores of more sample draws; tests/test_curves.py shows it): left out of the
# protocol and checkpoint hashes. The budgets enter them only when set, so a run without one
# keeps the hashes it had before budgets existed.
OBSERVING = {"train": ("tensorboard",), "eval": ("every", "every_metrics", "every_samples", "sampling_seeds")}
OPTIONAL = {"train": ("budget_gflops", "budget_images")}


def hashed(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """The settings of one table of the config (``train``, ``eval``) that a hash of what a job
    computes holds (:meth:`mgbench.job.Job.protocol_hash`, :meth:`~mgbench.job.Job.spec_hash`)."""
    return {k: v for k, v in values.items() if k not in OBSERVING.get(section, ())
            and not (k in OPTIONAL.get(section, ()) and v is None)}


def resume(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The configuration of the run in ``run_dir`` (its config.json), to finish its jobs there,
    wherever the folder now lies. ``overrides`` may change how the jobs run (``execution``);
    anything that would change what the run computes is refused, naming it."""
    run_dir = Path(run_dir)
    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no config.json)",
                         "give the folder that `mgbench run` wrote, e.g. runs/quick")
    try:
        saved = RunConfig.from_dict(json.loads(saved_path.read_text()))
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(f"{saved_path} is damaged ({type(err).__name__}: {err})".splitlines()[0],
                         "restore it from a copy, or start the run again in a new folder") from None
    overrides = dict(overrides or {})
    execution = overrides.pop("execution", {})
    changed = [f"{key} (run: {_get(saved.to_dict(), key)!r}, given: {value!r})"
               for key, value in _flatten(overrides).items() if _get(saved.to_dict(), key) != value]
    if changed:
        raise UsageError("--resume finishes a run as it was configured; these would change it: " + "; ".join(changed),
                         "drop them, or start a new run (another --name or --out)")
    if execution.get("executor", saved.execution.executor) != saved.execution.executor:
        execution = {"workers": None, "address": None, **execution}  # the other executor's settings go
    plain = saved.to_dict()
    plain["execution"] = {**plain["execution"], **execution}
    plain["out"], plain["name"] = str(run_dir.parent), run_dir.name
    return RunConfig.from_dict(plain)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and key != "model_overrides":
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return _plain(d)


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
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return coerce(options[0], value, where)
        for option in options:  # ``int | tuple[int, ...]``: the first that fits
            try:
                return coerce(option, value, where)
            except UsageError:
                continue
        raise UsageError(f"{where} must be {' or '.join(_type_name(o) for o in options)}, got {value!r}")
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


def _type_name(hint: Any) -> str:
    return "a list" if typing.get_origin(hint) is tuple else getattr(hint, "__name__", str(hint))


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
    except IsADirectoryError:
        raise UsageError(f"config file {str(path)!r} is a directory", "give the path of a .toml file") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {str(path)!r} is not text (not UTF-8)", "give a TOML text file") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"config file {str(path)!r} is not valid TOML: {err}",
                         "fix the line it names; see the example in README.md") from None
    except OSError as err:
        raise UsageError(f"config file {str(path)!r} cannot be read: {err.strerror}") from None
