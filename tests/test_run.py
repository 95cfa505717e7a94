"""End to end: `mgbench run` through the CLI, as a user runs it."""

import json
from pathlib import Path

import pandas as pd
import pytest

from mgbench.cli import main
from mgbench.registry import list_models
from mgbench.schema import timing_columns

MODELS = list_models()  # the determinism test covers every registered model

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent


def run(*argv: str) -> int:
    return main(["run", *argv])


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert run("--preset", "smoke", "--out", str(out)) == 0
    return out / "smoke"


def test_smoke_run_writes_every_output(smoke_dir):
    rows = pd.read_csv(smoke_dir / "results.csv")
    assert sorted(rows["model"]) == ["cgan", "dcgan", "lapgan", "noise", "real-data", "vae"]
    assert (rows["status"] == "ok").all(), rows[["model", "status", "message"]]
    results = rows[~rows["model"].isin(["real-data", "noise"])]
    assert (results["steps"] == 40).all()
    assert rows["feature_extractor"].nunique() == 1 and rows["feature_extractor"][0].startswith("domain-")
    by_model = rows.set_index("model")
    assert by_model.loc["real-data", "fid"] < by_model.loc["noise", "fid"]
    assert by_model.loc["real-data", "modes_joint"] == 16  # real images cover every joint mode
    assert {"swd_16px", "swd_8px", "swd_mean", "cond_acc", "lpips_recon"} <= set(rows.columns)
    assert (smoke_dir / "report" / "summary.csv").exists() and (smoke_dir / "report" / "report.md").exists()
    for model in results["model"]:
        assert (smoke_dir / "samples" / f"{model}-seed0.png").stat().st_size > 0
        assert len(pd.read_csv(smoke_dir / "losses" / f"{model}-seed0.csv")) == 4  # log_every 10
        assert (smoke_dir / "checkpoints" / f"{model}-seed0.pt").exists()
    manifest = json.loads((smoke_dir / "manifest.json").read_text())
    for key in ("python", "versions", "cpu", "torch_threads", "device", "native_bf16", "command"):
        assert key in manifest
    assert manifest["versions"]["torch-fidelity"] == "0.4.0"
    config = json.loads((smoke_dir / "config.json").read_text())
    assert config["train"]["steps"] == 40


def test_rerun_of_a_finished_run_skips_every_job(smoke_dir):
    before = (smoke_dir / "results.csv").read_bytes()
    assert run("--resume", str(smoke_dir)) == 0
    assert (smoke_dir / "results.csv").read_bytes() == before


def test_same_command_twice_gives_identical_results(tmp_path):
    argv = ["--preset", "smoke", "--models", ",".join(MODELS), "--steps", "20"]
    assert run(*argv, "--out", str(tmp_path / "a")) == 0
    assert run(*argv, "--out", str(tmp_path / "b")) == 0
    a, b = (pd.read_csv(tmp_path / d / "smoke" / "results.csv") for d in "ab")
    pd.testing.assert_frame_equal(a.drop(columns=timing_columns(a.columns)), b.drop(columns=timing_columns(b.columns)))
    for model in MODELS:
        grid = f"samples/{model}-seed0.png"
        assert (tmp_path / "a/smoke" / grid).read_bytes() == (tmp_path / "b/smoke" / grid).read_bytes()
        losses = f"losses/{model}-seed0.csv"
        assert (tmp_path / "a/smoke" / losses).read_text() == (tmp_path / "b/smoke" / losses).read_text()


def test_outside_model_runs_through_the_same_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))  # the job process inherits sys.path (spawn)
    code = run("--preset", "smoke", "--plugin", "plugin_models", "--models", "pixel-gaussian",
               "--out", str(tmp_path))
    assert code == 0
    results = pd.read_csv(tmp_path / "smoke" / "results.csv").set_index("model")
    assert sorted(results.index) == ["noise", "pixel-gaussian", "real-data"]
    assert results.loc["pixel-gaussian", "status"] == "ok" and results.loc["pixel-gaussian", "fid"] > 0
    assert (tmp_path / "smoke" / "samples" / "pixel-gaussian-seed0.png").exists()


def test_unknown_model_exits_2_without_traceback(tmp_path, capsys):
    assert run("--models", "dcgna", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "dcgna" in err and "dcgan" in err and "Traceback" not in err
    assert not (tmp_path / "quick").exists()  # nothing written before the check
