"""``dsd-suite launch --launcher slurm`` against a real SLURM (a one-node cluster on this machine).

The toy study (two seeds, 8 steps a phase) is launched as SLURM jobs through submitit: one job per
run, each branch after its baseline's job, the closing report after all; ``status`` follows it
while jobs wait, run and end; every run must end bit-identical to the same study trained in this
process in order. A job cancelled mid-run is resumed from its checkpoint by launching again, and
two launches at once train no run twice.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dsd.records import ResultsFolder, RunFolder, read_lines
from dsd.records.jobs import FINISHED, INTERRUPTED, REQUEUED, latest_job, read_job
from dsd.records.layout import job_records
from tests.run.suite_process import (
    assert_same_runs,
    start_suite,
    suite,
    suite_env,
    toy_flags,
    trained_by,
    wait_for,
)

pytestmark = [pytest.mark.usefixtures("slurm_cluster"), pytest.mark.slow]
#: The launch's own flags: short jobs, one core each (two at once on a 2-core machine).
SLURM = ["--launcher", "slurm", "--time", "10", "--cpus-per-task", "1"]


def launch(tmp_path: Path, step_delay: float, *more: str) -> dict[str, str]:
    """Launch the toy study; returns run (or "report") -> its job id, as the launch printed."""
    done = suite(["launch", *toy_flags(step_delay), "--results", "results", *SLURM, *more], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    jobs = re.findall(r"^job (\d+): (\S+)", done.stdout, flags=re.MULTILINE)
    return {("report" if run == "tables," else run): job for job, run in jobs}


def status(tmp_path: Path, *more: str) -> str:
    done = suite(["status", "--results", "results", *more], tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def early_in_its_run(folder: RunFolder) -> bool:
    """The run trains, has checkpointed, and is less than halfway through its 16 steps."""
    if not (folder.lock.is_file() and folder.checkpoint.is_file() and folder.metrics.is_file()):
        return False
    lines = read_lines(folder.metrics)
    return bool(lines) and lines[-1].step <= 8


def job_state(job_id: str) -> str:
    """The job's state as ``squeue`` shows it ("" once it left the queue)."""
    done = subprocess.run(
        ["squeue", "--noheader", "--jobs", job_id, "--format=%T"], capture_output=True, text=True
    )
    return done.stdout.strip()


def training_lines(text: str) -> list[str]:
    """The status lines of runs that train and have logged a step."""
    return [line for line in text.splitlines() if "  running  " in line and "; step " in line]


def line_of(text: str, run: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(run))


def test_a_launched_study_runs_a_job_per_run_after_its_baseline_and_ends_bit_identical(
    tmp_path: Path, toy_reference: Path
) -> None:
    jobs = launch(tmp_path, 0.3)
    results = ResultsFolder.at(tmp_path / "results")
    runs = [name for name in jobs if name != "report"]
    assert len(runs) == 6 and "report" in jobs
    # The dependencies, as submitit handed them to sbatch: each branch after its baseline's job,
    # cancelled if that fails; the closing job after every run's job, however they end.
    for run in runs:
        script = (results.root / run / "jobs" / f"{jobs[run]}_submission.sh").read_text()
        if "/baseline-" in run:
            assert "--dependency" not in script, run
            continue
        baseline = next(b for b in runs if "/baseline-" in b and b.endswith(run[-5:]))
        assert f"#SBATCH --dependency=afterok:{jobs[baseline]}\n" in script, script
        assert "#SBATCH --kill-on-invalid-dep=yes" in script
    report = (results.jobs / f"{jobs['report']}_submission.sh").read_text()
    assert "#SBATCH --dependency=afterany:" + ":".join(jobs[r] for r in runs) in report
    # While the baselines train, their branches wait in the queue; status says on what.
    pending = status(tmp_path)
    for run in runs:
        if "/baseline-" not in run:
            assert "waiting" in line_of(pending, run) and f"job {jobs[run]} queued" in line_of(pending, run)
    squeue = subprocess.run(
        ["squeue", "--noheader", "--format=%i %T %E"], capture_output=True, text=True
    ).stdout
    assert any(f"afterok:{jobs[b]}" in squeue for b in runs if "/baseline-" in b), squeue
    # A run that trains is shown with its holder, its job and its last logged step.
    seen: list[str] = []
    wait_for(lambda: bool(seen.extend(training_lines(status(tmp_path))) or seen), 240, "a run to log a step")
    assert re.search(r"host \S+ pid \d+ \(job \d+\) since .*; step \d+ \(\S+\), ", seen[0]), seen[0]
    done = status(tmp_path, "--wait", "--every", "2")
    assert done.count("  done  ") == 6 and "tables and report: job" in done, done
    wait_for(lambda: latest_job(results.jobs).state == FINISHED, 240, "the closing job")
    assert results.page.is_file() and (results.tables / "overview.md").is_file()
    for run in runs:  # every branch started after its baseline had ended
        record = latest_job(RunFolder(results.root / run).jobs)
        assert record.state == FINISHED and record.log == f"{record.job_id}_0_log.out"
        if record.waits_for:
            assert record.started >= latest_job(RunFolder(results.root / record.waits_for).jobs).ended
    assert_same_runs(toy_reference, results.root)


