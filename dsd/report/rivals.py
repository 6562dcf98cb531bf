"""What a researcher would run instead, at equal compute: DSD beside AC/DC and the dense control.

AC/DC (``acdc``, see ``dsd.acdc``) branches from the same baseline as DSD and trains as many
epochs, alternating sparse and dense phases and resetting the optimizer state at each return to
dense; one run gives two models, its sparse end and the dense model at the end of its last dense
phase. The rivals table puts both beside DSD, DSD's own sparse phase (a sparse model from the
same run as DSD, earlier in it) and the dense control, and pairs them by seed:

- DSD vs AC/DC dense: two dense models of equal cost; the question the table exists for;
- DSD vs the dense control, and AC/DC dense vs the dense control: does either beat plain training;
- AC/DC sparse vs DSD's sparse phase: two sparse models at the same sparsity.

Where AC/DC's authors published figures for the model (ResNet-50 on ImageNet), a second table
lists them as published (``published/rivals/*.csv``, see ``published/README.md``): their runs
were 100 or 200 epochs from scratch at 80-98 % sparsity, so they are context, not a match for ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dsd.records import RIVALS
from dsd.report.cells import ROLE_LABELS, VERDICT_NAMES, gain_rows, metric_label
from dsd.report.paper import PUBLISHED, report_split
from dsd.report.render import Table
from dsd.report.stats import rows_where, stat_where
from dsd.report.studies import ACDC_DENSE, Study

#: The rows of the rivals table, in order (roles of ``Study.role_values``).
RIVAL_ROWS = ("baseline", "dsd", ACDC_DENSE, "acdc", "sparse", "dense-control")
#: Its names for the roles: DSD's sparse phase is not a method of its own here.
RIVAL_LABELS = ROLE_LABELS | {"sparse": "DSD's sparse phase"}
RIVAL_VERDICTS = VERDICT_NAMES | {"sparse": "DSD sparse"}
#: Its comparisons, (ours, other): positive gains mean ``ours`` is better.
RIVAL_COMPARISONS = (
    ("dsd", ACDC_DENSE),
    ("dsd", "dense-control"),
    (ACDC_DENSE, "dense-control"),
    ("acdc", "sparse"),
)
#: The rivals' published figures, shipped with the package.
RIVALS_PUBLISHED = PUBLISHED / "rivals"
RIVAL_COLUMNS = (
    "paper_key", "dataset", "source", "row", "reading", "sparsity", "mask", "epochs", "split", "metric",
    "value", "note",
)  # fmt: skip


def has_rivals(study: Study) -> bool:
    return any(study.of(method) for method in RIVALS)


def load_rival_figures(folder: Path = RIVALS_PUBLISHED) -> pd.DataFrame:
    """Every ``*.csv`` under ``folder`` as one frame (values kept as printed); errors name the file
    and line. No folder: no figures (the rivals tables then show ours alone)."""
    frames = []
    for path in sorted(Path(folder).glob("*.csv")):
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if tuple(df.columns) != RIVAL_COLUMNS:
            raise ValueError(
                f"{path}: columns should be {', '.join(RIVAL_COLUMNS)}; got {', '.join(df.columns)}"
            )
        for i, row in df.iterrows():
            try:
                float(row["value"]), float(row["sparsity"]), float(row["epochs"])
            except ValueError:
                raise ValueError(f"{path}:{int(i) + 2}: value, sparsity and epochs must be numbers") from None
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RIVAL_COLUMNS)


def _sparsities(study: Study, method: str) -> str:
    found = {p.sparsity for r in study.of(method) for p in r.result.phases if p.kind == "sparse"}
    return "/".join(f"{s:.0%}" for s in sorted(found)) or "?"


def rival_table(study: Study, paper: pd.DataFrame) -> Table:
    """Rows baseline, DSD, AC/DC dense, AC/DC sparse, DSD's sparse phase and the control (mean ± std
    over seeds), then the paired gains of ``RIVAL_COMPARISONS`` with their verdicts; a column per
    metric on the study's report split."""
    split = report_split(study, paper)
    values = rows_where(study.role_values, split=split)
    specs, metrics = study.specs, study.metric_order
    present = set(values["role"])
    rows = [
        [RIVAL_LABELS[role], *(stat_where(values, role=role, metric=m).text() for m in metrics)]
        for role in RIVAL_ROWS
        if role in present
    ]
    compared = [c for c in RIVAL_COMPARISONS if set(c) <= present]
    rows += gain_rows(values, compared, metrics, specs, RIVAL_LABELS, RIVAL_VERDICTS)
    caption = (
        f"Split: {split}. Every branch starts from the same baseline and trains as many epochs and "
        f"optimizer steps at the same learning rate at each moment. AC/DC alternates sparse and dense "
        f"phases at {_sparsities(study, 'acdc')} sparsity (the AC/DC paper's ResNet-50 schedule after its "
        "warm-up, scaled to the branch), recomputes the mask at each sparse phase, resets the whole "
        "optimizer state at each return to dense and ends sparse: AC/DC sparse is its end, AC/DC dense the "
        "model at the end of its last dense phase. DSD's sparse phase: the DSD run at the end of its first "
        f"sparse phase ({_sparsities(study, 'dsd')}). Gains paired by seed (see above)."
    )
    title = f"{study.paper_key} on {study.dataset}: DSD beside AC/DC at equal compute (study {study.key})"
    header = ["row", *(metric_label(m, specs[m]) for m in metrics)]
    return Table(title, caption, header, rows)


def published_table(paper_key: str, figures: pd.DataFrame) -> Table | None:
    """AC/DC's figures for ``paper_key`` as published (None when there are none)."""
    mine = figures[figures["paper_key"] == paper_key]
    if mine.empty:
        return None
    header = [
        "row",
        "reading",
        "sparsity",
        "mask",
        "epochs",
        "dataset, split",
        "metric",
        "published",
        "source",
    ]
    rows = [
        [r["row"], r["reading"], f"{float(r['sparsity']):.0%}", r["mask"], r["epochs"],
         f"{r['dataset']} {r['split']}", r["metric"], r["value"] + (f" ({r['note']})" if r["note"] else ""),
         r["source"]]
        for _, r in mine.iterrows()
    ]  # fmt: skip
    caption = (
        "AC/DC's authors' figures, as published (top1_acc: top-1 accuracy in %, not our error); trained from "
        "scratch for the epochs shown, at these sparsities: context for ours, not the same experiment."
    )
    return Table(f"{paper_key}: AC/DC's published figures ({mine['dataset'].iloc[0]})", caption, header, rows)


def rival_tables(
    studies: Sequence[Study], paper: pd.DataFrame, figures: pd.DataFrame | None = None
) -> list[Table]:
    """A rivals table per study with AC/DC runs, each model's published AC/DC figures after its last."""
    figures = load_rival_figures() if figures is None else figures
    tables: list[Table] = []
    shown = [s for s in studies if has_rivals(s)]
    for i, study in enumerate(shown):
        tables.append(rival_table(study, paper))
        if all(s.paper_key != study.paper_key for s in shown[i + 1 :]):
            published = published_table(study.paper_key, figures)
            tables += [published] if published is not None else []
    return tables
