"""Memorization and novelty: how close a model's samples lie to the images it was trained on,
measured against the same closeness of held-out real images (the reference split).

A model that returns training images scores like real data on FID, precision/recall and every
other distribution metric; these scores tell it apart. All of them compare with the held-out
real images, which are fresh draws of the data distribution: a model that draws fresh images
scores like them.

* Nearest-training-image distances, in pixel space (RMS difference of [0, 1] pixels; 0 for a
  copy) and in feature space (Euclidean), for each sample and each held-out image.
  ``nn_<space>_ratio`` = median over samples / median over held-out images: ≈ 1 for fresh
  images, → 0 for copies, > 1 for samples far from everything real (direction: none, target 1).
* Copy rate (``copy_rate_<space>``): the share of samples closer to their nearest training
  image than the ``quantile`` (1 %) quantile of the held-out images' distances. Fresh draws fall
  there with probability ``quantile`` by construction, so that is the floor (lower is better,
  down to it). Why 1 %: small enough that copying shows at once (a model copying 5 % of the
  time scores ≈ 6 %, not 1 %), large enough that the threshold rests on 20 held-out images of the
  default 2,000 (0.1 % would rest on 2); at N = 2,000 samples a fresh model's rate has a
  sampling std of √(0.01·0.99/2000) ≈ 0.2 points.
* C_T (Meehan, Chaudhuri & Dasgupta, AISTATS 2020, "A Non-Parametric Test to Detect
  Data-Copying in Generative Models", §3-4), as dgm-eval (layer6ai-labs, ``metrics/ct.py``,
  taken from the authors' ``data-copying`` code) computes it: features reduced to 64
  principal components of the training set when d > 64; k-means with 3 cells fitted on the
  training features (10 restarts); in each cell π, a Mann-Whitney U test between the samples'
  and the held-out images' distances to their nearest training point of that cell, Z-scored as
  Z_U = (U − (mn/2 − ½)) / √(mn(m+n+1)/12); C_T = Σ_π P_n(π) Z_U(π) / Σ_π P_n(π) over the cells
  holding more than 20 samples (τ = 20/m), P_n(π) the share of held-out images in π.
  C_T ≪ 0: samples closer to the training set than fresh data (copying); ≈ 0: like fresh data;
  ≫ 0: farther (underfitting). Direction: none, target 0. Differences from dgm-eval, on purpose:
  exact PCA from the covariance's eigenvectors (sklearn's ``PCA`` picks a randomized solver at
  these sizes, unseeded) and SciPy's ``kmeans2`` (k-means++, a fixed number of Lloyd iterations,
  the restart with the lowest inertia) seeded from the generator passed in, in place of
  scikit-learn's ``KMeans``: no scikit-learn dependency for three cluster centres.
* Authenticity (``authpct``; Alaa, van Breugel, Saveliev & van der Schaar, ICML 2022, "How
  Faithful is your Synthetic Data?", §3.3), as dgm-eval's ``metrics/authpct.py`` (from
  marcojira/fls) computes it: a sample is authentic when its nearest training point j lies
  closer to j's own nearest training neighbour than to the sample, i.e. d(j, NN_T(j)) < d(x, j);
  ``authpct`` is the percentage of authentic samples. Higher is better (copies score 0), but
  read it against held-out real images' value (:func:`authenticity` on the reference
  features), not against 100: uniform noise is "authentic" too.

All distances are computed in blocks of 1,024 queries × 2,048 training rows (float32 for pixels,
the features' own dtype for features) and never held as a full matrix; uint8 images are
converted one block at a time. Memory beyond the inputs is a few blocks whatever N: 2,000 or
10,000 samples against 20,000 training images of 32×32×3 raised the peak RSS by 110-180 MB
(tests/benchmarks/bench_new_metrics.py; an upper bound, allocator caching included). A copy's
pixel distance comes out 0 (float32 rounding, clamped) or within ~1e-4 of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.cluster.vq
import scipy.stats
import torch

from mgbench.errors import UsageError
from mgbench.metrics.frechet import feature_statistics
from mgbench.metrics.knn import knn_radii

log = logging.getLogger(__name__)

QUANTILE = 0.01
CT_CELLS = 3  # dgm-eval: KMeans(n_clusters=3, n_init=10)
CT_RESTARTS = 10
CT_ITERATIONS = 300  # at most, per restart; each stops at convergence (as sklearn's max_iter=300)
CT_COMPONENTS = 64  # dgm-eval: PCA(n_components=64) when d > 64
CT_MIN_SAMPLES = 20  # dgm-eval: tau = 20 / m, a cell counts when it holds more than 20 samples
_QUERY_BLOCK = 1024
_TRAIN_BLOCK = 2048  # 1024 × 2048 float32 distances: 8 MiB; a float32 block of 32 px RGB training images: 24 MiB

Array = torch.Tensor | np.ndarray


class TooFewSamples(UsageError):
    """C_T counts no cell: none holds more than :data:`CT_MIN_SAMPLES` samples."""


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value
class Nearest:
    """Each query's nearest training row: its ``distance`` (float64, N) and ``index`` (int64, N)."""

    distance: torch.Tensor
    index: torch.Tensor


