"""`mgbench report` and `mgbench compare`, and :func:`build_report`, which `mgbench run` calls last.

Everything a report holds is rebuilt from the run directory's results.csv (with losses/*.csv
and samples/*.png for the figures and the page) into ``RUN_DIR/report/``:

    summary.csv   per (table, model, metric): n, mean, std, 95% CI, best / tied lead (schema: aggregate.py)
    pairwise.csv  per (table, metric, pair of models): Welch test over seeds, Holm-adjusted p,
                  difference with its CI, probability of improvement (schema: pairwise.py)
    rank_stability.csv  per (table, metric, model): how often it ranks first over bootstrapped seeds
    detectable.csv  per (table, metric): the smallest difference the seeds can show (80 % power)
    ranks.csv     per (table, model): mean rank over the scores
    calibration.csv  per (table, model, score): between real-data and noise, or where instead
    summary.md    the tables, mean ± CI, best in bold
    summary.tex   the same tables for LaTeX (booktabs)
    report.md     the page: jobs, tables, figures, loss curves, sample grids
    figures/      bars-<table>.png, swd-<table>.png, modes-<table>.png, losses.png

Rebuilding gives the same bytes; figures/*.png of an earlier build are removed first, so the
folder never holds a figure of data that is gone.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from mgbench.errors import UsageError
from mgbench.files import write_atomic

REPORT_DIR = "report"


def _write(path: Path, text: str) -> None:
    """Atomic, with "\\n" line ends whatever the platform (the text is written as given)."""
    write_atomic(path, text)


def table_slug(keys: dict[str, str]) -> str:
    """A file-name-safe name of a table, e.g. ``shapes-16px-domain-e12-alex-random-n500``."""
    text = (f"{keys['dataset']}-{keys['resolution']}px-{keys['feature_extractor']}-{keys['lpips_backbone']}"
            f"-n{keys['num_samples']}")
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-")


def build_report(run_dir: Path) -> str:
    """Write ``RUN_DIR/report/`` from the run's files; returns the console summary table."""
    from mgbench.report import figures, page, pairwise, tables
    from mgbench.report import html as html_page
    from mgbench.report.aggregate import aggregate, bracket, direction, ranks, read_results
    from mgbench.report.aggregate import tables as split_tables

    run_dir = Path(run_dir)
    results_path = run_dir / "results.csv"
    if not results_path.is_file():
        raise UsageError(f"{run_dir} has no results.csv",
                         "give a run directory that `mgbench run` wrote (it holds results.csv)")
    results = read_results(results_path)
    tests = pairwise.pairwise_table(results, direction)  # one set of tests for the marks and the section
    summary = aggregate(results, pairwise.best_marks(results, direction, pairwise=tests))
    rank = ranks(summary)
    detectable = pairwise.detectable_difference(results, direction)
    significance = (pairwise.markdown_pairwise(tests) + "\n" + pairwise.markdown_detectable(detectable)).rstrip("\n")

    out = run_dir / REPORT_DIR
    fig_dir = out / "figures"
    try:
        fig_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot write the report into {out}: {err.strerror}",
                         "make the run directory writable, or copy it somewhere writable") from None
    for old in fig_dir.glob("*.png"):
        old.unlink()

    _write(out / "summary.csv", summary.to_csv(index=False, lineterminator="\n"))
    _write(out / "ranks.csv", rank.to_csv(index=False, lineterminator="\n"))
    _write(out / "calibration.csv", bracket(summary).to_csv(index=False, lineterminator="\n"))
    _write(out / "pairwise.csv", tests.to_csv(index=False, lineterminator="\n"))
    _write(out / "rank_stability.csv", pairwise.rank_stability(results, direction).to_csv(
        index=False, lineterminator="\n"))
    _write(out / "detectable.csv", detectable.to_csv(index=False, lineterminator="\n"))
    _write(out / "summary.md", "# mgbench summary\n\n" + tables.markdown(summary, rank) + "\n" + significance + "\n")
    _write(out / "summary.tex", tables.latex(summary, rank))

    colors = figures.palette(list(summary["model"]))
    drawn: dict[str, list[str]] = {}
    spectra_figures: list[tuple[str, Path]] = []
    for keys, rows in split_tables(summary):
        slug = table_slug(keys)
        links = []
        for name, draw, caption in (
                ("bars", figures.metric_bars, "Key metrics with 95% CI"),
                ("swd", figures.swd_levels, "MS-SWD per pyramid level"),
                ("modes", figures.mode_coverage, "Coarse vs fine mode coverage")):
            file = f"{name}-{slug}.png"
            if draw(rows, colors, fig_dir / file):
                links.append(f"![{caption}](figures/{file})")
        if _spectra(_rows_of(results, keys), colors, fig_dir / f"spectra-{slug}.png"):
            links.append(f"![Azimuthally averaged power spectra](figures/spectra-{slug}.png)")
            spectra_figures.append((f"Power spectra: {tables.key_title(keys)}", fig_dir / f"spectra-{slug}.png"))
        drawn[slug] = links
    losses = "figures/losses.png" if figures.loss_curves(results, run_dir, fig_dir / "losses.png") else None

    def table_figures(keys: dict[str, str]) -> list[str]:
        links = drawn.get(table_slug(keys), [])
        return ["### Figures", "\n\n".join(links)] if links else []

    closest = page.artifact_grids(results, run_dir, "closest")
    from mgbench.report import curves, luck

    during = curves.write_section(run_dir, results, out, level=2)  # nothing when no curves
    chance, luck_tables = luck.write_section(run_dir, results, out, level=2)  # nothing with one draw per model
    _write(out / "report.md", page.page(results, summary, rank, run_dir, table_figures, losses, significance,
                                        closest, training=(during.markdown, chance)))
    training_tables = [(caption, frame) for caption, frame in (
        ("Best value, its step and area under the curve", during.tables.get(curves.DERIVED_FILE)),
        ("Instability: collapse events and oscillation", during.tables.get(curves.INSTABILITY_FILE)),
        ("At equal training compute", during.tables.get(curves.EQUAL_FILE)),
        ("How much of a score is luck: training-seed and sampling variance", luck_tables.get(luck.SPLIT_FILE)),
    ) if frame is not None]
    _write(out / "index.html", html_page.page(
        results, summary, rank, run_dir, significance=pairwise.real_differences(tests),
        curves=[(Path(f).stem.replace("-", " "), out / f) for f in during.figures], training_tables=training_tables,
        memorization=[(f"{job}: samples (left) beside their nearest training images", run_dir / link)
                      for job, link in closest],
        spectra=spectra_figures))
    return tables.console(summary)


