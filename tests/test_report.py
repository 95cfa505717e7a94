"""Reports and comparisons, on small synthetic results.csv files (no model is trained)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mgbench.errors import UsageError
from mgbench.report.aggregate import aggregate, bracket, direction, ranks, read_results
from mgbench.report.commands import add_commands, build_report
from mgbench.report.pairwise import best_marks

BASE = {"dataset": "shapes", "resolution": 16, "steps": 10, "batch_size": 8, "status": "ok", "message": "",
        "device": "cpu", "deterministic": False, "feature_extractor": "domain-abc", "num_samples": 100,
        "num_reference": 100, "lpips_backbone": "alex"}


def row(model: str, seed: int, **values: object) -> dict[str, object]:
    return {**BASE, "model": model, "seed": seed, **values}


def write_run(run_dir: Path, rows: list[dict[str, object]]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(run_dir / "results.csv", index=False)
    return run_dir


def summary_of(rows: list[dict[str, object]], tmp_path: Path) -> pd.DataFrame:
    """The summary with its best marks, as `mgbench report` makes it."""
    results = read_results(write_run(tmp_path / "run", rows) / "results.csv")
    return aggregate(results, best_marks(results, direction))


def seeded(model: str, seeds: int = 4, **means: float) -> list[dict[str, object]]:
    """``seeds`` rows of ``model`` whose values spread ±0.1 % around ``means``: far apart means are
    significantly different even after Holm."""
    return [row(model, s, **{k: v * (1 + 0.001 * (s - (seeds - 1) / 2)) for k, v in means.items()})
            for s in range(seeds)]


def cell(summary: pd.DataFrame, model: str, metric: str, **keys: str) -> pd.Series:
    mask = (summary["model"] == model) & (summary["metric"] == metric)
    for key, value in keys.items():
        mask &= summary[key] == value
    assert mask.sum() == 1, (model, metric, keys)
    return summary[mask].iloc[0]


def cli(argv: list[str]) -> int:
    """The two subcommands as `mgbench` runs them (mgbench.cli adds them the same way)."""
    parser = argparse.ArgumentParser(prog="mgbench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def full_run(run_dir: Path) -> Path:
    """Two models × 3 seeds, one failed job, calibration rows, loss logs and sample files."""
    rng = np.random.default_rng(0)
    rows = []
    for model, level in (("dcgan", 1.0), ("lapgan", 0.7)):
        for seed in range(3):
            jitter = 1 + 0.05 * rng.standard_normal()
            rows.append(row(model, seed, fid=40 * level * jitter, fid_inf=39 * level * jitter,
                            kid_mean=0.03 * level * jitter, is_mean=2 / level, precision=0.5 / level * jitter / 2,
                            recall=0.3 * jitter, swd_16px=90 * level * jitter, swd_8px=200 * level * jitter,
                            swd_mean=145 * level * jitter, modes_coarse=3 + seed % 2, kl_coarse=0.4 * level,
                            modes_fine=2 + (model == "lapgan"), kl_fine=0.6 * level, modes_joint=8 + seed,
                            kl_joint=1.1 * level, params_G=1000, params_D=500, train_img_per_s=300 * jitter,
                            loss_d_loss=1.2 * jitter))
    rows.append(row("vae", 0, status="failed", message="ValueError: boom | bad", fid=float("nan")))
    for seed in range(3):
        rows.append(row("real-data", seed, fid=0.5 + 0.01 * seed, precision=0.95, recall=0.9, swd_16px=10.0,
                        swd_8px=20.0, swd_mean=15.0, modes_coarse=4, kl_coarse=0.01, modes_fine=4, kl_fine=0.01,
                        modes_joint=16, kl_joint=0.02))
        rows.append(row("noise", seed, fid=300.0 + seed, precision=0.0, recall=0.0, swd_16px=400.0,
                        swd_8px=500.0, swd_mean=450.0, modes_coarse=1, kl_coarse=1.3, modes_fine=1, kl_fine=1.3,
                        modes_joint=1, kl_joint=2.7))
    write_run(run_dir, rows)
    (run_dir / "losses").mkdir()
    (run_dir / "samples").mkdir()
    for model in ("dcgan", "lapgan"):
        for seed in range(3):
            steps = np.arange(10, 60, 10)
            pd.DataFrame({"step": steps, "d_loss": 1.5 - steps / 100 + seed / 10,
                          "g_loss": 0.7 + steps / 200}).to_csv(run_dir / "losses" / f"{model}-seed{seed}.csv",
                                                               index=False)
            (run_dir / "samples" / f"{model}-seed{seed}.png").write_bytes(b"not a real png")
    return run_dir


# ---------------------------------------------------------------- report files

def test_report_twice_gives_identical_bytes(tmp_path: Path) -> None:
    run = full_run(tmp_path / "run")
    console = build_report(run)
    first = {p.relative_to(run): p.read_bytes() for p in sorted((run / "report").rglob("*")) if p.is_file()}
    names = {str(p) for p in first}
    assert {"report/summary.csv", "report/ranks.csv", "report/summary.md", "report/summary.tex",
            "report/report.md", "report/figures/losses.png"} <= names
    assert sum(n.startswith("report/figures/") for n in names) == 4  # bars, swd, modes, losses
    # A rebuild in place and a rebuild from scratch both give the same bytes.
    assert build_report(run) == console
    again = {p.relative_to(run): p.read_bytes() for p in sorted((run / "report").rglob("*")) if p.is_file()}
    assert again == first
    for p in sorted((run / "report").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    build_report(run)
    fresh = {p.relative_to(run): p.read_bytes() for p in sorted((run / "report").rglob("*")) if p.is_file()}
    assert fresh == first
    for name, data in first.items():
        if name.suffix == ".png":
            assert data.startswith(b"\x89PNG") and b"Matplotlib" not in data  # no version stamp


def test_report_page_links_and_failed_jobs(tmp_path: Path) -> None:
    run = full_run(tmp_path / "run")
    console = build_report(run)
    page = (run / "report" / "report.md").read_text()
    assert "](../samples/lapgan-seed2.png)" in page
    for link in [part.split(")")[0] for part in page.split("](")[1:]]:
        assert (run / "report" / link).exists(), link  # every relative link resolves
    assert "| vae | 0 | failed | ValueError: boom \\| bad |" in page
    for header in ("fid", "kid_mean", "precision", "recall", "swd_mean", "modes_joint", "train_img_per_s"):
        assert header in console
    # calibration rows come after a rule, below the models
    lines = console.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line) == {"-"})
    assert lines[rule - 1].startswith("lapgan") and lines[rule + 1].startswith("real-data")


def test_failed_jobs_are_left_out(tmp_path: Path) -> None:
    summary = summary_of([row("a", 0, fid=10.0), row("a", 1, fid=1000.0, status="diverged"),
                          row("b", 0, fid=20.0), row("b", 1, status="oom")], tmp_path)
    assert cell(summary, "a", "fid")["n"] == 1 and cell(summary, "a", "fid")["mean"] == 10.0
    assert cell(summary, "b", "fid")["n"] == 1


def test_a_run_without_ok_jobs_still_reports_and_fails_compare(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [row("a", 0, status="crashed", message="killed"), row("b", 0, status="oom")])
    assert "no job finished with status ok" in build_report(run)
    assert len(pd.read_csv(run / "report" / "summary.csv")) == 0
    assert "| a | 0 | crashed | killed |" in (run / "report" / "report.md").read_text()
    ref = write_run(tmp_path / "ref", seeded_rows())
    assert cli(["compare", str(ref), str(run)]) == 1


# ---------------------------------------------------------------- aggregation

def test_ci_equals_scipy_t_interval(tmp_path: Path) -> None:
    values = [10.0, 12.5, 17.25, 11.0]
    summary = summary_of([row("a", s, fid=v) for s, v in enumerate(values)] + [row("b", 0, fid=3.0)], tmp_path)
    got = cell(summary, "a", "fid")
    sem = np.std(values, ddof=1) / math.sqrt(len(values))
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sem)
    assert got["n"] == 4
    assert got["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert got["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert got["ci95"] == pytest.approx((high - low) / 2, rel=1e-12)
    one = cell(summary, "b", "fid")
    assert one["n"] == 1 and math.isnan(one["std"]) and math.isnan(one["ci95"])


def test_best_is_direction_aware_and_ignores_calibration(tmp_path: Path) -> None:
    rows = [*seeded("a", fid=10.0, precision=0.3, recall=0.5, train_img_per_s=900.0, lpips_diversity=0.3),
            *seeded("b", fid=20.0, precision=0.8, recall=0.4, train_img_per_s=100.0, cond_acc=0.9,
                    lpips_diversity=0.1),
            *seeded("real-data", fid=0.5, precision=0.99, recall=0.99, lpips_diversity=0.12),
            *seeded("noise", fid=400.0, precision=0.0, recall=0.0, lpips_diversity=0.9)]
    summary = summary_of(rows, tmp_path)
    assert cell(summary, "a", "fid")["best"] == 1 and cell(summary, "b", "fid")["best"] == 0
    assert cell(summary, "b", "precision")["best"] == 1 and cell(summary, "a", "precision")["best"] == 0
    assert cell(summary, "real-data", "fid")["best"] == 0 and cell(summary, "real-data", "precision")["best"] == 0
    assert cell(summary, "real-data", "fid")["kind"] == "calibration"
    assert summary.loc[summary["metric"] == "train_img_per_s", "best"].sum() == 0  # no direction
    # nor has diversity: noise would win it; its target is the real-data row
    assert summary.loc[summary["metric"] == "lpips_diversity", "best"].sum() == 0
    # Ranks by hand: a is 1st on fid and recall, 2nd on precision; cond_acc (only b) is not counted.
    table = ranks(summary).set_index("model")
    assert sorted(table.index) == ["a", "b"]
    assert table.loc["a", "mean_rank"] == pytest.approx(4 / 3) and table.loc["b", "mean_rank"] == pytest.approx(5 / 3)
    assert table.loc["a", "n_metrics"] == 3 and table.loc["a", "position"] == 1


def test_a_tie_of_all_models_marks_none(tmp_path: Path) -> None:
    summary = summary_of([*seeded("a", recall=0.25, fid=1.5), *seeded("b", recall=0.25, fid=1.5),
                          *seeded("c", recall=0.25, fid=2.5)], tmp_path)
    assert summary.loc[summary["metric"] == "recall", "best"].sum() == 0
    assert list(summary.loc[summary["metric"] == "recall", "lead"]) == ["", "", ""]  # all tie: no mark
    # two equal leaders, significantly ahead of c: neither is best, both are the tied leaders
    assert list(summary.loc[summary["metric"] == "fid", "best"]) == [0, 0, 0]
    assert list(summary.loc[summary["metric"] == "fid", "lead"]) == ["tied", "tied", ""]


def test_a_lead_within_the_seed_noise_is_no_best(tmp_path: Path) -> None:
    """One seed each, or means within the spread: the lower mean is not marked best (the
    published quick report bolded CGAN's FID 21.8 ± 13.4 against DCGAN's 22.8 ± 7.1)."""
    one_seed = summary_of([row("a", 0, fid=10.0), row("b", 0, fid=20.0)], tmp_path / "one")
    assert one_seed["best"].sum() == 0
    noisy = summary_of([row(m, s, fid=v) for m, values in (("cgan", (9.0, 21.0, 35.5)), ("dcgan", (19.0, 23.0, 26.3)))
                        for s, v in enumerate(values)], tmp_path / "noisy")
    assert noisy["best"].sum() == 0


def test_tables_never_mix_extractors_or_lpips_backbones(tmp_path: Path) -> None:
    rows = [*seeded("a", fid=5.5), *seeded("b", fid=7.5), *seeded("a", fid=300.5), *seeded("b", fid=100.5),
            row("a", 9, lpips_diversity=0.25, lpips_backbone="alex-random", feature_extractor="domain-x")]
    for r in rows[:8]:
        r["feature_extractor"] = "inception-v3"
    for r in rows[8:16]:
        r["feature_extractor"] = "domain-x"
    run = write_run(tmp_path / "run", rows)
    build_report(run)
    summary = pd.read_csv(run / "report" / "summary.csv")
    assert set(zip(summary["feature_extractor"], summary["lpips_backbone"], strict=True)) == {
        ("domain-x", "alex"), ("domain-x", "alex-random"), ("inception-v3", "alex")}
    # each extractor has its own best: a with Inception features, b with the domain features
    assert cell(summary, "a", "fid", feature_extractor="inception-v3")["best"] == 1
    assert cell(summary, "b", "fid", feature_extractor="domain-x")["best"] == 1
    md = (run / "report" / "summary.md").read_text()
    tables_md = md.split("\n## Which differences are real")[0]  # the tables; the significance sections follow
    sections = tables_md.split("\n## ")[1:]
    assert len(sections) == 3
    inception = next(s for s in sections if "features inception-v3" in s)
    domain = next(s for s in sections if "features domain-x · LPIPS alex ·" in s)
    assert "**5.500" in inception and "7.500" in inception and "300.5" not in inception
    assert "**100.5" in domain and "300.5" in domain and "5.500" not in domain
    check_latex((run / "report" / "summary.tex").read_text(), tables=3)


def check_latex(tex: str, tables: int) -> None:
    """Balanced braces and, in every tabular row, as many cells as the column spec declares."""
    plain = tex.replace(r"\{", "").replace(r"\}", "").replace(r"\&", "")
    assert plain.count("{") == plain.count("}")
    blocks = plain.split(r"\begin{tabular}{")[1:]
    assert len(blocks) >= tables and len(blocks) == plain.count(r"\end{tabular}")
    for block in blocks:
        spec, body = block.split("}", 1)
        rows = [line for line in body.split(r"\end{tabular}")[0].splitlines()
                if line.endswith(r"\\") and r"\multicolumn" not in line]
        assert rows and all(line.count("&") == len(spec) - 1 for line in rows), spec


def test_summary_csv_schema(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [row("a", 0, fid=1.25, swd_8px=3.0, loss_g=0.5),
                                       row("a", 1, fid=1.75, swd_8px=5.0, loss_g=0.25)])
    build_report(run)
    summary = pd.read_csv(run / "report" / "summary.csv")
    assert list(summary.columns) == ["dataset", "resolution", "feature_extractor", "lpips_backbone", "num_samples",
                                     "model", "kind", "metric", "direction", "n", "mean", "std", "ci95", "best", "lead"]
    assert list(summary["metric"]) == ["fid", "swd_8px", "loss_g"]
    assert list(summary["direction"].fillna("")) == ["lower", "lower", ""]
    assert list(summary["n"]) == [2, 2, 2] and list(summary["mean"]) == [1.5, 4.0, 0.375]
    assert list(pd.read_csv(run / "report" / "ranks.csv").columns) == [
        "dataset", "resolution", "feature_extractor", "lpips_backbone", "num_samples", "model", "mean_rank",
        "n_metrics", "position"]


# ---------------------------------------------------------------- compare (more in test_compare.py)

def seeded_rows(fid_scale: float = 1.0, models: tuple[str, ...] = ("a", "b")) -> list[dict[str, object]]:
    out = []
    for i, model in enumerate(models):
        for seed, eps in enumerate((-0.01, 0.0, 0.01)):
            out.append(row(model, seed, fid=(20.0 + 10 * i) * (1 + eps) * fid_scale, precision=0.5 + eps,
                           train_img_per_s=100.0 * (seed + 1)))
    return out + [row("real-data", s, fid=0.5, precision=0.95) for s in range(3)]


# ---------------------------------------------------------------- CLI errors

def test_cli_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="has no results.csv"):
        cli(["report", str(empty)])
    (empty / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UsageError, match="lacks the column"):
        cli(["report", str(empty)])


def test_bracket_places_each_model_between_or_beyond_the_calibration_rows(tmp_path: Path) -> None:
    rows = [row("a", 0, fid=10.0, precision=0.0, modes_coarse=4, wall_s=5.0),
            row("b", 0, fid=500.0, precision=0.5, modes_coarse=3, wall_s=9.0),
            row("c", 0, fid=0.1, precision=0.95, modes_coarse=2),
            row("real-data", 0, fid=0.5, precision=0.9, modes_coarse=4),
            row("noise", 0, fid=400.0, precision=0.0, modes_coarse=2)]
    pairs = bracket(summary_of(rows, tmp_path)).set_index(["model", "metric"])["verdict"]
    assert pairs.to_dict() == {
        ("a", "fid"): "between", ("a", "precision"): "ties noise", ("a", "modes_coarse"): "ties real-data",
        ("b", "fid"): "worse than noise", ("b", "precision"): "between", ("b", "modes_coarse"): "between",
        ("c", "fid"): "better than real-data", ("c", "precision"): "better than real-data",
        ("c", "modes_coarse"): "ties noise"}  # wall_s has no direction: left out
    run = write_run(tmp_path / "full", rows)
    build_report(run)
    assert len(pd.read_csv(run / "report" / "calibration.csv")) == 9
    md = (run / "report" / "summary.md").read_text()
    assert "3 of 9 (model, metric) pairs with a direction lie strictly between real-data and noise" in md
    assert "| b | fid | 500 | 0.5000 | 400 | worse than noise |" in md


def test_bracket_needs_both_calibration_rows(tmp_path: Path) -> None:
    assert bracket(summary_of([row("a", 0, fid=1.0), row("noise", 0, fid=9.0)], tmp_path)).empty
