"""The stand-in study end to end at a tiny scale: baseline, DSD and control, records, Figure 3."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsd import files
from dsd.records.layout import RunFolder
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from tasks.flickr8k import glyphnet, standin
from tasks.flickr8k.adapter import PRUNED, Flickr8kConfig, Flickr8kTask
from tasks.flickr8k.figures import caption_comparison
from tasks.flickr8k.from_run import task_of_run

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TINY = {"train": 100, "val": 20, "test": 30}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    results = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:  # a tiny stand-in and a quickly trained glyph CNN
        patch.setattr(standin, "SIZES", TINY)
        patch.setattr(glyphnet, "TRAIN_PATCHES", 500)
        patch.setattr(glyphnet, "TEST_PATCHES", 100)
        patch.setattr(glyphnet, "EPOCHS", 1)
        task = Flickr8kTask(Flickr8kConfig(recipe="D:2@3e-3 S80%:1@3e-4 D:1@3e-5"), None, results / "cache")
        folders = run_study(task, RunConfig(results_dir=results, progress=False, log_every=2))
    runs = {files.read_json(f / "config.json")["method"]: f for f in folders}
    return runs, results


def test_study_records(study: tuple[dict[str, Path], Path]) -> None:
    runs, _ = study
    assert set(runs) == {"baseline", "dsd", "dense-control"}
    test_names = (standin.FOLDER, "Flickr8k_text", "Flickr_8k.testImages.txt")
    for method, folder in runs.items():
        result = files.read_json(folder / "result.json")
        assert RunFolder(folder).is_done and result["method"] == method
        assert result["dataset"] == "digits captions stand-in" and result["model"] == "neuraltalk"
        assert result["description"]["encoder"] == "digits-cnn"
        assert result["description"]["images"] == TINY
        assert set(result["final"]) == {"val", "test"}
        for scores in result["final"].values():
            assert set(scores) == {"bleu1", "bleu2", "bleu3", "bleu4"}
            assert all(0.0 <= v <= 100.0 for v in scores.values())
        assert result["data_issues"] == dict.fromkeys(result["data_issues"], 0)
        lines = (folder / "predictions" / "test.txt").read_text().splitlines()
        listed = (folder.parents[3] / "cache" / Path(*test_names)).read_text().split()
        assert [line.split("\t")[0] for line in lines] == listed
    dsd_phases = files.read_json(runs["dsd"] / "result.json")["phases"]
    assert [p["label"] for p in dsd_phases] == ["S80%", "D"]


def test_sparse_phase_is_80_percent_sparse_except_the_embedding(study: tuple[dict[str, Path], Path]) -> None:
    runs, _ = study
    sparse = torch.load(runs["dsd"] / "phase1.pt", weights_only=True)
    final = torch.load(runs["dsd"] / "phase2.pt", weights_only=True)
    for name in PRUNED:
        assert int((sparse[name] == 0).sum()) == round(0.8 * sparse[name].numel()), name
        # re-dense revives the pruned weights (inputs that are always 0 leave some of the image
        # projection's at 0: their gradient is 0)
        assert int((final[name] == 0).sum()) < 0.25 * final[name].numel(), name
    assert not (sparse["embedding.weight"] == 0).any()


def test_caption_comparison_table_and_grid(study: tuple[dict[str, Path], Path]) -> None:
    runs, results = study
    task = task_of_run(runs["dsd"], cache_dir=results / "cache")
    table, grid = caption_comparison(task, runs, results / "figures", count=4)
    text = table.read_text()
    assert "| image | baseline | sparse (S80%) | DSD | dense control | a reference |" in text
    rows = [line for line in text.splitlines() if line.startswith("| `digits_")]
    assert len(rows) == 4 and all(line.count(" | ") == 5 for line in rows)
    assert grid.stat().st_size > 1000 and grid.read_bytes()[:4] == b"\x89PNG"