def _nearest(queries: torch.Tensor, train: torch.Tensor, as_float: Callable[[torch.Tensor], torch.Tensor]) -> Nearest:
    """Nearest row of ``train`` for each row of ``queries`` (both 2-D), Euclidean, in blocks of both.

    Per block pair, ‖q − t‖² = ‖q‖² + ‖t‖² − 2 q·t as one ``addmm`` (what ``torch.cdist`` does for
    large inputs, without its concatenated copies of both blocks), clamped at 0; the square root is
    taken of the minima only. Ties go to the lowest training index (``min`` returns the first; a
    later block must be strictly closer).
    """
    best = torch.empty(len(queries), dtype=torch.float64)
    index = torch.empty(len(queries), dtype=torch.int64)
    for q0 in range(0, len(queries), _QUERY_BLOCK):
        q = as_float(queries[q0 : q0 + _QUERY_BLOCK])
        q_sq = q.square().sum(dim=1, keepdim=True)
        b_dist = torch.full((len(q),), float("inf"), dtype=q.dtype)
        b_idx = torch.zeros(len(q), dtype=torch.int64)
        for t0 in range(0, len(train), _TRAIN_BLOCK):
            t = as_float(train[t0 : t0 + _TRAIN_BLOCK])
            d2 = torch.addmm(q_sq + t.square().sum(dim=1), q, t.T, alpha=-2.0)  # (block_q, block_t)
            d, i = d2.min(dim=1)
            closer = d < b_dist
            b_dist = torch.where(closer, d, b_dist)
            b_idx = torch.where(closer, i + t0, b_idx)
        best[q0 : q0 + len(q)] = b_dist.clamp(min=0).double().sqrt()
        index[q0 : q0 + len(q)] = b_idx
    return Nearest(best, index)


def _flat_images(images: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"{name} must be uint8 N×C×H×W images, got {got}")
    if len(images) == 0:
        raise UsageError(f"{name} is empty")
    return images.flatten(1)


