"""Run a function once at the end of a backward pass, after DDP's and FSDP2's own end-of-backward work.

The Hugging Face Trainer clips the gradients right after ``backward()`` and offers no hook in
between, so the engine must mask the pruned gradients inside backward for the clipping norm to be
the sparse model's. Masking each tensor as backward writes it runs interleaved with backward's own
memory traffic (1.3 to 1.7 masked passes per step, measured), and with gradient accumulation it
runs on every micro-batch. Instead, the first pruned tensor's post-accumulate-grad hook of a
backward queues one callback with the autograd engine, which runs it when the backward is done:
one masking pass over all pruned gradients, once per backward, and with ``when`` once per
optimizer step (only the backward before the step arms it).

The callback queues itself a second time before it runs: callbacks queued during backward run
in order, and DDP queues its ``finalize_backward`` (which copies the all-reduced gradients back
into ``.grad``) after the first bucket is ready, later than our first hook. A callback queued
from inside a callback runs after all of those, so it masks the gradients the step will see.
FSDP2 calls the hooks after its reduce-scatter, on the gradients' shards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd import Variable


class AfterBackward:
    """``arm()`` from a post-accumulate-grad hook: ``fn()`` runs once at the end of that backward
    pass, if ``when`` (True, or a function called at arming) says this backward is the one."""

    def __init__(self, fn: Callable[[], None], when: bool | Callable[[], bool] = True) -> None:
        self.fn, self.when = fn, when
        self._decided: int | None = None  # the backward pass (graph task) already looked at

    def arm(self) -> None:
        # Called once per pruned tensor and backward: the first call of a backward decides, the
        # others cost one comparison (graph task ids are unique, so none is ever reset).
        task = torch._C._current_graph_task_id()
        if task == self._decided:
            return
        self._decided = task
        if not (self.when() if callable(self.when) else self.when):
            return
        try:
            Variable._execution_engine.queue_callback(self._queue_last)
        except RuntimeError:  # not inside a backward pass (a hook called by hand): run it now
            self._decided = None
            self.fn()

    def _queue_last(self) -> None:
        Variable._execution_engine.queue_callback(self.fn)
