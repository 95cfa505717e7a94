"""The report page, ``report/report.md``: jobs, tables, figures, loss curves and sample grids.

Links are relative (figures in ``report/figures/``, grids in the run's ``samples/``), so the
page renders wherever the run directory is copied. It holds no path, date or host name of its
own making, so it is byte-identical when rebuilt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mgbench.report import tables
from mgbench.report.aggregate import CALIBRATION, model_order


def _cell(text: object) -> str:
    """Text that is safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def provenance(run_dir: Path) -> list[str]:
    """What made the run, from manifest.json (optional: the report needs only results.csv)."""
    path = run_dir / "manifest.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    facts = []
    if info.get("command"):
        facts.append(f"command `{info['command']}`")
    if info.get("git_sha"):
        dirty = " with uncommitted changes" if info.get("git_dirty") else ""
        facts.append(f"git {str(info['git_sha'])[:12]}{dirty}")
    if info.get("device"):
        facts.append(f"device {info['device']}")
    versions = info.get("versions") or {}
    facts += [f"{name} {versions[name]}" for name in ("mgbench", "torch") if name in versions]
    return ["Run: " + " · ".join(facts) + "."] if facts else []


def jobs_section(results: pd.DataFrame) -> str:
    """Seeds per model and status; every job that did not finish ok with its message."""
    jobs = results[~results["model"].isin(CALIBRATION)]
    if jobs.empty:
        return "No model jobs in results.csv."
    lines = ["| model | seeds | ok | not ok |", "|:---|:---|---:|---:|"]
    for model in sorted(set(jobs["model"]), key=model_order):
        mine = jobs[jobs["model"] == model]
        ok = int((mine["status"] == "ok").sum())
        seeds = ", ".join(str(int(s)) for s in sorted(mine["seed"]))
        lines.append(f"| {_cell(model)} | {seeds} | {ok} | {len(mine) - ok} |")
    bad = jobs[jobs["status"] != "ok"].sort_values(["model", "seed"], kind="stable")
    if not bad.empty:
        lines += ["", "Jobs that did not finish ok (left out of every table):", "",
                  "| model | seed | status | message |", "|:---|---:|:---|:---|"]
        lines += [f"| {_cell(r.model)} | {int(r.seed)} | {r.status} | {_cell(r.message)} |"
                  for r in bad.itertuples(index=False)]
    return "\n".join(lines)


def samples_section(results: pd.DataFrame, run_dir: Path) -> str:
    """The sample grid of every (model, seed) that has one, a row per model."""
    rows = []
    jobs = results[~results["model"].isin(CALIBRATION)]
    for model in sorted(set(jobs["model"]), key=model_order):
        seeds = sorted(int(s) for s in jobs.loc[jobs["model"] == model, "seed"])
        links = [f"![{model} seed {s}](../samples/{model}-seed{s}.png)" for s in seeds
                 if (run_dir / "samples" / f"{model}-seed{s}.png").exists()]
        if links:
            rows.append(f"**{model}** (seeds {', '.join(map(str, seeds))})\n\n" + " ".join(links))
    if not rows:
        return "No sample grids in samples/."
    return "A conditional model's grid has one row per class.\n\n" + "\n\n".join(rows)


def page(results: pd.DataFrame, summary: pd.DataFrame, ranks: pd.DataFrame, run_dir: Path,
         table_figures: Callable[[dict[str, str]], list[str]], losses_figure: str | None) -> str:
    """The whole report page as Markdown."""
    parts = ["# mgbench report"]
    parts += provenance(run_dir)
    parts.append("Rebuild with `mgbench report RUN_DIR`; the numbers are in `summary.csv` (schema: "
                 "`mgbench/report/aggregate.py`), the tables also in `summary.md` and `summary.tex`.")
    parts += ["## Jobs", jobs_section(results)]
    parts.append(tables.markdown(summary, ranks, level=2, figures=table_figures).rstrip("\n"))
    parts.append("## Training losses")
    parts.append(f"![training losses]({losses_figure})" if losses_figure else "No loss logs in losses/.")
    parts += ["## Samples", samples_section(results, run_dir)]
    return "\n\n".join(parts) + "\n"
