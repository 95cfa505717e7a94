"""results.csv: one row per job, rewritten atomically so it never holds a partial row.

Rows are checked when they are read (:func:`check_rows`): a row cut short, with a seed that is
no integer, an unknown status or a cell of a numeric column that is not a number is *damaged*:
it is reported, left out, and its job counts as not finished, so ``--resume`` runs it again
(or takes its row back from ``jobs/<job>.json``, which the job's process wrote). A file that
cannot be read at all (empty, not text, no ``status`` column) holds no rows; before it is
rewritten, it is kept beside as ``results.csv.damaged``. The other rows and the report are
unaffected: one bad cell never removes a metric from the whole table.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mgbench.files import write_atomic
from mgbench.schema import JOB_COLUMNS, STRING_COLUMNS, is_cost, is_loss, is_timing, job_id

log = logging.getLogger(__name__)

# How a job ended (mgbench.runner's docstring says what each means).
STATUSES = ("ok", "diverged", "oom", "failed", "crashed", "timeout")
REQUIRED = ("model", "seed", "status")
NA_VALUES = ["", "nan", "NaN"]  # what pandas writes for a missing number, read back as missing
# Columns that are neither text (schema.STRING_COLUMNS) nor numbers.
_OTHER = {"deterministic"}  # True / False


class DamagedResults(Exception):
    """The whole file cannot be read as a results.csv (its rows are none)."""


@dataclass
class CheckedRows:
    """The valid rows of a results.csv as CSV text, and what was wrong with the others."""

    text: str  # the header and the valid rows, as the file holds them
    problems: list[str] = field(default_factory=list)  # one line per damaged row
    damaged: list[tuple[str, int]] = field(default_factory=list)  # (model, seed) of damaged rows, where known


def check_rows(path: Path) -> CheckedRows:
    """Read ``path`` and keep its valid rows; raises :class:`DamagedResults` when none can be
    read (not text, empty, no header with model, seed and status)."""
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DamagedResults(f"{path} is not text (byte {err.start} is not UTF-8)") from None
    if not raw.strip():
        raise DamagedResults(f"{path} is empty")
    try:
        records = list(csv.reader(io.StringIO(raw, newline="")))
    except csv.Error as err:
        raise DamagedResults(f"{path} is not CSV ({err})") from None
    header = records[0]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DamagedResults(f"{path} lacks the column(s) {', '.join(missing)} in its first line")
    index = {name: i for i, name in enumerate(header)}
    width = len(header)
    rows = [r for r in records[1:] if r]  # csv gives [] for a blank line
    problems: list[str] = []
    damaged: list[tuple[str, int]] = []
    reasons: dict[int, str] = {}
    for i, row in enumerate(rows):
        if len(row) != width:
            reasons[i] = f"{len(row)} of {width} fields (cut short or garbled)"
            continue
        why = _key_problem(row[index["model"]], row[index["seed"]], row[index["status"]])
        if why:
            reasons[i] = why
    # A cell that is no number in a column of numbers (text columns are schema.STRING_COLUMNS,
    # or a plugin's column that holds no number at all).
    numeric = [c for c in header if c not in STRING_COLUMNS and c not in _OTHER]
    for column in numeric:
        j = index[column]
        cells = [(i, row[j]) for i, row in enumerate(rows) if i not in reasons and row[j] not in NA_VALUES]
        bad = [(i, cell) for i, cell in cells if not _is_number(cell)]
        if bad and len(bad) < len(cells):
            for i, cell in bad:
                reasons.setdefault(i, f"{column} = {cell[:40]!r} is not a number")
    for i, why in sorted(reasons.items()):
        row = rows[i]
        who = _who(row, index)
        problems.append(f"{path}: row {i + 1} ({who}) is damaged: {why}; its job counts as not finished")
        key = _key(row, index)
        if key is not None:
            damaged.append(key)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(r for i, r in enumerate(rows) if i not in reasons)
    return CheckedRows(out.getvalue(), problems, damaged)


def _key_problem(model: str, seed: str, status: str) -> str:
    if not model.strip():
        return "no model name"
    if not _is_count(seed):
        return f"seed {seed[:40]!r} is not a non-negative integer"
    if status not in STATUSES:
        return f"status {status[:40]!r} is not one of {', '.join(STATUSES)}"
    return ""


def _is_count(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0 and value.is_integer()


def _is_number(text: str) -> bool:
    try:
        float(text)  # "inf", "-inf" and "1e-3" are numbers
    except ValueError:
        return text in ("True", "False")  # a flag pandas wrote as bool
    return True


def _who(row: list[str], index: dict[str, int]) -> str:
    parts = [row[index[c]] for c in ("model", "seed") if index[c] < len(row)]
    return " seed ".join(p[:40] for p in parts) if parts else "no model, no seed"


def _key(row: list[str], index: dict[str, int]) -> tuple[str, int] | None:
    if max(index["model"], index["seed"]) >= len(row) or not _is_count(row[index["seed"]]):
        return None
    return row[index["model"]], int(float(row[index["seed"]]))


def _column_rank(name: str) -> tuple[int, int, str]:
    """Column order does not depend on which job finished first (parallel executors): who and how
    first, then the scores, then the cost, then the training losses; alphabetical within a group."""
    if name in JOB_COLUMNS:
        return 0, JOB_COLUMNS.index(name), name
    if is_cost(name) or is_timing(name):
        return 2, 0, name
    if is_loss(name):
        return 3, 0, name
    return 1, 0, name


class ResultsStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[pd.DataFrame, list[str]]:
        """The valid rows, and a line for each damaged row (or for a file that is damaged as a whole)."""
        if not self.path.exists():
            return pd.DataFrame(), []
        try:
            checked = check_rows(self.path)
        except DamagedResults as err:
            return pd.DataFrame(), [f"{err}; none of its rows counts as finished"]
        except OSError as err:
            return pd.DataFrame(), [f"{self.path} cannot be read ({err.strerror}); none of its rows counts"]
        # Text columns are read as text: a ``scales`` of "16" would otherwise come back as 16.0
        # while the file holds only single-scale rows, and be written so (the bytes of the file
        # would then depend on the order in which jobs finished).
        df = pd.read_csv(io.StringIO(checked.text), keep_default_na=False, na_values=NA_VALUES,
                         dtype={c: str for c in STRING_COLUMNS})
        text = [c for c in ("status", "message") if c in df]
        df[text] = df[text].astype(object).fillna("").astype(str)
        df["model"] = df["model"].astype(str)
        if len(df):
            df["seed"] = df["seed"].astype(float).astype(int)
        return df, checked.problems

    def read(self) -> pd.DataFrame:
        """The valid rows (damaged ones left out: see :meth:`load`)."""
        return self.load()[0]

    def problems(self) -> list[str]:
        return self.load()[1]

    def finished(self) -> set[tuple[str, int]]:
        """(model, seed) of the jobs that finished with status ok (in a valid row)."""
        df = self.read()
        if df.empty:
            return set()
        ok = df[df["status"] == "ok"]
        return {(str(m), int(s)) for m, s in zip(ok["model"], ok["seed"], strict=True)}

    def add(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of one job; rows stay sorted by (model, seed). A file with
        damaged rows is first kept as ``results.csv.damaged`` (the damaged rows are not rewritten).

        The rows already in the file keep their text cell for cell, and the new row's cells are
        written from its own values alone (:func:`_cell`): the bytes of a row never depend on
        which other jobs finished, or in what order (a column that pandas would turn from whole
        numbers into floats wrote an earlier row's ``0`` back as ``0.0``)."""
        try:
            checked = check_rows(self.path) if self.path.exists() else None
        except (DamagedResults, OSError):
            checked = None  # no row of it counts (load says why)
        if self.path.exists() and (checked is None or checked.problems):
            self._keep_damaged()
        kept = list(csv.DictReader(io.StringIO(checked.text, newline=""))) if checked else []
        new = {name: _cell(name, value) for name, value in row.items()}
        rows = [r for r in kept if _job_key(r) != _job_key(new)] + [new]
        rows.sort(key=_job_key)
        columns = sorted({name for r in rows for name in r}, key=_column_rank)
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.path, out.getvalue())

    def _keep_damaged(self) -> None:
        """A copy of the damaged file beside it, so that nothing in it is lost by the rewrite."""
        backup = self.path.with_name(self.path.name + ".damaged")
        n = 1
        while backup.exists():  # an earlier damaged copy stays too
            backup, n = self.path.with_name(f"{self.path.name}.damaged.{n}"), n + 1
        try:
            write_atomic(backup, self.path.read_bytes())
        except OSError as err:
            log.warning("cannot keep a copy of the damaged %s: %s", self.path, err)
        else:
            log.warning("kept the damaged file as %s; %s now holds its valid rows", backup, self.path.name)

    def restore(self, jobs_dir: Path, wanted: set[tuple[str, int]]) -> list[tuple[str, int]]:
        """Take back the ok rows of ``wanted`` jobs from their ``jobs/<job>.json`` where results.csv
        lacks them (a driver stopped between a job's end and storing its row, a damaged row or
        file); returns the jobs restored."""
        restored = []
        have = self.finished()
        for model, seed in sorted(wanted - have):
            row = read_job_row(jobs_dir / f"{job_id(model, seed)}.json")
            if row is not None and row.get("status") == "ok" and (row["model"], row["seed"]) == (model, seed):
                self.add(row)
                restored.append((model, seed))
        return restored


def read_job_row(path: Path) -> dict[str, Any] | None:
    """The row a job's process wrote, or None if it is missing or damaged (the job then runs again)."""
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(row, dict) or not all(k in row for k in REQUIRED):
        return None
    if not isinstance(row["model"], str) or not isinstance(row["seed"], int) or row["status"] not in STATUSES:
        return None
    return row


def _job_key(cells: dict[str, str]) -> tuple[str, int]:
    """(model, seed) of a row of text cells: rows sort by it, and a job's new row replaces its old one."""
    return cells["model"], int(float(cells["seed"]))


def _cell(name: str, value: Any) -> str:
    """The text of one cell, from its value alone: empty for a missing number, a whole number
    without ``.0`` (a count reads ``10``), other floats in the shortest text that reads back
    exactly, flags as True / False."""
    if name in _OTHER:
        value = _as_flag(value)
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):  # float, numpy float32/64
        value = float(value)
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _as_flag(value: Any) -> Any:
    """True / False from a bool, a number or its text (pandas reads a flag column that was empty in
    every row as floats); None where the row has none (calibration rows)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return bool(value)
