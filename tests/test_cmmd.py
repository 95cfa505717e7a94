"""CMMD (Jayasumana et al., CVPR 2024) against its formula, google-research's estimator, and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from mgbench.errors import UsageError
from mgbench.metrics.cmmd import SCALE, SIGMA, cmmd, mmd2_rbf


def unit_rows(n: int, d: int, shift: float, seed: int) -> np.ndarray:
    """Unit vectors like CLIP embeddings: normalised Gaussians around a shifted mean."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) + shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def direct_cmmd(x: np.ndarray, y: np.ndarray, sigma: float = 10.0) -> float:
    """1000 · (mean k_xx + mean k_yy − 2 mean k_xy) with k = exp(−‖a − b‖²/(2σ²)) from explicit
    differences, over all pairs (the biased V-statistic, Gretton et al. 2012 Eq. 5)."""

    def kmean(a, b):
        sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-sq / (2 * sigma**2)).mean()

    return 1000 * (kmean(x, x) + kmean(y, y) - 2 * kmean(x, y))


def google_research_mmd(x: np.ndarray, y: np.ndarray, dtype=np.float64) -> float:
    """google-research cmmd/distance.py ``mmd``, line by line in NumPy (their code is JAX, whose
    default is float32: pass dtype=np.float32 for that)."""
    x, y = x.astype(dtype), y.astype(dtype)
    x_sqnorms = np.diag(np.matmul(x, x.T))
    y_sqnorms = np.diag(np.matmul(y, y.T))
    gamma = dtype(1 / (2 * 10**2))
    k_xx = np.mean(np.exp(-gamma * (-2 * np.matmul(x, x.T) + x_sqnorms[:, None] + x_sqnorms[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * np.matmul(x, y.T) + x_sqnorms[:, None] + y_sqnorms[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * np.matmul(y, y.T) + y_sqnorms[:, None] + y_sqnorms[None, :])))
    return float(1000 * (k_xx + k_yy - 2 * k_xy))


X, Y = unit_rows(60, 32, 0.0, 1), unit_rows(45, 32, 0.3, 2)


def test_constants_are_the_papers():
    assert SIGMA == 10.0 and SCALE == 1000.0


def test_identical_sets_give_exactly_zero():
    assert cmmd(X, X) == 0.0
    assert cmmd(X, X, block=7) == 0.0


def test_against_the_direct_formula_and_google_researchs_estimator():
    ours = cmmd(X, Y)
    assert ours == pytest.approx(direct_cmmd(X, Y), rel=1e-9)
    assert ours == pytest.approx(google_research_mmd(X, Y), rel=1e-9)
    # their float32 (JAX's default) loses digits to the three means near 1, as the module says
    assert ours == pytest.approx(google_research_mmd(X, Y, np.float32), abs=2e-3)
    assert ours > 0.1  # shifted sets: far from the noise level


def test_closed_forms():
    a, b = X[:1], X[1:2]
    k = np.exp(-((a - b) ** 2).sum() / (2 * SIGMA**2))
    # one point each: 2 − 2k
    assert cmmd(a, b) == pytest.approx(1000 * (2 - 2 * k), rel=1e-9)
    # {a} against {a, b}: 1 + (2 + 2k)/4 − 2(1 + k)/2 = (1 − k)/2
    assert cmmd(a, X[:2]) == pytest.approx(1000 * (1 - k) / 2, rel=1e-9)
    # far apart points: the kernel vanishes, MMD² = 1/n + 1/m
    far = np.stack([np.full(4, 1e3 * i) for i in range(5)])
    assert mmd2_rbf(far[:2], far[2:]) == pytest.approx(1 / 2 + 1 / 3, rel=1e-12)


def test_symmetric_non_negative_and_block_independent():
    assert cmmd(X, Y) == pytest.approx(cmmd(Y, X), rel=1e-12)
    for seed in range(5):  # two samples of one distribution: biased MMD² is a squared norm, ≥ 0
        a, b = unit_rows(20, 8, 0.0, 10 + seed), unit_rows(30, 8, 0.0, 20 + seed)
        assert cmmd(a, b) >= 0
    assert cmmd(X, Y, block=5) == pytest.approx(cmmd(X, Y), rel=1e-12)


def test_other_bandwidth_and_bad_input():
    assert mmd2_rbf(X, Y, sigma=0.5) == pytest.approx(direct_cmmd(X, Y, sigma=0.5) / 1000, rel=1e-9)
    with pytest.raises(UsageError, match="dimensions differ"):
        cmmd(X, Y[:, :5])
    with pytest.raises(UsageError, match="N×d matrix"):
        cmmd(X[0], Y)
    with pytest.raises(UsageError, match="positive"):
        mmd2_rbf(X, Y, sigma=0)
