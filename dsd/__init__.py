"""DSD: Dense-Sparse-Dense training (Han et al., ICLR 2017) for any PyTorch model.

Quick start::

    import dsd
    engine = dsd.DSD(model, optimizer)
    engine.prune(0.3)   # sparse phase: mask fixed, held through every optimizer step
    ...                 # train as usual
    engine.redense()    # dense again: pruned weights restart from zero

The names below load on first use, so that ``import dsd.records`` (the on-disk contract, which a
login node or a report reads without torch) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsd.engine import DSD, SparsityReport
    from dsd.masks import magnitude_masks
    from dsd.schedule import PAPER_RECIPES, Phase, Schedule
    from dsd.selection import select_prunable

#: Public name -> the engine module that defines it.
_EXPORTS = {
    "DSD": "dsd.engine",
    "SparsityReport": "dsd.engine",
    "magnitude_masks": "dsd.masks",
    "PAPER_RECIPES": "dsd.schedule",
    "Phase": "dsd.schedule",
    "Schedule": "dsd.schedule",
    "select_prunable": "dsd.selection",
}

__all__ = [
    "DSD",
    "PAPER_RECIPES",
    "Phase",
    "Schedule",
    "SparsityReport",
    "magnitude_masks",
    "select_prunable",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``dsd.DSD`` and the other public names, imported from their module when first asked for;
    ``dsd.engine`` and the other submodules too, as an eager package would have them."""
    if name not in _EXPORTS:
        try:
            return importlib.import_module(f"dsd.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"dsd.{name}":
                raise
            raise AttributeError(f"module 'dsd' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
