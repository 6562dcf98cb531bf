"""A test-only task: a small MLP on synthetic clusters, fast enough to run whole studies in tests.

Processes of their own (a ``dsd-suite`` command, a launched job) find it through the task
registry's environment variable: ``DSD_TASKS=toy=tests.run.toy_task:ToyTask`` (``TOY_TASK_ENV``).

It exercises everything the loop offers a real task: dropout (RNG), an augmentation drawn from
the global RNG in the dataset (so resume must restore RNG state), per-sample evaluation records,
two evaluation splits, predictions written to a file, and hooks to inject a crash, a signal
(SIGTERM, a Ctrl-C's SIGINT, or a SIGKILL that no handler sees) or a NaN at a chosen step.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from dsd.taskkit.adapter import MetricSpec, TaskAdapter, TaskConfig
from dsd.taskkit.config import param
from dsd.taskkit.fingerprint import DataFingerprint, FingerprintBuilder

#: The environment that registers this task in a process of its own (with the repository on
#: ``PYTHONPATH``): ``dsd-suite run toy ...``.
TOY_TASK_ENV = {"DSD_TASKS": "toy=tests.run.toy_task:ToyTask"}


class Clusters(Dataset):
    """Gaussian clusters in 16-d; training samples get random jitter from the global RNG."""

    def __init__(self, n: int, seed: int, jitter: float) -> None:
        gen = torch.Generator().manual_seed(1234)
        self.centers = torch.randn(4, 16, generator=gen) * 0.45
        gen = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 4, (n,), generator=gen)
        self.x = self.centers[self.labels] + torch.randn(n, 16, generator=gen)
        self.jitter = jitter

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        if self.jitter:
            x = x + self.jitter * torch.randn(16)
        return x, self.labels[i]


@dataclass
class ToyConfig(TaskConfig):
    batch_size: int = 16
    workers: int = 0
    hidden: int = 64
    grad_clip: float = 1.0
    data_root: str = ""
    train_samples: int = 160
    # Seconds slept in each training step: a run long enough to watch, cancel or meet. It changes
    # no number the run trains, so it is kept out of the run's identity.
    step_delay: float = param(0.0, "seconds slept per training step", identity=False)


class ToyTask(TaskAdapter):
    name: ClassVar[str] = "toy"
    Config = ToyConfig
    metrics: ClassVar[dict[str, MetricSpec]] = {
        "err": MetricSpec(higher_is_better=False, label="error", percent=True),
        "loss": MetricSpec(higher_is_better=False, label="loss"),
    }
    primary_metric: ClassVar[str] = "err"

    def __init__(
        self, config: TaskConfig | None = None, data_dir: Path | None = None, cache_dir: Path = Path(".")
    ):
        super().__init__(config or ToyConfig(), data_dir, cache_dir)
        self.steps = 0  # training_loss calls of this instance, across all runs of a study
        self.prepared = 0
        self.inject: dict[int, str] = {}  # step -> "crash" | "sigterm" | "sigint" | "kill" | "nan", once

    @property
    def dataset_name(self) -> str:
        return "toy clusters stand-in"

    @property
    def model_name(self) -> str:
        return "mlp"

    @property
    def default_recipe(self) -> str:
        return "D:2@0.05 S50%:2@0.02 D:2@0.005 decay=step:1:0.5"

    def prepare(self) -> None:
        self.prepared += 1

    def build_model(self) -> nn.Module:
        h = self.config.hidden
        return nn.Sequential(
            nn.Linear(16, h), nn.ReLU(), nn.Dropout(0.2), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 4)
        )

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)

    def train_dataset(self) -> Dataset:
        return Clusters(self.config.train_samples, seed=1, jitter=0.1)

    def data_fingerprint(self) -> DataFingerprint:
        """The clusters are a pure function of their sizes and seeds."""
        sizes = {"train": self.config.train_samples, "val": 50, "test": 37}
        return FingerprintBuilder("toy clusters").add_all(sorted(sizes.items())).finish(samples=sizes)

    def eval_datasets(self) -> dict[str, Dataset]:
        return {"val": Clusters(50, seed=2, jitter=0.0), "test": Clusters(37, seed=3, jitter=0.0)}

    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        self.steps += 1
        action = self.inject.pop(self.steps, None)
        if action == "crash":
            raise RuntimeError(f"injected crash at step {self.steps}")
        if action in ("sigterm", "sigint", "kill"):
            os.kill(
                os.getpid(),
                {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT, "kill": signal.SIGKILL}[action],
            )
        if self.config.step_delay:
            time.sleep(self.config.step_delay)
        x, y = batch
        loss = nn.functional.cross_entropy(model(x), y)
        if action == "nan":
            loss = loss * float("nan")
        return loss

    def eval_batch(self, model: nn.Module, batch: Any, split: str) -> list[Any]:
        x, y = batch
        logits = model(x)
        losses = nn.functional.cross_entropy(logits, y, reduction="none")
        return [(int(p == t), float(v)) for p, t, v in zip(logits.argmax(1), y, losses, strict=True)]

    def compute_metrics(self, split: str, records: list[Any]) -> dict[str, float]:
        n = len(records)
        return {
            "err": 100.0 * (1 - sum(r[0] for r in records) / n),
            "loss": sum(r[1] for r in records) / n,
            "count": float(n),
        }

    def write_predictions(self, split: str, records: list[Any], path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{r[0]}\n" for r in records))
