"""The loop and the study on the test-only toy task: end to end, reuse, resume, NaN, start points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dsd import files
from dsd import records as runfolder
from dsd.records.histograms import MOMENTS
from dsd.records.layout import RunFolder
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from dsd.run.training.loop import NonFiniteLossError, RunInterrupted
from dsd.taskkit.weights import load_final_weights
from tests.run.toy_task import ToyConfig, ToyTask

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def study(tmp: Path, task: ToyTask | None = None, **kwargs) -> list[Path]:
    run = RunConfig(results_dir=tmp, log_every=3, progress=False, deterministic=True, **kwargs)
    return run_study(task or ToyTask(), run)


def by_method(folders: list[Path]) -> dict[str, Path]:
    return {files.read_json(f / "config.json")["method"]: f for f in folders}


def metric_lines(folder: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields."""
    lines = runfolder.read_jsonl(folder / runfolder.METRICS_FILE)
    return [{k: v for k, v in line.items() if k not in ("time_s", "samples_per_s")} for line in lines]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One uninterrupted study: the yardstick for every interrupted one."""
    return by_method(study(tmp_path_factory.mktemp("reference")))


def test_study_writes_complete_records(reference: dict[str, Path]) -> None:
    assert set(reference) == {"baseline", "dsd", "dense-control"}
    for method, folder in reference.items():
        assert RunFolder(folder).is_done
        assert not (folder / runfolder.CHECKPOINT_FILE).exists()
        config = files.read_json(folder / "config.json")
        result = files.read_json(folder / "result.json")
        assert config["dataset"] == "toy clusters stand-in"
        assert result["method"] == method and set(result["final"]) == {"val", "test"}
        assert result["final"]["test"]["count"] == 37  # every sample scored exactly once
        assert (folder / "predictions" / "test.txt").read_text().count("\n") == 37
        assert folder.name == "seed0" and folder.parent.name.startswith(method + "-")
    dsd = files.read_json(reference["dsd"] / "result.json")
    control = files.read_json(reference["dense-control"] / "result.json")
    assert [p["label"] for p in dsd["phases"]] == ["S50%", "D"]
    assert [p["label"] for p in control["phases"]] == ["D", "D"]
    assert [p["index"] for p in dsd["phases"]] == [1, 2]
    assert [(p["length"], p["lr"], p["steps"]) for p in dsd["phases"]] == [
        (p["length"], p["lr"], p["steps"]) for p in control["phases"]
    ]
    hist = files.read_json(reference["dsd"] / "histograms.json")
    assert set(hist["moments"]) == set(MOMENTS)
    counts = hist["moments"]
    n = sum(counts["dense"])
    assert sum(counts["redense_start"]) == n  # all weights: the restored zeros make a spike
    assert sum(counts["pruned"]) == sum(counts["sparse_trained"]) == n // 2  # kept weights only


def test_sparse_phase_weights_are_exactly_sparse_and_redense_moves_them(reference: dict[str, Path]) -> None:
    sparse = torch.load(reference["dsd"] / "phase1.pt", weights_only=True)
    final = torch.load(reference["dsd"] / "phase2.pt", weights_only=True)
    for name in ("0.weight", "3.weight", "5.weight"):  # the MLP's linear weights (all prunable)
        assert int((sparse[name] == 0).sum()) == round(sparse[name].numel() * 0.5)
        revived = final[name][sparse[name] == 0] != 0
        assert revived.float().mean() > 0.9  # pruned weights restarted from zero and learned
    assert (sparse["0.bias"] != 0).all()  # biases are never pruned


def test_branches_start_from_the_baseline(reference: dict[str, Path]) -> None:
    baseline = load_final_weights(reference["baseline"])
    for method in ("dsd", "dense-control"):
        config = files.read_json(reference[method] / "config.json")
        assert config["baseline_run"].endswith(
            str(reference["baseline"].relative_to(reference["baseline"].parents[3]))
        )
    first = runfolder.read_jsonl(reference["dense-control"] / runfolder.METRICS_FILE)[0]
    assert first["phase"] == 1 and first["epoch"] > 0
    assert baseline.keys() == load_final_weights(reference["dsd"]).keys()


def test_finished_runs_are_reused_not_retrained(tmp_path: Path) -> None:
    first = study(tmp_path)
    stamps = {f: (f / "result.json").stat().st_mtime_ns for f in first}
    task = ToyTask()
    again = study(tmp_path, task)
    assert again == first
    assert task.steps == 0  # nothing was trained
    assert {f: (f / "result.json").stat().st_mtime_ns for f in again} == stamps


def test_changing_the_recipe_keeps_the_baseline(tmp_path: Path) -> None:
    first = by_method(study(tmp_path))
    task = ToyTask(ToyConfig(recipe="D:2@0.05 S30%:2@0.02 D:2@0.005 decay=step:1:0.5"))
    second = by_method(study(tmp_path, task))
    assert second["baseline"] == first["baseline"]
    assert second["dsd"] != first["dsd"]
    assert task.steps == 2 * 20  # only the two branches trained


# Training steps of the whole study (10 per epoch): baseline 1-20; dsd 21-40 (S50%), 41-60 (D);
# dense control 61-100.
INTERRUPTIONS = {
    "crash in baseline": {14: "crash"},
    "crash in dsd S phase": {27: "crash"},
    "crash in dsd D phase": {50: "crash"},
    "crash in control": {75: "crash"},
    "sigterm mid-epoch in S phase": {24: "sigterm"},
    "sigterm mid-epoch in re-dense": {53: "sigterm"},
}


@pytest.mark.parametrize("inject", INTERRUPTIONS.values(), ids=INTERRUPTIONS.keys())
def test_resume_after_interruption_equals_uninterrupted(
    tmp_path: Path, reference: dict[str, Path], inject: dict[int, str]
) -> None:
    task = ToyTask()
    task.inject = dict(inject)
    with pytest.raises((RuntimeError, RunInterrupted)):
        study(tmp_path, task)
    resumed = by_method(study(tmp_path))
    for method, folder in reference.items():
        assert resumed[method].relative_to(tmp_path) == folder.relative_to(folder.parents[3])
        ours, theirs = load_final_weights(resumed[method]), load_final_weights(folder)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), method
        assert metric_lines(resumed[method]) == metric_lines(folder), method
        a, b = (files.read_json(f / "result.json") for f in (resumed[method], folder))
        assert a["final"] == b["final"] and a["phases"] == b["phases"]
    assert files.read_json(resumed["dsd"] / "histograms.json") == files.read_json(
        reference["dsd"] / "histograms.json"
    )


def test_sigterm_writes_a_mid_epoch_checkpoint(tmp_path: Path) -> None:
    task = ToyTask()
    task.inject = {24: "sigterm"}
    with pytest.raises(RunInterrupted, match="rerun the same command to resume"):
        study(tmp_path, task)
    dsd = next((tmp_path / "runs" / "toy-mlp").glob("dsd-*/seed0"))
    state = torch.load(dsd / runfolder.CHECKPOINT_FILE, weights_only=True)
    assert state["position"]["step"] == 4 and state["position"]["epoch_batch"] == 4
    assert state["engine"]["phase"] == "sparse"
    assert not RunFolder(dsd).is_done


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    task = ToyTask()
    task.inject = {53: "nan"}  # dsd run, re-dense phase, the run's step 33 (epoch 3.3)
    with pytest.raises(NonFiniteLossError, match=r"phase D .*epoch 3\.30, step 33"):
        study(tmp_path, task)
    dsd = next((tmp_path / "runs" / "toy-mlp").glob("dsd-*/seed0"))
    state = torch.load(dsd / runfolder.CHECKPOINT_FILE, weights_only=True)
    assert state["position"]["step"] == 30  # end of the run's epoch 3: the last good state
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not RunFolder(dsd).is_done


def test_start_from_a_checkpoint_evaluates_it_as_the_baseline(
    tmp_path: Path, reference: dict[str, Path]
) -> None:
    start = tmp_path / "start.pt"
    torch.save({"model": load_final_weights(reference["baseline"])}, start)
    task = ToyTask()
    folders = by_method(study(tmp_path, task, start=str(start), methods=["baseline", "dsd"]))
    baseline = files.read_json(folders["baseline"] / "result.json")
    assert baseline["phases"] == [] and baseline["start"].startswith("file:")
    assert baseline["final"] == files.read_json(reference["baseline"] / "result.json")["final"]
    assert task.steps == 40  # only the dsd branch trained (S and D, 2 epochs of 10 steps each)
    assert "dense-control" not in folders


def test_start_checkpoint_of_another_architecture_is_refused_clearly(tmp_path: Path) -> None:
    start = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), start)
    with pytest.raises(
        ValueError, match=r"start checkpoint .*other\.pt does not fit the model .*missing .*unexpected"
    ):
        study(tmp_path, start=str(start))
    assert not (tmp_path / "runs").exists()  # refused before any run folder was made


def test_unknown_method_and_bad_recipes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        study(tmp_path, methods=["dsdsd"])
    with pytest.raises(ValueError, match="must start with a dense phase"):
        study(tmp_path, ToyTask(ToyConfig(recipe="S50%:1@0.1 D:1@0.1")))
    with pytest.raises(ValueError, match="needs a sparse phase"):
        study(tmp_path, ToyTask(ToyConfig(recipe="D:1@0.1 D:1@0.1")))


def test_metrics_lines_follow_the_record_format(reference: dict[str, Path]) -> None:
    lines = runfolder.read_jsonl(reference["dsd"] / runfolder.METRICS_FILE)
    kinds = {line["kind"] for line in lines}
    assert kinds == {"train", "epoch", "phase_end"}
    for line in lines:
        assert {"phase", "phase_label", "epoch", "step", "split", "metrics", "lr", "sparsity"} <= set(line)
    sparse_train = [line for line in lines if line["kind"] == "train" and line["phase_label"] == "S50%"]
    assert sparse_train and all(line["sparsity"] == 0.5 for line in sparse_train)
    assert json.dumps(lines)  # plain JSON throughout


def test_data_loader_workers_default_to_none_on_cpu_and_share_the_cores_on_gpus(monkeypatch):
    """On CPU the training threads already use every core; on GPUs the loader gets them."""
    from dsd.taskkit import environment as train

    monkeypatch.setattr(train.os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    assert train.default_workers(-1, 1, "cpu") == 0
    assert train.default_workers(-1, 1, torch.device("cuda", 0)) == 8  # capped at 8
    assert train.default_workers(-1, 4, "cuda") == 3  # 16 cores shared by 4 ranks, one for the rank
    assert train.default_workers(2, 1, "cpu") == 2  # asked for: honoured


class ThreadsSeen(ToyTask):
    """The toy task, noting the intra-op thread count each run builds its model under."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.threads_seen: list[int] = []

    def build_model(self) -> torch.nn.Module:
        self.threads_seen.append(torch.get_num_threads())
        return super().build_model()


def test_threads_sets_each_runs_intra_op_threads(tmp_path: Path) -> None:
    """``--threads N``: every run trains on N intra-op threads whatever the process had, so two
    launchers (or machines) that give a run different cores still compute the same bits."""
    before = torch.get_num_threads()
    task = ThreadsSeen(ToyConfig())
    try:
        torch.set_num_threads(2)
        study(tmp_path / "one", task, threads=1)
        assert task.threads_seen and set(task.threads_seen) == {1}
    finally:
        torch.set_num_threads(before)
