"""Which run of a study this process trains next, holding each run's lock while it does.

Several processes may walk one study at once: two ``dsd-suite run`` commands on the same
``--results``, a requeued job beside a resubmitted one, the jobs of a launched study, two studies
sharing a baseline. Each run is trained by one of them only: before a run, the walk takes its
lock (``dsd.run.lock``); a run another live process holds is left to it, with a line that says
who holds it, and the walk moves on to the next run it can do. A run whose baseline is not done
yet (held elsewhere, or unfinished) is not doable yet either. When nothing is left that this
process can do, the walk ends (or, with ``--wait-for-locks``, waits for the holders and goes on).

``--only-run`` (what a launched job runs) narrows the walk to one run of the graph: it is
skipped when done or held, and waits while its baseline is held by a live process (the job was
scheduled after the baseline's own job, which may have left the baseline to another holder).

Under DDP rank 0 decides and holds the lock for every rank; its decision is broadcast, so all
ranks train the same run or none. The lock's heartbeat tells the loop, through ``LockGuard``,
when the run was taken over (this process was frozen past the stale timeout): then every rank
stops, writing nothing more.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from dsd.collective import any_rank
from dsd.errors import ConfigError, UserError
from dsd.records import RunFolder
from dsd.records.lock import read_lock
from dsd.records.metrics import LogLine
from dsd.run import dist
from dsd.run.lock import RunLock
from dsd.run.settings import RunConfig
from dsd.run.study import PlannedRun, Study
from dsd.run.training.hooks import LoopHook, RunView

#: Seconds between looks at the runs held elsewhere, while waiting for them.
POLL_S = 2.0


class LockLostError(UserError, RuntimeError):
    """Another process took the run over while this one trained it (its heartbeat had stopped
    past the stale timeout); this one stops without writing anything more."""


class BaselineNotDoneError(UserError, RuntimeError):
    """A run's baseline is neither done nor trained by anyone: the run cannot start."""


@dataclass(frozen=True)
class Step:
    """What rank 0 decided: ``train`` ``key``, ``wait``, ``stop`` or ``fail`` (with ``note``)."""

    kind: str
    key: str = ""
    note: str = ""


@dataclass
class WalkOutcome:
    """What the walk did: the runs it trained and those it left (key -> why)."""

    requested: list[RunFolder]
    trained: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)


class LockGuard(LoopHook):
    """Stops the loop on every rank at the first log line after the run's lock was lost."""

    name = "lock"

    def __init__(self, lock: RunLock | None) -> None:
        self.lock = lock  # rank 0's; None on the other ranks

    def on_log(self, run: RunView, line: LogLine) -> None:
        lost = self.lock.lost if self.lock is not None else ""
        if any_rank(bool(lost)):
            raise LockLostError(lost or "rank 0 lost the run's lock to another process; stopping")


