"""`mgbench report --index DIR`: the leaderboard of published runs, on synthetic run folders (no model is
trained; each folder's report/summary.csv is written as `mgbench report` writes it)."""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from mgbench.errors import UsageError
from mgbench.report.aggregate import aggregate, direction, read_results
from mgbench.report.commands import add_commands
from mgbench.report.leaderboard import LEADERBOARD, leaderboard
from mgbench.report.pairwise import best_marks
from mgbench.report.tables import Cell, cell_text

REPO = Path(__file__).resolve().parents[1]
BASE = {"dataset": "shapes", "resolution": 16, "steps": 10, "batch_size": 8, "status": "ok", "message": "",
        "device": "cpu", "deterministic": False, "feature_extractor": "domain-abc", "num_samples": 100,
        "num_reference": 100, "lpips_backbone": "alex"}


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mgbench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def publish(folder: Path, scores: dict[tuple[str, int], dict[str, tuple[float, float]]],
            manifest: dict | None = None, **keys: object) -> Path:
    """A run folder: per (model, N) two seeds of each score (the given pair of values), its
    summary.csv, a manifest and a README."""
    rows = []
    for (model, n), values in scores.items():
        for seed in range(2):
            rows.append({**BASE, **keys, "num_samples": n, "model": model, "seed": seed,
                         **{metric: pair[seed] for metric, pair in values.items()}})
    (folder / "report").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    results = read_results(folder / "results.csv")
    summary = aggregate(results, best_marks(results, direction))  # as `mgbench report` marks them
    summary.to_csv(folder / "report" / "summary.csv", index=False, lineterminator="\n")
    (folder / "manifest.json").write_text(json.dumps(manifest or {}))
    (folder / "README.md").write_text(f"# run {folder.name} | on a CPU\n\nhand-written text\n")
    return folder


def cell(values: tuple[float, float], run: str | None, best: bool = False) -> str:
    """The expected cell: mean ± Student-t 95% half-width of two values, and the link to its run."""
    mean = sum(values) / 2
    ci = stats.t.ppf(0.975, 1) * abs(values[0] - values[1]) / math.sqrt(2) / math.sqrt(2)
    text = cell_text(Cell(mean, ci, 2, best), 2)
    text = f"**{text}**" if best else text
    return f"{text} · [{run}]({run}/)" if run else text


def section(text: str, heading: str) -> list[list[str]]:
    """The rows of the table under a `## heading` (header first, no alignment row)."""
    block = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r.strip()[1:-1])] for r in rows if not r.startswith("|:")]


P1 = "shapes 16 px · features domain-abc · LPIPS alex · N = 100 samples"
P2 = "shapes 16 px · features domain-abc · LPIPS alex · N = 200 samples"


@pytest.fixture
def published(tmp_path: Path) -> Path:
    root = tmp_path / "reports"
    # Protocol N = 100 in both runs: dcgan's lower fid is in a, its higher precision in b; lapgan the
    # other way round; lapgan's swd_mean ties between the runs, b with the narrower interval.
    publish(root / "a", {
        ("dcgan", 100): {"fid": (9.0, 11.0), "precision": (0.1, 0.3), "swd_mean": (50.0, 70.0)},
        ("lapgan", 100): {"fid": (28.0, 32.0), "precision": (0.4, 0.6), "swd_mean": (30.0, 50.0)},
        ("real-data", 100): {"fid": (0.1, 0.2), "precision": (0.9, 0.95)}},
        manifest={"cpu": "Test CPU", "cpu_flags": ["avx2", "avx512f"], "cpu_count": 4, "device": "cpu",
                  "git_sha": "abcdef0123456789", "git_dirty": True, "command": "mgbench run --out /tmp/a",
                  "execution": {"executor": "local", "workers": 2, "threads_per_job": 2}})
    # b also has a table of another protocol (N = 200), where only it counts.
    publish(root / "b", {
        ("dcgan", 100): {"fid": (11.0, 13.0), "precision": (0.5, 0.7), "swd_mean": (58.0, 62.0)},
        ("lapgan", 100): {"fid": (19.0, 21.0), "precision": (0.3, 0.5), "swd_mean": (39.0, 41.0)},
        ("dcgan", 200): {"fid": (5.0, 7.0), "precision": (0.8, 0.9)},
        ("lapgan", 200): {"fid": (15.0, 17.0), "precision": (0.2, 0.3)}},
        manifest={"cpu": "Other CPU", "native_bf16": True, "device": "cuda", "gpus": ["H100"],
                  "command": "mgbench run --out /tmp/b | tee log", "git_sha": "0123456789abcdef"})
    return root


