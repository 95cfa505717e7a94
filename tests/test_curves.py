"""Metrics during training (mgbench.curves): when they are scored, that scoring them changes no
number of training, that a resumed job's curves equal an uninterrupted one's, the report's derived
quantities against hand computation, and TensorBoard's event files."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mgbench import curves, schema
from mgbench.config import EvalConfig, RunConfig, resolve
from mgbench.errors import UsageError
from mgbench.job import Job, run_job
from mgbench.report import curves as report_curves
from mgbench.report.aggregate import read_results
from mgbench.report.commands import build_report
from mgbench.results import ResultsStore
from mgbench.schema import is_timing, timing_columns
from mgbench.train import Checkpointer

# ---------------------------------------------------------------- when, and which metrics


def test_default_is_ten_evaluations_ending_at_the_last_step():
    assert curves.curve_steps(EvalConfig(), 1500) == list(range(150, 1501, 150))
    assert curves.curve_steps(EvalConfig(), 45) == [5, 10, 15, 20, 25, 30, 35, 40, 45]  # ceil(45 / 10) = 5
    assert curves.curve_steps(EvalConfig(every=400), 1000) == [400, 800, 1000]  # the last step always
    assert curves.curve_steps(EvalConfig(every=(10, 50, 5000)), 100) == [10, 50, 100]  # beyond the end: dropped
    assert curves.curve_steps(EvalConfig(every=0), 1000) == []
    # under a budget each model has its own steps: the default spreads ten evaluations over each
    assert len(curves.curve_steps(EvalConfig(), 512)) == len(curves.curve_steps(EvalConfig(), 1500)) == 10


def test_curve_metrics_are_the_cheap_ones_the_run_computes():
    assert curves.curve_metrics(EvalConfig()) == ("fid", "swd", "modes")
    assert curves.curve_metrics(EvalConfig(metrics=("swd", "kid", "fid"))) == ("fid", "swd")
    assert curves.curve_metrics(EvalConfig(metrics=("kid",))) == ()  # nothing cheap: no curves
    assert curves.curve_steps(EvalConfig(metrics=("kid",)), 100) == []
    assert curves.curve_metrics(EvalConfig(every_metrics=("kid",))) == ("kid",)
    small = curves.curve_config(EvalConfig(swd_images=1000, every_samples=300))
    assert (small.num_samples, small.swd_images, small.metrics) == (300, curves.SWD_IMAGES, ("fid", "swd", "modes"))
    # never more samples per curve point than the final evaluation scores
    assert curves.curve_config(EvalConfig(num_samples=24, lpips_pairs=20)).num_samples == 24


@pytest.mark.parametrize("raw, words", [
    ({"eval": {"every": -1}}, ["eval.every", "rising list"]),
    ({"eval": {"every": [50, 10]}}, ["eval.every", "rising list"]),
    ({"eval": {"every": [10, 10]}}, ["eval.every", "rising list"]),
    ({"eval": {"every": "often"}}, ["eval.every", "int or a list"]),
    ({"eval": {"every_samples": 5}}, ["every_samples", "at least 10"]),
    ({"eval": {"sampling_seeds": 0}}, ["sampling_seeds", "positive"]),
    ({"eval": {"metrics": ["fid"], "every_metrics": ["fid", "swd"]}}, ["every_metrics", "swd", "not among"]),
    ({"eval": {"every_metrics": []}}, ["every_metrics", "at least one"]),
])
def test_bad_curve_settings_are_usage_errors(raw, words):
    with pytest.raises(UsageError) as err:
        RunConfig.from_dict(raw)
    for word in words:
        assert word in err.value.problem


def test_every_takes_a_number_or_a_list_from_toml_and_flags(tmp_path):
    from mgbench.cli import build_config, make_parser

    file = tmp_path / "run.toml"
    file.write_text("[eval]\nevery = [100, 500]\n")
    assert resolve("quick", file).eval.every == (100, 500)
    assert resolve("quick", None, {"eval": {"every": 250}}).eval.every == 250
    args = make_parser().parse_args(["run", "--eval-every", "100,300", "--every-metrics", "fid,modes",
                                     "--every-samples", "200", "--sampling-seeds", "3"])
    cfg = build_config(args)
    assert (cfg.eval.every, cfg.eval.every_metrics, cfg.eval.every_samples, cfg.eval.sampling_seeds) == (
        (100, 300), ("fid", "modes"), 200, 3)
    assert build_config(make_parser().parse_args(["run", "--eval-every", "0"])).eval.every == 0


def test_curve_settings_change_no_hash():
    """They change no number of a results row (shown below), so compare and resume treat runs that
    differ only in them as one protocol."""
    base = resolve("smoke")
    other = resolve("smoke", None, {"eval": {"every": 7, "every_metrics": ["fid"], "every_samples": 100,
                                             "sampling_seeds": 4}, "train": {"tensorboard": True}})
    device = torch.device("cpu")
    for a, b in ((Job("dcgan", 0, base), Job("dcgan", 0, other)),):
        assert a.protocol_hash(device, "x") == b.protocol_hash(device, "x")
        assert a.spec_hash() == b.spec_hash()


# ---------------------------------------------------------------- leaving training alone


class TwoNets(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3)
        self.drop = nn.Dropout(0.5)


def test_isolated_rng_restores_every_global_generator():
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    with curves.isolated_rng(torch.device("cpu")):
        torch.rand(100), np.random.rand(100), random.random()
        torch.manual_seed(99)
        np.random.seed(99)
        random.seed(99)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_kept_modes_restores_each_module_even_after_an_error():
    class Model:
        networks = {"a": TwoNets(), "b": TwoNets()}

    model = Model()
    model.networks["a"].train()
    model.networks["b"].train()
    model.networks["b"].drop.eval()  # a module deliberately in eval mode inside a training network
    before = {k: [m.training for m in n.modules()] for k, n in model.networks.items()}
    with pytest.raises(RuntimeError), curves.kept_modes(model):
        for net in model.networks.values():
            net.eval()
        model.networks["a"].drop.train()
        raise RuntimeError("an evaluation that fails")
    assert {k: [m.training for m in n.modules()] for k, n in model.networks.items()} == before


# ---------------------------------------------------------------- end to end (in this process)

SMALL = {"models": ["dcgan", "lapgan"], "seeds": [0],
         "train": {"steps": 20, "checkpoint_every": 10, "log_every": 5},
         "eval": {"num_samples": 200, "swd_images": 200, "lpips_pairs": 50,
                  "metrics": ["fid", "kid", "prdc", "swd", "modes", "lpips_diversity"]}}
CURVES = {"every": 5, "every_metrics": ["fid", "swd", "modes"], "every_samples": 100}


def _config(tmp_path: Path, name: str, **eval_overrides: object) -> RunConfig:
    raw = {**SMALL, "out": str(tmp_path), "name": name, "eval": {**SMALL["eval"], **eval_overrides}}
    return resolve("smoke", None, raw)


def _rows(run_dir: Path, jobs: list[Job]) -> pd.DataFrame:
    store = ResultsStore(run_dir / "results.csv")
    for job in jobs:
        store.add(run_job(job, run_dir))
    return store.read()


@pytest.mark.slow
def test_curves_change_no_number_of_training_or_of_the_results(tmp_path):
    plain, with_curves = _config(tmp_path, "plain", every=0), _config(tmp_path, "curves", **CURVES)
    jobs = {name: [Job(m, 0, cfg) for m in cfg.models] for name, cfg in (("plain", plain), ("curves", with_curves))}
    a, b = (_rows(tmp_path / name, jobs[name]) for name in ("plain", "curves"))
    assert not (tmp_path / "plain" / "curves").exists()
    pd.testing.assert_frame_equal(a.drop(columns=timing_columns(a.columns)), b.drop(columns=timing_columns(b.columns)))
    assert (a["curves_s"] == 0).all() and (b["curves_s"] > 0).all()
    for model in plain.models:
        for part in (f"samples/{model}-seed0.png", f"losses/{model}-seed0.csv"):
            assert (tmp_path / "plain" / part).read_bytes() == (tmp_path / "curves" / part).read_bytes()
        curve = pd.read_csv(schema.curves_path(tmp_path / "curves", model, 0))
        assert list(curve.columns[:5]) == schema.CURVE_COLUMNS
        assert list(curve["step"]) == [5, 10, 15, 20]
        assert (curve["num_samples"] == 100).all()
        assert {"fid", "swd_mean", "modes_coarse", "modes_fine"} <= set(curve.columns)
        row = b[b["model"] == model].iloc[0]
        assert curve["train_gflops"].iloc[-1] == pytest.approx(row["train_gflops"])  # the curve ends where training did
        assert curve["images"].iloc[-1] == 20 * with_curves.train.batch_size
    build_report(tmp_path / "curves")  # the report shows them: in report.md and in index.html
    report = tmp_path / "curves" / "report"
    assert "curves-steps" in (report / "report.md").read_text()
    assert 'id="curves"' in (report / "index.html").read_text()


@pytest.mark.slow
def test_a_resumed_job_has_the_curves_of_an_uninterrupted_one(tmp_path, monkeypatch):
    cfg = _config(tmp_path, "ref", **CURVES)
    job = Job("dcgan", 0, cfg)
    reference = run_job(job, tmp_path / "ref")
    ref_curve = schema.curves_path(tmp_path / "ref", "dcgan", 0).read_bytes()

    # Interrupted right after the step-10 checkpoint: rows 5 and 10 are written, and (as if the
    # job had died after evaluating step 15 but before its next checkpoint) a row 15 that the
    # resumed job must replace.
    run_dir = tmp_path / "cut"
    save = Checkpointer.save

    def save_then_die(self: Checkpointer, model: object, state: object) -> None:
        save(self, model, state)
        if state.step == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_job(Job("dcgan", 0, cfg), run_dir)
    monkeypatch.undo()
    path = schema.curves_path(run_dir, "dcgan", 0)
    assert list(pd.read_csv(path)["step"]) == [5, 10]
    path.write_text(path.read_text() + "15,480,0.1,x,100,1e9,1e9,1,1,1,1,1,1,1,1,1,1\n")
    resumed = run_job(Job("dcgan", 0, cfg), run_dir)
    assert path.read_bytes() == ref_curve
    keep = [k for k in reference if not is_timing(k)]
    assert {k: resumed[k] for k in keep} == {k: reference[k] for k in keep}


@pytest.mark.slow
def test_tensorboard_holds_the_losses_and_the_curves_once(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = resolve("smoke", None, {**SMALL, "models": ["dcgan"], "out": str(tmp_path), "name": "tb",
                                  "train": {**SMALL["train"], "tensorboard": True},
                                  "eval": {**SMALL["eval"], **CURVES}})
    save = Checkpointer.save

    def save_then_die(self: Checkpointer, model: object, state: object) -> None:
        save(self, model, state)
        if state.step == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_job(Job("dcgan", 0, cfg), cfg.run_dir)
    monkeypatch.undo()
    run_job(Job("dcgan", 0, cfg), cfg.run_dir)  # resumed: the event files must not hold a step twice
    events = EventAccumulator(str(schema.tensorboard_dir(cfg.run_dir, "dcgan", 0)))
    events.Reload()
    losses = pd.read_csv(schema.losses_path(cfg.run_dir, "dcgan", 0))
    assert [e.step for e in events.Scalars("loss/d_loss")] == list(losses["step"])
    assert [e.value for e in events.Scalars("loss/g_loss")] == pytest.approx(list(losses["g_loss"]))
    curve = pd.read_csv(schema.curves_path(cfg.run_dir, "dcgan", 0))
    assert [e.step for e in events.Scalars("curve/fid")] == list(curve["step"])
    assert [e.value for e in events.Scalars("curve/fid")] == pytest.approx(list(curve["fid"]), rel=1e-6)


def test_tensorboard_missing_is_a_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    with pytest.raises(UsageError, match="needs the tensorboard package") as err:
        curves.require_tensorboard()
    assert "pip install tensorboard" in err.value.fix


# ---------------------------------------------------------------- the report's derived quantities


def _curve_run(tmp_path: Path, curves_by_job: dict[tuple[str, int], dict[str, list[float]]]) -> Path:
    """A run directory with results rows and curve files written by hand."""
    run_dir = tmp_path / "run"
    store = ResultsStore(run_dir / "results.csv")
    for (model, seed), columns in curves_by_job.items():
        store.add({"model": model, "seed": seed, "dataset": "shapes", "resolution": 16, "status": "ok",
                   "message": "", "feature_extractor": "domain-x", "lpips_backbone": "alex", "num_samples": 500,
                   "fid": 1.0})
        steps = columns.pop("step")
        per_step = 2.0 if model == "b" else 1.0  # b costs twice as much per step
        frame = pd.DataFrame({"step": steps, "images": [s * 10 for s in steps],
                              "train_gflops": [s * per_step for s in steps], "feature_extractor": "domain-x",
                              "num_samples": 100, **columns})
        path = schema.curves_path(run_dir, model, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    return run_dir


def test_derived_quantities_by_hand(tmp_path):
    fid = [100.0, 40.0, 30.0, 50.0, 35.0, 45.0]
    run_dir = _curve_run(tmp_path, {
        ("a", 0): {"step": [10, 20, 30, 40, 50, 60], "fid": list(fid), "modes_coarse": [1, 3, 4, 4, 2, 4]},
        ("b", 0): {"step": [10, 20, 30, 40, 50, 60], "fid": [90.0, 60, 50, 40, 30, 20], "modes_coarse": [4] * 6}})
    curves_table = report_curves.gather_curves(run_dir)
    derived = report_curves.derive(curves_table).set_index(["model", "metric"])
    a = derived.loc[("a", "fid")]
    assert (a["best"], a["best_step"], a["final"], a["gap"]) == (30.0, 30, 45.0, 15.0)
    u = np.array([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert a["auc"] == pytest.approx(np.trapezoid(fid, u))  # the mean over normalised progress
    # last third: steps ≥ 40 → 50, 35, 45: down then up, one turn
    assert a["changes"] == 1 and a["rel_std"] == pytest.approx(np.std([50, 35, 45]) / np.mean([50, 35, 45]))
    assert derived.loc[("a", "modes_coarse"), "best"] == 4 and derived.loc[("a", "modes_coarse"), "best_step"] == 30
    b = derived.loc[("b", "fid")]
    assert (b["best"], b["gap"], b["changes"], b["best_gflops"]) == (20.0, 0.0, 0, 120.0)

    events = report_curves.instability(curves_table).set_index("model")
    # a: FID 30 → 50 (≥ 1.5×) at step 40; a coarse mode lost at step 50 (4 → 2): two intervals
    assert events.loc["a", "collapse_events"] == 2 and events.loc["a", "collapse_steps"] == "40, 50"
    assert (events.loc["a", "fid_jumps"], events.loc["a", "modes_lost"]) == (1, 1)
    assert events.loc["b", "collapse_events"] == 0

    # equal compute: b spent 120 GFLOPs, a 60: both read at ≤ 60 GFLOPs (b's step 30)
    equal = report_curves.equal_compute(curves_table).set_index(["model", "metric"])
    assert equal.loc[("a", "fid"), "step"] == 60 and equal.loc[("b", "fid"), "step"] == 30
    assert equal.loc[("b", "fid"), "value"] == 50.0


def test_pareto_front():
    x = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([50.0, 60.0, 40.0, 45.0, 30.0, 30.0])
    assert list(report_curves.pareto_front(x, y, "lower")) == [0, 2, 4]
    assert list(report_curves.pareto_front(x, -y, "higher")) == [0, 2, 4]


def test_section_figures_and_csv_are_reproducible(tmp_path):
    rng = np.random.default_rng(0)
    jobs = {(m, s): {"step": [10, 20, 30], "fid": list(50 - np.arange(3) * 10 + rng.normal(0, 2, 3)),
                     "modes_coarse": [2, 3, 4]} for m in ("a", "b") for s in (0, 1, 2)}
    run_dir = _curve_run(tmp_path, jobs)
    results = read_results(run_dir / "results.csv")
    first = report_curves.write_section(run_dir, results)
    assert len(first.figures) == 2 and "## Metrics during training" in first.markdown
    files = {f: (run_dir / "report" / f).read_bytes() for f in first.figures + [report_curves.CURVES_FILE]}
    second = report_curves.write_section(run_dir, results)
    assert second.markdown == first.markdown
    assert {f: (run_dir / "report" / f).read_bytes() for f in files} == files
    curves_csv = pd.read_csv(run_dir / "report" / report_curves.CURVES_FILE)
    assert len(curves_csv) == 18 and {"model", "seed", "step", "curve_samples", "fid"} <= set(curves_csv.columns)
    assert report_curves.write_section(tmp_path / "none", results).markdown == ""  # no curves: no section
