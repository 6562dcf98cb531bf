"""Every audio file of a prepared corpus decoded once before training, the verdict cached.

Speech is checked like ImageNet's images: a manifest line whose audio is missing, unreadable
or empty is named before the first training step, not mid-epoch as a decoder's error (and a
missing file is reported as "not found", not as libsndfile's "System error"). Decoding all of
WSJ's SI-284 takes minutes, so the verdict is cached, keyed by every file's path, size and
modification time: a file that changes is decoded again. Preparation (``tasks.wsj.prepare``)
decodes every file it keeps and records the key of its manifests in ``prepared.json``, so a
corpus this suite prepared is not decoded twice.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dsd import files
from dsd.taskkit.environment import available_cores
from tasks.wsj import audio as audiolib

INDEX_FOLDER = "wsj-audio-index"
INDEX_VERSION = 1
NOT_FOUND = "not found"
#: Below this many files the decoding runs in one thread (threads cost more than they save).
PARALLEL_MIN = 200


def check_audio(path: Path) -> str | None:
    """Why the audio at ``path`` cannot be used (``not found``, the decoder's reason, empty), or None."""
    if not Path(path).is_file():
        return NOT_FOUND
    try:
        audiolib.read_audio(Path(path))
    except audiolib.AudioError as err:
        return str(err).removeprefix(f"{path}: ")
    return None


def listing_key(paths: Sequence[Path]) -> str:
    """Hash of every file's path, size and modification time (a missing file counts as -1)."""
    digest = hashlib.sha256(f"audio index v{INDEX_VERSION}\n".encode())
    for path in sorted(os.path.abspath(p) for p in paths):
        try:
            stat = os.stat(path)
            digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\t-1\n".encode())
    return digest.hexdigest()[:20]


def missing(paths: Sequence[Path]) -> list[Path]:
    """The files that are not there (a directory listing's worth of work: no decoding)."""
    return [p for p in paths if not Path(p).is_file()]


def cached_verdict(
    paths: Sequence[Path], cache_dir: Path | None, verified_key: str = ""
) -> dict[str, str] | None:
    """The verdict on exactly these files if known without decoding: ``verified_key`` (what
    preparation recorded) matches, or a cached index does; None otherwise."""
    key = listing_key(paths)
    if verified_key and verified_key == key:
        return {}
    index = _index_path(cache_dir, key) if cache_dir is not None else None
    if index is not None and index.is_file():
        payload = files.read_json(index)
        if payload.get("version") == INDEX_VERSION and payload.get("key") == key:
            return dict(payload["bad"])
    return None


def verify_audio(
    paths: Sequence[Path], cache_dir: Path | None, verified_key: str = "", workers: int = 0
) -> dict[str, str]:
    """Path -> why unusable, for every file of ``paths`` that cannot be used; each file decoded
    once, the verdict cached under ``cache_dir`` (None: not cached)."""
    known = cached_verdict(paths, cache_dir, verified_key)
    if known is not None:
        return known
    workers = workers or available_cores()
    if len(paths) >= PARALLEL_MIN:
        print(f"decoding {len(paths):,} audio files once (the verdict is cached)", file=sys.stderr)
    if workers <= 1 or len(paths) < PARALLEL_MIN:
        verdicts = [check_audio(p) for p in paths]
    else:  # libsndfile decodes outside the GIL
        with ThreadPoolExecutor(max_workers=workers) as pool:
            verdicts = list(pool.map(check_audio, paths))
    bad = {str(p): why for p, why in zip(paths, verdicts, strict=True) if why is not None}
    if cache_dir is not None:
        key = listing_key(paths)
        files.atomic_write_json(
            _index_path(cache_dir, key), {"version": INDEX_VERSION, "key": key, "bad": bad}
        )
    return bad


def describe(bad: dict[str, str], limit: int = 5) -> str:
    shown = [f"{path} ({why})" for path, why in list(bad.items())[:limit]]
    more = f"; and {len(bad) - limit} more" if len(bad) > limit else ""
    return "; ".join(shown) + more


def _index_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / INDEX_FOLDER / f"{key}.json"
