"""Where a study writes, checked before anything is built: a folder (or one that can be made),
writable, with room for what the study will write.

A results folder that is a file, read-only, or on a full disk would otherwise fail at the first
checkpoint, after the data was prepared (on ImageNet, a verify pass over 1.28 M images). These
checks read the disk and write nothing, so ``plan`` makes them too. A write that fails later
anyway (a quota reached mid-run) is a ``WriteError`` naming the file (``dsd.files``).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from dsd.errors import ConfigError

#: Bytes per parameter a run keeps on disk per file: fp32 weights.
BYTES_PER_PARAMETER = 4
#: Files of a run the size of its weights or more: the resume checkpoint (weights, about two
#: optimizer states' worth, and the masks) counts for three, and each phase's weights for one.
CHECKPOINT_WEIGHTS = 3


def check_results_folder(folder: Path, flag: str = "--results") -> Path:
    """The folder results go to, refused (``ConfigError`` naming ``flag``) when it is a file, or
    cannot be made or written; returns the existing folder it is in or under."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{flag} {folder}: a file is there, not a folder; name a folder for the results")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ConfigError(f"{flag} {folder}: {existing} is a file, so the folder cannot be made there")
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise ConfigError(
            f"{flag} {folder}: {existing} is on a read-only file system; name a writable folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "written" if existing == folder else "made"
        raise ConfigError(
            f"{flag} {folder}: {existing} is not writable, so it cannot be {what}; name a writable folder"
        )
    return existing


def study_bytes(parameters: int, phases_per_run: Sequence[int]) -> int:
    """What a study of runs with ``phases_per_run`` phases writes at most, for a model of
    ``parameters`` parameters: each run's weights per phase and its resume checkpoint."""
    per_weights = parameters * BYTES_PER_PARAMETER
    return sum((phases + CHECKPOINT_WEIGHTS) * per_weights for phases in phases_per_run)


def warn_if_short(folder: Path, needed: int | None, flag: str = "--results") -> None:
    """A warning line when the disk under ``folder`` has less free space than ``needed`` bytes."""
    if not needed:
        return
    free = shutil.disk_usage(check_results_folder(folder, flag)).free
    if free < needed:
        print(
            f"warning: {flag} {folder}: {free / 2**30:.1f} GiB free, and the study may write up to "
            f"{needed / 2**30:.1f} GiB (weights of every phase and a checkpoint per run)",
            file=sys.stderr,
        )
