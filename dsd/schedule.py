"""Schedules: the phases of a DSD run, their text form, and the equal-epoch dense control.

A schedule is a list of phases, each dense (``D``) or sparse (``S`` at a sparsity), with a length
(in epochs, fractions allowed, or in optimizer steps) and a starting learning rate. Inside a
phase the rate decays the same way in every phase ("the initial LR at each stage is decayed the
same as conventional training"): ``decay=`` names the rule once for the whole schedule.

Text form (what a command line takes), phases separated by spaces or commas::

    D:90@0.1 S30%:45@0.01 D:45@0.001 decay=step:30:0.1      # ResNet (fb.resnet.torch)
    D:74@1e-2 S30%:1.25@1e-4 D:18@1e-5                       # VGG-16: a 1.25-epoch S phase
    D:50@8e-4 S50%:50@5e-4 D:50@3e-4 S25%:50@1e-4 D:50@3e-5  # DeepSpeech: D-S-D-S-D
    D:500steps@3e-5 S50%:500steps@3e-5 D:500steps@3e-6       # lengths in optimizer steps

Decay rules: ``none`` (constant), ``step:N:G`` (times G every N epochs/steps), ``exp:G`` (times G
per epoch/step), ``cosine`` (to zero at the phase end).

A phase can also be a *piece* of a longer phase's learning-rate curve, so that a method with
other phase boundaries (AC/DC's alternation, ``dsd.acdc``) trains at exactly the rates DSD and
the control train at the same moment: ``S30%:5@0.01~10/45`` is sparse for 5 epochs, 10 epochs
into a 45-epoch phase that started at 0.01 (its decay runs as in that phase). A leading ``+``
marks a piece that continues the previous phase where a longer phase's boundary cut it: same
kind, same mask, nothing pruned or restored at its start (``+S30%:2@0.001~0/45``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation

from dsd.masks import check_sparsity

UNITS = ("epochs", "steps")

_NUMBER = r"[0-9.]+(?:e[-+]?[0-9]+)?"
_PHASE = re.compile(
    rf"^(?P<joined>\+)?(?P<kind>[DS])(?P<sparsity>[0-9.]+%?)?:(?P<length>{_NUMBER})"
    rf"(?P<unit>ep|epochs|st|steps)?@(?P<lr>{_NUMBER})(?:~(?P<offset>{_NUMBER})/(?P<span>{_NUMBER}))?$",
    re.IGNORECASE,
)


def _number(text: str) -> str:
    """Shortest faithful rendering of a float: 90, 1.25, 0.001, 3e-05 -> '3e-05'."""
    value = float(text) if isinstance(text, str) else text
    return f"{value:g}" if float(f"{value:g}") == value else repr(value)


def _product(length: float, factor: float) -> float:
    """``length * factor`` without the float noise that would show in the text form
    (6 x 0.6 is 3.5999999999999996 in binary; 12 significant digits give 3.6)."""
    return float(f"{length * factor:.12g}")


def _sparsity_text(fraction: float) -> str:
    """A sparsity in percent, as short as reads back exactly: 0.3 -> '30%' (not
    '30.000000000000004%'), 1e-07 -> '0.00001%' (digits only: the text form has no exponent)."""
    percent = (Decimal(repr(fraction)) * 100).normalize()
    return f"{percent:f}%"


def _read_sparsity(text: str) -> float:
    """'30%' -> 0.3, '0.3' -> 0.3. Percent is divided exactly, so '99.9%' is 0.999, not
    0.9990000000000001, and every sparsity written by ``_sparsity_text`` reads back equal."""
    try:
        if text.endswith("%"):
            return float(Decimal(text[:-1]) / 100)
        return float(Decimal(text))
    except InvalidOperation:
        raise ValueError(f"cannot read sparsity {text!r}") from None


@dataclass(frozen=True)
class Decay:
    """How the learning rate falls inside a phase, as a function of progress in it."""

    rule: str = "none"
    every: float = 0.0
    gamma: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Decay:
        parts = text.strip().lower().split(":")
        try:
            if parts == ["none"]:
                return cls()
            if parts == ["cosine"]:
                return cls("cosine")
            if parts[0] == "step" and len(parts) == 3:
                decay = cls("step", float(parts[1]), float(parts[2]))
                if decay.every <= 0 or not 0 < decay.gamma <= 1:
                    raise ValueError
                return decay
            if parts[0] == "exp" and len(parts) == 2:
                decay = cls("exp", 0.0, float(parts[1]))
                if not 0 < decay.gamma <= 1:
                    raise ValueError
                return decay
        except ValueError:
            pass
        raise ValueError(
            f"unknown LR decay {text!r}; expected none, cosine, step:<every>:<gamma> "
            "(gamma in (0, 1]) or exp:<gamma>"
        )

    def factor(self, progress: float, length: float) -> float:
        """LR multiplier after ``progress`` units of a phase ``length`` units long."""
        if self.rule == "step":
            return self.gamma ** math.floor(progress / self.every + 1e-9)
        if self.rule == "exp":
            return self.gamma**progress
        if self.rule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress / length)))
        return 1.0

    def scaled(self, factor: float) -> Decay:
        return replace(self, every=_product(self.every, factor)) if self.rule == "step" else self

    def __str__(self) -> str:
        if self.rule == "step":
            return f"step:{_number(self.every)}:{_number(self.gamma)}"
        if self.rule == "exp":
            return f"exp:{_number(self.gamma)}"
        return self.rule


@dataclass(frozen=True)
class Phase:
    """One phase: dense, or sparse at ``sparsity``; ``length`` in the schedule's unit.

    A piece of a longer phase's learning-rate curve (see the module docstring) has ``span``, that
    phase's length, and ``offset``, where in it the piece starts; ``joined`` continues the
    previous phase (the same mask, nothing pruned or restored at its start)."""

    kind: str
    length: float
    lr: float
    sparsity: float = 0.0
    offset: float = 0.0
    span: float = 0.0  # 0: the phase is its own learning-rate curve
    joined: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("dense", "sparse"):
            raise ValueError(f"phase kind must be 'dense' or 'sparse', got {self.kind!r}")
        if not self.length > 0 or math.isinf(self.length):
            raise ValueError(f"phase length must be a positive number, got {self.length!r}")
        if not self.lr > 0 or math.isinf(self.lr):
            raise ValueError(f"phase learning rate must be positive, got {self.lr!r}")
        if self.kind == "sparse":
            if check_sparsity(self.sparsity) == 0.0:
                raise ValueError("a sparse phase needs a sparsity above 0")
        elif self.sparsity != 0.0:
            raise ValueError("a dense phase has sparsity 0")
        if self.span and not (self.offset >= 0 and self.offset + self.length <= self.span * (1 + 1e-9)):
            raise ValueError(
                f"a piece of {_number(self.length)} starting {_number(self.offset)} into a phase of "
                f"{_number(self.span)} ends past that phase"
            )
        if not self.span and self.offset:
            raise ValueError("an offset needs the span of the phase it is a piece of (~offset/span)")

    @property
    def is_sparse(self) -> bool:
        return self.kind == "sparse"

    @property
    def label(self) -> str:
        """Short name for tables: ``D`` or ``S30%``."""
        return f"S{_sparsity_text(self.sparsity)}" if self.is_sparse else "D"

    @property
    def curve(self) -> tuple[float, float]:
        """(progress at its start, length) of the learning-rate curve this phase runs on."""
        return (self.offset, self.span) if self.span else (0.0, self.length)

    def text(self, unit: str) -> str:
        suffix = "steps" if unit == "steps" else ""
        piece = f"~{_number(self.offset)}/{_number(self.span)}" if self.span else ""
        joined = "+" if self.joined else ""
        return f"{joined}{self.label}:{_number(self.length)}{suffix}@{_number(self.lr)}{piece}"


@dataclass(frozen=True)
class Schedule:
    """An ordered list of phases sharing a length unit and an in-phase LR decay rule."""

    phases: tuple[Phase, ...]
    unit: str = "epochs"
    decay: Decay = Decay()

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("a schedule needs at least one phase")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")
        object.__setattr__(self, "phases", tuple(self.phases))
        for before, phase in zip((None, *self.phases), self.phases, strict=False):
            if phase.joined and (before is None or before.label != phase.label):
                raise ValueError(
                    f"phase {phase.text(self.unit)!r} continues the previous phase ('+'), so it needs one "
                    "of the same kind and sparsity before it"
                )

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Read the text form (see the module docstring); errors name the offending token."""
        phases: list[Phase] = []
        units: set[str] = set()
        decay = Decay()
        tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
        for token in tokens:
            if token.lower().startswith("decay="):
                decay = Decay.parse(token.split("=", 1)[1])
                continue
            match = _PHASE.match(token)
            if not match:
                raise ValueError(
                    f"cannot read phase {token!r} in schedule {text!r}; expected e.g. "
                    "'D:90@0.1' or 'S30%:45@0.01' (kind[sparsity]:length[steps]@lr)"
                )
            units.add("steps" if (match["unit"] or "").lower().startswith("st") else "epochs")
            sparsity_text = match["sparsity"]
            if match["kind"].upper() == "S" and sparsity_text is None:
                raise ValueError(f"sparse phase {token!r} needs a sparsity, e.g. 'S30%:45@0.01'")
            if match["kind"].upper() == "D" and sparsity_text:
                raise ValueError(f"dense phase {token!r} takes no sparsity")
            kind = "sparse" if match["kind"].upper() == "S" else "dense"
            try:
                sparsity = 0.0
                if sparsity_text:
                    sparsity = _read_sparsity(sparsity_text)
                piece = (
                    {"offset": float(match["offset"]), "span": float(match["span"])} if match["span"] else {}
                )
                phases.append(
                    Phase(
                        kind,
                        float(match["length"]),
                        float(match["lr"]),
                        sparsity,
                        joined=bool(match["joined"]),
                        **piece,
                    )
                )
            except ValueError as err:
                raise ValueError(f"phase {token!r}: {err}") from None
        if len(units) > 1:
            raise ValueError(f"schedule {text!r} mixes epochs and steps; use one unit")
        if not phases:
            raise ValueError(f"schedule {text!r} has no phases")
        return cls(tuple(phases), units.pop(), decay)

    def __str__(self) -> str:
        text = " ".join(p.text(self.unit) for p in self.phases)
        return text if self.decay.rule == "none" else f"{text} decay={self.decay}"

    # ----------------------------------------------------------------- derived schedules
    def dense_control(self) -> Schedule:
        """The equal-length dense control: same lengths and learning rates, nothing pruned."""
        return replace(self, phases=tuple(replace(p, kind="dense", sparsity=0.0) for p in self.phases))

    def scaled(self, factor: float) -> Schedule:
        """Every length (and step-decay period) times ``factor``: for stand-ins and smoke runs."""
        if not factor > 0:
            raise ValueError(f"scale factor must be positive, got {factor!r}")
        phases = tuple(
            replace(
                p,
                length=_product(p.length, factor),
                offset=_product(p.offset, factor),
                span=_product(p.span, factor),
            )
            for p in self.phases
        )
        return replace(self, phases=phases, decay=self.decay.scaled(factor))

    def head(self) -> Schedule:
        """The first phase alone (the study's baseline)."""
        return replace(self, phases=self.phases[:1])

    def tail(self) -> Schedule:
        """Every phase after the first (the study's branches start from the baseline)."""
        if len(self.phases) < 2:
            raise ValueError(f"schedule {self} has no phases after the first")
        return replace(self, phases=self.phases[1:])

    @property
    def total_length(self) -> float:
        return sum(p.length for p in self.phases)

    @property
    def is_dense(self) -> bool:
        return not any(p.is_sparse for p in self.phases)

    def lr(self, phase_index: int, progress: float) -> float:
        """Learning rate ``progress`` units into phase ``phase_index``."""
        phase = self.phases[phase_index]
        start, length = phase.curve
        return phase.lr * self.decay.factor(start + progress, length)


#: The paper's recipes (dsd-paper.md, "Per-model recipes"), phases only. Which LR decay runs
#: inside each phase is the paper's "decayed the same as conventional training": each task
#: pairs these with its architecture's conventional rule.
PAPER_RECIPES: dict[str, str] = {
    "googlenet": "D:60@1e-2 S30%:11@1e-3 D:22@1e-4",
    "vgg16": "D:74@1e-2 S30%:1.25@1e-4 D:18@1e-5",
    "resnet18": "D:90@0.1 S30%:45@0.01 D:45@0.001",
    "resnet50": "D:90@0.1 S30%:45@0.01 D:45@0.001",
    "neuraltalk": "D:19@1e-2 S80%:10@1e-3 D:6@1e-4",
    "deepspeech": "D:50@8e-4 S50%:50@5e-4 D:50@3e-4 S25%:50@1e-4 D:50@3e-5",
    "deepspeech2": "D:20@3e-4 S50%:20@3e-4 D:20@3e-5 S25%:20@3e-5 D:20@6e-6",
}
