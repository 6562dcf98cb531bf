"""Training batches that are shuffled per epoch, shard across ranks, and resume mid-epoch.

Like ``DistributedSampler`` (seeded permutation per ``set_epoch``, one shard per rank), but it
yields whole batches, can group samples of similar length (speech), and can start part-way
through an epoch, so a run resumed after a crash sees exactly the batches it had left.
Every rank gets the same number of batches (DDP needs equal step counts); the few samples that
do not fill a last batch on every rank wait for the next epoch's shuffle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from dsd.errors import ConfigError


class EpochBatchSampler(Sampler[list[int]]):
    """Seeded per-epoch batches for one rank, optionally length-bucketed, resumable.

    Args:
        num_samples: size of the training set.
        batch_size: samples per batch on this rank.
        seed: base seed; epoch ``e`` shuffles with ``seed + e`` (identical on every rank).
        rank, world_size: this rank's shard of the epoch's batches.
        lengths: per-sample lengths; when given, batches hold samples of similar length
            (sorted within windows of ``bucket_window`` batches), and batch order is shuffled.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        lengths: Sequence[int] | None = None,
        bucket_window: int = 50,
    ) -> None:
        if num_samples < batch_size * world_size:
            raise ConfigError(
                f"the training set has {num_samples} samples, fewer than one batch of "
                f"{batch_size} per rank on {world_size} rank(s); pass a smaller --batch-size"
            )
        if lengths is not None and len(lengths) != num_samples:
            raise ValueError(f"got {len(lengths)} lengths for {num_samples} samples")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.lengths = None if lengths is None else torch.as_tensor(list(lengths))
        self.bucket_window = bucket_window
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Shuffle for ``epoch``; skip its first ``start_batch`` batches (resume)."""
        self.epoch = epoch
        self.start_batch = start_batch

    @property
    def batches_per_epoch(self) -> int:
        """Batches in a whole epoch on this rank (the same on every rank)."""
        return self.num_samples // (self.batch_size * self.world_size)

    def __len__(self) -> int:
        """Batches left in the current epoch on this rank."""
        return self.batches_per_epoch - self.start_batch

    def epoch_batches(self) -> list[list[int]]:
        """All of this rank's batches for the current epoch, in order."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        per_step = self.batch_size * self.world_size
        steps = self.batches_per_epoch
        order = order[: steps * per_step]
        if self.lengths is None:
            batches = order.view(steps * self.world_size, self.batch_size)
        else:
            window = self.bucket_window * per_step
            chunks = []
            for start in range(0, order.numel(), window):
                part = order[start : start + window]
                chunks.append(part[torch.argsort(self.lengths[part], stable=True)])
            batches = torch.cat(chunks).view(steps * self.world_size, self.batch_size)
            # Global steps in random order; each step's world_size batches stay neighbours so
            # that all ranks work on similar lengths at the same step.
            step_order = torch.randperm(steps, generator=generator)
            batches = batches.view(steps, self.world_size, self.batch_size)[step_order]
            batches = batches.view(steps * self.world_size, self.batch_size)
        mine = batches[self.rank :: self.world_size]
        return mine.tolist()

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.epoch_batches()[self.start_batch :]
