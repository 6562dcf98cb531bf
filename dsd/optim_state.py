"""What the engine needs to know about optimizers: the real one inside a wrapper, where its state
lives, which updates are provably zero for a pruned entry, and what a fresh entry's state is.

- **Wrappers.** A wrapper may keep the optimizer, and the state, anywhere: Accelerate's
  ``AcceleratedOptimizer`` as ``.optimizer`` (it has no step hooks of its own), timm's ``Lookahead``
  as ``._base_optimizer`` (it skips ``Optimizer.__init__``, so its own ``step`` runs no hooks until
  a first ``zero_grad()`` patches its class, and its slow weights live in the base optimizer's
  state), ``ZeroRedundancyOptimizer`` as ``.optim`` (the local shard's state). So the engine takes
  every torch optimizer reachable through attributes (``reachable_optimizers``), hooks the innermost
  one that updates every parameter they update and whose ``step`` runs hooks (``hook_target``),
  and zeroes per-entry state wherever any of them keeps it (``entry_states``). Where that is not
  one optimizer, it refuses at construction, naming the attribute to pass instead.
  Why the innermost: it is the one that writes the weights, a torch optimizer built by its own
  ``__init__``, so its hooks run at every step whatever the loop calls, while a wrapper's own
  ``step`` may run none. What a wrapper does after the inner step keeps a pruned entry at 0 as long
  as the wrapper's state there is 0 too: Lookahead's ``fast = slow + alpha * (fast - slow)`` mixes
  two zeros. A wrapper that revives pruned weights otherwise is caught at ``redense()``
  (``MaskLapsedError``), never passed silently.
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

import types
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

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

#: How far below the object given the engine looks for optimizers (wrappers of wrappers).
SEARCH_DEPTH = 4
SEARCH_LIMIT = 256  # objects looked at, at most (a wrapper may reference large object graphs)
_NOT_ENTERED = (
    torch.Tensor,
    nn.Module,
    type,
    types.ModuleType,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
)


@dataclass(frozen=True)
class FoundOptimizer:
    """A torch optimizer found inside the object given to the engine."""

    path: str  # how it is reached: "" (the object itself), "._base_optimizer", ".optimizer.optim"
    optimizer: torch.optim.Optimizer
    depth: int


def reachable_optimizers(obj: Any) -> list[FoundOptimizer]:
    """Every torch optimizer reachable from ``obj``: itself, then through its attributes (and the
    items of list, tuple and dict attributes), breadth first, at most ``SEARCH_DEPTH`` levels and
    ``SEARCH_LIMIT`` objects deep, each once. Models, tensors, functions and classes are not entered."""
    found: list[FoundOptimizer] = []
    seen: set[int] = set()
    queue: deque[tuple[Any, str, int]] = deque([(obj, "", 0)])
    while queue and len(seen) < SEARCH_LIMIT:
        item, path, depth = queue.popleft()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.optim.Optimizer):
            found.append(FoundOptimizer(path, item, depth))
        if depth == SEARCH_DEPTH:
            continue
        for name, value in _attributes(item):
            if isinstance(value, (list, tuple)):
                queue.extend((v, f"{path}.{name}[{i}]", depth + 1) for i, v in enumerate(value) if _enters(v))
            elif isinstance(value, dict):
                queue.extend((v, f"{path}.{name}[{k!r}]", depth + 1) for k, v in value.items() if _enters(v))
            elif _enters(value):
                queue.append((value, f"{path}.{name}", depth + 1))
    return found


def _attributes(item: Any) -> list[tuple[str, Any]]:
    try:
        return list(vars(item).items())
    except TypeError:  # no __dict__ (slots, builtins)
        return []


def _enters(value: Any) -> bool:
    """Whether the search looks inside ``value``: an optimizer or a plain object that may hold one."""
    if isinstance(value, torch.optim.Optimizer):
        return True
    return hasattr(value, "__dict__") and not isinstance(value, _NOT_ENTERED)


def runs_step_hooks(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step()`` runs the step hooks registered on it *now*: torch wraps a
    class's ``step`` in ``Optimizer.__init__`` (or lazily, at a first ``zero_grad()``), and the hook
    tables are instance attributes that ``__init__`` creates."""
    own = vars(optimizer)
    return (
        isinstance(own.get("_optimizer_step_pre_hooks"), dict)
        and isinstance(own.get("_optimizer_step_post_hooks"), dict)
        and bool(getattr(type(optimizer).step, "hooked", False))
    )


def _param_ids(optimizer: torch.optim.Optimizer) -> frozenset[int]:
    groups = getattr(optimizer, "param_groups", None) or []
    return frozenset(id(p) for g in groups if isinstance(g, dict) for p in g.get("params", []))


