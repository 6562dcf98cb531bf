"""Tables from run records: our numbers beside the paper's, as markdown, LaTeX and CSV.

Reads every finished run under ``results/runs`` (see the run-record contract in ``dsd.run.records``)
and writes to ``results/tables``:

- ``overview.*``: one row per study (task + model on one dataset and recipe), like the paper's
  Table 1: the primary metric for baseline, sparse, DSD and the equal-epoch dense control, as
  mean ± std over seeds, the seeds, DSD's gain over the baseline and over the control (paired by
  seed; positive = DSD better, whichever way the metric goes), a plain verdict of DSD against the
  control, and the paper's published baseline and DSD figures with the dataset they were measured
  on. Paper rows we have not run are listed as "not run", so the table is always the whole Table 1.
- ``<task>.*``: one detailed table per task, shaped like the paper's: rows baseline / sparse /
  DSD / control and a column per architecture (metrics joined "a / b" as the paper prints
  top-1 / top-5) or per metric (one architecture: BLEU-1..4); for iterated recipes (D-S-D-S-D,
  the speech tables) one row per phase of each branch with the paper's per-phase figures beside.
  The CSV is a tidy dump (one number per line) of ours and the paper's, for other tools.

Every row names its dataset and every paper figure names the paper's, so a stand-in result can
never be read as a paper-scale one. Unfinished runs (no ``done``) and corrupt ones (unreadable
JSON, missing or ill-typed keys) are skipped with a ``SkippedRunWarning`` naming the folder.
Nothing is tuned here: when DSD does not beat the control the tables say so.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dsd.files import atomic_write_text
from dsd.report.paper import TABLE1, PaperCell, load_paper, paper_cell, paper_phase_cell, table1_order
from dsd.report.render import Document, Table, render_latex, render_markdown
from dsd.report.runs import METHODS, Study, group_studies, load_runs, skipped_runs_on_stderr

ROLES = ("baseline", "sparse", "dsd", "dense-control")
ROLE_LABELS = {"baseline": "baseline", "sparse": "sparse", "dsd": "DSD", "dense-control": "dense control"}
DECIMALS = 2
MISSING = "—"


@dataclass(frozen=True)
class Stat:
    """Mean, sample std (ddof=1; NaN for one seed) and count of a set of per-seed numbers."""

    mean: float = math.nan
    std: float = math.nan
    n: int = 0

    @classmethod
    def of(cls, values: pd.Series) -> Stat:
        values = values.dropna()
        if values.empty:
            return cls()
        std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        return cls(float(values.mean()), std, len(values))

    def text(self, signed: bool = False) -> str:
        if self.n == 0:
            return MISSING
        mean = f"{self.mean:+.{DECIMALS}f}" if signed else f"{self.mean:.{DECIMALS}f}"
        return mean if self.n < 2 else f"{mean} ± {self.std:.{DECIMALS}f}"


def _where(df: pd.DataFrame, **equal: Any) -> pd.DataFrame:
    """The rows of ``df`` whose columns equal the given values."""
    mask = pd.Series(True, index=df.index)
    for column, value in equal.items():
        mask &= df[column] == value
    return df[mask]


def _stat(df: pd.DataFrame, **equal: Any) -> Stat:
    return Stat.of(_where(df, **equal)["value"])


def _paired_gain(df: pd.DataFrame, key: str, ours: Any, other: Any, higher_is_better: bool) -> Stat:
    """DSD's gain over ``other`` per seed (positive = DSD better), from rows where ``df[key]``
    is ``ours`` or ``other``; only seeds that have both count."""
    a = df[df[key] == ours].set_index("seed")["value"]
    b = df[df[key] == other].set_index("seed")["value"]
    both = a.index.intersection(b.index)
    diff = (a[both] - b[both]) if higher_is_better else (b[both] - a[both])
    return Stat.of(diff.sort_index())


def _verdict(gain: Stat) -> str:
    """DSD against the control, in words; a loss is shown in bold."""
    if gain.n == 0:
        return MISSING
    noise = " (within seed spread)" if gain.n > 1 and abs(gain.mean) <= gain.std else ""
    if round(gain.mean, DECIMALS) == 0:
        return "tie"
    return f"DSD better{noise}" if gain.mean > 0 else f"**control better{noise}**"


def report_split(study: Study, paper: pd.DataFrame) -> str:
    """The split the study is reported on: the paper's split for its primary metric when our
    runs have it (Table 1 first), else the task's first split."""
    ours = set(_where(study.role_values, metric=study.primary)["split"])
    rows = paper[(paper["paper_key"] == study.paper_key) & (paper["metric"] == study.primary)]
    rows = rows.assign(_t=(rows["source"] != TABLE1).astype(int)).sort_values(["_t", "order"])
    for split in rows["split"]:
        if split in ours:
            return split
    for split in study.first.splits:
        if split in ours:
            return split
    return sorted(ours)[0] if ours else study.first.splits[0]


