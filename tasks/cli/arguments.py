"""The one way every command reads its command line: the parser, the results folder, the list flags.

Every command that reads or writes results takes ``--results DIR`` (default ``results/``): the
runs, sweeps, tables, figures and the report page live under it (``dsd.records.ResultsFolder``).
The report commands keep ``--runs``, ``--tables``, ``--figures`` and ``--out`` as overrides of
one part each. A refused command line raises ``UsageError`` (one line, no traceback).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dsd.records import METHOD_SETS, METHODS, ResultsFolder
from dsd.records.layout import FIGURES_FOLDER, REPORT_PAGE, RUNS_FOLDER, TABLES_FOLDER
from dsd.run.settings import RunConfig
from dsd.taskkit.config import help_of
from tasks.cli.errors import ArgumentParser, UsageError

#: The results folder when none is given.
DEFAULT_RESULTS = Path("results")
#: The parts of a results folder a report command may move: their flag, help and place under it.
#: ``--out`` moves the command's own output (the tables, the figures, or the page).
PART_FLAGS = {
    "runs": ("--runs", "the run records to read", RUNS_FOLDER),
    "tables": ("--tables", "where the tables go", TABLES_FOLDER),
    "figures": ("--figures", "where the figures go (and are read from)", FIGURES_FOLDER),
    "page": ("--page", "the report page to write", REPORT_PAGE),
}


class HelpFormatter(argparse.HelpFormatter):
    """An on/off flag whose text does not say its default gets it appended (literal ``%`` in
    help texts are escaped where the texts are made: ``dsd.taskkit.config.help_text``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text is None:
            return None
        if isinstance(action, argparse.BooleanOptionalAction) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def parser(prog: str, description: str) -> ArgumentParser:
    """A command's parser: refusals raise ``UsageError``, on/off flags show their default."""
    return ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)


def results_directory(text: str) -> Path:
    """``--results``: a folder name; an empty one would scatter results into the working folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("--results needs a folder (default: results)")
    return Path(text)


def add_results(
    group: argparse._ActionsContainer, parts: tuple[str, ...] = (), out: str = "", dest: str = "results"
) -> None:
    """``--results DIR``, and an override flag for each of ``parts`` (``runs``, ``tables``,
    ``figures``, ``page``); ``out``: the part ``--out`` names (the command's own output)."""
    group.add_argument(
        "--results",
        dest=dest,
        type=results_directory,
        default=DEFAULT_RESULTS,
        metavar="DIR",
        help=f"{help_of(RunConfig, 'results_dir')} (default: %(default)s)",
    )
    for part in parts:
        flag, text, place = PART_FLAGS[part]
        flag = "--out" if part == out else flag
        group.add_argument(flag, dest=part, type=Path, default=None, help=f"{text} (default: DIR/{place})")


def results_from(args: argparse.Namespace) -> ResultsFolder:
    """The results folder a command's flags name, with the parts moved by their overrides."""
    moved = {part: getattr(args, part, None) for part in PART_FLAGS}
    return ResultsFolder.at(args.results, **moved)


def finished_runs_from(args: argparse.Namespace) -> ResultsFolder:
    """``results_from``, for a command that reads finished runs: a runs folder that is missing
    or a file is refused, naming the flag, rather than read as "nothing has run"."""
    results = results_from(args)
    flag = (
        f"--runs {results.runs}" if getattr(args, "runs", None) is not None else f"--results {args.results}"
    )
    if results.runs.is_file():
        raise UsageError(f"{flag}: {results.runs} is a file, not a folder of runs")
    if not results.runs.is_dir():
        raise UsageError(
            f"{flag}: no runs folder at {results.runs}; run a study first "
            "(dsd-suite run <task> --results DIR) or name the folder that holds runs/"
        )
    return results


def seeds(text: str) -> list[int]:
    """``--seeds``: a comma list of integers."""
    try:
        values = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one seed")
    return values


def methods(text: str) -> list[str]:
    """``--method``: a set's name (``all``, ``all-ablations``) or a comma list of methods."""
    chosen = list(METHOD_SETS.get(text, ())) or [m for m in text.split(",") if m]
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown:
        valid = ", ".join([*METHOD_SETS, *METHODS])
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; valid: {valid}")
    return chosen


def sparsities(text: str) -> list[float]:
    """``--sparsities``: a comma list of numbers (checked for range by the sweep)."""
    try:
        return [float(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sparsities must be comma-separated numbers, got {text!r}"
        ) from None


__all__ = [
    "DEFAULT_RESULTS",
    "HelpFormatter",
    "UsageError",
    "add_results",
    "methods",
    "parser",
    "results_from",
    "seeds",
    "sparsities",
]
