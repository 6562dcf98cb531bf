"""What the report reads, read once: the finished runs of a results folder, their studies and sweeps.

Every report command (tables, figures, the page) starts here, so the runs are loaded and
checked once per command: each skipped folder warns once, and the tables, the figures and the
page see the same runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dsd.records import ResultsFolder
from dsd.report.runs import Run, load_runs
from dsd.report.studies import Study, group_studies
from dsd.report.sweeps import Sweep, load_sweeps


@dataclass(frozen=True)
class Finished:
    """The finished runs under a runs folder, grouped into studies, and the sweeps among them."""

    runs: list[Run]
    studies: list[Study]
    sweeps: list[Sweep]

    @classmethod
    def load(cls, runs_dir: Path) -> Finished:
        """Read every run under ``runs_dir`` (and the sweep manifests beside it)."""
        runs = load_runs(Path(runs_dir))
        return cls(runs, group_studies(runs), load_sweeps(Path(runs_dir), runs))

    @classmethod
    def of(cls, results: ResultsFolder) -> Finished:
        return cls.load(results.runs)
