"""Where each run stands, read from its folder alone: ``dsd-suite status``.

Nothing here asks a scheduler or imports torch, so it works from any machine that mounts the
results, while the jobs run. A run is

- **done**: its ``done`` marker (with its final primary metric);
- **running**: a live process holds its lock (who, which job, its last logged step and metric),
  or its job has started and not yet taken the lock (preparing, or waiting for its baseline);
- **waiting**: its job is queued (or requeued after a preemption), or, with no job, its baseline
  is not done; it says on what;
- **failed**: its last job failed, was killed, or left a lock whose holder is gone; with the last
  lines of the job's log and where the rest is;
- **stopped**: interrupted (Ctrl-C, ``scancel``) or left unfinished by a ``run`` command, with
  its checkpoint kept: the same command, or a launch, resumes it;
- **not started**: nothing of it exists yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from dsd.records.jobs import FAILED, FINISHED, INTERRUPTED, QUEUED, REQUEUED, RUNNING, JobRecord, latest_job
from dsd.records.layout import ResultsFolder, RunFolder, job_log
from dsd.records.lock import DEFAULT_STALE_S, read_lock
from dsd.records.metrics import EvalLine, TrainLine, read_lines
from dsd.records.run import load_record, load_result

DONE, RUNNING_, WAITING, FAILED_, STOPPED, NOT_STARTED = (
    "done", "running", "waiting", "failed", "stopped", "not started"
)  # fmt: skip
#: The order the summary counts states in.
STATES = (DONE, RUNNING_, WAITING, FAILED_, STOPPED, NOT_STARTED)
#: Lines of a failed job's log that ``status`` shows.
LOG_TAIL = 6


@dataclass
class RunStatus:
    """One run's state, what it is doing or waiting on, and its log when it failed."""

    name: str  # the run folder, relative to the results folder
    state: str
    detail: str = ""
    log: Path | None = None
    log_tail: list[str] = field(default_factory=list)


def run_status(
    folder: RunFolder,
    results: ResultsFolder,
    baseline: RunFolder | None = None,
    stale_after_s: float = DEFAULT_STALE_S,
    gone: frozenset[str] = frozenset(),
) -> RunStatus:
    """The state of the run in ``folder`` (``baseline``: the run it waits for, when known; else
    read from its records). ``gone``: jobs known to have left their queue although their record
    says queued or running (``dsd.run.launch.queue`` asks the scheduler; a caller that cannot
    leaves it empty and the records are taken at their word)."""
    name = results.relative(folder)
    if folder.is_done:
        return RunStatus(name, DONE, _final(folder))
    lock = read_lock(folder, stale_after_s)
    job = latest_job(folder.jobs)
    if lock is not None and lock.alive:
        holder = lock.holder.describe() if lock.holder is not None else "a process"
        return RunStatus(
            name, RUNNING_, f"{holder}, heartbeat {lock.heartbeat_age_s:.0f} s ago; {_last_line(folder)}"
        )
    baseline = baseline if baseline is not None else _baseline_of(folder, results, job)
    if lock is not None:  # its holder is gone
        who = lock.holder.describe() if lock.holder is not None else "a process"
        return _failed(name, folder, job, f"its lock holder ({who}) is gone: {lock.gone}; {_resumes(folder)}")
    if job is not None and job.job_id in gone and job.state in (QUEUED, REQUEUED):
        why = "cancelled, its baseline's job failed, or its local launcher stopped"
        return _failed(name, folder, job, f"job {job.job_id} left the queue without starting ({why})")
    if job is not None and job.job_id in gone and job.state == RUNNING:
        return _failed(name, folder, job, f"job {job.job_id} ended without saying how (killed?)")
    if job is not None:
        return _from_job(name, folder, job, baseline, results, stale_after_s)
    if folder.config.is_file():
        return RunStatus(name, STOPPED, f"unfinished, no process trains it; {_resumes(folder)}")
    if baseline is not None and not baseline.is_done:
        return RunStatus(name, WAITING, f"for its baseline {results.relative(baseline)} (not done)")
    return RunStatus(name, NOT_STARTED)


