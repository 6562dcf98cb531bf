"""Which part of DSD matters: DSD beside its ablations and the dense control.

Each ablation changes one ingredient and keeps the baseline, the phases, their lengths and their
learning rates: ``dsd-random-mask`` prunes a random set of the same size instead of the smallest
weights, ``dsd-reinit`` re-initialises the pruned weights at re-dense instead of restarting them
from zero, ``dsd-reset-state`` restarts the whole optimizer state at re-dense (as AC/DC does)
instead of only the restored entries', and the dense control never prunes (what longer training
at lower rates alone gives).
The table pairs DSD with each by seed; a verdict speaks only where the interval excludes zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dsd.records import ABLATIONS
from dsd.report.cells import ROLE_LABELS, gain_rows, metric_label
from dsd.report.paper import report_split
from dsd.report.render import Table
from dsd.report.stats import rows_where, stat_where
from dsd.report.studies import Study

#: What DSD is compared with in the ablation table, in order.
AGAINST = (*ABLATIONS, "dense-control")


def has_ablations(study: Study) -> bool:
    return any(study.of(method) for method in ABLATIONS)


def ablation_table(study: Study, paper: pd.DataFrame) -> Table:
    """Rows DSD, each ablation and the control (mean ± std over seeds), then DSD's paired gain
    over each with its interval and verdict; a column per metric on the study's report split."""
    split = report_split(study, paper)
    values = rows_where(study.role_values, split=split)
    specs, metrics = study.specs, study.metric_order
    header = ["row", *(metric_label(m, specs[m]) for m in metrics)]
    rows = [
        [ROLE_LABELS[method], *(stat_where(values, role=method, metric=m).text() for m in metrics)]
        for method in ("dsd", *AGAINST)
        if study.of(method)
    ]
    rows += gain_rows(values, [("dsd", other) for other in AGAINST if study.of(other)], metrics, specs)
    caption = (
        f"Split: {split}. Every row starts from the same baseline with the same phases, lengths and "
        "learning rates; only the named ingredient differs. Gains paired by seed (see above)."
    )
    return Table(
        f"{study.paper_key} on {study.dataset}: ablations (study {study.key})", caption, header, rows
    )


def ablation_tables(studies: Sequence[Study], paper: pd.DataFrame) -> list[Table]:
    return [ablation_table(s, paper) for s in studies if has_ablations(s)]
