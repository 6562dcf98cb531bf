"""Figures from run records: the paper's weight histograms and training curves with phases.

- ``plot_histograms``: one PNG, five panels, of the tensor a DSD run recorded in
  ``histograms.json`` at the paper's five moments (dense; just pruned, with its hole around zero;
  after sparse retraining; start of re-dense, with its spike of restored zeros; after re-dense).
  All panels share the bins fixed from the dense weights (``dsd.records.histograms``).
- ``plot_curves``: training loss and the primary validation metric of a study's three methods
  against epochs: the baseline, then the DSD branch and the dense control continuing from its
  end, with the phase boundaries marked and sparse phases shaded; one thin line per seed.
- ``draw_figures``: the forest plot of every study's paired gains (``dsd.report.forest``), the
  curves of every study, the histograms of its first-seed DSD run and each sweep's figure, into
  ``results/figures``, each PNG written atomically and entered in the folder's index with its
  study (a run with unusable files is skipped with a warning).

Drawn with matplotlib's object API on the Agg canvas: no pyplot, no global backend switch, safe
in headless jobs and in a user's interactive session alike.
"""

from __future__ import annotations

import itertools
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dsd.records import EvalLine, RunFolder, TrainLine, read_lines
from dsd.records.figures import CURVES, HISTOGRAMS, FigureEntry
from dsd.records.histograms import MOMENTS, read_histograms
from dsd.report.cells import ROLE_LABELS, is_standin
from dsd.report.drawing import save_figure
from dsd.report.finished import Finished
from dsd.report.forest import plot_forest
from dsd.report.paper import read_paper
from dsd.report.runs import Run, SkippedRunWarning
from dsd.report.studies import Study
from dsd.report.sweeps import plot_sweep

COLORS = {"baseline": "#222222", "dsd": "#1f77b4", "dense-control": "#ff7f0e"}
#: The forest plot's file in the figures folder.
FOREST_FILE = "forest.png"

CURVES_CAPTION = (
    "Training loss and the primary metric against epochs: the baseline, then DSD and the dense control "
    "continuing from its end (grey: sparse phases; several seeds: their mean and a min-max band)."
)
HISTOGRAMS_CAPTION = (
    "Weights of one tensor at the five DSD moments (the paper's Figure 4): dense, just pruned, after "
    "sparse retraining, at re-dense, after re-dense; seed {seed}."
)


