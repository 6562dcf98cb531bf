"""A 2-process DDP study (gloo, CPU): exact evaluation, one writer, the same result files."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from dsd import files
from dsd import records as runfolder
from dsd.records.layout import RunFolder
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from dsd.taskkit.weights import load_final_weights
from tests.run.toy_task import ToyTask


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, results: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    run_study(ToyTask(), RunConfig(results_dir=Path(results), device="cpu", progress=False, log_every=3))
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    results = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(results)), nprocs=2, join=True)
    folders = sorted(results.glob("runs/*/*/seed0"))
    return {files.read_json(f / "config.json")["method"]: f for f in folders}


def test_ddp_study_finishes_every_method_once(ddp_runs: dict[str, Path]) -> None:
    assert set(ddp_runs) == {"baseline", "dsd", "dense-control"}
    for folder in ddp_runs.values():
        assert RunFolder(folder).is_done
        config = files.read_json(folder / "config.json")
        assert config["world_size"] == 2
        lines = (folder / runfolder.METRICS_FILE).read_text().splitlines()
        assert len(lines) == len(set(lines))  # one writer: no line twice


def test_ddp_evaluation_counts_every_sample_exactly_once(ddp_runs: dict[str, Path]) -> None:
    task = ToyTask()
    sizes = {split: len(ds) for split, ds in task.eval_datasets().items()}
    for folder in ddp_runs.values():
        for line in runfolder.read_jsonl(folder / runfolder.METRICS_FILE):
            if line["split"] in sizes:
                assert line["metrics"]["count"] == sizes[line["split"]]  # 50 and 37: uneven shards


def test_ddp_metrics_equal_a_single_process_evaluation(ddp_runs: dict[str, Path]) -> None:
    task = ToyTask()
    model = task.build_model()
    for folder in ddp_runs.values():
        model.load_state_dict(load_final_weights(folder))
        model.eval()
        final = files.read_json(folder / "result.json")["final"]
        for split, dataset in task.eval_datasets().items():
            x = torch.stack([dataset[i][0] for i in range(len(dataset))])
            y = torch.stack([dataset[i][1] for i in range(len(dataset))])
            with torch.no_grad():
                ours = task.compute_metrics(split, task.eval_batch(model, (x, y), split))
            assert ours["err"] == final[split]["err"]
            assert ours["loss"] == pytest.approx(final[split]["loss"], rel=1e-5)


def test_ddp_sparse_phase_is_exactly_sparse(ddp_runs: dict[str, Path]) -> None:
    sparse = torch.load(ddp_runs["dsd"] / "phase1.pt", weights_only=True)
    for name in ("0.weight", "3.weight", "5.weight"):
        assert int((sparse[name] == 0).sum()) == round(sparse[name].numel() * 0.5)
