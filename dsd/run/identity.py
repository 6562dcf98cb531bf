"""What names a run: only what can change what it learns, compared after resolving defaults.

A run's folder is named by a hash of its identity: the task's settings that differ from their
defaults (never a path, nor a setting marked ``identity=False`` such as the evaluation batch or
the loader's workers), the loop settings that change numbers (deterministic kernels; mixed
precision, and only on a GPU, where it runs), the dataset and its fingerprint, then per run its
schedule, start or baseline and method ingredients. A faster evaluation batch therefore never
retrains a week-long baseline, and moved data never renames a run.

Runs written before these rules hashed every non-default task setting and ``--amp`` even on the
CPU. Their identity under the old rule is kept beside (``legacy``), so the study finds such a
folder under its old name and reuses it instead of training it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dsd.records import config_hash
from dsd.run import dist
from dsd.run.settings import RunConfig
from dsd.run.training.precision import autocast_dtype
from dsd.taskkit.adapter import TaskAdapter
from dsd.taskkit.config import non_default_fields


@dataclass(frozen=True)
class Identity:
    """What every run of a study shares in its hash, under today's rule and the one before."""

    current: dict[str, Any]
    legacy: dict[str, Any]

    def hashes(self, own: dict[str, Any]) -> tuple[str, str]:
        """(the hash of a run whose own part is ``own``, its hash under the old rule)."""
        return config_hash({**self.current, **own}), config_hash({**self.legacy, **own})


def shared_identity(adapter: TaskAdapter, settings: RunConfig, data_digest: str) -> Identity:
    """The identity every run of ``adapter``'s study under ``settings`` shares, on ``data_digest``."""
    data = {"dataset": adapter.dataset_name, "data": data_digest}
    task, every = (non_default_fields(adapter.config, with_non_identity=old) for old in (False, True))
    for fields in (task, every):
        fields.pop("recipe", None)  # the schedule text itself enters each run's hash
    current = {"task": task, "loop": training_loop_settings(settings), **data}
    return Identity(current, {"task": every, "loop": _legacy_loop(settings), **data})


def training_loop_settings(settings: RunConfig) -> dict[str, Any]:
    """The loop settings that change what a run learns, where they differ from the default's
    effect: deterministic kernels, and mixed precision on a GPU (the CPU always runs fp32)."""
    loop: dict[str, Any] = {"deterministic": True} if settings.deterministic else {}
    if settings.amp != "auto":
        device = dist.pick_device(settings.device)
        if device.type == "cuda" and autocast_dtype(settings.amp, device) != autocast_dtype("auto", device):
            loop["amp"] = settings.amp
    return loop


def _legacy_loop(settings: RunConfig) -> dict[str, Any]:
    """Non-default ``amp`` and ``deterministic``, wherever the run: the old rule."""
    return {k: v for k, v in non_default_fields(settings.loop(0)).items() if k in ("amp", "deterministic")}
