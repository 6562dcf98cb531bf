"""``dsd-suite launch``: a study's runs as jobs, side by side, each trained once.

    dsd-suite launch imagenet --arch resnet50 --seeds 0,1,2 --launcher slurm --partition gpu \\
        --gpus-per-run 8 --cpus-per-task 8 --time 2880
    dsd-suite launch wsj --arch deepspeech --launcher local --parallel 2
    dsd-suite launch imagenet --sparsities 0.1,0.3,0.5 --launcher slurm      # a sweep

It takes every flag of ``run`` (and ``--sparsities``, which makes it a sweep), prepares the data
here once (the runs' identities hold the data's fingerprint), works out which runs need a job
(``dsd.run.launch.plan``: done runs reused, live-locked or queued ones not submitted again), and
submits them (``dsd.run.launch.slurm``) or runs them side by side (``dsd.run.launch.local``),
then the study's closing job: tables, figures and the report page.
"""

from __future__ import annotations

import argparse
import sys

from dsd.records.jobs import FAILED
from dsd.run.execute import prepare_study
from dsd.run.launch.local import LocalOptions, launch_local
from dsd.run.launch.plan import LaunchPlan, plan_launch
from dsd.run.launch.queue import gone_jobs
from dsd.run.launch.slurm import SlurmOptions, check_slurm, submit_slurm
from dsd.run.preflight import preflight
from dsd.run.settings import RunConfig
from dsd.run.study import study_recipe
from dsd.run.sweep import check_sparsities, sweep_recipes, sweep_settings
from tasks.cli import arguments
from tasks.cli.errors import UsageError
from tasks.cli.study import banner, parse_study

#: The command line every job runs (``module:function``), given to the runtime by name.
ENTRY = "tasks.cli:main"
#: Flags of ``run`` that are a job's own business.
JOB_FLAGS = ("--only-run", "--publish-only")


def launch_parser() -> argparse.ArgumentParser:
    """The launch's own flags; everything else is ``run``'s (or ``sweep``'s)."""
    parser = arguments.parser(
        "dsd-suite launch",
        "Launch a study's runs as jobs: dsd-suite launch <task> [flags of run, or of sweep with "
        "--sparsities] --launcher slurm|local [the flags below]. `dsd-suite status` follows them.",
    )
    parser.add_argument("--launcher", choices=("slurm", "local"), default="local",
                        help="slurm: one job per run through submitit, the graph as job dependencies; "
                        "local: the runs side by side on this machine (default: %(default)s)")  # fmt: skip
    local = parser.add_argument_group("--launcher local")
    local.add_argument("--parallel", type=int, default=1, metavar="N", help="runs at once (default: 1)")
    both = parser.add_argument_group("both launchers")
    both.add_argument("--processes-per-run", type=int, default=0, metavar="P",
                      help="processes (DDP ranks) of each run: default one per GPU, else one per node; "
                      "more on CPUs runs a gloo DDP run")  # fmt: skip
    both.add_argument("--gpus-per-run", type=int, default=0, metavar="G",
                      help="GPUs of each run (slurm: over --nodes, a task per GPU; local: default the "
                      "visible GPUs shared out among --parallel runs)")  # fmt: skip
    slurm = parser.add_argument_group("--launcher slurm (what a lab sets once, and each job's size)")
    slurm.add_argument("--partition", default="", help="sbatch --partition")
    slurm.add_argument("--account", default="", help="sbatch --account")
    slurm.add_argument("--qos", default="", help="sbatch --qos")
    slurm.add_argument("--time", type=minutes, default=24 * 60, metavar="LIMIT",
                       help="each job's time limit: minutes, or HH:MM:SS, or D-HH:MM:SS (default: 1 day); a "
                       "job that reaches it checkpoints and is requeued")  # fmt: skip
    slurm.add_argument("--nodes", type=int, default=1, metavar="N", help="nodes of each run (default: 1)")
    slurm.add_argument("--cpus-per-task", type=int, default=1, metavar="C",
                       help="cores of each process (one per GPU; the run's intra-op threads and data "
                       "workers come from them) (default: 1)")  # fmt: skip
    slurm.add_argument("--mem", default="", help="memory per node, as sbatch takes it (e.g. 64G)")
    slurm.add_argument("--max-requeues", type=int, default=3, metavar="N",
                       help="times a job that reached its time limit is requeued (preemptions do not "
                       "count) (default: 3)")  # fmt: skip
    slurm.add_argument("--sbatch", action="append", default=[], metavar="OPTIONS",
                       help="any other sbatch options, passed through: --sbatch '--constraint=a100 "
                       "--exclusive' (repeatable)")  # fmt: skip
    return parser


