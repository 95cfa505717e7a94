"""Checks of what a model and a run ask of the machine, before their output is trusted.

:func:`check_samples`: what ``GenerativeModel.sample`` returned, before it is scored. The
contract (:mod:`mgbench.contract`) asks for ``n`` float images n×C×H×W in [-1, 1]; a model that
returns NaN, uint8, a grey image on RGB data, another resolution or one image too few would
otherwise be scored (``to_uint8`` clamps and casts whatever it gets) and end ``ok`` with
meaningless numbers. What is allowed:

* a floating-point tensor (float32, float16, bfloat16, float64), on any device;
* exactly ``n`` images of the data's channels and resolution;
* every value finite;
* values in [-1, 1] up to :data:`RANGE_SLACK`: a model that does not clamp overshoots a little
  (``to_uint8`` clamps that away, as it always did); at most :data:`OUTSIDE_FRACTION` of the
  values may lie beyond it, more means the model returns another scale ([0, 255], [0, 1] is
  indistinguishable and passes).

A failed check is a :class:`SampleError` naming the model and the fault; the job ends ``failed``.

:func:`check_memory`: a rough lower bound of the memory a run needs (the training and reference
sets as uint8, the samples, each model's parameters with their gradients and two Adam moments)
against the memory the machine has available (``MemAvailable`` of /proc/meminfo), so that a
``--resolution 1024`` stops with a message before minutes of data generation, not with an
allocation failure. Where the estimate is too low the allocation failure still ends the job as
``oom``. Neither changes a number: they refuse, or let run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mgbench.contract import DataSpec, GenerativeModel
from mgbench.device import resolve_device
from mgbench.errors import UsageError

RANGE_SLACK = 0.1  # values may reach ±(1 + RANGE_SLACK) ...
OUTSIDE_FRACTION = 0.01  # ... and at most this fraction of them may lie beyond that


class SampleError(ValueError):
    """A model's ``sample()`` broke the contract: the job ends ``failed`` with this message."""


def model_name(model: GenerativeModel) -> str:
    """The name ``model``'s class is registered under (else its class name), for messages."""
    from mgbench.registry import MODELS

    for name in MODELS.names():
        if MODELS.get(name) is type(model):
            return name
    return type(model).__qualname__


def check_samples(model: GenerativeModel, images: object, n: int, call: str = "sample") -> torch.Tensor:
    """``images`` if it is what ``model.sample(n, ...)`` must return, else a :class:`SampleError`."""
    spec = model.data
    expected = (n, spec.channels, spec.resolution, spec.resolution)
    where = f"model {model_name(model)!r}: {call}({n}) returned"
    fix = "; it must return float images n×C×H×W in [-1, 1] (mgbench.contract.GenerativeModel.sample)"
    if not isinstance(images, torch.Tensor):
        raise SampleError(f"{where} a {type(images).__name__}, not a tensor{fix}")
    if not images.is_floating_point():
        raise SampleError(f"{where} {images.dtype} images, not floats{fix}")
    if tuple(images.shape) != expected:
        raise SampleError(f"{where} shape {tuple(images.shape)}, expected {expected} "
                          f"({_difference(tuple(images.shape), expected)}){fix}")
    x = images.detach()
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise SampleError(f"{where} {bad} non-finite values (NaN or Inf) of {x.numel()}{fix}")
    limit = 1.0 + RANGE_SLACK
    outside = int((x.abs() > limit).sum())
    if outside > OUTSIDE_FRACTION * x.numel():
        lo, hi = float(x.min()), float(x.max())
        raise SampleError(f"{where} values in [{lo:.3g}, {hi:.3g}]: {outside} of {x.numel()} lie beyond "
                          f"±{limit:g} (more than {OUTSIDE_FRACTION:.0%}), another scale than [-1, 1]?{fix}")
    return images


def _difference(got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if len(got) != len(expected):
        return f"{len(got)} dimensions instead of 4"
    names = ("images", "channels", "rows", "columns")
    return ", ".join(f"{g} {name} instead of {e}" for g, e, name in zip(got, expected, names, strict=True)
                     if g != e)


# ---------------------------------------------------------------- memory


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (MemAvailable), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def parameter_bytes(name: str, spec: DataSpec, overrides: dict[str, Any] | None) -> int:
    """Bytes of a model's parameters with their gradients and two Adam moments (4 × float32),
    counted on the meta device (nothing is allocated); 0 when the model cannot be built there."""
    from mgbench import registry

    try:
        with torch.device("meta"):  # tensors made inside, the networks' too, take no memory
            model = registry.create_model(name, spec, overrides, torch.device("meta"))
            count = sum(model.num_parameters().values())
    except Exception:  # noqa: BLE001 - an estimate: a model that needs real memory to build counts 0
        return 0
    return 4 * 4 * int(count)


PARAMS_FROM_RESOLUTION = 128  # below, a model's parameters are megabytes: not worth building it to count them


def memory_needed(config: Any, jobs_at_once: int, with_parameters: bool = True) -> tuple[int, str]:
    """A lower bound of the bytes the run needs at its peak, and how it was counted."""
    d = config.data
    channels = 3  # at most (RGB); the data are not read for this
    image = channels * d.resolution * d.resolution
    data_bytes = (d.train_size + d.reference_size + config.eval.num_samples) * image
    params = 0
    if with_parameters and resolve_device(config.device).type == "cpu":  # a GPU holds them in its own memory
        spec = DataSpec(channels, d.resolution, 16)
        params = max((parameter_bytes(m, spec, config.model_overrides.get(m)) for m in config.models), default=0)
    jobs = max(jobs_at_once, 1)
    how = (f"{jobs} job(s) at once × ({d.train_size} + {d.reference_size} + {config.eval.num_samples} images "
           f"of {channels}×{d.resolution}×{d.resolution} bytes = {_gib(data_bytes)}")
    how += f", + {_gib(params)} for the largest model's parameters, gradients and Adam moments)" if params else ")"
    return jobs * (data_bytes + params), how


def check_memory(config: Any, jobs_at_once: int, available: int | None = None) -> None:
    """A :class:`UsageError` when the run cannot fit in the memory available. The models are
    built (on the meta device) to count their parameters only from :data:`PARAMS_FROM_RESOLUTION`
    px on, and only when the data alone fit."""
    available = available_memory() if available is None else available
    if available is None:
        return
    need, how = memory_needed(config, jobs_at_once, with_parameters=False)
    if need <= available and config.data.resolution >= PARAMS_FROM_RESOLUTION:
        need, how = memory_needed(config, jobs_at_once)
    if need > available:
        raise UsageError(f"this run needs at least {_gib(need)} of memory, {_gib(available)} are available: {how}",
                         "lower data.resolution, data.train_size or eval.num_samples, or run fewer jobs at "
                         "once (--workers 1)")


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"