def _as_features(x: Array, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2 or len(x) == 0 or not torch.is_floating_point(x):
        raise UsageError(f"{name} must be a non-empty float N×d feature matrix, got {x.dtype} {tuple(x.shape)}")
    return x.cpu()


def nearest_train_pixels(images: torch.Tensor, train: torch.Tensor) -> Nearest:
    """Each image's nearest training image in pixel space; distance = RMS difference of [0, 1] pixels."""
    q, t = _flat_images(images, "images"), _flat_images(train, "training images")
    if images.shape[1:] != train.shape[1:]:
        raise UsageError(f"image shapes differ: {tuple(images.shape[1:])} vs training {tuple(train.shape[1:])}",
                         "compare images of the same size and channels")
    scale = 1.0 / (255.0 * q.shape[1] ** 0.5)
    nn = _nearest(q, t, lambda block: block.to(torch.float32))
    return Nearest(nn.distance * scale, nn.index)


def nearest_train_features(features: Array, train_features: Array) -> Nearest:
    """Each feature row's nearest training feature row (Euclidean), in the features' dtype."""
    q, t = _as_features(features, "features"), _as_features(train_features, "training features")
    if q.shape[1] != t.shape[1]:
        raise UsageError(f"feature dimensions differ: {q.shape[1]} vs training {t.shape[1]}")
    dtype = torch.float64 if torch.float64 in (q.dtype, t.dtype) else torch.float32
    return _nearest(q, t, lambda block: block.to(dtype))


def copy_rate(sample_distance: Array, heldout_distance: Array, quantile: float = QUANTILE) -> tuple[float, float]:
    """(share of samples with NN distance < τ, τ) with τ the ``quantile`` of the held-out distances
    (NumPy's linear interpolation). Fresh draws of the data distribution score ≈ ``quantile``."""
    if not 0 < quantile < 1:
        raise UsageError(f"quantile must be in (0, 1), got {quantile}")
    s = np.asarray(torch.as_tensor(sample_distance), dtype=np.float64)
    h = np.asarray(torch.as_tensor(heldout_distance), dtype=np.float64)
    if s.size == 0 or h.size == 0:
        raise UsageError("copy rate needs samples and held-out images")
    if h.size * quantile < 1:
        raise UsageError(f"the {quantile:.2%} quantile of {h.size} held-out distances rests on no image",
                         f"use at least {int(np.ceil(1 / quantile))} held-out images or a larger quantile")
    threshold = float(np.quantile(h, quantile))
    return float(np.mean(s < threshold)), threshold


def authenticity(
    *, train: Array, samples: Array, train_radii: torch.Tensor | None = None, sample_nn: Nearest | None = None
) -> float:
    """Percentage of authentic samples (dgm-eval's ``compute_authpct``; Alaa et al. 2022).

    ``train_radii``: each training row's distance to its nearest other training row
    (:func:`mgbench.metrics.knn.knn_radii` with k = 1), which depends on the training set only: cache it.
    ``sample_nn``: the samples' :func:`nearest_train_features`, when already computed.
    """
    t, s = _as_features(train, "training features"), _as_features(samples, "sample features")
    if train_radii is None:
        train_radii = knn_radii(t, 1)
    if len(train_radii) != len(t):
        raise UsageError(f"{len(train_radii)} training radii for {len(t)} training rows")
    nn = nearest_train_features(s, t) if sample_nn is None else sample_nn
    authentic = train_radii.double()[nn.index] < nn.distance
    return 100.0 * float(authentic.double().mean())


def _numpy_rng(generator: torch.Generator) -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))


def _principal_components(train: torch.Tensor, components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, d × components basis) of the training features' top principal axes, by ``eigh``."""
    mu, sigma = feature_statistics(train)
    _, vectors = torch.linalg.eigh(torch.from_numpy(sigma))  # ascending eigenvalues
    return torch.from_numpy(mu), vectors[:, -components:].flip(1)


def _kmeans(data: np.ndarray, cells: int, restarts: int, rng: np.random.Generator) -> np.ndarray:
    """Centres of the k-means run (of ``restarts``, each from a k-means++ start) with the lowest
    inertia. Each run takes Lloyd steps of SciPy's ``kmeans2`` until no point changes its cell or
    the centres move less than scikit-learn's ``KMeans`` tolerance (Σ‖Δc‖² ≤ 10⁻⁴ · mean variance
    of the data), at most ``CT_ITERATIONS``: SciPy's ``vq`` is the cost (~0.1 s a step at 20k × 64)."""
    tol = 1e-4 * float(np.var(data, axis=0).mean())
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centres, labels = scipy.cluster.vq.kmeans2(data, cells, iter=1, minit="++", seed=rng, missing="warn")
        for _step in range(CT_ITERATIONS):
            # kmeans2 returns the labels of the centres it started from, then the updated centres
            new_centres, new_labels = scipy.cluster.vq.kmeans2(data, centres, iter=1, minit="matrix", missing="warn")
            shift = float(np.square(new_centres - centres).sum())
            converged = np.array_equal(new_labels, labels) or shift <= tol
            centres, labels = new_centres, new_labels
            if converged:
                break
        labels = scipy.cluster.vq.vq(data, centres)[0]
        inertia = float(np.square(data - centres[labels]).sum())
        if inertia < best_inertia:
            best, best_inertia = centres, inertia
    return best


