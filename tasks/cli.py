"""The suite's command line: run a task's study, plan one, build tables and figures, benchmark.

    dsd-suite run imagenet --arch resnet18 --data /datasets/imagenet --seeds 0,1,2
    dsd-suite plan imagenet --arch resnet50 --data /datasets/imagenet   # what run would do
    dsd-suite run wsj --arch deepspeech                  # no --data: the stand-in
    torchrun --nproc_per_node=8 -m tasks.cli run imagenet --arch resnet50 --data ...
    dsd-suite tables                                     # results/runs -> results/tables
    dsd-suite figures                                    # results/runs -> results/figures

A task's own flags are generated from its ``Config`` dataclass (``--arch``, ``--batch-size``,
``--recipe``, ...): ``dsd-suite run <task> --help`` lists them with their defaults. ``run``
checks everything cheap before it builds anything (``dsd.run.preflight``); a user's mistake ends
as one ``dsd-suite: error:`` line (``tasks.cli_errors``). Each command is one entry of
``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsd.records.run import METHODS, STUDY_METHODS
from dsd.run import dist
from dsd.run.plan import plan_study
from dsd.run.plan import render as render_plan
from dsd.run.preflight import preflight
from dsd.run.study import RunConfig, run_study
from dsd.run.sweep import check_sparsities, run_sweep
from dsd.taskkit.adapter import CACHE_ROOT, TaskAdapter, default_cache_dir
from dsd.taskkit.config import add_config_flags, choices_of, config_from_args, help_of, help_text
from tasks import get_task, task_names
from tasks.cli_errors import DEBUG_ENV, ArgumentParser, UsageError, run_guarded, split_debug

#: Environment variables that point a task at its real dataset, the first one set wins.
DATA_ENV = {
    "imagenet": ("IMAGENET_DIR",),
    "flickr8k": ("FLICKR8K_DIR",),
    "wsj": ("WSJ_DIR", "LIBRISPEECH_DIR"),
}


def data_from_env(task: str) -> Path | None:
    """The real dataset named by the task's environment variables, if any is set."""
    for name in DATA_ENV.get(task, ()):
        if os.environ.get(name):
            return Path(os.environ[name])
    return None


# ---------------------------------------------------------------------- flags
class _HelpFormatter(argparse.HelpFormatter):
    """An on/off flag whose text does not say its default gets it appended (literal ``%`` in
    help texts are escaped where the texts are made: ``dsd.taskkit.config.help_text``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text is None:
            return None
        if isinstance(action, argparse.BooleanOptionalAction) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


#: The method lists ``--method`` takes by name.
METHOD_SETS = {"all": list(STUDY_METHODS), "all-ablations": list(METHODS)}


def _methods(text: str) -> list[str]:
    methods = METHOD_SETS.get(text) or [m for m in text.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        valid = ", ".join([*METHOD_SETS, *METHODS])
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; valid: {valid}")
    return methods


def _sparsities(text: str) -> list[float]:
    try:
        return [float(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sparsities must be comma-separated numbers, got {text!r}"
        ) from None


# ---------------------------------------------------------------------- run and plan
def study_parser(command: str, task: str, adapter_type: type[TaskAdapter]) -> ArgumentParser:
    """The flags of ``run <task>`` and ``plan <task>``: the study's (help from ``RunConfig``),
    then the task's ``Config``."""
    what = "baseline, DSD and the equal-length dense control"
    parser = ArgumentParser(
        prog=f"dsd-suite {command} {task}",
        description=f"{STUDY_COMMANDS[command]} the {task} study: {what}.",
        formatter_class=_HelpFormatter,
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
    run = RunConfig()

    def add(flag: str, field: str, lead: str = "", shown: str | None = "%(default)s", **kwargs: Any) -> None:
        """A study flag filling ``RunConfig.<field>``, with that field's help and default."""
        text = lead + help_text(help_of(RunConfig, field)) + (f" (default: {shown})" if shown else "")
        study.add_argument(flag, dest=field, default=getattr(run, field), help=text, **kwargs)

    add("--method", "methods", "all, all-ablations (all and every ablation), or a comma list ", "all",
        type=_methods, metavar="METHODS")  # fmt: skip
    add("--seeds", "seeds", "comma list: ", ",".join(map(str, run.seeds)), type=_seeds, metavar="SEEDS")
    add("--results", "results_dir", type=Path, metavar="DIR")
    add("--start", "start", shown=None, metavar="pretrained|FILE")
    add("--epochs-scale", "epochs_scale", type=float, metavar="FLOAT")
    add("--amp", "amp", choices=choices_of(RunConfig, "amp"))
    add("--deterministic", "deterministic", shown=None, action="store_true")
    add("--eval-every", "eval_every", type=int, metavar="N")
    add("--log-every", "log_every", type=int, metavar="N")
    add("--checkpoint-every", "checkpoint_every", type=int, metavar="N")
    add("--checkpoint-minutes", "checkpoint_minutes", type=float, metavar="MIN")
    add("--tensorboard", "tensorboard", shown=None, action="store_true")
    add("--device", "device", metavar="DEVICE")
    add("--progress", "progress", shown=None, action=argparse.BooleanOptionalAction)
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
            type=_sparsities,
            default=[0.1, 0.3, 0.5, 0.7],
            metavar="LIST",
            help="comma list of sparsities of the recipe's first sparse phase; later sparse phases are "
            "scaled by the same factor (default: 0.1,0.3,0.5,0.7)",
        )
    if command in ("run", "sweep"):
        study.add_argument("--no-tables", action="store_true", help="skip rebuilding all tables and figures")
    else:
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


