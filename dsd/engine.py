"""The DSD engine: prune to a fixed mask, hold it through every optimizer step, re-dense.

Masks live here, not in the model: ``model.state_dict()`` keeps its keys and loads into a plain
model; no parameter is re-created, so the optimizer's references stay valid. The mask is held by
two hooks on the optimizer (none on the model, so the model stays picklable, deep-copyable and
``torch.compile``-friendly): before ``step()`` the gradients of pruned entries are zeroed, after
it the weights are re-masked. With the optimizer state of pruned entries zeroed at prune time,
neither momentum, Nesterov, Adam moments nor weight decay can revive a pruned weight, and at
re-dense the pruned weights restart from exactly zero with no stale state behind them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dsd import collective, selection
from dsd import masks as masklib
from dsd.selection import PrunableTensor, Selector

STATE_VERSION = 1


@dataclass(frozen=True)
class TensorSparsity:
    """Sparsity of one tensor, counted from its mask and from its weights."""

    name: str
    shape: tuple[int, ...]
    numel: int
    mask_zeros: int | None
    weight_zeros: int

    @property
    def mask_sparsity(self) -> float | None:
        return None if self.mask_zeros is None else self.mask_zeros / self.numel

    @property
    def weight_sparsity(self) -> float:
        return self.weight_zeros / self.numel


@dataclass(frozen=True)
class SparsityReport:
    """Per-tensor and overall sparsity of the selected tensors (masks and weights both)."""

    phase: str
    tensors: list[TensorSparsity] = field(default_factory=list)

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def mask_sparsity(self) -> float | None:
        if self.phase != "sparse":
            return None
        return sum(t.mask_zeros or 0 for t in self.tensors) / max(1, self.numel)

    @property
    def weight_sparsity(self) -> float:
        return sum(t.weight_zeros for t in self.tensors) / max(1, self.numel)

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "mask_sparsity": self.mask_sparsity,
            "weight_sparsity": self.weight_sparsity,
            "tensors": {
                t.name: {"mask_sparsity": t.mask_sparsity, "weight_sparsity": t.weight_sparsity}
                for t in self.tensors
            },
        }

    def __str__(self) -> str:
        width = max([len(t.name) for t in self.tensors] + [6])
        lines = [f"{'tensor':<{width}}  {'shape':<22} {'numel':>11}  {'mask':>7}  {'weights':>7}"]
        for t in self.tensors:
            mask = "-" if t.mask_sparsity is None else f"{t.mask_sparsity:7.2%}"
            lines.append(
                f"{t.name:<{width}}  {list(t.shape)!s:<22} {t.numel:>11,}  {mask:>7}  "
                f"{t.weight_sparsity:7.2%}"
            )
        overall = "-" if self.mask_sparsity is None else f"{self.mask_sparsity:7.2%}"
        lines.append(
            f"{'overall':<{width}}  {'':<22} {self.numel:>11,}  {overall:>7}  {self.weight_sparsity:7.2%}"
        )
        return "\n".join(lines)


class DSD:
    """Dense-Sparse-Dense training around any model and any ``torch.optim`` optimizer.

    ``prune(s)`` starts a sparse phase with a mask fixed until ``redense()`` ends it; iterate
    for DSDSD. Under ``torch.distributed`` the masks are computed on rank 0 and broadcast, so
    every rank holds the identical mask even if its weights drifted.

    Args:
        model: the model to prune (DDP / compiled wrappers are seen through for naming).
        optimizer: the optimizer that updates it; every selected tensor must be in it.
        include, exclude: override the paper's selection (see ``dsd.selection.select_prunable``).
        skip_first_conv: keep the model's first convolution dense (the paper's rule).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        include: Selector | Iterable[Selector] | None = None,
        exclude: Selector | Iterable[Selector] | None = None,
        skip_first_conv: bool = True,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.tensors: list[PrunableTensor] = selection.select_prunable(
            model, include=include, exclude=exclude, skip_first_conv=skip_first_conv
        )
        self.skip_first_conv = skip_first_conv
        self._check_in_optimizer()
        self._masks: list[torch.Tensor] | None = None
        self.sparsity: float = 0.0
        self.scope: str = "layer"
        self.history: list[dict[str, Any]] = []
        # After mask_gradients(): each tensor's grad (weakly) and its version counter, so the
        # pre-step hook can skip a repeat only while those very gradients are untouched.
        self._masked_grads: list[tuple[Any, int] | None] | None = None
        self._hooks = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]

    # ----------------------------------------------------------------- inspection
    @property
    def phase(self) -> str:
        """``"sparse"`` while a mask is held, else ``"dense"``."""
        return "dense" if self._masks is None else "sparse"

    @property
    def is_sparse(self) -> bool:
        return self._masks is not None

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """Name -> keep-mask (``torch.bool``, True = kept); empty while dense."""
        if self._masks is None:
            return {}
        return {t.name: m for t, m in zip(self.tensors, self._masks, strict=True)}

    def summary(self) -> str:
        """The selected tensors with shapes and counts, and what the selection left out."""
        chosen = {t.name for t in self.tensors}
        lines = [f"DSD prunes {len(self.tensors)} tensors, {sum(t.numel for t in self.tensors):,} weights:"]
        lines += [
            f"  {t.name:<48} {list(t.param.shape)!s:<22} {t.numel:>12,}  ({t.module_type})"
            for t in self.tensors
        ]
        left = [
            (n, p, r)
            for n, p, _, r in selection.considered_parameters(self.model, self.skip_first_conv)
            if n not in chosen
        ]
        if left:
            lines.append(f"left dense ({len(left)} tensors, {sum(p.numel() for _, p, _ in left):,} values):")
            lines += [f"  {n:<48} {list(p.shape)!s:<22} {r or 'excluded'}" for n, p, r in left]
        return "\n".join(lines)

    def sparsity_report(self) -> SparsityReport:
        """Sparsity per tensor and overall, counted from the masks and from the weights."""
        rows = []
        for i, t in enumerate(self.tensors):
            w = t.param.detach()
            # count_nonzero: many times faster than bool.sum() on big tensors
            mask_zeros = None if self._masks is None else w.numel() - int(torch.count_nonzero(self._masks[i]))
            weight_zeros = w.numel() - int(torch.count_nonzero(w))
            rows.append(TensorSparsity(t.name, tuple(w.shape), w.numel(), mask_zeros, weight_zeros))
        return SparsityReport(self.phase, rows)

    # ----------------------------------------------------------------- phases
    def prune(self, sparsity: float, scope: str = "layer") -> SparsityReport:
        """Start a sparse phase: mask the smallest ``|w|`` and hold the mask until ``redense()``.

        Every check runs before anything changes, so a refused call leaves model and optimizer
        untouched. Returns the sparsity report right after pruning.
        """
        sparsity = masklib.check_sparsity(sparsity)
        if scope not in masklib.SCOPES:
            raise ValueError(f"scope must be one of {masklib.SCOPES}, got {scope!r}")
        if self._masks is not None:
            raise RuntimeError(
                f"prune() while already sparse (pruned at {self.sparsity:.0%}); "
                "call redense() first, the mask is fixed for the whole sparse phase"
            )
        self._check_in_optimizer()
        _finite_on_every_rank(self.tensors)
        masks = masklib.magnitude_masks([t.param for t in self.tensors], sparsity, scope)
        collective.broadcast_masks(masks)
        self._masks = masks
        self.sparsity, self.scope = sparsity, scope
        targets, target_masks = [], []
        for t, mask in zip(self.tensors, masks, strict=True):
            state = self.optimizer.state.get(t.param, {}).values()
            grad = [] if t.param.grad is None else [t.param.grad]
            for tensor in [t.param, *grad, *state]:
                if torch.is_tensor(tensor) and tensor.shape == mask.shape:
                    targets.append(tensor)
                    target_masks.append(mask)
        masklib.apply_masks_(targets, target_masks)
        self.history.append({"event": "prune", "sparsity": sparsity, "scope": scope})
        return self.sparsity_report()

    def redense(self) -> None:
        """End the sparse phase: drop the masks; pruned weights (exactly 0) are free to learn."""
        if self._masks is None:
            raise RuntimeError("redense() while dense: there is no mask to drop; call prune() first")
        self.apply_masks()
        self._masks = None
        self.sparsity = 0.0
        self.history.append({"event": "redense"})

    # ----------------------------------------------------------------- holding the mask
    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradients of pruned entries. Call before gradient clipping so the norm is
        that of the sparse model; ``optimizer.step()`` then skips the repeat, unless the
        gradients changed since (another backward, or a step skipped by a ``GradScaler``)."""
        if self._masks is None or self._grads_still_masked():
            return
        pairs = [(t.param.grad, m) for t, m in zip(self.tensors, self._masks, strict=True)]
        masklib.apply_masks_([g for g, _ in pairs if g is not None], [m for g, m in pairs if g is not None])
        self._masked_grads = [
            None if t.param.grad is None else (weakref.ref(t.param.grad), t.param.grad._version)
            for t in self.tensors
        ]

    def _grads_still_masked(self) -> bool:
        """True only if every gradient is the very tensor masked last, not modified since."""
        if self._masked_grads is None:
            return False
        for t, record in zip(self.tensors, self._masked_grads, strict=True):
            grad = t.param.grad
            if record is None or grad is None:
                if record is not None or grad is not None:
                    return False
                continue
            ref, version = record
            if ref() is not grad or grad._version != version:
                return False
        return True

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the pruned weights (done after every step; call it after editing weights by hand)."""
        if self._masks is None:
            return
        masklib.apply_masks_([t.param for t in self.tensors], self._masks)

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.mask_gradients()

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._masked_grads = None
        self.apply_masks()

    def remove(self) -> None:
        """Detach from the optimizer (the masks stop being applied)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """Masks and phase, loadable with ``torch.load(..., weights_only=True)``."""
        return {
            "version": STATE_VERSION,
            "phase": self.phase,
            "sparsity": self.sparsity,
            "scope": self.scope,
            "history": [dict(h) for h in self.history],
            "shapes": {t.name: list(t.param.shape) for t in self.tensors},
            "masks": {}
            if self._masks is None
            else {t.name: m.detach().cpu().clone() for t, m in zip(self.tensors, self._masks, strict=True)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore masks and phase; re-masks the weights. Refuses state from another model."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"not a DSD engine state (version {STATE_VERSION} expected)")
        ours = {t.name: list(t.param.shape) for t in self.tensors}
        theirs = {k: list(v) for k, v in state["shapes"].items()}
        if ours != theirs:
            missing = sorted(set(ours) - set(theirs))
            extra = sorted(set(theirs) - set(ours))
            shape = sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
            raise ValueError(
                "engine state is from another model: "
                + "; ".join(
                    f"{what}: {names[:5]}"
                    for what, names in (
                        ("missing tensors", missing),
                        ("unexpected tensors", extra),
                        ("other shapes", shape),
                    )
                    if names
                )
            )
        masks = None
        if state["phase"] == "sparse":
            masks = []
            for t in self.tensors:
                mask = state["masks"].get(t.name)
                if not torch.is_tensor(mask):
                    raise ValueError(f"engine state (phase sparse) has no mask for {t.name!r}")
                if mask.dtype != torch.bool:
                    raise ValueError(f"mask of {t.name!r} has dtype {mask.dtype}, expected torch.bool")
                if mask.shape != t.param.shape:
                    raise ValueError(
                        f"mask of {t.name!r} has shape {list(mask.shape)}, expected {list(t.param.shape)}"
                    )
                masks.append(mask.to(t.param.device))
        self._masks = masks
        self.sparsity = float(state["sparsity"])
        self.scope = str(state["scope"])
        self.history = [dict(h) for h in state["history"]]
        self.apply_masks()

    def _check_in_optimizer(self) -> None:
        in_optimizer = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        for t in self.tensors:
            if id(t.param) not in in_optimizer:
                raise ValueError(
                    f"tensor {t.name!r} is selected for pruning but is not in the optimizer; "
                    "build the optimizer over it, or exclude it"
                )


def _finite_on_every_rank(tensors: list[PrunableTensor]) -> None:
    """``check_finite`` on every rank at once, so that no rank waits in the mask broadcast
    while another has refused to prune."""
    try:
        masklib.check_finite(tensors)
    except ValueError:
        collective.any_rank(True)
        raise
    if collective.any_rank(False):
        raise ValueError("cannot prune: another rank holds NaN/inf weights (its error names the tensor)")
