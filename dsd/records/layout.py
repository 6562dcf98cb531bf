"""Where everything lives: the results folder and the run folder, every file name spelled once.

A results folder (``--results DIR``, default ``results/``) holds::

    runs/<task>-<model>/<method>-<hash8>/seed<N>/   one run (below)
    sweeps/<task>-<model>-<hash8>.json               a sparsity sweep's manifest (``dsd.records.sweep``)
    jobs/                                            a launched study's closing report job
    tables/   figures/   report.html                 what the report writes

and a run folder holds:

==================  ==========================================================================
``config.json``     the run's record (``RunRecord``), written first
``metrics.jsonl``   one JSON line per log interval and evaluation (``dsd.records.metrics``)
``checkpoint.pt``   everything to resume bit-identically; removed once the run is done
``phase<i>.pt``     the model's weights at the end of phase ``i`` of the study's recipe
``histograms.json`` the weight histograms of the paper's Figure 4 (``dsd.records.histograms``)
``predictions/``    ``<split>.txt``: captions or transcripts of the last evaluation
``result.json``     the record plus what the run measured (``RunResult``)
``done``            written last: a folder without it is unfinished, whatever else it holds
``lock``            while a process trains the run: who holds it (``dsd.records.lock``)
``jobs/``           what launched the run: ``<job>.json`` per job (``dsd.records.jobs``) and
                    its log, ``<job>_<task>_log.out`` (submitit's name; the local launcher
                    writes the same)
==================  ==========================================================================

A folder's name is for people; what a run is (its method, seed, hash, the baseline it started
from) is read from its records, never parsed back from the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dsd.files import atomic_write_text

DONE_MARKER = "done"
CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
HISTOGRAMS_FILE = "histograms.json"
PREDICTIONS_FOLDER = "predictions"
TENSORBOARD_FOLDER = "tensorboard"
LOCK_FILE = "lock"
JOBS_FOLDER = "jobs"
#: The files whose presence makes a folder a run folder (finished or not).
RECORD_FILES = (CONFIG_FILE, METRICS_FILE, RESULT_FILE, DONE_MARKER)

RUNS_FOLDER = "runs"
SWEEPS_FOLDER = "sweeps"
TABLES_FOLDER = "tables"
FIGURES_FOLDER = "figures"
REPORT_PAGE = "report.html"


def job_log(jobs_folder: Path, job_id: str, task: int = 0) -> Path:
    """The output of task ``task`` of job ``job_id`` in a ``jobs/`` folder: the name submitit
    gives it (``<job>_<task>_log.out``), which the local launcher uses too."""
    return Path(jobs_folder) / f"{job_id}_{task}_log.out"


def job_record(jobs_folder: Path, job_id: str) -> Path:
    """The record of job ``job_id`` in a ``jobs/`` folder (``<job>.json``)."""
    return Path(jobs_folder) / f"{job_id}.json"


def job_records(jobs_folder: Path) -> list[Path]:
    """Every job record of a ``jobs/`` folder, in name order."""
    folder = Path(jobs_folder)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


class _File:
    """A file of a run folder, by name: ``RunFolder(p).config`` is ``p / "config.json"``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, folder: RunFolder, owner: type | None = None) -> Path:
        return folder.path / self.name


@dataclass(frozen=True)
class RunFolder:
    """One run's folder and the paths of its files."""

    path: Path

    config = _File(CONFIG_FILE)
    result = _File(RESULT_FILE)
    metrics = _File(METRICS_FILE)
    checkpoint = _File(CHECKPOINT_FILE)
    histograms = _File(HISTOGRAMS_FILE)
    tensorboard = _File(TENSORBOARD_FOLDER)
    done_marker = _File(DONE_MARKER)
    lock = _File(LOCK_FILE)
    jobs = _File(JOBS_FOLDER)

    @staticmethod
    def phase_weights_name(index: int) -> str:
        """File name of the weights at the end of recipe phase ``index`` (``phase<i>.pt``)."""
        return f"phase{index}.pt"

    def phase_weights(self, index: int) -> Path:
        return self.path / self.phase_weights_name(index)

    def predictions(self, split: str) -> Path:
        return self.path / PREDICTIONS_FOLDER / f"{split}.txt"

    def job_log(self, job_id: str, task: int = 0) -> Path:
        """The output of one task (rank) of a job: submitit's ``<job>_<task>_log.out``."""
        return job_log(self.jobs, job_id, task)

    @property
    def is_done(self) -> bool:
        return self.done_marker.exists()

    def mark_done(self) -> None:
        atomic_write_text(self.done_marker, "")


@dataclass(frozen=True)
class ResultsFolder:
    """A results folder: where runs, sweeps, tables, figures and the report page go.

    Each part may be moved on its own (the command line's ``--runs``, ``--tables``,
    ``--figures``, ``--out``); the sweep manifests always sit beside the runs folder, where
    the sweep wrote them.
    """

    runs: Path
    tables: Path
    figures: Path
    page: Path

    @classmethod
    def at(
        cls,
        root: Path,
        runs: Path | None = None,
        tables: Path | None = None,
        figures: Path | None = None,
        page: Path | None = None,
    ) -> ResultsFolder:
        """The folder ``root``, with any part given explicitly instead of its place under it."""
        root = Path(root)
        return cls(
            runs=Path(runs) if runs is not None else root / RUNS_FOLDER,
            tables=Path(tables) if tables is not None else root / TABLES_FOLDER,
            figures=Path(figures) if figures is not None else root / FIGURES_FOLDER,
            page=Path(page) if page is not None else root / REPORT_PAGE,
        )

    @property
    def root(self) -> Path:
        return self.runs.parent

    @property
    def sweeps(self) -> Path:
        return self.runs.parent / SWEEPS_FOLDER

    @property
    def jobs(self) -> Path:
        """The jobs of the study as a whole (the closing report), beside the runs folder."""
        return self.runs.parent / JOBS_FOLDER

    def run_folder(self, task: str, model: str, method: str, run_hash: str, seed: int) -> RunFolder:
        """``runs/<task>-<model>/<method>-<hash>/seed<N>``."""
        return RunFolder(self.runs / f"{task}-{model}" / f"{method}-{run_hash}" / f"seed{seed}")

    def sweep_manifest(self, task: str, model: str, sweep_hash: str) -> Path:
        """``sweeps/<task>-<model>-<hash>.json``."""
        return self.sweeps / f"{task}-{model}-{sweep_hash}.json"

    def sweep_manifests(self) -> list[Path]:
        """Every sweep manifest, in name order."""
        return sorted(self.sweeps.glob("*.json")) if self.sweeps.is_dir() else []

    def run_folders(self) -> list[RunFolder]:
        """Every folder under ``runs/`` that holds one of a run's records (finished or not)."""
        if not self.runs.is_dir():
            return []
        found = {p.parent for name in RECORD_FILES for p in self.runs.rglob(name) if p.is_file()}
        return [RunFolder(path) for path in sorted(found)]

    def launched_folders(self) -> list[RunFolder]:
        """Every run folder under ``runs/``, also those a launcher has only queued a job for
        (a ``jobs/`` folder and nothing else yet)."""
        if not self.runs.is_dir():
            return []
        found = {f.path for f in self.run_folders()}
        found |= {p.parent for p in self.runs.rglob(JOBS_FOLDER) if p.is_dir()}
        return [RunFolder(path) for path in sorted(found)]

    def relative(self, folder: RunFolder) -> str:
        """A run folder as the records link it: relative to the results folder, POSIX-style."""
        return folder.path.relative_to(self.root).as_posix()
