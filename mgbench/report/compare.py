"""`mgbench compare`: does a run reproduce a reference? A statistical test with a known false-alarm rate.

Every (table, model, metric) of the reference is a *check*: the per-seed values of the reference
and of the run (both from a results.csv) meet in a two-sample test, Welch's t by default (why
Welch and not a permutation test with 3 seeds: :mod:`mgbench.stats`). The p-values of all checks
form one family, adjusted by Holm's step-down method, and a check *rejects* where its adjusted p
is ≤ α (``--alpha``, default 0.05). The run is REPRODUCED when no check rejects and none fails
for want of data, so a true reproduction is reported NOT REPRODUCED at most α of the time, however
the metrics correlate; tests/benchmarks/simulate_compare.py measures that rate and the power.

Verdicts per check: ``identical`` (the same seeds with bit-identical values), ``ok`` (not
rejected), ``better`` / ``worse`` (rejected; by the metric's direction) or ``differs`` (rejected, a
metric without direction), and the failures ``missing`` (the run lacks the model or metric),
``untested`` (one seed on a side: no spread to test against) and ``not finite`` (an inf that the
other run does not share). Identical checks have p = 1 and stay in the family.

``--equivalence PCT`` adds a test of the opposite question, "reproduced within ±PCT % of the
reference mean": two one-sided Welch tests per check (:func:`mgbench.stats.tost`), each at α.
The run is then shown equivalent only when every check is, an intersection–union test whose level
is α without multiplicity adjustment (Berger & Hsu 1996, Statistical Science 11(4), section 2.1).

Rows are matched on all table keys (:data:`mgbench.report.aggregate.TABLE_KEYS`), so numbers of
two feature extractors, LPIPS backbones or sample counts never meet. By default only the scores
(metrics with a direction) are checked: timings measure the machine, losses are no score. Rows
carrying a ``protocol`` hash must agree on it (else a :class:`UsageError`, exit 2, names the
fields that differ), unless ``allow_protocol_mismatch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mgbench import stats
from mgbench.errors import UsageError
from mgbench.report.aggregate import TABLE_KEYS, direction, metric_columns, read_results, tables
from mgbench.report.tables import decimals, key_title, number, text_table

TESTS = ("welch", "student", "permutation")
TEST_NAMES = {"welch": "Welch t", "student": "pooled Student t", "permutation": "permutation test"}
PASSING = ("identical", "ok")
# Columns of a result row that say how the numbers were made: compared, never tested as scores.
PROTOCOL = "protocol"
PROTOCOL_FIELDS = ["train_precision", "threads", "device", "deterministic", "steps", "batch_size", "num_samples",
                   "feature_extractor"]
COMPARE_COLUMNS = TABLE_KEYS + [
    "model", "metric", "direction", "ref_n", "ref_mean", "ref_std", "new_n", "new_mean", "new_std", "diff",
    "rel_diff", "ci_low", "ci_high", "p", "p_holm", "verdict", "p_equivalence", "equivalence"]
VALUE_COLUMNS = TABLE_KEYS + ["model", "seed", "metric", "value"]


@dataclass(frozen=True)
class Run:
    """One side of a comparison: its per-seed values (:data:`VALUE_COLUMNS`, ok jobs only) and its
    ok rows' protocol columns as text (``protocol`` and :data:`PROTOCOL_FIELDS`, those present)."""
    path: Path
    values: pd.DataFrame
    rows: pd.DataFrame


