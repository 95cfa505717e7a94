"""One job: train one model with one seed, sample it, score it, return one result row.

A :class:`Job` is a plain, JSON-serialisable spec; :func:`run_job` needs nothing else (it
imports the plugins the spec names), so any executor, local or remote, can run it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import save_image
from tqdm import tqdm

from mgbench import budget, curves, registry, sampling, schema, seeding
from mgbench.checks import check_samples
from mgbench.config import RunConfig, hashed
from mgbench.contract import GenerativeModel
from mgbench.data import ImageSet, load_dataset, to_uint8
from mgbench.data.batches import BatchSampler
from mgbench.device import resolve_device
from mgbench.evaluate import Evaluator, cost
from mgbench.train import Checkpointer, train

GRID_COLUMNS = 8


@dataclass(frozen=True)
class Job:
    model: str
    seed: int
    config: RunConfig

    @property
    def id(self) -> str:
        return schema.job_id(self.model, self.seed)

    def row(self, status: str, message: str = "") -> dict[str, Any]:
        """The key columns of this job's result row, with its status: the whole row of a job
        that gave no results; a finished job adds its measurements."""
        cfg = self.config
        return {"model": self.model, "dataset": cfg.data.name, "resolution": cfg.data.resolution,
                "seed": self.seed, "status": status, "message": message}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "seed": self.seed, "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Job:
        return cls(raw["model"], raw["seed"], RunConfig.from_dict(raw["config"]))

    def checkpointer(self, run_dir: Path) -> Checkpointer:
        return Checkpointer(schema.checkpoint_dir(run_dir), self.id, self.spec_hash())

    def protocol_hash(self, device: torch.device, feature_extractor: str) -> str:
        """16 hex digits of everything this job's numbers depend on: the data, training, evaluation,
        precision, threads, deterministic flag, the device kind, the extractor actually used and the
        model's every hyper-parameter (defaults included, so a changed default shows). Not the
        seed (two seeds of one protocol are two samples of it), not where files go, not how the
        jobs run. A calibration row's leaves out training and the model."""
        cfg = self.config.protocol()
        data = {k: v for k, v in cfg["data"].items() if k != "root"}  # a path: not part of what is computed
        evaluation = {k: v for k, v in hashed("eval", cfg["eval"]).items()
                      if k not in ("weights", "feature_extractor")}
        what: dict[str, Any] = {"data": data, "eval": evaluation, "feature_extractor": feature_extractor,
                                "threads": cfg["threads"], "deterministic": cfg["deterministic"],
                                "device": device.type}
        if self.model not in schema.CALIBRATION:
            what.update(model=self.model, precision=cfg["precision"],
                        train={k: v for k, v in hashed("train", cfg["train"]).items()
                               if k != "checkpoint_every"},
                        hparams=registry.hyperparameters(self.model, cfg["model_overrides"].get(self.model)))
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def spec_hash(self) -> str:
        """What a checkpoint must match: everything that changes training, not where files go."""
        cfg = self.config.to_dict()
        relevant = {
            "model": self.model,
            "seed": self.seed,
            "data": cfg["data"],
            "train": {k: v for k, v in hashed("train", cfg["train"]).items() if k != "checkpoint_every"},
            "hparams": cfg["model_overrides"].get(self.model, {}),
            "deterministic": cfg["deterministic"],
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def load_data(config: RunConfig, split: str) -> ImageSet:
    d = config.data
    return load_dataset(
        d.name,
        split,
        resolution=d.resolution,
        root=d.root,
        train_size=d.train_size,
        reference_size=d.reference_size,
        seed=d.seed,
    )


def eval_labels(model: GenerativeModel, n: int) -> torch.Tensor | None:
    """Balanced class labels for a conditional model's samples (class i % K), else None."""
    if not model.conditional:
        return None
    return torch.arange(n, device=model.device) % model.data.num_classes


def draw_samples(model: GenerativeModel, n: int, seed: int, batch_size: int = 500) -> torch.Tensor:
    """``n`` samples as uint8 on the CPU, from a private generator: the same seed, the same images."""
    gen = seeding.generator(seed, model.device)
    labels = eval_labels(model, n)
    out = []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            batch_labels = None if labels is None else labels[start : start + batch_size]
            count = min(batch_size, n - start)
            out.append(to_uint8(check_samples(model, model.sample(count, batch_labels, generator=gen), count)).cpu())
    return torch.cat(out)


def save_grid(model: GenerativeModel, path: Path, seed: int) -> None:
    """An 8×8 grid; a conditional model gets one row per class."""
    gen = seeding.generator(seed, model.device)
    if model.conditional:
        k = model.data.num_classes
        labels = torch.arange(k, device=model.device).repeat_interleave(GRID_COLUMNS)
        n = len(labels)
    else:
        labels, n = None, GRID_COLUMNS * GRID_COLUMNS
    with torch.inference_mode():
        images = check_samples(model, model.sample(n, labels, generator=gen), n)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float().cpu(), path, nrow=GRID_COLUMNS, normalize=True, value_range=(-1, 1))


