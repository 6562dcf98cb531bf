"""``dsd.taskkit.standin.build_once``: built once, atomically; a concurrent finished build is kept; an
interrupted build leaves nothing behind; a stray unfinished folder is refused with its name."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dsd.errors import DataError, UserError
from dsd.taskkit.standin import build_once

DONE = "done.txt"


def is_complete(folder: Path) -> bool:
    return (folder / DONE).is_file()


def write(folder: Path, text: str = "built") -> None:
    """A small build: a data file, then the completion marker last."""
    (folder / "data").mkdir()
    (folder / "data" / "part.txt").write_text(text)
    (folder / DONE).write_text(text)


def test_builds_once_and_leaves_no_hidden_folder(tmp_path: Path) -> None:
    final = tmp_path / "cache" / "standin-v1"
    calls: list[Path] = []

    def build(folder: Path) -> None:
        calls.append(folder)
        assert folder.is_dir() and not any(folder.iterdir()) and folder.parent.parent == final.parent
        write(folder)

    assert build_once(final, build, is_complete) == final
    assert build_once(final, build, is_complete) == final  # the second call finds it finished
    assert len(calls) == 1 and not calls[0].exists()
    assert (final / "data" / "part.txt").read_text() == "built"
    assert sorted(p.name for p in final.parent.iterdir()) == ["standin-v1"]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert final.stat().st_mode == fresh.stat().st_mode  # not mkdtemp's private 0700


def test_a_concurrent_finished_build_is_kept(tmp_path: Path) -> None:
    final = tmp_path / "standin"

    def build_while_another_finishes(folder: Path) -> None:
        write(folder, "ours")
        final.mkdir()
        write(final, "theirs")  # another process renamed its copy into place meanwhile

    assert build_once(final, build_while_another_finishes, is_complete) == final
    assert (final / DONE).read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["standin"]


def test_two_builders_at_once_both_return_the_finished_folder(tmp_path: Path) -> None:
    final = tmp_path / "standin"
    both_building = threading.Barrier(2, timeout=30)
    results: list[Path] = []

    def build(folder: Path) -> None:
        both_building.wait()  # neither has renamed its copy yet
        write(folder)

    def builder() -> None:
        results.append(build_once(final, build, is_complete))

    threads = [threading.Thread(target=builder) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [final, final] and is_complete(final)
    assert [p.name for p in tmp_path.iterdir()] == ["standin"]


def test_an_interrupted_build_leaves_nothing_half_written(tmp_path: Path) -> None:
    final = tmp_path / "standin"

    def interrupted(folder: Path) -> None:
        (folder / "data").mkdir()
        (folder / "data" / "part.txt").write_text("half")
        raise KeyboardInterrupt("simulated Ctrl-C")

    with pytest.raises(KeyboardInterrupt):
        build_once(final, interrupted, is_complete)
    assert list(tmp_path.iterdir()) == []
    assert build_once(final, write, is_complete) == final  # the next run builds it whole
    assert is_complete(final)


def test_an_unfinished_folder_in_the_way_is_named(tmp_path: Path) -> None:
    final = tmp_path / "standin"
    (final / "leftover").mkdir(parents=True)
    with pytest.raises(DataError, match=r"standin exists but holds no finished build.*delete it") as caught:
        build_once(final, write, is_complete)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert [p.name for p in tmp_path.iterdir()] == ["standin"]