def load_run(path: Path) -> Run:
    """The per-seed values of a run directory (its results.csv) or of a results.csv file. A
    summary.csv alone holds means, not the per-seed values a test needs: that is an error."""
    path = Path(path)
    if path.is_dir():
        if (path / "results.csv").is_file():
            return load_run(path / "results.csv")
        if (path / "summary.csv").is_file() or (path / "report" / "summary.csv").is_file():
            raise _summary_only(path)
        raise UsageError(f"{path} holds neither results.csv nor summary.csv",
                         "give a run directory of `mgbench run` or its results.csv")
    if not path.is_file():
        raise UsageError(f"{path} does not exist", "give a run directory or a results.csv file")
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (ValueError, UnicodeDecodeError):  # empty or not CSV: read_results names the damage
        header = pd.Index([])
    if "metric" in header and "mean" in header:
        raise _summary_only(path)
    results = read_results(path)  # the protocol hash is read as text (schema.STRING_COLUMNS)
    fields = [c for c in PROTOCOL_FIELDS if c in results.columns]
    ok = results[results["status"] == "ok"]
    metrics = metric_columns(ok)
    if metrics:
        values = ok.melt(id_vars=TABLE_KEYS + ["model", "seed"], value_vars=metrics, var_name="metric")
        values = values[values["value"].notna()].reset_index(drop=True)[VALUE_COLUMNS]
    else:
        values = pd.DataFrame(columns=VALUE_COLUMNS)
    rows = ok[TABLE_KEYS + ["model", "seed"]].reset_index(drop=True)
    for name in ([PROTOCOL] if PROTOCOL in ok.columns else []) + fields:
        rows[name] = ok[name].astype(object).where(ok[name].notna(), "").astype(str).to_numpy()
    return Run(path, values, rows)


def _summary_only(path: Path) -> UsageError:
    return UsageError(f"{path} holds only a summary.csv: means without the per-seed values that the statistical "
                      "test of `compare` needs",
                      "give the run directory or its results.csv (a published report ships it: "
                      "reports/<name>/results.csv)")


# ---------------------------------------------------------------- the decision, vectorised

@dataclass(frozen=True)
class Decision:
    """The test of every check of one or several families (leading axes: families, last: checks)."""
    result: stats.TwoSample
    p: np.ndarray  # raw two-sided p (1 for identical checks), NaN outside the family
    p_holm: np.ndarray
    reject: np.ndarray
    fail: np.ndarray  # rejected, or not testable (n < 2, not finite) and not identical
    p_equivalence: np.ndarray | None
    equivalent: np.ndarray | None

    @property
    def passed(self) -> np.ndarray:
        """Per family: no check fails and, with a margin, every check is shown equivalent."""
        ok = ~self.fail.any(axis=-1)
        return ok & self.equivalent.all(axis=-1) if self.equivalent is not None else ok


def decide(ref: np.ndarray, new: np.ndarray, *, alpha: float = 0.05, test: str = "welch",
           margin: np.ndarray | float | None = None, identical: np.ndarray | None = None) -> Decision:
    """Test each check (per-seed values along the last axis, NaN = absent) of new against ref and
    apply Holm over the checks (the second-last axis). ``margin`` (absolute, per check) adds TOST
    equivalence; ``identical`` marks checks whose values are bit-identical (p = 1, equivalent)."""
    if test == "permutation":
        result = stats.permutation(new, ref)
    else:
        result = stats.welch(new, ref, equal_var=test == "student")
    same = np.zeros(result.p.shape, dtype=bool) if identical is None else np.asarray(identical, dtype=bool)
    p = np.where(same, 1.0, result.p)
    p_holm = stats.holm(p, axis=-1)
    reject = p_holm <= alpha
    untestable = np.isin(result.status, [stats.TOO_FEW, stats.NOT_FINITE]) & ~same
    p_eq = equivalent = None
    if margin is not None:
        p_eq = np.where(same, 0.0, stats.tost(new, ref, margin, equal_var=test == "student").p)
        equivalent = p_eq <= alpha
    return Decision(result, p, p_holm, reject, reject | untestable, p_eq, equivalent)


# ---------------------------------------------------------------- compare two runs

@dataclass(frozen=True)
class Comparison:
    """The per-check table (:data:`COMPARE_COLUMNS`) and what the summary lines need."""
    table: pd.DataFrame
    alpha: float
    test: str
    equivalence: float | None
    family: int
    equal_values: int
    total_values: int
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        ok = self.table["verdict"].isin(PASSING).all()
        if self.equivalence is not None:
            ok = ok and (self.table["equivalence"] == "equivalent").all()
        return bool(ok)

    @property
    def bit_identical(self) -> bool:
        return bool((self.table["verdict"] == "identical").all())


