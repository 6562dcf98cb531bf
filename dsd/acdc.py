"""AC/DC's alternating schedule (Peste et al., NeurIPS 2021), cut from a study's branch.

AC/DC alternates sparse and dense phases: each sparse phase recomputes the magnitude mask, each
return to dense resets the optimizer's momentum (the authors' ``--reset_momentum_after_recycling``;
here the whole optimizer state, ``DSD.redense(reset_state="all")``), and the run ends sparse, so
one run gives a sparse model (its end) and a dense one (the end of its last dense phase). Its
ResNet-50 ImageNet schedule (IST-DASLab/ACDC, ``configs/neurips/iht_imagenet_resnet50_insta_
cosinelr_s90_ep100.yaml``): 100 epochs; dense warm-up to epoch 10; pruned at epochs 10, 20, ...,
70 and restored at 15, 25, ..., 65 and 75; pruned again at 85 until the end at 100.

Here AC/DC is a branch from the study's baseline, which stands in for its warm-up, so the 90
epochs after the warm-up are its template: seven sparse phases of 5, the dense phases between
them of 5, the last dense phase 10, a final sparse phase of 15, scaled to the length of the
branch (DSD's phases after the baseline), so that AC/DC, DSD and the dense control train equally
long. Each AC/DC phase is cut from the branch's learning-rate curve (``dsd.schedule`` pieces):
at every moment AC/DC trains at the rate DSD and the control train at, and the three differ only
in when they are sparse and what happens to the optimizer state. (AC/DC's own runs use one cosine
over 100 epochs; a different rate would confound the comparison.) Its sparsity is DSD's (the
recipe's first sparse phase) unless the recipe gives one; the mask is per tensor, as DSD's (the
authors rank globally).

Text form (``--acdc``), every key optional::

    sparsity=90%,cycles=7,sparse=5,dense=5,last-dense=10,final=15
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from dsd.schedule import Phase, Schedule, _read_sparsity, _sparsity_text

#: The text form's keys, by field.
_KEYS = {"sparsity": "sparsity", "cycles": "cycles", "sparse": "sparse", "dense": "dense",
         "last-dense": "last_dense", "final": "final"}  # fmt: skip


def _tidy(value: float) -> float:
    """``value`` to 12 significant digits: cut points read back as written (no 4.999999999)."""
    return float(f"{value:.12g}")


@dataclass(frozen=True)
class ACDCRecipe:
    """AC/DC's phases in relative lengths (the paper's epochs after its warm-up, by default)."""

    sparsity: float | None = None  # None: the study recipe's first sparse phase's (DSD's)
    cycles: int = 7  # sparse phases before the final one, each followed by a dense phase
    sparse: float = 5.0  # each of those sparse phases
    dense: float = 5.0  # each dense phase but the last
    last_dense: float = 10.0  # the dense phase before the final sparse one
    final: float = 15.0  # the final sparse phase (AC/DC ends sparse)

    def __post_init__(self) -> None:
        if self.sparsity is not None and not 0 < self.sparsity < 1:
            raise ValueError(f"sparsity must lie strictly between 0 and 100%, got {self.sparsity!r}")
        if not isinstance(self.cycles, int) or self.cycles < 1:
            raise ValueError(f"cycles must be a whole number of at least 1, got {self.cycles!r}")
        for name in ("sparse", "dense", "last_dense", "final"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"{name.replace('_', '-')} must be a positive length, got {getattr(self, name)!r}"
                )

    @classmethod
    def parse(cls, text: str) -> ACDCRecipe:
        """``key=value`` pairs separated by commas or spaces (see the module docstring); "" is the
        paper's schedule at DSD's sparsity. Errors name the offending pair and the valid keys."""
        values: dict[str, float | int] = {}
        for pair in (p for p in text.replace(",", " ").split() if p):
            key, _, value = pair.partition("=")
            if key not in _KEYS or not value:
                raise ValueError(f"cannot read {pair!r}; expected key=value with keys {', '.join(_KEYS)}")
            try:
                if key == "sparsity":
                    values["sparsity"] = _read_sparsity(value)
                elif key == "cycles":
                    values["cycles"] = int(value)
                else:
                    values[_KEYS[key]] = float(value)
            except ValueError:
                raise ValueError(f"cannot read the number in {pair!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        names = {field: key for key, field in _KEYS.items()}
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            text = _sparsity_text(value) if f.name == "sparsity" else f"{value:g}"
            parts.append(f"{names[f.name]}={text}")
        return ",".join(parts)

    def pattern(self) -> list[tuple[str, float]]:
        """(kind, relative length) of every phase, in order: sparse, dense, ..., sparse."""
        kinds: list[tuple[str, float]] = []
        for cycle in range(self.cycles):
            last = cycle == self.cycles - 1
            kinds += [("sparse", self.sparse), ("dense", self.last_dense if last else self.dense)]
        return [*kinds, ("sparse", self.final)]

    def schedule(self, branch: Schedule) -> Schedule:
        """AC/DC's phases over ``branch`` (DSD's phases after the baseline), each cut into pieces
        of ``branch``'s learning-rate curve where a phase of ``branch`` ends inside it."""
        sparsity = self.sparsity
        if sparsity is None:
            sparsity = next((p.sparsity for p in branch.phases if p.is_sparse), None)
        if sparsity is None:
            raise ValueError(
                f"AC/DC needs a sparsity: the branch {branch} has no sparse phase; give sparsity="
            )
        total = branch.total_length
        pattern = self.pattern()
        scale = total / sum(length for _, length in pattern)
        parents, start = [], 0.0
        for phase in branch.phases:
            parents.append((start, start + phase.length, phase))
            start += phase.length
        pieces: list[Phase] = []
        reached, begin = 0.0, 0.0
        for kind, length in pattern:
            reached += length
            end = total if reached == sum(x for _, x in pattern) else reached * scale
            first = True
            for low, high, parent in parents:
                a, b = max(begin, low), min(end, high)
                if b - a <= 1e-9 * total:
                    continue
                pieces.append(
                    Phase(
                        kind,
                        _tidy(b - a),
                        parent.lr,
                        sparsity if kind == "sparse" else 0.0,
                        offset=_tidy(a - low),
                        span=parent.length,
                        joined=not first,
                    )
                )
                first = False
            begin = end
        return replace(branch, phases=tuple(pieces))