# ====================================================================== formatting
def metric_label(name: str, spec: dict[str, Any], arrow: bool = True) -> str:
    label = spec.get("label") or name
    if spec.get("percent"):
        label += " (%)"
    if arrow:
        label += " ↑" if spec.get("higher_is_better") else " ↓"
    return label


def _start_text(start: str) -> str:
    return start or "trained from scratch"


class _Notes:
    """Footnotes of one table, numbered in order of first use."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, note: str) -> str:
        if not note:
            return ""
        if note not in self.texts:
            self.texts.append(note)
        return f" [{self.texts.index(note) + 1}]"

    def lines(self) -> list[str]:
        return [f"[{i}] {text}" for i, text in enumerate(self.texts, 1)]


def _paper_text(cell: PaperCell | None, notes: _Notes, with_where: bool) -> str:
    if cell is None:
        return MISSING
    where = f" ({cell.where})" if with_where else ""
    return f"{cell.value}{where}{notes.mark(cell.note)}"


# ====================================================================== the overview
OVERVIEW_INTRO = [
    "Ours: mean ± std over seeds (std with ddof=1; a single seed shows no ±). Sparse: the DSD run "
    "at the end of its first sparse phase. Dense control: the same phases, lengths and learning "
    "rates as DSD, never pruned. Gains are paired by seed and positive when DSD is better, "
    "whichever way the metric goes. Seeds: one number when every column has the same seeds, else "
    "baseline/sparse/DSD/control.",
    "Paper: Table 1 of Han et al., DSD (ICLR 2017), measured on the dataset and split named in "
    "each cell; ours are on the dataset in the 'dataset' column.",
]
OVERVIEW_HEADER = [
    "task/model", "dataset", "split", "metric", "baseline", "sparse", "DSD", "dense control",
    "seeds", "DSD gain vs baseline", "DSD gain vs control", "DSD vs control",
    "paper baseline", "paper DSD",
]  # fmt: skip


def _seeds_text(counts: list[int]) -> str:
    return str(counts[0]) if len(set(counts)) == 1 else "/".join(str(c) for c in counts)


def _study_summary(study: Study, paper: pd.DataFrame) -> dict[str, Any]:
    split, metric = report_split(study, paper), study.primary
    spec = study.specs[metric]
    values = _where(study.role_values, split=split, metric=metric)
    stats = {role: _stat(values, role=role) for role in ROLES}
    higher = bool(spec["higher_is_better"])
    return {
        "split": split,
        "metric": metric,
        "spec": spec,
        "stats": stats,
        "gain_baseline": _paired_gain(values, "role", "dsd", "baseline", higher),
        "gain_control": _paired_gain(values, "role", "dsd", "dense-control", higher),
        "paper_baseline": paper_cell(paper, study.paper_key, metric, "baseline", split, prefer_table1=True),
        "paper_dsd": paper_cell(paper, study.paper_key, metric, "dsd", split, prefer_table1=True),
    }


def _ordered(studies: list[Study], paper: pd.DataFrame) -> list[Study]:
    order = table1_order(paper)
    rank = {key: i for i, key in enumerate(order)}
    return sorted(studies, key=lambda s: (rank.get(s.paper_key, len(rank)), s.paper_key, s.dataset, s.recipe))


def overview(studies: list[Study], paper: pd.DataFrame) -> tuple[Document, pd.DataFrame]:
    notes = _Notes()
    rows, records = [], []
    labels = {m: metric_label(m, spec) for s in studies for m, spec in s.specs.items()}
    listed = _ordered(studies, paper)
    covered = {s.paper_key for s in studies}
    entries: list[tuple[str, Study | None]] = [(s.paper_key, s) for s in listed]
    entries += [(key, None) for key in table1_order(paper) if key not in covered]
    rank = {key: i for i, key in enumerate(table1_order(paper))}
    entries.sort(key=lambda e: rank.get(e[0], len(rank)))  # stable: studies keep their order
    for key, study in entries:
        if study is None:  # in the paper's Table 1, not run by us
            metric = paper.loc[(paper["paper_key"] == key) & (paper["source"] == TABLE1), "metric"].iloc[0]
            base = paper_cell(paper, key, metric, "baseline", None, prefer_table1=True)
            dsd = paper_cell(paper, key, metric, "dsd", None, prefer_table1=True)
            row = [key, "not run", MISSING, labels.get(metric, metric), *([MISSING] * 8)]
            rows.append([*row, _paper_text(base, notes, True), _paper_text(dsd, notes, True)])
            records.append({"paper_key": key, "dataset": "", "metric": metric, **_paper_record(base, dsd)})
            continue
        s = _study_summary(study, paper)
        st = s["stats"]
        rows.append(
            [
                study.paper_key,
                study.dataset,
                s["split"],
                metric_label(s["metric"], s["spec"]),
                *(st[r].text() for r in ROLES),
                _seeds_text([st[r].n for r in ROLES]),
                s["gain_baseline"].text(signed=True),
                s["gain_control"].text(signed=True),
                _verdict(s["gain_control"]),
                _paper_text(s["paper_baseline"], notes, with_where=True),
                _paper_text(s["paper_dsd"], notes, with_where=True),
            ]
        )
        records.append(_overview_record(study, s))
    table = Table(
        "DSD against its baseline and the equal-epoch dense control",
        "Primary metric of each study; ↓ lower is better, ↑ higher is better.",
        OVERVIEW_HEADER,
        rows,
        notes.lines(),
    )
    doc = Document("Overview (like the paper's Table 1)", OVERVIEW_INTRO, [table], _runs_lines(listed))
    frame = pd.DataFrame(records, columns=_OVERVIEW_CSV)
    for column in frame.columns:
        if column.endswith("_n"):
            frame[column] = frame[column].astype("Int64")
    return doc, frame


_OVERVIEW_CSV = [
    "paper_key", "dataset", "study", "recipe", "start", "split", "metric", "higher_is_better",
    *(f"{r.replace('-', '_')}_{s}" for r in ROLES for s in ("mean", "std", "n")),
    "gain_vs_baseline_mean", "gain_vs_baseline_std", "gain_vs_baseline_n",
    "gain_vs_control_mean", "gain_vs_control_std", "gain_vs_control_n", "dsd_vs_control",
    "paper_dataset", "paper_split", "paper_baseline", "paper_dsd",
]  # fmt: skip


def _paper_record(base: PaperCell | None, dsd: PaperCell | None) -> dict[str, Any]:
    cell = base or dsd
    return {
        "paper_dataset": cell.dataset if cell else "",
        "paper_split": cell.split if cell else "",
        "paper_baseline": base.value if base else "",
        "paper_dsd": dsd.value if dsd else "",
    }


def _overview_record(study: Study, s: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "paper_key": study.paper_key,
        "dataset": study.dataset,
        "study": study.key,
        "recipe": study.recipe,
        "start": study.start,
        "split": s["split"],
        "metric": s["metric"],
        "higher_is_better": bool(s["spec"]["higher_is_better"]),
    }
    for role in ROLES:
        stat = s["stats"][role]
        prefix = role.replace("-", "_")
        record.update({f"{prefix}_mean": stat.mean, f"{prefix}_std": stat.std, f"{prefix}_n": stat.n})
    for name in ("baseline", "control"):
        stat = s[f"gain_{name}"]
        record.update(
            {f"gain_vs_{name}_mean": stat.mean, f"gain_vs_{name}_std": stat.std, f"gain_vs_{name}_n": stat.n}
        )
    record["dsd_vs_control"] = _verdict(s["gain_control"]).replace("**", "")
    record.update(_paper_record(s["paper_baseline"], s["paper_dsd"]))
    return record


def _runs_lines(studies: list[Study]) -> list[str]:
    lines = []
    for study in studies:
        seeds = "; ".join(
            f"{ROLE_LABELS[m]} {','.join(str(r.seed) for r in study.of(m)) or 'none'}" for m in METHODS
        )
        scale = study.first.record.get("epochs_scale", 1.0)
        lines.append(
            f"{study.paper_key} on {study.dataset} (study {study.key}): recipe `{study.recipe}` "
            f"(epochs ×{scale:g}), start: {_start_text(study.start)}; seeds: {seeds}"
        )
    return lines


# ====================================================================== per-task tables
def _task_order(studies: list[Study], paper: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(s.task for s in _ordered(studies, paper)))


def _column_label(study: Study, studies: list[Study]) -> str:
    """The model's name, plus the study id when a model has several studies on one dataset."""
    twins = [s for s in studies if (s.model, s.dataset) == (study.model, study.dataset)]
    return study.model if len(twins) == 1 else f"{study.model} [study {study.key}]"