def hook_target(found: list[FoundOptimizer], given: Any) -> torch.optim.Optimizer:
    """The optimizer whose step hooks hold the mask: among those ``found`` in ``given``, the
    innermost (the one that does the update) whose ``step()`` runs hooks and that updates every
    parameter any of them updates. Refuses, naming the attribute to pass, where there is none."""
    what = type(given).__name__
    if not found:
        raise ConfigError(
            f"DSD needs a torch.optim optimizer; found none in {what} nor in its attributes "
            f"({SEARCH_DEPTH} levels deep): pass the torch optimizer that updates the model (for a "
            "wrapper, the one it holds, e.g. AcceleratedOptimizer's .optimizer)"
        )
    every = frozenset().union(*(_param_ids(f.optimizer) for f in found))
    whole = [f for f in found if _param_ids(f.optimizer) == every]
    if not whole:
        parts = ", ".join(f"optimizer{f.path} ({len(_param_ids(f.optimizer))} tensors)" for f in found)
        raise ConfigError(
            f"the optimizers in {what} each update only part of the parameters ({parts}); DSD holds "
            "the mask through one optimizer: pass the one that updates the tensors to prune, e.g. "
            f"DSD(model, optimizer{max(found, key=lambda f: len(_param_ids(f.optimizer))).path})"
        )
    hookable = [f for f in whole if runs_step_hooks(f.optimizer)]
    if not hookable:
        f = whole[-1]
        raise ConfigError(
            f"DSD needs an optimizer whose step() runs torch's step hooks; optimizer{f.path} "
            f"({type(f.optimizer).__name__}) skips torch.optim.Optimizer.__init__ and holds no torch "
            "optimizer that does: pass the torch optimizer it wraps"
        )
    deepest = [f for f in hookable if f.depth == hookable[-1].depth]
    if len(deepest) > 1:
        names = ", ".join(f"optimizer{f.path}" for f in deepest)
        raise ConfigError(
            f"{what} holds several optimizers that each update every parameter ({names}); "
            f"pass the one that trains, e.g. DSD(model, optimizer{deepest[0].path})"
        )
    return deepest[0].optimizer


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer to hook inside ``optimizer`` (itself, or one a wrapper holds)."""
    return hook_target(reachable_optimizers(optimizer), optimizer)


def state_holder(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer whose ``.state`` holds the per-parameter state (ZeRO: its local shard)."""
    inner = getattr(optimizer, "optim", None)
    return inner if isinstance(inner, torch.optim.Optimizer) else optimizer


def masking_is_enough(optimizer: torch.optim.Optimizer) -> bool:
    """Whether masked gradients alone keep pruned weights at 0 (see ``ZERO_UPDATE_OPTIMIZERS``)."""
    return type(state_holder(optimizer)) in ZERO_UPDATE_OPTIMIZERS


def entry_states(
    holders: Sequence[torch.optim.Optimizer], param: torch.Tensor
) -> list[tuple[torch.optim.Optimizer, str, torch.Tensor]]:
    """The per-entry state tensors of ``param`` (shaped like it) in every optimizer of ``holders``,
    as ``(holder, key, tensor)``, each tensor once (a wrapper may expose its inner state as its own)."""
    entries, seen = [], set()
    for holder in holders:
        state = getattr(holder, "state", None)
        per_param = state.get(param, {}) if isinstance(state, Mapping) else {}
        for key, value in per_param.items():
            if torch.is_tensor(value) and value.shape == param.shape and id(value) not in seen:
                seen.add(id(value))
                entries.append((holder, key, value))
    return entries


def fresh_value(optimizer: torch.optim.Optimizer, param: torch.Tensor, key: str) -> float:
    """What a new parameter's ``key`` state starts at in ``optimizer`` (0 unless the table says)."""
    holder = state_holder(optimizer)
    rule = FRESH_STATE.get((type(holder), key))
    if rule is None:
        return 0.0
    group = next(g for g in holder.param_groups if any(p is param for p in g["params"]))
    return rule(group)


#: Whose optimizer state ``DSD.redense()`` restarts: the restored entries' (DSD's), or every entry
#: of every parameter the optimizer updates (AC/DC's momentum reset; the ``dsd-reset-state`` ablation).
RESET_STATES = ("restored", "all")


def reset_every_state(holders: Sequence[torch.optim.Optimizer]) -> None:
    """Every per-entry state tensor of every parameter the optimizers of ``holders`` update (the
    engine's state holders), back to its fresh value: AC/DC's momentum reset at each decompression,
    for any optimizer (momentum, Adam's moments, Adagrad's sum to its initial value). Per-tensor
    counters (Adam's ``step``) are kept, as they are for the entries a re-dense restores."""
    params = {id(p): p for holder in holders for group in holder.param_groups for p in group["params"]}
    for param in params.values():
        for holder, key, state in entry_states(holders, param):
            state.fill_(fresh_value(holder, param, key))
