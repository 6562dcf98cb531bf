"""The ImageNet adapter's data source: one per origin, chosen once when the adapter is made."""

from __future__ import annotations

from pathlib import Path

from tasks.imagenet.adapter import ImageNetConfig, ImageNetTask
from tasks.imagenet.sources import HFImageSource, ImageFolderSource, StandinSource
from tests.tasks import hf_helpers as hf
from tests.tasks.imagenet.helpers import make_tree


def test_each_origin_gets_its_source_and_choosing_builds_nothing(tmp_path: Path) -> None:
    origins = {
        None: StandinSource,
        make_tree(tmp_path / "tree"): ImageFolderSource,
        hf.write_parquet(hf.imagenet_dict(), tmp_path / "hf"): HFImageSource,
    }
    for data_dir, kind in origins.items():
        task = ImageNetTask(ImageNetConfig(), data_dir, tmp_path / "cache")
        assert type(task.source) is kind
    assert not (tmp_path / "cache").exists()  # nothing built, listed or converted yet


def test_the_standin_answers_from_its_specification_until_built(tmp_path: Path) -> None:
    task = ImageNetTask(ImageNetConfig(), None, tmp_path / "cache")
    assert task.num_classes == 10 and task.inspect().implied
    assert not (tmp_path / "cache").exists()