def _z_u(sample_nn: np.ndarray, test_nn: np.ndarray) -> float:
    """dgm-eval's ``Zu``: U of the samples' distances (Mann-Whitney, SciPy), Z-scored under H₀ with
    its continuity term (mean mn/2 − ½) and no tie correction."""
    m, n = len(sample_nn), len(test_nn)
    u = scipy.stats.mannwhitneyu(sample_nn, test_nn, alternative="less", method="asymptotic").statistic
    return float((u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12))


@dataclass(frozen=True, eq=False)
class CTCells:
    """What C_T fits on the training features alone (cache it per training set and extractor):
    the PCA (``mean`` (d,), ``basis`` (d, 64); None when d ≤ 64), the k-means ``centres`` and the
    reduced training features with their cell labels."""

    mean: torch.Tensor | None
    basis: torch.Tensor | None
    centres: np.ndarray
    train: torch.Tensor
    train_cell: np.ndarray

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        if self.basis is None:
            return x
        return x @ self.basis - self.mean @ self.basis  # (x − μ)·V without an N×d centred copy

    def cell_of(self, x: torch.Tensor) -> np.ndarray:
        return scipy.cluster.vq.vq(x.numpy(), self.centres)[0]


def fit_ct_cells(
    train: Array, *, generator: torch.Generator, cells: int = CT_CELLS, restarts: int = CT_RESTARTS,
    components: int = CT_COMPONENTS,
) -> CTCells:
    """dgm-eval's PCA to ``components`` (when d > ``components``) and k-means partition of the
    training features (the costly part of C_T at d = 2048: the d×d covariance and its ``eigh``)."""
    t = _as_features(train, "training features").double()
    mean = basis = None
    if t.shape[1] > components:  # dgm-eval's preprcoess_ct: PCA fitted on the training features
        mean, basis = _principal_components(t, components)
        t = t @ basis - mean @ basis
    centres = _kmeans(t.numpy(), cells, restarts, _numpy_rng(generator))
    return CTCells(mean, basis, centres, t, scipy.cluster.vq.vq(t.numpy(), centres)[0])


def ct_from_cells(fit: CTCells, *, test: Array, samples: Array, min_samples: int = CT_MIN_SAMPLES) -> float:
    """C_T of held-out features ``test`` (P_n) and the model's ``samples`` (Q_m) in fitted cells."""
    p, q = (_as_features(x, name).double() for x, name in ((test, "held-out features"), (samples, "sample features")))
    d = len(fit.mean) if fit.mean is not None else fit.train.shape[1]
    if not p.shape[1] == q.shape[1] == d:
        raise UsageError(f"feature dimensions differ: train {d}, held-out {p.shape[1]}, samples {q.shape[1]}")
    p, q = fit.reduce(p), fit.reduce(q)
    p_cell, q_cell = fit.cell_of(p), fit.cell_of(q)
    weights, scores = [], []
    for c in range(len(fit.centres)):
        in_t, in_p, in_q = fit.train[fit.train_cell == c], p[p_cell == c], q[q_cell == c]
        if len(in_t) == 0 or len(in_p) == 0:
            raise UsageError(f"C_T cell {c} holds no training or no held-out images",
                             "use more held-out images (or fewer cells)")
        if len(in_q) <= min_samples:  # Π_τ: the cell has too few samples to count
            continue
        sample_nn = nearest_train_features(in_q, in_t).distance.numpy()
        test_nn = nearest_train_features(in_p, in_t).distance.numpy()
        weights.append(len(in_p) / len(p))
        scores.append(_z_u(sample_nn, test_nn))
    if not weights:
        raise TooFewSamples(f"no C_T cell holds more than {min_samples} samples", "score more samples")
    w = np.asarray(weights)
    return float(w @ np.asarray(scores) / w.sum())


