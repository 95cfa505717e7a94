"""Vendi score (Friedman & Dieng, TMLR 2023, "The Vendi Score: A Diversity Evaluation Metric for
Machine Learning", §3, Definition 3.1 and eq. (2)): the effective number of distinct samples.

For n samples with a similarity kernel k (k(x, x) = 1) and K_ij = k(x_i, x_j),

    VS = exp( −Σ_i λ_i log λ_i ),   λ_i the eigenvalues of K/n,

the exponential of the Shannon entropy of K/n's spectrum (order q = 1; §5 of the paper and the
package's ``entropy_q`` give VS_q = exp(log(Σ λ^q)/(1−q)), and q = ∞: 1/λ_max). n identical
samples give 1; n mutually orthogonal ones give n.

The kernel, as the authors' ``vendi_score.vendi.score_dual`` / ``score_X`` (``normalize=True``)
and dgm-eval's ``compute_vendi_score`` use it on embeddings: the cosine similarity of the
features, K = X̂X̂ᵀ with the rows of X scaled to unit length (not centred). Zero rows stay zero,
as sklearn's ``normalize``.

Cost: K/n is n×n, but X̂X̂ᵀ/n and X̂ᵀX̂/n share their non-zero eigenvalues, so we decompose the
smaller of the two: min(n, d)³ for the eigenvalues plus n·d·min(n, d) for the product. At
d = 2048 (Inception) that is the d×d dual for every n > 2048; at d = 128 (the domain extractor)
always the dual, a few milliseconds. Float64 throughout.

The score grows with n (until the kernel's rank, ≤ d, caps it): compare sets of equal size,
and read a model's value against the real-data row's, not as "higher is better" (uniform noise
is very diverse).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mgbench.errors import UsageError

Array = torch.Tensor | np.ndarray


def _entropy_exp(eigenvalues: torch.Tensor, q: float) -> float:
    """exp of the order-q Rényi entropy of the (non-negative) eigenvalues; only λ > 0 count."""
    p = eigenvalues[eigenvalues > 0]
    if q == 1:
        return math.exp(float(-(p * p.log()).sum()))
    if math.isinf(q):
        return 1.0 / float(p.max())
    return math.exp(math.log(float((p**q).sum())) / (1 - q))


def vendi_score(features: Array, q: float = 1.0) -> float:
    """Vendi score of N×d features with the cosine-similarity kernel (see the module docstring).

    ``q`` is the order of the entropy: 1 (the paper's default), any positive number, or ``inf``.
    """
    x = torch.as_tensor(features)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise UsageError(f"Vendi needs an N×d feature matrix, got shape {tuple(x.shape)}")
    if not (q > 0):
        raise UsageError(f"the entropy order q must be positive (or inf), got {q}")
    x = x.to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise UsageError("features hold NaN or infinite values", "check the feature extractor's output")
    norms = x.norm(dim=1, keepdim=True)
    x = x / torch.where(norms > 0, norms, 1.0)  # unit rows; a zero row stays zero (as sklearn's normalize)
    n, d = x.shape
    gram = x.T @ x if d < n else x @ x.T  # the dual (d×d) when smaller: same non-zero spectrum
    eigenvalues = torch.linalg.eigvalsh(gram / n)
    return _entropy_exp(eigenvalues, q)


def vendi_per_class(features: Array, labels: Array, q: float = 1.0) -> dict[int, float]:
    """Vendi score within each class (dgm-eval's ``compute_per_class_vendi_scores``; it reports
    their mean): {label: score}. Classes with a single sample score 1."""
    x = torch.as_tensor(features)
    y = torch.as_tensor(labels)
    if y.ndim != 1 or len(y) != len(x):
        raise UsageError(f"labels must be one per feature row: {tuple(y.shape)} vs {tuple(x.shape)}")
    return {int(c): vendi_score(x[y == c], q) for c in torch.unique(y).tolist()}
