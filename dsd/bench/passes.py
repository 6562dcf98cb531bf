"""The engine's cost per sparse step, in units of one masked pass over the pruned gradients.

    python -m dsd.bench.passes [--repeats 30] [--models resnet18,lstm] [--device cpu]

(``make bench`` gives the same figure inside ``python -m dsd.bench.engine``; this command measures
it alone, for a quicker look.)

One read-modify-write pass over the gradients is the floor of holding a mask (for every
first-order ``torch.optim`` optimizer, a zero gradient with zero state gives a zero update, so
nothing else is needed). The figure is the engine's extra time per sparse step over the same
dense step, divided by the time of one such pass (``dsd.masks.apply_masks_`` over the pruned
tensors' gradients) measured in the same rounds; target ≤ 1.2. It is measured

- inside ``optimizer.step()`` alone (same gradients, a dense and a sparse copy of the model);
- over the whole forward + backward + step, so that work moved into backward hooks is counted;
- with ``clip_grad_norm_`` as our loop runs it (``engine.mask_gradients()``, clip, step);
- in the Hugging Face Trainer's path, with gradient accumulation 1 and 4: the engine built as the
  callback builds it (``mask_in_backward`` told which micro-batch is the last, as Accelerate's sync
  flag tells it), the micro-batches' forward and backward passes (the batch split in 1 or 4, as
  accumulation splits it), clip, step. The grad hooks fire only in the last micro-batch's
  backward and the pass runs once per step, at its end (``dsd.after_backward``); the dense side
  runs the same micro-batches.

Variants are interleaved round by round and the figures are medians of paired differences, so a
slow phase of a shared machine hits dense and sparse alike. On a machine loaded well past its cores
the differences of two step times still drown a pass of a few milliseconds, so each path's engine
time is also timed where it runs (``direct_in_passes``): its optimizer hooks (``HookClock``), its
post-accumulate-grad hooks, its check before each forward (putting the grad hooks in or out of
their tables), the end-of-backward pass and a ``mask_gradients()`` the loop calls, divided by the same
unit pass. That figure leaves out what the engine costs the rest of the step (the memory traffic
the first figure was made to catch), so it is the floor, not the figure; it includes the clock's
own few microseconds per timed call.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dsd.bench.models import SPARSITY, StepModel, step_models
from dsd.bench.probes import HookClock, Timer
from dsd.engine import DSD
from dsd.masks import apply_masks_

TARGET_PASSES = 1.2
#: The paths measured: name -> (engine built with mask_in_backward, clip, micro-batches per step).
PATHS = {
    "step": (False, False, 1), "whole": (False, False, 1), "clip": (False, True, 1),
    "trainer": (True, True, 1), "trainer-accum4": (True, True, 4),
}  # fmt: skip


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median of ``values``: the order statistics that the
    binomial count of values below the median leaves outside with probability ``1 - confidence``
    (for 30 values, the 10th and 21st). Step-time differences on a shared machine have heavy
    tails, so no normal interval; with 5 values or fewer it is the whole range."""
    ordered, n = sorted(values), len(values)
    outside, tail = 0, 0.0  # values left out on each side, and the chance of that many or fewer
    while outside < n // 2 and tail + math.comb(n, outside) / 2**n <= (1 - confidence) / 2:
        tail += math.comb(n, outside) / 2**n
        outside += 1
    return (ordered[0], ordered[-1]) if outside == 0 else (ordered[outside - 1], ordered[n - outside])


