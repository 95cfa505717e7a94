"""A run: check everything that can be checked up front, then execute its jobs, one process each.

The jobs run through an executor (:mod:`mgbench.executors`: here, one or several at a time, or
on a Ray cluster); each row is stored as its job finishes. Finished jobs are skipped when a run
directory is reused (resume).

Exit statuses of jobs: ``ok``, ``diverged`` (NaN/Inf loss), ``oom`` (CUDA or CPU memory),
``failed`` (an exception, a broken sample contract, a full disk), ``crashed`` (the process died:
killed, segfault; on Ray, also its worker or node, retries spent), ``timeout`` (past
``execution.job_timeout_s``). The console lists each job that did not end ok in one line; the
tracebacks are in ``logs/``. docs/FAULTS.md says what each fault does and how to recover.

Nothing finished is lost: a row is stored as its job ends; a row the runner did not get to store
(interrupted, killed) or that is damaged in results.csv is taken back from ``jobs/<job>.json``
when the run resumes; an interrupted run (Ctrl-C, SIGTERM) ends its job processes, stores the
rows of the jobs that finished, releases the lock and can be resumed.
"""

from __future__ import annotations

import fcntl
import gc
import json
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mgbench import console, manifest, registry, schema, seeding
from mgbench.checks import check_memory
from mgbench.config import RunConfig
from mgbench.data import ImageSet
from mgbench.device import resolve_device
from mgbench.errors import UsageError
from mgbench.evaluate import Evaluator, check_extractor
from mgbench.executors import Executor, make_executor, run_in_subprocess
from mgbench.files import write_atomic
from mgbench.job import Job, load_data
from mgbench.results import ResultsStore
from mgbench.schema import CALIBRATION, is_timing

log = logging.getLogger(__name__)



def plan(config: RunConfig) -> list[Job]:
    """The job grid, after checking models, hyper-parameters and data before anything trains."""
    registry.import_plugins(config.plugins)
    classes = {name: registry.get_model_class(name) for name in config.models}
    check_memory(config, _jobs_at_once(config))  # before the data are generated or read
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
    if config.execution.executor == "local" and config.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {config.device!r} asked for, but CUDA is not available",
                         "use --device cpu or auto")
    return [Job(m, s, config) for m in config.models for s in config.seeds]


