"""report/index.html: the same tables as report.md, self-contained, deterministic, escaped; and, in a
real headless Chromium, loaded without errors or requests, with its images decoded and its tables
sorting on a click.

The browser test needs Debian's Chromium and Playwright from PyPI (no `playwright install`: the
system browser is launched):

    apt-get install -y chromium
    pip install playwright
"""

from __future__ import annotations

import os
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mgbench.report import html as html_page
from mgbench.report.aggregate import TABLE_KEYS, aggregate, ranks, read_results
from mgbench.report.commands import build_report

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "reports" / "quick-shapes-cpu"
CHROMIUM = Path(os.environ.get("MGBENCH_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = "<img src=x onerror=alert(1)> & \"quoted\" | piped"

BASE = {"dataset": "shapes", "resolution": 16, "steps": 10, "batch_size": 8, "status": "ok", "message": "",
        "device": "cpu", "deterministic": False, "feature_extractor": "domain-abc", "num_samples": 100,
        "num_reference": 100, "lpips_backbone": "alex-random"}


def png(path: Path, seed: int, size: int = 34) -> None:
    """A small real PNG of random colours (a stand-in for a sample grid)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def synthetic_run(run_dir: Path) -> Path:
    """Two models × 3 seeds, cgan with cond_acc only, a failed job with a hostile message,
    calibration rows, loss logs and real PNG sample grids."""
    rng = np.random.default_rng(0)
    rows = []
    for model, level in (("dcgan", 1.0), ("lapgan", 0.7), ("cgan", 1.2)):
        for seed in range(3):
            j = 1 + 0.05 * rng.standard_normal()
            extra = {"cond_acc": 0.2 * j} if model == "cgan" else {}
            rows.append({**BASE, "model": model, "seed": seed, "fid": 40 * level * j, "precision": 0.4 / level * j,
                         "recall": 0.3 * j, "swd_16px": 90 * level * j, "swd_8px": 200 * level * j,
                         "swd_mean": 145 * level * j, "modes_coarse": 4 if model == "dcgan" else 3 + seed % 2,
                         "train_img_per_s": 300 * j,
                         "params_G": 1000, "params_D": 500, **extra})
    rows.append({**BASE, "model": "vae", "seed": 0, "status": "failed", "message": HOSTILE})
    for seed in range(3):
        rows.append({**BASE, "model": "real-data", "seed": seed, "fid": 0.5 + 0.01 * seed, "precision": 0.95,
                     "recall": 0.9, "swd_16px": 10.0, "swd_8px": 20.0, "swd_mean": 15.0, "modes_coarse": 4})
        rows.append({**BASE, "model": "noise", "seed": seed, "fid": 300.0 + seed, "precision": 0.0, "recall": 0.0,
                     "swd_16px": 400.0, "swd_8px": 500.0, "swd_mean": 450.0, "modes_coarse": 1})
    run_dir.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(run_dir / "results.csv", index=False)
    (run_dir / "losses").mkdir()
    (run_dir / "samples").mkdir()
    for i, model in enumerate(("cgan", "dcgan", "lapgan")):
        for seed in range(3):
            steps = np.arange(10, 60, 10)
            pd.DataFrame({"step": steps, "d_loss": 1.5 - steps / 100 + seed / 10}).to_csv(
                run_dir / "losses" / f"{model}-seed{seed}.csv", index=False)
            png(run_dir / "samples" / f"{model}-seed{seed}.png", 10 * i + seed)
    (run_dir / "manifest.json").write_text('{"command": "mgbench run --out /tmp/x", "cpu": "Test CPU <fast>",'
                                           ' "git_sha": "0123456789abcdef", "versions": {"torch": "9.9"}}')
    (run_dir / "config.json").write_text('{"name": "synthetic"}\n')
    return run_dir


# ---------------------------------------------------------------- parsing both pages

class Tables(HTMLParser):
    """Every <table> of a page: its rows as [(text, bold)] (visually hidden text left out), the
    rows of each <tbody>, and the scope of every header cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, bool]]]] = []
        self.bodies: list[list[int]] = []  # per table: rows per tbody
        self.scopes: list[str | None] = []
        self.imgs: list[dict[str, str | None]] = []
        self.title = ""
        self._cell: list[str] | None = None
        self._bold = False
        self._hidden = 0
        self._in_title = False
        self._skip_row = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables.append([])
            self.bodies.append([])
        elif tag == "tbody":
            self.bodies[-1].append(0)
        elif tag == "tr":
            self._skip_row = a.get("class") == "group"  # the "calibration" separator
            if not self._skip_row:
                self.tables[-1].append([])
                if self.bodies[-1]:
                    self.bodies[-1][-1] += 1
        elif tag in ("td", "th") and self.tables and not self._skip_row:
            self._cell, self._bold = [], "best" in (a.get("class") or "")
            if tag == "th":
                self.scopes.append(a.get("scope"))
        elif tag == "span" and a.get("class") == "sr":
            self._hidden += 1
        elif tag == "img":
            self.imgs.append(a)
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((" ".join("".join(self._cell).split()), self._bold))
            self._cell = None
        elif tag == "span" and self._hidden:
            self._hidden -= 1
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._cell is not None and not self._hidden:
            self._cell.append(data)


