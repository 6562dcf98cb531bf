"""Weight histograms of one tensor at the moments the paper's Figure 4 shows.

The loop records counts, not weights: a VGG-16 fc6 snapshot would be 400 MB per moment. All
moments share the bins fixed from the dense weights, so the panels compare directly; values that
later grow past the range land in the edge bins.
"""

from __future__ import annotations

import torch

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
