"""The engine's contract across 2 ranks (gloo, CPU) where ``test_held_everywhere_ddp.py`` leaves
off: ZeRO with an optimizer whose fresh state is not 0, one rank calling ``redense()`` alone, a
lone ``prune()`` seen by the periodic step check (no DDP wrapper) or by nobody (the timeout), and
random masks when the ranks' generators differ.

Each scenario runs in two spawned processes that write what they saw to a JSON file per rank; a
hung collective fails the test at the join timeout instead of hanging the suite. Each failed on
the engine before the contract (commit 485749c); the failure is named in the test's docstring.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import dsd
from tests.engine.test_held_everywhere_ddp import Net, run_on_two_ranks

JOIN_TIMEOUT_S = 90
#: How long the timeout scenario's agreement waits for a peer that never checks.
SHORT_TIMEOUT_S = 1.0


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, rank: int, i: int) -> None:
    gen = torch.Generator().manual_seed(1000 * rank + i)  # each rank its own data shard
    x, y = torch.randn(8, 12, generator=gen), torch.randint(0, 3, (8,), generator=gen)
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def _pruned(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: model.get_parameter(n)[~m].detach() for n, m in masks.items()}


def _zero_adagrad_scenario(rank: int) -> dict:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    torch.manual_seed(0)
    model = Net()
    ddp = nn.parallel.DistributedDataParallel(model)
    optimizer = ZeroRedundancyOptimizer(
        ddp.parameters(), optimizer_class=torch.optim.Adagrad, lr=0.1, initial_accumulator_value=0.5
    )
    engine = dsd.DSD(ddp, optimizer)
    for i in range(3):
        _step(ddp, optimizer, rank, i)
    local = optimizer.optim.state  # this rank's shard of the state

    def pruned_sums(masks: dict[str, torch.Tensor]) -> dict[str, list[float]]:
        """The distinct ``sum`` values of pruned entries, for each tensor whose state is here."""
        found = {}
        for name, mask in masks.items():
            state = local.get(model.get_parameter(name), {})
            if "sum" in state:
                found[name] = sorted(set(state["sum"][~mask].tolist()))
        return found

    engine.prune(0.5)
    masks = {n: m.clone() for n, m in engine.masks.items()}
    after_prune = pruned_sums(masks)
    for i in range(3, 6):
        _step(ddp, optimizer, rank, i)
    weights = [v.abs().max().item() for v in _pruned(model, masks).values()]
    engine.redense()
    after_redense = pruned_sums(masks)
    _step(ddp, optimizer, rank, 6)
    moved = [(v != 0).float().mean().item() for v in _pruned(model, masks).values()]
    return {
        "after_prune": after_prune,
        "pruned_weights": weights,
        "after_redense": after_redense,
        "moved": moved,
    }


def _caught(run: Callable[[], None]) -> dict:
    """What ``run`` raised (type, message, seconds), or ``error: None``."""
    start = time.monotonic()
    try:
        run()
    except Exception as err:  # the test reads the type and message
        return {"error": type(err).__name__, "message": str(err), "seconds": time.monotonic() - start}
    return {"error": None, "seconds": time.monotonic() - start}


def _lone_redense_scenario(rank: int) -> dict:
    torch.manual_seed(0)
    model = Net()
    ddp = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    engine = dsd.DSD(ddp, optimizer)
    for i in range(3):
        _step(ddp, optimizer, rank, i)
    engine.prune(0.5)  # together

    def train_on() -> None:
        for i in range(3, 8):
            if rank == 0 and i == 5:
                engine.redense()  # rank 0 alone
            _step(ddp, optimizer, rank, i)

    return _caught(train_on) | {"phase": engine.phase}


def _lone_prune_without_ddp_scenario(rank: int) -> dict:
    """Each rank trains its own model (no DDP wrapper, no collective of its own): only the
    optimizer-step check can pair with the lone ``prune()``."""
    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = dsd.DSD(model, optimizer)
    if hasattr(engine, "agreement"):  # (so that an engine without one fails on what it does)
        engine.agreement.every = 4

    def train_on() -> None:
        for i in range(12):
            if rank == 0 and i == 2:
                engine.prune(0.5)  # rank 0 alone
            _step(model, optimizer, rank, i)

    return _caught(train_on)


def _nobody_answers_scenario(rank: int) -> dict:
    torch.manual_seed(0)
    model = Net()
    engine = dsd.DSD(model, torch.optim.SGD(model.parameters(), lr=0.1))
    engine.agreement = dsd.collective.PhaseAgreement(timeout_s=SHORT_TIMEOUT_S)  # on every rank
    if rank == 0:
        return _caught(lambda: engine.prune(0.5))
    time.sleep(SHORT_TIMEOUT_S + 1.5)  # alive but never checking: rank 0 must give up on its own
    return {"error": None}


def _random_generators_differ_scenario(rank: int) -> dict:
    torch.manual_seed(0)
    model = Net()
    ddp = nn.parallel.DistributedDataParallel(model)
    engine = dsd.DSD(ddp, torch.optim.SGD(ddp.parameters(), lr=0.1))
    engine.prune(0.5, criterion="random", generator=torch.Generator().manual_seed(7 + rank))
    return {"masks": {n: m.flatten().int().tolist() for n, m in engine.masks.items()}}


SCENARIOS: dict[str, Callable[[int], dict]] = {
    "zero_adagrad": _zero_adagrad_scenario,
    "lone_redense": _lone_redense_scenario,
    "lone_prune_without_ddp": _lone_prune_without_ddp_scenario,
    "nobody_answers": _nobody_answers_scenario,
    "random_generators_differ": _random_generators_differ_scenario,
}


def _run(scenario: str, tmp_path: Path) -> list[dict]:
    return run_on_two_ranks(SCENARIOS[scenario], tmp_path, JOIN_TIMEOUT_S)


def test_zero_with_adagrad_zeroes_the_pruned_accumulators_and_restarts_them_at_the_initial_value(
    tmp_path: Path,
) -> None:
    """ZeRO keeps each tensor's state on one rank, in ``.optim.state``; Adagrad's fresh ``sum``
    is ``initial_accumulator_value``, looked up in that local optimizer's groups. Before: the
    engine read ZeRO's own (empty) ``.state``, so the pruned accumulators kept their history."""
    results = _run("zero_adagrad", tmp_path)
    held = [name for r in results for name in r["after_prune"]]
    assert sorted(held) == ["hidden.weight", "out.weight"], "each tensor's state on one rank"
    for rank, r in enumerate(results):
        for name, values in r["after_prune"].items():
            assert values == [0.0], f"rank {rank} {name}: accumulators of pruned entries kept"
        assert r["pruned_weights"] == [0.0, 0.0], f"rank {rank}: pruned weights moved"
        for name, values in r["after_redense"].items():
            assert values == [0.5], f"rank {rank} {name}: restored accumulators {values}"
        assert min(r["moved"]) > 0.9, f"rank {rank}: re-densed weights did not learn"


