"""The engine's contract across 2 DDP ranks (gloo, CPU): ZeroRedundancyOptimizer's sharded state,
the ablations' random draws identical on every rank, and one rank calling ``prune()`` alone.

Each scenario runs in two spawned processes that write what they saw to a JSON file per rank; a
hung collective fails the test at the join timeout instead of hanging the suite. The ZeRO and the
one-rank scenarios failed on the engine before this contract (commit 485749c): ZeRO's momentum of
pruned entries survived ``prune()``, and a lone ``prune()`` hung until the 30-minute timeout.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import dsd

WORLD_SIZE = 2
JOIN_TIMEOUT_S = 120


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(12, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _step(ddp: nn.Module, optimizer: torch.optim.Optimizer, rank: int, i: int) -> None:
    gen = torch.Generator().manual_seed(1000 * rank + i)  # each rank its own data shard
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(ddp(torch.randn(8, 12, generator=gen)), torch.randint(0, 3, (8,)))
    loss.backward()
    optimizer.step()


def _zero_scenario(rank: int) -> dict:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    torch.manual_seed(0)
    model = Net()
    ddp = nn.parallel.DistributedDataParallel(model)
    optimizer = ZeroRedundancyOptimizer(
        ddp.parameters(), optimizer_class=torch.optim.SGD, lr=0.1, momentum=0.9
    )
    engine = dsd.DSD(ddp, optimizer)
    for i in range(3):
        _step(ddp, optimizer, rank, i)
    local = optimizer.optim.state  # this rank's shard of the state

    def pruned_momentum(masks: dict[str, torch.Tensor]) -> list[float]:
        """The largest |momentum| of pruned entries of every tensor whose state this rank holds."""
        found = []
        for name, mask in masks.items():
            state = local.get(model.get_parameter(name.removeprefix("module.")), {})
            if "momentum_buffer" in state:
                found.append(state["momentum_buffer"][~mask].abs().max().item())
        return found

    engine.prune(0.5)
    masks = {n: m.clone() for n, m in engine.masks.items()}
    after_prune = pruned_momentum(masks)
    for i in range(3, 6):
        _step(ddp, optimizer, rank, i)
    weights = [
        model.get_parameter(n.removeprefix("module."))[~m].abs().max().item() for n, m in masks.items()
    ]
    engine.redense()
    after_redense = pruned_momentum(masks)
    _step(ddp, optimizer, rank, 6)
    moved = [
        (model.get_parameter(n.removeprefix("module."))[~m] != 0).float().mean().item()
        for n, m in masks.items()
    ]
    return {
        "held_here": len(after_prune),
        "after_prune": after_prune,
        "pruned_weights": weights,
        "after_redense": after_redense,
        "moved": moved,
    }


def _ablation_scenario(rank: int) -> dict:
    torch.manual_seed(0)
    model = Net()
    ddp = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    engine = dsd.DSD(ddp, optimizer)
    _step(ddp, optimizer, rank, 0)
    torch.manual_seed(100 + rank)  # the global RNG differs between ranks: the draws must not use it
    engine.prune(0.5, criterion="random", generator=torch.Generator().manual_seed(7))
    masks = {n: m.clone() for n, m in engine.masks.items()}
    _step(ddp, optimizer, rank, 1)
    engine.redense(restart="reinit", generator=torch.Generator().manual_seed(8))
    return {
        "masks": {n: m.flatten().int().tolist() for n, m in masks.items()},
        "reinit": {n: model.get_parameter(n.removeprefix("module."))[~m].tolist() for n, m in masks.items()},
    }


def _lone_prune_scenario(rank: int) -> dict:
    torch.manual_seed(0)
    model = Net()
    ddp = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    engine = dsd.DSD(ddp, optimizer)
    if hasattr(engine, "agreement"):  # no periodic step check: the forward check must catch it
        engine.agreement.every = 1000
    for i in range(3):
        _step(ddp, optimizer, rank, i)
    start = time.monotonic()
    try:
        for i in range(3, 8):
            if rank == 0 and i == 4:
                engine.prune(0.5)  # rank 0 alone
            _step(ddp, optimizer, rank, i)
    except Exception as err:  # the test reads the type and message
        return {"error": type(err).__name__, "message": str(err), "seconds": time.monotonic() - start}
    return {"error": None, "seconds": time.monotonic() - start}


SCENARIOS: dict[str, Callable[[int], dict]] = {
    "zero": _zero_scenario,
    "ablation": _ablation_scenario,
    "lone_prune": _lone_prune_scenario,
}


def _worker(rank: int, port: int, scenario: Callable[[int], dict], out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        result = scenario(rank)
    except Exception:
        result = {"crash": traceback.format_exc()}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    os._exit(0)  # skip destroy_process_group: after a lone prune the peers' groups disagree


def run_on_two_ranks(
    scenario: Callable[[int], dict], tmp_path: Path, timeout_s: float = JOIN_TIMEOUT_S
) -> list[dict]:
    """``scenario(rank)`` on 2 spawned gloo ranks (a module-level function); what each returned.
    A hang fails the test after ``timeout_s``; a crash on a rank fails it with its traceback."""
    context = mp.start_processes(
        _worker,
        args=(_free_port(), scenario, str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{scenario.__name__}: the ranks hung for {timeout_s:g} s")
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    for rank, result in enumerate(results):
        assert "crash" not in result, f"rank {rank}:\n{result.get('crash')}"
    return results


def _run(scenario: str, tmp_path: Path) -> list[dict]:
    return run_on_two_ranks(SCENARIOS[scenario], tmp_path)


def test_zero_redundancy_state_of_pruned_entries_is_zeroed_and_restarts_at_zero(tmp_path: Path) -> None:
    results = _run("zero", tmp_path)
    assert sum(r["held_here"] for r in results) == 2, "each pruned tensor's state lives on one rank"
    for rank, r in enumerate(results):
        assert r["after_prune"] == [0.0] * r["held_here"], f"rank {rank}: momentum of pruned entries kept"
        assert r["pruned_weights"] == [0.0, 0.0], f"rank {rank}: pruned weights moved"
        assert r["after_redense"] == [0.0] * r["held_here"], f"rank {rank}: restored entries' momentum"
        assert min(r["moved"]) > 0.9, f"rank {rank}: re-densed weights did not learn"


def test_random_masks_and_reinit_draws_are_identical_on_every_rank(tmp_path: Path) -> None:
    first, second = _run("ablation", tmp_path)
    assert first["masks"] == second["masks"]
    assert first["reinit"] == second["reinit"]
    for name, values in first["reinit"].items():
        assert values and all(v != 0 for v in values), f"{name}: re-initialised weights are 0"


def test_one_rank_calling_prune_alone_fails_on_every_rank_in_seconds_naming_it(tmp_path: Path) -> None:
    results = _run("lone_prune", tmp_path)
    for rank, r in enumerate(results):
        assert r["error"] == "PhaseMismatchError", f"rank {rank}: {r}"
        assert "prune()" in r["message"] and "DSD" in r["message"], r["message"]
        assert r["seconds"] < JOIN_TIMEOUT_S / 2
    assert "DSD prune()" in results[0]["message"] and "DSD forward" in results[1]["message"]
