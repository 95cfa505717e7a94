"""manifest.json: what a run's numbers depend on besides its config (software, hardware, code)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from mgbench.device import native_bf16

PACKAGES = ["mgbench", "torch", "torchvision", "torch-fidelity", "lpips", "numpy", "scipy", "pandas"]


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _git_sha() -> str | None:
    return _git("rev-parse", "HEAD") or None


def _git_dirty() -> bool | None:
    """Whether the checkout has uncommitted changes to tracked files: the SHA alone would then
    name code that did not produce these numbers."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def cpu_flags() -> list[str]:
    """The CPU features that change training speed (and, for bfloat16, what is native), from /proc/cpuinfo."""
    from mgbench.device import _cpu_flags

    return sorted(_cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma", "bf16"})


def earlier_commands(path: Path, command: str) -> dict[str, Any]:
    """On a resume: the run's original command, and every resume's, beside this one."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict) or not old.get("command"):
        return {}
    return {"command": old["command"], "resumed_with": [*old.get("resumed_with", []), command]}


def collect(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "versions": {p: _version(p) for p in PACKAGES},
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "native_bf16": native_bf16(device),  # whether precision = "bf16" is fast here (information only)
        "git_sha": _git_sha(),
        "git_dirty": _git_dirty(),
        "command": " ".join(["mgbench", *sys.argv[1:]]),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info