def _backward(model: nn.Module, spec: StepModel, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    inputs, target = batch
    spec.loss(model(inputs), target).backward()


def _micro_batches(spec: StepModel, batch: tuple[torch.Tensor, torch.Tensor], count: int) -> list[tuple]:
    """``batch`` split into ``count`` micro-batches, as gradient accumulation splits a batch: the
    step does the same work at any accumulation, so its time (and its noise) stays that of one
    step and the engine's extra per step stays measurable."""
    inputs, target = batch
    return list(zip(inputs.chunk(count, spec.batch_dim), target.chunk(count, spec.batch_dim), strict=True))


class _EngineTime:
    """Seconds spent inside the engine's own calls (wrapped with ``timed``) and its optimizer hooks
    (a ``HookClock`` per sparse optimizer), read per run."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.clocks: list[HookClock] = []

    def timed(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return run

    def now(self) -> float:
        stamps = [stamp for clock in self.clocks for stamp in clock.stamps if len(stamp) == 4]
        return self.seconds + sum((b - a) + (d - c) for a, b, c, d in stamps)


def bench_passes(
    spec: StepModel,
    device: torch.device,
    repeats: int,
    warmup: int = 2,
    paths: tuple[str, ...] = tuple(PATHS),
) -> dict[str, Any]:
    """The engine's cost per sparse step on each of ``paths``, in masked gradient passes."""
    torch.manual_seed(0)
    base = spec.build().to(device).train()
    batch = spec.batch(device)
    timer = Timer(device)
    dense = copy.deepcopy(base)
    dense_opt = _optimizer(dense)
    sparse: dict[bool, tuple[nn.Module, torch.optim.Optimizer, DSD]] = {}
    last = {"micro_batch": True}  # what the Trainer's sync flag says: the last micro-batch runs
    inside = _EngineTime()
    for in_backward in (False, True):
        model = copy.deepcopy(base)
        optimizer = _optimizer(model)
        clock = HookClock(optimizer, torch.device("cpu"))  # perf_counter stamps (direct: CPU only)
        engine = DSD(
            model, optimizer, mask_in_backward=(lambda: last["micro_batch"]) if in_backward else False
        )
        clock.close(optimizer)
        inside.clocks.append(clock)
        # the grad hooks prune() registers, and the end-of-backward pass, timed where they run
        engine._note_grad = inside.timed(engine._note_grad)  # type: ignore[method-assign]
        after_backward = engine._after_backward  # its gate before each forward, its grad hooks, its pass
        after_backward._before_forward = inside.timed(after_backward._before_forward)  # type: ignore[method-assign]
        after_backward._on_grad = inside.timed(after_backward._on_grad)  # type: ignore[method-assign]
        after_backward.fn = inside.timed(after_backward.fn)
        engine.prune(SPARSITY)
        sparse[in_backward] = (model, optimizer, engine)
    split = {count: _micro_batches(spec, batch, count) for _, _, count in PATHS.values()}
    lazy_engine = sparse[False][2]
    grads = [t.param.grad for t in lazy_engine.tensors]
    masks = list(lazy_engine.masks.values())

    def one_pass() -> None:
        apply_masks_([g for g in grads if g is not None], masks)

    def path(name: str, sparse_side: bool) -> Callable[[], None]:
        in_backward, clip, micro_batches = PATHS[name]
        model, optimizer, engine = sparse[in_backward] if sparse_side else (dense, dense_opt, None)

        def run() -> None:
            if name != "step":
                optimizer.zero_grad(set_to_none=True)
                for index, micro_batch in enumerate(split[micro_batches]):
                    last["micro_batch"] = index == micro_batches - 1
                    _backward(model, spec, micro_batch)
            if clip:
                if engine is not None and not in_backward:
                    inside.timed(engine.mask_gradients)()  # our loop: the sparse model's gradient is clipped
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the Trainer clips right here
            optimizer.step()

        return run

    costs: dict[str, list[float]] = {name: [] for name in paths}
    direct: dict[str, list[float]] = {name: [] for name in paths}
    units: list[float] = []
    for model, optimizer in ((dense, dense_opt), *((m, o) for m, o, _ in sparse.values())):
        optimizer.zero_grad(set_to_none=True)
        _backward(model, spec, batch)  # gradients for the "step" path and for the unit pass
    grads[:] = [t.param.grad for t in lazy_engine.tensors]
    for round_index in range(warmup + repeats):
        unit = timer(one_pass)
        for name in paths:
            if name == "step":  # the same gradients each time: the engine re-masks them as new
                lazy_engine._grads_dirty = True
            order = (True, False) if round_index % 2 else (False, True)
            before = inside.now()
            seconds = {side: timer(path(name, side)) for side in order}
            if round_index >= warmup:
                costs[name].append(seconds[True] - seconds[False])
                direct[name].append(inside.now() - before)
        if round_index >= warmup:
            units.append(unit)
    unit = statistics.median(units)
    held = all(  # both sparse copies really ran sparse
        bool((t.param.detach()[~m] == 0).all())
        for _, _, engine in sparse.values()
        for t, m in zip(engine.tensors, engine.masks.values(), strict=True)
    )
    return {
        "config": spec.config,
        "repeats": repeats,
        "pruned_weights": sum(t.numel for t in lazy_engine.tensors),
        "masked_pass_ms": unit * 1000,
        "cost_ms": {name: statistics.median(c) * 1000 for name, c in costs.items()},
        "cost_in_passes": {name: statistics.median(c) / unit for name, c in costs.items()},
        "cost_interval_in_passes": {
            name: [end / unit for end in median_interval(c)] for name, c in costs.items()
        },
        "direct_in_passes": {name: statistics.median(d) / unit for name, d in direct.items()},
        "target_passes": TARGET_PASSES,
        "mask_held": held,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsd.bench.passes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument(
        "--models", default="resnet18,resnet18-224px,lstm", help="comma-separated step models"
    )
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {','.join(PATHS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    wanted = args.models.split(",")
    specs = [spec for spec in step_models(quick=False) if spec.name in wanted]
    paths = tuple(args.paths.split(","))
    if not specs or args.repeats < 1 or not set(paths) <= set(PATHS):
        parser.error(
            f"--models takes some of {[s.name for s in step_models(quick=False)]}; --paths some of "
            f"{list(PATHS)}; --repeats, a number > 0"
        )
    for spec in specs:
        rounds = max(2, args.repeats // spec.config.get("rounds_divisor", 1))
        result = bench_passes(spec, torch.device(args.device), rounds, paths=paths)
        intervals, inside = result["cost_interval_in_passes"], result["direct_in_passes"]
        costs = ", ".join(
            f"{path} {value:.2f} [{intervals[path][0]:.2f}, {intervals[path][1]:.2f}] "
            f"(inside the engine {inside[path]:.2f})"
            for path, value in result["cost_in_passes"].items()
        )
        print(
            f"{spec.name}: one masked pass {result['masked_pass_ms']:.2f} ms; engine cost per sparse step "
            f"in passes, median [95% interval] (target <= {TARGET_PASSES}): {costs}; {rounds} rounds; "
            f"mask held: {result['mask_held']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
