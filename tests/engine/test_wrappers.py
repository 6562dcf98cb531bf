"""The engine inside optimizer wrappers that keep the real optimizer, and its state, under
attributes of their own: timm's real ``Lookahead`` (``._base_optimizer``; it skips
``Optimizer.__init__``, and its slow weights live in the base optimizer's state), Accelerate around
it, and a wrapper of our own with unusual attribute names that keeps state in its own ``.state``.

Each test failed on the engine before the search for optimizers (issue 20, item 2): the failure is
named in its docstring.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest
import torch
from torch import nn

import dsd
from dsd.errors import ConfigError
from tests.engine.test_held_everywhere import frozen, loss_of, make_net

timm_optim = pytest.importorskip("timm.optim")
from timm.optim.lookahead import Lookahead  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")
LOOKAHEADS = ["lookahead_adamw", "lookahead_sgd"]


@pytest.fixture(autouse=True)
def lookahead_as_built():
    """timm's ``Lookahead`` skips ``Optimizer.__init__``, so its class's ``step`` runs step hooks
    only once a first ``optimizer.zero_grad()`` has patched it (torch patches it lazily there), for
    the rest of the process. Every test here starts from the unpatched class, as a fresh process
    does, whatever ran before, and leaves the class as it found it."""
    step = Lookahead.step
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Lookahead, "step", step.__wrapped__ if getattr(step, "hooked", False) else step)
        yield


def lookahead(model: nn.Module, name: str) -> torch.optim.Optimizer:
    """timm's own factory, as timm's train.py builds it (``--opt lookahead_adamw``; k=6, alpha=0.5)."""
    optimizer = timm_optim.create_optimizer_v2(model, name, lr=0.05, momentum=0.9, weight_decay=1e-4)
    assert isinstance(optimizer, Lookahead)
    return optimizer


def run(
    model: nn.Module, optimizer, steps: int, start: int, zero: str, check: Callable | None = None
) -> None:
    """``steps`` training steps; ``zero`` says what the loop clears: ``"optimizer"`` calls
    ``optimizer.zero_grad()``, ``"model"`` only ``model.zero_grad()``, ``"none"`` nothing (the
    gradients accumulate). ``check`` runs after every step."""
    for i in range(start, start + steps):
        if zero == "optimizer":
            optimizer.zero_grad()
        elif zero == "model":
            model.zero_grad()
        loss_of(model, i).backward()
        optimizer.step()
        if check is not None:
            check(i)


def pruned(model: nn.Module, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([model.get_parameter(n).detach()[~m] for n, m in masks.items()])


def assert_pruned_state(
    model: nn.Module, holder: dict, masks: dict[str, torch.Tensor], keys: set[str]
) -> None:
    """Every per-entry state tensor of a pruned tensor is 0 at its pruned entries; ``keys`` are there."""
    for name, mask in masks.items():
        param = model.get_parameter(name)
        entries = {k: v for k, v in holder[param].items() if torch.is_tensor(v) and v.shape == param.shape}
        assert keys <= set(entries), (name, sorted(entries))
        for key, value in entries.items():
            assert torch.count_nonzero(value[~mask]) == 0, f"{name} {key}: pruned entries not 0"


# ----------------------------------------------------------------------------- timm's Lookahead
@pytest.mark.parametrize("name", LOOKAHEADS)
def test_lookahead_state_of_pruned_entries_is_zeroed_at_prune_and_restarts_at_redense(name: str) -> None:
    """Before: the engine looked for state in ``Lookahead.state`` (empty), so the Adam moments,
    the momentum and the slow weights of pruned entries survived ``prune()`` and ``redense()``: two
    steps after re-dense (one slow update) the formerly pruned weights sat at 0.25 x their
    pre-prune values, instead of restarting from zero."""
    model = make_net()
    optimizer = lookahead(model, name)
    engine = dsd.DSD(model, optimizer)
    run(model, optimizer, 12, 0, "optimizer")  # two slow updates (k=6): the slow buffers exist
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    engine.prune(0.5)
    masks = frozen(engine.masks)
    state = optimizer._base_optimizer.state
    keys = {"lookahead_slow_buff"} | ({"exp_avg", "exp_avg_sq"} if "adam" in name else {"momentum_buffer"})
    assert_pruned_state(model, state, masks, keys)
    run(model, optimizer, 10, 12, "optimizer")
    assert torch.count_nonzero(pruned(model, masks)) == 0
    assert_pruned_state(model, state, masks, keys)
    engine.redense()
    assert_pruned_state(model, state, masks, keys)  # fresh state: 0 for every one of these keys

    for group in optimizer.param_groups:
        group["lr"] = 0.005  # DSD's last phase trains at a lower rate
    run(model, optimizer, 2, 22, "optimizer")  # the second step is a slow update
    now, then = pruned(model, masks), torch.cat([before[n][~m] for n, m in masks.items()])
    slope = float((now * then).sum() / (then * then).sum())  # 0.25 when the slow weights survived
    assert abs(slope) < 0.05, f"formerly pruned weights follow their pre-prune values (slope {slope:.3f})"
    assert float(now.abs().max()) < 0.2 * float(then.abs().mean())


@pytest.mark.parametrize("zero", ["model", "none"])
@pytest.mark.parametrize("name", LOOKAHEADS)
def test_lookahead_holds_the_mask_from_the_first_step_whatever_the_loop_zeroes(name: str, zero: str) -> None:
    """Before: the hooks sat on the Lookahead, whose ``step`` runs none until a first
    ``optimizer.zero_grad()``; a loop calling only ``model.zero_grad()`` (or nothing) trained the
    whole sparse phase dense, found only at ``redense()`` (MaskLapsedError, "stepped 0 times")."""
    model = make_net()
    optimizer = lookahead(model, name)
    engine = dsd.DSD(model, optimizer)
    engine.prune(0.5)  # before the very first step
    masks = frozen(engine.masks)
    moved: list[int] = []

    def held(step: int) -> None:
        if torch.count_nonzero(pruned(model, masks)):
            moved.append(step)

    run(model, optimizer, 14, 0, zero, check=held)  # two slow updates inside the sparse phase
    assert moved == [], f"pruned weights moved at steps {moved}"
    engine.redense()
    run(model, optimizer, 2, 14, zero)
    assert torch.count_nonzero(pruned(model, masks)) > 0.9 * pruned(model, masks).numel()


def test_accelerate_around_lookahead_is_seen_through_to_the_base_optimizer() -> None:
    """Two levels: ``AcceleratedOptimizer.optimizer._base_optimizer``. Before: the engine hooked
    the Lookahead and read its empty state, as above."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    try:
        accelerator = Accelerator(cpu=True)
        model = make_net()
        wrapped = accelerator.prepare_optimizer(lookahead(model, "lookahead_adamw"))
        engine = dsd.DSD(model, wrapped)
        run(model, wrapped, 6, 0, "model")
        engine.prune(0.5)
        masks = frozen(engine.masks)
        state = wrapped.optimizer._base_optimizer.state
        assert_pruned_state(model, state, masks, {"exp_avg", "exp_avg_sq", "lookahead_slow_buff"})
        run(model, wrapped, 7, 6, "model")
        assert torch.count_nonzero(pruned(model, masks)) == 0
        engine.redense()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


