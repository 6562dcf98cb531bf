"""torchrun plumbing: process-group setup, rank-0 writes, exact distributed evaluation.

The suite runs under ``torchrun`` like torchvision's references: ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` come from the environment; without them everything is a world of one. Evaluation
is exact: each rank takes the samples ``rank, rank + world, ...`` (no padding, so nothing is
counted twice), and the per-sample records are gathered back into dataset order on rank 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, the world size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this rank's CUDA device when there is one, else the CPU."""
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (idempotent); a world of one without it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, store=_attempt_store(), rank=rank, world_size=world_size)
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank, world_size, local_rank, chosen)


def _attempt_store() -> dist.Store:
    """torchrun's rendezvous store (``env://``), with this attempt's keys under their own prefix.

    ``torchrun --max-restarts`` starts every worker again after one dies, and its workers share
    the agent's store across attempts: a restarted process group would read the address a dead
    worker published in the attempt before and fail connecting to it. Keys under
    ``attempt<TORCHELASTIC_RESTART_COUNT>/`` keep the attempts apart.
    """
    store, _, _ = next(dist.rendezvous("env://"))
    return dist.PrefixStore(f"dsd/attempt{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def is_main() -> bool:
    """True on rank 0 (and when not distributed): only rank 0 writes files. Before the process
    group exists, torchrun's ``RANK`` says which process this is."""
    if dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not dist.is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not dist.is_initialized():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """This rank's evaluation samples: ``rank, rank + world, ...`` (no padding, no drops)."""
    return list(range(rank, n, world_size))


def gather_records(records: list[Any], n: int) -> list[Any]:
    """Per-sample records of every rank, back in dataset order (ranks hold strided shards)."""
    shards = gather_objects(records)
    world_size = len(shards)
    merged: list[Any] = [None] * n
    for rank, shard in enumerate(shards):
        expected = len(range(rank, n, world_size))
        if len(shard) != expected:
            raise RuntimeError(
                f"rank {rank} returned {len(shard)} evaluation records for {expected} samples; "
                "eval_batch must return exactly one record per sample"
            )
        merged[rank::world_size] = shard
    return merged


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
