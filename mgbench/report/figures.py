"""Report figures as PNG, drawn with matplotlib's Agg canvas (no pyplot, no global backend).

Each figure is byte-identical when redrawn from the same data: matplotlib's built-in style
(a user's matplotlibrc is ignored), a fixed dpi, a fixed ``svg.hashsalt`` and no "Software"
entry in the PNG metadata (the only field that would carry a version; Agg writes no time).
Every function returns whether it wrote its file (nothing to draw → no file).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mgbench import schema
from mgbench.files import write_atomic
from mgbench.metrics import registry
from mgbench.report.aggregate import model_order, swd_level
from mgbench.schema import CALIBRATION

log = logging.getLogger(__name__)

DPI = 100
# Black and grey: the model colours (C0..C9) are never used for calibration.
CALIBRATION_STYLE = dict(zip(CALIBRATION, [{"color": "black", "linestyle": "--"},
                                           {"color": "0.5", "linestyle": ":"}], strict=True))
WAY = {"lower": "↓ lower is better", "higher": "↑ higher is better", "": ""}


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update({"svg.hashsalt": "mgbench", "figure.dpi": DPI, "savefig.dpi": DPI,
                                    "font.size": 8, "axes.titlesize": 9, "axes.spines.top": False,
                                    "axes.spines.right": False})
        yield


def _save(fig: Figure, path: Path) -> None:
    """PNG without a version stamp, written atomically."""
    FigureCanvasAgg(fig)
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI, metadata={"Software": None}))


def palette(models: Sequence[str]) -> dict[str, str]:
    """One colour per model, the same in every figure of a report."""
    ordered = sorted(set(models), key=model_order)
    return {m: f"C{i % 10}" for i, m in enumerate(ordered)}


def _values(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    part = rows[rows["metric"] == metric].copy()
    part["order"] = [model_order(m) for m in part["model"]]
    return part.sort_values("order", kind="stable")


def _errors(ci: pd.Series) -> np.ndarray | None:
    """Error bar half-widths; None (no bars) when no value has a CI (one seed)."""
    values = ci.to_numpy(dtype=float)
    return None if np.isnan(values).all() else np.nan_to_num(values, nan=0.0)


def metric_bars(rows: pd.DataFrame, colors: dict[str, str], path: Path) -> bool:
    """One panel per key metric: a bar per model with its 95% CI, calibration as horizontal lines."""
    present = dict.fromkeys(rows.loc[rows["kind"] == "model", "metric"])  # in table order
    metrics = [m for m in present if (found := registry.owner(m)) is not None and found[1].plotted]
    if not metrics:
        return False
    ncols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    with _style():
        fig = Figure(figsize=(3.2 * ncols, 2.8 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, metric in zip(axes, metrics, strict=False):
            part = _values(rows, metric)
            models = part[part["kind"] == "model"]
            x = np.arange(len(models))
            ax.bar(x, models["mean"], yerr=_errors(models["ci95"]), capsize=3,
                   color=[colors[m] for m in models["model"]],
                   edgecolor=["black" if b else "none" for b in models["best"]], linewidth=1.5)
            for cal in part[part["kind"] == "calibration"].itertuples(index=False):
                ax.axhline(cal.mean, label=cal.model, linewidth=1.2, **CALIBRATION_STYLE.get(cal.model, {}))
            ax.set_xticks(x, models["model"], rotation=30, ha="right")
            ax.set_title(f"{metric}  ({WAY[models['direction'].iat[0]]})" if WAY[models['direction'].iat[0]]
                         else metric)
            ax.axhline(0, color="black", linewidth=0.5)
        for ax in axes[len(metrics):]:
            ax.set_visible(False)
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[1:len(metrics)]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            fig.legend(handles, [f"{lab} (calibration)" for lab in labels], loc="outside lower center",
                       ncols=len(labels))
        fig.suptitle("Mean over seeds, error bar: 95% CI; black edge: best model")
        _save(fig, path)
    return True


def swd_levels(rows: pd.DataFrame, colors: dict[str, str], path: Path) -> bool:
    """MS-SWD per pyramid level (fine to coarse), one line per model, calibration dashed."""
    levels = sorted({m for m in rows["metric"] if swd_level(m) is not None}, key=lambda m: -swd_level(m))
    if not levels:
        return False
    x = np.arange(len(levels))
    with _style():
        fig = Figure(figsize=(5.5, 3.6), layout="constrained")
        ax = fig.subplots()
        table = rows[rows["metric"].isin(levels)]
        for model in sorted(set(table["model"]), key=model_order):
            part = table[table["model"] == model].set_index("metric").reindex(levels)
            kind = part["kind"].dropna().iat[0]
            style = (CALIBRATION_STYLE.get(model, {"color": "grey", "linestyle": "--"}) if kind == "calibration"
                     else {"color": colors[model], "linestyle": "-"})
            ax.errorbar(x, part["mean"], yerr=_errors(part["ci95"]), marker="o", capsize=3, linewidth=1.5,
                        label=model + (" (calibration)" if kind == "calibration" else ""), **style)
        ax.set_xticks(x, [f"{swd_level(m)} px" for m in levels])
        ax.set_xlabel("Laplacian pyramid level (fine → coarse)")
        ax.set_ylabel("SWD ×10³  (↓ lower is better)")
        if (table["mean"] > 0).all():
            ax.set_yscale("log")
        ax.set_title("Multi-scale sliced Wasserstein distance per level (Karras et al. 2018)")
        ax.legend(fontsize=7)
        _save(fig, path)
    return True


def mode_coverage(rows: pd.DataFrame, colors: dict[str, str], path: Path) -> bool:
    """Modes covered per head (coarse vs fine, or class) and the KL of their histogram to uniform."""
    heads = [m.removeprefix("modes_") for m in sorted(set(rows["metric"])) if m.startswith("modes_")]
    order = ["coarse", "fine", "joint", "class"]
    heads = sorted(heads, key=lambda h: (order.index(h) if h in order else len(order), h))
    if not heads:
        return False
    split = [h for h in heads if h != "joint"] or heads  # joint counts c·F + f modes: its own scale
    panels = [("modes_", split, "modes covered (↑)"), ("kl_", heads, "KL to uniform (↓)")]
    entities = sorted(set(rows.loc[rows["metric"].str.startswith("modes_"), "model"]), key=model_order)
    with _style():
        fig = Figure(figsize=(max(6.0, 1.1 * len(entities) * 2), 3.4), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (prefix, panel_heads, title) in zip(axes, panels, strict=True):
            width = 0.8 / len(panel_heads)
            x = np.arange(len(entities))
            for j, head in enumerate(panel_heads):
                part = rows[rows["metric"] == prefix + head].set_index("model").reindex(entities)
                bars = ax.bar(x + (j - (len(panel_heads) - 1) / 2) * width, part["mean"], width,
                              yerr=_errors(part["ci95"]), capsize=2, label=head, color=f"C{j}", edgecolor="white")
                for patch, entity in zip(bars, entities, strict=True):
                    if entity in CALIBRATION:
                        patch.set_hatch("//")
            ax.set_xticks(x, entities, rotation=30, ha="right")
            ax.set_title(title)
            ax.legend(fontsize=7)
        fig.suptitle("Per-scale mode coverage (hatched: calibration)")
        _save(fig, path)
    return True


def _read_losses(file: Path) -> pd.DataFrame | None:
    """A job's losses/*.csv as numbers, or None when there is none; a damaged one (not text, not
    CSV, no ``step`` column, a value that is not a number) is left out of the figure with a warning."""
    if not file.is_file():
        return None
    try:
        frame = pd.read_csv(file)
        if "step" not in frame.columns:
            raise ValueError("no step column")
        frame = frame.apply(pd.to_numeric, errors="raise").astype(float)
    except (ValueError, TypeError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError,
            OSError) as err:
        why = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        log.warning("%s is damaged (%s: %s): left out of the loss curves; it is rewritten when the job runs again "
                    "(delete its row in results.csv and --resume)", file, type(err).__name__, why)
        return None
    frame = frame.replace([np.inf, -np.inf], np.nan)
    return frame if len(frame) else None


def loss_curves(results: pd.DataFrame, run_dir: Path, path: Path) -> bool:
    """Training losses per model (one panel each), every seed drawn, one colour per loss."""
    jobs = results[~results["model"].isin(CALIBRATION)][["model", "seed", "status"]]
    curves: dict[str, list[tuple[int, str, pd.DataFrame]]] = {}
    for model, seed, status in sorted(jobs.itertuples(index=False), key=lambda r: (model_order(r[0]), r[1])):
        frame = _read_losses(schema.losses_path(run_dir, model, seed))
        if frame is not None:
            curves.setdefault(model, []).append((int(seed), status, frame))
    if not curves:
        return False
    ncols = min(3, len(curves))
    nrows = math.ceil(len(curves) / ncols)
    with _style():
        fig = Figure(figsize=(3.8 * ncols, 2.8 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (model, runs) in zip(axes, curves.items(), strict=False):
            names: list[str] = []
            for _seed, status, frame in runs:
                for column in frame.columns:
                    if column == "step":
                        continue
                    if column not in names:
                        names.append(column)
                        label = column
                    else:
                        label = None
                    ax.plot(frame["step"], frame[column], color=f"C{names.index(column) % 10}", linewidth=1,
                            alpha=0.85, label=label, linestyle="-" if status == "ok" else "--")
            failed = [f"seed {s}: {st}" for s, st, _ in runs if st != "ok"]
            ax.set_title(f"{model} (seeds {', '.join(str(s) for s, _, _ in runs)})"
                         + (f"\n{'; '.join(failed)}" if failed else ""))
            ax.set_xlabel("step")
            ax.legend(fontsize=6)
        for ax in axes[len(curves):]:
            ax.set_visible(False)
        fig.suptitle("Training losses (one line per seed; dashed: job not ok)")
        _save(fig, path)
    return True
