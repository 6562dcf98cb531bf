"""The ImageNet stand-in: scikit-learn's bundled handwritten digits as an ImageFolder tree.

CI machines reach no dataset servers, so the suite proves its ImageNet pipeline on a tree laid
out exactly like ImageNet's (``train/<class>/*``, ``val/<class>/*``) and read by the very same
loader. ``load_digits()`` (1797 images, 8x8, 10 classes) ships inside scikit-learn.

Plain centred digits saturate within a minute, leaving DSD nothing to show, so each digit is
placed on a small RGB canvas at a random position, scale and rotation, in a random colour over a
random two-colour gradient, behind a few random strokes (clutter) and under pixel noise; each
digit is drawn on several canvases. Validation digits are never training digits (a fixed,
stratified split of the 1797 samples), so the validation error measures generalisation to new
handwriting, not to new canvases of a seen digit.

Everything is a pure function of ``StandinSpec`` (each canvas has its own seeded generator), so
two builds are byte-identical. ``dsd.taskkit.standin.build_once`` builds the tree beside its
destination and renames it into place, so an interrupted build never leaves a half-written tree.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dsd.errors import ConfigError
from dsd.taskkit.standin import build_once

#: Bump when the rendering changes in a way the spec does not capture (renames the cache folder).
RENDER_VERSION = 3
MANIFEST = "standin.json"
SPLITS = ("train", "val")
#: ``load_digits()``: 1797 bundled samples of 10 classes (the sizes a stand-in not built yet implies).
DIGIT_SAMPLES, DIGIT_CLASSES = 1797, 10


@dataclass(frozen=True)
class StandinSpec:
    """What the stand-in looks like. Every field enters the cache folder's name."""

    canvas: int = 32  # side of every image, pixels
    val_digits_per_class: int = 60  # digits per class held out for validation (10 classes)
    train_canvases: int = 2  # canvases drawn per training digit
    val_canvases: int = 2  # canvases drawn per validation digit
    digit_min: int = 20  # side of the digit before rotation, pixels (uniform in [min, max])
    digit_max: int = 28
    max_rotation: float = 10.0  # degrees, uniform in [-max, max]
    max_shift: int = 3  # pixels the digit may move from the canvas centre (per axis); -1: anywhere
    min_contrast: float = 0.5  # least luminance difference between digit and background (0..1)
    light_digits: bool = True  # digits lighter than their background (False: either way round)
    colour: bool = True  # random colours (False: shades of grey)
    gradient: float = 50.0  # the background's second colour differs by up to this much per channel
    clutter_max: int = 1  # random strokes per canvas, uniform in [0, max]
    noise_std: float = 5.0  # Gaussian pixel noise, in 0..255 units
    seed: int = 0

    def key(self) -> str:
        text = json.dumps({"render": RENDER_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 bundled digits as ``(images uint8 0..16, shape [n, 8, 8]; labels [n])``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.uint8), digits.target.astype(np.int64)


def split_indices(labels: np.ndarray, val_per_class: int, seed: int) -> dict[str, np.ndarray]:
    """A fixed, stratified split of the sample indices: ``val_per_class`` per class to ``val``."""
    rng = np.random.default_rng([seed, 7])
    val: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if val_per_class >= len(members):
            raise ConfigError(
                f"val_digits_per_class={val_per_class} leaves no training digit of class {label}"
            )
        val.append(rng.permutation(members)[:val_per_class])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return {"train": train_idx, "val": val_idx}


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]) / 255.0)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    return yy, xx


