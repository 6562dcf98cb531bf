"""The engine's saved state, checked before anything changes: masks of the right tensors, shapes
and dtype, or a refusal that names what differs.

The state is plain data (``torch.load(..., weights_only=True)`` reads it): version, phase,
sparsity, scope, history, each selected tensor's shape, and the boolean masks while sparse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dsd.selection import PrunableTensor

STATE_VERSION = 1


def checked_masks(state: Any, tensors: Sequence[PrunableTensor]) -> list[torch.Tensor] | None:
    """The masks of ``state`` in the order of ``tensors`` (on the CPU, as saved), or None for a
    dense state. Refuses, with ``ValueError``, a state that is not the engine's, or is from
    another model (missing, unexpected or reshaped tensors), or holds a bad mask."""
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ValueError(f"not a DSD engine state (version {STATE_VERSION} expected)")
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
        if mask.shape != t.param.shape:
            raise ValueError(
                f"mask of {t.name!r} has shape {list(mask.shape)}, expected {list(t.param.shape)}"
            )
        masks.append(mask)
    return masks
