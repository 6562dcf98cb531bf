"""Where a task's data comes from, chosen once: a data source object per origin.

Every task reads its data from one of three origins: the stand-in (built on the fly under the
cache folder), a folder in the real dataset's own layout, or a Hugging Face copy on local disk
(``dsd.taskkit.hf_data``). What differs between them (the dataset's name, how it is prepared and
verified, what ``inspect`` can say before it is, its fingerprint, the inputs left out) lives in
one ``DataSource`` object per origin, which the adapter picks in its constructor
(``choose_source``). The adapter then asks its source instead of branching on the origin in
every method, and keeps only what is the task's own: the model, the loss, the evaluation.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dsd.taskkit import hf_data
from dsd.taskkit.fingerprint import DataFingerprint
from dsd.taskkit.summary import DataSummary

Source = TypeVar("Source", bound="DataSource")


class DataSource(abc.ABC):
    """A task's data from one origin: what the adapter's data methods answer. Each task
    subclasses it once for what its origins share (reading the prepared data), then once per
    origin; the stand-in, a folder built first, usually subclasses the folder's."""

    @property
    @abc.abstractmethod
    def dataset_name(self) -> str:
        """The name on every record and table row (``TaskAdapter.dataset_name``); never a path."""

    @abc.abstractmethod
    def prepare(self) -> None:
        """Build, convert or verify what must exist before training (``TaskAdapter.prepare``);
        idempotent."""

    @abc.abstractmethod
    def inspect(self) -> DataSummary:
        """The data as found now, building and writing nothing (``TaskAdapter.inspect``)."""

    @abc.abstractmethod
    def fingerprint(self) -> DataFingerprint:
        """What identifies the data, never its path (``TaskAdapter.data_fingerprint``)."""

    @abc.abstractmethod
    def skipped_inputs(self) -> dict[str, list[str]]:
        """The inputs left out, by kind (``TaskAdapter.skipped_inputs``)."""

    @abc.abstractmethod
    def data_issues(self) -> dict[str, int]:
        """Counts of skipped or repaired inputs (``TaskAdapter.data_issues``)."""

    @abc.abstractmethod
    def description_facts(self) -> dict[str, Any]:
        """The facts of the run record's ``description`` that are the data's, not the model's."""


def choose_source(
    data_dir: Path | None,
    standin: Callable[[], Source],
    huggingface: Callable[[hf_data.HFSource], Source],
    folder: Callable[[Path], Source],
) -> Source:
    """The source ``data_dir`` names, by one rule for every task: no ``data_dir`` is the stand-in;
    a folder holding a Hugging Face dataset (``hf_data.detect``) is that copy; any other folder is
    read in the dataset's own layout."""
    if data_dir is None:
        return standin()
    found = hf_data.detect(Path(data_dir))
    return folder(Path(data_dir)) if found is None else huggingface(found)
