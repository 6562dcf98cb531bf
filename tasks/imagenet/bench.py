"""Does data loading keep up with training? Images/s of the loader alone and of training.

    python -m tasks.imagenet.bench                      # the stand-in, ResNet-18, this machine
    python -m tasks.imagenet.bench --data-dir /data/imagenet --arch resnet50 --device cuda

Three numbers, each after a warm-up: the training DataLoader alone (decode + augment, with the
loop's worker count), training fed by that loader (what a run sees), and training on one batch
held in memory (the model's own speed). Loader images/s well above the in-memory training rate
means the model never waits for data. Results go to ``results/bench/imagenet-<arch>-loader.json``
with the machine's core count and load average, since a shared machine slows everything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dsd import files
from dsd.run import records
from dsd.run.parts import default_workers
from dsd.run.sampling import EpochBatchSampler
from tasks.imagenet.adapter import ImageNetConfig, ImageNetTask


def _rate(batches: int, images: int, seconds: float) -> dict[str, float]:
    return {
        "batches": batches,
        "images": images,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 1),
    }


def _loader(task: ImageNetTask, workers: int, device: torch.device) -> DataLoader:
    dataset = task.train_dataset()
    sampler = EpochBatchSampler(len(dataset), task.config.batch_size, seed=0)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def _batches(loader: DataLoader):
    while True:
        yield from loader


def measure_loader(
    task: ImageNetTask, workers: int, batches: int, warmup: int, device: torch.device
) -> dict[str, float]:
    stream = _batches(_loader(task, workers, device))
    for _ in range(warmup):
        next(stream)
    start, images = time.perf_counter(), 0
    for _ in range(batches):
        images += next(stream)[0].shape[0]
    return _rate(batches, images, time.perf_counter() - start)


def _step(
    task: ImageNetTask, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Any, amp: bool
) -> None:
    device = next(model.parameters()).device
    batch = task.to_device(batch, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = task.training_loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_training(
    task: ImageNetTask, workers: int, batches: int, warmup: int, device: torch.device, from_loader: bool
) -> dict[str, float]:
    model = task.build_model().to(device).train()
    optimizer = task.build_optimizer(model, lr=1e-3)
    amp = device.type == "cuda"
    stream = _batches(_loader(task, workers, device))
    if not from_loader:
        held = next(stream)
        stream = iter(lambda: held, None)
    for _ in range(warmup):
        _step(task, model, optimizer, next(stream), amp)
    _sync(device)
    start, images = time.perf_counter(), 0
    for _ in range(batches):
        batch = next(stream)
        _step(task, model, optimizer, batch, amp)
        images += batch[0].shape[0]
    _sync(device)
    return _rate(batches, images, time.perf_counter() - start)


def run_benchmark(
    arch: str = "resnet18",
    data_dir: Path | None = None,
    cache_dir: Path = Path("data/imagenet"),
    out_dir: Path = Path("results/bench"),
    batches: int = 20,
    warmup: int = 3,
    workers: int = -1,
    batch_size: int = 0,
    device: str = "cpu",
) -> Path:
    """Measure and write the JSON; returns its path."""
    task = ImageNetTask(ImageNetConfig(arch=arch, batch_size=batch_size), data_dir, cache_dir)
    task.prepare()
    dev = torch.device(device)
    workers = default_workers(workers, 1, dev)
    load_before = os.getloadavg()
    result = {
        "task": "imagenet",
        "arch": arch,
        "dataset": task.dataset_name,
        "batch_size": task.config.batch_size,
        "image_size": task.config.image_size,
        "workers": workers,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.machine(),
        "versions": records.library_versions(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loader": measure_loader(task, workers, batches, warmup, dev),
        "loader_main_process": measure_loader(task, 0, max(3, batches // 4), 1, dev),
        "training_from_loader": measure_training(task, workers, batches, warmup, dev, from_loader=True),
        "training_in_memory": measure_training(task, workers, batches, warmup, dev, from_loader=False),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    slowest = result["training_in_memory"]["images_per_s"]
    result["loader_headroom"] = round(result["loader"]["images_per_s"] / slowest, 2)
    path = Path(out_dir) / f"imagenet-{arch}-loader.json"
    files.atomic_write_json(path, result)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="ImageFolder tree (default: the stand-in)"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("data/imagenet"))
    parser.add_argument("--out-dir", type=Path, default=Path("results/bench"))
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    path = run_benchmark(
        args.arch,
        args.data_dir,
        args.cache_dir,
        args.out_dir,
        args.batches,
        3,
        args.workers,
        args.batch_size,
        args.device,
    )
    print(json.dumps(json.loads(path.read_text()), indent=1))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
