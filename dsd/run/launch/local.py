"""``--launcher local --parallel N``: the plan's jobs as processes side by side on this machine.

At most ``N`` jobs run at once; a job starts once the jobs of this launch it waits for (its
baseline's) have ended well, in the plan's order, so an 8-GPU node runs eight small runs at once.
Each job gets its own GPUs through ``CUDA_VISIBLE_DEVICES`` (``--gpus-per-run``, by default the
visible GPUs shared out evenly; a run on several GPUs runs under ``torchrun --standalone``), and
its share of the CPU cores as its intra-op threads (``OMP_NUM_THREADS``). A job whose baseline's
job failed does not start, and says so in its record. The closing job (tables, figures, the
report page) runs when every other job has ended.

Each job writes its record and its log (standard output and error) in its run's ``jobs/``
folder under the same names as a SLURM job's, so ``dsd-suite status`` reads both launchers'
jobs alike. This process waits for its jobs; Ctrl-C reaches them too (they share its process
group): each checkpoints and stops, and the same launch command resumes them.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from dsd.errors import ConfigError
from dsd.records import ResultsFolder
from dsd.records.jobs import ENDED, FAILED, FINISHED, INTERRUPTED, SKIPPED, JobRecord, read_job, write_job
from dsd.records.layout import job_log, job_record
from dsd.run.launch.plan import JobSpec, LaunchPlan, closing_record, queued_record
from dsd.taskkit.environment import available_cores

#: The job states after which the jobs waiting for it may start.
ENDED_WELL = (FINISHED, SKIPPED)


@dataclass
class LocalOptions:
    """How the runs share this machine."""

    parallel: int = 1
    gpus_per_run: int = 0  # 0: the visible GPUs shared out among the parallel runs (none on a CPU)
    processes_per_run: int = 0  # 0: one per GPU, else one (a CPU run of several is gloo DDP)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_groups(options: LocalOptions, gpus: list[str]) -> list[list[str]]:
    """The GPUs of each of the ``parallel`` slots (empty lists on a machine without GPUs)."""
    per_run = options.gpus_per_run or (len(gpus) // options.parallel if gpus else 0)
    if options.gpus_per_run and per_run * options.parallel > len(gpus):
        raise ConfigError(
            f"--parallel {options.parallel} x --gpus-per-run {per_run} needs {per_run * options.parallel} "
            f"GPUs; {len(gpus)} are visible here. Lower either"
        )
    if gpus and per_run == 0:
        raise ConfigError(f"--parallel {options.parallel} is more runs than the {len(gpus)} GPUs here")
    return [gpus[i * per_run : (i + 1) * per_run] for i in range(options.parallel)]


def launch_local(
    plan: LaunchPlan,
    options: LocalOptions,
    results: ResultsFolder,
    entry: str,
    closing: list[list[str]] | None,
) -> list[JobRecord]:
    """Run every job of ``plan`` (then the closing job) to its end; returns their final records."""
    if options.parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {options.parallel}")
    slots: queue.Queue[list[str]] = queue.Queue()
    for group in gpu_groups(options, visible_gpus()):
        slots.put(group)
    processes = options.processes_per_run or 1
    threads = max(1, available_cores() // (options.parallel * processes))
    stamp = f"local{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    ids = {spec.run.key: f"{stamp}-{n}" for n, spec in enumerate(plan.jobs)}
    for spec in plan.jobs:
        after = spec.after_jobs + [ids[key] for key in spec.after_runs]
        write_job(spec.run.folder.jobs, queued_record(spec, ids[spec.run.key], "local", entry, after))
    ended = _run_in_order(plan.jobs, ids, _JobRunner(slots, threads, processes, results), options.parallel)
    if closing is not None:
        job_id = f"{stamp}-report"
        write_job(
            results.jobs, closing_record(job_id, "local", entry, closing, list(ids.values()), results.jobs)
        )
        ended.append(_JobRunner(slots, threads, 1, results)(results.jobs, job_id))
    return ended


def _run_in_order(
    specs: list[JobSpec], ids: dict[str, str], run: _JobRunner, parallel: int
) -> list[JobRecord]:
    """Start each job once what it waits for ended well, at most ``parallel`` at a time. A job
    whose baseline's job ended otherwise never starts; a Ctrl-C leaves the jobs not started yet
    marked so (the running ones get it too, checkpoint and stop) and the same launch resumes."""
    state: dict[str, str] = {}  # run key -> how its job ended
    waiting = list(specs)
    running: dict[Future, JobSpec] = {}
    ended: list[JobRecord] = []
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        try:
            while waiting or running:
                for spec in list(waiting):
                    after = [state.get(key) for key in spec.after_runs]
                    bad = next((s for s in after if s is not None and s not in ENDED_WELL), None)
                    if bad is not None:
                        waiting.remove(spec)
                        state[spec.run.key] = FAILED
                        why = f"the job of {spec.waits_for} {bad}"
                        ended.append(_never_started(spec, ids[spec.run.key], FAILED, why))
                        print(f"{spec.name}: not started: {why}", flush=True)
                    elif all(s in ENDED_WELL for s in after) and len(running) < parallel:
                        waiting.remove(spec)
                        running[pool.submit(run, spec.run.folder.jobs, ids[spec.run.key])] = spec
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    spec = running.pop(future)
                    record = future.result()
                    state[spec.run.key] = record.state if record.state in ENDED else FAILED
                    ended.append(record)
                    note = f": {record.note}" if record.note else ""
                    print(f"{spec.name}: job {record.job_id} {record.state}{note}", flush=True)
        except KeyboardInterrupt:
            for spec in waiting:
                _never_started(spec, ids[spec.run.key], INTERRUPTED, "the launch was interrupted")
            raise
    return ended


@dataclass
class _JobRunner:
    """Runs one job as a process on a free slot's GPUs (under ``torchrun`` for several processes),
    its threads set; returns its record once it ended."""

    slots: queue.Queue
    threads: int
    processes: int
    results: ResultsFolder

    def __call__(self, jobs_folder: Path, job_id: str) -> JobRecord:
        gpus = self.slots.get()
        log = job_log(jobs_folder, job_id)
        try:
            env = {**os.environ, "DSD_JOB_ID": job_id, "OMP_NUM_THREADS": str(self.threads),
                   "MKL_NUM_THREADS": str(self.threads)}  # fmt: skip
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
            job = ["-m", "dsd.run.launch.job", str(jobs_folder), str(self.results.root)]
            processes = len(gpus) if gpus else self.processes
            if processes > 1:
                job = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *job]
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as out:
                subprocess.run(
                    [sys.executable, *job], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
                )
        finally:
            self.slots.put(gpus)
        record = read_job(job_record(jobs_folder, job_id))
        if record.state not in ENDED:  # killed before it could say how it ended
            record = replace(
                record, state=FAILED, ended=time.time(), note=f"the process died; see {log.name}"
            )
            write_job(jobs_folder, record)
        return record


def _never_started(spec: JobSpec, job_id: str, state: str, note: str) -> JobRecord:
    """The record of a job that never starts, and why (``note``)."""
    record = read_job(job_record(spec.run.folder.jobs, job_id))
    record = replace(record, state=state, ended=time.time(), note=f"not started: {note}")
    write_job(spec.run.folder.jobs, record)
    return record
