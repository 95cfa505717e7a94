"""Tables of a summary (see :mod:`mgbench.report.aggregate`): Markdown, LaTeX (booktabs) and
the console. Models are rows, metrics columns, split into sections; the calibration
pseudo-models sit in their own block under the models and are never marked best.

Numbers: mean ± 95% CI half-width, both with the decimals that give the mean about four
significant digits; the CI is left out when n = 1. Formatting is pure string work, so the
same summary always gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from mgbench.metrics import registry as metrics
from mgbench.report.aggregate import INSIDE, TIED, bracket, metric_order, model_order, tables
from mgbench.schema import COST_COLUMNS

# The console's one-screen table: the metrics' console columns, then the training speed.
CONSOLE_COST = ["train_img_per_s"]
ARROW = {"lower": "↓", "higher": "↑", "": ""}


def section(metric: str, way: str) -> str | None:
    """The table section a column is shown in, as its metric declares; None: only in
    summary.csv (losses, is_std, ...)."""
    found = metrics.owner(metric)
    if found is not None:
        unit, column = found
        return unit.section if column.shown else None
    if metric in COST_COLUMNS or metric == "params_total":
        return metrics.COST
    if way:
        return metrics.OTHER
    return None


def section_order(names: list[str]) -> list[str]:
    """The known sections first, then any a plugin metric added (in the order met), Other and Cost last."""
    known = [s for s in metrics.SECTIONS if s in names]
    added = [s for s in names if s not in metrics.SECTIONS and s not in (metrics.OTHER, metrics.COST)]
    return known + added + [s for s in (metrics.OTHER, metrics.COST) if s in names]


def console_columns(columns: list[str]) -> list[str]:
    """The columns of the console table among ``columns``, in table order."""
    chosen = [c for c in columns if (found := metrics.owner(c)) is not None and found[1].console]
    return sorted(chosen, key=metric_order) + CONSOLE_COST


@dataclass(frozen=True)
class Cell:
    mean: float
    ci95: float
    n: int
    best: bool
    tied: bool = False  # among the leaders that no test separates


@dataclass
class Grid:
    """One section of one table: metric columns, model rows and calibration rows."""
    title: str
    metrics: list[str]
    directions: list[str]
    models: list[str]
    calibration: list[str]
    cells: dict[tuple[str, str], Cell]

    def n(self, model: str) -> int:
        return max((c.n for (m, _), c in self.cells.items() if m == model), default=0)


def grids(rows: pd.DataFrame, metrics: list[str] | None = None) -> list[Grid]:
    """The sections of one table's summary rows (or one grid of the given ``metrics``)."""
    out = []
    if metrics is not None:
        titles = {"Key metrics": [m for m in metrics if m in set(rows["metric"])]}
    else:
        titles = {}
        for metric, way in rows.drop_duplicates("metric")[["metric", "direction"]].itertuples(index=False):
            name = section(metric, way)
            if name:
                titles.setdefault(name, []).append(metric)
        titles = {t: sorted(titles[t], key=metric_order) for t in section_order(list(titles))}
    for title, cols in titles.items():
        part = rows[rows["metric"].isin(cols)]
        if part.empty:
            continue
        cells = {(r.model, r.metric): Cell(float(r.mean), float(r.ci95), int(r.n), bool(r.best), r.lead == TIED)
                 for r in part.itertuples(index=False)}
        present = sorted(set(part["model"]), key=model_order)
        ways = dict(zip(part["metric"], part["direction"], strict=True))
        kinds = dict(zip(part["model"], part["kind"], strict=True))
        out.append(Grid(title, cols, [ways[m] for m in cols],
                        [m for m in present if kinds[m] == "model"],
                        [m for m in present if kinds[m] == "calibration"], cells))
    return out


def decimals(x: float) -> int:
    """Decimals that give |x| about four significant digits (none for ≥ 1000, at most 6)."""
    if not math.isfinite(x) or x == 0:
        return 3
    return min(6, max(0, 3 - math.floor(math.log10(abs(x)))))


def places_for(x: float) -> int:
    """Decimals of a mean: none for a whole number (mode counts, parameters), else :func:`decimals`."""
    return 0 if math.isfinite(x) and x == round(x) else decimals(x)


def number(x: float, places: int) -> str:
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:,.{places}f}"


def cell_text(cell: Cell | None, n_row: int, pm: str = " ± ") -> str:
    """``mean ± ci`` (``mean`` when n = 1), with ``(n=k)`` when fewer seeds than its row has."""
    if cell is None:
        return "—"
    places = places_for(cell.mean)
    text = number(cell.mean, places)
    if math.isfinite(cell.ci95):
        ci_places = places or (decimals(cell.ci95) if cell.ci95 else 0)  # whole means: "3 ± 0.5", "0 ± 0"
        text += pm + number(cell.ci95, ci_places)
    if cell.n < n_row:
        text += f" (n={cell.n})"
    return text


