"""Keeping a copy of the model sparse: an EMA (torchvision's ``--model-ema``, an ``AveragedModel``;
timm's ``ModelEmaV3``) or any model with the same parameter names.

Why: an EMA copy built before ``prune()`` averages toward the sparse weights but never reaches
them (each update keeps ``decay`` of the old dense value), so evaluating it during a sparse phase
measures a dense model. ``engine.apply_masks(copy)`` zeroes the pruned entries of the copy; call it
after each EMA update while sparse (with a pure EMA, zero stays zero once both sides are zero, so
the call right after ``prune()`` does the work and the later ones cost one cheap pass each; they
also cover averaging that is not a plain EMA, and weights loaded into the copy).

Matching is by name: the engine's names (the plain model's ``state_dict`` keys) are looked up in the
copy, and failing that, in the module it wraps (``.module`` of ``AveragedModel``, ``ModelEmaV3``,
DDP; ``._orig_mod`` of ``torch.compile``). A copy without one of the names, or with another shape,
is refused, naming the tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dsd import masks as masklib
from dsd.errors import ConfigError
from dsd.selection import PrunableTensor

__all__ = ["apply_masks_to_copy", "copy_tensors"]

_WRAPPER_ATTRIBUTES = ("module", "_orig_mod")  # what EMA, DDP and compile wrappers call the model
_MAX_WRAPPERS = 4


def copy_tensors(copy: nn.Module, tensors: Sequence[PrunableTensor]) -> list[torch.Tensor]:
    """The tensors of ``copy`` that correspond, by name, to the engine's ``tensors``."""
    if not isinstance(copy, nn.Module):
        raise ConfigError(f"apply_masks() takes a copy of the model (nn.Module), got {type(copy).__name__}")
    candidates, module = [], copy
    for _ in range(_MAX_WRAPPERS):
        candidates.append(module)
        inner = next((getattr(module, a, None) for a in _WRAPPER_ATTRIBUTES if hasattr(module, a)), None)
        if not isinstance(inner, nn.Module):
            break
        module = inner
    closest: tuple[int, str] | None = None  # the candidate that misses fewest: (how many, first)
    for candidate in candidates:
        named = dict(candidate.named_buffers())
        named.update(candidate.named_parameters(remove_duplicate=False))
        missing = [t.name for t in tensors if t.name not in named]
        if not missing:
            return [_same_shape(named[t.name], t) for t in tensors]
        if closest is None or len(missing) < closest[0]:
            closest = (len(missing), missing[0])
    count, first = closest
    raise ConfigError(
        f"apply_masks(): the {type(copy).__name__} given has no tensor {first!r}"
        + (f" (nor {count - 1} more of the pruned ones)" if count > 1 else "")
        + "; it must be a copy of the engine's model, with the same parameter names"
    )


def _same_shape(tensor: torch.Tensor, t: PrunableTensor) -> torch.Tensor:
    if tensor.shape != t.param.shape:
        raise ConfigError(
            f"apply_masks(): tensor {t.name!r} of the copy has shape {list(tensor.shape)}, "
            f"the model's {list(t.param.shape)}; it must be a copy of the engine's model"
        )
    return tensor


@torch.no_grad()
def apply_masks_to_copy(
    copy: nn.Module, tensors: Sequence[PrunableTensor], masks: Sequence[torch.Tensor] | None
) -> None:
    """Zero the entries of ``copy`` that ``masks`` prune (nothing while dense, after the same
    checks, so that a wrong copy is refused from the first call on)."""
    targets = copy_tensors(copy, tensors)
    if masks is None:
        return
    masklib.apply_masks_(targets, [m.to(t.device) for m, t in zip(masks, targets, strict=True)])
