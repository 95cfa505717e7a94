"""Metrics during training: a cheap subset of the metrics, scored at chosen steps of a job.

A score at the end of training cannot show training instability or mode collapse, the open
problems of GANs; peer suites log metrics during training (PyTorch-StudioGAN, google/compare_gan).
At each evaluation step (:func:`curve_steps`) the job draws ``eval.every_samples`` samples (at most
``eval.num_samples``: :func:`curve_samples`) from a private generator seeded from (model, seed,
step), scores ``eval.every_metrics``
(:func:`curve_metrics`: FID, MS-SWD and the per-scale modes by default) against the run's
reference with the job's own :class:`~mgbench.evaluate.Evaluator` (built once, before training;
:meth:`~mgbench.evaluate.Evaluator.subset` shares its feature extractor), and appends one row to
``RUN_DIR/curves/<job>.csv`` (:data:`mgbench.schema.CURVE_COLUMNS`, then the scores).

An evaluation leaves training as it found it: the global RNG states (torch CPU and CUDA, NumPy,
Python) are restored (:func:`isolated_rng`), so is the train/eval mode of every module
(:func:`kept_modes`); sampling runs under inference mode, and the training clock stops while it
runs. A run with curves gives bit-identical results rows to one without (tests/test_curves.py).
A resumed job keeps the rows up to its checkpoint's step, byte for byte, and computes the rest,
so its curves equal an uninterrupted job's.

The values along a curve are at N = ``eval.every_samples`` (FID is biased upward at small N,
Chong & Forsyth 2020): comparable along the curve and between the run's models, not with the
results table's numbers at its larger N (FID∞, also in the file, extrapolates the bias away);
MS-SWD is computed on the first :data:`SWD_IMAGES` of them.

Cost: ten evaluations of FID, MS-SWD and modes took about N % of a quick-recipe DCGAN job
(measured, see the report); ``eval.every`` and ``eval.every_metrics`` trade it for detail.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgbench import seeding
from mgbench.config import EvalConfig
from mgbench.contract import GenerativeModel
from mgbench.errors import UsageError
from mgbench.evaluate import Evaluator
from mgbench.files import write_atomic
from mgbench.schema import CURVE_COLUMNS

DEFAULT_METRICS = ("fid", "swd", "modes")
DEFAULT_POINTS = 10  # evaluations per job when eval.every is not given: every tenth of its steps
# MS-SWD during training: at most this many images a set. Its cost grows with the images (sorting
# 128 patches an image) and dominates an evaluation; measured on the quick recipe (DCGAN, 32 px),
# FID and modes on 500 samples take about a fifth of what MS-SWD on 500 images takes.
SWD_IMAGES = 200


def curve_metrics(evaluation: EvalConfig) -> tuple[str, ...]:
    """The metrics scored during training: ``eval.every_metrics``, or those of
    :data:`DEFAULT_METRICS` that the run computes."""
    if evaluation.every_metrics is not None:
        return evaluation.every_metrics
    return tuple(m for m in DEFAULT_METRICS if evaluation.metrics is None or m in evaluation.metrics)


def curve_steps(evaluation: EvalConfig, steps: int) -> list[int]:
    """The steps of a job of ``steps`` steps at which its metrics are scored (module doc); the last
    step is always one, and none when ``eval.every`` is 0 or there are no metrics to score."""
    every = evaluation.every
    if every == 0 or not curve_metrics(evaluation):
        return []
    if isinstance(every, tuple):
        points = {s for s in every if s <= steps}
    else:
        interval = every if every is not None else math.ceil(steps / DEFAULT_POINTS)
        points = set(range(interval, steps + 1, interval))
    return sorted(points | {steps})


def curve_samples(evaluation: EvalConfig) -> int:
    """Samples per evaluation during training: ``eval.every_samples``, never more than the final
    evaluation's ``eval.num_samples`` (a run scored on 24 samples must not spend 500 per curve point)."""
    return min(evaluation.every_samples, evaluation.num_samples)


def curve_config(evaluation: EvalConfig) -> EvalConfig:
    """The evaluation settings of the metrics during training: their metrics, their smaller
    sample, and per-metric subsets no larger than it; MS-SWD on at most :data:`SWD_IMAGES` images
    (sorting its projections is most of an evaluation's cost)."""
    n = curve_samples(evaluation)
    return dataclasses.replace(evaluation, metrics=curve_metrics(evaluation), num_samples=n,
                               swd_images=min(evaluation.swd_images, n, SWD_IMAGES),
                               lpips_pairs=min(evaluation.lpips_pairs, n))


@contextmanager
def isolated_rng(device: torch.device) -> Iterator[None]:
    """Run a block without changing the global RNGs training draws from: torch (CPU and the
    job's CUDA device), NumPy and Python's ``random`` are restored afterwards."""
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


@contextmanager
def kept_modes(model: GenerativeModel) -> Iterator[None]:
    """Restore the train/eval mode of every module of every network of ``model`` afterwards."""
    modes = {name: [m.training for m in net.modules()] for name, net in model.networks.items()}
    try:
        yield
    finally:
        for name, net in model.networks.items():
            for module, mode in zip(net.modules(), modes[name], strict=True):
                module.training = mode


