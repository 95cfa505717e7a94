"""How much of a score is luck: its variance split into the training seed's and the sample draw's.

A run with ``eval.sampling_seeds = k`` scores every trained model with k sample draws
(:mod:`mgbench.sampling`; ``RUN_DIR/sampling/<job>.csv``). For each table
(:data:`~mgbench.schema.TABLE_KEYS`), model and metric with a direction, the scores of its
training seeds i and draws j follow the one-way random-effects model y_ij = μ + a_i + e_ij:
:func:`variance_split` estimates var(a) (training) and var(e) (sampling) with
:func:`mgbench.stats.variance_components`. Dufour et al. 2026 ("The FID Lottery") found that
retraining moves FID 3.2 times more than resampling: here ``ratio`` = sd(training) / sd(sampling).

From the variances pooled over the table's models (their mean), :func:`power` states what the
seeds can show: with n training seeds (one draw each, as the tables use) the smallest true
difference between two models that a two-sided two-sample t test detects with 80 % power at
α = 0.05 (:func:`mgbench.stats.min_detectable_difference`, sd = √(training + sampling)), and
the seeds each metric needs for a difference of ``share`` (10 %) of its calibration range,
|real-data − noise| (:func:`mgbench.stats.seeds_needed`), with one draw per seed and with k
draws averaged per seed (sd = √(training + sampling / k): more draws shrink only the sampling part).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mgbench import schema, stats
from mgbench.errors import UsageError
from mgbench.files import write_atomic
from mgbench.metrics import registry
from mgbench.report.aggregate import metric_order, model_order
from mgbench.report.tables import key_title, number, places_for
from mgbench.sampling import SAMPLING_SEED
from mgbench.schema import CALIBRATION, TABLE_KEYS

DRAWS_FILE, SPLIT_FILE, POWER_FILE = "sampling.csv", "luck.csv", "luck_power.csv"
DRAW_COLUMNS = TABLE_KEYS + ["model", "seed", SAMPLING_SEED, "metric", "value"]
SPLIT_COLUMNS = TABLE_KEYS + ["model", "metric", "direction", "n_training", "n_values", "mean", "var_training",
                              "var_sampling", "training_share", "ratio"]
POWER_COLUMNS = TABLE_KEYS + ["metric", "direction", "models", "n", "draws", "var_training", "var_sampling", "sd",
                              "mdd", "real_data", "noise", "target", "seeds_needed", "seeds_needed_draws"]
ARROW = {"lower": "↓", "higher": "↑"}


def gather_draws(run_dir: Path, results: pd.DataFrame) -> pd.DataFrame:
    """Every sample draw's scores of the ok jobs, long (:data:`DRAW_COLUMNS`); empty without files."""
    run_dir = Path(run_dir)
    ok = results[(results["status"] == "ok") & ~results["model"].isin(CALIBRATION)]
    frames = []
    for row in sorted(ok.itertuples(index=False), key=lambda r: (model_order(r.model), int(r.seed))):
        path = schema.sampling_path(run_dir, row.model, int(row.seed))
        if not path.is_file():
            continue
        draws = pd.read_csv(path)
        scored = [c for c in draws.columns if registry.direction(c) in ("higher", "lower")]
        long = draws.melt(id_vars=[SAMPLING_SEED], value_vars=scored, var_name="metric")
        for key in TABLE_KEYS:
            long[key] = str(getattr(row, key))
        long["model"], long["seed"] = row.model, int(row.seed)
        frames.append(long[DRAW_COLUMNS])
    if not frames:
        return pd.DataFrame(columns=DRAW_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    return out[out["value"].notna()].reset_index(drop=True)


def _groups(draws: pd.DataFrame, by: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    groups = list(draws.groupby(by, sort=False))
    return sorted(groups, key=lambda kv: tuple(metric_order(v) if k == "metric" else
                                               model_order(v) if k == "model" else str(v)
                                               for k, v in zip(by, kv[0], strict=True)))


def variance_split(draws: pd.DataFrame) -> pd.DataFrame:
    """Per table, model and metric (:data:`SPLIT_COLUMNS`): the training-seed and sampling variances
    of one score, the training share (intraclass correlation) and sd(training) / sd(sampling). NaN
    where the split is impossible (fewer than 2 training seeds, or no seed with 2 draws)."""
    rows = []
    for key, part in _groups(draws, TABLE_KEYS + ["model", "metric"]):
        values = part.set_index(["seed", SAMPLING_SEED])["value"].astype(float)
        way = registry.direction(key[-1]) or ""
        try:
            split = stats.variance_components(values)
        except UsageError:
            rows.append([*key, way, values.index.get_level_values(0).nunique(), len(values), values.mean(),
                         *[float("nan")] * 4])
            continue
        ratio = math.sqrt(split.training / split.sampling) if split.sampling > 0 else float("nan")
        rows.append([*key, way, split.n_training, split.n_values, float(values.mean()), split.training,
                     split.sampling, split.training_share, ratio])
    return pd.DataFrame(rows, columns=SPLIT_COLUMNS)


def _calibration(results: pd.DataFrame, keys: dict[str, str], metric: str) -> tuple[float, float]:
    """The table's real-data and noise means of ``metric`` (NaN when absent)."""
    out = []
    for name in CALIBRATION:
        mask = results["model"] == name
        for k, v in keys.items():
            mask &= results[k].astype(str) == v if k in results.columns else False
        values = results.loc[mask & (results["status"] == "ok"), metric] if metric in results.columns else []
        out.append(float(np.mean(values)) if len(values) else float("nan"))
    return out[0], out[1]


def power(split: pd.DataFrame, results: pd.DataFrame, *, n: int | None = None, share: float = 0.10,
          alpha: float = 0.05, power_level: float = 0.8) -> pd.DataFrame:
    """Per table and metric (:data:`POWER_COLUMNS`): the variances pooled over the models (their
    mean), ``sd`` of one score, ``mdd`` the smallest difference n training seeds (default: the
    run's, the fewest any model has) detect at ``power_level``, ``target`` = ``share`` ×
    |real-data − noise|, and the seeds needed for it with one draw per seed and with ``draws``
    (the run's sampling seeds) averaged per seed. NaN where a quantity cannot be had."""
    rows = []
    usable = split[split["var_sampling"].notna()]
    for key, part in _groups(usable, TABLE_KEYS + ["metric"]):
        keys = dict(zip(TABLE_KEYS, map(str, key[:-1]), strict=True))
        metric, way = key[-1], part["direction"].iat[0]
        train, sample = float(part["var_training"].mean()), float(part["var_sampling"].mean())
        seeds = int(part["n_training"].min()) if n is None else n
        draws = int(round(float((part["n_values"] / part["n_training"]).min())))
        sd = math.sqrt(train + sample)
        mdd = stats.min_detectable_difference(sd, seeds, alpha, power_level) if sd > 0 and seeds > 1 else math.nan
        real, noise = _calibration(results, keys, metric)
        target = share * abs(real - noise)
        needed = _seeds(target, sd, alpha, power_level)
        needed_draws = _seeds(target, math.sqrt(train + sample / max(draws, 1)), alpha, power_level)
        rows.append([*key, way, len(part), seeds, draws, train, sample, sd, mdd, real, noise, target, needed,
                     needed_draws])
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


def _seeds(diff: float, sd: float, alpha: float, power_level: float) -> float:
    if not (math.isfinite(diff) and diff > 0 and math.isfinite(sd)):
        return math.nan
    if sd == 0:
        return 2.0  # no spread: the fewest seeds a t test takes
    try:
        return float(stats.seeds_needed(diff, sd, alpha, power_level))
    except ValueError:
        return math.inf


def _num(x: float) -> str:
    return number(x, places_for(x)) if math.isfinite(x) else ("inf" if x == math.inf else "—")


def markdown(split: pd.DataFrame, powers: pd.DataFrame, share: float = 0.10, level: int = 2) -> str:
    """The report's section: the variance split per model and metric, then the power statement."""
    if split.empty:
        return ""
    hashes = "#" * level
    parts = [f"{hashes} How much of a score is luck",
             "Each trained model was scored with several sample draws (sampling seeds). The variance of one score "
             "splits into the training seed's part and the draw's (one-way random effects, ANOVA estimator); "
             "share: the training seed's part of the total; ratio: sd(training) / sd(sampling) (Dufour et al. "
             "2026 found about 3.2 for FID)."]
    for key, table in split.groupby(TABLE_KEYS, sort=False):
        keys = dict(zip(TABLE_KEYS, map(str, key), strict=True))
        lines = [f"{hashes}# {key_title(keys)}", "",
                 "| model | metric | seeds × draws | sd training | sd sampling | training share | ratio |",
                 "|:---|:---|---:|---:|---:|---:|---:|"]
        for r in table.itertuples(index=False):
            draws = round(r.n_values / r.n_training) if r.n_training else 0
            lines.append(f"| {r.model} | {r.metric} {ARROW.get(r.direction, '')} | {r.n_training} × {draws} | "
                         f"{_num(math.sqrt(r.var_training)) if math.isfinite(r.var_training) else '—'} | "
                         f"{_num(math.sqrt(r.var_sampling)) if math.isfinite(r.var_sampling) else '—'} | "
                         f"{'—' if not math.isfinite(r.training_share) else f'{100 * r.training_share:.0f} %'} | "
                         f"{_num(r.ratio)} |")
        mine = powers
        for k, v in keys.items():
            mine = mine[mine[k].astype(str) == v]
        if not mine.empty:
            n, draws = int(mine["n"].min()), int(mine["draws"].max())
            lines += ["", f"What the seeds can show (variances pooled over the models): with {n} training seeds, the "
                      "smallest true difference a two-sided t test detects at 80 % power (α = 0.05), and the seeds "
                      f"needed to detect {100 * share:.0f} % of the range between real data and noise, with one draw "
                      f"per seed and with {draws} draws averaged per seed.", "",
                      f"| metric | sd of one score | detectable with {n} seeds | {100 * share:.0f} % of real→noise | "
                      f"seeds needed | with {draws} draws |", "|:---|---:|---:|---:|---:|---:|"]
            lines += [f"| {r.metric} {ARROW.get(r.direction, '')} | {_num(r.sd)} | {_num(r.mdd)} | {_num(r.target)} | "
                      f"{_num(r.seeds_needed)} | {_num(r.seeds_needed_draws)} |" for r in mine.itertuples(index=False)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def write_section(run_dir: Path, results: pd.DataFrame, out: Path | None = None,
                  level: int = 2) -> tuple[str, dict[str, pd.DataFrame]]:
    """Write ``report/sampling.csv`` (every draw), ``luck.csv`` (:func:`variance_split`) and
    ``luck_power.csv`` (:func:`power`); return the Markdown section and the tables. A run with
    one draw per model writes nothing and returns ("", {})."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / schema.REPORT_DIR
    draws = gather_draws(run_dir, results)
    if draws.empty:
        return "", {}
    split = variance_split(draws)
    powers = power(split, results)
    tables = {DRAWS_FILE: draws, SPLIT_FILE: split, POWER_FILE: powers}
    for name, frame in tables.items():
        write_atomic(out / name, frame.to_csv(index=False, lineterminator="\n"))
    return markdown(split, powers, level=level), tables
