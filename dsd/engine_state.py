"""The engine's saved state, checked before anything changes: masks of the right tensors, shapes
and dtype, or a refusal that names what differs.

The state is plain data (``torch.load(..., weights_only=True)`` reads it): version, phase,
sparsity, scope, history, each selected tensor's shape, and the boolean masks while sparse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from dsd.selection import PrunableTensor

STATE_VERSION = 1


def check_version(state: Any) -> None:
    """Refuse, with ``ValueError``, anything but a state this engine version wrote."""
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ValueError(f"not a DSD engine state (version {STATE_VERSION} expected)")


def checked_masks(
    state: Any,
    tensors: Sequence[PrunableTensor],
    local: Callable[[torch.Tensor], torch.Tensor] = lambda tensor: tensor,
) -> list[torch.Tensor] | None:
    """The masks of ``state`` in the order of ``tensors`` (on the CPU, as saved), or None for a
    dense state. Refuses, with ``ValueError``, a state that is not the engine's, or is from
    another model (missing, unexpected or reshaped tensors), or holds a bad mask. ``local`` gives
    the part of a parameter this process holds (its rows under FSDP2), the shape each mask has."""
    check_version(state)
    ours = {t.name: list(t.param.shape) for t in tensors}
    theirs = {k: list(v) for k, v in state["shapes"].items()}
    if ours != theirs:
        missing = sorted(set(ours) - set(theirs))
        extra = sorted(set(theirs) - set(ours))
        shape = sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
        parts = [("missing tensors", missing), ("unexpected tensors", extra), ("other shapes", shape)]
        raise ValueError(
            "engine state is from another model: "
            + "; ".join(f"{what}: {names[:5]}" for what, names in parts if names)
        )
    if state["phase"] != "sparse":
        return None
    masks = []
    for t in tensors:
        mask = state["masks"].get(t.name)
        if not torch.is_tensor(mask):
            raise ValueError(f"engine state (phase sparse) has no mask for {t.name!r}")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask of {t.name!r} has dtype {mask.dtype}, expected torch.bool")
        expected = local(t.param).shape
        if mask.shape != expected:
            raise ValueError(f"mask of {t.name!r} has shape {list(mask.shape)}, expected {list(expected)}")
        masks.append(mask)
    return masks