def key_title(keys: dict[str, str]) -> str:
    """The heading of a table: what its numbers are comparable under."""
    return (f"{keys['dataset']} {keys['resolution']} px · features {keys['feature_extractor']} · "
            f"LPIPS {keys['lpips_backbone']} · N = {keys['num_samples']} samples")


def caveats(keys: dict[str, str]) -> list[str]:
    """Warnings a reader of the numbers must see."""
    notes = []
    if not keys["feature_extractor"].startswith("inception"):
        notes.append(f"Scores use the {keys['feature_extractor']} features, not Inception-v3: FID, IS, KID and "
                     "precision/recall here are not comparable with published Inception numbers.")
    if "random" in keys["lpips_backbone"]:
        notes.append(f"LPIPS uses a randomly initialised backbone ({keys['lpips_backbone']}; no pretrained weights "
                     "were found): it is not the published LPIPS.")
    return notes


# ---------------------------------------------------------------- Markdown

def markdown_grid(grid: Grid) -> str:
    header = ["model", "n"] + [f"{m} {ARROW[w]}".strip() for m, w in zip(grid.metrics, grid.directions, strict=True)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---", "---:"] + ["---:"] * len(grid.metrics)) + "|"]

    def row(model: str) -> str:
        n = grid.n(model)
        cells = []
        for metric in grid.metrics:
            cell = grid.cells.get((model, metric))
            text = cell_text(cell, n)
            cells.append(f"**{text}**" if cell is not None and cell.best else
                         f"{text} †" if cell is not None and cell.tied else text)
        return "| " + " | ".join([model, str(n)] + cells) + " |"

    lines += [row(m) for m in grid.models]
    if grid.calibration:
        lines.append("| *calibration* |" + " |" * (len(grid.metrics) + 1))
        lines += [row(m) for m in grid.calibration]
    return "\n".join(lines)


def markdown_ranks(ranks: pd.DataFrame) -> str:
    if ranks.empty:
        return ""
    n_metrics = int(ranks["n_metrics"].iat[0])
    lines = [f"Mean rank over the {n_metrics} metrics with a direction that every model has (1 = best):", "",
             "| position | model | mean rank |", "|---:|:---|---:|"]
    lines += [f"| {r.position} | {r.model} | {r.mean_rank:.2f} |" for r in ranks.itertuples(index=False)]
    return "\n".join(lines)


LEGEND = ("Mean ± half-width of the 95% confidence interval over n seeds (Student t; no interval when n = 1). "
          "↓ lower is better, ↑ higher is better. **Bold**: significantly better than every other model (Welch's t "
          "over seeds, Holm-adjusted within the table, α = 0.05); †: among the leaders that no test separates; "
          "no mark: no model leads. Calibration rows are not ranked: "
          "real-data (real training images scored like samples) is the floor a model can reach, "
          "noise (uniform noise images) the ceiling.")


def markdown_bracket(pairs: pd.DataFrame) -> str:
    """How many (model, metric) pairs lie between the calibration rows, and the others listed."""
    if pairs.empty:
        return ""
    inside = int((pairs["verdict"] == INSIDE).sum())
    lines = [f"{inside} of {len(pairs)} (model, metric) pairs with a direction lie strictly between "
             "real-data and noise (means over seeds)."]
    out = pairs[pairs["verdict"] != INSIDE]
    if not out.empty:
        lines += ["", "| model | metric | mean | real-data | noise | where |", "|:---|:---|---:|---:|---:|:---|"]
        lines += [f"| {r.model} | {r.metric} | {number(r.mean, places_for(r.mean))} | "
                  f"{number(r.real_data, places_for(r.real_data))} | {number(r.noise, places_for(r.noise))} | "
                  f"{r.verdict} |" for r in out.itertuples(index=False)]
    return "\n".join(lines)


def markdown(summary: pd.DataFrame, ranks: pd.DataFrame, level: int = 2,
             figures: Callable[[dict[str, str]], list[str]] | None = None) -> str:
    """All tables of a summary as Markdown; ``figures(keys)`` adds lines after each table's grids."""
    if summary.empty:
        return "No job finished with status ok: there is nothing to summarise.\n"
    parts = [LEGEND]
    for keys, rows in tables(summary):
        parts.append("#" * level + " " + key_title(keys))
        parts += [f"> {note}" for note in caveats(keys)]
        for grid in grids(rows):
            parts.append("#" * (level + 1) + " " + grid.title)
            parts.append(markdown_grid(grid))
        table_ranks = _select(ranks, keys)
        if not table_ranks.empty:
            parts.append("#" * (level + 1) + " Ranking")
            parts.append(markdown_ranks(table_ranks))
        pairs = bracket(rows)
        if not pairs.empty:
            parts.append("#" * (level + 1) + " Against the calibration rows")
            parts.append(markdown_bracket(pairs))
        if figures:
            parts += figures(keys)
    return "\n\n".join(parts) + "\n"


def _select(df: pd.DataFrame, keys: dict[str, str]) -> pd.DataFrame:
    if df.empty:
        return df
    mask = pd.Series(True, index=df.index)
    for key, value in keys.items():
        mask &= df[key].astype(str) == value
    return df[mask]


# ---------------------------------------------------------------- LaTeX

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "—": "---", "·": r"$\cdot$", "±": r"$\pm$", "≥": r"$\geq$"}


