"""More than one sample draw per trained model: how much of a score is the luck of the draw.

Retraining a model with another seed moves its FID far more than drawing another sample from it
(Dufour et al. 2026, "The FID Lottery": 3.2 times more), but a run with one draw per model cannot
tell the two apart. With ``eval.sampling_seeds = k`` each trained model is scored k times, draw
j with its own sample seed (the noise of :func:`mgbench.job.draw_samples`) and its own score seed
(the metrics' random subsets, :class:`mgbench.evaluate.EvalContext`). Draw 0 is the job's usual
one, so the results row keeps its scores and the tables stay as they are; every draw's scores
go to ``RUN_DIR/sampling/<job>.csv``, one row each, and :mod:`mgbench.report.luck` splits each
metric's variance into its training-seed and sampling parts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mgbench import seeding
from mgbench.evaluate import Evaluator
from mgbench.files import write_atomic

SAMPLING_SEED = "sampling_seed"  # the draw's number j, the first column of a sampling file


def draw_seeds(model: str, seed: int, draw: int) -> tuple[int, int]:
    """(sample seed, score seed) of draw ``draw`` of the job (model, seed); draw 0 is the job's own."""
    if draw == 0:
        return seeding.derive_seed(model, seed, "sample"), seed
    return seeding.derive_seed(model, seed, "sample", draw), seeding.derive_seed("score", model, seed, draw)


def score_draws(evaluator: Evaluator, sample: Callable[[int, int], tuple[torch.Tensor, torch.Tensor | None]],
                model_name: str, seed: int, num_samples: int, draws: int, first: dict[str, Any],
                model: Any = None) -> list[dict[str, Any]]:
    """The scores of draws 0 … ``draws`` − 1, one dict each; ``first``: draw 0's, already scored.
    ``sample(n, sample_seed)`` gives the images and the labels a conditional model was asked for."""
    rows = [{SAMPLING_SEED: 0, **first}]
    for draw in range(1, draws):
        sample_seed, score_seed = draw_seeds(model_name, seed, draw)
        images, requested = sample(num_samples, sample_seed)
        rows.append({SAMPLING_SEED: draw, **evaluator.score(images, score_seed, requested, model=model)})
    return rows


def write_draws(path: Path, rows: list[dict[str, Any]]) -> None:
    write_atomic(path, pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"))
