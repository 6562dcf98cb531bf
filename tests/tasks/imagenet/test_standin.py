"""The digits stand-in: layout, sizes, disjoint digits, determinism, atomic build; and a study on
it end to end through the loop (tiny scale: a few steps per phase)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dsd import files
from dsd.records.layout import RunFolder
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from tasks.imagenet import standin as standin_lib
from tasks.imagenet.adapter import ImageNetConfig, ImageNetTask
from tasks.imagenet.sources import STANDIN_NAME
from tasks.imagenet.standin import MANIFEST, StandinSpec, ensure_standin

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_standin(tmp_path_factory.mktemp("cache"))


def digit_ids(root: Path, split: str) -> list[int]:
    return [int(p.name[1:5]) for p in (root / split).glob("*/*.png")]


def test_layout_and_sizes(standin: Path) -> None:
    spec = StandinSpec()
    manifest = json.loads((standin / MANIFEST).read_text())
    assert manifest["name"] == STANDIN_NAME
    for split, canvases in (("train", spec.train_canvases), ("val", spec.val_canvases)):
        assert sorted(p.name for p in (standin / split).iterdir()) == [str(d) for d in range(10)]
        files = sorted((standin / split).glob("*/*.png"))
        assert len(files) == manifest["images"][split] == len(manifest["digits"][split]) * canvases
    assert manifest["images"]["val"] >= 1000
    assert len(manifest["digits"]["val"]) == 10 * spec.val_digits_per_class
    with Image.open(next((standin / "val" / "3").iterdir())) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (spec.canvas, spec.canvas))


def test_validation_digits_are_never_training_digits(standin: Path) -> None:
    train, val = digit_ids(standin, "train"), digit_ids(standin, "val")
    assert not set(train) & set(val)
    assert set(train) | set(val) == set(range(1797))
    manifest = json.loads((standin / MANIFEST).read_text())
    assert sorted(set(val)) == manifest["digits"]["val"]
    _, labels = standin_lib.load_digits_arrays()
    for path in (standin / "val").glob("*/*.png"):  # each digit sits in its own label's folder
        assert labels[int(path.name[1:5])] == int(path.parent.name)


def test_build_is_deterministic(standin: Path) -> None:
    spec = StandinSpec()
    images, _ = standin_lib.load_digits_arrays()
    for split_id, split in enumerate(standin_lib.SPLITS):
        for path in sorted((standin / split).glob("*/*.png"))[::301]:
            sample, canvas = int(path.name[1:5]), int(path.name.split("_c")[1][0])
            pixels = standin_lib.render_canvas(
                images[sample], spec, np.random.default_rng([spec.seed, split_id, sample, canvas])
            )
            buffer = io.BytesIO()
            Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
            assert buffer.getvalue() == path.read_bytes(), path
    again = standin_lib.split_indices(
        standin_lib.load_digits_arrays()[1], spec.val_digits_per_class, spec.seed
    )
    assert sorted(again["val"].tolist()) == sorted(set(digit_ids(standin, "val")))
    assert StandinSpec().key() == spec.key() != StandinSpec(seed=1).key()


def test_canvases_differ_and_are_not_trivial(standin: Path) -> None:
    files = sorted((standin / "train" / "7").glob("*.png"))[:2]  # two canvases of one digit
    a, b = (np.asarray(Image.open(f), dtype=np.float32) for f in files)
    assert files[0].name[:5] == files[1].name[:5] and np.abs(a - b).mean() > 10
    assert a.std() > 10  # colour, clutter and noise, not a flat background


def test_ensure_is_idempotent_and_leaves_no_temporary_folder(standin: Path) -> None:
    manifest = standin / MANIFEST
    stamp = manifest.stat().st_mtime_ns
    assert ensure_standin(standin.parent) == standin
    assert manifest.stat().st_mtime_ns == stamp
    assert [p.name for p in standin.parent.iterdir() if p.name.startswith(".")] == []


def test_interrupted_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_render = standin_lib.render_canvas
    calls = {"n": 0}

    def crash_later(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 50:
            raise KeyboardInterrupt("simulated interruption")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(standin_lib, "render_canvas", crash_later)
    with pytest.raises(KeyboardInterrupt):
        ensure_standin(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_standin_study_end_to_end(standin: Path, tmp_path: Path) -> None:
    """resnet18 on the stand-in through dsd.run.study: baseline, DSD and the dense control."""
    config = ImageNetConfig(
        recipe="D:4steps@0.02 S30%:3steps@0.002 D:3steps@0.0002", batch_size=16, workers=1
    )
    task = ImageNetTask(config, None, standin.parent)
    assert task.dataset_name == STANDIN_NAME and task.paper_key == "imagenet/resnet18"
    folders = run_study(task, RunConfig(results_dir=tmp_path, progress=False))
    runs = {files.read_json(f / "config.json")["method"]: f for f in folders}
    assert set(runs) == {"baseline", "dsd", "dense-control"}
    val_size = len(task.eval_datasets()["val"])
    for _method, folder in runs.items():
        assert RunFolder(folder).is_done
        result = files.read_json(folder / "result.json")
        assert result["dataset"] == STANDIN_NAME and result["model"] == "resnet18"
        assert result["task_config"]["image_size"] == 28 and result["task_config"]["batch_size"] == 16
        assert result["description"]["images"]["val"] == val_size
        assert result["data_issues"]["skipped_images"] == 0
        assert set(result["final"]["val"]) == {"top1_err", "top5_err"}
        for value in result["final"]["val"].values():  # a multiple of 1/val_size, as a percentage
            assert value * val_size / 100 == pytest.approx(round(value * val_size / 100), abs=1e-6)
    dsd_result = files.read_json(runs["dsd"] / "result.json")
    assert [p["label"] for p in dsd_result["phases"]] == ["S30%", "D"]
    sparse = torch.load(runs["dsd"] / "phase1.pt", weights_only=True)
    assert int((sparse["conv1.weight"] == 0).sum()) == 0  # the first conv stays dense
    for name in ("layer1.0.conv1.weight", "layer4.1.conv2.weight", "fc.weight"):
        assert int((sparse[name] == 0).sum()) == round(sparse[name].numel() * 0.3), name
    assert (runs["dsd"] / "histograms.json").is_file()


@pytest.mark.parametrize("arch", ["vit_b_16", "convnext_tiny"])
def test_todays_architectures_run_a_tiny_study_reduced_and_labelled_so(
    standin: Path, tmp_path: Path, arch: str
) -> None:
    """ViT-B/16 and ConvNeXt-Tiny on the stand-in: their reduced configuration, named in the run's
    setup notes (the tables' dataset label), AdamW, and the stated tensors pruned."""
    recipe = "D:3steps@0.001 S30%:2steps@0.0001 D:2steps@1e-05"
    task = ImageNetTask(
        ImageNetConfig(arch=arch, recipe=recipe, batch_size=16, workers=1), None, standin.parent
    )
    folders = run_study(task, RunConfig(results_dir=tmp_path, progress=False))
    runs = {files.read_json(f / "config.json")["method"]: f for f in folders}
    result = files.read_json(runs["dsd"] / "result.json")
    assert result["model"] == arch and any(note.startswith("reduced ") for note in result["setup"])
    assert result["task_config"]["image_size"] == 32 and result["description"]["optimizer"].startswith(
        "adamw"
    )
    sparse = torch.load(runs["dsd"] / "phase1.pt", weights_only=True)
    pruned = {
        "vit_b_16": ["encoder.layers.encoder_layer_0.self_attention.in_proj_weight", "heads.head.weight"],
        "convnext_tiny": [
            "features.1.0.block.0.weight",
            "features.1.0.block.3.weight",
            "classifier.2.weight",
        ],
    }[arch]
    dense = {
        "vit_b_16": ["conv_proj.weight", "class_token", "encoder.pos_embedding"],
        "convnext_tiny": ["features.0.0.weight", "features.1.0.layer_scale"],
    }[arch]
    for name in pruned:
        assert int((sparse[name] == 0).sum()) >= round(sparse[name].numel() * 0.3), name
    for name in dense:
        assert int((sparse[name] == 0).sum()) == 0, name
