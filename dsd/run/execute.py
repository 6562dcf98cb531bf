"""Running a study: prepare the data once, build the study's graph, and train its runs in order.

Finished runs are found by their folder and reused, never retrained; unfinished ones resume from
their checkpoint. Each run is trained under its lock (``dsd.run.walk``), so a run another process
trains is left to it. Each run gets its record (``config.json``) from the planned run, the task
and the data, and trains in the loop (``dsd.run.training.loop``). Under torchrun every rank walks
the same graph; rank 0 prepares the data, holds the locks and writes the files.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dsd.errors import CheckpointError, ConfigError
from dsd.files import safe_torch_load
from dsd.records import METHODS, RunRecord, load_record, load_result
from dsd.run import dist
from dsd.run.settings import RunConfig
from dsd.run.study import PlannedRun, Study, start_identity, study_recipe
from dsd.run.training.histograms import HistogramCapture
from dsd.run.training.hooks import LoopHook
from dsd.run.training.loop import RunLoop, RunPlan
from dsd.run.training.repair import damaged_result, reevaluate
from dsd.run.walk import StudyWalk, WalkOutcome
from dsd.schedule import Schedule
from dsd.taskkit.adapter import TaskAdapter
from dsd.taskkit.config import config_fields
from dsd.taskkit.environment import library_versions
from dsd.taskkit.fingerprint import DataFingerprint, skipped_record
from dsd.taskkit.weights import load_model_weights


@dataclass(frozen=True)
class PreparedData:
    """What the study knows of its data once prepared: its identity and what was left out."""

    fingerprint: DataFingerprint
    skipped: dict[str, Any]


@dataclass(frozen=True)
class StartPoint:
    """Where the baseline's weights come from: its identity ("" = train the dense phase) and,
    for a given start, the weights."""

    identity: str = ""
    state: dict[str, torch.Tensor] | None = None


def run_study(adapter: TaskAdapter, run: RunConfig, recipe: Schedule | None = None) -> list[Path]:
    """Run (or reuse) every requested method for every seed; returns the requested runs' folders.
    ``recipe``: instead of the task's; scaled by ``run.epochs_scale``."""
    return [folder.path for folder in train_study(adapter, run, recipe).requested]


def train_study(
    adapter: TaskAdapter,
    run: RunConfig,
    recipe: Schedule | None = None,
    only: str = "",
    train: bool = True,
) -> WalkOutcome:
    """``run_study``, saying which runs this process trained and which it left to others.
    ``only``: train that run of the study alone (its folder relative to the results folder);
    ``train`` False: train none (reuse the finished ones, as a study's closing job does)."""
    recipe = study_recipe(adapter, run.epochs_scale, recipe)
    study, data, start = prepare_study(adapter, run, [recipe])
    return train_runs(adapter, run, study, data, start, only, train)


