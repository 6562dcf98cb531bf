"""What a launch submits: one job per run of the study that needs one, in the graph's order.

Launching is safe to repeat, because each run is looked at before anything is submitted:

- **done**: reused, no job;
- **held**: a live process holds its lock (``dsd.records.lock``): not submitted again; the jobs
  of its branches wait for the holder's job when it is one;
- **queued**: its last job is still waiting or running (``dsd.run.launch.queue``): not submitted
  again; its branches' jobs wait for that job;
- anything else (new, failed, interrupted, a lock whose holder is gone): **submitted**, and its
  job resumes the run from its checkpoint where there is one.

A branch's job waits for its baseline's job (submitted now, queued before, or the holder's);
the launchers turn that into SLURM dependencies or into the order they start processes in.
Every job runs the same command line as the launch, narrowed to its run (``--only-run``), so it
rebuilds the same graph and trains exactly that run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dsd.records.jobs import QUEUED, JobRecord, latest_job
from dsd.records.layout import job_log
from dsd.records.lock import read_lock, this_host
from dsd.run.launch.queue import MAYBE_ALIVE
from dsd.run.study import PlannedRun, Study


@dataclass
class JobSpec:
    """One job to submit: its run, the commands it runs, and what it waits for."""

    run: PlannedRun
    name: str  # the run's folder, relative to the results folder
    commands: list[list[str]]
    waits_for: str = ""  # its baseline's folder while that is not done (relative, as ``name``)
    after_runs: list[str] = field(default_factory=list)  # runs of this launch whose jobs it waits for
    after_jobs: list[str] = field(default_factory=list)  # jobs already in the scheduler it waits for


@dataclass
class LaunchPlan:
    """Every run of the study, sorted by what the launch does with it."""

    jobs: list[JobSpec] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # run -> who holds it
    queued: dict[str, str] = field(default_factory=dict)  # run -> its job already in the scheduler

    def lines(self) -> list[str]:
        """What the launch found, one line per run it does not submit."""
        out = [f"  {name}: done, reused" for name in self.reused]
        out += [f"  {name}: {who}, not submitted again" for name, who in self.held.items()]
        out += [
            f"  {name}: job {job} already queued, not submitted again" for name, job in self.queued.items()
        ]
        return out


def plan_launch(
    study: Study,
    command: list[str],
    stale_after_s: float,
    gone: Callable[[Iterable[JobRecord]], set[str]],
) -> LaunchPlan:
    """The jobs to submit for ``study``. ``command``: the launch's own command line for the
    suite (``run <task> <flags>`` or ``sweep ...``), which each job narrows to its run;
    ``gone``: which of the given jobs, queued or running by their records, are not any more."""
    plan = LaunchPlan()
    waits_on: dict[str, str] = {}  # run key -> the job already in the scheduler its branches wait for
    last_jobs = {run.key: latest_job(run.folder.jobs) for run in study if run.folder is not None}
    maybe = [r for r in last_jobs.values() if r is not None and r.state in MAYBE_ALIVE]
    live = {r.job_id for r in maybe} - gone(maybe)
    for run in study:
        if run.folder is None:
            raise ValueError("a launched study needs its data's fingerprint: prepare the data first")
        name = study.results.relative(run.folder)
        if run.is_done:
            plan.reused.append(name)
            continue
        lock = read_lock(run.folder, stale_after_s)
        if lock is not None and lock.alive:
            holder = lock.holder
            plan.held[name] = f"held by {holder.describe()}" if holder is not None else "held"
            if holder is not None and holder.job_id:
                waits_on[run.key] = holder.job_id
            continue
        last = last_jobs[run.key]
        if last is not None and last.job_id in live:
            plan.queued[name] = last.job_id
            waits_on[run.key] = last.job_id
            continue
        spec = JobSpec(run, name, [[*command, "--only-run", name, "--no-tables"]])
        baseline = run.baseline
        if baseline is not None and not baseline.is_done:
            spec.waits_for = study.results.relative(baseline.folder)
            if baseline.key in waits_on:
                spec.after_jobs.append(waits_on[baseline.key])
            elif any(job.run.key == baseline.key for job in plan.jobs):
                spec.after_runs.append(baseline.key)
        plan.jobs.append(spec)
    return plan


def queued_record(spec: JobSpec, job_id: str, launcher: str, entry: str, after: list[str]) -> JobRecord:
    """The record a launcher writes as it submits ``spec`` as ``job_id``."""
    return JobRecord(job_id, launcher, spec.name, time.time(), after=after, waits_for=spec.waits_for,
                     state=QUEUED, log=job_log(spec.run.folder.jobs, job_id).name, entry=entry,
                     commands=spec.commands, launcher_host=this_host(), launcher_pid=os.getpid())  # fmt: skip


def closing_record(
    job_id: str, launcher: str, entry: str, commands: list[list[str]], after: list[str], jobs_folder: Path
) -> JobRecord:
    """The record of the study's closing job (tables, figures, the report page)."""
    return JobRecord(job_id, launcher, "", time.time(), after=after, state=QUEUED,
                     log=job_log(jobs_folder, job_id).name, entry=entry, commands=commands,
                     launcher_host=this_host(), launcher_pid=os.getpid())  # fmt: skip
