"""What the engine needs to know about optimizers: the real one inside a wrapper, where its state
lives, which updates are provably zero for a pruned entry, and what a fresh entry's state is.

- **Wrappers.** Accelerate's ``AcceleratedOptimizer`` holds the torch optimizer as ``.optimizer``
  (and has no step hooks of its own); those are seen through. ``ZeroRedundancyOptimizer`` is a torch
  optimizer whose per-parameter state lives in its local shard, ``.optim.state``.
- **One masking pass per step.** For every element-wise optimizer in ``torch.optim``, an entry whose
  gradient is 0 and whose state is 0 gets an update of exactly 0 (momentum, Nesterov, Adam's
  moments, decoupled or coupled weight decay of a zero weight, Adagrad's, RMSprop's, Adadelta's,
  Adamax's, Rprop's sign, ASGD's shrink). Masking the gradient before ``step()`` therefore keeps a
  pruned weight at 0; re-masking the weights after it is a guard kept for the optimizers outside
  that set (LBFGS; Muon, whose orthogonalised update mixes the entries of a matrix; anything custom).
- **Fresh state.** At re-dense a restored entry restarts from the state the optimizer gives a new
  parameter: 0 for most, but Rprop's step size starts at the learning rate and Adagrad's sum at
  ``initial_accumulator_value``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dsd.errors import ConfigError

#: Optimizers whose update of an entry with zero gradient and zero state is exactly zero.
ZERO_UPDATE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.Adagrad,
    torch.optim.Adadelta,
    torch.optim.RMSprop,
    torch.optim.Rprop,
    torch.optim.ASGD,
)

#: (optimizer class, state key) -> a fresh entry's value from its parameter group; absent: 0.
FRESH_STATE: dict[tuple[type[torch.optim.Optimizer], str], Callable[[dict[str, Any]], float]] = {
    (torch.optim.Rprop, "step_size"): lambda group: float(group["lr"]),
    (torch.optim.Adagrad, "sum"): lambda group: float(group["initial_accumulator_value"]),
}


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer to hook: ``optimizer`` itself, or the one a wrapper without step hooks
    holds as ``.optimizer`` (Accelerate) or ``.optim``; a clear error when there is none."""
    seen = optimizer
    for _ in range(4):  # wrappers of wrappers, a few deep at most
        if isinstance(seen, torch.optim.Optimizer) and hasattr(seen, "_optimizer_step_pre_hooks"):
            return seen
        inner = getattr(seen, "optimizer", None) or getattr(seen, "optim", None)
        if inner is None:
            break
        seen = inner
    raise ConfigError(
        f"DSD needs a torch.optim optimizer (one with step hooks), got {type(optimizer).__name__}; "
        "pass the torch optimizer it wraps (for Accelerate's AcceleratedOptimizer: its .optimizer)"
    )


def state_holder(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer whose ``.state`` holds the per-parameter state (ZeRO: its local shard)."""
    inner = getattr(optimizer, "optim", None)
    return inner if isinstance(inner, torch.optim.Optimizer) else optimizer


def masking_is_enough(optimizer: torch.optim.Optimizer) -> bool:
    """Whether masked gradients alone keep pruned weights at 0 (see ``ZERO_UPDATE_OPTIMIZERS``)."""
    return type(state_holder(optimizer)) in ZERO_UPDATE_OPTIMIZERS


def entry_states(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The per-entry state tensors of ``param`` (shaped like it), by key."""
    state = state_holder(optimizer).state.get(param, {})
    return [(k, v) for k, v in state.items() if torch.is_tensor(v) and v.shape == param.shape]


def fresh_value(optimizer: torch.optim.Optimizer, param: torch.Tensor, key: str) -> float:
    """What a new parameter's ``key`` state starts at in ``optimizer`` (0 unless the table says)."""
    holder = state_holder(optimizer)
    rule = FRESH_STATE.get((type(holder), key))
    if rule is None:
        return 0.0
    group = next(g for g in holder.param_groups if any(p is param for p in g["params"]))
    return rule(group)
