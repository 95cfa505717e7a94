"""One job in a fresh process: the unit that every executor runs, here or on a Ray worker.

One process per job means a crash or a memory peak belongs to that job alone, and the per-job
peak RSS is honest. Whatever the model does, the job gives a row, and no traceback reaches the
console (a failed job's traceback is in ``logs/<job>.log``):

=========  ==================================================================================
ok         trained, sampled and scored
diverged   a loss became NaN or infinite (:class:`mgbench.train.Diverged`)
oom        out of memory: CUDA's, or the CPU allocator's (``RuntimeError: DefaultCPUAllocator:
           can't allocate memory``, ``MemoryError``)
failed     an exception (the model's, or a broken contract: :mod:`mgbench.checks`), a
           ``SystemExit`` or ``KeyboardInterrupt`` raised by the model, a full disk
crashed    the process died without a row: killed (SIGKILL: the kernel's OOM killer?), a
           segfault, ``os._exit``
timeout    it ran past ``execution.job_timeout_s`` and was ended
=========  ==================================================================================

The process is started in a session of its own (``start_new_session``): a Ctrl-C in the terminal
reaches the runner alone, which ends its jobs (:class:`JobProcesses`: SIGTERM, then SIGKILL
after a grace period). On SIGTERM or SIGINT a job process ends quietly, writing no row (the job
is not finished; a resume continues it from its last checkpoint); a job that has its row writes
it first. On Linux it also dies with the process that started it (``PR_SET_PDEATHSIG``), so a
killed runner leaves no orphan training.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mgbench import schema
from mgbench.files import DiskFull, is_disk_full, write_atomic
from mgbench.job import Job

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
EXIT_NO_ROW = 74  # EX_IOERR: the job's process could not write its row (it printed one line why)
GRACE_S = 10.0  # how long a job process may take to end on SIGTERM before it is killed
MESSAGE_CHARS = 2000  # a row's message is one line; the rest is in the log

# The child's first lines: the parent's import path (as multiprocessing's spawn passes it), then
# the job. SIGINT is left to its default until the job installs its own handlers.
_BOOTSTRAP = ("import json, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
              "sys.path[:] = json.loads(sys.argv[1]); "
              "from mgbench.executors.process import main; main()")


@dataclass(frozen=True)
class ProcessSettings:
    """How a job's process is set up; nothing here changes a number (the torch threads are the
    protocol's ``threads``, set by the job itself)."""

    env: dict[str, str] = field(default_factory=dict)  # e.g. CUDA_VISIBLE_DEVICES of its GPU
    cwd: str | None = None  # relative paths of the config resolve against it (if it exists here)
    progress_position: int = 1  # terminal line of the job's own progress bar


class JobProcesses:
    """The job processes an executor has running, so that an interrupted run can end them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self.stopping = False

    def add(self, proc: subprocess.Popen) -> bool:
        """Track ``proc``; False (and ``proc`` ended) once :meth:`stop` was called."""
        with self._lock:
            if self.stopping:
                _signal(proc, signal.SIGKILL)
                return False
            self._running.add(proc)
            return True

    def discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(proc)

    def stop(self, grace_s: float = GRACE_S) -> None:
        """SIGTERM every running job process, SIGKILL those still there after ``grace_s`` (or at
        a second Ctrl-C); start no new one."""
        with self._lock:
            self.stopping = True
            procs = list(self._running)
        for proc in procs:
            _signal(proc, signal.SIGTERM)
        try:
            deadline = time.monotonic() + grace_s
            while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                time.sleep(0.05)
        except KeyboardInterrupt:
            pass
        for proc in procs:
            if proc.poll() is None:
                _signal(proc, signal.SIGKILL)


def _signal(proc: subprocess.Popen, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except (ProcessLookupError, OSError):
        pass


def run_in_subprocess(job: Job, run_dir: Path, settings: ProcessSettings | None = None,
                      processes: JobProcesses | None = None) -> dict[str, Any]:
    """Run ``job`` in a fresh process; a job that raises, dies or runs out of time still gives a row."""
    settings = settings or ProcessSettings()
    result_path = schema.job_result_path(run_dir, job.model, job.seed)
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    spec = json.dumps({"job": job.to_dict(), "run_dir": str(run_dir), "result_path": str(result_path),
                       "settings": asdict(settings), "parent_pid": os.getpid()}).encode()
    proc = subprocess.Popen([sys.executable, "-c", _BOOTSTRAP, json.dumps(sys.path)], stdin=subprocess.PIPE,
                            env={**os.environ, **settings.env}, start_new_session=True)
    if processes is not None and not processes.add(proc):
        proc.wait()
        return job.row("crashed", "not started: the run was interrupted")
    timeout = job.config.execution.job_timeout_s
    try:
        try:
            proc.communicate(spec, timeout=timeout)
        except subprocess.TimeoutExpired:
            _end(proc)
            return job.row("timeout", f"ran longer than execution.job_timeout_s = {timeout:g} s and was ended; "
                                      "a resume continues it from its last checkpoint (or raise the limit)")
        except BaseException:  # interrupted while waiting: the job must not outlive this
            _end(proc)
            raise
    finally:
        if processes is not None:
            processes.discard(proc)
    row = _read_row(result_path)
    if row is not None:
        return row
    if processes is not None and processes.stopping:
        return job.row("crashed", "ended: the run was interrupted")
    return job.row(*_death(proc.returncode, result_path))


def _end(proc: subprocess.Popen) -> None:
    _signal(proc, signal.SIGTERM)
    try:
        proc.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL)
        proc.wait()


def _read_row(path: Path) -> dict[str, Any] | None:
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) else None


def _death(code: int, result_path: Path) -> tuple[str, str]:
    """The status and message of a job process that ended without a row."""
    if code == EXIT_NO_ROW:
        return "failed", f"the job's process could not write its row to {result_path} (disk full?)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = {"SIGKILL": " (the kernel's OOM killer sends it when memory runs out: see dmesg)",
               "SIGSEGV": " (a segmentation fault in native code)",
               "SIGABRT": " (aborted in native code)"}.get(name, "")
        return "crashed", f"job process killed by {name}{why}"
    return "crashed", f"job process exited with code {code} without a result (os._exit in the model?)"


# ---------------------------------------------------------------- inside the job's process


class _Interrupted(BaseException):
    """SIGTERM or SIGINT reached the job's process: end quietly (BaseException: model code's
    ``except Exception`` does not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, frame: object) -> None:
    raise _Interrupted(signum)