def _rows_of(results: Any, keys: dict[str, str]) -> Any:
    """The results rows of one table (its keys as text)."""
    mask = results["status"] == "ok"
    for key, value in keys.items():
        mask &= results[key].astype(str) == value
    return results[mask]


def _spectra(rows: Any, colors: dict[str, str], path: Path) -> bool:
    """The spectra figure of one table, when its rows hold the spectrum metric's profiles."""
    if not any(c.startswith("spectrum_ring") for c in rows.columns):
        return False
    from mgbench.report.spectra_figure import profiles_from_results, spectra  # imports torch: only when drawn

    return spectra(profiles_from_results(rows), colors, path)


def cmd_report(args: argparse.Namespace) -> int:
    if args.index is not None:
        return cmd_index(args)
    if args.run_dir is None:
        raise UsageError("no run directory given", "give RUN_DIR, or --index DIR for the leaderboard of published runs")
    text = build_report(Path(args.run_dir))
    print(text, end="")
    print(f"mgbench report: wrote {Path(args.run_dir) / REPORT_DIR}/ (report.md, summary.csv, ranks.csv, "
          "calibration.csv, summary.md, summary.tex, figures/)", file=sys.stderr)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    """`mgbench report --index DIR`: DIR/LEADERBOARD.md from every run folder under DIR."""
    from mgbench.report.leaderboard import LEADERBOARD, leaderboard

    if args.run_dir is not None:
        raise UsageError("give RUN_DIR or --index DIR, not both",
                         "`mgbench report RUN_DIR` rebuilds one run's report; `--index DIR` the leaderboard")
    path = Path(args.index) / LEADERBOARD
    _write(path, leaderboard(Path(args.index)))
    print(f"mgbench report: wrote {path}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from mgbench.report.compare import compare, format_comparison, load_run

    reference = load_run(Path(args.reference))
    run = load_run(Path(args.run_dir))
    result = compare(reference, run, metrics=args.metrics, alpha=args.alpha, equivalence=args.equivalence,
                     test=args.test, allow_protocol_mismatch=args.allow_protocol_mismatch)
    print(format_comparison(result), end="")
    if args.csv:
        _write(Path(args.csv), result.table.to_csv(index=False, lineterminator="\n"))
    return 0 if result.passed else 1


def _names(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def add_commands(subparsers: Any) -> None:
    """Add `report` and `compare` to the `mgbench` argparse sub-parsers."""
    rep = subparsers.add_parser(
        "report", help="rebuild the tables, figures and report page of a run directory",
        description="Rebuild RUN_DIR/report/ (summary.csv, ranks.csv, calibration.csv, summary.md, summary.tex, "
                    "report.md, figures/) from RUN_DIR/results.csv, byte-identically.")
    rep.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="a folder written by `mgbench run`")
    rep.add_argument("--index", metavar="DIR",
                     help="instead, write DIR/LEADERBOARD.md: per protocol the best score of each model over the "
                          "run folders under DIR (each with results.csv and report/summary.csv), with links")
    rep.set_defaults(func=cmd_report)

    cmp = subparsers.add_parser(
        "compare", help="test whether a run reproduces a reference run or a published report",
        description="For every model and score of REFERENCE, test the per-seed values of RUN_DIR against the "
                    "reference's (Welch's t by default), Holm-adjusted over all checks. Exit 0 when no check "
                    "rejects at the family-wise level --alpha (and, with --equivalence, every check is shown "
                    "equivalent), 1 otherwise (a model missing in RUN_DIR, or one seed on a side, fails), 2 on "
                    "bad input, e.g. protocols that differ. Only tables with the same dataset, resolution, "
                    "feature extractor, LPIPS backbone and N are compared. Both sides need per-seed values: a "
                    "run directory or a results.csv.")
    cmp.add_argument("reference", metavar="REFERENCE", help="a run directory or its results.csv")
    cmp.add_argument("run_dir", metavar="RUN_DIR", help="the run to check (a run directory or its results.csv)")
    cmp.add_argument("--alpha", type=float, default=0.05,
                     help="family-wise level: the chance that a true reproduction fails (default 0.05)")
    cmp.add_argument("--equivalence", type=float, metavar="PCT",
                     help="also require each mean to be shown within ±PCT %% of the reference mean (TOST)")
    cmp.add_argument("--test", choices=("welch", "student", "permutation"), default="welch",
                     help="two-sample test on the per-seed values (default welch; student pools the variances, "
                          "more power with 3 seeds, exact only for equal variances; permutation needs ≥ 8 seeds "
                          "a side to reject anything among ~100 checks)")
    cmp.add_argument("--metrics", type=_names,
                     help="comma-separated metrics to compare (default: every score with a direction)")
    cmp.add_argument("--allow-protocol-mismatch", action="store_true",
                     help="compare runs whose protocol hashes differ (statistically; bit-identity is not expected)")
    cmp.add_argument("--csv", metavar="FILE", help="also write the comparison table to this CSV file")
    cmp.set_defaults(func=cmd_compare)
