"""A run: check everything that can be checked up front, then execute its jobs, one process each.

The jobs run through an executor (:mod:`mgbench.executors`: here, one or several at a time, or
on a Ray cluster); each row is stored as its job finishes. Finished jobs are skipped when a run
directory is reused (resume).

Exit statuses of jobs: ``ok``, ``diverged`` (NaN/Inf loss), ``oom``, ``failed`` (an exception),
``crashed`` (the process died: killed, segfault; on Ray, also its worker or node, retries spent).
"""

from __future__ import annotations

import fcntl
import gc
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mgbench import manifest, registry, seeding
from mgbench.config import RunConfig
from mgbench.data import ImageSet
from mgbench.device import resolve_device
from mgbench.errors import UsageError
from mgbench.evaluate import Evaluator, check_extractor
from mgbench.executors import Executor, failure_row, make_executor, run_in_subprocess, write_atomic
from mgbench.job import Job, load_data
from mgbench.report.aggregate import CALIBRATION
from mgbench.results import TIMING_COLUMNS, ResultsStore

log = logging.getLogger(__name__)

# How the jobs run, not what they compute: a run may be resumed with other values of these.
EXECUTION_FIELDS = ("executor", "workers", "address", "num_cpus", "num_gpus", "max_retries")


def plan(config: RunConfig) -> list[Job]:
    """The job grid, after checking models, hyper-parameters and data before anything trains."""
    registry.import_plugins(config.plugins)
    classes = {name: registry.get_model_class(name) for name in config.models}
    for name in config.model_overrides:
        if name not in config.models:
            raise UsageError(
                f"hyper-parameters given for model {name!r}, which is not in this run",
                f"models in this run: {', '.join(config.models)}",
            )
    spec = load_data(config, "reference").spec()  # also proves the data files are readable
    for name, cls in classes.items():
        hparams = registry.model_config(name, config.model_overrides.get(name))
        try:
            cls.check_data(hparams, spec)
        except UsageError as err:
            raise UsageError(f"model {name!r} on {config.data.name}: {err.problem}", err.fix) from None
    check_extractor(config)  # a missing or unsafe weights file stops the run here, before training
    # On Ray the GPUs are on the cluster's nodes, not necessarily beside the driver.
    if config.executor == "local" and config.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {config.device!r} asked for, but CUDA is not available",
                         "use --device cpu or auto")
    return [Job(m, s, config) for m in config.models for s in config.seeds]


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Only one `mgbench run` per run directory at a time."""
    handle = (run_dir / ".lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UsageError(f"another mgbench run is using {run_dir}",
                         "wait for it to finish, or choose another --name / --out") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def prepare_run_dir(config: RunConfig) -> Path:
    """Create the run directory; a directory of a different config is never overwritten."""
    run_dir = config.run_dir
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = run_dir / "config.json"
        if saved.exists():
            if _what_to_compute(json.loads(saved.read_text())) != _what_to_compute(config.to_dict()):
                raise UsageError(
                    f"{run_dir} holds a run with another config",
                    f"resume it with `mgbench run --resume {run_dir}`, or choose another --name / --out",
                )
        else:
            write_atomic(saved, config.to_json())
    except OSError as err:
        raise UsageError(f"cannot write to the run directory {run_dir}: {err.strerror}",
                         "choose a writable folder with --out") from None
    return run_dir


def _what_to_compute(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in EXECUTION_FIELDS}


def execute(config: RunConfig) -> int:
    """Run every unfinished job of ``config``; returns 0 if all are ok, 1 if some failed."""
    jobs = plan(config)
    executor = make_executor(config)  # Ray missing or out of reach: stop before writing anything
    with closing(executor):
        run_dir = prepare_run_dir(config)
        with run_lock(run_dir):
            statuses = _execute(config, jobs, run_dir, executor)
    failed = [s for s in statuses if s != "ok"]
    if failed:
        log.warning("%d of %d jobs did not finish ok (see status and message in results.csv)",
                    len(failed), len(statuses))
    return 1 if failed else 0


def _execute(config: RunConfig, jobs: list[Job], run_dir: Path, executor: Executor) -> list[str]:
    """The calibration rows, then the unfinished jobs; returns the jobs' statuses."""
    store = ResultsStore(run_dir / "results.csv")
    done = store.finished()
    todo = [j for j in jobs if (j.model, j.seed) not in done]
    for job in todo:
        job.checkpointer(run_dir).verify()
    if len(todo) < len(jobs):
        log.info("resuming %s: %d of %d jobs already finished", run_dir, len(jobs) - len(todo), len(jobs))
    device = _driver_device(config)
    # Built once here so the domain classifier and the reference features are trained and
    # cached before the jobs, which then read them from the cache.
    train = load_data(config, "train")
    evaluator = Evaluator(config, device, load_data(config, "reference"), train)
    info = manifest.collect(device)
    info["feature_extractor"] = evaluator.describe()
    info["execution"] = executor.describe()
    write_atomic(run_dir / "manifest.json", json.dumps(info, indent=2))
    for name, seed in calibration_jobs(config):
        if (name, seed) not in done:
            store.add(score_calibration(name, seed, config, evaluator, train))
    # The jobs read the classifier and the reference features from the cache: the driver's
    # copies would only add to the run's peak memory while they train.
    del evaluator, train
    gc.collect()

    statuses = []
    with GridProgress(len(jobs), len(jobs) - len(todo)) as progress:
        for row in executor.run(todo, run_dir, progress.started):
            store.add(row)  # at once: a killed driver keeps every finished job
            statuses.append(row["status"])
            progress.finished(row)
    return statuses


