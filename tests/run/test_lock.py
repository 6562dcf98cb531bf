"""Run locks: one process at a time trains a run folder, and a holder that is gone is replaced.

The lock itself (taken, refused with its holder's name, kept fresh, taken over when its holder
died here or went silent elsewhere, never taken from a live holder), then the whole command line:
two identical ``run`` commands at once on one ``--results`` train each run once, and a ``run``
killed without notice leaves a lock the next one takes over, ending bit-identical to a study run
without either.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsd.files import atomic_write_text
from dsd.records import ResultsFolder, RunFolder
from dsd.records.lock import LockHolder, read_lock
from dsd.run.lock import RunLock
from tests.run.suite_process import (
    ROOT,
    assert_same_runs,
    start_suite,
    suite,
    toy_flags,
    trained_by,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("single_thread")
#: Seconds slept per training step in the command-line tests: a run lasts 0.4-0.8 s plus its
#: evaluations, long enough for a second process to meet its lock.
STEP_DELAY = 0.05
#: Steps of the two-commands test: a run lasts about 10 s, so the second command, which takes
#: seconds to start on a loaded machine, still finds runs nobody holds (at 0.05 s a step the first
#: had trained all but one run before the second looked, once in a full-suite run).
SIDE_BY_SIDE_STEP_DELAY = 0.4


def holder(host: str = "elsewhere", job: str = "", start: int = 0, token: str = "theirs") -> LockHolder:
    return LockHolder(host, 4242, job, time.time(), token, start)


def plant(folder: RunFolder, who: LockHolder, age_s: float = 0.0) -> None:
    """A lock of ``who`` whose last heartbeat was ``age_s`` seconds ago."""
    atomic_write_text(folder.lock, who.to_text())  # whole, as a real taker's link makes it appear
    then = time.time() - age_s
    os.utime(folder.lock, (then, then))


def test_a_held_run_is_refused_with_its_holder_and_free_again_once_released(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    first, second = RunLock(folder), RunLock(folder)
    assert first.acquire() is None
    state = second.acquire()
    assert state is not None and state.alive and state.holder == first.holder
    assert f"pid {os.getpid()}" in state.holder.describe()
    first.release()
    assert not folder.lock.exists()
    assert second.acquire() is None
    second.release()


def test_a_lock_whose_process_died_on_this_host_is_taken_over(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    code = (
        "import sys, time; from pathlib import Path; from dsd.records import RunFolder; "
        "from dsd.run.lock import RunLock; lock = RunLock(RunFolder(Path(sys.argv[1]))); "
        "assert lock.acquire() is None; print('held', flush=True); time.sleep(120)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder_process = subprocess.Popen(
        [sys.executable, "-c", code, str(folder.path)], cwd=ROOT, env=env, stdout=subprocess.PIPE
    )
    assert holder_process.stdout.readline().strip() == b"held"
    held = read_lock(folder)
    assert held is not None and held.alive and held.holder.pid == holder_process.pid
    holder_process.send_signal(signal.SIGKILL)  # no handler runs: the lock stays behind
    holder_process.wait()
    said: list[str] = []
    lock = RunLock(folder, say=said.append)
    assert lock.acquire() is None
    assert f"process {holder_process.pid}" in said[0] and "is dead" in said[0], said
    lock.release()


def test_a_lock_from_another_host_is_taken_over_only_once_its_heartbeat_is_stale(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    plant(folder, holder(), age_s=500)
    state = RunLock(folder, stale_after_s=600).acquire()
    assert state is not None and state.alive and state.holder.token == "theirs"
    plant(folder, holder(), age_s=700)
    said: list[str] = []
    lock = RunLock(folder, stale_after_s=600, say=said.append)
    assert lock.acquire() is None and "heartbeat stopped 11.7 min ago" in said[0], said
    lock.release()


def test_an_earlier_start_of_this_slurm_job_is_gone_but_a_sibling_command_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requeued job finds the lock its killed first start left (same job id, lower restart
    count); two commands in one allocation (same id and count) keep out of each other's way."""
    folder = RunFolder(tmp_path / "run")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    plant(folder, holder(job="77", start=0))
    assert read_lock(folder).alive
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    state = read_lock(folder)
    assert not state.alive and "earlier start of this job (77)" in state.gone


def test_the_heartbeat_keeps_the_lock_fresh_and_learns_of_a_takeover(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    lock = RunLock(folder, stale_after_s=600, heartbeat_s=0.05)
    assert lock.acquire() is None
    old = time.time() - 300
    os.utime(folder.lock, (old, old))
    wait_for(lambda: lock.beats >= 2, 10, "two heartbeats")
    assert read_lock(folder).heartbeat_age_s < 5
    plant(folder, holder(token="usurper"))  # another process took the run over
    wait_for(lambda: bool(lock.lost), 10, "the holder to notice")
    assert "now held by host elsewhere" in lock.lost
    lock.release()
    assert LockHolder.from_text(folder.lock.read_text()).token == "usurper"  # not ours to delete


def test_a_takeover_puts_back_a_fresh_lock_taken_in_between(tmp_path: Path) -> None:
    """Judged stale, then taken by a third process before the move: the move finds another
    token, and the fresh lock stays where it was."""
    folder = RunFolder(tmp_path / "run")
    plant(folder, holder(token="stale"), age_s=700)
    judged = read_lock(folder, stale_after_s=600)
    plant(folder, holder(token="fresh"))
    assert not RunLock(folder)._remove_stale(judged)
    assert LockHolder.from_text(folder.lock.read_text()).token == "fresh"
    assert sorted(p.name for p in folder.path.iterdir()) == ["lock"]


def test_two_identical_run_commands_at_once_train_each_run_once(tmp_path: Path, toy_reference: Path) -> None:
    command = ["run", *toy_flags(SIDE_BY_SIDE_STEP_DELAY), "--results", "results", "--no-tables"]
    first = start_suite(command, tmp_path, tmp_path / "first.log")
    results = ResultsFolder.at(tmp_path / "results")
    wait_for(lambda: any(f.lock.exists() for f in results.run_folders()), 120, "the first run's lock")
    second = start_suite(command, tmp_path, tmp_path / "second.log")  # meets a held run at once
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    logs = [(tmp_path / name).read_text() for name in ("first.log", "second.log")]
    trained = [trained_by(log) for log in logs]
    assert trained[0] and trained[1], logs  # both trained, side by side ...
    assert not trained[0] & trained[1], trained  # ... never the same run
    assert len(trained[0] | trained[1]) == 6
    assert "is being trained by host" in logs[1]
    assert_same_runs(toy_reference, results.root)  # each metrics.jsonl clean, each run bit-identical


def test_a_run_command_killed_mid_run_leaves_a_lock_the_next_one_takes_over(
    tmp_path: Path, toy_reference: Path
) -> None:
    command = ["run", *toy_flags(STEP_DELAY), "--results", "results", "--no-tables"]
    killed = start_suite(command, tmp_path, tmp_path / "killed.log")
    results = ResultsFolder.at(tmp_path / "results")
    dsd = lambda: next((f for f in results.run_folders() if "/dsd-" in f.path.as_posix()), None)  # noqa: E731
    wait_for(lambda: dsd() is not None and dsd().checkpoint.exists(), 120, "the DSD run's first checkpoint")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert read_lock(dsd()) is not None  # left behind, its holder dead
    again = suite(command, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "its lock holder" in again.stderr and f"process {killed.pid} on" in again.stderr
    assert "resumed at step" in again.stderr
    assert_same_runs(toy_reference, results.root)
