"""mgbench.stats against scipy, hand-worked cases, brute-force enumeration and simulation."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mgbench import stats
from mgbench.errors import UsageError

X = [20.1, 23.4, 19.2]
Y = [25.0, 24.1, 29.9, 27.3]


# ---------------------------------------------------------------- two-sample tests

def test_welch_matches_scipy_ttest_ind_p_statistic_and_ci() -> None:
    r = stats.welch(X, Y)
    ref = sps.ttest_ind(X, Y, equal_var=False)
    assert r.status == stats.TESTED
    assert r.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert r.diff == pytest.approx(np.mean(X) - np.mean(Y))
    # Welch–Satterthwaite by hand
    a, b = np.var(X, ddof=1) / 3, np.var(Y, ddof=1) / 4
    assert r.df == pytest.approx((a + b) ** 2 / (a ** 2 / 2 + b ** 2 / 3))
    low, high = r.ci()
    half = sps.t.ppf(0.975, r.df) * math.sqrt(a + b)
    assert (low, high) == pytest.approx((r.diff - half, r.diff + half))
    if hasattr(ref, "confidence_interval"):  # scipy ≥ 1.11
        ci = ref.confidence_interval()
        assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    student = stats.welch(X, Y, equal_var=True)
    assert student.p == pytest.approx(sps.ttest_ind(X, Y, equal_var=True).pvalue, rel=1e-12)
    assert student.df == 5


def test_welch_is_vectorised_with_nan_padding() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 5))
    y = rng.normal(1.0, 2.0, size=(6, 5))
    x[1, 3:] = np.nan  # 3 seeds in that check
    y[4, 4] = np.nan
    r = stats.welch(x, y)
    for i in range(6):
        xi, yi = x[i][~np.isnan(x[i])], y[i][~np.isnan(y[i])]
        assert r.p[i] == pytest.approx(sps.ttest_ind(xi, yi, equal_var=False).pvalue, rel=1e-12)
        assert (r.n_x[i], r.n_y[i]) == (xi.size, yi.size)
    cube = stats.welch(x.reshape(2, 3, 5), y.reshape(2, 3, 5))
    np.testing.assert_allclose(cube.p.ravel(), r.p, rtol=1e-12)


def test_degenerate_samples_are_explicit() -> None:
    r = stats.welch([[4, 4, 4], [4, 4, 4], [1, np.inf, 2], [1, np.nan, np.nan], [4, 4, 4]],
                    [[4, 4, 4], [3, 3, 3], [1, 2, 3], [1, 2, 3], [2, 3, 4]])
    assert list(r.status) == [stats.NO_SPREAD_EQUAL, stats.NO_SPREAD_DIFFERENT, stats.NOT_FINITE, stats.TOO_FEW,
                              stats.TESTED]
    assert r.p[0] == 1.0
    # constant 4 against constant 3: the exact permutation p, 2 / C(6, 3), not t = ∞ → p = 0
    assert r.p[1] == pytest.approx(0.1)
    exact = sps.permutation_test(([4.0] * 3, [3.0] * 3), lambda a, b, axis: a.mean(axis) - b.mean(axis),
                                 vectorized=True, permutation_type="independent")
    assert r.p[1] == pytest.approx(exact.pvalue)
    assert np.isnan(r.p[2]) and np.isnan(r.p[3])  # no test possible: never a silent pass
    # one side constant: Welch takes the other side's variance and n − 1 degrees of freedom
    t = (4 - 3) / math.sqrt(0 / 3 + 1 / 3)  # [2, 3, 4] has variance 1
    assert r.p[4] == pytest.approx(2 * sps.t.sf(t, 2))
    assert r.df[4] == pytest.approx(2)
    low, high = r.ci()
    assert (low[0], high[0]) == (0.0, 0.0) and (low[1], high[1]) == (1.0, 1.0)
    assert np.isnan(low[3])


def test_permutation_p_is_exact_by_enumeration() -> None:
    x, y = np.array([1.2, 3.1, 2.2, 5.0]), np.array([4.4, 6.0, 3.9, 7.1, 5.5])
    pooled = np.concatenate([x, y])
    observed = x.mean() - y.mean()
    diffs = []
    for chosen in combinations(range(9), 4):  # every arrangement, by hand
        mask = np.zeros(9, dtype=bool)
        mask[list(chosen)] = True
        diffs.append(pooled[mask].mean() - pooled[~mask].mean())
    diffs = np.array(diffs)
    # scipy's two-sided p: twice the smaller one-sided tail
    tails = (diffs >= observed - 1e-12).mean(), (diffs <= observed + 1e-12).mean()
    r = stats.permutation(x, y)
    assert r.p == pytest.approx(2 * min(tails))
    assert stats.permutation([1, 2, 3], [4, 5, 6]).p == pytest.approx(0.1)
    assert stats.min_permutation_p(3, 3) == pytest.approx(0.1)  # can never reject at 0.05
    assert stats.min_permutation_p(5, 5) == pytest.approx(2 / 252)
    assert stats.min_permutation_p(1, 1) == 1.0


def test_permutation_monte_carlo_is_seeded() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=12), rng.normal(0.5, 1, size=12)  # C(24, 12) > 9999: Monte Carlo
    a, b = stats.permutation(x, y, seed=1), stats.permutation(x, y, seed=1)
    assert a.p == b.p
    assert a.p == pytest.approx(sps.ttest_ind(x, y).pvalue, abs=0.05)


# ---------------------------------------------------------------- Holm

def test_holm_hand_worked() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 × 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 → running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # capped at 1; NaN outside the family (m = 3)
    np.testing.assert_allclose(stats.holm([0.5, np.nan, 0.01, 0.6]), [1.0, np.nan, 0.03, 1.0])
    np.testing.assert_allclose(stats.holm([0.02]), [0.02])
    # ties keep the step-down order: 0.01, 0.01 × 2, 1 → 0.02, 0.02
    np.testing.assert_allclose(stats.holm([0.01, 0.01]), [0.02, 0.02])
    # each row its own family
    np.testing.assert_allclose(stats.holm([[0.01, 0.04, 0.03, 0.005], [0.5, np.nan, 0.01, 0.6]]),
                               [[0.03, 0.06, 0.06, 0.02], [1.0, np.nan, 0.03, 1.0]])
    np.testing.assert_allclose(stats.holm(np.array([[0.01, 0.5], [0.04, np.nan]]), axis=0),
                               [[0.02, 0.5], [0.04, np.nan]])


def test_holm_matches_statsmodels() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(5)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=int(rng.integers(1, 40))) ** 2
        expected = multitest.multipletests(p, method="holm")[1]
        np.testing.assert_allclose(stats.holm(p), expected, rtol=1e-12)


# ---------------------------------------------------------------- equivalence

def test_tost_hand_computed() -> None:
    r = stats.welch(X, Y)
    margin = 8.0
    p_low = sps.t.sf((r.diff + margin) / r.se, r.df)
    p_high = sps.t.cdf((r.diff - margin) / r.se, r.df)
    assert stats.tost(X, Y, margin).p == pytest.approx(max(p_low, p_high))
    # a wider margin shows equivalence more easily; margin 0 never
    assert stats.tost(X, Y, 20.0).p < stats.tost(X, Y, 8.0).p
    assert stats.tost(X, Y, 0.0).p > 0.5
    # no spread on either side: inside the margin is shown, outside is not
    tied = stats.tost([[4, 4, 4], [4, 4, 4], [1, 1, np.nan]], [[4, 4, 4], [3, 3, 3], [1, np.nan, np.nan]],
                      [0.1, 0.5, 1.0])
    np.testing.assert_array_equal(tied.p[:2], [0.0, 1.0])
    assert np.isnan(tied.p[2])  # one value: nothing shown
    with pytest.raises(ValueError):
        stats.tost(X, Y, -1.0)


def test_tost_matches_statsmodels() -> None:
    weightstats = pytest.importorskip("statsmodels.stats.weightstats")
    p, _, _ = weightstats.ttost_ind(np.array(X), np.array(Y), -8.0, 8.0, usevar="unequal")
    assert stats.tost(X, Y, 8.0).p == pytest.approx(p, rel=1e-9)


# ---------------------------------------------------------------- model comparisons

def test_probability_of_improvement() -> None:
    # pairs of [1, 2, 3] × [2, 3, 4]: one win (3 > 2), two ties (2 = 2, 3 = 3) of 9 → (1 + ½·2) / 9
    assert stats.probability_of_improvement([1, 2, 3], [2, 3, 4]) == pytest.approx(2 / 9)
    assert stats.probability_of_improvement([1, 2, 3], [2, 3, 4], higher_is_better=False) == pytest.approx(7 / 9)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=7), rng.normal(size=5)
    u = sps.mannwhitneyu(x, y).statistic  # U counts x > y (ties ½)
    assert stats.probability_of_improvement(x, y) == pytest.approx(u / 35)
    assert math.isnan(stats.probability_of_improvement([], [1.0]))


def test_probability_of_improvement_interval() -> None:
    low, high = stats.probability_of_improvement_ci([1, 2, 3], [2, 3, 4], seed=4)
    assert (low, high) == stats.probability_of_improvement_ci([1, 2, 3], [2, 3, 4], seed=4)
    assert 0 <= low <= 2 / 9 <= high <= 1
    assert stats.probability_of_improvement_ci([5, 6, 7], [1, 2, 3]) == (1.0, 1.0)  # every resample wins
    assert stats.probability_of_improvement_ci([4, 4, 4], [4, 4, 4]) == (0.5, 0.5)
    # the bootstrap interval covers the truth about 95 % of the time (Φ(1/√2) for N(1, 1) vs N(0, 1))
    rng = np.random.default_rng(2)
    truth = sps.norm.cdf(1 / math.sqrt(2))
    covered = 0
    for i in range(100):
        low, high = stats.probability_of_improvement_ci(rng.normal(1, 1, 30), rng.normal(0, 1, 30), n_boot=500,
                                                        seed=i)
        covered += low <= truth <= high
    assert covered >= 85


def test_rank_first_probability() -> None:
    p = stats.rank_first_probability([[1, 2, 3], [10, 11, 12], [0, 0, 0]])
    np.testing.assert_allclose(p, [0, 1, 0])
    p = stats.rank_first_probability([[10, 11, 12], [1, 2, 3]], higher_is_better=False)
    np.testing.assert_allclose(p, [0, 1])
    # ties share first place: the probabilities still sum to 1
    p = stats.rank_first_probability([[4, 4, 4], [4, 4, 4], [1, 2, 3]])
    np.testing.assert_allclose(p, [0.5, 0.5, 0.0])
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=5), rng.normal(size=5)
    p = stats.rank_first_probability([a, b], seed=7)
    assert p.sum() == pytest.approx(1)
    np.testing.assert_array_equal(p, stats.rank_first_probability([a, b], seed=7))
    # by hand: P(mean of a resample of [0, 1] beats 0.6) with 2 seeds = P(both 1) + P(mixed: 0.5 < 0.6 → no) = ¼
    p = stats.rank_first_probability([[0, 1], [0.6, 0.6]], n_boot=20000)
    assert p[0] == pytest.approx(0.25, abs=0.015)


def test_best() -> None:
    names = ["a", "b", "c"]
    p = np.array([[np.nan, 0.01, 0.001], [0.01, np.nan, 0.5], [0.001, 0.5, np.nan]])
    assert stats.best(names, [1.0, 2.0, 3.0], p, higher_is_better=False) == stats.Best("a", ("a",), True)
    # the runner-up is not significantly worse: tied leaders
    p2 = p.copy()
    p2[0, 1] = p2[1, 0] = 0.2
    assert stats.best(names, [1.0, 2.0, 3.0], p2, higher_is_better=False) == stats.Best("a", ("a", "b"), False)
    # higher is better: c tops, b is not significantly worse, a is
    assert stats.best(names, [1.0, 2.0, 3.0], p, higher_is_better=True) == stats.Best("c", ("c", "b"), False)
    # no p-value (one seed): never significantly worse
    assert stats.best(["a", "b"], [1.0, 2.0], np.full((2, 2), np.nan), False).leaders == ("a", "b")
    assert stats.best(["a"], [1.0], np.full((1, 1), np.nan)).significant is False


# ---------------------------------------------------------------- luck: variance components and power

def test_variance_components_hand_worked() -> None:
    # seed means 2, 5, 8, grand mean 5: MSB = 2·(9 + 0 + 9)/2 = 18; MSW = (1+1)·3 / 3 = 2; n0 = 2
    table = pd.DataFrame([[1.0, 3.0], [4.0, 6.0], [7.0, 9.0]])
    split = stats.variance_components(table)
    assert (split.ms_between, split.ms_within, split.n0) == pytest.approx((18, 2, 2))
    assert (split.training, split.sampling) == pytest.approx((8, 2))
    assert split.training_share == pytest.approx(0.8)
    # the same as a Series indexed by (training seed, sampling seed)
    series = table.stack()
    assert stats.variance_components(series) == split
    # equal seed means: the between part is negative, truncated at 0
    flat = stats.variance_components(pd.DataFrame([[1.0, 3.0], [3.0, 1.0]]))
    assert flat.training == 0.0 and flat.sampling == pytest.approx(2.0)


def test_variance_components_unbalanced_hand_worked() -> None:
    # seed 0: 1, 2, 3 (mean 2); seed 1: 6, 8 (mean 7); N = 5, grand mean 4
    table = pd.DataFrame([[1.0, 2.0, 3.0], [6.0, 8.0, np.nan]])
    split = stats.variance_components(table)
    ms_between = 3 * 4 + 2 * 9  # / (k − 1) = 1
    ms_within = (1 + 0 + 1 + 1 + 1) / 3
    n0 = 5 - (9 + 4) / 5
    assert (split.ms_between, split.ms_within, split.n0) == pytest.approx((ms_between, ms_within, n0))
    assert split.training == pytest.approx((ms_between - ms_within) / n0)
    assert (split.n_training, split.n_values) == (2, 5)


def test_variance_components_recover_known_parts_by_simulation() -> None:
    rng = np.random.default_rng(11)
    k, r, var_train, var_sample = 400, 4, 4.0, 1.0
    values = 10 + rng.normal(0, math.sqrt(var_train), (k, 1)) + rng.normal(0, math.sqrt(var_sample), (k, r))
    split = stats.variance_components(pd.DataFrame(values))
    # standard errors: sampling ≈ √(2/(k(r−1)))·1 ≈ 0.04; training ≈ √(2/k)·(4 + 1/4) ≈ 0.3
    assert split.sampling == pytest.approx(var_sample, abs=0.15)
    assert split.training == pytest.approx(var_train, abs=1.0)
    assert split.training_share == pytest.approx(0.8, abs=0.05)


def test_variance_components_bad_input() -> None:
    with pytest.raises(UsageError, match="cannot split"):
        stats.variance_components(pd.DataFrame([[1.0, 2.0]]))
    with pytest.raises(UsageError, match="cannot split"):
        stats.variance_components(pd.DataFrame([[1.0], [2.0]]))  # no sampling repeat
    with pytest.raises(UsageError, match="infinite"):
        stats.variance_components(pd.DataFrame([[1.0, np.inf], [2.0, 3.0]]))
    with pytest.raises(UsageError, match="two levels"):
        stats.variance_components(pd.Series([1.0, 2.0]))


def test_power_matches_simulated_student_t() -> None:
    rng = np.random.default_rng(8)
    for n, diff, alpha in ((3, 3.0, 0.05), (5, 2.0, 0.05), (10, 2.0, 0.05 / 80)):
        a = rng.normal(0, 1, (20000, n))
        b = rng.normal(diff, 1, (20000, n))
        measured = (sps.ttest_ind(a, b, axis=1).pvalue <= alpha).mean()
        assert stats.power_two_sample(diff, 1.0, n, alpha) == pytest.approx(measured, abs=0.015), (n, diff)


def test_min_detectable_difference_and_seeds_needed() -> None:
    for n, alpha in ((3, 0.05), (5, 0.05), (10, 0.05 / 100)):
        mdd = stats.min_detectable_difference(2.0, n, alpha)
        assert stats.power_two_sample(mdd, 2.0, n, alpha) == pytest.approx(0.8, abs=1e-6)
        nu = 2 * (n - 1)
        approx = (sps.t.ppf(1 - alpha / 2, nu) + sps.t.ppf(0.8, nu)) * 2.0 * math.sqrt(2 / n)
        assert mdd == pytest.approx(approx, rel=0.1)  # the t-approximation
    # the classic: 80 % power for one sd at α = 0.05 needs 17 per group (normal approximation: 16)
    assert stats.seeds_needed(1.0, 1.0) == 17
    n = stats.seeds_needed(0.5, 1.0)
    assert stats.power_two_sample(0.5, 1.0, n) >= 0.8 > stats.power_two_sample(0.5, 1.0, n - 1)
    # scales with sd: the difference in units of sd is what counts
    assert stats.min_detectable_difference(3.0, 5) == pytest.approx(3 * stats.min_detectable_difference(1.0, 5))
    with pytest.raises(ValueError):
        stats.seeds_needed(0.0, 1.0)
