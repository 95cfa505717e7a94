"""The training loop: steps, loss logging, checkpoints with everything needed for an exact resume.

A checkpoint holds the model's networks and optimisers, the global RNG states, the step and the
loss history, as plain state dicts that ``torch.load(weights_only=True)`` reads; its JSON
sidecar names the job spec it belongs to. The data position needs no saving: the batch of step
``s`` is a pure function of ``s`` (:class:`mgbench.data.batches.BatchSampler`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mgbench import seeding
from mgbench.contract import GenerativeModel
from mgbench.data import ImageSet, to_float
from mgbench.data.batches import BatchSampler
from mgbench.errors import UsageError


class Diverged(RuntimeError):
    """A loss became NaN or infinite: the job stops early with status ``diverged``."""


@dataclass
class TrainState:
    """What the loop carries across steps and checkpoints."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # one record per log window
    train_seconds: float = 0.0  # time in steady-state steps (after warm-up), for throughput
    timed_steps: int = 0


class Checkpointer:
    """Atomic checkpoints of one job: ``<dir>/<job>.pt`` plus ``<job>.json`` naming its spec."""

    def __init__(self, directory: Path, job_id: str, spec_hash: str) -> None:
        self.path = directory / f"{job_id}.pt"
        self.meta_path = directory / f"{job_id}.json"
        self.spec_hash = spec_hash

    def save(self, model: GenerativeModel, state: TrainState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "model": model.state_dict(),
            "rng": seeding.rng_state(model.device),
            "step": state.step,
            "history": state.history,
            "timing": [state.train_seconds, state.timed_steps],
        }
        tmp = self.path.with_suffix(".pt.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, self.path)
        meta = {"spec_hash": self.spec_hash, "step": state.step}
        tmp_meta = self.meta_path.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, self.meta_path)

    def verify(self) -> None:
        """Raise :class:`UsageError` if a checkpoint exists that another model or config wrote."""
        if not self.path.exists():
            return
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("spec_hash") != self.spec_hash:
            raise UsageError(
                f"checkpoint {self.path} was written by another model or config",
                "resume with the config it was made with, or delete the checkpoint to start over",
            )

    def load(self, model: GenerativeModel) -> TrainState | None:
        """Restore model and RNG state from the checkpoint, if there is one for this spec."""
        if not self.path.exists():
            return None
        self.verify()
        try:
            payload = torch.load(self.path, map_location=model.device, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same problem
            raise UsageError(
                f"checkpoint {self.path} cannot be read safely: {err}".splitlines()[0],
                "delete it to retrain this job from the start",
            ) from None
        model.load_state_dict(payload["model"])
        seeding.set_rng_state({k: _cpu_bytes(v) for k, v in payload["rng"].items()})
        seconds, steps = payload["timing"]
        return TrainState(payload["step"], payload["history"], seconds, steps)


def _cpu_bytes(state: Any) -> Any:
    """RNG states must be CPU ByteTensors whatever map_location moved them to."""
    return [s.cpu() for s in state] if isinstance(state, list) else state.cpu()


def train(
    model: GenerativeModel,
    data: ImageSet,
    sampler: BatchSampler,
    steps: int,
    log_every: int,
    checkpoint_every: int,
    checkpointer: Checkpointer,
    state: TrainState | None = None,
    on_step: Callable[[int, dict[str, float] | None], None] | None = None,
) -> TrainState:
    """Train ``model`` up to ``steps``; ``state`` continues a resumed job.

    The loop syncs with the device only when it logs (every ``log_every`` steps) or saves.
    """
    state = state or TrainState()
    device = model.device
    images = data.images.to(device)
    labels = data.labels.to(device) if (model.conditional and data.labels is not None) else None
    warmup = min(10, steps // 5)  # first steps pay for allocation and kernel selection
    window: dict[str, torch.Tensor] = {}
    window_steps = 0
    model.train()
    clock = None  # (time, step) at which the steady-state clock last started
    while state.step < steps:
        if clock is None and state.step >= warmup:
            clock = (_now(device), state.step)
        idx = sampler.indices(state.step).to(device)
        losses = model.train_step(to_float(images[idx]), None if labels is None else labels[idx])
        for k, v in losses.items():
            window[k] = window[k] + v if k in window else v.clone()
        window_steps += 1
        state.step += 1
        record = None
        if state.step % log_every == 0 or state.step == steps:
            record = {k: float(v) / window_steps for k, v in window.items()}
            window, window_steps = {}, 0
            if not all(math.isfinite(v) for v in record.values()):
                raise Diverged(f"non-finite loss at step {state.step}: {record}")
            state.history.append({"step": state.step, **record})
        if state.step % checkpoint_every == 0 and state.step < steps:
            _stop_clock(state, clock, device)
            clock = None  # saving is not training: restart the clock after it
            checkpointer.save(model, state)
        if on_step is not None:
            on_step(state.step, record)
    _stop_clock(state, clock, device)
    return state


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _stop_clock(state: TrainState, clock: tuple[float, int] | None, device: torch.device) -> None:
    """Add the steps timed since ``clock`` started to the throughput figures."""
    if clock is not None:
        state.train_seconds += _now(device) - clock[0]
        state.timed_steps += state.step - clock[1]
