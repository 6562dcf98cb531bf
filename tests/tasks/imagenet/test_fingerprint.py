"""A run's identity includes its data, never the data's path: two ImageFolder trees with the same
folder name get different runs, and one tree moved elsewhere keeps its finished runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dsd import files
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from tasks.imagenet.adapter import ImageNetConfig, ImageNetTask
from tests.tasks.imagenet.helpers import make_tree, truncate

pytestmark = pytest.mark.usefixtures("single_thread")

RECIPE = "D:1steps@0.01 S30%:1steps@0.001 D:1steps@0.0001"


def baseline_folder(tree: Path, results: Path) -> Path:
    task = ImageNetTask(ImageNetConfig(recipe=RECIPE, image_size=32, batch_size=4), tree, results / "cache")
    run = RunConfig(results_dir=results, methods=["baseline"], progress=False, device="cpu")
    (folder,) = run_study(task, run)
    return folder


def test_two_trees_with_the_same_name_get_different_runs(tmp_path: Path) -> None:
    big = make_tree(tmp_path / "a" / "imagenet", train_per_class=8, val_per_class=2, size=36)
    small = make_tree(tmp_path / "b" / "imagenet", train_per_class=4, val_per_class=2, size=36)
    results = tmp_path / "results"
    first, second = baseline_folder(big, results), baseline_folder(small, results)
    assert first != second  # the second study did not reuse the first one's baseline
    facts = [files.read_json(f / "config.json")["data_facts"]["images"]["train"] for f in (first, second)]
    assert facts == [24, 12]


def test_the_same_tree_moved_keeps_its_runs(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "here" / "imagenet", train_per_class=4, val_per_class=2, size=36)
    results = tmp_path / "results"
    first = baseline_folder(tree, results)
    moved = tmp_path / "there" / "copy-of-imagenet"
    shutil.copytree(tree, moved)  # new path, new modification times, same files
    shutil.rmtree(tree)
    assert baseline_folder(moved, results) == first
    record = files.read_json(first / "config.json")
    assert len(record["data_fingerprint"]) == 16 and "here" not in str(record["data_facts"])


def test_a_changed_image_changes_the_fingerprint(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "imagenet", train_per_class=2, val_per_class=1, size=36)
    task = ImageNetTask(ImageNetConfig(image_size=32), tree, tmp_path / "cache")
    before = task.data_fingerprint()
    image = next((tree / "train").rglob("*.JPEG"))
    image.write_bytes(image.read_bytes() + b"\0")  # one more byte
    after = ImageNetTask(ImageNetConfig(image_size=32), tree, tmp_path / "cache").data_fingerprint()
    assert before.digest != after.digest and before.facts == after.facts


def test_skipped_images_are_named_in_the_record_and_on_the_console(tmp_path: Path, capsys) -> None:
    tree = make_tree(tmp_path / "imagenet", train_per_class=4, val_per_class=2, size=36)
    bad = truncate(next((tree / "train").rglob("*.JPEG")))
    task = ImageNetTask(
        ImageNetConfig(recipe=RECIPE, image_size=32, batch_size=4, skip_bad_images=True), tree, tmp_path / "c"
    )
    run = RunConfig(results_dir=tmp_path / "results", methods=["baseline"], progress=False, device="cpu")
    (folder,) = run_study(task, run)
    skipped = files.read_json(folder / "config.json")["skipped"]
    assert list(skipped) == ["unreadable images"] and skipped["unreadable images"]["count"] == 1
    assert skipped["unreadable images"]["first"][0].startswith(bad.relative_to(tree).as_posix())
    lines = [line for line in capsys.readouterr().err.splitlines() if "skipped 1 unreadable images" in line]
    assert len(lines) == 1 and bad.name in lines[0]
