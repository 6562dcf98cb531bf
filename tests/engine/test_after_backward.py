"""``mask_in_backward`` (the Hugging Face Trainer's path): one masking pass at the end of the
backward before the step, not one per tensor inside every micro-batch's backward.

Before (commit 2fab2a3) each pruned gradient was masked inside backward as it was written, on every
micro-batch: 1.74 masked passes per step on ResNet-18 (README), and with accumulation one more
per micro-batch. The gradients the loop clips must still be the sparse model's, also under DDP,
whose end-of-backward work copies the all-reduced gradients back after our hooks ran.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import dsd
from tests.engine.test_held_everywhere import loss_of, make_net
from tests.engine.test_held_everywhere_ddp import Net, run_on_two_ranks

pytestmark = pytest.mark.usefixtures("single_thread")


def test_with_accumulation_the_pruned_gradients_are_masked_once_per_step_after_the_last_backward() -> None:
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    last = {"micro_batch": True}
    engine = dsd.DSD(model, optimizer, mask_in_backward=lambda: last["micro_batch"])
    passes = []
    masking = engine._after_backward.fn
    engine._after_backward.fn = lambda: (passes.append(1), masking())
    engine.prune(0.5)
    masks = {n: m.clone() for n, m in engine.masks.items()}
    pruned_grads = []
    for step in range(2):
        optimizer.zero_grad(set_to_none=True)
        for micro_batch in range(4):
            last["micro_batch"] = micro_batch == 3
            loss = loss_of(model, 10 * step + micro_batch)
            if micro_batch == 0:  # an inf in an early micro-batch stays in the sum until masked
                loss = loss + model.fc.weight[~masks["fc.weight"]][0] * math.inf
            loss.backward()
            pruned_grads.append(
                max(model.get_parameter(n).grad[~m].abs().max().item() for n, m in masks.items())
            )
        assert len(passes) == step + 1, "one masking pass per optimizer step"
        norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the Trainer clips right here
        assert math.isfinite(norm.item())
        optimizer.step()
    assert pruned_grads[3] == pruned_grads[7] == 0.0, "masked at the end of the last backward"
    assert pruned_grads[1] > 0.0, "not masked after a micro-batch that is not the last"
    pruned = torch.cat([model.get_parameter(n).detach()[~m] for n, m in masks.items()])
    assert torch.equal(pruned, torch.zeros_like(pruned))


def _counting(engine: dsd.DSD) -> dict[str, int]:
    """Count the engine's grad-hook calls and end-of-backward passes (call before ``prune()``,
    which registers the hooks)."""
    counts = {"hook calls": 0, "passes": 0}
    after = engine._after_backward
    on_grad, masking = after._on_grad, after.fn

    def counted_hook(param: torch.Tensor) -> None:
        counts["hook calls"] += 1
        on_grad(param)

    def counted_pass() -> None:
        counts["passes"] += 1
        masking()

    after._on_grad, after.fn = counted_hook, counted_pass  # type: ignore[method-assign]
    return counts


def _accumulate(engine: dsd.DSD, forward, last: dict[str, bool], steps: int = 2) -> list[float]:
    """``steps`` optimizer steps of 4 micro-batches, clipped as the Trainer clips; the largest
    pruned gradient after each backward."""
    model, optimizer = engine.model, engine.optimizer
    pruned_grads = []
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        for micro_batch in range(4):
            last["micro_batch"] = micro_batch == 3
            gen = torch.Generator().manual_seed(10 * step + micro_batch)
            x, y = torch.randn(8, 3, 8, 8, generator=gen), torch.randint(0, 5, (8,), generator=gen)
            nn.functional.cross_entropy(forward(x), y).backward()
            pruned_grads.append(
                max(model.get_parameter(n).grad[~m].abs().max().item() for n, m in engine.masks.items())
            )
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return pruned_grads


def _pruned_weights_and_momentum(engine: dsd.DSD) -> torch.Tensor:
    values = []
    for name, mask in engine.masks.items():
        param = engine.model.get_parameter(name)
        values += [param.detach()[~mask], engine.optimizer.state[param]["momentum_buffer"][~mask]]
    return torch.cat(values)


def _pruned_engine(last: dict[str, bool] | None) -> tuple[nn.Module, dsd.DSD, dict[str, int]]:
    """The small net pruned at 50 % with SGD momentum, masked in backward when ``last`` says the
    micro-batch is the last (``None``: never), its hook calls and passes counted."""
    model = make_net()
    engine = dsd.DSD(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        mask_in_backward=(lambda: last["micro_batch"]) if last is not None else (lambda: False),
    )
    counts = _counting(engine)
    engine.prune(0.5)
    return model, engine, counts


def test_with_accumulation_the_grad_hooks_fire_only_in_the_last_micro_batchs_backward() -> None:
    """Before: every pruned tensor's hook ran in every micro-batch's backward (80 Python calls a
    step on ResNet-18 at accumulation 4, measured as about 0.2 of a masked pass)."""
    last = {"micro_batch": True}
    model, engine, counts = _pruned_engine(last)
    pruned_grads = _accumulate(engine, model, last)
    assert counts == {"hook calls": 2 * len(engine.tensors), "passes": 2}, "one hook per tensor and step"
    assert pruned_grads[3] == pruned_grads[7] == 0.0 < pruned_grads[1]
    zeros = _pruned_weights_and_momentum(engine)
    assert torch.equal(zeros, torch.zeros_like(zeros))


def test_a_loop_whose_flag_never_says_last_still_steps_on_masked_gradients() -> None:
    """The hooks are off for every micro-batch: the step itself masks what the backward passes
    wrote, so the mask holds (the clipping norm is then the loop's own mistake)."""
    model, engine, counts = _pruned_engine(None)
    _accumulate(engine, model, {})
    assert counts == {"hook calls": 0, "passes": 0}
    zeros = _pruned_weights_and_momentum(engine)
    assert torch.equal(zeros, torch.zeros_like(zeros))


def test_a_loop_that_calls_only_the_models_parts_is_masked_once_per_step() -> None:
    """No forward of the model itself asks the flag: the hooks stay, and the first of each
    backward asks it."""
    last = {"micro_batch": True}
    model, engine, counts = _pruned_engine(last)

    def by_parts(x: torch.Tensor) -> torch.Tensor:
        return model.fc(torch.tanh(model.conv2(torch.tanh(model.conv1(x)))).flatten(1))

    pruned_grads = _accumulate(engine, by_parts, last)
    assert counts["passes"] == 2 and pruned_grads[3] == pruned_grads[7] == 0.0 < pruned_grads[1]
    zeros = _pruned_weights_and_momentum(engine)
    assert torch.equal(zeros, torch.zeros_like(zeros))


def test_a_model_compiled_after_the_engine_runs_the_check_before_forward_eagerly() -> None:
    """``torch.compile`` traces a module's forward hooks; the engine's registers grad hooks, so
    it must run as Python every time, not once at tracing."""
    last = {"micro_batch": True}
    model, engine, counts = _pruned_engine(last)
    compiled = torch.compile(model, backend="eager")
    try:
        pruned_grads = _accumulate(engine, compiled, last, steps=3)
    finally:
        torch._dynamo.reset()
    assert counts == {"hook calls": 3 * len(engine.tensors), "passes": 3}
    assert pruned_grads[3] == pruned_grads[7] == pruned_grads[11] == 0.0 < pruned_grads[1]
    zeros = _pruned_weights_and_momentum(engine)
    assert torch.equal(zeros, torch.zeros_like(zeros))


def _ddp_scenario(rank: int) -> dict:
    torch.manual_seed(0)
    model = Net()
    ddp = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    engine = dsd.DSD(ddp, optimizer, mask_in_backward=True)
    engine.prune(0.5)
    gen = torch.Generator().manual_seed(rank)  # each rank its own data: the all-reduce matters
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(ddp(torch.randn(8, 12, generator=gen)), torch.randint(0, 3, (8,))).backward()
    grads = {n: model.get_parameter(n).grad for n in engine.masks}
    return {
        "pruned_grads": [
            g[~m].abs().max().item() for g, m in zip(grads.values(), engine.masks.values(), strict=True)
        ],
        "kept_grads": {n: g.flatten().tolist() for n, g in grads.items()},
    }


def test_under_ddp_the_gradients_are_masked_after_the_all_reduce_copied_them_back(tmp_path: Path) -> None:
    first, second = run_on_two_ranks(_ddp_scenario, tmp_path)
    for rank, seen in enumerate((first, second)):
        assert seen["pruned_grads"] == [0.0, 0.0], f"rank {rank}: DDP's reduced gradients came back unmasked"
    assert first["kept_grads"] == second["kept_grads"], "both ranks step on the same reduced gradients"
