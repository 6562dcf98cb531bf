"""Reading an ImageFolder tree (ImageNet's, or the stand-in's) and checking it before training.

Layout, as torchvision's reference scripts expect::

    <root>/train/<class>/*.JPEG      e.g. train/n01440764/n01440764_10026.JPEG
    <root>/val/<class>/*.JPEG        validation images sorted into the same class folders

ILSVRC2012's validation archive is flat (50,000 files in one folder); sort it into the class
folders first (the usual ``valprep.sh``), exactly as for torchvision's reference. Hidden entries
(names starting with ``.``) are ignored; files without an image extension are ignored and counted.
Classes are the sorted folder names, as ``torchvision.datasets.ImageFolder`` numbers them.

Bad input is found before training, not an hour into it: the tree's shape (missing or empty
splits, class folders that differ between train/ and val/, empty class folders) is checked on
every start, and every image is decoded once by a verify pass whose verdict is cached in a small
index file keyed by the tree's listing (names, sizes, modification times). A tree that changes
gets a new key and is verified again. The verdict lives in the main process, so the count of
skipped images is exact however many DataLoader workers read the images later.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

from dsd import files
from dsd.errors import DataError, UserError
from dsd.taskkit.fingerprint import DataFingerprint, FingerprintBuilder

SPLITS = ("train", "val")
INDEX_VERSION = 1
#: ImageNet's channel statistics, used for the stand-in too (the reference transforms).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: The reference's eval resize / crop ratio (256 / 224).
CROP_RATIO = 0.875
#: Below this many images the verify pass runs in-process (workers cost more than they save).
PARALLEL_VERIFY_MIN = 4000


class DataTreeError(DataError):
    """The tree on disk is not an ImageFolder tree the task can train on."""


class ImageReadError(UserError, RuntimeError):
    """An image that cannot be read while training (it changed after the verify pass)."""


@dataclass
class SplitListing:
    """One split on disk: its classes and its image files (relative to the tree's root)."""

    split: str
    classes: list[str]
    files: list[tuple[str, int]]  # (relative path, class index), in ImageFolder's order
    stats: list[tuple[int, int]]  # (size, mtime_ns) per file: part of the listing's key
    ignored: int = 0  # files without an image extension


@dataclass
class TreeIndex:
    """A tree's listing and the verify pass's verdict on it."""

    root: Path
    splits: dict[str, SplitListing]
    bad: dict[str, str] = field(default_factory=dict)  # relative path -> why it cannot be read

    @property
    def classes(self) -> list[str]:
        return self.splits["train"].classes

    def samples(self, split: str) -> list[tuple[str, int]]:
        """The split's readable images (bad ones left out)."""
        return [(path, label) for path, label in self.splits[split].files if path not in self.bad]

    def bad_in(self, split: str) -> list[str]:
        return [path for path in self.bad if path.startswith(split + "/")]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def list_split(root: Path, split: str) -> SplitListing:
    """The classes and images of ``root/split``; errors say what is wrong and what was expected."""
    split_dir = root / split
    layout = f"expected {root}/{split}/<class>/<image> (e.g. {split}/n01440764/*.JPEG)"
    if not split_dir.is_dir():
        raise DataTreeError(f"{split_dir} does not exist; {layout}")
    classes = _class_folders(split_dir)
    if not classes:
        loose = sum(1 for e in os.scandir(split_dir) if e.is_file() and _is_image(e.name))
        if loose:
            raise DataTreeError(
                f"{split_dir} holds {loose} images but no class folders; sort them into one folder per "
                f"class ({layout}). ILSVRC2012's validation archive is flat: sort it with the usual "
                "valprep.sh, as torchvision's reference scripts expect."
            )
        raise DataTreeError(f"{split_dir} is empty; {layout}")
    files: list[tuple[str, int]] = []
    stats: list[tuple[int, int]] = []
    ignored = 0
    # Every folder listed so far, the split and its class folders first: a link into one of them
    # (back up the tree, or across to another class) would list images twice, under a wrong class.
    seen = {os.path.realpath(split_dir), *(os.path.realpath(split_dir / name) for name in classes)}
    for label, name in enumerate(classes):
        found = 0
        walked = []
        for dirpath, dirnames, filenames in os.walk(split_dir / name, followlinks=True):
            dirnames[:] = [
                d for d in dirnames if not d.startswith(".") and _new_folder(Path(dirpath) / d, seen)
            ]
            walked.append((dirpath, filenames))
        for dirpath, filenames in sorted(walked):  # ImageFolder's order
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                if not _is_image(filename):
                    ignored += 1
                    continue
                path = Path(dirpath) / filename
                stat = path.stat()
                files.append((path.relative_to(root).as_posix(), label))
                stats.append((stat.st_size, stat.st_mtime_ns))
                found += 1
        if not found:
            raise DataTreeError(
                f"class folder {split_dir / name} holds no image (extensions: {', '.join(IMG_EXTENSIONS)})"
            )
    return SplitListing(split, classes, files, stats, ignored)


def _new_folder(folder: Path, seen: set[str]) -> bool:
    """Whether ``folder`` (a link, maybe) leads somewhere not listed yet; a link back into a folder
    already seen (``ln -s .. class/back``) is named once and not followed, or it would list the
    same images again and again, all under one class."""
    real = os.path.realpath(folder)
    if real in seen:
        print(
            f"warning: {folder} leads back to {real}, a folder already listed: not followed", file=sys.stderr
        )
        return False
    seen.add(real)
    return True


def list_tree(root: Path) -> dict[str, SplitListing]:
    """Both splits of the tree at ``root``, checked to share the same class folders."""
    root = Path(root)
    if not root.is_dir():
        raise DataTreeError(f"data directory {root} does not exist; expected {root}/train/ and {root}/val/")
    splits = {split: list_split(root, split) for split in SPLITS}
    train, val = splits["train"].classes, splits["val"].classes
    if train != val:
        only_train = sorted(set(train) - set(val))
        only_val = sorted(set(val) - set(train))
        parts = [f"train/ has {len(train)} class folders, val/ has {len(val)}"]
        if only_train:
            parts.append(
                f"only in train/: {', '.join(only_train[:5])}{' ...' if len(only_train) > 5 else ''}"
            )
        if only_val:
            parts.append(f"only in val/: {', '.join(only_val[:5])}{' ...' if len(only_val) > 5 else ''}")
        raise DataTreeError(
            f"class folders differ between {root}/train and {root}/val ({'; '.join(parts)}); both splits "
            "need the same classes, or the labels would not mean the same thing"
        )
    return splits


def listing_key(splits: dict[str, SplitListing]) -> str:
    """Hash of every file's name, size and modification time: changes whenever the tree does."""
    digest = hashlib.sha256(f"index v{INDEX_VERSION}\n".encode())
    for split in SPLITS:
        listing = splits[split]
        for (path, label), (size, mtime) in zip(listing.files, listing.stats, strict=True):
            digest.update(f"{path}\t{label}\t{size}\t{mtime}\n".encode())
    return digest.hexdigest()[:20]


def fingerprint(index: TreeIndex) -> DataFingerprint:
    """The tree's identity without its location: class names, every image's path relative to
    the root with its size, and which images the verify pass left out. Moving or copying the
    tree keeps it (modification times are not part of it); any other change gives a new one."""
    builder = FingerprintBuilder("ImageFolder").add("classes", *index.classes)
    for split in SPLITS:
        listing = index.splits[split]
        builder.add_all(
            (path, label, size) for (path, label), (size, _) in zip(listing.files, listing.stats, strict=True)
        )
    builder.add_all(("unreadable", path) for path in sorted(index.bad))
    return builder.finish(
        format="ImageFolder",
        classes=len(index.classes),
        images={split: len(index.samples(split)) for split in SPLITS},
        unreadable=len(index.bad),
    )


def check_image(path: str | BinaryIO) -> str | None:
    """Why the image at ``path`` (a file name, or the bytes of a Hugging Face row) cannot be
    decoded, or None when it can.

    JPEGs are decoded at reduced scale (``draft``): the decoder still reads every byte of the
    compressed data, so truncation is caught (about 1 ms per ImageNet-sized JPEG on one core).
    """
    try:
        with Image.open(path) as image:
            image.draft("RGB", (80, 80))
            image.load()
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError ...
        return f"{type(err).__name__}: {err}"
    return None


def _check_many(paths: Sequence[str]) -> list[str | None]:
    return [check_image(p) for p in paths]


def verify_images(root: Path, relative: Sequence[str], workers: int) -> dict[str, str]:
    """Decode every image once; returns relative path -> error for those that fail."""
    paths = [str(root / p) for p in relative]
    if workers <= 1 or len(paths) < PARALLEL_VERIFY_MIN:
        verdicts = _check_many(paths)
    else:
        print(
            f"verifying {len(paths):,} images under {root} with {workers} processes "
            "(once; the verdict is cached)",
            file=sys.stderr,
        )
        chunk = 512
        chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
        verdicts = []
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for part in pool.map(_check_many, chunks):
                verdicts.extend(part)
    return {rel: why for rel, why in zip(relative, verdicts, strict=True) if why is not None}


def index_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "imagenet-index" / f"{key}.json"


def cached_verdict(splits: dict[str, SplitListing], cache_dir: Path) -> dict[str, str] | None:
    """The verify pass's verdict on exactly this listing (relative path -> why unreadable), if
    one is cached; None when the tree has not been verified since it last changed."""
    key = listing_key(splits)
    cached = index_path(cache_dir, key)
    if not cached.is_file():
        return None
    try:
        payload = files.read_json(cached)
        if payload.get("version") == INDEX_VERSION and payload.get("key") == key:
            return {str(path): str(why) for path, why in payload["bad"].items()}
    except (ValueError, AttributeError, KeyError, TypeError) as err:  # a cache is rebuilt, never fatal
        print(f"warning: the verify cache {cached} is unreadable ({err}); the images are verified again",
              file=sys.stderr)  # fmt: skip
    return None


def load_index(
    root: Path,
    cache_dir: Path,
    workers: int = 0,
    verify: bool = True,
    splits: dict[str, SplitListing] | None = None,
) -> TreeIndex:
    """The tree's listing and verify verdict (read from the cache, or made and cached now).

    ``verify=False`` only reads a cached verdict and otherwise assumes every image is good (the
    dataset then names any file that fails to decode during training). ``splits``: the tree's
    listing when the caller has just made it (``list_tree``), so a large tree is walked once.
    """
    root = Path(root)
    splits = list_tree(root) if splits is None else splits
    key = listing_key(splits)
    bad = cached_verdict(splits, cache_dir)
    if bad is not None:
        return TreeIndex(root, splits, bad)
    if not verify:
        return TreeIndex(root, splits, {})
    every = [path for split in SPLITS for path, _ in splits[split].files]
    bad = verify_images(root, every, workers)
    payload = {
        "version": INDEX_VERSION,
        "key": key,
        "images": {split: len(splits[split].files) for split in SPLITS},
        "bad": bad,
    }
    files.atomic_write_json(index_path(cache_dir, key), payload)
    return TreeIndex(root, splits, bad)


def describe_bad(index: TreeIndex, limit: int = 5) -> str:
    shown = [f"{index.root / path} ({why})" for path, why in list(index.bad.items())[:limit]]
    more = f"; and {len(index.bad) - limit} more" if len(index.bad) > limit else ""
    return "; ".join(shown) + more


# ---------------------------------------------------------------------- datasets and transforms
class ImageList(Dataset):
    """Images of one split as ``(tensor, class index)``; a file that fails to decode is named."""

    def __init__(
        self, root: Path, samples: list[tuple[str, int]], classes: list[str], transform: Callable
    ) -> None:
        self.root = Path(root)
        self.samples = samples
        self.classes = classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        relative, label = self.samples[index]
        path = self.root / relative
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except Exception as err:
            raise ImageReadError(
                f"cannot read image {path} ({type(err).__name__}: {err}); it changed after the verify "
                "pass, or verification was skipped"
            ) from None
        return self.transform(image), label


def train_transform(image_size: int, min_crop_scale: float) -> Callable:
    """torchvision's reference training preset: RandomResizedCrop + horizontal flip."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(
                image_size, scale=(min_crop_scale, 1.0), interpolation=transforms.InterpolationMode.BILINEAR
            ),
            transforms.RandomHorizontalFlip(),
            transforms.PILToTensor(),
            transforms.ConvertImageDtype(torch.float32),
            transforms.Normalize(MEAN, STD),
        ]
    )


def eval_transform(image_size: int, resize_size: int) -> Callable:
    """torchvision's reference evaluation preset: resize the short side, centre crop."""
    return transforms.Compose(
        [
            transforms.Resize(resize_size, interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.CenterCrop(image_size),
            transforms.PILToTensor(),
            transforms.ConvertImageDtype(torch.float32),
            transforms.Normalize(MEAN, STD),
        ]
    )


def default_resize(image_size: int) -> int:
    """The eval resize for a crop, at the reference's ratio (224 -> 256, 28 -> 32)."""
    return round(image_size / CROP_RATIO)


def summary(index: TreeIndex) -> dict[str, Any]:
    """Counts for the run record."""
    return {
        "classes": len(index.classes),
        "images": {split: len(index.splits[split].files) for split in SPLITS},
        "bad_images": {split: len(index.bad_in(split)) for split in SPLITS},
        "ignored_files": {split: index.splits[split].ignored for split in SPLITS},
    }
