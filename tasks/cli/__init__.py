"""The suite's command line: run a task's study, plan one, build tables and figures, benchmark.

    dsd-suite run imagenet --arch resnet18 --data /datasets/imagenet --seeds 0,1,2
    dsd-suite plan imagenet --arch resnet50 --data /datasets/imagenet   # what run would do
    dsd-suite run wsj --arch deepspeech                  # no --data: the stand-in
    torchrun --nproc_per_node=8 -m tasks.cli run imagenet --arch resnet50 --data ...
    dsd-suite report --results results                   # tables, figures, results/report.html

Every command that reads or writes results takes ``--results DIR`` (``tasks.cli.arguments``).
A user's mistake ends as one ``dsd-suite: error:`` line (``tasks.cli.errors``). Each command is
one entry of ``COMMANDS``, imported only when it runs:

- ``study``: ``run``, ``plan``, ``sweep`` (the task's flags and the study's);
- ``launch``: ``launch`` (a study's runs as SLURM jobs or side by side); ``status``: ``status``;
- ``report``: ``tables``, ``figures``, ``report`` (the finished runs);
- ``tools``: ``prepare``, ``bench``.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from tasks import task_names
from tasks.cli.errors import DEBUG_ENV, UsageError, run_guarded, split_debug


@dataclass(frozen=True)
class Command:
    """One command: where its handler lives (``module:function``, imported when the command runs)
    and one line of help."""

    handler: str
    summary: str

    def run(self, argv: list[str]) -> int:
        module, function = self.handler.split(":")
        return getattr(importlib.import_module(module), function)(argv)


#: Every command, in the order ``dsd-suite --help`` lists them; a new command is one more entry.
COMMANDS: dict[str, Command] = {
    "run": Command(
        "tasks.cli.study:cmd_run", "run a task's study (baseline, DSD, dense control): run <task> [flags]"
    ),
    "sweep": Command(
        "tasks.cli.study:cmd_sweep",
        "DSD at several sparsities, chosen on validation: sweep <task> --sparsities ...",
    ),
    "plan": Command(
        "tasks.cli.study:cmd_plan", "print what run would do with the same flags; builds and writes nothing"
    ),
    "launch": Command(
        "tasks.cli.launch:cmd_launch",
        "a study's runs as jobs: launch <task> [run's flags] --launcher slurm|local [--parallel N]",
    ),
    "status": Command(
        "tasks.cli.status:cmd_status",
        "where every run stands (done, running, waiting, failed): status [--results DIR] [<task> flags]",
    ),
    "tables": Command("tasks.cli.report:cmd_tables", "rebuild results/tables from every finished run"),
    "figures": Command("tasks.cli.report:cmd_figures", "rebuild results/figures (weight histograms, curves)"),
    "report": Command(
        "tasks.cli.report:cmd_report", "tables, figures, then one self-contained page: results/report.html"
    ),
    "prepare": Command(
        "tasks.cli.tools:cmd_prepare",
        "prepare a speech corpus into manifests: prepare wsj --src DIR --out DIR",
    ),
    "bench": Command(
        "tasks.cli.tools:cmd_bench", "benchmarks: bench engine | loop | lock | imagenet | launch [flags]"
    ),
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
    return run_guarded(lambda: command.run(argv[1:]), debug)


def _unknown(name: str) -> int:
    raise UsageError(f"unknown command {name!r}; commands: {', '.join(COMMANDS)} (dsd-suite --help)")
