"""A run folder's ``lock``: who trains the run now, and whether that holder is still there.

The file exists only while a process trains the run. It names its holder (host, process id, the
SLURM job when there is one, when it took the run, a token unique to that holding) and is kept
fresh by the holder's heartbeat, which touches it every few seconds: its modification time is
the last sign of life. Taking, refreshing and releasing it is ``dsd.run.lock``; this module only
reads it, so ``dsd-suite status`` and a login node can tell who trains what without torch.

A holder is gone when its process is dead on this very host, when it is an earlier start of
this same SLURM job (a requeued job starts again under its id, its restart count one up), or
when its heartbeat is older than the stale timeout (another host, whose processes this one
cannot see).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dsd.records.layout import RunFolder

#: How long a holder's heartbeat may be silent before another process takes the run over. Far
#: longer than the beat itself (``dsd.run.lock``) and than an NFS client's attribute cache (up to
#: a minute), so a slow file system never passes for a dead holder.
DEFAULT_STALE_S = 600.0


def this_host() -> str:
    """The host name as locks record it (the short name: clusters mix short and long ones)."""
    return socket.gethostname().split(".")[0]


def this_job() -> str:
    """The job this process belongs to: SLURM's job id, or the local launcher's, or ""."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("DSD_JOB_ID", "")


def this_job_start() -> int:
    """Which start of its job this process is: SLURM counts a job's requeues (0 at first)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run."""

    host: str
    pid: int
    job_id: str
    started: float  # when it took the run (seconds since the epoch)
    token: str  # unique to this holding: a holder that finds another token has lost the run
    job_start: int = 0  # which start of the job (SLURM_RESTART_COUNT): a requeue starts it again

    def describe(self) -> str:
        """``host vm pid 4242 (job 17) since 12:03:44``: how messages name a holder."""
        job = f" (job {self.job_id})" if self.job_id else ""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"host {self.host} pid {self.pid}{job} since {since}"

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    @classmethod
    def from_text(cls, text: str) -> LockHolder:
        """A lock's content; ``ValueError`` when it is not one."""
        try:
            payload = json.loads(text)
            return cls(str(payload["host"]), int(payload["pid"]), str(payload["job_id"]),
                       float(payload["started"]), str(payload["token"]),
                       int(payload.get("job_start", 0)))  # fmt: skip
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"not a run lock ({err})") from None


@dataclass(frozen=True)
class LockState:
    """A lock as read now: its holder, the age of its last heartbeat, and why the holder is
    gone ("" while it is alive)."""

    holder: LockHolder | None  # None: the file is there but unreadable (being written, or torn)
    heartbeat_age_s: float
    gone: str

    @property
    def alive(self) -> bool:
        return not self.gone


def read_lock(folder: RunFolder, stale_after_s: float = DEFAULT_STALE_S) -> LockState | None:
    """The lock of ``folder`` and whether its holder is alive; None when no process holds it."""
    path = folder.lock
    try:
        age = time.time() - path.stat().st_mtime
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        holder = LockHolder.from_text(text)
    except ValueError:
        # Locks are written whole before they appear (``dsd.run.lock``), so this is a torn file
        # from a crashed writer or a foreign one: judged by its age alone.
        gone = f"unreadable lock, untouched for {age:.0f} s" if age > stale_after_s else ""
        return LockState(None, age, gone)
    return LockState(holder, age, holder_gone(holder, age, stale_after_s))


def holder_gone(holder: LockHolder, heartbeat_age_s: float, stale_after_s: float = DEFAULT_STALE_S) -> str:
    """Why ``holder`` no longer trains its run, or "" when it may still."""
    if holder.host == this_host() and not _pid_alive(holder.pid):
        return f"its process {holder.pid} on {holder.host} is dead"
    if holder.job_id and holder.job_id == this_job() and holder.job_start < this_job_start():
        return f"it is an earlier start of this job ({holder.job_id}), requeued since"
    if heartbeat_age_s > stale_after_s:
        limit = f"stale after {stale_after_s / 60:g} min"
        return f"its heartbeat stopped {heartbeat_age_s / 60:.1f} min ago ({limit})"
    return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def lock_path(folder: Path) -> Path:
    """The lock file of a run folder given as a path."""
    return RunFolder(Path(folder)).lock
