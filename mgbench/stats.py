"""Statistics on per-seed values: reproduction checks (`mgbench compare`) and model comparisons.

Pure functions on numpy arrays (and one on a pandas table); scipy supplies the distributions
and the tests it has. A *sample* is the per-seed values of one (model, metric) in one run. The
two-sample functions take arrays whose last axis holds the seeds and whose leading axes are
independent checks; NaN marks an absent value, so checks with different seed counts share one
array (padded with NaN). Results are arrays over the leading axes.

Which test `compare` uses, and why
----------------------------------
Welch's t (:func:`welch`, ``scipy.stats.ttest_ind(equal_var=False)``). With 3 seeds against 3 an
exact permutation test (:func:`permutation`) has C(6, 3) = 20 arrangements, so its smallest
two-sided p-value is 2/20 = 0.1 (:func:`min_permutation_p`): it can never reject at 0.05, let
alone at the Holm level α/m of a family of m ≈ 100 checks. Welch's t assumes roughly normal
seed-to-seed spread but can reject with 3 seeds. It does not assume equal variances, so a run
whose seeds spread more (nondeterministic kernels, say) but whose mean is the same is not
flagged, also when the two runs have different seed counts. The pooled Student t
(``equal_var=True``) has 2n − 2 degrees of freedom instead of Welch's estimated 2 … 2n − 2 and so
more power at n = 3 (measured in tests/benchmarks/simulate_compare.py), but it is exact only when
both variances are equal. The permutation test (no normality assumption) can reject among m
checks only once 2/C(2n, n) < α/m: with m ≈ 100 that takes n ≥ 8 seeds a side;
`compare --test permutation` picks it.

Degenerate samples (the ``status`` of a :class:`TwoSample`), handled the same way by every test:

- :data:`NOT_FINITE`: an inf on either side. No p-value (NaN); the caller must decide (compare
  fails the check unless both runs hold the very same values).
- :data:`TOO_FEW`: fewer than 2 values on either side. One value has no spread to measure, so no
  test is possible; p is NaN, never a silent pass.
- :data:`NO_SPREAD_EQUAL`: every value on both sides is the same number (4 of 4 modes at every
  seed): identical, p = 1.
- :data:`NO_SPREAD_DIFFERENT`: each side constant, the two constants differ (4 modes at every seed
  against 3 at every seed). The t statistic is infinite, but a normal model of the spread is plainly
  wrong for such (discrete) values, so the p-value is the exact permutation test's, whose observed
  arrangement is the most extreme of all: p = 2 / C(n_x + n_y, n_x) (0.1 for 3 against 3).
- :data:`TESTED`: everything else; one side constant is fine (Welch then takes the other side's
  variance and n − 1 degrees of freedom).

Multiplicity: :func:`holm` (Holm 1979, Scandinavian Journal of Statistics 6(2)) keeps the
family-wise error at α under any dependence between the checks. Equivalence: :func:`tost`
(Schuirmann 1987, J. Pharmacokinetics and Biopharmaceutics 15(6)). Model comparisons:
:func:`probability_of_improvement` (Agarwal et al. 2021, "Deep reinforcement learning at the edge
of the statistical precipice", NeurIPS, section 4.3) with a stratified bootstrap over seeds,
:func:`rank_first_probability`, :func:`best`. Luck: :func:`variance_components` (one-way random
effects, ANOVA estimator), :func:`power_two_sample`, :func:`min_detectable_difference`,
:func:`seeds_needed`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import optimize, stats

from mgbench.errors import UsageError

TESTED = "tested"
NO_SPREAD_EQUAL = "no spread, equal"
NO_SPREAD_DIFFERENT = "no spread, different"
TOO_FEW = "n < 2"
NOT_FINITE = "not finite"


@dataclass(frozen=True)
class TwoSample:
    """A two-sample test of x against y, element-wise over the leading axes of the inputs.

    ``diff`` = mean(x) − mean(y); ``se`` its standard error and ``df`` the degrees of freedom of
    its t statistic (NaN for the permutation test); ``p`` two-sided (or, from :func:`tost`, the
    equivalence p-value); ``status`` one of the module's status strings (see the module doc)."""
    n_x: np.ndarray
    n_y: np.ndarray
    mean_x: np.ndarray
    mean_y: np.ndarray
    var_x: np.ndarray
    var_y: np.ndarray
    diff: np.ndarray
    se: np.ndarray
    df: np.ndarray
    statistic: np.ndarray
    p: np.ndarray
    status: np.ndarray

    def ci(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """The t confidence interval of ``diff`` (Welch's when the test was Welch's): diff ± t·se.
        A sample without spread on both sides gives [diff, diff]; NaN where no test was made."""
        with np.errstate(invalid="ignore"):
            half = stats.t.ppf(0.5 + level / 2, self.df) * self.se
        half = np.where(np.isin(self.status, [NO_SPREAD_EQUAL, NO_SPREAD_DIFFERENT]), 0.0, half)
        half = np.where(np.isin(self.status, [TOO_FEW, NOT_FINITE]), np.nan, half)
        return self.diff - half, self.diff + half


def _moments(values: np.ndarray) -> tuple[np.ndarray, ...]:
    """n, mean, sample variance (ddof 1), spread (max − min) and "holds an inf" along the last axis;
    NaN values are absent."""
    present = ~np.isnan(values)
    n = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        zeroed = np.where(present, values, 0.0)
        mean = zeroed.sum(axis=-1) / n
        dev = np.where(present, values - mean[..., None], 0.0)
        var = (dev ** 2).sum(axis=-1) / (n - 1)
        spread = np.where(present, values, -np.inf).max(axis=-1) - np.where(present, values, np.inf).min(axis=-1)
    infinite = np.isinf(values).any(axis=-1)
    return n, mean, var, spread, infinite


def _as_samples(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim == 0 or y.ndim == 0 or x.shape[:-1] != y.shape[:-1]:
        raise ValueError(f"samples need a seed axis last and equal leading axes: {x.shape} vs {y.shape}")
    return x, y


def min_permutation_p(n_x: int, n_y: int) -> float:
    """The smallest two-sided p-value an exact permutation test of n_x against n_y values can give:
    2 / C(n_x + n_y, n_x) (its observed arrangement alone at the extreme), at most 1."""
    return min(1.0, 2.0 / math.comb(n_x + n_y, n_x))


def _status(x: np.ndarray, y: np.ndarray) -> tuple[TwoSample, np.ndarray]:
    """Moments of both sides, the degenerate cases' status, diff and p filled in; ``tested`` marks
    the elements a test must still fill."""
    nx, mx, vx, sx, ix = _moments(x)
    ny, my, vy, sy, iy = _moments(y)
    status = np.full(nx.shape, TESTED, dtype=object)
    flat = (sx == 0) & (sy == 0)
    with np.errstate(invalid="ignore"):
        diff = mx - my
    status[flat & (diff == 0)] = NO_SPREAD_EQUAL
    status[flat & (diff != 0)] = NO_SPREAD_DIFFERENT
    status[(nx < 2) | (ny < 2)] = TOO_FEW
    status[ix | iy] = NOT_FINITE
    p = np.full(nx.shape, np.nan)
    p[status == NO_SPREAD_EQUAL] = 1.0
    different = status == NO_SPREAD_DIFFERENT
    if different.any():
        p[different] = [min_permutation_p(a, b) for a, b in zip(nx[different], ny[different], strict=True)]
    statistic = np.full(nx.shape, np.nan)
    statistic[status == NO_SPREAD_EQUAL] = 0.0
    statistic[different] = np.sign(diff[different]) * np.inf
    nan = np.full(nx.shape, np.nan)
    result = TwoSample(nx, ny, mx, my, vx, vy, diff, nan, nan.copy(), statistic, p, status)
    return result, status == TESTED


def _se_df(r: TwoSample, equal_var: bool) -> tuple[np.ndarray, np.ndarray]:
    """Standard error of the difference and the t degrees of freedom: Welch–Satterthwaite
    (Welch 1947, Biometrika 34) or the pooled Student t's n_x + n_y − 2."""
    nx, ny, vx, vy = r.n_x.astype(float), r.n_y.astype(float), r.var_x, r.var_y
    with np.errstate(invalid="ignore", divide="ignore"):
        if equal_var:
            pooled = ((nx - 1) * vx + (ny - 1) * vy) / (nx + ny - 2)
            return np.sqrt(pooled * (1 / nx + 1 / ny)), nx + ny - 2
        a, b = vx / nx, vy / ny
        return np.sqrt(a + b), (a + b) ** 2 / (a ** 2 / (nx - 1) + b ** 2 / (ny - 1))


def welch(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float], *,
          equal_var: bool = False) -> TwoSample:
    """Welch's two-sample t test of mean(x) = mean(y) (or the pooled Student t with
    ``equal_var=True``), over the last axis, NaN = absent; p from
    ``scipy.stats.ttest_ind_from_stats``, so it equals ``scipy.stats.ttest_ind`` on the values."""
    x, y = _as_samples(x, y)
    r, tested = _status(x, y)
    se, df = _se_df(r, equal_var)
    se = np.where(np.isin(r.status, [TESTED, NO_SPREAD_EQUAL, NO_SPREAD_DIFFERENT]), se, np.nan)
    df = np.where(r.status == TESTED, df, np.nan)
    statistic, p = r.statistic.copy(), r.p.copy()
    if tested.any():
        res = stats.ttest_ind_from_stats(r.mean_x[tested], np.sqrt(r.var_x[tested]), r.n_x[tested],
                                         r.mean_y[tested], np.sqrt(r.var_y[tested]), r.n_y[tested],
                                         equal_var=equal_var)
        statistic[tested], p[tested] = res.statistic, res.pvalue
    return replace(r, se=se, df=df, statistic=statistic, p=p)


def _rng_argument(seed: int) -> dict[str, object]:
    """scipy ≥ 1.15 names the generator ``rng``; older versions ``random_state``."""
    name = "rng" if "rng" in inspect.signature(stats.permutation_test).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def permutation(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float], *,
                n_resamples: int = 9999, seed: int = 0) -> TwoSample:
    """Two-sided permutation test of the difference of means (``scipy.stats.permutation_test``,
    independent samples; p is twice the smaller one-sided tail): exact when the C(n_x + n_y, n_x)
    arrangements number at most ``n_resamples``, else Monte Carlo with a seeded generator (then
    p ≥ 1/(n_resamples + 1)). Its smallest p is :func:`min_permutation_p` (0.1 for 3 against 3)."""
    x, y = _as_samples(x, y)
    r, tested = _status(x, y)
    p = r.p.copy()
    statistic = np.where(np.isin(r.status, [TOO_FEW, NOT_FINITE]), np.nan, r.diff)

    def mean_diff(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        return a.mean(axis=axis) - b.mean(axis=axis)

    for index in np.ndindex(tested.shape):
        if not tested[index]:
            continue
        a, b = x[index], y[index]
        res = stats.permutation_test((a[~np.isnan(a)], b[~np.isnan(b)]), mean_diff, vectorized=True,
                                     permutation_type="independent", alternative="two-sided",
                                     n_resamples=n_resamples, **_rng_argument(seed))
        p[index] = min(1.0, res.pvalue)
    return replace(r, statistic=statistic, p=p)


def tost(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float], margin: np.ndarray | float, *,
         equal_var: bool = False) -> TwoSample:
    """Two one-sided tests (Schuirmann 1987) of equivalence within ±margin (absolute units, ≥ 0):
    H0 |mean(x) − mean(y)| ≥ margin against H1 |diff| < margin, each one-sided Welch t at the same
    level, p = max(p_low, p_high); a small p shows equivalence. ``statistic`` is the smaller of the
    two one-sided t values. Degenerate cases: no spread on both sides gives p = 0 when |diff| <
    margin (or diff = 0) and p = 1 otherwise; too few or non-finite values give NaN."""
    x, y = _as_samples(x, y)
    r = welch(x, y, equal_var=equal_var)
    margin = np.broadcast_to(np.asarray(margin, dtype=float), r.diff.shape)
    if (margin < 0).any():
        raise ValueError("an equivalence margin is ≥ 0")
    p = np.full(r.diff.shape, np.nan)
    statistic = np.full(r.diff.shape, np.nan)
    tested = r.status == TESTED
    with np.errstate(invalid="ignore", divide="ignore"):
        low = (r.diff + margin) / r.se  # H0: diff ≤ −margin
        high = (r.diff - margin) / r.se  # H0: diff ≥ +margin
        p_low, p_high = stats.t.sf(low, r.df), stats.t.cdf(high, r.df)
    p[tested] = np.maximum(p_low, p_high)[tested]
    statistic[tested] = np.minimum(low, -high)[tested]
    flat = np.isin(r.status, [NO_SPREAD_EQUAL, NO_SPREAD_DIFFERENT])
    inside = (np.abs(r.diff) < margin) | (r.diff == 0)
    p[flat] = np.where(inside[flat], 0.0, 1.0)
    return replace(r, statistic=statistic, p=p)


