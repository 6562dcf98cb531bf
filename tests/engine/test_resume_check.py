"""A resumed loop that forgets ``engine.load_state_dict(...)`` (issue 20, item 15): warned at its
first optimizer step where the checkpoint shows a sparse phase's fingerprint (pruned weights and
their optimizer state all exactly 0), told the likely cause at ``redense()``; and never a warning on
a normal dense start (fresh, zero or identity initialisations, a pruned pretrained model, a dense
checkpoint resumed with its optimizer).

Before: no warning, and ``redense()`` said only "call prune() first".
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

import dsd
from dsd.errors import PhaseError
from dsd.resume_check import UnrestoredMaskWarning
from tests.engine.test_held_everywhere import loss_of, make_net, train

pytestmark = pytest.mark.usefixtures("single_thread")

OPTIMIZERS: dict[str, Callable] = {
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01),
}


def checkpoint(make_optimizer: Callable, sparse: bool) -> io.BytesIO:
    """A run's checkpoint after 4 dense steps and, if ``sparse``, 3 more in a 50 % sparse phase."""
    model = make_net()
    optimizer = make_optimizer(model.parameters())
    engine = dsd.DSD(model, optimizer)
    train(model, optimizer, 4)
    if sparse:
        engine.prune(0.5)
        train(model, optimizer, 3, start=4)
    buffer = io.BytesIO()
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "dsd": engine.state_dict()}, buffer
    )
    buffer.seek(0)
    return buffer


def resumed(buffer: io.BytesIO, make_optimizer: Callable, restore_engine: bool):
    saved = torch.load(buffer, weights_only=True)
    model = make_net(seed=1)
    optimizer = make_optimizer(model.parameters())
    engine = dsd.DSD(model, optimizer)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if restore_engine:
        engine.load_state_dict(saved["dsd"])
    return model, optimizer, engine


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_resume_that_forgets_the_engine_state_is_warned_at_the_first_step_and_named_at_redense(
    name: str,
) -> None:
    make = OPTIMIZERS[name]
    model, optimizer, engine = resumed(checkpoint(make, sparse=True), make, restore_engine=False)
    with pytest.warns(UnrestoredMaskWarning, match=r"50% of the selected weights .*engine\.load_state_dict"):
        train(model, optimizer, 1, start=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnrestoredMaskWarning)
        train(model, optimizer, 2, start=8)  # once, not at every step
    with pytest.raises(PhaseError, match=r"never pruned; if this run resumed .*engine\.load_state_dict"):
        engine.redense()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_resume_that_restores_the_engine_state_is_not_warned(name: str) -> None:
    make = OPTIMIZERS[name]
    model, optimizer, engine = resumed(checkpoint(make, sparse=True), make, restore_engine=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnrestoredMaskWarning)
        train(model, optimizer, 3, start=7)
    engine.redense()


def _zero_and_identity_init(model: nn.Module) -> None:
    with torch.no_grad():
        nn.init.zeros_(model.fc.weight)
        nn.init.dirac_(model.conv2.weight[:, :4])  # mostly zeros, a few ones
        model.conv2.weight[:, 4:].zero_()


def _pruned_pretrained(model: nn.Module) -> None:
    with torch.no_grad():
        for weight in (model.conv2.weight, model.fc.weight):
            weight[weight.abs() < weight.abs().median()] = 0.0


def _dense_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    saved = torch.load(checkpoint(OPTIMIZERS["adamw"], sparse=False), weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])


DENSE_STARTS = {
    "fresh": lambda model, optimizer: None,
    "zero-and-identity-init": lambda model, optimizer: _zero_and_identity_init(model),
    "pruned-pretrained": lambda model, optimizer: _pruned_pretrained(model),
    "dense-checkpoint": _dense_checkpoint,
}


@pytest.mark.parametrize("start", DENSE_STARTS.values(), ids=DENSE_STARTS.keys())
def test_no_warning_on_a_normal_dense_start(start) -> None:
    model = make_net()
    optimizer = OPTIMIZERS["adamw"](model.parameters())
    engine = dsd.DSD(model, optimizer)
    start(model, optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnrestoredMaskWarning)
        train(model, optimizer, 4, start=4)
        engine.prune(0.5)
        train(model, optimizer, 2, start=8)
    engine.redense()


def test_redense_twice_says_the_phase_already_ended() -> None:
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = dsd.DSD(model, optimizer)
    engine.prune(0.5)
    loss_of(model, 0).backward()
    optimizer.step()
    engine.redense()
    with pytest.raises(PhaseError, match=r"already ended at redense\(\); call prune\(\) first"):
        engine.redense()
