"""Metrics during training in the report: the curves gathered, what they show, and their figures.

From the run directory's ``curves/<job>.csv`` (:mod:`mgbench.curves`) and results.csv:

- :func:`gather_curves`: every job's curve in one table (``report/curves.csv``): the job's table
  keys (:data:`~mgbench.schema.TABLE_KEYS`, from its results row), model, seed, status, then the
  curve's columns (``curve_samples`` is the N of the evaluations during training);
- :func:`derive`: per job and metric with a direction (``report/curves_derived.csv``,
  :data:`DERIVED_COLUMNS`): the best value and its step and training compute, the final value,
  the gap between final and best, the area under the curve and the oscillation over the last third;
- :func:`instability`: per job (``report/curves_instability.csv``): collapse events;
- :func:`equal_compute`: per job and metric the value at one training compute for all models (the
  compute the cheapest model spent by its end), read from the curves;
- :func:`curve_figure`: each metric against steps or against cumulative training GFLOPs, mean and
  95 % interval over seeds per model; against compute with the Pareto front marked;
- :func:`write_section`: all of the above into ``report/``, returning the Markdown section and the
  figures it links; :func:`budget_heading`: "Equal compute: X GFLOPs per job" for a budget run.

Definitions (``s`` the evaluation steps of a job, ``y`` a metric's values there):

- **AUC** (anytime quality): the mean of the curve over normalised training progress,
  ∫₀¹ y du with u = (s − s_first) / (s_last − s_first), by the trapezoid rule; within a job the
  training compute is proportional to the step, so it is also the mean over normalised compute.
  Lower is better for a lower-is-better metric. One evaluation: its value.
- **gap**: |final − best|, how much of its best a model has lost by the end of training (≥ 0).
- **oscillation** over the last third (the evaluations at s ≥ ⅔·s_last): ``changes``, the number
  of times the curve turns (sign changes of consecutive differences), and ``rel_std``, the
  standard deviation (ddof 0) over |mean| of those values.
- **collapse events**: evaluation intervals in which a coarse mode is lost (``modes_coarse``, or
  the dataset's ``modes_class`` / ``modes_joint`` without one, drops) or FID rises by half
  (fid ≥ 1.5 × the previous evaluation's), each interval counted once.

Deterministic: the same files give the same bytes (tables) and the same PNGs (figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from mgbench import schema
from mgbench.files import write_atomic
from mgbench.metrics import registry
from mgbench.report.aggregate import model_order, read_results
from mgbench.report.commands import table_slug
from mgbench.report.figures import _save, _style, palette
from mgbench.report.tables import key_title, number, places_for
from mgbench.schema import CALIBRATION, TABLE_KEYS

CURVES_FILE, DERIVED_FILE, INSTABILITY_FILE, EQUAL_FILE = (
    "curves.csv", "curves_derived.csv", "curves_instability.csv", "curves_equal_compute.csv")
JOB_KEYS = TABLE_KEYS + ["model", "seed", "status"]
DERIVED_COLUMNS = JOB_KEYS + ["metric", "direction", "points", "best", "best_step", "best_gflops", "final",
                              "final_step", "final_gflops", "gap", "auc", "changes", "rel_std"]
INSTABILITY_COLUMNS = JOB_KEYS + ["points", "collapse_events", "fid_jumps", "modes_lost", "collapse_steps"]
EQUAL_COLUMNS = JOB_KEYS + ["metric", "direction", "gflops", "step", "step_gflops", "value"]
# The metrics the figures and the Markdown show, in order, where the curves hold them.
SHOWN = ("fid", "swd_mean", "modes_coarse", "modes_fine", "modes_joint", "modes_class")
FID_JUMP = 1.5  # FID up by half between two evaluations: a collapse event
ARROW = {"lower": "↓", "higher": "↑"}


def gather_curves(run_dir: Path, results: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every job's curve (module doc), in job order; empty when the run has none."""
    run_dir = Path(run_dir)
    if results is None:
        results = read_results(run_dir / schema.RESULTS_FILE)
    frames = []
    jobs = results[~results["model"].isin(CALIBRATION)]
    for row in sorted(jobs.itertuples(index=False), key=lambda r: (model_order(r.model), int(r.seed))):
        path = schema.curves_path(run_dir, row.model, int(row.seed))
        if not path.is_file():
            continue
        curve = pd.read_csv(path, dtype={"feature_extractor": str})
        if curve.empty:
            continue
        curve = curve.drop(columns=["feature_extractor"], errors="ignore")
        curve = curve.rename(columns={"num_samples": "curve_samples"})
        keys = {k: str(getattr(row, k)) if k in jobs.columns else "" for k in TABLE_KEYS}
        frames.append(pd.concat([pd.DataFrame({**keys, "model": row.model, "seed": int(row.seed),
                                               "status": row.status}, index=curve.index), curve], axis=1))
    if not frames:
        return pd.DataFrame(columns=JOB_KEYS + schema.CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _scored(curves: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, direction) of the curve columns with a direction, in table order."""
    from mgbench.report.aggregate import metric_order

    out = [(c, registry.direction(c)) for c in curves.columns if c not in JOB_KEYS + schema.CURVE_COLUMNS
           and c != "curve_samples"]
    return sorted([(c, w) for c, w in out if w in ("lower", "higher") and curves[c].notna().any()],
                  key=lambda cw: metric_order(cw[0]))


def _jobs(curves: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    return [(key, rows.sort_values("step", kind="stable")) for key, rows in curves.groupby(JOB_KEYS, sort=False)]


def auc(steps: np.ndarray, values: np.ndarray) -> float:
    """The mean of a curve over normalised training progress (trapezoid rule; module doc)."""
    if len(values) == 1:
        return float(values[0])
    u = (steps - steps[0]) / (steps[-1] - steps[0])
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(u)))


def oscillation(steps: np.ndarray, values: np.ndarray) -> tuple[int, float]:
    """(direction changes, relative std) of the evaluations in the last third of training."""
    last = values[steps >= 2 / 3 * steps[-1]]
    diffs = np.sign(np.diff(last))
    diffs = diffs[diffs != 0]
    changes = int((diffs[1:] != diffs[:-1]).sum()) if len(diffs) > 1 else 0
    mean = float(np.mean(last))
    rel_std = float(np.std(last) / abs(mean)) if mean != 0 else float("nan")
    return changes, rel_std


def derive(curves: pd.DataFrame) -> pd.DataFrame:
    """Per job and metric with a direction: best, final, gap, AUC, oscillation (:data:`DERIVED_COLUMNS`)."""
    rows = []
    scored = _scored(curves)
    for key, job in _jobs(curves):
        for metric, way in scored:
            part = job[job[metric].notna() & np.isfinite(job[metric].astype(float))]
            if part.empty:
                continue
            steps = part["step"].to_numpy(dtype=float)
            values = part[metric].to_numpy(dtype=float)
            oriented = values if way == "lower" else -values
            i = int(np.argmin(oriented))  # the first best
            changes, rel_std = oscillation(steps, values)
            gflops = part["train_gflops"].to_numpy(dtype=float)
            rows.append([*key, metric, way, len(values), values[i], int(steps[i]), gflops[i], values[-1],
                         int(steps[-1]), gflops[-1], abs(values[-1] - values[i]), auc(steps, values), changes,
                         rel_std])
    return pd.DataFrame(rows, columns=DERIVED_COLUMNS)


def _modes_column(curves: pd.DataFrame) -> str | None:
    return next((c for c in ("modes_coarse", "modes_class", "modes_joint") if c in curves.columns), None)


def instability(curves: pd.DataFrame) -> pd.DataFrame:
    """Per job: collapse events (module doc), FID jumps and mode losses apart, and their steps."""
    modes = _modes_column(curves)
    rows = []
    for key, job in _jobs(curves):
        steps = job["step"].to_numpy(dtype=int)
        fid_up = np.zeros(max(len(job) - 1, 0), dtype=bool)
        lost = np.zeros_like(fid_up)
        if "fid" in job.columns and len(job) > 1:
            fid = job["fid"].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                fid_up = fid[1:] >= FID_JUMP * fid[:-1]
        if modes is not None and len(job) > 1:
            counts = job[modes].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                lost = counts[1:] < counts[:-1]
        events = fid_up | lost
        at = ", ".join(str(s) for s in steps[1:][events])
        rows.append([*key, len(job), int(events.sum()), int(fid_up.sum()), int(lost.sum()), at])
    return pd.DataFrame(rows, columns=INSTABILITY_COLUMNS)


def equal_compute(curves: pd.DataFrame, gflops: float | None = None) -> pd.DataFrame:
    """Per job and metric the curve's value at the last evaluation within ``gflops`` of training
    compute (default per table: the least compute any of its models spent by its last
    evaluation, so every model has a value), measured, not interpolated (:data:`EQUAL_COLUMNS`)."""
    rows = []
    scored = _scored(curves)
    for _, table in curves.groupby(TABLE_KEYS, sort=False):
        ends = table.groupby(["model", "seed"])["train_gflops"].max()
        budget = float(ends.min()) if gflops is None else float(gflops)
        for key, job in _jobs(table):
            within = job[job["train_gflops"] <= budget * (1 + 1e-9)]
            if within.empty:
                continue
            point = within.iloc[-1]
            for metric, way in scored:
                if pd.notna(point[metric]):
                    rows.append([*key, metric, way, budget, int(point["step"]), float(point["train_gflops"]),
                                 float(point[metric])])
    return pd.DataFrame(rows, columns=EQUAL_COLUMNS)


def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (table, model, step, metric) the mean over the ok seeds and its 95 % t-interval half-width."""
    ok = curves[curves["status"] == "ok"]
    rows = []
    for metric, _ in _scored(curves):
        for key, part in ok.groupby(TABLE_KEYS + ["model", "step"], sort=False):
            mean, ci = _mean_ci(part[metric].to_numpy(dtype=float))
            rows.append([*key, metric, float(part["train_gflops"].mean()), len(part), mean, ci])
    return pd.DataFrame(rows, columns=TABLE_KEYS + ["model", "step", "metric", "train_gflops", "n", "mean", "ci95"])


def pareto_front(x: np.ndarray, y: np.ndarray, way: str) -> np.ndarray:
    """Indices of the points no other point beats at less or equal compute, by increasing compute."""
    oriented = y if way == "lower" else -y
    order = np.lexsort((oriented, x))
    front, best = [], math.inf
    for i in order:
        if np.isfinite(oriented[i]) and oriented[i] < best:
            front.append(i)
            best = oriented[i]
    return np.asarray(front, dtype=int)


def curve_figure(means: pd.DataFrame, colors: dict[str, str], path: Path, against: str = "step") -> bool:
    """One panel per shown metric (:data:`SHOWN`), a line per model (the mean over seeds, the band its
    95 % interval); ``against`` ``step`` or ``train_gflops`` (then the Pareto front over every
    model's mean points is drawn in black). False (no file) when there is nothing to draw."""
    shown = [m for m in SHOWN if m in set(means["metric"])]
    if not shown:
        return False
    ncols = min(3, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    with _style():
        fig = Figure(figsize=(3.8 * ncols, 2.9 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, metric in zip(axes, shown, strict=False):
            part = means[means["metric"] == metric]
            way = registry.direction(metric) or ""
            for model in sorted(set(part["model"]), key=model_order):
                line = part[part["model"] == model].sort_values("step")
                x = line[against].to_numpy(dtype=float)
                mean, ci = line["mean"].to_numpy(dtype=float), line["ci95"].to_numpy(dtype=float)
                seeds = int(line["n"].max())
                ax.plot(x, mean, marker="o", markersize=2.5, linewidth=1.3, color=colors[model],
                        label=f"{model} ({seeds} seed{'s' if seeds > 1 else ''})")
                if np.isfinite(ci).any():
                    ax.fill_between(x, mean - np.nan_to_num(ci), mean + np.nan_to_num(ci), color=colors[model],
                                    alpha=0.18, linewidth=0)
            if against == "train_gflops":
                x, y = part["train_gflops"].to_numpy(dtype=float), part["mean"].to_numpy(dtype=float)
                front = pareto_front(x, y, way)
                if len(front):
                    ax.step(x[front], y[front], where="post", color="black", linewidth=0.9, linestyle="--",
                            label="Pareto front")
                    ax.scatter(x[front], y[front], s=14, facecolors="none", edgecolors="black", linewidths=0.9)
            ax.set_title(f"{metric} ({ARROW.get(way, '')} better)" if way else metric)
            ax.set_xlabel("training step" if against == "step" else "cumulative training GFLOPs")
        for ax in axes[len(shown):]:
            ax.set_visible(False)
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[1:len(shown)]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5), fontsize=7)
        n = int(means["curve_samples"].max()) if "curve_samples" in means else None
        what = "Quality against training compute" if against == "train_gflops" else "Metrics during training"
        fig.suptitle(f"{what}: mean over seeds, band: 95 % CI" + (f"; N = {n} samples per evaluation" if n else ""))
        _save(fig, path)
    return True


def budget_heading(results: pd.DataFrame) -> str | None:
    """"Equal compute: X GFLOPs of training per job" when the run was made with a budget (its rows
    hold ``budget_gflops`` or ``budget_images``), else None: for the report's headings."""
    jobs = results[~results["model"].isin(CALIBRATION)]
    for column, text in (("budget_gflops", "Equal compute: {} GFLOPs of training per job"),
                         ("budget_images", "Equal training images: {} per job")):
        if column in jobs.columns and jobs[column].notna().any():
            values = sorted(set(jobs[column].dropna().astype(float)))
            return text.format(" / ".join(f"{v:,.6g}" for v in values))
    return None


def budget_table(results: pd.DataFrame) -> str:
    """Markdown: each model's steps and the training compute it spent (one line per model)."""
    jobs = results[~results["model"].isin(CALIBRATION) & (results["status"] == "ok")]
    if jobs.empty or "train_gflops" not in jobs.columns:
        return ""
    lines = ["| model | steps | GFLOPs per training image | training GFLOPs spent |", "|:---|---:|---:|---:|"]
    for model in sorted(set(jobs["model"]), key=model_order):
        mine = jobs[jobs["model"] == model]
        steps = ", ".join(f"{int(s):,}" for s in sorted(set(mine["steps"])))
        per = float(mine["train_gflops_per_img"].iloc[0]) if "train_gflops_per_img" in mine else float("nan")
        spent = float(mine["train_gflops"].mean())
        lines.append(f"| {model} | {steps} | {number(per, places_for(per))} | {number(spent, places_for(spent))} |")
    return "\n".join(lines)


def _cell(values: np.ndarray) -> str:
    mean, ci = _mean_ci(values)
    if not math.isfinite(mean):
        return "—"
    places = places_for(mean)
    return number(mean, places) + (f" ± {number(ci, places or 2)}" if math.isfinite(ci) else "")


def markdown(derived: pd.DataFrame, unstable: pd.DataFrame, equal: pd.DataFrame, figures: list[str],
             level: int = 2) -> str:
    """The report's section on the metrics during training (means over the ok seeds ± 95 % CI)."""
    hashes = "#" * level
    if derived.empty:
        return ""
    parts = [f"{hashes} Metrics during training",
             "Each job scored at evenly spaced steps on a smaller sample (N per evaluation below; FID is biased "
             "upward at small N, so these values compare along a curve and between models, not with the tables). "
             "Best: the best evaluation (its step); gap: how far the final value is from the best; AUC: the mean "
             "of the curve over normalised training progress (anytime quality); turns: direction changes over "
             "the last third of training; collapse events: evaluations where a coarse mode was lost or FID rose "
             "by half. Mean over the ok seeds ± 95 % CI; the figures against compute mark the Pareto front "
             "(the best quality any model reached for at most that much training compute)."]
    ok = derived[derived["status"] == "ok"]
    for key, table in ok.groupby(TABLE_KEYS, sort=False):
        keys = dict(zip(TABLE_KEYS, map(str, key), strict=True))
        slug = table_slug(keys)
        links = [f"![{'quality against training compute' if 'compute' in f else 'metrics during training'}]({f})"
                 for f in figures if f.endswith(f"-{slug}.png")]
        lines = [f"{hashes}# {key_title(keys)}", "", *(f"{link}\n" for link in links),
                 "| model | metric | best | at step | final | gap | AUC | turns |",
                 "|:---|:---|---:|---:|---:|---:|---:|---:|"]
        for model in sorted(set(table["model"]), key=model_order):
            mine = table[table["model"] == model]
            for metric in [m for m in SHOWN if m in set(mine["metric"])]:
                r = mine[mine["metric"] == metric]
                steps = ", ".join(str(s) for s in sorted(set(r["best_step"])))
                lines.append(f"| {model} | {metric} {ARROW.get(r['direction'].iat[0], '')} | "
                             f"{_cell(r['best'].to_numpy(float))} | {steps} | {_cell(r['final'].to_numpy(float))} | "
                             f"{_cell(r['gap'].to_numpy(float))} | {_cell(r['auc'].to_numpy(float))} | "
                             f"{_cell(r['changes'].to_numpy(float))} |")
        mask = np.ones(len(unstable), dtype=bool)
        for k, v in keys.items():
            mask &= unstable[k].astype(str).to_numpy() == v
        events = unstable[mask & (unstable["status"] == "ok").to_numpy()]
        if not events.empty:
            lines += ["", "| model | seed | evaluations | collapse events | FID jumps | modes lost | at steps |",
                      "|:---|---:|---:|---:|---:|---:|:---|"]
            lines += [f"| {r.model} | {r.seed} | {r.points} | {r.collapse_events} | {r.fid_jumps} | {r.modes_lost} | "
                      f"{r.collapse_steps or '—'} |" for r in events.itertuples(index=False)]
        same = equal[equal["status"] == "ok"]
        for k, v in keys.items():
            same = same[same[k].astype(str) == v]
        if not same.empty:
            budget = float(same["gflops"].iat[0])
            shown = [m for m in SHOWN if m in set(same["metric"])]
            lines += ["", f"At equal training compute, {number(budget, places_for(budget))} GFLOPs (the least any "
                      "model spent; each model's last evaluation within it):", "",
                      "| model | step | " + " | ".join(f"{m} {ARROW.get(registry.direction(m) or '', '')}"
                                                      for m in shown) + " |",
                      "|:---|---:|" + "---:|" * len(shown)]
            for model in sorted(set(same["model"]), key=model_order):
                mine = same[same["model"] == model]
                steps = ", ".join(str(s) for s in sorted(set(mine["step"])))
                cells = [_cell(mine.loc[mine["metric"] == m, "value"].to_numpy(float)) for m in shown]
                lines.append(f"| {model} | {steps} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


@dataclass
class CurvesSection:
    """What :func:`write_section` wrote: the Markdown section and the figures it links (paths
    relative to ``report/``), and the tables."""
    markdown: str = ""
    figures: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def write_section(run_dir: Path, results: pd.DataFrame | None = None, out: Path | None = None,
                  level: int = 2) -> CurvesSection:
    """Write ``report/curves.csv``, ``curves_derived.csv``, ``curves_instability.csv``,
    ``curves_equal_compute.csv`` and, per table, ``figures/curves-steps-<table>.png`` and
    ``curves-compute-<table>.png`` (:func:`mgbench.report.commands.table_slug`); return
    the section. A run without curves writes nothing and returns an empty section."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / schema.REPORT_DIR
    if results is None:
        results = read_results(run_dir / schema.RESULTS_FILE)
    curves = gather_curves(run_dir, results)
    if curves.empty:
        return CurvesSection()
    derived, unstable, equal = derive(curves), instability(curves), equal_compute(curves)
    for name, frame in ((CURVES_FILE, curves), (DERIVED_FILE, derived), (INSTABILITY_FILE, unstable),
                        (EQUAL_FILE, equal)):
        write_atomic(out / name, frame.to_csv(index=False, lineterminator="\n"))
    colors = palette(list(results["model"]))
    figures = []
    for key, table in curves.groupby(TABLE_KEYS, sort=False):
        slug = table_slug(dict(zip(TABLE_KEYS, map(str, key), strict=True)))
        means = mean_curves(table)
        means["curve_samples"] = int(table["curve_samples"].max())
        for against, name in (("step", "curves-steps"), ("train_gflops", "curves-compute")):
            if curve_figure(means, colors, out / "figures" / f"{name}-{slug}.png", against):
                figures.append(f"figures/{name}-{slug}.png")
    tables = {CURVES_FILE: curves, DERIVED_FILE: derived, INSTABILITY_FILE: unstable, EQUAL_FILE: equal}
    return CurvesSection(markdown(derived, unstable, equal, figures, level), figures, tables)
