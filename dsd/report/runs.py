"""Reading finished run records: which seed folders count, and how they form studies.

A run folder (``results/runs/<task>-<model>/<method>-<hash8>/seed<N>/``, written by
``dsd.run.loop``) counts once it holds ``done`` and a well-formed ``result.json``. Anything else is
skipped with a ``SkippedRunWarning`` naming the folder and why, never an exception: one torn
write must not cost the tables of a hundred good runs.

A *study* is a baseline run and the branches (``dsd``, ``dense-control``) that start from its
weights under one recipe, over seeds; the tables and curves are drawn per study.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from dsd.run.folder import CONFIG_FILE, DONE_MARKER, METRICS_FILE, RESULT_FILE

METHODS = ("baseline", "dsd", "dense-control")
_RECORD_FILES = (CONFIG_FILE, METRICS_FILE, RESULT_FILE, DONE_MARKER)


class SkippedRunWarning(UserWarning):
    """A run folder the aggregator left out: unfinished, corrupt, or a duplicate."""


@contextlib.contextmanager
def skipped_runs_on_stderr() -> Iterator[None]:
    """Print each skipped run as one clean ``warning: skipping run <folder>: <reason>`` line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRunWarning)
        yield
    for warning in caught:
        if issubclass(warning.category, SkippedRunWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


@dataclass(frozen=True)
class Run:
    """One finished, well-formed seed folder and its ``result.json``."""

    folder: Path
    record: dict[str, Any]  # checked by ``check_record``

    task = property(lambda self: self.record["task"])
    model = property(lambda self: self.record["model"])
    dataset = property(lambda self: self.record["dataset"])
    paper_key = property(lambda self: self.record["paper_key"])
    method = property(lambda self: self.record["method"])
    seed = property(lambda self: self.record["seed"])
    recipe = property(lambda self: self.record["recipe"])
    hash = property(lambda self: str(self.record.get("hash", "")))
    metrics = property(lambda self: self.record["metrics"])  # name -> {higher_is_better, label, percent}
    primary_metric = property(lambda self: self.record["primary_metric"])
    splits = property(lambda self: self.record["splits"])
    phases = property(lambda self: self.record["phases"])  # [{index, label, kind, metrics, ...}]
    final = property(lambda self: self.record["final"])  # split -> metric -> value

    @property
    def baseline_hash(self) -> str:
        """The hash of the baseline run this one starts from (its own, for a baseline)."""
        if self.method == "baseline":
            return str(self.record.get("hash", ""))
        link = self.record.get("baseline_run")
        return Path(link).parent.name.removeprefix("baseline-") if link else ""


def _skip(folder: Path, reason: str) -> None:
    warnings.warn(SkippedRunWarning(f"skipping run {folder}: {reason}"), stacklevel=3)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_metric_block(block: Any, where: str) -> None:
    if not isinstance(block, dict):
        raise ValueError(f"{where} should map split -> metrics, got {type(block).__name__}")
    for split, metrics in block.items():
        if not isinstance(metrics, dict):
            raise ValueError(f"{where}[{split!r}] should map metric -> number")
        for name, value in metrics.items():
            if not _is_number(value):
                raise ValueError(f"{where}[{split!r}][{name!r}] should be a finite number, got {value!r}")


def check_record(record: Any) -> None:
    """Raise ``ValueError`` saying what is wrong if ``record`` is not a usable ``result.json``."""
    if not isinstance(record, dict):
        raise ValueError(f"should hold a JSON object, got {type(record).__name__}")
    for key in ("task", "model", "dataset", "paper_key", "method", "primary_metric", "recipe"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise ValueError(f"missing key {key!r} (a non-empty string)")
    if record["method"] not in METHODS:
        raise ValueError(f"method {record['method']!r} is none of {', '.join(METHODS)}")
    if not isinstance(record.get("seed"), int) or isinstance(record["seed"], bool):
        raise ValueError("missing key 'seed' (an integer)")
    specs = record.get("metrics")
    if not isinstance(specs, dict) or not all(
        isinstance(s, dict) and isinstance(s.get("higher_is_better"), bool) for s in specs.values()
    ):
        raise ValueError("missing key 'metrics' (metric -> {higher_is_better: bool, ...})")
    if record["primary_metric"] not in specs:
        raise ValueError(f"primary_metric {record['primary_metric']!r} is not among its metrics")
    splits = record.get("splits")
    if not isinstance(splits, list) or not splits or not all(isinstance(s, str) for s in splits):
        raise ValueError("missing key 'splits' (a non-empty list of split names)")
    phases = record.get("phases")
    if not isinstance(phases, list):
        raise ValueError("missing key 'phases' (a list)")
    for i, phase in enumerate(phases):
        if not isinstance(phase, dict) or not isinstance(phase.get("index"), int):
            raise ValueError(f"phases[{i}] lacks an integer 'index'")
        if phase.get("kind") not in ("dense", "sparse"):
            raise ValueError(f"phases[{i}]['kind'] should be 'dense' or 'sparse'")
        _check_metric_block(phase.get("metrics"), f"phases[{i}]['metrics']")
    if "final" not in record or not record["final"]:
        raise ValueError("missing key 'final' (metrics after the last phase)")
    _check_metric_block(record["final"], "final")
    if not _is_number(record.get("epochs_scale", 1.0)):
        raise ValueError("'epochs_scale' should be a finite number")


def load_runs(runs_dir: Path) -> list[Run]:
    """Every finished, well-formed run under ``runs_dir``, in sorted folder order.

    Each folder left out gets a ``SkippedRunWarning`` naming it and why: no ``done`` marker
    (unfinished), an unreadable or ill-formed ``result.json`` (corrupt), or a second run of the
    same method and seed from the same baseline and recipe (duplicate; the first is kept).
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    folders = sorted({p.parent for name in _RECORD_FILES for p in runs_dir.rglob(name) if p.is_file()})
    runs: list[Run] = []
    seen: dict[tuple[Any, ...], Path] = {}
    for folder in folders:
        if not (folder / DONE_MARKER).is_file():
            _skip(folder, "unfinished (no 'done' marker)")
            continue
        try:
            record = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
            check_record(record)
        except FileNotFoundError:
            _skip(folder, f"corrupt: '{DONE_MARKER}' is there but {RESULT_FILE} is missing")
            continue
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            _skip(folder, f"corrupt: {RESULT_FILE} is not valid JSON ({err})")
            continue
        except ValueError as err:
            _skip(folder, f"corrupt: {RESULT_FILE} {err}")
            continue
        run = Run(folder, record)
        key = (run.paper_key, run.dataset, run.recipe, run.baseline_hash, run.method, run.seed, run.hash)
        key = key[:-1] if run.baseline_hash else key  # without the link, only the run's own hash
        if key in seen:
            _skip(folder, f"duplicate of {seen[key]} (same study, method and seed)")
            continue
        seen[key] = folder
        runs.append(run)
    return runs


@dataclass
class Study:
    """A baseline and the branches that start from it under one recipe, over seeds."""

    key: str
    paper_key: str
    task: str
    model: str
    dataset: str
    recipe: str
    runs: list[Run] = field(default_factory=list)

    def of(self, method: str) -> list[Run]:
        return sorted((r for r in self.runs if r.method == method), key=lambda r: r.seed)

    @property
    def first(self) -> Run:
        """The representative record: a dsd run if any (it has every phase), else the first."""
        return (self.of("dsd") or self.of("dense-control") or self.of("baseline"))[0]

    @property
    def specs(self) -> dict[str, dict[str, Any]]:
        return self.first.metrics

    @property
    def primary(self) -> str:
        return self.first.primary_metric

    @property
    def metric_order(self) -> list[str]:
        """Metrics in reading order (records store them sorted by name): numbered families in
        number order (BLEU-1..4, top-1 / top-5), a primary metric without a number first (WER, CER)."""
        names = sorted(
            self.specs, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]
        )
        if not any(ch.isdigit() for ch in self.primary):
            names.remove(self.primary)
            names.insert(0, self.primary)
        return names

    @property
    def iterated(self) -> bool:
        """More than one sparse phase (D-S-D-S-D): shown per phase, like the speech tables."""
        return any(sum(p["kind"] == "sparse" for p in r.phases) > 1 for r in self.of("dsd"))

    @property
    def start(self) -> str:
        starts = {str(r.record.get("start", "")) for r in self.of("baseline")}
        return ", ".join(sorted(starts)) if starts else "unknown (no baseline run)"

    # Measurements, built once the study is complete (``group_studies`` returns it so).
    @cached_property
    def role_values(self) -> pd.DataFrame:
        """One row per (role, seed, split, metric): baseline, dsd and dense-control are each
        run's final metrics; sparse is the dsd run after its first sparse phase."""
        rows = []

        def add(role: str, seed: int, block: dict[str, dict[str, float]]) -> None:
            for split, metrics in block.items():
                for metric, value in metrics.items():
                    rows.append((role, seed, split, metric, float(value)))

        for run in self.runs:
            add(run.method, run.seed, run.final)
            if run.method == "dsd":
                sparse = next((p for p in run.phases if p["kind"] == "sparse"), None)
                if sparse is not None:
                    add("sparse", run.seed, sparse["metrics"])
        return pd.DataFrame(rows, columns=["role", "seed", "split", "metric", "value"])

    @cached_property
    def phase_values(self) -> pd.DataFrame:
        """One row per (method, phase, seed, split, metric); a start-only baseline is phase 0."""
        rows = []
        for run in self.runs:
            for phase in run.phases or [{"index": 0, "metrics": run.final}]:
                for split, metrics in phase["metrics"].items():
                    for metric, value in metrics.items():
                        rows.append((run.method, phase["index"], run.seed, split, metric, float(value)))
        return pd.DataFrame(rows, columns=["method", "phase", "seed", "split", "metric", "value"])


def _study_id(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:8]


def group_studies(runs: Sequence[Run]) -> list[Study]:
    """Group runs into studies: branches by (their baseline run, recipe); a baseline joins every
    study whose branches start from it (one baseline can serve several recipes with its head)."""
    studies: dict[str, Study] = {}

    def study_for(run: Run, recipe: str) -> Study:
        if run.baseline_hash:
            ident = [run.paper_key, run.dataset, run.baseline_hash, recipe]
        else:  # records without the link: same task, data, recipe, scale and config
            config = {k: v for k, v in run.record.get("task_config", {}).items() if k != "recipe"}
            ident = [run.paper_key, run.dataset, recipe, run.record.get("epochs_scale", 1.0), config]
        key = _study_id(ident)
        if key not in studies:
            studies[key] = Study(key, run.paper_key, run.task, run.model, run.dataset, recipe)
        return studies[key]

    for run in runs:
        if run.method != "baseline":
            study_for(run, run.recipe).runs.append(run)
    for run in runs:
        if run.method != "baseline":
            continue
        homes = [s for s in studies.values() if run.baseline_hash and _serves(run, s)]
        for study in homes or [study_for(run, run.recipe)]:
            study.runs.append(run)
    return list(studies.values())


def _serves(baseline: Run, study: Study) -> bool:
    return any(r.baseline_hash == baseline.baseline_hash for r in study.runs if r.method != "baseline") and (
        baseline.paper_key,
        baseline.dataset,
    ) == (study.paper_key, study.dataset)