def test_one_rank_calling_redense_alone_fails_on_every_rank_in_seconds_naming_it(tmp_path: Path) -> None:
    """Before: no error at all; rank 0 trained dense while rank 1 held the mask, the replicas
    silently different."""
    results = _run("lone_redense", tmp_path)
    for rank, r in enumerate(results):
        assert r["error"] == "PhaseMismatchError", f"rank {rank}: {r}"
        assert "redense()" in r["message"], r["message"]
        assert r["seconds"] < JOIN_TIMEOUT_S / 3
        assert r["phase"] == "sparse", f"rank {rank}: the refused redense() changed the phase"
    assert "DSD redense()" in results[0]["message"] and "DSD forward" in results[1]["message"]


def test_a_lone_prune_without_ddp_is_caught_by_the_peers_periodic_step_check(tmp_path: Path) -> None:
    """Without a DDP wrapper there is no forward check: the peer's check every ``every`` optimizer
    steps pairs with the lone call. Before: rank 0 waited in the mask broadcast for a peer that
    never came (no ``PhaseAgreement``)."""
    results = _run("lone_prune_without_ddp", tmp_path)
    for rank, r in enumerate(results):
        assert r["error"] == "PhaseMismatchError", f"rank {rank}: {r}"
        assert "disagree" in r["message"] and "prune()" in r["message"], r["message"]
        assert r["seconds"] < JOIN_TIMEOUT_S / 3
    assert "DSD prune()" in results[0]["message"] and "DSD optimizer step" in results[1]["message"]


def test_a_lone_prune_that_no_peer_answers_gives_up_after_the_agreements_timeout(tmp_path: Path) -> None:
    """A peer that never checks again (stuck elsewhere, or out of batches): the calling rank
    raises after the agreement's timeout, naming DSD, instead of the 30-minute default.
    Before: no ``PhaseAgreement``; the broadcast waited for the default timeout."""
    first, second = _run("nobody_answers", tmp_path)
    assert first["error"] == "PhaseMismatchError", first
    assert f"did not answer within {SHORT_TIMEOUT_S:g} s" in first["message"], first["message"]
    assert "DSD prune()" in first["message"]
    assert SHORT_TIMEOUT_S * 0.5 <= first["seconds"] < SHORT_TIMEOUT_S + 1.5
    assert second["error"] is None


def test_random_masks_are_rank_zeros_draw_even_when_the_ranks_generators_differ(tmp_path: Path) -> None:
    """Like magnitude masks, random masks are computed on rank 0 and broadcast: a generator seeded
    per rank (as data loaders are) must not split the replicas. Before: no ``criterion=``."""
    first, second = _run("random_generators_differ", tmp_path)
    assert first["masks"] == second["masks"]
    torch.manual_seed(0)
    params = [Net().hidden.weight, Net().out.weight]
    expected = dsd.masks.random_masks(params, 0.5, torch.Generator().manual_seed(7))
    assert list(first["masks"].values()) == [m.flatten().int().tolist() for m in expected]