def method_table(task: str, studies: list[Study], paper: pd.DataFrame) -> Table:
    """Rows baseline / sparse / DSD / control, the gains and a verdict per dataset, then the
    paper's rows; a column per architecture (metrics joined "a / b", as the paper prints
    top-1 / top-5) or, with one architecture, a column per metric (as the paper prints BLEU)."""
    notes = _Notes()
    specs = studies[0].specs
    metrics = studies[0].metric_order
    cell_of = {(_column_label(s, studies), s.dataset): s for s in studies}
    columns = list(dict.fromkeys(label for label, _ in cell_of))
    split_of = {s.key: report_split(s, paper) for s in studies}
    one_model = len(columns) == 1
    metric_head = " / ".join(metric_label(m, specs[m], arrow=False) for m in metrics)
    header = ["dataset", "row"] + (
        [metric_label(m, specs[m]) for m in metrics]
        if one_model
        else [f"{c}: {metric_head}" for c in columns]
    )

    def row_cells(text_of: Any) -> list[str]:
        """``text_of(column, metric)`` for every column and metric, laid out as the header."""
        per_column = [[text_of(c, m) for m in metrics] for c in columns]
        if one_model:
            return per_column[0]
        return [" / ".join(t) if any(x != MISSING for x in t) else MISSING for t in per_column]

    rows: list[list[str]] = []
    for dataset in sorted({s.dataset for s in studies}):
        values = {
            c: _where(s.role_values, split=split_of[s.key]) for (c, d), s in cell_of.items() if d == dataset
        }

        def stat(c: str, m: str, role: str, values: dict = values) -> str:
            return _stat(values[c], role=role, metric=m).text() if c in values else MISSING

        def gain(c: str, m: str, other: str, values: dict = values) -> Stat:
            if c not in values:
                return Stat()
            here = values[c][values[c]["metric"] == m]
            return _paired_gain(here, "role", "dsd", other, specs[m]["higher_is_better"])

        for role in ROLES:
            rows.append([dataset, ROLE_LABELS[role], *row_cells(lambda c, m, r=role: stat(c, m, r))])
        rows.append(
            [
                dataset,
                "DSD gain vs baseline",
                *row_cells(lambda c, m: gain(c, m, "baseline").text(signed=True)),
            ]
        )
        rows.append(
            [
                dataset,
                "DSD gain vs control",
                *row_cells(lambda c, m: gain(c, m, "dense-control").text(signed=True)),
            ]
        )
        rows.append(
            [dataset, "DSD vs control", *row_cells(lambda c, m: _verdict(gain(c, m, "dense-control")))]
        )
    column_study = {c: s for (c, _), s in sorted(cell_of.items(), key=lambda kv: kv[0][1])}
    for role in ROLES:
        found: dict[tuple[str, str], PaperCell | None] = {}
        for c in columns:
            s = column_study[c]
            for m in metrics:
                found[c, m] = paper_cell(paper, s.paper_key, m, role, split_of[s.key], prefer_table1=False)
        where = sorted({cell.where for cell in found.values() if cell is not None})
        if where:
            texts = row_cells(lambda c, m, found=found: _paper_text(found[c, m], notes, with_where=False))
            rows.append([f"paper ({', '.join(where)})", ROLE_LABELS[role], *texts])
    caption = (
        f"Split: {', '.join(sorted(set(split_of.values())))}. Ours: mean ± std over seeds on the dataset "
        "named in each row; gains paired by seed, positive = DSD better. Rows 'paper (...)': the "
        "paper's published figures, on the dataset and split named there."
    )
    return Table(f"{task}: {metric_head}", caption, header, rows, notes.lines())


