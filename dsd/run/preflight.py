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

from torch import nn

from dsd.errors import CheckpointError, ConfigError
from dsd.files import safe_torch_load
from dsd.records.run import METHODS
from dsd.run.settings import RunConfig
from dsd.run.study import study_recipe
from dsd.schedule import Schedule
from dsd.taskkit.adapter import TaskAdapter
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
    recipe = checked_recipe(adapter, run.epochs_scale)
    data = adapter.inspect()
    world = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    check_batch_size(adapter, data, world)
    model = adapter.planned_model()
    check_start(adapter, run.start, model)
    return Preflight(recipe, data, model, world)


def check_settings(run: RunConfig) -> None:
    """The study's own flags: values the loop cannot work with."""
    unknown = sorted(set(run.methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"--method: unknown method(s) {unknown}; valid: all, {', '.join(METHODS)}")
    if not run.epochs_scale > 0:
        raise ConfigError(f"--epochs-scale must be positive, got {run.epochs_scale}")
    for flag, value, least in (
        ("--log-every", run.log_every, 1),
        ("--eval-every", run.eval_every, 0),
        ("--checkpoint-every", run.checkpoint_every, 0),
        ("--checkpoint-minutes", run.checkpoint_minutes, 0),
    ):
        if value < least:
            raise ConfigError(f"{flag} must be at least {least}, got {value}")
    if run.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "--tensorboard needs the tensorboard package: pip install 'dsd-suite[tensorboard]' "
            "(or pip install tensorboard)"
        )


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
