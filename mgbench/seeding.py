"""Every seed in mgbench comes from here, so a job's randomness is a function of (model, seed).

Streams are derived by hashing, not by adding offsets, so that two purposes or two models never
share a stream by accident (seed 1 of "sample" is unrelated to seed 2 of "init").
"""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of names and numbers, stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seed_everything(seed: int) -> None:
    """Seed the global RNGs of Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private torch RNG: the harness passes these around instead of touching global state."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def set_deterministic(enabled: bool) -> None:
    """Make torch pick deterministic kernels (needed for bit-identical GPU runs).

    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` set before its first use for that.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled


def rng_state(device: torch.device) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """The global torch RNG states, as tensors (checkpoints hold them for an exact resume)."""
    state: dict[str, torch.Tensor | list[torch.Tensor]] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, torch.Tensor | list[torch.Tensor]]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
