"""FID, FID∞, KID, IS, precision/recall and density/coverage against mathematics and against
independent implementations (SciPy's sqrtm, torch-fidelity, direct formulas written here).

IS and KID are torch-fidelity's own functions (the metric units call them): their known answers
are checked here as mgbench calls them."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from mgbench.errors import UsageError
from mgbench.metrics.frechet import feature_statistics, fid_infinity, frechet_distance
from mgbench.metrics.knn import knn_radii, prdc


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian(n: int, d: int, seed: int, mean: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, d, generator=gen(seed), dtype=torch.float64) * scale + mean


def fid_from_features(x: torch.Tensor, y: torch.Tensor) -> float:
    return frechet_distance(*feature_statistics(x), *feature_statistics(y))


def inception_score(logits: torch.Tensor, splits: int = 10) -> dict[str, float]:
    """torch-fidelity's IS on logits, contiguous splits (the unit shuffles first: tested end to end)."""
    out = isc_features_to_metric(torch.as_tensor(logits), splits=splits, shuffle=False)
    return {"is_mean": out["inception_score_mean"], "is_std": out["inception_score_std"]}


def kid(*, real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> dict[str, float]:
    """torch-fidelity's KID as the unit calls it (subset size cut to the smaller set)."""
    size = min(subset_size, len(real), len(fake))
    out = kid_features_to_metric(fake, real, kid_subsets=subsets, kid_subset_size=size,
                                 rng_seed=seed, verbose=False)
    return {"kid_mean": out["kernel_inception_distance_mean"], "kid_std": out["kernel_inception_distance_std"]}


def precision_recall(*, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    out = prdc(real=real, fake=fake, k_pr=3, k_dc=5)
    return {"precision": out["precision"], "recall": out["recall"]}


def density_coverage(*, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    out = prdc(real=real, fake=fake, k_pr=3, k_dc=5)
    return {"density": out["density"], "coverage": out["coverage"]}


def random_spd(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((d, 2 * d))
    return a @ a.T / (2 * d)


# ---------------------------------------------------------------- FID


def test_feature_statistics_match_numpy() -> None:
    x = gaussian(300, 7, 0, mean=3.0).float()  # float32 in, float64 out
    mu, sigma = feature_statistics(x)
    assert mu.dtype == sigma.dtype == np.float64
    ref = x.double().numpy()
    np.testing.assert_allclose(mu, ref.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(ref, rowvar=False), rtol=1e-10)
    mu_np, _ = feature_statistics(ref)  # NumPy input too
    np.testing.assert_allclose(mu_np, mu, rtol=1e-12)


def test_fid_of_a_set_with_itself_is_zero() -> None:
    x = gaussian(500, 64, 1)
    mu, sigma = feature_statistics(x)
    assert abs(fid_from_features(x, x)) < 1e-9 * np.trace(sigma)


def test_fid_with_equal_covariances_is_the_squared_mean_distance() -> None:
    d = 32
    sigma = random_spd(d, 2)
    mu1, mu2 = np.random.default_rng(3).standard_normal((2, d))
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-8)


@pytest.mark.parametrize("s1,s2", [(1.0, 1.0), (1.0, 2.0), (0.5, 3.0)])
def test_fid_isotropic_gaussians_closed_form(s1: float, s2: float) -> None:
    d = 50
    mu1, mu2 = np.random.default_rng(4).standard_normal((2, d))
    fid = frechet_distance(mu1, s1**2 * np.eye(d), mu2, s2**2 * np.eye(d))
    assert fid == pytest.approx(np.sum((mu1 - mu2) ** 2) + d * (s1 - s2) ** 2, rel=1e-10)


def test_fid_rotated_diagonal_covariances_closed_form() -> None:
    # Σ₁ = Q diag(a) Qᵀ, Σ₂ = Q diag(b) Qᵀ commute, so tr (Σ₁Σ₂)^½ = Σ √(aᵢbᵢ) and
    # FID = ‖Δμ‖² + Σ (√aᵢ − √bᵢ)²; the rotation makes both matrices dense.
    d = 40
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a, b = rng.uniform(0.1, 4.0, (2, d))
    mu1, mu2 = rng.standard_normal((2, d))
    fid = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fid == pytest.approx(expected, rel=1e-8)


def test_fid_singular_covariance_closed_form() -> None:
    # Exactly singular Σ₁ (zeros on the diagonal): no Cholesky factor, the eigh route is used.
    a = np.array([0.0, 0.0, 1.0, 4.0, 9.0])
    b = np.array([1.0, 4.0, 0.0, 1.0, 16.0])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(5), np.diag(a), np.zeros(5), np.diag(b)) == pytest.approx(expected)
    assert frechet_distance(np.zeros(5), np.diag(b), np.zeros(5), np.diag(a)) == pytest.approx(expected)


def test_fid_matches_scipy_sqrtm_and_torch_fidelity() -> None:
    x = gaussian(500, 64, 6)
    y = gaussian(500, 64, 7, mean=0.3, scale=1.4) @ torch.from_numpy(random_spd(64, 8))
    (mu1, s1), (mu2, s2) = feature_statistics(x), feature_statistics(y)
    # pytorch-fid's classic formula: trace of the matrix square root by Schur decomposition.
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    fid = frechet_distance(mu1, s1, mu2, s2)
    assert fid == pytest.approx(reference, rel=1e-6)
    tf = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)
    assert fid == pytest.approx(tf["frechet_inception_distance"], rel=1e-6)


def test_fid_is_symmetric() -> None:
    x, y = gaussian(400, 32, 9), gaussian(300, 32, 10, mean=0.5, scale=0.7)
    assert fid_from_features(x, y) == pytest.approx(fid_from_features(y, x), rel=1e-9)


def test_fid_with_fewer_samples_than_dimensions() -> None:
    # Rank-deficient covariances: Σ₁Σ₂ has many (numerically) zero eigenvalues; the result
    # must still agree with the general eigenvalue route of torch-fidelity.
    x, y = gaussian(40, 64, 11), gaussian(50, 64, 12, mean=0.2)
    (mu1, s1), (mu2, s2) = feature_statistics(x), feature_statistics(y)
    tf = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(tf["frechet_inception_distance"], rel=1e-6)


def test_fid_between_two_samples_of_the_same_gaussian_is_d_d_plus_5_over_2n() -> None:
    # E[FID] ≈ d(d+5)/(2N) for two N-samples of N(0, I_d): 2d/N from the means,
    # d(d+1)/(2N) from the covariances (docs/ARCHITECTURE.md). Mean over 10 pairs: ±3 % noise.
    d, n = 16, 2000
    values = [n * fid_from_features(gaussian(n, d, 2 * s), gaussian(n, d, 2 * s + 1)) for s in range(10)]
    assert np.mean(values) == pytest.approx(d * (d + 5) / 2, rel=0.15)


def test_fid_infinity_recovers_intercept_and_slope() -> None:
    # Fake = N(0, I_16) against the exact population statistics (0, I): FID∞ = 0 and
    # FID_N ≈ (d + d(d+1)/4)/N = d(d+5)/(4N), i.e. slope d(d+5)/4 = 84.
    d = 16
    results = [fid_infinity(gaussian(5000, d, 100 + s), (np.zeros(d), np.eye(d)), generator=gen(s)) for s in range(8)]
    assert results[0]["sizes"] == [1000, 2000, 3000, 4000, 5000]
    for r in results:
        assert abs(r["fid_inf"]) < 0.02  # FID at N=1000 is about 0.08
        assert r["fids"][0] > 0.04
    assert np.mean([r["slope"] for r in results]) == pytest.approx(d * (d + 5) / 4, rel=0.25)


def test_fid_infinity_full_size_point_is_the_plain_fid() -> None:
    x = gaussian(600, 8, 13, mean=0.5)
    real = feature_statistics(gaussian(2000, 8, 14))
    r = fid_infinity(x, real, sizes=[200, 600], generator=gen(0))
    assert r["fids"][1] == pytest.approx(frechet_distance(*real, *feature_statistics(x)), rel=1e-9)
    with pytest.raises(UsageError):
        fid_infinity(x, real, sizes=[600, 600], generator=gen(0))


# ---------------------------------------------------------------- IS


def test_inception_score_uniform_is_one_and_balanced_one_hot_is_k() -> None:
    assert inception_score(torch.zeros(100, 10))["is_mean"] == pytest.approx(1.0, abs=1e-12)
    k = 7
    labels = torch.arange(700) % k  # every split of 70 holds each class 10 times
    out = inception_score(50.0 * torch.nn.functional.one_hot(labels, k), splits=10)
    assert out["is_mean"] == pytest.approx(k, rel=1e-9)
    assert out["is_std"] == pytest.approx(0.0, abs=1e-9)


def test_inception_score_hand_computed() -> None:
    # p₁ = (1, 0), p₂ = (½, ½): marginal (¾, ¼); KL₁ = log 4/3, KL₂ = ½ log ⅔ + ½ log 2.
    logits = torch.tensor([[0.0, -1000.0], [0.0, 0.0]], dtype=torch.float64)
    kl = (math.log(4 / 3) + 0.5 * math.log(2 / 3) + 0.5 * math.log(2)) / 2
    assert inception_score(logits, splits=1)["is_mean"] == pytest.approx(math.exp(kl), rel=1e-12)


def test_inception_score_matches_the_formula_written_out() -> None:
    logits = gaussian(1000, 10, 15, scale=3.0)
    ours = inception_score(logits, splits=10)
    log_p = logits.log_softmax(dim=1)
    scores = []
    for part in log_p.split(100):  # 10 contiguous splits of 100
        p = part.exp()
        scores.append(float((p * (part - p.mean(0).log())).sum(1).mean().exp()))
    assert ours["is_mean"] == pytest.approx(np.mean(scores), rel=1e-10)
    assert ours["is_std"] == pytest.approx(np.std(scores), rel=1e-8)


# ---------------------------------------------------------------- KID


def mmd2_unbiased_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Bińkowski et al. 2018, eq. (KID) written out with explicit sums over pairs."""
    m, d = x.shape

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / m**2


def test_kid_matches_direct_formula() -> None:
    x, y = gaussian(12, 5, 16), gaussian(12, 5, 17, mean=0.4)
    # One subset of all samples: KID is permutation invariant, so no sampling is involved.
    ours = kid(real=x, fake=y, subsets=1, subset_size=12)["kid_mean"]
    assert ours == pytest.approx(mmd2_unbiased_direct(x.numpy(), y.numpy()), rel=1e-10)


def test_kid_is_near_zero_for_equal_distributions_and_large_for_shifted() -> None:
    real = gaussian(1000, 16, 18)
    same = kid(real=real, fake=gaussian(1000, 16, 19), subsets=50, subset_size=200, seed=1)
    shifted = kid(real=real, fake=gaussian(1000, 16, 20, mean=0.5), subsets=50, subset_size=200, seed=1)
    assert shifted["kid_mean"] > 20 * shifted["kid_std"] / math.sqrt(50)
    assert abs(same["kid_mean"]) < 0.05 * shifted["kid_mean"]
    assert abs(same["kid_mean"]) < same["kid_std"]  # unbiased: subset values scatter around 0


def test_kid_cuts_subset_size_to_the_smaller_set_and_is_seeded() -> None:
    x, y = gaussian(30, 4, 21), gaussian(50, 4, 22)
    a = kid(real=x, fake=y, subsets=5, seed=3)
    b = kid(real=x, fake=y, subsets=5, seed=3)
    assert a == b


# ---------------------------------------------------------------- precision / recall / density / coverage


def test_knn_radius_excludes_the_point_itself() -> None:
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    assert knn_radii(x, 1).tolist() == [1.0, 1.0, 2.0, 3.0]
    assert knn_radii(x, (1, 2)).tolist() == [[1.0, 3.0], [1.0, 2.0], [2.0, 3.0], [3.0, 5.0]]


def test_identical_sets_give_one_everywhere() -> None:
    x = gaussian(300, 16, 23)
    # Each point's own ball holds itself and its k−1 nearer neighbours: density exactly 1.
    assert prdc(real=x, fake=x.clone()) == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_disjoint_far_sets_give_zero_everywhere() -> None:
    out = prdc(real=gaussian(200, 16, 24), fake=gaussian(200, 16, 25, mean=100.0))
    assert out == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_collapsed_generator_has_high_precision_and_no_recall_and_swapping_swaps() -> None:
    real = gaussian(300, 16, 26)
    fake = real[0] + 1e-3 * gaussian(200, 16, 27)  # every fake sample next to one real point
    out = precision_recall(real=real, fake=fake)
    assert out["precision"] == 1.0
    assert out["recall"] <= 1 / 300  # at most the one real point the fakes sit on
    swapped = precision_recall(real=fake, fake=real)
    assert swapped["precision"] == out["recall"] and swapped["recall"] == out["precision"]
    dc = density_coverage(real=real, fake=fake)
    assert dc["coverage"] <= 1 / 300


def test_precision_recall_match_torch_fidelity_with_its_argument_order() -> None:
    real = gaussian(300, 16, 28).float()
    fake = gaussian(250, 16, 29, mean=0.3, scale=1.3).float()
    ours = precision_recall(real=real, fake=fake)
    # torch-fidelity: features_1 = generated (input1), features_2 = real (input2).
    theirs = prc_features_to_metric(fake, real, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False)
    assert ours["precision"] == pytest.approx(theirs["precision"], abs=1e-7)
    assert ours["recall"] == pytest.approx(theirs["recall"], abs=1e-7)
    assert ours["precision"] != pytest.approx(ours["recall"], abs=0.05)  # the order matters here


@pytest.mark.parametrize(
    "k,expected",
    [
        (1, {"precision": 0.5, "recall": 0.5, "density": 0.75, "coverage": 0.5}),
        (2, {"precision": 0.5, "recall": 1.0, "density": 0.375, "coverage": 0.5}),
    ],
)
def test_prdc_on_hand_computed_1d_points(k: int, expected: dict[str, float]) -> None:
    # real 0, 1, 2, 3; fake 2.5, 3.5, 10, 11 (worked through by hand, see the comments).
    # k=1: real radii 1,1,1,1; fake radii 1,1,1,1. Fakes 2.5, 3.5 lie in real balls (P = ½),
    #      real 2, 3 in fake balls (R = ½); 2.5 is in the (strict) balls of 2 and 3, 3.5 in
    #      that of 3: density 3/(1·4); real 2, 3 hold a fake: coverage ½.
    # k=2: real radii 2,1,1,2; fake radii 7.5,6.5,6.5,7.5, wide enough for every real (R = 1);
    #      2.5 is in the balls of 2 and 3, 3.5 in that of 3: density 3/(2·4); coverage ½.
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[2.5], [3.5], [10.0], [11.0]])
    assert prdc(real=real, fake=fake, k_pr=k, k_dc=k) == pytest.approx(expected)


def prdc_reference(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    """Full-matrix NumPy version, following the papers' reference code."""

    def radii(x: np.ndarray, k: int) -> np.ndarray:
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=-1)  # real × fake
    r_pr, r_dc, f_pr = radii(real, k_pr), radii(real, k_dc), radii(fake, k_pr)
    return {
        "precision": float((d_rf <= r_pr[:, None]).any(axis=0).mean()),
        "recall": float((d_rf <= f_pr[None, :]).any(axis=1).mean()),
        "density": float((d_rf < r_dc[:, None]).sum() / (k_dc * len(fake))),
        "coverage": float((d_rf.min(axis=1) < r_dc).mean()),
    }


def test_chunked_prdc_equals_full_matrix_reference() -> None:
    real, fake = gaussian(200, 8, 30), gaussian(150, 8, 31, mean=0.2, scale=1.2)
    expected = prdc_reference(real.numpy(), fake.numpy(), 3, 5)
    for block_size in (7, 64, None):
        assert prdc(real=real, fake=fake, block_size=block_size) == pytest.approx(expected, abs=1e-12)


def test_arguments_are_keyword_only() -> None:
    x = gaussian(20, 4, 32)
    with pytest.raises(TypeError):
        prdc(x, x)  # type: ignore[misc]
