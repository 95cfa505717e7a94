"""Equal compute budgets (mgbench.budget): steps from counted FLOPs, the config rules, and a job
that trains under a budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import pytest
import torch
from torch import nn

from mgbench import budget, registry
from mgbench.config import RunConfig, TrainConfig, resolve
from mgbench.contract import DataSpec, GenerativeModel
from mgbench.errors import UsageError
from mgbench.evaluate import cost
from mgbench.job import Job, load_data, run_job
from mgbench.report.curves import budget_heading, budget_table

# ---------------------------------------------------------------- the arithmetic


def test_steps_are_what_the_budget_buys_rounded_down():
    per_img, batch = 0.0123, 32
    step = per_img * batch
    train = TrainConfig(steps=None, batch_size=batch, budget_gflops=1000 * step + step / 2)
    assert budget.training_steps(train, per_img) == 1000
    for k in (1, 7, 1000, 1500, 123_457):  # exactly k steps' worth buys k, whatever the rounding of k · step
        exact = TrainConfig(steps=None, batch_size=batch, budget_gflops=k * step)
        assert budget.training_steps(exact, per_img) == k
    assert budget.training_steps(TrainConfig(steps=None, batch_size=32, budget_images=3200 + 31), per_img) == 100
    assert budget.training_steps(TrainConfig(steps=77), per_img) == 77  # steps: as given
    with pytest.raises(UsageError, match="less than one training step"):
        budget.training_steps(TrainConfig(steps=None, batch_size=batch, budget_gflops=step / 2), per_img, "dcgan")
    with pytest.raises(UsageError, match="no counted training FLOPs"):
        budget.training_steps(TrainConfig(steps=None, budget_gflops=10.0), 0.0)
    cols = budget.budget_columns(TrainConfig(steps=None, batch_size=batch, budget_gflops=500.0), 1000, per_img)
    assert cols == {"train_gflops": pytest.approx(1000 * step), "budget_gflops": 500.0}
    assert budget.budget_columns(TrainConfig(steps=10, batch_size=batch), 10, per_img) == {
        "train_gflops": pytest.approx(10 * step)}


# ---------------------------------------------------------------- the config


@pytest.mark.parametrize("train, words", [
    ({"steps": 100, "budget_gflops": 5.0}, ["exactly one", "train.steps = 100", "train.budget_gflops = 5.0"]),
    ({"steps": None, "budget_gflops": 5.0, "budget_images": 100}, ["exactly one", "budget_images = 100"]),
    ({"steps": None}, ["exactly one", "got none"]),
    ({"steps": None, "budget_gflops": -1.0}, ["train.budget_gflops must be positive"]),
])
def test_one_training_length_per_config(train, words):
    with pytest.raises(UsageError) as err:
        RunConfig.from_dict({"train": train})
    for word in words:
        assert word in err.value.problem


def test_a_budget_given_later_replaces_the_presets_steps(tmp_path):
    cfg = resolve("quick", None, {"train": {"budget_gflops": 200.0}})
    assert (cfg.train.steps, cfg.train.budget_gflops) == (None, 200.0)
    file = tmp_path / "run.toml"
    file.write_text("[train]\nbudget_images = 48000\n")
    assert (resolve("quick", file).train.steps, resolve("quick", file).train.budget_images) == (None, 48000)
    # a flag after the file decides again, whichever length each names
    assert resolve("quick", file, {"train": {"steps": 10}}).train == TrainConfig(
        steps=10, batch_size=32, checkpoint_every=500, log_every=50)
    # two lengths in one layer: refused
    file.write_text("[train]\nsteps = 10\nbudget_gflops = 5.0\n")
    with pytest.raises(UsageError, match="exactly one"):
        resolve("quick", file)
    from mgbench.cli import build_config, make_parser

    args = make_parser().parse_args(["run", "--budget-gflops", "1e3"])
    assert build_config(args).train.budget_gflops == 1000.0
    assert build_config(args).train.steps is None


def test_a_budget_is_part_of_the_protocol_and_no_budget_leaves_the_hashes_alone():
    device = torch.device("cpu")
    steps = Job("dcgan", 0, resolve("quick"))
    gflops = Job("dcgan", 0, resolve("quick", None, {"train": {"budget_gflops": 200.0}}))
    images = Job("dcgan", 0, resolve("quick", None, {"train": {"budget_images": 48_000}}))
    hashes = {j.protocol_hash(device, "x") for j in (steps, gflops, images)}
    assert len(hashes) == 3 and len({j.spec_hash() for j in (steps, gflops, images)}) == 3
    # a run without a budget hashes the keys it hashed before budgets existed
    from mgbench.config import hashed

    assert set(hashed("train", steps.config.to_dict()["train"])) == {"steps", "batch_size", "checkpoint_every",
                                                                      "log_every"}


# ---------------------------------------------------------------- counting FLOPs


@dataclass(frozen=True)
class LinearConfig:
    width: int = 64


class LinearModel(GenerativeModel):
    """One linear map z → image: its FLOPs per training image are known by hand."""

    Config = LinearConfig

    def __init__(self, config: LinearConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.out = data.channels * data.resolution ** 2
        self.net = nn.Linear(config.width, self.out, bias=False).to(device)
        self.networks = {"net": self.net}
        self.optimizers = {"opt": torch.optim.SGD(self.net.parameters(), lr=1e-3)}

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        z = torch.randn(len(images), self.config.width, device=self.device)
        loss = ((self.net(z) - images.flatten(1)) ** 2).mean()
        self.optimizers["opt"].zero_grad()
        loss.backward()
        self.optimizers["opt"].step()
        return {"loss": loss.detach()}

    def sample(self, n: int, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            z = torch.randn(n, self.config.width, generator=generator, device=self.device)
            return self.net(z).tanh().view(n, self.data.channels, self.data.resolution, self.data.resolution)


def test_counted_flops_are_the_matrix_products_by_hand():
    """Forward z·Wᵀ: 2·B·w·D; backward, the weight's gradient only (z needs none): 2·B·w·D more."""
    data = DataSpec(channels=1, resolution=8)
    model = LinearModel(LinearConfig(width=16), data, torch.device("cpu"))
    batch = torch.zeros(32, 1, 8, 8, dtype=torch.uint8)
    costs = cost(model, batch, None)
    assert costs["train_gflops_per_img"] * 1e9 == pytest.approx(4 * 16 * 64)
    assert costs["gflops_per_sample"] * 1e9 == pytest.approx(2 * 16 * 64)
    train = TrainConfig(steps=None, batch_size=32, budget_gflops=1e-3)
    steps = budget.training_steps(train, costs["train_gflops_per_img"])
    assert steps == math.floor(1e-3 * 1e9 / (4 * 16 * 64 * 32))


