"""The Flickr-8K task's data identity and labels: Karpathy's JSON and the official split files
are different data to a run, and a non-paper encoder shows in every row it affects."""

from __future__ import annotations

import json
from pathlib import Path

from dsd.records.run import RunResult
from dsd.report.studies import label_of
from tasks.flickr8k.adapter import Flickr8kConfig, Flickr8kTask
from tests.tasks.flickr8k.test_data import karpathy_payload, write_token_layout


def test_karpathy_json_and_token_file_have_different_fingerprints(tmp_path: Path) -> None:
    root = write_token_layout(tmp_path / "flickr8k")
    (root / "dataset_flickr8k.json").write_text(json.dumps(karpathy_payload()))
    cache = tmp_path / "cache"
    prints = {
        source: Flickr8kTask(
            Flickr8kConfig(encoder="pixels", annotations=source), root, cache
        ).data_fingerprint()
        for source in ("karpathy", "token-file")
    }
    assert prints["karpathy"].digest != prints["token-file"].digest
    assert prints["karpathy"].facts["annotations"] == "dataset_flickr8k.json"
    moved = tmp_path / "elsewhere"
    root.rename(moved)
    again = Flickr8kTask(Flickr8kConfig(encoder="pixels", annotations="karpathy"), moved, cache)
    assert again.data_fingerprint() == prints["karpathy"]


def test_a_non_paper_encoder_appears_in_the_row_label(tmp_path: Path) -> None:
    task = Flickr8kTask(Flickr8kConfig(encoder="pixels"), tmp_path, tmp_path / "cache")
    assert "encoder pixels" in task.setup_notes()
    paper_setup = Flickr8kTask(Flickr8kConfig(encoder="vgg16-fc7"), tmp_path, tmp_path / "cache")
    assert paper_setup.setup_notes() == []  # NeuralTalk's own settings: nothing to flag
    result = RunResult(
        "flickr8k", "neuraltalk", "Flickr-8K", "flickr8k/neuraltalk", "dsd", 0,
        setup=task.setup_notes(), epochs_scale=0.6,
    )  # fmt: skip
    assert label_of(result) == "Flickr-8K [encoder pixels; standardized features; epochs ×0.6]"