def _driver_device(config: RunConfig) -> torch.device:
    """Where the runner scores the calibration rows. A Ray driver may have no GPU of its own."""
    if config.executor == "ray" and config.device.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")
    return resolve_device(config.device)


class GridProgress:
    """One progress bar for the whole grid: jobs finished, with how many run and how many failed."""

    def __init__(self, total: int, finished: int) -> None:
        self.bar = tqdm(total=total, initial=finished, desc="jobs", position=0, dynamic_ncols=True)
        self.running: set[str] = set()
        self.failed = 0
        self.last = ""
        self.lock = threading.Lock()  # the local executor reports starts from its threads

    def __enter__(self) -> GridProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def started(self, job: Job) -> None:
        with self.lock:
            self.running.add(job.id)
            self._show()

    def finished(self, row: dict[str, Any]) -> None:
        job_id = f"{row['model']}-seed{row['seed']}"
        with self.lock:
            self.running.discard(job_id)
            self.failed += row["status"] != "ok"
            self.last = f"{job_id}: {row['status']}"
            self.bar.update(1)
            self._show()

    def _show(self) -> None:
        text = f"running {len(self.running)}, failed {self.failed}"
        self.bar.set_postfix_str(f"{text}; last {self.last}" if self.last else text)


def check_determinism(config: RunConfig) -> int:
    """Run the first job twice in scratch directories and report every column that differs."""
    import tempfile

    job = plan(config)[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mgbench-determinism-") as tmp:
        for attempt in ("a", "b"):
            run_dir = Path(tmp) / attempt
            run_dir.mkdir()
            rows.append(run_in_subprocess(job, run_dir))
        grids = [(Path(tmp) / a / "samples" / f"{job.id}.png") for a in ("a", "b")]
        same_grid = all(g.exists() for g in grids) and grids[0].read_bytes() == grids[1].read_bytes()
    differ = [k for k in sorted(set(rows[0]) | set(rows[1]))
              if k not in TIMING_COLUMNS and rows[0].get(k) != rows[1].get(k)]
    if rows[0]["status"] != "ok":
        print(f"{job.id}: {rows[0]['status']}: {rows[0]['message']}")
        return 1
    if differ or not same_grid:
        for k in differ:
            print(f"{job.id}: {k} differs: {rows[0].get(k)!r} vs {rows[1].get(k)!r}")
        if not same_grid:
            print(f"{job.id}: the sample grids differ")
        return 1
    print(f"{job.id}: two runs gave identical results ({len(rows[0])} columns, timing columns aside) "
          "and identical sample grids")
    return 0


def calibration_jobs(config: RunConfig) -> list[tuple[str, int]]:
    """The pseudo-models scored beside the models: the noise floor and the ceiling of each metric."""
    return [(name, seed) for name in CALIBRATION for seed in config.seeds]


def score_calibration(name: str, seed: int, config: RunConfig, evaluator: Evaluator,
                      train: ImageSet) -> dict[str, Any]:
    """``real-data``: real training images scored like samples (the best a model can hope for);
    ``noise``: uniform noise images (the worst)."""
    n = config.eval.num_samples
    gen = seeding.generator(seeding.derive_seed(name, seed))
    if name == "real-data":
        images = train.images[torch.randperm(len(train), generator=gen)[:n]]
    else:
        images = torch.randint(0, 256, (n, *train.images.shape[1:]), generator=gen, dtype=torch.uint8)
    row = failure_row(Job(name, seed, config), "ok", "")
    row.update(evaluator.score(images, seed))
    return row
