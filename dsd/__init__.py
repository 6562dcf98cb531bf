"""DSD: Dense-Sparse-Dense training (Han et al., ICLR 2017) for any PyTorch model.

Quick start::

    import dsd
    engine = dsd.DSD(model, optimizer)
    engine.prune(0.3)   # sparse phase: mask fixed, held through every optimizer step
    ...                 # train as usual
    engine.redense()    # dense again: pruned weights restart from zero
"""

from dsd.engine import DSD, SparsityReport
from dsd.masks import magnitude_masks
from dsd.schedule import PAPER_RECIPES, Phase, Schedule
from dsd.selection import select_prunable

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
