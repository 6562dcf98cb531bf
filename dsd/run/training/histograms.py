"""Weight histograms of one tensor at the moments the paper's Figure 4 shows, and the loop hook
that records them into the run's ``histograms.json`` (``dsd.records.histograms``).

The loop records counts, not weights: a VGG-16 fc6 snapshot would be 400 MB per moment. All
moments share the bins fixed from the dense weights, so the panels compare directly; values that
later grow past the range land in the edge bins.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from dsd.records.histograms import Histograms, write_histograms
from dsd.run.training.hooks import LoopHook, RunView


def histogram_edges(tensor: torch.Tensor, bins: int = 101) -> list[float]:
    """``bins + 1`` edges, symmetric around zero, spanning the tensor's magnitudes plus 5 %.

    An odd ``bins`` puts zero in the middle of a bin, so pruned weights form one central spike.
    """
    top = float(tensor.detach().abs().max()) * 1.05 or 1.0
    return torch.linspace(-top, top, bins + 1).tolist()


def weight_histogram(values: torch.Tensor, bin_edges: list[float]) -> list[int]:
    """Counts of ``values`` per bin; values outside the edges count in the edge bins."""
    if not bool(torch.isfinite(values).all()):
        raise ValueError("cannot histogram weights holding NaN/inf values")
    inner = torch.tensor(bin_edges[1:-1], dtype=torch.float32, device=values.device)
    counts = torch.zeros(len(bin_edges) - 1, dtype=torch.int64, device=values.device)
    flat = values.detach().reshape(-1)
    for start in range(0, flat.numel(), 1 << 22):  # chunks bound the int64 bin indices' memory
        chunk = flat[start : start + (1 << 22)].float()
        counts += torch.bincount(torch.bucketize(chunk, inner, right=True), minlength=counts.numel())
    return counts.tolist()


class HistogramCapture(LoopHook):
    """Records one pruned tensor's weight histogram at each of Figure 4's moments (first cycle
    of a D-S-D... run), and writes them to the run's ``histograms.json`` when it finishes.

    The tensor is the task's choice (``TaskAdapter.histogram_tensor``, by default the largest
    pruned one). The moments "pruned" and "sparse_trained" count the surviving weights only, so
    the hole around zero that pruning leaves shows; the others count every weight.
    """

    name: ClassVar[str] = "histograms"

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def on_phase_start(self, run: RunView, event: str) -> None:
        moment = {"redensed": "redense_start", "before_prune": "dense", "pruned": "pruned"}.get(event)
        if moment is not None:
            self._record(run, moment)

    def on_phase_end(self, run: RunView) -> None:
        if run.engine is not None and run.engine.is_sparse:
            self._record(run, "sparse_trained")
        elif "redense_start" in self.data.get("moments", {}):
            self._record(run, "redense_trained")

    def on_finish(self, run: RunView) -> None:
        if self.data and run.is_main:
            write_histograms(run.folder.histograms, Histograms(**self.data))

    def state_dict(self) -> dict[str, Any]:
        return self.data

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data = dict(state)

    def _record(self, run: RunView, moment: str) -> None:
        engine = run.engine
        if engine is None or moment in self.data.get("moments", {}):
            return
        names = [t.name for t in engine.tensors]
        if not self.data:
            self.data.update(tensor=run.histogram_tensor(names), moments={})
        tensor = self.data["tensor"]
        weight = engine.tensors[names.index(tensor)].param.detach()
        if "bin_edges" not in self.data:
            self.data["bin_edges"] = histogram_edges(weight)
        values = weight[engine.masks[tensor]] if moment in ("pruned", "sparse_trained") else weight
        self.data["moments"][moment] = weight_histogram(values, self.data["bin_edges"])
