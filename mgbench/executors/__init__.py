"""Executors: how a run's jobs get run. Every one runs each job in its own process
(:mod:`mgbench.executors.process`) and yields its result row as it finishes; the runner
stores each row at once, so a killed run keeps every finished job and ``--resume`` works
whichever executor ran it.

* ``local``: on this machine, one job at a time, or ``workers`` at once
  (:class:`~mgbench.executors.local.LocalExecutor`);
* ``ray``: each job a task on a Ray cluster (:class:`~mgbench.executors.ray_executor.RayExecutor`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from mgbench.config import RunConfig
from mgbench.executors.local import LocalExecutor
from mgbench.executors.process import ProcessSettings, run_in_subprocess
from mgbench.job import Job

__all__ = ["Executor", "LocalExecutor", "ProcessSettings", "make_executor",
           "run_in_subprocess"]


class Executor(Protocol):
    def run(self, jobs: list[Job], run_dir: Path,
            on_start: Callable[[Job], None] | None = None) -> Iterator[dict[str, Any]]:
        """Run ``jobs``, yielding each result row as its job finishes; ``on_start(job)`` is
        called when a job starts (again if it is retried)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the manifest records of how the jobs ran."""
        ...

    def close(self) -> None:
        """Release what the executor holds (a Ray connection)."""
        ...


def make_executor(config: RunConfig) -> Executor:
    """The executor that ``config`` names; Ray is imported (and connected to) only here."""
    run = config.execution
    if run.executor == "ray":
        from mgbench.executors.ray_executor import RayExecutor

        return RayExecutor(run.address, config.threads, run.num_gpus, run.max_retries)
    return LocalExecutor(run.workers, config.threads, config.device)
