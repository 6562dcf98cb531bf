"""The forest plot: every paired gain of every study on one zero line, the figure read first.

One row per (study, comparison): DSD against the baseline, the dense control, AC/DC's dense and
sparse readings and each ablation the study ran, on the study's primary metric and report split.
A point is the mean gain over the paired seeds (positive: DSD better, whichever way the metric
goes), its bar the 95 % Student-t interval (``dsd.report.stats.Gain``); one seed draws a hollow
point and no bar, because one seed gives no interval. The paper's claimed gain (Table 1's
baseline − DSD; for speech, its equal-epoch dense model − DSD) is a red diamond on its row.
Rows measured on a stand-in are orange and say so. Lower-is-better metrics (errors, WER) and
higher-is-better ones (BLEU) have a panel each, since their units differ.

``forest_frame`` is the plot's data, one row per drawn interval (the golden test's subject);
``forest_figure`` draws it; ``plot_forest`` writes it as ``results/figures/forest.png``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from dsd.records import ABLATIONS
from dsd.records.figures import FOREST, FigureEntry
from dsd.report.cells import ROLE_LABELS, is_standin, verdict_names
from dsd.report.drawing import save_figure
from dsd.report.paper import in_table1_order, paper_cell, report_split
from dsd.report.stats import paired_gain, rows_where
from dsd.report.studies import ACDC_DENSE, Study

FOREST_COLUMNS = [
    "panel", "study", "paper_key", "dataset", "standin", "split", "metric", "comparison", "ours", "other",
    "mean", "low", "high", "n", "verdict", "paper_claim",
]  # fmt: skip
LOWER, HIGHER = "lower is better", "higher is better"
FOREST_CAPTION = (
    "Every paired gain of DSD, one row per study and comparison: the mean over seeds (positive: DSD "
    "better) with its 95 % interval; hollow: one seed, no interval; red diamond: the paper's claimed "
    "gain; orange: measured on a stand-in."
)


def comparisons(study: Study) -> list[tuple[str, str]]:
    """What DSD is compared with in ``study``: the baseline, the control, AC/DC's readings and
    each ablation, where the study has their runs."""
    roles = set(study.role_values["role"])
    wanted = [("dsd", "baseline"), ("dsd", "dense-control"), ("dsd", ACDC_DENSE), ("dsd", "acdc")]
    wanted += [("dsd", ablation) for ablation in ABLATIONS]
    return [c for c in wanted if set(c) <= roles]


def _claim(study: Study, paper: pd.DataFrame, other: str, split: str, higher: bool) -> float:
    """The paper's gain of DSD over ``other`` (the baseline, from Table 1 as the overview prints it;
    the equal-epoch dense model for speech, from the per-phase tables), both figures on one split;
    NaN when it published none."""
    if other not in ("baseline", "dense-control"):
        return math.nan
    table1 = other == "baseline"
    dsd = paper_cell(paper, study.paper_key, study.primary, "dsd", split, prefer_table1=True)
    if dsd is None:
        return math.nan
    if not table1:  # the same split as Table 1's figure, from the per-phase table
        dsd = paper_cell(paper, study.paper_key, study.primary, "dsd", dsd.split, prefer_table1=False)
        if dsd is None:
            return math.nan
    theirs = paper_cell(paper, study.paper_key, study.primary, other, dsd.split, prefer_table1=table1)
    if theirs is None or theirs.split != dsd.split:
        return math.nan
    gain = float(dsd.value) - float(theirs.value)
    return gain if higher else -gain


def forest_frame(studies: Sequence[Study], paper: pd.DataFrame) -> pd.DataFrame:
    """One row per drawn interval, in Table 1's study order (see ``FOREST_COLUMNS``)."""
    rows = []
    for study in in_table1_order(studies, paper):
        split, metric = report_split(study, paper), study.primary
        higher = bool(study.specs[metric]["higher_is_better"])
        values = rows_where(study.role_values, split=split, metric=metric)
        for ours, other in comparisons(study):
            gain = paired_gain(values, "role", ours, other, higher, verdict_names(ours, other))
            rows.append(
                {"panel": HIGHER if higher else LOWER, "study": study.key, "paper_key": study.paper_key,
                 "dataset": study.dataset, "standin": is_standin(study.dataset), "split": split,
                 "metric": metric, "comparison": f"{ROLE_LABELS[ours]} vs {ROLE_LABELS[other]}",
                 "ours": ours, "other": other, "mean": gain.mean, "low": gain.low, "high": gain.high,
                 "n": gain.n, "verdict": gain.verdict().replace("**", ""),
                 "paper_claim": _claim(study, paper, other, split, higher)}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=FOREST_COLUMNS)


