"""How sparse the selected tensors are, counted from the masks and from the weights both.

The two counts must agree while a mask is held (the engine's contract); a report that shows them
side by side makes a lapse visible (a weight revived by an optimizer the engine does not hold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TensorSparsity:
    """Sparsity of one tensor, counted from its mask and from its weights."""

    name: str
    shape: tuple[int, ...]
    numel: int
    mask_zeros: int | None
    weight_zeros: int

    @property
    def mask_sparsity(self) -> float | None:
        return None if self.mask_zeros is None else self.mask_zeros / self.numel

    @property
    def weight_sparsity(self) -> float:
        return self.weight_zeros / self.numel


@dataclass(frozen=True)
class SparsityReport:
    """Per-tensor and overall sparsity of the selected tensors (masks and weights both)."""

    phase: str
    tensors: list[TensorSparsity] = field(default_factory=list)

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def mask_sparsity(self) -> float | None:
        if self.phase != "sparse":
            return None
        return sum(t.mask_zeros or 0 for t in self.tensors) / max(1, self.numel)

    @property
    def weight_sparsity(self) -> float:
        return sum(t.weight_zeros for t in self.tensors) / max(1, self.numel)

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "mask_sparsity": self.mask_sparsity,
            "weight_sparsity": self.weight_sparsity,
            "tensors": {
                t.name: {"mask_sparsity": t.mask_sparsity, "weight_sparsity": t.weight_sparsity}
                for t in self.tensors
            },
        }

    def __str__(self) -> str:
        width = max([len(t.name) for t in self.tensors] + [6])
        lines = [f"{'tensor':<{width}}  {'shape':<22} {'numel':>11}  {'mask':>7}  {'weights':>7}"]
        for t in self.tensors:
            mask = "-" if t.mask_sparsity is None else f"{t.mask_sparsity:7.2%}"
            lines.append(
                f"{t.name:<{width}}  {list(t.shape)!s:<22} {t.numel:>11,}  {mask:>7}  "
                f"{t.weight_sparsity:7.2%}"
            )
        overall = "-" if self.mask_sparsity is None else f"{self.mask_sparsity:7.2%}"
        lines.append(
            f"{'overall':<{width}}  {'':<22} {self.numel:>11,}  {overall:>7}  {self.weight_sparsity:7.2%}"
        )
        return "\n".join(lines)
