"""Files that survive crashes: atomic writes (with fsync) and weights-only checkpoint loading.

Every file the project writes (run records, checkpoints, feature caches, the Trainer callback's
engine state) goes through ``atomic_*``: the bytes land in a temporary file beside the target,
are flushed to disk, and replace the target in one rename, so a crash leaves the old file or the
new one, never half of one. Checkpoints are read only with ``torch.load(weights_only=True)``:
tensors and plain containers, never code from an untrusted pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dsd.errors import CheckpointError

if TYPE_CHECKING:  # torch is imported where a checkpoint is written or read: the records need none
    import torch


def _atomic_replace(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write through ``write(file_object)`` to a temp file beside ``path``, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it owner-only; results are for sharing
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask: read from /proc where Linux shows it, else by setting it and setting
    it straight back (which another thread creating a file at that instant could notice)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_replace(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` that never leaves a half-written file behind (a crash keeps the old one)."""
    import torch

    _atomic_replace(path, lambda handle: torch.save(obj, handle))


class JSONFileError(ValueError):
    """A JSON file that is missing (``missing``), unreadable or not JSON; ``reason`` says which."""

    def __init__(self, path: Path, reason: str, missing: bool = False) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path, self.reason, self.missing = Path(path), reason, missing


def read_json(path: Path) -> Any:
    """Read a JSON file; a ``JSONFileError`` names the file and what is wrong with it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JSONFileError(path, "no such file", missing=True) from None
    except (OSError, UnicodeDecodeError) as err:
        raise JSONFileError(path, str(err)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise JSONFileError(path, f"not valid JSON ({err})") from None


def safe_torch_load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code.

    Errors name the file and say what was expected, instead of an unpickling traceback.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        # torch's first sentence says what failed; the rest of its text advises weights_only=False,
        # which this project never does with a file it did not write.
        reason = str(err).splitlines()[0].split(". ")[0].rstrip(".") if str(err) else ""
        raise CheckpointError(
            f"cannot load {path} as a weights-only PyTorch checkpoint ({type(err).__name__}: {reason}); "
            "expected a file written by torch.save holding tensors and plain containers"
        ) from None


def file_sha256(path: Path, length: int = 16) -> str:
    """Content hash of a file (identifies a start checkpoint without its path)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]
