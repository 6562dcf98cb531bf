"""``--launcher slurm``: each job of the plan submitted through submitit, the graph as dependencies.

SLURM does the scheduling. A branch's job is submitted with ``--dependency=afterok:<its
baseline's job>`` and ``--kill-on-invalid-dep=yes`` (a failed baseline cancels its branches
instead of leaving them pending for ever); the study's closing job, which rebuilds the tables
and the report page, waits for every run's job with ``afterany`` (it reports whatever finished).

Each job's submitit folder is its run's ``jobs/`` folder, so its log lands beside the run as
``<job>_<task>_log.out`` (standard error merged in) and ``dsd-suite status`` finds it from the
results folder alone. A run on several GPUs is one job of ``--nodes`` nodes with a task per GPU
(``dsd.run.launch.job`` sets up ``torch.distributed`` from SLURM's variables). submitit asks SLURM
for a notice signal before the time limit and requeues the job after it checkpointed, up to
``--max-requeues`` times for time limits (preemptions do not count).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dsd.errors import ConfigError
from dsd.records import ResultsFolder
from dsd.records.jobs import JobRecord, write_job
from dsd.run.launch.job import StudyJob
from dsd.run.launch.plan import JobSpec, LaunchPlan, closing_record, queued_record


@dataclass
class SlurmOptions:
    """What a lab sets once for its cluster, and what each run's job asks for."""

    partition: str = ""
    account: str = ""
    qos: str = ""
    time_minutes: int = 24 * 60
    nodes: int = 1
    gpus_per_run: int = 0
    processes_per_run: int = 0  # 0: one per GPU, else one per node (a CPU run of several is gloo DDP)
    cpus_per_task: int = 1
    mem: str = ""  # sbatch's --mem (per node), e.g. 32G; "": the partition's default
    max_requeues: int = 3
    signal_delay_s: int = 120  # the notice before the time limit
    sbatch: list[str] = field(default_factory=list)  # any other sbatch option, as --name=value

    def tasks_per_node(self) -> int:
        """One task (process, DDP rank) per GPU, else ``processes_per_run`` (one per node)."""
        if self.gpus_per_run and self.gpus_per_run % self.nodes:
            raise ConfigError(
                f"--gpus-per-run {self.gpus_per_run} does not split evenly over --nodes {self.nodes}"
            )
        processes = self.processes_per_run or self.gpus_per_run or self.nodes
        if self.gpus_per_run and processes != self.gpus_per_run:
            raise ConfigError(
                f"--processes-per-run {processes} with --gpus-per-run {self.gpus_per_run}: a run has one "
                "process per GPU; leave --processes-per-run out"
            )
        if processes % self.nodes:
            raise ConfigError(
                f"--processes-per-run {processes} does not split evenly over --nodes {self.nodes}"
            )
        return processes // self.nodes

    def parameters(self, name: str) -> dict[str, Any]:
        """submitit's ``SlurmExecutor`` parameters of one job."""
        params: dict[str, Any] = {
            "job_name": name,
            "time": self.time_minutes,
            "nodes": self.nodes,
            "ntasks_per_node": self.tasks_per_node(),
            "cpus_per_task": self.cpus_per_task,
            "signal_delay_s": self.signal_delay_s,
            "stderr_to_stdout": True,
        }
        if self.gpus_per_run:
            params["gpus_per_node"] = self.gpus_per_run // self.nodes
        params.update({k: v for k, v in (("partition", self.partition), ("account", self.account),
                                          ("qos", self.qos), ("mem", self.mem)) if v})  # fmt: skip
        return params

    def extra(self) -> dict[str, Any]:
        """The pass-through ``--sbatch`` options as submitit's ``additional_parameters``."""
        extra: dict[str, Any] = {}
        for option in self.sbatch:
            for word in shlex.split(option):
                if not word.startswith("--"):
                    raise ConfigError(
                        f"--sbatch {option!r}: give sbatch's long options, e.g. --constraint=a100"
                    )
                key, has_value, value = word[2:].partition("=")
                extra[key.replace("-", "_")] = value if has_value else True
        return extra


def check_slurm() -> None:
    """Refuse a launch where there is no SLURM to submit to, naming what is missing."""
    for tool in ("sbatch", "squeue", "srun"):
        if shutil.which(tool) is None:
            raise ConfigError(
                f"--launcher slurm needs SLURM's {tool} on the PATH (none here); launch from a "
                "cluster's login node, or use --launcher local"
            )


def submit_slurm(
    plan: LaunchPlan,
    options: SlurmOptions,
    results: ResultsFolder,
    entry: str,
    closing: list[list[str]] | None,
) -> list[JobRecord]:
    """Submit every job of ``plan`` in order, then (``closing``: its commands) the closing job
    after all of them; returns their records."""
    import submitit

    check_slurm()
    ids: dict[str, str] = {}  # run key -> its job submitted now
    records = []
    for spec in plan.jobs:
        after = spec.after_jobs + [ids[key] for key in spec.after_runs]
        job_id = _submit(submitit, spec.run.folder.jobs, options, _name(spec), after, "afterok", results)
        ids[spec.run.key] = job_id
        record = queued_record(spec, job_id, "slurm", entry, after)
        write_job(spec.run.folder.jobs, record)
        records.append(record)
    if closing is not None:
        after = [*ids.values(), *plan.queued.values()]
        closing_options = replace(options, gpus_per_run=0, processes_per_run=1, nodes=1)
        job_id = _submit(submitit, results.jobs, closing_options, "dsd-report", after, "afterany", results)
        record = closing_record(job_id, "slurm", entry, closing, after, results.jobs)
        write_job(results.jobs, record)
        records.append(record)
    return records


def _name(spec: JobSpec) -> str:
    """The job's name in ``squeue``: the run, short (``dsd-seed0``, ``baseline-seed1``)."""
    return f"{spec.run.method.name}-seed{spec.run.seed}"


def _submit(
    submitit: Any,
    folder: Path,
    options: SlurmOptions,
    name: str,
    after: list[str],
    kind: str,
    results: ResultsFolder,
) -> str:
    """One ``sbatch`` through submitit; returns the job id."""
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=options.max_requeues)
    extra = options.extra()
    if after:
        extra["kill_on_invalid_dep"] = "yes"
    params = options.parameters(name)
    if after:
        params["dependency"] = f"{kind}:{':'.join(after)}"
    try:
        executor.update_parameters(**params, additional_parameters=extra)
        job = executor.submit(StudyJob(folder, results.root))
    except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError, OSError) as err:
        raise ConfigError(f"sbatch refused the job {name}: {_first_line(err)}") from None
    return str(job.job_id)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return next((line for line in reversed(text.splitlines()) if "error" in line.lower()), text[:300])
