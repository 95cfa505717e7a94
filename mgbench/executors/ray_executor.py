"""The Ray executor: each job a Ray task on a cluster, in its own process as locally.

The task starts the job's process exactly as the local executor does
(:func:`~mgbench.executors.process.run_in_subprocess`), so a job that raises, diverges or
whose process dies gives the same row on a cluster as here, and is final: Ray is told not to
retry exceptions (there are none: the row carries the failure). Ray retries a task only when
its worker or node died (``max_retries``); the retry resumes the job from its last checkpoint,
which :func:`mgbench.job.run_job` loads by itself. The run directory must therefore be on a
filesystem that every node and the driver reach.

Ray is an optional dependency (``pip install 'mgbench[ray]'``), imported only here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mgbench.errors import UsageError
from mgbench.executors.process import ProcessSettings, run_in_subprocess
from mgbench.job import Job

log = logging.getLogger(__name__)

WAIT_S = 1.0  # how often the driver looks at which jobs started, while none finishes
# The driver's settings that job processes on other nodes must share (if set): the run's caches.
FORWARDED_ENV = ("MGBENCH_CACHE",)


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise UsageError("Ray is not installed, and --executor ray needs it",
                         "pip install 'mgbench[ray]' (on the driver and on every node)") from None
    return ray


def _run_remote(job_dict: dict[str, Any], run_dir: str, settings: ProcessSettings,
                start_log: Any) -> dict[str, Any]:
    """The body of a job's Ray task, on a worker."""
    job = Job.from_dict(job_dict)
    if start_log is not None:
        start_log.started.remote(job.id)
    return run_in_subprocess(job, Path(run_dir), settings)


class _StartLog:
    """A Ray actor that hears which jobs started, so the driver can show how many are running."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def started(self, job_id: str) -> None:
        self.ids.append(job_id)

    def take(self) -> list[str]:
        ids, self.ids = self.ids, []
        return ids


class RayExecutor:
    """Each job a Ray task asking for ``threads`` cores (its torch threads) and ``num_gpus``."""

    def __init__(self, address: str | None = None, threads: int = 1, num_gpus: float = 0.0,
                 max_retries: int = 2) -> None:
        self.ray = import_ray()
        self.address = address
        self.num_cpus = float(threads)
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.connected_here = not self.ray.is_initialized()
        if self.connected_here:
            try:
                # Workers' output (per-job bars, warnings) stays in Ray's logs on each node: the
                # driver shows one bar for the grid; a failed job's traceback is in logs/ anyway.
                self.ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            except ConnectionError as err:
                raise UsageError(f"cannot reach the Ray cluster at {address or 'RAY_ADDRESS'}: {err}",
                                 "start it with `ray start --head` and give its address with --address") from None
        self._check_resources()

    def _check_resources(self) -> None:
        """A job that no node can hold would wait forever: refuse it now."""
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        if not any(r.get("CPU", 0) >= self.num_cpus and r.get("GPU", 0) >= self.num_gpus for r in nodes):
            have = "; ".join(f"{r.get('CPU', 0):g} CPU, {r.get('GPU', 0):g} GPU" for r in nodes) or "no nodes"
            self.close()
            raise UsageError(f"no node of the Ray cluster has {self.num_cpus:g} CPU and {self.num_gpus:g} GPU "
                             f"for a job (nodes: {have})", "lower threads / execution.num_gpus in the config file")

    def describe(self) -> dict[str, Any]:
        return {"executor": "ray", "address": self.address, "threads_per_job": self.threads,
                "num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "max_retries": self.max_retries,
                "nodes": sum(1 for n in self.ray.nodes() if n.get("Alive"))}

    @property
    def threads(self) -> int:
        return max(1, int(self.num_cpus))

    def settings(self) -> ProcessSettings:
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        return ProcessSettings(env=env, cwd=os.getcwd())

    def run(self, jobs: list[Job], run_dir: Path,
            on_start: Callable[[Job], None] | None = None) -> Iterator[dict[str, Any]]:
        """Submit every job, then yield each row as its task finishes."""
        ray = self.ray
        start_log = ray.remote(num_cpus=0)(_StartLog).remote() if on_start is not None else None
        task = ray.remote(_run_remote)
        options = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "max_retries": self.max_retries,
                   "retry_exceptions": False}  # a job's own failure is in its row, final
        by_id = {job.id: job for job in jobs}
        pending = {task.options(name=f"mgbench:{job.id}", **options).remote(
                       job.to_dict(), str(run_dir.resolve()), self.settings(), start_log): job
                   for job in jobs}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
                if start_log is not None:
                    for job_id in self._started(start_log):
                        on_start(by_id[job_id])
                for ref in ready:
                    yield self._row(ref, pending.pop(ref))
        finally:  # interrupted: stop the tasks still queued or running
            for ref in pending:
                ray.cancel(ref, force=True)

    def _started(self, start_log: Any) -> list[str]:
        try:
            return self.ray.get(start_log.take.remote(), timeout=10)
        except self.ray.exceptions.RayError as err:  # progress only: never fail the run for it
            log.debug("cannot tell which jobs started: %s", err)
            return []

    def _row(self, ref: Any, job: Job) -> dict[str, Any]:
        """The task's row; a task that Ray could not finish gives a row as a dead process does."""
        errors = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except errors.RayTaskError as err:  # mgbench itself failed on the worker (not the job)
            return job.row("failed", f"the Ray task raised: {_first_line(err)}")
        except errors.OutOfMemoryError as err:  # Ray's memory monitor killed the worker
            return job.row("oom", _first_line(err))
        except errors.RayError as err:  # the worker or its node died, max_retries times over
            return job.row("crashed", f"Ray worker died, {self.max_retries} retries used: "
                                               f"{type(err).__name__}: {_first_line(err)}")

    def close(self) -> None:
        if self.connected_here and self.ray.is_initialized():
            self.ray.shutdown()


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0]