def forest_figure(frame: pd.DataFrame) -> Figure:
    """The plot of ``forest_frame``: a panel per metric direction, a row per interval, one zero line.
    Intervals carry the artist id ``interval``, single-seed points ``single``, claims ``claim``."""
    panels = [p for p in (LOWER, HIGHER) if (frame["panel"] == p).any()] or [LOWER]
    heights = [max(2, int((frame["panel"] == p).sum())) for p in panels]
    figure = Figure(figsize=(12, 1.2 + 0.3 * sum(heights) + 0.9 * len(panels)), layout="constrained")
    axes = figure.subplots(
        len(panels), 1, sharex=True, gridspec_kw={"height_ratios": heights}, squeeze=False
    )[:, 0]  # one scale, so the panels' zero lines are one vertical line
    twins = frame.groupby(["paper_key", "dataset"])["study"].transform("nunique") > 1
    for ax, panel in zip(axes, panels, strict=True):
        rows = frame[frame["panel"] == panel].reset_index(drop=True)
        studies = twins[frame["panel"] == panel].reset_index(drop=True)
        for y, row in rows.iterrows():
            y = len(rows) - 1 - int(y)  # the first row on top
            color = "#d98200" if row["standin"] else "#1f4e9c"
            if row["n"] >= 2:
                ax.errorbar(row["mean"], y, xerr=[[row["mean"] - row["low"]], [row["high"] - row["mean"]]],
                            fmt="o", color=color, ms=5, capsize=3, lw=1.4, gid="interval")  # fmt: skip
            elif row["n"] == 1:
                ax.plot(row["mean"], y, "o", mfc="white", mec=color, ms=6, gid="single")
            if not math.isnan(row["paper_claim"]):
                ax.plot(row["paper_claim"], y, "D", color="#c0392b", ms=6, gid="claim")
        labels = [
            f"{r['paper_key']} [{'stand-in' if r['standin'] else r['dataset'].split(' [')[0]}]"
            + (f" study {r['study']}" if studies[i] else "")
            + f": {r['comparison']} (n={r['n']})"
            for i, r in rows.iterrows()
        ]
        ax.set_yticks(range(len(rows)), labels[::-1], fontsize=8)
        for tick, (_, r) in zip(ax.get_yticklabels(), rows[::-1].iterrows(), strict=True):
            tick.set_color("#b36b00" if r["standin"] else "#222222")
        ax.axvline(0.0, color="#333333", lw=1.0)
        ax.tick_params(labelbottom=True)
        ax.set_ylim(-0.7, max(len(rows), 2) - 0.3)
        ax.grid(axis="x", alpha=0.3)
        metrics = ", ".join(sorted(set(rows["metric"])))
        ax.set_xlabel(f"gain of DSD in the metric's own units ({metrics}); positive: DSD better", fontsize=9)
        ax.set_title(f"{panel} ({metrics})", fontsize=10, loc="left")
    figure.suptitle(
        "DSD against each comparison, paired by seed, 95 % intervals (hollow: one seed; red diamond: "
        "the paper's claim; orange: stand-in)",
        fontsize=10,
    )
    return figure


def forest_csv(frame: pd.DataFrame) -> str:
    """``forest_frame`` as CSV text (four decimals), as the golden test compares it."""
    return frame.to_csv(index=False, lineterminator="\n", float_format="%.4f")


def plot_forest(studies: Sequence[Study], paper: pd.DataFrame, out_path: Path) -> Path:
    """Draw the forest plot of ``studies`` to ``out_path`` (a PNG holding its entry); returns it.
    Its numbers are the tables' gains (the overview, the ablation and rivals tables)."""
    frame = forest_frame(studies, paper)
    standin = bool(frame["standin"].any())
    return save_figure(forest_figure(frame), out_path, FigureEntry(FOREST, FOREST_CAPTION, standin=standin))