def minutes(text: str) -> int:
    """``--time`` in SLURM's forms (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS), as
    whole minutes (what submitit takes)."""
    try:
        days, _, clock = text.rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        if days:  # D-HH[:MM[:SS]]
            hours, mins, secs = [*parts, 0, 0][:3]
        elif len(parts) == 1:  # minutes
            hours, mins, secs = 0, parts[0], 0
        else:  # [HH:]MM:SS
            hours, mins, secs = [0, 0, 0, *parts][-3:]
        total = int(days or 0) * 86400 + hours * 3600 + mins * 60 + secs
    except ValueError:
        raise argparse.ArgumentTypeError(f"--time {text!r}: give minutes, HH:MM:SS or D-HH:MM:SS") from None
    if total < 60:
        raise argparse.ArgumentTypeError(f"--time {text!r}: a job needs at least a minute")
    return total // 60


def cmd_launch(argv: list[str]) -> int:
    """Plan the study's jobs, then submit them (slurm) or run them side by side (local)."""
    parser = launch_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    args, rest = parser.parse_known_args(argv)
    for flag, value, least in (("--parallel", args.parallel, 1), ("--gpus-per-run", args.gpus_per_run, 0),
                               ("--processes-per-run", args.processes_per_run, 0),
                               ("--nodes", args.nodes, 1), ("--cpus-per-task", args.cpus_per_task, 1),
                               ("--max-requeues", args.max_requeues, 0)):  # fmt: skip
        if value < least:
            raise UsageError(f"dsd-suite launch: {flag} must be at least {least}, got {value}")
    for flag in JOB_FLAGS:
        if any(word.split("=")[0] == flag for word in rest):
            raise UsageError(f"dsd-suite launch: {flag} is what a launched job runs; launch the whole study")
    mode = "sweep" if any(word.split("=")[0] == "--sparsities" for word in rest) else "run"
    adapter, run, study_args = parse_study(mode, rest)
    if args.launcher == "slurm":
        check_slurm()
    preflight(adapter, run)
    print(banner(adapter.name, adapter), file=sys.stderr)
    if mode == "sweep":
        recipes = list(sweep_recipes(adapter, run, check_sparsities(study_args.sparsities)).values())
        run = sweep_settings(run)
    else:
        recipes = [study_recipe(adapter, run.epochs_scale)]
    study, _, _ = prepare_study(adapter, run, recipes)
    plan = plan_launch(study, [mode, *rest], run.lock_stale_minutes * 60, gone_jobs)
    closing = None
    if not study_args.no_tables:
        results = str(run.results_dir)
        closing = [[mode, *rest, "--publish-only"], ["report", "--results", results, "--reuse-figures"]]
    found = plan.lines()
    if found:
        print("not submitted:\n" + "\n".join(found))
    if not plan.jobs:
        print("every run is done, held or queued: no run to submit")
    if args.launcher == "slurm":
        return _slurm(plan, args, run, closing)
    options = LocalOptions(args.parallel, args.gpus_per_run, args.processes_per_run)
    records = launch_local(plan, options, run.results, ENTRY, closing)
    failed = [r for r in records if r.state == FAILED]
    print(
        f"\n{len(records)} jobs ended, {len(failed)} failed" + (": see `dsd-suite status`" if failed else "")
    )
    return 1 if failed else 0


def _slurm(
    plan: LaunchPlan, args: argparse.Namespace, run: RunConfig, closing: list[list[str]] | None
) -> int:
    options = SlurmOptions(
        partition=args.partition, account=args.account, qos=args.qos, time_minutes=args.time,
        nodes=args.nodes, gpus_per_run=args.gpus_per_run, processes_per_run=args.processes_per_run,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem, max_requeues=args.max_requeues, sbatch=args.sbatch,
    )  # fmt: skip
    records = submit_slurm(plan, options, run.results, ENTRY, closing)
    for record in records:
        after = f" after {','.join(record.after)}" if record.after else ""
        print(f"job {record.job_id}: {record.run or 'tables, figures and the report page'}{after}")
    print(f"\nsubmitted {len(records)} jobs; follow them with: dsd-suite status --results {run.results_dir}")
    return 0