class StudyWalk:
    """The runs of ``study`` this process trains, one at a time, each under its lock."""

    def __init__(
        self, study: Study, settings: RunConfig, info: dist.DistInfo, only: str = "", train: bool = True
    ) -> None:
        """``only``: the one run to train (its folder relative to the results folder); ``train``
        False: none at all (the walk ends at once; ``outcome`` still lists the study's runs)."""
        self.study, self.info = study, info
        self.wait = settings.wait_for_locks
        self.stale_after_s = settings.lock_stale_minutes * 60
        self.runs = study.runs if not only else [self._only(study, only)]
        self.runs = self.runs if train else []
        self.only = bool(only)
        self.by_key = {run.key: run for run in study.runs}
        shown = self.runs if only else study.requested()
        self.outcome = WalkOutcome([r.folder for r in shown if r.folder is not None])
        self.lock: RunLock | None = None
        self._said: set[str] = set()

    @staticmethod
    def _only(study: Study, only: str) -> PlannedRun:
        for run in study.runs:
            if run.folder is not None and study.results.relative(run.folder) == only:
                return run
        known = ", ".join(study.results.relative(r.folder) for r in study.runs if r.folder is not None)
        raise ConfigError(f"--only-run {only} is no run of this study; its runs: {known}")

    # ------------------------------------------------------------------ the walk
    def next_run(self) -> PlannedRun | None:
        """The next run to train, its lock taken (rank 0); None when the walk is over."""
        while True:
            step = dist.broadcast_object(self._decide() if self.info.is_main else None)
            if step.kind == "train":
                return self.by_key[step.key]
            if step.kind == "fail":
                raise BaselineNotDoneError(step.note)
            if step.kind == "stop":
                return None
            time.sleep(POLL_S)

    def finished(self) -> list[PlannedRun]:
        """The runs of the walk that are done already (whose records may still need a look)."""
        return [run for run in self.runs if run.is_done]

    def claim(self, run: PlannedRun) -> bool:
        """Take ``run``'s lock outside the walk's order (rank 0 decides for every rank); False,
        with a line, when a live process holds it. Release it with ``holding``."""
        return bool(dist.broadcast_object(self._take(run) if self.info.is_main else None))

    @contextlib.contextmanager
    def holding(self, run: PlannedRun) -> Iterator[LockGuard]:
        """Train ``run`` inside: the lock is released however the training ends."""
        try:
            yield LockGuard(self.lock)
            self.outcome.trained.append(run.key)
            self.outcome.left.pop(run.key, None)
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    # ------------------------------------------------------------------ rank 0's decision
    def _decide(self) -> Step:
        """Take the first doable run's lock, else say why nothing is doable now."""
        if self.only and self.runs:
            return self._decide_one(self.runs[0])
        waiting_on_held = False
        for run in self.runs:
            if run.is_done or run.key in self.outcome.trained:
                self.outcome.left.pop(run.key, None)
                continue
            if run.baseline is not None and not run.baseline.is_done:
                why, held = self._baseline_wait(run.baseline)
                self._note(run, why, self.wait and held)
                waiting_on_held |= held
                continue
            if self._take(run, self.wait):
                return Step("train", run.key)
            waiting_on_held = True
        return Step("wait") if self.wait and waiting_on_held else Step("stop")

    def _decide_one(self, run: PlannedRun) -> Step:
        """``--only-run``: train it unless done or held; wait while a live process trains its
        baseline; fail when no one does."""
        if run.is_done or run.key in self.outcome.trained:
            return Step("stop")
        if run.baseline is not None and not run.baseline.is_done:
            why, held = self._baseline_wait(run.baseline)
            if not held:
                return Step("fail", note=f"{self._name(run)} needs its baseline {self._name(run.baseline)}, "
                            "which is not done and which no process trains (did its job fail? "
                            "`dsd-suite status` says); launch the study again")  # fmt: skip
            self._note(run, why, waiting=True)
            return Step("wait")
        if self._take(run, self.wait):
            return Step("train", run.key)
        return Step("wait") if self.wait else Step("stop")

    def _take(self, run: PlannedRun, waiting: bool = False) -> bool:
        """Take ``run``'s lock; when a live process holds it, say so and leave the run to it (or,
        ``waiting``, say that this process waits for it)."""
        lock = RunLock(run.folder, self.stale_after_s)
        state = lock.acquire()
        if state is None:
            self.lock = lock
            return True
        who = state.holder.describe() if state.holder is not None else "another process"
        self._note(run, f"is being trained by {who}", waiting)
        return False

    def _baseline_wait(self, baseline: PlannedRun) -> tuple[str, bool]:
        """Why a branch cannot start yet, and whether a live process trains its baseline."""
        state = read_lock(baseline.folder, self.stale_after_s) if baseline.folder is not None else None
        if state is not None and state.alive:
            who = state.holder.describe() if state.holder is not None else "another process"
            return f"waits for its baseline {self._name(baseline)}, trained by {who}", True
        return f"waits for its baseline {self._name(baseline)}, not done yet", False

    def _note(self, run: PlannedRun, why: str, waiting: bool = False) -> None:
        """Remember why ``run`` is left, and say it once, with what this process does about it."""
        self.outcome.left[run.key] = why
        line = f"{self._name(run)} {why}"
        if line not in self._said:
            self._said.add(line)
            action = "waiting" if waiting else ("leaving it to its holder" if self.only else "moving on")
            print(f"{line}: {action}", file=sys.stderr, flush=True)

    def _name(self, run: PlannedRun) -> str:
        return self.study.results.relative(run.folder) if run.folder is not None else run.key
