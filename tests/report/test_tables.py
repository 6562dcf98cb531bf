"""The results aggregator: golden files over committed fake records, skipped runs, the paper's
numbers, and the rules that keep the tables honest (dataset labels, sign convention, verdicts).

Regenerate the golden files after an intended change, then review the diff before committing:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/report/test_tables.py

(and the fixture records themselves with ``python tests/fixtures/make_records.py tests/fixtures/records``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from dsd.report.paper import PUBLISHED, load_paper
from dsd.report.runs import SkippedRunWarning, UnverifiedDataWarning, load_runs
from dsd.report.stats import Stat
from dsd.report.studies import group_studies
from dsd.report.tables import build_tables
from tasks.cli import main

HERE = Path(__file__).resolve().parents[1]
RECORDS = HERE / "fixtures" / "records"
GOLDEN = HERE / "golden" / "tables"
PAPER = PUBLISHED  # the paper's numbers, as the package ships them

sys.path.insert(0, str(HERE / "fixtures"))
from make_records import StudyWriter  # noqa: E402

BROKEN = {
    "imagenet-resnet18/dense-control-b410e558/seed3": "not valid JSON",
    "imagenet-resnet18/dsd-14aa4922/seed3": "missing key 'final'",
    "wsj-deepspeech/dsd-fe013d11/seed2": "unfinished (no 'done' marker)",
}


def _build(out: Path, runs: Path = RECORDS) -> tuple[list[Path], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = build_tables(runs, PAPER, out)
    return paths, [str(w.message) for w in caught if issubclass(w.category, SkippedRunWarning)]


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> tuple[Path, list[Path], list[str]]:
    out = tmp_path_factory.mktemp("tables")
    paths, skipped = _build(out)
    return out, paths, skipped


def test_golden_files(tables):
    """Every output file equals its committed golden copy, byte for byte."""
    out, paths, _ = tables
    names = sorted(p.name for p in paths)
    assert names == sorted(p.name for p in out.iterdir()), "build_tables returned a list that misses files"
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir(parents=True)
        for path in paths:
            shutil.copyfile(path, GOLDEN / path.name)
    assert names == sorted(p.name for p in GOLDEN.iterdir()), "set of output files changed"
    for name in names:
        assert (out / name).read_bytes() == (GOLDEN / name).read_bytes(), (
            f"{name} differs from tests/golden/tables/{name}; if intended, rerun with UPDATE_GOLDEN=1 "
            "and review the diff"
        )


def test_expected_files(tables):
    _, paths, _ = tables
    assert [p.name for p in paths] == [
        f"{stem}.{ext}"
        for stem in ("overview", "imagenet", "flickr8k", "wsj", "sweeps")
        for ext in ("md", "tex", "csv")
    ]


def test_unfinished_and_corrupt_runs_are_skipped_with_a_warning_naming_each(tables):
    _, _, skipped = tables
    assert len(skipped) == len(BROKEN)
    for folder, reason in BROKEN.items():
        hits = [m for m in skipped if str(RECORDS / folder) in m]
        assert len(hits) == 1, f"no single warning names {folder}: {skipped}"
        assert reason in hits[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedRunWarning)
        runs = load_runs(RECORDS)
    # 16 resnet18 (with its ablations) + 10 resnet50 (the sweep) + 9 googlenet + 3 vgg16 + 6 neuraltalk
    # + 8 deepspeech
    assert len(runs) == 52
    assert not any(str(run.folder).endswith(tuple(BROKEN)) for run in runs)


def test_the_rest_is_still_counted(tables):
    """Skipping a broken seed loses only that seed: resnet18 keeps 4 baseline and 3 dsd seeds."""
    out, _, _ = tables
    frame = pd.read_csv(out / "overview.csv")
    row = frame[frame["paper_key"] == "imagenet/resnet18"].iloc[0]
    assert (row["baseline_n"], row["sparse_n"], row["dsd_n"], row["dense_control_n"]) == (4, 3, 3, 3)
    assert row["dsd_vs_dense_control_n"] == 3


def test_overview_matches_a_hand_computation(tables):
    """Mean, ddof=1 std and the paired gains, recomputed here from the raw result files."""
    out, _, _ = tables
    finals: dict[str, dict[int, float]] = {}
    for method in ("baseline", "dsd", "dense-control"):
        for path in sorted(RECORDS.glob(f"imagenet-resnet18/{method}-[0-9a-f]*/seed*/result.json")):
            if str(path.parent.relative_to(RECORDS)) in BROKEN:
                continue
            result = json.loads(path.read_text())
            finals.setdefault(method, {})[result["seed"]] = result["final"]["val"]["top1_err"]
    dsd = pd.Series(finals["dsd"])
    control = pd.Series(finals["dense-control"])
    base = pd.Series(finals["baseline"])
    row = pd.read_csv(out / "overview.csv").set_index("paper_key").loc["imagenet/resnet18"]
    assert row["dsd_mean"] == pytest.approx(dsd.mean(), abs=1e-4)
    assert row["dsd_std"] == pytest.approx(dsd.std(ddof=1), abs=1e-4)
    assert row["baseline_mean"] == pytest.approx(base.mean(), abs=1e-4)
    paired = (control - dsd).dropna()  # lower is better: gain = control - DSD
    assert row["dsd_vs_dense_control_mean"] == pytest.approx(paired.mean(), abs=1e-4)
    half = 4.302652729749462 * paired.std(ddof=1) / 3**0.5  # Student t(0.975, 2 degrees of freedom)
    assert row["dsd_vs_dense_control_ci_low"] == pytest.approx(paired.mean() - half, abs=1e-4)
    assert row["dsd_vs_dense_control_ci_high"] == pytest.approx(paired.mean() + half, abs=1e-4)
    assert row["dsd_vs_baseline_mean"] == pytest.approx((base[dsd.index] - dsd).mean(), abs=1e-4)


def test_a_loss_to_the_control_is_shown_plainly(tables):
    """googlenet: the control wins on every seed and the interval lies below zero."""
    out, _, _ = tables
    md = (out / "overview.md").read_text()
    googlenet = next(line for line in md.splitlines() if line.startswith("| imagenet/googlenet"))
    assert "**control better**" in googlenet
    frame = pd.read_csv(out / "overview.csv").set_index("paper_key")
    assert frame.loc["imagenet/googlenet", "dsd_vs_dense_control_verdict"] == "control better"
    assert frame.loc["imagenet/googlenet", "dsd_vs_dense_control_ci_high"] < 0
    assert frame.loc["imagenet/resnet18", "dsd_vs_dense_control_verdict"] == "DSD better"
    assert frame.loc["imagenet/resnet18", "dsd_vs_dense_control_ci_low"] > 0
    assert r"\textbf{control better}" in (out / "overview.tex").read_text()


def test_verdicts_need_an_interval_that_excludes_zero(tables):
    """One seed gives no verdict; an interval that touches zero gives no winner."""
    out, _, _ = tables
    frame = pd.read_csv(out / "overview.csv").set_index("paper_key")
    assert frame.loc["imagenet/vgg16", "dsd_vs_dense_control_verdict"] == "1 seed: no verdict"
    assert frame.loc["imagenet/vgg16", "dsd_vs_baseline_verdict"] == "1 seed: no verdict"
    wsj = frame.loc["wsj/deepspeech"]
    assert wsj["dsd_vs_dense_control_ci_low"] < 0 < wsj["dsd_vs_dense_control_ci_high"]
    assert wsj["dsd_vs_dense_control_verdict"] == "no clear difference"
    vgg = next(line for line in (out / "overview.md").read_text().splitlines() if "| imagenet/vgg16" in line)
    assert "DSD better" not in vgg and "control better" not in vgg and "(n=1)" in vgg


def test_single_seed_has_no_spread(tables):
    out, _, _ = tables
    vgg = next(line for line in (out / "overview.md").read_text().splitlines() if "imagenet/vgg16" in line)
    assert "±" not in vgg
    frame = pd.read_csv(out / "overview.csv").set_index("paper_key")
    assert pd.isna(frame.loc["imagenet/vgg16", "dsd_std"])
    assert frame.loc["imagenet/vgg16", "dsd_n"] == 1


def test_every_paper_figure_names_its_dataset(tables):
    """No stand-in row shares a cell with a bare paper number: overview paper cells carry
    '(dataset split)', detailed tables put the paper in rows or columns labelled 'paper (...)'."""
    out, _, _ = tables
    header, *rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in (out / "overview.md").read_text().splitlines()
        if line.startswith("| ")
    ]
    for column in ("paper baseline", "paper DSD"):
        i = header.index(column)
        for row in rows:
            assert re.fullmatch(
                r"—|[0-9.]+ \((ImageNet val|Flickr-8K test|WSJ dev93)\)( \[\d+\])?", row[i]
            ), row[i]
    imagenet = (out / "imagenet.md").read_text()
    assert re.search(r"\| paper \(ImageNet val\) +\| DSD ", imagenet)
    wsj = (out / "wsj.md").read_text()
    assert "paper (WSJ) eval92 WER" in wsj and "paper (WSJ) dev93 WER" in wsj
    for line in wsj.splitlines():
        if line.startswith("| espeak"):
            assert line.count("espeak stand-in") == 1


def test_speech_table_is_per_phase_with_the_papers_phases_beside(tables):
    out, _, _ = tables
    rows = [line for line in (out / "wsj.md").read_text().splitlines() if line.startswith("| espeak")]
    names = [re.search(r"\| ((?:Dense|Sparse) iter \d|Dense \(control\) \d)", r).group(1) for r in rows]
    assert names == [
        "Dense iter 0", "Sparse iter 1", "Dense iter 1", "Sparse iter 2", "Dense iter 2",
        "Dense (control) 1", "Dense (control) 2", "Dense (control) 3", "Dense (control) 4",
    ]  # fmt: skip
    assert "| 34.57 " in rows[0] and "| 31.59 " in rows[4]
    assert "33.55" in rows[6]  # the paper's 150-epoch dense baseline beside our control at 150 epochs' phase


def test_higher_is_better_metrics_flip_the_sign(tmp_path):
    """BLEU: DSD higher = DSD better = positive gain; one architecture gives one column per metric."""
    metrics = {
        f"bleu{i}": {"higher_is_better": True, "label": f"BLEU-{i}", "percent": False} for i in (1, 2, 3, 4)
    }
    names = tuple(metrics)
    targets = {
        "baseline": [dict(zip(names, (50.0, 30.0, 20.0, 12.0), strict=True))],
        "dsd": [
            dict(zip(names, (51, 31, 21, 13.0), strict=True)),
            dict(zip(names, (53, 33, 23, 15.0), strict=True)),
        ],
        "dense-control": [
            dict(zip(names, (51, 31, 21, 13.0), strict=True)),
            dict(zip(names, (51, 31, 21, 13.0), strict=True)),
        ],
    }
    recipe = "D:2@0.01 S80%:1@0.001 D:1@0.0001"
    writer = StudyWriter(
        tmp_path / "runs", "flickr8k", "neuraltalk", "digit-captions stand-in", recipe, metrics, "bleu4",
        ["val", "test"], targets,
    )  # fmt: skip
    for seed in (0, 1):
        for method in ("baseline", "dsd", "dense-control"):
            writer.write(method, seed)
    _, skipped = _build(tmp_path / "out", tmp_path / "runs")
    assert skipped == []
    row = pd.read_csv(tmp_path / "out" / "overview.csv").set_index("paper_key").loc["flickr8k/neuraltalk"]
    assert row["split"] == "test"  # the paper's split, since our runs have it
    assert row["dsd_vs_baseline_mean"] > 1 and row["dsd_vs_dense_control_mean"] > 1
    assert row["dsd_vs_dense_control_n"] == 2
    low, high = row["dsd_vs_dense_control_ci_low"], row["dsd_vs_dense_control_ci_high"]
    assert low < row["dsd_vs_dense_control_mean"] < high
    expected = "DSD better" if low > 0 else "no clear difference"  # higher BLEU: DSD ahead, never behind
    assert row["dsd_vs_dense_control_verdict"] == expected
    md = (tmp_path / "out" / "flickr8k.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| dataset"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "dataset", "row", "BLEU-1 ↑", "BLEU-2 ↑", "BLEU-3 ↑", "BLEU-4 ↑",
    ]  # fmt: skip
    assert re.search(r"\| paper \(Flickr-8K test\) +\| DSD +\| 59.2 +\| 40.7 +\| 27.4 +\| 18.5 +\|", md)


def test_no_runs_gives_the_papers_table_1(tmp_path):
    paths, skipped = _build(tmp_path / "out", tmp_path / "nothing-here")
    assert [p.name for p in paths] == ["overview.md", "overview.tex", "overview.csv"] and skipped == []
    frame = pd.read_csv(tmp_path / "out" / "overview.csv")
    assert len(frame) == 7 and frame["dataset"].isna().all()
    assert "not run" in (tmp_path / "out" / "overview.md").read_text()


def test_branches_without_their_baseline_and_odd_records_do_not_crash(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(RECORDS / "wsj-deepspeech", runs / "wsj-deepspeech")
    shutil.rmtree(next((runs / "wsj-deepspeech").glob("baseline-*")))
    odd = next((runs / "wsj-deepspeech").glob("dense-control-*")) / "seed1" / "result.json"
    record = json.loads(odd.read_text())
    record["final"]["test"]["wer"] = float("nan")
    odd.write_text(json.dumps(record))  # NaN is not a result
    _, skipped = _build(tmp_path / "out", runs)
    assert len(skipped) == 2
    assert any(re.search(r"dsd-\w+/seed2: unfinished", m) for m in skipped)
    nan = r"dense-control-\w+/seed1: corrupt: .*'wer'.* should be a finite number"
    assert any(re.search(nan, m) for m in skipped)
    frame = pd.read_csv(tmp_path / "out" / "overview.csv").set_index("paper_key")
    assert pd.isna(frame.loc["wsj/deepspeech", "baseline_mean"])
    assert frame.loc["wsj/deepspeech", "dense_control_n"] == 2


def test_without_the_papers_numbers_the_tables_still_build(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedRunWarning)
        paths = build_tables(RECORDS, tmp_path / "no-paper-here", tmp_path / "out")
    assert len(paths) == 15
    overview = pd.read_csv(tmp_path / "out" / "overview.csv")
    assert len(overview) == 8 and overview["paper_baseline"].isna().all()  # the studies, no paper rows
    md = (tmp_path / "out" / "overview.md").read_text()
    assert "The paper's numbers could not be read" in md  # said in the document, not only on stderr


def test_cli_lists_skipped_runs_on_stderr(tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(RECORDS / "imagenet-resnet18", runs / "imagenet-resnet18")
    out = tmp_path / "tables"
    assert main(["tables", "--runs", str(runs), "--paper", str(PAPER), "--out", str(out), "--show"]) == 0
    captured = capsys.readouterr()
    broken = [folder for folder in BROKEN if folder.startswith("imagenet-resnet18/")]
    assert len(broken) == 2 and captured.err.count("warning: skipping run") == 2
    for folder in broken:
        assert f"warning: skipping run {runs / folder}" in captured.err
    assert str(out / "overview.md") in captured.out
    assert "| imagenet/resnet18" in captured.out  # --show prints the overview


def test_stat_text():
    assert Stat.of(pd.Series([1.0, 2.0, 3.0])).text() == "2.00 ± 1.00"
    assert Stat.of(pd.Series([1.5])).text() == "1.50"
    assert Stat.of(pd.Series([-0.5, -1.5])).text(signed=True) == "-1.00 ± 0.71"
    assert Stat.of(pd.Series([], dtype=float)).text() == "—"


# ---------------------------------------------------------------------- the paper's numbers
def test_paper_numbers_load_and_agree_with_table_1():
    """Table 1 is the detailed tables rounded (a check on our transcription), except the speech
    baselines, which are the paper's long dense baselines."""
    paper = load_paper(PAPER)
    assert set(paper["paper_key"]) == {
        "imagenet/googlenet", "imagenet/vgg16", "imagenet/resnet18", "imagenet/resnet50",
        "imagenet/alexnet", "imagenet/squeezenet", "flickr8k/neuraltalk", "wsj/deepspeech", "wsj/deepspeech2",
    }  # fmt: skip
    table1 = paper[paper["source"] == "Table 1"]
    assert len(table1) == 14
    for _, row in table1.iterrows():
        detail = paper[
            (paper["source"] != "Table 1")
            & (paper["paper_key"] == row["paper_key"])
            & (paper["metric"] == row["metric"])
            & (paper["split"] == row["split"])
        ]
        if row["method"] == "baseline" and row["paper_key"].startswith("wsj/"):
            detail = detail[detail["method"] == "dense-control"]
        elif row["method"] == "baseline":
            detail = detail[detail["method"] == "baseline"]
        else:
            detail = detail[(detail["method"] == "dsd") & (detail["phase_no"] == detail["phase_no"].max())]
        assert len(detail) == 1, row.to_dict()
        assert abs(detail["number"].iloc[0] - row["number"]) <= 0.051, row.to_dict()