# ----------------------------------------------------------------------------- a wrapper of our own
class SlowWeights(torch.optim.Optimizer):
    """A wrapper as people write them (after lookahead.pytorch): skips ``Optimizer.__init__``,
    keeps the real optimizer under a name of its own, and its slow weights in its *own* ``.state``."""

    def __init__(self, fast: torch.optim.Optimizer, k: int = 3, alpha: float = 0.5) -> None:
        self.the_fast_one = fast
        self.param_groups = fast.param_groups
        self.state = defaultdict(dict)
        self.k, self.alpha, self.steps = k, alpha, 0

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.the_fast_one.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for group in self.param_groups:
                for p in group["params"]:
                    slow = self.state[p].setdefault("slow", p.detach().clone())
                    slow.add_(p - slow, alpha=self.alpha)
                    p.copy_(slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.the_fast_one.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:  # the fast optimizer's, as timm's Lookahead saves (Accelerate asks)
        return self.the_fast_one.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.the_fast_one.load_state_dict(state_dict)


class Loop:
    """Not an optimizer: a training helper that keeps one in a list under an odd name."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self._stepper_chain = [optimizer]

    def step(self) -> None:
        self._stepper_chain[0].step()


def test_own_wrapper_with_unusual_names_has_its_state_found_two_levels_down() -> None:
    """Before: ``ConfigError: DSD needs a torch.optim optimizer (one with step hooks), got Loop``
    (the engine looked through ``.optimizer`` and ``.optim`` only)."""
    model = make_net()
    sgd = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    slow = SlowWeights(sgd)
    loop = Loop(slow)
    engine = dsd.DSD(model, loop)
    assert engine.optimizer is sgd
    run(model, loop, 6, 0, "model")
    engine.prune(0.5)
    masks = frozen(engine.masks)
    assert_pruned_state(model, slow.state, masks, {"slow"})
    assert_pruned_state(model, sgd.state, masks, {"momentum_buffer"})
    run(model, loop, 6, 6, "model")
    assert torch.count_nonzero(pruned(model, masks)) == 0
    engine.redense()
    assert_pruned_state(model, slow.state, masks, {"slow"})


class Split:
    """Two optimizers, each over part of the model (as Muon-for-matrices + AdamW setups do)."""

    def __init__(self, model: nn.Module) -> None:
        convs = [p for n, p in model.named_parameters() if n.startswith("conv")]
        rest = [p for n, p in model.named_parameters() if not n.startswith("conv")]
        self.for_convs = torch.optim.SGD(convs, lr=0.1)
        self.for_the_rest = torch.optim.AdamW(rest, lr=0.1)


def test_optimizers_that_each_update_part_of_the_model_are_refused_naming_the_attributes() -> None:
    """Before: ``DSD needs a torch.optim optimizer (one with step hooks), got Split``, naming
    neither optimizer."""
    model = make_net()
    split = Split(model)
    with pytest.raises(ConfigError, match=r"optimizer\.for_convs .*optimizer\.for_the_rest"):
        dsd.DSD(model, split)
    engine = dsd.DSD(model, split.for_convs, include="conv2.weight")  # what the message advises
    assert engine.optimizer is split.for_convs
