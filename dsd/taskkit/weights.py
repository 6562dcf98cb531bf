"""Model weights: loaded from a checkpoint strictly, with one clear message when they do not fit,
and read back from a finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dsd.errors import CheckpointError
from dsd.files import safe_torch_load
from dsd.records.run import load_result


def _strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_model_weights(model: torch.nn.Module, state: Any, source: str) -> None:
    """Load weights strictly into ``model``, explaining a mismatch in one clear message.

    Accepts a plain state_dict, or one of ours / a common trainer's under ``model`` or
    ``state_dict``; strips DDP's ``module.`` and ``torch.compile``'s ``_orig_mod.`` prefixes.
    """
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    elif isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{source} holds no model state_dict (expected a mapping of names to tensors)")
    state = _strip_prefix(_strip_prefix(state, "module."), "_orig_mod.")
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(ours[k].shape)}"
        for k in ours
        if k in state and state[k].shape != ours[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {'; '.join(shapes[:3])})")
        raise CheckpointError(
            f"{source} does not fit the model {type(model).__name__}: keys "
            + ", ".join(parts)
            + ". Is it a checkpoint of another architecture or class count?"
        )
    model.load_state_dict(state, strict=True)


def load_final_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights a finished run ended with (its last phase's ``phase<i>.pt``)."""
    return safe_torch_load(Path(folder) / load_result(folder).final_weights())
