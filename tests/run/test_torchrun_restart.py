"""torchrun's own restart (``--max-restarts``) survives a worker killed without notice.

Rank 1 of a 2-process study SIGKILLs itself in the middle of an epoch of the DSD run (no handler,
no checkpoint: the OOM killer, a preemption without grace time). torchrun stops rank 0, starts
both again, and the study resumes from its last mid-epoch checkpoint (``--checkpoint-every``).
On CPU with ``--deterministic`` every run ends bit-identical to an uninterrupted study's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from dsd import records as runfolder
from dsd.taskkit.weights import load_final_weights

ROOT = Path(__file__).resolve().parents[2]
#: The toy on 2 ranks: 5 steps per epoch; baseline steps 1-10, DSD 11-30 of each process. Step 17
#: is the DSD run's 7th, after its mid-epoch checkpoint at step 6 (every 3) and before step 9.
KILL_STEP = 17


def torchrun(results: Path, kill_step: int) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node=2 --max-restarts=1 -m tests.run.torchrun_study``."""
    command = [
        sys.executable, "-m", "torch.distributed.run",  # what the torchrun script runs
        "--standalone", "--nproc_per_node=2", "--max-restarts=1", "--monitor-interval=0.2",
        "-m", "tests.run.torchrun_study", str(results), str(kill_step),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def without_clock(folder: Path) -> list[dict]:
    lines = runfolder.read_jsonl(folder / runfolder.METRICS_FILE)
    return [{k: v for k, v in line.items() if k not in ("time_s", "samples_per_s")} for line in lines]


def test_a_sigkilled_worker_is_restarted_by_torchrun_and_the_study_ends_bit_identical(tmp_path: Path) -> None:
    reference = torchrun(tmp_path / "reference", 0)
    assert reference.returncode == 0, reference.stderr[-3000:]
    killed = torchrun(tmp_path / "killed", KILL_STEP)
    log = killed.stdout + killed.stderr
    assert killed.returncode == 0, log[-3000:]
    assert "exitcode: -9" in log  # rank 1 died of SIGKILL in the first attempt ...
    assert "[toy mlp dsd seed0] resumed at step 6 (phase S50%, epoch 1.20)" in log  # ... mid-epoch
    runs = sorted((tmp_path / "reference" / "runs").glob("*/*/seed0"))
    assert len(runs) == 3
    for ours in runs:
        theirs = tmp_path / "killed" / ours.relative_to(tmp_path / "reference")
        assert runfolder.RunFolder(theirs).is_done and not (theirs / runfolder.CHECKPOINT_FILE).exists()
        a, b = load_final_weights(ours), load_final_weights(theirs)
        assert all(torch.equal(a[name], b[name]) for name in a), ours.parent.name
        first, second = (json.loads((f / runfolder.RESULT_FILE).read_text()) for f in (ours, theirs))
        assert first["final"] == second["final"] and first["phases"] == second["phases"]
        assert without_clock(ours) == without_clock(theirs)  # no step logged twice or lost