def prepare_study(
    adapter: TaskAdapter, run: RunConfig, recipes: Sequence[Schedule]
) -> tuple[Study, PreparedData, StartPoint]:
    """Prepare the data (rank 0; the others wait), load the start point, and build the study of
    ``recipes`` (scaled, checked) with the data's fingerprint."""
    unknown = sorted(set(run.methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    info = dist.init_distributed(run.device)
    data = None
    if info.is_main:
        adapter.prepare()
        data = PreparedData(adapter.data_fingerprint(), skipped_record(adapter.skipped_inputs()))
        _say_skipped(adapter, data.skipped)
    data = dist.broadcast_object(data)
    start = load_start(adapter, run.start)
    return Study.build(adapter, run, recipes, data.fingerprint.digest, start.identity), data, start


def train_runs(
    adapter: TaskAdapter,
    run: RunConfig,
    study: Study,
    data: PreparedData,
    start: StartPoint,
    only: str = "",
    train: bool = True,
) -> WalkOutcome:
    """Train every run of ``study`` not done yet and held by no other process, in the graph's
    order (``only``: that one run; ``train`` False: none); returns what was trained and what
    was left to others."""
    info = dist.init_distributed(run.device)
    walk = StudyWalk(study, run, info, only, train)
    for planned in walk.finished():
        _check_finished(adapter, run, planned, data, info, walk)
    while (planned := walk.next_run()) is not None:
        with walk.holding(planned) as guard:
            _train(adapter, run, planned, data, start, info, guard)
    return walk.outcome


def _check_finished(
    adapter: TaskAdapter,
    run: RunConfig,
    planned: PlannedRun,
    data: PreparedData,
    info: dist.DistInfo,
    walk: StudyWalk,
) -> None:
    """A finished run is reused; one whose ``result.json`` is missing or damaged is measured again
    from its saved weights first (``dsd.run.training.repair``), never reused without a word, under
    its lock (a process that holds it is repairing it already)."""
    plan = _run_plan(adapter, run, planned, data, info)
    why = damaged_result(plan)
    if why is None or not walk.claim(planned):
        return
    with walk.holding(planned):
        if info.is_main:
            print(
                f"warning: {planned.folder.path} is marked done but its result.json is {why}: "
                "evaluating its saved weights again to write it anew",
                file=sys.stderr,
            )
        with contextlib.suppress(ValueError):  # the run's own record, when it still reads
            plan.record = load_record(planned.folder.path)
        reevaluate(adapter, plan, run.loop(planned.seed), info)


def _say_skipped(adapter: TaskAdapter, skipped: dict[str, Any]) -> None:
    """One line per kind of skipped input, so a skip never goes unnoticed on the console."""
    for kind, entry in skipped.items():
        shown = ", ".join(entry["first"][:3]) + (", ..." if entry["count"] > 3 else "")
        print(
            f"warning: {adapter.name}: skipped {entry['count']} {kind} ({shown}); "
            "every run's config.json lists them",
            file=sys.stderr,
        )


def load_start(adapter: TaskAdapter, start: str) -> StartPoint:
    """Identity and weights of the start point, checked against the task's model before any run
    folder exists, so a wrong file leaves nothing behind."""
    if not start:
        return StartPoint()
    if start == "pretrained":
        state = adapter.pretrained_state()
        if state is None:
            raise ConfigError(f"task {adapter.name} ({adapter.model_name}) has no pretrained weights")
        source = f"pretrained weights of {adapter.model_name}"
    else:
        path = Path(start)
        if not path.is_file():
            raise CheckpointError(f"start checkpoint {path} does not exist")
        state = safe_torch_load(path)
        source = f"start checkpoint {path}"
    load_model_weights(adapter.build_model(), state, source)
    return StartPoint(start_identity(adapter, start), state)


def run_record(
    adapter: TaskAdapter, run: RunConfig, planned: PlannedRun, data: PreparedData, info: dist.DistInfo
) -> RunRecord:
    """The ``config.json`` of ``planned``: what it is, the task, the data and where it trains."""
    baseline = planned.baseline
    return RunRecord(
        task=adapter.name,
        model=adapter.model_name,
        dataset=adapter.dataset_name,
        paper_key=adapter.paper_key,
        method=planned.method.name,
        seed=planned.seed,
        hash=planned.run_hash or "",
        schedule="" if planned.evaluates_start else str(planned.schedule),
        recipe=str(planned.recipe),
        epochs_scale=run.epochs_scale,
        start=planned.start,
        baseline_hash=planned.baseline_hash,
        baseline_run="" if baseline is None else run.results.relative(baseline.folder),
        task_config=config_fields(adapter.config),
        description=adapter.description,
        metrics={
            name: {"higher_is_better": s.higher_is_better, "label": s.label or name, "percent": s.percent}
            for name, s in adapter.metrics.items()
        },
        primary_metric=adapter.primary_metric,
        splits=list(adapter.eval_datasets()),
        versions=library_versions(),
        world_size=info.world_size,
        device=info.device.type,
        amp=run.amp,
        deterministic=run.deterministic,
        data_fingerprint=data.fingerprint.digest,
        data_facts=data.fingerprint.facts,
        setup=adapter.setup_notes(),
        skipped=data.skipped,
    )


def _train(
    adapter: TaskAdapter,
    run: RunConfig,
    planned: PlannedRun,
    data: PreparedData,
    start: StartPoint,
    info: dist.DistInfo,
    guard: LoopHook,
) -> None:
    """Train (or, for a given start, evaluate) one run to its end, resuming what an earlier
    attempt left; ``guard`` stops it if its lock is lost."""
    plan = _run_plan(adapter, run, planned, data, info, guard)
    loop = RunLoop(adapter, plan, run.loop(planned.seed), info)
    if planned.evaluates_start:
        loop.evaluate_start(start.state)
    else:
        loop.run()


def _run_plan(
    adapter: TaskAdapter,
    run: RunConfig,
    planned: PlannedRun,
    data: PreparedData,
    info: dist.DistInfo,
    guard: LoopHook | None = None,
) -> RunPlan:
    """What the loop needs of one planned run: its folder, phases, record, start and watchers."""
    baseline = planned.baseline
    return RunPlan(
        folder=planned.folder,
        schedule=planned.schedule,
        first_phase=planned.first_phase,
        record=run_record(adapter, run, planned, data, info),
        init_weights=None if baseline is None else baseline.folder.phase_weights(0),
        start_step=0 if baseline is None else _steps_of(baseline),
        hooks=[
            *([guard] if guard is not None else []),
            *([HistogramCapture()] if planned.method.name == "dsd" else []),
        ],
        criterion=planned.method.criterion,
        restart=planned.method.restart,
        reset_state=planned.method.reset_state,
    )


def _steps_of(baseline: PlannedRun) -> int:
    """The optimizer steps the baseline trained: a branch's curves continue from there."""
    try:
        return int(load_result(baseline.folder.path).steps)
    except ValueError:
        return 0
