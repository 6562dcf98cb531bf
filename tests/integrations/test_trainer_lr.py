"""dsd.integrations.trainer_lr on a plain ``LambdaLR``: torch alone, no Trainer, no transformers."""

from __future__ import annotations

import io

import pytest
import torch

from dsd.integrations.trainer_lr import take_over_lr


def two_group_scheduler(factor=lambda step: 0.5) -> torch.optim.lr_scheduler.LambdaLR:
    """SGD with base rates 0.1 and 0.2 under a LambdaLR of a constant factor (a Trainer's shape)."""
    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD([{"params": [layer.weight]}, {"params": [layer.bias], "lr": 0.2}], lr=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def rates_over(scheduler: torch.optim.lr_scheduler.LambdaLR, steps: int) -> list[list[float]]:
    rates = [scheduler.get_last_lr()]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr())
    return rates


def test_rate_is_the_trainers_factor_times_the_schedules_rate():
    scheduler = two_group_scheduler()
    take_over_lr(scheduler, lambda step: 1e-3 if step < 2 else 1e-4)
    # The step about to run gets its rate at once; the second group keeps twice the first's rate.
    expected = [[5e-4, 1e-3], [5e-4, 1e-3], [5e-5, 1e-4], [5e-5, 1e-4]]
    for got, want in zip(rates_over(scheduler, 3), expected, strict=True):
        assert got == pytest.approx(want)
    assert [group["lr"] for group in scheduler.optimizer.param_groups] == pytest.approx(expected[-1])


def test_taking_over_twice_wraps_the_trainers_lambda_not_ours():
    scheduler = two_group_scheduler()
    take_over_lr(scheduler, lambda step: 1e-3)
    take_over_lr(scheduler, lambda step: 1e-2)
    assert scheduler.get_last_lr() == pytest.approx([5e-3, 1e-2])


def test_scheduler_state_stays_loadable_weights_only():
    scheduler = two_group_scheduler()
    take_over_lr(scheduler, lambda step: 1e-3)
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["last_epoch"] == 0


def test_schedulers_it_cannot_drive_are_refused():
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(TypeError, match="set_lr=False"):
        take_over_lr(torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer), lambda step: 1e-3)
    zero = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.0)
    with pytest.raises(ValueError, match=r"base learning rate 0\.0"):
        take_over_lr(torch.optim.lr_scheduler.LambdaLR(zero, lambda step: 1.0), lambda step: 1e-3)
