"""ImageNet as Hugging Face holds it: ``ILSVRC/imagenet-1k``'s parquet shards, a hub cache
snapshot of them, or a ``save_to_disk`` copy (``dsd.taskkit.hf_data`` finds which).

Columns: ``image`` (the encoded JPEG, a ``datasets`` ``Image``) and ``label`` (a ``ClassLabel``,
whose order is the sorted-wnid order torchvision's weights use; a plain integer column works too).
Splits: ``train``, and ``validation`` for evaluation (``test`` has no labels and is not read).

The same checks as the ImageFolder tree, at the same moments: the splits, shards and columns on
every start (from the shards' footers, cheap); every image decoded once by a verify pass over the
memory-mapped rows, its verdict cached in a small file keyed by the shards' names, sizes and
modification times. An image that does not decode stops the run naming its shard and row, or is
left out and counted with ``--skip-bad-images``. Images are decoded from the stored bytes with PIL
and go through the same transforms as the tree's (``tasks.imagenet.data``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from dsd import files
from dsd.taskkit import hf_data
from dsd.taskkit.fingerprint import DataFingerprint, FingerprintBuilder
from dsd.taskkit.hf_data import HFDataError, HFSource, HFSplit
from tasks.imagenet.data import SPLITS, ImageReadError, check_image

#: The task's splits and the names a Hugging Face copy may give them, the first preferred.
ROLES = {"train": ("train",), "val": ("validation", "val", "valid")}
COLUMNS = {
    "image": "the encoded image, a datasets Image",
    "label": "the class index, a datasets ClassLabel or an integer",
}
INDEX_FOLDER = "imagenet-hf-index"
INDEX_VERSION = 1


@dataclass
class HFImageIndex:
    """The dataset's splits, classes and, once verified, the images that do not decode."""

    source: HFSource
    splits: dict[str, HFSplit]  # "train" / "val" -> the Hugging Face split
    rows: dict[str, list[int]]  # rows per shard, per split
    classes: list[str]
    bad: dict[str, dict[int, str]] = field(default_factory=dict)  # split -> row -> why

    @property
    def root(self) -> Path:
        return self.source.root

    def size(self, split: str) -> int:
        return sum(self.rows[split])

    def where(self, split: str, row: int) -> str:
        return hf_data.locate(self.source, self.splits[split], self.rows[split], row)

    def bad_names(self) -> dict[str, str]:
        """``data/train-00003-of-00257.parquet row 17`` -> why, over both splits."""
        return {self.where(s, row): why for s in SPLITS for row, why in sorted(self.bad.get(s, {}).items())}

    def bad_in(self, split: str) -> list[int]:
        return sorted(self.bad.get(split, {}))

    def kept(self, split: str) -> int:
        return self.size(split) - len(self.bad_in(split))

    def listing_key(self) -> str:
        return hf_data.listing_key(self.source, [self.splits[s] for s in SPLITS])


def open_index(source: HFSource) -> HFImageIndex:
    """Splits, shards (footers read: a truncated one is named) and columns checked; the classes
    read from the label feature. No image is read."""
    splits = hf_data.resolve_splits(source, ROLES)
    rows = {role: hf_data.check_shards(source, split) for role, split in splits.items()}
    for split in splits.values():
        schema = hf_data.read_schema(source, split)
        where = f"split {split.name!r} of {source.describe()} (shard {source.relative(split.files[0])})"
        hf_data.require_columns(where, schema.names, COLUMNS)
    return HFImageIndex(source, splits, rows, _classes(source, splits["train"]))


def _classes(source: HFSource, split: HFSplit) -> list[str]:
    """The ``ClassLabel``'s names; for a plain integer label, ``0 .. max`` over the training
    split's label column (a small read)."""
    label = hf_data.features_of(hf_data.read_schema(source, split)).get("label")
    names = getattr(label, "names", None)
    if names:
        return list(names)
    labels = hf_data.read_columns(source, split, ["label"])["label"].to_numpy()
    return [str(i) for i in range(int(labels.max()) + 1)]


# ---------------------------------------------------------------------- the verify pass
def _index_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / INDEX_FOLDER / f"{key}.json"


def cached_verdict(index: HFImageIndex, cache_dir: Path) -> dict[str, dict[int, str]] | None:
    """The verify pass's verdict on exactly these shards, or None when not verified since they changed."""
    key = index.listing_key()
    path = _index_path(cache_dir, key)
    if path.is_file():
        payload = files.read_json(path)
        if payload.get("version") == INDEX_VERSION and payload.get("key") == key:
            return {s: {int(r): why for r, why in bad.items()} for s, bad in payload["bad"].items()}
    return None


def _check_row(row: dict[str, Any]) -> str | None:
    data = hf_data.stored_bytes(row["image"])
    if data is None:
        return "no image bytes in the row"
    return check_image(io.BytesIO(data))