def markdown_tables(text: str) -> list[list[list[tuple[str, bool]]]]:
    """The pipe tables of a Markdown page, rows as [(text, bold)], without the alignment row and
    the "*calibration*" separator."""
    out, current = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        if current is None:
            current = []
            out.append(current)
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        if all(re.fullmatch(r":?-+:?", c) for c in cells) or cells[0] == "*calibration*":
            continue
        current.append([(c[2:-2] if c.startswith("**") else c, c.startswith("**")) for c in cells])
    return out


def parse(page: str) -> Tables:
    parser = Tables()
    parser.feed(page)
    return parser


# ---------------------------------------------------------------- without a browser

@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic run with its report built once (the figures take a while on a loaded CPU)."""
    run = synthetic_run(tmp_path_factory.mktemp("html") / "run")
    build_report(run)
    return run


def test_index_holds_the_tables_of_report_md(built: Path) -> None:
    page = (built / "report" / "index.html").read_text(encoding="utf-8")
    found = parse(page)
    report_md = (built / "report" / "report.md").read_text(encoding="utf-8")
    expected = markdown_tables(report_md.split("\n## Which differences are real")[0])
    # jobs, failures, 4 sections (quality, per scale, conditional, cost), ranking, bracket
    assert len(expected) == 8
    assert found.tables[:8] == expected  # every header, cell text and best mark, in the same order
    assert "Pairwise significance" in page  # the real differences follow (report.md has them as text)
    # the calibration rows are in a tbody of their own, after the models
    quality = found.tables[2]
    assert [r[0][0] for r in quality[1:]] == ["cgan", "dcgan", "lapgan", "real-data", "noise"]
    assert found.bodies[2] == [3, 2]  # 3 models | real-data, noise
    assert set(found.scopes) <= {"col", "row", "rowgroup"} and None not in found.scopes
    assert found.title == "mgbench report: synthetic"
    for caveat in ("not comparable with published Inception numbers", "it is not the published LPIPS"):
        assert caveat in page
    pairs = len(pd.read_csv(built / "report" / "calibration.csv"))
    assert f"of {pairs} (model, metric) pairs with a direction lie strictly between" in page


def test_index_is_self_contained_escaped_and_deterministic(built: Path, tmp_path: Path) -> None:
    data = (built / "report" / "index.html").read_bytes()
    page = data.decode("utf-8")
    found = parse(page)
    # 3 table figures (bars, swd, modes) + losses + 9 sample grids, all embedded PNGs with alt text
    assert len(found.imgs) == 13
    assert all(str(i["src"]).startswith("data:image/png;base64,") and i["alt"] for i in found.imgs)
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing but embedded data and anchors
    assert "http://" not in page and "https://" not in page
    assert str(built.parent) not in page
    # hostile text (a failure message, a manifest field) is shown, never parsed as markup
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot; | piped" in page
    assert "Test CPU &lt;fast&gt;" in page and "onerror=alert(1)>" not in page
    # the same bytes when built afresh from a copy of the run under another name
    copy = shutil.copytree(built, tmp_path / "elsewhere" / "other-name")
    shutil.rmtree(copy / "report")
    build_report(copy)
    assert (copy / "report" / "index.html").read_bytes() == data


def test_sections_other_work_adds_appear_only_when_given(built: Path) -> None:
    run = built
    results = read_results(run / "results.csv")
    summary = aggregate(results)
    plain = html_page.page(results, summary, ranks(summary), run)
    for heading in ("Training curves", "Pairwise significance", "Memorization", "Spectra"):
        assert heading not in plain
    keys = {k: str(summary[k].iat[0]) for k in TABLE_KEYS}
    significance = pd.DataFrame([{**keys, "metric": "fid", "model_a": "dcgan", "model_b": "lapgan",
                                  "p_value": 0.0123, "significant": "yes"}])
    figure = run / "samples" / "dcgan-seed0.png"
    full = html_page.page(results, summary, ranks(summary), run, curves=[("scores during training", figure)],
                          significance=significance,
                          memorization=[("nearest training images", figure)], spectra=[("spectrum", figure)])
    found = parse(full)
    assert len(found.imgs) == len(parse(plain).imgs) + 3
    table = found.tables[-1]  # the significance table, under its table, without the key columns
    assert table == [[("metric", False), ("model_a", False), ("model_b", False), ("p_value", False),
                      ("significant", False)], [("fid", False), ("dcgan", False), ("lapgan", False),
                                                ("0.01230", False), ("yes", False)]]
    assert full.index("Pairwise significance") < full.index('id="losses"')
    for heading in ('id="curves"', 'id="memorization"', 'id="spectra"'):
        assert heading in full


# ---------------------------------------------------------------- in a real browser

def _playwright():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set MGBENCH_CHROMIUM)")
    return pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright is not installed: `pip install playwright` (no `playwright install`: the system "
               "Chromium is used)")


def _rows(page, caption: str) -> list[list[str]]:
    """The first cell of each row, per tbody, of the table with this caption."""
    return page.evaluate("""(caption) => {
        const table = [...document.querySelectorAll("table")].find(t => t.caption.textContent === caption);
        return [...table.tBodies].map(b => [...b.rows].filter(r => !r.classList.contains("group"))
                                                      .map(r => r.cells[0].textContent));
    }""", caption)


def _click(page, caption: str, column: int) -> None:
    table = page.locator("table").filter(has=page.locator("caption", has_text=caption)).first
    table.locator("thead th").nth(column).click()


def test_index_in_headless_chromium(tmp_path: Path) -> None:
    sync_api = _playwright()
    run = shutil.copytree(QUICK, tmp_path / "quick")
    results = pd.read_csv(run / "results.csv")
    failed = {**results.iloc[0].to_dict(), "model": "vae", "seed": 3, "status": "failed", "message": HOSTILE}
    pd.concat([results, pd.DataFrame([failed])]).to_csv(run / "results.csv", index=False)
    shutil.rmtree(run / "report")
    build_report(run)
    index = run / "report" / "index.html"
    summary = pd.read_csv(run / "report" / "summary.csv")
    n_tables = len(markdown_tables((run / "report" / "report.md").read_text(encoding="utf-8")))
    n_images = len(list((run / "report" / "figures").glob("*.png"))) + len(list((run / "samples").glob("*.png")))
    shot = tmp_path / "shot.png"

    started = time.perf_counter()
    events: list[str] = []
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=FLAGS, headless=True,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.on("console", lambda m: events.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: events.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: events.append(f"failed request: {r.url[:100]}"))
            page.on("request", lambda r: events.append(f"request: {r.url[:100]}")
                    if not r.url.startswith("data:") and r.url != index.as_uri() else None)
            page.on("dialog", lambda d: events.append(f"dialog: {d.message}"))
            page.goto(index.as_uri(), wait_until="load")
            assert page.title() == "mgbench report: quick"
            assert page.locator("table").count() == n_tables
            assert page.locator("img").count() == n_images  # the hostile message added none
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
            assert all(done and width > 0 for done, width in sizes), sizes
            assert page.locator("table th:not([scope])").count() == 0
            # wide tables scroll inside their box: the page itself never scrolls sideways
            assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
            assert page.get_by_text(HOSTILE).count() == 1

            # Sort "Sample quality" by a score whose order is not the names' order: ascending, then
            # descending; the calibration rows stay below.
            quality = "Sample quality"
            before = _rows(page, quality)
            assert before == [sorted(before[0]), ["real-data", "noise"]]
            header = [h.split(" ")[0] for h in page.locator("table").filter(
                has=page.locator("caption", has_text=quality)).first.locator("thead th").all_inner_texts()]
            orders = {}
            for metric in header:
                rows = summary[(summary["metric"] == metric) & (summary["kind"] == "model")]
                if len(rows) and rows["mean"].is_unique:
                    orders[metric] = list(rows.sort_values("mean")["model"])
            metric = next(m for m, o in orders.items() if o not in (before[0], before[0][::-1]))
            order, column = orders[metric], header.index(metric)
            _click(page, quality, column)
            assert _rows(page, quality) == [order, ["real-data", "noise"]], metric
            _click(page, quality, column)
            assert _rows(page, quality) == [order[::-1], ["real-data", "noise"]], metric
            _click(page, quality, 0)  # by name again, as text
            assert _rows(page, quality) == before
            # A missing value ("—") sorts last both ways: only cgan has cond_acc.
            task = "Conditional accuracy and reconstruction"
            _click(page, task, 2)
            assert _rows(page, task)[0] == ["cgan", "vae"]
            _click(page, task, 2)
            assert _rows(page, task)[0] == ["cgan", "vae"]
            _click(page, task, 0)
            _click(page, task, 0)
            assert _rows(page, task)[0] == ["vae", "cgan"]
            _click(page, task, 0)
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    print(f"browser check: {time.perf_counter() - started:.1f} s")
    assert events == []

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    ink = float((pixels.min(axis=2) < 200).mean())
    assert colours > 50 and ink > 0.02, (colours, ink)  # text, rules, tinted best cells: not blank
    if os.environ.get("MGBENCH_HTML_SHOT"):
        shutil.copy(shot, os.environ["MGBENCH_HTML_SHOT"])