def render_canvas(digit: np.ndarray, spec: StandinSpec, rng: np.random.Generator) -> np.ndarray:
    """One ``canvas x canvas x 3`` uint8 image of ``digit`` (8x8, values 0..16)."""
    size = spec.canvas
    # Background: a linear gradient between two colours along a random direction.
    channels = 3 if spec.colour else 1  # grey: one value for all three channels
    c0 = np.broadcast_to(rng.uniform(0, 255, channels), 3)
    c1 = np.clip(c0 + rng.uniform(-spec.gradient, spec.gradient, channels), 0, 255)
    if spec.light_digits:  # leave room above the background for a lighter digit
        darkest = 1.0 - spec.min_contrast - 0.1
        c0, c1 = (c * min(1.0, darkest / max(1e-6, _luminance(c))) for c in (c0, c1))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = _grid(size)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp)))
    canvas = c0 + (c1 - c0) * ramp[..., None]
    bg_lum = _luminance((c0 + c1) / 2)

    # Clutter: opaque strokes of random colours behind the digit.
    strokes = int(rng.integers(0, spec.clutter_max + 1))
    if strokes:
        background = Image.fromarray(np.rint(canvas).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(background)
        for _ in range(strokes):
            line = tuple(float(v) for v in rng.uniform(0, size, 4))
            width = int(rng.integers(1, 3))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            draw.line(line, fill=colour, width=width)
        canvas = np.array(background, dtype=np.float64)

    # The digit: scaled, rotated, placed, in a colour that stands out from the background.
    side = int(rng.integers(spec.digit_min, spec.digit_max + 1))
    glyph = Image.fromarray((digit.astype(np.float32) * (255.0 / 16.0)).astype(np.uint8), "L")
    glyph = glyph.resize((side, side), Image.Resampling.BILINEAR)
    glyph = glyph.rotate(
        rng.uniform(-spec.max_rotation, spec.max_rotation), resample=Image.Resampling.BILINEAR, expand=True
    )
    gw, gh = glyph.size
    if gw > size or gh > size:  # a large digit turned by a large angle: keep its centre
        left, top = max(0, (gw - size) // 2), max(0, (gh - size) // 2)
        glyph = glyph.crop((left, top, left + min(gw, size), top + min(gh, size)))
        gw, gh = glyph.size
    # Anywhere on the canvas, or within max_shift pixels of the centre (and on the canvas).
    cx, cy = (size - gw) // 2, (size - gh) // 2
    shift = spec.max_shift if spec.max_shift >= 0 else size
    left = int(rng.integers(max(0, cx - shift), min(size - gw, cx + shift) + 1))
    top = int(rng.integers(max(0, cy - shift), min(size - gh, cy + shift) + 1))
    while True:
        colour = np.broadcast_to(rng.uniform(0, 255, channels), 3)
        difference = _luminance(colour) - bg_lum
        if (difference if spec.light_digits else abs(difference)) >= spec.min_contrast:
            break
    alpha = np.asarray(glyph, dtype=np.float64)[..., None] / 255.0
    patch = canvas[top : top + gh, left : left + gw]
    canvas[top : top + gh, left : left + gw] = patch * (1 - alpha) + colour * alpha

    canvas += rng.normal(0, spec.noise_std, canvas.shape)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def image_name(sample: int, canvas: int) -> str:
    """File name of one canvas; the sample index makes train/val disjointness checkable."""
    return f"d{sample:04d}_c{canvas}.png"


def build_tree(root: Path, spec: StandinSpec) -> dict:
    """Write the stand-in into the empty folder ``root``; returns the manifest."""
    images, labels = load_digits_arrays()
    splits = split_indices(labels, spec.val_digits_per_class, spec.seed)
    canvases = {"train": spec.train_canvases, "val": spec.val_canvases}
    counts: dict[str, int] = {}
    for split_id, split in enumerate(SPLITS):
        for label in range(10):
            (root / split / str(label)).mkdir(parents=True)
        for sample in splits[split]:
            for c in range(canvases[split]):
                rng = np.random.default_rng([spec.seed, split_id, int(sample), c])
                pixels = render_canvas(images[sample], spec, rng)
                path = root / split / str(labels[sample]) / image_name(int(sample), c)
                Image.fromarray(pixels, "RGB").save(path, format="PNG")
        counts[split] = len(splits[split]) * canvases[split]
    manifest = {
        "name": "digits stand-in",
        "source": "sklearn.datasets.load_digits (1797 images, 8x8, 10 classes)",
        "render_version": RENDER_VERSION,
        "spec": dataclasses.asdict(spec),
        "images": counts,
        "digits": {split: [int(i) for i in splits[split]] for split in SPLITS},
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def standin_root(cache_dir: Path, spec: StandinSpec | None = None) -> Path:
    """Where the stand-in of ``spec`` lives under ``cache_dir`` (built or not)."""
    return Path(cache_dir) / f"digits-standin-{(spec or StandinSpec()).key()}"


def is_built(root: Path) -> bool:
    """Whether ``root`` holds a finished stand-in (its manifest is written last)."""
    return (root / MANIFEST).is_file()


def implied_sizes(spec: StandinSpec) -> dict[str, int]:
    """Images per split that ``build_tree`` writes for ``spec``, known without building it."""
    val_digits = DIGIT_CLASSES * spec.val_digits_per_class
    return {
        "train": (DIGIT_SAMPLES - val_digits) * spec.train_canvases,
        "val": val_digits * spec.val_canvases,
    }


def ensure_standin(cache_dir: Path, spec: StandinSpec | None = None) -> Path:
    """The stand-in tree under ``cache_dir`` (built once; idempotent and atomic); its root."""
    spec = spec or StandinSpec()
    return build_once(standin_root(cache_dir, spec), lambda root: build_tree(root, spec), is_built)
