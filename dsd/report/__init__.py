"""The reporting room: tables and figures from finished runs, beside the paper's numbers.

It only reads: run folders (through ``dsd.records.run`` and ``dsd.records.layout``) and the paper's
published figures (``dsd/report/published/*.csv``), and writes ``results/tables``,
``results/figures`` and ``results/report.html``.

- ``runs``: which run folders count (finished, well-formed, not a duplicate) as typed ``Run``\\ s;
  every other folder is skipped with a ``SkippedRunWarning`` saying why.
- ``studies``: how runs group into studies (a baseline and its branches under one recipe) and
  what a study measured, as tidy frames.
- ``stats``: per-seed statistics (``Stat``), gains paired by seed with their 95 % Student-t
  interval (``Gain``), and the verdicts drawn only where the interval excludes zero.
- ``paper``: the paper's numbers, how a figure is looked up, the report split and Table 1 order.
- ``cells``: the words all tables share: role and metric labels, footnotes, paper cells, runs list.
- ``overview``: the Table-1-like overview, one row per study, and its CSV frame.
- ``task_tables``: per task, the method table, the per-phase table and the tidy CSV frame.
- ``ablations``: DSD beside its ablations (random mask, re-init at re-dense) and the control.
- ``sweeps``: the sparsity sweeps (``results/sweeps/*.json``): table, CSV frame and figure.
- ``render``: the document model (``Document``, ``Table``) and its markdown, LaTeX and HTML renderers.
- ``tables``: ``table_documents`` makes every table document, ``build_tables`` writes them;
  ``main`` is ``dsd-suite tables``.
- ``figures``: weight histograms and training curves; ``main`` is ``dsd-suite figures``.
- ``page``: every table document and figure on one self-contained HTML page; ``main`` is
  ``dsd-suite report``.

Importing this package loads pandas and matplotlib; ``import dsd`` (the engine) never imports it.
"""

from dsd.report.figures import build_figures
from dsd.report.page import build_page
from dsd.report.paper import load_paper
from dsd.report.runs import Run, SkippedRunWarning, load_runs
from dsd.report.stats import Stat
from dsd.report.studies import Study, group_studies
from dsd.report.tables import build_tables

__all__ = [
    "Run",
    "SkippedRunWarning",
    "Stat",
    "Study",
    "build_figures",
    "build_page",
    "build_tables",
    "group_studies",
    "load_paper",
    "load_runs",
]
