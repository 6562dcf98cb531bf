"""Weight histograms of one tensor at the moments the paper's Figure 4 shows, and the loop hook
that records them.

The loop records counts, not weights: a VGG-16 fc6 snapshot would be 400 MB per moment. All
moments share the bins fixed from the dense weights, so the panels compare directly; values that
later grow past the range land in the edge bins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from dsd.files import atomic_write_json
from dsd.run.training.hooks import LoopHook

if TYPE_CHECKING:
    from dsd.run.training.loop import RunLoop

#: The five moments, in order, with the paper's wording.
MOMENTS = {
    "dense": "dense (before pruning)",
    "pruned": "just pruned (kept weights)",
    "sparse_trained": "after sparse retraining (kept weights)",
    "redense_start": "start of re-dense (restored zeros)",
    "redense_trained": "after re-dense",
}


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

    def on_phase_start(self, loop: RunLoop, event: str) -> None:
        moment = {"redensed": "redense_start", "before_prune": "dense", "pruned": "pruned"}.get(event)
        if moment is not None:
            self._record(loop, moment)

    def on_phase_end(self, loop: RunLoop) -> None:
        if loop.parts.engine is not None and loop.parts.engine.is_sparse:
            self._record(loop, "sparse_trained")
        elif "redense_start" in self.data.get("moments", {}):
            self._record(loop, "redense_trained")

    def on_finish(self, loop: RunLoop) -> None:
        if self.data and loop.info.is_main:
            atomic_write_json(loop.folder.histograms, self.data)

    def state_dict(self) -> dict[str, Any]:
        return self.data

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data = dict(state)

    def _record(self, loop: RunLoop, moment: str) -> None:
        engine = loop.parts.engine
        if engine is None or moment in self.data.get("moments", {}):
            return
        names = [t.name for t in engine.tensors]
        if not self.data:
            self.data.update(tensor=loop.adapter.histogram_tensor(loop.parts.raw_model, names), moments={})
        tensor = self.data["tensor"]
        weight = engine.tensors[names.index(tensor)].param.detach()
        if "bin_edges" not in self.data:
            self.data["bin_edges"] = histogram_edges(weight)
        values = weight[engine.masks[tensor]] if moment in ("pruned", "sparse_trained") else weight
        self.data["moments"][moment] = weight_histogram(values, self.data["bin_edges"])
