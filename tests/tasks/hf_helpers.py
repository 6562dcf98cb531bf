"""Small Hugging Face datasets on disk, written by ``datasets`` itself, in the forms users hold:
parquet shards as the hub exports them (with its README.md config, or without), a hub cache
snapshot of them, and a ``save_to_disk`` folder."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

HUB_README = """---
dataset_info:
  features: []
configs:
- config_name: default
  data_files:
{files}
---
# a dataset card
"""


def jpeg_bytes(seed: int, size: int = 40) -> bytes:
    """Random pixels as a JPEG (as ImageNet's images are stored in the hub's parquet)."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def write_parquet(
    data: datasets.DatasetDict, root: Path, shards: int = 2, readme: bool = True, folder: str = "data"
) -> Path:
    """``root/<folder>/<split>-0000i-of-0000n.parquet`` per split, as ``push_to_hub`` lays them
    out, and (``readme``) the hub's README.md whose ``configs:`` name each split's files."""
    entries = []
    for split, dataset in data.items():
        count = max(1, min(shards, len(dataset)))
        for i in range(count):
            path = root / folder / f"{split}-{i:05d}-of-{count:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            dataset.shard(count, i, contiguous=True).to_parquet(str(path))
        entries.append(f"  - split: {split}\n    path: {folder}/{split}-*")
    if readme:
        (root / "README.md").write_text(HUB_README.format(files="\n".join(entries)))
    return root


def write_save_to_disk(data: datasets.DatasetDict, root: Path) -> Path:
    data.save_to_disk(str(root))
    return root


def hub_cache(parquet_root: Path, cache: Path, repo: str = "org/name") -> Path:
    """The hub cache's layout for the files under ``parquet_root``: ``datasets--org--name`` with
    ``refs/main``, ``snapshots/<commit>/...`` links into ``blobs/``. Returns the repo folder."""
    folder = cache / f"datasets--{repo.replace('/', '--')}"
    commit = hashlib.sha1(str(parquet_root).encode()).hexdigest()
    for path in sorted(p for p in parquet_root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = folder / "snapshots" / commit / path.relative_to(parquet_root)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return folder


def imagenet_dict(
    classes: tuple[str, ...] = ("tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark"),
    train_per_class: int = 6,
    val_per_class: int = 3,
    size: int = 40,
) -> datasets.DatasetDict:
    """ILSVRC/imagenet-1k's schema: ``image`` (encoded JPEG) and ``label`` (a ClassLabel)."""
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(classes))}
    )
    seed, splits = 0, {}
    for split, count in (("train", train_per_class), ("validation", val_per_class)):
        images, labels = [], []
        for label in range(len(classes)):
            for i in range(count):
                images.append({"bytes": jpeg_bytes(seed, size), "path": f"{split}_{label}_{i}.JPEG"})
                labels.append(label)
                seed += 1
        splits[split] = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    return datasets.DatasetDict(splits)


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes (a download that stopped half-way); a hub snapshot's
    link is replaced by the cut copy."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


WORDS = ("a", "dog", "runs", "on", "the", "grass", "two", "children", "play", "in", "water", "man")


def flickr_dict(
    per_split: dict[str, int] | None = None, list_column: bool = False, seed: int = 0
) -> datasets.DatasetDict:
    """A Flickr-8K hub copy's schema: ``image`` and five captions, as ``caption_0`` ...
    ``caption_4`` or (``list_column``) one ``captions`` list; splits train / validation / test."""
    per_split = per_split or {"train": 12, "validation": 4, "test": 4}
    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in per_split.items():
        rows: dict[str, list] = {"image": [], "captions": []}
        for i in range(count):
            name = f"{1000 + seed}{i:03d}_{split}.jpg"
            rows["image"].append({"bytes": jpeg_bytes(seed, 32), "path": name})
            seed += 1
            caps = [
                " ".join(rng.choice(WORDS, size=int(rng.integers(3, 7)))).capitalize() + " ."
                for _ in range(5)
            ]
            rows["captions"].append(caps)
        image = datasets.Image()
        if list_column:
            features = datasets.Features(
                {"image": image, "captions": datasets.List(datasets.Value("string"))}
            )
            splits[split] = datasets.Dataset.from_dict(rows, features=features)
        else:
            columns = {f"caption_{k}": [c[k] for c in rows["captions"]] for k in range(5)}
            features = datasets.Features({"image": image, **{k: datasets.Value("string") for k in columns}})
            splits[split] = datasets.Dataset.from_dict({"image": rows["image"], **columns}, features=features)
    return datasets.DatasetDict(splits)


def flac_bytes(seconds: float, rate: int = 16_000, freq: float = 440.0) -> bytes:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format="FLAC")
    return buffer.getvalue()


def librispeech_dict(
    per_split: dict[str, int] | None = None, rate: int = 16_000, seed: int = 0
) -> datasets.DatasetDict:
    """``openslr/librispeech_asr``'s schema: ``file``, ``audio`` (FLAC bytes), ``text`` (upper
    case), ``speaker_id``, ``chapter_id``, ``id``; splits train.clean.100 / validation.clean /
    test.clean."""
    per_split = per_split or {"train.clean.100": 10, "validation.clean": 3, "test.clean": 3}
    rng = np.random.default_rng(seed)
    features = datasets.Features(
        {
            "file": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=rate),
            "text": datasets.Value("string"),
            "speaker_id": datasets.Value("int64"),
            "chapter_id": datasets.Value("int64"),
            "id": datasets.Value("string"),
        }
    )
    splits, speaker = {}, 100
    for split, count in per_split.items():
        rows: dict[str, list] = {name: [] for name in features}
        for i in range(count):
            utt_id = f"{speaker}-{1000 + i // 4}-{i:04d}"
            words = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 3)))).upper()
            rows["file"].append(f"{utt_id}.flac")
            audio = flac_bytes(float(rng.uniform(0.8, 1.2)), rate, float(rng.uniform(200, 800)))
            rows["audio"].append({"bytes": audio, "path": f"{utt_id}.flac"})
            rows["text"].append(words)
            rows["speaker_id"].append(speaker)
            rows["chapter_id"].append(1000 + i // 4)
            rows["id"].append(utt_id)
        speaker += 1
        # Audio's encoder needs torchcodec: store the bytes as a struct, then declare them Audio.
        stored = features.copy()
        stored["audio"] = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
        dataset = datasets.Dataset.from_dict(rows, features=datasets.Features(stored))
        splits[split] = dataset.cast_column("audio", features["audio"])
    return datasets.DatasetDict(splits)


def spoil_row(
    data: datasets.DatasetDict, split: str, row: int, column: str, spoil: Callable[[bytes], bytes]
) -> datasets.DatasetDict:
    """``data`` with the stored bytes of one image or audio cell replaced by ``spoil(bytes)``
    (cut short, or not an image at all): an entry that does not decode."""
    feature = data[split].features[column]

    def change(example: dict, index: int) -> dict:
        if index == row:
            example[column] = {"bytes": spoil(example[column]["bytes"]), "path": example[column]["path"]}
        return example

    stored = data[split].cast_column(column, type(feature)(decode=False))
    data[split] = stored.map(change, with_indices=True).cast_column(column, feature)
    return data
