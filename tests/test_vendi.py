"""Vendi score: known answers (identical → 1, orthogonal → n, k distinct directions repeated → k,
q = ∞ and q = 2 in closed form), invariances, the primal and dual forms agreeing, and agreement
with the authors' package ``vendi-score`` 0.0.3 (``score_dual`` and the n×n ``score_X``)."""

from __future__ import annotations

import importlib.util
import math
import os
import sys

import numpy as np
import pytest
import torch

from mgbench.errors import UsageError
from mgbench.metrics.vendi import vendi_per_class, vendi_score

INSTALL = ("python -m pip install --no-deps --target DIR vendi-score==0.0.3 scikit-learn==1.9.1 joblib==1.6.0 "
           "threadpoolctl==3.8.0 cloudpickle==3.1.3 narwhals==2.29.0, then set MGBENCH_REFERENCE_DEPS=DIR")


@pytest.fixture(scope="module")
def authors_vendi():
    """The package's ``vendi`` module (imports sklearn; no global side effects, so in-process)."""
    extra = os.environ.get("MGBENCH_REFERENCE_DEPS", "")
    if extra and extra not in sys.path:
        sys.path.append(extra)  # appended: never shadows the project's numpy/scipy/torch
    if importlib.util.find_spec("vendi_score") is None:
        pytest.skip(f"vendi-score not importable: {INSTALL}")
    try:
        from vendi_score import vendi
    except ImportError as e:  # e.g. scikit-learn or one of its dependencies missing
        pytest.skip(f"vendi-score not importable ({e}): {INSTALL}")
    return vendi


def clustered(n: int, d: int, clusters: int, seed: int, spread: float = 0.3) -> np.ndarray:
    """Features around a few random centres (not centred on 0, like CNN activations)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)) + 1.0
    return centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, d))


@pytest.mark.parametrize("n,d", [(500, 64), (80, 300), (2048, 128)])
def test_agrees_with_the_authors_package(authors_vendi, n: int, d: int) -> None:
    x = clustered(n, d, 7, seed=n + d)
    ours = vendi_score(x)
    assert ours == pytest.approx(authors_vendi.score_dual(x), rel=1e-6)
    if n <= 500:  # their n×n form: the same number
        assert ours == pytest.approx(authors_vendi.score_X(x), rel=1e-6)
    for q in (0.5, 2, "inf"):
        theirs = authors_vendi.score_dual(x, q=q)
        assert vendi_score(x, q=math.inf if q == "inf" else q) == pytest.approx(theirs, rel=1e-6), q


def test_known_answers() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal(32)
    assert vendi_score(np.tile(v, (50, 1))) == pytest.approx(1.0, rel=1e-9)  # identical → 1
    q, _ = np.linalg.qr(rng.standard_normal((64, 20)))  # 20 orthonormal columns
    assert vendi_score(q.T) == pytest.approx(20.0, rel=1e-9)  # orthogonal → n
    assert vendi_score(q.T * rng.uniform(0.1, 10, (20, 1))) == pytest.approx(20.0, rel=1e-9)  # cosine: scale-free
    repeated = np.repeat(q.T[:5], 7, axis=0)  # 5 distinct directions, 7 copies each
    assert vendi_score(repeated) == pytest.approx(5.0, rel=1e-9)
    # q = ∞: 1/λ_max; q = 2: 1/Σλ². Two orthogonal directions with weights 3/4, 1/4: λ = (3/4, 1/4)
    two = np.repeat(q.T[:2], [3, 1], axis=0)
    assert vendi_score(two, q=math.inf) == pytest.approx(4 / 3, rel=1e-9)
    assert vendi_score(two, q=2) == pytest.approx(1 / (9 / 16 + 1 / 16), rel=1e-9)
    assert vendi_score(two) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), rel=1e-9)


def _exp_entropy(gram: np.ndarray) -> float:
    lam = np.linalg.eigvalsh(gram)
    lam = lam[lam > 0]
    return math.exp(-(lam * np.log(lam)).sum())


@pytest.mark.parametrize("n,d", [(300, 40), (40, 300)])
def test_primal_and_dual_forms_agree(n: int, d: int) -> None:
    """Ours takes the smaller Gram matrix; the other one (written out here) has the same score."""
    y = clustered(n, d, 5, seed=n)
    k = y / np.linalg.norm(y, axis=1, keepdims=True)
    assert vendi_score(y) == pytest.approx(_exp_entropy(k @ k.T / n), rel=1e-8)  # n×n, as eq. (2)
    assert vendi_score(y) == pytest.approx(_exp_entropy(k.T @ k / n), rel=1e-8)  # d×d dual


def test_invariances() -> None:
    x = clustered(120, 60, 4, seed=3)
    ref = vendi_score(x)
    assert vendi_score(x[np.random.default_rng(1).permutation(120)]) == pytest.approx(ref, rel=1e-10)
    assert vendi_score(torch.as_tensor(x, dtype=torch.float32)) == pytest.approx(ref, rel=1e-5)
    assert vendi_score(x * 7.0) == pytest.approx(ref, rel=1e-10)
    assert vendi_score(x[:60]) != pytest.approx(ref, rel=1e-3)  # another set, another score


def test_diversity_counts_well_separated_modes() -> None:
    """k tight clusters around nearly orthogonal centres (d = 512) score about k."""
    rng = np.random.default_rng(5)
    for k in (2, 10, 40):
        centres = rng.standard_normal((k, 512))
        x = centres[np.arange(2000) % k] + 0.02 * rng.standard_normal((2000, 512))
        assert vendi_score(x) == pytest.approx(k, rel=0.1), k


def test_per_class_and_bad_input() -> None:
    x = clustered(200, 16, 3, seed=6)
    labels = torch.arange(200) % 4
    per = vendi_per_class(x, labels)
    assert sorted(per) == [0, 1, 2, 3]
    assert per[1] == pytest.approx(vendi_score(x[1::4]))
    assert vendi_per_class(x[:1], labels[:1]) == {0: pytest.approx(1.0)}
    for bad in (np.zeros(5), np.zeros((0, 3)), np.full((4, 3), np.nan)):
        with pytest.raises(UsageError):
            vendi_score(bad)
    with pytest.raises(UsageError):
        vendi_score(x, q=0)
    with pytest.raises(UsageError):
        vendi_per_class(x, labels[:10])
