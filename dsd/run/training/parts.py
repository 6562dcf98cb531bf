"""Everything a run trains with, built from the task adapter: model, optimizer, engine, data.

The adapter builds a fresh model (the loop has seeded every generator first); the run's start
weights, if any, are loaded strictly; several ranks wrap the model in DDP; a schedule with a
sparse phase gets a DSD engine on the optimizer, with the task's choice of tensors. Training
batches come from a seeded, resumable, per-rank sampler (``dsd.taskkit.sampling``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dsd.engine import DSD, SparsityReport
from dsd.errors import CheckpointError
from dsd.files import safe_torch_load
from dsd.run import dist
from dsd.schedule import Phase, Schedule
from dsd.taskkit.adapter import TaskAdapter
from dsd.taskkit.environment import default_workers
from dsd.taskkit.sampling import EpochBatchSampler
from dsd.taskkit.weights import load_model_weights


@dataclass
class RunParts:
    """The objects one run trains with."""

    raw_model: nn.Module  # the task's own module (evaluated, saved)
    model: nn.Module  # what training forwards through: the DDP wrapper on several ranks
    optimizer: torch.optim.Optimizer
    engine: DSD | None  # None when the schedule never prunes
    trainable: list[nn.Parameter]  # what gradient clipping sees
    train_set: Dataset
    eval_sets: dict[str, Dataset]  # the first is evaluated every epoch
    sampler: EpochBatchSampler
    workers: int

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    def enter(
        self, phase: Phase, ablation: dict[str, dict[str, Any]], notify: Callable[[str], None]
    ) -> SparsityReport | None:
        """Make the engine match a phase that starts: re-dense out of a sparse phase, prune into
        one (with an ablation's arguments), telling ``notify`` each moment (``redensed``,
        ``before_prune``, ``pruned``). Returns the pruning report, or None when nothing was pruned.
        A phase that continues the previous one (``Phase.joined``) keeps the engine as it is."""
        if self.engine is None or phase.joined:
            return None
        if self.engine.is_sparse:
            self.engine.redense(**ablation["redense"])
            notify("redensed")
        if not phase.is_sparse:
            return None
        notify("before_prune")
        report = self.engine.prune(phase.sparsity, **ablation["prune"])
        notify("pruned")
        return report

    def train_batches(
        self, adapter: TaskAdapter, epoch: int, start_batch: int, seed: int, device: torch.device
    ) -> Iterator[Any]:
        """The batches of ``epoch`` from its ``start_batch`` on (a resumed run starts mid-epoch)."""
        self.sampler.set_epoch(epoch, start_batch)
        loader = DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            num_workers=self.workers,
            collate_fn=adapter.collate_fn(),
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch),
        )
        return iter(loader)


def build_parts(
    adapter: TaskAdapter, schedule: Schedule, init_weights: Path | None, seed: int, info: dist.DistInfo
) -> RunParts:
    """Model, optimizer, engine and data of a run with ``schedule``, starting from ``init_weights``."""
    model = adapter.build_model()
    if init_weights is not None:
        try:
            state = safe_torch_load(init_weights)
        except CheckpointError as err:
            raise CheckpointError(
                f"{err}. These are the weights this run starts from: delete the run folder "
                f"{Path(init_weights).parent} that holds them; rerunning trains it again, then this run"
            ) from None
        load_model_weights(model, state, f"start weights {init_weights}")
    raw_model = model.to(info.device)
    optimizer = adapter.build_optimizer(raw_model, schedule.phases[0].lr)
    wrapped: nn.Module = raw_model
    if info.distributed:
        ids = [info.device.index] if info.device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(raw_model, device_ids=ids)
    engine = None if schedule.is_dense else DSD(wrapped, optimizer, **adapter.prune_selection())
    train_set = adapter.train_dataset()
    sampler = EpochBatchSampler(
        len(train_set),
        adapter.config.batch_size,
        seed=seed * 1_000_003,
        rank=info.rank,
        world_size=info.world_size,
        lengths=adapter.sample_lengths(),
    )
    return RunParts(
        raw_model=raw_model,
        model=wrapped,
        optimizer=optimizer,
        engine=engine,
        trainable=[p for p in raw_model.parameters() if p.requires_grad],
        train_set=train_set,
        eval_sets=adapter.eval_datasets(),
        sampler=sampler,
        workers=default_workers(adapter.config.workers, info.world_size, info.device),
    )
