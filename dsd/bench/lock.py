"""What a run's lock costs: taking it, one heartbeat, releasing it, timed on a folder.

    python -m dsd.bench.lock [--folder /shared/results/bench-lock] [--rounds 500] [--run-seconds 60]

Every run a study trains takes its lock once, beats every ``heartbeat`` seconds while it trains
(30 s by default) and releases it once (``dsd.run.lock``). So a run of ``T`` seconds pays
``acquire + release + (T / heartbeat) x beat``, all of it file operations: the figure that
matters is that cost against ``T``. Give ``--folder`` on the shared file system the results live
on (NFS, Lustre), where each operation is a round trip to the server; the default is a temporary
folder on this machine. The heartbeat runs on a thread of its own, so its cost is spent beside
the training, not inside a step; it is counted in full anyway.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dsd.records import RunFolder
from dsd.records.lock import DEFAULT_STALE_S
from dsd.run.lock import RunLock, default_heartbeat


def time_lock(folder: Path, rounds: int) -> dict[str, float]:
    """Median seconds of ``acquire``, one ``beat`` and ``release`` over ``rounds`` rounds."""
    run = RunFolder(folder / "run")
    acquire, beat, release = [], [], []
    for _ in range(rounds):
        lock = RunLock(run, heartbeat_s=3600.0)  # the thread sleeps; beats are timed here
        start = time.perf_counter()
        assert lock.acquire() is None
        acquire.append(time.perf_counter() - start)
        start = time.perf_counter()
        lock.beat()
        beat.append(time.perf_counter() - start)
        start = time.perf_counter()
        lock.release()
        release.append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in
            (("acquire", acquire), ("beat", beat), ("release", release))}  # fmt: skip


def per_run(costs: dict[str, float], run_seconds: float, heartbeat_s: float) -> float:
    """Seconds of lock work in a run of ``run_seconds``."""
    return costs["acquire"] + costs["release"] + (run_seconds / heartbeat_s) * costs["beat"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=None, help="where to time it (default: a temp folder)")
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--run-seconds", type=float, default=60.0,
                        help="a run's wall time to set the cost against (default: 60)")  # fmt: skip
    args = parser.parse_args(argv)
    heartbeat = default_heartbeat(DEFAULT_STALE_S)
    with tempfile.TemporaryDirectory(dir=args.folder) as scratch:
        costs = time_lock(Path(scratch), args.rounds)
    total = per_run(costs, args.run_seconds, heartbeat)
    shown = ", ".join(f"{name} {seconds * 1e6:.0f} us" for name, seconds in costs.items())
    print(f"run lock ({args.rounds} rounds, {args.folder or 'a temporary folder'}): {shown}")
    print(f"a {args.run_seconds:g} s run (a beat every {heartbeat:g} s): {total * 1e3:.2f} ms of lock work, "
          f"{total / args.run_seconds:.2e} of its wall time")  # fmt: skip


if __name__ == "__main__":
    main()