def test_paper_errors_name_the_file_and_line(tmp_path):
    shutil.copy(PAPER / "flickr8k.csv", tmp_path / "flickr8k.csv")
    lines = (tmp_path / "flickr8k.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",25.4,", ",n/a,")
    (tmp_path / "flickr8k.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"flickr8k.csv:4: value"):
        load_paper(tmp_path)


def test_studies_group_branches_with_their_baseline():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedRunWarning)
        studies = group_studies(load_runs(RECORDS))
    assert sorted(
        (s.paper_key, len(s.of("baseline")), len(s.of("dsd")), len(s.of("dense-control"))) for s in studies
    ) == [
        ("flickr8k/neuraltalk", 2, 2, 2),
        ("imagenet/googlenet", 3, 3, 3),
        ("imagenet/resnet18", 4, 3, 3),
        ("imagenet/resnet50", 2, 2, 2),  # one study per swept sparsity, sharing baseline and control
        ("imagenet/resnet50", 2, 2, 2),
        ("imagenet/resnet50", 2, 2, 2),
        ("imagenet/vgg16", 1, 1, 1),
        ("wsj/deepspeech", 3, 2, 3),
    ]


# ---------------------------------------------------------------------- where the tables run
def test_tables_from_another_folder_still_show_the_papers_numbers(tmp_path):
    """The paper's numbers ship with the package: no results/paper beside the cwd or the runs."""
    runs = tmp_path / "elsewhere" / "runs"
    shutil.copytree(RECORDS / "flickr8k-neuraltalk", runs / "flickr8k-neuraltalk")
    out = tmp_path / "tables"
    command = [sys.executable, "-m", "tasks.cli", "tables", "--runs", str(runs), "--out", str(out)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = pd.read_csv(out / "overview.csv").set_index("paper_key").loc["flickr8k/neuraltalk"]
    assert (row["paper_baseline"], row["paper_dsd"]) == (16.8, 18.5)
    assert row["split"] == "test"  # the paper's split, found because the paper's numbers were
    assert "could not be read" not in done.stderr


# ---------------------------------------------------------------------- records of earlier code
LEGACY = HERE / "fixtures" / "legacy_records" / "runs"


def test_records_without_a_data_fingerprint_are_read_apart_and_marked(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(LEGACY, runs)
    shutil.copytree(RECORDS / "imagenet-resnet18", runs / "imagenet-resnet18", dirs_exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        studies = group_studies(load_runs(runs))
    unverified = [str(w.message) for w in caught if issubclass(w.category, UnverifiedDataWarning)]
    assert len(unverified) == 1 and "6 run(s)" in unverified[0] and "rerun" in unverified[0]
    by_data = {s.data_short: s for s in studies}
    assert len(studies) == 2 and "unverified" in by_data
    old = by_data["unverified"]
    assert (len(old.of("baseline")), len(old.of("dsd")), len(old.of("dense-control"))) == (2, 2, 2)
    new = next(s for s in studies if s.data)
    assert not {r.folder for r in old.runs} & {r.folder for r in new.runs}  # never merged
    out = tmp_path / "out"
    _build(out, runs)
    rows = [
        line
        for line in (out / "overview.md").read_text().splitlines()
        if line.startswith("| imagenet/resnet18")
    ]
    assert len(rows) == 2 and sum("unverified" in line for line in rows) == 1


# ---------------------------------------------------------------------- ablations and sweeps
def test_the_ablation_table_pairs_dsd_with_each_ablation_and_the_control(tables):
    out, _, _ = tables
    md = (out / "imagenet.md").read_text()
    section = md[md.index(": ablations (study") :]
    rows = {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in section.splitlines())
        if len(cells) > 2
    }
    assert rows["DSD vs DSD, random mask (verdict)"][0] == "DSD better"  # magnitude beats a random mask
    assert rows["DSD vs DSD, re-initialised at re-dense (verdict)"][0] == "no clear difference"
    assert rows["DSD vs dense control (verdict)"][0] == "DSD better"
    gain = rows["DSD vs DSD, random mask (gain)"][0]
    assert re.fullmatch(r"\+\d+\.\d\d \[\+\d+\.\d\d, \+\d+\.\d\d\] \(n=3\)", gain), gain


def test_the_sweep_is_chosen_on_its_selection_split(tables):
    out, _, _ = tables
    frame = pd.read_csv(out / "sweeps.csv")
    chosen = frame[frame["selected"]]
    assert set(chosen["sparsity"]) == {0.3} and set(chosen["method"]) == {"dsd"}
    dsd = frame[(frame["method"] == "dsd") & (frame["split"] == "val")].set_index("sparsity")["mean"]
    assert dsd.idxmin() == 0.3  # lower error is better: the best mean is the one chosen
    md = (out / "sweeps.md").read_text()
    assert re.search(r"\| DSD, chosen +\| 0\.3 ", md) and "an optimistic reading" in md  # one split only
    overview = (out / "overview.md").read_text()
    assert overview.count("| imagenet/resnet50 (recipe") == 3  # each point named by its recipe
