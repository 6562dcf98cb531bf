"""What a task gives the training loop: the adapter interface.

A task (ImageNet CNNs, a captioner, a speech model, a test toy) subclasses ``TaskAdapter`` and
fills in the model, the data, the loss and the evaluation. The loop (``dsd.run.training.loop``) does all the
rest: phases, learning rates, pruning, AMP, clipping, checkpoints, resume, DDP, records.

Evaluation is split so that it is exact under DDP: ``eval_batch`` turns a batch into one small
picklable record per sample (a correct-flag, a caption, a transcript), the loop gathers the
records of every rank in dataset order, and ``compute_metrics`` reduces them once. No sample is
counted twice and none is dropped, whatever the world size.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from dsd.taskkit.config import check_fields, param
from dsd.taskkit.fingerprint import DataFingerprint
from dsd.taskkit.summary import DataSummary

#: Where every task keeps its stand-in and caches unless told otherwise: ``data/<task>``.
CACHE_ROOT = Path("data")


def default_cache_dir(task_name: str, root: Path = CACHE_ROOT) -> Path:
    """A task's cache folder (stand-in data, feature caches, prepared corpora) under ``root``.

    One rule for the adapters' constructors, the command line's ``--cache-dir`` and the scripts
    that rebuild an adapter from a run folder, so they all find the same stand-in.
    """
    return Path(root) / task_name


@dataclass(frozen=True)
class MetricSpec:
    """A metric the task reports: whether higher is better, and how to print it."""

    higher_is_better: bool
    label: str = ""
    percent: bool = False


@dataclass
class TaskConfig:
    """Hyper-parameters every task has. Subclass and re-declare a field to change its default
    (its help text carries over). Fields declared with ``param(..., path=True)`` are locations,
    not hyper-parameters: they are kept out of the run's hash (so moving a dataset never renames
    a run)."""

    recipe: str = param("", "the schedule, e.g. 'D:90@0.1 S30%:45@0.01 D:45@0.001'; empty: the task's")
    batch_size: int = param(32, "samples per batch, per process", bounds=(1, None))
    eval_batch_size: int = param(
        0, "samples per evaluation batch; 0: the training batch size", bounds=(0, None), identity=False
    )
    grad_clip: float = param(0.0, "largest global gradient norm; 0: no clipping", bounds=(0, None))
    workers: int = param(
        -1,
        "DataLoader workers per process; -1: sized to the cores (0 on CPU)",
        bounds=(-1, None),
        identity=False,
    )


class TaskAdapter(abc.ABC):
    """The interface between one task and the loop. Keep implementations thin.

    Class attributes to set:
        name: the registry name (``imagenet``), also the first part of run folder names.
        Config: the task's ``TaskConfig`` subclass; the command line is generated from it.
        metrics: metric name -> ``MetricSpec``; every name ``compute_metrics`` returns.
        primary_metric: the metric the overview table shows.
        data_hint: how to point the task at its real data (the command line's stand-in banner).
    """

    name: ClassVar[str]
    Config: ClassVar[type[TaskConfig]] = TaskConfig
    metrics: ClassVar[dict[str, MetricSpec]]
    primary_metric: ClassVar[str]
    data_hint: ClassVar[str] = ""

    def __init__(
        self, config: TaskConfig | None = None, data_dir: Path | None = None, cache_dir: Path | None = None
    ) -> None:
        """``config``: the task's ``Config`` (None: its defaults). ``data_dir``: the real dataset,
        or None for the stand-in, built under ``cache_dir`` (None: ``default_cache_dir``)."""
        config = self.Config() if config is None else config
        if not isinstance(config, self.Config):
            raise TypeError(f"expected a {self.Config.__name__}, got {type(config).__name__}")
        self.data_dir = None if data_dir is None else Path(data_dir)
        self.cache_dir = default_cache_dir(self.name) if cache_dir is None else Path(cache_dir)
        check_fields(config, bounds=False)
        self.config = self.resolve_config(config)
        check_fields(self.config)

    def resolve_config(self, config: TaskConfig) -> TaskConfig:
        """``config`` as the runs use it: placeholders (a 0 meaning "the dataset's default")
        replaced by their values, and checked (``ConfigError``). The loop, the run record and the
        run's hash all see the returned config. Runs once, in the constructor, after ``data_dir``
        and ``cache_dir`` are set (so ``is_standin`` is known)."""
        return config

    @property
    def is_standin(self) -> bool:
        """Whether this adapter runs on its stand-in (no ``data_dir``) rather than the real data."""
        return self.data_dir is None

    # ------------------------------------------------------------------ identity
    @property
    @abc.abstractmethod
    def dataset_name(self) -> str:
        """Shown on every record and table row: ``ImageNet``, ``digits stand-in``, ..."""

    @property
    @abc.abstractmethod
    def model_name(self) -> str:
        """The architecture, e.g. ``resnet18``; keys the paper's numbers with ``paper_key``."""

    @property
    def paper_key(self) -> str:
        """Key of this task and model in the paper's tables (``dsd/report/published/*.csv``),
        e.g. ``imagenet/resnet18``."""
        return f"{self.name}/{self.model_name}"

    @property
    @abc.abstractmethod
    def default_recipe(self) -> str:
        """Schedule text used when ``config.recipe`` is empty (the paper's, or a stand-in's)."""

    @property
    def description(self) -> dict[str, Any]:
        """Extra facts for the run record (encoder, tokenization, vocabulary size, ...)."""
        return {}

    def setup_notes(self) -> list[str]:
        """Every choice of this run that departs from the paper's setup for the task (a non-paper
        encoder, image size, model width, optimizer, ...), as short phrases. The tables add them to
        the dataset label of every row they affect, so that no such row passes for the paper's."""
        return []

    @abc.abstractmethod
    def data_fingerprint(self) -> DataFingerprint:
        """What identifies the data this task reads (never its path): see ``dsd.taskkit.fingerprint``.
        Called after ``prepare()`` on rank 0; part of every run's hash and record."""

    # ------------------------------------------------------------------ preparation
    def inspect(self) -> DataSummary:
        """The data's splits, sizes and facts as found now, building and writing nothing: the
        checks before a study (``dsd.run.preflight``) and ``dsd-suite plan`` read it. Raise the
        task's ``DataError`` when the data is not there or not laid out as expected.

        The default makes the datasets, counts them and takes the fingerprint, which suits a task
        whose data needs no preparing; a task whose ``prepare()`` builds or verifies data overrides
        it, giving a stand-in's sizes from its specification and listing in ``pending`` what
        preparing would do.
        """
        splits = {"train": len(self.train_dataset())}  # type: ignore[arg-type]
        splits.update({name: len(data) for name, data in self.eval_datasets().items()})  # type: ignore[arg-type]
        return DataSummary(self.dataset_name, splits, fingerprint=self.data_fingerprint())

    def planned_model(self) -> nn.Module | None:
        """A fresh model as the study would train it, built before ``prepare()``, or None where its
        shape depends on what preparing reads (a vocabulary not built yet). The checks before a
        study fit a ``--start`` checkpoint to it; ``dsd-suite plan`` counts its parameters."""
        return self.build_model()

    def prepare(self) -> None:  # noqa: B027 (optional hook)
        """Build what must exist before training (stand-in data, feature caches). Runs on rank 0
        only, before any other method; the other ranks wait for it. Must be idempotent."""

    # ------------------------------------------------------------------ model
    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (weights of the start point are loaded by the loop)."""

    @abc.abstractmethod
    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        """The task's optimizer over ``model``'s trainable parameters."""

    def prune_selection(self) -> dict[str, Any]:
        """Keyword arguments for ``dsd.DSD`` (``include``/``exclude``/``skip_first_conv``)."""
        return {}

    def histogram_tensor(self, model: nn.Module, prunable: Sequence[str]) -> str:
        """The pruned tensor whose weight histograms the figures show (default: the largest)."""
        params = dict(model.named_parameters())
        return max(prunable, key=lambda n: params[n].numel())

    def pretrained_state(self) -> dict[str, torch.Tensor] | None:
        """Published weights to start from instead of training the dense phase, or None."""
        return None

    # ------------------------------------------------------------------ data
    @abc.abstractmethod
    def train_dataset(self) -> Dataset:
        """The training split."""

    @abc.abstractmethod
    def eval_datasets(self) -> dict[str, Dataset]:
        """Evaluation splits by name (``val``; ``dev93``/``eval92``; ``test``). The first one
        is the one reported per epoch; all are evaluated at every phase end."""

    def collate_fn(self) -> Callable[[list[Any]], Any] | None:
        """How samples become a batch (None: PyTorch's default)."""
        return None

    def sample_lengths(self) -> Sequence[int] | None:
        """Per-sample lengths of the training set for length-bucketed batches, or None."""
        return None

    # ------------------------------------------------------------------ steps
    @abc.abstractmethod
    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Mean loss of one batch (already on the device)."""

    @abc.abstractmethod
    def eval_batch(self, model: nn.Module, batch: Any, split: str) -> list[Any]:
        """One small picklable record per sample of the batch, in batch order (eval mode,
        no grad, already on the device)."""

    @abc.abstractmethod
    def compute_metrics(self, split: str, records: list[Any]) -> dict[str, float]:
        """Metrics of a whole split from the records of all its samples, in dataset order."""

    def data_issues(self) -> dict[str, int]:
        """Counts of skipped or repaired inputs (bad images, resampled audio, ...) for the record."""
        return {}

    def skipped_inputs(self) -> dict[str, list[str]]:
        """The inputs left out, by kind (``unreadable images``: their paths, ...). The run record
        keeps the first names of each kind and the count; the console prints one line per kind."""
        return {}

    def write_predictions(self, split: str, records: list[Any], path: Path) -> None:  # noqa: B027
        """Optionally write human-readable predictions (captions, transcripts) to ``path``."""

    def study_figures(self, runs: dict[str, Path], out_dir: Path) -> list[Path]:
        """Task-specific figures of one study (``runs``: method -> run folder of one seed),
        e.g. the captioner's Figure 3 analog. Returns the files written."""
        return []

    def batch_size_of(self, batch: Any) -> int:
        """Samples in a batch, for throughput (default: first dimension of the first tensor)."""
        return _first_tensor(batch).shape[0]

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move a batch to the device (override to add e.g. ``channels_last``)."""
        return move_to_device(batch, device)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Recursively move the tensors of a batch (tuples, lists, dicts) to ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(move_to_device(v, device) for v in batch)
    if hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    return batch


def _first_tensor(batch: Any) -> torch.Tensor:
    if torch.is_tensor(batch):
        return batch
    if isinstance(batch, (str, bytes)) or not hasattr(batch, "__iter__"):
        raise TypeError("not a tensor container")
    values = batch.values() if isinstance(batch, dict) else batch
    for value in values:
        try:
            return _first_tensor(value)
        except TypeError:
            continue
    raise TypeError("batch holds no tensor; override TaskAdapter.batch_size_of")
