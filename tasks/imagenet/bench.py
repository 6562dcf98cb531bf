"""Does data loading keep up with training? Images/s of the loader alone and of training.

    python -m tasks.imagenet.bench                      # the stand-in, ResNet-18, this machine
    python -m tasks.imagenet.bench --data /data/imagenet --arch resnet50 --device cuda
    python -m tasks.imagenet.bench --data /data/imagenet-1k-hf --compare-forms --images 4000
    python -m tasks.imagenet.bench --photos 4000 --compare-forms --workers 2

Three numbers, each after a warm-up: the training DataLoader alone (decode + augment, with the
loop's worker count), training fed by that loader (what a run sees), and training on one batch
held in memory (the model's own speed). Loader images/s well above the in-memory training rate
means the model never waits for data. Results go to ``results/bench/imagenet-<arch>-loader.json``
with the machine's core count and load average, since a shared machine slows everything.

``--data`` takes an ImageFolder tree or a Hugging Face dataset (parquet shards, hub cache,
save_to_disk). ``--compare-forms`` measures the training loader on the same images as an
ImageFolder tree and as Hugging Face parquet shards (both written under the cache folder by
``tasks.imagenet.bench_data``), interleaved round by round so that a load that comes and goes on a
shared machine hits both alike, each round with the load average; then one epoch of each with
its resident memory (proportional set size of the process and its workers, anonymous and
file-backed apart: mapped Arrow pages are file-backed, the shared and reclaimable page cache).
Results in ``results/bench/imagenet-loader-forms.json``. ``--photos N`` makes N ImageNet-sized
JPEGs (from scikit-learn's bundled photographs) to measure on, offline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dsd import files
from dsd.files import read_json
from dsd.taskkit.environment import available_cores, default_workers, library_versions
from dsd.taskkit.sampling import EpochBatchSampler
from tasks.imagenet import bench_data
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
        "cores": available_cores(),
        "machine": platform.machine(),
        "versions": library_versions(),
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


# ---------------------------------------------------------------------- ImageFolder vs HF parquet
def _family(pid: int) -> list[int]:
    """A process and its descendants (the DataLoader's workers), from ``/proc``."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except OSError:  # the thread ended
                continue
    return found


def resident() -> dict[str, float]:
    """Proportional resident memory (MB) of this process and its workers, anonymous and
    file-backed apart (``Pss_Anon`` / ``Pss_File`` of ``smaps_rollup``; empty off Linux)."""
    totals = {"anon_mb": 0.0, "file_mb": 0.0}
    for pid in _family(os.getpid()):
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("Pss_Anon", "Pss_File"):
                totals["anon_mb" if key == "Pss_Anon" else "file_mb"] += int(value.split()[0]) / 1024
    return {key: round(value, 1) for key, value in totals.items()}


def measure_epoch_memory(task: ImageNetTask, workers: int) -> dict[str, Any]:
    """One epoch of the training loader, its resident memory sampled every few batches."""
    before = resident()
    loader = _loader(task, workers, torch.device("cpu"))
    samples, images = [], 0
    for i, (batch, _) in enumerate(loader):
        images += batch.shape[0]
        if i % 4 == 0:
            samples.append(resident())
    del loader
    return {
        "images": images,
        "before_loader": before,
        "after_first_batch": samples[0],
        "peak_anon_mb": max(s["anon_mb"] for s in samples),
        "peak_file_mb": max(s["file_mb"] for s in samples),
    }


def _bytes_on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def compare_forms(
    data_dir: Path | None,
    cache_dir: Path,
    out_dir: Path,
    images: int = 0,
    batches: int = 20,
    warmup: int = 3,
    rounds: int = 3,
    workers: int = 2,
    batch_size: int = 0,
    arch: str = "resnet18",
) -> Path:
    """The training loader's images/s on the same images as an ImageFolder tree and as HF
    parquet, interleaved (ABBA order), then one epoch of each with its memory; writes the JSON."""
    forms = bench_data.both_forms(data_dir, cache_dir, images)
    tasks = {
        name: ImageNetTask(ImageNetConfig(arch=arch, batch_size=batch_size), path, cache_dir)
        for name, path in forms.items()
    }
    for task in tasks.values():
        task.prepare()
    cpu = torch.device("cpu")
    measured: list[dict[str, Any]] = []
    for r in range(rounds):
        for name in list(tasks) if r % 2 == 0 else list(tasks)[::-1]:
            load = os.getloadavg()[0]
            rate = measure_loader(tasks[name], workers, batches, warmup, cpu)
            measured.append({"round": r, "form": name, "loadavg_1min": round(load, 2), **rate})
    median = {
        name: statistics.median(m["images_per_s"] for m in measured if m["form"] == name) for name in tasks
    }
    first = tasks["ImageFolder"]
    result = {
        "dataset": first.dataset_name,
        "images": len(first.train_dataset()),
        "image_size": first.config.image_size,
        "batch_size": first.config.batch_size,
        "workers": workers,
        "cores": available_cores(),
        "bytes_on_disk": {
            "ImageFolder": sum(p.stat().st_size for p in (forms["ImageFolder"] / "train").rglob("*.*")),
            "HF parquet": _bytes_on_disk(forms["HF parquet"] / "data"),
            "HF parquet, its Arrow cache": _bytes_on_disk(Path(cache_dir) / "hf-arrow"),
        },
        "rounds": measured,
        "median_images_per_s": median,
        "hf_over_folder": round(median["HF parquet"] / median["ImageFolder"], 3),
        "memory": {name: measure_epoch_memory(task, workers) for name, task in tasks.items()},
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "versions": library_versions(),
    }
    path = Path(out_dir) / "imagenet-loader-forms.json"
    files.atomic_write_json(path, result)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument(
        "--data",
        "--data-dir",
        dest="data_dir",
        type=Path,
        default=None,
        help="an ImageFolder tree or a Hugging Face dataset (default: the stand-in)",
    )
    parser.add_argument(
        "--compare-forms",
        action="store_true",
        help="the loader on the same images as an ImageFolder tree and as HF parquet, interleaved",
    )
    parser.add_argument("--images", type=int, default=0, help="--compare-forms: training images; 0: all")
    parser.add_argument("--rounds", type=int, default=3, help="--compare-forms: measurements of each form")
    parser.add_argument(
        "--photos", type=int, default=0, help="make N ImageNet-sized JPEGs and measure on them"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("data/imagenet"))
    parser.add_argument("--out-dir", type=Path, default=Path("results/bench"))
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.photos:
        if args.data_dir is not None:
            parser.error("--photos makes the data: leave --data out")
        args.data_dir = bench_data.make_photos(args.cache_dir / "photos" / str(args.photos), args.photos)
    if args.compare_forms:
        workers = args.workers if args.workers >= 0 else 2
        path = compare_forms(
            args.data_dir, args.cache_dir, args.out_dir, args.images, args.batches, 3, args.rounds, workers,
            args.batch_size, args.arch,
        )  # fmt: skip
        print(json.dumps(read_json(path), indent=1))
        print(f"written to {path}")
        return
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
    print(json.dumps(read_json(path), indent=1))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
