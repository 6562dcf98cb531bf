"""The toy study as separate processes: ``dsd-suite`` commands (and launched jobs) on a shared
``--results``, and how their runs are compared with one study run in this process.

Used by the lock tests (two ``run`` commands at once, a killed one) and the launcher tests
(SLURM jobs, local processes side by side): every run of theirs must end bit-identical to the
same study trained here, sequentially, with ``--deterministic`` on CPU, one thread each.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dsd import records
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from dsd.taskkit.weights import load_final_weights
from tests.run.toy_task import TOY_TASK_ENV, ToyConfig, ToyTask

ROOT = Path(__file__).resolve().parents[2]
#: A toy study small enough for many processes: 8 steps per phase, 2 seeds, mid-run checkpoints.
RECIPE = "D:8steps@0.05 S50%:8steps@0.02 D:8steps@0.005"
LOG_EVERY, CHECKPOINT_EVERY = 2, 3


def toy_flags(step_delay: float, seeds: str = "0,1") -> list[str]:
    """``run toy``'s flags for this study (``step_delay``: seconds slept per step, to watch it)."""
    return [
        "toy", "--seeds", seeds, "--deterministic", "--no-progress", "--recipe", RECIPE,
        "--log-every", str(LOG_EVERY), "--checkpoint-every", str(CHECKPOINT_EVERY),
        "--step-delay", str(step_delay),
    ]  # fmt: skip


def suite_env(**extra: str) -> dict[str, str]:
    """A process that imports this repository, knows the toy task and uses one thread."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **TOY_TASK_ENV, **extra}


def suite(args: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """``dsd-suite ARGS`` in ``cwd``, to its end."""
    return subprocess.run([sys.executable, "-m", "tasks.cli", *args], cwd=cwd, env=suite_env(**env),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def start_suite(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """``dsd-suite ARGS`` in ``cwd`` in the background, its output to ``log``."""
    out = open(log, "w")  # noqa: SIM115 (closed with the process by the caller's wait)
    return subprocess.Popen([sys.executable, "-m", "tasks.cli", *args], cwd=cwd, env=suite_env(),
                            stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def reference_study(results: Path, seeds: tuple[int, ...] = (0, 1)) -> None:
    """The same study trained here, one run after another, on one intra-op thread (as each of
    the processes has). ``step_delay`` is kept out of the runs' hashes, so the folders match."""
    settings = RunConfig(results_dir=results, seeds=list(seeds), deterministic=True, progress=False,
                         log_every=LOG_EVERY, checkpoint_every=CHECKPOINT_EVERY)  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_study(ToyTask(ToyConfig(recipe=RECIPE)), settings)
    finally:
        torch.set_num_threads(threads)


def run_folders(results: Path) -> list[Path]:
    """The run folders of a results folder, relative to it."""
    return sorted(f.path.relative_to(results) for f in records.ResultsFolder.at(results).run_folders())


def without_clock(folder: Path) -> list[dict]:
    lines = records.read_jsonl(folder / records.METRICS_FILE)
    return [{k: v for k, v in line.items() if k not in ("time_s", "samples_per_s")} for line in lines]


def assert_same_runs(reference: Path, other: Path) -> None:
    """Every run of ``reference`` is in ``other``, done, with bit-identical weights, the same
    results and the same ``metrics.jsonl`` lines (no step logged twice or lost), and no run of
    ``other`` holds a lock or a checkpoint any more."""
    runs = run_folders(reference)
    assert runs and runs == run_folders(other), (runs, run_folders(other))
    for run in runs:
        ours, theirs = reference / run, other / run
        folder = records.RunFolder(theirs)
        assert folder.is_done, run
        assert not folder.checkpoint.exists() and not folder.lock.exists(), run
        a, b = load_final_weights(ours), load_final_weights(theirs)
        assert all(torch.equal(a[name], b[name]) for name in a), run
        first, second = (json.loads((f / records.RESULT_FILE).read_text()) for f in (ours, theirs))
        assert first["final"] == second["final"] and first["phases"] == second["phases"], run
        assert without_clock(ours) == without_clock(theirs), run


def trained_by(log: str) -> set[str]:
    """The runs a process trained, by the labels of its training lines (``[toy mlp dsd seed0]``)."""
    return set(re.findall(r"^\[(toy mlp [a-z-]+ seed\d+)\] \S+ epoch", log, flags=re.MULTILINE))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
