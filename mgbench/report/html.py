"""The report as one web page, ``report/index.html``, that opens in any browser.

Self-contained: figures and sample grids are embedded as base64 ``data:`` URIs, the CSS and the
sorting script are inline, and a Content-Security-Policy forbids every other source, so the page
loads nothing from the network and still works when mailed or copied alone. It holds the same
tables as summary.md (mean ± CI, n, direction arrows, best marks, the calibration rows apart
under the models, the caveats), the ranking, the calibration bracket, the figures, the sample
grids, the jobs (with failures) and the provenance (manifest.json, config.json).

Every table is sortable by clicking a column header (numbers by value, missing values last); a
table's calibration rows are in their own ``<tbody>`` and stay at the bottom.

Deterministic: the page is built from the run directory's files only, with no date, host name or
absolute path of its own making, so rebuilding it gives the same bytes. All text is escaped
with :func:`html.escape`.

Sections that later work fills in take optional inputs of :func:`page` (see "Sections other
work adds"): training curves, pairwise significance, memorization grids and spectra.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import struct
from pathlib import Path

import pandas as pd

from mgbench.report import page as md_page
from mgbench.report import tables
from mgbench.report.aggregate import CALIBRATION, INSIDE, TABLE_KEYS, bracket, model_order
from mgbench.report.aggregate import tables as split_tables
from mgbench.report.commands import REPORT_DIR, table_slug

# The per-table figures build_report draws (report/figures/<kind>-<slug>.png) and their captions;
# a figure of another kind found there is shown too, captioned with its kind.
FIGURE_CAPTIONS = {"bars": "Key metrics with 95% CI", "swd": "MS-SWD per pyramid level",
                   "modes": "Coarse vs fine mode coverage"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# No source but the page itself: a stray external link fails loudly (a console error) instead
# of fetching. The empty icon stops the browser asking for /favicon.ico.
HEAD = """<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<link rel="icon" href="data:,">"""

CSS = """
:root { color-scheme: light; --rule: #c8ccd2; --head: #eef1f5; --best: #dcf2e3; --muted: #5a6370; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1c2430;
       margin: 0 auto; max-width: 1400px; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 2px solid var(--rule); padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
nav ul { columns: 2; padding-left: 1.2rem; }
code, pre { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; }
.caveat { border-left: 4px solid #d39e00; background: #fff8e1; padding: .4rem .8rem; margin: .5rem 0; }
.legend, .note { color: var(--muted); }
.scroll { overflow-x: auto; position: relative; }  /* also holds the .sr text, which is absolute */
table { border-collapse: collapse; margin: .4rem 0 1rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: .2rem 0; }
th, td { border-bottom: 1px solid var(--rule); padding: .25rem .55rem; white-space: nowrap; }
thead th { background: var(--head); border-bottom: 2px solid var(--rule); vertical-align: bottom; }
th[scope=row] { text-align: left; font-weight: 600; }
td.num, th.num { text-align: right; }
td.best { background: var(--best); font-weight: 700; }
td.text { white-space: normal; max-width: 40rem; }
tbody.calibration th, tbody.calibration td { color: var(--muted); font-style: italic; }
tbody.calibration tr.group th { background: #fafbfc; border-top: 2px solid var(--rule); font-weight: 400; }
thead th { cursor: pointer; }
th button { font: inherit; color: inherit; background: none; border: 0; padding: 0; cursor: pointer;
            text-align: inherit; white-space: nowrap; }
th button:focus-visible { outline: 2px solid #2b6cb0; }
th[aria-sort=ascending] button::after { content: " \\25B2"; font-size: .7em; }
th[aria-sort=descending] button::after { content: " \\25BC"; font-size: .7em; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
figure { display: inline-block; max-width: 100%; margin: .4rem 1rem .8rem 0; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--rule); }
figcaption { color: var(--muted); font-size: .9em; }
.grids img { image-rendering: pixelated; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
"""

# Sorting: the first tbody holds the models and is the only one reordered, so the calibration
# rows (their own tbody) stay below. A cell's data-v is its number ("" = missing, always last);
# cells without data-v sort as text. Ties keep the current order.
JS = """
(function () {
  "use strict";
  function key(row, col) {
    var cell = row.cells[col];
    if (!cell) { return null; }
    if (cell.hasAttribute("data-v")) {
      var v = cell.getAttribute("data-v");
      return v === "" ? null : parseFloat(v);
    }
    return cell.textContent.trim();
  }
  function sortBy(th) {
    var table = th.closest("table"), col = th.cellIndex;
    var up = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (row, i) { return [key(row, col), i, row]; });
    rows.sort(function (a, b) {
      if (a[0] === null || b[0] === null) { return (a[0] === null) - (b[0] === null) || a[1] - b[1]; }
      var d = typeof a[0] === "number" ? a[0] - b[0] : a[0].localeCompare(b[0]);
      return (up ? d : -d) || a[1] - b[1];
    });
    rows.forEach(function (r) { body.appendChild(r[2]); });
  }
  // the whole header cell takes the click; its button gives keyboard access (Enter, Space)
  document.querySelectorAll("table.sortable thead th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
})();
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def inline_md(text: str) -> str:
    """Escaped text with the two Markdown marks the shared strings use: **bold** and `code`."""
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", esc(text))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def anchor(text: str) -> str:
    """An id for an element, from its heading."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def number_attr(x: float) -> str:
    """A number as the sort script reads it (``parseFloat``); "" for NaN."""
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(float(x))


# ---------------------------------------------------------------- images

def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None when ``data`` is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def image(path: Path, alt: str, caption: str) -> str:
    """A PNG file as a ``<figure>`` with the image embedded; a note when it is missing or no PNG."""
    try:
        data = path.read_bytes()
    except OSError:
        return f'<p class="note">{esc(path.name)} is missing.</p>'
    size = png_size(data)
    if size is None:
        return f'<p class="note">{esc(path.name)} is not a PNG image: left out.</p>'
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="{uri}" alt="{esc(alt)}" width="{size[0]}" height="{size[1]}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


OWN_SECTION = {"spectra"}  # figures of a table that the page shows in a section of their own, not twice


def table_figures(fig_dir: Path, keys: dict[str, str]) -> list[tuple[str, Path]]:
    """(caption, path) of one table's figures in report/figures/, known kinds first."""
    slug = table_slug(keys)
    found = {}
    if fig_dir.is_dir():
        pattern = re.compile(r"([A-Za-z0-9]+)-" + re.escape(slug) + r"\.png")
        for path in sorted(fig_dir.glob("*.png")):
            match = pattern.fullmatch(path.name)
            if match and match.group(1) not in OWN_SECTION:
                found[match.group(1)] = path
    order = [k for k in FIGURE_CAPTIONS if k in found] + sorted(k for k in found if k not in FIGURE_CAPTIONS)
    return [(FIGURE_CAPTIONS.get(kind, kind), found[kind]) for kind in order]


# ---------------------------------------------------------------- tables

def header_cell(label: str, way: str = "", numeric: bool = True) -> str:
    """A sortable column header, with the direction arrow and its meaning for screen readers."""
    arrow = ""
    if way:
        arrow = (f' <span aria-hidden="true">{tables.ARROW[way]}</span>'
                 f'<span class="sr"> ({way} is better)</span>')
    cls = ' class="num"' if numeric else ""
    return f'<th scope="col"{cls}><button type="button">{esc(label)}{arrow}</button></th>'


def num_cell(text: str, value: float, best: bool = False) -> str:
    cls = "num best" if best else "num"
    inner = f"<strong>{esc(text)}</strong>" if best else esc(text)
    return f'<td class="{cls}" data-v="{number_attr(value)}">{inner}</td>'


def sortable(caption: str, head: list[str], body: list[str], calibration: list[str] | None = None,
             heading: bool = False) -> str:
    """A sortable ``<table>``: rows of ``body`` sort, the ``calibration`` rows stay below them.
    With ``heading`` (a heading above says the same) the caption is for screen readers only."""
    cls = ' class="sr"' if heading else ""
    parts = ['<div class="scroll"><table class="sortable">', f"<caption{cls}>{esc(caption)}</caption>",
             "<thead><tr>" + "".join(head) + "</tr></thead>", "<tbody>", *body, "</tbody>"]
    if calibration:
        parts += ['<tbody class="calibration">',
                  f'<tr class="group"><th scope="rowgroup" colspan="{len(head)}">calibration</th></tr>',
                  *calibration, "</tbody>"]
    parts.append("</table></div>")
    return "\n".join(parts)


def grid_table(grid: tables.Grid) -> str:
    """One section of a summary table, as summary.md shows it."""
    head = [header_cell("model", numeric=False), header_cell("n")]
    head += [header_cell(m, w) for m, w in zip(grid.metrics, grid.directions, strict=True)]

    def row(model: str) -> str:
        n = grid.n(model)
        cells = [f'<th scope="row">{esc(model)}</th>', num_cell(str(n), n)]
        for metric in grid.metrics:
            cell = grid.cells.get((model, metric))
            value = float("nan") if cell is None else cell.mean
            cells.append(num_cell(tables.cell_text(cell, n), value, cell is not None and cell.best))
        return "<tr>" + "".join(cells) + "</tr>"

    return sortable(grid.title, head, [row(m) for m in grid.models], [row(m) for m in grid.calibration], heading=True)


def select(df: pd.DataFrame, keys: dict[str, str]) -> pd.DataFrame:
    """The rows of ``df`` (ranks, a significance table) that belong to one table."""
    if df.empty or not set(keys) <= set(df.columns):
        return df.iloc[0:0]
    mask = pd.Series(True, index=df.index)
    for key, value in keys.items():
        mask &= df[key].astype(str) == value
    return df[mask]


def ranks_table(ranks: pd.DataFrame) -> str:
    n_metrics = int(ranks["n_metrics"].iat[0])
    head = [header_cell("position"), header_cell("model", numeric=False), header_cell("mean rank")]
    body = [f'<tr>{num_cell(str(r.position), r.position)}<th scope="row">{esc(r.model)}</th>'
            f"{num_cell(f'{r.mean_rank:.2f}', r.mean_rank)}</tr>" for r in ranks.itertuples(index=False)]
    return (f"<p>Mean rank over the {n_metrics} metrics with a direction that every model has (1 = best).</p>\n"
            + sortable("Ranking", head, body, heading=True))


def bracket_section(pairs: pd.DataFrame) -> str:
    """How many (model, metric) pairs lie between the calibration rows; the others listed
    (the wording of :func:`mgbench.report.tables.markdown_bracket`)."""
    inside = int((pairs["verdict"] == INSIDE).sum())
    text = (f"<p>{inside} of {len(pairs)} (model, metric) pairs with a direction lie strictly between "
            "real-data and noise (means over seeds).</p>")
    out = pairs[pairs["verdict"] != INSIDE]
    if out.empty:
        return text
    head = [header_cell("model", numeric=False), header_cell("metric", numeric=False), header_cell("mean"),
            header_cell("real-data"), header_cell("noise"), header_cell("where", numeric=False)]
    body = []
    for r in out.itertuples(index=False):
        cells = [f'<th scope="row">{esc(r.model)}</th>', f"<td>{esc(r.metric)}</td>"]
        cells += [num_cell(tables.number(x, tables.places_for(x)), x) for x in (r.mean, r.real_data, r.noise)]
        cells.append(f"<td>{esc(r.verdict)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return text + "\n" + sortable("Pairs not strictly between the calibration rows", head, body)


def frame_table(frame: pd.DataFrame, caption: str, heading: bool = False) -> str:
    """Any DataFrame as a sortable table: numbers right-aligned and sorted by value, the rest as text."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    head = [header_cell(str(c), numeric=k) for c, k in zip(frame.columns, numeric, strict=True)]
    body = []
    for values in frame.itertuples(index=False):
        cells = []
        for value, is_num in zip(values, numeric, strict=True):
            if is_num and value is not None and not pd.isna(value):
                x = float(value)
                cells.append(num_cell(tables.number(x, tables.places_for(x)), x))
            elif is_num:
                cells.append(num_cell("—", float("nan")))
            else:
                cells.append(f"<td>{esc('' if value is None or pd.isna(value) else value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return sortable(caption, head, body, heading=heading)


# ---------------------------------------------------------------- sections

def jobs_section(results: pd.DataFrame) -> str:
    """Seeds per model and status, and every job that did not finish ok with its message."""
    jobs = results[~results["model"].isin(CALIBRATION)]
    if jobs.empty:
        return "<p>No model jobs in results.csv.</p>"
    head = [header_cell("model", numeric=False), header_cell("seeds", numeric=False), header_cell("ok"),
            header_cell("not ok")]
    body = []
    for model in sorted(set(jobs["model"]), key=model_order):
        mine = jobs[jobs["model"] == model]
        ok = int((mine["status"] == "ok").sum())
        seeds = ", ".join(str(int(s)) for s in sorted(mine["seed"]))
        body.append(f'<tr><th scope="row">{esc(model)}</th><td>{esc(seeds)}</td>{num_cell(str(ok), ok)}'
                    f"{num_cell(str(len(mine) - ok), len(mine) - ok)}</tr>")
    parts = [sortable("Jobs per model", head, body)]
    bad = jobs[jobs["status"] != "ok"].sort_values(["model", "seed"], kind="stable")
    if not bad.empty:
        head = [header_cell("model", numeric=False), header_cell("seed"), header_cell("status", numeric=False),
                header_cell("message", numeric=False)]
        body = [f'<tr><th scope="row">{esc(r.model)}</th>{num_cell(str(int(r.seed)), int(r.seed))}'
                f'<td>{esc(r.status)}</td><td class="text">{esc(r.message)}</td></tr>'
                for r in bad.itertuples(index=False)]
        parts.append(sortable("Jobs that did not finish ok (left out of every table)", head, body))
    return "\n".join(parts)


def samples_section(results: pd.DataFrame, run_dir: Path) -> str:
    """The sample grid of every (model, seed) that has one, a row per model."""
    jobs = results[~results["model"].isin(CALIBRATION)]
    rows = []
    for model in sorted(set(jobs["model"]), key=model_order):
        seeds = sorted(int(s) for s in jobs.loc[jobs["model"] == model, "seed"])
        shown = [s for s in seeds if (run_dir / "samples" / f"{model}-seed{s}.png").exists()]
        if shown:
            figs = [image(run_dir / "samples" / f"{model}-seed{s}.png", f"sample grid of {model}, seed {s}",
                          f"{model}, seed {s}") for s in shown]
            rows.append(f"<h3>{esc(model)}</h3>\n" + "\n".join(figs))
    if not rows:
        return "<p>No sample grids in samples/.</p>"
    return ('<p>A conditional model\'s grid has one row per class.</p>\n<div class="grids">\n'
            + "\n".join(rows) + "\n</div>")


def _facts(prefix: str, value: object) -> list[tuple[str, str]]:
    """A manifest flattened to (dotted key, text) pairs, in the file's order."""
    if isinstance(value, dict):
        return [fact for k, v in value.items() for fact in _facts(f"{prefix}.{k}" if prefix else str(k), v)]
    if isinstance(value, list):
        text = ", ".join(v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in value)
        return [(prefix, text or "none")]
    return [(prefix, value if isinstance(value, str) else json.dumps(value))]


def provenance_section(run_dir: Path) -> str:
    """Everything manifest.json records, and config.json as written (both optional)."""
    parts = []
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict):
        facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in _facts("", manifest))
        parts.append(f'<h3>manifest.json</h3>\n<dl class="facts">{facts}</dl>')
    else:
        parts.append('<p class="note">No readable manifest.json in the run directory.</p>')
    try:
        config = (run_dir / "config.json").read_text(encoding="utf-8")
        parts.append(f"<details><summary>config.json (the resolved configuration)</summary>"
                     f"<pre>{esc(config.rstrip())}</pre></details>")
    except OSError:
        pass
    return "\n".join(parts)


def _run_name(run_dir: Path) -> str:
    """The run's name from config.json (not the folder's, which changes when it is copied)."""
    try:
        name = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        return ""
    return str(name) if name else ""


# ---------------------------------------------------------------- sections other work adds
# Each takes an optional input and returns "" without it; page() passes them through. When a
# feature lands, build_report gives page() its input: nothing else changes.

def curves_section(figures: list[tuple[str, Path]] | None,
                   frames: list[tuple[str, pd.DataFrame]] | None = None) -> str:
    """Training itself: the metrics during training as (caption, PNG) figures, and tables such as
    the derived curve values, the instability events or the variance split of a score's luck."""
    if not figures and not frames:
        return ""
    parts = ['<h2 id="curves">Training curves</h2>', *(image(p, c, c) for c, p in figures or [])]
    parts += [frame_table(frame, caption, heading=True) for caption, frame in frames or [] if not frame.empty]
    return "\n".join(parts)


def significance_section(frame: pd.DataFrame | None, caption: str = "Pairwise significance") -> str:
    """Pairwise tests between models: a table given as a DataFrame (one column per field)."""
    if frame is None or frame.empty:
        return ""
    return "\n".join([f"<h3>{esc(caption)}</h3>", frame_table(frame, caption, heading=True)])


def memorization_section(grids: list[tuple[str, Path]] | None) -> str:
    """Memorization: (caption, PNG) grids of samples beside their nearest training images."""
    if not grids:
        return ""
    figs = [image(path, caption, caption) for caption, path in grids]
    return "\n".join(['<h2 id="memorization">Memorization</h2>', '<div class="grids">', *figs, "</div>"])


def spectra_section(figures: list[tuple[str, Path]] | None) -> str:
    """Frequency spectra of samples against real data: (caption, PNG) figures."""
    if not figures:
        return ""
    return "\n".join(['<h2 id="spectra">Spectra</h2>', *(image(p, c, c) for c, p in figures)])


# ---------------------------------------------------------------- the page

def page(results: pd.DataFrame, summary: pd.DataFrame, ranks: pd.DataFrame, run_dir: Path, *,
         curves: list[tuple[str, Path]] | None = None, significance: pd.DataFrame | None = None,
         training_tables: list[tuple[str, pd.DataFrame]] | None = None,
         memorization: list[tuple[str, Path]] | None = None,
         spectra: list[tuple[str, Path]] | None = None) -> str:
    """The whole report as one HTML document (figures read from ``run_dir/report/figures/``).

    ``significance`` with the :data:`TABLE_KEYS` columns is split and shown under each table
    (without those columns), otherwise once after the tables.
    """
    run_dir = Path(run_dir)
    fig_dir = run_dir / REPORT_DIR / "figures"
    name = _run_name(run_dir)
    title = "mgbench report" + (f": {name}" if name else "")
    body = [f"<h1>{esc(title)}</h1>"]
    body += [f"<p>{inline_md(line)}</p>" for line in md_page.provenance(run_dir)]
    body.append("<p>Rebuild with <code>mgbench report RUN_DIR</code>; the numbers are in <code>summary.csv</code> "
                "(schema: <code>mgbench/report/aggregate.py</code>), the tables also in <code>summary.md</code> "
                "and <code>summary.tex</code>. Click a column header to sort a table.</p>")

    split = split_tables(summary)
    toc = [("jobs", "Jobs")] + [("t-" + table_slug(k), tables.key_title(k)) for k, _ in split]
    toc += [("losses", "Training losses")] + ([("curves", "Training curves")] if curves or training_tables else [])
    toc += [("samples", "Samples")] + ([("memorization", "Memorization")] if memorization else [])
    toc += ([("spectra", "Spectra")] if spectra else []) + [("provenance", "Provenance")]
    body.append("<nav aria-label=\"contents\"><ul>"
                + "".join(f'<li><a href="#{esc(i)}">{esc(t)}</a></li>' for i, t in toc) + "</ul></nav>")

    body += ['<h2 id="jobs">Jobs</h2>', jobs_section(results)]
    keyed = significance is not None and set(TABLE_KEYS) <= set(significance.columns)
    if summary.empty:
        body.append("<p>No job finished with status ok: there is nothing to summarise.</p>")
    else:
        body.append(f'<p class="legend">{inline_md(tables.LEGEND)}</p>')
    for keys, rows in split:
        slug = table_slug(keys)
        body.append(f'<h2 id="t-{esc(slug)}">{esc(tables.key_title(keys))}</h2>')
        body += [f'<p class="caveat" role="note">{esc(note)}</p>' for note in tables.caveats(keys)]
        for grid in tables.grids(rows):
            body += [f'<h3 id="{esc(slug)}-{anchor(grid.title)}">{esc(grid.title)}</h3>', grid_table(grid)]
        table_ranks = select(ranks, keys)
        if not table_ranks.empty:
            body += ["<h3>Ranking</h3>", ranks_table(table_ranks)]
        pairs = bracket(rows)
        if not pairs.empty:
            body += ["<h3>Against the calibration rows</h3>", bracket_section(pairs)]
        if keyed:
            body.append(significance_section(select(significance, keys).drop(columns=TABLE_KEYS)))
        figs = table_figures(fig_dir, keys)
        if figs:
            body += ["<h3>Figures</h3>", "\n".join(image(p, c, c) for c, p in figs)]
    if significance is not None and not keyed:
        body.append(significance_section(significance))

    body.append('<h2 id="losses">Training losses</h2>')
    losses = fig_dir / "losses.png"
    body.append(image(losses, "training losses of every model and seed", "Training losses")
                if losses.is_file() else "<p>No loss logs in losses/.</p>")
    body.append(curves_section(curves, training_tables))
    body += ['<h2 id="samples">Samples</h2>', samples_section(results, run_dir)]
    body.append(memorization_section(memorization))
    body.append(spectra_section(spectra))
    body += ['<h2 id="provenance">Provenance</h2>', provenance_section(run_dir)]

    doc = ["<!DOCTYPE html>", '<html lang="en">', "<head>", HEAD, f"<title>{esc(title)}</title>",
           f"<style>{CSS}</style>", "</head>", "<body>", "<main>", *[b for b in body if b], "</main>",
           f"<script>{JS}</script>", "</body>", "</html>"]
    return "\n".join(doc) + "\n"
