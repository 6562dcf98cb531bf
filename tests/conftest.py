"""Shared test fixtures.

``single_thread``: tiny models run fastest on one intra-op thread; with two OpenMP threads on a
shared, oversubscribed CPU their spin-waits make a tiny training step up to ~50x slower. Modules
opt in with ``pytestmark = pytest.mark.usefixtures("single_thread")``.

``place``: an empty working folder with no dataset variables set, for command-line tests.

``toy_reference``: the toy study of the lock and launcher tests, trained once per session.

``read_only_folder``: a folder nothing may be written to. Root writes through any mode bits, so
as root (CI) it is a read-only tmpfs mounted for the test; otherwise a folder of mode 0555.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, no dataset variables: every default path lands in ``tmp_path``."""
    for name in ("IMAGENET_DIR", "FLICKR8K_DIR", "WSJ_DIR", "LIBRISPEECH_DIR", "DSD_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"root cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture(scope="session")
def toy_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy study that the lock and launcher tests run as separate processes, trained here
    in order (``tests.run.suite_process``): what every other way of running it must give."""
    from tests.run.suite_process import reference_study

    results = tmp_path_factory.mktemp("toy-reference")
    reference_study(results)
    return results