#: The commands that take a study's flags, and how their help starts.
STUDY_COMMANDS = {
    "run": "Run",
    "plan": "Plan (a dry run: nothing is built or written)",
    "sweep": "Sweep the sparsity of (one shared baseline and dense control, DSD at each sparsity)",
}


def parse_study(command: str, argv: list[str]) -> tuple[TaskAdapter, RunConfig, argparse.Namespace]:
    """``<task> [flags]`` of ``run`` or ``plan`` read into the task's adapter and the study's settings."""
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


def cmd_run(argv: list[str]) -> int:
    """Check everything cheap (flags, recipe, data layout and sizes, start point), then run."""
    adapter, run, args = parse_study("run", argv)
    preflight(adapter, run)
    if dist.is_main():
        print(banner(adapter.name, adapter), file=sys.stderr)
    folders = run_study(adapter, run)
    if dist.is_main():
        print("\nruns:\n" + "\n".join(f"  {f}" for f in folders))
        if not args.no_tables:
            build_outputs(args.results_dir)
        methods = {f.parent.name.rsplit("-", 1)[0]: f for f in folders if f.name == f"seed{args.seeds[0]}"}
        for path in adapter.study_figures(methods, args.results_dir / "figures"):
            print(f"figure:  {path}")
    dist.cleanup()
    return 0


def cmd_sweep(argv: list[str]) -> int:
    """DSD at several sparsities from one shared baseline; refuses bad sparsities before any work."""
    adapter, run, args = parse_study("sweep", argv)
    sparsities = check_sparsities(args.sparsities)
    preflight(adapter, run)
    if dist.is_main():
        print(banner(adapter.name, adapter), file=sys.stderr)
    manifest = run_sweep(adapter, run, sparsities)
    if dist.is_main():
        print(f"\nsweep: {manifest}")
        if not args.no_tables:
            build_outputs(args.results_dir)
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


# ---------------------------------------------------------------------- tables and figures
def build_outputs(results: Path) -> None:
    """Tables (the overview printed) and figures from every finished run under ``results``."""
    from dsd.report import figures as plots
    from dsd.report import tables as report

    report.main(["--runs", str(results / "runs"), "--out", str(results / "tables"), "--show"])
    plots.main(["--runs", str(results / "runs"), "--out", str(results / "figures")])


