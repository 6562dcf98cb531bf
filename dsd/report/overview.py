"""The overview: one row per study, like the paper's Table 1, as a document and a CSV frame.

Each row shows a study's primary metric on its report split for baseline, sparse, DSD and the
equal-epoch dense control (mean ± std over seeds), the seeds, DSD's paired gains over the baseline
and the control, a verdict against the control, and the paper's published baseline and DSD
figures with the dataset they were measured on. Paper rows we have not run are listed as
"not run", so the table is always the whole Table 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dsd.report.cells import ROLES, Notes, metric_label, paper_text, runs_lines
from dsd.report.paper import TABLE1, PaperCell, in_table1_order, paper_cell, report_split, table1_order
from dsd.report.render import Document, Table
from dsd.report.stats import MISSING, Stat, paired_gain, rows_where, stat_where, verdict
from dsd.report.studies import Study

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
OVERVIEW_CSV = [
    "paper_key", "dataset", "study", "recipe", "start", "split", "metric", "higher_is_better",
    *(f"{r.replace('-', '_')}_{s}" for r in ROLES for s in ("mean", "std", "n")),
    "gain_vs_baseline_mean", "gain_vs_baseline_std", "gain_vs_baseline_n",
    "gain_vs_control_mean", "gain_vs_control_std", "gain_vs_control_n", "dsd_vs_control",
    "paper_dataset", "paper_split", "paper_baseline", "paper_dsd",
]  # fmt: skip


@dataclass(frozen=True)
class Summary:
    """What the overview says about one study: its primary metric on its report split."""

    split: str
    metric: str
    spec: dict[str, Any]
    stats: dict[str, Stat]  # role -> over seeds
    gain_baseline: Stat
    gain_control: Stat
    paper_baseline: PaperCell | None
    paper_dsd: PaperCell | None

    @classmethod
    def of(cls, study: Study, paper: pd.DataFrame) -> Summary:
        split, metric = report_split(study, paper), study.primary
        spec = study.specs[metric]
        values = rows_where(study.role_values, split=split, metric=metric)
        higher = bool(spec["higher_is_better"])
        return cls(
            split,
            metric,
            spec,
            {role: stat_where(values, role=role) for role in ROLES},
            paired_gain(values, "role", "dsd", "baseline", higher),
            paired_gain(values, "role", "dsd", "dense-control", higher),
            paper_cell(paper, study.paper_key, metric, "baseline", split, prefer_table1=True),
            paper_cell(paper, study.paper_key, metric, "dsd", split, prefer_table1=True),
        )


def _seeds_text(counts: list[int]) -> str:
    return str(counts[0]) if len(set(counts)) == 1 else "/".join(str(c) for c in counts)


def overview(studies: Sequence[Study], paper: pd.DataFrame) -> tuple[Document, pd.DataFrame]:
    """The overview document (one table) and its CSV frame (one row per line of the table)."""
    notes = Notes()
    rows, records = [], []
    labels = {m: metric_label(m, spec) for s in studies for m, spec in s.specs.items()}
    listed = in_table1_order(studies, paper)
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
            rows.append([*row, paper_text(base, notes, True), paper_text(dsd, notes, True)])
            records.append({"paper_key": key, "dataset": "", "metric": metric, **_paper_record(base, dsd)})
            continue
        s = Summary.of(study, paper)
        rows.append(
            [
                study.paper_key,
                study.dataset,
                s.split,
                metric_label(s.metric, s.spec),
                *(s.stats[r].text() for r in ROLES),
                _seeds_text([s.stats[r].n for r in ROLES]),
                s.gain_baseline.text(signed=True),
                s.gain_control.text(signed=True),
                verdict(s.gain_control),
                paper_text(s.paper_baseline, notes, with_where=True),
                paper_text(s.paper_dsd, notes, with_where=True),
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
    doc = Document("Overview (like the paper's Table 1)", OVERVIEW_INTRO, [table], runs_lines(listed))
    frame = pd.DataFrame(records, columns=OVERVIEW_CSV)
    for column in frame.columns:
        if column.endswith("_n"):
            frame[column] = frame[column].astype("Int64")
    return doc, frame


def _paper_record(base: PaperCell | None, dsd: PaperCell | None) -> dict[str, Any]:
    cell = base or dsd
    return {
        "paper_dataset": cell.dataset if cell else "",
        "paper_split": cell.split if cell else "",
        "paper_baseline": base.value if base else "",
        "paper_dsd": dsd.value if dsd else "",
    }


def _stat_record(prefix: str, stat: Stat) -> dict[str, Any]:
    return {f"{prefix}_mean": stat.mean, f"{prefix}_std": stat.std, f"{prefix}_n": stat.n}


def _overview_record(study: Study, s: Summary) -> dict[str, Any]:
    record: dict[str, Any] = {
        "paper_key": study.paper_key,
        "dataset": study.dataset,
        "study": study.key,
        "recipe": study.recipe,
        "start": study.start,
        "split": s.split,
        "metric": s.metric,
        "higher_is_better": bool(s.spec["higher_is_better"]),
    }
    for role in ROLES:
        record.update(_stat_record(role.replace("-", "_"), s.stats[role]))
    record.update(_stat_record("gain_vs_baseline", s.gain_baseline))
    record.update(_stat_record("gain_vs_control", s.gain_control))
    record["dsd_vs_control"] = verdict(s.gain_control).replace("**", "")
    record.update(_paper_record(s.paper_baseline, s.paper_dsd))
    return record
