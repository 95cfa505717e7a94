"""What a run directory holds: its file names, the job ids and the columns of results.csv.

One home for these, so the runner, the jobs, the executors and the report agree on them::

    RUN_DIR/
      config.json       the resolved configuration (re-run it with --resume)
      manifest.json     software, hardware and code the numbers depend on
      results.csv       one row per job: the columns below
      samples/<job>.png   losses/<job>.csv   checkpoints/<job>.pt (+ .json)
      curves/<job>.csv  metrics during training    sampling/<job>.csv  scores of more sample draws
      tensorboard/<job>/  TensorBoard event files (train.tensorboard)
      jobs/<job>.json   the row as the job's process wrote it    logs/<job>.log  a failed job's traceback
      report/           everything `mgbench report` rebuilds from results.csv

This module imports nothing heavy (no torch), so the report layer can use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
RESULTS_FILE = "results.csv"
REPORT_DIR = "report"

# The pseudo-models the runner scores beside the models: real training images scored as if
# they were samples (the floor of every metric) and uniform noise (its ceiling). Reserved names.
CALIBRATION = ("real-data", "noise")

# ---------------------------------------------------------------- jobs and their files

def job_id(model: str, seed: int) -> str:
    """The name of a job in file names and logs: ``<model>-seed<k>``."""
    return f"{model}-seed{int(seed)}"


def samples_path(run_dir: Path, model: str, seed: int) -> Path:
    return Path(run_dir) / "samples" / f"{job_id(model, seed)}.png"


def artifact_path(run_dir: Path, model: str, seed: int, name: str) -> Path:
    """An image grid a metric left for the report (e.g. ``closest``: samples beside their nearest
    training images)."""
    return Path(run_dir) / "samples" / f"{job_id(model, seed)}-{name}.png"


def losses_path(run_dir: Path, model: str, seed: int) -> Path:
    return Path(run_dir) / "losses" / f"{job_id(model, seed)}.csv"


def curves_path(run_dir: Path, model: str, seed: int) -> Path:
    """Metrics during training (:mod:`mgbench.curves`): one row per evaluation, :data:`CURVE_COLUMNS` first."""
    return Path(run_dir) / "curves" / f"{job_id(model, seed)}.csv"


def sampling_path(run_dir: Path, model: str, seed: int) -> Path:
    """The scores of every sample draw of a trained model (``eval.sampling_seeds``), one row each."""
    return Path(run_dir) / "sampling" / f"{job_id(model, seed)}.csv"


def tensorboard_dir(run_dir: Path, model: str, seed: int) -> Path:
    return Path(run_dir) / "tensorboard" / job_id(model, seed)


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def job_result_path(run_dir: Path, model: str, seed: int) -> Path:
    return Path(run_dir) / "jobs" / f"{job_id(model, seed)}.json"


def log_path(run_dir: Path, model: str, seed: int) -> Path:
    return Path(run_dir) / "logs" / f"{job_id(model, seed)}.log"


# ---------------------------------------------------------------- results.csv columns

KEY = ["model", "seed"]
# The protocol columns of a row: ``train_precision`` (the config's ``precision``: fp32 / bf16;
# not the metric ``precision``), ``threads`` (torch threads per job) and ``protocol``, a hash of
# everything its numbers depend on (:meth:`mgbench.job.Job.protocol_hash`). ``scales``: the
# resolutions the model generates at, coarse to fine ("32" for a single-scale model at 32 px).
# Columns that describe a job, not a measurement of it, in the order results.csv shows them first.
JOB_COLUMNS = ["model", "dataset", "resolution", "seed", "status", "message", "steps", "budget_gflops",
               "budget_images", "batch_size", "device", "deterministic", "train_precision", "threads", "protocol",
               "scales", "feature_extractor", "num_samples", "num_reference", "lpips_backbone"]
STRING_COLUMNS = ["model", "dataset", "status", "message", "device", "train_precision", "protocol", "scales",
                  "feature_extractor", "lpips_backbone"]
# Columns that measure the machine, not the model: they differ between identical runs.
# ``curves_s``: the seconds a job spent on its metrics during training (part of ``wall_s``).
TIMING_COLUMNS = ["wall_s", "train_img_per_s", "sample_img_per_s", "achieved_tflops", "peak_mem_mb", "curves_s"]
# Size and cost, in the order tables show them. ``train_gflops``: the training compute a job
# spent (steps × batch × train_gflops_per_img; equal across models under train.budget_gflops).
COST_COLUMNS = ["gflops_per_sample", "train_gflops_per_img", "train_gflops", "train_img_per_s", "sample_img_per_s",
                "achieved_tflops", "peak_mem_mb", "wall_s", "curves_s"]
# The first columns of a curves file; the scores of the evaluation follow (``train_gflops``: cumulative).
CURVE_COLUMNS = ["step", "images", "train_gflops", "feature_extractor", "num_samples"]
# A table holds only rows that agree on these: two feature extractors, LPIPS backbones or sample
# counts N (FID is biased upward at small N, Chong & Forsyth 2020) never meet in one table.
TABLE_KEYS = ["dataset", "resolution", "feature_extractor", "lpips_backbone", "num_samples"]


def is_cost(column: str) -> bool:
    """Size, FLOPs, throughput and memory columns (``params_<net>`` included)."""
    return column in COST_COLUMNS or column.startswith("params_")


def is_loss(column: str) -> bool:
    return column.startswith("loss_")


def is_timing(column: str) -> bool:
    """Columns that measure the machine: :data:`TIMING_COLUMNS` and the phase times ``time_<phase>_s``
    (``time_train_s``, ``time_score_s``, one per metric: ``time_fid_s`` ...)."""
    return column in TIMING_COLUMNS or (column.startswith("time_") and column.endswith("_s"))


def timing_columns(columns: Iterable[str]) -> list[str]:
    """The timing columns among ``columns`` (to drop before comparing two runs bit for bit)."""
    return [c for c in columns if is_timing(c)]
