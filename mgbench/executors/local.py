"""The local executor: job processes on this machine, one at a time or ``workers`` at once.

Every job process runs with the run's ``threads`` torch threads (part of the protocol: the bits
depend on it), so the number of workers changes only how long the run takes. By default (auto)
a CPU run fills the cores — cores // threads jobs at once — and a GPU run puts one job on each
visible GPU (round robin).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from mgbench.executors.process import JobProcesses, ProcessSettings, run_in_subprocess
from mgbench.job import Job


def available_cores() -> int:
    """Cores this process may run on (the affinity mask: what Slurm or taskset granted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_workers(cores: int, threads: int, gpus: int) -> int:
    """Jobs at once when the config leaves it open: one per GPU, else as many as the cores hold."""
    return gpus if gpus else max(1, cores // threads)


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

    def __init__(self, workers: int | None = None, threads: int = 1, device: str = "auto") -> None:
        gpus = visible_gpus(device)
        self.workers = workers if workers is not None else auto_workers(available_cores(), threads, len(gpus))
        self.threads = threads
        self.gpus = gpus if self.workers > 1 else []

    def describe(self) -> dict[str, Any]:
        return {"executor": "local", "workers": self.workers, "threads_per_job": self.threads,
                "cores": available_cores(), "gpus": self.gpus}

    def settings(self, slot: int) -> ProcessSettings:
        """The process settings of worker ``slot`` (0 … workers−1)."""
        env = {"CUDA_VISIBLE_DEVICES": self.gpus[slot % len(self.gpus)]} if self.gpus else {}
        return ProcessSettings(env=env, progress_position=slot + 1)

    def run(self, jobs: list[Job], run_dir: Path,
            on_start: Callable[[Job], None] | None = None) -> Iterator[dict[str, Any]]:
        """Yield each job's result row as it finishes (not in the order of ``jobs``). Interrupted
        (Ctrl-C, SIGTERM) or stopped (the caller failed storing a row): no job starts any more and
        the running ones are ended (:meth:`JobProcesses.stop`); their checkpoints stay."""
        processes = JobProcesses()
        free_slots: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(self.workers):
            free_slots.put(slot)

        def one(job: Job) -> dict[str, Any]:
            slot = free_slots.get()  # never waits: the pool runs at most `workers` of these
            try:
                if on_start is not None:
                    on_start(job)
                return run_in_subprocess(job, run_dir, self.settings(slot), processes)
            finally:
                free_slots.put(slot)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="mgbench-job") as pool:
            futures = [pool.submit(one, job) for job in jobs]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:  # done, or interrupted: start nothing more, end the running jobs
                for future in futures:
                    future.cancel()
                processes.stop()

    def close(self) -> None:
        pass
