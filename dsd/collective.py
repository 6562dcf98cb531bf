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


class PhaseMismatchError(RuntimeError):
    """The ranks did not call ``prune()`` / ``redense()`` together."""


class PhaseAgreement:
    """The ranks compare how many ``prune()`` / ``redense()`` calls each has made, on a side gloo
    group with a short timeout: at every such call (counting the call itself), every ``every``
    optimizer steps, and, for a DDP model, before every training forward.

    A rank that calls ``prune()`` alone would otherwise wait in the mask broadcast until the
    default 30-minute timeout, with a message that never names DSD, while its peers wait in DDP's
    gradient all-reduce. Here the peers' next check (their next forward under DDP, else their next
    periodic step check) pairs with that call, the counts differ by one, and every rank raises
    ``PhaseMismatchError`` naming the call. If no check ever comes, the calling rank gives up after
    ``timeout_s`` seconds. Without a process group (or with one rank) nothing is checked.
    """

    def __init__(self, every: int = 20, timeout_s: float = 60.0) -> None:
        self.every, self.timeout_s = every, timeout_s
        self.group = None
        if active():
            from datetime import timedelta

            self.group = dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s))

    def check(self, calls: int, where: str) -> None:
        """Raise on every rank unless all ranks count ``calls`` phase calls (a ``prune()`` or
        ``redense()`` in progress counts itself)."""
        if self.group is None:
            return
        counts = torch.tensor([calls, -calls], dtype=torch.int64)
        try:
            dist.all_reduce(counts, op=dist.ReduceOp.MAX, group=self.group)
        except RuntimeError:
            raise PhaseMismatchError(
                f"DSD {where}: the other ranks did not answer within {self.timeout_s:g} s; every rank "
                "must call prune() and redense() at the same step (one rank called it alone?)"
            ) from None
        most, fewest = int(counts[0]), -int(counts[1])
        if most != fewest:
            raise PhaseMismatchError(
                f"DSD {where}: the ranks disagree on the phase: this rank counts {calls} prune()/"
                f"redense() calls, the ranks between {fewest} and {most} (one rank called prune() or "
                "redense() alone?); every rank must call prune() and redense() at the same step"
            )
