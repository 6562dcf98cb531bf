"""The sparsity sweeps: DSD's metric against its sparsity, the choice made on validation.

A sweep's manifest (``results/sweeps/*.json``, ``dsd.records.sweep``) names its runs: one
baseline and one dense control shared by every point, and DSD at each sparsity, over seeds.
Each sweep gets a table (one row per sparsity: the selection split's metric that chose it, the
report split's, DSD's gain over the control with its interval and verdict; the baseline and the
control beside) and a figure (the metric against sparsity with the seeds' spread, the baseline
and the control drawn as bands). The chosen sparsity is the best mean on the selection split,
the paper's protocol; it is then read on the report split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dsd.records import ResultsFolder
from dsd.records.figures import SWEEP, FigureEntry
from dsd.records.sweep import SweepManifest, read_manifest
from dsd.report.cells import is_standin, metric_label
from dsd.report.render import Document, Table
from dsd.report.runs import Run
from dsd.report.stats import GAIN_RULE, MISSING, Gain, Stat

SWEEP_CAPTION = (
    "DSD's metric against its sparsity, with the seeds' spread; the baseline and the dense control as bands."
)
SWEEP_CSV = ["sweep", "paper_key", "dataset", "method", "sparsity", "split", "metric", "mean", "std", "n",
             "selected"]  # fmt: skip


@dataclass
class Sweep:
    """One sweep's manifest and its finished runs."""

    key: str
    manifest: SweepManifest
    points: dict[float, list[Run]]  # sparsity -> the DSD runs
    baseline: list[Run]
    control: list[Run]

    @property
    def metric(self) -> str:
        return self.any_run.result.primary_metric

    @property
    def spec(self) -> dict[str, Any]:
        return self.any_run.result.metrics[self.metric]

    @property
    def any_run(self) -> Run:
        return next(r for runs in (*self.points.values(), self.baseline, self.control) for r in runs)

    def values(self, runs: Sequence[Run], split: str) -> pd.Series:
        """The final metric of ``runs`` on ``split``, by seed."""
        pairs = {r.result.seed: r.result.final.get(split, {}).get(self.metric) for r in runs}
        return pd.Series({k: v for k, v in pairs.items() if v is not None}, dtype=float).sort_index()

    def selected(self) -> float | None:
        """The sparsity with the best mean on the selection split (None without any run)."""
        split, higher = self.manifest.selection_split, self.spec["higher_is_better"]
        means = {s: self.values(runs, split).mean() for s, runs in self.points.items() if runs}
        means = {s: m for s, m in means.items() if pd.notna(m)}
        if not means:
            return None
        return (max if higher else min)(means, key=lambda s: (means[s], -s))


def load_sweeps(runs_dir: Path, runs: Sequence[Run]) -> list[Sweep]:
    """Every sweep manifest beside ``runs_dir`` whose runs are among ``runs`` (finished ones)."""
    results = ResultsFolder.at(Path(runs_dir).parent, runs=runs_dir)
    by_path = {Path(r.folder).resolve(): r for r in runs}
    sweeps = []
    for path in results.sweep_manifests():
        try:
            manifest = read_manifest(path)
        except ValueError:
            continue
        found: dict[float, list[Run]] = {}
        baseline: dict[Path, Run] = {}
        control: dict[Path, Run] = {}
        for key, folders in manifest.runs.items():
            for relative in folders:
                run = by_path.get((results.root / relative).resolve())
                if run is None:
                    continue
                method = run.result.method
                if method == "dsd":
                    found.setdefault(float(key), []).append(run)
                elif method == "baseline":
                    baseline[run.folder] = run
                elif method == "dense-control":
                    control[run.folder] = run
        if found:
            sweeps.append(Sweep(path.stem, manifest, dict(sorted(found.items())), [*baseline.values()],
                                [*control.values()]))  # fmt: skip
    return sweeps


def _stat(values: pd.Series) -> str:
    return Stat.of(values).text()


