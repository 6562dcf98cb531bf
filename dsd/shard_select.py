"""Exact-k masks over tensors whose rows are split across ranks (FSDP2), moving only counts.

The rule is ``dsd.masks``'s: a group of ``n`` weights at sparsity ``s`` loses exactly
``k = round(n * s)``, the smallest by magnitude, ties broken by position (tensor order, then
row-major order). Here rank ``r`` holds the ``r``-th block of rows of every tensor (``Shard(0)``,
``torch.chunk`` along the first dimension, as ``fully_shard`` lays it out), and the k-th smallest
magnitude is found without moving any weight:

1. each rank brackets the target quantile from a small sample of its own magnitudes; the widest
   bracket over the ranks (one all-reduce of two numbers per group) holds the k-th almost surely;
2. one pass counts what lies below the bracket and keeps this rank's values inside it, as float
   bit patterns (non-negative floats sort like their bits);
3. radix rounds narrow the bracket: each rank histograms its kept values into 256 buckets of bit
   patterns, one all-reduce sums the histograms of every open group, and the bucket that holds the
   k-th becomes the bracket, until one value is left (4 rounds at most for float32). A group whose
   bracket missed, or whose values overflow a rank's budget, streams over the shards instead and
   keeps its values as soon as its bracket is narrow enough;
4. ties at that value go by global position, only when some but not all of them are pruned: one
   all-reduce of a tensors x ranks table of tie counts tells each rank how many ties lie in the
   tensors and on the ranks before its own.

So the masks are those one process holding every tensor whole computes, and a ``prune()`` costs a
handful of all-reduces of at most 2 KiB per open group, whatever the size of the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from dsd.masks import (
    CHUNK_ELEMENTS,
    DIRECT_LIMIT,
    SAMPLE_SIZE,
    SCOPES,
    _abs_float,
    _bits_to_float,
    _count,
    _fill_masks,
    _float_to_bits,
    _int_type,
    _rank_dtype,
    _sample,
    _slices,
    _Threshold,
    check_sparsity,
    pruned_count,
)

#: Bits of the bracket resolved per radix round: 256 buckets, 2 KiB of int64 counts per group.
BITS_PER_ROUND = 8
BUCKETS = 1 << BITS_PER_ROUND
#: Placeholder edge of a rank that holds no rows of a group (lost to every rank's max).
_NOTHING = -(1 << 62)


class Ranks(Protocol):
    """The ranks a sharded group is spread over: this rank's position and two reductions."""

    index: int
    size: int

    def sum(self, counts: torch.Tensor) -> torch.Tensor: ...

    def max(self, values: torch.Tensor) -> torch.Tensor: ...


@dataclass
class _Search:
    """The k-th smallest magnitude of one group, as it is narrowed down."""

    members: list[int]  # indices of the group's tensors
    k: int
    dtype: torch.dtype  # the dtype magnitudes are ranked in (``dsd.masks._rank_dtype``)
    lo: int = 0  # bit patterns in [lo, hi] hold the k-th
    hi: int = 0
    below: int = 0  # magnitudes under ``lo``, on all ranks
    kept: list[torch.Tensor] | None = None  # this rank's bit patterns in [lo, hi], per member
    value: int | None = None  # the k-th's bit pattern, once found
    ties: int = 0  # magnitudes equal to it, on all ranks


