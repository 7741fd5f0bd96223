"""Reporting: what ``projbench report`` prints and draws, one module per kind of output.

* :mod:`~projbench.report.run_files` — run files: rich tables per suite on stderr, a suite's
  figures, the progress bar of ``projbench run``;
* :mod:`~projbench.report.study` — study folders: the d_int90 table (intervals, reference
  columns, budgets), Markdown/CSV/JSON/HTML;
* :mod:`~projbench.report.study_extra_tables` — the tables beside it: robustness of d_int90
  across a study's variants, training stability against d;
* :mod:`~projbench.report.study_figures` — a study's figures: accuracy against d per pair,
  d_int90 per dataset and against each axis, stability;
* :mod:`~projbench.report.html` — one self-contained HTML page (tables, figures embedded,
  provenance);
* :mod:`~projbench.report.figures` — :func:`~projbench.report.figures.save_figure`: every PNG
  written to a temporary name and renamed into place.

Nothing is imported here, so importing one of them does not import the others (or matplotlib).
"""
