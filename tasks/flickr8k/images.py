"""Where the captioned images are read from: a folder of files, or the rows of a Hugging Face
dataset (``tasks.flickr8k.hf``). The feature cache, the fingerprint and the figures ask an
``ImageStore`` and never care which."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PIL import Image


class ImageStore(Protocol):
    """The images of a corpus, by file name."""

    def key(self, name: str) -> str:
        """What identifies the stored image without decoding it (a file's size in bytes): part of
        the feature cache's key and of the data's fingerprint."""
        ...

    def open(self, name: str) -> Image.Image:
        """The image, not yet decoded (PIL's lazy open); raises as PIL does when it cannot."""
        ...

    def location(self, name: str) -> str:
        """Where the image is, for messages: a path, or a shard and row."""
        ...

    def label(self, name: str) -> str:
        """The image as the run record names it (never a machine path)."""
        ...

    def describe(self) -> str:
        """Where the images are, for messages."""
        ...

    def ready(self) -> None:
        """Make every image readable before a pass over them (a one-time conversion), so that
        DataLoader workers only read."""
        ...


class FolderImages:
    """Image files in one folder (Flickr-8K's ``Flicker8k_Dataset/``, the stand-in's)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def key(self, name: str) -> str:
        path = self.folder / name
        return str(path.stat().st_size if path.exists() else -1)

    def open(self, name: str) -> Image.Image:
        return Image.open(self.folder / name)

    def location(self, name: str) -> str:
        return str(self.folder / name)

    def label(self, name: str) -> str:
        return name

    def describe(self) -> str:
        return str(self.folder)

    def ready(self) -> None:
        """Files need nothing."""


def as_store(images: Path | ImageStore) -> ImageStore:
    """A folder path as a ``FolderImages``; a store as is."""
    return FolderImages(images) if isinstance(images, (str, Path)) else images
