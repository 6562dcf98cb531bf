"""The suite's command line: run a task's study, build tables and figures, benchmark.

    dsd-suite run imagenet --arch resnet18 --data /datasets/imagenet --seeds 0,1,2
    dsd-suite run wsj --arch deepspeech                  # no --data: the stand-in
    torchrun --nproc_per_node=8 -m tasks.cli run imagenet --arch resnet50 --data ...
    dsd-suite tables                                     # results/runs -> results/tables
    dsd-suite figures                                    # results/runs -> results/figures

A task's own flags are generated from its ``Config`` dataclass (``--arch``, ``--batch-size``,
``--recipe``, ...): ``dsd-suite run <task> --help`` lists them with their defaults.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from dsd.run import dist
from dsd.run.adapter import CACHE_ROOT, TaskAdapter, default_cache_dir
from dsd.run.config import add_config_flags, choices_of, config_from_args, help_of, help_text
from dsd.run.study import METHODS, RunConfig, run_study
from tasks import get_task, task_names

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
    help texts are escaped where the texts are made: ``dsd.run.config.help_text``)."""

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


def _methods(text: str) -> list[str]:
    methods = list(METHODS) if text == "all" else [m for m in text.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; valid: all, {', '.join(METHODS)}")
    return methods


# ---------------------------------------------------------------------- run
def run_parser(task: str, adapter_type: type[TaskAdapter]) -> argparse.ArgumentParser:
    """The flags of ``run <task>``: the study's (help from ``RunConfig``), then the task's ``Config``."""
    parser = argparse.ArgumentParser(
        prog=f"dsd-suite run {task}",
        description=f"Run the {task} study: baseline, DSD and the equal-length dense control.",
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

    add("--method", "methods", "all, or a comma list ", "all", type=_methods, metavar="METHODS")
    add("--seeds", "seeds", "comma list: ", ",".join(map(str, run.seeds)), type=_seeds, metavar="SEEDS")
    add("--results", "results_dir", type=Path, metavar="DIR")
    add("--start", "start", shown=None, metavar="pretrained|FILE")
    add("--epochs-scale", "epochs_scale", type=float, metavar="FLOAT")
    add("--amp", "amp", choices=choices_of(RunConfig, "amp"))
    add("--deterministic", "deterministic", shown=None, action="store_true")
    add("--eval-every", "eval_every", type=int, metavar="N")
    add("--log-every", "log_every", type=int, metavar="N")
    add("--device", "device", metavar="DEVICE")
    add("--progress", "progress", shown=None, action=argparse.BooleanOptionalAction)
    study.add_argument(
        "--cache-dir",
        type=Path,
        default=CACHE_ROOT,
        metavar="DIR",
        help=f"stand-ins and feature caches go to DIR/{task} (default: %(default)s)",
    )
    study.add_argument("--no-tables", action="store_true", help="skip rebuilding all tables and figures")
    add_config_flags(parser, adapter_type.Config, title=f"the {task} task (what it learns)")
    return parser


def cmd_run(task: str, argv: list[str]) -> int:
    try:
        adapter_type = get_task(task)
    except KeyError as err:  # the message lists the valid tasks
        print(f"dsd-suite: {err.args[0]}", file=sys.stderr)
        return 2
    args = run_parser(task, adapter_type).parse_args(argv)
    config = config_from_args(adapter_type.Config, args)
    adapter = adapter_type(config, args.data, default_cache_dir(task, args.cache_dir))
    if dist.is_main():
        print(banner(task, adapter), file=sys.stderr)
    run = config_from_args(RunConfig, args)
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
    parser = argparse.ArgumentParser(
        prog="dsd-suite prepare wsj", description="WSJ (LDC) or LibriSpeech -> JSON-lines manifests"
    )
    parser.add_argument("task", choices=["wsj"])
    parser.add_argument("--corpus", default="auto", choices=["auto", "wsj", "librispeech"])
    parser.add_argument("--src", type=Path, required=True, help="the corpus as distributed")
    parser.add_argument("--out", type=Path, required=True, help="where the manifests go")
    parser.add_argument("--force", action="store_true", help="prepare again even if finished")
    args = parser.parse_args(argv)
    from tasks.wsj import prepare
    from tasks.wsj.audio import SphereConversionError

    corpus = prepare.detect_corpus(args.src) if args.corpus == "auto" else args.corpus
    try:
        manifests = prepare.prepare_manifests(corpus, args.src, args.out, force=args.force)
    except (prepare.PreparationError, SphereConversionError) as err:
        print(f"dsd-suite prepare: {err}", file=sys.stderr)
        return 1
    for split, path in manifests.items():
        print(f"{split}: {path}")
    return 0


def cmd_bench(argv: list[str]) -> int:
    """Benchmarks: ``engine`` (dsd.bench.engine), ``loop`` (dsd.bench.loop), ``imagenet`` (data loading)."""
    benches = {"engine": "dsd.bench.engine", "loop": "dsd.bench.loop", "imagenet": "tasks.imagenet.bench"}
    if not argv or argv[0] not in benches:
        print(f"dsd-suite bench: name one of {', '.join(benches)} (then its own flags)", file=sys.stderr)
        return 2
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
COMMANDS = {
    "run": "run a task's study (baseline, DSD, dense control): run <task> [flags]",
    "tables": "rebuild results/tables from every finished run",
    "figures": "rebuild results/figures (weight histograms, curves)",
    "report": "tables, figures, then one self-contained page: results/report.html",
    "prepare": "prepare a speech corpus into manifests: prepare wsj --src DIR --out DIR",
    "bench": "benchmarks: bench engine | loop | imagenet [flags]",
}


def usage() -> str:
    lines = ["usage: dsd-suite <command> ...", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    lines += ["", f"tasks: {', '.join(task_names())}", "help:  dsd-suite run <task> --help"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        if not rest or rest[0].startswith("-"):
            print(f"dsd-suite run: name a task ({', '.join(task_names())})", file=sys.stderr)
            return 2
        return cmd_run(rest[0], rest[1:])
    if command == "tables":
        return cmd_tables(rest)
    if command == "figures":
        return cmd_figures(rest)
    if command == "report":
        return cmd_report(rest)
    if command == "prepare":
        return cmd_prepare(rest)
    if command == "bench":
        return cmd_bench(rest)
    print(f"dsd-suite: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