def compare(reference: Run, run: Run, *, metrics: list[str] | None = None, alpha: float = 0.05,
            equivalence: float | None = None, test: str = "welch",
            allow_protocol_mismatch: bool = False) -> Comparison:
    """Test every (table, model, metric) of the reference against the run (see the module doc);
    ``equivalence`` is a margin in percent of |reference mean|."""
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must lie in (0, 1), not {alpha:g}", "e.g. --alpha 0.05")
    if equivalence is not None and not equivalence > 0:
        raise UsageError(f"--equivalence must be a margin > 0 in percent, not {equivalence:g}", "e.g. --equivalence 10")
    if test not in TESTS:
        raise UsageError(f"unknown test {test!r}", f"valid: {', '.join(TESTS)}")
    ref = _checked(reference.values, metrics)
    ref_tables = {tuple(k.values()) for k, _ in tables(ref)}
    new_tables = {tuple(k.values()) for k, _ in tables(run.values)} if not run.values.empty else set()
    if new_tables and not ref_tables & new_tables:  # (a run without ok jobs just fails: all missing)
        raise UsageError(
            "no table of the run matches the reference (dataset, resolution, feature extractor, LPIPS "
            f"backbone, N): reference {_keys_text(ref_tables)}; run {_keys_text(new_tables) or 'none'}",
            "run with the reference's dataset, resolution, --feature-extractor and --num-samples")
    notes = _protocol_notes(reference.rows, run.rows, allow_protocol_mismatch)

    key = TABLE_KEYS + ["model", "metric"]
    checks = ref[key].drop_duplicates().reset_index(drop=True)
    ref_groups, new_groups = _by_check(ref), _by_check(run.values)
    pairs = [(ref_groups[k], new_groups.get(k, {})) for k in checks.itertuples(index=False, name=None)]
    width = max(max(len(a), len(b)) for a, b in pairs)
    ref_values, new_values = _padded([a for a, _ in pairs], width), _padded([b for _, b in pairs], width)
    identical = np.array([a == b for a, b in pairs])  # the same seeds, bit-identical values (inf == inf)
    equal_values = sum(sum(seed in b and b[seed] == v for seed, v in a.items()) for a, b in pairs)
    with np.errstate(invalid="ignore"):
        ref_mean = np.nanmean(ref_values, axis=1)
    margin = None if equivalence is None else equivalence / 100 * np.abs(ref_mean)
    decision = decide(ref_values, new_values, alpha=alpha, test=test, margin=margin, identical=identical)

    r = decision.result
    out = checks.copy()
    out["direction"] = [direction(m) or "" for m in out["metric"]]
    out["ref_n"], out["ref_mean"], out["ref_std"] = r.n_y, r.mean_y, _std(r.var_y, r.n_y)
    out["new_n"], out["new_mean"], out["new_std"] = r.n_x, r.mean_x, _std(r.var_x, r.n_x)
    out["diff"] = r.diff
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rel_diff"] = np.where(r.mean_y != 0, r.diff / np.abs(r.mean_y), np.nan)
    low, high = r.ci()
    out["ci_low"], out["ci_high"] = np.where(identical, 0.0, low), np.where(identical, 0.0, high)
    out["p"], out["p_holm"] = decision.p, decision.p_holm
    out["verdict"] = [_verdict(*v) for v in zip(out["new_n"], identical, r.status, decision.reject, r.diff,
                                                   out["direction"], strict=True)]
    if decision.equivalent is not None:
        out["p_equivalence"] = decision.p_equivalence
        out["equivalence"] = np.where(decision.equivalent, "equivalent", "not shown equivalent")
    else:
        out["p_equivalence"], out["equivalence"] = np.nan, ""
    return Comparison(out[COMPARE_COLUMNS], alpha, test, equivalence, int((~np.isnan(decision.p)).sum()),
                      equal_values, len(ref), notes)


def _checked(values: pd.DataFrame, metrics: list[str] | None) -> pd.DataFrame:
    """The reference's values of the metrics to check: those named, or every score with a direction."""
    present = set(values["metric"])
    if metrics:
        unknown = sorted(set(metrics) - present)
        if unknown:
            raise UsageError(f"the reference has no metric {', '.join(unknown)}",
                             f"its metrics: {', '.join(sorted(present))}")
        chosen = values[values["metric"].isin(metrics)]
    else:
        chosen = values[values["metric"].map(lambda m: bool(direction(m)))] if not values.empty else values
    if chosen.empty:
        raise UsageError("the reference holds no score to compare", "give a reference with ok jobs")
    return chosen


