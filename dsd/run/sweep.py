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
the tables say. The sweep's manifest under ``results/sweeps/`` lists its runs for the report.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from dsd.errors import ConfigError
from dsd.files import atomic_write_json, read_json
from dsd.records.run import STUDY_METHODS, config_hash
from dsd.run import dist
from dsd.run.settings import RunConfig
from dsd.run.study import run_study, study_recipe
from dsd.schedule import Schedule
from dsd.taskkit.adapter import TaskAdapter

SWEEPS_FOLDER = "sweeps"
MANIFEST_FORMAT = 1


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


def run_sweep(adapter: TaskAdapter, run: RunConfig, sparsities: list[float]) -> Path:
    """Run (or reuse) the baseline, the dense control and DSD at every sparsity, for every seed;
    returns the sweep's manifest (written by rank 0)."""
    sparsities = check_sparsities(sparsities)
    base = study_recipe(adapter)  # checks the recipe before any work
    recipes = {s: swept_recipe(base, s) for s in sparsities}
    run = replace(run, methods=[m for m in STUDY_METHODS if m in run.methods] or list(STUDY_METHODS))
    folders = {s: run_study(adapter, run, recipe) for s, recipe in recipes.items()}
    evaluation = list(adapter.eval_datasets())
    select, report = selection_splits(evaluation)
    results = Path(run.results_dir)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "task": adapter.name,
        "model": adapter.model_name,
        "paper_key": adapter.paper_key,
        "dataset": adapter.dataset_name,
        "recipe": str(base),
        "epochs_scale": run.epochs_scale,
        "sparsities": sparsities,
        "recipes": {f"{s:g}": str(r.scaled(run.epochs_scale)) for s, r in recipes.items()},
        "seeds": list(run.seeds),
        "selection_split": select,
        "report_split": report,
        "runs": {f"{s:g}": [f.relative_to(results).as_posix() for f in fs] for s, fs in folders.items()},
    }
    identity = {k: manifest[k] for k in ("task", "model", "dataset", "recipe", "epochs_scale", "sparsities")}
    path = results / SWEEPS_FOLDER / f"{adapter.name}-{adapter.model_name}-{config_hash(identity)}.json"
    if dist.is_main():
        atomic_write_json(path, _merged(path, manifest))
    return path


def _merged(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with the seeds and runs an earlier call of the same sweep recorded (a sweep
    rerun with more seeds adds to its manifest, it does not forget the first ones)."""
    if not path.is_file():
        return manifest
    try:
        earlier = read_json(path)
    except ValueError:
        return manifest
    seeds = sorted(set(earlier.get("seeds", [])) | set(manifest["seeds"]))
    runs = {
        key: sorted(set(earlier.get("runs", {}).get(key, [])) | set(folders))
        for key, folders in manifest["runs"].items()
    }
    return {**manifest, "seeds": seeds, "runs": runs}
