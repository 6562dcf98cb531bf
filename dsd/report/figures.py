"""Figures from run records: the paper's weight histograms and training curves with phases.

- ``plot_histograms``: one PNG, five panels, of the tensor a DSD run recorded in
  ``histograms.json`` at the paper's five moments (dense; just pruned, with its hole around zero;
  after sparse retraining; start of re-dense, with its spike of restored zeros; after re-dense).
  All panels share the bins fixed from the dense weights (``dsd.run.training.histograms``).
- ``plot_curves``: training loss and the primary validation metric of a study's three methods
  against epochs: the baseline, then the DSD branch and the dense control continuing from its
  end, with the phase boundaries marked and sparse phases shaded; one thin line per seed.
- ``build_figures``: the curves of every study under ``results/runs`` and the histograms of
  its first-seed DSD run, into
  ``results/figures`` (written atomically; a run with unusable files is skipped with a warning).

Drawn with matplotlib's object API on the Agg canvas: no pyplot, no global backend switch, safe
in headless jobs and in a user's interactive session alike.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dsd.files import atomic_write_bytes
from dsd.records.layout import RunFolder, read_jsonl
from dsd.report.cells import ROLE_LABELS
from dsd.report.runs import Run, SkippedRunWarning, load_runs, skipped_runs_on_stderr
from dsd.report.studies import Study, group_studies
from dsd.report.sweeps import load_sweeps, plot_sweep
from dsd.run.training.histograms import MOMENTS

COLORS = {"baseline": "#222222", "dsd": "#1f77b4", "dense-control": "#ff7f0e"}


# ====================================================================== histograms
def load_histograms(path: Path) -> dict[str, Any]:
    """Read and check a ``histograms.json``: every moment present, one count per bin.

    Raises ``ValueError`` naming the file and what is missing or malformed.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the weight histograms ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with tensor, bin_edges and moments")
    edges = data.get("bin_edges")
    if (
        not isinstance(edges, list)
        or len(edges) < 2
        or not all(isinstance(e, (int, float)) and math.isfinite(e) for e in edges)
        or any(b <= a for a, b in itertools.pairwise(edges))
    ):
        raise ValueError(f"{path}: 'bin_edges' should be at least two finite, increasing numbers")
    moments = data.get("moments")
    if not isinstance(moments, dict):
        raise ValueError(f"{path}: 'moments' should map each of {', '.join(MOMENTS)} to its counts")
    for moment in MOMENTS:
        if moment not in moments:
            raise ValueError(
                f"{path}: the moment {moment!r} ({MOMENTS[moment]}) is missing; "
                f"expected all of {', '.join(MOMENTS)} (found {', '.join(moments) or 'none'})"
            )
        counts = moments[moment]
        if (
            not isinstance(counts, list)
            or len(counts) != len(edges) - 1
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
        ):
            raise ValueError(
                f"{path}: moment {moment!r} should hold {len(edges) - 1} non-negative integer counts "
                f"(one per bin between the {len(edges)} edges)"
            )
    return data


def _save(figure: Figure, out_path: Path) -> Path:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(Path(out_path), buffer.getvalue())
    return Path(out_path)


def plot_histograms(source: Path, out_path: Path, title: str = "") -> Path:
    """Draw the five weight histograms of ``source`` (a run folder or its ``histograms.json``)
    as one PNG at ``out_path``. A tall bar (the spike of restored zeros) is cut at a scale
    that keeps the other bars readable, and its count is written on it."""
    source = Path(source)
    path = RunFolder(source).histograms if source.is_dir() else source
    data = load_histograms(path)
    edges = [float(e) for e in data["bin_edges"]]
    figure = Figure(figsize=(17, 3.6))  # fixed margins: constrained layout doubles the drawing time
    figure.subplots_adjust(left=0.04, right=0.99, bottom=0.16, top=0.84, wspace=0.22)
    axes = figure.subplots(1, len(MOMENTS), sharex=True)
    for ax, (moment, caption) in zip(axes, MOMENTS.items(), strict=True):
        counts = data["moments"][moment]
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
    figure.suptitle(title or f"weight histograms of {data.get('tensor', '?')}", fontsize=10)
    return _save(figure, out_path)


