"""Models that break the contract at run time, loaded with ``--plugin fault_plugins``.

Each is the per-pixel Gaussian of plugin_models.py with one fault; tests/test_faults.py runs
them in one grid and checks that each ends with its documented status and a one-line message,
the others going on. A model that fails at sampling trains first, as a real one would.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import time

import torch
from plugin_models import PixelGaussian

from mgbench import register_model


def _fault(name: str):
    return register_model(f"fault-{name}")


# ---- what sample() returns


@_fault("nan-samples")
class NaNSamples(PixelGaussian):
    def sample(self, n, labels=None, generator=None):
        out = super().sample(n, labels, generator)
        out[0, 0, 0, 0] = float("nan")  # one value is enough
        return out


@_fault("uint8-samples")
class UInt8Samples(PixelGaussian):
    def sample(self, n, labels=None, generator=None):
        return ((super().sample(n, labels, generator) + 1) * 127.5).round().to(torch.uint8)


@_fault("scaled-samples")
class ScaledSamples(PixelGaussian):
    """Floats in [0, 255]: another scale."""

    def sample(self, n, labels=None, generator=None):
        return (super().sample(n, labels, generator) + 1) * 127.5


@_fault("grey-samples")
class GreySamples(PixelGaussian):
    """One channel on RGB data."""

    def sample(self, n, labels=None, generator=None):
        return super().sample(n, labels, generator)[:, :1]


@_fault("short-samples")
class ShortSamples(PixelGaussian):
    """n − 1 images."""

    def sample(self, n, labels=None, generator=None):
        return super().sample(n, labels, generator)[:-1]


@_fault("small-samples")
class SmallSamples(PixelGaussian):
    """Half the resolution."""

    def sample(self, n, labels=None, generator=None):
        return super().sample(n, labels, generator)[..., ::2, ::2]


@_fault("list-samples")
class ListSamples(PixelGaussian):
    def sample(self, n, labels=None, generator=None):
        return list(super().sample(n, labels, generator))


@_fault("sample-raises")
class SampleRaises(PixelGaussian):
    def sample(self, n, labels=None, generator=None):
        raise ValueError("boom in sample")


# ---- what a training step does


@_fault("inf-loss")
class InfLoss(PixelGaussian):
    def train_step(self, images, labels):
        return {"nll": torch.tensor(float("inf"))}


@_fault("loss-not-tensor")
class LossNotTensor(PixelGaussian):
    def train_step(self, images, labels):
        return {"nll": 0.5}


@_fault("os-exit")
class OsExit(PixelGaussian):
    def train_step(self, images, labels):
        os._exit(3)


@_fault("segfault")
class Segfault(PixelGaussian):
    def train_step(self, images, labels):
        ctypes.string_at(0)  # reads address 0: SIGSEGV
        raise AssertionError("unreachable")


@_fault("sys-exit")
class SysExit(PixelGaussian):
    def train_step(self, images, labels):
        sys.exit(4)


@_fault("keyboard-interrupt")
class RaisesKeyboardInterrupt(PixelGaussian):
    def train_step(self, images, labels):
        raise KeyboardInterrupt


@_fault("cpu-oom")
class CpuOOM(PixelGaussian):
    """A real allocation failure: 1 PiB on the CPU (nothing is allocated)."""

    def train_step(self, images, labels):
        torch.empty(1 << 50, dtype=torch.uint8)
        raise AssertionError("unreachable")


@_fault("memory-error")
class RaisesMemoryError(PixelGaussian):
    def train_step(self, images, labels):
        raise MemoryError


@_fault("cuda-oom")
class CudaOOM(PixelGaussian):
    """What a GPU that runs out of memory raises (simulated: no GPU needed)."""

    def train_step(self, images, labels):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@_fault("init-raises")
class InitRaises(PixelGaussian):
    def __init__(self, config, data, device):
        raise RuntimeError("boom in __init__")


@_fault("hangs")
class Hangs(PixelGaussian):
    """A step that never returns: only execution.job_timeout_s ends it."""

    def train_step(self, images, labels):
        while True:
            time.sleep(1)


@_fault("disk-full")
class DiskFullInStep(PixelGaussian):
    """What writing a file on a full disk raises (simulated: no disk is filled)."""

    def train_step(self, images, labels):
        raise OSError(errno.ENOSPC, "No space left on device", "/mnt/full/ckpt.pt")