def _phase_names(kinds: list[str]) -> list[str]:
    """The paper's names for a D-S-D-S-D sequence: Dense iter 0, Sparse iter 1, Dense iter 1, ..."""
    names, iteration = [], 0
    for kind in kinds:
        if kind == "sparse":
            iteration += 1
        names.append(f"{'Sparse' if kind == 'sparse' else 'Dense'} iter {iteration}")
    return names


def _schedule_text(phase: dict[str, Any]) -> str:
    unit = {"epochs": "ep", "steps": "steps"}.get(phase.get("unit", "epochs"), phase.get("unit", ""))
    length, lr = phase.get("length"), phase.get("lr")
    text = phase.get("label", "")
    if length is not None:
        text += f" {float(length):g} {unit}"
    if lr is not None:
        text += f" @ {float(lr):g}"
    return text


def phase_table(study: Study, paper: pd.DataFrame) -> Table:
    """One row per phase of the baseline, the DSD branch and the dense control, every split and
    metric as columns, DSD's gain over the control at the same phase, and the paper's per-phase
    figures beside (matched by branch and phase index)."""
    notes = _Notes()
    specs, primary = study.specs, study.primary
    split = report_split(study, paper)
    values = study.phase_values
    splits = [s for s in study.first.splits if s in set(values["split"])]
    metrics = study.metric_order
    pcols = (
        paper[(paper["paper_key"] == study.paper_key) & (paper["phase"] != "")][
            ["split", "metric", "dataset"]
        ]
        .drop_duplicates()
        .values.tolist()
    )
    header = [
        "dataset", "run", "phase", "schedule",
        *(f"{sp} {metric_label(m, specs[m])}" for sp in splits for m in metrics),
        f"DSD gain vs control, same phase ({split} {metric_label(primary, specs[primary], arrow=False)})",
        "seeds",
        *(f"paper ({ds}) {sp} {metric_label(m, specs.get(m, {}), arrow=False)}" for sp, m, ds in pcols),
    ]  # fmt: skip
    rows = []
    template = {m: (study.of(m)[0].phases if study.of(m) else []) for m in METHODS}
    dsd_kinds = ["dense"] + [p["kind"] for p in template["dsd"] or template["dense-control"]]
    names = _phase_names(dsd_kinds)
    entries: list[tuple[str, int, str, str]] = []
    base_runs = study.of("baseline")
    if base_runs and not base_runs[0].phases:
        entries.append(("baseline", 0, f"start ({_start_text(study.start)})", "given, not trained"))
    else:
        phase0 = base_runs[0].phases[0] if base_runs else {}
        entries.append(("baseline", 0, names[0], _schedule_text(phase0) if phase0 else MISSING))
    for method in ("dsd", "dense-control"):
        for phase in template[method]:
            i = phase["index"]
            name = names[i] if method == "dsd" and i < len(names) else f"Dense (control) {i}"
            entries.append((method, i, name, _schedule_text(phase)))
    for method, index, name, schedule in entries:
        here = values[(values["method"] == method) & (values["phase"] == index)]
        ours = [_stat(here, split=sp, metric=m).text() for sp in splits for m in metrics]
        gain = MISSING
        if method == "dsd":
            pair = values[
                (values["phase"] == index) & (values["split"] == split) & (values["metric"] == primary)
            ]
            gain = _paired_gain(
                pair, "method", "dsd", "dense-control", specs[primary]["higher_is_better"]
            ).text(signed=True)
        seeds = str(here["seed"].nunique()) if not here.empty else "0"
        theirs = [
            _paper_text(
                paper_phase_cell(paper, study.paper_key, m, sp, method, index), notes, with_where=False
            )
            for sp, m, _ in pcols
        ]
        rows.append(
            [
                study.dataset,
                ROLE_LABELS[method],
                str(index),
                f"{name}: {schedule}",
                *ours,
                gain,
                seeds,
                *theirs,
            ]
        )
    caption = (
        "Like the paper's speech tables. Ours: mean ± std over seeds on the dataset named in "
        "each row; 'paper (...)' columns: the paper's figures on the dataset named in the header, "
        "beside the branch and phase they belong to (the paper's equal-epoch dense baseline sits by "
        "the control phase with as many epochs). Gains paired by seed, positive = DSD better."
    )
    title = f"{study.paper_key} on {study.dataset}, per phase"
    return Table(title, caption, header, rows, notes.lines())


