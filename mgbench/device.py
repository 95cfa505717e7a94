"""Which device a run uses, and what that device computes natively."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first GPU if there is one, else the CPU; any other name as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast is known to speed training up on ``device``: CPUs with bfloat16
    instructions (x86 AVX512-BF16 or AMX-BF16, ARM BF16).

    Elsewhere bfloat16 is emulated and slower, so the models' ``bf16 = None`` (auto) stays in
    float32. GPUs answer False until it is measured there: set ``bf16 = true`` to try it.
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported`` is no test: it is true on every AVX512 CPU.)
    """
    return device.type == "cpu" and bool(_cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux: ``flags`` on x86, ``Features`` on ARM)."""
    if platform.system() != "Linux":
        return frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()
