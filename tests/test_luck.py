"""How much of a score is luck (mgbench.sampling, mgbench.report.luck): the variance split against
scipy's one-way ANOVA and against known components, the power statement, and a run with several
sample draws per model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from mgbench import schema, stats
from mgbench.config import resolve
from mgbench.job import Job, run_job
from mgbench.report import luck
from mgbench.report.aggregate import read_results
from mgbench.results import ResultsStore
from mgbench.sampling import SAMPLING_SEED, draw_seeds
from mgbench.schema import is_timing

KEYS = {"dataset": "shapes", "resolution": 16, "feature_extractor": "domain-x", "lpips_backbone": "alex",
        "num_samples": 500}


def _run(tmp_path: Path, scores: dict[str, np.ndarray], calibration: dict[str, float] | None = None) -> Path:
    """A run directory whose model m has sampling files with scores[m][seed, draw] as its FID."""
    run_dir = tmp_path / "run"
    store = ResultsStore(run_dir / "results.csv")
    for model, table in scores.items():
        for seed, draws in enumerate(table):
            store.add({"model": model, "seed": seed, **KEYS, "status": "ok", "message": "", "fid": draws[0]})
            path = schema.sampling_path(run_dir, model, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({SAMPLING_SEED: range(len(draws)), "fid": draws, "feature_extractor": "domain-x"}).to_csv(
                path, index=False)
    for name, value in (calibration or {}).items():
        for seed in range(2):
            store.add({"model": name, "seed": seed, **KEYS, "status": "ok", "message": "", "fid": value})
    return run_dir


def test_split_matches_scipys_one_way_anova(tmp_path):
    """Balanced: sampling = MSW and training = (MSB − MSW) / k, where F = MSB / MSW is scipy's f_oneway."""
    rng = np.random.default_rng(1)
    table = 30 + rng.normal(0, 2, (5, 1)) + rng.normal(0, 1, (5, 4))  # 5 training seeds × 4 draws
    run_dir = _run(tmp_path, {"a": table})
    split = luck.variance_split(luck.gather_draws(run_dir, read_results(run_dir / "results.csv"))).iloc[0]
    msw = np.mean(np.var(table, axis=1, ddof=1))
    f = scipy_stats.f_oneway(*table).statistic
    assert split["var_sampling"] == pytest.approx(msw)
    assert split["var_training"] == pytest.approx(max(0.0, (f * msw - msw) / 4))
    assert (split["n_training"], split["n_values"]) == (5, 20)
    assert split["ratio"] == pytest.approx(math.sqrt(split["var_training"] / split["var_sampling"]))


def test_known_components_are_recovered(tmp_path):
    """sd 3 between training seeds and 1 between draws, 400 × 5 scores: within a few percent."""
    rng = np.random.default_rng(2)
    table = 50 + rng.normal(0, 3, (400, 1)) + rng.normal(0, 1, (400, 5))
    run_dir = _run(tmp_path, {"a": table})
    split = luck.variance_split(luck.gather_draws(run_dir, read_results(run_dir / "results.csv"))).iloc[0]
    assert split["var_training"] == pytest.approx(9, rel=0.15)
    assert split["var_sampling"] == pytest.approx(1, rel=0.06)
    assert split["training_share"] == pytest.approx(0.9, abs=0.02)


def test_power_statement_and_seeds_needed(tmp_path):
    rng = np.random.default_rng(3)
    scores = {m: 40 + rng.normal(0, 2, (3, 1)) + rng.normal(0, 0.5, (3, 3)) for m in ("a", "b")}
    run_dir = _run(tmp_path, scores, {"real-data": 2.0, "noise": 102.0})
    results = read_results(run_dir / "results.csv")
    split = luck.variance_split(luck.gather_draws(run_dir, results))
    row = luck.power(split, results).iloc[0]
    train, sample = split["var_training"].mean(), split["var_sampling"].mean()
    sd = math.sqrt(train + sample)
    assert (row["n"], row["draws"], row["models"]) == (3, 3, 2)
    assert row["sd"] == pytest.approx(sd)
    assert row["mdd"] == pytest.approx(stats.min_detectable_difference(sd, 3))
    assert row["target"] == pytest.approx(10.0)  # 10 % of |2 − 102|
    assert row["seeds_needed"] == stats.seeds_needed(10.0, sd)
    assert row["seeds_needed_draws"] == stats.seeds_needed(10.0, math.sqrt(train + sample / 3))
    assert row["seeds_needed_draws"] <= row["seeds_needed"]  # averaging draws can only help
    text = luck.markdown(split, luck.power(split, results))
    assert "## How much of a score is luck" in text and "with 3 training seeds" in text


def test_one_training_seed_cannot_be_split(tmp_path):
    run_dir = _run(tmp_path, {"a": np.array([[1.0, 2.0, 3.0]])})
    split = luck.variance_split(luck.gather_draws(run_dir, read_results(run_dir / "results.csv")))
    assert math.isnan(split["var_training"].iat[0]) and split["n_training"].iat[0] == 1
    assert luck.power(split, read_results(run_dir / "results.csv")).empty


def test_draw_zero_is_the_jobs_own_and_the_others_differ():
    assert draw_seeds("dcgan", 3, 0)[1] == 3
    seeds = {draw_seeds("dcgan", 3, j) for j in range(4)}
    assert len({s for s, _ in seeds}) == 4 and len({t for _, t in seeds}) == 4


@pytest.mark.slow
def test_a_run_with_three_draws_keeps_its_results_row(tmp_path):
    base = {"models": ["dcgan"], "seeds": [0], "train": {"steps": 10, "checkpoint_every": 10, "log_every": 5},
            "eval": {"num_samples": 100, "swd_images": 100, "metrics": ["fid", "swd", "modes"], "every": 0}}
    one = resolve("smoke", None, {**base, "out": str(tmp_path), "name": "one"})
    three = resolve("smoke", None, {**base, "out": str(tmp_path), "name": "three",
                                    "eval": {**base["eval"], "sampling_seeds": 3}})
    a = run_job(Job("dcgan", 0, one), one.run_dir)
    b = run_job(Job("dcgan", 0, three), three.run_dir)
    assert {k: v for k, v in a.items() if not is_timing(k)} == {k: v for k, v in b.items()
                                                                       if not is_timing(k)}
    assert not schema.sampling_path(one.run_dir, "dcgan", 0).exists()
    draws = pd.read_csv(schema.sampling_path(three.run_dir, "dcgan", 0))
    assert list(draws[SAMPLING_SEED]) == [0, 1, 2]
    assert draws["fid"].iat[0] == pytest.approx(b["fid"], rel=1e-12)  # draw 0 is the row's
    assert draws["fid"].nunique() == 3  # other draws, other scores
