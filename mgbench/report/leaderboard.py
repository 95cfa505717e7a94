"""A leaderboard of published runs: ``mgbench report --index reports/`` writes ``reports/LEADERBOARD.md``.

A published run is a folder (at any depth under the given one) with ``results.csv`` and
``report/summary.csv``; ``manifest.json`` (machine, command, code) and ``README.md`` (its first
heading says what the run is) are read when present. The leaderboard has

* the runs: what each is, its machine (CPU model and flags, cores, device, how the jobs ran),
  its command and code version;
* per protocol, one table of models: per key score (:data:`SCORES`) the best mean ± 95% CI
  over the runs of that protocol, and a link to the run it comes from; in bold where that run's
  own report found the model significantly better than every other (Welch over seeds, Holm).

A protocol is everything that makes two numbers comparable: the table keys of
:data:`mgbench.report.aggregate.TABLE_KEYS` (dataset, resolution, feature extractor, LPIPS
backbone, N) and, where results.csv has them, the columns of :data:`PROTOCOL_COLUMNS`. Runs of
different protocols never meet in one table.

It is generated, so it is a file of its own (never edited by hand) and the hand-written
``README.md`` beside it links to it; the same run folders give the same bytes (no dates, no
absolute paths, runs sorted by folder). `mgbench report --index DIR` writes it to
``DIR/LEADERBOARD.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mgbench.errors import UsageError
from mgbench.report.aggregate import TABLE_KEYS, direction, read_results, read_summary
from mgbench.report.tables import ARROW, Cell, caveats, cell_text, key_title

LEADERBOARD = "LEADERBOARD.md"
# The key scores shown, in this order (those that no run of a protocol has are left out).
# Only scores with a direction: a best needs one (and throughput measures the machine, not the model).
SCORES = ["fid", "kid_mean", "precision", "recall", "coverage", "swd_mean", "modes_joint", "modes_class",
          "cond_acc"]
# results.csv columns that are part of the protocol when a run records them (the per-model
# `protocol` hash is not: it differs between the models of one run). A name that is also a score
# (a column with a direction) is a score, not a key.
PROTOCOL_COLUMNS = ["train_precision", "threads"]
TITLED = ["dataset", "resolution", "feature_extractor", "lpips_backbone", "num_samples"]  # what key_title says


@dataclass
class Run:
    """One published run folder."""
    name: str  # its path under the index folder, with "/" (the link target)
    title: str
    manifest: dict = field(default_factory=dict)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)


def _cell(text: object) -> str:
    """Text that is safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _code(text: object) -> str:
    return "`" + _cell(text).replace("`", "'") + "`"


def _key_sort(value: object) -> tuple:
    text = str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def find_runs(root: Path) -> list[Path]:
    """Folders under ``root`` holding a results.csv, sorted by their path."""
    return sorted((p.parent for p in root.rglob("results.csv")), key=lambda p: p.relative_to(root).as_posix())


def _title(readme: Path) -> str:
    """The first Markdown heading of a README, or ""."""
    try:
        lines = readme.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    return next((line.lstrip("#").strip() for line in lines if line.startswith("#")), "")


def _protocol_values(results: pd.DataFrame) -> pd.DataFrame:
    """Per table of a run (its ok rows), the value of each protocol column results.csv has
    (several values joined with ", "), as text."""
    ok = results[results["status"] == "ok"]
    extra = [c for c in PROTOCOL_COLUMNS if c in ok.columns and c not in TABLE_KEYS and direction(c) is None]
    if not extra or ok.empty:
        return pd.DataFrame(columns=TABLE_KEYS + extra)
    rows = []
    for keys, group in ok.groupby(TABLE_KEYS, sort=False):
        values = []
        for column in extra:
            seen = sorted({_text(v) for v in group[column]} - {""}, key=_key_sort)
            values.append(", ".join(seen))
        rows.append([*keys, *values])
    frame = pd.DataFrame(rows, columns=TABLE_KEYS + extra)
    return frame[TABLE_KEYS + [c for c in extra if (frame[c] != "").any()]]  # unrecorded columns are no key


