"""A task's study: the dense baseline, then DSD and the equal-length dense control from it.

    baseline       D0                     (trained, or the start checkpoint evaluated)
                    ├── dsd            S1 D2 [S3 D4 ...]   the paper's phases
                    └── dense-control  D1 D2 [D3 D4 ...]   same lengths and LRs, never pruned

Both branches start from the baseline's final weights, so the only difference between them is
the pruning. Finished runs are found by their folder (hash of the configuration) and reused,
never retrained; unfinished ones resume from their checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dsd import files
from dsd.run import dist, records
from dsd.run import folder as runfolder
from dsd.run.adapter import TaskAdapter
from dsd.run.config import config_fields, non_default_fields
from dsd.run.loop import RunPlan, Trainer
from dsd.run.records import METHODS
from dsd.run.settings import RunConfig
from dsd.run.weights import load_model_weights
from dsd.schedule import Schedule


def study_recipe(adapter: TaskAdapter, epochs_scale: float = 1.0) -> Schedule:
    """The task's recipe (its config's, else its default), scaled, checked for a study."""
    recipe = Schedule.parse(adapter.config.recipe or adapter.default_recipe).scaled(epochs_scale)
    if recipe.phases[0].is_sparse:
        raise ValueError(f"recipe {recipe} must start with a dense phase: the study's baseline")
    if len(recipe.phases) < 2 or recipe.is_dense:
        raise ValueError(f"recipe {recipe} needs a sparse phase after the dense baseline")
    return recipe


def run_study(adapter: TaskAdapter, run: RunConfig) -> list[Path]:
    """Run (or reuse) every requested method for every seed; returns the run folders."""
    unknown = sorted(set(run.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    info = dist.init_distributed(run.device)
    if info.is_main:
        adapter.prepare()
    dist.barrier()
    recipe = study_recipe(adapter, run.epochs_scale)
    start_id, start_state = _start(adapter, run.start)
    folders: list[Path] = []
    for seed in run.seeds:
        baseline = _baseline(adapter, run, recipe, seed, info, start_id, start_state)
        if "baseline" in run.methods:
            folders.append(baseline)
        for method in ("dsd", "dense-control"):
            if method in run.methods:
                folders.append(_branch(adapter, run, recipe, seed, info, method, baseline))
    return folders


def _start(adapter: TaskAdapter, start: str) -> tuple[str, dict[str, torch.Tensor] | None]:
    """Identity and weights of the start point ("" = train the dense phase), checked against
    the task's model before any run folder exists, so a wrong file leaves nothing behind."""
    if not start:
        return "", None
    if start == "pretrained":
        state = adapter.pretrained_state()
        if state is None:
            raise ValueError(f"task {adapter.name} ({adapter.model_name}) has no pretrained weights")
        start_id, source = f"pretrained:{adapter.model_name}", f"pretrained weights of {adapter.model_name}"
    else:
        path = Path(start)
        if not path.is_file():
            raise FileNotFoundError(f"start checkpoint {path} does not exist")
        state = files.safe_torch_load(path)
        start_id, source = f"file:{files.file_sha256(path)}", f"start checkpoint {path}"
    load_model_weights(adapter.build_model(), state, source)
    return start_id, state


def _identity(adapter: TaskAdapter, run: RunConfig) -> dict[str, Any]:
    """What every run of this task shares in its hash: non-default, non-path settings."""
    task = non_default_fields(adapter.config)
    task.pop("recipe", None)  # the schedule text itself enters each run's hash
    loop = non_default_fields(run.loop(0))
    loop = {k: v for k, v in loop.items() if k in ("amp", "deterministic")}
    return {"task": task, "loop": loop, "dataset": adapter.dataset_name}


def _record(
    adapter: TaskAdapter,
    run: RunConfig,
    recipe: Schedule,
    method: str,
    seed: int,
    run_hash: str,
    schedule: Schedule | None,
    start: str,
    info: dist.DistInfo,
) -> dict[str, Any]:
    return {
        "task": adapter.name,
        "model": adapter.model_name,
        "dataset": adapter.dataset_name,
        "paper_key": adapter.paper_key,
        "method": method,
        "seed": seed,
        "hash": run_hash,
        "schedule": str(schedule) if schedule is not None else "",
        "recipe": str(recipe),
        "epochs_scale": run.epochs_scale,
        "start": start,
        "task_config": {k: v for k, v in config_fields(adapter.config).items()},
        "description": adapter.description,
        "metrics": {
            name: {"higher_is_better": s.higher_is_better, "label": s.label or name, "percent": s.percent}
            for name, s in adapter.metrics.items()
        },
        "primary_metric": adapter.primary_metric,
        "splits": list(adapter.eval_datasets()),
        "versions": records.library_versions(),
        "world_size": info.world_size,
        "device": info.device.type,
        "amp": run.amp,
        "deterministic": run.deterministic,
    }


def _baseline(
    adapter: TaskAdapter,
    run: RunConfig,
    recipe: Schedule,
    seed: int,
    info: dist.DistInfo,
    start_id: str,
    start_state: Any,
) -> Path:
    identity = _identity(adapter, run)
    if start_id:
        identity["start"] = start_id
        schedule = None
    else:
        schedule = recipe.head()
        identity["schedule"] = str(schedule)
    run_hash = records.config_hash(identity)
    folder = runfolder.RunFolder.of(
        run.results_dir, adapter.name, adapter.model_name, "baseline", run_hash, seed
    ).path
    if runfolder.RunFolder(folder).is_done:
        return folder
    record = _record(adapter, run, recipe, "baseline", seed, run_hash, schedule, start_id, info)
    plan = RunPlan(folder=folder, schedule=schedule or recipe.head(), first_phase=0, record=record)
    trainer = Trainer(adapter, plan, run.loop(seed), info)
    if start_id:
        trainer.evaluate_start(start_state)
    else:
        trainer.run()
    return folder


def _branch(
    adapter: TaskAdapter,
    run: RunConfig,
    recipe: Schedule,
    seed: int,
    info: dist.DistInfo,
    method: str,
    baseline: Path,
) -> Path:
    schedule = recipe.tail() if method == "dsd" else recipe.tail().dense_control()
    identity = _identity(adapter, run)
    baseline_hash = files.read_json(baseline / runfolder.CONFIG_FILE)["hash"]
    identity.update(schedule=str(schedule), baseline=baseline_hash)
    run_hash = records.config_hash(identity)
    folder = runfolder.RunFolder.of(
        run.results_dir, adapter.name, adapter.model_name, method, run_hash, seed
    ).path
    if runfolder.RunFolder(folder).is_done:
        return folder
    record = _record(adapter, run, recipe, method, seed, run_hash, schedule, "", info)
    record["baseline_run"] = str(baseline.relative_to(Path(run.results_dir)))
    plan = RunPlan(
        folder=folder,
        schedule=schedule,
        first_phase=1,
        record=record,
        init_weights=baseline / "phase0.pt",
        histograms=method == "dsd",
    )
    Trainer(adapter, plan, run.loop(seed), info).run()
    return folder


def load_final_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights a finished run ended with (its last phase's ``phase<i>.pt``)."""
    result = files.read_json(Path(folder) / runfolder.RESULT_FILE)
    name = result["phases"][-1]["weights"] if result["phases"] else "phase0.pt"
    return files.safe_torch_load(Path(folder) / name)
