"""Flickr-8K from a Hugging Face copy on disk (image + five captions, written by ``datasets``):
the study end to end on parquet shards and on a save_to_disk folder, the same tokens and
features as from the official files, and each bad input named."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
import torch

from dsd import files
from dsd.errors import ConfigError
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from dsd.taskkit import hf_data
from dsd.taskkit.hf_data import HFDataError
from tasks.flickr8k import corpus, features
from tasks.flickr8k import hf as hf_corpus
from tasks.flickr8k.adapter import Flickr8kConfig, Flickr8kTask
from tests.tasks import hf_helpers as hf

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

RECIPE = "D:2steps@0.01 S80%:2steps@0.001 D:1steps@0.0001 decay=none"


def task(data: Path, cache: Path, **config: object) -> Flickr8kTask:
    settings = {"recipe": RECIPE, "encoder": "pixels", "batch_size": 8, "min_word_count": 1, **config}
    return Flickr8kTask(Flickr8kConfig(**settings), data, cache)


@pytest.mark.parametrize(("form", "list_column"), [("parquet", False), ("save_to_disk", True)])
def test_the_study_runs_end_to_end_on_each_form(tmp_path: Path, form: str, list_column: bool) -> None:
    data = hf.flickr_dict(list_column=list_column)
    write = hf.write_parquet if form == "parquet" else hf.write_save_to_disk
    root = write(data, tmp_path / "hf")
    captioner = task(root, tmp_path / "cache")
    summary = captioner.inspect()
    assert summary.splits == {"train": 60, "val": 4, "test": 4} and summary.pending  # features not extracted
    folders = run_study(captioner, RunConfig(results_dir=tmp_path / "results", progress=False, device="cpu"))
    assert len(folders) == 3
    for folder in folders:
        record = files.read_json(folder / "config.json")
        assert record["dataset"] == f"Flickr-8K (HF {form})" and (folder / "done").is_file()
        assert record["data_facts"]["images"] == {"train": 12, "val": 4, "test": 4}
    assert task(root, tmp_path / "cache").inspect().pending == []  # the feature cache is reused


def official_files(data: datasets.DatasetDict, root: Path) -> Path:
    """The same images and captions as Flickr-8K's official files: images, token file, split lists."""
    lists = {
        "train": "Flickr_8k.trainImages.txt",
        "validation": "Flickr_8k.devImages.txt",
        "test": "Flickr_8k.testImages.txt",
    }
    tokens = []
    (root / "Flicker8k_Dataset").mkdir(parents=True)
    for split, dataset in data.cast_column("image", datasets.Image(decode=False)).items():
        names = []
        for row in dataset:
            name = row["image"]["path"]
            (root / "Flicker8k_Dataset" / name).write_bytes(row["image"]["bytes"])
            tokens += [f"{name}#{k}\t{row[f'caption_{k}']}" for k in range(5)]
            names.append(name)
        (root / lists[split]).write_text("\n".join(names) + "\n")
    (root / corpus.TOKEN_FILE).write_text("\n".join(tokens) + "\n")
    return root


def test_tokens_and_features_are_the_official_files(tmp_path: Path) -> None:
    data = hf.flickr_dict()
    official = corpus.load_corpus(official_files(data, tmp_path / "official"), annotations="token-file")
    copy = hf_corpus.load_corpus(hf_data.detect(hf.write_parquet(data, tmp_path / "hf")), tmp_path / "cache")
    assert copy.splits == official.splits
    assert copy.captions == official.captions and copy.raw_captions == official.raw_captions
    names = [n for split in corpus.SPLITS for n in official.splits[split]]
    by_file = features.compute("pixels", tmp_path, official.images_dir, names)
    by_row = features.compute("pixels", tmp_path, copy.store(), names)
    assert by_row.names == by_file.names and torch.equal(by_row.features, by_file.features)


def test_the_official_files_flags_are_refused_with_a_copy(tmp_path: Path) -> None:
    root = hf.write_save_to_disk(hf.flickr_dict(), tmp_path / "hf")
    with pytest.raises(
        ConfigError, match=r"--images-dir choose among Flickr-8K's official files.*leave them out"
    ):
        task(root, tmp_path / "cache", images_dir=str(tmp_path))


# ---------------------------------------------------------------------- bad input
def test_a_truncated_shard_is_named(tmp_path: Path) -> None:
    root = hf.write_parquet(hf.flickr_dict(), tmp_path / "hf")
    hf.truncate(root / "data/test-00000-of-00002.parquet")
    with pytest.raises(HFDataError, match=r"shard data/test-00000-of-00002\.parquet .*truncated"):
        task(root, tmp_path / "cache").inspect()


def test_a_missing_split_lists_the_splits_found(tmp_path: Path) -> None:
    data = hf.flickr_dict({"train": 4, "test": 2})
    root = hf.write_parquet(data, tmp_path / "hf")
    with pytest.raises(
        HFDataError, match=r"looked for .*val: validation or val or dev.*splits found: train, test"
    ):
        task(root, tmp_path / "cache").inspect()


def test_an_unexpected_schema_lists_the_columns_found_and_expected(tmp_path: Path) -> None:
    data = hf.flickr_dict().rename_columns({f"caption_{k}": f"sentence{k}" for k in range(5)})
    root = hf.write_save_to_disk(data, tmp_path / "hf")
    with pytest.raises(
        HFDataError, match=r"has columns image, sentence0.*without captions; expected: image \(.*caption_0"
    ):
        task(root, tmp_path / "cache").inspect()


def test_an_image_that_does_not_decode_is_named_or_skipped_and_counted(tmp_path: Path) -> None:
    root = hf.write_parquet(
        hf.spoil_row(hf.flickr_dict(), "train", 8, "image", lambda _: b"no image"), tmp_path / "hf"
    )  # 6 rows a shard
    with pytest.raises(
        corpus.DataError, match=r"data/train-00001-of-00002\.parquet row 2 of .*--skip-bad-data"
    ):
        task(root, tmp_path / "cache").prepare()
    skipping = task(root, tmp_path / "cache", skip_bad_data=True)
    assert skipping.data_issues()["undecodable_images"] == 1
    (named,) = skipping.skipped_inputs()["undecodable images"]
    assert named.endswith("(data/train-00001-of-00002.parquet row 2)")
    assert len(skipping.train_dataset()) == 55  # 11 images, 5 captions each
