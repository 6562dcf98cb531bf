"""The run record: one typed schema for what ``config.json`` and ``result.json`` hold.

``RunRecord`` is what a run *is* (written to ``config.json`` before it starts): the task, model,
dataset, method, seed, the hash that names its folder, the schedule, and for a branch the hash
of the baseline run it starts from. ``RunResult`` is the record plus what the run measured
(written to ``result.json`` when it ends): the metrics after every phase and at the end. The
study writes them, the loop completes them, the report reads them; nothing else spells their keys.

The hash covers only the hyper-parameters that differ from their defaults (so adding a field with
a default never renames old runs) and never a path (so moving a dataset never does either).

Records written before ``baseline_hash`` existed link a branch to its baseline only through
``baseline_run`` (the baseline's folder, relative to the results folder); ``load_result`` reads
the link's own ``config.json`` to recover the hash, and leaves it empty when that is gone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsd.errors import RecordError
from dsd.files import atomic_write_json, read_json
from dsd.records.layout import RunFolder
from dsd.records.methods import METHODS

Metrics = dict[str, dict[str, float]]
"""split -> metric -> value."""

#: How many characters of a data fingerprint the tables show.
FINGERPRINT_SHORT = 8


@dataclass
class RunRecord:
    """What a run is: written to ``config.json`` before it starts."""

    task: str
    model: str
    dataset: str
    paper_key: str
    method: str
    seed: int
    hash: str = ""
    schedule: str = ""  # this run's phases ("" for a start checkpoint that is evaluated, not trained)
    recipe: str = ""  # the study's whole recipe
    epochs_scale: float = 1.0
    start: str = ""  # "": trained from scratch; "pretrained:<model>" or "file:<sha256>"
    baseline_hash: str = ""  # a branch's baseline run ("" for a baseline)
    baseline_run: str = ""  # that baseline's folder, relative to the results folder (for people)
    data_fingerprint: str = ""  # the data's identity (dsd.taskkit.fingerprint); "" in records before it
    data_facts: dict[str, Any] = field(default_factory=dict)  # what the data holds, for people
    setup: list[str] = field(default_factory=list)  # departures from the paper's setup
    skipped: dict[str, Any] = field(default_factory=dict)  # kind -> {count, first names}
    task_config: dict[str, Any] = field(default_factory=dict)
    description: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {higher_is_better, ...}
    primary_metric: str = ""
    splits: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    device: str = "cpu"
    amp: str = "auto"
    deterministic: bool = False

    @property
    def label(self) -> str:
        """``[task model method seedN]``: how the console names the run."""
        return f"[{self.task} {self.model} {self.method} seed{self.seed}]"

    @property
    def study_baseline(self) -> str:
        """The hash of the baseline run whose study this run belongs to: its own for a baseline,
        ``baseline_hash`` for a branch ("" when an old record cannot name it)."""
        return self.hash if self.method == "baseline" else self.baseline_hash

    @property
    def study_key(self) -> str:
        """The key of the run's study (its baseline and the branches from it under one recipe, on
        one dataset): what the report groups runs by and the figures' index names studies by.
        Records that cannot name their baseline are keyed by what they share instead (task,
        dataset, recipe, scale and task config); the data's fingerprint keeps runs on different
        data apart."""
        if self.study_baseline:
            ident: list[Any] = [self.paper_key, self.dataset, self.study_baseline, self.recipe]
        else:
            config = {k: v for k, v in self.task_config.items() if k != "recipe"}
            ident = [self.paper_key, self.dataset, self.recipe, self.epochs_scale, config]
        if self.data_fingerprint:
            ident.append(self.data_fingerprint)
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def to_json(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


@dataclass
class PhaseResult:
    """One finished phase: what it was and the metrics after it."""

    index: int  # in the study's recipe (0 = the baseline's dense phase)
    label: str
    kind: str
    sparsity: float
    length: float
    unit: str
    lr: float
    steps: int
    metrics: Metrics
    weights: str  # file name of its weights in the run folder

    @classmethod
    def of(cls, phase: Any, index: int, unit: str, steps: int, metrics: Metrics, weights: str) -> PhaseResult:
        """The result of ``phase`` (a ``dsd.schedule.Phase``: its label, kind, sparsity, length, lr)."""
        return cls(
            index,
            phase.label,
            phase.kind,
            phase.sparsity,
            phase.length,
            unit,
            phase.lr,
            steps,
            metrics,
            weights,
        )


@dataclass
class RunResult(RunRecord):
    """The record plus what the run measured: written to ``result.json`` when it ends."""

    phases: list[PhaseResult] = field(default_factory=list)
    final: Metrics = field(default_factory=dict)
    wall_time_s: float = 0.0
    steps: int = 0
    data_issues: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, record: RunRecord, **outcome: Any) -> RunResult:
        return cls(**{f.name: getattr(record, f.name) for f in dataclasses.fields(RunRecord)}, **outcome)

    @classmethod
    def from_json(cls, payload: Any) -> RunResult:
        """A checked ``result.json``; ``ValueError`` says what is wrong with it."""
        check_result(payload)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in payload.items() if k in known}
        values["phases"] = [
            PhaseResult(**{k: p.get(k) for k in _PHASE_KEYS}) for p in payload.get("phases", [])
        ]
        return cls(**values)

    def final_weights(self) -> str:
        """File name of the weights the run ended with (its last phase's)."""
        return self.phases[-1].weights if self.phases else RunFolder.phase_weights_name(0)

    def last_phase(self, kind: str) -> PhaseResult | None:
        """The last ``dense`` or ``sparse`` phase the run finished (None if it had none): AC/DC's
        two readings are its last sparse phase (where it ends) and its last dense one."""
        return next((p for p in reversed(self.phases) if p.kind == kind), None)


_PHASE_KEYS = [f.name for f in dataclasses.fields(PhaseResult)]


def load_record(folder: Path) -> RunRecord:
    """The ``config.json`` of a run folder; ``ValueError`` names the file when it is unusable."""
    path = RunFolder(Path(folder)).config
    try:
        payload = read_json(path)
        known = {f.name for f in dataclasses.fields(RunRecord)}
        return RunRecord(**{k: v for k, v in payload.items() if k in known})
    except (ValueError, TypeError, AttributeError) as err:
        raise RecordError(
            f"cannot read the run record {path}: {err}. Delete the run folder {Path(folder)} to train "
            "that run again (a run that starts from it then trains after it), or put a good copy back"
        ) from None


def write_record(folder: RunFolder, record: RunRecord) -> None:
    """``config.json``: what the run is, written before it starts."""
    atomic_write_json(folder.config, record.to_json())


def write_result(folder: RunFolder, result: RunResult) -> None:
    """``result.json``: the record and what the run measured, written when it ends."""
    atomic_write_json(folder.result, result.to_json())


def load_result(folder: Path) -> RunResult:
    """The ``result.json`` of a run folder; resolves a legacy record's baseline link. A missing or
    unreadable file raises ``JSONFileError``, an ill-formed record ``ValueError``."""
    result = RunResult.from_json(read_json(RunFolder(Path(folder)).result))
    if result.method != "baseline" and not result.baseline_hash and result.baseline_run:
        result.baseline_hash = _linked_hash(Path(folder), result.baseline_run)
    return result


def _linked_hash(folder: Path, baseline_run: str) -> str:
    """The hash in the ``config.json`` that a legacy ``baseline_run`` link points at.

    The link is relative to the results folder that held ``runs/`` when the run was written;
    the runs folder may have been moved or renamed since (``--runs elsewhere``), so the link is
    tried from every folder above the run, with and without its leading ``runs/``."""
    link = Path(baseline_run)
    tails = [link, Path(*link.parts[1:])] if len(link.parts) > 1 else [link]
    for root in Path(folder).parents:
        for tail in tails:
            config = RunFolder(root / tail).config
            if config.is_file():
                try:
                    return str(read_json(config).get("hash", ""))
                except (ValueError, AttributeError):
                    return ""
    return ""


def _plain(value: Any) -> Any:
    """JSON-ready copy: paths and other objects become strings (as ``json.dumps(default=str)``)."""
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------- checking result.json
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_metric_block(block: Any, where: str) -> None:
    if not isinstance(block, dict):
        raise ValueError(f"{where} should map split -> metrics, got {type(block).__name__}")
    for split, metrics in block.items():
        if not isinstance(metrics, dict):
            raise ValueError(f"{where}[{split!r}] should map metric -> number")
        for name, value in metrics.items():
            if not _is_number(value):
                raise ValueError(f"{where}[{split!r}][{name!r}] should be a finite number, got {value!r}")


def check_result(record: Any) -> None:
    """Raise ``ValueError`` saying what is wrong if ``record`` is not a usable ``result.json``."""
    if not isinstance(record, dict):
        raise ValueError(f"should hold a JSON object, got {type(record).__name__}")
    for key in ("task", "model", "dataset", "paper_key", "method", "primary_metric", "recipe"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise ValueError(f"missing key {key!r} (a non-empty string)")
    if record["method"] not in METHODS:
        raise ValueError(f"method {record['method']!r} is none of {', '.join(METHODS)}")
    if not isinstance(record.get("seed"), int) or isinstance(record["seed"], bool):
        raise ValueError("missing key 'seed' (an integer)")
    specs = record.get("metrics")
    if not isinstance(specs, dict) or not all(
        isinstance(s, dict) and isinstance(s.get("higher_is_better"), bool) for s in specs.values()
    ):
        raise ValueError("missing key 'metrics' (metric -> {higher_is_better: bool, ...})")
    if record["primary_metric"] not in specs:
        raise ValueError(f"primary_metric {record['primary_metric']!r} is not among its metrics")
    splits = record.get("splits")
    if not isinstance(splits, list) or not splits or not all(isinstance(s, str) for s in splits):
        raise ValueError("missing key 'splits' (a non-empty list of split names)")
    phases = record.get("phases")
    if not isinstance(phases, list):
        raise ValueError("missing key 'phases' (a list)")
    for i, phase in enumerate(phases):
        if not isinstance(phase, dict) or not isinstance(phase.get("index"), int):
            raise ValueError(f"phases[{i}] lacks an integer 'index'")
        if phase.get("kind") not in ("dense", "sparse"):
            raise ValueError(f"phases[{i}]['kind'] should be 'dense' or 'sparse'")
        _check_metric_block(phase.get("metrics"), f"phases[{i}]['metrics']")
    if "final" not in record or not record["final"]:
        raise ValueError("missing key 'final' (metrics after the last phase)")
    _check_metric_block(record["final"], "final")
    if not _is_number(record.get("epochs_scale", 1.0)):
        raise ValueError("'epochs_scale' should be a finite number")


# ---------------------------------------------------------------------- identity
def canonical_json(payload: Any) -> str:
    """JSON with sorted keys and no spaces: the same config always gives the same text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(payload: Any, length: int = 8) -> str:
    """Short sha256 of the canonical JSON of ``payload``."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:length]
