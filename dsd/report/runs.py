"""Reading finished runs: which seed folders count, and what each one measured.

A run folder (``results/runs/<task>-<model>/<method>-<hash8>/seed<N>/``, its files named in
``dsd.records.layout``) counts once it holds ``done`` and a ``result.json`` that
``dsd.records.RunResult.from_json`` accepts. Anything else is skipped with a
``SkippedRunWarning`` naming the folder and why, never an exception: one torn write must not cost
the tables of a hundred good runs.

What a run is (its method, seed, hash, the baseline it started from) comes from its record, never
from its folder's name: the name is for people.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dsd.files import JSONFileError
from dsd.records import DONE_MARKER, RESULT_FILE, ResultsFolder, RunFolder, RunResult, load_result


class ReportWarning(UserWarning):
    """Something the tables and figures left out, said as one clean line (not a traceback)."""


class UnverifiedDataWarning(ReportWarning):
    """A run recorded before data fingerprints existed: its data cannot be checked."""


class SkippedRunWarning(ReportWarning):
    """A run folder the aggregator left out: unfinished, corrupt, or a duplicate."""


@contextlib.contextmanager
def skipped_runs_on_stderr() -> Iterator[None]:
    """Print each ``ReportWarning`` (a skipped run, unreadable paper numbers) as one clean
    ``warning: ...`` line on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReportWarning)
        yield
    for warning in caught:
        if issubclass(warning.category, ReportWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


@dataclass(frozen=True)
class Run:
    """One finished, well-formed seed folder and its checked ``result.json``."""

    folder: Path
    result: RunResult

    @property
    def files(self) -> RunFolder:
        """The paths of the run's files (metrics, histograms, ...)."""
        return RunFolder(self.folder)

    @property
    def study_baseline(self) -> str:
        """The hash of the baseline run whose study this run belongs to (``RunRecord.study_baseline``)."""
        return self.result.study_baseline


def _skip(folder: Path, reason: str) -> None:
    warnings.warn(SkippedRunWarning(f"skipping run {folder}: {reason}"), stacklevel=3)


def _read(folder: Path) -> Run | str:
    """The run in ``folder``, or the reason it does not count."""
    if not (folder / DONE_MARKER).is_file():
        return f"unfinished (no '{DONE_MARKER}' marker)"
    try:
        return Run(folder, load_result(folder))
    except JSONFileError as err:
        if err.missing:
            return f"corrupt: '{DONE_MARKER}' is there but {RESULT_FILE} is missing"
        return f"corrupt: {RESULT_FILE} is {err.reason}"
    except ValueError as err:
        return f"corrupt: {RESULT_FILE} {err}"


def load_runs(runs_dir: Path) -> list[Run]:
    """Every finished, well-formed run under ``runs_dir``, in sorted folder order.

    Each folder left out gets a ``SkippedRunWarning`` naming it and why: no ``done`` marker
    (unfinished), an unreadable or ill-formed ``result.json`` (corrupt), or a second run of the
    same method and seed from the same baseline and recipe (duplicate; the first is kept).
    Runs recorded without a data fingerprint are kept, with one ``UnverifiedDataWarning``.
    """
    runs: list[Run] = []
    seen: dict[tuple[object, ...], Path] = {}
    for folder in (f.path for f in ResultsFolder.at(Path(runs_dir).parent, runs=runs_dir).run_folders()):
        run = _read(folder)
        if isinstance(run, str):
            _skip(folder, run)
            continue
        r = run.result
        key: tuple[object, ...] = (r.paper_key, r.dataset, r.recipe, run.study_baseline, r.method, r.seed)
        if not run.study_baseline:  # without the link, only the run's own hash tells runs apart
            key += (r.hash,)
        if key in seen:
            _skip(folder, f"duplicate of {seen[key]} (same study, method and seed)")
            continue
        seen[key] = folder
        runs.append(run)
    unverified = [run.folder for run in runs if not run.result.data_fingerprint]
    if unverified:
        warnings.warn(
            UnverifiedDataWarning(
                f"{len(unverified)} run(s) were recorded before data fingerprints (e.g. {unverified[0]}): "
                "their dataset cannot be verified, so the tables show them apart, marked 'unverified'; "
                "rerun their commands to replace them"
            ),
            stacklevel=2,
        )
    return runs
