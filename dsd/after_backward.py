"""Run a function once at the end of the backward pass before the optimizer step, after DDP's and
FSDP2's own end-of-backward work.

The Hugging Face Trainer clips the gradients right after ``backward()`` and offers no hook in
between, so the engine must mask the pruned gradients inside backward for the clipping norm to be
the sparse model's. Masking each tensor as backward writes it runs interleaved with backward's own
memory traffic (1.3 to 1.7 masked passes per step, measured). Instead, the first pruned tensor's
post-accumulate-grad hook of a backward queues one callback with the autograd engine, which runs
it when the backward is done: one masking pass over all pruned gradients.

With gradient accumulation only the last micro-batch's backward needs that pass, and a Python hook
called for every pruned tensor of every other micro-batch is pure cost (about 15 µs a call timed
inside a ResNet-18 backward, 60 calls a step at accumulation 4: 0.17 of a pass). So ``when`` (a
function saying whether the micro-batch now running is the last before the step, such as
Accelerate's sync flag) is asked before each training forward of the model, and the tensors'
hooks are in their hook tables only while it says yes: they fire once per optimizer step. A
forward it says no to marks the gradients unmasked, so the engine still masks them before the
step if no end-of-backward pass follows. A loop that never calls the model itself (only its
parts) keeps the hooks, and the first hook of each backward asks ``when``.

The callback queues itself a second time before it runs: callbacks queued during backward run
in order, and DDP queues its ``finalize_backward`` (which copies the all-reduced gradients back
into ``.grad``) after the first bucket is ready, later than our first hook. A callback queued
from inside a callback runs after all of those, so it masks the gradients the step will see.
FSDP2 calls the hooks after its reduce-scatter, on the gradients' shards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.autograd import Variable
from torch.utils.hooks import RemovableHandle


class AfterBackward:
    """Hold ``params``: ``fn()`` runs once at the end of each backward pass that writes their
    gradients, if ``when`` (True, or a function) says that backward is the last before the step;
    ``written()`` is called whenever gradients are written that ``fn`` will not see."""

    def __init__(
        self, fn: Callable[[], None], when: bool | Callable[[], bool], written: Callable[[], None]
    ) -> None:
        self.fn, self.when, self.written = fn, when, written
        self._decided: int | None = None  # the backward pass (graph task) already looked at
        self._handles: list[RemovableHandle] = []
        self._hooked = False  # whether the tensors' hooks are in their hook tables now
        self._gate: RemovableHandle | None = None

    def hold(self, model: nn.Module, params: Sequence[nn.Parameter]) -> None:
        """Hook ``params`` (and, with a ``when`` function, ``model``'s forward) until ``release()``."""
        self.release()
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in params]
        self._hooked = True
        if callable(self.when):
            # compiled models trace their modules' hooks; this one edits hook tables: run it eagerly
            self._gate = model.register_forward_pre_hook(torch.compiler.disable(self._before_forward))

    def release(self) -> None:
        for handle in [*self._handles, *filter(None, [self._gate])]:
            handle.remove()
        self._handles, self._hooked, self._gate = [], False, None

    def arm(self) -> None:
        """A pruned gradient was written; the first call of a backward decides for all of them."""
        # called once per pruned tensor and backward: the others cost one comparison (graph task
        # ids are unique, so none is ever reset)
        task = torch._C._current_graph_task_id()
        if task == self._decided:
            return
        self._decided = task
        self.written()
        if not (self.when() if callable(self.when) else self.when):
            return
        try:
            Variable._execution_engine.queue_callback(self._queue_last)
        except RuntimeError:  # not inside a backward pass (a hook called by hand): run it now
            self._decided = None
            self.fn()

    def _on_grad(self, param: torch.Tensor) -> None:
        self.arm()

    def _before_forward(self, module: nn.Module, args: Any) -> None:
        if not (module.training and torch.is_grad_enabled()):
            return
        last = bool(self.when())  # type: ignore[operator]  # the gate exists only for a function
        if not last:
            self.written()  # this micro-batch's backward writes gradients without hooks
        self._hook_params(last)

    def _hook_params(self, on: bool) -> None:
        """Put the tensors' hooks in or out of their hook tables, under the keys their handles were
        given: what ``handle.remove()`` and registering again would do, without the cost of
        registering (about 8 µs a tensor between two backward passes, measured)."""
        if on == self._hooked:
            return
        self._hooked = on
        for handle in self._handles:
            table = handle.hooks_dict_ref()
            if table is None:
                continue
            if on:
                table[handle.id] = self._on_grad
            else:
                table.pop(handle.id, None)

    def _queue_last(self) -> None:
        Variable._execution_engine.queue_callback(self.fn)