def _from_job(
    name: str,
    folder: RunFolder,
    job: JobRecord,
    baseline: RunFolder | None,
    results: ResultsFolder,
    stale: float,
) -> RunStatus:
    """A launched run that no live process holds: what its last job says."""
    if job.state in (QUEUED, REQUEUED):
        what = "requeued (resumes from its checkpoint)" if job.state == REQUEUED else "queued"
        waits = ""
        if baseline is not None and not baseline.is_done:
            waits = f", waits for its baseline {results.relative(baseline)} ({_state_word(baseline)})"
        return RunStatus(name, WAITING, f"job {job.job_id} {what}{waits}")
    if job.state == RUNNING:
        if time.time() - max(job.started, _mtime(folder.job_log(job.job_id))) < stale:
            waits = (
                f"; its baseline {results.relative(baseline)} is not done"
                if baseline and not baseline.is_done
                else ""
            )
            return RunStatus(
                name, RUNNING_, f"job {job.job_id} on {job.host} started, not training yet{waits}"
            )
        return _failed(name, folder, job, f"job {job.job_id} started on {job.host} and went silent (killed?)")
    if job.state == INTERRUPTED:
        return RunStatus(
            name, STOPPED, f"job {job.job_id} {job.note or 'interrupted'}", folder.job_log(job.job_id)
        )
    if job.state == FAILED:
        return _failed(name, folder, job, f"job {job.job_id} failed: {job.note}")
    verb = "finished" if job.state == FINISHED else "left it to another process"
    return _failed(name, folder, job, f"job {job.job_id} {verb} but the run is not done")


def _state_word(folder: RunFolder) -> str:
    """A baseline's state in a word or two, for the runs that wait for it."""
    if folder.is_done:
        return "done"
    lock = read_lock(folder)
    if lock is not None:
        return "training" if lock.alive else "its holder is gone"
    job = latest_job(folder.jobs)
    return f"job {job.job_id} {job.state}" if job is not None else "not started"


def _failed(name: str, folder: RunFolder, job: JobRecord | None, detail: str) -> RunStatus:
    log = folder.job_log(job.job_id) if job is not None else None
    return RunStatus(name, FAILED_, detail, log, tail(log) if log is not None else [])


def tail(path: Path, lines: int = LOG_TAIL) -> list[str]:
    """The last non-empty lines of a log (progress bars' carriage returns folded)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    kept = [line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines()]
    return [line for line in kept if line.strip()][-lines:]


def _baseline_of(folder: RunFolder, results: ResultsFolder, job: JobRecord | None) -> RunFolder | None:
    """The run a branch waits for, from its record or its job's."""
    link = job.waits_for if job is not None and job.waits_for else ""
    if not link and folder.config.is_file():
        try:
            link = load_record(folder.path).baseline_run
        except ValueError:
            link = ""
    return RunFolder(results.root / link) if link else None


def _final(folder: RunFolder) -> str:
    """The run's final primary metric on its last split, and its length."""
    try:
        result = load_result(folder.path)
    except ValueError:
        return "(its result.json is unreadable)"
    split = result.splits[-1]
    value = result.final.get(split, {}).get(result.primary_metric)
    shown = f"{split} {result.primary_metric} {value:.4g}" if value is not None else ""
    return f"{shown}; {result.steps} steps in {result.wall_time_s:.0f} s".lstrip("; ")


def _last_line(folder: RunFolder) -> str:
    """The run's last logged step with its loss, and its last evaluation."""
    try:
        lines = read_lines(folder.metrics) if folder.metrics.is_file() else []
    except ValueError:
        lines = []
    if not lines:
        return "nothing logged yet"
    last = lines[-1]
    shown = f"step {last.step} ({last.phase_label})"
    loss = next((line for line in reversed(lines) if isinstance(line, TrainLine)), None)
    if loss is not None:
        shown += f", loss {loss.train_loss:.4g}"
    evaluation = next((line for line in reversed(lines) if isinstance(line, EvalLine)), None)
    if evaluation is not None:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in evaluation.metrics.items())
        shown += f"; {evaluation.split} {metrics} at step {evaluation.step}"
    return shown


def _resumes(folder: RunFolder) -> str:
    """Where a relaunch resumes it."""
    if folder.checkpoint.is_file():
        return "launching it again resumes from its checkpoint"
    return "launching it again starts it afresh (no checkpoint)"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def study_jobs(results: ResultsFolder) -> JobRecord | None:
    """The study's last closing job (tables, figures, the report page), if one was launched."""
    return latest_job(results.jobs)


def closing_log(results: ResultsFolder, job: JobRecord) -> Path:
    return job_log(results.jobs, job.job_id)