def _by_check(values: pd.DataFrame) -> dict[tuple, dict[int, float]]:
    """{(table keys..., model, metric): {seed: value}}, seeds in increasing order."""
    out: dict[tuple, dict[int, float]] = {}
    columns = TABLE_KEYS + ["model", "metric", "seed", "value"]
    for *key, seed, value in sorted(values[columns].itertuples(index=False, name=None),
                                    key=lambda r: (r[:-2], r[-2])):
        out.setdefault(tuple(key), {})[seed] = float(value)
    return out


def _padded(groups: list[dict[int, float]], width: int) -> np.ndarray:
    out = np.full((len(groups), width), np.nan)
    for i, g in enumerate(groups):
        out[i, :len(g)] = list(g.values())
    return out


def _std(var: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(n > 1, np.sqrt(var), np.nan)


def _verdict(new_n: int, identical: bool, status: str, reject: bool, diff: float, way: str) -> str:
    if new_n == 0:
        return "missing"
    if identical:
        return "identical"
    if status == stats.TOO_FEW:
        return "untested"
    if status == stats.NOT_FINITE:
        return "not finite"
    if not reject:
        return "ok"
    if not way:
        return "differs"
    return "better" if (diff > 0) == (way == "higher") else "worse"


def _keys_text(keys: set[tuple[str, ...]]) -> str:
    return "; ".join(" / ".join(k) for k in sorted(keys))


# ---------------------------------------------------------------- protocol

def _protocol_notes(ref: pd.DataFrame, new: pd.DataFrame, allow: bool) -> list[str]:
    """Lines on the protocol of both sides; a :class:`UsageError` when the hashes differ (unless allowed)."""
    notes = [f"protocol not recorded in {side}" for side, rows in (("the reference", ref), ("the run", new))
             if PROTOCOL not in rows.columns or not (rows[PROTOCOL] != "").any()]
    if notes:
        return notes
    group = TABLE_KEYS + ["model"]
    ref_sets = ref.groupby(group)[PROTOCOL].agg(lambda s: frozenset(s))
    new_sets = new.groupby(group)[PROTOCOL].agg(lambda s: frozenset(s))
    common = ref_sets.index.intersection(new_sets.index)
    differ = [k for k in common if ref_sets[k] != new_sets[k]]
    if not differ:
        hashes = sorted(set().union(*ref_sets[common])) if len(common) else []
        return [f"protocol: the same in both runs ({', '.join(hashes) or 'no model in common'})"]
    models = sorted({k[-1] for k in differ})
    ref_rows = ref.set_index(group).loc[differ].reset_index()
    new_rows = new.set_index(group).loc[differ].reset_index()
    fields = []
    for name in PROTOCOL_FIELDS:
        if name in ref_rows.columns and name in new_rows.columns:
            a, b = sorted(set(ref_rows[name].astype(str))), sorted(set(new_rows[name].astype(str)))
            if a != b:
                fields.append(f"{name} {'/'.join(a)} (reference) vs {'/'.join(b)} (run)")
    what = "; ".join(fields) if fields else "the differing settings are not among the rows' columns"
    problem = f"the protocol hashes differ for {', '.join(models)}: {what}"
    if not allow:
        raise UsageError(problem, "rerun with the reference's protocol (its config.json: precision, threads, "
                                  "steps, ...), or pass --allow-protocol-mismatch to compare them statistically anyway")
    return [problem + "; compared statistically anyway (--allow-protocol-mismatch)"]


# ---------------------------------------------------------------- text

def _p_text(p: float) -> str:
    if math.isnan(p):
        return "—"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _mean_text(mean: float, std: float, n: int, places: int) -> str:
    if n == 0:
        return "—"
    text = number(mean, places)
    if not math.isnan(std):
        text += " ± " + number(std, places)
    return f"{text} ({n})"


def format_comparison(comparison: Comparison) -> str:
    """The checks as a console table, one block per table, then the verdict lines."""
    c, result = comparison, comparison.table
    blocks = []
    for keys, rows in tables(result):
        header = ["model", "metric", "reference mean ± sd (n)", "run mean ± sd (n)", "diff", "p", "p Holm",
                  "verdict"] + (["equivalence (p)"] if c.equivalence is not None else [])
        body = []
        for r in rows.itertuples(index=False):
            places = decimals(r.ref_mean)
            rel = f" ({r.rel_diff:+.1%})" if np.isfinite(r.rel_diff) else ""
            line = [r.model, r.metric, _mean_text(r.ref_mean, r.ref_std, r.ref_n, places),
                    _mean_text(r.new_mean, r.new_std, r.new_n, places),
                    "—" if not np.isfinite(r.diff) else f"{r.diff:+,.{places}f}{rel}",
                    _p_text(r.p), _p_text(r.p_holm), r.verdict]
            if c.equivalence is not None:
                line.append(f"{r.equivalence} ({_p_text(r.p_equivalence)})")
            body.append(line)
        blocks.append("\n".join([key_title(keys)] + text_table(header, body, right=False)))
    lines = list(c.notes)
    if c.bit_identical:
        lines.append(f"bit-identical: {c.equal_values} of {c.total_values} values equal")
    else:
        lines.append(f"not bit-identical: {c.equal_values} of {c.total_values} per-seed values equal")
    counts = result["verdict"].value_counts()
    rejected = int(counts.get("better", 0) + counts.get("worse", 0) + counts.get("differs", 0))
    unusable = ", ".join(f"{int(counts[v])} {v}" for v in ("missing", "untested", "not finite") if v in counts)
    family = (f"Holm over a family of {c.family} checks, {TEST_NAMES[c.test]} on the per-seed values, "
              f"family-wise α = {c.alpha:g}")
    if result["verdict"].isin(PASSING).all():
        lines.append(f"REPRODUCED: no check rejects ({family})")
    else:
        why = [f"{rejected} of {c.family} checks reject"] if rejected else []
        lines.append(f"NOT REPRODUCED: {'; '.join(why + ([unusable] if unusable else []))} ({family})")
        if "untested" in counts:
            lines.append("untested: one seed on a side gives no spread to test against; run ≥ 2 seeds")
    if c.equivalence is not None:
        shown = int((result["equivalence"] == "equivalent").sum())
        head = "EQUIVALENT" if shown == len(result) else "NOT SHOWN EQUIVALENT"
        lines.append(f"{head} within ±{c.equivalence:g} % of the reference mean: {shown} of {len(result)} checks "
                     f"(two one-sided Welch tests, each at α = {c.alpha:g}; all of them together is an "
                     "intersection-union test of level α)")
    lines.extend(_sensitivity(result, c))
    return "\n\n".join(blocks + ["\n".join(lines)]) + "\n"


def _sensitivity(result: pd.DataFrame, c: Comparison) -> list[str]:
    """What the test can see: the shift of one score it catches with 80 % power."""
    tested = result[(result["ref_n"] > 1) & (result["new_n"] > 1)]
    if tested.empty or c.family == 0:
        return []
    n = int(min(tested["ref_n"].min(), tested["new_n"].min()))
    if c.test == "permutation" and stats.min_permutation_p(n, n) > c.alpha / c.family:
        return [f"sensitivity: with {n} seeds a side the permutation test's smallest p is "
                f"{stats.min_permutation_p(n, n):.3g}, above the first Holm level α/m = {c.alpha / c.family:.3g}: "
                "it can never reject (use --test welch, or more seeds)"]
    shift = stats.min_detectable_difference(1.0, n, c.alpha / c.family)
    return [f"sensitivity: with {n} seeds a side and {c.family} checks, one score shifted by "
            f"{shift:.1f} seed standard deviations is caught with 80 % power (Bonferroni bound, pooled t; "
            f"Welch's power is lower); with {n * 2} seeds a side: "
            f"{stats.min_detectable_difference(1.0, n * 2, c.alpha / c.family):.1f}"]
