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

from mgbench import schema
from mgbench.report import tables
from mgbench.report.aggregate import model_order
from mgbench.schema import CALIBRATION


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
    scales = "scales" in jobs.columns and (jobs["scales"] != "").any()  # rows of older runs lack it
    lines = ["| model | seeds | ok | not ok |" + (" generates at (px) |" if scales else ""),
             "|:---|:---|---:|---:|" + ("---:|" if scales else "")]
    for model in sorted(set(jobs["model"]), key=model_order):
        mine = jobs[jobs["model"] == model]
        ok = int((mine["status"] == "ok").sum())
        seeds = ", ".join(str(int(s)) for s in sorted(mine["seed"]))
        at = (" " + ", ".join(sorted(set(mine["scales"]) - {""})) + " |") if scales else ""
        lines.append(f"| {_cell(model)} | {seeds} | {ok} | {len(mine) - ok} |" + at)
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
        links = [f"![{model} seed {s}](../samples/{schema.job_id(model, s)}.png)" for s in seeds
                 if schema.samples_path(run_dir, model, s).exists()]
        if links:
            rows.append(f"**{model}** (seeds {', '.join(map(str, seeds))})\n\n" + " ".join(links))
    if not rows:
        return "No sample grids in samples/."
    return "A conditional model's grid has one row per class.\n\n" + "\n\n".join(rows)


def artifact_grids(results: pd.DataFrame, run_dir: Path, name: str) -> list[tuple[str, str]]:
    """(job, link relative to the run directory) of every ``samples/<job>-<name>.png`` a metric left."""
    jobs = results[~results["model"].isin(CALIBRATION)]
    out = []
    for model, seed in sorted(zip(jobs["model"], jobs["seed"], strict=True), key=lambda r: (model_order(r[0]), r[1])):
        path = schema.artifact_path(run_dir, model, int(seed), name)
        if path.exists():
            out.append((schema.job_id(model, int(seed)), str(path.relative_to(run_dir))))
    return out


def page(results: pd.DataFrame, summary: pd.DataFrame, ranks: pd.DataFrame, run_dir: Path,
         table_figures: Callable[[dict[str, str]], list[str]], losses_figure: str | None,
         significance: str = "", closest: list[tuple[str, str]] | None = None,
         training: tuple[str, ...] = ()) -> str:
    """The whole report page as Markdown; ``significance``: the section on which differences are real;
    ``closest``: (job, link) of the grids of samples beside their nearest training images;
    ``training``: sections on training itself (the metrics during training, the luck of a score)."""
    parts = ["# mgbench report"]
    parts += provenance(run_dir)
    parts.append("Rebuild with `mgbench report RUN_DIR`; the numbers are in `summary.csv` (schema: "
                 "`mgbench/report/aggregate.py`), the tables also in `summary.md` and `summary.tex`.")
    parts += ["## Jobs", jobs_section(results)]
    parts.append(tables.markdown(summary, ranks, level=2, figures=table_figures).rstrip("\n"))
    if significance:
        parts.append(significance)
    parts += [section.rstrip("\n") for section in training if section]
    parts.append("## Training losses")
    parts.append(f"![training losses]({losses_figure})" if losses_figure else "No loss logs in losses/.")
    parts += ["## Samples", samples_section(results, run_dir)]
    if closest:
        parts += ["## Closest to the training images",
                  "Each job's 16 samples nearest to a training image (pixel distance), each beside that "
                  "image: a model that copies shows pairs of twins.",
                  "\n\n".join(f"**{job}**\n\n![{job} closest pairs](../{link})" for job, link in closest)]
    return "\n\n".join(parts) + "\n"