def tex_escape(text: str) -> str:
    """Plain text (a name, a caption) as LaTeX source."""
    return re.sub("|".join(re.escape(c) for c in _TEX), lambda m: _TEX[m.group(0)], text)


TEX_ARROW = {"lower": r" $\downarrow$", "higher": r" $\uparrow$", "": ""}


def latex_grid(grid: Grid, keys: dict[str, str]) -> str:
    ncols = len(grid.metrics) + 2
    head = ["model", "$n$"] + [tex_escape(m) + TEX_ARROW[w] for m, w in zip(grid.metrics, grid.directions, strict=True)]

    def row(model: str) -> str:
        n = grid.n(model)
        cells = []
        for metric in grid.metrics:
            cell = grid.cells.get((model, metric))
            # numbers, commas, "—" and "(n=k)" only: no escaping needed
            text = cell_text(cell, n, pm=r" $\pm$ ").replace("—", "---")
            cells.append(f"\\textbf{{{text}}}" if cell is not None and cell.best else
                         text + r"$^\dagger$" if cell is not None and cell.tied else text)
        return " & ".join([tex_escape(model), str(n)] + cells) + r" \\"

    caption = (tex_escape(f"{grid.title}: {key_title(keys)}.") + r" Mean $\pm$ 95\% CI half-width over $n$ seeds"
               r" (Student $t$); bold: significantly better than every other model (Welch, Holm, $\alpha = 0.05$);"
               r" $\dagger$: tied leaders; calibration rows are not ranked.")
    lines = [r"\begin{table}[ht]", r"\centering", r"\small",
             f"\\caption{{{caption}}}",
             r"\begin{tabular}{l" + "r" * (ncols - 1) + "}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    lines += [row(m) for m in grid.models]
    if grid.calibration:
        lines += [r"\midrule", f"\\multicolumn{{{ncols}}}{{l}}{{\\emph{{calibration}}}} \\\\"]
        lines += [row(m) for m in grid.calibration]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def latex(summary: pd.DataFrame, ranks: pd.DataFrame) -> str:
    """All tables as LaTeX ``table`` floats (needs ``\\usepackage{booktabs}``)."""
    parts = ["% mgbench summary tables; needs \\usepackage{booktabs}"]
    for keys, rows in tables(summary):
        parts += [latex_grid(grid, keys) for grid in grids(rows)]
        table_ranks = _select(ranks, keys)
        if not table_ranks.empty:
            body = [f"{r.position} & {tex_escape(r.model)} & {r.mean_rank:.2f} \\\\"
                    for r in table_ranks.itertuples(index=False)]
            caption = tex_escape(f"Ranking: {key_title(keys)}. Mean rank over "
                                 f"{int(table_ranks['n_metrics'].iat[0])} metrics (1 = best).")
            parts.append("\n".join([r"\begin{table}[ht]", r"\centering", r"\small", f"\\caption{{{caption}}}",
                                    r"\begin{tabular}{rlr}", r"\toprule", r"position & model & mean rank \\",
                                    r"\midrule", *body, r"\bottomrule", r"\end{tabular}", r"\end{table}"]))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- console

def text_table(header: list[str], body: list[list[str]], right: bool = True) -> list[str]:
    """Fixed-width lines; the first column left-aligned, the others right-aligned (or all left)."""
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 or not right else c.rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in [header] + body]


def console(summary: pd.DataFrame) -> str:
    """Models × a few key metrics (means; * = best), one block per table."""
    if summary.empty:
        return "no job finished with status ok\n"
    blocks = []
    for keys, rows in tables(summary):
        for grid in grids(rows, console_columns(list(dict.fromkeys(rows["metric"])))):
            header = ["model", "n"] + [f"{m}{ARROW[w]}" for m, w in zip(grid.metrics, grid.directions, strict=True)]
            body = []
            for model in grid.models + grid.calibration:
                cells = []
                for metric in grid.metrics:
                    cell = grid.cells.get((model, metric))
                    text = "—" if cell is None else number(cell.mean, places_for(cell.mean))
                    cells.append(text + ("*" if cell is not None and cell.best else
                                         "~" if cell is not None and cell.tied else ""))
                body.append([model, str(grid.n(model))] + cells)
            lines = text_table(header, body)
            if grid.calibration:  # the calibration rows below a rule
                lines.insert(1 + len(grid.models), "-" * len(lines[0]))
            blocks.append("\n".join([key_title(keys)] + lines))
    return "\n\n".join(blocks) + ("\n(means over n seeds; * significantly best model, ~ tied leaders (Welch, Holm, "
                                   "α = 0.05); ↓ lower / ↑ higher is better)\n")