def task_document(task: str, studies: list[Study], paper: pd.DataFrame) -> Document:
    studies = _ordered(studies, paper)
    iterated = [s for s in studies if s.iterated]
    plain = [s for s in studies if not s.iterated]
    tables = ([method_table(task, plain, paper)] if plain else []) + [phase_table(s, paper) for s in iterated]
    intro = [
        "Generated by dsd.report from the finished runs; every row names the dataset it was "
        "measured on, every paper figure the paper's dataset."
    ]
    return Document(f"{task}: detailed results beside the paper", intro, tables, _runs_lines(studies))


TASK_CSV = ["source", "table", "paper_key", "dataset", "study", "method", "phase", "split", "metric",
            "mean", "std", "n", "seeds", "note"]  # fmt: skip


def _csv_number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def task_frame(studies: list[Study], paper: pd.DataFrame) -> pd.DataFrame:
    """Tidy, one number per line: ours (mean / std / n over seeds per method and phase; phase
    'final' = the runs' final metrics) and the paper's figures (``table`` names the paper's
    table; ``mean`` holds its printed digits) for the same models."""
    rows: list[dict[str, Any]] = []

    def add(study: Study, method: str, phase: str, split: str, metric: str, group: pd.DataFrame) -> None:
        stat = Stat.of(group.sort_values("seed")["value"])
        seeds = " ".join(str(seed) for seed in sorted(group["seed"]))
        rows.append(
            {"source": "ours", "paper_key": study.paper_key, "dataset": study.dataset, "study": study.key,
             "method": method, "phase": phase, "split": split, "metric": metric,
             "mean": _csv_number(stat.mean), "std": _csv_number(stat.std), "n": stat.n, "seeds": seeds}
        )  # fmt: skip

    for study in _ordered(studies, paper):
        for (method, phase, split, metric), group in study.phase_values.groupby(
            ["method", "phase", "split", "metric"]
        ):
            add(study, method, str(phase), split, metric, group)
        finals = study.role_values[study.role_values["role"] != "sparse"]
        for (method, split, metric), group in finals.groupby(["role", "split", "metric"]):
            add(study, method, "final", split, metric, group)
    keys = list(dict.fromkeys(s.paper_key for s in _ordered(studies, paper)))
    for _, row in paper[paper["paper_key"].isin(keys)].sort_values("order").iterrows():
        rows.append(
            {"source": "paper", "table": row["source"], "paper_key": row["paper_key"],
             "dataset": row["dataset"], "method": row["method"], "phase": row["phase"] or "final",
             "split": row["split"], "metric": row["metric"], "mean": row["value"], "note": row["note"]}
        )  # fmt: skip
    frame = pd.DataFrame(rows, columns=TASK_CSV)
    frame["n"] = frame["n"].astype("Int64")
    return frame


