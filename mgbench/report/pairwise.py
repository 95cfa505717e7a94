"""Which differences between models are real: pairwise tests over seeds for the report.

From a results table (one row per (model, seed) job, as :func:`mgbench.report.aggregate.read_results`
reads it; only status ``ok`` counts) and, per table (:data:`~mgbench.report.aggregate.TABLE_KEYS`)
and metric with a direction, every pair of models (the calibration pseudo-models ``real-data`` and
``noise`` are never compared or marked):

- :func:`pairwise_table`: Welch's t over seeds (:func:`mgbench.stats.welch`), the difference of
  means with its Welch 95 % CI, p, Holm-adjusted p, the probability of improvement P(A better than B)
  with a 95 % stratified-bootstrap interval over seeds (Agarwal et al. 2021, NeurIPS), a verdict;
- :func:`best_marks`: the model marked best on each metric, or the tied leaders;
- :func:`rank_stability`: how often each model ranks first when the seeds are resampled;
- :func:`detectable_difference`: the smallest difference the seeds could show (80 % power);
- :func:`markdown_pairwise`: the significant differences, per metric, as a Markdown section.

The Holm family is one table: every pair of models on every metric of that table. The report
states "these differences are real" about a whole table at once, so the chance that any one of
those statements is a fluke is what must stay ≤ α; a family per metric would let a table of 20
metrics hold about one false "real difference" in every run. Tables are separate experiments
(another extractor, N or dataset) and get their own families. The price is power: with 3 seeds
and ~120 tests per table only large, clear differences survive.

Deterministic: every bootstrap is seeded from ``seed`` and the names of what it resamples, so the
same input gives the same bytes, whatever else the table holds.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from itertools import combinations

import numpy as np
import pandas as pd

from mgbench import stats
from mgbench.report.aggregate import CALIBRATION, TABLE_KEYS, metric_columns, metric_order, model_order
from mgbench.report.tables import key_title, number, places_for

PAIRWISE_COLUMNS = TABLE_KEYS + [
    "metric", "direction", "model_a", "model_b", "n_a", "n_b", "mean_a", "mean_b", "diff", "ci_low", "ci_high",
    "p", "p_holm", "prob_improvement", "pi_low", "pi_high", "verdict"]
BEST_COLUMNS = TABLE_KEYS + ["metric", "direction", "n_models", "top", "leaders", "significant"]
RANK_STABILITY_COLUMNS = TABLE_KEYS + ["metric", "direction", "model", "n", "mean", "p_first"]
DETECTABLE_COLUMNS = TABLE_KEYS + ["metric", "direction", "n", "sd", "mdd", "family", "mdd_family"]
A_BETTER, B_BETTER, TIED, UNTESTED = "A better", "B better", "tied", "untested"
ARROW = {"lower": "↓", "higher": "↑"}

Direction = Callable[[str], "str | None"]


def _samples(results: pd.DataFrame, direction: Direction) -> list[tuple[dict[str, str], str, str, dict]]:
    """(table keys, metric, direction, {model: per-seed values}) for every table and metric with a
    direction, in report order; models in :func:`model_order`, calibration rows left out."""
    ok = results[results["status"] == "ok"] if "status" in results.columns else results
    ok = ok[~ok["model"].isin(CALIBRATION)]
    out = []
    if ok.empty:
        return out
    for key, rows in sorted(ok.groupby(TABLE_KEYS, sort=False), key=lambda kv: tuple(map(_key_sort, kv[0]))):
        keys = dict(zip(TABLE_KEYS, map(str, key), strict=True))
        for metric in metric_columns(rows):
            way = direction(metric)
            if way not in ("higher", "lower"):
                continue
            values = {}
            for model in sorted(set(rows["model"]), key=model_order):
                seeds = rows[(rows["model"] == model) & rows[metric].notna()].sort_values("seed", kind="stable")
                if len(seeds):
                    values[model] = seeds[metric].to_numpy(dtype=float)
            if values:
                out.append((keys, metric, way, values))
    return out


def _key_sort(value: object) -> tuple:
    text = str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _seed(seed: int, *names: object) -> int:
    """A bootstrap seed fixed by the names of what it resamples (stable across runs and tables)."""
    return (seed * 1_000_003 + zlib.crc32("|".join(map(str, names)).encode())) % 2 ** 32


def pairwise_table(results: pd.DataFrame, direction: Direction, *, alpha: float = 0.05, n_boot: int = 2000,
                   seed: int = 0) -> pd.DataFrame:
    """One row per table × metric with a direction × ordered pair of models (:data:`PAIRWISE_COLUMNS`).

    ``diff`` = mean_a − mean_b in the metric's units with its Welch 95 % CI [ci_low, ci_high]
    (unadjusted); ``p`` Welch's two-sided p (the degenerate cases of :mod:`mgbench.stats`: no spread
    on both sides gives 1 or the exact permutation p); ``p_holm`` Holm-adjusted within the table
    over all unordered pairs and metrics (the two orders of a pair share one test);
    ``prob_improvement`` P(A better than B) over seeds by the metric's direction, with its bootstrap
    interval [pi_low, pi_high]; ``verdict`` "A better" / "B better" where p_holm ≤ alpha, else "tied",
    or "untested" when a side has fewer than 2 seeds or an infinite value."""
    rows: list[list] = []
    for keys, metric, way, values in _samples(results, direction):
        models = list(values)
        for a, b in combinations(models, 2):
            x, y = values[a], values[b]
            test = stats.welch(x, y)
            low, high = test.ci()
            higher = way == "higher"
            pi = stats.probability_of_improvement(x, y, higher)
            pi_low, pi_high = stats.probability_of_improvement_ci(
                x, y, higher, n_boot=n_boot, seed=_seed(seed, *keys.values(), metric, a, b))
            rows.append([*keys.values(), metric, way, a, b, len(x), len(y), float(test.mean_x), float(test.mean_y),
                         float(test.diff), float(low), float(high), float(test.p), str(test.status), pi, pi_low,
                         pi_high])
    if not rows:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    cols = TABLE_KEYS + ["metric", "direction", "model_a", "model_b", "n_a", "n_b", "mean_a", "mean_b", "diff",
                         "ci_low", "ci_high", "p", "status", "prob_improvement", "pi_low", "pi_high"]
    pairs = pd.DataFrame(rows, columns=cols)
    pairs["p_holm"] = np.nan
    for _, index in pairs.groupby(TABLE_KEYS, sort=False).groups.items():
        pairs.loc[index, "p_holm"] = stats.holm(pairs.loc[index, "p"].to_numpy())
    better_a = np.where(pairs["direction"] == "higher", pairs["diff"] > 0, pairs["diff"] < 0)
    pairs["verdict"] = np.where(pairs["p_holm"] <= alpha, np.where(better_a, A_BETTER, B_BETTER), TIED)
    pairs.loc[pairs["status"].isin([stats.TOO_FEW, stats.NOT_FINITE]), "verdict"] = UNTESTED
    mirror = pairs.rename(columns={"model_a": "model_b", "model_b": "model_a", "n_a": "n_b", "n_b": "n_a",
                                   "mean_a": "mean_b", "mean_b": "mean_a"})
    mirror = mirror.assign(diff=-pairs["diff"], ci_low=-pairs["ci_high"], ci_high=-pairs["ci_low"],
                           prob_improvement=1 - pairs["prob_improvement"], pi_low=1 - pairs["pi_high"],
                           pi_high=1 - pairs["pi_low"],
                           verdict=pairs["verdict"].replace({A_BETTER: B_BETTER, B_BETTER: A_BETTER}))
    both = pd.concat([pairs, mirror[pairs.columns]], ignore_index=True)
    order = sorted(range(len(both)), key=lambda i: (
        tuple(_key_sort(both[k].iat[i]) for k in TABLE_KEYS), metric_order(both["metric"].iat[i]),
        model_order(both["model_a"].iat[i]), model_order(both["model_b"].iat[i])))
    return both.iloc[order].reset_index(drop=True)[PAIRWISE_COLUMNS]


def best_marks(results: pd.DataFrame, direction: Direction, *, alpha: float = 0.05,
               pairwise: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per table × metric with a direction (:data:`BEST_COLUMNS`): ``top`` has the best mean;
    ``leaders`` (comma-separated, top first) are the models not significantly worse than it by
    the Holm-adjusted p of :func:`pairwise_table` (``pairwise``, computed when not given: pass it
    to share one set of tests); ``significant`` is True when the top model leads alone, being
    significantly better than every other model, the runner-up included (:func:`mgbench.stats.best`).
    A metric only one model has (cond_acc) has that model as its leader, never a significant win."""
    if pairwise is None:
        pairwise = pairwise_table(results, direction, alpha=alpha)
    lookup = {tuple(r[:len(TABLE_KEYS) + 3]): r[-1] for r in pairwise[
        TABLE_KEYS + ["metric", "model_a", "model_b", "p_holm"]].itertuples(index=False, name=None)}
    out = []
    for keys, metric, way, values in _samples(results, direction):
        names = list(values)
        means = [float(np.mean(v)) if np.isfinite(v).all() else np.nan for v in values.values()]
        p = np.full((len(names), len(names)), np.nan)
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                p[i, j] = lookup.get((*keys.values(), metric, a, b), np.nan)
        choice = stats.best(names, means, p, way == "higher", alpha)
        out.append([*keys.values(), metric, way, len(names), choice.top, ",".join(choice.leaders), choice.significant])
    return pd.DataFrame(out, columns=BEST_COLUMNS)


