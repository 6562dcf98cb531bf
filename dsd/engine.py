"""The DSD engine: prune to a fixed mask, hold it through every optimizer step, re-dense.

Masks live here, not in the model: ``model.state_dict()`` keeps its keys and loads into a plain
model; no parameter is re-created, so the optimizer's references stay valid. The mask is held by
the optimizer's step hooks and, while sparse, a post-accumulate-grad hook per pruned tensor that
only notes that a backward pass wrote new gradients:

- before ``step()`` the gradients of pruned entries are set to 0 (once per backward: clipping in
  between does not cost a second pass), NaN-safe;
- the optimizer state of pruned entries is 0 from ``prune()`` on, so for every first-order
  ``torch.optim`` optimizer the update of a pruned entry is exactly 0 and the weights need no
  second pass; for the others (LBFGS, custom ones) the weights are re-masked after ``step()``;
- a closure passed to ``step()`` (LBFGS evaluates it many times) has its gradients masked at
  every evaluation.

At ``redense()`` the pruned weights restart from exactly 0 (or, for the re-initialisation
ablation, from their layer's own initialisation) and their optimizer state from the optimizer's
own fresh values. See ``dsd.optim_state`` for the optimizer facts this relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from dsd import collective, copies, engine_state, optim_state, resume_check, selection, sharded
from dsd import masks as masklib
from dsd.after_backward import AfterBackward
from dsd.errors import PhaseError, UserError
from dsd.reinit import fresh_weights
from dsd.selection import PrunableTensor, Selector
from dsd.sparsity import SparsityReport, TensorSparsity

__all__ = ["DSD", "MaskLapsedError", "SparsityReport", "TensorSparsity"]

STATE_VERSION = engine_state.STATE_VERSION
CRITERIA = ("magnitude", "random")
RESTARTS = ("zero", "reinit")


class MaskLapsedError(UserError, RuntimeError):
    """Pruned weights moved during a sparse phase: the optimizer that trained was not the one the
    engine holds."""


class DSD:
    """Dense-Sparse-Dense training around any model and any ``torch.optim`` optimizer.

    ``prune(s)`` starts a sparse phase with a mask fixed until ``redense()`` ends it; iterate
    for DSDSD. Under ``torch.distributed`` the masks are computed on rank 0 and broadcast, so
    every rank holds the identical mask even if its weights drifted, and the ranks check that they
    call ``prune()`` / ``redense()`` together. Under FSDP2 (``fully_shard``) each rank holds the
    mask of its own rows, the same masks counted over the shards (``dsd.sharded``).

    Args:
        model: the model to prune (DDP / compiled wrappers are seen through for naming).
        optimizer: the optimizer that updates it, or a wrapper holding it under any attribute
            (Accelerate's, timm's ``Lookahead``, ZeRO: see ``dsd.optim_state``); every selected
            tensor must be in it.
        include, exclude: override the paper's selection (see ``dsd.selection.select_prunable``).
        skip_first_conv: keep the model's first convolution dense (the paper's rule).
        mask_in_backward: mask the pruned gradients at the end of the backward pass that wrote
            them (after DDP's and FSDP2's reductions), for training loops that clip before you can
            call ``mask_gradients()`` (the Hugging Face Trainer). A function instead of True says,
            at each training forward of the model, whether this micro-batch is the last before the
            step (gradient accumulation): the grad hooks fire only in that backward and the pass
            runs once per step (``dsd.after_backward``). Default: once, before the step.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        include: Selector | Iterable[Selector] | None = None,
        exclude: Selector | Iterable[Selector] | None = None,
        skip_first_conv: bool = True,
        mask_in_backward: bool | Callable[[], bool] = False,
    ) -> None:
        self.model = model
        self.mask_in_backward = mask_in_backward
        self._after_backward = AfterBackward(self.mask_gradients, mask_in_backward, self._note_grad)
        found = optim_state.reachable_optimizers(optimizer)
        self.optimizer = optim_state.hook_target(found, optimizer)
        self._state_holders = [f.optimizer for f in found]  # per-entry state, wherever a wrapper keeps it
        self.tensors: list[PrunableTensor] = selection.select_prunable(
            model, include=include, exclude=exclude, skip_first_conv=skip_first_conv
        )
        self.skip_first_conv = skip_first_conv
        self._check_in_optimizer()
        self._masks: list[torch.Tensor] | None = None
        self.sparsity: float = 0.0
        self.scope: str = "layer"
        self.history: list[dict[str, Any]] = []
        self._masking_is_enough = optim_state.masking_is_enough(self.optimizer)
        self._grads_dirty = True  # a backward wrote gradients that are not masked yet
        self._grad_hooks: list[Any] = []
        self._steps = 0  # optimizer steps seen (for the ranks' periodic phase check)
        self._sparse_steps = 0  # ... in the current sparse phase (to explain a lapsed mask)
        self._unchecked = True  # no prune() nor load_state_dict() yet: see dsd.resume_check
        self.agreement = collective.PhaseAgreement()
        self._layout = sharded.layout_of(model, self.tensors, self.agreement.group)
        self._hooks = [
            self.optimizer.register_step_pre_hook(self._before_step),
            self.optimizer.register_step_post_hook(self._after_step),
        ]
        if self.agreement.group is not None and (
            isinstance(model, nn.parallel.DistributedDataParallel) or self._layout.sharded
        ):
            # DDP's backward and FSDP2's forward wait for every rank: a rank whose peer is inside
            # prune() alone would block there, never reaching a step check. Checking before each
            # training forward (ahead of FSDP2's all-gather) pairs it with that prune() at once
            # (one 16-byte all-reduce on the side group).
            self._hooks.append(model.register_forward_pre_hook(self._before_forward, prepend=True))

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
        """Name -> keep-mask (``torch.bool``, True = kept; under FSDP2, of this rank's rows);
        empty while dense."""
        if self._masks is None:
            return {}
        return {t.name: m for t, m in zip(self.tensors, self._masks, strict=True)}

    def summary(self) -> str:
        """The selected tensors with shapes and counts, and what the selection left out."""
        return selection.summary(self.model, self.tensors, self.skip_first_conv)

    def sparsity_report(self) -> SparsityReport:
        """Sparsity per tensor and overall, counted from the masks and from the weights (under
        FSDP2 over all ranks: every rank calls it)."""
        return SparsityReport(self.phase, self._layout.sparsity_rows(self.tensors, self._masks))

    # ----------------------------------------------------------------- phases
    def prune(
        self,
        sparsity: float,
        scope: str = "layer",
        criterion: str = "magnitude",
        generator: torch.Generator | None = None,
    ) -> SparsityReport:
        """Start a sparse phase: mask the smallest ``|w|`` (or, ``criterion="random"``, a uniformly
        random set of the same size per tensor, drawn from ``generator``) and hold the mask until
        ``redense()``. Every check runs before anything changes, so a refused call leaves model
        and optimizer untouched. Returns the sparsity report right after pruning."""
        sparsity = masklib.check_sparsity(sparsity)
        if scope not in masklib.SCOPES:
            raise ValueError(f"scope must be one of {masklib.SCOPES}, got {scope!r}")
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        if criterion == "random" and (generator is None or scope != "layer"):
            raise ValueError(
                "criterion='random' needs a generator= and scope='layer' (a random set per tensor)"
            )
        if self._masks is not None:
            raise RuntimeError(
                f"prune() while already sparse (pruned at {self.sparsity:.0%}); "
                "call redense() first, the mask is fixed for the whole sparse phase"
            )
        self._check_in_optimizer()
        self.agreement.check(len(self.history) + 1, "prune()")
        self._hold(self._layout.masks(self.tensors, sharded.Pruning(sparsity, scope, criterion, generator)))
        self.sparsity, self.scope = sparsity, scope
        event = {"event": "prune", "sparsity": sparsity, "scope": scope}
        self.history.append(event | ({"criterion": criterion} if criterion != "magnitude" else {}))
        return self.sparsity_report()

    def redense(
        self, restart: str = "zero", generator: torch.Generator | None = None, reset_state: str = "restored"
    ) -> None:
        """End the sparse phase: drop the masks; the pruned weights (exactly 0) learn again, their
        optimizer state restarted from the optimizer's fresh values. ``restart="reinit"``: they
        restart from a new draw of their layer's initialisation (from ``generator``) instead.
        ``reset_state="all"``: every entry's state restarts (AC/DC; ``optim_state.reset_every_state``)."""
        if self._masks is None:
            raise PhaseError(resume_check.redense_while_dense(self.history))
        if restart not in RESTARTS:
            raise ValueError(f"restart must be one of {RESTARTS}, got {restart!r}")
        if reset_state not in optim_state.RESET_STATES:
            raise ValueError(f"reset_state must be one of {optim_state.RESET_STATES}, got {reset_state!r}")
        if restart == "reinit" and generator is None:
            raise ValueError("restart='reinit' needs a generator= (the draw is the same on every rank)")
        self._layout.check_restart(restart)
        self.agreement.check(len(self.history) + 1, "redense()")
        self._check_lapse()
        with torch.no_grad():
            self.apply_masks()
            for t, mask in zip(self.tensors, self._masks, strict=True):
                pruned = ~mask
                for holder, key, state in optim_state.entry_states(self._state_holders, t.param):
                    fresh = optim_state.fresh_value(holder, t.param, key)
                    self._layout.local(state).masked_fill_(pruned, fresh)
                if restart == "reinit":
                    module_name, _, param_name = t.name.rpartition(".")
                    owner = selection.unwrap_model(self.model).get_submodule(module_name)
                    fresh = fresh_weights(owner, param_name, generator).to(t.param.device, t.param.dtype)
                    t.param.copy_(torch.where(pruned, fresh, t.param))
            if reset_state == "all":
                optim_state.reset_every_state(self._state_holders)
        self._release()
        self.sparsity = 0.0
        event = {"event": "redense"} | ({"restart": restart} if restart != "zero" else {})
        self.history.append(event | ({"reset_state": reset_state} if reset_state != "restored" else {}))

    # ----------------------------------------------------------------- holding the mask
    def _hold(self, masks: list[torch.Tensor]) -> None:
        """Take ``masks``: zero the pruned weights, their gradients and their optimizer state."""
        self._masks = masks
        targets, target_masks = [], []
        for t, mask in zip(self.tensors, masks, strict=True):
            grad = [] if t.param.grad is None else [t.param.grad]
            states = [s for _, _, s in optim_state.entry_states(self._state_holders, t.param)]
            targets += [t.param, *grad, *states]
            target_masks += [mask] * (1 + len(grad) + len(states))
        masklib.apply_masks_(targets, target_masks)
        self._grads_dirty, self._sparse_steps, self._unchecked = False, 0, False
        if self.mask_in_backward:  # masked at the end of the backward before the step, once
            self._after_backward.hold(self.model, [t.param for t in self.tensors])
        else:
            self._grad_hooks = [
                t.param.register_post_accumulate_grad_hook(self._note_grad) for t in self.tensors
            ]

    def _release(self) -> None:
        for handle in self._grad_hooks:
            handle.remove()
        self._after_backward.release()
        self._grad_hooks, self._masks = [], None

    def _note_grad(self, *_: Any) -> None:
        """A backward pass accumulated into a pruned tensor's gradient: mask it before the step."""
        self._grads_dirty = True

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradients of pruned entries (NaN-safe). Call it before gradient clipping so the
        norm is that of the sparse model; ``optimizer.step()`` then skips the repeat, unless a
        backward pass wrote gradients since. Between this call and ``step()`` only scale the
        gradients (clipping, unscaling); after editing them otherwise, call it again."""
        if self._masks is None or not self._grads_dirty:
            return
        pairs = [(t.param.grad, m) for t, m in zip(self.tensors, self._masks, strict=True)]
        masklib.apply_masks_([g for g, _ in pairs if g is not None], [m for g, m in pairs if g is not None])
        self._grads_dirty = False

    @torch.no_grad()
    def apply_masks(self, copy: nn.Module | None = None) -> None:
        """Zero the pruned weights (call it after editing weights by hand). With ``copy``, those of
        a copy of the model instead, matched by name: an EMA copy, after each update while sparse
        (see ``dsd.copies``)."""
        if copy is not None:
            copies.apply_masks_to_copy(copy, self.tensors, self._masks)
            return
        if self._masks is None:
            return
        masklib.apply_masks_([t.param for t in self.tensors], self._masks)

    def _before_forward(self, module: nn.Module, args: Any) -> None:
        if module.training:  # evaluation may run different batch counts on different ranks
            self.agreement.check(len(self.history), "forward")

    def _before_step(self, optimizer: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        self._steps += 1
        if self._steps % self.agreement.every == 0:
            self.agreement.check(len(self.history), "optimizer step")
        if self._masks is None:
            if self._unchecked:  # once: a resumed loop that forgot engine.load_state_dict()?
                self._unchecked = False
                resume_check.warn_if_unrestored(self.tensors, self._state_holders)
            return None
        self._sparse_steps += 1
        self.mask_gradients()
        # ``args`` holds ``step``'s positional arguments, the optimizer itself first
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None:
            return None
        return args[:1], {**kwargs, "closure": self._masked_closure(closure)}

    def _masked_closure(self, closure: Callable[[], Any]) -> Callable[[], Any]:
        """``closure`` evaluated at the sparse point with its gradients masked, every time the
        optimizer calls it (LBFGS evaluates it many times within one step)."""

        def masked() -> Any:
            self.apply_masks()
            with torch.enable_grad():
                loss = closure()
            self._grads_dirty = True
            self.mask_gradients()
            return loss

        return masked

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._masks is not None and not self._masking_is_enough:
            self.apply_masks()  # a guard for optimizers whose zero-gradient update may not be 0

    def _check_lapse(self) -> None:
        """Refuse to end a sparse phase whose pruned weights moved: the mask lapsed."""
        pairs = list(zip(self.tensors, self._masks or [], strict=True))
        moved, total = self._layout.total(  # every rank raises together under FSDP2
            [
                sum(int(torch.count_nonzero(self._layout.local(t.param).detach()[~m])) for t, m in pairs),
                sum(int((~m).sum()) for _, m in pairs),
            ]
        )
        if moved:
            raise MaskLapsedError(
                f"redense(): {moved:,} of the {total:,} pruned weights are no longer 0, so the sparse phase "
                f"did not train sparse. The engine's optimizer ({type(self.optimizer).__name__}) stepped "
                f"{self._sparse_steps} times in it; a likely cause is an optimizer built after DSD(...) "
                "(build the engine on the optimizer that trains), or weights edited by hand (call "
                "apply_masks() after editing them)"
            )

    def remove(self) -> None:
        """Detach from the optimizer and the parameters (the masks stop being applied)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for handle in self._grad_hooks:
            handle.remove()
        self._grad_hooks = []

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """Masks and phase, loadable with ``torch.load(..., weights_only=True)``. Under FSDP2, in
        the form ``torch.distributed.checkpoint`` saves sharded and loads at any world size
        (``dsd.sharded.Sharded.checkpoint_state``)."""
        state = {
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
        return self._layout.checkpoint_state(state, self.tensors, self._masks)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore masks and phase; zeroes the pruned weights, gradients and optimizer state.
        Refuses state from another model."""
        engine_state.check_version(state)
        state = self._layout.restore_state(state, self.tensors)
        masks = engine_state.checked_masks(state, self.tensors, local=self._layout.local)
        if masks is not None:
            masks = [m.to(t.param.device) for m, t in zip(masks, self.tensors, strict=True)]
        self._release()
        if masks is not None:
            self._hold(masks)
        self.sparsity = float(state["sparsity"])
        self.scope = str(state["scope"])
        self.history = [dict(h) for h in state["history"]]
        self._unchecked = False

    def _check_in_optimizer(self) -> None:
        in_optimizer = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        for t in self.tensors:
            if id(t.param) not in in_optimizer:
                raise ValueError(
                    f"tensor {t.name!r} is selected for pruning but is not in the optimizer; "
                    "build the optimizer over it, or exclude it"
                )
