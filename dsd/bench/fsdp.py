"""DSD under FSDP2 on 2 CPU ranks (gloo): what holding and computing a mask costs over shards.

    python -m dsd.bench.fsdp [--rounds 12] [--prunes 3] [--out results/bench] [--quick]

A transformer (embedding, attention and MLP blocks, an output tied to the embedding) is
``fully_shard``-ed per block and at its root, trained with AdamW, and pruned at 30 %. Figures,
printed and written as JSON under ``--out``:

1. step time, sparse ÷ dense: forward + backward + step of a dense copy and of a sparse copy (its
   engine pruned), stepped alternately round by round on both ranks, medians over the rounds. The
   sparse copy pays all the engine costs: the gradient pass before the step and the phase check
   before each forward (a gloo all-reduce of 16 bytes). Both are also timed directly inside the
   sparse steps (the engine's optimizer hooks by ``HookClock``, the check by wrapping it), a
   figure steadier than the ratio of two step times on a shared machine;
2. per ``prune()``: every ``torch.distributed`` collective it calls, with its bytes, counted on
   rank 0, beside the bytes of the weights it ranks (what gathering them would move);
3. ``prune()`` wall time (the slower rank) against ``prune()`` of the same weights held whole by
   one process (the parent, no process group, one thread like each rank), taking turns; and
   whether their masks are equal.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dsd import files
from dsd.bench.models import SPARSITY
from dsd.bench.probes import HookClock, environment
from dsd.engine import DSD

WORLD_SIZE = 2
#: The collectives counted during ``prune()`` (everything the engine could call).
COLLECTIVES = (
    "all_reduce",
    "broadcast",
    "all_gather",
    "all_gather_into_tensor",
    "reduce_scatter_tensor",
    "barrier",
)


class Block(nn.Module):
    """Pre-norm attention and MLP."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.up, self.down = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, self.heads, -1)).transpose(1, 3).unbind(2)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(y.transpose(1, 2).flatten(2))
        return x + self.down(nn.functional.gelu(self.up(self.norm2(x))))


class Transformer(nn.Module):
    def __init__(self, vocab: int, dim: int, heads: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _config(quick: bool) -> dict[str, int]:
    if quick:
        return {"vocab": 64, "dim": 32, "heads": 2, "layers": 2, "batch": 2, "seq": 8}
    return {"vocab": 1024, "dim": 512, "heads": 8, "layers": 4, "batch": 4, "seq": 64}


def _build(config: dict[str, int]) -> Transformer:
    torch.manual_seed(0)
    return Transformer(config["vocab"], config["dim"], config["heads"], config["layers"])


def _sharded(config: dict[str, int]) -> Transformer:
    from torch.distributed.fsdp import fully_shard

    model = _build(config)
    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)
    return model


@contextlib.contextmanager
def counted_collectives() -> Iterator[dict[str, Any]]:
    """Count every ``torch.distributed`` collective called inside, with the bytes it moves."""
    counts: dict[str, Any] = {"calls": 0, "bytes": 0, "by_name": {}}
    originals = {name: getattr(dist, name) for name in COLLECTIVES}

    def counting(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            tensors = [a for a in args if torch.is_tensor(a)] + [
                t for a in args if isinstance(a, list) for t in a if torch.is_tensor(t)
            ]
            counts["calls"] += 1
            counts["bytes"] += sum(t.numel() * t.element_size() for t in tensors[:1])
            counts["by_name"][name] = counts["by_name"].get(name, 0) + 1
            return call(*args, **kwargs)

        return counted

    for name, call in originals.items():
        setattr(dist, name, counting(name, call))
    try:
        yield counts
    finally:
        for name, call in originals.items():
            setattr(dist, name, call)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, tokens: torch.Tensor) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    logits = model(tokens[:, :-1])
    nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()
    optimizer.step()
    return time.perf_counter() - start


