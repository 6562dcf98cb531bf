"""The words every table shares: role and metric labels, footnotes, paper figures, the runs list.

Kept in one place so that the overview and the per-task tables name things the same way: a row
called "dense control" in one is never "control" in the other, and a paper figure always carries
the dataset it was measured on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from dsd.records import METHOD_TABLE, METHODS, STUDY_METHODS
from dsd.report.paper import PaperCell
from dsd.report.stats import MISSING, paired_gain, rows_where
from dsd.report.studies import ACDC_DENSE, Study

#: A dataset label holding this marks a stand-in (the tasks name theirs "digits stand-in", ...).
STANDIN = "stand-in"
#: What the tables compare: each method's final metrics, and the DSD run after its first sparse phase.
ROLES = ("baseline", "sparse", "dsd", "dense-control")
#: A row's name for each role: the methods' labels, the DSD run's sparse phase, AC/DC's two readings.
ROLE_LABELS = (
    {"sparse": "sparse"}
    | {name: method.label for name, method in METHOD_TABLE.items()}
    | {"acdc": "AC/DC sparse", ACDC_DENSE: "AC/DC dense"}
)
#: Every comparison the tables draw, as (ours, other): positive gains mean ``ours`` is better.
COMPARISONS = (("sparse", "baseline"), ("dsd", "baseline"), ("dsd", "dense-control"))
#: How a verdict names each role ("DSD better", "control better").
VERDICT_NAMES = (
    {"sparse": "sparse"}
    | {name: method.verdict for name, method in METHOD_TABLE.items()}
    | {"acdc": "AC/DC sparse", ACDC_DENSE: "AC/DC dense"}
)


def is_standin(label: str) -> bool:
    """Whether a dataset label (or any text naming one) names a stand-in."""
    return STANDIN in label


def comparison_label(ours: str, other: str) -> str:
    """``DSD vs dense control``: a comparison's name in headers and rows."""
    return f"{ROLE_LABELS[ours]} vs {ROLE_LABELS[other]}"


def verdict_names(ours: str, other: str) -> tuple[str, str]:
    return VERDICT_NAMES[ours], VERDICT_NAMES[other]


def gain_rows(
    values: pd.DataFrame,
    comparisons: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    specs: dict[str, Any],
    labels: dict[str, str] | None = None,
    verdicts: dict[str, str] | None = None,
) -> list[list[str]]:
    """Two rows per comparison (ours, other) of roles in ``values`` (``Study.role_values`` on one
    split): the gain of ours paired by seed, per metric, and its verdict. ``labels``/``verdicts``:
    a table's own names for the roles (default ``ROLE_LABELS``/``VERDICT_NAMES``)."""
    labels, verdicts = labels or ROLE_LABELS, verdicts or VERDICT_NAMES
    rows = []
    for ours, other in comparisons:
        gains = [
            paired_gain(
                rows_where(values, metric=m), "role", ours, other, specs[m]["higher_is_better"],
                (verdicts[ours], verdicts[other]),
            )
            for m in metrics
        ]  # fmt: skip
        name = f"{labels[ours]} vs {labels[other]}"
        rows += [
            [f"{name} (gain)", *(g.text() for g in gains)],
            [f"{name} (verdict)", *(g.verdict() for g in gains)],
        ]
    return rows


def metric_label(name: str, spec: dict[str, Any], arrow: bool = True) -> str:
    """``BLEU-4 ↑``, ``top-1 error (%) ↓``: the record's label, its unit and which way is better."""
    label = spec.get("label") or name
    if spec.get("percent"):
        label += " (%)"
    if arrow:
        label += " ↑" if spec.get("higher_is_better") else " ↓"
    return label


def start_text(start: str) -> str:
    """Where a baseline's weights came from, for people."""
    return start or "trained from scratch"


class Notes:
    """Footnotes of one table, numbered in order of first use."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, note: str) -> str:
        """`` [i]`` pointing at ``note`` (added if new); "" for no note."""
        if not note:
            return ""
        if note not in self.texts:
            self.texts.append(note)
        return f" [{self.texts.index(note) + 1}]"

    def lines(self) -> list[str]:
        return [f"[{i}] {text}" for i, text in enumerate(self.texts, 1)]


def paper_text(cell: PaperCell | None, notes: Notes, with_where: bool) -> str:
    """A paper figure as printed, with its dataset and split when asked and its footnote mark."""
    if cell is None:
        return MISSING
    where = f" ({cell.where})" if with_where else ""
    return f"{cell.value}{where}{notes.mark(cell.note)}"


def runs_lines(studies: Sequence[Study]) -> list[str]:
    """One line per study for a document's "Runs" section: recipe, scale, start and seeds."""
    lines = []
    for study in studies:
        seeds = "; ".join(
            f"{METHOD_TABLE[m].label} {','.join(str(r.result.seed) for r in study.of(m)) or 'none'}"
            for m in METHODS
            if m in STUDY_METHODS or study.of(m)
        )
        first = study.first.result
        facts = ", ".join(f"{k} {v}" for k, v in first.data_facts.items())
        data = f"data {study.data_short}" + (f" ({facts})" if facts else "")
        skipped = "; ".join(f"skipped {v['count']} {k}" for k, v in first.skipped.items())
        lines.append(
            f"{study.paper_key} on {study.dataset} (study {study.key}): recipe `{study.recipe}` "
            f"(epochs ×{first.epochs_scale:g}), start: {start_text(study.start)}; seeds: {seeds}; "
            f"{data}" + (f"; {skipped}" if skipped else "")
        )
    return lines
