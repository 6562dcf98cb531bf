"""What the study adds to the loop without the loop knowing about it.

A hook sees the run at its turning points (the run starts or resumes, a phase starts, a line is
logged, a phase ends, the run finishes) and can keep state that the loop saves in every
checkpoint and restores on resume. The Figure-4 weight histograms of a DSD run are one
(``dsd.run.training.histograms.HistogramCapture``); TensorBoard's curves are another
(``dsd.run.training.tensorboard.TensorBoardHook``); so is anything else that watches a run. Hooks run on
every rank; only rank 0 writes files (``loop.info.is_main``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from dsd.run.training.loop import RunLoop

#: The moments of a phase start a hook hears about, in the order they happen (``entered``: every
#: phase, pruned or not, once the engine is done with it).
PHASE_EVENTS = ("redensed", "before_prune", "pruned", "entered")


class LoopHook:
    """Base class: every method is optional. ``name`` keys the hook's state in checkpoints."""

    name: ClassVar[str] = "hook"

    def on_start(self, loop: RunLoop) -> None:
        """The run starts, or resumes (``loop.resumed``) from ``loop.pos``; its parts are built."""

    def on_phase_start(self, loop: RunLoop, event: str) -> None:
        """``event``: ``redensed`` (the mask was just dropped), ``before_prune``, ``pruned``,
        ``entered`` (every phase, last)."""

    def on_log(self, loop: RunLoop, line: dict[str, Any]) -> None:
        """A line was logged (the same dict as the ``metrics.jsonl`` line, on every rank)."""

    def on_phase_end(self, loop: RunLoop) -> None:
        """The phase's last step is done (its evaluation follows)."""

    def on_finish(self, loop: RunLoop) -> None:
        """The run is complete; write files here (rank 0)."""

    def state_dict(self) -> dict[str, Any]:
        """What to keep in checkpoints (plain containers and tensors only); called at every
        checkpoint, just before it is written."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
