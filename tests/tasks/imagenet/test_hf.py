"""ImageNet from a Hugging Face dataset on disk (imagenet-1k's schema, written by ``datasets``
itself): the study end to end on parquet shards and on a save_to_disk folder, a hub cache
snapshot found as the same data, and each bad input named."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from dsd import files
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from dsd.taskkit import hf_data
from dsd.taskkit.hf_data import HFDataError
from tasks.imagenet import hf as hf_images
from tasks.imagenet.adapter import ImageNetConfig, ImageNetTask
from tasks.imagenet.data import ImageReadError
from tests.tasks import hf_helpers as hf

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

RECIPE = "D:2steps@0.01 S30%:2steps@0.001 D:1steps@0.0001"


def task(data: Path, cache: Path, **config: object) -> ImageNetTask:
    return ImageNetTask(ImageNetConfig(recipe=RECIPE, image_size=32, batch_size=4, **config), data, cache)


def study(data: Path, tmp_path: Path, methods: list[str] | None = None, **config: object) -> list[Path]:
    run = RunConfig(results_dir=tmp_path / "results", progress=False, device="cpu")
    if methods:
        run.methods = methods
    return run_study(task(data, tmp_path / "cache", **config), run)


@pytest.mark.parametrize("form", ["parquet", "save_to_disk"])
def test_the_study_runs_end_to_end_on_each_form(tmp_path: Path, form: str) -> None:
    data = hf.imagenet_dict()
    root = (
        hf.write_parquet(data, tmp_path / "hf")
        if form == "parquet"
        else hf.write_save_to_disk(data, tmp_path / "hf")
    )
    summary = task(root, tmp_path / "cache").inspect()
    assert summary.splits == {"train": 18, "val": 9} and summary.fingerprint is None  # not verified yet
    folders = study(root, tmp_path)
    assert len(folders) == 3
    for folder in folders:
        record = files.read_json(folder / "config.json")
        assert record["dataset"] == f"Images (3 classes, HF {form})"
        assert record["data_facts"] == {
            "format": f"HF {form}",
            "classes": 3,
            "images": {"train": 18, "val": 9},
            "unreadable": 0,
        }
        assert (folder / "done").is_file()
    again = task(root, tmp_path / "cache").inspect()
    assert again.pending == [] and again.fingerprint is not None  # the verify pass's verdict was cached


def test_a_hub_cache_snapshot_is_the_same_data_as_its_parquet_files(tmp_path: Path) -> None:
    parquet = hf.write_parquet(hf.imagenet_dict(train_per_class=2, val_per_class=1), tmp_path / "hf")
    repo = hf.hub_cache(parquet, tmp_path / "hub")
    (first,) = study(parquet, tmp_path, ["baseline"])
    snapshot = task(repo, tmp_path / "cache")
    assert "hub cache snapshot" in snapshot.inspect().description
    assert study(repo, tmp_path, ["baseline"]) == [first]  # same label, same fingerprint: reused


def test_the_imagenet_label_and_the_readme_less_layout(tmp_path: Path) -> None:
    names = [f"class {i}" for i in range(1000)]
    root = hf.write_parquet(hf.imagenet_dict(tuple(names), 1, 0), tmp_path / "hf", readme=False)
    data = datasets.load_dataset(
        "parquet", data_files=str(root / "data/train-*"), split="train", cache_dir=str(tmp_path / "c")
    )
    hf.write_parquet(datasets.DatasetDict(validation=data.select(range(3))), root, readme=False)
    imagenet = task(root, tmp_path / "cache")
    assert imagenet.dataset_name == "ImageNet (HF parquet)" and imagenet.num_classes == 1000


# ---------------------------------------------------------------------- bad input
def test_a_truncated_shard_is_named(tmp_path: Path) -> None:
    root = hf.write_parquet(hf.imagenet_dict(), tmp_path / "hf")
    hf.truncate(root / "data/train-00001-of-00002.parquet")
    with pytest.raises(HFDataError, match=r"shard data/train-00001-of-00002\.parquet .*truncated"):
        task(root, tmp_path / "cache").inspect()


def test_a_missing_split_lists_the_splits_found(tmp_path: Path) -> None:
    data = hf.imagenet_dict()
    root = hf.write_parquet(
        datasets.DatasetDict(train=data["train"], test=data["validation"]), tmp_path / "hf"
    )
    with pytest.raises(HFDataError, match=r"val: validation or val or valid\); splits found: train, test"):
        task(root, tmp_path / "cache").inspect()


def test_an_unexpected_schema_lists_the_columns_found_and_expected(tmp_path: Path) -> None:
    data = hf.imagenet_dict().rename_columns({"image": "jpg", "label": "cls"})
    root = hf.write_save_to_disk(data, tmp_path / "hf")
    with pytest.raises(
        HFDataError, match=r"has columns jpg, cls, without image, label; expected: image \(.*label \("
    ):
        task(root, tmp_path / "cache").inspect()


def corrupt_row(data: datasets.DatasetDict, split: str, row: int) -> datasets.DatasetDict:
    return hf.spoil_row(data, split, row, "image", lambda data: data[:200])  # a JPEG cut short


def test_an_image_that_does_not_decode_stops_the_run_naming_its_shard_and_row(tmp_path: Path) -> None:
    root = hf.write_parquet(corrupt_row(hf.imagenet_dict(), "train", 11), tmp_path / "hf")  # 9 rows a shard
    with pytest.raises(HFDataError, match=r"data/train-00001-of-00002\.parquet row 2 \(.*--skip-bad-images"):
        task(root, tmp_path / "cache").prepare()


def test_skip_bad_images_counts_and_names_it(tmp_path: Path) -> None:
    root = hf.write_parquet(corrupt_row(hf.imagenet_dict(), "train", 11), tmp_path / "hf")
    (folder,) = study(root, tmp_path, ["baseline"], skip_bad_images=True)
    record = files.read_json(folder / "config.json")
    assert (
        record["data_facts"]["images"] == {"train": 17, "val": 9} and record["data_facts"]["unreadable"] == 1
    )
    skipped = record["skipped"]["unreadable images"]
    assert skipped["count"] == 1 and skipped["first"][0].startswith(
        "data/train-00001-of-00002.parquet row 2 ("
    )


def test_an_image_read_without_the_verify_pass_is_named_when_it_fails(tmp_path: Path) -> None:
    root = hf.write_save_to_disk(corrupt_row(hf.imagenet_dict(), "train", 4), tmp_path / "hf")
    index = hf_images.open_index(hf_data.detect(root))  # not verified: every image assumed good
    images = hf_images.HFImageList(index, "train", tmp_path / "cache", lambda image: image)
    assert images[3][1] == 0  # the rows before it read
    with pytest.raises(
        ImageReadError, match=r"train/data-00000-of-00001\.arrow row 4 of .*verification was skipped"
    ):
        images[4]
