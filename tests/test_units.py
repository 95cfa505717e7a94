"""Metrics and datasets are registered units: a plugin adds one with no edit to mgbench, the
report learns its columns from the unit, and the catalogue loads without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from mgbench.cli import main
from mgbench.config import RunConfig
from mgbench.data import load_dataset
from mgbench.evaluate import Evaluator
from mgbench.metrics import registry
from mgbench.schema import JOB_COLUMNS

TESTS = Path(__file__).parent


def test_the_catalogue_loads_without_torch():
    code = ("import sys\n"
            "from mgbench.metrics import registry\n"
            "from mgbench.report import aggregate, tables\n"
            "assert registry.direction('fid') == 'lower' and registry.direction('swd_16px') == 'lower'\n"
            "assert registry.direction('modes_coarse') == 'higher' and registry.direction('lpips_diversity') is None\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_column_of_the_published_reports_has_its_unit():
    df = pd.read_csv(TESTS.parent / "reports" / "quick-shapes-cpu" / "results.csv")
    scored = [c for c in df.columns if c not in JOB_COLUMNS and c.startswith((
        "fid", "kid", "is_", "precision", "recall", "density", "coverage", "lpips", "swd", "modes", "kl_", "cond"))]
    assert scored and all(registry.owner(c) is not None for c in scored)
    assert registry.owner("loss_g") is None and registry.owner("train_img_per_s") is None


def test_list_metrics_and_datasets_include_a_plugins_units(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    assert main(["list", "--metrics", "--plugin", "plugin_units"]) == 0
    out = capsys.readouterr().out
    assert "fid ↓" in out and "swd_{level}px ↓" in out and "modes_{head} ↑" in out
    assert "brightness_gap ↓" in out and "Plugin scores" in out
    assert main(["list", "--datasets", "--plugin", "plugin_units"]) == 0
    out = capsys.readouterr().out
    assert "shapes" in out and "coarse, fine" in out and "bars" in out and "orientation" in out


def test_selecting_metrics_changes_no_other_metrics_numbers(tmp_path, monkeypatch):
    """Each metric draws from its own stream: FID∞ and SWD do not move when others are left out."""
    monkeypatch.setenv("MGBENCH_CACHE", str(tmp_path / "cache"))
    data = {"name": "shapes", "resolution": 16, "train_size": 600, "reference_size": 200}
    reference = load_dataset("shapes", "reference", resolution=16, reference_size=200)
    train = load_dataset("shapes", "train", resolution=16, train_size=600)
    samples = load_dataset("shapes", "train", resolution=16, train_size=800).images[600:]

    def scores(metrics):
        cfg = RunConfig.from_dict({"data": data, "eval": {"num_samples": 200, "swd_images": 100, "lpips_pairs": 50,
                                                         "metrics": metrics, "feature_extractor": "domain"}})
        return Evaluator(cfg, torch.device("cpu"), reference, train).score(samples, seed=3)

    everything = scores(None)
    some = scores(["swd", "fid"])
    assert {k for k in some if k.startswith(("swd", "fid"))} == {k for k in everything if k.startswith(("swd", "fid"))}
    for key in ("fid", "fid_inf", "swd_mean", "swd_16px"):
        assert some[key] == everything[key], key
    assert "kid_mean" not in some and "precision" not in some and "kid_mean" in everything
    only_swd = scores(["swd"])
    assert only_swd["feature_extractor"] == "none" and only_swd["lpips_backbone"] == ""  # nothing built for it


@pytest.mark.slow
def test_a_plugin_metric_and_dataset_run_end_to_end(tmp_path):
    """A run on the plugin's dataset with its metric: its factor becomes the mode-count head, its
    metric a column with a direction and its own report section — no edit to mgbench."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
               MGBENCH_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "mgbench", "run", "--preset", "smoke", "--plugin", "plugin_units",
           "--dataset", "bars", "--models", "dcgan", "--steps", "20", "--num-samples", "200",
           "--metrics", "fid,modes,brightness_gap", "--out", str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    df = pd.read_csv(tmp_path / "smoke" / "results.csv")
    assert {"brightness_gap", "modes_orientation", "kl_orientation", "fid"} <= set(df.columns)
    assert not any(c.startswith(("swd", "kid", "precision")) for c in df.columns)
    summary = (tmp_path / "smoke" / "report" / "summary.md").read_text()
    assert "### Plugin scores" in summary and "brightness_gap ↓" in summary and "modes_orientation ↑" in summary


def test_the_memorization_unit_flags_a_copier_and_not_a_fresh_draw(tmp_path, monkeypatch):
    """Through the evaluation as a run calls it: a model that returns training images is flagged on
    every memorisation score; one that draws new images from the same process is not; the
    real-data calibration row (training images by construction) is not scored."""
    monkeypatch.setenv("MGBENCH_CACHE", str(tmp_path / "cache"))
    data = {"name": "shapes", "resolution": 16, "train_size": 1000, "reference_size": 300}
    reference = load_dataset("shapes", "reference", resolution=16, reference_size=300)
    train = load_dataset("shapes", "train", resolution=16, train_size=1000)
    cfg = RunConfig.from_dict({"data": data, "eval": {"num_samples": 300, "feature_extractor": "domain",
                                                     "metrics": ["memorization"]}})
    evaluator = Evaluator(cfg, torch.device("cpu"), reference, train)
    copier = evaluator.score(train.images[:300], seed=0)
    assert len(evaluator.artifacts["closest"]) == 32  # 16 pairs: sample, training image
    assert torch.equal(evaluator.artifacts["closest"][0], evaluator.artifacts["closest"][1])  # a twin
    fresh = evaluator.score(load_dataset("shapes", "train", resolution=16, train_size=1300).images[1000:], seed=0)
    assert copier["copy_rate_pixel"] == 1.0 and copier["copy_rate_feature"] == 1.0
    assert copier["nn_pixel_ratio"] < 0.01 and copier["ct"] < -5 and copier["authpct"] < 5
    assert fresh["copy_rate_pixel"] < 0.05 and fresh["copy_rate_feature"] < 0.05
    assert 0.8 < fresh["nn_pixel_ratio"] < 1.25 and abs(fresh["ct"]) < 3 and fresh["authpct"] > 50
    calibration = evaluator.score(train.images[:300], seed=0, drawn_from_train=True)
    assert "copy_rate_pixel" not in calibration
