"""What a task's data holds, read before anything is built.

A study refuses what cannot work before it spends time: a batch larger than the training set,
a start checkpoint of another model, data that is not there. Those checks (``dsd.run.preflight``)
and ``dsd-suite plan`` need the data's splits and sizes, yet must not build a stand-in, verify
images or extract features to learn them. So each task describes its data cheaply
(``TaskAdapter.inspect``): sizes read from listings and annotation files, or implied by the
stand-in's specification when it is not built yet, and what preparing would still do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsd.taskkit.fingerprint import DataFingerprint


@dataclass
class DataSummary:
    """A task's data as found: its splits (the training split first) and what is still to do."""

    description: str  # what and where, e.g. "ImageNet at /datasets/imagenet"
    splits: dict[str, int | None]  # samples per split, training split first; None: known once prepared
    unit: str = "samples"  # what one training sample is: images, captions, utterances
    eval_unit: str = ""  # what one evaluation sample is, where it differs (captioning: images)
    facts: dict[str, Any] = field(default_factory=dict)  # classes, vocabulary, hours, ...
    pending: list[str] = field(default_factory=list)  # what preparing would still build or check
    implied: bool = False  # sizes implied by the stand-in's specification, not read from disk
    fingerprint: DataFingerprint | None = None  # None: known only once the data is prepared

    @property
    def train_split(self) -> str:
        return next(iter(self.splits))

    @property
    def train_samples(self) -> int | None:
        return self.splits[self.train_split]
