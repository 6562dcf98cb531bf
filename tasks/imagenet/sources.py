"""Where the ImageNet task's images come from: an ImageFolder tree, a Hugging Face copy on disk
(``tasks.imagenet.hf``), or the digits stand-in, which is an ImageFolder tree built first.

Each source answers the adapter's data questions the same way: the dataset's name, the classes
(without verifying an image), the summary before preparing, the verify pass (once, its verdict
cached), the fingerprint, the images left out, and each split as a dataset through the
adapter's transforms.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from dsd.taskkit import hf_data
from dsd.taskkit.environment import available_cores
from dsd.taskkit.fingerprint import DataFingerprint
from dsd.taskkit.sources import DataSource
from dsd.taskkit.summary import DataSummary
from tasks.imagenet import data as datalib
from tasks.imagenet import hf
from tasks.imagenet.standin import StandinSpec, ensure_standin, implied_sizes, is_built, standin_root

STANDIN_NAME = "digits stand-in"
IMAGENET_CLASSES = 1000
_WNID = re.compile(r"n\d{8}")


#: How to point the task at its real data (the command line's stand-in banner).
DATA_HINT = (
    "an ImageFolder tree, <dir>/train/<wnid>/*.JPEG and <dir>/val/<wnid>/*.JPEG "
    "(validation images sorted into class folders, as for torchvision's reference scripts), "
    "or ILSVRC/imagenet-1k from Hugging Face (its parquet shards, hub cache or save_to_disk folder)"
)


class ImageSource(DataSource):
    """Labelled images in a ``train`` and a ``val`` split, from one origin."""

    @abc.abstractmethod
    def classes(self) -> list[str]:
        """The class names in label order, without verifying a single image."""

    @abc.abstractmethod
    def dataset(self, split: str, transform: Callable) -> Dataset:
        """The verified images of ``split`` as ``(tensor, class index)`` through ``transform``."""

    def pretrained_label_warning(self) -> str | None:
        """Why torchvision's published weights may number the classes otherwise, or None."""
        return None


