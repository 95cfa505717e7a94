"""One way to write a file: atomically, so a reader (or a crash) never sees half of it.

The data goes to a unique temporary file in the same folder, is flushed and fsynced, then moved
over the target with ``os.replace`` (atomic on POSIX and Windows), as NVlabs stylegan3 writes its
metric caches. A failure leaves the old file as it was and no temporary behind.

A full disk (or quota) is a :class:`DiskFull`, a :class:`~mgbench.errors.UsageError` naming the
file, how much was being written and how much room is left, so the CLI prints one line and a
job's row says where: the run resumes once there is room.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from mgbench.errors import UsageError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(UsageError):
    """No room left (ENOSPC, or EDQUOT: the quota) where ``path`` is written."""

    def __init__(self, path: str | Path, needed: int | None = None, written: int | None = None) -> None:
        path = Path(path)
        free = free_bytes(path.parent)
        size = (f"needs {_size(needed)}" if needed else
                f"filled after {_size(written)}" if written else "needs more room")
        room = f", {_size(free)} free there" if free is not None else ""
        super().__init__(f"disk full at {path} (writing it {size}{room})",
                         "free some space on that filesystem (or point --out / MGBENCH_CACHE elsewhere), "
                         "then resume with `mgbench run --resume RUN_DIR`: finished jobs are kept")
        self.path = path


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in NO_SPACE


def free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(n: int | None) -> str:
    n = n or 0
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def write_atomic(path: str | Path, data: str | bytes | Callable[[BinaryIO], object]) -> None:
    """Write ``data`` to ``path`` atomically: text (UTF-8, line ends as given), bytes, or a
    function that writes to a binary file object (``torch.save``, ``fig.savefig``).

    Raises :class:`DiskFull` when the filesystem has no room (the target is left as it was).
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            if isinstance(payload, bytes):
                handle.write(payload)
            else:
                payload(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        written = _unlink(tmp)
        if _disk_full(err):
            raise DiskFull(path, len(payload) if isinstance(payload, bytes) else None, written) from None
        raise


def _disk_full(err: BaseException) -> bool:
    """ENOSPC itself, or a writer (torch.save's zip writer) that wrapped it in a RuntimeError."""
    if is_disk_full(err):
        return True
    cause = err.__cause__ or err.__context__
    if isinstance(err, RuntimeError) and ("No space left on device" in str(err) or "error code: 28" in str(err)):
        return True
    return cause is not None and cause is not err and is_disk_full(cause)


def _unlink(tmp: str | None) -> int:
    """Remove the temporary file; returns how many bytes it had reached (0 if none)."""
    if tmp is None:
        return 0
    try:
        size = os.path.getsize(tmp)
    except OSError:
        size = 0
    Path(tmp).unlink(missing_ok=True)
    return size
