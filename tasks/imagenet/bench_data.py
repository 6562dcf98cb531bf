"""The loader benchmark's inputs: the same images as an ImageFolder tree and as Hugging Face
parquet shards, and ImageNet-sized photos to fill them with offline.

A loader comparison means nothing unless both loaders read the very same images, so
``both_forms`` writes one chosen set of training images (from a tree, or from a Hugging Face
dataset's rows) in both forms under the cache folder: the tree as links to the original files
(or the stored bytes written out), the parquet shards with ``datasets`` itself, laid out as the
hub exports them. ``make_photos`` makes a tree of ImageNet-sized JPEGs (about 500 x 375,
100 kB) from scikit-learn's two bundled photographs, cropped, flipped and tinted, so that decoding
costs what ImageNet's does without a download.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from dsd.taskkit import hf_data
from tasks.imagenet import data as datalib
from tasks.imagenet import hf
from tasks.imagenet.standin import ensure_standin

#: ``(label, file name, the image's bytes or its file)``
Picked = tuple[int, str, "bytes | Path"]
PHOTO_SIZE = (500, 375)
PHOTO_CLASSES = 10
SHARD_IMAGES = 500  # images per parquet shard (ImageNet's hub shards hold about 5,000)


def make_photos(root: Path, count: int, seed: int = 0) -> Path:
    """``count`` ImageNet-sized JPEG training images (and one validation image per class) in an
    ImageFolder tree under ``root``; kept once made."""
    done = root / ".complete"
    if done.is_file():
        return root
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(p) for p in load_sample_images().images]
    rng = np.random.default_rng(seed)
    for i in range(count + PHOTO_CLASSES):
        split, label = ("train", i % PHOTO_CLASSES) if i < count else ("val", i - count)
        photo = photos[int(rng.integers(len(photos)))]
        width, height = PHOTO_SIZE if rng.random() < 0.75 else PHOTO_SIZE[::-1]
        scale = rng.uniform(0.6, 1.0)
        w, h = int(photo.width * scale), int(photo.height * scale)
        left, top = int(rng.integers(photo.width - w + 1)), int(rng.integers(photo.height - h + 1))
        image = photo.crop((left, top, left + w, top + h)).resize((width, height), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        tint = rng.uniform(0.8, 1.2, 3)
        image = Image.fromarray(np.clip(np.asarray(image) * tint, 0, 255).astype(np.uint8))
        path = root / split / f"c{label:02d}" / f"{split}_{i:06d}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="JPEG", quality=90)
    done.write_text("")
    return root


def _chosen(count: int, total: int) -> list[int]:
    """``count`` positions spread evenly over ``total`` (all of them when there are fewer)."""
    if count <= 0 or count >= total:
        return list(range(total))
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def _images(data_dir: Path | None, cache_dir: Path, count: int) -> tuple[list[str], int, Iterator[Picked]]:
    """The classes, how many images, and ``(label, file name, bytes or the file)`` of ``count``
    training images of ``data_dir`` (a tree or a Hugging Face dataset; None: the digits stand-in)."""
    source = None if data_dir is None else hf_data.detect(data_dir)
    if source is None:
        index = datalib.load_index(data_dir or ensure_standin(cache_dir), cache_dir, verify=False)
        samples = [index.samples("train")[i] for i in _chosen(count, len(index.samples("train")))]
        rows = ((label, Path(rel).name, index.root / rel) for rel, label in samples)
        return index.classes, len(samples), rows
    index = hf.open_index(source)
    dataset = hf.load(index, "train", cache_dir)
    labels = dataset.data.column("label").to_numpy()
    images = hf_data.undecoded(dataset, ["image"])
    picked = _chosen(count, len(dataset))

    def rows() -> Iterator[Picked]:
        for row in picked:
            data = hf_data.stored_bytes(images[row]["image"]) or b""
            yield int(labels[row]), f"row{row:08d}.JPEG", data

    return index.classes, len(picked), rows()


def both_forms(data_dir: Path | None, cache_dir: Path, count: int) -> dict[str, Path]:
    """``{"ImageFolder": tree, "HF parquet": folder}``: the same ``count`` training images of
    ``data_dir`` in both forms under ``cache_dir/loader-bench`` (made once), each class's first
    image also its validation image (the task needs a validation split to start)."""
    import datasets

    where = Path(data_dir).resolve() if data_dir else "standin"
    root = Path(cache_dir) / "loader-bench" / hashlib.sha256(f"{where}\n{count}".encode()).hexdigest()[:8]
    tree, parquet = root / "tree", root / "parquet"
    if (root / ".complete").is_file():
        return {"ImageFolder": tree, "HF parquet": parquet}
    classes, total, rows = _images(data_dir, cache_dir, count)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    shards = max(1, -(-total // SHARD_IMAGES))
    table: dict[str, list] = {"image": [], "label": []}
    val: dict[str, list] = {"image": [], "label": []}

    def flush(split: str, rows: dict[str, list], shard: int, of: int) -> None:
        path = parquet / "data" / f"{split}-{shard:05d}-of-{of:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
        for column in rows.values():
            column.clear()

    for position, (label, name, content) in enumerate(rows):
        data = content.read_bytes() if isinstance(content, Path) else content
        first = not (tree / "val" / classes[label]).is_dir()
        for split in ("train", "val") if first else ("train",):
            target = tree / split / classes[label] / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                os.symlink(os.path.abspath(content), target)
            else:
                target.write_bytes(data)
        for rows_of, kept in ((table, True), (val, first)):
            if kept:
                rows_of["image"].append({"bytes": data, "path": name})
                rows_of["label"].append(label)
        if len(table["label"]) == SHARD_IMAGES or position == total - 1:
            flush("train", table, position // SHARD_IMAGES, shards)
    flush("validation", val, 0, 1)
    (root / ".complete").write_text("")
    return {"ImageFolder": tree, "HF parquet": parquet}