# ====================================================================== curves
def _lines(run: Run) -> list[dict[str, Any]]:
    """The run's ``metrics.jsonl`` lines (none when the file is gone)."""
    path = run.files.metrics
    return read_jsonl(path) if path.is_file() else []


def _end_epoch(lines: list[dict[str, Any]]) -> float:
    return max((float(line.get("epoch", 0.0)) for line in lines), default=0.0)


def _series(lines: list[dict[str, Any]], split: str, metric: str, offset: float):
    """(train-loss points, metric points) of one run, epochs shifted by ``offset``."""
    train = [
        (offset + float(line["epoch"]), float(line["train_loss"]))
        for line in lines
        if line.get("split") == "train" and line.get("train_loss") is not None
    ]
    evals = [
        (offset + float(line["epoch"]), float(line["metrics"][metric]))
        for line in lines
        if line.get("split") == split and metric in (line.get("metrics") or {})
    ]
    return sorted(train), sorted(evals)


def _phase_spans(lines: list[dict[str, Any]], offset: float) -> list[tuple[float, float, str]]:
    """(start, end, label) of every phase logged in ``lines``, in epochs shifted by ``offset``."""
    spans: dict[int, list[Any]] = {}
    for line in lines:
        index = int(line.get("phase", 0))
        epoch = offset + float(line.get("epoch", 0.0))
        span = spans.setdefault(index, [epoch, epoch, str(line.get("phase_label", ""))])
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
    return _save(figure, out_path)


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


def build_figures(runs_dir: Path, out_dir: Path) -> list[Path]:
    """The curves of every study and the weight histograms of its first-seed DSD run, as PNGs
    under ``out_dir``; returns the paths written. A run whose records cannot be drawn
    is skipped with a ``SkippedRunWarning`` naming it."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    runs = load_runs(Path(runs_dir))
    studies = group_studies(runs)
    for study in sorted(studies, key=lambda s: (s.paper_key, s.dataset, s.key)):
        stem = f"{_slug(study.task)}-{_slug(study.model)}_{_slug(study.first.result.dataset)}_{study.key}"
        try:
            written.append(plot_curves(study, out_dir / f"curves_{stem}.png"))
        except (ValueError, KeyError, TypeError) as err:
            warnings.warn(SkippedRunWarning(f"skipping the curves of study {study.key}: {err}"), stacklevel=2)
        for run in study.of("dsd")[:1]:  # the first seed's; other seeds: plot_histograms(run folder)
            if not run.files.histograms.is_file():
                continue
            r = run.result
            title = (
                f"{r.paper_key} on {r.dataset}, seed {r.seed}: weights of {{tensor}} at the five DSD moments"
            )
            try:
                tensor = load_histograms(run.files.histograms).get("tensor", "?")
                path = out_dir / f"histograms_{stem}_seed{r.seed}.png"
                written.append(plot_histograms(run.folder, path, title.format(tensor=tensor)))
            except ValueError as err:
                warnings.warn(
                    SkippedRunWarning(f"skipping the histograms of run {run.folder}: {err}"), stacklevel=2
                )
    for sweep in load_sweeps(Path(runs_dir), runs):
        written.append(plot_sweep(sweep, out_dir / f"sweep_{_slug(sweep.key)}.png"))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``dsd-suite figures``: draw every figure; skipped runs are listed on stderr."""
    parser = argparse.ArgumentParser(prog="dsd-suite figures", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("results/runs"), help="run records to read")
    parser.add_argument("--out", type=Path, default=Path("results/figures"), help="where the PNGs go")
    args = parser.parse_args(argv)
    with skipped_runs_on_stderr():
        paths = build_figures(args.runs, args.out)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
