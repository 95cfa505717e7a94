"""One job: train one model with one seed, sample it, score it, return one result row.

A :class:`Job` is a plain, JSON-serialisable spec; :func:`run_job` needs nothing else (it
imports the plugins the spec names), so any executor, local or remote, can run it.
"""

from __future__ import annotations

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

from mgbench import registry, seeding
from mgbench.config import RunConfig
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
        return f"{self.model}-seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "seed": self.seed, "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Job:
        return cls(raw["model"], raw["seed"], RunConfig.from_dict(raw["config"]))

    def checkpointer(self, run_dir: Path) -> Checkpointer:
        return Checkpointer(run_dir / "checkpoints", self.id, self.spec_hash())

    def spec_hash(self) -> str:
        """What a checkpoint must match: everything that changes training, not where files go."""
        cfg = self.config.to_dict()
        relevant = {
            "model": self.model,
            "seed": self.seed,
            "data": cfg["data"],
            "train": {k: v for k, v in cfg["train"].items() if k != "checkpoint_every"},
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
            out.append(to_uint8(model.sample(count, batch_labels, generator=gen)).cpu())
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
        images = model.sample(n, labels, generator=gen)
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


def run_job(job: Job, run_dir: Path, progress_position: int = 1) -> dict[str, Any]:
    """Train, sample and score one job; returns its result row (status ``ok``).

    Exceptions propagate: the executor records them as the job's status.
    """
    t0 = time.perf_counter()
    cfg = job.config
    registry.import_plugins(cfg.plugins)
    device = resolve_device(cfg.device)
    seeding.set_deterministic(cfg.deterministic)
    seeding.seed_everything(seeding.derive_seed(job.model, job.seed, "init"))

    data = load_data(cfg, "train")
    model = registry.create_model(job.model, data.spec(), cfg.model_overrides.get(job.model), device)
    sampler = BatchSampler(len(data), cfg.train.batch_size, seeding.derive_seed(job.model, job.seed, "data"))
    checkpointer = job.checkpointer(run_dir)
    state = checkpointer.load(model)  # None unless resuming

    bar = tqdm(total=cfg.train.steps, initial=state.step if state else 0, desc=job.id,
               position=progress_position, leave=False, dynamic_ncols=True, mininterval=1.0)

    def on_step(step: int, record: dict[str, float] | None) -> None:
        bar.update(1)
        if record:
            bar.set_postfix({k: f"{v:.3g}" for k, v in record.items()}, refresh=False)

    state = train(model, data, sampler, cfg.train.steps, cfg.train.log_every,
                  cfg.train.checkpoint_every, checkpointer, state, on_step)
    bar.close()
    checkpointer.save(model, state)
    model.eval()

    sample_seed = seeding.derive_seed(job.model, job.seed, "sample")
    save_grid(model, run_dir / "samples" / f"{job.id}.png", sample_seed)
    t_sample = time.perf_counter()
    samples = draw_samples(model, cfg.eval.num_samples, sample_seed)
    sample_seconds = time.perf_counter() - t_sample

    evaluator = Evaluator(cfg, device, load_data(cfg, "reference"), data)
    scores = evaluator.score(samples, job.seed, eval_labels(model, len(samples)))
    scores.update(evaluator.reconstruction(model))
    idx = sampler.indices(0)
    costs = cost(model, data.images[idx].to(device), None if data.labels is None or not model.conditional
                 else data.labels[idx].to(device))
    train_img_per_s = _rate(state.timed_steps * cfg.train.batch_size, state.train_seconds)

    _write_history(run_dir / "losses" / f"{job.id}.csv", state.history)
    final = state.history[-1] if state.history else {}
    return {
        "model": job.model,
        "dataset": cfg.data.name,
        "resolution": cfg.data.resolution,
        "seed": job.seed,
        "steps": state.step,
        "batch_size": cfg.train.batch_size,
        "status": "ok",
        "message": "",
        "device": str(device),
        "deterministic": cfg.deterministic,
        **{f"loss_{k}": v for k, v in final.items() if k != "step"},
        **scores,
        **{f"params_{k}": v for k, v in model.num_parameters().items()},
        **costs,
        "train_img_per_s": train_img_per_s,
        "sample_img_per_s": _rate(cfg.eval.num_samples, sample_seconds),
        "achieved_tflops": round(costs["train_gflops_per_img"] * train_img_per_s / 1e3, 4),
        "peak_mem_mb": round(peak_memory_mb(device), 1),
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else float("nan")


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(history).to_csv(path, index=False)