def holm(p: np.ndarray | Sequence[float], axis: int = -1) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values (Holm 1979), each family along ``axis``; NaN
    entries are outside the family and stay NaN. Sorted p₍₁₎ ≤ … ≤ p₍ₘ₎ are adjusted to
    min(1, max_{j ≤ i} (m − j + 1)·p₍ⱼ₎); rejecting where the adjusted p ≤ α keeps the family-wise
    error ≤ α under any dependence."""
    p = np.moveaxis(np.asarray(p, dtype=float), axis, -1)
    order = np.argsort(p, axis=-1, kind="stable")  # NaN sorts last
    ranked = np.take_along_axis(p, order, axis=-1)
    m = (~np.isnan(p)).sum(axis=-1, keepdims=True)
    adjusted = np.fmax.accumulate(ranked * (m - np.arange(p.shape[-1])), axis=-1)  # fmax: NaN never wins
    adjusted = np.where(np.isnan(ranked), np.nan, np.minimum(adjusted, 1.0))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.moveaxis(out, -1, axis)


# ---------------------------------------------------------------- comparing models over seeds

def _oriented(values: np.ndarray | Sequence[float], higher_is_better: bool) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return values if higher_is_better else -values


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½P(X = Y) over all pairs of the last axes of x (…, n) and y (…, m)."""
    a, b = x[..., :, None], y[..., None, :]
    return (a > b).mean(axis=(-2, -1)) + 0.5 * (a == b).mean(axis=(-2, -1))