def peak_memory_mb(device: torch.device) -> float:
    """GPU: peak memory allocated by torch. CPU: peak resident memory of this job's process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return process_peak_rss_mb()


def process_peak_rss_mb() -> float:
    """Peak resident memory of this process alone, in MiB.

    Linux: VmHWM, the high-water mark of this process's own memory. Not ``ru_maxrss``: a spawned
    process inherits its parent's maximum there (kept across fork and exec), so every job would
    report at least the runner's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # macOS: bytes, elsewhere KiB
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class Phases:
    """Wall time per phase of a job, for the ``time_<phase>_s`` columns (where a job's time goes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        """The time since the previous lap belongs to ``phase``."""
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now

    def columns(self) -> dict[str, float]:
        return {f"time_{k}_s": round(v, 2) for k, v in self.seconds.items()}


def run_job(job: Job, run_dir: Path, progress_position: int = 1) -> dict[str, Any]:
    """Train, sample and score one job; returns its result row (status ``ok``).

    Before training: the evaluator (the one feature extractor of the job, also for the metrics
    during training) and the FLOPs per training image, both under :func:`mgbench.curves.isolated_rng`
    so that training draws what it drew without them; a compute budget turns the FLOPs into the
    job's steps (:mod:`mgbench.budget`). Exceptions propagate: the executor records them as the
    job's status.
    """
    t0 = time.perf_counter()
    phases = Phases()
    cfg = job.config
    registry.import_plugins(cfg.plugins)
    torch.set_num_threads(cfg.threads)  # the protocol's: float sums over other thread counts round differently
    device = resolve_device(cfg.device)
    seeding.set_deterministic(cfg.deterministic)
    seeding.seed_everything(seeding.derive_seed(job.model, job.seed, "init"))
    if cfg.train.tensorboard:
        curves.require_tensorboard()  # before anything trains

    data = load_data(cfg, "train")
    model = registry.create_model(job.model, data.spec(), cfg.model_overrides.get(job.model), device)
    sampler = BatchSampler(len(data), cfg.train.batch_size, seeding.derive_seed(job.model, job.seed, "data"))
    phases.lap("setup")
    with curves.isolated_rng(device):
        evaluator = Evaluator(cfg, device, load_data(cfg, "reference"), data)
        phases.lap("evaluator")  # the classifier and the reference features come from the cache
        idx = sampler.indices(0)
        labels = None if data.labels is None or not model.conditional else data.labels[idx].to(device)
        planned = cost(copy.deepcopy(model).eval(), data.images[idx].to(device), labels)  # a copy: nothing changes
    step_gflops = planned["train_gflops_per_img"]  # what a budget buys steps with, and the curves' x-axis
    steps = budget.training_steps(cfg.train, step_gflops, job.model)
    checkpointer = job.checkpointer(run_dir)
    model.on_train_start(steps, cfg.train.batch_size)  # before a resume loads the model's state
    state = checkpointer.load(model)  # None unless resuming
    phases.lap("setup")
    resumed = state.step if state else 0

    def sample(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return draw_samples(model, n, seed), eval_labels(model, n)

    points = curves.curve_steps(cfg.eval, steps)
    recorder = None
    if points:
        recorder = curves.CurveRecorder(
            evaluator.subset(curves.curve_metrics(cfg.eval), curves.curve_config(cfg.eval)), model, sample,
            schema.curves_path(run_dir, job.model, job.seed), points=points, job_model=job.model, job_seed=job.seed,
            num_samples=curves.curve_samples(cfg.eval), batch_size=cfg.train.batch_size,
            train_gflops_per_img=step_gflops, kept_step=resumed)
    board = None
    if cfg.train.tensorboard:
        board = curves.TensorBoardLog(schema.tensorboard_dir(run_dir, job.model, job.seed),
                                      state.history if state else (), recorder.file.records() if recorder else ())
        if recorder is not None:
            recorder.tensorboard = board

    bar = tqdm(total=steps, initial=resumed, desc=job.id,
               position=progress_position, leave=False, dynamic_ncols=True, mininterval=1.0)

    def on_step(step: int, record: dict[str, float] | None) -> None:
        bar.update(1)
        if record:
            bar.set_postfix({k: f"{v:.3g}" for k, v in record.items()}, refresh=False)
            if board is not None:
                board.losses(step, record)

    state = train(model, data, sampler, steps, cfg.train.log_every, cfg.train.checkpoint_every, checkpointer,
                  state, on_step, precision=cfg.precision, eval_steps=points, on_eval=recorder)
    bar.close()
    checkpointer.save(model, state)
    model.eval()
    phases.lap("train")

    sample_seed = seeding.derive_seed(job.model, job.seed, "sample")
    save_grid(model, schema.samples_path(run_dir, job.model, job.seed), sample_seed)
    t_sample = time.perf_counter()
    samples = draw_samples(model, cfg.eval.num_samples, sample_seed)
    sample_seconds = time.perf_counter() - t_sample
    phases.lap("sample")

    scores = evaluator.score(samples, job.seed, eval_labels(model, len(samples)), model=model)
    for name, grid in evaluator.artifacts.items():
        save_image(grid.float() / 255.0, schema.artifact_path(run_dir, job.model, job.seed, name), nrow=GRID_COLUMNS)
    if cfg.eval.sampling_seeds > 1:
        draws = sampling.score_draws(evaluator, sample, job.model, job.seed, cfg.eval.num_samples,
                                     cfg.eval.sampling_seeds, scores, model=model)
        sampling.write_draws(schema.sampling_path(run_dir, job.model, job.seed), draws)
    phases.lap("score")
    # The trained model's cost, for the cost tables: a model that grows (progan) costs more at
    # the end than the count before training, which the budget had to use.
    costs = cost(model, data.images[idx].to(device), labels)
    phases.lap("cost")
    train_img_per_s = _rate(state.timed_steps * cfg.train.batch_size, state.train_seconds)

    _write_history(schema.losses_path(run_dir, job.model, job.seed), state.history)
    if board is not None:
        board.close()
    final = state.history[-1] if state.history else {}
    wall = time.perf_counter() - t0
    curve_seconds = recorder.seconds if recorder else 0.0
    if recorder is not None and recorder.count:
        tqdm.write(f"{job.id}: {recorder.count} evaluations during training took {curve_seconds:.1f} s, "
                   f"{100 * curve_seconds / wall:.0f} % of the job's {wall:.0f} s", file=sys.stderr)
    return {
        **job.row("ok"),
        "steps": state.step,
        **budget.budget_columns(cfg.train, state.step, step_gflops),
        "batch_size": cfg.train.batch_size,
        "device": str(device),
        "deterministic": cfg.deterministic,
        "train_precision": cfg.precision,
        "threads": cfg.threads,
        "protocol": job.protocol_hash(device, scores["feature_extractor"]),
        "scales": " ".join(str(r) for r in model.resolutions),
        **{f"loss_{k}": v for k, v in final.items() if k != "step"},
        **scores,
        **{f"params_{k}": v for k, v in model.num_parameters().items()},
        **costs,
        "train_img_per_s": train_img_per_s,
        "sample_img_per_s": _rate(cfg.eval.num_samples, sample_seconds),
        "achieved_tflops": round(costs["train_gflops_per_img"] * train_img_per_s / 1e3, 4),
        "peak_mem_mb": round(peak_memory_mb(device), 1),
        **phases.columns(),
        "wall_s": round(wall, 2),
        "curves_s": round(curve_seconds, 2),
    }


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else float("nan")


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(history).to_csv(path, index=False)
