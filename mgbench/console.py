"""The console of a run: log lines written through ``tqdm.write`` (the progress bars stay whole),
each info line and warning once per run however many job processes meet it, and the levels
``-q`` / ``-v``.

The runner names a folder of marks (``RUN_DIR/logs/.warned``) in :data:`WARNED_ENV`; the job
processes inherit it, and a line is printed by whichever process first creates its mark
(``O_EXCL``: atomic across processes). Without a run, marks are kept in memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

LEVEL_ENV = "MGBENCH_LOG_LEVEL"  # the parent's level, for the job processes
WARNED_ENV = "MGBENCH_WARNED_DIR"  # where the marks of printed warnings lie
FORMAT = "mgbench: %(message)s"


class OncePerRun(logging.Filter):
    """Lets an info line or a warning through the first time its text is seen in the run (each job
    process would otherwise repeat "domain classifier: cache hit …"); errors and debug lines always."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno not in (logging.INFO, logging.WARNING):
            return True
        key = hashlib.sha256(record.getMessage().encode()).hexdigest()[:20]
        marks = os.environ.get(WARNED_ENV)
        if not marks:
            first = key not in self.seen
            self.seen.add(key)
            return first
        try:
            Path(marks).mkdir(parents=True, exist_ok=True)
            os.close(os.open(Path(marks) / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        except OSError:
            return True  # no marks can be written: better twice than never
        return True


class TqdmHandler(logging.Handler):
    """Writes a record above the progress bars instead of through them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # a broken console must not end a run
            self.handleError(record)


def configure(level: int | None = None) -> None:
    """The root logger: one :class:`TqdmHandler` with :class:`OncePerRun`; ``level`` default: the
    parent's (:data:`LEVEL_ENV`), else INFO. Library warnings (``py.warnings``) go the same way."""
    if level is None:
        level = int(os.environ.get(LEVEL_ENV, logging.INFO))
    os.environ[LEVEL_ENV] = str(level)
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(OncePerRun())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)


def level_from_argv(argv: list[str]) -> int:
    """``-q``/``--quiet``: warnings and errors only; ``-v``/``--verbose``: debug; else INFO."""
    if "-q" in argv or "--quiet" in argv:
        return logging.WARNING
    if "-v" in argv or "--verbose" in argv:
        return logging.DEBUG
    return logging.INFO


def start_run(run_dir: Path) -> None:
    """A run's warnings are marked under ``run_dir`` from now on, and a resumed run starts with
    none marked (its console shows them again once)."""
    marks = Path(run_dir) / "logs" / ".warned"
    shutil.rmtree(marks, ignore_errors=True)
    os.environ[WARNED_ENV] = str(marks)
