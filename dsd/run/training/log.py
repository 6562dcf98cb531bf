"""What a run says while it trains: console lines, ``metrics.jsonl``, the progress bar, and the
loss checks in between.

Step losses stay on the device until a log interval ends, so the loop syncs with the GPU once per
interval instead of once per step; then every loss of the interval is checked, and the first
NaN or infinite one stops the run naming its phase, epoch and step. Only rank 0 writes or
prints; the other ranks keep the same bookkeeping so that their checks agree.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from dsd.errors import UserError
from dsd.records import RunFolder
from dsd.records.metrics import LogLine, append_line


class NonFiniteLossError(UserError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept. The user's to fix (a
    learning rate, clipping, the data), so the command line prints it without a traceback."""


class NonFiniteWeightsError(UserError, RuntimeError):
    """The weights hold NaN or inf at a phase's end; the run is not recorded as finished and the
    last good checkpoint is kept (printed without a traceback, like a diverged loss)."""


def first_non_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor of ``state`` holding NaN or inf, or None.
    One reduction per tensor and a single sync for all of them."""
    names = [name for name, value in state.items() if torch.is_floating_point(value)]
    if not names:
        return None
    finite = torch.stack([torch.isfinite(state[name]).all() for name in names]).cpu().tolist()
    return next((name for name, ok in zip(names, finite, strict=True) if not ok), None)


def check_weights(state: dict[str, torch.Tensor], where: str, folder: Path) -> None:
    """Raise ``NonFiniteWeightsError`` naming ``where`` and the first bad tensor, if any."""
    bad = first_non_finite(state)
    if bad is None:
        return
    values = state[bad]
    count = int((~torch.isfinite(values)).sum())
    raise NonFiniteWeightsError(
        f"the weights are not finite at the end of phase {where}: {bad} holds {count:,} NaN/inf of "
        f"{values.numel():,} values; the run is not recorded as finished and its last good checkpoint is "
        f"kept in {folder}. Lower the learning rate (--recipe), clip gradients (--grad-clip), or check the "
        "optimizer's settings and the data."
    )


class LossTracker:
    """The step losses of the current log interval."""

    def __init__(self, checked: list[float] | None = None) -> None:
        self.on_device: list[torch.Tensor] = []
        self.checked: list[float] = list(checked or [])  # brought to the host, finite

    def add(self, loss: torch.Tensor) -> None:
        self.on_device.append(loss.detach())

    def check(self, step: int, where: str, batches_per_epoch: int, folder: Path) -> None:
        """Bring the losses to the host (one sync) and raise ``NonFiniteLossError`` at the first
        NaN or infinite one. ``step``: the step of the last loss added; ``where``: the phase."""
        if not self.on_device:
            return
        values = torch.stack(self.on_device).float().cpu().tolist()
        self.on_device = []
        first = step - len(values) + 1
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                bad = first + offset
                raise NonFiniteLossError(
                    f"loss is {value} at phase {where}, epoch {bad / batches_per_epoch:.2f}, step {bad}; "
                    f"the last good checkpoint is kept in {folder}. Lower the learning rate (--recipe), "
                    "clip gradients (--grad-clip), or check the data."
                )
        self.checked.extend(values)

    def take_mean(self) -> float | None:
        """The mean of the checked losses since the last call, or None if there are none."""
        if not self.checked:
            return None
        mean = sum(self.checked) / len(self.checked)
        self.checked = []
        return mean


class RunLog:
    """The console, ``metrics.jsonl`` and the progress bar of one run."""

    def __init__(self, folder: RunFolder, prefix: str, is_main: bool, progress: bool | None) -> None:
        self.folder, self.prefix, self.is_main = folder, prefix, is_main
        self.show_bar = is_main and (progress if progress is not None else sys.stderr.isatty())
        self.bar: tqdm = tqdm(disable=True)
        self._tick = (time.perf_counter(), 0)  # (time, samples) at the last throughput reading

    def say(self, message: str) -> None:
        if self.is_main:
            tqdm.write(f"{self.prefix} {message}", file=sys.stderr)

    def write(self, line: LogLine) -> None:
        """One line of ``metrics.jsonl`` (rank 0)."""
        if self.is_main:
            append_line(self.folder.metrics, line)

    def throughput(self, samples: int, world_size: int) -> float:
        """Samples per second over all ranks since the last call (``samples``: this rank's total)."""
        now = time.perf_counter()
        rate = (samples - self._tick[1]) * world_size / max(1e-9, now - self._tick[0])
        self._tick = (now, samples)
        return rate

    def status(self, text: str) -> None:
        self.bar.set_postfix_str(text, refresh=False)

    @contextlib.contextmanager
    def progress(self, total: int, initial: int, description: str) -> Iterator[tqdm]:
        """The progress bar over the run's steps (shown on rank 0 when stderr is a terminal)."""
        with tqdm(
            total=total,
            initial=initial,
            disable=not self.show_bar,
            unit="step",
            dynamic_ncols=True,
            desc=description,
            file=sys.stderr,
        ) as bar:
            self.bar = bar
            yield bar
