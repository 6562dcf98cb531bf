"""``--tensorboard``: every run's scalars and phase boundaries as TensorBoard events beside its
records, read back with TensorBoard's own reader; a crashed and resumed run shows no step twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dsd import files
from dsd import records as runfolder
from dsd.records.layout import TENSORBOARD_FOLDER as FOLDER
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from tests.run.toy_task import ToyConfig, ToyTask

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

#: 4 steps per epoch: the baseline trains steps 1-8, DSD 9-24, the dense control 25-40.
CONFIG = ToyConfig(train_samples=64)
SCALARS = {
    "loss/train", "lr", "throughput/samples_per_s", "sparsity/masks", "sparsity/weights",
    "val/err", "val/loss", "test/err", "test/loss", "phase/index", "phase/target_sparsity",
}  # fmt: skip


def events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    reader = EventAccumulator(str(folder / FOLDER))
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A study with TensorBoard, its DSD run crashed mid-epoch (after a log line that its last
    checkpoint does not cover) and resumed."""
    results = tmp_path_factory.mktemp("tensorboard")
    run = RunConfig(results_dir=results, log_every=2, progress=False, deterministic=True, tensorboard=True)
    task = ToyTask(CONFIG)
    task.inject = {8 + 7: "crash"}  # DSD's step 7: logged at step 6, last checkpoint at step 4
    with pytest.raises(RuntimeError, match="injected crash"):
        run_study(task, run)
    return {files.read_json(f / "config.json")["method"]: f for f in run_study(ToyTask(CONFIG), run)}


def test_every_scalar_is_written_beside_the_records(runs: dict[str, Path]) -> None:
    for method, folder in runs.items():
        scalars = events(folder)
        assert set(scalars) >= SCALARS, (method, sorted(SCALARS - set(scalars)))
        for tag, points in scalars.items():
            steps = [step for step, _ in points]
            assert steps == sorted(set(steps)), (method, tag, steps)  # none twice after the resume


def test_the_curves_are_the_records_and_branches_continue_the_baseline(runs: dict[str, Path]) -> None:
    for method, offset in (("baseline", 0), ("dsd", 8), ("dense-control", 8)):
        lines = runfolder.read_jsonl(runs[method] / runfolder.METRICS_FILE)
        scalars = events(runs[method])
        train = [line for line in lines if line["kind"] == "train"]
        assert [step for step, _ in scalars["loss/train"]] == [offset + line["step"] for line in train]
        assert [v for _, v in scalars["loss/train"]] == pytest.approx([line["train_loss"] for line in train])
        assert [v for _, v in scalars["lr"]] == pytest.approx([line["lr"] for line in train])
        val = [line for line in lines if line["split"] == "val"]
        assert scalars["val/err"] == [
            (offset + line["step"], pytest.approx(line["metrics"]["err"])) for line in val
        ]
    dsd = events(runs["dsd"])
    assert dsd["phase/index"] == [(9, 1), (16, 1), (17, 2), (24, 2)]  # first and last step of each phase
    assert dsd["phase/target_sparsity"] == [(9, 0.5), (16, 0.5), (17, 0.0), (24, 0.0)]
    sparse = [(s, v) for s, v in dsd["sparsity/masks"] if s <= 16]
    assert sparse and all(v == 0.5 for _, v in sparse)
    assert all(v >= 0.5 for s, v in dsd["sparsity/weights"] if s <= 16)  # masked weights are zeros
    assert all(v < 0.5 for s, v in dsd["sparsity/weights"] if s > 16)  # re-dense: they learn again
    assert events(runs["dense-control"])["sparsity/masks"][-1][1] == 0.0
    assert events(runs["baseline"])["phase/index"] == [(1, 0), (8, 0)]
