"""Studies: how finished runs group, and what a study measured, as tidy frames.

A *study* is a baseline run and the branches (``dsd``, ``dense-control``) that start from its
weights under one recipe, over seeds; the tables and curves are drawn per study. A branch names
its baseline by hash in its record (``RunResult.baseline_hash``); records that cannot name it are
grouped by what they share instead (task, dataset, recipe, scale and task config).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from dsd.records import METHOD_TABLE, Metrics, RunResult
from dsd.records.methods import BASELINE, CONTROL
from dsd.records.run import FINGERPRINT_SHORT
from dsd.report.runs import Run
from dsd.schedule import Schedule

#: AC/DC's dense reading: the model at the end of its last dense phase.
ACDC_DENSE = "acdc-dense"


@dataclass
class Study:
    """A baseline and the branches that start from it under one recipe, over seeds."""

    key: str
    paper_key: str
    task: str
    model: str
    dataset: str  # the dataset's name plus every departure from the paper's setup (see ``label_of``)
    recipe: str
    data: str = ""  # the data's fingerprint ("" in records written before fingerprints)
    runs: list[Run] = field(default_factory=list)

    @property
    def data_short(self) -> str:
        """The fingerprint as the tables show it, or why there is none."""
        return self.data[:FINGERPRINT_SHORT] if self.data else "unverified"

    def of(self, method: str) -> list[Run]:
        """The runs of ``method``, in seed order."""
        return sorted((r for r in self.runs if r.result.method == method), key=lambda r: r.result.seed)

    @property
    def first(self) -> Run:
        """The representative record: a dsd run if any (it has every phase), else the first."""
        return (self.of("dsd") or self.of("dense-control") or self.of("baseline"))[0]

    @property
    def specs(self) -> dict[str, dict[str, Any]]:
        """Metric name -> {higher_is_better, label, percent}."""
        return self.first.result.metrics

    @property
    def primary(self) -> str:
        return self.first.result.primary_metric

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
        return any(sum(p.kind == "sparse" for p in r.result.phases) > 1 for r in self.of("dsd"))

    @property
    def start(self) -> str:
        """Where the baseline's weights came from ("" = trained from scratch)."""
        starts = {r.result.start for r in self.of("baseline")}
        return ", ".join(sorted(starts)) if starts else "unknown (no baseline run)"

    # Measurements, built once the study is complete (``group_studies`` returns it so).
    @cached_property
    def role_values(self) -> pd.DataFrame:
        """One row per (role, seed, split, metric): every method's role is its runs' final
        metrics; sparse is the dsd run after its first sparse phase; acdc-dense is the AC/DC run
        at the end of its last dense phase (its final metrics, role acdc, are its sparse end)."""
        rows = []
        for run in self.runs:
            r = run.result
            rows += [(r.method, r.seed, *cell) for cell in _cells(r.final)]
            sparse = next((p for p in r.phases if p.kind == "sparse"), None)
            if r.method == "dsd" and sparse is not None:
                rows += [("sparse", r.seed, *cell) for cell in _cells(sparse.metrics)]
            dense = r.last_phase("dense")
            if r.method == "acdc" and dense is not None:
                rows += [(ACDC_DENSE, r.seed, *cell) for cell in _cells(dense.metrics)]
        return pd.DataFrame(rows, columns=["role", "seed", "split", "metric", "value"])

    @cached_property
    def phase_values(self) -> pd.DataFrame:
        """One row per (method, phase, seed, split, metric); a start-only baseline is phase 0."""
        rows = []
        for run in self.runs:
            r = run.result
            phases = [(p.index, p.metrics) for p in r.phases] or [(0, r.final)]
            for index, metrics in phases:
                rows += [(r.method, index, r.seed, *cell) for cell in _cells(metrics)]
        return pd.DataFrame(rows, columns=["method", "phase", "seed", "split", "metric", "value"])


def _cells(block: Metrics) -> Iterator[tuple[str, str, float]]:
    """(split, metric, value) of every number in a split -> metric -> value block."""
    for split, metrics in block.items():
        for metric, value in metrics.items():
            yield split, metric, float(value)


def label_of(result: RunResult) -> str:
    """``Flickr-8K [encoder pixels; epochs ×0.6]``: the dataset, and every way this run departs
    from the paper's setup, so that no row of ours passes for the paper's configuration."""
    notes = list(result.setup)
    if result.epochs_scale != 1:
        notes.append(f"epochs ×{result.epochs_scale:g}")
    return f"{result.dataset} [{'; '.join(notes)}]" if notes else result.dataset


def group_studies(runs: Sequence[Run]) -> list[Study]:
    """Group runs into studies: branches by (their baseline run, recipe); a baseline joins every
    study whose branches start from it (one baseline can serve several recipes with its head)."""
    studies: dict[str, Study] = {}

    def study_for(run: Run) -> Study:
        r = run.result
        key = r.study_key  # never mixes runs on different data (nor verified with unverified ones)
        if key not in studies:
            studies[key] = Study(key, r.paper_key, r.task, r.model, label_of(r), r.recipe, r.data_fingerprint)
        return studies[key]

    roles = {run.folder: METHOD_TABLE[run.result.method].role for run in runs}
    pruned = [run for run in runs if roles[run.folder] not in (BASELINE, CONTROL)]
    for run in pruned:
        study_for(run).runs.append(run)
    # A dense control never prunes, so it is the same run for every sparsity of a recipe (a
    # sweep's points): it joins every study from its baseline whose recipe it controls.
    for run in (r for r in runs if roles[r.folder] == CONTROL):
        homes = [s for s in studies.values() if run.study_baseline and _controls(run, s)]
        for study in homes or [study_for(run)]:
            study.runs.append(run)
    for run in runs:
        if roles[run.folder] != BASELINE:
            continue
        homes = [s for s in studies.values() if run.study_baseline and _serves(run, s)]
        for study in homes or [study_for(run)]:
            study.runs.append(run)
    return list(studies.values())


def _controls(control: Run, study: Study) -> bool:
    """Whether ``control`` is the dense control of ``study``: same baseline and data, and its
    phases are the study recipe's branch phases with nothing pruned."""
    r = control.result
    if (r.paper_key, label_of(r), r.data_fingerprint) != (study.paper_key, study.dataset, study.data):
        return False
    if not any(x.study_baseline == control.study_baseline for x in study.runs):
        return False
    try:
        return str(Schedule.parse(study.recipe).tail().dense_control()) == r.schedule
    except ValueError:
        return False


def _serves(baseline: Run, study: Study) -> bool:
    """Whether ``study``'s branches start from ``baseline`` (on the same paper row and dataset)."""
    r = baseline.result
    same_row = (r.paper_key, label_of(r), r.data_fingerprint) == (study.paper_key, study.dataset, study.data)
    return same_row and any(
        r.study_baseline == baseline.study_baseline for r in study.runs if r.result.method != "baseline"
    )
