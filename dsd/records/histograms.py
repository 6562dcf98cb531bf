"""``histograms.json``: one pruned tensor's weight histograms at the moments of the paper's Figure 4.

A DSD run records counts, not weights (a VGG-16 fc6 snapshot would be 400 MB per moment). Every
moment shares the bins fixed from the dense weights, so the panels compare directly. The loop's
``HistogramCapture`` fills it in as the run passes each moment; the figures read it back.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsd.files import atomic_write_json, read_json

#: The five moments, in order, with the paper's wording.
MOMENTS = {
    "dense": "dense (before pruning)",
    "pruned": "just pruned (kept weights)",
    "sparse_trained": "after sparse retraining (kept weights)",
    "redense_start": "start of re-dense (restored zeros)",
    "redense_trained": "after re-dense",
}


@dataclass
class Histograms:
    """The histograms of one tensor: shared bin edges, and counts per bin at each moment recorded."""

    tensor: str
    bin_edges: list[float]
    moments: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "bin_edges": self.bin_edges, "moments": self.moments}

    @classmethod
    def from_json(cls, payload: Any, complete: bool = True) -> Histograms:
        """Checked histograms: increasing finite edges, one non-negative count per bin at every
        moment (every one of ``MOMENTS`` when ``complete``); ``ValueError`` says what is wrong."""
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object with tensor, bin_edges and moments")
        edges = payload.get("bin_edges")
        if (
            not isinstance(edges, list)
            or len(edges) < 2
            or not all(isinstance(e, (int, float)) and math.isfinite(e) for e in edges)
            or any(b <= a for a, b in itertools.pairwise(edges))
        ):
            raise ValueError("'bin_edges' should be at least two finite, increasing numbers")
        moments = payload.get("moments")
        if not isinstance(moments, dict):
            raise ValueError(f"'moments' should map each of {', '.join(MOMENTS)} to its counts")
        for moment in MOMENTS if complete else moments:
            if moment not in moments:
                raise ValueError(
                    f"the moment {moment!r} ({MOMENTS[moment]}) is missing; "
                    f"expected all of {', '.join(MOMENTS)} (found {', '.join(moments) or 'none'})"
                )
            counts = moments[moment]
            if (
                not isinstance(counts, list)
                or len(counts) != len(edges) - 1
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
            ):
                raise ValueError(
                    f"moment {moment!r} should hold {len(edges) - 1} non-negative integer counts "
                    f"(one per bin between the {len(edges)} edges)"
                )
        return cls(str(payload.get("tensor", "?")), [float(e) for e in edges], dict(moments))


def read_histograms(path: Path) -> Histograms:
    """A run's ``histograms.json`` with every moment; ``ValueError`` names the file and the fault."""
    try:
        return Histograms.from_json(read_json(path))
    except ValueError as err:
        text = str(err)
        raise ValueError(text if text.startswith(f"cannot read {path}") else f"{path}: {text}") from None


def write_histograms(path: Path, histograms: Histograms) -> None:
    atomic_write_json(path, histograms.to_json())
