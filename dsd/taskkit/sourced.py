"""A task whose data comes from one of three origins: the adapter that asks its data source.

``SourcedTask`` opens the source once, in the constructor, by the one rule of
``dsd.taskkit.sources.choose_source``, and answers every data question of the ``TaskAdapter``
interface (name, preparation, inspection, fingerprint, skipped and repaired inputs) by asking it.
A task says only how each origin's source is made (``source_makers``, given the same
``source_arguments``) and keeps what is its own: model, loss, evaluation.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dsd.taskkit.adapter import TaskAdapter, TaskConfig
from dsd.taskkit.fingerprint import DataFingerprint
from dsd.taskkit.sources import DataSource, choose_source
from dsd.taskkit.summary import DataSummary


@dataclass(frozen=True)
class SourceMakers:
    """How a task makes the source of each origin, each given the task's ``source_arguments()``
    after what locates the data: ``standin(*args)``, ``huggingface(found, *args)`` with the copy
    ``hf_data.detect`` found, ``folder(root, *args)`` with the dataset's own folder."""

    standin: Callable[..., DataSource]
    huggingface: Callable[..., DataSource]
    folder: Callable[..., DataSource]


class SourcedTask(TaskAdapter):
    """A ``TaskAdapter`` whose data methods are its source's (``self.source``).

    Class attribute to set, beside ``TaskAdapter``'s: ``source_makers``."""

    source_makers: ClassVar[SourceMakers]
    source: Any  # the task's DataSource subclass; Any so that each task sees its own methods

    def __init__(
        self, config: TaskConfig | None = None, data_dir: Path | None = None, cache_dir: Path | None = None
    ) -> None:
        """As ``TaskAdapter``; then the source ``data_dir`` names, made once (after the config is
        resolved, which the sources read)."""
        super().__init__(config, data_dir, cache_dir)
        makers, args = self.source_makers, self.source_arguments()
        self.source = choose_source(
            self.data_dir,
            standin=lambda: makers.standin(*args),
            huggingface=lambda found: makers.huggingface(found, *args),
            folder=lambda root: makers.folder(root, *args),
        )

    @abc.abstractmethod
    def source_arguments(self) -> tuple[Any, ...]:
        """What every origin's source is made with, after its location (the cache folder, the
        resolved config or the parts of it the sources read)."""

    # ------------------------------------------------------------------ asked of the source
    @property
    def dataset_name(self) -> str:
        return self.source.dataset_name

    def prepare(self) -> None:
        """Whatever the source builds, converts or verifies before training (idempotent)."""
        self.source.prepare()

    def inspect(self) -> DataSummary:
        """The data as the source finds it now, building nothing."""
        return self.source.inspect()

    def data_fingerprint(self) -> DataFingerprint:
        return self.source.fingerprint()

    def skipped_inputs(self) -> dict[str, list[str]]:
        return self.source.skipped_inputs()

    def data_issues(self) -> dict[str, int]:
        return self.source.data_issues()
