"""``dsd.shard_select`` against ``dsd.masks``: the masks counted over row shards are the masks of
the whole tensors, on 1 to 5 ranks simulated by threads that exchange their counts in lockstep
(the real all-reduces run in ``test_fsdp2.py``). Cases: normal weights, heavy ties split across
shards, bf16 and float64, shards with no rows, a bracket the sample misses. Each case also checks
that every exchange is small: counts, never weights.
"""

from __future__ import annotations

import threading

import pytest
import torch

from dsd import masks as masklib
from dsd import shard_select


class Exchange:
    """``size`` threads meet at every reduction and each gets the sum (or max) of all."""

    def __init__(self, size: int) -> None:
        self.size, self.barrier = size, threading.Barrier(size)
        self.slots: list[torch.Tensor | None] = [None] * size
        self.calls, self.largest = 0, 0

    def reduce(self, index: int, tensor: torch.Tensor, op: str) -> torch.Tensor:
        self.slots[index] = tensor.clone()
        self.barrier.wait()
        parts = list(self.slots)
        self.barrier.wait()
        if index == 0:
            self.calls += 1
            self.largest = max(self.largest, tensor.numel() * tensor.element_size())
        stacked = torch.stack(parts)
        return stacked.sum(0) if op == "sum" else stacked.amax(0)


class ThreadRanks:
    def __init__(self, exchange: Exchange, index: int) -> None:
        self.exchange, self.index, self.size = exchange, index, exchange.size

    def sum(self, counts: torch.Tensor) -> torch.Tensor:
        return self.exchange.reduce(self.index, counts, "sum")

    def max(self, values: torch.Tensor) -> torch.Tensor:
        return self.exchange.reduce(self.index, values, "max")


def sharded_masks(
    tensors: list[torch.Tensor], sparsity: float, scope: str, world: int
) -> tuple[list, Exchange]:
    """Each thread holds its rows of every tensor; the masks' rows put back together."""
    exchange, out, errors = Exchange(world), [None] * world, []

    def run(rank: int) -> None:
        try:
            shards = [t[slice(*shard_select.shard_rows(t.shape[0], rank, world))] for t in tensors]
            numels = [t.numel() for t in tensors]
            out[rank] = shard_select.magnitude_masks(
                shards, numels, sparsity, scope, ThreadRanks(exchange, rank)
            )
        except Exception as error:  # re-raised by the caller, after every thread stopped
            errors.append(error)
            exchange.barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [torch.cat([out[r][i] for r in range(world)]) for i in range(len(tensors))], exchange


def _cases() -> dict[str, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return {
        "normal": [
            torch.randn(70, 50, generator=gen),
            torch.randn(33, 7, generator=gen),
            torch.randn(5, generator=gen),
        ],
        "ties": [
            torch.randint(-3, 4, (40, 30), generator=gen).float(),
            torch.randint(-2, 3, (9, 9), generator=gen).float(),
            torch.zeros(10, 10),
        ],
        "bf16": [
            torch.randn(64, 64, generator=gen).bfloat16(),
            torch.randn(3, 100, generator=gen).bfloat16(),
        ],
        "float64": [
            torch.randn(50, 20, generator=gen, dtype=torch.float64),
            torch.randn(20, 20, generator=gen),
        ],
        "few_rows": [torch.randn(1, 100, generator=gen), torch.randn(2, 3, generator=gen)],
        # 3/4 of the values equal: the sample's bracket cannot hold them all, the data is streamed
        "heavy": [torch.cat([torch.full((300, 1000), 0.5), torch.randn(100, 1000, generator=gen)])],
    }


@pytest.mark.parametrize("case", list(_cases()))
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_masks_over_shards_are_the_whole_tensors_masks(case: str, scope: str) -> None:
    tensors = _cases()[case]
    for sparsity in (0.1, 0.5, 0.97):
        expected = masklib.magnitude_masks(tensors, sparsity, scope)
        for world in (1, 2, 3, 5):
            got, exchange = sharded_masks(tensors, sparsity, scope, world)
            for i, (mask, want) in enumerate(zip(got, expected, strict=True)):
                assert torch.equal(mask, want), (case, scope, sparsity, world, i)
            # a few reductions of counts: 2 KiB per group and round at most, never the weights
            assert exchange.calls <= 12, exchange.calls
            assert exchange.largest <= max(2048 * len(tensors), 8 * len(tensors) * world)


def test_nothing_to_prune_needs_no_exchange() -> None:
    got, exchange = sharded_masks([torch.randn(6, 4)], 0.0, "layer", 2)
    assert got[0].all() and exchange.calls == 0


def test_random_keys_are_the_rows_of_one_draw_and_leave_the_generator_where_it_does() -> None:
    shape = torch.Size([1000, 300])  # several draw blocks
    whole = torch.rand(shape, generator=torch.Generator().manual_seed(3))
    after_whole = torch.Generator().manual_seed(3)
    torch.rand(shape, generator=after_whole)
    for rank in range(3):
        gen = torch.Generator().manual_seed(3)
        start, stop = shard_select.shard_rows(shape[0], rank, 3)
        assert torch.equal(shard_select.random_keys(shape, (start, stop), gen), whole[start:stop])
        assert torch.equal(gen.get_state(), after_whole.get_state())
