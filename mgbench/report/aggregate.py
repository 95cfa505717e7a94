"""Aggregation of a run's results.csv over seeds: mean, std and 95% CI per model and metric.

Only rows with status ``ok`` are aggregated. Rows are grouped into *tables* by the columns of
:data:`TABLE_KEYS`: two feature extractors, two LPIPS backbones or two sample counts N (FID is
biased upward at small N, Chong & Forsyth 2020) never meet in one table, one ranking or one
comparison.

``summary.csv`` (written by :func:`mgbench.report.commands.build_report`) is long ("tidy"):
one row per (table, model, metric), sorted by table keys, model (alphabetical, calibration
pseudo-models last) and metric (the order of :func:`metric_order`). Its columns, in order
(:data:`SUMMARY_COLUMNS`):

=================  =======================================================================
dataset            dataset name (``shapes``, ``mnist``, ...)
resolution         image side in pixels
feature_extractor  name of the feature extractor the scores were computed with
lpips_backbone     LPIPS backbone (``alex``, or ``alex-random`` when no weights were found)
num_samples        samples N scored per job
model              model name, or a calibration pseudo-model (``real-data``, ``noise``)
kind               ``model`` or ``calibration`` (calibration rows are never ranked or best)
metric             the results.csv column (``fid``, ``swd_16px``, ``train_img_per_s``, ...), and
                   ``params_total``: the sum of a model's ``params_<net>`` columns
direction          ``higher``, ``lower`` (the metric's declaration, :mod:`mgbench.metrics.registry`) or empty
n                  seeds with status ok and a value for this metric
mean               mean over those seeds
std                sample standard deviation (ddof 1); empty when n = 1
ci95               half-width of the 95% confidence interval of the mean, Student t:
                   t.ppf(0.975, n-1)·std/√n; empty when n = 1
best               1 for the model that is significantly better than every other model of the
                   table on this metric (Welch's t over seeds, Holm within the table, α = 0.05:
                   :func:`mgbench.report.pairwise.best_marks`), else 0; never on a tie
lead               ``best`` (as above), ``tied`` (among two or more leaders that no test separates,
                   when they are not all the table's models), or empty
=================  =======================================================================

``calibration.csv`` (:func:`bracket`): each model's mean against the two calibration rows of its
table, per metric with a direction: ``real-data`` should be better than every model and every
model better than ``noise``; a ``verdict`` column says where each pair falls.

``ranks.csv``: one row per (table, model) with :data:`TABLE_KEYS`, ``model``, ``mean_rank``
(mean over the metrics of its rank among the table's models; 1 is best, ties share the mean
rank), ``n_metrics`` (how many metrics: those with a direction that every model of the table
has, so a model is never ranked on a score only it has, such as cond_acc) and ``position``.
"""

from __future__ import annotations

import io
import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mgbench.errors import UsageError
from mgbench.metrics import registry as metrics
from mgbench.results import NA_VALUES
from mgbench.schema import CALIBRATION, COST_COLUMNS, JOB_COLUMNS, STRING_COLUMNS, TABLE_KEYS, is_loss

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = TABLE_KEYS + ["model", "kind", "metric", "direction", "n", "mean", "std", "ci95", "best", "lead"]
BEST, TIED = "best", "tied"
RANK_COLUMNS = TABLE_KEYS + ["model", "mean_rank", "n_metrics", "position"]
BRACKET_COLUMNS = TABLE_KEYS + ["model", "metric", "direction", "mean", "real_data", "noise", "verdict"]
# Where a model's mean falls against the calibration rows (equal means are ties: a bound reached,
# such as 4 of 4 modes, or a shared floor, such as a precision of 0).
INSIDE, TIES_REAL, BEYOND_REAL, TIES_NOISE, BEYOND_NOISE = (
    "between", "ties real-data", "better than real-data", "ties noise", "worse than noise")



def direction(column: str) -> str | None:
    """Which way a column is better, as the metric that writes it declares (None: not a score)."""
    return metrics.direction(column)


def swd_level(column: str) -> int | None:
    """The pyramid level's resolution of an ``swd_<R>px`` column, else None."""
    match = re.fullmatch(r"swd_(\d+)px", column)
    return int(match.group(1)) if match else None


def metric_order(column: str) -> tuple:
    """Sort key of a column: the registered metrics in their declared order (each orders its own
    columns), then size and cost (params_total first), then the losses and the rest by name."""
    found = metrics.owner(column)
    if found is not None:
        unit = found[0]
        return (0, unit.order, unit.name, unit.sort_key(column))
    if column.startswith("params_"):
        return (1, 0, column != "params_total", column)
    if column in COST_COLUMNS:
        return (1, 1 + COST_COLUMNS.index(column), False, column)
    return (2, 0 if is_loss(column) else 1, False, column)


