"""The commands that take a study's flags: ``run``, ``plan`` and ``sweep``.

A task's own flags are generated from its ``Config`` dataclass (``--arch``, ``--batch-size``,
``--recipe``, ...); the study's from ``RunConfig``. ``run`` checks everything cheap before it
builds anything (``dsd.run.preflight``), trains the study's graph of runs (``dsd.run.execute``),
then rebuilds the tables and figures (``tasks.cli.report.publish``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from dsd.records import load_record
from dsd.run import dist
from dsd.run.execute import train_study
from dsd.run.plan import plan_study
from dsd.run.plan import render as render_plan
from dsd.run.preflight import preflight
from dsd.run.settings import LoopSettings, RunConfig
from dsd.run.sweep import check_sparsities, train_sweep
from dsd.run.walk import WalkOutcome
from dsd.taskkit.adapter import CACHE_ROOT, TaskAdapter, default_cache_dir
from dsd.taskkit.config import add_config_flags, config_from_args, help_of, help_text
from tasks import get_task, task_names
from tasks.cli import arguments
from tasks.cli.errors import ArgumentParser, UsageError
from tasks.cli.report import publish, tag_task_figures

#: Environment variables that point a task at its real dataset, the first one set wins.
DATA_ENV = {
    "imagenet": ("IMAGENET_DIR",),
    "flickr8k": ("FLICKR8K_DIR",),
    "wsj": ("WSJ_DIR", "LIBRISPEECH_DIR"),
}

#: The commands that take a study's flags, and how their help starts.
STUDY_COMMANDS = {
    "run": "Run",
    "plan": "Plan (a dry run: nothing is built or written)",
    "sweep": "Sweep the sparsity of (one shared baseline and dense control, DSD at each sparsity)",
}


def data_from_env(task: str) -> Path | None:
    """The real dataset named by the task's environment variables, if any is set."""
    for name in DATA_ENV.get(task, ()):
        if os.environ.get(name):
            return Path(os.environ[name])
    return None


def study_parser(command: str, task: str, adapter_type: type[TaskAdapter]) -> ArgumentParser:
    """The flags of ``run <task>``, ``plan <task>`` and ``sweep <task>``: the study's (help from
    ``RunConfig``), then the task's ``Config``."""
    what = "baseline, DSD and the equal-length dense control"
    parser = arguments.parser(
        f"dsd-suite {command} {task}", f"{STUDY_COMMANDS[command]} the {task} study: {what}."
    )
    study = parser.add_argument_group("the study (how it runs, not what it learns)")
    env = " or ".join(f"${name}" for name in DATA_ENV.get(task, ())) or "none"
    study.add_argument(
        "--data",
        type=Path,
        default=data_from_env(task),
        metavar="DIR",
        help=f"the real dataset (default: {env} when set, else the task's stand-in)",
    )
    defaults = RunConfig()
    study.add_argument(
        "--method",
        dest="methods",
        type=arguments.methods,
        default=defaults.methods,
        metavar="METHODS",
        help="all, all-ablations (all and every ablation), rivals (all and AC/DC), or a comma list "
        + help_text(help_of(RunConfig, "methods"))
        + " (default: all)",
    )
    study.add_argument(
        "--seeds",
        type=arguments.seeds,
        default=defaults.seeds,
        metavar="SEEDS",
        help=f"comma list: {help_of(RunConfig, 'seeds')} (default: {','.join(map(str, defaults.seeds))})",
    )
    arguments.add_results(study, dest="results_dir")
    # The rest of the study's settings, flags made from their fields (help and default beside them).
    add_config_flags(
        study,
        RunConfig,
        fields=[f.name for f in dataclasses.fields(LoopSettings)]
        + ["epochs_scale", "start", "acdc", "wait_for_locks", "lock_stale_minutes"],
    )
    study.add_argument(
        "--cache-dir",
        type=Path,
        default=CACHE_ROOT,
        metavar="DIR",
        help=f"stand-ins and feature caches go to DIR/{task} (default: %(default)s)",
    )
    if command == "sweep":
        study.add_argument(
            "--sparsities",
            type=arguments.sparsities,
            default=[0.1, 0.3, 0.5, 0.7],
            metavar="LIST",
            help="comma list of sparsities of the recipe's first sparse phase; later sparse phases are "
            "scaled by the same factor (default: 0.1,0.3,0.5,0.7)",
        )
    study.add_argument(
        "--no-tables",
        action="store_true",
        help="skip rebuilding the tables and figures after the runs"
        + (" (plan builds none)" if command == "plan" else ""),
    )
    if command in ("run", "sweep"):
        # What a launched job runs (``dsd-suite launch``): one run of the graph, or none (the
        # closing job: reuse every finished run and publish). Not for people: hidden.
        study.add_argument("--only-run", default="", metavar="RUN", help=argparse.SUPPRESS)
        study.add_argument("--publish-only", action="store_true", help=argparse.SUPPRESS)
    if command == "plan":
        study.add_argument(
            "--world-size",
            type=int,
            default=int(os.environ.get("WORLD_SIZE", "1")),
            metavar="N",
            help="processes the run will use (torchrun's nodes x nproc_per_node; default: $WORLD_SIZE or 1)",
        )
    add_config_flags(parser, adapter_type.Config, title=f"the {task} task (what it learns)")
    return parser


