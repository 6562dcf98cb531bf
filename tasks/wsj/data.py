"""Utterances from a manifest to padded feature batches, with bad input filtered and counted.

Filtered up front (counted in ``SpeechDataset.issues``, the first one named in a warning):

* ``transcript_outside_alphabet``: a transcript holding a character without a label;
* ``empty_transcript``: nothing to recognise;
* ``too_short_for_ctc``: fewer model output frames than CTC needs for the transcript (its
  length plus its adjacent repeats, ``tasks.wsj.ctc.frames_needed``), judged from the
  manifest's duration: such an utterance has an infinite loss.

Counted, not filtered: ``resampled_audio``, files whose sample rate is not 16 kHz (known from
the manifest's ``sample_rate`` when present); they are resampled on reading, with one warning.
An audio file that cannot be read when a batch needs it raises ``AudioError`` naming it.

Features are computed on first use and, when the whole split's would fit in
``FEATURE_CACHE_BYTES`` (the stand-in's 3,000 utterances: about 0.3 GB; WSJ's 81 hours would
need about 19 GB, so never), kept in memory for every later epoch and run of the process: the
same tensors the computation gives, so results are identical with or without the cache.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from dsd.errors import DataError
from tasks.wsj import audio as audiolib
from tasks.wsj.ctc import frames_needed
from tasks.wsj.features import N_BINS, SAMPLE_RATE, LogSpectrogram, frames_of_duration
from tasks.wsj.manifest import Utterance
from tasks.wsj.text import encode, outside_alphabet

#: Largest split (float32 features, estimated from the manifest's durations) kept in memory.
FEATURE_CACHE_BYTES = 1 << 30


class SpeechDataset(Dataset):
    """Features and labels of the usable utterances of one split.

    Args:
        utterances: the split's manifest.
        output_frames: model output frames for a number of input frames (CTC feasibility).
        name: the split's name, for messages.
        sort_by_length: order by duration (evaluation: similar lengths share a batch).
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        output_frames: Callable[[int], int],
        name: str,
        sort_by_length: bool = False,
    ) -> None:
        self.name = name
        self.issues: Counter[str] = Counter()
        self.skipped: dict[str, list[str]] = {}  # problem -> the utterances left out
        first_bad: dict[str, str] = {}
        kept: list[tuple[Utterance, list[int]]] = []
        for utt in utterances:
            problem = None
            if not utt.text.strip():
                problem = "empty_transcript"
            elif outside_alphabet(utt.text):
                problem = "transcript_outside_alphabet"
            else:
                labels = encode(utt.text)
                if output_frames(frames_of_duration(utt.duration)) < frames_needed(labels):
                    problem = "too_short_for_ctc"
            if problem:
                self.issues[problem] += 1
                self.skipped.setdefault(problem.replace("_", " "), []).append(f"{utt.id} ({utt.audio.name})")
                first_bad.setdefault(problem, f"{utt.id} ({utt.audio.name}): {utt.text[:60]!r}")
                continue
            kept.append((utt, labels))
            if utt.sample_rate not in (None, SAMPLE_RATE):
                self.issues["resampled_audio"] += 1
                first_bad.setdefault("resampled_audio", f"{utt.audio} at {utt.sample_rate} Hz")
        for problem, example in first_bad.items():
            action = "resampled to 16 kHz on reading" if problem == "resampled_audio" else "skipped"
            count = self.issues[problem]
            warnings.warn(f"{name}: {count} utterance(s) {action}, {problem}; first: {example}", stacklevel=2)
        if not kept:
            raise DataError(f"{name}: no usable utterance (skipped: {dict(self.issues)})")
        if sort_by_length:
            kept.sort(key=lambda item: (item[0].duration, item[0].id))
        self.utterances = [u for u, _ in kept]
        self.labels = [torch.tensor(lab, dtype=torch.long) for _, lab in kept]
        self.features = LogSpectrogram()
        size = sum(self.frame_lengths()) * N_BINS * 4
        self._cache: dict[int, torch.Tensor] | None = {} if size <= FEATURE_CACHE_BYTES else None

    def __len__(self) -> int:
        return len(self.utterances)

    def frame_lengths(self) -> list[int]:
        """Input frames per utterance, from the manifest (for length-bucketed batches)."""
        return [frames_of_duration(u.duration) for u in self.utterances]

    def __getitem__(self, index: int) -> dict[str, Any]:
        utt = self.utterances[index]
        features = self._cache.get(index) if self._cache is not None else None
        if features is None:
            samples, rate = audiolib.read_audio(utt.audio)
            samples = audiolib.resample(samples, rate)
            with torch.no_grad():
                features = self.features(torch.from_numpy(samples))
            if self._cache is not None:
                self._cache[index] = features
        return {"features": features, "labels": self.labels[index], "text": utt.text, "id": utt.id}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Zero-padded features (batch, frames, 161), their lengths, concatenated labels."""
    lengths = torch.tensor([s["features"].shape[0] for s in samples], dtype=torch.long)
    features = torch.zeros(len(samples), int(lengths.max()), samples[0]["features"].shape[1])
    for i, sample in enumerate(samples):
        features[i, : lengths[i]] = sample["features"]
    return {
        "features": features,
        "lengths": lengths,
        "targets": torch.cat([s["labels"] for s in samples]),
        "target_lengths": torch.tensor([len(s["labels"]) for s in samples], dtype=torch.long),
        "texts": [s["text"] for s in samples],
        "ids": [s["id"] for s in samples],
    }
