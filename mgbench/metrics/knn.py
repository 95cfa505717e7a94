"""k-NN metrics on features: precision/recall and density/coverage in one chunked pass.

* Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019), k = 3: the manifold of a
  set is the union of balls around its points, each with the radius to its k-th nearest
  neighbour in the same set. Precision = fraction of FAKE samples inside the REAL manifold
  (fidelity); recall = fraction of REAL samples inside the FAKE manifold (diversity).
* Density and coverage (Naeem et al., ICML 2020), k = 5, both on the real balls only:
  density = (1/kM) Σ_j #{real balls that hold fake j}; coverage = fraction of real balls that
  hold at least one fake sample.

(KID and the Inception score are torch-fidelity's own functions: see :mod:`mgbench.metrics.catalog`.)

The real and fake sets are keyword-only arguments everywhere: torch-fidelity's positional
(input1 = fake, input2 = real) order once got swapped in a caller, which silently exchanges
precision and recall.

Distances are computed in row blocks with ``torch.cdist`` and never held as an N×N matrix:
memory is O(N·d + block·N), with the block chosen from an element budget.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from mgbench.errors import UsageError

# Distance entries per block (float32: 64 MiB). At N = 50k that is about 330 rows per block,
# large enough that the matrix product inside cdist runs at full speed.
_BLOCK_ELEMENTS = 2**24


def _features(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise UsageError(f"{name} features must be an N×d matrix, got shape {tuple(x.shape)}")
    return x if x.dtype == torch.float64 else x.float()


def _distance_blocks(
    rows: torch.Tensor, cols: torch.Tensor, block_size: int | None
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first row, distances of a block of rows to every column), block × len(cols)."""
    if block_size is None:
        block_size = max(1, _BLOCK_ELEMENTS // max(1, len(cols)))
    for start in range(0, len(rows), block_size):
        yield start, torch.cdist(rows[start : start + block_size], cols)


def knn_radii(x: torch.Tensor, k: int | Sequence[int] = 3, *, block_size: int | None = None) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest neighbour in ``x``, itself excluded.

    ``k`` an int gives shape (N,); a sequence of ks gives (N, len(k)) from a single pass.
    Exact duplicates of a point are neighbours at distance 0 (only the point itself is skipped).
    """
    ks = [k] if isinstance(k, int) else list(k)
    x = _features(x, "radius")
    if min(ks) < 1 or max(ks) >= len(x):
        raise UsageError(f"k must be in [1, N-1] = [1, {len(x) - 1}], got {ks}", "use more samples")
    radii = []
    for start, dist in _distance_blocks(x, x, block_size):
        rows = torch.arange(len(dist), device=dist.device)
        dist[rows, start + rows] = float("inf")  # the point itself is no neighbour
        nearest = dist.topk(max(ks), dim=1, largest=False).values  # sorted ascending
        radii.append(nearest[:, [kk - 1 for kk in ks]])
    out = torch.cat(radii)
    return out[:, 0] if isinstance(k, int) else out


def prdc(
    *,
    real: torch.Tensor,
    fake: torch.Tensor,
    k_pr: int = 3,
    k_dc: int = 5,
    block_size: int | None = None,
) -> dict[str, float]:
    """Precision, recall (k = ``k_pr``), density and coverage (k = ``k_dc``) in three passes.

    Passes: real×real (radii for both ks), fake×fake (fake radii), fake×real (all four counts).
    Ball membership follows each paper's reference code: ``≤`` for precision/recall
    (Kynkäänniemi et al.), strict ``<`` for density/coverage (Naeem et al., ``prdc``).
    """
    real, fake = _features(real, "real"), _features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise UsageError(f"feature dimensions differ: real {real.shape[1]}, fake {fake.shape[1]}")
    fake = fake.to(real.device, real.dtype)
    r_real = knn_radii(real, (k_pr, k_dc), block_size=block_size)  # (N_real, 2)
    r_real_pr, r_real_dc = r_real[:, 0], r_real[:, 1]
    r_fake = knn_radii(fake, k_pr, block_size=block_size)  # (N_fake,)

    fake_in_real = 0  # fakes inside some real k_pr-ball (precision)
    real_balls_per_fake = 0  # Σ over fakes of the number of real k_dc-balls holding it (density)
    real_in_fake = torch.zeros(len(real), dtype=torch.bool, device=real.device)  # recall
    nearest_fake = torch.full((len(real),), float("inf"), dtype=real.dtype, device=real.device)
    for start, dist in _distance_blocks(fake, real, block_size):  # block × N_real
        fake_in_real += int((dist <= r_real_pr).any(dim=1).sum())
        real_balls_per_fake += int((dist < r_real_dc).sum())
        r_block = r_fake[start : start + len(dist), None]
        real_in_fake |= (dist <= r_block).any(dim=0)
        nearest_fake = torch.minimum(nearest_fake, dist.min(dim=0).values)
    return {
        "precision": fake_in_real / len(fake),
        "recall": int(real_in_fake.sum()) / len(real),
        "density": real_balls_per_fake / (k_dc * len(fake)),
        "coverage": int((nearest_fake < r_real_dc).sum()) / len(real),
    }
