"""What the study adds to the loop without the loop knowing about it.

A hook sees the run at its turning points (the run starts or resumes, a phase starts, a line is
logged, a phase ends, the run finishes) through a narrow view of it (``RunView``: where it
stands, its model and engine, its folder and phases), and can keep state that the loop saves in
every checkpoint and restores on resume. The Figure-4 weight histograms of a DSD run are one
(``dsd.run.training.histograms.HistogramCapture``); TensorBoard's curves are another
(``dsd.run.training.tensorboard.TensorBoardHook``). Hooks run on every rank; only rank 0 writes
files (``view.is_main``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from dsd.records import RunFolder
from dsd.records.metrics import LogLine
from dsd.schedule import Phase, Schedule

if TYPE_CHECKING:
    from torch import nn

    from dsd.engine import DSD
    from dsd.run.training.state import Position

#: The moments of a phase start a hook hears about, in the order they happen (``entered``: every
#: phase, pruned or not, once the engine is done with it).
PHASE_EVENTS = ("redensed", "before_prune", "pruned", "entered")


@dataclass
class RunView:
    """What a hook sees of a run."""

    folder: RunFolder
    schedule: Schedule  # the run's phases
    first_phase: int  # the recipe index of ``schedule.phases[0]`` (a branch starts at 1)
    start_step: int  # the optimizer steps of the run this one branches from (0 for a baseline)
    position: Position  # where the run stands now (updated by the loop as it goes)
    model: nn.Module  # the task's own module, as evaluated and saved
    engine: DSD | None  # None for a run that never prunes
    selection: dict[str, Any]  # the engine's selection arguments (``include=``, ``exclude=``, ...)
    histogram_tensor: Callable[[Sequence[str]], str]  # the task's choice among pruned tensors
    is_main: bool
    resumed: bool

    @property
    def phase(self) -> Phase:
        """The phase the run is in (its last one once every phase is done)."""
        return self.schedule.phases[min(self.position.phase, len(self.schedule.phases) - 1)]

    @property
    def phase_index(self) -> int:
        """The current phase's index in the study's recipe."""
        return self.first_phase + min(self.position.phase, len(self.schedule.phases) - 1)


class LoopHook:
    """Base class: every method is optional. ``name`` keys the hook's state in checkpoints."""

    name: ClassVar[str] = "hook"

    def on_start(self, run: RunView) -> None:
        """The run starts, or resumes (``run.resumed``) from ``run.position``."""

    def on_phase_start(self, run: RunView, event: str) -> None:
        """``event``: ``redensed`` (the mask was just dropped), ``before_prune``, ``pruned``,
        ``entered`` (every phase, last)."""

    def on_log(self, run: RunView, line: LogLine) -> None:
        """A line was logged (the ``metrics.jsonl`` line, on every rank)."""

    def on_phase_end(self, run: RunView) -> None:
        """The phase's last step is done (its evaluation follows)."""

    def on_finish(self, run: RunView) -> None:
        """The run is complete; write files here (rank 0)."""

    def state_dict(self) -> dict[str, Any]:
        """What to keep in checkpoints (plain containers and tensors only); called at every
        checkpoint, just before it is written."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
