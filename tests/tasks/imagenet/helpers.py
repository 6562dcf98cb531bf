"""Small ImageFolder trees for the ImageNet task's tests (random-noise images, a few per class)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, size: int = 40, seed: int = 0, fmt: str = "JPEG") -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path, format=fmt)
    return path


def make_tree(
    root: Path,
    classes: tuple[str, ...] = ("n01440764", "n01443537", "n01484850"),
    train_per_class: int = 6,
    val_per_class: int = 3,
    size: int = 40,
) -> Path:
    """``root/train/<class>/*.JPEG`` and ``root/val/<class>/*.JPEG`` of random pixels."""
    seed = 0
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name in classes:
            for i in range(count):
                write_image(root / split / name / f"{name}_{i}.JPEG", size, seed)
                seed += 1
    return root


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes (a download or copy that stopped half-way)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
