"""What runs inside a launched job: its record's commands, with the job's ranks, threads and notices.

A job is described by its record (``dsd.records.jobs``), written by the launcher beside the run's
log: the command line to call (``entry``, ``module:function``, the suite's ``tasks.cli:main``:
the runtime never imports the suite itself) and the argv lists to give it, one run of the study
(``run <task> ... --only-run <run>``) or the study's closing report. ``StudyJob`` reads it,
says ``running``, calls the commands in this process, and says how it ended.

- **Ranks.** A run on several GPUs is one SLURM job with a task per GPU. SLURM starts the tasks;
  submitit's ``TorchDistributedEnvironment`` turns SLURM's variables into the ``RANK``,
  ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` that ``torch.distributed`` reads (no
  torchrun inside the job). Each task keeps the GPUs SLURM gave the job and takes the one its
  local rank names.
- **Threads.** A job uses the cores it was given: SLURM's ``--cpus-per-task``, or the share the
  local launcher set in ``OMP_NUM_THREADS``.
- **Preemption and time limits.** submitit asks SLURM for a notice signal (``USR2``) before the
  time limit, and a preempting cluster sends one too. While a run trains, the notice is handed
  to the training loop as a stop request: it checkpoints at the next step and stops; then
  submitit's own handler requeues the job (``Checkpointable``), which starts again under the
  same id and resumes from that checkpoint. Outside training the job is requeued at once. A
  plain ``SIGTERM`` (``scancel``, a preemption without notice) checkpoints and stops the same way,
  without a requeue of ours.

``python -m dsd.run.launch.job JOBS_FOLDER`` is the local launcher's way in (the job's id in
``DSD_JOB_ID``); SLURM jobs arrive through submitit's pickle of ``StudyJob``.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import submitit

from dsd.records.jobs import FAILED, FINISHED, INTERRUPTED, REQUEUED, RUNNING, SKIPPED, read_job, write_job
from dsd.records.layout import RunFolder, job_record
from dsd.records.lock import this_host, this_job

#: How long a job waits for the record its launcher writes just after submitting it.
RECORD_WAIT_S = 60.0
#: The exit code of an interrupted command (``tasks.cli``: 128 + SIGINT).
INTERRUPTED_EXIT = 130


class JobFailedError(RuntimeError):
    """A command of the job ended with a non-zero exit code (its error is in the job's log)."""


class StudyJob(submitit.helpers.Checkpointable):
    """The callable a job runs: the commands of the record ``jobs_folder/<this job>.json``."""

    def __init__(self, jobs_folder: Path, results_root: Path) -> None:
        self.jobs_folder = Path(jobs_folder).absolute()
        self.results_root = Path(results_root).absolute()

    def __call__(self) -> int:
        job_id, rank = this_job(), _global_rank()
        record = _wait_for_record(self.jobs_folder, job_id)
        slurm = os.environ.get("SUBMITIT_EXECUTOR") == "slurm"
        if slurm and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
            submitit.helpers.TorchDistributedEnvironment().export(
                set_cuda_visible_devices=False, overwrite=True
            )
        _use_given_cores()
        if rank == 0:
            record = replace(record, state=RUNNING, host=this_host(), started=time.time(), ended=0.0, note="")
            write_job(self.jobs_folder, record)
        notice = _Notice.install() if slurm else None
        entry = _entry(record.entry)
        code = 0
        try:
            for argv in record.commands:
                code = entry(list(argv))
                if code:
                    break
        except BaseException as err:
            if rank == 0:
                self._end(record, FAILED, f"{type(err).__name__}: {err}".splitlines()[0])
            raise
        if code == INTERRUPTED_EXIT and notice is not None and notice.requeue:
            if rank == 0:
                self._end(record, REQUEUED, "notice (time limit or preemption): checkpointed, requeued")
            notice.requeue_now()  # submitit checkpoints this callable and requeues the job; exits
        if rank == 0:
            self._end(record, *self._outcome(record, code))
        if code:
            raise JobFailedError(f"job {job_id}: {' '.join(record.commands[-1][:2])} exited with code {code}")
        return code

    def _outcome(self, record: Any, code: int) -> tuple[str, str]:
        """How the job ended, for its record."""
        if code == INTERRUPTED_EXIT:
            return INTERRUPTED, "interrupted (SIGTERM or SIGINT): checkpoint kept; launching again resumes"
        if code:
            return FAILED, f"exit code {code}; the error is at the end of {record.log}"
        if record.run and not RunFolder(self.results_root / record.run).is_done:
            return SKIPPED, "another process held the run (its log says who); it trains it"
        return FINISHED, ""

    def _end(self, record: Any, state: str, note: str) -> None:
        write_job(self.jobs_folder, replace(record, state=state, ended=time.time(), note=note))


class _Notice:
    """SLURM's notice signal (``USR2``) during a job: a stop request for the training loop when it
    trains, then submitit's requeue; submitit's requeue at once otherwise."""

    def __init__(self, signum: int, submitit_handler: Callable[..., Any], bypass: Any) -> None:
        self.signum, self.submitit_handler, self.bypass = signum, submitit_handler, bypass
        self.requeue = False

    @classmethod
    def install(cls) -> _Notice:
        signum = submitit.JobEnvironment._usr_sig()
        notice = cls(signum, signal.getsignal(signum), signal.getsignal(signal.SIGTERM))
        signal.signal(signum, notice.handle)
        return notice

    def handle(self, signum: int, frame: Any) -> None:
        self.requeue = True
        current = signal.getsignal(signal.SIGTERM)
        if callable(current) and current is not self.bypass:
            print(f"{signal.Signals(signum).name}: a notice; checkpointing, then requeuing", file=sys.stderr)
            current(signal.SIGTERM, frame)  # the training loop's: stop after a checkpoint
        else:
            self.submitit_handler(signum, frame)  # not training: requeue now

    def requeue_now(self) -> None:
        """Let submitit requeue the job (rank 0; the others exit and are restarted with it)."""
        self.submitit_handler(self.signum, None)
        sys.exit(-1)


def _global_rank() -> int:
    return int(os.environ.get("SLURM_PROCID") or os.environ.get("RANK") or 0)


def _use_given_cores() -> None:
    """Intra-op threads for the cores this job was given (SLURM's, or the local launcher's share)."""
    cores = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("OMP_NUM_THREADS")
    if cores:
        import torch

        torch.set_num_threads(max(1, int(cores)))


def _entry(spec: str) -> Callable[[list[str]], int]:
    """``module:function``, imported."""
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def _wait_for_record(jobs_folder: Path, job_id: str) -> Any:
    """The job's record; the launcher writes it right after the submission returns."""
    path = job_record(jobs_folder, job_id)
    deadline = time.monotonic() + RECORD_WAIT_S
    while not path.is_file():
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id}: its record {path} never appeared")
        time.sleep(0.2)
    return read_job(path)


def main(argv: list[str] | None = None) -> int:
    """``python -m dsd.run.launch.job JOBS_FOLDER RESULTS``: the local launcher's jobs."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return StudyJob(Path(args[0]), Path(args[1]))()
    except JobFailedError as err:
        print(err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
