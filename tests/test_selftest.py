"""`mgbench selftest`: the runner (limits, failures, the table) and each part's code path on the CPU.

The parts run here at the dry run's tiny sizes: the same functions a GPU machine runs, on the CPU.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch

from mgbench import selftest


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny() -> selftest.Sizes:
    selftest.register_baselines()
    return selftest.Sizes.tiny()


def test_without_cuda_it_says_so_and_runs_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(selftest, "run_selftest", lambda *a, **k: pytest.fail("ran something"))
    parser = selftest.argparse.ArgumentParser()
    selftest.add_arguments(parser)
    assert selftest.selftest_command(parser.parse_args(["--gpu", "--out", str(tmp_path)])) == 0
    assert "no CUDA device" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_add_command_registers_selftest_with_its_options():
    import argparse

    parser = argparse.ArgumentParser()
    selftest.add_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["selftest", "--gpu", "--out", "reports/gpu", "--parts", "scoring-pass"])
    assert args.func is selftest.selftest_command and args.parts == ["scoring-pass"] and args.out == "reports/gpu"
    assert sum(selftest.PARTS.values()) <= selftest.TOTAL_SECONDS <= 8 * 60


def test_run_bounded_kills_the_command_and_its_children():
    """A part that hangs must not leave its `mgbench run` job processes behind, even those that
    started a session of their own."""
    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); "
              "print(p.pid, flush=True); time.sleep(60)")
    start = time.monotonic()
    code, out, _ = selftest.run_bounded([sys.executable, "-c", script], timeout=3, env=dict(os.environ))
    assert code is None and time.monotonic() - start < 30
    grandchild = int(out.split()[0])
    time.sleep(0.5)
    stat = Path(f"/proc/{grandchild}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # gone or a zombie


def test_a_failing_part_is_a_row_not_the_end(monkeypatch, capsys, tiny, tmp_path):
    def boom(sizes, workdir, timeout):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setitem(selftest.PART_FUNCTIONS, "precision", boom)
    assert selftest.part_main("precision", tiny, tmp_path, time.time() + 30) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rows[0]["value"] == "FAILED" and rows[0]["status"] == "failed"
    assert "RuntimeError: CUDA error: out of memory" in rows[0]["note"]


def test_runner_goes_on_after_failures_and_time_outs_skips_past_the_deadline_and_writes_tables(monkeypatch, tmp_path):
    calls = []

    def fake_part(name, sizes, workdir, timeout):
        calls.append((name, timeout))
        if name == "determinism":
            return [{**selftest._row(name, "(part)", "TIMED OUT"), "status": "timeout", "seconds": timeout}]
        if name == "precision":
            return [{**selftest._row(name, "(part)", "FAILED", "a | pipe"), "status": "failed", "seconds": 1.0}]
        if name == "dcgan-vs-plain":
            time.sleep(1.2)  # uses up the rest of the budget
        return [{**selftest._row(name, "m", 1.5), "status": "ok", "seconds": 0.1}]

    monkeypatch.setattr(selftest, "run_part", fake_part)
    monkeypatch.setattr(selftest, "MIN_PART_SECONDS", 0.5)
    rows = selftest.run_selftest(selftest.Sizes(device="cuda"), tmp_path, total_seconds=1.5)
    assert [r["part"] for r in rows] == list(selftest.PARTS)  # every part has a row
    status = {r["part"]: r["status"] for r in rows}
    assert status["environment"] == "ok" and status["determinism"] == "timeout" and status["precision"] == "failed"
    assert status["scoring-pass"] == status["smoke"] == status["quick"] == "skipped"
    assert all(timeout <= 1.5 for _, timeout in calls)  # no part gets more than what is left
    with (tmp_path / "selftest.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["part"] for r in table] == [r["part"] for r in rows]
    markdown = (tmp_path / "selftest.md").read_text()
    assert markdown.startswith("| part | measure | value |") and "a \\| pipe" in markdown


def test_run_part_in_a_child_process(tiny, tmp_path):
    rows = selftest.run_part("environment", tiny, tmp_path, timeout=120)
    assert all(r["status"] == "ok" for r in rows), rows
    assert {r["measure"]: r["value"] for r in rows}["torch"] == torch.__version__
    broken = selftest.run_part("no-such-part", tiny, tmp_path, timeout=120)
    assert broken[0]["status"] == "failed" and "KeyError" in broken[0]["note"]


# --- the parts' code paths, at the dry run's sizes ------------------------------------------------


def test_precision_part(tiny, tmp_path):
    rows = {r["measure"]: r for r in selftest.part_precision(tiny, tmp_path, 60)}
    assert rows["DCGAN 16px train img/s, float32"]["value"] > 0
    assert rows["DCGAN 16px train img/s, bf16 autocast"]["value"] > 0
    drift = rows["loss drift bf16 vs float32: max abs Δ d_loss, g_loss"]["value"]
    d, g = (float(x) for x in drift.split(","))
    assert 0 < d < 0.5 and 0 <= g < 0.5  # bf16 changes the numbers a little, not a lot


def test_dcgan_against_the_plain_loop_part(tiny, tmp_path):
    rows = selftest.part_dcgan_vs_plain(tiny, tmp_path, 60)
    rates = [r["value"] for r in rows[:2]]
    assert all(rate > 0 for rate in rates)
    assert rows[2]["value"] == round(rates[0] / rates[1], 2)
    assert "TFLOP/s" in rows[0]["note"] and torch.get_default_device() == torch.device("cpu")


def test_scoring_pass_part_agrees_with_torch_fidelity(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights-here"))
    rows = {r["measure"]: r for r in selftest.part_scoring_pass(tiny, tmp_path, 60)}
    assert "RANDOM weights" in rows["mgbench pass, TF32 off img/s"]["note"]
    assert float(rows["mgbench pass, TF32 off: pool vs torch-fidelity"]["value"]) < 1e-5
    assert rows["torch-fidelity forward, TF32 off img/s"]["value"] > 0


@pytest.mark.slow
def test_determinism_part_runs_the_harness_check_twice(tiny, tmp_path):
    rows = selftest.part_determinism(tiny, tmp_path, 300)
    assert rows[0]["value"] == "yes", rows[0]["note"]
    assert "identical" in rows[0]["note"]


def test_the_runs_it_starts_are_valid_configs(tiny, tmp_path):
    """What the determinism, smoke and quick parts hand the harness parses into a RunConfig and
    plans jobs (without training): a bad override fails here in seconds, not after minutes."""
    from mgbench.cli import build_config, make_parser
    from mgbench.runner import plan

    config = selftest._run_config(tiny, tmp_path, "determinism", {"deterministic": True, **tiny.determinism})
    assert config.deterministic and list(config.models) == ["dcgan"] and list(config.plugins) == ["mgbench.selftest"]
    assert len(plan(config)) == 1
    for preset, flags in (("smoke", []), ("quick", list(tiny.quick_flags))):
        toml = tmp_path / f"{preset}.toml"
        toml.write_text(selftest._dry_run_toml(tmp_path))
        args = make_parser().parse_args(["run", "--preset", preset, *flags, *tiny.run_flags, "--device", "cpu",
                                         "--out", str(tmp_path), "--plugin", "mgbench.selftest",
                                         "--config", str(toml)])
        cfg = build_config(args)
        assert list(cfg.models) == ["dcgan"] and cfg.train.steps == 2 and cfg.eval.feature_extractor == "inception"
        assert len(plan(cfg)) == 1
