"""One process at a time trains a run folder: its lock, taken by an exclusive create and kept
alive by a heartbeat.

Clusters keep results on NFS or Lustre, where ``flock`` may be a no-op or local to one client.
What those file systems do guarantee is that creating a name is atomic: of two processes that
``link(2)`` a file to the same name, one succeeds and the other gets ``EEXIST``, whichever client
each runs on. So the lock is taken by writing the holder's record (``dsd.records.lock``) to a
file of its own, then linking it to ``<run>/lock``: the lock appears whole or not at all. (On
NFS a lost reply can report a link that succeeded as failed; the temp file's link count tells.)

While the run trains, a thread touches the lock every ``heartbeat_s`` seconds; a holder that is
gone (its process dead on this host, an earlier start of this SLURM job, or a heartbeat older
than the stale timeout) is taken over, with a message naming it. A takeover moves the stale
lock aside by one atomic rename, and checks that what it moved is the lock it judged stale
before it deletes it; if it moved a fresh one (another process took the run in between), it
links that back. The heartbeat also reads the token each time: a holder whose lock was taken
over (it was frozen longer than the timeout) learns it at its next beat (``lost``) and stops.

Cost: taking and releasing a lock is a few file operations, and a beat one ``stat``-sized read
and one ``utime``; ``python -m dsd.bench.lock`` measures them on any folder.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from dsd.records import RunFolder
from dsd.records.lock import (
    DEFAULT_STALE_S,
    LockHolder,
    LockState,
    read_lock,
    this_host,
    this_job,
    this_job_start,
)

#: A beat at most this often; by default a twentieth of the stale timeout (30 s for 10 min).
MAX_HEARTBEAT_S = 30.0


def default_heartbeat(stale_after_s: float) -> float:
    """How often the holder touches its lock: often enough that a heartbeat a twentieth as old
    as the timeout is normal, never more often than once a second."""
    return max(1.0, min(MAX_HEARTBEAT_S, stale_after_s / 20))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class RunLock:
    """This process's hold on one run folder: ``acquire``, train, ``release`` (or ``with``)."""

    def __init__(
        self,
        folder: RunFolder,
        stale_after_s: float = DEFAULT_STALE_S,
        heartbeat_s: float | None = None,
        say: Callable[[str], None] = _say,
    ) -> None:
        self.folder = folder
        self.stale_after_s = stale_after_s
        self.heartbeat_s = default_heartbeat(stale_after_s) if heartbeat_s is None else heartbeat_s
        self.say = say
        self.holder: LockHolder | None = None  # ours, while held
        self.lost = ""  # why the run was taken from us while we held it
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.folder.lock

    # ------------------------------------------------------------------ taking the run
    def acquire(self) -> LockState | None:
        """Take the run: None once it is ours (a gone holder's lock taken over, with a message);
        otherwise the state of the live lock that holds it."""
        self.folder.path.mkdir(parents=True, exist_ok=True)
        holder = LockHolder(
            this_host(), os.getpid(), this_job(), time.time(), uuid.uuid4().hex, this_job_start()
        )
        for _ in range(5):
            if self._create(holder):
                self.holder, self.lost = holder, ""
                self._start_heartbeat()
                return None
            state = read_lock(self.folder, self.stale_after_s)
            if state is None:
                continue  # released between our create and our read: try again
            if state.alive:
                return state
            if self._remove_stale(state):
                who = state.holder.describe() if state.holder is not None else "an unreadable lock"
                self.say(f"taking over {self.folder.path}: its lock holder ({who}) is gone: {state.gone}")
        # Five rounds lost to other processes taking the run in between: one of them holds it.
        return read_lock(self.folder, self.stale_after_s) or LockState(None, 0.0, "")

    def _create(self, holder: LockHolder) -> bool:
        """Link a complete record to the lock's name; False when the name exists."""
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(holder.to_text())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            except OSError:
                return os.stat(tmp).st_nlink == 2  # NFS: the link happened, its reply was lost
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _remove_stale(self, state: LockState) -> bool:
        """Move the stale lock aside and delete it, unless what moved is a fresh one (then put it
        back). True when the stale lock is gone."""
        aside = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False  # another process took it over first
        try:
            moved = LockHolder.from_text(aside.read_text(encoding="utf-8"))
        except ValueError:
            moved = None
        if state.holder is not None and (moved is None or moved.token != state.holder.token):
            # A fresh lock taken in between: its holder keeps it. If the run was taken yet
            # again meanwhile, the moved holder's heartbeat finds its token gone and stops.
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    # ------------------------------------------------------------------ keeping it
    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lock {self.folder.path}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.beat()
            if self.lost:
                return

    def beat(self) -> None:
        """Check that the lock is still ours and touch it (the heartbeat's one step)."""
        if self.holder is None:
            return
        current = self._current()
        if current is None or current.token != self.holder.token:
            who = current.describe() if current is not None else "no one"
            self.lost = f"the lock of {self.folder.path} was taken over (now held by {who})"
            return
        os.utime(self.path)
        self.beats += 1

    # ------------------------------------------------------------------ letting go
    def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.holder is None:
            return
        current = self._current()
        if current is not None and current.token == self.holder.token:
            self.path.unlink(missing_ok=True)
        self.holder = None

    def _current(self) -> LockHolder | None:
        """Who holds the lock now, by its content (None: no lock, or an unreadable one)."""
        try:
            return LockHolder.from_text(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def __enter__(self) -> RunLock:
        state = self.acquire()
        if state is not None:
            holder = state.holder.describe() if state.holder is not None else "another process"
            raise RunHeldError(f"{self.folder.path} is being trained by {holder}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunHeldError(RuntimeError):
    """The run is held by a live process (``with RunLock(...)`` could not take it)."""