def verify_images(index: HFImageIndex, cache_dir: Path, workers: int, verify: bool = True) -> HFImageIndex:
    """The index with the verify pass's verdict (cached, or made now and cached). ``verify=False``
    reads only a cached verdict and otherwise assumes every image is good."""
    known = cached_verdict(index, cache_dir)
    if known is not None or not verify:
        index.bad = known or {}
        return index
    bad: dict[str, dict[int, str]] = {}
    for role in SPLITS:
        dataset = hf_data.undecoded(load(index, role, cache_dir, workers), ["image"])
        verdicts = hf_data.map_rows(dataset, _check_row, workers)
        bad[role] = {row: why for row, why in enumerate(verdicts) if why is not None}
    key = index.listing_key()
    payload = {
        "version": INDEX_VERSION,
        "key": key,
        "images": {role: index.size(role) for role in SPLITS},
        "bad": {role: {str(r): why for r, why in rows.items()} for role, rows in bad.items()},
    }
    files.atomic_write_json(_index_path(cache_dir, key), payload)
    index.bad = bad
    return index


def load(index: HFImageIndex, split: str, cache_dir: Path, workers: int = 1) -> Any:
    """The split as a memory-mapped ``datasets.Dataset`` (parquet converted once, then reused)."""
    dataset = hf_data.load_split(index.source, index.splits[split], cache_dir, workers)
    if len(dataset) != index.size(split):
        raise HFDataError(
            f"split {index.splits[split].name!r} of {index.source.describe()} read {len(dataset)} rows, "
            f"its shards' footers say {index.size(split)}; a shard changed while it was read"
        )
    return dataset


# ---------------------------------------------------------------------- identity
def fingerprint(index: HFImageIndex) -> DataFingerprint:
    """Class names, every shard's name (below the dataset's folder), rows and size per split, and
    the rows the verify pass left out: moving or copying the dataset keeps it (a hub snapshot and
    a copy of its files agree), any other change gives a new one."""
    builder = FingerprintBuilder("HF image classification").add("classes", *index.classes)
    for role in SPLITS:
        split = index.splits[role]
        builder.add(role, split.name)
        for path, rows in zip(split.files, index.rows[role], strict=True):
            builder.add(index.source.relative(path), rows, path.stat().st_size)
    builder.add_all(("unreadable", name) for name in sorted(index.bad_names()))
    return builder.finish(
        format=index.source.label,
        classes=len(index.classes),
        images={role: index.kept(role) for role in SPLITS},
        unreadable=sum(len(index.bad_in(role)) for role in SPLITS),
    )


def summary(index: HFImageIndex) -> dict[str, Any]:
    """Counts for the run record."""
    return {
        "format": index.source.label,
        "splits": {role: index.splits[role].name for role in SPLITS},
        "classes": len(index.classes),
        "images": {role: index.size(role) for role in SPLITS},
        "bad_images": {role: len(index.bad_in(role)) for role in SPLITS},
    }


# ---------------------------------------------------------------------- the dataset
class HFImageList(Dataset):
    """The readable images of one split as ``(tensor, class index)``, decoded from the mapped
    rows; an image that fails to decode is named by its shard and row."""

    def __init__(self, index: HFImageIndex, split: str, cache_dir: Path, transform: Any) -> None:
        dataset = load(index, split, cache_dir)
        labels = np.asarray(dataset.data.column("label").to_numpy(), dtype=np.int64)
        bad = index.bad_in(split)
        self.rows = np.setdiff1d(np.arange(len(dataset)), np.asarray(bad, dtype=np.int64))
        self.labels = labels[self.rows]
        _check_labels(index, split, self.rows, self.labels)
        self.images = hf_data.undecoded(dataset, ["image"])
        self.source, self.split, self.shard_rows = index.source, index.splits[split], index.rows[split]
        self.classes = index.classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = int(self.rows[index])
        data = hf_data.stored_bytes(self.images[row]["image"])
        try:
            if data is None:
                raise ValueError("no image bytes in the row")
            with Image.open(io.BytesIO(data)) as image:
                image = image.convert("RGB")
        except Exception as err:
            where = hf_data.locate(self.source, self.split, self.shard_rows, row)
            raise ImageReadError(
                f"cannot read the image at {where} of {self.source.describe()} ({type(err).__name__}: "
                f"{err}); it changed after the verify pass, or verification was skipped"
            ) from None
        return self.transform(image), int(self.labels[index])


def _check_labels(index: HFImageIndex, split: str, rows: np.ndarray, labels: np.ndarray) -> None:
    """Every label a class of the training split's ClassLabel (an unlabelled split holds -1)."""
    outside = np.flatnonzero((labels < 0) | (labels >= len(index.classes)))
    if outside.size:
        row = int(rows[outside[0]])
        raise HFDataError(
            f"{index.where(split, row)} of {index.source.describe()} has label {int(labels[outside[0]])}, "
            f"not one of the {len(index.classes)} classes ({outside.size} such rows in split "
            f"{index.splits[split].name!r}); an unlabelled split (ImageNet's test) cannot train or evaluate"
        )
