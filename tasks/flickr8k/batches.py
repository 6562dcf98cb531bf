"""The captioner's data once read: datasets over the precomputed image features, and batching.

Every image is encoded once (``tasks.flickr8k.features``), so a sample is a row of one feature
table in memory plus a caption's word ids; no worker process or disk read is involved per step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from tasks.flickr8k import corpus, features
from tasks.flickr8k.text import END_ID, PAD_ID, START_ID, Vocabulary


@dataclass
class PreparedData:
    """Everything read from disk once: the corpus, its vocabulary and the image features."""

    corpus: corpus.Corpus
    vocab: Vocabulary
    table: features.FeatureTable


class TrainCaptions(Dataset):
    """One sample per training caption: (image feature, word ids)."""

    def __init__(self, feats: torch.Tensor, samples: list[tuple[int, torch.Tensor]]) -> None:
        self.feats, self.samples = feats, samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row, ids = self.samples[i]
        return self.feats[row], ids


class EvalImages(Dataset):
    """One sample per image of an evaluation split: (image feature, position in the split)."""

    def __init__(self, feats: torch.Tensor, rows: list[int]) -> None:
        self.feats, self.rows = feats, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.feats[self.rows[i]], i


def collate(items: list[tuple[torch.Tensor, Any]]) -> dict[str, torch.Tensor]:
    """Training: features, ``<start>``-shifted inputs and ``<end>``-terminated targets, padded.
    Evaluation: features and the images' positions in their split."""
    feats = torch.stack([f for f, _ in items])
    if isinstance(items[0][1], int):
        return {"features": feats, "index": torch.tensor([i for _, i in items])}
    length = max(len(ids) for _, ids in items) + 1
    inputs = torch.full((len(items), length), PAD_ID, dtype=torch.long)
    targets = torch.full((len(items), length), PAD_ID, dtype=torch.long)
    for row, (_, ids) in enumerate(items):
        inputs[row, 0] = START_ID
        inputs[row, 1 : len(ids) + 1] = ids
        targets[row, : len(ids)] = ids
        targets[row, len(ids)] = END_ID
    return {"features": feats, "inputs": inputs, "targets": targets}


def standardized(table: features.FeatureTable, train_names: list[str]) -> features.FeatureTable:
    """The table with every feature shifted and scaled to zero mean and unit variance over the
    training images (statistics from training images only, so nothing leaks from val / test)."""
    train = table.features[[table.row[n] for n in train_names]]
    mean, std = train.mean(0, keepdim=True), train.std(0, correction=0, keepdim=True)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # constant features: centred only
    return dataclasses.replace(table, features=(table.features - mean) / std)
