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
direction          ``higher``, ``lower`` (from :func:`mgbench.evaluate.direction`) or empty
n                  seeds with status ok and a value for this metric
mean               mean over those seeds
std                sample standard deviation (ddof 1); empty when n = 1
ci95               half-width of the 95% confidence interval of the mean, Student t:
                   t.ppf(0.975, n-1)·std/√n; empty when n = 1
best               1 for the best model mean of the table (ties all 1, unless all models tie),
                   else 0; only metrics with a direction and at least two models
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

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mgbench.errors import UsageError

# The pseudo-models the runner scores beside the models:
# real-data is the noise floor of every metric, noise its ceiling.
CALIBRATION = ("real-data", "noise")
TABLE_KEYS = ["dataset", "resolution", "feature_extractor", "lpips_backbone", "num_samples"]
SUMMARY_COLUMNS = TABLE_KEYS + ["model", "kind", "metric", "direction", "n", "mean", "std", "ci95", "best"]
RANK_COLUMNS = TABLE_KEYS + ["model", "mean_rank", "n_metrics", "position"]
BRACKET_COLUMNS = TABLE_KEYS + ["model", "metric", "direction", "mean", "real_data", "noise", "verdict"]
# Where a model's mean falls against the calibration rows (equal means are ties: a bound reached,
# such as 4 of 4 modes, or a shared floor, such as a precision of 0).
INSIDE, TIES_REAL, BEYOND_REAL, TIES_NOISE, BEYOND_NOISE = (
    "between", "ties real-data", "better than real-data", "ties noise", "worse than noise")
# Columns of results.csv that describe a job, not a measurement of it.
NOT_METRICS = {"model", "dataset", "resolution", "seed", "steps", "batch_size", "status", "message", "device",
               "deterministic", "feature_extractor", "num_samples", "num_reference", "lpips_backbone"}
STRING_COLUMNS = ["model", "dataset", "status", "message", "device", "feature_extractor", "lpips_backbone"]

# Display order of metrics: the scores first, then per-scale, task-specific, cost, losses.
_FIXED_ORDER = ["fid", "fid_inf", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall", "density",
                "coverage", "lpips_diversity", "swd_mean", "cond_acc", "lpips_recon", "mse_recon",
                "gflops_per_sample", "train_gflops_per_img", "train_img_per_s", "sample_img_per_s",
                "achieved_tflops", "peak_mem_mb", "wall_s"]
_HEADS = ["coarse", "fine", "joint", "class"]


def direction(column: str) -> str | None:
    """Which way a column is better; imported on first use because mgbench.evaluate pulls in torch."""
    from mgbench.evaluate import direction as metric_direction

    return metric_direction(column)


def swd_level(column: str) -> int | None:
    """The pyramid level's resolution of an ``swd_<R>px`` column, else None."""
    match = re.fullmatch(r"swd_(\d+)px", column)
    return int(match.group(1)) if match else None


def metric_order(column: str) -> tuple:
    """Sort key of a metric: fixed order of the known columns, SWD levels fine to coarse before
    their mean, mode heads coarse/fine/joint/class, then params_*, loss_* and the rest by name."""
    level = swd_level(column)
    if level is not None:
        return (_FIXED_ORDER.index("swd_mean"), 0, -level, column)
    head = re.fullmatch(r"(modes|kl)_(\w+)", column)
    if head:
        rank = _HEADS.index(head.group(2)) if head.group(2) in _HEADS else len(_HEADS)
        return (_FIXED_ORDER.index("swd_mean"), 2, rank, head.group(1) != "modes", column)
    if column in _FIXED_ORDER:
        return (_FIXED_ORDER.index(column), 1, 0, column)
    if column.startswith("params_"):
        return (_FIXED_ORDER.index("gflops_per_sample"), 0, column != "params_total", column)
    return (len(_FIXED_ORDER), 0 if column.startswith("loss_") else 1, 0, column)


def model_order(model: str) -> tuple:
    """Models alphabetically, then the calibration pseudo-models in a fixed order."""
    if model in CALIBRATION:
        return (1, CALIBRATION.index(model), model)
    return (0, 0, model)


def read_results(path: Path) -> pd.DataFrame:
    """results.csv with string columns as strings ("" when empty) and table keys as text."""
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"],
                         dtype={c: str for c in STRING_COLUMNS})
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise UsageError(f"{path} is not a readable results.csv ({err})",
                         "rebuild it with `mgbench run --resume RUN_DIR`") from None
    missing = [c for c in ("model", "seed", "status") if c not in df.columns]
    if missing:
        raise UsageError(f"{path} lacks the column(s) {', '.join(missing)}",
                         "give the results.csv that `mgbench run` wrote")
    for column in STRING_COLUMNS:
        df[column] = df[column].fillna("").astype(str) if column in df.columns else ""
    for column in ("resolution", "num_samples"):
        df[column] = df[column].map(_key_text) if column in df.columns else ""
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
    found = [c for c in df.columns if c not in NOT_METRICS and not c.endswith("_seed")
             and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()]
    return sorted(found, key=metric_order)


def ci95(std: float, n: int) -> float:
    """Half-width of the two-sided 95% Student-t confidence interval of a mean of n values."""
    if n < 2 or not np.isfinite(std):
        return float("nan")
    return float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))


def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """The long summary (:data:`SUMMARY_COLUMNS`) of a results table read by :func:`read_results`."""
    ok = results[results["status"] == "ok"]
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
    out["best"] = _best(out)
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


def _best(summary: pd.DataFrame) -> pd.Series:
    """1 where a model's mean is the best of its table for a metric with a direction."""
    best = pd.Series(0, index=summary.index, dtype=int)
    eligible = summary[(summary["kind"] == "model") & (summary["direction"] != "") & summary["mean"].notna()]
    for _, rows in eligible.groupby(TABLE_KEYS + ["metric"], sort=False):
        if len(rows) < 2 or rows["mean"].nunique() == 1:
            continue  # a tie of all models singles none out
        way = rows["direction"].iat[0]
        target = rows["mean"].min() if way == "lower" else rows["mean"].max()
        best[rows.index[rows["mean"] == target]] = 1
    return best


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