def _jobs_at_once(config: RunConfig) -> int:
    """How many jobs the local executor runs side by side on this machine (Ray: elsewhere, 1 here)."""
    if config.execution.executor != "local":
        return 1
    from mgbench.executors.local import auto_workers, available_cores, visible_gpus

    workers = config.execution.workers or auto_workers(available_cores(), config.threads,
                                                       len(visible_gpus(config.device)))
    return max(1, min(workers, len(config.models) * len(config.seeds)))


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Only one `mgbench run` per run directory at a time (the kernel drops the lock of a killed run)."""
    try:
        handle = (run_dir / ".lock").open("w")
    except OSError as err:
        raise UsageError(f"cannot create the lock file {run_dir / '.lock'}: {err.strerror}",
                         "make the run directory writable, or choose another --out") from None
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
            try:
                other = RunConfig.from_dict(json.loads(saved.read_text()))
            except (ValueError, UnicodeDecodeError, UsageError) as err:
                raise UsageError(f"{saved} is damaged ({type(err).__name__}): the run in {run_dir} cannot be checked",
                                 "restore it from a copy, or choose another --name / --out") from None
            if other.protocol() != config.protocol():
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



def execute(config: RunConfig) -> int:
    """Run every unfinished job of ``config``; returns 0 if all are ok, 1 if some failed."""
    jobs = plan(config)
    executor = make_executor(config)  # Ray missing or out of reach: stop before writing anything
    with closing(executor):
        run_dir = prepare_run_dir(config)
        with run_lock(run_dir):
            console.start_run(run_dir)  # each warning once per run, across the job processes
            try:
                rows = _execute(config, jobs, run_dir, executor)
            except KeyboardInterrupt as err:
                err.run_dir = run_dir  # type: ignore[attr-defined] - the CLI names it
                raise
    not_ok = [r for r in rows if r["status"] != "ok"]
    if not_ok:
        log.warning("%d of %d jobs did not finish ok (status and message in results.csv; tracebacks in %s):",
                    len(not_ok), len(rows), run_dir / "logs")
        width = max(len(schema.job_id(r["model"], r["seed"])) for r in not_ok)
        for r in not_ok:
            message = (str(r.get("message") or "").strip().splitlines() or [""])[0]
            log.warning("  %-*s  %-8s  %s", width, schema.job_id(r["model"], r["seed"]), r["status"],
                        message[:300] + (" …" if len(message) > 300 else ""))
    return 1 if not_ok else 0


def _execute(config: RunConfig, jobs: list[Job], run_dir: Path, executor: Executor) -> list[dict[str, Any]]:
    """The calibration rows, then the unfinished jobs; returns the rows of the jobs run."""
    store = ResultsStore(run_dir / "results.csv")
    for problem in store.problems():
        log.warning("%s", problem)
    wanted = {(j.model, j.seed) for j in jobs}
    jobs_dir = run_dir / "jobs"
    restored = store.restore(jobs_dir, wanted)  # finished, but their rows were not stored or are damaged
    if restored:
        log.info("took back the rows of %d finished job(s) from %s: %s", len(restored), jobs_dir,
                 ", ".join(schema.job_id(m, s) for m, s in restored))
    done = store.finished()
    todo = [j for j in jobs if (j.model, j.seed) not in done]
    for job in todo:
        job.checkpointer(run_dir).verify()
    if len(todo) < len(jobs):
        log.info("resuming %s: %d of %d jobs already finished", run_dir, len(jobs) - len(todo), len(jobs))
    device = _driver_device(config)
    torch.set_num_threads(config.threads)  # the calibration rows are scored here: the protocol's threads
    # Built once here so the domain classifier and the reference features are trained and
    # cached before the jobs, which then read them from the cache.
    train = load_data(config, "train")
    evaluator = Evaluator(config, device, load_data(config, "reference"), train)
    info = manifest.collect(device)
    info["feature_extractor"] = evaluator.describe()
    info["execution"] = executor.describe()
    info.update(manifest.earlier_commands(run_dir / "manifest.json", info["command"]))
    write_atomic(run_dir / "manifest.json", json.dumps(info, indent=2))
    for name, seed in calibration_jobs(config):
        if (name, seed) not in done:
            store.add(score_calibration(name, seed, config, evaluator, train))
    # The jobs read the classifier and the reference features from the cache: the driver's
    # copies would only add to the run's peak memory while they train.
    del evaluator, train
    gc.collect()

    rows = []
    try:
        with GridProgress(len(jobs), len(jobs) - len(todo)) as progress:
            for row in executor.run(todo, run_dir, progress.started):
                store.add(row)  # at once: a killed driver keeps every finished job
                rows.append(row)
                progress.finished(row)
    except BaseException:
        # Interrupted (or the store failed): the rows of jobs that finished meanwhile are in jobs/.
        try:
            store.restore(jobs_dir, wanted)
        except Exception as err:  # noqa: BLE001 - the first error is the one to show; a resume retries this
            log.warning("could not store the rows of the finished jobs now (%s); a resume takes them back", err)
        raise
    return rows


def _driver_device(config: RunConfig) -> torch.device:
    """Where the runner scores the calibration rows. A Ray driver may have no GPU of its own."""
    if config.execution.executor == "ray" and config.device.startswith("cuda") and not torch.cuda.is_available():
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
        job_id = schema.job_id(row["model"], row["seed"])
        with self.lock:
            self.running.discard(job_id)
            self.failed += row["status"] != "ok"
            self.last = f"{job_id}: {row['status']}"
            self.bar.update(1)
            self._show()

    def _show(self) -> None:
        text = f"running {len(self.running)}, failed {self.failed}"
        self.bar.set_postfix_str(f"{text}; last {self.last}" if self.last else text)


def _same_value(a: Any, b: Any) -> bool:
    """Equal, or both NaN (a score left out of both runs, such as a copy rate on too few images)."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


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
              if not is_timing(k) and not _same_value(rows[0].get(k), rows[1].get(k))]
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
    job = Job(name, seed, config)
    row = job.row("ok")
    row["device"] = str(evaluator.device)
    row.update(evaluator.score(images, seed, drawn_from_train=name == "real-data"))
    row.update(threads=config.threads, protocol=job.protocol_hash(evaluator.device, row["feature_extractor"]))
    return row
