"""Equal compute budgets: every model of a run gets the same training compute.

Every model otherwise trains for the same number of steps, so LAPGAN, which trains three GANs per
step, is compared with DCGAN at equal steps and not at equal compute. Lucic et al. 2018 ("Are
GANs Created Equal? A Large-Scale Study", NeurIPS) found that most reported
differences between GANs vanish when every model gets the same computational budget (and several
seeds). With ``train.budget_gflops`` (or ``train.budget_images``) each model's steps are derived
BEFORE training, deterministically, from its FLOPs per training image as
:func:`mgbench.evaluate.cost` counts them (``torch.utils.flop_counter.FlopCounterMode``: the same
count on every machine; wall time never decides a number) and the batch size::

    steps = floor(budget_gflops / (train_gflops_per_img × batch_size))      (at least one step)
    steps = floor(budget_images / batch_size)

Rounding down keeps every model within its budget (up to a relative 10⁻⁹, so that a budget of
exactly k steps buys k) and at most one step's worth below it. The
count assumes a training step costs the same throughout training (true of the four baselines); a
model whose step cost changes as it trains (progressive growing) would need its mean cost.
"""

from __future__ import annotations

import math
from typing import Any

from mgbench.config import RunConfig, TrainConfig
from mgbench.errors import UsageError

ROUNDING = 1e-9  # relative: a quotient this close below a whole number of steps is that number


def training_steps(train: TrainConfig, train_gflops_per_img: float, model: str = "the model") -> int:
    """The steps a model trains for: ``train.steps``, or what its budget buys (module doc)."""
    if train.steps is not None:
        return train.steps
    batch = train.batch_size
    if train.budget_images is not None:
        steps, unit = train.budget_images // batch, f"{batch} images"
        budget = f"train.budget_images = {train.budget_images:,}"
    else:
        assert train.budget_gflops is not None  # TrainConfig holds exactly one length
        if not (math.isfinite(train_gflops_per_img) and train_gflops_per_img > 0):
            raise UsageError(f"{model} has no counted training FLOPs ({train_gflops_per_img}), so a compute "
                             "budget cannot set its steps", "give train.steps for this model's run")
        step_gflops = train_gflops_per_img * batch
        # A budget of exactly k steps must buy k, not k − 1 when the quotient rounds to k − 10⁻¹³.
        steps, unit = math.floor(train.budget_gflops / step_gflops * (1 + ROUNDING)), f"{step_gflops:,.4g} GFLOPs"
        budget = f"train.budget_gflops = {train.budget_gflops:,}"
    if steps < 1:
        raise UsageError(f"{budget} buys {model} less than one training step (one step: {unit})",
                         "raise the budget, or lower train.batch_size")
    return steps


def spent_gflops(steps: int, batch_size: int, train_gflops_per_img: float) -> float:
    """The training compute of ``steps`` steps, in GFLOPs."""
    return steps * batch_size * train_gflops_per_img


def budget_columns(train: TrainConfig, steps: int, train_gflops_per_img: float) -> dict[str, Any]:
    """The results-row columns of a job's training length: ``train_gflops`` spent, and the budget
    it was given (only when one was)."""
    out: dict[str, Any] = {"train_gflops": spent_gflops(steps, train.batch_size, train_gflops_per_img)}
    if train.budget_gflops is not None:
        out["budget_gflops"] = train.budget_gflops
    if train.budget_images is not None:
        out["budget_images"] = train.budget_images
    return out


def planned_steps(config: RunConfig) -> dict[str, tuple[int, float]]:
    """Each model's (steps, training GFLOPs per image) for ``config``, counted on the CPU before
    anything trains, as its job will count them (the count does not depend on the device): for
    the runner to show, e.g. "equal compute: dcgan 1,500 steps, lapgan 1,052 steps"."""
    import torch

    from mgbench import registry
    from mgbench.evaluate import cost
    from mgbench.job import load_data

    registry.import_plugins(config.plugins)
    data = load_data(config, "train")
    images = data.images[: config.train.batch_size]
    out = {}
    for name in config.models:
        model = registry.create_model(name, data.spec(), config.model_overrides.get(name), torch.device("cpu"))
        labels = data.labels[: len(images)] if model.conditional and data.labels is not None else None
        per_img = cost(model, images, labels)["train_gflops_per_img"]
        out[name] = (training_steps(config.train, per_img, name), per_img)
    return out