def test_best_per_protocol_and_direction_with_links(published: Path) -> None:
    assert cli(["report", "--index", str(published)]) == 0
    text = (published / LEADERBOARD).read_text(encoding="utf-8")
    assert section(text, P1) == [
        ["model", "n", "fid ↓", "precision ↑", "swd_mean ↓"],
        # fid: lowest mean (a for dcgan, b for lapgan); precision: highest (b for dcgan, a for lapgan);
        # two seeds each: no run's report can call a model significantly best, so nothing is bold
        ["dcgan", "2", cell((9.0, 11.0), "a"), cell((0.5, 0.7), "b"), cell((58.0, 62.0), "b")],
        ["lapgan", "2", cell((19.0, 21.0), "b"), cell((0.4, 0.6), "a"), cell((39.0, 41.0), "b")],
    ]  # real-data (calibration) is never on the board
    assert "Runs: [a](a/), [b](b/); each number links to its run." in text
    assert section(text, P2) == [["model", "n", "fid ↓", "precision ↑"],
                                 # two tests in b's N = 200 family, both clear (p ≈ 0.02, 0.01): bold
                                 ["dcgan", "2", cell((5.0, 7.0), None, True), cell((0.8, 0.9), None, True)],
                                 ["lapgan", "2", cell((15.0, 17.0), None), cell((0.2, 0.3), None)]]
    assert "Every number comes from [b](b/)." in text
    assert text.index(P1) < text.index(P2)
    # every link resolves to a run folder
    links = re.findall(r"\]\(([^)]*)\)", text)
    assert set(links) == {"a/", "b/"}
    assert all((published / link / "results.csv").is_file() for link in links)
    # the runs, with their machine and command (a pipe in a cell is escaped)
    runs = section(text, "Runs")
    assert runs[0] == ["run", "what", "machine", "command", "code"]
    assert runs[1] == ["[a](a/)", "run a \\| on a CPU",
                       "Test CPU, flags avx2 avx512f, 4 cores, local executor, 2 workers × 2 threads",
                       "`mgbench run --out /tmp/a`", "git abcdef0 (uncommitted changes)"]
    assert runs[2] == ["[b](b/)", "run b \\| on a CPU", "Other CPU, native bf16, cuda (H100)",
                       "`mgbench run --out /tmp/b \\| tee log`", "git 0123456"]


def test_bold_only_where_the_runs_own_report_found_a_significant_best(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    folder = root / "clear"
    rows = [{**BASE, "model": m, "seed": s, "fid": base * (1 + 0.001 * s)}
            for m, base in (("dcgan", 10.0), ("lapgan", 30.0)) for s in range(5)]
    (folder / "report").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    results = read_results(folder / "results.csv")
    aggregate(results, best_marks(results, direction)).to_csv(folder / "report" / "summary.csv", index=False)
    text = leaderboard(root)
    assert "| dcgan | 5 | **10.02 ± 0.02** |" in text and "| lapgan | 5 | 30.06 ± 0.06 |" in text


def test_same_bytes_wherever_the_folder_is(published: Path, tmp_path: Path) -> None:
    first = leaderboard(published)
    assert leaderboard(published) == first
    copy = shutil.copytree(published, tmp_path / "elsewhere" / "published")
    assert leaderboard(copy) == first
    assert str(tmp_path) not in first


def test_protocol_columns_split_tables_and_precision_stays_a_score(published: Path) -> None:
    for name, threads in (("a", 1), ("c", 2)):
        folder = published / name
        if name == "c":
            folder = shutil.copytree(published / "a", published / "c")
        results = pd.read_csv(folder / "results.csv")
        results["threads"] = threads
        results.to_csv(folder / "results.csv", index=False)
    shutil.rmtree(published / "b")
    text = leaderboard(published)
    assert section(text, P1 + " · threads 1")[1][0] == "dcgan"
    assert section(text, P1 + " · threads 2")[1][0] == "dcgan"
    assert "Every number comes from [a](a/)." in text and "Every number comes from [c](c/)." in text
    assert "· precision" not in text  # the precision score is no protocol key
    assert "LPIPS backbone and N, threads)" in text


def test_index_errors(tmp_path: Path, published: Path) -> None:
    with pytest.raises(UsageError, match="no run directory given"):
        cli(["report"])
    with pytest.raises(UsageError, match="not both"):
        cli(["report", str(published / "a"), "--index", str(published)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no run folder under"):
        cli(["report", "--index", str(empty)])
    with pytest.raises(UsageError, match="is not a folder"):
        cli(["report", "--index", str(tmp_path / "nowhere")])
    (published / "b" / "report" / "summary.csv").unlink()
    with pytest.raises(UsageError, match="no report/summary.csv"):
        cli(["report", "--index", str(published)])


def test_published_leaderboard_is_up_to_date() -> None:
    """reports/LEADERBOARD.md is what `mgbench report --index reports/` writes from the runs there."""
    path = REPO / "reports" / LEADERBOARD
    if not path.is_file():
        pytest.skip("no reports/LEADERBOARD.md")
    assert path.read_text(encoding="utf-8") == leaderboard(REPO / "reports"), \
        "reports/LEADERBOARD.md is stale: rebuild it with `mgbench report --index reports/`"