class ImageFolderSource(ImageSource):
    """An ImageFolder tree, ``<root>/train/<class>/*`` and ``<root>/val/<class>/*``: listed once,
    every image verified once (the verdict cached); bad images refused unless told to skip them."""

    def __init__(self, root: Path, cache_dir: Path, skip_bad: bool) -> None:
        self._root, self.cache_dir, self.skip_bad = Path(root), Path(cache_dir), skip_bad
        self._index: datalib.TreeIndex | None = None
        self._listing: dict[str, datalib.SplitListing] | None = None

    @property
    def dataset_name(self) -> str:
        """``ImageNet`` for a 1000-class tree, else ``ImageFolder (N classes)``: never the folder's
        name, which would tie the runs to where the data lies (the fingerprint tells trees apart)."""
        train = self._root / "train"
        classes = len(datalib._class_folders(train)) if train.is_dir() else 0
        return "ImageNet" if classes == IMAGENET_CLASSES else f"ImageFolder ({classes} classes)"

    def root(self) -> Path:
        return self._root

    def listing(self) -> dict[str, datalib.SplitListing]:
        """The tree's listing (memoised: the checks before a study and the verify pass share it)."""
        if self._listing is None:
            self._listing = datalib.list_tree(self.root())
        return self._listing

    def tree(self, workers: int = 0) -> datalib.TreeIndex:
        """The checked, verified tree (memoised); refuses bad images unless told to skip them."""
        if self._index is None:
            workers = workers or available_cores()
            index = datalib.load_index(self.root(), self.cache_dir, workers, splits=self.listing())
            self._refuse_bad(index)
            self._index = index
        return self._index

    def _refuse_bad(self, index: datalib.TreeIndex) -> None:
        if index.bad and not self.skip_bad:
            raise datalib.DataTreeError(
                f"{len(index.bad)} image(s) under {index.root} cannot be read: "
                f"{datalib.describe_bad(index)}. "
                "Replace or delete them, or pass --skip-bad-images to leave them out (they are then "
                "counted in the run record)."
            )

    def prepare(self) -> None:
        """List the tree and verify every image once (cached)."""
        self.tree(workers=available_cores())

    def classes(self) -> list[str]:
        """The class folders' names."""
        if self._index is not None:
            return self._index.classes
        return self.listing()["train"].classes

    def inspect(self) -> DataSummary:
        """Both splits' images and the classes from the tree's listing; the verify pass's cached
        verdict when there is one."""
        root = self.root()
        splits = self.listing()
        bad = datalib.cached_verdict(splits, self.cache_dir)
        index = datalib.TreeIndex(root, splits, bad or {})
        if bad is not None:
            self._refuse_bad(index)
        total = sum(len(listing.files) for listing in splits.values())
        return DataSummary(
            f"{self.dataset_name} at {root}",
            {split: len(index.samples(split)) for split in datalib.SPLITS},
            unit="images",
            facts={"classes": len(index.classes)} | ({"unreadable images": len(bad)} if bad else {}),
            pending=[] if bad is not None else [f"verify the {total:,} images once (the verdict is cached)"],
            fingerprint=datalib.fingerprint(index) if bad is not None else None,
        )

    def fingerprint(self) -> DataFingerprint:
        return datalib.fingerprint(self.tree())

    def skipped_inputs(self) -> dict[str, list[str]]:
        return {"unreadable images": [f"{path} ({why})" for path, why in sorted(self.tree().bad.items())]}

    def data_issues(self) -> dict[str, int]:
        index = self.tree()
        return {
            "skipped_images": len(index.bad),
            "skipped_train_images": len(index.bad_in("train")),
            "skipped_val_images": len(index.bad_in("val")),
            "ignored_files": sum(index.splits[s].ignored for s in datalib.SPLITS),
        }

    def description_facts(self) -> dict[str, Any]:
        return datalib.summary(self.tree())

    def dataset(self, split: str, transform: Callable) -> Dataset:
        index = self.tree()
        return datalib.ImageList(index.root, index.samples(split), index.classes, transform)

    def pretrained_label_warning(self) -> str | None:
        if all(_WNID.fullmatch(c) for c in self.classes()):
            return None
        return (
            f"the class folders under {self._root} are not WordNet ids (n01440764, ...): the pretrained "
            "weights number classes in sorted-wnid order, so their outputs may not match your labels"
        )


class StandinSource(ImageFolderSource):
    """The digits stand-in: an ImageFolder tree built under the cache folder on first use; before
    that, its classes and sizes come from its specification."""

    def __init__(self, cache_dir: Path, skip_bad: bool) -> None:
        super().__init__(standin_root(cache_dir), cache_dir, skip_bad)

    @property
    def dataset_name(self) -> str:
        return STANDIN_NAME

    def root(self) -> Path:
        return ensure_standin(self.cache_dir)

    def _pending(self) -> bool:
        """Not built yet."""
        return not is_built(self._root)

    def classes(self) -> list[str]:
        """The ten digits while the stand-in is not built yet."""
        if self._index is None and self._pending():
            return [str(digit) for digit in range(10)]
        return super().classes()

    def inspect(self) -> DataSummary:
        if not self._pending():
            return super().inspect()
        sizes = implied_sizes(StandinSpec())
        total = sum(sizes.values())
        return DataSummary(
            f"{STANDIN_NAME}, not built yet: it would be built under {self._root}",
            dict(sizes),
            unit="images",
            facts={"classes": len(self.classes())},
            pending=[f"build the stand-in ({total:,} PNG images)", f"verify the {total:,} images once"],
            implied=True,
        )

    def description_facts(self) -> dict[str, Any]:
        return {"standin": dataclasses.asdict(StandinSpec())} | super().description_facts()


