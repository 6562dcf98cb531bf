"""Catching a resumed loop that forgot ``engine.load_state_dict(...)``.

A loop that resumes from a checkpoint saved in a sparse phase restores the model and the
optimizer, and must restore the engine too. If it forgets, the engine is dense: the rest of the
sparse phase trains dense without a word, and ``redense()`` finds no mask to drop.

What the engine can see, cheaply and without false alarms, is the fingerprint a sparse phase
leaves in a checkpoint: weights that are exactly 0 *and* whose every optimizer state entry
(momentum, Adam's moments, Lookahead's slow weights, ...) is exactly 0 too. Held masks make both
true at every pruned entry. A dense start makes them true almost nowhere: an optimizer that has not
stepped keeps no state, so a fresh start is never flagged, whatever the initialisation (zeros,
identity, a pruned pretrained model); one that has stepped has non-zero state wherever a gradient
ever flowed, and trained weights are practically never exactly 0. So the check runs once, at the
first optimizer step of an engine that has neither pruned nor loaded a state, costs one pass over
the selected weights and their state, and warns when such entries are at least ``MIN_FRACTION`` of
the weights that have state. It is blind where the optimizer keeps no state (SGD without momentum);
there ``redense()`` still names the likely cause (``redense_while_dense``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from dsd import optim_state
from dsd.selection import PrunableTensor

#: Share of the weights (of the tensors with optimizer state) that must carry the fingerprint.
MIN_FRACTION = 0.01

_RESTORE = (
    "if this run resumed from a checkpoint saved in a sparse phase, restore the engine with "
    "engine.load_state_dict(<the saved engine.state_dict()>) after loading the model and optimizer"
)


class UnrestoredMaskWarning(UserWarning):
    """The model looks like a checkpoint of a sparse phase, but the engine is dense."""


@torch.no_grad()
def sparse_fingerprint(
    tensors: Sequence[PrunableTensor], holders: Sequence[torch.optim.Optimizer]
) -> tuple[float, str, float] | None:
    """``(share, name, share_of_name)``: the share of the weights (of tensors with per-entry
    optimizer state) that are 0 with all-zero state, and the tensor where that share is largest;
    None when no selected tensor has optimizer state yet."""
    marked = total = 0
    worst = ("", 0.0)
    for t in tensors:
        states = [s for _, _, s in optim_state.entry_states(holders, t.param)]
        if not states:
            continue
        zero = t.param.detach() == 0
        for state in states:
            zero &= state == 0
        count = int(torch.count_nonzero(zero))
        marked, total = marked + count, total + t.numel
        if t.numel and count / t.numel > worst[1]:
            worst = (t.name, count / t.numel)
    return None if total == 0 else (marked / total, *worst)


def warn_if_unrestored(tensors: Sequence[PrunableTensor], holders: Sequence[torch.optim.Optimizer]) -> None:
    """Warn (``UnrestoredMaskWarning``) when a dense engine's model carries a sparse phase's
    fingerprint (see the module's docstring)."""
    found = sparse_fingerprint(tensors, holders)
    if found is None or found[0] < MIN_FRACTION:
        return
    share, name, share_of_name = found
    warnings.warn(
        f"DSD engine is dense, but {share:.0%} of the selected weights are exactly 0 with all-zero "
        f"optimizer state ({name}: {share_of_name:.0%}), as a sparse phase leaves them; {_RESTORE}, "
        "or the sparse phase trains dense",
        UnrestoredMaskWarning,
        stacklevel=4,
    )


def redense_while_dense(history: Sequence[dict[str, Any]]) -> str:
    """The message of ``redense()`` called on a dense engine, with the likely cause."""
    if history and history[-1].get("event") == "redense":
        return "redense() while dense: the last sparse phase already ended at redense(); call prune() first"
    return (
        "redense() while dense: there is no mask to drop, and this engine has never pruned; "
        f"{_RESTORE} (the steps since the resume trained dense); otherwise call prune() first"
    )
