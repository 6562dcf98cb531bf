"""``redense(reset_state="all")``: the whole optimizer state restarts fresh at re-dense.

AC/DC resets the momentum buffer of every parameter at each decompression; the ``dsd-reset-state``
ablation asks whether that matters for DSD. The contract: after ``redense(reset_state="all")``
every per-entry state tensor of every parameter in the optimizer (pruned and kept weights, biases,
norms) holds its fresh value, from its own parameter group; the default keeps the kept entries'
state as it was; per-tensor counters (Adam's ``step``) are kept either way; a wrong value is
refused before anything changes.
"""

from __future__ import annotations

import pytest
import torch

import dsd
from tests.engine.test_held_everywhere import frozen, make_net, train

pytestmark = pytest.mark.usefixtures("single_thread")

#: optimizer -> (build it over two parameter groups, {state key: fresh value per group})
OPTIMIZERS = {
    "SGD momentum": (
        lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9, nesterov=True),
        {"momentum_buffer": (0.0, 0.0)},
    ),
    "Adam": (lambda g: torch.optim.Adam(g, lr=1e-3), {"exp_avg": (0.0, 0.0), "exp_avg_sq": (0.0, 0.0)}),
    "Adagrad": (
        lambda g: torch.optim.Adagrad(
            [{**g[0], "initial_accumulator_value": 0.25}, g[1]], lr=0.1, initial_accumulator_value=0.5
        ),
        {"sum": (0.25, 0.5)},
    ),
    "Rprop": (
        lambda g: torch.optim.Rprop([{**g[0], "lr": 0.004}, g[1]], lr=0.01),
        {"prev": (0.0, 0.0), "step_size": (0.004, 0.01)},
    ),
}


def _trained_sparse(name: str):
    """A net, its optimizer over two groups (conv2.weight alone, then the rest) and engine, after
    dense steps, a prune to 50 % and sparse steps."""
    make, _ = OPTIMIZERS[name]
    model = make_net()
    rest = [p for n, p in model.named_parameters() if n != "conv2.weight"]
    optimizer = make([{"params": [model.conv2.weight]}, {"params": rest}])
    engine = dsd.DSD(model, optimizer)
    train(model, optimizer, 3)
    engine.prune(0.5)
    train(model, optimizer, 3, start=3)
    return model, optimizer, engine


def _entry_states(optimizer: torch.optim.Optimizer) -> dict[tuple[str, int], torch.Tensor]:
    return {
        (key, id(p)): value.clone()
        for group in optimizer.param_groups
        for p in group["params"]
        for key, value in optimizer.state[p].items()
        if torch.is_tensor(value) and value.shape == p.shape
    }


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_reset_state_all_restarts_every_entry_of_every_parameter_from_its_groups_fresh_value(
    name: str,
) -> None:
    model, optimizer, engine = _trained_sparse(name)
    _, fresh = OPTIMIZERS[name]
    before = _entry_states(optimizer)
    assert any(not torch.equal(v, torch.full_like(v, fresh[k][1])) for (k, _), v in before.items()), (
        "the dense and sparse steps left no state to reset: the test would prove nothing"
    )
    steps = {id(p): optimizer.state[p].get("step") for p in model.parameters()}
    engine.redense(reset_state="all")
    checked = 0
    for index, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            for key, values in fresh.items():
                state = optimizer.state[p][key]
                assert torch.equal(state, torch.full_like(state, values[index])), (
                    f"{key} of a {list(p.shape)}"
                )
                checked += 1
            if steps[id(p)] is not None:  # Adam's per-tensor counter is not an entry's state
                assert torch.equal(optimizer.state[p]["step"], steps[id(p)])
    assert checked == len(fresh) * len(list(model.parameters()))
    assert engine.history[-1] == {"event": "redense", "reset_state": "all"}
    train(model, optimizer, 2, start=6)
    after = _entry_states(optimizer)
    assert any(not torch.equal(v, torch.full_like(v, fresh[k][1])) for (k, _), v in after.items()), (
        "the state did not fill again after the reset"
    )


@pytest.mark.parametrize("name", ["SGD momentum", "Adam"])
def test_the_default_keeps_the_kept_entries_state_and_restarts_only_the_restored_ones(name: str) -> None:
    """What DSD's engine always did (the ablation's control): kept entries keep their momentum."""
    model, optimizer, engine = _trained_sparse(name)
    masks = frozen(engine.masks)
    before = {n: {k: v.clone() for k, v in optimizer.state[model.get_parameter(n)].items()} for n in masks}
    engine.redense()
    for param_name, mask in masks.items():
        for key, old in before[param_name].items():
            if key == "step":
                continue
            now = optimizer.state[model.get_parameter(param_name)][key]
            assert torch.equal(now[mask], old[mask]), f"{param_name} {key}: a kept entry's state changed"
            assert (now[mask] != 0).any(), f"{param_name} {key}: the kept entries held no state"
            assert torch.equal(now[~mask], torch.zeros_like(now[~mask]))
    assert engine.history[-1] == {"event": "redense"}


def test_an_unknown_reset_state_is_refused_before_anything_changes() -> None:
    _, optimizer, engine = _trained_sparse("SGD momentum")
    before = _entry_states(optimizer)
    with pytest.raises(
        ValueError, match=r"reset_state must be one of \('restored', 'all'\), got 'everything'"
    ):
        engine.redense(reset_state="everything")
    assert engine.is_sparse
    after = _entry_states(optimizer)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
