"""Reports of a run: aggregation over seeds, tables, figures, the report page, comparison.

* :mod:`mgbench.report.aggregate` — results.csv → summary (mean, std, 95% CI, best) and ranks;
  the summary.csv schema is in its docstring.
* :mod:`mgbench.report.tables` — Markdown, LaTeX and console tables.
* :mod:`mgbench.report.figures` — deterministic PNG figures (matplotlib Agg).
* :mod:`mgbench.report.page` — report.md.
* :mod:`mgbench.report.compare` — does a run reproduce a reference?
* :mod:`mgbench.report.commands` — `mgbench report`, `mgbench compare`, :func:`build_report`.

Kept free of imports so that `import mgbench.report` stays cheap.
"""
