"""Metric mathematics: pure functions from features, logits or images to floats and dicts.

Feature extraction lives in :mod:`mgbench.features`; running the metrics on a model's samples
is the evaluation's job. Here: FID and FID∞ (:mod:`.frechet`), precision/recall,
density/coverage, KID and IS (:mod:`.knn`), multi-scale SWD (:mod:`.swd`) and per-scale mode
coverage (:mod:`.modes`).
"""

from mgbench.metrics.frechet import feature_statistics, fid_from_features, fid_infinity, frechet_distance
from mgbench.metrics.knn import (
    density_coverage,
    inception_score,
    kid,
    knn_radii,
    prdc,
    precision_recall,
)
from mgbench.metrics.modes import conditional_accuracy, joint_labels, mode_coverage, predictions
from mgbench.metrics.swd import (
    multiscale_swd,
    sliced_wasserstein,
    swd_descriptors,
    swd_from_descriptors,
    swd_resolutions,
)

__all__ = [
    "conditional_accuracy",
    "density_coverage",
    "feature_statistics",
    "fid_from_features",
    "fid_infinity",
    "frechet_distance",
    "inception_score",
    "joint_labels",
    "kid",
    "knn_radii",
    "mode_coverage",
    "multiscale_swd",
    "prdc",
    "precision_recall",
    "predictions",
    "sliced_wasserstein",
    "swd_descriptors",
    "swd_from_descriptors",
    "swd_resolutions",
]
