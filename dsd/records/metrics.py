"""``metrics.jsonl``: one JSON line per log interval and per evaluation, appended as a run goes.

Two kinds of line share the run's position (phase, epoch, step, learning rate, sparsity, time):

- a **training line** (``kind`` ``train``) every log interval: the mean training loss since the
  last one and the throughput;
- an **evaluation line** (``kind`` ``epoch``, ``phase_end`` or ``start``) for every split
  evaluated: its metrics.

The file is appended line by line, so a crash can tear its last line: readers drop a torn final
line and name any other that is not a JSON object. A resumed run cuts the lines logged after its
checkpoint (``truncate``), so no step appears twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dsd.files import write_failure

TRAIN = "train"
#: The evaluation kinds: after an epoch, at a phase's end, of start weights given (not trained).
EVAL_KINDS = ("epoch", "phase_end", "start")


@dataclass
class LogLine:
    """Where the run stood when a line was written."""

    phase: int  # index in the study's recipe (0 = the baseline's dense phase)
    phase_label: str  # "D", "S50%", ...
    epoch: float
    step: int
    lr: float | None
    sparsity: float  # fraction of the pruned tensors held at zero by the masks (0 while dense)
    time_s: float  # since the run started, resumed attempts included

    kind: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class TrainLine(LogLine):
    """One log interval of training."""

    train_loss: float = 0.0
    samples_per_s: float = 0.0

    kind: ClassVar[str] = TRAIN

    def to_json(self) -> dict[str, Any]:
        return {**_position(self), "split": TRAIN, "kind": TRAIN, "metrics": {},
                "train_loss": self.train_loss, "samples_per_s": self.samples_per_s}  # fmt: skip


@dataclass
class EvalLine(LogLine):
    """One split evaluated."""

    split: str = ""
    eval_kind: str = "epoch"  # one of EVAL_KINDS
    metrics: dict[str, float] = field(default_factory=dict)

    kind: ClassVar[str] = "eval"

    def to_json(self) -> dict[str, Any]:
        return {**_position(self), "split": self.split, "kind": self.eval_kind, "metrics": self.metrics,
                "train_loss": None}  # fmt: skip


def _position(line: LogLine) -> dict[str, Any]:
    return {"phase": line.phase, "phase_label": line.phase_label, "epoch": line.epoch, "step": line.step,
            "lr": line.lr, "sparsity": line.sparsity, "time_s": line.time_s}  # fmt: skip


def parse_line(payload: Any) -> TrainLine | EvalLine:
    """A line read back; ``ValueError`` says what is wrong with it. Lines of older runs (without
    ``time_s`` or ``samples_per_s``) read with those at 0."""
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    try:
        position = {
            "phase": int(payload.get("phase", 0)),
            "phase_label": str(payload.get("phase_label", "")),
            "epoch": float(payload.get("epoch", 0.0)),
            "step": int(payload.get("step", 0)),
            "lr": None if payload.get("lr") is None else float(payload["lr"]),
            "sparsity": float(payload.get("sparsity", 0.0) or 0.0),
            "time_s": float(payload.get("time_s", 0.0) or 0.0),
        }
        if payload.get("kind") == TRAIN:
            loss = payload.get("train_loss")
            return TrainLine(**position, train_loss=float("nan") if loss is None else float(loss),
                             samples_per_s=float(payload.get("samples_per_s") or 0.0))  # fmt: skip
        metrics = payload.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise ValueError("'metrics' should map metric -> number")
        values = {str(k): float(v) for k, v in metrics.items()}
        split, kind = str(payload.get("split", "")), str(payload.get("kind", ""))
        return EvalLine(**position, split=split, eval_kind=kind, metrics=values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"not a metrics line ({err})") from None


def append_line(path: Path, line: LogLine) -> None:
    """Append one line (readers ignore a torn last line, see ``read_jsonl``)."""
    append_jsonl(path, line.to_json())


def read_lines(path: Path, skipped: list[str] | None = None) -> list[TrainLine | EvalLine]:
    """Every complete line of a ``metrics.jsonl``, typed. A line that is no metrics line raises
    ``ValueError`` naming the file and line, or, given a ``skipped`` list, is left out and said
    there (a reader that must not lose a whole run to one bad line)."""
    lines = []
    for number, payload in enumerate(read_jsonl(path), 1):
        try:
            lines.append(parse_line(payload))
        except ValueError as err:
            if skipped is None:
                raise ValueError(f"{path}: line {number}: {err}") from None
            skipped.append(f"{path}: line {number}: {err}")
    return lines


# ---------------------------------------------------------------------- the JSON-lines file
def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line; a disk that refuses it is a ``WriteError`` naming the file."""
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
    except OSError as err:
        failure = write_failure(path, err)
        if failure is None:
            raise
        raise failure from None


def read_jsonl(path: Path) -> list[Any]:
    """All complete lines of a JSONL file as parsed JSON; a torn final line (a crash mid-write) is
    ignored, any other unreadable line named."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a JSON line") from None
    return records


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (resume: drop lines logged after the checkpoint)."""
    if Path(path).exists():
        with open(path, "r+b") as handle:
            handle.truncate(size)


def size_of(path: Path) -> int:
    """The file's size in bytes (0 when it does not exist yet): where a checkpoint cuts it back to."""
    return Path(path).stat().st_size if Path(path).exists() else 0
