"""One job in a fresh process: the unit that every executor runs, here or on a Ray worker.

One process per job means a crash or a memory peak belongs to that job alone, and the per-job
peak RSS is honest. A job that raises still gives a row (its process writes it); a process
that dies (killed, segfault, the kernel's OOM killer) gives a row with status ``crashed``.

Exit statuses of jobs: ``ok``, ``diverged`` (NaN/Inf loss), ``oom``, ``failed`` (an exception),
``crashed`` (the process died).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mgbench.job import Job, run_job
from mgbench.train import Diverged

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class ProcessSettings:
    """How a job's process is set up. The defaults are those of a plain sequential run.

    Only ``threads`` can change a job's numbers, in the last bits: float sums split over
    another number of threads round differently. Runs compared bit for bit need equal threads.
    """

    threads: int | None = None  # torch intra-op threads; None: torch's default (all cores)
    env: dict[str, str] = field(default_factory=dict)  # e.g. CUDA_VISIBLE_DEVICES of its GPU
    cwd: str | None = None  # relative paths of the config resolve against it (if it exists here)
    progress_position: int = 1  # terminal line of the job's own progress bar


def run_in_subprocess(job: Job, run_dir: Path, settings: ProcessSettings | None = None) -> dict[str, Any]:
    """Run ``job`` in a fresh process; a job that raises or dies still gives a row."""
    result_path = run_dir / "jobs" / f"{job.id}.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    ctx = multiprocessing.get_context("spawn")  # no state inherited from the parent
    proc = ctx.Process(target=_job_process, args=(job.to_dict(), str(run_dir), str(result_path),
                                                  settings or ProcessSettings(), os.getpid()))
    proc.start()
    proc.join()
    if result_path.exists():
        return json.loads(result_path.read_text())
    return failure_row(job, "crashed", f"job process died with exit code {proc.exitcode}")


def _job_process(job_dict: dict[str, Any], run_dir: str, result_path: str, settings: ProcessSettings,
                 parent_pid: int) -> None:
    """Entry point of a job's process: always leaves a result file behind, unless killed."""
    _die_with_parent(parent_pid)
    os.environ.update(settings.env)  # before anything initialises CUDA
    if settings.cwd and os.path.isdir(settings.cwd):
        os.chdir(settings.cwd)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    job = Job.from_dict(job_dict)
    try:
        row = run_job(job, Path(run_dir), settings.progress_position)
    except Diverged as err:
        row = failure_row(job, "diverged", str(err))
    except torch.OutOfMemoryError as err:
        row = failure_row(job, "oom", str(err).splitlines()[0])
    except Exception as err:  # noqa: BLE001 - recorded, the other jobs go on
        log_path = Path(run_dir) / "logs" / f"{job.id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(traceback.format_exc())
        row = failure_row(job, "failed", f"{type(err).__name__}: {err} (traceback: {log_path})")
    write_atomic(Path(result_path), json.dumps(row))


def _die_with_parent(parent_pid: int) -> None:
    """Linux: be killed with the process that started this job (a Ray worker, the runner), so
    that a killed executor never leaves an orphan training beside the job's retry."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)


def failure_row(job: Job, status: str, message: str) -> dict[str, Any]:
    """The row of a job that gave no results: its key columns, status and message."""
    cfg = job.config
    return {"model": job.model, "dataset": cfg.data.name, "resolution": cfg.data.resolution,
            "seed": job.seed, "status": status, "message": message}


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
