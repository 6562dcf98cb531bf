"""The rivals table, the optimizer-state ablation's row, AC/DC's published figures and the forest
plot, from the hand-made records in ``tests/fixtures/rivals`` (kept apart from the main fixture so
that its golden tables stay as they were).

Golden files (``tests/golden/rivals``): the tables the builder writes for those records and the
forest plot's data; regenerate after an intended change with ``UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from dsd.report.finished import Finished
from dsd.report.forest import forest_csv, forest_figure, forest_frame
from dsd.report.page import build_page
from dsd.report.paper import load_paper
from dsd.report.stats import paired_differences, rows_where
from dsd.report.tables import build_tables

HERE = Path(__file__).resolve().parents[1]
RIVALS = HERE / "fixtures" / "rivals" / "runs"
GOLDEN = HERE / "golden" / "rivals"


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rival-tables")
    build_tables(RIVALS, None, out)
    return out


def _lines(markdown: str, title: str) -> list[list[str]]:
    """The cells of every line of the table whose title starts with ``title``, its header first."""
    section = markdown[markdown.index(f"## {title}") :].split("\n## ", 1)[0]
    return [
        cells
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in section.splitlines())
        if len(cells) > 2 and not cells[0].startswith("-")
    ]


def _rows(markdown: str, title: str) -> dict[str, list[str]]:
    """The rows of that table: first cell -> the others."""
    return {cells[0]: cells[1:] for cells in _lines(markdown, title)}


def _golden(name: str, text: str) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / name).write_text(text, encoding="utf-8")
    assert text == (GOLDEN / name).read_text(encoding="utf-8"), (
        f"{name} differs from tests/golden/rivals/{name}; if intended, rerun with UPDATE_GOLDEN=1 and review"
    )


def test_golden_tables(tables: Path) -> None:
    names = sorted(p.name for p in tables.iterdir())
    assert names == sorted(
        f"{s}.{e}" for s in ("overview", "imagenet", "flickr8k") for e in ("md", "tex", "csv")
    )
    for name in names:
        _golden(name, (tables / name).read_text(encoding="utf-8"))


def test_the_rivals_table_pairs_by_seed(tables: Path) -> None:
    """DSD vs AC/DC dense on resnet18: the mean of the per-seed differences, seeds 0-2, computed here
    from the records themselves; and with one AC/DC seed gone, only the seeds both have count."""
    md = (tables / "imagenet.md").read_text()
    rows = _rows(md, "imagenet/resnet18 on digits stand-in [28 px images]: DSD beside AC/DC")
    assert list(rows)[1:7] == [
        "baseline", "DSD", "AC/DC dense", "AC/DC sparse", "DSD's sparse phase", "dense control",
    ]  # fmt: skip
    (study,) = [s for s in Finished.load(RIVALS).studies if s.paper_key == "imagenet/resnet18"]
    values = rows_where(study.role_values, split="val", metric="top1_err")
    differences = paired_differences(values, "role", "dsd", "acdc-dense", higher_is_better=False)
    assert list(differences.index) == [0, 1, 2]
    assert rows["DSD vs AC/DC dense (gain)"][0].startswith(f"{differences.mean():+.2f} [")
    assert rows["AC/DC dense vs dense control (verdict)"][0] == "AC/DC dense better"
    assert rows["DSD vs AC/DC dense (verdict)"][0] == "no clear difference"
    assert rows["AC/DC sparse vs DSD's sparse phase (verdict)"][0] == "**DSD sparse better**"


def test_pairing_counts_only_the_seeds_both_have(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(RIVALS / "imagenet-resnet18", runs / "imagenet-resnet18")
    shutil.rmtree(next(runs.glob("imagenet-resnet18/acdc-*/seed2")))
    build_tables(runs, None, tmp_path / "t")
    title = "imagenet/resnet18 on digits stand-in [28 px images]: DSD beside"
    rows = _rows((tmp_path / "t" / "imagenet.md").read_text(), title)
    (study,) = Finished.load(runs).studies
    values = rows_where(study.role_values, split="val", metric="top1_err")
    differences = paired_differences(values, "role", "dsd", "acdc-dense", higher_is_better=False)
    assert list(differences.index) == [0, 1]
    gain = rows["DSD vs AC/DC dense (gain)"][0]
    assert gain.startswith(f"{differences.mean():+.2f} [") and gain.endswith("(n=2)")
    assert rows["DSD vs dense control (gain)"][0].endswith("(n=3)")  # DSD and the control still have 3


def test_one_seed_gives_no_verdict_and_the_published_acdc_figures_sit_beside_resnet50(tables: Path) -> None:
    md = (tables / "imagenet.md").read_text()
    rows = _rows(md, "imagenet/resnet50 on ImageNet: DSD beside AC/DC")
    verdicts = {k: v for k, v in rows.items() if k.endswith("(verdict)")}
    assert len(verdicts) == 4 and all(v == ["1 seed: no verdict"] * 2 for v in verdicts.values())
    assert all(re.fullmatch(r"[+-]\d+\.\d\d \(n=1\)", v[0]) for k, v in rows.items() if k.endswith("(gain)"))
    published = _lines(md, "imagenet/resnet50: AC/DC's published figures")[1:]
    assert md.count("AC/DC's published figures") == 1  # resnet18 has none: none follows its table
    shipped = pd.read_csv(HERE.parent / "dsd" / "report" / "published" / "rivals" / "acdc.csv", dtype=str)
    shown = [cells[7].split(" ")[0] for cells in published]
    assert (
        shown
        == list(shipped["value"])
        == ["76.45", "75.03", "73.14", "68.48", "75.04", "73.28", "76.09", "74.29"]
    )


def test_the_ablation_table_gains_the_optimizer_state_row(tables: Path) -> None:
    rows = _rows(
        (tables / "imagenet.md").read_text(), "imagenet/resnet18 on digits stand-in [28 px images]: ablations"
    )
    assert rows["DSD, optimizer state reset at re-dense"]
    assert rows["DSD vs DSD, optimizer state reset at re-dense (verdict)"][0] == "DSD better"


# ---------------------------------------------------------------------- the forest plot
@pytest.fixture(scope="module")
def forest() -> pd.DataFrame:
    return forest_frame(Finished.load(RIVALS).studies, load_paper())


def test_forest_golden(forest: pd.DataFrame) -> None:
    _golden("forest.csv", forest_csv(forest))


def test_the_forest_draws_one_interval_per_comparison(forest: pd.DataFrame) -> None:
    """Every comparison of every study: DSD vs baseline, control, AC/DC dense and sparse, the
    ablation; an interval where there are two seeds or more, a hollow point for one, a diamond
    where the paper claims a gain; a panel per metric direction, each with the zero line."""
    expected = {"resnet18": 5, "resnet50": 4, "neuraltalk": 4}
    assert {k: int(forest["paper_key"].str.endswith(k).sum()) for k in expected} == expected
    figure = forest_figure(forest)
    drawn = {gid: len(figure.findobj(lambda a, g=gid: a.get_gid() == g)) for gid in ("single", "claim")}
    drawn["interval"] = sum(len(ax.containers) for ax in figure.get_axes())  # one errorbar each
    assert drawn == {
        "interval": int((forest["n"] >= 2).sum()),
        "single": int((forest["n"] == 1).sum()),
        "claim": int(forest["paper_claim"].notna().sum()),
    }
    assert drawn["interval"] == 9 and drawn["single"] == 4 and drawn["claim"] == 3
    axes = figure.get_axes()
    assert [ax.get_title(loc="left").split(" (")[0] for ax in axes] == ["lower is better", "higher is better"]
    for ax in axes:
        assert any(list(line.get_xdata()) == [0, 0] for line in ax.get_lines())  # the zero line
    assert axes[0].get_xlim() == axes[1].get_xlim()  # one scale: one zero line down the figure
    resnet18 = forest[forest["paper_key"] == "imagenet/resnet18"]
    assert (
        resnet18["standin"].all() and not forest[forest["paper_key"] != "imagenet/resnet18"]["standin"].any()
    )
    claim = forest[(forest["paper_key"] == "imagenet/resnet18") & (forest["other"] == "baseline")][
        "paper_claim"
    ]
    assert math.isclose(float(claim.iloc[0]), 30.4 - 29.2)  # Table 1: 30.4 % -> 29.2 %


def test_the_page_opens_with_the_forest_and_shows_the_rivals_and_ablation_tables(tmp_path: Path) -> None:
    from dsd.report.figures import draw_figures

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draw_figures(Finished.load(RIVALS), tmp_path / "figures")
        page = build_page(RIVALS, tmp_path / "figures", tmp_path / "report.html").read_text()
    forest = page.index('<section id="forest"')
    assert forest < page.index('<nav id="contents">') < page.index('<section id="overview">')
    assert page.count('<img src="data:image/png;base64,') == len(list((tmp_path / "figures").glob("*.png")))
    assert page[forest:].index("<img") < page[forest:].index("</section>")  # the forest's own figure
    assert "DSD beside AC/DC at equal compute" in page and "DSD, optimizer state reset at re-dense" in page
    assert "AC/DC&#x27;s published figures" in page or "AC/DC's published figures" in page
