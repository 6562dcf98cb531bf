"""The reporting room: tables and figures from finished runs, beside the paper's numbers.

It reads only the records (``dsd.records``: run folders, sweep manifests, the figures' index) and
the paper's published figures (``dsd/report/published/*.csv``), never the runtime, and writes
``results/tables``, ``results/figures`` and ``results/report.html``.

- ``runs``: which run folders count (finished, well-formed, not a duplicate) as typed ``Run``\\ s;
  every other folder is skipped with a ``SkippedRunWarning`` saying why.
- ``studies``: how runs group into studies (a baseline and its branches under one recipe) and
  what a study measured, as tidy frames.
- ``sweeps``: the sparsity sweeps (their manifests): table, CSV frame and figure.
- ``finished``: the runs, studies and sweeps of a results folder, read once per command.
- ``stats``: per-seed statistics (``Stat``), gains paired by seed with their 95 % Student-t
  interval (``Gain``), and the verdicts drawn only where the interval excludes zero.
- ``paper``: the paper's numbers, how a figure is looked up, the report split and Table 1 order.
- ``cells``: the words all tables share: role and metric labels, footnotes, paper cells, runs list.
- ``overview``: the Table-1-like overview, one row per study, and its CSV frame.
- ``task_tables``: per task, the method table, the per-phase table and the tidy CSV frame.
- ``ablations``: DSD beside its ablations (random mask, re-init at re-dense) and the control.
- ``render``: the document model (``Document``, ``Table``) and its markdown, LaTeX and HTML renderers.
- ``tables``: every table document (``documents``) and writing them (``write_tables``).
- ``drawing``: a figure written as PNG with its entry in the figures' index.
- ``figures``: weight histograms and training curves (``draw_figures``).
- ``page``: every table document and figure on one self-contained HTML page (``write_page``).

The command line (``dsd-suite tables | figures | report``) calls these functions. Importing this
package loads pandas and matplotlib; ``import dsd`` (the engine) never imports it.
"""

from dsd.report.figures import build_figures, draw_figures
from dsd.report.finished import Finished
from dsd.report.page import build_page, write_page
from dsd.report.paper import load_paper
from dsd.report.runs import Run, SkippedRunWarning, load_runs
from dsd.report.stats import Stat
from dsd.report.studies import Study, group_studies
from dsd.report.tables import build_tables, documents, write_tables

__all__ = [
    "Finished",
    "Run",
    "SkippedRunWarning",
    "Stat",
    "Study",
    "build_figures",
    "build_page",
    "build_tables",
    "documents",
    "draw_figures",
    "group_studies",
    "load_paper",
    "load_runs",
    "write_page",
    "write_tables",
]