def probability_of_improvement(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float],
                               higher_is_better: bool = True) -> float:
    """P(X better than Y) = P(X > Y) + ½P(X = Y) for a seed of x against a seed of y (the
    Mann–Whitney U / (n m)), as rliable defines the probability of improvement (Agarwal et al.
    2021, NeurIPS, section 4.3) per task; "better" follows the metric's direction. NaN without
    values on either side."""
    a, b = _oriented(x, higher_is_better), _oriented(y, higher_is_better)
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(_improvement(a, b))


def _resample(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) draws with replacement from one sample: one stratum of a stratified bootstrap."""
    return values[rng.integers(0, values.size, size=(n_boot, values.size))]


def probability_of_improvement_ci(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float],
                                  higher_is_better: bool = True, *, level: float = 0.95, n_boot: int = 2000,
                                  seed: int = 0) -> tuple[float, float]:
    """Percentile interval of :func:`probability_of_improvement` from a stratified bootstrap over
    seeds (each sample resampled with replacement on its own, as rliable's StratifiedBootstrap),
    seeded. With 3 seeds a side the bootstrap sees few distinct resamples: the interval is coarse."""
    a, b = _oriented(x, higher_is_better), _oriented(y, higher_is_better)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = _improvement(_resample(a, n_boot, rng), _resample(b, n_boot, rng))
    low, high = np.quantile(values, [0.5 - level / 2, 0.5 + level / 2])
    return float(low), float(high)


def rank_first_probability(samples: Sequence[np.ndarray | Sequence[float]], higher_is_better: bool = True, *,
                           n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """For each sample (a model's per-seed values of one metric), the probability that its mean
    ranks first when every model's seeds are resampled with replacement (a stratified bootstrap,
    seeded); tied first places share the credit, so the probabilities sum to 1. A sample without
    values gets 0."""
    oriented = [_oriented(s, higher_is_better) for s in samples]
    rng = np.random.default_rng(seed)
    means = np.stack([_resample(s, n_boot, rng).mean(axis=1) if s.size else np.full(n_boot, -np.inf)
                      for s in oriented], axis=1)  # (n_boot, models)
    top = means == means.max(axis=1, keepdims=True)
    return (top / top.sum(axis=1, keepdims=True)).mean(axis=0)


@dataclass(frozen=True)
class Best:
    """The outcome of :func:`best`: ``top`` has the best mean; ``leaders`` are the models not
    significantly worse than it (``top`` first, then by mean); ``significant`` is True when the top
    model alone leads, every other model being significantly worse."""
    top: str
    leaders: tuple[str, ...]
    significant: bool


def best(names: Sequence[str], means: Sequence[float], p_adjusted: np.ndarray, higher_is_better: bool = True,
         alpha: float = 0.05) -> Best:
    """Which model is best on one metric: ``p_adjusted[i, j]`` is the (multiplicity-adjusted) p of
    model i against model j. The model with the best mean wins alone only when it is significantly
    better (adjusted p ≤ alpha) than every other model, the runner-up included; otherwise the tied
    leaders are every model not significantly worse than it (a model without a p-value, NaN, is
    never significantly worse). Equal best means are all leaders."""
    if len(names) == 0:
        raise ValueError("best() needs at least one model")
    score = np.asarray(means, dtype=float) * (1 if higher_is_better else -1)
    order = sorted(range(len(names)), key=lambda i: (-score[i] if np.isfinite(score[i]) else math.inf, names[i]))
    top = order[0]
    leaders = [i for i in order if i == top or score[i] == score[top]
               or not p_adjusted[top, i] <= alpha]
    return Best(names[top], tuple(names[i] for i in leaders), len(names) > 1 and len(leaders) == 1)


# ---------------------------------------------------------------- how much of a score is luck

@dataclass(frozen=True)
class VarianceSplit:
    """One-way random-effects split of a score's variance: y_ij = μ + a_i + e_ij with a training-seed
    effect a_i ~ (0, ``training``) and a sampling-seed effect e_ij ~ (0, ``sampling``)."""
    training: float
    sampling: float
    n_training: int
    n_values: int
    n0: float
    ms_between: float
    ms_within: float

    @property
    def total(self) -> float:
        """Variance of one score (one training seed, one sampling seed)."""
        return self.training + self.sampling

    @property
    def training_share(self) -> float:
        """Share of that variance due to the training seed (the intraclass correlation)."""
        return self.training / self.total if self.total > 0 else float("nan")


def variance_components(values: pd.DataFrame | pd.Series) -> VarianceSplit:
    """The ANOVA (method-of-moments) estimator of the one-way random-effects model (Searle, Casella
    & McCulloch 1992, Variance Components, section 3.5), unbalanced designs included.

    ``values``: a DataFrame with one row per training seed and one column per sampling seed (NaN =
    not scored), or a Series indexed by (training seed, sampling seed). With k training seeds, n_i
    scores of seed i, N = Σ n_i, seed means ȳ_i and grand mean ȳ:

        MSB = Σ n_i (ȳ_i − ȳ)² / (k − 1)          MSW = Σ_i Σ_j (y_ij − ȳ_i)² / (N − k)
        n0  = (N − Σ n_i² / N) / (k − 1)           (= the number of sampling seeds when balanced)
        sampling = MSW                             training = max(0, (MSB − MSW) / n0)

    (truncated at 0: a negative estimate means the training seed's part is too small to see)."""
    if isinstance(values, pd.Series):
        if values.index.nlevels != 2:
            raise UsageError("a Series of scores needs a (training seed, sampling seed) index",
                             "index it by two levels, or give a DataFrame: rows training seeds, columns sampling seeds")
        values = values.unstack()
    table = values.to_numpy(dtype=float)
    if np.isinf(table).any():
        raise UsageError("the scores hold an infinite value", "leave out the diverged seeds (NaN) first")
    counts = (~np.isnan(table)).sum(axis=1)
    table, counts = table[counts > 0], counts[counts > 0]
    k, total = len(counts), int(counts.sum())
    if k < 2 or total <= k:
        raise UsageError(f"{k} training seed(s) with {total} scores cannot split the variance",
                         "give at least 2 training seeds and, for one of them, at least 2 sampling seeds")
    seed_means = np.nanmean(table, axis=1)
    grand = np.nansum(table) / total
    ms_between = float((counts * (seed_means - grand) ** 2).sum() / (k - 1))
    ms_within = float(np.nansum((table - seed_means[:, None]) ** 2) / (total - k))
    n0 = float((total - (counts ** 2).sum() / total) / (k - 1))
    return VarianceSplit(max(0.0, (ms_between - ms_within) / n0), ms_within, k, total, n0, ms_between, ms_within)


def power_two_sample(diff: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample t test with n seeds a side, a common standard deviation sd
    and a true difference diff: with ν = 2(n − 1), λ = |diff| / (sd·√(2/n)) and t* = t_{1−α/2, ν},

        power = 1 − F_nct(t*; ν, λ) + F_nct(−t*; ν, λ)      (noncentral t, ``scipy.stats.nct``).

    Exact for the pooled t; Welch's t estimates its degrees of freedom (2 … ν), so with few seeds
    its power is lower (n = 3, a 3-sd shift, α = 0.05: Welch finds it about 68 % of the time in
    simulation, against the 78 % this gives)."""
    if n < 2 or sd <= 0:
        raise ValueError("power needs n ≥ 2 seeds a side and sd > 0")
    nu = 2 * (n - 1)
    lam = abs(diff) / (sd * math.sqrt(2 / n))
    crit = stats.t.ppf(1 - alpha / 2, nu)
    wrong_side = stats.nct.cdf(-crit, nu, lam)  # rejections on the wrong side; scipy may give NaN for ~0
    return float(stats.nct.sf(crit, nu, lam) + (0.0 if np.isnan(wrong_side) else wrong_side))


def min_detectable_difference(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference the two-sided two-sample t test with n seeds a side finds with
    the given power: diff = λ·sd·√(2/n), with λ solving :func:`power_two_sample` = power (the
    t-approximation λ ≈ t_{1−α/2, ν} + t_{power, ν} is within a few % of it). For a family of m
    checks pass the Holm / Bonferroni level alpha / m (a lower bound on Holm's power)."""
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError("alpha and power lie in (0, 1)")
    unit = sd * math.sqrt(2 / n)
    nu = 2 * (n - 1)
    high = stats.t.ppf(1 - alpha / 2, nu) + stats.t.ppf(power, nu)  # the t-approximation
    while power_two_sample(high * unit, sd, n, alpha) < power:
        high *= 2
    lam = optimize.brentq(lambda x: power_two_sample(x * unit, sd, n, alpha) - power, 0.0, high)
    return float(lam * unit)


def seeds_needed(diff: float, sd: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 100_000) -> int:
    """The fewest seeds a side with which the two-sided two-sample t test finds a true difference
    diff (common standard deviation sd) with the given power (:func:`power_two_sample`)."""
    if diff == 0:
        raise ValueError("a zero difference is never detected")
    if power_two_sample(diff, sd, max_n, alpha) < power:
        raise ValueError(f"more than {max_n} seeds a side are needed")
    low, high = 2, max_n  # power grows with n: bisect
    while low < high:
        mid = (low + high) // 2
        if power_two_sample(diff, sd, mid, alpha) >= power:
            high = mid
        else:
            low = mid + 1
    return low