def rank_stability(results: pd.DataFrame, direction: Direction, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per table × metric with a direction × model (:data:`RANK_STABILITY_COLUMNS`): ``p_first``, the
    probability that the model's mean ranks first when every model's seeds are resampled with
    replacement (:func:`mgbench.stats.rank_first_probability`; ties share; the column sums to 1 per
    metric). A model whose values hold an inf is left out of that metric."""
    out = []
    for keys, metric, way, values in _samples(results, direction):
        values = {m: v for m, v in values.items() if np.isfinite(v).all()}
        if not values:
            continue
        first = stats.rank_first_probability(list(values.values()), way == "higher", n_boot=n_boot,
                                             seed=_seed(seed, *keys.values(), metric))
        for (model, v), p in zip(values.items(), first, strict=True):
            out.append([*keys.values(), metric, way, model, len(v), float(np.mean(v)), float(p)])
    return pd.DataFrame(out, columns=RANK_STABILITY_COLUMNS)


def detectable_difference(results: pd.DataFrame, direction: Direction, *, alpha: float = 0.05,
                          power: float = 0.8) -> pd.DataFrame:
    """Per table × metric with a direction and ≥ 2 models (:data:`DETECTABLE_COLUMNS`): how large a
    difference between two models the seeds can show. ``sd`` is the seed-to-seed standard deviation
    pooled over the models (√(Σ (n_i − 1) s_i² / Σ (n_i − 1)), the calibration rows left out), ``n``
    the fewest seeds of a model; ``mdd`` the smallest true difference a two-sided two-sample t test
    with n seeds a side finds with the given power at level alpha
    (:func:`mgbench.stats.min_detectable_difference`), ``mdd_family`` the same at Bonferroni's level
    alpha / family, where ``family`` is the table's number of pairwise tests (what
    :func:`pairwise_table` must clear; Holm's first step). For the report: "with n seeds, the smallest
    difference of this metric detectable at 80 % power is …". NaN where no model has 2 finite seeds."""
    samples = _samples(results, direction)
    family: dict[tuple, int] = {}
    for keys, _, _, values in samples:
        k = len(values)
        family[tuple(keys.values())] = family.get(tuple(keys.values()), 0) + k * (k - 1) // 2
    out = []
    for keys, metric, way, values in samples:
        if len(values) < 2:
            continue
        usable = [v for v in values.values() if len(v) > 1 and np.isfinite(v).all()]
        dof = sum(len(v) - 1 for v in usable)
        sd = float(np.sqrt(sum((len(v) - 1) * np.var(v, ddof=1) for v in usable) / dof)) if dof else np.nan
        n = min(len(v) for v in values.values())
        m = family[tuple(keys.values())]
        if n > 1 and sd > 0:
            mdd = stats.min_detectable_difference(sd, n, alpha, power)
            mdd_family = stats.min_detectable_difference(sd, n, alpha / m, power)
        else:
            mdd = mdd_family = np.nan
        out.append([*keys.values(), metric, way, n, sd, mdd, m, mdd_family])
    return pd.DataFrame(out, columns=DETECTABLE_COLUMNS)


def markdown_pairwise(table: pd.DataFrame, alpha: float = 0.05, level: int = 2) -> str:
    """A compact Markdown section of :func:`pairwise_table`: per table and metric, the differences
    that are real (A better than B: the difference with its 95 % CI, Holm-adjusted p, P(A better)
    with its interval) and how many pairs are tied. ``alpha`` is the level the table was built with."""
    hashes = "#" * level
    if table.empty:
        return f"{hashes} Which differences are real\n\nNo two models share a score.\n"
    parts = [f"{hashes} Which differences are real",
             f"Welch's t over training seeds for every pair of models, Holm-adjusted within each table over "
             f"all pairs and metrics (α = {alpha:g} family-wise); Δ is the difference of means with its 95 % CI, "
             "P the probability that a seed of the first model beats a seed of the second (probability of "
             "improvement, Agarwal et al. 2021) with a 95 % bootstrap interval over seeds. Calibration rows "
             "are not compared."]
    for key, rows in table.groupby(TABLE_KEYS, sort=False):
        keys = dict(zip(TABLE_KEYS, map(str, key), strict=True))
        family = len(rows) // 2
        lines = [f"{hashes}# {key_title(keys)}", f"Family: {family} tests."]
        for metric, group in rows.groupby("metric", sort=False):
            way = group["direction"].iat[0]
            real = group[group["verdict"] == A_BETTER]
            tied = int((group["verdict"] == TIED).sum()) // 2
            untested = int((group["verdict"] == UNTESTED).sum()) // 2
            pairs = len(group) // 2
            items = [_pair_text(r) for r in real.itertuples(index=False)]
            rest = []
            if tied:
                rest.append(f"{tied} of {pairs} pairs tied")
            if untested:
                rest.append(f"{untested} untested (one seed)")
            text = "; ".join(items) if items else "no real difference"
            lines.append(f"- **{metric}** {ARROW.get(way, '')}: {text}" + (f" ({', '.join(rest)})" if rest else ""))
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _pair_text(r: tuple) -> str:
    places = max(places_for(r.mean_a), places_for(r.mean_b))
    p = "< 0.0001" if r.p_holm < 1e-4 else f"{r.p_holm:.4f}"
    return (f"{r.model_a} better than {r.model_b} (Δ {number(r.diff, places)} [{number(r.ci_low, places)}, "
            f"{number(r.ci_high, places)}], p Holm {p}, P {r.prob_improvement:.2f} "
            f"[{r.pi_low:.2f}, {r.pi_high:.2f}])")


def markdown_detectable(table: pd.DataFrame, level: int = 2) -> str:
    """The power statement of :func:`detectable_difference` as a Markdown table per table: with n
    seeds, the smallest difference of each metric detectable at 80 % power, alone and within the
    table's Holm family, beside the seed-to-seed standard deviation."""
    if table.empty:
        return ""
    hashes = "#" * level
    parts = [f"{hashes} How large a difference these seeds can show",
             "The smallest true difference between two models that a two-sided Welch test over n seeds a side "
             "detects with 80 % power: alone (α = 0.05) and as one test of the table's family (what the "
             "differences above had to clear). sd: the seed-to-seed standard deviation pooled over the models."]
    for key, rows in table.groupby(TABLE_KEYS, sort=False):
        keys = dict(zip(TABLE_KEYS, map(str, key), strict=True))
        lines = [f"{hashes}# {key_title(keys)}", "",
                 "| metric | n | sd | detectable alone | detectable in the family |", "|:---|---:|---:|---:|---:|"]
        for r in rows.itertuples(index=False):
            places = places_for(r.sd) if np.isfinite(r.sd) else 3
            lines.append(f"| {r.metric} {ARROW.get(r.direction, '')} | {r.n} | {number(r.sd, places)} | "
                         f"{number(r.mdd, places)} | {number(r.mdd_family, places)} (of {r.family}) |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def real_differences(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`pairwise_table` that say "A better than B" (one per real difference),
    with the columns a reader needs: for the report page."""
    keep = TABLE_KEYS + ["metric", "model_a", "model_b", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_holm",
                         "prob_improvement"]
    return table.loc[table["verdict"] == A_BETTER, keep].reset_index(drop=True)