def _steps(config: dict[str, int], rank: int, rounds: int, warmup: int = 2) -> dict[str, Any]:
    """Dense and sparse copies stepped alternately (the first of each pair rotates)."""
    copies, clock, checks = {}, None, []
    for variant in ("dense", "sparse"):
        model = _sharded(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        engine = None
        if variant == "sparse":
            clock = HookClock(optimizer, torch.device("cpu"))
            engine = DSD(model, optimizer)
            clock.close(optimizer)
            engine.agreement.check = _timed(engine.agreement.check, checks)
        copies[variant] = (model, optimizer, engine)
    times: dict[str, list[float]] = {"dense": [], "sparse": []}
    step_checks: list[float] = []
    gen = torch.Generator().manual_seed(rank)
    tokens = torch.randint(0, config["vocab"], (config["batch"], config["seq"] + 1), generator=gen)
    for round_index in range(warmup + rounds):
        if round_index == warmup - 1:
            copies["sparse"][2].prune(SPARSITY)
        order = ("dense", "sparse") if round_index % 2 else ("sparse", "dense")
        for variant in order:
            mark = len(checks)
            seconds = _step(*copies[variant][:2], tokens)
            if round_index >= warmup:
                times[variant].append(seconds)
                if variant == "sparse":  # the check before its forward (and a periodic one, if due)
                    step_checks.append(sum(checks[mark:]))
    median = {v: statistics.median(t) for v, t in times.items()}
    assert clock is not None
    hooks = clock.seconds(skip=warmup)
    engine_s = [h + c for h, c in zip(hooks, step_checks, strict=True)]
    return {
        "rounds": rounds,
        "median_s": median,
        "engine_hooks_ms_median": statistics.median(hooks) * 1000,
        "phase_check_ms_median": statistics.median(step_checks) * 1000,
        "engine_over_dense_step": statistics.median(engine_s) / median["dense"],
        "sparse_over_dense": median["sparse"] / median["dense"],
        "sparse_over_dense_paired_median": statistics.median(
            s / d for s, d in zip(times["sparse"], times["dense"], strict=True)
        ),
    }


def _timed(call: Callable[..., Any], seconds: list[float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    return timed


def _slowest(seconds: float) -> float:
    value = torch.tensor([seconds], dtype=torch.float64)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value)


def _sharded_prunes(config: dict[str, int], prunes: int, turns: Any) -> dict[str, Any]:
    """``prune()`` on both ranks, taking turns with the parent's single-process ``prune()``
    (``turns``: a barrier of the ranks and the parent); the collectives of the first call."""
    model = _sharded(config)
    engine = DSD(model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    shards = [t.param.to_local().detach().clone() for t in engine.tensors]
    seconds, traffic, whole = [], None, {}
    for repeat in range(prunes):
        with torch.no_grad():
            for t, shard in zip(engine.tensors, shards, strict=True):
                t.param.to_local().copy_(shard)
        turns.wait()  # our turn
        start = time.perf_counter()
        with counted_collectives() as counts:
            engine.prune(SPARSITY)
        seconds.append(_slowest(time.perf_counter() - start))
        traffic = traffic or counts
        if repeat == 0:
            # numpy arrays: a tensor would reach the parent as shared memory of an exited process
            whole = {
                t.name: _whole_mask(t.param, m).numpy()
                for t, m in zip(engine.tensors, engine.masks.values(), strict=True)
            }
        engine.redense()
        turns.wait()  # the parent's turn
    weights = sum(t.param.numel() for t in engine.tensors)
    return {
        "weights": weights,
        "tensors": len(engine.tensors),
        "prunes": prunes,
        "collectives": traffic,
        "weights_bytes": weights * engine.tensors[0].param.element_size(),
        "sharded_s": seconds,
        "sharded_s_median": statistics.median(seconds),
        "masks": whole,
    }


def _single_prunes(
    config: dict[str, int], prunes: int, turns: Any
) -> tuple[list[float], dict[str, torch.Tensor]]:
    """In the parent, no process group: ``prune()`` of the same weights, whole (the model's
    initialisation, which ``fully_shard`` split between the ranks)."""
    plain = _build(config)
    engine = DSD(plain, torch.optim.AdamW(plain.parameters(), lr=1e-4))
    weights = [t.param.detach().clone() for t in engine.tensors]
    seconds, masks = [], {}
    for _ in range(prunes):
        with torch.no_grad():
            for t, value in zip(engine.tensors, weights, strict=True):
                t.param.copy_(value)
        turns.wait()  # the ranks' turn
        turns.wait()
        start = time.perf_counter()
        engine.prune(SPARSITY)
        seconds.append(time.perf_counter() - start)
        masks = masks or {n: m.clone() for n, m in engine.masks.items()}
        engine.redense()
    return seconds, masks


def _whole_mask(param: Any, mask: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    sharded = DTensor.from_local(
        mask, param.device_mesh, param.placements, shape=param.shape, stride=param.stride()
    )
    return sharded.full_tensor()


def _worker(rank: int, port: int, args: argparse.Namespace, turns: Any, results: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    config = _config(args.quick)
    try:
        steps = _steps(config, rank, args.rounds)
        prunes = _sharded_prunes(config, args.prunes, turns)
    except BaseException:
        turns.abort()  # the parent stops waiting for its turn and reports this rank's error
        raise
    if rank == 0:
        results.put({"step_time": steps, "prune": prunes})
    dist.barrier()
    dist.destroy_process_group()


def report(result: dict[str, Any]) -> str:
    """The figures, one line each."""
    steps, prune = result["step_time"], result["prune"]
    traffic = prune["collectives"]
    kib = 1024
    by_name = ", ".join(f"{n} {c}" for n, c in sorted(traffic["by_name"].items()))
    return "\n".join(
        [
            f"FSDP2 on {result['world_size']} CPU ranks (gloo, 1 thread each): {prune['weights']:,} weights "
            f"pruned in {prune['tensors']} tensors at {result['sparsity']:.0%}",
            f"step time, sparse ÷ dense: {steps['sparse_over_dense']:.3f} "
            f"(paired {steps['sparse_over_dense_paired_median']:.3f}; "
            f"median dense {steps['median_s']['dense']:.4f}s, sparse {steps['median_s']['sparse']:.4f}s, "
            f"{steps['rounds']} interleaved rounds)",
            f"engine time per sparse step, timed inside it: {steps['engine_hooks_ms_median']:.1f} ms in its "
            f"optimizer hooks + {steps['phase_check_ms_median']:.1f} ms phase check (a sync point: it also "
            "waits for the slower rank, which the first all-gather would wait for otherwise) = "
            f"{steps['engine_over_dense_step']:.2%} of the dense step",
            f"per prune(): {traffic['calls']} collectives ({by_name}), {traffic['bytes'] / kib:.1f} KiB, "
            f"against {prune['weights_bytes'] / kib**2:.1f} MiB of weights ranked",
            f"prune() on 2 ranks {prune['sharded_s_median']:.3f}s, "
            "one process "
            f"{prune['single_s_median']:.3f}s: "
            f"{prune['sharded_over_single']:.2f}x ({prune['prunes']} interleaved runs); masks equal to the "
            f"single process's: {prune['masks_equal_single_process']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsd.bench.fsdp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=0, help="interleaved step rounds (default 12; quick 2)")
    parser.add_argument("--prunes", type=int, default=0, help="interleaved prune() runs (default 3; quick 1)")
    parser.add_argument("--out", type=Path, default=Path("results/bench"), help="folder of the JSON result")
    parser.add_argument("--quick", action="store_true", help="a tiny model: checks the bench runs")
    args = parser.parse_args(argv)
    if args.rounds < 0 or args.prunes < 0:
        parser.error("--rounds and --prunes take a positive number")
    args.rounds = args.rounds or (2 if args.quick else 12)
    args.prunes = args.prunes or (1 if args.quick else 3)
    args.started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spawn = mp.get_context("spawn")
    turns, results = spawn.Barrier(WORLD_SIZE + 1), spawn.SimpleQueue()
    ranks = mp.start_processes(
        _worker, args=(port, args, turns, results), nprocs=WORLD_SIZE, join=False, start_method="spawn"
    )
    torch.set_num_threads(1)  # as each rank
    try:
        single_s, single_masks = _single_prunes(_config(args.quick), args.prunes, turns)
    except threading.BrokenBarrierError:
        ranks.join()  # raises the rank's error, with its traceback
        raise
    measured = results.get()
    while not ranks.join():
        pass
    prune = measured["prune"]
    sharded_masks = prune.pop("masks")
    prune |= {
        "single_s": single_s,
        "single_s_median": statistics.median(single_s),
        "sharded_over_single": prune["sharded_s_median"] / statistics.median(single_s),
        "masks_equal_single_process": single_masks.keys() == sharded_masks.keys()
        and all(torch.equal(torch.from_numpy(sharded_masks[n]), m) for n, m in single_masks.items()),
    }
    result = {
        "started": args.started,
        "quick": args.quick,
        "world_size": WORLD_SIZE,
        "backend": "gloo",
        "threads_per_rank": 1,
        "sparsity": SPARSITY,
        "model": _config(args.quick),
        "environment": environment(torch.device("cpu")),
        "step_time": measured["step_time"],
        "prune": prune,
    }
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = args.out / f"fsdp-cpu-{stamp}{'-quick' if args.quick else ''}.json"
    files.atomic_write_json(path, result)
    print(report(result))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
