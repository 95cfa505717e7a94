"""Memorization and novelty scores: each piece against a direct formula (brute-force nearest
neighbours, dgm-eval's authenticity and Z_U written out on full matrices, SciPy's own Mann-Whitney
z), and the two yardsticks on the shapes data: a "copier" (samples = training images, a few fresh
ones mixed in) is flagged on every score; a model drawing NEW images from the same process
(``shapes.generate`` with another seed) is not, and scores like the held-out real images."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from mgbench.data import load_dataset, shapes
from mgbench.errors import UsageError
from mgbench.metrics import memorization
from mgbench.metrics.memorization import (
    _z_u,
    authenticity,
    closest_pairs,
    copy_rate,
    ct_from_cells,
    ct_score,
    fit_ct_cells,
    memorization_scores,
    nearest_train_features,
    nearest_train_pixels,
)

N_TRAIN, N_REF, N_SAMPLES, N_FRESH_IN_COPIER = 4000, 1000, 1000, 50


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def features(images: torch.Tensor) -> torch.Tensor:
    """A fixed feature map for the tests (128-d, so C_T's PCA to 64 runs): 4×4-pooled pixels through
    a seeded random projection and tanh. No trained extractor is needed for the mathematics."""
    w = torch.randn(192, 128, generator=gen(1), dtype=torch.float64) / 192**0.5
    return torch.tanh((F.avg_pool2d(images.double() / 255, 4).flatten(1) - 0.5) @ w * 3)


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    train = load_dataset("shapes", "train", resolution=32, train_size=N_TRAIN, seed=0).images
    reference = load_dataset("shapes", "reference", resolution=32, reference_size=N_REF, seed=0).images
    fresh = shapes.generate(torch.arange(N_SAMPLES), 32, seed=1)[0]  # same process, another seed
    copied = train[torch.randperm(N_TRAIN, generator=gen(0))[: N_SAMPLES - N_FRESH_IN_COPIER]]
    copier = torch.cat([copied, fresh[:N_FRESH_IN_COPIER]])
    return {"train": train, "reference": reference, "fresh": fresh, "copier": copier}


@pytest.fixture(scope="module")
def scores(data: dict[str, torch.Tensor]) -> dict[str, memorization.MemorizationResult]:
    feats = {k: features(v) for k, v in data.items()}
    held_pixel = nearest_train_pixels(data["reference"], data["train"])
    held_feature = nearest_train_features(feats["reference"], feats["train"])
    out = {}
    for model in ("copier", "fresh"):
        out[model] = memorization_scores(
            samples=data[model], train=data["train"], reference=data["reference"], sample_features=feats[model],
            train_features=feats["train"], reference_features=feats["reference"], generator=gen(0),
            heldout_pixel_nn=held_pixel, heldout_feature_nn=held_feature)
    out["heldout_authpct"] = authenticity(train=feats["train"], samples=feats["reference"])
    return out


# ---------------------------------------------------------------- the yardsticks


def test_copier_is_flagged_on_every_score(scores) -> None:
    s = scores["copier"].scores
    copied = 1 - N_FRESH_IN_COPIER / N_SAMPLES  # 0.95
    assert s["nn_pixel_ratio"] < 0.01 and s["nn_feature_ratio"] < 0.01  # median sample is a copy
    assert s["copy_rate_pixel"] >= copied and s["copy_rate_feature"] >= copied
    assert s["ct"] < -10  # strongly negative: closer to the training set than fresh data
    assert s["authpct"] < 0.2 * scores["heldout_authpct"]
    pairs = scores["copier"].pairs["pixel"]
    assert max(pairs["distance"]) < 1e-3  # the closest pairs are exact copies (float32 rounding only)


def test_fresh_draws_score_like_heldout_real_images(scores) -> None:
    s = scores["fresh"].scores
    assert 0.9 < s["nn_pixel_ratio"] < 1.1 and 0.9 < s["nn_feature_ratio"] < 1.1
    # the quantile's rate (1 %); the binomial std at N = 1000 is 0.3 points
    assert s["copy_rate_pixel"] <= 0.025 and s["copy_rate_feature"] <= 0.025
    assert abs(s["ct"]) < 3  # Z-scores: about N(0, 1) under the null
    assert abs(s["authpct"] - scores["heldout_authpct"]) < 6  # points; binomial std of each ≈ 1.6
    assert min(scores["fresh"].pairs["pixel"]["distance"]) > 0.01  # no copy among them


def test_underfitting_is_positive_c_t(data) -> None:
    """Samples farther from the training set than fresh data (noisy fresh images): C_T ≫ 0."""
    noisy = (data["fresh"].float() + 40 * torch.randn(data["fresh"].shape, generator=gen(2))).clamp(0, 255)
    ct = ct_score(train=features(data["train"]), test=features(data["reference"]),
                  samples=features(noisy.round().to(torch.uint8)), generator=gen(0))
    assert ct > 3  # a Z-score: far beyond the null's N(0, 1)


# ---------------------------------------------------------------- the pieces


def test_nearest_matches_brute_force_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memorization, "_QUERY_BLOCK", 7)
    monkeypatch.setattr(memorization, "_TRAIN_BLOCK", 11)
    q = torch.randn(40, 5, generator=gen(3), dtype=torch.float64)
    t = torch.randn(50, 5, generator=gen(4), dtype=torch.float64)
    t[33] = t[12]  # a duplicate: the lower index wins
    q[0] = t[12]
    nn = nearest_train_features(q, t)
    full = torch.cdist(q, t)
    torch.testing.assert_close(nn.distance, full.min(dim=1).values)
    assert torch.equal(nn.index, full.argmin(dim=1)) and nn.index[0] == 12
    images = torch.randint(0, 256, (30, 3, 4, 4), dtype=torch.uint8, generator=gen(5))
    train = torch.randint(0, 256, (25, 3, 4, 4), dtype=torch.uint8, generator=gen(6))
    train[20] = images[3]
    train[21] = (images[4].int() + 1).clamp(max=255).to(torch.uint8)  # one grey level up (unless at 255)
    pix = nearest_train_pixels(images, train)
    brute = torch.cdist(images.flatten(1).double(), train.flatten(1).double()) / (255 * 48**0.5)
    torch.testing.assert_close(pix.distance, brute.min(dim=1).values, rtol=1e-5, atol=1e-6)
    assert pix.index[3] == 20 and pix.distance[3] < 1e-6
    expected = float((train[21].double() - images[4].double()).square().mean().sqrt() / 255)
    assert pix.distance[4] == pytest.approx(expected, rel=1e-5)  # RMS in [0, 1] units


def test_copy_rate_known_answers() -> None:
    held = torch.arange(1, 1001, dtype=torch.float64)  # distances 1 … 1000
    rate, tau = copy_rate(held, held, 0.01)
    assert tau == pytest.approx(np.quantile(np.arange(1, 1001), 0.01))
    assert rate == pytest.approx(0.01)  # held-out images against themselves: the quantile
    assert copy_rate(torch.zeros(50), held)[0] == 1.0
    assert copy_rate(held + 1000, held)[0] == 0.0
    with pytest.raises(UsageError):
        copy_rate(held, held[:50], 0.01)  # the 1 % quantile of 50 rests on no image
    with pytest.raises(UsageError):
        copy_rate(held, held, 1.5)


def test_authenticity_matches_dgm_eval_formula() -> None:
    """dgm-eval's compute_authpct on full matrices: authentic iff d(j, NN_T(j)) < d(x, j), j = NN_T(x)."""
    t = torch.randn(300, 6, generator=gen(7), dtype=torch.float64)
    s = torch.randn(200, 6, generator=gen(8), dtype=torch.float64) * 1.2
    s[:40] = t[:40]  # copies: never authentic
    real_dists = torch.cdist(t, t)
    real_dists.fill_diagonal_(float("inf"))
    gen_dists = torch.cdist(t, s)
    d1, j = gen_dists.min(dim=0)
    expected = 100 * float((real_dists.min(dim=0).values[j] < d1).double().mean())
    assert authenticity(train=t, samples=s) == pytest.approx(expected)
    assert authenticity(train=t, samples=t[:40]) == 0.0


def test_z_u_is_scipys_mann_whitney_z_with_dgm_evals_continuity_term() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal(300) - 0.1, rng.standard_normal(500)
    res = scipy.stats.mannwhitneyu(a, b, alternative="less", method="asymptotic", use_continuity=False)
    z_scipy = scipy.stats.norm.ppf(res.pvalue)  # p = Φ(z), z = (U − mn/2)/σ without ties
    sigma = np.sqrt(300 * 500 * 801 / 12)
    assert _z_u(a, b) == pytest.approx(z_scipy + 0.5 / sigma, abs=1e-9)
    assert _z_u(a - 5, b) < -20 and _z_u(a + 5, b) > 20


def test_c_t_is_seeded_and_checks_its_input(data) -> None:
    ft, fr, fs = (features(data[k][:800]) for k in ("train", "reference", "fresh"))
    a = ct_score(train=ft, test=fr, samples=fs, generator=gen(11), restarts=2)
    assert a == ct_score(train=ft, test=fr, samples=fs, generator=gen(11), restarts=2)
    # d ≤ 64: no PCA, the same path otherwise
    assert np.isfinite(ct_score(train=ft[:, :32], test=fr[:, :32], samples=fs[:, :32], generator=gen(0), restarts=2))
    fit = fit_ct_cells(ft, generator=gen(11), restarts=2)  # cached cells: the same number
    assert ct_from_cells(fit, test=fr, samples=fs) == a
    with pytest.raises(UsageError, match="more than 20"):
        ct_from_cells(fit, test=fr, samples=fs[:20])
    with pytest.raises(UsageError):
        ct_score(train=ft, test=fr[:, :10], samples=fs, generator=gen(0))


def test_closest_pairs_and_bad_input(data) -> None:
    nn = memorization.Nearest(torch.tensor([0.3, 0.1, 0.2, 0.1], dtype=torch.float64), torch.tensor([5, 6, 7, 8]))
    assert closest_pairs(nn, 3) == {"sample_index": [1, 3, 2], "train_index": [6, 8, 7], "distance": [0.1, 0.1, 0.2]}
    x = data["train"][:10]
    with pytest.raises(UsageError):
        nearest_train_pixels(x.float(), x)
    with pytest.raises(UsageError):
        nearest_train_pixels(x[:, :1], x)
    with pytest.raises(UsageError):
        nearest_train_features(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(UsageError):
        nearest_train_features(torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3, 4))


def test_too_few_heldout_images_leave_the_copy_rates_out_not_the_run(data, caplog) -> None:
    few = data["reference"][:50]  # the 1 % quantile of 50 distances rests on no image
    feats = {k: features(v) for k, v in (("fresh", data["fresh"]), ("train", data["train"]), ("few", few))}
    result = memorization_scores(
        samples=data["fresh"], train=data["train"], reference=few, sample_features=feats["fresh"],
        train_features=feats["train"], reference_features=feats["few"], generator=gen(0))
    s = result.scores
    assert np.isnan(s["copy_rate_pixel"]) and np.isnan(s["copy_rate_feature"])
    assert np.isfinite([s["nn_pixel_ratio"], s["nn_feature_ratio"], s["ct"], s["authpct"]]).all()
    assert "at least 100 held-out images" in caplog.text


def test_too_few_samples_leave_c_t_out_not_the_run(data, caplog) -> None:
    few = data["fresh"][:20]  # no C_T cell can hold more than 20 of them
    feats = {k: features(v) for k, v in (("few", few), ("train", data["train"]), ("reference", data["reference"]))}
    s = memorization_scores(
        samples=few, train=data["train"], reference=data["reference"], sample_features=feats["few"],
        train_features=feats["train"], reference_features=feats["reference"], generator=gen(0)).scores
    assert np.isnan(s["ct"]) and np.isfinite([s["copy_rate_pixel"], s["nn_feature_ratio"], s["authpct"]]).all()
    assert "ct not computed" in caplog.text and "more than 20 samples" in caplog.text