def run_parser(task: str, adapter_type: type[TaskAdapter]) -> ArgumentParser:
    return study_parser("run", task, adapter_type)


def parse_study(command: str, argv: list[str]) -> tuple[TaskAdapter, RunConfig, argparse.Namespace]:
    """``<task> [flags]`` of a study command read into the task's adapter and the study's settings."""
    if not argv or argv[0].startswith("-"):
        raise UsageError(f"dsd-suite {command}: name a task ({', '.join(task_names())}), then its flags")
    task = argv[0]
    try:
        adapter_type = get_task(task)
    except KeyError as err:  # the message lists the valid tasks
        raise UsageError(err.args[0]) from None
    args = study_parser(command, task, adapter_type).parse_args(argv[1:])
    config = config_from_args(adapter_type.Config, args)
    adapter = adapter_type(config, args.data, default_cache_dir(task, args.cache_dir))
    return adapter, config_from_args(RunConfig, args), args


def banner(task: str, adapter: TaskAdapter) -> str:
    """Says loudly which dataset runs, and how to point the task at the real one."""
    if not adapter.is_standin:
        return f"== {task}: {adapter.dataset_name} at {adapter.data_dir} =="
    env = " or ".join(DATA_ENV.get(task, ())) or "the data path"
    hint = adapter.data_hint
    return (
        f"== {task}: no dataset given, running on the {adapter.dataset_name.upper()} (made here, tiny). ==\n"
        f"   Its numbers show the pipeline works; they are not the paper's. To run on the real data:\n"
        f"   set {env}=/path/to/data (or pass --data){': ' + hint if hint else ''}"
    )


def cmd_run(argv: list[str]) -> int:
    """Check everything cheap (flags, recipe, data layout and sizes, start point), then run."""
    adapter, run, args = parse_study("run", argv)
    preflight(adapter, run)
    if dist.is_main():
        print(banner(adapter.name, adapter), file=sys.stderr)
    outcome = train_study(adapter, run, only=args.only_run, train=not args.publish_only)
    if dist.is_main():
        done = [folder.path for folder in outcome.requested if folder.is_done]
        print("\nruns:\n" + "\n".join(f"  {f}" for f in done))
        say_left(outcome)
        if not args.no_tables:
            publish(run.results, show=True)
        if not args.only_run:
            draw_task_figures(adapter, run, done)
    dist.cleanup()
    return 0


def say_left(outcome: WalkOutcome) -> None:
    """The runs this process left to others, and why, so that an exit with them undone is no
    surprise."""
    if outcome.left:
        print("\nleft to other processes (`dsd-suite status` follows them; run again to pick them up):")
        for key, why in outcome.left.items():
            print(f"  {key}: {why}")


def draw_task_figures(adapter: TaskAdapter, run: RunConfig, done: list[Path]) -> None:
    """The task's own figures of the first seed's finished runs (Flickr-8K's captions)."""
    first_seed = {}  # method -> its run of the first seed (what a task's own figures show)
    for folder in done:
        record = load_record(folder)
        if record.seed == run.seeds[0]:
            first_seed[record.method] = folder
    figures = adapter.study_figures(first_seed, run.results.figures)
    tag_task_figures(adapter.name, first_seed, figures)
    for path in figures:
        print(f"figure:  {path}")


def cmd_sweep(argv: list[str]) -> int:
    """DSD at several sparsities from one shared baseline; refuses bad sparsities before any work."""
    adapter, run, args = parse_study("sweep", argv)
    check_sparsities(args.sparsities)
    preflight(adapter, run)
    if dist.is_main():
        print(banner(adapter.name, adapter), file=sys.stderr)
    manifest, outcome = train_sweep(adapter, run, args.sparsities, args.only_run, not args.publish_only)
    if dist.is_main():
        print(f"\nsweep: {manifest}")
        say_left(outcome)
        if not args.no_tables:
            publish(run.results, show=True)
    dist.cleanup()
    return 0


def cmd_plan(argv: list[str]) -> int:
    """The study ``run`` would run with the same flags, printed; nothing built or written."""
    adapter, run, args = parse_study("plan", argv)
    if args.world_size < 1:
        raise UsageError(f"--world-size must be at least 1, got {args.world_size}")
    checked = preflight(adapter, run, world_size=args.world_size)
    print(render_plan(plan_study(adapter, run, checked)))
    return 0
