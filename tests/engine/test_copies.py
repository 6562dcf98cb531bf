"""``engine.apply_masks(copy)``: an EMA copy of the model kept sparse through the sparse phase,
with timm's real ``ModelEmaV3`` and the ``AveragedModel`` EMA of torchvision's reference
``train.py --model-ema`` (issue 20, item 14). Before: ``apply_masks()`` took no copy
(``TypeError``), and an EMA built before ``prune()`` stayed dense through the whole phase.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

import dsd
from dsd.errors import ConfigError
from tests.engine.test_held_everywhere import SmallNet, frozen, loss_of, make_net

model_ema = pytest.importorskip("timm.utils.model_ema")

pytestmark = pytest.mark.usefixtures("single_thread")


class ExponentialMovingAverage(AveragedModel):
    """The EMA torchvision's reference ``train.py`` builds for ``--model-ema`` (the class lives in
    its ``references/classification/utils.py``, not in the torchvision package): an
    ``AveragedModel`` of parameters and buffers, averaged with an exponential decay."""

    def __init__(self, model: nn.Module, decay: float, device: str = "cpu") -> None:
        super().__init__(model, device, get_ema_avg_fn(decay), use_buffers=True)


def timm_ema(model: nn.Module) -> tuple[nn.Module, Callable[[int], None]]:
    ema = model_ema.ModelEmaV3(model, decay=0.9)
    return ema, lambda step: ema.update(model, step=step)


def torchvision_ema(model: nn.Module) -> tuple[nn.Module, Callable[[int], None]]:
    ema = ExponentialMovingAverage(model, decay=0.9)
    return ema, lambda step: ema.update_parameters(model)


EMAS = {"timm-ModelEmaV3": timm_ema, "torchvision-model-ema": torchvision_ema}


def pruned_in(copy: nn.Module, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([copy.module.get_parameter(n).detach()[~m] for n, m in masks.items()])


def kept_in(copy: nn.Module, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([copy.module.get_parameter(n).detach()[m] for n, m in masks.items()])


def train_with_ema(model, optimizer, update, steps: int, start: int, after_update=None) -> None:
    for i in range(start, start + steps):
        optimizer.zero_grad()
        loss_of(model, i).backward()
        optimizer.step()
        update(i)
        if after_update is not None:
            after_update(i)


@pytest.mark.parametrize("make_ema", EMAS.values(), ids=EMAS.keys())
def test_apply_masks_keeps_an_ema_copy_as_sparse_as_the_model(make_ema) -> None:
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    engine = dsd.DSD(model, optimizer)
    ema, update = make_ema(model)  # built before prune(), as the training scripts do
    train_with_ema(model, optimizer, update, 4, 0)
    engine.prune(0.5)
    masks = frozen(engine.masks)
    left_dense = []

    def keep_sparse(step: int) -> None:
        engine.apply_masks(ema)  # the one line, after each EMA update while sparse
        if torch.count_nonzero(pruned_in(ema, masks)):
            left_dense.append(step)

    train_with_ema(model, optimizer, update, 6, 4, after_update=keep_sparse)
    assert left_dense == []
    assert torch.count_nonzero(kept_in(ema, masks)) == kept_in(ema, masks).numel()  # the rest averages on
    engine.redense()
    engine.apply_masks(ema)  # dense: changes nothing
    train_with_ema(model, optimizer, update, 2, 10)
    assert torch.count_nonzero(pruned_in(ema, masks)) > 0.9 * pruned_in(ema, masks).numel()


@pytest.mark.parametrize("make_ema", EMAS.values(), ids=EMAS.keys())
def test_without_apply_masks_the_ema_copy_stays_dense(make_ema) -> None:
    """Why the line is needed: the EMA's pruned entries shrink by ``decay`` per update, never to 0."""
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    engine = dsd.DSD(model, optimizer)
    ema, update = make_ema(model)
    train_with_ema(model, optimizer, update, 4, 0)
    engine.prune(0.5)
    masks = frozen(engine.masks)
    train_with_ema(model, optimizer, update, 6, 4)
    assert torch.count_nonzero(pruned_in(ema, masks)) == pruned_in(ema, masks).numel()


class Wider(SmallNet):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6 * 4 * 4, 7)


class Renamed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = SmallNet()


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (lambda: Wider(), r"'fc\.weight' of the copy has shape \[7, 96\], the model's \[5, 96\]"),
        (lambda: Renamed(), r"Renamed given has no tensor 'conv2\.weight' \(nor 1 more"),
        (lambda: model_ema.ModelEmaV3(Wider()), r"'fc\.weight' of the copy has shape \[7, 96\]"),
    ],
    ids=["other-shape", "other-names", "ema-of-another-model"],
)
def test_a_copy_of_another_model_is_refused_naming_the_tensor(other, message: str) -> None:
    model = make_net()
    engine = dsd.DSD(model, torch.optim.SGD(model.parameters(), lr=0.1))
    copy = other()
    before = {k: v.clone() for k, v in copy.state_dict().items()}
    with pytest.raises(ConfigError, match=message):
        engine.apply_masks(copy)  # refused while dense too, from the first call
    engine.prune(0.5)
    with pytest.raises(ConfigError, match=message):
        engine.apply_masks(copy)
    assert all(torch.equal(v, before[k]) for k, v in copy.state_dict().items())