def test_a_preempted_job_requeues_itself_and_a_cancelled_one_resumes_when_launched_again(
    tmp_path: Path, toy_reference: Path
) -> None:
    """The notice signal (SLURM's ``--signal``, sent before a time limit or at a preemption)
    checkpoints the run and submitit requeues the job, which resumes; ``scancel`` checkpoints and
    stops, and the same launch command resumes the run."""
    jobs = launch(tmp_path, 0.5, "--no-tables")
    results = ResultsFolder.at(tmp_path / "results")
    dsd = {seed: next(r for r in jobs if "/dsd-" in r and r.endswith(seed)) for seed in ("seed0", "seed1")}
    folders = {seed: RunFolder(results.root / run) for seed, run in dsd.items()}
    mid_run = lambda f: lambda: early_in_its_run(f)  # noqa: E731
    # Seed 0's branches start first (lower job ids): notify seed 0's DSD job, cancel seed 1's.
    notified, cancelled = dsd["seed0"], dsd["seed1"]
    wait_for(mid_run(folders["seed0"]), 240, "the DSD run of seed 0 to checkpoint")
    subprocess.run(["scancel", "--signal=USR2", jobs[notified]], check=True)  # what submitit's notice is
    wait_for(lambda: latest_job(folders["seed0"].jobs).state == REQUEUED, 120, "the notified job to requeue")
    assert "requeued" in line_of(status(tmp_path), notified)
    # SLURM holds a requeued job back two minutes before it may start again; start it now.
    wait_for(lambda: job_state(jobs[notified]) == "PENDING", 120, "the requeued job to be pending")
    subprocess.run(["scontrol", "update", f"JobId={jobs[notified]}", "StartTime=now"], check=True)
    wait_for(mid_run(folders["seed1"]), 240, "the DSD run of seed 1 to checkpoint")
    subprocess.run(["scancel", jobs[cancelled]], check=True)
    wait_for(
        lambda: latest_job(folders["seed1"].jobs).state == INTERRUPTED, 120, "the cancelled job to say so"
    )
    stopped = status(tmp_path, "--wait", "--every", "2")
    assert line_of(stopped, cancelled).split()[1] == "stopped" and "interrupted" in line_of(
        stopped, cancelled
    )
    assert stopped.count("  done  ") == 5 and folders["seed1"].checkpoint.is_file()
    requeued = folders["seed0"].job_log(jobs[notified]).read_text()
    assert requeued.count("Starting with JobEnvironment(job_id=") == 2 and "resumed at step" in requeued
    again = launch(tmp_path, 0.0, "--no-tables")
    assert list(again) == [cancelled]  # the finished runs reused, only the cancelled one resubmitted
    status(tmp_path, "--wait", "--every", "2")
    log = folders["seed1"].job_log(again[cancelled]).read_text()
    assert "[toy mlp dsd seed1] resumed at step" in log, log[-2000:]
    assert_same_runs(toy_reference, results.root)


