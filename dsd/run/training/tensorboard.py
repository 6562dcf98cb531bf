"""TensorBoard curves of a run, written beside its records (``--tensorboard``).

Each run writes its events to ``<run folder>/tensorboard/``, so ``tensorboard --logdir
results/runs`` shows every task, method and seed side by side, named by their folders. Scalars:

==========================  =================================================================
``loss/train``              mean training loss of each log interval
``lr``                      the learning rate of the interval's last step
``throughput/samples_per_s`` samples per second over all processes
``sparsity/masks``          fraction of the pruned tensors held at zero by the masks (0 dense)
``sparsity/weights``        fraction of those tensors' weights that are exactly zero
``<split>/<metric>``        every metric of every evaluation (``val/top1_err``, ``test/bleu4``)
``phase/index``             the recipe phase (0: the baseline), at each phase's first and last step
``phase/target_sparsity``   the phase's sparsity, at the same steps
==========================  =================================================================

and a text entry per phase boundary. The x axis is the optimizer step of the study: a branch
(DSD, the dense control) continues from the baseline's last step, as the report's curves do.
Events are flushed at every log line and checkpoint, so a killed run's curve reaches its last
log interval; a resumed run purges whatever was logged after its checkpoint
(``SummaryWriter(purge_step=...)``) and logs it again, so no step shows twice. Rank 0 writes; the
other ranks do nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from dsd.records.metrics import LogLine, TrainLine
from dsd.run.training.hooks import LoopHook, RunView
from dsd.selection import select_prunable

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


class TensorBoardHook(LoopHook):
    """Writes a run's scalars and phase boundaries as TensorBoard events (rank 0)."""

    name: ClassVar[str] = "tensorboard"

    def __init__(self) -> None:
        self.writer: SummaryWriter | None = None
        self.offset = 0  # the baseline's steps, for a branch
        self._tensors: list[torch.Tensor] | None = None  # what the engine prunes (or would)

    def on_start(self, run: RunView) -> None:
        if not run.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.offset = run.start_step
        # Resumed at step S: everything the crashed attempt logged after its checkpoint (steps
        # above S) is hidden, and the resumed run logs it again.
        purge = self.offset + run.position.step + 1 if run.resumed else None
        self.writer = SummaryWriter(str(run.folder.tensorboard), purge_step=purge)

    def on_phase_start(self, run: RunView, event: str) -> None:
        if self.writer is None or event != "entered":
            return
        phase, index = run.phase, run.phase_index
        step = self.offset + run.position.step + 1  # the phase's first step
        self.writer.add_scalar("phase/index", index, step)
        self.writer.add_scalar("phase/target_sparsity", phase.sparsity, step)
        self.writer.add_text(
            "phases", f"phase {index} ({phase.label}, lr {phase.lr:g}) starts at step {step}", step
        )

    def on_phase_end(self, run: RunView) -> None:
        if self.writer is None:
            return
        step = self.offset + run.position.step
        self.writer.add_scalar("phase/index", run.phase_index, step)
        self.writer.add_scalar("phase/target_sparsity", run.phase.sparsity, step)

    def on_log(self, run: RunView, line: LogLine) -> None:
        if self.writer is None:
            return
        step = self.offset + line.step
        if isinstance(line, TrainLine):
            self.writer.add_scalar("loss/train", line.train_loss, step)
            if line.lr is not None:
                self.writer.add_scalar("lr", line.lr, step)
            self.writer.add_scalar("throughput/samples_per_s", line.samples_per_s, step)
            self.writer.add_scalar("sparsity/masks", line.sparsity, step)
            self.writer.add_scalar("sparsity/weights", self._weight_sparsity(run), step)
        else:
            for metric, value in line.metrics.items():
                self.writer.add_scalar(f"{line.split}/{metric}", value, step)
        self.writer.flush()  # once per log interval: a killed run's curve reaches its last interval

    def state_dict(self) -> dict[str, Any]:
        """Nothing to keep; called at every checkpoint, so the events before it reach the disk."""
        if self.writer is not None:
            self.writer.flush()
        return {}

    def on_finish(self, run: RunView) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _weight_sparsity(self, run: RunView) -> float:
        """Exact zeros in the tensors DSD prunes: the engine's, or (a run that never prunes) the
        same selection, so every method's curve counts the same weights."""
        if self._tensors is None:
            if run.engine is not None:
                self._tensors = [t.param for t in run.engine.tensors]
            else:
                self._tensors = [t.param for t in select_prunable(run.model, **run.selection)]
        total = sum(t.numel() for t in self._tensors)
        zeros = sum(t.numel() - int(torch.count_nonzero(t.detach())) for t in self._tensors)
        return zeros / max(1, total)