def _text(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value)


def read_run(root: Path, folder: Path) -> Run:
    summary_path = folder / "report" / "summary.csv"
    if not summary_path.is_file():
        raise UsageError(f"{folder} has results.csv but no report/summary.csv",
                         f"build its report first: `mgbench report {folder}`")
    summary = read_summary(summary_path)
    extra = _protocol_values(read_results(folder / "results.csv"))
    if len(extra.columns) > len(TABLE_KEYS):
        summary = summary.merge(extra, on=TABLE_KEYS, how="left")
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    name = folder.relative_to(root).as_posix()
    return Run(name, _title(folder / "README.md"), manifest if isinstance(manifest, dict) else {},
               summary.assign(run=name))


# ---------------------------------------------------------------- what the runs say about themselves

def machine(manifest: dict) -> str:
    """CPU model, flags and cores, the device, and how the jobs ran, from a manifest."""
    parts = []
    cpu = manifest.get("cpu")
    if cpu:
        parts.append(str(cpu))
    flags = manifest.get("cpu_flags")
    if isinstance(flags, list):
        flags = " ".join(str(f) for f in flags)
    if flags:
        parts.append(f"flags {flags}")
    elif manifest.get("native_bf16"):
        parts.append("native bf16")
    if manifest.get("cpu_count"):
        parts.append(f"{manifest['cpu_count']} cores")
    device = manifest.get("device")
    if device and device != "cpu":
        gpus = manifest.get("gpus") or (manifest.get("execution") or {}).get("gpus") or []
        parts.append(f"{device} ({', '.join(map(str, gpus))})" if gpus else str(device))
    execution = manifest.get("execution") or {}
    if execution.get("executor"):
        how = f"{execution['executor']} executor"
        if execution.get("workers"):
            how += f", {execution['workers']} workers"
            if execution.get("threads_per_job"):
                threads = execution["threads_per_job"]
                how += f" × {threads} thread{'' if threads == 1 else 's'}"
        parts.append(how)
    return ", ".join(parts) or "—"


def code(manifest: dict) -> str:
    """The git commit (and whether the tree was dirty) and the torch version."""
    parts = []
    if manifest.get("git_sha"):
        parts.append(f"git {str(manifest['git_sha'])[:7]}" + (" (uncommitted changes)" if manifest.get("git_dirty")
                                                              else ""))
    torch = (manifest.get("versions") or {}).get("torch")
    if torch:
        parts.append(f"torch {torch}")
    return ", ".join(parts) or "—"


def _link(run: str) -> str:
    return f"[{_cell(run)}]({run}/)"


