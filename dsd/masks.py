"""Exact-k magnitude masks, and applying them in place.

Masks are exact: a tensor of ``n`` weights pruned at sparsity ``s`` gets exactly ``round(n * s)``
zeros (Python's ``round``), the smallest by magnitude, ties broken by position (row-major order,
earliest first). Thresholds are found without sorting and without concatenating copies of the
weights: a small random sample brackets the k-th smallest magnitude, one streaming pass counts
what lies below the bracket and collects what lies inside it, and ``kthvalue`` over those few
candidates gives the exact answer. Every pass walks the tensors in slices along their first
dimension, so the extra memory is bounded by a slice, not by the model.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from dsd.dtensor import local
from dsd.selection import PrunableTensor

SCOPES = ("layer", "global")

#: Elements per slice in the streaming passes; bounds the extra memory of a pass.
CHUNK_ELEMENTS = 1 << 18
#: Most magnitudes drawn for the random sample that brackets the threshold (at most 1/16 of all).
SAMPLE_SIZE = 1 << 18
#: Tensors this small are ranked directly with ``kthvalue`` (which needs two float copies).
DIRECT_LIMIT = 1 << 18


def check_sparsity(sparsity: float) -> float:
    """Validate a sparsity level: a real number in [0, 1)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    value = float(sparsity)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity must be in [0, 1) (the fraction of weights set to zero), got {value!r}")
    return value


def pruned_count(numel: int, sparsity: float) -> int:
    """How many weights a tensor of ``numel`` loses at ``sparsity``: ``round(numel * sparsity)``."""
    return min(numel, round(numel * sparsity))


def check_finite(tensors: Sequence[PrunableTensor]) -> None:
    """Refuse to rank NaN or infinite weights: their 'magnitude' has no meaning."""
    for tensor in tensors:
        for chunk in _slices(tensor.param.detach()):
            low, high = torch.aminmax(chunk)  # one pass, no temporaries; NaN propagates
            if not bool(torch.isfinite(low) & torch.isfinite(high)):
                bad = (~torch.isfinite(chunk)).sum().item()
                raise ValueError(
                    f"cannot prune {tensor.name!r}: it holds {bad}+ NaN/inf values; "
                    "the model diverged before pruning"
                )


