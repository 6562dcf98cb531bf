"""The ImageNet task's ImageFolder reading: tree checks, bad images, the verify cache, metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from tasks.imagenet import data as datalib
from tasks.imagenet.adapter import ImageNetConfig, ImageNetTask
from tests.tasks.imagenet.helpers import make_tree, truncate, write_image


def task_on(root: Path, cache: Path, **config) -> ImageNetTask:
    config.setdefault("image_size", 32)
    return ImageNetTask(ImageNetConfig(**config), root, cache)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


def test_tree_is_read_in_imagefolder_order(tree: Path, tmp_path: Path) -> None:
    task = task_on(tree, tmp_path / "cache")
    task.prepare()
    train = task.train_dataset()
    val = task.eval_datasets()["val"]
    assert train.classes == ["n01440764", "n01443537", "n01484850"]
    assert len(train) == 18 and len(val) == 9
    assert train.samples[0] == ("train/n01440764/n01440764_0.JPEG", 0)
    assert [label for _, label in val.samples] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    image, label = train[7]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == 1
    image, _ = val[0]
    assert image.shape == (3, 32, 32)
    assert task.dataset_name == "ImageFolder (3 classes)"
    assert task.data_issues() == {
        "skipped_images": 0,
        "skipped_train_images": 0,
        "skipped_val_images": 0,
        "ignored_files": 0,
    }


def test_hidden_entries_are_ignored_and_other_files_counted(tree: Path, tmp_path: Path) -> None:
    (tree / "train" / ".ipynb_checkpoints").mkdir()
    (tree / "val" / "n01440764" / "notes.txt").write_text("not an image")
    (tree / "val" / "n01440764" / ".DS_Store").write_text("")
    task = task_on(tree, tmp_path / "cache")
    assert len(task.eval_datasets()["val"]) == 9
    assert task.data_issues()["ignored_files"] == 1


@pytest.mark.parametrize("split", ["train", "val"])
def test_missing_split_is_named(tree: Path, tmp_path: Path, split: str) -> None:
    shutil.rmtree(tree / split)
    with pytest.raises(
        datalib.DataTreeError, match=rf"{split} does not exist; expected .*/{split}/<class>/<image>"
    ):
        task_on(tree, tmp_path / "cache").prepare()


@pytest.mark.parametrize("split", ["train", "val"])
def test_empty_split_is_named(tree: Path, tmp_path: Path, split: str) -> None:
    shutil.rmtree(tree / split)
    (tree / split).mkdir()
    with pytest.raises(datalib.DataTreeError, match=rf"{split} is empty"):
        task_on(tree, tmp_path / "cache").prepare()


def test_flat_validation_folder_gets_the_valprep_hint(tree: Path, tmp_path: Path) -> None:
    shutil.rmtree(tree / "val")
    for i in range(4):
        write_image(tree / "val" / f"ILSVRC2012_val_{i:08d}.JPEG", seed=i)
    with pytest.raises(datalib.DataTreeError, match=r"holds 4 images but no class folders.*valprep"):
        task_on(tree, tmp_path / "cache").prepare()


def test_empty_class_folder_is_named(tree: Path, tmp_path: Path) -> None:
    shutil.rmtree(tree / "val" / "n01443537")
    (tree / "val" / "n01443537").mkdir()
    with pytest.raises(datalib.DataTreeError, match=r"class folder .*val/n01443537 holds no image"):
        task_on(tree, tmp_path / "cache").prepare()


def test_class_folders_that_differ_are_listed(tree: Path, tmp_path: Path) -> None:
    shutil.rmtree(tree / "val" / "n01443537")
    write_image(tree / "val" / "n09999999" / "x.JPEG")
    with pytest.raises(datalib.DataTreeError, match=r"only in train/: n01443537; only in val/: n09999999"):
        task_on(tree, tmp_path / "cache").prepare()


def test_truncated_jpeg_stops_with_its_name(tree: Path, tmp_path: Path) -> None:
    bad = truncate(tree / "train" / "n01443537" / "n01443537_2.JPEG")
    with pytest.raises(
        datalib.DataTreeError,
        match=r"1 image\(s\) .* cannot be read: .*n01443537_2\.JPEG .*--skip-bad-images",
    ):
        task_on(tree, tmp_path / "cache").prepare()
    assert str(bad.name) in datalib.describe_bad(datalib.load_index(tree, tmp_path / "cache"))


def test_progressive_and_garbage_files_are_caught_too(tree: Path, tmp_path: Path) -> None:
    progressive = tree / "val" / "n01484850" / "progressive.JPEG"
    Image.open(tree / "val" / "n01484850" / "n01484850_0.JPEG").save(
        progressive, progressive=True, quality=90
    )
    truncate(progressive, 0.6)
    (tree / "train" / "n01440764" / "html.JPEG").write_text("<html>404 Not Found</html>")
    index = datalib.load_index(tree, tmp_path / "cache")
    assert set(index.bad) == {"val/n01484850/progressive.JPEG", "train/n01440764/html.JPEG"}


def test_skip_bad_images_leaves_them_out_and_counts_them(tree: Path, tmp_path: Path) -> None:
    truncate(tree / "train" / "n01443537" / "n01443537_2.JPEG")
    truncate(tree / "val" / "n01484850" / "n01484850_1.JPEG")
    task = task_on(tree, tmp_path / "cache", skip_bad_images=True)
    task.prepare()
    train, val = task.train_dataset(), task.eval_datasets()["val"]
    assert len(train) == 17 and len(val) == 8
    assert "train/n01443537/n01443537_2.JPEG" not in [p for p, _ in train.samples]
    for i in range(len(train)):
        train[i]  # every remaining image decodes
    assert task.data_issues() == {
        "skipped_images": 2,
        "skipped_train_images": 1,
        "skipped_val_images": 1,
        "ignored_files": 0,
    }


def test_verify_verdict_is_cached_and_renewed_when_the_tree_changes(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    datalib.load_index(tree, cache)
    assert len(list((cache / "imagenet-index").glob("*.json"))) == 1

    def fail(path: str) -> str:
        raise AssertionError(f"{path} verified again")

    monkeypatch.setattr(datalib, "check_image", fail)
    assert datalib.load_index(tree, cache).bad == {}  # served from the cache
    monkeypatch.undo()
    truncate(tree / "val" / "n01440764" / "n01440764_0.JPEG")  # new size: new listing key
    assert list(datalib.load_index(tree, cache).bad) == ["val/n01440764/n01440764_0.JPEG"]
    assert len(list((cache / "imagenet-index").glob("*.json"))) == 2


def test_image_broken_after_verification_is_named_when_read(tree: Path, tmp_path: Path) -> None:
    task = task_on(tree, tmp_path / "cache")
    train = task.train_dataset()
    path = tree / train.samples[3][0]
    path.write_bytes(b"")
    with pytest.raises(RuntimeError, match=rf"cannot read image {path}"):
        train[3]


def test_reference_transforms_match_torchvision_presets() -> None:
    assert datalib.default_resize(224) == 256 and datalib.default_resize(28) == 32
    image = Image.new("RGB", (64, 48), (255, 0, 0))
    out = datalib.eval_transform(32, 37)(image)
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out[0], torch.full((32, 32), (1 - 0.485) / 0.229))
    assert datalib.train_transform(28, 0.08)(image).shape == (3, 28, 28)


def test_top1_top5_errors_from_per_sample_records(tree: Path, tmp_path: Path) -> None:
    task = task_on(tree, tmp_path / "cache")

    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.arange(7, dtype=torch.float32).repeat(x.shape[0], 1)
            return logits  # ranking: 6, 5, 4, 3, 2 are the top 5

    labels = torch.tensor([6, 5, 2, 1, 0])
    records = task.eval_batch(Fixed(), (torch.zeros(5, 3, 4, 4), labels), "val")
    assert records == [(1, 1), (0, 1), (0, 1), (0, 0), (0, 0)]
    metrics = task.compute_metrics("val", records)
    assert metrics == {"top1_err": pytest.approx(80.0), "top5_err": pytest.approx(40.0)}
    assert set(metrics) == set(task.metrics)


def test_a_link_back_up_the_tree_is_named_and_not_followed(tree: Path, tmp_path: Path, capsys) -> None:
    """``ln -s .. train/n01/back`` used to be followed some 40 levels deep (issue 20): 18 training
    images became hundreds, all of one class."""
    (tree / "train" / "n01440764" / "back").symlink_to("..")
    listing = datalib.list_tree(tree)
    assert len(listing["train"].files) == 18 and len(listing["val"].files) == 9
    assert f"{tree / 'train' / 'n01440764' / 'back'} leads back to" in capsys.readouterr().err


def test_a_damaged_verify_cache_is_rebuilt_not_fatal(tree: Path, tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    datalib.load_index(tree, cache)
    (cached,) = (cache / "imagenet-index").glob("*.json")
    for damage in ("{torn", "[1, 2]", '{"version": 1, "key": 3}'):
        cached.write_text(damage)
        assert datalib.load_index(tree, cache).bad == {}  # verified again
        assert datalib.cached_verdict(datalib.list_tree(tree), cache) == {}  # and cached anew
    assert "the images are verified again" in capsys.readouterr().err
