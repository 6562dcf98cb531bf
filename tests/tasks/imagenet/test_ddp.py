"""The ImageNet task under DDP: two CPU processes (gloo) started by torchrun run a study; every
validation image is scored exactly once, whatever the split between the ranks.

Run as a script (by torchrun) this file is the worker; under pytest it is the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[3]
RECIPE = "D:2steps@0.01 S30%:2steps@0.001 D:1steps@0.0001"


def worker(tree: Path, results: Path) -> None:
    from dsd.run.execute import run_study
    from dsd.run.settings import RunConfig
    from tasks.imagenet.adapter import ImageNetConfig, ImageNetTask

    class CountingTask(ImageNetTask):
        """Writes how many records each evaluation reduced (only rank 0 reduces)."""

        def compute_metrics(self, split: str, records: list[Any]) -> dict[str, float]:
            with open(results / "eval_counts.txt", "a") as handle:
                handle.write(f"{os.environ['RANK']} {split} {len(records)}\n")
            return super().compute_metrics(split, records)

    config = ImageNetConfig(recipe=RECIPE, image_size=32, batch_size=4, workers=0)
    task = CountingTask(config, tree, results / "cache")
    run_study(task, RunConfig(results_dir=results, progress=False, device="cpu"))


def test_two_process_study_scores_every_validation_image_once(tmp_path: Path) -> None:
    from dsd import files
    from tests.tasks.imagenet.helpers import make_tree

    tree = make_tree(tmp_path / "tree", train_per_class=8, val_per_class=3, size=36)  # 9 val images: 5 + 4
    results = tmp_path / "results"
    results.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        __file__, str(tree), str(results),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]

    counts = (results / "eval_counts.txt").read_text().split("\n")[:-1]
    assert len(counts) == 5  # baseline: 1 phase end; dsd and control: 2 each
    assert set(counts) == {"0 val 9"}
    folders = sorted(p.parent for p in results.glob("runs/*/*/seed0/done"))
    assert len(folders) == 3
    for folder in folders:
        result = files.read_json(folder / "result.json")
        assert result["world_size"] == 2
    dsd_folder = next(f for f in folders if f.parent.name.startswith("dsd-"))
    sparse = torch.load(dsd_folder / "phase1.pt", weights_only=True)
    assert int((sparse["fc.weight"] == 0).sum()) == round(sparse["fc.weight"].numel() * 0.3)


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