def shard_rows(rows: int, index: int, size: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` of a ``rows``-row tensor that rank ``index`` of ``size`` holds
    under ``Shard(0)`` (``torch.chunk``: blocks of ``ceil(rows / size)``, the last ones shorter or
    empty)."""
    per = -(-rows // size)
    start = min(rows, index * per)
    return start, min(rows, start + per)


def random_keys(shape: torch.Size, rows: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Rows ``[start, stop)`` of ``torch.rand(shape, generator=generator)``: every row is drawn in
    order (a CPU generator gives the same stream in blocks), so the keys are the ones a single
    process draws and the generator ends where it leaves it, but only one block is held at a time."""
    start, stop = rows
    width = math.prod(shape[1:])
    block = max(1, CHUNK_ELEMENTS // max(1, width))
    kept = []
    for first in range(0, shape[0], block):
        last = min(shape[0], first + block)
        draw = torch.rand((last - first, *shape[1:]), generator=generator, dtype=torch.float32)
        if max(first, start) < min(last, stop):
            kept.append(draw[max(first, start) - first : min(last, stop) - first])
    return torch.cat(kept) if kept else torch.empty((0, *shape[1:]))


def magnitude_masks(
    shards: Sequence[torch.Tensor], numels: Sequence[int], sparsity: float, scope: str, ranks: Ranks
) -> list[torch.Tensor]:
    """Keep-masks of this rank's ``shards`` (``numels``: each whole tensor's size), the ones
    ``dsd.masks.magnitude_masks`` gives the whole tensors. Every rank must call it together."""
    sparsity = check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    shards = [s.detach() for s in shards]
    groups = [list(range(len(shards)))] if scope == "global" else [[i] for i in range(len(shards))]
    searches = []
    for members in groups:
        k = pruned_count(sum(numels[i] for i in members), sparsity)
        if k:
            searches.append(_Search(members, k, _rank_dtype([shards[i] for i in members])))
    if searches:
        _bracket(searches, shards, numels, ranks)
        _first_pass(searches, shards, ranks)
        _radix_rounds(searches, shards, ranks)
    return _fill(searches, shards, ranks)


# ----------------------------------------------------------------------------- passes
def _bit_chunks(shard: torch.Tensor, dtype: torch.dtype) -> Iterator[torch.Tensor]:
    """The magnitudes of ``shard``, slice by slice, as the bit patterns of ``dtype`` (1-D)."""
    for chunk in _slices(shard):
        yield _abs_float(chunk, dtype).view(_int_type(dtype)).reshape(-1)


def _budget(search: _Search, shards: Sequence[torch.Tensor]) -> int:
    """How many values this rank keeps in memory for a group (``dsd.masks``'s rule)."""
    return max(DIRECT_LIMIT, max(shards[i].numel() for i in search.members) // 8)


def _histogram(values: torch.Tensor, lo: int, shift: int) -> torch.Tensor:
    return torch.bincount(((values - lo) >> shift).long(), minlength=BUCKETS)


def _scan(
    search: _Search, shards: Sequence[torch.Tensor], shift: int | None
) -> tuple[int, int, torch.Tensor | None, list[torch.Tensor] | None]:
    """One pass over this rank's shards of a group: how many bit patterns lie under the bracket
    and inside it, their histogram by ``(bits - lo) >> shift`` (unless ``shift`` is None), and the
    values inside per member unless there are more than the budget."""
    lo, hi, budget = search.lo, search.hi, _budget(search, shards)
    below = inside = 0
    device = shards[search.members[0]].device
    hist = None if shift is None else torch.zeros(BUCKETS, dtype=torch.int64, device=device)
    found: list[list[torch.Tensor]] | None = [[] for _ in search.members]
    for slot, i in enumerate(search.members):
        for bits in _bit_chunks(shards[i], search.dtype):
            low = bits < lo
            below += _count(low)
            within = bits <= hi
            torch.logical_xor(within, low, out=within)  # lo <= bits <= hi, as lo <= hi
            values = bits[within]
            inside += values.numel()
            if hist is not None:
                hist += _histogram(values, lo, shift)
            if found is not None and inside > budget:
                found = None
            elif found is not None:
                found[slot].append(values)
    kept = None
    if found is not None:
        empty = torch.empty(0, dtype=_int_type(search.dtype), device=device)
        kept = [torch.cat(parts) if parts else empty for parts in found]
    return below, inside, None if hist is None else hist.cpu(), kept


def _bracket(
    searches: list[_Search], shards: Sequence[torch.Tensor], numels: Sequence[int], ranks: Ranks
) -> None:
    """Each group's bracket: the widest over the ranks of each rank's sample bracket."""
    edges = torch.full((len(searches), 2), _NOTHING, dtype=torch.int64)
    for row, search in enumerate(searches):
        mine = [shards[i] for i in search.members if shards[i].numel()]
        if not mine:
            continue
        total = sum(numels[i] for i in search.members)
        here = sum(t.numel() for t in mine)
        sample = _sample(
            mine, max(1, round(min(SAMPLE_SIZE, max(4096, total // 16)) * here / total)), search.dtype
        )
        m, q = sample.numel(), search.k / total
        margin = 6.0 * (q * (1 - q) / m) ** 0.5 + 2.0 / m
        lo = sample.kthvalue(max(1, int((q - margin) * m))).values.item() if q - margin > 0 else 0.0
        hi = sample.kthvalue(min(m, int((q + margin) * m) + 1)).values.item() if q + margin < 1 else math.inf
        edges[row, 0] = -_float_to_bits(lo, search.dtype)
        edges[row, 1] = _float_to_bits(hi, search.dtype)
    edges = ranks.max(edges)
    for row, search in enumerate(searches):
        search.lo, search.hi = -int(edges[row, 0]), int(edges[row, 1])


def _first_pass(searches: list[_Search], shards: Sequence[torch.Tensor], ranks: Ranks) -> None:
    """Count under and inside each bracket on every rank; a bracket the sample missed becomes
    the side of it that holds the k-th (streamed from then on)."""
    counts = torch.zeros(len(searches), 2, dtype=torch.int64)
    for row, search in enumerate(searches):
        below, inside, _, search.kept = _scan(search, shards, None)
        counts[row, 0], counts[row, 1] = below, inside
    counts = ranks.sum(counts)
    for row, search in enumerate(searches):
        below, inside = int(counts[row, 0]), int(counts[row, 1])
        if below < search.k <= below + inside:
            search.below = below
        elif search.k <= below:
            search.lo, search.hi, search.below, search.kept = 0, search.lo - 1, 0, None
        else:
            top = _float_to_bits(math.inf, search.dtype)
            search.lo, search.hi, search.below, search.kept = search.hi + 1, top, below + inside, None


def _radix_rounds(searches: list[_Search], shards: Sequence[torch.Tensor], ranks: Ranks) -> None:
    """Narrow every open bracket by 8 bits per round, one all-reduce per round for all groups."""
    open_ = [s for s in searches if s.value is None]
    while open_:
        shifts = [max(0, (s.hi - s.lo).bit_length() - BITS_PER_ROUND) for s in open_]
        hists = torch.zeros(len(open_), BUCKETS, dtype=torch.int64)
        for row, (search, shift) in enumerate(zip(open_, shifts, strict=True)):
            if search.kept is None:
                _, _, hists[row], search.kept = _scan(search, shards, shift)
            else:
                for values in search.kept:
                    hists[row] += _histogram(values, search.lo, shift).cpu()
        hists = ranks.sum(hists)
        for row, (search, shift) in enumerate(zip(open_, shifts, strict=True)):
            _narrow(search, hists[row], shift)
        open_ = [s for s in open_ if s.value is None]


def _narrow(search: _Search, hist: torch.Tensor, shift: int) -> None:
    """Make the bucket of ``hist`` that holds the k-th the new bracket."""
    cumulative = hist.cumsum(0)
    bucket = int(torch.searchsorted(cumulative, torch.tensor(search.k - search.below)))
    search.below += int(cumulative[bucket - 1]) if bucket else 0
    search.lo += bucket << shift
    search.hi = min(search.hi, search.lo + (1 << shift) - 1)
    if search.kept is not None:
        search.kept = [v[(v >= search.lo) & (v <= search.hi)] for v in search.kept]
    if shift == 0:
        search.value, search.ties = search.lo, int(hist[bucket])


# ----------------------------------------------------------------------------- masks
def _fill(searches: list[_Search], shards: Sequence[torch.Tensor], ranks: Ranks) -> list[torch.Tensor]:
    """Each shard's mask: magnitudes above the k-th kept, below it pruned, and of its ties the
    ones that come first in the group's global order pruned."""
    quotas = _tie_quotas(searches, shards, ranks)
    masks = [torch.ones_like(s, dtype=torch.bool) for s in shards]
    for search in searches:
        value = _bits_to_float(search.value, search.dtype)
        for i in search.members:
            threshold = _Threshold(value, quotas.get(i, shards[i].numel()))
            masks[i] = _fill_masks([shards[i]], threshold, search.dtype)[0]
    return masks


def _tie_quotas(searches: list[_Search], shards: Sequence[torch.Tensor], ranks: Ranks) -> dict[int, int]:
    """How many of its own ties each shard prunes, for the groups that prune some of their ties
    but not all (the others need no positions: all their ties go)."""
    partial = [s for s in searches if s.k - s.below < s.ties]
    if not partial:
        return {}
    table = torch.zeros(len(shards), ranks.size, dtype=torch.int64)
    for search in partial:
        for slot, i in enumerate(search.members):
            if search.kept is not None:  # narrowed down to the ties themselves
                table[i, ranks.index] = search.kept[slot].numel()
            else:
                table[i, ranks.index] = sum(
                    _count(b == search.value) for b in _bit_chunks(shards[i], search.dtype)
                )
    table = ranks.sum(table)
    quotas = {}
    for search in partial:
        left = search.k - search.below  # ties still to prune, in tensor order, then rank order
        for i in search.members:
            before = int(table[i, : ranks.index].sum())
            quotas[i] = min(int(table[i, ranks.index]), max(0, left - before))
            left = max(0, left - int(table[i].sum()))
    return quotas