def cmd_prepare(argv: list[str]) -> int:
    """Turn a raw speech corpus into the suite's manifests, once (``run wsj --data OUT``)."""
    parser = ArgumentParser(
        prog="dsd-suite prepare wsj", description="WSJ (LDC) or LibriSpeech -> JSON-lines manifests"
    )
    parser.add_argument("task", choices=["wsj"])
    parser.add_argument("--corpus", default="auto", choices=["auto", "wsj", "librispeech"])
    parser.add_argument("--src", type=Path, required=True, help="the corpus as distributed")
    parser.add_argument("--out", type=Path, required=True, help="where the manifests go")
    parser.add_argument("--force", action="store_true", help="prepare again even if finished")
    args = parser.parse_args(argv)
    from tasks.wsj import prepare

    corpus = prepare.detect_corpus(args.src) if args.corpus == "auto" else args.corpus
    manifests = prepare.prepare_manifests(corpus, args.src, args.out, force=args.force)
    for split, path in manifests.items():
        print(f"{split}: {path}")
    return 0


def cmd_bench(argv: list[str]) -> int:
    """Benchmarks: ``engine`` (dsd.bench.engine), ``loop`` (dsd.bench.loop), ``imagenet`` (data loading)."""
    benches = {"engine": "dsd.bench.engine", "loop": "dsd.bench.loop", "imagenet": "tasks.imagenet.bench"}
    if not argv or argv[0] not in benches:
        raise UsageError(f"dsd-suite bench: name one of {', '.join(benches)} (then its own flags)")
    module = importlib.import_module(benches[argv[0]])
    return module.main(argv[1:]) or 0


def cmd_tables(argv: list[str]) -> int:
    from dsd.report import tables as report

    return report.main([*argv, "--show"] if "--show" not in argv else argv)


def cmd_figures(argv: list[str]) -> int:
    from dsd.report import figures as plots

    return plots.main(argv)


def cmd_report(argv: list[str]) -> int:
    from dsd.report import page

    return page.main(argv)


# ---------------------------------------------------------------------- entry point
@dataclass(frozen=True)
class Command:
    """One command: the function that runs it on the rest of the command line, and one line of help."""

    handler: Callable[[list[str]], int]
    summary: str


#: Every command, in the order ``dsd-suite --help`` lists them; a new command is one more entry.
COMMANDS: dict[str, Command] = {
    "run": Command(cmd_run, "run a task's study (baseline, DSD, dense control): run <task> [flags]"),
    "sweep": Command(
        cmd_sweep, "DSD at several sparsities, chosen on validation: sweep <task> --sparsities ..."
    ),
    "plan": Command(cmd_plan, "print what run would do with the same flags; builds and writes nothing"),
    "tables": Command(cmd_tables, "rebuild results/tables from every finished run"),
    "figures": Command(cmd_figures, "rebuild results/figures (weight histograms, curves)"),
    "report": Command(cmd_report, "tables, figures, then one self-contained page: results/report.html"),
    "prepare": Command(
        cmd_prepare, "prepare a speech corpus into manifests: prepare wsj --src DIR --out DIR"
    ),
    "bench": Command(cmd_bench, "benchmarks: bench engine | loop | imagenet [flags]"),
}


def usage() -> str:
    lines = ["usage: dsd-suite <command> ... [--debug]", "", "commands:"]
    lines += [f"  {name:<8} {command.summary}" for name, command in COMMANDS.items()]
    lines += [
        "",
        f"tasks: {', '.join(task_names())}",
        "help:  dsd-suite run <task> --help",
        "errors are one line (exit 2: usage or configuration, 1: data or runtime, 130: interrupted);",
        f"       --debug or {DEBUG_ENV}=1 shows their traceback",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    debug, argv = split_debug(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        return run_guarded(lambda: _unknown(argv[0]), debug)
    return run_guarded(lambda: command.handler(argv[1:]), debug)


def _unknown(name: str) -> int:
    raise UsageError(f"unknown command {name!r}; commands: {', '.join(COMMANDS)} (dsd-suite --help)")


if __name__ == "__main__":
    sys.exit(main())