def model_order(model: str) -> tuple:
    """Models alphabetically, then the calibration pseudo-models in a fixed order."""
    if model in CALIBRATION:
        return (1, CALIBRATION.index(model), model)
    return (0, 0, model)


def read_results(path: Path) -> pd.DataFrame:
    """results.csv with string columns as strings ("" when empty) and table keys as text.

    Damaged rows (:func:`mgbench.results.check_rows`: cut short, a seed or a number that is
    not one, an unknown status) are left out with a warning naming each; a file that cannot be
    read at all is a :class:`UsageError` saying how to rebuild it."""
    from mgbench.results import DamagedResults, check_rows

    try:
        checked = check_rows(Path(path))
    except DamagedResults as err:
        raise UsageError(f"{err}: not a readable results.csv",
                         "`mgbench run --resume RUN_DIR` rebuilds it from the run's jobs/*.json "
                         "(and reruns the jobs that have none)") from None
    except OSError as err:
        raise UsageError(f"{path} cannot be read: {err.strerror}", "check the path and its permissions") from None
    for problem in checked.problems:
        log.warning("%s (left out of the report; `mgbench run --resume RUN_DIR` redoes it)", problem)
    df = pd.read_csv(io.StringIO(checked.text), keep_default_na=False, na_values=NA_VALUES,
                     dtype={c: str for c in STRING_COLUMNS})
    for column in STRING_COLUMNS:
        df[column] = df[column].fillna("").astype(str) if column in df.columns else ""
    for column in ("resolution", "num_samples"):
        df[column] = df[column].map(_key_text) if column in df.columns else ""
    if len(df):
        df["seed"] = df["seed"].astype(float).astype(int)
    return df


def _key_text(value: object) -> str:
    """A table key as text: 16.0 → "16", NaN → ""."""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value)


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns that measure something, in :func:`metric_order`."""
    found = [c for c in df.columns if c not in JOB_COLUMNS and not c.endswith("_seed")
             and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()]
    return sorted(found, key=metric_order)


def ci95(std: float, n: int) -> float:
    """Half-width of the two-sided 95% Student-t confidence interval of a mean of n values."""
    if n < 2 or not np.isfinite(std):
        return float("nan")
    return float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))


def aggregate(results: pd.DataFrame, marks: pd.DataFrame | None = None) -> pd.DataFrame:
    """The long summary (:data:`SUMMARY_COLUMNS`) of a results table read by :func:`read_results`;
    ``marks`` (:func:`mgbench.report.pairwise.best_marks` of the same results) decides ``best``
    and ``lead``: without them no model is marked."""
    ok = results[results["status"] == "ok"].copy()  # one block: read_results inserts column by column
    nets = [c for c in ok.columns if c.startswith("params_") and c != "params_total"]
    if nets:  # the networks differ between models; their total is what compares
        ok = ok.assign(params_total=ok[nets].apply(pd.to_numeric, errors="coerce").sum(axis=1, min_count=1))
    metrics = metric_columns(ok)
    if ok.empty or not metrics:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    long = ok.melt(id_vars=TABLE_KEYS + ["model", "seed"], value_vars=metrics, var_name="metric")
    long = long[long["value"].notna()]  # an inf stays: the mean shows it
    grouped = long.groupby(TABLE_KEYS + ["model", "metric"], sort=False)["value"]
    out = grouped.agg(n="count", mean="mean", std="std").reset_index()
    out["n"] = out["n"].astype(int)
    out["mean"] = out["mean"].astype(float)
    out["std"] = out["std"].astype(float).where(out["n"] > 1)
    out["ci95"] = [ci95(s, n) for s, n in zip(out["std"], out["n"], strict=True)]
    out["kind"] = ["calibration" if m in CALIBRATION else "model" for m in out["model"]]
    out["direction"] = [direction(m) or "" for m in out["metric"]]
    out["best"], out["lead"] = 0, ""
    if marks is not None:
        out = _mark(out, marks)
    return sort_summary(out)[SUMMARY_COLUMNS]


def sort_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Stable order: table keys, model (:func:`model_order`), metric (:func:`metric_order`)."""
    keys = [tuple(_key_sort(v) for v in row) for row in summary[TABLE_KEYS].itertuples(index=False)]
    order = sorted(range(len(summary)), key=lambda i: (
        keys[i], model_order(summary["model"].iat[i]), metric_order(summary["metric"].iat[i])))
    return summary.iloc[order].reset_index(drop=True)


