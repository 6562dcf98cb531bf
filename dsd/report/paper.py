"""The paper's published numbers and how the tables look them up.

The numbers ship inside the package (``dsd/report/published/*.csv``), so the tables find them
whatever the working directory and wherever the results folder is. Every file has the same
columns (see ``published/README.md``): one published figure per line, keyed by ``paper_key``,
metric, split, the branch (``method``) and the phase it was measured after. ``value`` keeps the
printed digits.

The paper also decides how our studies are shown beside it: each on the split the paper reports
its primary metric on (``report_split``), in the row order of its Table 1 (``in_table1_order``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from dsd.records import METHODS
from dsd.report.runs import ReportWarning

if TYPE_CHECKING:
    from dsd.report.studies import Study

TABLE1 = "Table 1"
PAPER_COLUMNS = (
    "paper_key", "dataset", "source", "row", "method", "phase", "sparsity", "epochs",
    "split", "metric", "value", "note",
)  # fmt: skip


#: The published figures shipped with the package.
PUBLISHED = Path(__file__).with_name("published")


class PaperNumbersWarning(ReportWarning):
    """The paper's numbers could not be read; the tables show ours alone and say so."""


def load_paper(paper_dir: Path | None = None) -> pd.DataFrame:
    """Every ``*.csv`` under ``paper_dir`` (default: the copy shipped with the package) as one frame.

    ``value`` keeps the published text (its digits); ``number`` is its float. Errors name the
    file and line; a folder without any CSV is an error too (an empty table of the paper's
    numbers would look like a paper that published nothing).
    """
    folder = Path(paper_dir) if paper_dir is not None else PUBLISHED
    paths = sorted(folder.glob("*.csv"))
    if not paths:
        raise ValueError(f"no published figures (*.csv) in {folder}")
    frames = []
    for path in paths:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if tuple(df.columns) != PAPER_COLUMNS:
            raise ValueError(
                f"{path}: columns should be {', '.join(PAPER_COLUMNS)}; got {', '.join(df.columns)}"
            )
        for i, row in df.iterrows():
            where = f"{path}:{int(i) + 2}"
            try:
                float(row["value"])
                for column in ("phase", "sparsity", "epochs"):
                    if row[column]:
                        float(row[column])
            except ValueError:
                raise ValueError(f"{where}: value, phase, sparsity and epochs must be numbers") from None
            if row["method"] not in METHODS:
                raise ValueError(f"{where}: method {row['method']!r} is none of {', '.join(METHODS)}")
        df["file"] = path.name
        frames.append(df)
    paper = pd.concat(frames, ignore_index=True)
    paper["number"] = paper["value"].astype(float)
    paper["phase_no"] = paper["phase"].map(lambda t: float(t) if t else math.inf)  # "" = final
    paper["sparsity_no"] = paper["sparsity"].map(lambda t: float(t) if t else 0.0)
    paper["order"] = range(len(paper))
    return paper


def read_paper(paper_dir: Path | None) -> pd.DataFrame:
    """The paper's numbers; when they cannot be read, a ``PaperNumbersWarning`` and an empty
    frame that makes every table say so in its header."""
    try:
        return load_paper(paper_dir)
    except (OSError, ValueError) as err:
        warnings.warn(PaperNumbersWarning(f"the paper's numbers could not be read: {err}"), stacklevel=2)
        return no_paper(str(err))


def no_paper(reason: str) -> pd.DataFrame:
    """An empty frame of the paper's numbers that remembers why it is empty (``attrs``)."""
    empty = pd.DataFrame(columns=[*PAPER_COLUMNS, "file", "number", "phase_no", "sparsity_no", "order"])
    empty.attrs["unreadable"] = reason
    return empty


def unreadable_note(paper: pd.DataFrame) -> list[str]:
    """The line a document prints when the paper's numbers could not be read (else none)."""
    reason = paper.attrs.get("unreadable")
    return (
        [f"**The paper's numbers could not be read ({reason}); every paper column is empty.**"]
        if reason
        else []
    )


@dataclass(frozen=True)
class PaperCell:
    value: str
    dataset: str
    split: str
    note: str

    @property
    def where(self) -> str:
        return f"{self.dataset} {self.split}"


def _paper_role(rows: pd.DataFrame, role: str) -> pd.DataFrame:
    """The paper's rows that play ``role``, per source table (sparse: first sparse phase; DSD:
    last phase of the dsd branch; dense control: last phase of the control)."""
    picked = []
    for _, group in rows.groupby("source", sort=False):
        if role == "baseline":
            part = group[group["method"] == "baseline"]
        elif role == "sparse":
            part = group[(group["method"] == "dsd") & (group["sparsity_no"] > 0)]
            part = part[part["phase_no"] == part["phase_no"].min()]
        else:
            part = group[group["method"] == role]
            part = part[part["phase_no"] == part["phase_no"].max()]
        picked.append(part)
    return pd.concat(picked) if picked else rows.iloc[0:0]


def paper_cell(
    paper: pd.DataFrame, paper_key: str, metric: str, role: str, split: str | None, prefer_table1: bool
) -> PaperCell | None:
    """The paper's figure for a role, preferring the same split, then Table 1 (or the detailed
    tables, with more digits), then file order."""
    rows = paper[(paper["paper_key"] == paper_key) & (paper["metric"] == metric)]
    rows = _paper_role(rows, role)
    if rows.empty:
        return None
    rank = rows.assign(
        _split=(rows["split"] != split).astype(int),
        _table=((rows["source"] == TABLE1) != prefer_table1).astype(int),
    ).sort_values(["_split", "_table", "order"])
    best = rank.iloc[0]
    return PaperCell(best["value"], best["dataset"], best["split"], best["note"])


def paper_phase_cell(
    paper: pd.DataFrame, paper_key: str, metric: str, split: str, method: str, phase: int
) -> PaperCell | None:
    """The paper's figure measured after ``phase`` of ``method`` (the per-phase speech tables)."""
    rows = paper[
        (paper["paper_key"] == paper_key)
        & (paper["metric"] == metric)
        & (paper["split"] == split)
        & (paper["method"] == method)
        & (paper["phase_no"] == phase)
    ]
    if rows.empty:
        return None
    best = rows.sort_values("order").iloc[0]
    return PaperCell(best["value"], best["dataset"], best["split"], best["note"])


def table1_order(paper: pd.DataFrame) -> list[str]:
    """The paper keys in Table 1's row order."""
    return list(dict.fromkeys(paper.loc[paper["source"] == TABLE1, "paper_key"]))


def in_table1_order(studies: Sequence[Study], paper: pd.DataFrame) -> list[Study]:
    """``studies`` in Table 1's row order (studies of rows it lacks last), then by name."""
    rank = {key: i for i, key in enumerate(table1_order(paper))}
    return sorted(studies, key=lambda s: (rank.get(s.paper_key, len(rank)), s.paper_key, s.dataset, s.recipe))


def report_split(study: Study, paper: pd.DataFrame) -> str:
    """The split the study is reported on: the paper's split for its primary metric when our
    runs have it (Table 1 first), else the task's first split."""
    values = study.role_values
    ours = set(values.loc[values["metric"] == study.primary, "split"])
    rows = paper[(paper["paper_key"] == study.paper_key) & (paper["metric"] == study.primary)]
    rows = rows.assign(_t=(rows["source"] != TABLE1).astype(int)).sort_values(["_t", "order"])
    splits = study.first.result.splits
    for split in [*rows["split"], *splits]:
        if split in ours:
            return split
    return sorted(ours)[0] if ours else splits[0]
