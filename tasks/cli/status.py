"""``dsd-suite status``: where every run stands, read from the results folder alone.

    dsd-suite status --results /shared/results          # every run under it (no torch needed)
    dsd-suite status imagenet --arch resnet50 --seeds 0,1,2 --results /shared/results   # one study
    dsd-suite status --results /shared/results --wait   # until nothing runs or waits

Each run is done, running (who holds it, its job, its last logged step and metric), waiting (on
what), failed (its log's last lines and where the rest is), stopped (checkpoint kept) or not
started (``dsd.records.status``). With a task and ``run``'s flags it shows that study's runs
(those not started included), found as ``plan`` finds them, without preparing anything. Where
``squeue`` answers, a job queued by its record but gone from SLURM's queue (cancelled before it
started) is reported failed rather than waiting for ever.
"""

from __future__ import annotations

import argparse
import time

from dsd.records import ResultsFolder, RunFolder
from dsd.records.jobs import latest_job
from dsd.records.lock import DEFAULT_STALE_S
from dsd.records.status import (
    FAILED_,
    RUNNING_,
    STATES,
    WAITING,
    RunStatus,
    closing_log,
    run_status,
    study_jobs,
    tail,
)
from dsd.run.launch.queue import gone_jobs
from tasks.cli import arguments
from tasks.cli.errors import UsageError

#: Seconds between two looks with ``--wait``.
WAIT_POLL_S = 10.0


def status_parser(with_task: bool) -> argparse.ArgumentParser:
    parser = arguments.parser(
        "dsd-suite status",
        "Where every run stands: done, running, waiting, failed, stopped or not started. With a "
        "task and run's flags: that study's runs; else every run under --results.",
    )
    if not with_task:
        arguments.add_results(parser)
    parser.add_argument("--wait", action="store_true",
                        help="look again every few seconds until no run is running or waiting; exit 1 "
                        "if one failed")  # fmt: skip
    parser.add_argument("--every", type=float, default=WAIT_POLL_S, metavar="S", help=argparse.SUPPRESS)
    return parser


def cmd_status(argv: list[str]) -> int:
    with_task = bool(argv) and not argv[0].startswith("-")
    args, rest = status_parser(with_task).parse_known_args(argv)
    if with_task:
        results, runs, stale = _study_runs(rest)
    else:
        if rest:
            raise UsageError(f"dsd-suite status: unrecognized arguments: {' '.join(rest)} (see --help)")
        results, runs, stale = arguments.results_from(args), None, DEFAULT_STALE_S
    while True:
        statuses = _statuses(results, runs, stale)
        if not args.wait or not any(s.state in (RUNNING_, WAITING) for s in statuses):
            break
        print(_summary(statuses), flush=True)
        time.sleep(args.every)
    print(render(statuses, results))
    return 1 if args.wait and any(s.state == FAILED_ for s in statuses) else 0


def _study_runs(argv: list[str]) -> tuple[ResultsFolder, list[tuple[RunFolder, RunFolder | None]], float]:
    """The runs of the study ``argv`` (a task and run's flags) names, as ``plan`` finds them."""
    from dsd.run.study import Study, start_identity, study_recipe
    from tasks.cli.study import parse_study

    adapter, run, _ = parse_study("run", argv)
    data = adapter.inspect()
    digest = data.fingerprint.digest if data.fingerprint is not None else None
    study = Study.build(adapter, run, [study_recipe(adapter, run.epochs_scale)], digest,
                        start_identity(adapter, run.start))  # fmt: skip
    if digest is None:
        print("the data is not prepared yet (its fingerprint is unknown): no run of this study has started")
        return run.results, [], run.lock_stale_minutes * 60
    runs = [(r.folder, r.baseline.folder if r.baseline is not None else None) for r in study.runs]
    return run.results, runs, run.lock_stale_minutes * 60


def _statuses(
    results: ResultsFolder, runs: list[tuple[RunFolder, RunFolder | None]] | None, stale: float
) -> list[RunStatus]:
    if runs is None:
        runs = [(folder, None) for folder in results.launched_folders()]
    jobs = [job for job in (latest_job(folder.jobs) for folder, _ in runs) if job is not None]
    gone = frozenset(gone_jobs(jobs))  # queued by their records, but not in the queue any more
    return [run_status(folder, results, baseline, stale, gone) for folder, baseline in runs]


def _summary(statuses: list[RunStatus]) -> str:
    counts = {state: sum(s.state == state for s in statuses) for state in STATES}
    shown = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    return f"{len(statuses)} runs: {shown or 'none'}"


def render(statuses: list[RunStatus], results: ResultsFolder) -> str:
    """The status table, the failed runs' log tails, the closing job, and the counts."""
    width = max((len(s.name) for s in statuses), default=0)
    lines = [f"{s.name:<{width}}  {s.state:<11}  {s.detail}".rstrip() for s in statuses]
    for s in statuses:
        if s.log is not None and s.log_tail:
            lines += ["", f"{s.name}: the last lines of {s.log}:", *(f"    {line}" for line in s.log_tail)]
    closing = study_jobs(results)
    if closing is not None:
        note = f": {closing.note}" if closing.note else ""
        lines += ["", f"tables and report: job {closing.job_id} {closing.state}{note}"]
        if closing.state == "failed":
            lines += [f"    {line}" for line in tail(closing_log(results, closing))]
    lines += ["", _summary(statuses)]
    return "\n".join(lines)