# ====================================================================== histograms
def plot_histograms(
    source: Path, out_path: Path, title: str = "", study: Study | None = None, seed: int | None = None
) -> Path:
    """Draw the five weight histograms of ``source`` (a run folder or its ``histograms.json``)
    as one PNG at ``out_path``. A tall bar (the spike of restored zeros) is cut at a scale
    that keeps the other bars readable, and its count is written on it. ``study``: the study the
    run belongs to, for the figure's index entry (seed ``seed``)."""
    source = Path(source)
    path = RunFolder(source).histograms if source.is_dir() else source
    data = read_histograms(path)
    edges = data.bin_edges
    figure = Figure(figsize=(17, 3.6))  # fixed margins: constrained layout doubles the drawing time
    figure.subplots_adjust(left=0.04, right=0.99, bottom=0.16, top=0.84, wspace=0.22)
    axes = figure.subplots(1, len(MOMENTS), sharex=True)
    for ax, (moment, caption) in zip(axes, MOMENTS.items(), strict=True):
        counts = data.moments[moment]
        ax.stairs(counts, edges, fill=True, color="#1f77b4", alpha=0.85)
        ordered = sorted(counts, reverse=True)
        tallest, next_tallest = ordered[0], ordered[1] if len(ordered) > 1 else 0
        if next_tallest and tallest > 4 * next_tallest:
            ax.set_ylim(0, next_tallest * 1.35)
            peak = counts.index(tallest)
            ax.annotate(
                f"{tallest:,} (cut)",
                xy=((edges[peak] + edges[peak + 1]) / 2, next_tallest * 1.3),
                ha="center",
                va="top",
                fontsize=8,
                color="#b22222",
            )
        total = sum(counts)
        centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        mean_abs = sum(abs(c) * n for c, n in zip(centres, counts, strict=True)) / total if total else 0.0
        ax.set_title(caption, fontsize=9)
        ax.set_xlabel(f"weight  (n={total:,}, mean |w|≈{mean_abs:.3g})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("count")
    figure.suptitle(title or f"weight histograms of {data.tensor}", fontsize=10)
    entry = None
    if study is not None:
        caption = HISTOGRAMS_CAPTION.format(seed=seed)
        entry = FigureEntry(
            HISTOGRAMS, caption, study=study.key, seed=seed, standin=is_standin(study.dataset)
        )
    return save_figure(figure, out_path, entry)


# ====================================================================== curves
Lines = list[TrainLine | EvalLine]


def _lines(run: Run) -> Lines:
    """The run's ``metrics.jsonl`` lines (none when the file is gone); a line that is no metrics
    line is left out with a warning, so one bad line costs the curve a point, not the run."""
    path, skipped = run.files.metrics, []
    lines = read_lines(path, skipped) if path.is_file() else []
    for reason in skipped:
        warnings.warn(SkippedRunWarning(f"skipping a line of {reason}"), stacklevel=3)
    return lines


def _end_epoch(lines: Lines) -> float:
    return max((line.epoch for line in lines), default=0.0)


def _series(lines: Lines, split: str, metric: str, offset: float):
    """(train-loss points, metric points) of one run, epochs shifted by ``offset``."""
    train = [(offset + line.epoch, line.train_loss) for line in lines if isinstance(line, TrainLine)]
    evals = [
        (offset + line.epoch, line.metrics[metric])
        for line in lines
        if isinstance(line, EvalLine) and line.split == split and metric in line.metrics
    ]
    return sorted(train), sorted(evals)


def _phase_spans(lines: Lines, offset: float) -> list[tuple[float, float, str]]:
    """(start, end, label) of every phase logged in ``lines``, in epochs shifted by ``offset``."""
    spans: dict[int, list] = {}
    for line in lines:
        epoch = offset + line.epoch
        span = spans.setdefault(line.phase, [epoch, epoch, line.phase_label])
        span[1] = max(span[1], epoch)
    ordered = sorted(spans.items())
    result, start = [], offset
    for _, (_, end, label) in ordered:
        result.append((start, end, label))
        start = end
    return result


def plot_curves(study: Study, out_path: Path, split: str | None = None) -> Path:
    """Training loss (top) and the primary metric on ``split`` (default: the first split the
    runs evaluate every epoch) of every method and seed of ``study``, as one PNG."""
    first = study.first
    metric = study.primary
    split = split or first.result.splits[0]
    spec = study.specs[metric]
    figure = Figure(figsize=(10, 6.4))
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.88, hspace=0.12)
    loss_ax, metric_ax = figure.subplots(2, 1, sharex=True)
    baselines = {run.result.seed: run for run in study.of("baseline")}
    ends: dict[int, tuple[float, float | None]] = {}
    curves: dict[str, tuple[list, list]] = {m: ([], []) for m in ("baseline", "dsd", "dense-control")}
    for run in study.of("baseline"):
        lines = _lines(run)
        train, evals = _series(lines, split, metric, 0.0)
        end = _end_epoch(lines)
        final = run.result.final.get(split, {}).get(metric)
        ends[run.result.seed] = (end, final)
        if final is not None and (not evals or evals[-1][0] < end):
            evals.append((end, float(final)))
        curves["baseline"][0].append(train)
        curves["baseline"][1].append(evals)
    spans: list[tuple[float, float, str]] = []
    for method in ("dsd", "dense-control"):
        for run in study.of(method):
            offset, final = ends.get(run.result.seed, (0.0, None))
            lines = _lines(run)
            train, evals = _series(lines, split, metric, offset)
            if final is not None:  # the branch starts from the baseline's final weights
                evals.insert(0, (offset, float(final)))
            curves[method][0].append(train)
            curves[method][1].append(evals)
            if method == "dsd" and not spans:
                base = baselines.get(run.result.seed)
                spans = _phase_spans(_lines(base), 0.0) if base is not None else []
                spans += _phase_spans(lines, offset)
    for method, (trains, evals_) in curves.items():
        _draw(loss_ax, trains, method, markers=False)
        _draw(metric_ax, evals_, method, markers=True)
    for start, end, label in spans:
        if end <= start:  # a baseline given, not trained: only its evaluation at epoch 0
            label = "start"
        for ax in (loss_ax, metric_ax):
            if label.startswith("S") and end > start:
                ax.axvspan(start, end, color="#999999", alpha=0.12, lw=0)
            ax.axvline(end, color="#777777", lw=0.8, ls="--")
        loss_ax.annotate(
            label,
            xy=((start + end) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    loss_ax.set_ylabel("training loss")
    label = spec.get("label") or metric
    metric_ax.set_ylabel(f"{split} {label}{' (%)' if spec.get('percent') else ''}")
    metric_ax.set_xlabel(
        "epoch (branches continue from the baseline's end; grey: sparse phases)\n"
        "several seeds: their mean, and a band from the lowest to the highest seed"
    )
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
    if metric_ax.get_legend_handles_labels()[0]:
        metric_ax.legend(loc="best", fontsize=8)
    seeds = sorted({run.result.seed for run in study.runs})
    figure.suptitle(
        f"{study.paper_key} on {study.dataset}\nrecipe {study.recipe}  (seeds {', '.join(map(str, seeds))})",
        fontsize=10,
    )
    entry = FigureEntry(CURVES, CURVES_CAPTION, study=study.key, standin=is_standin(study.dataset))
    return save_figure(figure, out_path, entry)


def _draw(ax, series: list[list[tuple[float, float]]], method: str, markers: bool) -> None:
    """One method's curve: the line itself for one seed; for several, their mean with a band
    from the lowest to the highest seed (each seed's curve is put on the first seed's epochs)."""
    series = [s for s in series if s]
    if not series:
        return
    style = {"color": COLORS[method], "lw": 1.2, "label": ROLE_LABELS[method]}
    if markers:
        style.update(marker="o", ms=2.5)
    if len(series) == 1:
        ax.plot(*zip(*series[0], strict=True), **style)
        return
    xs = np.array([x for x, _ in series[0]])
    ys = np.stack([np.interp(xs, *map(np.array, zip(*s, strict=True))) for s in series])
    ax.fill_between(xs, ys.min(0), ys.max(0), color=COLORS[method], alpha=0.18, lw=0)
    ax.plot(xs, ys.mean(0), **style)


# ====================================================================== all of them
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def draw_figures(finished: Finished, out_dir: Path, paper: pd.DataFrame | None = None) -> list[Path]:
    """The forest plot of every study's paired gains, the curves of every study and the
    weight histograms of its first-seed DSD run, and each sweep's figure, as PNGs under ``out_dir``,
    each entered in the folder's index with its study or sweep; returns the paths written. ``paper``:
    the paper's numbers (the forest's claimed gains; default: those shipped). A run whose records
    cannot be drawn is skipped with a ``SkippedRunWarning`` naming it."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    if finished.studies:
        paper = read_paper(None) if paper is None else paper
        written.append(plot_forest(finished.studies, paper, out_dir / FOREST_FILE))
    for study in sorted(finished.studies, key=lambda s: (s.paper_key, s.dataset, s.key)):
        stem = f"{_slug(study.task)}-{_slug(study.model)}_{_slug(study.first.result.dataset)}_{study.key}"
        try:
            written.append(plot_curves(study, out_dir / f"curves_{stem}.png"))
        except (ValueError, KeyError, TypeError) as err:
            warnings.warn(SkippedRunWarning(f"skipping the curves of study {study.key}: {err}"), stacklevel=2)
        for run in study.of("dsd")[:1]:  # the first seed's; other seeds: plot_histograms(run folder)
            if not run.files.histograms.is_file():
                continue
            r = run.result
            path = out_dir / f"histograms_{stem}_seed{r.seed}.png"
            try:
                tensor = read_histograms(run.files.histograms).tensor
                title = (
                    f"{r.paper_key} on {r.dataset}, seed {r.seed}: "
                    f"weights of {tensor} at the five DSD moments"
                )
                written.append(plot_histograms(run.folder, path, title, study, r.seed))
            except ValueError as err:
                warnings.warn(
                    SkippedRunWarning(f"skipping the histograms of run {run.folder}: {err}"), stacklevel=2
                )
    for sweep in finished.sweeps:
        written.append(plot_sweep(sweep, out_dir / f"sweep_{_slug(sweep.key)}.png"))
    return written


def build_figures(runs_dir: Path, out_dir: Path) -> list[Path]:
    """``draw_figures`` of the finished runs under ``runs_dir``."""
    return draw_figures(Finished.load(runs_dir), out_dir)