def runs_table(runs: list[Run]) -> str:
    lines = ["| run | what | machine | command | code |", "|:---|:---|:---|:---|:---|"]
    for run in runs:
        command = run.manifest.get("command")
        lines.append(f"| {_link(run.name)} | {_cell(run.title) or '—'} | {_cell(machine(run.manifest))} | "
                     f"{_code(command) if command else '—'} | {_cell(code(run.manifest))} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the best per protocol

def best_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (model, metric) of one protocol's summary rows (over runs), the row with the best mean:
    the lowest or the highest by the metric's direction; ties go to the smaller CI, then the run name."""
    rows = rows[(rows["kind"] == "model") & (rows["direction"] != "") & rows["mean"].notna()]
    picked = []
    for _, group in rows.groupby(["model", "metric"], sort=True):
        sign = 1.0 if group["direction"].iat[0] == "lower" else -1.0
        ci = group["ci95"].fillna(math.inf)
        order = sorted(range(len(group)), key=lambda i: (sign * group["mean"].iat[i], ci.iat[i], group["run"].iat[i]))
        picked.append(group.iloc[order[0]])
    return pd.DataFrame(picked).reset_index(drop=True)


def protocol_title(keys: dict[str, str]) -> str:
    """:func:`key_title` and the protocol's other keys (precision, threads, ...) that have a value."""
    extra = [f"{k} {v}" for k, v in keys.items() if k not in TITLED and v]
    return " · ".join([key_title(keys), *extra])


def protocol_table(rows: pd.DataFrame, links: bool) -> str:
    """Models × key scores: the best mean ± CI over the runs and (with ``links``) a link to the run it
    comes from; the best model in bold; n: the most seeds of the model's cells ("(n=k)" marks fewer)."""
    best = best_rows(rows)
    scores = [m for m in SCORES if m in set(best["metric"])]
    if not scores:
        return "No key score in these runs."
    ways = dict(zip(best["metric"], best["direction"], strict=False))
    lines = ["| model | n | " + " | ".join(f"{m} {ARROW[ways[m]]}" for m in scores) + " |",
             "|:---|---:|" + "---:|" * len(scores)]
    for model in sorted(set(best["model"])):
        mine = best[best["model"] == model].set_index("metric")
        n_row = int(mine["n"].max())
        cells = []
        for metric in scores:
            if metric not in mine.index:
                cells.append("—")
                continue
            r = mine.loc[metric]
            # bold: the run's own report found it significantly better than every other model there
            # (a bold on the lowest mean alone would mark noise); †: among that run's tied leaders
            text = cell_text(Cell(float(r["mean"]), float(r["ci95"]), int(r["n"]), bool(r["best"]),
                                  r["lead"] == "tied"), n_row)
            text = f"**{text}**" if r["best"] else f"{text} †" if r["lead"] == "tied" else text
            cells.append(f"{text} · {_link(r['run'])}" if links else text)
        lines.append(f"| {_cell(model)} | {n_row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def leaderboard(root: Path) -> str:
    """The leaderboard of the run folders under ``root``, as Markdown."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder", "give the folder of published runs, e.g. reports/")
    runs = [read_run(root, folder) for folder in find_runs(root)]
    if not runs:
        raise UsageError(f"no run folder under {root} (none holds a results.csv)",
                         "give the folder of published runs, each with results.csv and report/summary.csv")
    summary = pd.concat([r.summary for r in runs], ignore_index=True)
    extra = [c for c in PROTOCOL_COLUMNS if c in summary.columns and c not in TABLE_KEYS]
    keys = TABLE_KEYS + extra
    summary[keys] = summary[keys].fillna("").astype(str)

    parts = ["# Leaderboard of the published runs",
             f"Generated by `mgbench report --index DIR` from the {len(runs)} run folders here; do not edit it "
             "by hand, rebuild it. Per protocol (a table's dataset, resolution, feature extractor, LPIPS backbone "
             "and N" + (", " + ", ".join(extra) if extra else "") + "), each model's best mean ± half-width of "
             "the 95% CI over seeds across the runs of that protocol, and the run it comes from; **bold** where "
             "that run's report found the model significantly better than every other model there (Welch's t "
             "over seeds, Holm within the table, α = 0.05), † among its tied leaders. ↓ lower is better, "
             "↑ higher is better. The best of several runs "
             "favours the lucky one: each run's own report has its spread, its calibration rows (real data, "
             "noise) and every other score.",
             "## Runs", runs_table(runs)]
    groups = sorted(summary.groupby(keys, sort=False), key=lambda kv: tuple(_key_sort(v) for v in kv[0]))
    for values, rows in groups:
        protocol = dict(zip(keys, values, strict=True))
        names = sorted(set(rows["run"]))
        parts.append(f"## {protocol_title(protocol)}")
        parts += [f"> {note}" for note in caveats(protocol)]
        if len(names) > 1:
            parts.append("Runs: " + ", ".join(_link(n) for n in names) + "; each number links to its run.")
        else:
            parts.append(f"Every number comes from {_link(names[0])}.")
        parts.append(protocol_table(rows, links=len(names) > 1))
    return "\n\n".join(parts) + "\n"
