"""The engine under FSDP2 (``fully_shard``) on 2 gloo ranks (CPU): a small transformer (embedding,
attention, MLP, an output tied to the embedding) trained with AdamW through D-S-D-S-D-S.

One spawn of two processes runs the whole story, twice: with a bf16 ``MixedPrecisionPolicy`` and
``reshard_after_forward=True``, then in fp32 with ``reshard_after_forward=False`` and the Hugging
Face Trainer's masking (``mask_in_backward``). Each rank records what it saw, the weights counted
from the shards themselves; the single-process engine's masks on the same weights are computed
here, in the test's own process. The DCP checkpoint written on 2 ranks is loaded on 2 ranks there
and on 1 rank here. Last, rank 0 calls ``prune()`` alone.

Every test failed on the engine before FSDP2 support (commit 2fab2a3), which refused a sharded
model at construction (``ConfigError: DSD does not support FSDP2``): each scenario crashed there.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import traceback
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn

import dsd
from dsd.masks import pruned_count
from tests.engine.test_held_everywhere_ddp import run_on_two_ranks

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, DIM, HIDDEN = 24, 16, 49  # HIDDEN rows split 25 / 24: uneven shards
SELECTED = ["attn.qkv.weight", "attn.out.weight", "mlp.up.weight", "mlp.down.weight"]
CONFIGS = {
    "bf16-reshard": {"bf16": True, "reshard": True, "in_backward": False},
    "fp32-keep-trainer-path": {"bf16": False, "reshard": False, "in_backward": True},
}
JOIN_TIMEOUT_S = 150


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.out = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, 2, DIM // 2)).transpose(1, 3).unbind(2)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).flatten(2))


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(DIM, HIDDEN)
        self.down = nn.Linear(HIDDEN, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.gelu(self.up(x)))


class TinyLM(nn.Module):
    """One pre-norm transformer block; the output layer shares the embedding (stays dense)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.norm1, self.attn = nn.LayerNorm(DIM), Attention()
        self.norm2, self.mlp = nn.LayerNorm(DIM), MLP()
        self.head = nn.Linear(DIM, VOCAB, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return self.head(x)


def tiny_lm() -> TinyLM:
    torch.manual_seed(0)
    return TinyLM()


def batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(0, VOCAB, (4, 7), generator=torch.Generator().manual_seed(100 * rank + step))
    return tokens[:, :-1], tokens[:, 1:]


def plain_engine(weights: dict[str, list]) -> dsd.DSD:
    """The single-process engine on a plain model holding ``weights`` (full tensors)."""
    model = tiny_lm()
    with torch.no_grad():
        for name, values in weights.items():
            model.get_parameter(name).copy_(torch.tensor(values))
    return dsd.DSD(model, torch.optim.AdamW(model.parameters(), lr=1e-2))


# ----------------------------------------------------------------------------- on each rank
def _sharded_model(bf16: bool, reshard: bool) -> nn.Module:
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    model = tiny_lm()
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
    options = {"reshard_after_forward": reshard} | ({"mp_policy": policy} if policy else {})
    fully_shard(model.attn, **options)
    fully_shard(model.mlp, **options)
    fully_shard(model, **options)
    return model


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local().detach()


def _full(model: nn.Module) -> dict[str, list]:
    return {n: model.get_parameter(n).full_tensor().tolist() for n in SELECTED}


def _pruned_max(engine: dsd.DSD, model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """Largest |value| of this rank's pruned entries: weights, and each AdamW moment."""
    found = {}
    for name, mask in masks.items():
        param = model.get_parameter(name)
        found[f"{name}:weight"] = _local(param)[~mask].abs().max().item()
        for key in ("exp_avg", "exp_avg_sq"):
            found[f"{name}:{key}"] = _local(engine.optimizer.state[param][key])[~mask].abs().max().item()
    return found


def _cycle(
    rank: int, out_dir: str, name: str, bf16: bool, reshard: bool, in_backward: bool
) -> dict[str, Any]:
    """D-S-D-S-D-S with AdamW on one configuration; what this rank saw at each point."""
    model = _sharded_model(bf16, reshard)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    engine = dsd.DSD(model, optimizer, mask_in_backward=in_backward)
    seen: dict[str, Any] = {"selected": [t.name for t in engine.tensors], "after_backward": []}
    step = 0

    def train(steps: int, poison: bool = False) -> None:
        nonlocal step
        for _ in range(steps):
            inputs, targets = batch(rank, step)
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(inputs).flatten(0, 1).float(), targets.flatten()).backward()
            if engine.is_sparse and in_backward:  # masked at the end of backward, before any clipping
                grads = [_local(model.get_parameter(n).grad)[~m] for n, m in engine.masks.items()]
                seen["after_backward"].append(max(g.abs().max().item() for g in grads))
            if poison and not in_backward:  # an inf in a pruned gradient must not reach the clipping norm
                name, mask = next(iter(engine.masks.items()))
                _local(model.get_parameter(name).grad)[~mask] = float("inf")
            engine.mask_gradients()  # our loop's order: mask, clip, step
            norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            seen.setdefault("norms", []).append(
                (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item()
            )
            optimizer.step()
            step += 1

    train(3)
    with torch.no_grad():  # heavy ties in one tensor, across the shard boundary
        up = _local(model.mlp.up.weight)
        up.copy_((up * 16).round() / 16)
    seen["weights_1"] = _full(model)
    engine.prune(0.5)
    masks = {n: m.clone() for n, m in engine.masks.items()}
    seen["masks_1"] = {n: m.int().tolist() for n, m in masks.items()}
    seen["after_prune"] = _pruned_max(engine, model, masks)
    train(3, poison=True)
    seen["after_sparse_steps"] = _pruned_max(engine, model, masks)
    seen["report"] = {r.name: [r.mask_zeros, r.weight_zeros] for r in engine.sparsity_report().tensors}
    engine.redense()
    seen["after_redense"] = {
        k: v for k, v in _pruned_max(engine, model, masks).items() if not k.endswith(":weight")
    }
    train(2)
    seen["moved"] = {
        n: (_local(model.get_parameter(n))[~m] != 0).float().mean().item() for n, m in masks.items()
    }

    seen["weights_2"] = _full(model)
    engine.prune(0.3, scope="global")  # DSDSD: the second sparse phase, one threshold
    seen["masks_2"] = {n: m.int().tolist() for n, m in engine.masks.items()}
    train(1)
    from torch.distributed import checkpoint as dcp

    checkpoint = os.path.join(out_dir, f"dcp-{name}")
    dcp.save({"dsd": engine}, checkpoint_id=checkpoint)  # the engine is Stateful: DCP calls state_dict()
    other = _sharded_model(bf16, reshard)
    fresh = dsd.DSD(other, torch.optim.AdamW(other.parameters(), lr=1e-2))
    dcp.load({"dsd": fresh}, checkpoint_id=checkpoint)
    seen["reloaded"] = {"phase": fresh.phase, "history": fresh.history, "scope": fresh.scope}
    seen["reloaded_equal"] = all(torch.equal(fresh.masks[n], m) for n, m in engine.masks.items())
    fresh.remove()
    engine.redense()

    torch.manual_seed(100 + rank)  # the global RNG differs between ranks: the draw must not use it
    engine.prune(0.4, criterion="random", generator=torch.Generator().manual_seed(7 + rank))
    seen["masks_random"] = {n: m.int().tolist() for n, m in engine.masks.items()}
    train(1)
    seen["random_held"] = max(_pruned_max(engine, model, engine.masks).values())
    return seen


def _lone_prune(rank: int) -> dict[str, Any]:
    """Rank 0 calls ``prune()`` alone while rank 1 trains on (its next forward checks)."""
    model = _sharded_model(bf16=False, reshard=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    engine = dsd.DSD(model, optimizer)
    engine.agreement.every = 1000  # no periodic step check: the forward check must catch it
    start = time.monotonic()
    try:
        for i in range(6):
            if rank == 0 and i == 2:
                engine.prune(0.5)  # rank 0 alone
            inputs, targets = batch(rank, i)
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(inputs).flatten(0, 1), targets.flatten()).backward()
            optimizer.step()
    except Exception as err:  # the test reads the type and message
        return {"error": type(err).__name__, "message": str(err), "seconds": time.monotonic() - start}
    return {"error": None}


def _story(rank: int, out_dir: str) -> dict[str, Any]:
    """Every configuration's cycle, then the lone prune (last: it leaves the ranks disagreeing)."""
    results: dict[str, Any] = {}
    for name, config in CONFIGS.items():
        try:
            results[name] = _cycle(rank, out_dir, name, **config)
        except Exception:
            results[name] = {"crash": traceback.format_exc()}
            return results  # a rank that crashed mid-cycle leaves its peer in a collective
    results["lone_prune"] = _lone_prune(rank)
    return results


# ----------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("fsdp2")
    ranks = run_on_two_ranks(functools.partial(_story, out_dir=str(out)), out, JOIN_TIMEOUT_S)
    return {"out": out, "ranks": ranks}


def _cycles(story: dict[str, Any], name: str) -> list[dict[str, Any]]:
    ranks = [r[name] for r in story["ranks"]]
    for rank, seen in enumerate(ranks):
        assert "crash" not in seen, f"rank {rank}:\n{seen['crash']}"
    return ranks


def _whole(ranks: list[dict[str, Any]], key: str) -> dict[str, torch.Tensor]:
    """The ranks' masks, rows concatenated in rank order."""
    return {n: torch.cat([torch.tensor(r[key][n]) for r in ranks]).bool() for n in ranks[0][key]}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_masks_are_the_single_process_engines_on_the_same_weights_ties_by_position(story, config) -> None:
    first, second = ranks = _cycles(story, config)
    assert first["selected"] == SELECTED
    assert first["weights_1"] == second["weights_1"]
    reference = plain_engine(first["weights_1"])
    reference.prune(0.5)
    up = torch.tensor(first["weights_1"]["mlp.up.weight"]).abs()
    k = pruned_count(up.numel(), 0.5)
    kth = up.flatten().kthvalue(k).values
    assert int((up < kth).sum()) < k < int((up <= kth).sum()) - up.shape[1], "no ties split by position"
    masks = _whole(ranks, "masks_1")
    for name, mask in reference.masks.items():
        assert int((~masks[name]).sum()) == pruned_count(mask.numel(), 0.5), name
        assert torch.equal(masks[name], mask), name  # the same entries, ties split by position

    reference = plain_engine(first["weights_2"])
    reference.prune(0.3, scope="global")
    masks = _whole(ranks, "masks_2")
    assert sum(int((~m).sum()) for m in masks.values()) == pruned_count(
        sum(m.numel() for m in masks.values()), 0.3
    )
    for name, mask in reference.masks.items():
        assert torch.equal(masks[name], mask), name


@pytest.mark.parametrize("config", list(CONFIGS))
def test_pruned_weights_and_adamw_moments_stay_exactly_zero_through_sparse_steps(story, config) -> None:
    for rank, seen in enumerate(_cycles(story, config)):
        assert set(seen["after_prune"].values()) == {0.0}, f"rank {rank}: {seen['after_prune']}"
        assert set(seen["after_sparse_steps"].values()) == {0.0}, f"rank {rank}: {seen['after_sparse_steps']}"
        assert all(map(torch.isfinite, torch.tensor(seen["norms"]))), "an inf reached the clipping norm"
        assert seen["random_held"] == 0.0
        if CONFIGS[config]["in_backward"]:  # the Trainer's path: masked before the Trainer clips
            assert seen["after_backward"] and set(seen["after_backward"]) == {0.0}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_redense_restarts_the_moments_from_zero_and_the_pruned_weights_learn(story, config) -> None:
    for rank, seen in enumerate(_cycles(story, config)):
        assert set(seen["after_redense"].values()) == {0.0}, f"rank {rank}"
        assert min(seen["moved"].values()) > 0.9, f"rank {rank}: {seen['moved']}"


def test_sparsity_report_counts_the_whole_tensors_on_every_rank(story) -> None:
    first, second = _cycles(story, "bf16-reshard")
    assert first["report"] == second["report"]
    for name, (mask_zeros, weight_zeros) in first["report"].items():
        numel = torch.tensor(first["weights_1"][name]).numel()
        assert mask_zeros == pruned_count(numel, 0.5) == weight_zeros, name


def test_random_masks_are_one_process_draw_from_rank_zeros_generator(story) -> None:
    ranks = _cycles(story, "bf16-reshard")
    reference = plain_engine(ranks[0]["weights_2"])
    reference.prune(0.4, criterion="random", generator=torch.Generator().manual_seed(7))
    masks = _whole(ranks, "masks_random")
    for name, mask in reference.masks.items():
        assert torch.equal(masks[name], mask), name


@pytest.mark.parametrize("config", list(CONFIGS))
def test_dcp_checkpoint_from_two_ranks_loads_on_two_ranks(story, config) -> None:
    for rank, seen in enumerate(_cycles(story, config)):
        assert seen["reloaded_equal"], f"rank {rank}: masks differ after dcp.load"
        assert seen["reloaded"]["phase"] == "sparse" and seen["reloaded"]["scope"] == "global"
        assert [h["event"] for h in seen["reloaded"]["history"]] == ["prune", "redense", "prune"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dcp_checkpoint_from_two_ranks_loads_on_one_rank(story, monkeypatch: pytest.MonkeyPatch) -> None:
    """Here, one process: FSDP2 on a one-rank mesh, and a plain model in the sparse phase."""
    from torch.distributed import checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    ranks = _cycles(story, "bf16-reshard")
    expected = _whole(ranks, "masks_2")
    checkpoint = story["out"] / "dcp-bf16-reshard"
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = tiny_lm()
        fully_shard(model, mesh=init_device_mesh("cpu", (1,)))
        engine = dsd.DSD(model, torch.optim.AdamW(model.parameters(), lr=1e-2))
        dcp.load({"dsd": engine}, checkpoint_id=checkpoint)
        assert engine.phase == "sparse" and engine.sparsity == 0.3
        for name, mask in expected.items():
            assert torch.equal(engine.masks[name], mask), name
    finally:
        dist.destroy_process_group()
        os.environ.pop("MASTER_PORT", None)


def test_a_lone_prune_on_one_rank_fails_on_both_in_seconds_naming_it(story) -> None:
    results = [r["lone_prune"] for r in story["ranks"]]
    for rank, r in enumerate(results):
        assert r["error"] == "PhaseMismatchError", f"rank {rank}: {r}"
        assert "DSD" in r["message"] and "prune()" in r["message"], r["message"]
        assert r["seconds"] < JOIN_TIMEOUT_S / 3
    assert "DSD prune()" in results[0]["message"] and "DSD forward" in results[1]["message"]