def _slices(tensor: torch.Tensor, chunk: int | None = None) -> Iterator[torch.Tensor]:
    """Views of ``tensor`` along its first dimension, about ``chunk`` elements each."""
    chunk = chunk or CHUNK_ELEMENTS
    if tensor.numel() == 0:
        return
    if tensor.dim() == 0:
        yield tensor.reshape(1)
        return
    row = max(1, tensor[0].numel())
    rows = max(1, chunk // row)
    for start in range(0, tensor.shape[0], rows):
        yield tensor[start : start + rows]


def _rank_dtype(tensors: Sequence[torch.Tensor]) -> torch.dtype:
    """The dtype magnitudes are compared in: float64 if any tensor is float64 (ranking float64
    weights in float32 would merge distinct magnitudes into false ties), else float32 (exact for
    float16 / bfloat16 / float32)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _abs_float(chunk: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    a = chunk.detach().abs()
    return a if a.dtype == dtype else a.to(dtype)


@dataclass(frozen=True)
class _Threshold:
    """The k-th smallest magnitude ``value`` and how many of its ties are pruned."""

    value: float
    ties_to_prune: int


def _sample(tensors: Sequence[torch.Tensor], size: int, dtype: torch.dtype) -> torch.Tensor:
    """A deterministic random sample of magnitudes, each tensor in proportion to its size."""
    total = sum(t.numel() for t in tensors)
    parts = []
    for i, t in enumerate(tensors):
        if t.numel() == 0:
            continue
        m = max(1, round(size * t.numel() / total))
        gen = torch.Generator(device=t.device).manual_seed(0x5EED + i)
        idx = torch.randint(t.numel(), (m,), generator=gen, device=t.device)
        parts.append(_abs_float(_flat_gather(t, idx), dtype))
    return torch.cat(parts)


def _flat_gather(t: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """``t.flatten()[flat_index]`` without copying a non-contiguous ``t``."""
    if t.is_contiguous():
        return t.detach().view(-1)[flat_index]
    coords = torch.unravel_index(flat_index, t.shape)
    return t.detach()[coords]


def _count_and_collect(
    tensors: Sequence[torch.Tensor], lo: float, hi: float, budget: int, dtype: torch.dtype
) -> tuple[int, torch.Tensor | None]:
    """Count magnitudes ``< lo``; collect those in ``[lo, hi]`` unless there are over ``budget``."""
    below = 0
    found: list[torch.Tensor] = []
    inside = 0
    for t in tensors:
        for chunk in _slices(t):
            a = _abs_float(chunk, dtype)
            low = a < lo
            below += _count(low)
            within = a <= hi
            torch.logical_xor(within, low, out=within)  # lo <= a <= hi, as lo <= hi
            count = _count(within)
            inside += count
            if inside > budget:
                found = []
            elif count:
                found.append(a[within])
    if inside > budget:
        return below, None
    return below, torch.cat(found) if found else torch.empty(0)


def _count(condition: torch.Tensor) -> int:
    """How many entries are True (``count_nonzero``: many times faster than ``bool.sum()``)."""
    return int(torch.count_nonzero(condition))


def _count_le(tensors: Sequence[torch.Tensor], value: float, dtype: torch.dtype) -> int:
    return sum(_count(_abs_float(c, dtype) <= value) for t in tensors for c in _slices(t))


def _int_type(dtype: torch.dtype) -> torch.dtype:
    return torch.int64 if dtype == torch.float64 else torch.int32


def _bits_to_float(bits: int, dtype: torch.dtype) -> float:
    return torch.tensor([bits], dtype=_int_type(dtype)).view(dtype).item()


def _float_to_bits(value: float, dtype: torch.dtype) -> int:
    return int(torch.tensor([value], dtype=dtype).view(_int_type(dtype)).item())


def kth_smallest_magnitude(tensors: Sequence[torch.Tensor], k: int) -> _Threshold:
    """The k-th smallest ``|w|`` (1-based) over all ``tensors``, as a threshold with a tie count.

    Pruning every magnitude ``< value`` plus the first ``ties_to_prune`` equal to it (in tensor
    order, then row-major position) prunes exactly ``k`` weights.
    """
    total = sum(t.numel() for t in tensors)
    if not 1 <= k <= total:
        raise ValueError(f"k={k} outside [1, {total}]")
    dtype = _rank_dtype(tensors)
    if len(tensors) == 1 and total <= DIRECT_LIMIT:
        a = _abs_float(tensors[0], dtype).reshape(-1)
        value = a.kthvalue(k).values.item()
        return _Threshold(value, k - _count(a < value))
    budget = max(DIRECT_LIMIT, max(t.numel() for t in tensors) // 8)
    sample = _sample(tensors, min(SAMPLE_SIZE, max(4096, total // 16)), dtype)
    m = sample.numel()
    q = k / total
    margin = 6.0 * (q * (1 - q) / m) ** 0.5 + 2.0 / m
    lo = sample.kthvalue(max(1, int((q - margin) * m))).values.item() if q - margin > 0 else 0.0
    hi = sample.kthvalue(min(m, int((q + margin) * m) + 1)).values.item() if q + margin < 1 else float("inf")
    below, cands = _count_and_collect(tensors, lo, hi, budget, dtype)
    if cands is None:  # more values in the bracket than the budget: heavy ties at its edges?
        tied = _tied_edge(tensors, k, below, lo, hi, dtype)
        if tied is not None:
            return tied
        if lo < hi:  # the k-th lies between the heavy edges (or the sample missed): collect without them
            lo = _bits_to_float(_float_to_bits(lo, dtype) + 1, dtype)
            hi = _bits_to_float(_float_to_bits(hi, dtype) - 1, dtype)
            if lo <= hi:
                below, cands = _count_and_collect(tensors, lo, hi, budget, dtype)
    if cands is None or not below < k <= below + cands.numel():
        # The sample missed (or huge ties): bisect float bit patterns (non-negative floats sort
        # like their bit patterns) until the bracket holds few enough values to collect.
        lo_bits, hi_bits = 0, _float_to_bits(float("inf"), dtype)
        while True:
            lo, hi = _bits_to_float(lo_bits, dtype), _bits_to_float(hi_bits, dtype)
            below, cands = _count_and_collect(tensors, lo, hi, budget, dtype)
            if cands is not None:
                break
            mid = (lo_bits + hi_bits) // 2
            if _count_le(tensors, _bits_to_float(mid, dtype), dtype) >= k:
                hi_bits = mid
            else:
                lo_bits = mid + 1
            if lo_bits == hi_bits:  # one value holds the k-th rank, with many ties
                value = _bits_to_float(lo_bits, dtype)
                less = _count_le(tensors, value, dtype) - sum(
                    _count(_abs_float(c, dtype) == value) for t in tensors for c in _slices(t)
                )
                return _Threshold(value, k - less)
    value = cands.kthvalue(k - below).values.item()
    less = below + _count(cands < value)
    return _Threshold(value, k - less)


def _tied_edge(
    tensors: Sequence[torch.Tensor], k: int, below: int, lo: float, hi: float, dtype: torch.dtype
) -> _Threshold | None:
    """The threshold when the k-th magnitude is one of the bracket's edges, held by more values
    than can be collected (all-equal weights, a few distinct values): one or two counting passes
    instead of some thirty rounds of bisection. None when the k-th lies strictly inside."""
    at_most_lo = _count_le(tensors, lo, dtype)
    if below < k <= at_most_lo:
        return _Threshold(lo, k - below)
    if lo == hi:
        return None
    under_hi = sum(_count(_abs_float(c, dtype) < hi) for t in tensors for c in _slices(t))
    if (
        under_hi
        < k
        <= under_hi + sum(_count(_abs_float(c, dtype) == hi) for t in tensors for c in _slices(t))
    ):
        return _Threshold(hi, k - under_hi)
    return None


def _fill_masks(
    tensors: Sequence[torch.Tensor], threshold: _Threshold, dtype: torch.dtype | None = None
) -> list[torch.Tensor]:
    """Boolean keep-masks (same shape and layout as each tensor) for a threshold, compared in
    ``dtype`` (default: the tensors' rank dtype; a shard of a larger group passes the group's)."""
    masks = []
    ties_left = threshold.ties_to_prune
    dtype = dtype or _rank_dtype(tensors)
    for t in tensors:
        mask = torch.empty_like(t, dtype=torch.bool)
        for w_chunk, m_chunk in zip(_slices(t), _slices(mask), strict=True):
            a = _abs_float(w_chunk, dtype)
            if ties_left == 0:  # every tie left is kept
                torch.ge(a, threshold.value, out=m_chunk)
                continue
            torch.gt(a, threshold.value, out=m_chunk)
            is_tie = a == threshold.value
            ties = _count(is_tie)
            if ties > ties_left:  # the last pruned tie lies in this slice: keep the ones after it
                keep = is_tie.nonzero()[ties_left:]
                m_chunk[keep.unbind(1)] = True
            ties_left = max(0, ties_left - ties)
        masks.append(mask)
    return masks


def _memory_flat(t: torch.Tensor) -> torch.Tensor | None:
    """A 1-D view of ``t`` in memory order if it is dense (contiguous, channels_last, any
    permutation without gaps), else None."""
    if t.is_contiguous():
        return t.view(-1)
    expected = 1
    for stride, size in sorted((st, n) for st, n in zip(t.stride(), t.shape, strict=True) if n != 1):
        if stride != expected:
            return None
        expected *= size
    return t.as_strided((t.numel(),), (1,))


#: Elements per slice of the CPU masking pass: a slice of the mask, widened, stays in cache.
APPLY_CHUNK = 1 << 16
#: The integer type of each float type's bits.
_BITS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16,
         torch.bfloat16: torch.int16}  # fmt: skip


_LOCAL = threading.local()


def _buffers() -> dict[torch.dtype, torch.Tensor]:
    """This thread's slice buffers, kept between calls: the Trainer path masks each tensor's
    gradient in its own call, inside backward, and a fresh buffer per call showed in its cost."""
    if not hasattr(_LOCAL, "buffers"):
        _LOCAL.buffers = {}
    return _LOCAL.buffers


@torch.no_grad()
def apply_masks_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
    """Pruned entries (mask False) of each tensor set to exactly +0.0, in place, in one pass.

    NaN-safe: a pruned entry holding inf or NaN becomes 0 too (``tensor * mask`` would leave NaN,
    as 0 x inf is NaN). On the CPU the pass clears the bits of pruned entries with an integer AND
    against the mask widened slice by slice (vectorised, about five times faster than a bool
    ``where``); elsewhere, and inside ``torch.compile``, it is one ``torch.where`` per tensor.
    An FSDP2 tensor (a DTensor) is masked in its local shard, which its mask is shaped like.
    """
    buffers = _buffers()
    compiling = torch.compiler.is_compiling()
    for sharded_or_whole, mask in zip(tensors, masks, strict=True):
        tensor = local(sharded_or_whole)
        flat, flat_mask = _memory_flat(tensor), _memory_flat(mask)
        same_layout = all(
            a == b for a, b, n in zip(tensor.stride(), mask.stride(), tensor.shape, strict=True) if n != 1
        )
        bits = _BITS.get(tensor.dtype)
        if (
            compiling
            or tensor.device.type != "cpu"
            or flat is None
            or flat_mask is None
            or bits is None
            or not same_layout
        ):
            torch.where(mask, tensor, torch.zeros((), dtype=tensor.dtype, device=tensor.device), out=tensor)
            continue
        words = flat.view(bits)
        buffer = buffers.get(bits)
        if buffer is None:
            buffer = buffers[bits] = torch.empty(APPLY_CHUNK, dtype=bits)
        for start in range(0, flat.numel(), APPLY_CHUNK):
            piece = words[start : start + APPLY_CHUNK]
            keep = buffer[: piece.numel()]
            keep.copy_(flat_mask[start : start + APPLY_CHUNK].view(torch.uint8))
            keep.neg_()  # 1 -> all bits set, 0 -> none
            piece.bitwise_and_(keep)


def random_masks(
    tensors: Sequence[torch.Tensor], sparsity: float, generator: torch.Generator
) -> list[torch.Tensor]:
    """Keep-masks pruning a uniformly random set of exactly ``round(n * sparsity)`` entries per
    tensor (the random-mask ablation): each entry gets a random key from ``generator`` (on the CPU,
    so every device and rank draws the same), and the smallest keys are pruned, exactly as the
    magnitude rule prunes the smallest weights."""
    sparsity = check_sparsity(sparsity)
    masks = []
    for t in tensors:
        keys = torch.rand(t.shape, generator=generator, dtype=torch.float32).to(t.device)
        masks.extend(magnitude_masks([keys], sparsity))
    return masks


def magnitude_masks(
    tensors: Sequence[torch.Tensor], sparsity: float, scope: str = "layer"
) -> list[torch.Tensor]:
    """Keep-masks (``torch.bool``, True = kept) pruning the smallest magnitudes, exactly.

    ``scope="layer"``: each tensor loses ``round(n_i * sparsity)`` weights (the paper's rule).
    ``scope="global"``: one threshold over all tensors; they lose ``round(sum(n_i) * sparsity)``
    together, more from tensors with small weights.
    """
    sparsity = check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    tensors = [t.detach() for t in tensors]
    groups = [tensors] if scope == "global" else [[t] for t in tensors]
    masks: list[torch.Tensor] = []
    for group in groups:
        k = pruned_count(sum(t.numel() for t in group), sparsity)
        if k == 0:
            masks.extend(torch.ones_like(t, dtype=torch.bool) for t in group)
            continue
        masks.extend(_fill_masks(group, kth_smallest_magnitude(group, k)))
    return masks
