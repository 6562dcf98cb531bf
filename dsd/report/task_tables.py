"""The detailed tables of one task, shaped like the paper's, and their tidy CSV frame.

- ``method_table``: rows baseline / sparse / DSD / control, the paired gains and a verdict per
  dataset, then the paper's rows; a column per architecture (metrics joined "a / b" as the paper
  prints top-1 / top-5) or, with one architecture, a column per metric (as it prints BLEU-1..4).
- ``phase_table``: for iterated recipes (D-S-D-S-D, the speech tables) one row per phase of each
  branch, with the paper's per-phase figures beside.
- ``task_document`` puts them together; ``task_frame`` is the CSV: one number per line, ours and
  the paper's, for other tools.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from dsd.records import METHODS, PhaseResult
from dsd.report.ablations import ablation_tables
from dsd.report.cells import (
    COMPARISONS,
    ROLE_LABELS,
    ROLES,
    Notes,
    comparison_label,
    metric_label,
    paper_text,
    runs_lines,
    start_text,
    verdict_names,
)
from dsd.report.paper import (
    PaperCell,
    in_table1_order,
    paper_cell,
    paper_phase_cell,
    report_split,
    unreadable_note,
)
from dsd.report.render import Document, Table
from dsd.report.rivals import rival_tables
from dsd.report.stats import GAIN_RULE, MISSING, Gain, Stat, paired_gain, rows_where, stat_where
from dsd.report.studies import Study


def task_order(studies: Sequence[Study], paper: pd.DataFrame) -> list[str]:
    """The tasks of ``studies``, in the order their first study appears in Table 1."""
    return list(dict.fromkeys(s.task for s in in_table1_order(studies, paper)))


def _column_label(study: Study, studies: Sequence[Study]) -> str:
    """The model's name, plus the study id when a model has several studies on one dataset."""
    twins = [s for s in studies if (s.model, s.dataset) == (study.model, study.dataset)]
    return study.model if len(twins) == 1 else f"{study.model} [study {study.key}]"