def test_two_launches_at_once_train_no_run_twice(tmp_path: Path, toy_reference: Path) -> None:
    """While a plain ``run`` command trains one baseline (its lock held by a live process), two
    launches start at once: neither submits that baseline, its branches' jobs wait for it, and
    every run is trained by exactly one process, whichever launch's job got to it."""
    flags = [*toy_flags(0.1), "--results", "results", "--no-tables"]
    results = ResultsFolder.at(tmp_path / "results")
    held = "runs/toy-mlp/baseline-c3f5e38b/seed1"  # the toy study's hash of it (toy_reference has it)
    assert (toy_reference / held).is_dir()
    # 3 s a step: the holder trains its baseline for half a minute, long after the launches' first jobs start
    holder = start_suite(["run", *toy_flags(3.0), "--results", "results", "--no-tables", "--only-run", held],
                         tmp_path, tmp_path / "holder.log")  # fmt: skip
    wait_for(lambda: RunFolder(results.root / held).lock.is_file(), 120, "the plain run to hold its baseline")
    first = start_suite(["launch", *flags, *SLURM], tmp_path, tmp_path / "first.log")
    second = start_suite(["launch", *flags, *SLURM], tmp_path, tmp_path / "second.log")
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0 and holder.wait(timeout=300) == 0
    logs = [(tmp_path / name).read_text() for name in ("first.log", "second.log")]
    for log in logs:
        assert f"{held}: held by host" in log or f"{held}: done, reused" in log, log
        assert not re.search(rf"^job \d+: {held}$", log, flags=re.MULTILINE), log  # never submitted
    assert any(f"{held}: held by host" in log for log in logs), logs
    status(tmp_path, "--wait", "--every", "2")
    # Both launches may have queued a job for the same run; the later one can still be pending
    # when the study is done (it will find the run done): read the logs once every job has left.
    jobs = [(folder, read_job(path)) for folder in results.run_folders() for path in job_records(folder.jobs)]
    wait_for(
        lambda: all(job_state(record.job_id) == "" for _, record in jobs), 180, "every job to leave the queue"
    )
    trainers: dict[str, list[str]] = {}
    for folder, record in jobs:
        log = folder.job_log(record.job_id)  # none if the job never started
        if log.is_file() and trained_by(log.read_text()):
            trainers.setdefault(results.relative(folder), []).append(f"job {record.job_id}")
    if trained_by((tmp_path / "holder.log").read_text()):
        trainers.setdefault(held, []).append("the plain run")
    assert sorted(trainers) == run_folders_of(results) and all(len(t) == 1 for t in trainers.values()), (
        trainers
    )
    assert trainers[held] == ["the plain run"]
    waited = [folder for folder in results.run_folders() if "/seed1" in folder.path.as_posix()]
    assert any("waits for its baseline" in f.job_log(record.job_id).read_text()
               for f, record in jobs if f in waited and f.job_log(record.job_id).is_file())  # fmt: skip
    assert_same_runs(toy_reference, results.root)


def run_folders_of(results: ResultsFolder) -> list[str]:
    return sorted(results.relative(folder) for folder in results.run_folders())


def test_a_run_of_two_processes_is_one_job_of_two_tasks_ranked_by_slurm(tmp_path: Path) -> None:
    """``--processes-per-run 2``: each run is one SLURM job of two tasks; submitit's
    ``TorchDistributedEnvironment`` gives them their ranks and rendezvous (no torchrun inside), and
    the runs end bit-identical to the same study under ``torchrun --nproc_per_node=2``."""
    flags = [*toy_flags(0.0, seeds="0"), "--no-tables"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "tasks.cli", "run", *flags, "--results", "reference"]  # fmt: skip
    reference = subprocess.run(
        torchrun, cwd=tmp_path, env=suite_env(), capture_output=True, text=True, timeout=600
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    jobs = launch(tmp_path, 0.0, "--seeds", "0", "--processes-per-run", "2", "--no-tables")
    for run, job in jobs.items():
        script = (tmp_path / "results" / run / "jobs" / f"{job}_submission.sh").read_text()
        assert "#SBATCH --ntasks-per-node=2\n" in script and "torch.distributed.run" not in script
    status(tmp_path, "--wait", "--every", "2")
    for run, job in jobs.items():
        log = RunFolder(tmp_path / "results" / run).job_log(job).read_text()
        assert "global_rank=0(2)" in log, log[-2000:]  # submitit's view of the job: rank 0 of 2
        result = json.loads((tmp_path / "results" / run / "result.json").read_text())
        assert result["world_size"] == 2
    assert_same_runs(tmp_path / "reference", tmp_path / "results")