def test_a_budget_equalises_the_four_baselines_within_one_step():
    """The quick recipe at 32 px: a budget of DCGAN's 1,500 steps × 32 images gives each baseline
    steps whose training FLOPs are within one of its steps below the budget, never above."""
    small = {"data": {"train_size": 64, "reference_size": 16}}  # the FLOPs of a step need one batch
    per_img = {m: p for m, (_, p) in budget.planned_steps(resolve("quick", None, small)).items()}
    assert set(per_img) == {"dcgan", "vae", "cgan", "lapgan"} and min(per_img.values()) > 0
    assert {m: p for m, (_, p) in budget.planned_steps(resolve("quick", None, small)).items()} == per_img  # exact
    equal = 1500 * 32 * per_img["dcgan"]
    planned = budget.planned_steps(resolve("quick", None, {**small, "train": {"budget_gflops": equal}}))
    steps = {m: s for m, (s, _) in planned.items()}
    assert steps["dcgan"] == 1500  # the budget is DCGAN's own
    for name, n in steps.items():
        spent = budget.spent_gflops(n, 32, per_img[name])
        one_step = budget.spent_gflops(1, 32, per_img[name])
        assert equal - one_step < spent <= equal * (1 + budget.ROUNDING), name
    assert steps["lapgan"] < steps["dcgan"] < steps["vae"]  # LAPGAN trains three GANs a step; a VAE step is cheap
    print("\nsteps under DCGAN's budget:", {m: (steps[m], round(per_img[m], 5)) for m in steps})


# ---------------------------------------------------------------- a job under a budget


@pytest.mark.slow
def test_a_job_trains_for_what_its_budget_buys(tmp_path):
    probe = resolve("smoke", None, {"models": ["dcgan", "lapgan"], "seeds": [0]})
    data = load_data(probe, "train")
    images = data.images[:probe.train.batch_size]
    per_img = {m: cost(registry.create_model(m, data.spec(), probe.model_overrides.get(m), torch.device("cpu")),
                       images, None)["train_gflops_per_img"] for m in probe.models}
    budget_gflops = 12 * probe.train.batch_size * per_img["lapgan"]  # LAPGAN's 12 steps
    cfg = resolve("smoke", None, {"models": ["dcgan", "lapgan"], "seeds": [0], "out": str(tmp_path),
                                  "train": {"budget_gflops": budget_gflops, "checkpoint_every": 10,
                                            "log_every": 5},
                                  "eval": {"num_samples": 100, "metrics": ["fid", "modes"], "every": 0}})
    rows = pd.DataFrame([run_job(Job(m, 0, cfg), tmp_path / "run") for m in cfg.models])
    by_model = rows.set_index("model")
    assert by_model.loc["lapgan", "steps"] in (11, 12)
    assert by_model.loc["dcgan", "steps"] == math.floor(budget_gflops / (probe.train.batch_size * per_img["dcgan"]))
    assert (rows["budget_gflops"] == budget_gflops).all() and (rows["train_gflops"] <= budget_gflops).all()
    assert budget_heading(rows.assign(status="ok")) == f"Equal compute: {budget_gflops:,.6g} GFLOPs of training per job"
    table = budget_table(rows.assign(status="ok"))
    assert f"| dcgan | {by_model.loc['dcgan', 'steps']:,} |" in table
    assert budget_heading(rows.drop(columns=["budget_gflops"]).assign(status="ok")) is None
