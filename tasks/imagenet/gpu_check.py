"""GPU check: does the sparse phase slow ResNet-50 training? Dense vs sparse images/s, bf16.

    python -m tasks.imagenet.gpu_check                    # about a minute on one modern GPU
    python -m tasks.imagenet.gpu_check --batch-size 128   # if 256 does not fit

Synthetic data (one random batch held on the GPU, so the loader plays no part), the task's own
model (torchvision ResNet-50, channels_last), SGD with momentum and weight decay as the recipe,
bf16 autocast as the training loop uses on CUDA. Three measurements on one model: dense, sparse
(``dsd.DSD.prune(0.3)``: the masks are applied to the gradients before and to the weights after
every step) and dense again after ``redense()``. Also timed alone: one ``prune()`` and the
per-step mask work. Results, with the GPU's name and the library versions, go to
``results/bench/imagenet-gpu-<arch>.json``; ``sparse_over_dense`` is the throughput ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import dsd
from dsd import files
from dsd.files import read_json
from dsd.taskkit.environment import library_versions
from tasks.imagenet import models


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_steps(step: Any, steps: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - start


def run_check(
    arch: str,
    batch_size: int,
    image_size: int,
    steps: int,
    warmup: int,
    out_dir: Path,
    device_name: str = "cuda",
) -> Path:
    """Measure and write the JSON; returns its path. ``device_name="cpu"`` is only a smoke test."""
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check needs a CUDA device; none is visible (torch.cuda.is_available() is False)")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = models.build_model(arch, 1000).to(device, memory_format=torch.channels_last).train()
    spec = models.arch_spec(arch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=spec.weight_decay)
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (batch_size,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def measure(label: str) -> dict[str, float]:
        for _ in range(warmup):
            step()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = _timed_steps(step, steps, device)
        rate = steps * batch_size / seconds
        print(f"{label:>8}: {rate:8.1f} images/s ({seconds / steps * 1000:.1f} ms/step)", flush=True)
        return {
            "steps": steps,
            "seconds": round(seconds, 4),
            "images_per_s": round(rate, 1),
            "ms_per_step": round(seconds / steps * 1000, 3),
            "peak_memory_gib": (
                round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None
            ),
        }

    engine = dsd.DSD(model, optimizer)
    result: dict[str, Any] = {
        "task": "imagenet",
        "arch": arch,
        "data": "synthetic (one random batch on the GPU)",
        "batch_size": batch_size,
        "image_size": image_size,
        "amp": "bf16 autocast",
        "memory_format": "channels_last",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke test)",
        "versions": library_versions(),
        "prunable_tensors": len(engine.tensors),
        "prunable_weights": sum(t.numel for t in engine.tensors),
    }
    result["dense"] = measure("dense")
    _sync(device)
    start = time.perf_counter()
    engine.prune(0.3)
    _sync(device)
    result["prune_s"] = round(time.perf_counter() - start, 4)
    result["sparse"] = measure("sparse")
    mask_work = _timed_steps(lambda: (engine.apply_masks(), engine.mask_gradients()), steps, device)
    result["mask_work_ms_per_step"] = round(mask_work / steps * 1000, 3)
    engine.redense()
    result["redense"] = measure("redense")
    dense_rate = (result["dense"]["images_per_s"] + result["redense"]["images_per_s"]) / 2
    result["sparse_over_dense"] = round(result["sparse"]["images_per_s"] / dense_rate, 4)
    print(f"sparse / dense throughput: {result['sparse_over_dense']:.3f}")
    path = Path(out_dir) / f"imagenet-gpu-{arch}.json"
    files.atomic_write_json(path, result)
    print(f"written to {path}")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--out-dir", type=Path, default=Path("results/bench"))
    parser.add_argument("--device", default="cuda", help="cuda (the check), or cpu for a smoke test")
    args = parser.parse_args(argv)
    path = run_check(
        args.arch, args.batch_size, args.image_size, args.steps, args.warmup, args.out_dir, args.device
    )
    print(json.dumps(read_json(path), indent=1))


if __name__ == "__main__":
    main()
