"""How much the training loop itself costs per step, beside a bare PyTorch loop.

The loop's overhead is everything but the task's forward/backward, the optimizer step and
data loading: learning-rate updates, autocast, device moves, loss bookkeeping, progress and
stop checks. We measure it as the difference of median step periods between ``dsd.train`` and a
bare ``for batch in batches: loss.backward(); opt.step()`` loop on the same model and the same
pre-built batches, runs interleaved so both see the same machine. The data path of the loop
(sampler + DataLoader fetch of a ready batch) is counted as overhead too, so the figure is an
upper bound.

    python -m dsd.bench_loop [--device cuda] [--rounds 3] [--out results/bench]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from dsd import dist, records
from dsd.adapter import MetricSpec, TaskAdapter, TaskConfig
from dsd.schedule import Schedule
from dsd.train import LoopConfig, RunPlan, Trainer


class _ReadyBatches(Dataset):
    """Items that are whole batches already, so data loading costs next to nothing."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches[i]


def _first(items: list[Any]) -> Any:
    return items[0]


class _BenchTask(TaskAdapter):
    """A small CNN task whose ``training_loss`` stamps the time of every step."""

    name: ClassVar[str] = "bench"
    metrics: ClassVar[dict[str, MetricSpec]] = {"loss": MetricSpec(False)}
    primary_metric: ClassVar[str] = "loss"

    def __init__(self, batches: list[Any], model_fn: Any) -> None:
        super().__init__(TaskConfig(batch_size=1, workers=0), None, Path("."))
        self.batches, self.model_fn = batches, model_fn
        self.stamps: list[float] = []

    dataset_name = "synthetic"
    model_name = "bench"
    default_recipe = "D:1@0.01"

    def build_model(self) -> nn.Module:
        return self.model_fn()

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)

    def train_dataset(self) -> Dataset:
        return _ReadyBatches(self.batches)

    def eval_datasets(self) -> dict[str, Dataset]:
        return {"val": _ReadyBatches(self.batches[:1])}

    def collate_fn(self) -> Any:
        return _first

    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        self.stamps.append(time.perf_counter())
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    def batch_size_of(self, batch: Any) -> int:
        return 1  # one dataset item holds one ready batch

    def eval_batch(self, model: nn.Module, batch: Any, split: str) -> list[Any]:
        return [0.0]

    def compute_metrics(self, split: str, records_: list[Any]) -> dict[str, float]:
        return {"loss": 0.0}


def _periods(stamps: list[float], warmup: int = 3) -> list[float]:
    return [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :], strict=False)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model_fn: Any, batches: list[Any], device: torch.device) -> list[float]:
    """Step periods of the plainest loop: forward, backward, step; nothing else."""
    model = model_fn().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    stamps = []
    for x, y in batches:
        _sync(device)  # the trainer syncs at its loss checks only; this is the fairer bare loop
        stamps.append(time.perf_counter())
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    stamps.append(time.perf_counter())
    return _periods(stamps)


def loop_periods(model_fn: Any, batches: list[Any], device: torch.device, sparse: bool) -> list[float]:
    """Step periods of ``dsd.train.Trainer`` on the same batches (dense, or a sparse phase)."""
    task = _BenchTask(batches, model_fn)
    text = "S30%:1@0.01" if sparse else "D:1@0.01"
    with tempfile.TemporaryDirectory() as tmp:
        record = {"task": "bench", "model": "resnet18", "method": "sparse" if sparse else "dense"}
        plan = RunPlan(folder=Path(tmp) / "run", schedule=Schedule.parse(text), first_phase=0, record=record)
        loop = LoopConfig(eval_every=0, log_every=50, device=str(device), progress=False)
        Trainer(task, plan, loop, dist.DistInfo(0, 1, 0, device)).run()
    return _periods(task.stamps)


def measure(device: torch.device, rounds: int, steps: int, image: int, batch: int) -> dict[str, Any]:
    import torchvision

    def model_fn() -> nn.Module:
        return torchvision.models.resnet18(num_classes=10)

    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(batch, 3, image, image, generator=gen), torch.randint(0, 10, (batch,), generator=gen))
        for _ in range(steps)
    ]
    bare, dense, sparse = [], [], []
    for _ in range(rounds):  # interleaved, so drifts in machine load hit all three alike
        bare += bare_loop(model_fn, batches, device)
        dense += loop_periods(model_fn, batches, device, sparse=False)
        sparse += loop_periods(model_fn, batches, device, sparse=True)
    b, d, s = (statistics.median(x) for x in (bare, dense, sparse))
    return {
        "model": f"resnet18 (10 classes), batch {batch} at {image}px",
        "device": str(device),
        "steps_per_round": steps,
        "rounds": rounds,
        "median_step_s": {"bare_loop": b, "dsd_loop_dense": d, "dsd_loop_sparse": s},
        "loop_overhead_fraction": (d - b) / d,
        "target_overhead_fraction": 0.02,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--image", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    result = measure(torch.device(args.device), args.rounds, args.steps, args.image, args.batch)
    result["versions"] = records.library_versions()
    path = args.out / f"loop-overhead-{torch.device(args.device).type}.json"
    records.atomic_write_json(path, result)
    med = result["median_step_s"]
    print(f"loop overhead on {result['model']} ({result['device']}):")
    bare, dense, sparse = (med[k] * 1e3 for k in ("bare_loop", "dsd_loop_dense", "dsd_loop_sparse"))
    print(f"  median step: bare {bare:.2f} ms, dsd.train dense {dense:.2f} ms, sparse phase {sparse:.2f} ms")
    verdict = "PASS" if result["loop_overhead_fraction"] <= 0.02 else "MISS"
    print(f"  overhead {result['loop_overhead_fraction']:+.2%} of a step (target < 2%): {verdict}")
    print(f"  written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
