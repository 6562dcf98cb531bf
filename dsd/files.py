"""Files that survive crashes: atomic writes (with fsync) and weights-only checkpoint loading.

Every file the project writes (run records, checkpoints, feature caches, the Trainer callback's
engine state) goes through ``atomic_*``: the bytes land in a temporary file beside the target,
are flushed to disk, and replace the target in one rename, so a crash leaves the old file or the
new one, never half of one. Checkpoints are read only with ``torch.load(weights_only=True)``:
tensors and plain containers, never code from an untrusted pickle.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dsd.errors import CheckpointError, WriteError

if TYPE_CHECKING:  # torch is imported where a checkpoint is written or read: the records need none
    import torch


#: The name of an atomic write's temporary file beside its target (``stale_temporaries``).
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".", ".tmp"
#: What a write failure for a reason of the disk looks like: these errnos, or torch's own words
#: for a short write (it loses the errno: "unexpected pos ...", "PytorchStreamWriter failed ...").
DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG}
TORCH_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")


def _atomic_replace(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write through ``write(file_object)`` to a temp file beside ``path``, fsync, rename. A failure
    of the disk (full, read-only, quota) is a ``WriteError`` naming the file and the cause."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f"{TEMPORARY_PREFIX}{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent
        )
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it owner-only; results are for sharing
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        failure = write_failure(path, err)
        if failure is not None:
            raise failure from None
        raise


def write_failure(path: Path, err: BaseException) -> WriteError | None:
    """``err`` as a ``WriteError`` when the disk caused it (the user's to fix), else None (a bug)."""
    if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
        cause = os.strerror(err.errno)
    elif isinstance(err, RuntimeError) and any(words in str(err) for words in TORCH_WRITE_FAILURES):
        cause = "the write was cut short (a full disk, a quota or a file size limit)"
    else:
        return None
    folder = next((p for p in Path(path).parents if p.exists()), Path("."))
    free = shutil.disk_usage(folder).free
    return WriteError(
        f"cannot write {path}: {cause} ({free / 2**30:.1f} GiB free under {folder}). Free space or make the "
        "folder writable, then rerun the same command: the last good file is kept and the run resumes"
    )


def stale_temporaries(folder: Path) -> list[Path]:
    """The temporary files that interrupted atomic writes left in ``folder`` (a ``kill -9``
    mid-write): safe to remove once no process writes there."""
    return sorted(Path(folder).glob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}"))


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