def sweep_table(sweep: Sweep) -> Table:
    m = sweep.manifest
    select, report, metric = m.selection_split, m.report_split, sweep.metric
    label = metric_label(metric, sweep.spec)
    chosen = sweep.selected()
    higher = sweep.spec["higher_is_better"]
    control = sweep.values(sweep.control, report)
    splits = list(dict.fromkeys([select, report]))  # one column when the choice and its reading share a split
    header = [
        "row", "sparsity", *(f"{split} {label}" for split in splits),
        f"DSD vs dense control ({report}, gain)", "DSD vs dense control (verdict)", "seeds",
    ]  # fmt: skip

    def metric_cells(runs: Sequence[Run]) -> list[str]:
        return [_stat(sweep.values(runs, split)) for split in splits]

    rows = [["baseline", "0", *metric_cells(sweep.baseline), MISSING, MISSING, str(len(sweep.baseline))]]
    for sparsity, runs in sweep.points.items():
        ours = sweep.values(runs, report)
        both = ours.index.intersection(control.index)
        diff = (ours[both] - control[both]) if higher else (control[both] - ours[both])
        gain = Gain.of(diff, "DSD", "control")
        name = "DSD, chosen" if sparsity == chosen else "DSD"
        rows.append([name, f"{sparsity:g}", *metric_cells(runs), gain.text(), gain.verdict(), str(len(runs))])
    rows.append(
        ["dense control", "0", *metric_cells(sweep.control), MISSING, MISSING, str(len(sweep.control))]
    )
    same = select == report
    caption = (
        f"Recipe {m.recipe} (epochs ×{m.epochs_scale:g}), every sparse phase scaled to the swept "
        f"sparsity; one baseline and one dense control shared by every point. The sparsity is chosen by "
        f"the best mean {select} {label} (the paper's protocol) and read on {report}."
        + (" This task has one evaluation split, so the choice and its reading share it: an optimistic "
           "reading." if same else "")
    )  # fmt: skip
    return Table(f"{m.paper_key} on {m.dataset}: sparsity sweep ({sweep.key})", caption, header, rows)


def sweeps_document(sweeps: Sequence[Sweep]) -> Document:
    intro = ["Generated by dsd.report from the sweeps' manifests and their finished runs.", GAIN_RULE]
    return Document("Sparsity sweeps", intro, [sweep_table(s) for s in sweeps], [])


def sweeps_frame(sweeps: Sequence[Sweep]) -> pd.DataFrame:
    rows = []
    for sweep in sweeps:
        m, chosen = sweep.manifest, sweep.selected()
        groups = [("baseline", 0.0, sweep.baseline), ("dense-control", 0.0, sweep.control)]
        groups += [("dsd", s, runs) for s, runs in sweep.points.items()]
        for method, sparsity, runs in groups:
            for split in dict.fromkeys([m.selection_split, m.report_split]):
                stat = Stat.of(sweep.values(runs, split))
                rows.append({"sweep": sweep.key, "paper_key": m.paper_key, "dataset": m.dataset,
                             "method": method, "sparsity": sparsity, "split": split, "metric": sweep.metric,
                             "mean": stat.mean, "std": stat.std, "n": stat.n,
                             "selected": method == "dsd" and sparsity == chosen})  # fmt: skip
    frame = pd.DataFrame(rows, columns=SWEEP_CSV)
    frame["n"] = frame["n"].astype("Int64")
    return frame


def plot_sweep(sweep: Sweep, out_path: Path) -> Path:
    """The report split's metric against sparsity: DSD's seeds as a mean with min-max error bars,
    the baseline and the dense control as horizontal bands (mean line, min-max shade)."""
    from matplotlib.figure import Figure

    from dsd.report.drawing import save_figure

    m = sweep.manifest
    split, chosen = m.report_split, sweep.selected()
    figure = Figure(figsize=(7, 4.2))
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.14, top=0.86)
    ax = figure.subplots()
    xs = list(sweep.points)
    for name, runs, color in (
        ("baseline", sweep.baseline, "#222222"),
        ("dense control", sweep.control, "#ff7f0e"),
    ):
        values = sweep.values(runs, split)
        if not values.empty:
            ax.axhspan(values.min(), values.max(), color=color, alpha=0.15, lw=0)
            ax.axhline(values.mean(), color=color, lw=1.2, ls="--", label=f"{name} (n={len(values)})")
    series = [sweep.values(sweep.points[s], split) for s in xs]
    means = [v.mean() for v in series]
    low = [mean - v.min() for mean, v in zip(means, series, strict=True)]
    high = [v.max() - mean for mean, v in zip(means, series, strict=True)]
    ax.errorbar(
        xs, means, yerr=[low, high], color="#1f77b4", marker="o", capsize=3, label="DSD (seeds: min-max)"
    )
    if chosen is not None:
        ax.axvline(
            chosen, color="#1f77b4", lw=0.8, ls=":", label=f"chosen on {m.selection_split}: {chosen:g}"
        )
    ax.set_xlabel("sparsity of the first sparse phase")
    ax.set_ylabel(f"{split} {metric_label(sweep.metric, sweep.spec)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    figure.suptitle(f"{m.paper_key} on {m.dataset}: sparsity sweep\nrecipe {m.recipe}", fontsize=9)
    caption = f"{m.paper_key} on {m.dataset}, sweep {sweep.key}: {SWEEP_CAPTION}"
    entry = FigureEntry(SWEEP, caption, sweep=sweep.key, standin=is_standin(m.dataset))
    return save_figure(figure, out_path, entry)
