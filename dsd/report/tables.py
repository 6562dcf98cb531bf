"""Tables from run records: our numbers beside the paper's, as markdown, LaTeX and CSV.

Reads every finished run under ``results/runs`` (see the run-record contract in ``dsd.records.run``)
and writes to ``results/tables``:

- ``overview.*``: one row per study (task + model on one dataset and recipe), like the paper's
  Table 1: the primary metric for baseline, sparse, DSD and the equal-epoch dense control, as
  mean ± std over seeds, the seeds, DSD's gain over the baseline and over the control (paired by
  seed; positive = DSD better, whichever way the metric goes), a plain verdict of DSD against the
  control, and the paper's published baseline and DSD figures with the dataset they were measured
  on. Paper rows we have not run are listed as "not run", so the table is always the whole Table 1.
- ``<task>.*``: one detailed table per task, shaped like the paper's: rows baseline / sparse /
  DSD / control and a column per architecture (metrics joined "a / b" as the paper prints
  top-1 / top-5) or per metric (one architecture: BLEU-1..4); for iterated recipes (D-S-D-S-D,
  the speech tables) one row per phase of each branch with the paper's per-phase figures beside.
  The CSV is a tidy dump (one number per line) of ours and the paper's, for other tools.

Every row names its dataset and every paper figure names the paper's, so a stand-in result can
never be read as a paper-scale one. Unfinished runs (no ``done``) and corrupt ones (unreadable
JSON, missing or ill-typed keys) are skipped with a ``SkippedRunWarning`` naming the folder.
Nothing is tuned here: when DSD does not beat the control the tables say so.

This module only wires the room together and writes the files: the runs come from ``runs`` and
``studies``, the numbers from ``stats``, the tables from ``overview`` and ``task_tables``, the
text from ``render``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dsd.files import atomic_write_text
from dsd.report.finished import Finished
from dsd.report.overview import overview
from dsd.report.paper import read_paper
from dsd.report.render import Document, render_latex, render_markdown
from dsd.report.sweeps import sweeps_document, sweeps_frame
from dsd.report.task_tables import task_document, task_frame, task_order


def _write(out_dir: Path, stem: str, doc: Document, frame: pd.DataFrame) -> list[Path]:
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.tex", out_dir / f"{stem}.csv"]
    atomic_write_text(paths[0], render_markdown(doc))
    atomic_write_text(paths[1], render_latex(doc))
    atomic_write_text(paths[2], frame.to_csv(index=False, lineterminator="\n", float_format="%.4f"))
    return paths


@dataclass(frozen=True)
class TableFile:
    """What one ``<stem>.{md,tex,csv}`` holds: the document (markdown, LaTeX, the report page)
    and the tidy frame (CSV)."""

    stem: str
    doc: Document
    frame: pd.DataFrame


def documents(finished: Finished, paper: pd.DataFrame) -> list[TableFile]:
    """Every table file's content, in the order they are written: the overview, one per task,
    then the sweeps (when any)."""
    studies = finished.studies
    doc, frame = overview(studies, paper)
    files = [TableFile("overview", doc, frame)]
    for task in task_order(studies, paper):
        mine = [s for s in studies if s.task == task]
        files.append(TableFile(task, task_document(task, mine, paper), task_frame(mine, paper)))
    if finished.sweeps:
        files.append(TableFile("sweeps", sweeps_document(finished.sweeps), sweeps_frame(finished.sweeps)))
    return files


def table_documents(runs_dir: Path, paper_dir: Path | None) -> list[TableFile]:
    """``documents`` of the finished runs under ``runs_dir`` and the paper's numbers in ``paper_dir``
    (None: those shipped with the package)."""
    return documents(Finished.load(Path(runs_dir)), read_paper(paper_dir))


def write_tables(files: Sequence[TableFile], out_dir: Path) -> list[Path]:
    """Write each table file as ``<stem>.{md,tex,csv}`` under ``out_dir``; returns the paths."""
    return [path for file in files for path in _write(Path(out_dir), file.stem, file.doc, file.frame)]


def build_tables(runs_dir: Path, paper_dir: Path | None, out_dir: Path) -> list[Path]:
    """Write ``overview.{md,tex,csv}``, ``<task>.{md,tex,csv}`` and ``sweeps.{md,tex,csv}`` to
    ``out_dir``; returns the paths written. ``paper_dir`` None: the paper's numbers shipped with
    the package. Unfinished or corrupt runs are skipped with a ``SkippedRunWarning``."""
    return write_tables(table_documents(runs_dir, paper_dir), out_dir)
