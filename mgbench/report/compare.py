"""`mgbench compare`: does a run reproduce a reference (an earlier run or a published report)?

For every (table, model, metric) of the reference, the new mean must lie inside the
reference's 95% confidence interval widened by a tolerance:

    |new − ref| ≤ ci95_ref + atol + rtol·|ref|

(``ci95_ref`` counts as 0 when the reference has one seed). Rows are matched on all table keys
(:data:`mgbench.report.aggregate.TABLE_KEYS`), so numbers from two feature extractors, LPIPS
backbones or sample counts are never compared. A model or metric of the reference that the
run lacks is a failure. By default only the scores (metrics with a direction) are compared:
timings measure the machine, losses are no score.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mgbench.errors import UsageError
from mgbench.report.aggregate import SUMMARY_COLUMNS, TABLE_KEYS, aggregate, read_results, sort_summary, tables
from mgbench.report.tables import decimals, key_title, number, text_table

COMPARE_COLUMNS = TABLE_KEYS + ["model", "metric", "direction", "ref_n", "ref_mean", "ref_ci95", "new_n",
                                "new_mean", "diff", "low", "high", "verdict"]
SUMMARY_TEXT = TABLE_KEYS + ["model", "kind", "metric", "direction"]


def read_summary(path: Path) -> pd.DataFrame:
    """A summary.csv as written by `mgbench report`."""
    df = pd.read_csv(path, dtype={c: str for c in SUMMARY_TEXT}, keep_default_na=False, na_values=[""])
    missing = [c for c in SUMMARY_COLUMNS if c not in df.columns]
    if missing:
        raise UsageError(f"{path} is not an mgbench summary.csv (no column {', '.join(missing)})",
                         "give a run directory or the summary.csv that `mgbench report` wrote")
    for column in SUMMARY_TEXT:
        df[column] = df[column].fillna("")
    return sort_summary(df[SUMMARY_COLUMNS])


def load_summary(path: Path) -> pd.DataFrame:
    """The summary of a run directory (its results.csv), of a folder holding a summary.csv, or of a
    results.csv / summary.csv file."""
    path = Path(path)
    if path.is_dir():
        for name in ("results.csv", "summary.csv", "report/summary.csv"):
            if (path / name).is_file():
                return load_summary(path / name)
        raise UsageError(f"{path} holds neither results.csv nor summary.csv",
                         "give a run directory of `mgbench run` or a folder with a published summary.csv")
    if not path.is_file():
        raise UsageError(f"{path} does not exist", "give a run directory or a summary.csv / results.csv file")
    header = pd.read_csv(path, nrows=0).columns
    if "metric" in header and "mean" in header:
        return read_summary(path)
    return aggregate(read_results(path))


def compare(reference: pd.DataFrame, new: pd.DataFrame, rtol: float = 0.1, atol: float = 0.0,
            metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per reference (table, model, metric) with the verdict ``ok``, ``better``, ``worse``
    (outside the band, by the metric's direction), ``outside`` (no direction) or ``missing``."""
    if rtol < 0 or atol < 0:
        raise UsageError("--rtol and --atol must be ≥ 0", "e.g. --rtol 0.1 --atol 0")
    if metrics:
        unknown = sorted(set(metrics) - set(reference["metric"]))
        if unknown:
            raise UsageError(f"the reference has no metric {', '.join(unknown)}",
                             f"its metrics: {', '.join(sorted(set(reference['metric'])))}")
        ref = reference[reference["metric"].isin(metrics)]
    else:
        ref = reference[reference["direction"] != ""]
    if ref.empty:
        raise UsageError("the reference holds no score to compare", "give a reference with ok jobs")
    ref_tables = {tuple(k.values()) for k, _ in tables(ref)}
    new_tables = {tuple(k.values()) for k, _ in tables(new)} if not new.empty else set()
    if new_tables and not ref_tables & new_tables:  # (a run without ok jobs just fails: all missing)
        raise UsageError(
            "no table of the run matches the reference (dataset, resolution, feature extractor, LPIPS "
            f"backbone, N): reference {_keys_text(ref_tables)}; run {_keys_text(new_tables) or 'none'}",
            "run with the reference's dataset, resolution, --feature-extractor and --num-samples")
    key = TABLE_KEYS + ["model", "metric"]
    merged = ref[key + ["direction", "n", "mean", "ci95"]].merge(
        new[key + ["n", "mean"]], on=key, how="left", suffixes=("_ref", "_new"))
    out = pd.DataFrame({c: merged[c] for c in key + ["direction"]})
    out["ref_n"] = merged["n_ref"].astype(int)
    out["ref_mean"] = merged["mean_ref"].astype(float)
    out["ref_ci95"] = merged["ci95"].astype(float)
    out["new_n"] = merged["n_new"].fillna(0).astype(int)
    out["new_mean"] = merged["mean_new"].astype(float)
    out["diff"] = out["new_mean"] - out["ref_mean"]
    half = out["ref_ci95"].fillna(0.0) + atol + rtol * out["ref_mean"].abs()
    out["low"] = out["ref_mean"] - half
    out["high"] = out["ref_mean"] + half
    out["verdict"] = [_verdict(*r) for r in
                      zip(out["new_mean"], out["low"], out["high"], out["direction"], strict=True)]
    return out[COMPARE_COLUMNS].reset_index(drop=True)


def _verdict(new: float, low: float, high: float, way: str) -> str:
    if math.isnan(new):
        return "missing"
    if low <= new <= high:
        return "ok"
    if not way:
        return "outside"
    above = new > high
    return "worse" if above == (way == "lower") else "better"


def _keys_text(keys: set[tuple[str, ...]]) -> str:
    return "; ".join(" / ".join(k) for k in sorted(keys))


def format_comparison(result: pd.DataFrame, rtol: float, atol: float) -> str:
    """The comparison as a console table, one block per table, and a one-line verdict."""
    blocks = []
    for keys, rows in tables(result):
        header = ["model", "metric", "reference (n)", "new (n)", "diff", "allowed", "verdict"]
        body = []
        for r in rows.itertuples(index=False):
            places = decimals(r.ref_mean)
            ref = number(r.ref_mean, places)
            if not math.isnan(r.ref_ci95):
                ref += " ± " + number(r.ref_ci95, places)
            rel = f" ({r.diff / abs(r.ref_mean):+.1%})" if r.ref_mean != 0 and np.isfinite(r.diff) else ""
            body.append([r.model, r.metric, f"{ref} ({r.ref_n})",
                         "—" if math.isnan(r.new_mean) else f"{number(r.new_mean, places)} ({r.new_n})",
                         "—" if math.isnan(r.diff) else f"{r.diff:+,.{places}f}{rel}",
                         f"[{number(r.low, places)}, {number(r.high, places)}]", r.verdict])
        blocks.append("\n".join([key_title(keys)] + text_table(header, body, right=False)))
    failed = result[result["verdict"] != "ok"]
    missing = int((result["verdict"] == "missing").sum())
    verdict = ("REPRODUCED" if failed.empty else "NOT REPRODUCED")
    summary = (f"{verdict}: {len(result) - len(failed)} of {len(result)} checks within the reference's 95% CI "
               f"± (atol {atol:g} + rtol {rtol:g}·|ref|); {len(failed) - missing} outside, {missing} missing")
    return "\n\n".join(blocks + [summary]) + "\n"
