"""Mid-epoch checkpoints: every N steps (``--checkpoint-every``) or by wall time
(``--checkpoint-minutes``), so a killed run loses minutes, not an epoch, and resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsd import files
from dsd import records as runfolder
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from dsd.run.training import clock as clocklib
from dsd.run.training.clock import CheckpointClock
from dsd.taskkit.weights import load_final_weights
from tests.run.toy_task import ToyConfig, ToyTask

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

#: 8 steps per epoch: the baseline trains steps 1-16 of the study, DSD 17-48, the control 49-80.
CONFIG = ToyConfig(train_samples=128)


def study(results: Path, task: ToyTask, **settings: object) -> dict[str, Path]:
    run = RunConfig(results_dir=results, log_every=2, progress=False, deterministic=True, **settings)
    return {files.read_json(f / "config.json")["method"]: f for f in run_study(task, run)}


def test_a_crash_mid_epoch_resumes_from_the_last_step_checkpoint_and_ends_identical(tmp_path: Path) -> None:
    reference = study(tmp_path / "reference", ToyTask(CONFIG))
    task = ToyTask(CONFIG)
    task.inject = {16 + 6: "crash"}  # DSD's step 6, in its first epoch of 8
    with pytest.raises(RuntimeError, match="injected crash"):
        study(tmp_path / "crashed", task, checkpoint_every=5)
    dsd = next((tmp_path / "crashed" / "runs").glob("*/dsd-*/seed0"))
    position = torch.load(dsd / runfolder.CHECKPOINT_FILE, weights_only=True)["position"]
    assert (position["step"], position["epoch_batch"]) == (5, 5)  # not the start of the run: mid-epoch
    resumed = study(tmp_path / "crashed", ToyTask(CONFIG), checkpoint_every=5)
    for method, folder in reference.items():
        ours, theirs = load_final_weights(resumed[method]), load_final_weights(folder)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), method
        a, b = (files.read_json(f / "result.json") for f in (resumed[method], folder))
        assert a["final"] == b["final"] and a["phases"] == b["phases"]


def test_the_clock_counts_steps_or_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(clocklib.time, "monotonic", lambda: now[0])
    every = CheckpointClock(every=4, minutes=10, log_every=1, distributed=False)
    assert [step for step in range(1, 13) if every.due(step)] == [4, 8, 12]
    by_time = CheckpointClock(every=0, minutes=10, log_every=1, distributed=False)
    now[0] += 599
    assert not by_time.due(1)
    now[0] += 1
    assert by_time.due(2)  # ten minutes since the clock started
    by_time.reset()  # a checkpoint was written
    assert not by_time.due(3)
    never = CheckpointClock(every=0, minutes=0, log_every=1, distributed=False)
    now[0] += 10**6
    assert not never.due(4)
