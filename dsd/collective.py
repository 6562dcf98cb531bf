"""What the engine agrees on across ``torch.distributed`` ranks.

Without a process group (or with one rank) every function is a no-op on its argument. The
engine uses these so that every rank holds rank 0's masks and refuses a prune together: a rank
that raised alone would leave the others waiting in a collective forever.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def active() -> bool:
    """A process group of more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any (e.g. a stop signal seen by one rank)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_masks(masks: list[torch.Tensor]) -> None:
    """Make every rank hold rank 0's boolean masks, in place."""
    if not active():
        return
    for mask in masks:
        buffer = mask.to(torch.uint8)
        dist.broadcast(buffer, src=0)
        mask.copy_(buffer.bool())
