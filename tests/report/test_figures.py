"""Figures: the five weight histograms and the curves render from the committed fake records as
real PNGs, bad histogram files fail with a message naming the file and the moment, and the
histogram helpers the loop uses put every weight in exactly one bin."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import matplotlib.image
import pytest
import torch

from dsd.records.histograms import MOMENTS
from dsd.records.histograms import read_histograms as load_histograms
from dsd.report.figures import build_figures, plot_histograms
from dsd.report.runs import SkippedRunWarning
from dsd.run.training.histograms import histogram_edges, weight_histogram
from tasks.cli import main

RECORDS = Path(__file__).resolve().parents[1] / "fixtures" / "records"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path, min_width: int) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[1] >= min_width
    assert image[..., :3].std() > 0.01, f"{path} is blank"


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> tuple[Path, list[Path], list[str]]:
    out = tmp_path_factory.mktemp("figures")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = build_figures(RECORDS, out)
    return out, paths, [str(w.message) for w in caught if issubclass(w.category, SkippedRunWarning)]


def test_build_figures_writes_curves_and_histograms_per_study(figures):
    out, paths, skipped = figures
    names = sorted(p.name for p in paths)
    assert sorted(p.name for p in out.iterdir()) == names  # nothing else (no temp files left)
    studies = [
        "flickr8k-neuraltalk_Flickr-8K_866d64e7",
        "imagenet-googlenet_digits-stand-in_f98d7f05",
        "imagenet-resnet18_digits-stand-in_fccd82b7",
        "imagenet-resnet50_digits-stand-in_722e8bdf",  # the sweep's three points
        "imagenet-resnet50_digits-stand-in_a5454d90",
        "imagenet-resnet50_digits-stand-in_efc267fc",
        "imagenet-vgg16_digits-stand-in_8678523a",
        "wsj-deepspeech_espeak-stand-in_1c3680f6",
    ]
    assert [n for n in names if n.startswith("curves_")] == [f"curves_{s}.png" for s in studies]
    histograms = [n for n in names if n.startswith("histograms_")]
    # the first finished seed of each study's dsd runs
    assert histograms == [f"histograms_{s}_seed0.png" for s in studies]
    assert [n for n in names if n.startswith("sweep_")] == ["sweep_imagenet-resnet50-fixture.png"]
    for path in paths:
        _assert_png(path, min_width=600)
    assert len(skipped) == 3  # the corrupt and unfinished records, as for the tables


def test_histogram_figure_has_five_panels(figures, tmp_path):
    dsd_run = next(RECORDS.glob("imagenet-resnet18/dsd-[0-9a-f]*/seed0"))
    out = plot_histograms(dsd_run, tmp_path / "h.png", "title")
    _assert_png(out, min_width=1500)  # five panels side by side


def test_missing_moment_is_a_clear_error(tmp_path):
    source = next(RECORDS.glob("imagenet-resnet18/dsd-[0-9a-f]*/seed0")) / "histograms.json"
    data = json.loads(source.read_text())
    del data["moments"]["redense_start"]
    bad = tmp_path / "histograms.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"histograms\.json: the moment 'redense_start' .* is missing"):
        plot_histograms(bad, tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()


def test_counts_that_do_not_fit_the_bins_are_a_clear_error(tmp_path):
    source = next(RECORDS.glob("imagenet-resnet18/dsd-[0-9a-f]*/seed0")) / "histograms.json"
    data = json.loads(source.read_text())
    data["moments"]["pruned"] = data["moments"]["pruned"][:-1]
    bad = tmp_path / "histograms.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"moment 'pruned' should hold 101 non-negative integer counts"):
        load_histograms(bad)


def test_a_bad_histogram_file_skips_only_that_figure(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(RECORDS / "imagenet-vgg16", runs / "imagenet-vgg16")
    hist = next(runs.glob("imagenet-vgg16/dsd-*/seed0")) / "histograms.json"
    hist.write_text("{not json")
    with pytest.warns(SkippedRunWarning, match=r"skipping the histograms of run .*seed0: .*cannot read"):
        paths = build_figures(runs, tmp_path / "out")
    assert [p.name for p in paths] == ["forest.png", "curves_imagenet-vgg16_digits-stand-in_8678523a.png"]


def test_cli_names_the_figures(tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(RECORDS / "imagenet-vgg16", runs / "imagenet-vgg16")
    assert main(["figures", "--runs", str(runs), "--out", str(tmp_path / "figs")]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 3 and all(Path(p).is_file() for p in printed)  # the forest, curves, histograms


# ---------------------------------------------------------------------- the loop's helpers
def test_edges_are_symmetric_and_every_weight_lands_in_one_bin():
    dense = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    edges = histogram_edges(dense, bins=101)
    assert len(edges) == 102
    assert edges[0] == pytest.approx(-edges[-1]) and edges[0] < dense.min() and edges[-1] > dense.max()
    counts = weight_histogram(dense, edges)
    assert len(counts) == 101 and sum(counts) == dense.numel()
    centre = weight_histogram(torch.zeros(7), edges)
    assert centre[50] == 7 and sum(centre) == 7  # odd bin count: zero sits in the middle bin


def test_values_beyond_the_dense_range_land_in_the_edge_bins():
    edges = histogram_edges(torch.tensor([-1.0, 1.0]), bins=5)
    counts = weight_histogram(torch.tensor([-50.0, -1.0, 0.0, 1.0, 50.0, 3.0]), edges)
    assert counts == [2, 0, 1, 0, 3]


def test_moment_names_match_the_record_contract():
    assert list(MOMENTS) == ["dense", "pruned", "sparse_trained", "redense_start", "redense_trained"]


def test_a_metrics_line_that_is_no_object_costs_a_point_not_the_report(tmp_path):
    """A valid JSON line that is not a metrics line (issue 20): the curves of every study are still
    drawn, and the line is named in a warning."""
    runs = tmp_path / "runs"
    shutil.copytree(RECORDS / "imagenet-vgg16", runs / "imagenet-vgg16")
    metrics = next(runs.glob("imagenet-vgg16/dsd-*/seed0")) / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([lines[0], "[1, 2, 3]", *lines[1:]]) + "\n")
    with pytest.warns(SkippedRunWarning, match=r"metrics\.jsonl: line 2: .*expected a JSON object"):
        paths = build_figures(runs, tmp_path / "out")
    assert [p.name for p in paths if p.name.startswith("curves_")] == [
        "curves_imagenet-vgg16_digits-stand-in_8678523a.png"
    ]
