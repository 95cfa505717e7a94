"""Nothing lost: isolated failures, resume after kill -9, the run lock, the determinism guard."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mgbench.cli import main
from mgbench.config import RunConfig
from mgbench.presets import preset
from mgbench.runner import run_lock
from mgbench.schema import timing_columns

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent


def test_failing_jobs_are_isolated_and_recorded(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    code = main(["run", "--preset", "smoke", "--plugin", "plugin_models", "--steps", "20",
                 "--models", "pixel-gaussian,test-diverges,test-raises,test-dies", "--out", str(tmp_path)])
    assert code == 1  # some jobs did not finish ok
    rows = pd.read_csv(tmp_path / "smoke" / "results.csv").set_index("model")
    assert rows.loc["pixel-gaussian", "status"] == "ok"
    assert rows.loc["test-diverges", "status"] == "diverged"
    assert "non-finite loss at step 10" in rows.loc["test-diverges", "message"]
    assert rows.loc["test-raises", "status"] == "failed"
    assert "boom in train_step" in rows.loc["test-raises", "message"]
    assert (tmp_path / "smoke" / "logs" / "test-raises-seed0.log").read_text().count("Traceback") == 1
    assert rows.loc["test-dies", "status"] == "crashed"
    assert rows.loc["real-data", "status"] == "ok"  # the run went on after every failure


def test_second_run_on_a_locked_directory_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "smoke"
    run_dir.mkdir()
    with run_lock(run_dir):
        assert main(["run", "--preset", "smoke", "--out", str(tmp_path)]) == 2
    assert "another mgbench run is using" in capsys.readouterr().err


RESUMABLE = """
preset = "smoke"
models = ["{model}"]
[train]
steps = 120
checkpoint_every = 20
log_every = 10
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mgbench", "run", *args]


@pytest.mark.parametrize("model", ["dcgan", "progan", "msggan"])  # progan: killed mid-fade
def test_resume_after_kill_gives_the_uninterrupted_results(model, tmp_path):
    """Kill -9 the whole run (parent and job process) at several points, resume, compare."""
    config = tmp_path / "run.toml"
    config.write_text(RESUMABLE.format(model=model))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    assert subprocess.run(_cli("--config", str(config), "--out", str(tmp_path / "ref")), env=env,
                          capture_output=True).returncode == 0
    reference = pd.read_csv(tmp_path / "ref" / "smoke" / "results.csv")

    run_dir = tmp_path / "killed" / "smoke"
    checkpoint = run_dir / "checkpoints" / f"{model}-seed0.json"
    kill_points = [  # (what we wait for, description)
        (lambda: checkpoint.exists() and '"step": 20' in checkpoint.read_text(), "after the step-20 checkpoint"),
        (lambda: checkpoint.exists() and '"step": 60' in checkpoint.read_text(), "after the step-60 checkpoint"),
    ]
    for ready, _ in kill_points:
        proc = subprocess.Popen(_cli("--config", str(config), "--out", str(tmp_path / "killed")), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (run_dir / "results.csv").exists() or model not in (run_dir / "results.csv").read_text()
    done = subprocess.run(_cli("--resume", str(run_dir)), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed = pd.read_csv(run_dir / "results.csv")
    pd.testing.assert_frame_equal(reference.drop(columns=timing_columns(reference.columns)),
                                  resumed.drop(columns=timing_columns(resumed.columns)))
    assert (tmp_path / f"ref/smoke/samples/{model}-seed0.png").read_bytes() == \
        (run_dir / f"samples/{model}-seed0.png").read_bytes()


def test_check_determinism_reports_identical_runs(tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--models", "vae", "--steps", "20", "--check-determinism",
                 "--out", str(tmp_path)]) == 0
    assert "identical" in capsys.readouterr().out


def test_a_score_left_out_of_both_runs_is_no_difference():
    from mgbench.runner import _same_value

    nan = float("nan")  # e.g. a copy rate on too few held-out images: empty in both runs
    assert _same_value(nan, nan) and _same_value(1.5, 1.5) and _same_value("ok", "ok")
    assert not _same_value(nan, 1.5) and not _same_value(1.5, 1.25) and not _same_value(None, nan)


def test_checkpoint_from_another_config_is_refused(tmp_path, capsys):
    smoke = preset("smoke")
    cfg = RunConfig.from_dict(dict(smoke, models=["dcgan"], out=str(tmp_path),
                                   model_overrides={"dcgan": smoke["model_overrides"]["dcgan"]}))
    ckpt = tmp_path / "smoke" / "checkpoints"
    ckpt.mkdir(parents=True)
    (tmp_path / "smoke" / "config.json").write_text(cfg.to_json())
    (ckpt / "dcgan-seed0.pt").write_bytes(b"")
    (ckpt / "dcgan-seed0.json").write_text('{"spec_hash": "0000", "step": 20}')
    assert main(["run", "--resume", str(tmp_path / "smoke")]) == 2
    assert "written by another model or config" in capsys.readouterr().err
