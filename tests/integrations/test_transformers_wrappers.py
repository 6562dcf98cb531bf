"""DSDCallback with an optimizer wrapper passed to the ``Trainer``
(``Trainer(optimizers=(wrapper, None))``), which the Trainer wraps again in Accelerate's
``AcceleratedOptimizer`` and steps after ``model.zero_grad()`` only (issue 20, item 2 and the Build
bullet, in the Trainer): timm's real ``Lookahead``, and a wrapper of our own that keeps its slow
weights in its own ``.state``.

Before: with Lookahead, the engine hooked the Lookahead, whose ``step`` runs no hooks until an
``optimizer.zero_grad()`` the Trainer never calls, and zeroed no Adam moment (they live in
``._base_optimizer.state``): the moments revived the pruned weights during the sparse phase
(``MaskLapsedError`` at ``redense()``). The own wrapper was refused (no ``.optimizer``), and with
the engine built on the inner optimizer alone its slow weights revived the pruned ones.
"""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer

from dsd.integrations.transformers import DSDCallback
from dsd.masks import pruned_count
from tests.engine.test_wrappers import (
    SlowWeights,
    lookahead_as_built,  # noqa: F401 (autouse: Lookahead as built)
)
from tests.integrations.test_transformers import (
    S_STEPS,
    SCHEDULE,
    Probe,
    Tokens,
    one_thread,  # noqa: F401 (autouse, module scope: one thread for tiny models)
    tiny_bert,
    training_args,
)

timm_optim = pytest.importorskip("timm.optim")


def timm_lookahead(model: torch.nn.Module):
    optimizer = timm_optim.create_optimizer_v2(model, "lookahead_adamw", lr=1e-3, weight_decay=0.01)
    return optimizer, optimizer._base_optimizer, [optimizer._base_optimizer]


def own_wrapper(model: torch.nn.Module):
    inner = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    optimizer = SlowWeights(inner)  # its slow weights in its own .state, outside the AdamW
    return optimizer, inner, [inner, optimizer]


WRAPPERS = {"timm-lookahead_adamw": timm_lookahead, "own-wrapper": own_wrapper}


class StateAtPrune(Probe):
    """Also records, at the first S step, the largest optimizer state of a pruned entry."""

    def __init__(self, dsd: DSDCallback, model: torch.nn.Module, holders: list) -> None:
        super().__init__(dsd, model)
        self.holders, self.keys, self.state_max = holders, set(), None

    def on_step_begin(self, args, state, control, **kwargs):
        super().on_step_begin(args, state, control, **kwargs)
        if state.global_step == S_STEPS[0]:
            values = [
                (key, float(value[~mask].abs().max()))
                for name, mask in self.dsd.engine.masks.items()
                for holder in self.holders
                for key, value in holder.state[self.params[name]].items()  # .state now: loads replace it
                if torch.is_tensor(value) and value.shape == mask.shape
            ]
            self.keys = {key for key, _ in values}
            self.state_max = max(v for _, v in values)


@pytest.mark.parametrize("make", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_a_trainer_with_an_optimizer_wrapper_holds_the_mask_and_zeroes_the_state(make, tmp_path) -> None:
    model = tiny_bert()
    optimizer, inner, holders = make(model)
    dsd = DSDCallback(SCHEDULE)
    probe = StateAtPrune(dsd, model, holders)
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path),
        train_dataset=Tokens(),
        optimizers=(optimizer, None),
        callbacks=[dsd, probe],
    )
    trainer.train()  # ends with redense() behind it: MaskLapsedError had the mask lapsed

    assert dsd.engine.optimizer is inner
    assert {"exp_avg", "exp_avg_sq"} <= probe.keys and probe.state_max == 0.0
    numel = {t.name: t.numel for t in dsd.engine.tensors}
    in_s = [(g, c) for g, logs, c in probe.logs if "loss" in logs and g - 1 in S_STEPS]
    assert len(in_s) == len(S_STEPS)
    for _, counted in in_s:
        for name, n in numel.items():
            assert counted[name] == pruned_count(n, 0.5), name
