"""Atomic writes: the old file or the new one, never half of one; readable like any other file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dsd.files import atomic_write_text


def test_an_atomic_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "out" / "table.md"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["table.md"]  # no temporary left behind


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "table.md"
    atomic_write_text(path, "old")
    with pytest.raises(AttributeError):  # the text cannot be encoded: nothing is replaced
        atomic_write_text(path, None)  # type: ignore[arg-type]
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_written_files_follow_the_umask_not_owner_only(tmp_path: Path) -> None:
    """Temporary files are created owner-only; results are meant to be shared like any file."""
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.html", "<p>")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644
