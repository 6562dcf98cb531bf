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