class HFImageSource(ImageSource):
    """A Hugging Face copy (``ILSVRC/imagenet-1k``'s schema): the index checked once from the
    shards' footers, every image decoded once (the verdict cached)."""

    def __init__(self, found: hf_data.HFSource, cache_dir: Path, skip_bad: bool) -> None:
        self.hf, self.cache_dir, self.skip_bad = found, Path(cache_dir), skip_bad
        self._index: hf.HFImageIndex | None = None
        self._verified = False

    def index(self) -> hf.HFImageIndex:
        """Splits, shards, columns and classes, checked (memoised; no image read)."""
        if self._index is None:
            self._index = hf.open_index(self.hf)
        return self._index

    def verified(self, workers: int) -> hf.HFImageIndex:
        """The index with every image decoded once (the verdict cached); refuses bad images
        unless told to skip them."""
        if not self._verified:
            index = hf.verify_images(self.index(), self.cache_dir, workers)
            self._refuse_bad(index)
            self._verified = True
        return self.index()

    def _refuse_bad(self, index: hf.HFImageIndex) -> None:
        bad = index.bad_names()
        if bad and not self.skip_bad:
            shown = "; ".join(f"{where} ({why})" for where, why in list(bad.items())[:5])
            more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise hf_data.HFDataError(
                f"{len(bad)} image(s) of {self.hf.describe()} cannot be decoded: {shown}{more}. Replace "
                "the shards, or pass --skip-bad-images to leave them out (they are then counted in the "
                "run record)."
            )

    @property
    def dataset_name(self) -> str:
        """``ImageNet (HF parquet)`` for 1000 classes, else ``Images (N classes, HF parquet)``."""
        classes = len(self.index().classes)
        if classes == IMAGENET_CLASSES:
            return f"ImageNet ({self.hf.label})"
        return f"Images ({classes} classes, {self.hf.label})"

    def prepare(self) -> None:
        """Read the shards' footers and verify every image once (cached)."""
        self.verified(available_cores())

    def classes(self) -> list[str]:
        return self.index().classes

    def inspect(self) -> DataSummary:
        """Both splits' sizes from the shards' footers; the cached verdict when there is one."""
        index = self.index()
        bad = hf.cached_verdict(index, self.cache_dir)
        pending = []
        if bad is None:
            if self.hf.form == hf_data.PARQUET:
                shards = sum(len(index.splits[s].files) for s in datalib.SPLITS)
                size = hf_data.human_bytes(hf_data.total_bytes([index.splits[s] for s in datalib.SPLITS]))
                pending.append(
                    f"convert the {shards} parquet shards ({size}) into memory-mapped Arrow files "
                    f"under {self.cache_dir / 'hf-arrow'} once"
                )
            images = sum(index.size(s) for s in datalib.SPLITS)
            pending.append(f"verify the {images:,} images once (the verdict is cached)")
        else:
            index.bad = bad
            self._refuse_bad(index)
        facts: dict[str, Any] = {"classes": len(index.classes), "format": self.hf.label}
        if bad:
            facts["unreadable images"] = sum(len(rows) for rows in bad.values())
        return DataSummary(
            f"{self.dataset_name} at {self.hf.describe()}",
            {split: index.kept(split) for split in datalib.SPLITS},
            unit="images",
            facts=facts,
            pending=pending,
            fingerprint=hf.fingerprint(index) if bad is not None else None,
        )

    def fingerprint(self) -> DataFingerprint:
        return hf.fingerprint(self.verified(available_cores()))

    def skipped_inputs(self) -> dict[str, list[str]]:
        bad = self.index().bad_names()
        return {"unreadable images": [f"{where} ({why})" for where, why in sorted(bad.items())]}

    def data_issues(self) -> dict[str, int]:
        index = self.index()
        return {
            "skipped_images": sum(len(index.bad_in(s)) for s in datalib.SPLITS),
            "skipped_train_images": len(index.bad_in("train")),
            "skipped_val_images": len(index.bad_in("val")),
        }

    def description_facts(self) -> dict[str, Any]:
        return hf.summary(self.verified(available_cores()))

    def dataset(self, split: str, transform: Callable) -> Dataset:
        return hf.HFImageList(self.verified(1), split, self.cache_dir, transform)
