"""``dsd-suite bench launch``: what launching costs a job, from its submission to its first step.

    dsd-suite bench launch imagenet --arch resnet18 --seeds 0,1 --results bench-launch \\
        --recipe "D:4steps@0.01 S30%:2steps@0.001 D:2steps@0.0001" --launcher slurm

runs ``dsd-suite launch`` with the given flags (plus ``--log-every 1``, so that a run's first
training step writes a line at once) and watches every run's ``metrics.jsonl`` for that first
line. A job's overhead is the time from the moment it could start (its submission, or, for a
branch, the end of its baseline's job) to its first step done: the scheduler's latency, the
process starting, the imports, the data found ready, the study's graph rebuilt, the model built,
and the first step. It is measured from this process's clock (every job runs on this machine's
file system), to within the 50 ms it looks at the files.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from dsd.records import ResultsFolder, RunFolder
from dsd.records.jobs import ENDED, JobRecord, latest_job
from tasks.cli import arguments

#: Seconds between two looks at the runs' files.
POLL_S = 0.05


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        arguments.parser("dsd-suite bench launch", "").error("name a task, then launch's flags")
    probe = arguments.parser("dsd-suite bench launch", __doc__.split("\n\n")[0])
    arguments.add_results(probe)
    args, _ = probe.parse_known_args(argv[1:])
    results = arguments.results_from(args)
    command = [sys.executable, "-m", "tasks.cli", "launch", *argv, "--log-every", "1", "--no-tables"]
    launcher = subprocess.Popen(command)
    first_step = _watch(results, launcher)
    rows = _overheads(results, first_step)
    if not rows:
        print("no job trained a step: nothing to measure (every run done already?)")
        return 1
    for name, waited, total in rows:
        since = "its baseline ending" if waited else "submission"
        print(f"  {name}: {total:6.2f} s from {since} to its first step")
    totals = [total for _, _, total in rows]
    print(f"launch overhead per job, submission (or baseline's end) to first step: median "
          f"{statistics.median(totals):.2f} s, min {min(totals):.2f} s, max {max(totals):.2f} s "
          f"over {len(totals)} jobs")  # fmt: skip
    return 0


def _watch(results: ResultsFolder, launcher: subprocess.Popen) -> dict[Path, float]:
    """When each run's first metrics line appeared, until the launcher and every job ended."""
    seen: dict[Path, float] = {}
    while True:
        for folder in results.launched_folders():
            if folder.path not in seen and folder.metrics.is_file() and folder.metrics.stat().st_size:
                seen[folder.path] = time.time()
        jobs = [latest_job(folder.jobs) for folder in results.launched_folders()]
        if launcher.poll() is not None and jobs and all(j is not None and j.state in ENDED for j in jobs):
            return seen
        time.sleep(POLL_S)


def _overheads(results: ResultsFolder, first_step: dict[Path, float]) -> list[tuple[str, bool, float]]:
    """(run, whether it waited for a baseline, seconds from eligible to first step) per job."""
    rows = []
    for path, seen in sorted(first_step.items()):
        job = latest_job(RunFolder(path).jobs)
        if job is None:
            continue
        eligible = job.submitted
        baseline = _baseline_job(results, job)
        if baseline is not None:
            eligible = max(eligible, baseline.ended)
        rows.append((job.run, baseline is not None, seen - eligible))
    return rows


def _baseline_job(results: ResultsFolder, job: JobRecord) -> JobRecord | None:
    return latest_job(RunFolder(results.root / job.waits_for).jobs) if job.waits_for else None
