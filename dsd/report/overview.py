"""The overview: one row per study, like the paper's Table 1, as a document and a CSV frame.

Each row shows a study's primary metric on its report split for baseline, sparse, DSD and the
equal-epoch dense control (mean ± std over seeds), the seeds, the paired gains of sparse over the
baseline, of DSD over the baseline and of DSD over the control (each with its 95 % interval), the
verdicts of DSD against the baseline and the control, and the paper's published baseline and DSD
figures with the dataset they were measured on. Paper rows we have not run are listed as
"not run", so the table is always the whole Table 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dsd.report.cells import (
    COMPARISONS,
    ROLES,
    Notes,
    comparison_label,
    metric_label,
    paper_text,
    runs_lines,
    verdict_names,
)
from dsd.report.paper import (
    TABLE1,
    PaperCell,
    in_table1_order,
    paper_cell,
    report_split,
    table1_order,
    unreadable_note,
)
from dsd.report.render import Document, Table
from dsd.report.stats import GAIN_RULE, MISSING, Gain, Stat, paired_gain, rows_where, stat_where
from dsd.report.studies import Study

OVERVIEW_INTRO = [
    "Ours: mean ± std over seeds (std with ddof=1; a single seed shows no ±). Sparse: the DSD run "
    "at the end of its first sparse phase. Dense control: the same phases, lengths and learning "
    "rates as DSD, never pruned. Seeds: one number when every column has the same seeds, else "
    "baseline/sparse/DSD/control.",
    GAIN_RULE,
    "Paper: Table 1 of Han et al., DSD (ICLR 2017), measured on the dataset and split named in "
    "each cell; ours are on the dataset in the 'dataset' column, with every departure from the "
    "paper's setup in brackets. Data: the first characters of the data's fingerprint (what the "
    "files hold, not where they lie); 'unverified' for runs recorded before fingerprints.",
]
#: The comparisons whose verdict the overview prints (the two questions DSD answers).
VERDICTS = (("dsd", "baseline"), ("dsd", "dense-control"))
OVERVIEW_HEADER = [
    "task/model", "dataset", "data", "split", "metric", "baseline", "sparse", "DSD", "dense control", "seeds",
    *(f"{comparison_label(*c)} (gain)" for c in COMPARISONS),
    *(f"{comparison_label(*c)} (verdict)" for c in VERDICTS),
    "paper baseline", "paper DSD",
]  # fmt: skip


def _slug(ours: str, other: str) -> str:
    return f"{ours}_vs_{other}".replace("-", "_")


OVERVIEW_CSV = [
    "paper_key", "dataset", "data", "study", "recipe", "start", "split", "metric", "higher_is_better",
    *(f"{r.replace('-', '_')}_{s}" for r in ROLES for s in ("mean", "std", "n")),
    *(f"{_slug(*c)}_{s}" for c in COMPARISONS for s in ("mean", "ci_low", "ci_high", "n", "verdict")),
    "paper_dataset", "paper_split", "paper_baseline", "paper_dsd",
]  # fmt: skip


@dataclass(frozen=True)
class Summary:
    """What the overview says about one study: its primary metric on its report split."""

    split: str
    metric: str
    spec: dict[str, Any]
    stats: dict[str, Stat]  # role -> over seeds
    gains: dict[tuple[str, str], Gain]  # (ours, other) -> paired by seed
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
            {c: paired_gain(values, "role", *c, higher, verdict_names(*c)) for c in COMPARISONS},
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
            blanks = [MISSING] * (len(OVERVIEW_HEADER) - 7)
            row = [key, "not run", MISSING, MISSING, labels.get(metric, metric), *blanks]
            rows.append([*row, paper_text(base, notes, True), paper_text(dsd, notes, True)])
            records.append({"paper_key": key, "dataset": "", "metric": metric, **_paper_record(base, dsd)})
            continue
        s = Summary.of(study, paper)
        twins = sum(
            (t.paper_key, t.dataset, t.data) == (study.paper_key, study.dataset, study.data) for t in studies
        )
        rows.append(
            [
                study.paper_key if twins == 1 else f"{study.paper_key} (recipe {study.recipe})",
                study.dataset,
                study.data_short,
                s.split,
                metric_label(s.metric, s.spec),
                *(s.stats[r].text() for r in ROLES),
                _seeds_text([s.stats[r].n for r in ROLES]),
                *(s.gains[c].text() for c in COMPARISONS),
                *(s.gains[c].verdict() for c in VERDICTS),
                paper_text(s.paper_baseline, notes, with_where=True),
                paper_text(s.paper_dsd, notes, with_where=True),
            ]
        )
        records.append(_overview_record(study, s))
    table = Table(
        "DSD against its baseline and the equal-epoch dense control",
        " ".join(
            ["Primary metric of each study; ↓ lower is better, ↑ higher is better.", *unreadable_note(paper)]
        ),
        OVERVIEW_HEADER,
        rows,
        notes.lines(),
    )
    intro = [*unreadable_note(paper), *OVERVIEW_INTRO]
    doc = Document("Overview (like the paper's Table 1)", intro, [table], runs_lines(listed))
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


def _gain_record(prefix: str, gain: Gain) -> dict[str, Any]:
    return {
        f"{prefix}_mean": gain.mean, f"{prefix}_ci_low": gain.low, f"{prefix}_ci_high": gain.high,
        f"{prefix}_n": gain.n, f"{prefix}_verdict": gain.verdict().replace("**", ""),
    }  # fmt: skip


def _overview_record(study: Study, s: Summary) -> dict[str, Any]:
    record: dict[str, Any] = {
        "paper_key": study.paper_key,
        "dataset": study.dataset,
        "data": study.data,
        "study": study.key,
        "recipe": study.recipe,
        "start": study.start,
        "split": s.split,
        "metric": s.metric,
        "higher_is_better": bool(s.spec["higher_is_better"]),
    }
    for role in ROLES:
        record.update(_stat_record(role.replace("-", "_"), s.stats[role]))
    for comparison in COMPARISONS:
        record.update(_gain_record(_slug(*comparison), s.gains[comparison]))
    record.update(_paper_record(s.paper_baseline, s.paper_dsd))
    return record
