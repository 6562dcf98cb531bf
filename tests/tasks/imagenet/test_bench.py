"""The ImageNet benchmarks run and write their JSON (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.imagenet import bench, gpu_check
from tests.tasks.imagenet.helpers import make_tree

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_loader_benchmark_writes_its_measurements(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", train_per_class=4, val_per_class=1, size=40)
    path = bench.run_benchmark(
        "resnet18", tree, tmp_path / "cache", tmp_path / "bench", batches=2, warmup=1, workers=0, batch_size=4
    )
    result = json.loads(path.read_text())
    assert path.name == "imagenet-resnet18-loader.json"
    assert result["dataset"] == "ImageFolder (3 classes)" and result["batch_size"] == 4
    for key in ("loader", "loader_main_process", "training_from_loader", "training_in_memory"):
        assert result[key]["images"] == result[key]["batches"] * 4 and result[key]["images_per_s"] > 0


def test_gpu_check_runs_as_a_cpu_smoke_test(tmp_path: Path) -> None:
    path = gpu_check.run_check("resnet18", 2, 32, steps=1, warmup=1, out_dir=tmp_path, device_name="cpu")
    result = json.loads(path.read_text())
    assert set(result) >= {
        "dense",
        "sparse",
        "redense",
        "sparse_over_dense",
        "prune_s",
        "mask_work_ms_per_step",
    }
    assert result["device"] == "cpu (smoke test)" and result["prunable_tensors"] == 20
