"""Exact evaluation of a whole split, on one process or many.

Each rank scores the strided shard ``rank, rank + world, ...`` (no padding, so no sample counts
twice), turning every sample into one small record (``TaskAdapter.eval_batch``); rank 0 gathers
the records back into dataset order and reduces them once (``compute_metrics``). The metrics are
then the same whatever the world size, unlike averaging per-rank means over a padded sampler.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from dsd.run import dist
from dsd.run.training.parts import RunParts
from dsd.run.training.precision import Precision
from dsd.taskkit.adapter import TaskAdapter


def evaluate_split(
    adapter: TaskAdapter, parts: RunParts, split: str, info: dist.DistInfo, precision: Precision
) -> tuple[dict[str, float], list[Any] | None]:
    """Metrics of ``split`` on every rank, and the per-sample records in dataset order on rank 0
    (None elsewhere). Runs the plain module, not the DDP wrapper (no gradient sync to wait for)."""
    model, dataset = parts.raw_model, parts.eval_sets[split]
    shard = Subset(dataset, dist.shard_indices(len(dataset), info.rank, info.world_size))
    loader = DataLoader(
        shard,
        batch_size=adapter.config.eval_batch_size or adapter.config.batch_size,
        num_workers=parts.workers,
        collate_fn=adapter.collate_fn(),
        pin_memory=info.device.type == "cuda",
        generator=torch.Generator().manual_seed(0),  # never draws from the training RNG
    )
    was_training = model.training
    model.eval()
    local: list[Any] = []
    with torch.no_grad(), precision.autocast():
        for batch in loader:
            batch = adapter.to_device(batch, info.device)
            out = adapter.eval_batch(model, batch, split)
            if len(out) != adapter.batch_size_of(batch):
                raise RuntimeError(
                    f"{type(adapter).__name__}.eval_batch returned {len(out)} records for a "
                    f"batch of {adapter.batch_size_of(batch)}; it must return one per sample"
                )
            local.extend(out)
    model.train(was_training)
    merged = dist.gather_records(local, len(dataset))
    metrics = adapter.compute_metrics(split, merged) if info.is_main else None
    return dist.broadcast_object(metrics), merged if info.is_main else None
