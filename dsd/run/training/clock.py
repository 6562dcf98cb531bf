"""When a run checkpoints in the middle of an epoch.

Epoch ends always checkpoint, and SIGINT/SIGTERM do (``dsd.run.training.signals``). A SIGKILL gives no
notice (the OOM killer, a preemption without grace time, a node that dies), so without more a
killed ImageNet run would lose everything since the last epoch end: half an hour on eight GPUs.
So a run also checkpoints every ``checkpoint_every`` optimizer steps or, by default, once
``checkpoint_minutes`` of wall time have passed since its last checkpoint. Checkpoints are
atomic and resume bit-identically mid-epoch, so how often they are written changes no result.

Under DDP every rank must checkpoint at the same step (the checkpoint gathers their RNG states),
and wall clocks differ between ranks: the time rule is only consulted at log intervals, where
the ranks agree by a collective that any rank's clock can trigger.
"""

from __future__ import annotations

import time

from dsd import collective


class CheckpointClock:
    """Says when a mid-epoch checkpoint is due: every ``every`` steps, or (``every`` 0) once
    ``minutes`` have passed since the last checkpoint (0: never mid-epoch)."""

    def __init__(self, every: int, minutes: float, log_every: int, distributed: bool) -> None:
        self.every, self.seconds = every, minutes * 60.0
        self.log_every, self.distributed = log_every, distributed
        self.last = time.monotonic()

    def reset(self) -> None:
        """A checkpoint was just written (at an epoch end, a phase end, a stop or mid-epoch)."""
        self.last = time.monotonic()

    def due(self, step: int) -> bool:
        """Whether to checkpoint after optimizer step ``step`` (every rank gets the same answer)."""
        if self.every:
            return step % self.every == 0
        if not self.seconds:
            return False
        late = time.monotonic() - self.last >= self.seconds
        if not self.distributed:
            return late
        if step % self.log_every:
            return False
        return collective.any_rank(late)
