"""A sparsity sweep's manifest: which runs make up the sweep, and how its choice is made.

``dsd-suite sweep`` writes one per sweep under ``<results>/sweeps/`` (``ResultsFolder.sweep_manifest``);
the report reads it to gather the sweep's runs. The runs are named by their folders relative to
the results folder: the baseline and the dense control (shared by every point) and DSD at each
sparsity, over seeds. A sweep run again with more seeds adds to its manifest (``merged``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsd.files import atomic_write_json, read_json
from dsd.records.run import config_hash

MANIFEST_FORMAT = 1


@dataclass
class SweepManifest:
    """What ``sweeps/<task>-<model>-<hash>.json`` holds."""

    task: str
    model: str
    paper_key: str
    dataset: str
    recipe: str  # the task's recipe, before any sparsity is swept
    epochs_scale: float
    sparsities: list[float]
    selection_split: str  # the split the sparsity is chosen on
    report_split: str  # the split the choice is read on
    seeds: list[int] = field(default_factory=list)
    recipes: dict[str, str] = field(default_factory=dict)  # "0.3" -> the scaled recipe of that point
    runs: dict[str, list[str]] = field(default_factory=dict)  # "0.3" -> run folders, results-relative
    format: int = MANIFEST_FORMAT

    @property
    def file_hash(self) -> str:
        """What names the sweep's file: the same sweep of the same data keeps one manifest."""
        names = ("task", "model", "dataset", "recipe", "epochs_scale", "sparsities")
        return config_hash({k: getattr(self, k) for k in names})

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, payload: Any) -> SweepManifest:
        """A manifest read back; ``ValueError`` says what is wrong with it."""
        if not isinstance(payload, dict):
            raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            manifest = cls(**{k: v for k, v in payload.items() if k in known})
        except TypeError as err:
            raise ValueError(f"not a sweep manifest ({err})") from None
        runs = manifest.runs
        if not isinstance(runs, dict) or not all(isinstance(v, list) for v in runs.values()):
            raise ValueError("'runs' should map each sparsity to a list of run folders")
        return manifest

    def merged(self, earlier: SweepManifest) -> SweepManifest:
        """This manifest with the seeds and runs an earlier call of the same sweep recorded (a sweep
        rerun with more seeds adds to its manifest, it does not forget the first ones)."""
        runs = {
            key: sorted(set(earlier.runs.get(key, [])) | set(folders)) for key, folders in self.runs.items()
        }
        return dataclasses.replace(self, seeds=sorted(set(earlier.seeds) | set(self.seeds)), runs=runs)


def read_manifest(path: Path) -> SweepManifest:
    """The manifest at ``path``; ``ValueError`` names the file and the fault."""
    try:
        return SweepManifest.from_json(read_json(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def write_manifest(path: Path, manifest: SweepManifest) -> Path:
    """Write ``manifest`` to ``path`` (atomically), merged with what an earlier call of the same
    sweep left there; an unreadable earlier manifest is replaced."""
    if Path(path).is_file():
        with contextlib.suppress(ValueError):  # an unreadable earlier manifest is replaced
            manifest = manifest.merged(read_manifest(path))
    atomic_write_json(path, manifest.to_json())
    return Path(path)
