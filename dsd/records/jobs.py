"""``jobs/<job>.json``: one record per job that a launcher started for a run, kept beside its log.

The launcher writes it when it submits the job (``queued``, with the jobs it waits for); the job
rewrites it as it goes: ``running`` when it starts, then how it ended: ``finished`` (the run is
done), ``skipped`` (another process holds the run, or it was done already), ``requeued`` (a
preemption or time limit: the same job id comes back and resumes from the checkpoint),
``interrupted`` (cancelled: the checkpoint is kept) or ``failed`` (the error's last line in
``note``; the whole of it in the job's log). A job killed without notice never writes its end:
its record says ``running`` while no process holds the run's lock, which ``dsd-suite status``
reports as failed.

The records say what was launched; the run's own files (``done``, ``lock``, ``metrics.jsonl``)
say where the run stands. ``dsd-suite status`` reads both and nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from dsd.files import JSONFileError, atomic_write_json, read_json
from dsd.records.layout import job_record, job_records

QUEUED, RUNNING, REQUEUED = "queued", "running", "requeued"
FINISHED, SKIPPED, INTERRUPTED, FAILED = "finished", "skipped", "interrupted", "failed"
#: States after which the job's process is gone for good.
ENDED = (FINISHED, SKIPPED, INTERRUPTED, FAILED)
STATES = (QUEUED, RUNNING, REQUEUED, *ENDED)


@dataclass
class JobRecord:
    """One job of one run (or of the study's closing report)."""

    job_id: str
    launcher: str  # "slurm" or "local"
    run: str  # the run folder, relative to the results folder ("" for the report job)
    submitted: float  # seconds since the epoch
    after: list[str] = field(default_factory=list)  # the jobs it waits for
    waits_for: str = ""  # the run it waits for (its baseline), relative to the results folder
    state: str = QUEUED
    host: str = ""
    started: float = 0.0
    ended: float = 0.0
    note: str = ""  # how it ended, in a line
    log: str = ""  # its log's file name, beside this record
    launcher_host: str = ""  # where the launch ran (a local job lives only as long as its launcher)
    launcher_pid: int = 0
    entry: str = ""  # the command line it runs, as ``module:function`` taking an argv list
    commands: list[list[str]] = field(default_factory=list)  # the argv lists it runs, in order

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def write_job(jobs_folder: Path, record: JobRecord) -> Path:
    """Write (or rewrite) the record of ``record.job_id``; returns its path."""
    if record.state not in STATES:
        raise ValueError(f"job state {record.state!r} is none of {', '.join(STATES)}")
    path = job_record(jobs_folder, record.job_id)
    atomic_write_json(path, record.to_json())
    return path


def read_job(path: Path) -> JobRecord:
    """A job record; ``ValueError`` (``JSONFileError``) names the file when it is unusable."""
    payload = read_json(path)
    known = {f.name for f in dataclasses.fields(JobRecord)}
    try:
        return JobRecord(**{k: v for k, v in payload.items() if k in known})
    except (TypeError, AttributeError) as err:
        raise JSONFileError(path, f"not a job record ({err})") from None


def latest_job(jobs_folder: Path) -> JobRecord | None:
    """The most recently submitted job of a ``jobs/`` folder (unreadable records skipped)."""
    records = []
    for path in job_records(jobs_folder):
        try:
            records.append(read_job(path))
        except ValueError:
            continue
    return max(records, key=lambda r: (r.submitted, r.job_id), default=None)
