"""A task's study: the dense baseline, then DSD and the equal-length dense control from it.

    baseline       D0                       (trained, or the start checkpoint evaluated)
                    ├── dsd              S1 D2 [S3 D4 ...]   the paper's phases
                    ├── dense-control    D1 D2 [D3 D4 ...]   same lengths and LRs, never pruned
                    ├── dsd-random-mask  S1 D2 ...           a random mask of the same size
                    └── dsd-reinit       S1 D2 ...           re-dense re-initialises, not zeros

Both branches start from the baseline's final weights, so the only difference between them is
the pruning. Finished runs are found by their folder (hash of the configuration) and reused,
never retrained; unfinished ones resume from their checkpoint. A branch's record names the
baseline it started from by that baseline's hash.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dsd.errors import CheckpointError, ConfigError
from dsd.files import file_sha256, safe_torch_load
from dsd.records.layout import RunFolder
from dsd.records.run import METHODS, RunRecord, config_hash, load_record
from dsd.run import dist
from dsd.run.settings import RunConfig
from dsd.run.training.histograms import HistogramCapture
from dsd.run.training.loop import RunLoop, RunPlan
from dsd.schedule import Schedule
from dsd.taskkit.adapter import TaskAdapter
from dsd.taskkit.config import config_fields, non_default_fields
from dsd.taskkit.environment import library_versions
from dsd.taskkit.fingerprint import DataFingerprint, skipped_record
from dsd.taskkit.weights import load_model_weights

__all__ = [
    "RunConfig",
    "baseline_folder",
    "branch_folder",
    "run_study",
    "start_identity",
    "study_recipe",
]


@dataclass(frozen=True)
class Branch:
    """What a method does after the baseline: whether it prunes, which mask it takes and how
    the pruned weights restart at re-dense. The ablations change one ingredient of DSD each."""

    method: str
    pruned: bool = True
    criterion: str = "magnitude"  # the sparse phase's mask: smallest |w|, or a random set
    restart: str = "zero"  # re-dense: pruned weights restart from zero, or re-initialised

    def schedule(self, recipe: Schedule) -> Schedule:
        return recipe.tail() if self.pruned else recipe.tail().dense_control()

    def identity(self) -> dict[str, str]:
        """What enters the run hash beyond the schedule (nothing for DSD and the control, so
        their runs keep the hashes they always had)."""
        changed = {"criterion": self.criterion} if self.criterion != "magnitude" else {}
        return changed | ({"restart": self.restart} if self.restart != "zero" else {})


BRANCHES = {
    branch.method: branch
    for branch in (
        Branch("dsd"),
        Branch("dense-control", pruned=False),
        Branch("dsd-random-mask", criterion="random"),
        Branch("dsd-reinit", restart="reinit"),
    )
}


def study_recipe(adapter: TaskAdapter, epochs_scale: float = 1.0, recipe: Schedule | None = None) -> Schedule:
    """The task's recipe (``recipe``, else its config's, else its default), scaled, checked for a study."""
    if recipe is None:
        recipe = Schedule.parse(adapter.config.recipe or adapter.default_recipe)
    recipe = recipe.scaled(epochs_scale)
    if recipe.phases[0].is_sparse:
        raise ConfigError(f"recipe {recipe} must start with a dense phase: the study's baseline")
    if len(recipe.phases) < 2 or recipe.is_dense:
        raise ConfigError(f"recipe {recipe} needs a sparse phase after the dense baseline")
    return recipe


def run_study(adapter: TaskAdapter, run: RunConfig, recipe: Schedule | None = None) -> list[Path]:
    """Run (or reuse) every requested method for every seed; returns the run folders.
    ``recipe``: instead of the task's (a sweep varies it); scaled by ``run.epochs_scale``."""
    unknown = sorted(set(run.methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    info = dist.init_distributed(run.device)
    data = None
    if info.is_main:
        adapter.prepare()
        data = _Data(adapter.data_fingerprint(), skipped_record(adapter.skipped_inputs()))
        _say_skipped(adapter, data.skipped)
    data = dist.broadcast_object(data)
    recipe = study_recipe(adapter, run.epochs_scale, recipe)
    start_id, start_state = _start(adapter, run.start)
    folders: list[Path] = []
    for seed in run.seeds:
        baseline = _baseline(adapter, run, recipe, seed, info, data, start_id, start_state)
        if "baseline" in run.methods:
            folders.append(baseline.path)
        for method, branch in BRANCHES.items():
            if method in run.methods:
                folders.append(_branch(adapter, run, recipe, seed, info, data, branch, baseline).path)
    return folders


@dataclass(frozen=True)
class _Data:
    """What the study knows of its data once prepared: its identity and what was left out."""

    fingerprint: DataFingerprint
    skipped: dict[str, Any]


def _say_skipped(adapter: TaskAdapter, skipped: dict[str, Any]) -> None:
    """One line per kind of skipped input, so a skip never goes unnoticed on the console."""
    for kind, entry in skipped.items():
        shown = ", ".join(entry["first"][:3]) + (", ..." if entry["count"] > 3 else "")
        print(
            f"warning: {adapter.name}: skipped {entry['count']} {kind} ({shown}); "
            "every run's config.json lists them",
            file=sys.stderr,
        )


def _start(adapter: TaskAdapter, start: str) -> tuple[str, dict[str, torch.Tensor] | None]:
    """Identity and weights of the start point ("" = train the dense phase), checked against
    the task's model before any run folder exists, so a wrong file leaves nothing behind."""
    if not start:
        return "", None
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
    return start_identity(adapter, start), state


def start_identity(adapter: TaskAdapter, start: str) -> str:
    """What names the start point in the baseline's hash: the published weights by model, a
    file by its content (never its path)."""
    if not start:
        return ""
    return f"pretrained:{adapter.model_name}" if start == "pretrained" else f"file:{file_sha256(Path(start))}"


def _identity(adapter: TaskAdapter, run: RunConfig, data_digest: str) -> dict[str, Any]:
    """What every run of this task shares in its hash: non-default, non-path settings and the
    data's fingerprint (so different data never reuses a run, and moved data always does)."""
    task = non_default_fields(adapter.config)
    task.pop("recipe", None)  # the schedule text itself enters each run's hash
    loop = non_default_fields(run.loop(0))
    loop = {k: v for k, v in loop.items() if k in ("amp", "deterministic")}
    return {"task": task, "loop": loop, "dataset": adapter.dataset_name, "data": data_digest}


def baseline_folder(
    adapter: TaskAdapter, run: RunConfig, recipe: Schedule, seed: int, data_digest: str, start_id: str
) -> tuple[RunFolder, str, Schedule]:
    """The baseline run of ``seed``: its folder, hash and schedule (the study and ``dsd-suite
    plan`` both ask here, so they always agree on which runs exist)."""
    identity = _identity(adapter, run, data_digest)
    schedule = recipe.head()
    if start_id:
        identity["start"] = start_id
    else:
        identity["schedule"] = str(schedule)
    run_hash = config_hash(identity)
    folder = RunFolder.of(run.results_dir, adapter.name, adapter.model_name, "baseline", run_hash, seed)
    return folder, run_hash, schedule


def branch_folder(
    adapter: TaskAdapter,
    run: RunConfig,
    recipe: Schedule,
    seed: int,
    data_digest: str,
    branch: Branch,
    baseline_hash: str,
) -> tuple[RunFolder, str, Schedule]:
    """A branch run of ``seed`` from the baseline whose hash is ``baseline_hash``: its folder,
    hash and schedule."""
    schedule = branch.schedule(recipe)
    identity = _identity(adapter, run, data_digest)
    identity.update(schedule=str(schedule), baseline=baseline_hash, **branch.identity())
    run_hash = config_hash(identity)
    folder = RunFolder.of(run.results_dir, adapter.name, adapter.model_name, branch.method, run_hash, seed)
    return folder, run_hash, schedule


def _record(
    adapter: TaskAdapter,
    run: RunConfig,
    recipe: Schedule,
    method: str,
    seed: int,
    info: dist.DistInfo,
    data: _Data,
) -> RunRecord:
    """The record of one run (its hash, schedule and baseline link are filled in by the caller)."""
    return RunRecord(
        task=adapter.name,
        model=adapter.model_name,
        dataset=adapter.dataset_name,
        paper_key=adapter.paper_key,
        method=method,
        seed=seed,
        recipe=str(recipe),
        epochs_scale=run.epochs_scale,
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


def _baseline(
    adapter: TaskAdapter,
    run: RunConfig,
    recipe: Schedule,
    seed: int,
    info: dist.DistInfo,
    data: _Data,
    start_id: str,
    start_state: Any,
) -> RunFolder:
    folder, run_hash, schedule = baseline_folder(
        adapter, run, recipe, seed, data.fingerprint.digest, start_id
    )
    if folder.is_done:
        return folder
    record = _record(adapter, run, recipe, "baseline", seed, info, data)
    record.hash, record.start = run_hash, start_id
    record.schedule = "" if start_id else str(schedule)
    plan = RunPlan(folder=folder, schedule=schedule, first_phase=0, record=record)
    loop = RunLoop(adapter, plan, run.loop(seed), info)
    if start_id:
        loop.evaluate_start(start_state)
    else:
        loop.run()
    return folder


def _branch(
    adapter: TaskAdapter,
    run: RunConfig,
    recipe: Schedule,
    seed: int,
    info: dist.DistInfo,
    data: _Data,
    branch: Branch,
    baseline: RunFolder,
) -> RunFolder:
    method, baseline_hash = branch.method, load_record(baseline.path).hash
    folder, run_hash, schedule = branch_folder(
        adapter, run, recipe, seed, data.fingerprint.digest, branch, baseline_hash
    )
    if folder.is_done:
        return folder
    record = _record(adapter, run, recipe, method, seed, info, data)
    record.hash, record.schedule = run_hash, str(schedule)
    record.baseline_hash = baseline_hash
    record.baseline_run = baseline.path.relative_to(Path(run.results_dir)).as_posix()
    plan = RunPlan(
        folder=folder,
        schedule=schedule,
        first_phase=1,
        record=record,
        init_weights=baseline.phase_weights(0),
        hooks=[HistogramCapture()] if method == "dsd" else [],
        criterion=branch.criterion,
        restart=branch.restart,
    )
    RunLoop(adapter, plan, run.loop(seed), info).run()
    return folder
