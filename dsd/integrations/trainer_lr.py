"""The DSD schedule's learning rates, applied through a Hugging Face Trainer's ``LambdaLR``.

Why through the Trainer's own scheduler and not by writing ``param_group["lr"]``: the Trainer
steps its scheduler after every optimizer step (which would overwrite a rate set by hand) and
logs the scheduler's last rate. Wrapping the scheduler's lambdas keeps the logged rate the one
used, lets a warm-up still shape it, and reads the step from the scheduler's own count, which a
checkpoint saves and a resumed run reloads.

Needs torch alone (any ``LambdaLR`` will do); ``dsd.integrations.transformers.DSDCallback`` is
what calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

#: Trainer scheduler types whose rates are exactly the schedule's (up to a warm-up).
CONSTANT_SCHEDULERS = ("constant", "constant_with_warmup")


def take_over_lr(scheduler: Any, schedule_lr: Callable[[int], float]) -> None:
    """Make ``scheduler``'s rate at step ``s`` its own factor times ``schedule_lr(s) / base``.

    ``base`` is the first parameter group's base rate; other groups keep their ratio to it.
    Taking over twice (a second ``train()``) wraps the Trainer's original lambdas, not ours.
    The rate of the step about to run is recomputed at once.
    """
    if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        raise TypeError(
            "DSDCallback applies the schedule's learning rates through the Trainer's LambdaLR "
            f"scheduler, but the Trainer uses {type(scheduler).__name__}; pick another "
            "lr_scheduler_type (e.g. 'constant') or pass DSDCallback(..., set_lr=False) to leave "
            "the learning rate to the Trainer"
        )
    base = scheduler.base_lrs[0]
    if not base > 0:
        raise ValueError(f"the optimizer's first parameter group has base learning rate {base}")
    lambdas = []
    for original in scheduler.lr_lambdas:
        original = getattr(original, "_dsd_trainer_lambda", original)
        lambdas.append(_phase_lambda(original, schedule_lr, base))
    scheduler.lr_lambdas = lambdas
    # The rate for the step about to run was computed before we took over: redo it.
    rates = [b * f(scheduler.last_epoch) for b, f in zip(scheduler.base_lrs, lambdas, strict=True)]
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    scheduler._last_lr = rates


def _phase_lambda(
    trainer_lambda: Callable[[int], float], schedule_lr: Callable[[int], float], base: float
) -> Callable[[int], float]:
    """A plain function (so ``LambdaLR.state_dict`` stores nothing of it: checkpoints stay
    loadable with ``weights_only=True``) multiplying the Trainer's factor by the schedule's rate."""

    def lr_lambda(step: int) -> float:
        return trainer_lambda(step) * schedule_lr(step) / base

    lr_lambda._dsd_trainer_lambda = trainer_lambda  # type: ignore[attr-defined]
    return lr_lambda
