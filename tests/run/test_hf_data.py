"""Hugging Face datasets on disk: each form and layout found, splits chosen across configs, rows
located in their shard, the parallel row pass equal to the serial one."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from dsd.taskkit import hf_data
from dsd.taskkit.hf_data import HFDataError
from tests.tasks import hf_helpers as hf


def numbers(count: int, start: int = 0) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"x": list(range(start, start + count))})


def write(root: Path, relative: str, dataset: datasets.Dataset) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(path))
    return path


def test_folders_that_hold_no_hugging_face_dataset_are_left_to_the_task(tmp_path: Path) -> None:
    (tmp_path / "tree" / "train" / "n01").mkdir(parents=True)
    assert hf_data.detect(tmp_path / "tree") is None
    assert hf_data.detect(tmp_path / "absent") is None


def test_the_hub_layouts_without_a_readme(tmp_path: Path) -> None:
    """``all/<split>/0000.parquet`` and ``clean/<split>-0000i-of-0000n.parquet`` (LibriSpeech's
    configs), ``data/<split>-...-<hash>.parquet`` (push_to_hub's)."""
    for split in ("train.clean.100", "validation.clean", "test.clean"):
        write(tmp_path / "ls", f"all/{split}/0000.parquet", numbers(2))
    for split in ("train.100", "validation", "test"):
        write(tmp_path / "ls", f"clean/{split}-00000-of-00001.parquet", numbers(2))
    source = hf_data.detect(tmp_path / "ls")
    assert source is not None and source.form == "parquet" and source.label == "HF parquet"
    assert {c: sorted(s) for c, s in source.configs.items()} == {
        "all": ["test.clean", "train.clean.100", "validation.clean"],
        "clean": ["test", "train.100", "validation"],
    }
    chosen = hf_data.resolve_splits(source, {"train": ("train.100",), "test": ("test.clean", "test")})
    assert chosen["train"].files == [tmp_path / "ls/clean/train.100-00000-of-00001.parquet"]
    write(tmp_path / "push", "data/train-00000-of-00001-0123abcd.parquet", numbers(1))
    assert list(hf_data.detect(tmp_path / "push").configs) == [""]


def test_the_readme_configs_choose_the_files_default_first(tmp_path: Path) -> None:
    write(tmp_path, "one/train.parquet", numbers(3))
    write(tmp_path, "two/train.parquet", numbers(4))
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: first\n  data_files: one/*.parquet\n"
        "- config_name: second\n  default: true\n  data_files:\n"
        "  - split: train\n    path: [two/*.parquet]\n---\n"
    )
    source = hf_data.detect(tmp_path)
    assert list(source.configs) == ["second", "first"]
    (train,) = hf_data.resolve_splits(source, {"train": ("train",)}).values()
    assert hf_data.check_shards(source, train) == [4]


def test_a_hub_cache_folder_reads_its_main_snapshot(tmp_path: Path) -> None:
    parquet = hf.write_parquet(datasets.DatasetDict(train=numbers(6), validation=numbers(2)), tmp_path / "pq")
    repo = hf.hub_cache(parquet, tmp_path / "hub")
    for given in (repo, repo / "snapshots", next((repo / "snapshots").iterdir())):
        source = hf_data.detect(given)
        assert source.via.startswith("hub cache snapshot ") and source.base.parent.name == "snapshots"
        train = source.configs["default"]["train"]
        assert [source.relative(p) for p in train.files] == [
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
        ]
        assert hf_data.locate(source, train, hf_data.check_shards(source, train), 4) == (
            "data/train-00001-of-00002.parquet row 1"
        )


def test_save_to_disk_folders(tmp_path: Path) -> None:
    datasets.DatasetDict(train=numbers(5), test=numbers(2)).save_to_disk(str(tmp_path / "dict"))
    source = hf_data.detect(tmp_path / "dict")
    assert source.form == "save_to_disk" and source.label == "HF save_to_disk"
    train = source.configs[""]["train"]
    assert hf_data.check_shards(source, train) == [5]
    assert hf_data.read_columns(source, train, ["x"])["x"].to_pylist() == [0, 1, 2, 3, 4]
    assert hf_data.load_split(source, train, tmp_path / "cache")["x"] == [0, 1, 2, 3, 4]
    numbers(3).save_to_disk(str(tmp_path / "alone"))
    with pytest.raises(HFDataError, match=r"splits found: none; a single Dataset saved alone.*DatasetDict"):
        hf_data.resolve_splits(hf_data.detect(tmp_path / "alone"), {"train": ("train",)})


def test_shards_of_different_datasets_are_named(tmp_path: Path) -> None:
    write(tmp_path, "data/train-00000-of-00002.parquet", numbers(2))
    write(tmp_path, "data/train-00001-of-00002.parquet", datasets.Dataset.from_dict({"y": [1]}))
    source = hf_data.detect(tmp_path)
    with pytest.raises(HFDataError, match=r"shard data/train-00001-of-00002\.parquet has columns y, unlike"):
        hf_data.check_shards(source, source.configs[""]["train"])


def _double(row: dict) -> int:
    return 2 * row["x"]


def test_parquet_is_converted_once_in_order_and_mapped_in_parallel(tmp_path: Path, monkeypatch) -> None:
    for i in range(4):
        write(tmp_path / "hf", f"data/train-{i:05d}-of-00004.parquet", numbers(300, 300 * i))
    source = hf_data.detect(tmp_path / "hf")
    dataset = hf_data.load_split(source, source.configs[""]["train"], tmp_path / "cache", workers=2)
    assert dataset["x"] == list(range(1200))  # shard order kept by the parallel conversion
    monkeypatch.setattr(hf_data, "PARALLEL_MIN_ROWS", 10)
    monkeypatch.setattr(hf_data, "MAP_CHUNK", 100)
    assert hf_data.map_rows(dataset, _double, workers=2) == [2 * x for x in range(1200)]