def ct_score(
    *,
    train: Array,
    test: Array,
    samples: Array,
    generator: torch.Generator,
    cells: int = CT_CELLS,
    restarts: int = CT_RESTARTS,
    components: int = CT_COMPONENTS,
    min_samples: int = CT_MIN_SAMPLES,
) -> float:
    """C_T of Meehan et al. (2020) as dgm-eval computes it (see the module docstring): ``train`` the
    training features, ``test`` the held-out real features (P_n), ``samples`` the model's (Q_m).

    ≪ 0: data-copying; ≈ 0: like fresh data; ≫ 0: underfitting. The k-means draws come from
    ``generator``. Scoring many models against one training set: :func:`fit_ct_cells` once, then
    :func:`ct_from_cells` per model (the same number).
    """
    t = _as_features(train, "training features")
    for x, name in ((test, "held-out features"), (samples, "sample features")):
        if _as_features(x, name).shape[1] != t.shape[1]:
            raise UsageError(f"feature dimensions differ: train {t.shape[1]}, {name} {_as_features(x, name).shape[1]}")
    fit = fit_ct_cells(t, generator=generator, cells=cells, restarts=restarts, components=components)
    return ct_from_cells(fit, test=test, samples=samples, min_samples=min_samples)


def closest_pairs(nn: Nearest, count: int = 16) -> dict[str, list]:
    """The ``count`` samples nearest to a training image, closest first: sample and training
    indices and distances (for a grid of sample beside training image in the report)."""
    order = torch.argsort(nn.distance, stable=True)[:count]
    return {"sample_index": order.tolist(), "train_index": nn.index[order].tolist(),
            "distance": nn.distance[order].tolist()}


@dataclass(frozen=True, eq=False)
class MemorizationResult:
    scores: dict[str, float]  # the result columns
    pairs: dict[str, dict[str, list]]  # {"pixel": closest_pairs, "feature": closest_pairs}
    thresholds: dict[str, float]  # the copy-rate thresholds τ per space


def memorization_scores(
    *,
    samples: torch.Tensor,
    train: torch.Tensor,
    reference: torch.Tensor,
    sample_features: Array,
    train_features: Array,
    reference_features: Array,
    generator: torch.Generator,
    quantile: float = QUANTILE,
    pairs: int = 16,
    train_radii: torch.Tensor | None = None,
    heldout_pixel_nn: Nearest | None = None,
    heldout_feature_nn: Nearest | None = None,
    ct_cells: CTCells | None = None,
) -> MemorizationResult:
    """Every memorization score of a model's uint8 ``samples`` and their features (module docstring).

    ``train``/``reference`` are the training and held-out uint8 images with their features. What
    depends on them alone (the training radii, the held-out images' nearest-training distances,
    C_T's fitted cells) may be passed in from a cache; it is computed otherwise (C_T's k-means
    then draws from ``generator``).
    """
    pixel = nearest_train_pixels(samples, train)
    feature = nearest_train_features(sample_features, train_features)
    if heldout_pixel_nn is None:
        heldout_pixel_nn = nearest_train_pixels(reference, train)
    if heldout_feature_nn is None:
        heldout_feature_nn = nearest_train_features(reference_features, train_features)
    scores: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    for space, nn, held in (("pixel", pixel, heldout_pixel_nn), ("feature", feature, heldout_feature_nn)):
        scores[f"nn_{space}_ratio"] = float(np.median(nn.distance.numpy()) / np.median(held.distance.numpy()))
        if held.distance.numel() * quantile < 1:  # a τ resting on no held-out image means nothing
            log.warning("copy_rate_%s not computed: the %.2f%% quantile of %d held-out distances rests on no "
                        "image; use at least %d held-out images", space, 100 * quantile, held.distance.numel(),
                        int(np.ceil(1 / quantile)))
            scores[f"copy_rate_{space}"], thresholds[space] = float("nan"), float("nan")
        else:
            scores[f"copy_rate_{space}"], thresholds[space] = copy_rate(nn.distance, held.distance, quantile)
    if ct_cells is None:
        ct_cells = fit_ct_cells(train_features, generator=generator)
    try:
        scores["ct"] = ct_from_cells(ct_cells, test=reference_features, samples=sample_features)
    except TooFewSamples as err:  # a small run (a smoke test, a self-test) keeps its other scores
        log.warning("ct not computed: %s (eval.num_samples)", err.problem)
        scores["ct"] = float("nan")
    scores["authpct"] = authenticity(train=train_features, samples=sample_features, train_radii=train_radii,
                                     sample_nn=feature)
    return MemorizationResult(scores, {"pixel": closest_pairs(pixel, pairs), "feature": closest_pairs(feature, pairs)},
                              thresholds)
