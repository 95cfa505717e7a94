"""The console: each warning once per run across processes, bars kept whole, -q / -v."""

import logging
import os
import subprocess
import sys

import pytest

from mgbench import console


def _record(level: int, text: str) -> logging.LogRecord:
    return logging.LogRecord("mgbench.x", level, __file__, 1, text, None, None)


def test_a_warning_passes_once_per_run_in_any_process(tmp_path, monkeypatch):
    monkeypatch.setenv(console.WARNED_ENV, str(tmp_path / "marks"))
    parent, job = console.OncePerRun(), console.OncePerRun()  # two processes' filters, one run
    assert parent.filter(_record(logging.WARNING, "LPIPS: random backbone"))
    assert not job.filter(_record(logging.WARNING, "LPIPS: random backbone"))
    assert job.filter(_record(logging.WARNING, "another warning"))
    assert job.filter(_record(logging.ERROR, "an error")) and job.filter(_record(logging.ERROR, "an error"))
    assert job.filter(_record(logging.INFO, "cache hit")) and not parent.filter(_record(logging.INFO, "cache hit"))
    assert job.filter(_record(logging.DEBUG, "debug")) and job.filter(_record(logging.DEBUG, "debug"))
    console.start_run(tmp_path)  # a new run (or a resume): nothing marked
    assert console.OncePerRun().filter(_record(logging.WARNING, "LPIPS: random backbone"))


def test_without_a_run_the_marks_are_kept_in_memory(monkeypatch):
    monkeypatch.delenv(console.WARNED_ENV, raising=False)
    once = console.OncePerRun()
    assert once.filter(_record(logging.WARNING, "w")) and not once.filter(_record(logging.WARNING, "w"))


@pytest.mark.parametrize("argv, level", [(["run"], logging.INFO), (["run", "-q"], logging.WARNING),
                                         (["run", "--verbose"], logging.DEBUG)])
def test_levels(argv, level):
    assert console.level_from_argv(argv) == level


@pytest.mark.slow
def test_a_run_prints_the_lpips_warning_once_and_quiet_hides_the_info_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (console.WARNED_ENV, console.LEVEL_ENV)}
    env["TORCH_HOME"] = str(tmp_path / "torch-home")  # no AlexNet weights: LPIPS warns
    argv = [sys.executable, "-m", "mgbench", "run", "--preset", "smoke", "--models", "dcgan,vae", "--steps", "20",
            "--metrics", "fid,lpips_diversity", "--out", str(tmp_path)]
    loud = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert loud.stderr.count("RANDOM backbone") == 1  # calibration rows and two jobs: printed once
    assert loud.stderr.count("held-out accuracy") == 1  # every job process loads the classifier: said once
    quiet = subprocess.run([*argv, "--name", "quiet", "-q"], env=env, capture_output=True, text=True, timeout=900)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stderr.count("RANDOM backbone") == 1 and "reference features" not in quiet.stderr
    assert "Traceback" not in loud.stderr + quiet.stderr