def _key_sort(value: str) -> tuple:
    """Numbers as numbers (8 px before 16 px), text as text."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _mark(summary: pd.DataFrame, marks: pd.DataFrame) -> pd.DataFrame:
    """``best`` / ``lead`` from the decisions of :func:`mgbench.report.pairwise.best_marks`."""
    summary = summary.copy()
    for r in marks.itertuples(index=False):
        keys = [getattr(r, k) for k in TABLE_KEYS]
        mask = summary["metric"] == r.metric
        for key, value in zip(TABLE_KEYS, keys, strict=True):
            mask &= summary[key].astype(str) == str(value)
        leaders = [m for m in str(r.leaders).split(",") if m]
        if r.significant:
            summary.loc[mask & (summary["model"] == r.top), ["best", "lead"]] = [1, BEST]
        elif 1 < len(leaders) < r.n_models:
            summary.loc[mask & summary["model"].isin(leaders), "lead"] = TIED
    return summary


def tables(summary: pd.DataFrame) -> list[tuple[dict[str, str], pd.DataFrame]]:
    """The summary split into tables: (keys, rows), in the order of the (sorted) summary."""
    out = []
    for key, rows in summary.groupby(TABLE_KEYS, sort=False):
        out.append((dict(zip(TABLE_KEYS, key, strict=True)), rows.reset_index(drop=True)))
    return out


def ranks(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean rank of each model over the metrics with a direction that all its table's models have."""
    frames = []
    for keys, rows in tables(summary):
        scored = rows[(rows["kind"] == "model") & (rows["direction"] != "")]
        if scored.empty:
            continue
        means = scored.pivot(index="model", columns="metric", values="mean").dropna(axis=1)
        if means.shape[1] == 0:
            continue
        ways = scored.drop_duplicates("metric").set_index("metric")["direction"]
        per_metric = pd.DataFrame({m: means[m].rank(ascending=ways[m] == "lower", method="average")
                                   for m in means.columns})
        table = pd.DataFrame({"model": means.index, "mean_rank": per_metric.mean(axis=1).to_numpy(),
                              "n_metrics": means.shape[1]})
        table["position"] = table["mean_rank"].rank(method="min").astype(int)
        table = table.sort_values(["position", "model"], kind="stable")
        for key, value in keys.items():
            table[key] = value
        frames.append(table[RANK_COLUMNS])
    if not frames:
        return pd.DataFrame(columns=RANK_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def bracket(summary: pd.DataFrame) -> pd.DataFrame:
    """Each model mean of a metric with a direction against its table's ``real-data`` and ``noise``
    means (:data:`BRACKET_COLUMNS`); tables or metrics without both calibration rows are left out."""
    scored = summary[(summary["direction"] != "") & summary["mean"].notna()]
    rows = []
    for (*keys, metric), group in scored.groupby(TABLE_KEYS + ["metric"], sort=False):
        means = dict(zip(group["model"], group["mean"], strict=True))
        if not all(name in means for name in CALIBRATION):
            continue
        real, noise = means["real-data"], means["noise"]
        way = group["direction"].iat[0]
        sign = 1.0 if way == "higher" else -1.0  # sign·value grows with quality
        for model in group.loc[group["kind"] == "model", "model"]:
            x = sign * means[model]
            verdict = (TIES_REAL if x == sign * real else BEYOND_REAL if x > sign * real else
                       TIES_NOISE if x == sign * noise else BEYOND_NOISE if x < sign * noise else INSIDE)
            rows.append([*keys, model, metric, way, means[model], real, noise, verdict])
    return pd.DataFrame(rows, columns=BRACKET_COLUMNS)


SUMMARY_TEXT = TABLE_KEYS + ["model", "kind", "metric", "direction", "lead"]


def read_summary(path: Path) -> pd.DataFrame:
    """A summary.csv as written by `mgbench report` (one written before ``lead`` existed gets it empty)."""
    try:
        df = pd.read_csv(path, dtype={c: str for c in SUMMARY_TEXT}, keep_default_na=False, na_values=[""])
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise UsageError(f"{path} is not a readable summary.csv ({type(err).__name__})",
                         "rebuild it with `mgbench report RUN_DIR`") from None
    if "lead" not in df.columns:
        df["lead"] = ""
    missing = [c for c in SUMMARY_COLUMNS if c not in df.columns]
    if missing:
        raise UsageError(f"{path} is not an mgbench summary.csv (no column {', '.join(missing)})",
                         "give a run directory or the summary.csv that `mgbench report` wrote")
    for column in SUMMARY_TEXT:
        df[column] = df[column].fillna("")
    return sort_summary(df[SUMMARY_COLUMNS])
