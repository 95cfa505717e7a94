"""The error rates of `mgbench compare`, by simulation: how often a true reproduction fails (the
false-alarm rate) and how often one shifted score is caught (the power), for the Holm-adjusted
Welch test of :func:`mgbench.report.compare.decide`, the pooled Student t, and the old rule
(each new mean inside the reference's 95 % CI widened by rtol·|reference mean|).

    PYTHONPATH=. python tests/benchmarks/simulate_compare.py            # the table, ~10 s
    PYTHONPATH=. python tests/benchmarks/simulate_compare.py --pairs 4000

tests/test_compare.py asserts the rates on smaller draws of the same simulation.

A simulated *pair* is a reference and a run drawn from one distribution: n_models × n_metrics
checks (default 4 × 20), n_seeds per side. Each (model, metric) has a true mean 10^U(−2, 2) and a
seed-to-seed standard deviation cv·|mean|; cv cycles through ``cvs`` over the metrics. Seeds of a
model share a factor across its metrics (``correlation`` ρ: FID, KID and SWD of one trained
generator move together); ``discrete`` turns the first metrics into mode counts out of K = 4 or 16,
clipped at K, so many checks sit at the ceiling with no spread.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mgbench.report.compare import decide


@dataclass(frozen=True)
class Scenario:
    name: str
    n_seeds: int = 3
    n_models: int = 4
    n_metrics: int = 20
    cvs: tuple[float, ...] = (0.15,)
    correlation: float = 0.0
    discrete: int = 0


SCENARIOS = (
    Scenario("3 seeds, independent, every score ±15 %"),
    Scenario("3 seeds, cv 1-50 %, correlated ρ = 0.8", cvs=(0.01, 0.05, 0.15, 0.5), correlation=0.8),
    Scenario("3 seeds, cv 1-50 %, ρ = 0.8, 4 mode counts", cvs=(0.01, 0.05, 0.15, 0.5), correlation=0.8, discrete=4),
    Scenario("5 seeds, independent, every score ±15 %", n_seeds=5),
    Scenario("10 seeds, cv 1-50 %, correlated ρ = 0.8", n_seeds=10, cvs=(0.01, 0.05, 0.15, 0.5), correlation=0.8),
)


def draw(rng: np.random.Generator, s: Scenario, pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference, run, true sd): values (pairs, checks, seeds), sd (pairs, checks); checks are
    model-major (check = model·n_metrics + metric)."""
    shape = (pairs, s.n_models, s.n_metrics)
    mean = 10 ** rng.uniform(-2, 2, size=shape)
    sd = mean * np.resize(np.array(s.cvs), s.n_metrics)
    counts = np.zeros(s.n_metrics, dtype=bool)
    counts[:s.discrete] = True
    top = np.where(np.arange(s.n_metrics) % 2 == 0, 4.0, 16.0)  # K of each count metric
    centre = top - rng.uniform(-0.5, 2.0, size=shape)  # often at or above the ceiling: no spread

    def side() -> np.ndarray:
        shared = rng.standard_normal((pairs, s.n_models, 1, s.n_seeds))
        own = rng.standard_normal((pairs, s.n_models, s.n_metrics, s.n_seeds))
        z = np.sqrt(s.correlation) * shared + np.sqrt(1 - s.correlation) * own
        values = mean[..., None] + sd[..., None] * z
        counted = np.clip(np.round(centre[..., None] + 0.7 * z), 0, top[None, None, :, None])
        values = np.where(counts[None, None, :, None], counted, values)
        return values.reshape(pairs, s.n_models * s.n_metrics, s.n_seeds)

    return side(), side(), sd.reshape(pairs, -1)


def old_rule_passes(ref: np.ndarray, new: np.ndarray, rtol: float = 0.1) -> np.ndarray:
    """The rule `compare` used before: |new mean − ref mean| ≤ ci95(ref) + rtol·|ref mean| for all checks."""
    n = ref.shape[-1]
    m_ref, m_new = ref.mean(axis=-1), new.mean(axis=-1)
    ci = stats.t.ppf(0.975, n - 1) * ref.std(axis=-1, ddof=1) / np.sqrt(n)
    return (np.abs(m_new - m_ref) <= ci + rtol * np.abs(m_ref)).all(axis=-1)