# ====================================================================== entry points
def _write(out_dir: Path, stem: str, doc: Document, frame: pd.DataFrame) -> list[Path]:
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.tex", out_dir / f"{stem}.csv"]
    atomic_write_text(paths[0], render_markdown(doc))
    atomic_write_text(paths[1], render_latex(doc))
    atomic_write_text(paths[2], frame.to_csv(index=False, lineterminator="\n", float_format="%.4f"))
    return paths


def build_tables(runs_dir: Path, paper_dir: Path, out_dir: Path) -> list[Path]:
    """Write ``overview.{md,tex,csv}`` and ``<task>.{md,tex,csv}`` to ``out_dir``; returns the
    paths written. Unfinished or corrupt runs are skipped with a ``SkippedRunWarning``."""
    paper = load_paper(Path(paper_dir))
    studies = group_studies(load_runs(Path(runs_dir)))
    out_dir = Path(out_dir)
    doc, frame = overview(studies, paper)
    written = _write(out_dir, "overview", doc, frame)
    for task in _task_order(studies, paper):
        mine = [s for s in studies if s.task == task]
        written += _write(out_dir, task, task_document(task, mine, paper), task_frame(mine, paper))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``dsd-suite tables``: build the tables; skipped runs are listed on stderr."""
    parser = argparse.ArgumentParser(prog="dsd-suite tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("results/runs"), help="run records to read")
    parser.add_argument("--paper", type=Path, default=Path("results/paper"), help="the paper's numbers (CSV)")
    parser.add_argument("--out", type=Path, default=Path("results/tables"), help="where the tables go")
    parser.add_argument("--show", action="store_true", help="print the overview (markdown) when done")
    args = parser.parse_args(argv)
    with skipped_runs_on_stderr():
        paths = build_tables(args.runs, args.paper, args.out)
    for path in paths:
        print(path)
    if args.show:
        print()
        print(Path(args.out, "overview.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
