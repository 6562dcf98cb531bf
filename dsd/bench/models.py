"""What the engine benchmarks run on: the models, their fixed batches, and the sparsity.

Shared by the step-time benchmark (``dsd.bench.engine``) and the ``prune()`` benchmark
(``dsd.bench.prune``), so that both prune at the same sparsity and the quick run shrinks both
the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

SPARSITY = 0.3  # the paper's sparsity for the ImageNet CNNs


@dataclass
class StepModel:
    """A model to time training steps on, with one fixed batch."""

    name: str
    build: Callable[[], nn.Module]
    batch: Callable[[torch.device], tuple[torch.Tensor, torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    batch_dim: int = 0  # the batch's dimension in the inputs and targets (to split it into micro-batches)


class LSTMModel(nn.Module):
    """A 2-layer LSTM over feature frames with a per-frame classifier (a speech-like model)."""

    def __init__(self, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0])


def _frame_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())


def step_models(quick: bool) -> list[StepModel]:
    """ResNet-18 and a 2-layer LSTM, sized so one step on two CPU cores takes about half a second.

    The engine's cost per step is fixed per pruned weight (two passes over the weights and their
    gradients), so the ratio to the dense step falls as the batch grows; the JSON also gives the
    difference in milliseconds."""
    import torchvision

    batch, pixels = (8, 32) if quick else (16, 112)  # quick: 4 micro-batches of 2 (batch norm needs 2)
    steps, lstm_batch, features, hidden = (8, 4, 16, 32) if quick else (50, 32, 256, 512)
    classes = 10 if quick else 100

    def image_batch(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(batch, 3, pixels, pixels, generator=gen)
        return x.to(device), torch.randint(0, 1000, (batch,), generator=gen).to(device)

    def frame_batch(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(2)
        x = torch.randn(steps, lstm_batch, features, generator=gen)
        return x.to(device), torch.randint(0, classes, (steps, lstm_batch), generator=gen).to(device)

    models = [
        StepModel(
            "resnet18",
            lambda: torchvision.models.resnet18(weights=None),
            image_batch,
            nn.functional.cross_entropy,
            {"batch": batch, "pixels": pixels},
        ),
        StepModel(
            "lstm",
            lambda: LSTMModel(features, hidden, classes),
            frame_batch,
            _frame_loss,
            {"layers": 2, "hidden": hidden, "features": features, "steps": steps, "batch": lstm_batch},
            batch_dim=1,  # frames first
        ),
    ]
    if not quick:  # ImageNet's own size, where a step is long and the engine's share small

        def full_batch(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
            gen = torch.Generator().manual_seed(3)
            x = torch.randn(8, 3, 224, 224, generator=gen)
            return x.to(device), torch.randint(0, 1000, (8,), generator=gen).to(device)

        models.append(
            StepModel(
                "resnet18-224px",
                lambda: torchvision.models.resnet18(weights=None),
                full_batch,
                nn.functional.cross_entropy,
                {"batch": 8, "pixels": 224, "rounds_divisor": 3},
            )
        )
    return models


def prune_models(quick: bool) -> dict[str, Callable[[], nn.Module]]:
    """The models ``prune()`` is timed on: VGG-16 and ResNet-50 (quick: two small ones)."""
    import torchvision

    if quick:
        return {
            "mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(weights=None),
            "lstm": lambda: LSTMModel(64, 128, 10),
        }
    return {
        "vgg16": lambda: torchvision.models.vgg16(weights=None),
        "resnet50": lambda: torchvision.models.resnet50(weights=None),
    }
