"""How much the training loop itself costs per step, beside a bare PyTorch loop.

The loop's overhead is everything but the task's forward/backward, the optimizer step and
data loading: learning-rate updates, autocast, device moves, loss bookkeeping, logging, progress
and stop checks. On a shared CPU two runs of the same bare loop differ by several percent, so
subtracting the step periods of two runs cannot resolve a 2 % target. We time the overhead
directly instead, inside one run: each step is stamped when the forward starts and when
``optimizer.step()`` returns, and the time outside those spans (the *gap*) is what the loop adds.
The same gap is measured for a bare ``for x, y in batches`` loop, whose gap is the floor of any
Python loop; the loop's overhead is its mean gap above that floor, as a fraction of its median
step. The mean, not the median, so that work done every N steps (logging) is counted in full.
The data path of the loop (sampler + DataLoader fetch of a ready batch) is counted as overhead
too, so the figure is an upper bound. End-to-end step periods of the bare and the suite's loop,
interleaved over rounds, are recorded beside it, with the spread between the bare rounds that
says how much of their difference is the machine.

    python -m dsd.bench.loop [--device cuda] [--rounds 3] [--out results/bench]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from dsd import files
from dsd.records.layout import RunFolder
from dsd.records.run import RunRecord
from dsd.run import dist
from dsd.run.settings import LoopConfig
from dsd.run.training.loop import RunLoop, RunPlan
from dsd.schedule import Schedule
from dsd.taskkit.adapter import MetricSpec, TaskAdapter, TaskConfig
from dsd.taskkit.environment import library_versions
from dsd.taskkit.fingerprint import DataFingerprint, FingerprintBuilder


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
        self.starts: list[float] = []  # forward begins
        self.ends: list[float] = []  # optimizer.step() returned

    dataset_name = "synthetic"
    model_name = "bench"
    default_recipe = "D:1@0.01"

    def build_model(self) -> nn.Module:
        return self.model_fn()

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        # registered before the engine's hooks: a sparse phase's re-masking falls in the gap
        optimizer.register_step_post_hook(self._stamp_end)
        return optimizer

    def _stamp_end(self, *_: Any) -> None:
        _sync(self.device_for_sync)
        self.ends.append(time.perf_counter())

    def train_dataset(self) -> Dataset:
        return _ReadyBatches(self.batches)

    def data_fingerprint(self) -> DataFingerprint:
        return FingerprintBuilder("synthetic ready batches").add(len(self.batches)).finish()

    def eval_datasets(self) -> dict[str, Dataset]:
        return {"val": _ReadyBatches(self.batches[:1])}

    def collate_fn(self) -> Any:
        return _first

    device_for_sync = torch.device("cpu")

    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        _sync(self.device_for_sync)
        self.starts.append(time.perf_counter())
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    def batch_size_of(self, batch: Any) -> int:
        return 1  # one dataset item holds one ready batch

    def eval_batch(self, model: nn.Module, batch: Any, split: str) -> list[Any]:
        return [0.0]

    def compute_metrics(self, split: str, records_: list[Any]) -> dict[str, float]:
        return {"loss": 0.0}


@dataclass
class Timings:
    """Per-step stamps of one run: forward start and ``optimizer.step()`` return."""

    starts: list[float]
    ends: list[float]
    warmup: int = 3

    def periods(self) -> list[float]:
        """Start-to-start step periods after the warm-up steps."""
        s = self.starts[self.warmup :]
        return [b - a for a, b in itertools.pairwise(s)]

    def gaps(self) -> list[float]:
        """Time from each step's end to the next step's forward: the loop's own work."""
        pairs = zip(self.ends[self.warmup :], self.starts[self.warmup + 1 :], strict=False)
        return [start - end for end, start in pairs]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model_fn: Any, batches: list[Any], device: torch.device) -> Timings:
    """The plainest loop: forward, backward, step; nothing else."""
    model = model_fn().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    starts, ends = [], []
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        _sync(device)
        starts.append(time.perf_counter())
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        ends.append(time.perf_counter())
    return Timings(starts, ends)


