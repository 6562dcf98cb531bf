"""Everything cheap, checked before anything is built.

A mistake found after a stand-in build, an hour of image verification or a feature extraction
wastes that hour; one found before costs a second. So before a study prepares anything, this
checks what can be checked from the flags and a look at the disk: the loop settings, the recipe
(parsed, scaled, and shaped like a study: a dense baseline, then a sparse phase), the data's
layout and sizes (``TaskAdapter.inspect``, which builds nothing), the batch size against the
training set, and the start point (a ``--start`` file loads weights-only and fits the model).
Every refusal is a ``UserError`` naming the flag or file and the fix.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dsd.errors import CheckpointError, ConfigError
from dsd.files import safe_torch_load
from dsd.records.run import METHODS
from dsd.run.settings import RunConfig
from dsd.run.storage import check_results_folder, study_bytes, warn_if_short
from dsd.run.study import acdc_recipe, study_recipe
from dsd.schedule import Schedule
from dsd.taskkit.adapter import TaskAdapter
from dsd.taskkit.config import check_fields
from dsd.taskkit.summary import DataSummary
from dsd.taskkit.weights import load_model_weights


@dataclass
class Preflight:
    """What the checks found: the study's recipe, the data, the model (when it can be built
    before preparing) and the number of processes."""

    recipe: Schedule
    data: DataSummary
    model: nn.Module | None
    world_size: int


def preflight(adapter: TaskAdapter, run: RunConfig, world_size: int | None = None) -> Preflight:
    """Check ``run`` and ``adapter`` before anything is built; raises the first ``UserError``."""
    check_settings(run)
    check_results_folder(run.results_dir)
    recipe = checked_recipe(adapter, run.epochs_scale)
    data = adapter.inspect()
    world = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    check_batch_size(adapter, data, world)
    model = adapter.planned_model()
    check_start(adapter, run.start, model)
    if model is not None:
        runs = len(run.seeds) * (1 + sum(m != "baseline" for m in run.methods))
        phases = [len(recipe.phases)] * runs
        warn_if_short(run.results_dir, study_bytes(sum(p.numel() for p in model.parameters()), phases))
    return Preflight(recipe, data, model, world)


#: The largest seed: every generator the run seeds takes it (NumPy's are 32-bit).
MAX_SEED = 2**32 - 1


def check_settings(run: RunConfig) -> None:
    """The study's own flags: values the loop cannot work with."""
    unknown = sorted(set(run.methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"--method: unknown method(s) {unknown}; valid: all, {', '.join(METHODS)}")
    check_fields(run)
    if not run.epochs_scale > 0:
        raise ConfigError(f"--epochs-scale must be positive, got {run.epochs_scale}")
    check_seeds(run.seeds)
    check_device(run.device)
    acdc_recipe(run.acdc)
    if run.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "--tensorboard needs the tensorboard package: pip install 'dsd-suite[tensorboard]' "
            "(or pip install tensorboard)"
        )


def check_seeds(seeds: list[int]) -> None:
    """Seeds are distinct integers from 0 to ``MAX_SEED``: a repeated seed would be one run twice."""
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:
            raise ConfigError(
                f"--seeds: {seed} is out of range: each seed is an integer from 0 to {MAX_SEED}"
            )
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(
            f"--seeds: {', '.join(map(str, repeated))} given twice; each seed is one run of every method"
        )


def check_device(device: str) -> None:
    """``--device``: auto, cpu, or a CUDA device this machine has."""
    if device in ("auto", "cpu"):
        return
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r} is not a device; give auto, cpu, cuda or cuda:N") from None
    if chosen.type != "cuda":
        raise ConfigError(f"--device {device!r}: the suite runs on auto, cpu, cuda or cuda:N")
    count = torch.cuda.device_count()
    if count == 0:
        raise ConfigError(f"--device {device!r}: this machine has no CUDA GPU; use --device cpu (or auto)")
    if chosen.index is not None and chosen.index >= count:
        raise ConfigError(f"--device {device!r}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")


def checked_recipe(adapter: TaskAdapter, epochs_scale: float) -> Schedule:
    """The study's recipe, parsed and scaled; a recipe that cannot be read names ``--recipe``."""
    try:
        return study_recipe(adapter, epochs_scale)
    except ConfigError as err:  # a recipe that reads but is no study (no dense baseline, no sparse phase)
        raise ConfigError(f"--recipe: {err}") from None
    except ValueError as err:  # the schedule's parser names the token; say which flag held it
        text = adapter.config.recipe or adapter.default_recipe
        raise ConfigError(f"--recipe {text!r}: {err}") from None


def check_batch_size(adapter: TaskAdapter, data: DataSummary, world_size: int) -> None:
    """One training step needs ``batch_size`` samples on every process."""
    batch = adapter.config.batch_size
    if batch < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch}")
    samples = data.train_samples
    if samples is None or samples >= batch * world_size:
        return
    processes = f" on each of {world_size} processes" if world_size > 1 else ""
    raise ConfigError(
        f"--batch-size {batch}{processes} is larger than the training set: {data.train_split} holds "
        f"{samples:,} {data.unit}. Pass a smaller --batch-size"
        + (", or run on fewer processes" if world_size > 1 else "")
    )


def check_start(adapter: TaskAdapter, start: str, model: nn.Module | None) -> None:
    """``--start``: the weights load (weights-only) and, when the model can be built before
    preparing, fit it; otherwise the study checks the fit right after preparing, before any run."""
    if not start:
        return
    if start == "pretrained":
        state = adapter.pretrained_state()
        if state is None:
            raise ConfigError(
                f"--start pretrained: task {adapter.name} ({adapter.model_name}) has no published weights; "
                "pass --start FILE (a checkpoint of your own) or leave --start out to train the dense phase"
            )
        source = f"--start pretrained ({adapter.model_name}'s published weights)"
    else:
        path = Path(start)
        if not path.is_file():
            raise CheckpointError(
                f"--start {path}: no such file (--start takes 'pretrained' or a checkpoint file)"
            )
        state = safe_torch_load(path)
        source = f"--start checkpoint {path}"
    if model is not None:
        load_model_weights(model, state, source)
