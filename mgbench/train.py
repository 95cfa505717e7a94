"""The training loop: steps, loss logging, checkpoints with everything needed for an exact resume.

A checkpoint holds the model's networks and optimisers, the global RNG states, the step and the
loss history, as plain state dicts that ``torch.load(weights_only=True)`` reads; its JSON
sidecar names the job spec it belongs to. The data position needs no saving: the batch of step
``s`` is a pure function of ``s`` (:class:`mgbench.data.batches.BatchSampler`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mgbench import seeding
from mgbench.contract import GenerativeModel
from mgbench.data import ImageSet, to_float
from mgbench.data.batches import BatchSampler
from mgbench.errors import UsageError
from mgbench.files import write_atomic

log = logging.getLogger(__name__)


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
    """Atomic checkpoints of one job: ``<dir>/<job>.pt`` plus ``<job>.json`` naming its spec and
    holding the SHA-256 of the ``.pt`` file.

    A checkpoint that does not match its hash (a damaged disk, a copy cut short, bytes changed),
    or that cannot be read, is never loaded: it is moved aside to ``<job>.pt.damaged`` (with its
    ``.json``) and the job trains again from the start. Training is deterministic, so the job
    ends with the very numbers it would have had: only the time since the start is lost, and a
    grid of many jobs is not stopped for one bad file. A checkpoint of another model or config
    is a :class:`UsageError` instead: that is the user's mix-up, not damage.
    """

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
        write_atomic(self.path, lambda f: torch.save(payload, f))
        meta = {"spec_hash": self.spec_hash, "step": state.step, "sha256": _file_sha256(self.path)}
        write_atomic(self.meta_path, json.dumps(meta))

    def _meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def verify(self) -> bool:
        """Whether a checkpoint is there to resume from. Raises :class:`UsageError` if another
        model or config wrote it; a damaged one is moved aside (the job starts over)."""
        if not self.path.exists():
            return False
        meta = self._meta()
        if meta and meta.get("spec_hash") != self.spec_hash:
            raise UsageError(
                f"checkpoint {self.path} was written by another model or config",
                "resume with the config it was made with, or delete the checkpoint to start over",
            )
        if not meta:
            return self._set_aside(f"its sidecar {self.meta_path.name} is missing or damaged")
        expected = meta.get("sha256")
        if expected is not None and _file_sha256(self.path) != expected:  # None: written before hashes were kept
            return self._set_aside(f"its SHA-256 does not match the one in {self.meta_path.name}")
        return True

    def _set_aside(self, why: str) -> bool:
        damaged = self.path.with_name(self.path.name + ".damaged")
        log.warning("checkpoint %s is damaged (%s): moved to %s; the job trains again from the start "
                    "(to the same numbers: training is deterministic)", self.path, why, damaged.name)
        self.path.replace(damaged)
        if self.meta_path.exists():
            self.meta_path.replace(self.meta_path.with_name(self.meta_path.name + ".damaged"))
        return False

    def load(self, model: GenerativeModel) -> TrainState | None:
        """Restore model and RNG state from the checkpoint, if there is an intact one for this spec."""
        if not self.verify():
            return None
        fresh = copy.deepcopy(model.state_dict())  # to undo a load that fails half-way
        try:
            payload = torch.load(self.path, map_location=model.device, weights_only=True)
            model.load_state_dict(payload["model"])
            rng = {k: _cpu_bytes(v) for k, v in payload["rng"].items()}
            seconds, steps = payload["timing"]
            state = TrainState(int(payload["step"]), list(payload["history"]), float(seconds), int(steps))
        except Exception as err:  # noqa: BLE001 - whatever is wrong in it, it is not loaded
            model.load_state_dict(fresh)
            self._set_aside(f"it cannot be read: {type(err).__name__}: {err}".splitlines()[0][:300])
            return None
        seeding.set_rng_state(rng)
        return state


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    precision: str = "fp32",
    eval_steps: Collection[int] = (),
    on_eval: Callable[[int], None] | None = None,
) -> TrainState:
    """Train ``model`` up to ``steps``; ``state`` continues a resumed job.

    ``precision`` ``bf16`` runs every training step under bfloat16 autocast (convolutions and
    matrix products in bfloat16; parameters, gradients, optimiser state and the losses that
    autocast keeps in float32 stay float32), the same for every model. The loop syncs with the
    device only when it logs (every ``log_every`` steps) or saves.

    ``on_eval(step)`` runs after each step of ``eval_steps`` (the metrics during training,
    :mod:`mgbench.curves`), before that step's checkpoint, so that a resumed job never skips an
    evaluation; it is not timed as training. It must leave the model and the RNGs as it found them.
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
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
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
        if on_eval is not None and state.step in eval_steps:
            _stop_clock(state, clock, device)
            clock = None  # evaluating is not training
            on_eval(state.step)
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
