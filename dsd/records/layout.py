"""Every file of a run folder, named in one place.

A run lives in ``<results>/runs/<task>-<model>/<method>-<hash8>/seed<N>/`` and holds:

==================  ==========================================================================
``config.json``     the run's record (``RunRecord``), written first
``metrics.jsonl``   one JSON line per log interval and evaluation, appended as the run goes
``checkpoint.pt``   everything to resume bit-identically; removed once the run is done
``phase<i>.pt``     the model's weights at the end of phase ``i`` of the study's recipe
``histograms.json`` the weight histograms of the paper's Figure 4 (DSD runs)
``predictions/``    ``<split>.txt``: captions or transcripts of the last evaluation
``result.json``     the record plus what the run measured (``RunResult``)
``done``            written last: a folder without it is unfinished, whatever else it holds
==================  ==========================================================================

The folder's name is for people; what a run is (its method, seed, hash, the baseline it started
from) is read from its records, never parsed back from the name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsd.files import atomic_write_text

DONE_MARKER = "done"
CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
HISTOGRAMS_FILE = "histograms.json"
PREDICTIONS_FOLDER = "predictions"
#: The files whose presence makes a folder a run folder (finished or not).
RECORD_FILES = (CONFIG_FILE, METRICS_FILE, RESULT_FILE, DONE_MARKER)


@dataclass(frozen=True)
class RunFolder:
    """One run's folder and the paths of its files."""

    path: Path

    @classmethod
    def of(cls, results_dir: Path, task: str, model: str, method: str, run_hash: str, seed: int) -> RunFolder:
        """``<results>/runs/<task>-<model>/<method>-<hash>/seed<N>``."""
        return cls(Path(results_dir) / "runs" / f"{task}-{model}" / f"{method}-{run_hash}" / f"seed{seed}")

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def result(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def histograms(self) -> Path:
        return self.path / HISTOGRAMS_FILE

    @property
    def done_marker(self) -> Path:
        return self.path / DONE_MARKER

    @staticmethod
    def phase_weights_name(index: int) -> str:
        """File name of the weights at the end of recipe phase ``index`` (``phase<i>.pt``)."""
        return f"phase{index}.pt"

    def phase_weights(self, index: int) -> Path:
        return self.path / self.phase_weights_name(index)

    def predictions(self, split: str) -> Path:
        return self.path / PREDICTIONS_FOLDER / f"{split}.txt"

    @property
    def is_done(self) -> bool:
        return self.done_marker.exists()

    def mark_done(self) -> None:
        atomic_write_text(self.done_marker, "")


def finished_runs(runs_dir: Path) -> list[RunFolder]:
    """Every run folder under ``runs_dir`` holding a ``done`` marker, in sorted order."""
    return [RunFolder(marker.parent) for marker in sorted(Path(runs_dir).glob(f"**/{DONE_MARKER}"))]


# ---------------------------------------------------------------------- metrics.jsonl
def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (readers ignore a torn last line, see ``read_jsonl``)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete lines of a JSONL file; a torn final line (crash mid-write) is ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a JSON line") from None
    return records


def truncate_file(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (resume: drop lines logged after the checkpoint)."""
    if Path(path).exists():
        with open(path, "r+b") as handle:
            handle.truncate(size)


def file_size(path: Path) -> int:
    return Path(path).stat().st_size if Path(path).exists() else 0