def suite_loop(model_fn: Any, batches: list[Any], device: torch.device, sparse: bool) -> Timings:
    """``dsd.run.training.loop.RunLoop`` on the same batches (dense, or a sparse phase)."""
    task = _BenchTask(batches, model_fn)
    task.device_for_sync = device
    text = "S30%:1@0.01" if sparse else "D:1@0.01"
    with tempfile.TemporaryDirectory() as tmp:
        method = "sparse" if sparse else "dense"
        record = RunRecord("bench", "resnet18", "synthetic", "bench/resnet18", method, seed=0)
        folder = RunFolder(Path(tmp) / "run")
        plan = RunPlan(folder=folder, schedule=Schedule.parse(text), first_phase=0, record=record)
        loop = LoopConfig(eval_every=0, log_every=10, device=str(device), progress=True)
        RunLoop(task, plan, loop, dist.DistInfo(0, 1, 0, device)).run()
    return Timings(task.starts, task.ends)


def measure(device: torch.device, rounds: int, steps: int, image: int, batch: int) -> dict[str, Any]:
    import torchvision

    def model_fn() -> nn.Module:
        return torchvision.models.resnet18(num_classes=10)

    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(batch, 3, image, image, generator=gen), torch.randint(0, 10, (batch,), generator=gen))
        for _ in range(steps)
    ]
    runs: dict[str, list[Timings]] = {"bare": [], "dense": [], "sparse": []}
    for _ in range(rounds):  # interleaved, so drifts in machine load hit all three alike
        runs["bare"].append(bare_loop(model_fn, batches, device))
        runs["dense"].append(suite_loop(model_fn, batches, device, sparse=False))
        runs["sparse"].append(suite_loop(model_fn, batches, device, sparse=True))

    def pooled(kind: str, what: str) -> list[float]:
        return [x for t in runs[kind] for x in getattr(t, what)()]

    period = {k: statistics.median(pooled(k, "periods")) for k in runs}
    gap = {k: statistics.fmean(pooled(k, "gaps")) for k in runs}
    bare_rounds = [statistics.median(t.periods()) for t in runs["bare"]]
    overhead = (gap["dense"] - gap["bare"]) / period["dense"]
    return {
        "model": f"resnet18 (10 classes), batch {batch} at {image}px",
        "device": str(device),
        "steps_per_round": steps,
        "rounds": rounds,
        "method": "mean gap between optimizer.step() return and the next forward, above the bare loop's",
        "mean_gap_s": {
            "bare_loop": gap["bare"],
            "dsd_loop_dense": gap["dense"],
            "dsd_loop_sparse": gap["sparse"],
        },
        "median_step_s": {
            "bare_loop": period["bare"],
            "dsd_loop_dense": period["dense"],
            "dsd_loop_sparse": period["sparse"],
        },
        "bare_round_spread": (max(bare_rounds) - min(bare_rounds)) / statistics.median(bare_rounds),
        "loop_overhead_fraction": overhead,
        "sparse_phase_overhead_fraction": (gap["sparse"] - gap["bare"]) / period["sparse"],
        "end_to_end_difference_fraction": (period["dense"] - period["bare"]) / period["dense"],
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
    result["versions"] = library_versions()
    path = args.out / f"loop-overhead-{torch.device(args.device).type}.json"
    files.atomic_write_json(path, result)
    med = result["median_step_s"]
    print(f"loop overhead on {result['model']} ({result['device']}):")
    bare, dense, sparse = (med[k] * 1e3 for k in ("bare_loop", "dsd_loop_dense", "dsd_loop_sparse"))
    print(f"  median step: bare {bare:.2f} ms, suite loop dense {dense:.2f} ms, sparse phase {sparse:.2f} ms")
    gaps = result["mean_gap_s"]
    print(
        f"  mean time outside forward/backward/step: bare {gaps['bare_loop'] * 1e3:.2f} ms, "
        f"suite loop dense {gaps['dsd_loop_dense'] * 1e3:.2f} ms, "
        f"sparse {gaps['dsd_loop_sparse'] * 1e3:.2f} ms"
    )
    verdict = "PASS" if result["loop_overhead_fraction"] < 0.02 else "MISS"
    print(f"  loop overhead {result['loop_overhead_fraction']:+.2%} of a step (target < 2%): {verdict}")
    print(
        f"  (end to end the dense steps differ by {result['end_to_end_difference_fraction']:+.2%}; "
        f"the bare loop's own rounds spread {result['bare_round_spread']:.2%}: machine noise)"
    )
    print(f"  written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
