"""SIGINT and SIGTERM ask a run to stop at the next step, after a checkpoint.

A cluster's preemption notice (SIGTERM) or a Ctrl-C then costs nothing: the loop checkpoints at
the next step and the same command resumes. A second Ctrl-C aborts at once, for the impatient.
Handlers are installed only in the main thread (Python refuses them elsewhere) and the previous
ones are put back when the run ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dsd.collective import any_rank


@dataclass
class StopRequest:
    """Set by the signal handler, read by the loop between steps."""

    requested: bool = False

    def agreed(self, step: int, log_every: int, distributed: bool) -> bool:
        """Whether to stop now: at once alone; with several ranks, at a log interval where they
        all agree (a rank that stopped alone would leave the others waiting in a collective)."""
        if not distributed:
            return self.requested
        if step % log_every:
            return False
        return any_rank(self.requested)


@contextlib.contextmanager
def stop_on_signals(say: Callable[[str], None]) -> Iterator[StopRequest]:
    """Within the block, SIGINT/SIGTERM set ``requested``; a second SIGINT raises KeyboardInterrupt."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum: int, frame: Any) -> None:
        if request.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.requested = True
        say(f"{signal.Signals(signum).name}: checkpointing at the next step ...")

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
