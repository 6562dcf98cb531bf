"""Which launched jobs are still alive: SLURM's queue, or the local launcher's process.

A job's record says ``queued`` until the job starts and says otherwise, so a job that never
starts (cancelled while pending: ``scancel``, or SLURM's ``--kill-on-invalid-dep`` after its
baseline's job failed) or whose launcher died keeps saying ``queued``. The launch asks here
before it leaves a queued run alone, and ``dsd-suite status`` before it reports one as waiting.
Without ``squeue`` on the PATH (a machine outside the cluster) SLURM's jobs are taken at their
record's word. Needs neither torch nor submitit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable

from dsd.records.jobs import QUEUED, REQUEUED, RUNNING, JobRecord
from dsd.records.lock import this_host

#: The record states in which a job may still be alive.
MAYBE_ALIVE = (QUEUED, RUNNING, REQUEUED)
#: The SLURM states of a job that is not over.
SLURM_ALIVE = ("PENDING", "RUNNING", "CONFIGURING", "REQUEUED", "SUSPENDED", "RESIZING", "COMPLETING")


def slurm_alive(job_ids: Iterable[str]) -> set[str]:
    """Which of ``job_ids`` SLURM still holds, pending or running (``squeue``)."""
    ids = sorted(set(job_ids))
    if not ids:
        return set()
    done = subprocess.run(["squeue", "--noheader", "--jobs", ",".join(ids), "--format=%i %T"],
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    alive = set()
    for line in done.stdout.splitlines():
        job, _, state = line.strip().partition(" ")
        if state in SLURM_ALIVE:
            alive.add(job)
    return alive


def gone_jobs(records: Iterable[JobRecord]) -> set[str]:
    """The jobs among ``records`` that say they are queued or running but are not any more."""
    waiting = [r for r in records if r.state in MAYBE_ALIVE]
    gone = set()
    slurm = [r.job_id for r in waiting if r.launcher == "slurm"]
    if slurm and shutil.which("squeue") is not None:
        gone |= set(slurm) - slurm_alive(slurm)
    for record in waiting:  # a local job not started yet starts only while its launcher lives
        local = record.launcher == "local" and record.state == QUEUED and record.launcher_host == this_host()
        if local and not _alive(record.launcher_pid):
            gone.add(record.job_id)
    return gone


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not recorded: take the record at its word
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