def require_tensorboard() -> None:
    """Raise :class:`UsageError` unless the ``tensorboard`` package (which
    ``torch.utils.tensorboard`` writes with) can be imported."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UsageError("train.tensorboard (--tensorboard) needs the tensorboard package, which is not installed",
                         "pip install tensorboard, or run without --tensorboard (the curves are in "
                         "RUN_DIR/curves/ and the losses in RUN_DIR/losses/ either way)") from None


class TensorBoardLog:
    """TensorBoard event files of one job (``loss/<name>`` and ``curve/<column>`` scalars by step).

    A job that starts (or resumes) clears its folder and writes what it already has (the loss
    history and the curve rows of its checkpoint), so the files never hold a step twice.
    """

    def __init__(self, directory: Path, history: Sequence[dict[str, float]] = (),
                 curve_rows: Sequence[dict[str, Any]] = ()) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        shutil.rmtree(directory, ignore_errors=True)
        self.writer = SummaryWriter(str(directory))
        for record in history:
            self.losses(int(record["step"]), record)
        for row in curve_rows:
            self.scores(int(row["step"]), row)

    def losses(self, step: int, record: dict[str, float]) -> None:
        for name, value in record.items():
            if name != "step":
                self.writer.add_scalar(f"loss/{name}", float(value), step)

    def scores(self, step: int, row: dict[str, Any]) -> None:
        for name, value in row.items():
            if name not in CURVE_COLUMNS and _number(value) is not None:
                self.writer.add_scalar(f"curve/{name}", _number(value), step)

    def close(self) -> None:
        self.writer.close()


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _text(value: Any) -> str:
    """A value as the curves file writes it: the shortest text that reads back as the same number."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating, torch.Tensor)):
        return repr(float(value))
    return str(value)


class CurveFile:
    """``RUN_DIR/curves/<job>.csv``, rewritten atomically after each row. Opened for a job that
    resumes at ``kept_step``, it keeps the rows up to that step as they were written."""

    def __init__(self, path: Path, kept_step: int = 0) -> None:
        self.path = path
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        if path.exists():
            lines = list(csv.reader(io.StringIO(path.read_text())))
            if lines:
                self.header = lines[0]
                self.rows = [r for r in lines[1:] if r and int(r[0]) <= kept_step]
            self._write()

    def records(self) -> list[dict[str, str]]:
        return [dict(zip(self.header, r, strict=True)) for r in self.rows]

    def add(self, row: dict[str, Any]) -> None:
        new = [k for k in row if k not in self.header]
        if new:  # a column no earlier row had: those rows leave it empty
            self.header += new
            self.rows = [r + [""] * len(new) for r in self.rows]
        self.rows.append([_text(row.get(k)) for k in self.header])
        self._write()

    def _write(self) -> None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if self.header:
            writer.writerow(self.header)
        writer.writerows(self.rows)
        write_atomic(self.path, out.getvalue())


Sampler = Callable[[int, int], "tuple[torch.Tensor, torch.Tensor | None]"]
_NOT_CURVES = ("feature_extractor", "num_samples", "num_reference", "lpips_backbone")


def _timing(column: str) -> bool:
    """Seconds of the machine (``time_<metric>_s``) stay out of the curves file: it must be the
    same bytes in every run of the same job (an uninterrupted and a resumed one)."""
    return column.startswith("time_") and column.endswith("_s")


class CurveRecorder:
    """Scores a model at the steps of :func:`curve_steps` (called by :func:`mgbench.train.train`
    as its ``on_eval``) into its curves file (:class:`CurveFile`); ``seconds`` is its overhead.

    ``sample(n, seed)`` returns ``n`` uint8 samples of the model drawn from a private generator
    seeded with ``seed``, and the labels a conditional model was asked for.
    """

    def __init__(self, evaluator: Evaluator, model: GenerativeModel, sample: Sampler, path: Path, *,
                 points: Sequence[int], job_model: str, job_seed: int, num_samples: int, batch_size: int,
                 train_gflops_per_img: float, kept_step: int = 0) -> None:
        self.evaluator, self.model, self.sample = evaluator, model, sample
        self.points = frozenset(points)
        self.job_model, self.job_seed = job_model, job_seed
        self.num_samples, self.batch_size, self.gflops_per_img = num_samples, batch_size, train_gflops_per_img
        self.file = CurveFile(path, kept_step)
        self.tensorboard: TensorBoardLog | None = None
        self.seconds = 0.0
        self.count = 0

    def seed(self, step: int) -> int:
        return seeding.derive_seed(self.job_model, self.job_seed, "curve", step)

    def __call__(self, step: int) -> None:
        if step not in self.points:
            return
        start = time.perf_counter()
        model = self.model
        with isolated_rng(model.device), kept_modes(model):
            model.eval()
            seed = self.seed(step)
            images, requested = self.sample(self.num_samples, seed)
            scores = self.evaluator.score(images, seed, requested, model=model)
        row = {"step": step, "images": step * self.batch_size,
               "train_gflops": step * self.batch_size * self.gflops_per_img,
               "feature_extractor": scores["feature_extractor"], "num_samples": scores["num_samples"],
               **{k: v for k, v in scores.items() if k not in _NOT_CURVES and not _timing(k)}}
        self.file.add(row)
        if self.tensorboard is not None:
            self.tensorboard.scores(step, row)
        self.seconds += time.perf_counter() - start
        self.count += 1
