"""Run folders, config hashing, atomic writes and safe checkpoint loading.

A run lives in ``results/runs/<task>-<model>/<method>-<hash8>/seed<N>/``. The hash covers only
the hyper-parameters that differ from their defaults (so adding a field with a default never
renames old runs) and never a path (so moving a dataset never does either). ``config.json`` is
written first and ``done`` last: a folder without ``done`` is unfinished, whatever else it holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from dsd.files import atomic_write_text

DONE_MARKER = "done"
CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"

#: Libraries whose versions every record carries.
TRACKED_LIBRARIES = (
    "torch",
    "torchvision",
    "torchaudio",
    "numpy",
    "sacrebleu",
    "jiwer",
    "transformers",
    "dsd-suite",
)


def canonical_json(payload: Any) -> str:
    """JSON with sorted keys and no spaces: the same config always gives the same text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(payload: Any, length: int = 8) -> str:
    """Short sha256 of the canonical JSON of ``payload``."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:length]


def non_default_fields(config: Any) -> dict[str, Any]:
    """Fields of a config dataclass that differ from their defaults, without path fields."""
    changed = {}
    for field in dataclasses.fields(config):
        if field.metadata.get("path"):
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        value = getattr(config, field.name)
        if value != default:
            changed[field.name] = value
    return changed


def run_folder(results_dir: Path, task: str, model: str, method: str, run_hash: str, seed: int) -> Path:
    """``<results>/runs/<task>-<model>/<method>-<hash>/seed<N>``."""
    return Path(results_dir) / "runs" / f"{task}-{model}" / f"{method}-{run_hash}" / f"seed{seed}"


def is_done(folder: Path) -> bool:
    return (Path(folder) / DONE_MARKER).exists()


def finished_runs(runs_dir: Path) -> Iterator[Path]:
    """Every seed folder under ``runs_dir`` holding a ``done`` marker, in sorted order."""
    for marker in sorted(Path(runs_dir).glob(f"**/{DONE_MARKER}")):
        yield marker.parent


def mark_done(folder: Path) -> None:
    atomic_write_text(Path(folder) / DONE_MARKER, "")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (readers ignore a torn last line, see ``read_jsonl``)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete lines of a JSONL file; a torn final line (crash mid-write) is ignored."""
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


def truncate_file(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (resume: drop lines logged after the checkpoint)."""
    if Path(path).exists():
        with open(path, "r+b") as handle:
            handle.truncate(size)


def file_size(path: Path) -> int:
    return Path(path).stat().st_size if Path(path).exists() else 0


# ---------------------------------------------------------------------- checkpoints
def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["cuda"] = torch.version.cuda or "none"
    return versions


def _strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_model_weights(model: torch.nn.Module, state: Any, source: str) -> None:
    """Load weights strictly into ``model``, explaining a mismatch in one clear message.

    Accepts a plain state_dict, or one of ours / a common trainer's under ``model`` or
    ``state_dict``; strips DDP's ``module.`` and ``torch.compile``'s ``_orig_mod.`` prefixes.
    """
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    elif isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{source} holds no model state_dict (expected a mapping of names to tensors)")
    state = _strip_prefix(_strip_prefix(state, "module."), "_orig_mod.")
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(ours[k].shape)}"
        for k in ours
        if k in state and state[k].shape != ours[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {'; '.join(shapes[:3])})")
        raise ValueError(
            f"{source} does not fit the model {type(model).__name__}: keys "
            + ", ".join(parts)
            + ". Is it a checkpoint of another architecture or class count?"
        )
    model.load_state_dict(state, strict=True)