def main() -> None:
    """Entry point of a job's process: reads its spec on stdin, leaves a row in the result file
    (unless killed or interrupted), and never prints a traceback."""
    spec = json.loads(sys.stdin.buffer.read())
    _die_with_parent(spec["parent_pid"])
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        row = _job_process(spec)
        # From here on a signal waits: the row of a finished job is written before the process ends.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        _write_row(Path(spec["result_path"]), row)
    except _Interrupted as stop:
        sys.stdout.flush()
        os._exit(128 + stop.signum)  # quietly; no row: the job is not finished
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the row is written; skip interpreter teardown (threads of torch, a model's atexit)


def _job_process(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from mgbench import console
    from mgbench.checks import SampleError
    from mgbench.job import run_job
    from mgbench.train import Diverged

    console.configure()  # the runner's level; a warning the run already printed is not printed again
    settings = ProcessSettings(**spec["settings"])
    os.environ.update(settings.env)  # before anything initialises CUDA
    if settings.cwd and os.path.isdir(settings.cwd):
        os.chdir(settings.cwd)
    job = Job.from_dict(spec["job"])
    run_dir = Path(spec["run_dir"])
    try:
        return run_job(job, run_dir, settings.progress_position)
    except _Interrupted:
        raise
    except Diverged as err:
        return job.row("diverged", _one_line(err))
    except torch.OutOfMemoryError as err:
        return job.row("oom", _one_line(err))
    except MemoryError as err:
        return job.row("oom", f"MemoryError: {_one_line(err) or 'out of memory'}")
    except SampleError as err:
        return job.row("failed", _one_line(err))
    except BaseException as err:  # noqa: BLE001 - recorded, the other jobs go on
        if _cpu_oom(err):
            return job.row("oom", _one_line(err))
        if is_disk_full(err):
            return job.row("failed", f"disk full at {err.filename or 'a file the job wrote'}: {err.strerror}; "
                                     "free some space, then resume")
        if isinstance(err, DiskFull):
            return job.row("failed", _one_line(err))
        what = _describe(err)
        log = _write_log(run_dir, job)
        return job.row("failed", f"{what} (traceback: {log})" if log else what)


def _cpu_oom(err: BaseException) -> bool:
    """The CPU allocator's failure (torch raises it as a RuntimeError)."""
    text = str(err)
    return isinstance(err, RuntimeError) and ("DefaultCPUAllocator: can't allocate memory" in text
                                              or "DefaultCPUAllocator: not enough memory" in text)


def _describe(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return f"the model called sys.exit({err.code!r}) (SystemExit) inside the job"
    if isinstance(err, KeyboardInterrupt):
        return "KeyboardInterrupt raised inside the job (by the model: no signal reached it)"
    return f"{type(err).__name__}: {_one_line(err)}"


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + " …"


def _write_log(run_dir: Path, job: Job) -> Path | None:
    """The traceback in logs/<job>.log; None if it cannot be written (a full disk)."""
    path = schema.log_path(run_dir, job.model, job.seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(traceback.format_exc())
    except OSError:
        return None
    return path


def _write_row(path: Path, row: dict[str, Any]) -> None:
    try:
        write_atomic(path, json.dumps(row))
    except Exception as err:  # noqa: BLE001 - a full disk, most likely: say so in one line
        print(f"mgbench: job {schema.job_id(row['model'], row['seed'])} ended {row['status']} "
              f"({row.get('message') or 'no message'}) but cannot write its row: {err}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_NO_ROW)


def _die_with_parent(parent_pid: int) -> None:
    """Linux: be killed with the process that started this job (a Ray worker, the runner), so
    that a killed executor never leaves an orphan training beside the job's retry."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)
