"""Which weights ``DSDCallback`` prunes in a transformers model by default.

Linear layers (and GPT-2's ``Conv1D``) of the body; never a tensor shared with an embedding or a
norm, so a tied LM head stays dense with its embedding; the task head only when asked. Kept apart
from the callback so that it can be read, and used with a plain engine, on its own.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from dsd import selection

__all__ = ["ById", "default_ids", "default_selection"]


def default_selection(model: nn.Module, prune_head: bool = False) -> list[str]:
    """Names of the weights the callback prunes by default in a transformers model.

    Weights of ``nn.Linear`` and transformers' ``Conv1D`` that require grad; never a tensor shared
    with an embedding or a norm (a tied LM head stays dense with its embedding); the head (the
    parameters outside ``model.base_model``) only if ``prune_head``. Names are those the engine
    reports (``model.state_dict()`` keys, first name of a shared tensor).
    """
    chosen = set(default_ids(model, prune_head))
    return [name for name, param, _, _ in selection.considered_parameters(model) if id(param) in chosen]


def default_ids(model: nn.Module, prune_head: bool) -> list[int]:
    """Parameter ids of ``default_selection(model, prune_head)``, in module order."""
    model = selection.unwrap_model(model)
    dense_owners: set[int] = set()
    candidates: list[int] = []
    for module in model.modules():
        own = dict(module.named_parameters(recurse=False))
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) or "Norm" in type(module).__name__:
            dense_owners.update(id(p) for p in own.values())
        elif isinstance(module, (nn.Linear, Conv1D)) and "weight" in own and own["weight"].requires_grad:
            candidates.append(id(own["weight"]))
    body = _base_model_ids(model)
    return [
        pid
        for pid in dict.fromkeys(candidates)
        if pid not in dense_owners and (prune_head or body is None or pid in body)
    ]


def _base_model_ids(model: nn.Module) -> set[int] | None:
    """Parameter ids of ``model.base_model`` (the body), or None when there is no separate head."""
    base = getattr(model, "base_model", None)
    if not isinstance(base, nn.Module) or base is model:
        return None
    return {id(p) for p in base.parameters()}


class ById:
    """Selector matching parameters by identity (the default selection, computed from modules)."""

    def __init__(self, ids: set[int]) -> None:
        self.ids = ids

    def __call__(self, name: str, param: torch.Tensor) -> bool:
        return id(param) in self.ids
