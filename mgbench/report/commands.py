"""`mgbench report` and `mgbench compare`, and :func:`build_report`, which `mgbench run` calls last.

Everything a report holds is rebuilt from the run directory's results.csv (with losses/*.csv
and samples/*.png for the figures and the page) into ``RUN_DIR/report/``:

    summary.csv   per (table, model, metric): n, mean, std, 95% CI, best (schema: aggregate.py)
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
import os
import re
import sys
from pathlib import Path
from typing import Any

from mgbench.errors import UsageError

REPORT_DIR = "report"


def _write(path: Path, text: str) -> None:
    """Atomic, with "\\n" line ends whatever the platform."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, path)


def table_slug(keys: dict[str, str]) -> str:
    """A file-name-safe name of a table, e.g. ``shapes-16px-domain-e12-alex-random-n500``."""
    text = (f"{keys['dataset']}-{keys['resolution']}px-{keys['feature_extractor']}-{keys['lpips_backbone']}"
            f"-n{keys['num_samples']}")
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-")


def build_report(run_dir: Path) -> str:
    """Write ``RUN_DIR/report/`` from the run's files; returns the console summary table."""
    from mgbench.report import figures, page, tables
    from mgbench.report.aggregate import aggregate, bracket, ranks, read_results
    from mgbench.report.aggregate import tables as split_tables

    run_dir = Path(run_dir)
    results_path = run_dir / "results.csv"
    if not results_path.is_file():
        raise UsageError(f"{run_dir} has no results.csv",
                         "give a run directory that `mgbench run` wrote (it holds results.csv)")
    results = read_results(results_path)
    summary = aggregate(results)
    rank = ranks(summary)

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
    _write(out / "summary.md", "# mgbench summary\n\n" + tables.markdown(summary, rank))
    _write(out / "summary.tex", tables.latex(summary, rank))

    colors = figures.palette(list(summary["model"]))
    drawn: dict[str, list[str]] = {}
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
        drawn[slug] = links
    losses = "figures/losses.png" if figures.loss_curves(results, run_dir, fig_dir / "losses.png") else None

    def table_figures(keys: dict[str, str]) -> list[str]:
        links = drawn.get(table_slug(keys), [])
        return ["### Figures", "\n\n".join(links)] if links else []

    _write(out / "report.md", page.page(results, summary, rank, run_dir, table_figures, losses))
    return tables.console(summary)


def cmd_report(args: argparse.Namespace) -> int:
    text = build_report(Path(args.run_dir))
    print(text, end="")
    print(f"mgbench report: wrote {Path(args.run_dir) / REPORT_DIR}/ (report.md, summary.csv, ranks.csv, "
          "calibration.csv, summary.md, summary.tex, figures/)", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from mgbench.report.compare import compare, format_comparison, load_summary

    reference = load_summary(Path(args.reference))
    new = load_summary(Path(args.run_dir))
    result = compare(reference, new, rtol=args.rtol, atol=args.atol, metrics=args.metrics)
    print(format_comparison(result, args.rtol, args.atol), end="")
    if args.csv:
        _write(Path(args.csv), result.to_csv(index=False, lineterminator="\n"))
    return 0 if (result["verdict"] == "ok").all() else 1


def _names(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def add_commands(subparsers: Any) -> None:
    """Add `report` and `compare` to the `mgbench` argparse sub-parsers."""
    rep = subparsers.add_parser(
        "report", help="rebuild the tables, figures and report page of a run directory",
        description="Rebuild RUN_DIR/report/ (summary.csv, ranks.csv, calibration.csv, summary.md, summary.tex, "
                    "report.md, figures/) from RUN_DIR/results.csv, byte-identically.")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `mgbench run`")
    rep.set_defaults(func=cmd_report)

    cmp = subparsers.add_parser(
        "compare", help="check that a run reproduces a reference run or a published report",
        description="Exit 0 when, for every model and score of REFERENCE, the mean of RUN_DIR lies within "
                    "the reference's 95% CI widened by atol + rtol·|reference mean|; exit 1 otherwise "
                    "(a model missing in RUN_DIR fails). Only tables with the same dataset, resolution, "
                    "feature extractor, LPIPS backbone and N are compared.")
    cmp.add_argument("reference", metavar="REFERENCE",
                     help="a run directory, or a folder / file with a summary.csv or results.csv")
    cmp.add_argument("run_dir", metavar="RUN_DIR", help="the run to check (a run directory or a CSV file)")
    cmp.add_argument("--rtol", type=float, default=0.1,
                     help="tolerance relative to |reference mean| added to its CI (default 0.1)")
    cmp.add_argument("--atol", type=float, default=0.0, help="absolute tolerance added to the CI (default 0)")
    cmp.add_argument("--metrics", type=_names,
                     help="comma-separated metrics to compare (default: every score with a direction)")
    cmp.add_argument("--csv", metavar="FILE", help="also write the comparison table to this CSV file")
    cmp.set_defaults(func=cmd_compare)
