"""The local executor: job processes on this machine, one at a time or ``workers`` at once.

With several workers each job process gets its own GPU (round robin over the visible ones)
and an equal share of the CPU cores as torch threads, so that N jobs do not fight over cores.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from mgbench.executors.process import ProcessSettings, run_in_subprocess
from mgbench.job import Job


def available_cores() -> int:
    """Cores this process may run on (the affinity mask: what Slurm or taskset granted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_job(cores: int, workers: int, num_cpus: float | None) -> int:
    """``num_cpus`` if given, else an equal share of ``cores``; at least one."""
    if num_cpus is not None:
        return max(1, int(num_cpus))
    return max(1, cores // workers)


def visible_gpus(device: str) -> list[str]:
    """The GPUs the workers share out: none for ``cpu`` or an explicit ``cuda:N``."""
    if device not in ("auto", "cuda") or not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:  # keep a restriction made by the user or the scheduler, in its own numbering
        return [g.strip() for g in listed.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


class LocalExecutor:
    """Job processes on this machine: ``workers`` at a time (1: today's sequential run)."""

    def __init__(self, workers: int = 1, num_cpus: float | None = None, device: str = "auto") -> None:
        self.workers = workers
        self.num_cpus = num_cpus
        self.gpus = visible_gpus(device) if workers > 1 else []
        self.threads = None if workers == 1 and num_cpus is None else \
            threads_per_job(available_cores(), workers, num_cpus)

    def describe(self) -> dict[str, Any]:
        return {"executor": "local", "workers": self.workers, "threads_per_job": self.threads,
                "gpus": self.gpus}

    def settings(self, slot: int) -> ProcessSettings:
        """The process settings of worker ``slot`` (0 … workers−1)."""
        env = {"CUDA_VISIBLE_DEVICES": self.gpus[slot % len(self.gpus)]} if self.gpus else {}
        return ProcessSettings(threads=self.threads, env=env, progress_position=slot + 1)

    def run(self, jobs: list[Job], run_dir: Path,
            on_start: Callable[[Job], None] | None = None) -> Iterator[dict[str, Any]]:
        """Yield each job's result row as it finishes (not in the order of ``jobs``)."""
        free_slots: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(self.workers):
            free_slots.put(slot)

        def one(job: Job) -> dict[str, Any]:
            slot = free_slots.get()  # never waits: the pool runs at most `workers` of these
            try:
                if on_start is not None:
                    on_start(job)
                return run_in_subprocess(job, run_dir, self.settings(slot))
            finally:
                free_slots.put(slot)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="mgbench-job") as pool:
            futures = [pool.submit(one, job) for job in jobs]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:  # interrupted: start nothing more, let the running jobs end
                for future in futures:
                    future.cancel()

    def close(self) -> None:
        pass
