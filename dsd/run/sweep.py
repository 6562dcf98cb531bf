"""The sparsity sweep: DSD at several sparsities from one shared baseline, chosen on validation.

The paper calls sparsity DSD's one hyper-parameter, to be tuned on validation data, and never
shows the tuning. A sweep runs the task's recipe once per sparsity, every branch from the same
baseline (its dense phase does not depend on the sparsity, so it is trained once and reused) and
beside the same dense control (which never prunes, so it is one run for every sparsity too).

Iterated recipes (DeepSpeech's D-S-D-S-D at 50 % then 25 %) keep their shape: every sparse phase
is scaled by the same factor, the swept value over the recipe's first sparsity (sweeping 0.3
gives 30 % then 15 %). The sparsity is chosen on the first evaluation split (the one evaluated
every epoch: ``val``, ``dev93``, ``dev-clean``) and reported on the last one where the task has
another (``test``, ``eval92``, ``test-clean``); with a single split, both are that split, which
the tables say. The sweep is one study over several recipes (``Study.build``): the graph holds
the shared baseline and control once. Its manifest under ``results/sweeps/``
(``dsd.records.sweep``) lists the runs of each point for the report.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from dsd.errors import ConfigError
from dsd.records import STUDY_METHODS
from dsd.records.sweep import SweepManifest, write_manifest
from dsd.run import dist
from dsd.run.execute import prepare_study, train_runs
from dsd.run.settings import RunConfig
from dsd.run.study import Study, study_recipe
from dsd.run.walk import WalkOutcome
from dsd.schedule import Schedule
from dsd.taskkit.adapter import TaskAdapter


def check_sparsities(values: list[float]) -> list[float]:
    """The swept sparsities, refused before any work when empty, repeated or outside (0, 1)."""
    if not values:
        raise ConfigError("--sparsities is empty; give a comma list such as 0.1,0.3,0.5,0.7")
    seen: set[float] = set()
    for value in values:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value < 1):
            raise ConfigError(
                f"--sparsities: {value!r} is not a sparsity; each is the fraction of weights pruned, "
                "above 0 and below 1"
            )
        if value in seen:
            raise ConfigError(f"--sparsities: {value!r} is given twice")
        seen.add(value)
    return sorted(values)


def swept_recipe(recipe: Schedule, sparsity: float) -> Schedule:
    """``recipe`` with every sparse phase scaled by ``sparsity`` over its first sparse phase's."""
    first = next((p.sparsity for p in recipe.phases if p.is_sparse), None)
    if first is None:
        raise ConfigError(f"recipe {recipe} has no sparse phase to sweep")
    factor = sparsity / first
    phases = []
    for phase in recipe.phases:
        if phase.is_sparse:
            scaled = float(f"{phase.sparsity * factor:.12g}")
            if not scaled < 1:
                raise ConfigError(
                    f"sparsity {sparsity:g} scales the recipe's {phase.label} phase to {scaled:.0%}, "
                    "which prunes every weight; sweep lower sparsities"
                )
            phase = replace(phase, sparsity=scaled)
        phases.append(phase)
    return replace(recipe, phases=tuple(phases))


def selection_splits(splits: list[str]) -> tuple[str, str]:
    """(the split the sparsity is chosen on, the split the choice is reported on)."""
    return splits[0], splits[-1]


def sweep_recipes(adapter: TaskAdapter, run: RunConfig, sparsities: list[float]) -> dict[float, Schedule]:
    """The recipe of each swept sparsity, scaled by ``run.epochs_scale``; checked before any work."""
    base = study_recipe(adapter)
    return {
        s: study_recipe(adapter, run.epochs_scale, swept_recipe(base, s))
        for s in check_sparsities(sparsities)
    }


def sweep_settings(run: RunConfig) -> RunConfig:
    """A sweep's study runs the paper's comparison (baseline, DSD, control) at every point."""
    return replace(run, methods=[m for m in STUDY_METHODS if m in run.methods] or list(STUDY_METHODS))


def run_sweep(adapter: TaskAdapter, run: RunConfig, sparsities: list[float]) -> Path:
    """Run (or reuse) the baseline, the dense control and DSD at every sparsity, for every seed;
    returns the sweep's manifest (written by rank 0)."""
    return train_sweep(adapter, run, sparsities)[0]


def train_sweep(
    adapter: TaskAdapter, run: RunConfig, sparsities: list[float], only: str = "", train: bool = True
) -> tuple[Path, WalkOutcome]:
    """``run_sweep``, also saying what this process trained or left to others. ``only``: that run
    of the sweep alone; ``train`` False: none (reuse the finished ones, write the manifest)."""
    recipes = sweep_recipes(adapter, run, sparsities)
    run = sweep_settings(run)
    study, data, start = prepare_study(adapter, run, list(recipes.values()))
    outcome = train_runs(adapter, run, study, data, start, only, train)
    path, manifest = sweep_manifest(adapter, run, study, recipes)
    if dist.is_main():
        write_manifest(path, manifest)
    return path, outcome


def sweep_manifest(
    adapter: TaskAdapter, run: RunConfig, study: Study, recipes: dict[float, Schedule]
) -> tuple[Path, SweepManifest]:
    """Where the sweep's manifest goes, and what it says: each point's runs, the splits."""
    select, report = selection_splits(list(adapter.eval_datasets()))
    results = run.results
    manifest = SweepManifest(
        task=adapter.name,
        model=adapter.model_name,
        paper_key=adapter.paper_key,
        dataset=adapter.dataset_name,
        recipe=str(study_recipe(adapter)),
        epochs_scale=run.epochs_scale,
        sparsities=sorted(recipes),
        selection_split=select,
        report_split=report,
        seeds=list(run.seeds),
        recipes={f"{s:g}": str(r) for s, r in recipes.items()},
        runs={f"{s:g}": [results.relative(p.folder) for p in study.of_recipe(r)] for s, r in recipes.items()},
    )
    return results.sweep_manifest(adapter.name, adapter.model_name, manifest.file_hash), manifest