def shifted_check(s: Scenario) -> int:
    """The check a power run shifts: model 0's first continuous metric with cv 15 % (or the first)."""
    cvs = np.resize(np.array(s.cvs), s.n_metrics)
    continuous = [m for m in range(s.discrete, s.n_metrics)]
    fifteen = [m for m in continuous if cvs[m] == 0.15]
    return (fifteen or continuous)[0]


def welch_power_floor(shift: float, n: int, m: int, alpha: float = 0.05) -> float:
    """A lower bound on the power of the Holm–Welch family to reject one check shifted by ``shift``
    seed standard deviations: with equal n the Welch and pooled t statistics are equal and
    Welch's df is ≥ n − 1, so Welch rejects at least when |T| > t_{1−α/(2m), n−1} (Bonferroni's
    level, which Holm never rejects less often than), with T ~ noncentral t(2n − 2, shift/√(2/n))."""
    crit = stats.t.ppf(1 - alpha / (2 * m), n - 1)
    lam = shift / np.sqrt(2 / n)
    return float(stats.nct.sf(crit, 2 * n - 2, lam) + stats.nct.cdf(-crit, 2 * n - 2, lam))


def simulate_compare(scenarios: tuple[Scenario, ...] = SCENARIOS, pairs: int = 1000, power_pairs: int = 4000,
                     shifts: tuple[float, ...] = (2.0, 3.0), alpha: float = 0.05, seed: int = 0,
                     verbose: bool = True) -> list[dict[str, float | str]]:
    """Per scenario: the pass rate of true reproductions (new test: Welch and Student; old rule), and
    for each shift the rate at which the shifted check is rejected (and, for the old rule, at which
    the run fails). Prints a table when ``verbose``; returns its rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in scenarios:
        ref, new, sd = draw(rng, s, pairs)
        row: dict[str, float | str] = {"scenario": s.name, "checks": ref.shape[1], "pairs": pairs}
        for test in ("welch", "student"):
            row[f"pass_{test}"] = float(decide(ref, new, alpha=alpha, test=test).passed.mean())
        row["pass_old"] = float(old_rule_passes(ref, new).mean())
        ref, new, sd = draw(rng, s, power_pairs)
        check = shifted_check(s)
        for shift in shifts:
            moved = new.copy()
            moved[:, check] += shift * sd[:, check, None]
            for test in ("welch", "student"):
                rejects = decide(ref, moved, alpha=alpha, test=test).reject[:, check]
                row[f"power_{test}_{shift:g}sd"] = float(rejects.mean())
            row[f"floor_welch_{shift:g}sd"] = welch_power_floor(shift, s.n_seeds, ref.shape[1], alpha)
            # scipy's own Welch test of the shifted check at Bonferroni's level, on the same draws
            alone = stats.ttest_ind(moved[:, check], ref[:, check], axis=-1, equal_var=False).pvalue
            row[f"bonferroni_welch_{shift:g}sd"] = float((alone <= alpha / ref.shape[1]).mean())
            row[f"fail_old_{shift:g}sd"] = float(1 - old_rule_passes(ref, moved).mean())
        rows.append(row)
    if verbose:
        print(format_rows(rows, shifts))
    return rows


def format_rows(rows: list[dict[str, float | str]], shifts: tuple[float, ...]) -> str:
    head = ["scenario", "pass Welch", "pass Student", "pass old rule"]
    for shift in shifts:
        head += [f"power {shift:g} sd Welch (floor)", "Student", "old fails"]
    lines = [" | ".join(head)]
    for r in rows:
        cells = [f"{r['scenario']} ({r['checks']} checks)", f"{r['pass_welch']:.3f}", f"{r['pass_student']:.3f}",
                 f"{r['pass_old']:.3f}"]
        for shift in shifts:
            cells += [f"{r[f'power_welch_{shift:g}sd']:.4f} ({r[f'floor_welch_{shift:g}sd']:.4f})",
                      f"{r[f'power_student_{shift:g}sd']:.4f}", f"{r[f'fail_old_{shift:g}sd']:.3f}"]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000, help="simulated true reproductions per scenario")
    parser.add_argument("--power-pairs", type=int, default=4000, help="simulated shifted runs per scenario")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    simulate_compare(pairs=args.pairs, power_pairs=args.power_pairs, seed=args.seed)
    print(f"({time.perf_counter() - start:.1f} s; α = 0.05 family-wise; power: the shifted check is rejected; "
          "floor: the analytic lower bound of welch_power_floor)")


if __name__ == "__main__":
    main()
