"""The captioner's data source: one per origin, chosen once when the adapter is made."""

from __future__ import annotations

from pathlib import Path

from tasks.flickr8k.adapter import Flickr8kConfig, Flickr8kTask
from tasks.flickr8k.sources import FolderSource, HFCaptionSource, StandinSource
from tests.tasks import hf_helpers as hf
from tests.tasks.flickr8k.test_data import write_token_layout


def test_each_origin_gets_its_source_and_choosing_builds_nothing(tmp_path: Path) -> None:
    origins = {
        None: StandinSource,
        write_token_layout(tmp_path / "files"): FolderSource,
        hf.write_parquet(hf.flickr_dict(), tmp_path / "hf"): HFCaptionSource,
    }
    for data_dir, kind in origins.items():
        task = Flickr8kTask(Flickr8kConfig(encoder="pixels"), data_dir, tmp_path / "cache")
        assert type(task.source) is kind and task.source.encoder == "pixels"
    assert not (tmp_path / "cache").exists()  # no stand-in, corpus or feature read yet


def test_the_standin_answers_from_its_specification_until_built(tmp_path: Path) -> None:
    task = Flickr8kTask(Flickr8kConfig(), None, tmp_path / "cache")
    assert task.source.encoder == "digits-cnn" and task.inspect().implied and task.planned_model() is None
    assert not (tmp_path / "cache").exists()