def method_table(task: str, studies: Sequence[Study], paper: pd.DataFrame) -> Table:
    """Rows baseline / sparse / DSD / control, the gains and a verdict per dataset, then the
    paper's rows; a column per architecture (metrics joined "a / b", as the paper prints
    top-1 / top-5) or, with one architecture, a column per metric (as the paper prints BLEU)."""
    notes = Notes()
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

    def row_cells(text_of: Callable[[str, str], str]) -> list[str]:
        """``text_of(column, metric)`` for every column and metric, laid out as the header."""
        per_column = [[text_of(c, m) for m in metrics] for c in columns]
        if one_model:
            return per_column[0]
        return [" / ".join(t) if any(x != MISSING for x in t) else MISSING for t in per_column]

    rows: list[list[str]] = []
    for dataset in sorted({s.dataset for s in studies}):
        values = {
            c: rows_where(s.role_values, split=split_of[s.key])
            for (c, d), s in cell_of.items()
            if d == dataset
        }

        def stat(c: str, m: str, role: str, values: dict = values) -> str:
            return stat_where(values[c], role=role, metric=m).text() if c in values else MISSING

        def gain(c: str, m: str, comparison: tuple[str, str], values: dict = values) -> Gain:
            if c not in values:
                return Gain(*verdict_names(*comparison))
            here = values[c][values[c]["metric"] == m]
            higher = specs[m]["higher_is_better"]
            return paired_gain(here, "role", *comparison, higher, verdict_names(*comparison))

        for role in ROLES:
            rows.append([dataset, ROLE_LABELS[role], *row_cells(lambda c, m, r=role: stat(c, m, r))])
        for comparison in COMPARISONS:
            name = comparison_label(*comparison)
            gains = row_cells(lambda c, m, k=comparison: gain(c, m, k).text())
            verdicts = row_cells(lambda c, m, k=comparison: gain(c, m, k).verdict())
            rows += [[dataset, f"{name} (gain)", *gains], [dataset, f"{name} (verdict)", *verdicts]]
    column_study = {c: s for (c, _), s in sorted(cell_of.items(), key=lambda kv: kv[0][1])}
    for role in ROLES:
        found: dict[tuple[str, str], PaperCell | None] = {}
        for c in columns:
            s = column_study[c]
            for m in metrics:
                found[c, m] = paper_cell(paper, s.paper_key, m, role, split_of[s.key], prefer_table1=False)
        where = sorted({cell.where for cell in found.values() if cell is not None})
        if where:
            texts = row_cells(lambda c, m, found=found: paper_text(found[c, m], notes, with_where=False))
            rows.append([f"paper ({', '.join(where)})", ROLE_LABELS[role], *texts])
    caption = (
        f"Split: {', '.join(sorted(set(split_of.values())))}. Ours: mean ± std over seeds on the dataset "
        "named in each row; gains paired by seed with their 95 % interval (see above). Rows "
        "'paper (...)': the paper's published figures, on the dataset and split named there."
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


def _schedule_text(phase: PhaseResult) -> str:
    """``D 2 ep @ 0.001``: the phase's label, length and learning rate."""
    unit = phase.unit or "epochs"
    text = phase.label or ""
    if phase.length is not None:
        text += f" {float(phase.length):g} {({'epochs': 'ep', 'steps': 'steps'}).get(unit, unit)}"
    if phase.lr is not None:
        text += f" @ {float(phase.lr):g}"
    return text


def _phase_entries(study: Study) -> list[tuple[str, int, str, str]]:
    """(method, phase index, the paper's name for the phase, its schedule) of every row."""
    template = {m: (study.of(m)[0].result.phases if study.of(m) else []) for m in METHODS}
    names = _phase_names(["dense"] + [p.kind for p in template["dsd"] or template["dense-control"]])
    base_runs = study.of("baseline")
    if base_runs and not base_runs[0].result.phases:
        entries = [("baseline", 0, f"start ({start_text(study.start)})", "given, not trained")]
    else:
        phase0 = base_runs[0].result.phases[0] if base_runs else None
        entries = [("baseline", 0, names[0], _schedule_text(phase0) if phase0 else MISSING)]
    for method in ("dsd", "dense-control"):
        for phase in template[method]:
            i = phase.index
            name = names[i] if method == "dsd" and i < len(names) else f"Dense (control) {i}"
            entries.append((method, i, name, _schedule_text(phase)))
    return entries


def phase_table(study: Study, paper: pd.DataFrame) -> Table:
    """One row per phase of the baseline, the DSD branch and the dense control, every split and
    metric as columns, DSD's gain over the control at the same phase, and the paper's per-phase
    figures beside (matched by branch and phase index)."""
    notes = Notes()
    specs, primary = study.specs, study.primary
    split = report_split(study, paper)
    values = study.phase_values
    splits = [s for s in study.first.result.splits if s in set(values["split"])]
    metrics = study.metric_order
    theirs = paper[(paper["paper_key"] == study.paper_key) & (paper["phase"] != "")]
    pcols = theirs[["split", "metric", "dataset"]].drop_duplicates().values.tolist()
    header = [
        "dataset", "run", "phase", "schedule",
        *(f"{sp} {metric_label(m, specs[m])}" for sp in splits for m in metrics),
        f"DSD vs control, same phase: gain ({split} {metric_label(primary, specs[primary], arrow=False)})",
        "DSD vs control, same phase: verdict",
        "seeds",
        *(f"paper ({ds}) {sp} {metric_label(m, specs.get(m, {}), arrow=False)}" for sp, m, ds in pcols),
    ]  # fmt: skip
    rows = []
    for method, index, name, schedule in _phase_entries(study):
        here = rows_where(values, method=method, phase=index)
        ours = [stat_where(here, split=sp, metric=m).text() for sp in splits for m in metrics]
        gain = Gain(*verdict_names("dsd", "dense-control"))
        if method == "dsd":
            pair = rows_where(values, phase=index, split=split, metric=primary)
            higher = specs[primary]["higher_is_better"]
            gain = paired_gain(
                pair, "method", "dsd", "dense-control", higher, verdict_names("dsd", "dense-control")
            )
        seeds = str(here["seed"].nunique()) if not here.empty else "0"
        figures = [
            paper_text(paper_phase_cell(paper, study.paper_key, m, sp, method, index), notes, False)
            for sp, m, _ in pcols
        ]
        rows.append(
            [
                study.dataset,
                ROLE_LABELS[method],
                str(index),
                f"{name}: {schedule}",
                *ours,
                gain.text(),
                gain.verdict(),
                seeds,
                *figures,
            ]
        )
    caption = (
        "Like the paper's speech tables. Ours: mean ± std over seeds on the dataset named in "
        "each row; 'paper (...)' columns: the paper's figures on the dataset named in the header, "
        "beside the branch and phase they belong to (the paper's equal-epoch dense baseline sits by "
        "the control phase with as many epochs). Gains paired by seed with their 95 % interval (see above)."
    )
    title = f"{study.paper_key} on {study.dataset}, per phase"
    return Table(title, caption, header, rows, notes.lines())


def task_document(task: str, studies: Sequence[Study], paper: pd.DataFrame) -> Document:
    """``<task>.md``/``.tex``: the method table of its plain studies, a phase table per iterated one."""
    studies = in_table1_order(studies, paper)
    iterated = [s for s in studies if s.iterated]
    plain = [s for s in studies if not s.iterated]
    tables = ([method_table(task, plain, paper)] if plain else []) + [phase_table(s, paper) for s in iterated]
    tables += ablation_tables(studies, paper)
    tables += rival_tables(studies, paper)
    intro = [
        *unreadable_note(paper),
        "Generated by dsd.report from the finished runs; every row names the dataset it was "
        "measured on, every paper figure the paper's dataset.",
        GAIN_RULE,
    ]
    return Document(f"{task}: detailed results beside the paper", intro, tables, runs_lines(studies))


TASK_CSV = ["source", "table", "paper_key", "dataset", "study", "method", "phase", "split", "metric",
            "mean", "std", "n", "seeds", "note"]  # fmt: skip


def _csv_number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def task_frame(studies: Sequence[Study], paper: pd.DataFrame) -> pd.DataFrame:
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

    ordered = in_table1_order(studies, paper)
    for study in ordered:
        for (method, phase, split, metric), group in study.phase_values.groupby(
            ["method", "phase", "split", "metric"]
        ):
            add(study, method, str(phase), split, metric, group)
        finals = study.role_values[study.role_values["role"] != "sparse"]
        for (method, split, metric), group in finals.groupby(["role", "split", "metric"]):
            add(study, method, "final", split, metric, group)
    keys = list(dict.fromkeys(s.paper_key for s in ordered))
    for _, row in paper[paper["paper_key"].isin(keys)].sort_values("order").iterrows():
        rows.append(
            {"source": "paper", "table": row["source"], "paper_key": row["paper_key"],
             "dataset": row["dataset"], "method": row["method"], "phase": row["phase"] or "final",
             "split": row["split"], "metric": row["metric"], "mean": row["value"], "note": row["note"]}
        )  # fmt: skip
    frame = pd.DataFrame(rows, columns=TASK_CSV)
    frame["n"] = frame["n"].astype("Int64")
    return frame
