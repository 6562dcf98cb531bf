"""dsd.bench: ``python -m dsd.bench.engine --quick`` runs and writes a well-formed result.

Only the structure is checked here; timing belongs in the benchmark itself, never in a test.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dsd.bench import engine as bench
from dsd.bench import probes

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "dsd.bench.engine", "--quick", "--device", "cpu", "--repeats", "2"]
    done = subprocess.run(
        [*command, "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=600
    )
    return done, out


def test_quick_bench_writes_one_json_named_by_device_and_date(quick_run):
    done, out = quick_run
    assert done.returncode == 0, done.stderr[-3000:]
    files = list(out.iterdir())
    assert len(files) == 1, "one result, no temp file left behind"
    assert files[0].name.startswith("engine-cpu-20") and files[0].name.endswith("-quick.json")
    assert f"wrote {files[0]}" in done.stdout


def test_quick_bench_json_has_every_figure(quick_run):
    _, out = quick_run
    result = json.loads(next(out.iterdir()).read_text())
    assert result["schema"] == bench.SCHEMA and result["quick"] is True
    assert result["environment"]["kind"] == "cpu" and result["environment"]["threads"] == 1
    assert set(result["step_time"]) == {"resnet18", "lstm"}
    for steps in result["step_time"].values():
        assert set(steps["median_s"]) == set(bench.VARIANTS)
        assert all(v > 0 for v in steps["median_s"].values())
        keys = (
            "sparse_over_dense",
            "ours_over_torch_prune",
            "sparse_minus_dense_ms",
            "engine_hooks_ms_median",
        )
        for key in keys:
            assert isinstance(steps[key], float)
        assert steps["repeats"] == 2 and steps["mask_held"] is True
        assert steps["engine_hooks_ms_median"] > 0, "the engine's hooks ran inside the timed steps"
        memory = steps["memory"]
        assert memory["pruned_weights"] > 0
        for variant in ("dsd", "torch_prune"):
            assert set(memory[variant]) == {"extra_bytes", "extra_bytes_per_weight", "weight_copies"}
    assert set(result["prune"]) == {"mobilenet_v3_small", "lstm"}
    for cost in result["prune"].values():
        assert cost["weights"] > 0 and cost["largest_tensor_bytes"] > 0 and cost["memory_method"]
        for scope in ("layer", "global"):
            assert len(cost[scope]["seconds"]) == len(cost[scope]["cpu_seconds"]) == 1
            assert cost[scope]["masks_bytes"] > 0
            for key in ("seconds_median", "peak_extra_bytes", "working_bytes", "working_over_largest_tensor"):
                assert isinstance(cost[scope][key], (int, float))
        assert isinstance(cost["global_over_layer"], float)
    assert set(result["passes"]) == {"resnet18", "lstm"}
    for passes in result["passes"].values():
        assert (
            set(passes["cost_in_passes"])
            == set(passes["direct_in_passes"])
            == {"step", "whole", "clip", "trainer", "trainer-accum4"}
        )
        assert all(v > 0 for v in passes["direct_in_passes"].values()), "the engine's own time was read"
        assert passes["masked_pass_ms"] > 0 and passes["mask_held"] is True and passes["target_passes"] == 1.2
    figures = [row["figure"] for row in result["checks"]]
    # per step model: 4 step-time and memory figures, 5 cost-in-passes figures (each with the
    # interval of its median) and the Trainer paths' 2 timed inside the engine; per prune model 4
    assert len(figures) == len(set(figures)) == 2 * (4 + 5 + 2) + 2 * 4
    for row in result["checks"]:
        keys = {"figure", "value", "target", "unit", "pass"}
        assert set(row) in (keys, keys | {"interval"}) and isinstance(row["pass"], bool)
        if "interval" in row:
            low, high = row["interval"]
            assert low <= row["value"] <= high


def test_quick_bench_prints_a_table_with_targets(quick_run):
    done, _ = quick_run
    assert "resnet18: step time, sparse ÷ dense" in done.stdout
    assert "≤ 1.03" in done.stdout and "memory: " in done.stdout
    assert done.stdout.count("PASS") + done.stdout.count("MISS") == 30
    assert done.stdout.count("(95% interval ") == 10
    assert "engine cost per sparse step (with clip_grad_norm_), in masked passes" in done.stdout


def test_memory_accounting_counts_masks_and_prunes_copies():
    # The byte count the bench reports, on a model small enough to count by hand.
    torch.manual_seed(0)
    base = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 8, 3), nn.Flatten(), nn.Linear(8, 5))
    models = {v: copy.deepcopy(base) for v in bench.VARIANTS}
    engine = bench.DSD(models["dsd"], torch.optim.SGD(models["dsd"].parameters(), lr=0.1))
    engine.prune(0.5)
    bench._torch_prune(models["torch_prune"], [t.name for t in engine.tensors], 0.5)
    models["torch_prune"](torch.randn(1, 3, 5, 5))  # its forward pre-hook recomputes the weights
    memory = bench.bytes_held(models, engine)
    weights = 8 * 4 * 9 + 5 * 8
    assert memory["pruned_weights"] == weights
    assert memory["dsd"] == {"extra_bytes": weights, "extra_bytes_per_weight": 1.0, "weight_copies": 0}
    # weight_orig replaces the weight; a float mask and the recomputed weight are extra
    assert memory["torch_prune"]["extra_bytes"] == 8 * weights
    assert memory["torch_prune"]["weight_copies"] == 1


def test_device_kind_and_bad_flags(capsys):
    assert probes.device_kind(torch.device("cpu")) == "cpu"
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "-1"])
    assert "--repeats" in capsys.readouterr().err


# ------------------------------------------------------------------ dsd.bench.loop
def test_loop_bench_gaps_are_the_time_between_a_step_and_the_next_forward():
    from dsd.bench.loop import Timings

    timings = Timings(starts=[0.0, 1.0, 2.5, 4.0], ends=[0.9, 2.2, 3.9, 5.0], warmup=1)
    assert timings.periods() == [1.5, 1.5]
    assert timings.gaps() == pytest.approx([0.3, 0.1])


def test_loop_bench_runs_and_writes_its_figures(tmp_path):
    from dsd.bench import loop as bench_loop

    args = ["--device", "cpu", "--rounds", "1", "--steps", "6", "--image", "16", "--batch", "4"]
    assert bench_loop.main([*args, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "loop-overhead-cpu.json").read_text())
    gaps = result["mean_gap_s"]
    assert set(gaps) == {"bare_loop", "dsd_loop_dense", "dsd_loop_sparse"}
    assert all(value >= 0 for value in gaps.values())
    assert all(value > 0 for value in result["median_step_s"].values())
    assert result["target_overhead_fraction"] == 0.02
    assert result["loop_overhead_fraction"] < 1


# ------------------------------------------------------------------ dsd.bench.fsdp
def test_fsdp_bench_runs_on_two_ranks_and_writes_its_figures(tmp_path):
    command = [sys.executable, "-m", "dsd.bench.fsdp", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    files = list(tmp_path.iterdir())
    assert (
        len(files) == 1 and files[0].name.startswith("fsdp-cpu-20") and files[0].name.endswith("-quick.json")
    )
    result = json.loads(files[0].read_text())
    assert result["world_size"] == 2 and result["backend"] == "gloo"
    steps, prune = result["step_time"], result["prune"]
    assert all(v > 0 for v in steps["median_s"].values()) and isinstance(steps["sparse_over_dense"], float)
    assert steps["engine_hooks_ms_median"] > 0 and steps["phase_check_ms_median"] > 0, (
        "timed inside the steps"
    )
    assert prune["masks_equal_single_process"] is True
    traffic = prune["collectives"]
    assert traffic["calls"] == sum(traffic["by_name"].values()) > 0
    assert 0 < traffic["bytes"] < prune["weights_bytes"], "prune() moved counts, not the weights"
    assert len(prune["sharded_s"]) == len(prune["single_s"]) == 1 and prune["sharded_over_single"] > 0
    assert "step time, sparse ÷ dense" in done.stdout and "per prune():" in done.stdout
