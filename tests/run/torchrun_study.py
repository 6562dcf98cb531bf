"""The toy study as a torchrun worker, for ``test_torchrun_restart.py``.

    torchrun --standalone --nproc_per_node=2 --max-restarts=1 -m tests.run.torchrun_study RESULTS KILL

``KILL`` > 0: in the first attempt (torchrun's ``TORCHELASTIC_RESTART_COUNT`` 0), rank 1 sends
itself SIGKILL at that training step of its process (steps counted over the whole study): no
handler runs and nothing is saved, as when the OOM killer or a preemption without notice strikes.
torchrun then stops the other worker and starts both again; the study must resume from its last
mid-epoch checkpoint (``checkpoint_every``) and finish as an uninterrupted one would.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from tests.run.toy_task import ToyTask

#: Mid-epoch checkpoints every 3 optimizer steps (an epoch of the toy on 2 ranks is 5 steps).
CHECKPOINT_EVERY = 3


def main(results: Path, kill_step: int) -> None:
    torch.set_num_threads(1)
    task = ToyTask()
    if kill_step and os.environ["RANK"] == "1" and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
        task.inject = {kill_step: "kill"}
    run = RunConfig(
        results_dir=results,
        device="cpu",
        progress=False,
        log_every=2,
        deterministic=True,
        checkpoint_every=CHECKPOINT_EVERY,
    )
    run_study(task, run)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
