"""A stateless batch sampler, so that a training run resumes exactly at any step.

Epoch e visits the training set in the order ``randperm(n)`` drawn from a generator seeded with
``derive_seed(seed, e)``; the batches tile that endless sequence of permutations, and a batch that
crosses an epoch end continues into the next epoch's permutation. The batch of step k is thus a
pure function of (n, batch_size, seed, k): no sampler state needs to go into a checkpoint.
"""

from __future__ import annotations

import torch

from mgbench.seeding import derive_seed, generator


class BatchSampler:
    """Indices of the training images in each step's batch (``indices(step)``)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"need n > 0 and batch_size > 0, got n={n}, batch_size={batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._cache: dict[int, torch.Tensor] = {}  # a few recent epochs' permutations (speed only)

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order in which epoch ``epoch`` visits the n images."""
        perm = self._cache.get(epoch)
        if perm is None:
            perm = torch.randperm(self.n, generator=generator(derive_seed(self.seed, epoch)))
            if len(self._cache) >= 4:
                self._cache.pop(min(self._cache))
            self._cache[epoch] = perm
        return perm

    def indices(self, step: int) -> torch.Tensor:
        """The int64 indices (batch_size,) of the batch of step ``step`` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        start = step * self.batch_size  # position in the endless sequence of epochs
        end = start + self.batch_size
        parts = []
        for epoch in range(start // self.n, (end - 1) // self.n + 1):
            lo = max(start - epoch * self.n, 0)
            hi = min(end - epoch * self.n, self.n)
            parts.append(self.permutation(epoch)[lo:hi])
        return torch.cat(parts)
