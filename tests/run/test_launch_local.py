"""``dsd-suite launch --launcher local`` and ``dsd-suite status``, without a cluster.

The toy study's runs side by side (``--parallel 2``) end as the same study run in order does; a
job runs exactly one run of the graph (``--only-run``) and leaves a held one alone; ``status``
reads every state from the records alone, without torch; a launch refuses what cannot work in
one line.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsd.records import ResultsFolder, RunFolder, RunRecord
from dsd.records.jobs import FAILED, FINISHED, QUEUED, JobRecord, latest_job, write_job
from dsd.records.lock import this_host
from dsd.records.run import write_record
from dsd.run.lock import RunLock
from tests.run.suite_process import ROOT, assert_same_runs, suite, suite_env, toy_flags

pytestmark = pytest.mark.usefixtures("single_thread")


def test_two_runs_at_a_time_side_by_side_give_the_sequential_results(
    tmp_path: Path, toy_reference: Path
) -> None:
    local = ["--launcher", "local", "--parallel", "2"]
    done = suite(["launch", *toy_flags(0.2), "--results", "results", *local], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "7 jobs ended, 0 failed" in done.stdout
    results = ResultsFolder.at(tmp_path / "results")
    assert_same_runs(toy_reference, results.root)
    jobs = [latest_job(folder.jobs) for folder in results.run_folders()]
    assert all(job.state == FINISHED and job.launcher == "local" for job in jobs)
    spans = sorted((job.started, job.ended) for job in jobs)
    overlaps = [max(0, min(a[1], b[1]) - max(a[0], b[0])) for a, b in itertools.pairwise(spans)]
    assert any(o > 0 for o in overlaps), spans  # side by side ...
    for moment in (s for s, _ in spans):  # ... and never more than two at once
        assert sum(start <= moment < end for start, end in spans) <= 2
    for job in jobs:  # each branch started once its baseline had ended
        if job.waits_for:
            assert job.started >= latest_job(RunFolder(results.root / job.waits_for).jobs).ended
    assert latest_job(results.jobs).state == FINISHED and results.page.is_file()
    again = suite(["launch", *toy_flags(0.2), "--results", "results", "--launcher", "local", "--no-tables"],
                  tmp_path)  # fmt: skip
    assert again.returncode == 0 and again.stdout.count("done, reused") == 6, again.stdout
    assert "no run to submit" in again.stdout


def test_a_job_leaves_a_run_held_by_a_live_process_alone(tmp_path: Path) -> None:
    """``--only-run`` (what a launched job runs) on a run another process holds: it says who,
    trains nothing, and exits well."""
    results = ResultsFolder.at(tmp_path / "results")
    name = "runs/toy-mlp/baseline-c3f5e38b/seed0"
    lock = RunLock(RunFolder(results.root / name))
    assert lock.acquire() is None
    try:
        only = ["--only-run", name, "--no-tables"]
        done = suite(["run", *toy_flags(0.0, seeds="0"), "--results", "results", *only], tmp_path)
    finally:
        lock.release()
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{name} is being trained by host" in done.stderr and "step" not in done.stderr
    assert not RunFolder(results.root / name).config.exists()


def test_launch_refuses_what_cannot_work_in_one_line(tmp_path: Path) -> None:
    cases = {
        ("--launcher", "local", "--only-run", "x"): "--only-run is what a launched job runs",
        ("--launcher", "slurm", "--time", "0:30"): "--time '0:30': a job needs at least a minute",
        ("--launcher", "local", "--parallel", "0"): "--parallel must be at least 1, got 0",
    }
    for flags, message in cases.items():
        done = suite(["launch", *toy_flags(0.0, seeds="0"), "--results", "r", *flags], tmp_path)
        assert done.returncode == 2 and message in done.stderr, (flags, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    no_slurm = suite(
        ["launch", *toy_flags(0.0, seeds="0"), "--launcher", "slurm"], tmp_path, PATH="/usr/bin/none"
    )
    assert no_slurm.returncode == 2 and "needs SLURM's sbatch on the PATH" in no_slurm.stderr, no_slurm.stderr


def plant_run(results: ResultsFolder, name: str, method: str = "dsd") -> RunFolder:
    folder = RunFolder(results.root / name)
    folder.path.mkdir(parents=True)
    record = RunRecord("toy", "mlp", "toy", "toy", method, 0, baseline_run="runs/b/seed0")
    write_record(folder, record)
    return folder


def test_status_reads_every_state_from_the_records_alone(tmp_path: Path) -> None:
    results = ResultsFolder.at(tmp_path)
    running = plant_run(results, "runs/toy-mlp/dsd-a/seed0")
    lock = RunLock(running)
    assert lock.acquire() is None
    stopped = plant_run(results, "runs/toy-mlp/dsd-b/seed0")
    failed = plant_run(results, "runs/toy-mlp/dsd-c/seed0")
    now = time.time()
    write_job(failed.jobs, JobRecord("41", "slurm", "runs/toy-mlp/dsd-c/seed0", now, state=FAILED,
                                     note="exit code 1", log="41_0_log.out"))  # fmt: skip
    failed.job_log("41").write_text("starting\nTraceback (most recent call last):\nRuntimeError: boom\n")
    queued = RunFolder(results.root / "runs/toy-mlp/dense-control-d/seed0")
    write_job(queued.jobs, JobRecord("42", "local", "runs/toy-mlp/dense-control-d/seed0", now, after=["40"],
                                     waits_for="runs/toy-mlp/baseline-e/seed0", state=QUEUED,
                                     launcher_host=this_host(), launcher_pid=os.getpid()))  # fmt: skip
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    orphan = RunFolder(results.root / "runs/toy-mlp/dsd-f/seed0")  # its launcher died before it started
    write_job(orphan.jobs, JobRecord("43", "local", "runs/toy-mlp/dsd-f/seed0", now, state=QUEUED,
                                     launcher_host=this_host(), launcher_pid=int(dead.stdout)))  # fmt: skip
    code = (
        "import sys; from tasks.cli import main; code = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'status imported torch'; sys.exit(code)"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code, "status", "--results", str(tmp_path)], cwd=ROOT,
                              env=suite_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        lock.release()
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("runs/")}
    assert lines["runs/toy-mlp/dsd-a/seed0"].split()[1] == "running"
    assert "nothing logged yet" in lines["runs/toy-mlp/dsd-a/seed0"]
    assert lines["runs/toy-mlp/dsd-b/seed0"].split()[1] == "stopped"
    assert "job 41 failed: exit code 1" in lines["runs/toy-mlp/dsd-c/seed0"]
    assert f"the last lines of {failed.job_log('41')}" in done.stdout and "RuntimeError: boom" in done.stdout
    waiting = lines["runs/toy-mlp/dense-control-d/seed0"]
    assert (
        "waiting" in waiting
        and "job 42 queued, waits for its baseline runs/toy-mlp/baseline-e/seed0" in waiting
    )
    assert "job 43 left the queue without starting" in lines["runs/toy-mlp/dsd-f/seed0"]
    assert done.stdout.rstrip().endswith("5 runs: 1 running, 1 waiting, 2 failed, 1 stopped")
    assert stopped.config.is_file()


def test_a_failed_baseline_stops_its_branches_and_launching_again_resumes(tmp_path: Path) -> None:
    """The baseline's job fails (its checkpoint is damaged): its branches never start, the launch
    exits 1, status shows the failure with its log; launched again, every run is done."""
    flags = [*toy_flags(0.0, seeds="0"), "--results", "results", "--launcher", "local", "--no-tables"]
    baseline = RunFolder(tmp_path / "results" / "runs/toy-mlp/baseline-c3f5e38b/seed0")
    baseline.path.mkdir(parents=True)
    baseline.checkpoint.write_bytes(b"not a checkpoint")
    failed = suite(["launch", *flags], tmp_path)
    assert failed.returncode == 1 and "3 jobs ended, 3 failed" in failed.stdout, failed.stdout + failed.stderr
    shown = suite(["status", "--results", "results"], tmp_path).stdout
    assert "cannot load" in shown and "the last lines of" in shown, shown
    assert shown.count("not started: the job of runs/toy-mlp/baseline-c3f5e38b/seed0 failed") == 2, shown
    baseline.checkpoint.unlink()
    again = suite(["launch", *flags], tmp_path)
    assert again.returncode == 0 and "3 jobs ended, 0 failed" in again.stdout, again.stdout + again.stderr
    assert suite(["status", "--results", "results"], tmp_path).stdout.rstrip().endswith("3 runs: 3 done")
