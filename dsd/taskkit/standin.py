"""Building a stand-in dataset once, atomically, even when several processes try at once.

Every task's stand-in is a folder generated on the fly under the cache folder. Two things must
never happen to it: a half-written folder that a later run mistakes for a finished one (a build
killed by Ctrl-C, a full disk), and two processes (DDP ranks, two studies started together)
tripping over each other's files. So a stand-in is built in a fresh hidden folder beside its
destination and renamed into place in one ``os.replace``, which either installs the whole folder
or nothing. If another process finished first, the rename fails and its copy is kept: builds are
deterministic, so both copies are the same bytes. Whatever happens, the hidden folder goes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from dsd.errors import DataError


def build_once(final: Path, build: Callable[[Path], None], is_complete: Callable[[Path], bool]) -> Path:
    """``final``, built first by ``build`` unless ``is_complete(final)`` already holds.

    ``build(folder)`` writes the whole stand-in into ``folder``, an empty folder beside ``final``
    (same file system, so the rename is atomic; its name differs from ``final``'s, so the build
    must not depend on it). ``is_complete`` says whether a folder holds a finished build (usually:
    its last-written file exists). Returns ``final``.
    """
    final = Path(final)
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        staging = scratch / final.name  # made with the usual permissions (mkdtemp's are 0700)
        staging.mkdir()
        build(staging)
        try:
            os.replace(staging, final)
        except OSError as err:
            if not is_complete(final):  # not a concurrent builder's finished copy
                raise DataError(
                    f"{final} exists but holds no finished build ({err.strerror}); delete it and run again"
                ) from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final
