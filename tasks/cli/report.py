"""The commands that read finished runs: ``tables``, ``figures`` and ``report``; and ``publish``,
what ``run`` and ``sweep`` call when their runs are done.

Each reads the runs of the results folder once (``dsd.report.Finished``), so a skipped run
warns once, and writes through the report's functions.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dsd.records import ResultsFolder, load_record
from dsd.records.figures import TASK, FigureEntry, tag_figure
from tasks.cli import arguments

PAPER_HELP = "the paper's numbers (CSV files); default: those shipped with dsd"


def _parser(command: str, description: str, parts: tuple[str, ...], out: str) -> argparse.ArgumentParser:
    parser = arguments.parser(f"dsd-suite {command}", description)
    arguments.add_results(parser, parts, out=out)
    if "tables" in parts:
        parser.add_argument("--paper", type=Path, default=None, help=PAPER_HELP)
    return parser


def publish(results: ResultsFolder, show: bool = False, paper: Path | None = None) -> None:
    """Rebuild the tables (printing the overview when ``show``) and the figures of every finished
    run under ``results``."""
    from dsd.report import Finished, documents, draw_figures, write_tables
    from dsd.report.runs import skipped_runs_on_stderr
    from dsd.report.tables import read_paper

    with skipped_runs_on_stderr():
        finished = Finished.of(results)
        numbers = read_paper(paper)
        files = documents(finished, numbers)
        write_tables(files, results.tables)
        draw_figures(finished, results.figures, numbers)
    if show:
        print()
        print((results.tables / "overview.md").read_text(encoding="utf-8"))


def tag_task_figures(task: str, runs: dict[str, Path], paths: Sequence[Path]) -> None:
    """Tie the figures a task drew of one study (``runs``: method -> run folder) to that study: each
    PNG gets its entry, with the markdown twin that is shown beside it."""
    if not paths or not runs:
        return
    record = load_record(next(iter(runs.values())))
    for path in (Path(p) for p in paths if Path(p).suffix == ".png"):
        twin = path.with_suffix(".md")
        text = twin.name if twin.is_file() else ""
        entry = FigureEntry(TASK, _title(twin) if text else path.name, study=record.study_key, task=task,
                            text=text, seed=record.seed, standin="stand-in" in record.dataset)  # fmt: skip
        tag_figure(path, entry)


def _title(markdown: Path) -> str:
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return markdown.name


def cmd_tables(argv: list[str]) -> int:
    """``dsd-suite tables``: every table from the finished runs; the overview printed."""
    parser = _parser(
        "tables", "Tables from the finished runs, beside the paper's numbers.", ("runs", "tables"), "tables"
    )
    parser.add_argument("--show", action="store_true", default=True, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from dsd.report import Finished, documents, write_tables
    from dsd.report.runs import skipped_runs_on_stderr
    from dsd.report.tables import read_paper

    results = arguments.finished_runs_from(args)
    with skipped_runs_on_stderr():
        paths = write_tables(documents(Finished.of(results), read_paper(args.paper)), results.tables)
    for path in paths:
        print(path)
    print()
    print((results.tables / "overview.md").read_text(encoding="utf-8"))
    return 0


def cmd_figures(argv: list[str]) -> int:
    """``dsd-suite figures``: weight histograms, curves and sweep figures of the finished runs."""
    parser = _parser(
        "figures",
        "Figures from the finished runs: weight histograms, curves, sweeps.",
        ("runs", "figures"),
        "figures",
    )
    args = parser.parse_args(argv)
    from dsd.report import Finished, draw_figures
    from dsd.report.runs import skipped_runs_on_stderr

    results = arguments.finished_runs_from(args)
    with skipped_runs_on_stderr():
        paths = draw_figures(Finished.of(results), results.figures)
    for path in paths:
        print(path)
    return 0


def cmd_report(argv: list[str]) -> int:
    """``dsd-suite report``: the tables, the figures, then one self-contained page."""
    parser = _parser("report", "The tables, the figures, then one self-contained page of them.",
                     ("runs", "tables", "figures", "page"), "page")  # fmt: skip
    parser.add_argument(
        "--reuse-figures",
        action="store_true",
        help="embed the PNGs already under --figures instead of drawing them again (the tables are "
        "always rebuilt: they take a second)",
    )
    args = parser.parse_args(argv)
    from dsd.report import Finished, documents, draw_figures, write_page, write_tables
    from dsd.report.runs import skipped_runs_on_stderr
    from dsd.report.tables import read_paper

    results = arguments.finished_runs_from(args)
    with skipped_runs_on_stderr():
        finished = Finished.of(results)
        numbers = read_paper(args.paper)
        if not args.reuse_figures:
            drawn = draw_figures(finished, results.figures, numbers)
            print(f"figures: {len(drawn)} drawn in {results.figures}")
        files = documents(finished, numbers)
        write_tables(files, results.tables)
        page = write_page(finished, files, results.figures, results.page)
    print(f"tables:  {results.tables}")
    size = page.stat().st_size
    print(f"report:  {page}  ({size / 1e6:.1f} MB, self-contained: open it in any browser)")
    return 0
