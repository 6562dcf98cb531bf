"""The digits stand-in: small pictures of handwritten digits with captions that describe them.

Each picture (48 x 64 RGB JPEG) holds one, two or three of scikit-learn's bundled 8 x 8 digits,
scaled small or large, in one of four colours, alone (left, middle or right), side by side,
stacked, or in a row of three, each within a pixel of its slot. Five captions per picture, each
from a different phrasing, mention the digits' names and, at random, their sizes, colours, count,
positions and left / right / above / below relations. No caption says everything and phrasings
vary: one reference scored against the other four gets BLEU-4 of about 29, so a captioner's
BLEU-4 is far from 100 and the dense baseline leaves room for DSD to show a difference.

Written in Flickr-8K's own files (``Flickr8k_text/Flickr8k.token.txt`` with the split lists,
``Flicker8k_Dataset/*.jpg``) so the real loader reads it. Built once, atomically
(``dsd.taskkit.standin.build_once``), in a folder named by the generator's version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dsd.taskkit.standin import build_once
from tasks.flickr8k.corpus import IMAGE_FOLDERS, SPLIT_FILES, TOKEN_FILE

VERSION = 2
FOLDER = f"flickr8k-digits-standin-v{VERSION}"
#: Pictures per split (train / val / test).
SIZES = {"train": 1500, "val": 200, "test": 300}
CAPTIONS_PER_PICTURE = 5
HEIGHT, WIDTH = 48, 64
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COLOURS = {"black": (20, 20, 20), "red": (200, 30, 30), "blue": (30, 60, 200), "green": (20, 140, 40)}
SMALL, LARGE = (12, 13), (19, 20)  # pixel sizes of small / large digits
JITTER = 1
SINGLE_SLOTS = (12, 32, 52)  # x centres of a lone digit: left, middle, right
TRIPLE_SLOTS = (11, 32, 53)
LAYOUTS = ("one", "pair_h", "pair_v", "triple")
LAYOUT_WEIGHTS = (0.2, 0.3, 0.2, 0.3)
SEED = 8000


@dataclass(frozen=True)
class Glyph:
    """One digit in a picture: its class, size class, colour and where it is."""

    digit: int
    large: bool
    colour: str
    x: int  # left edge
    y: int  # top edge
    size: int


TOKEN_FOLDER = "Flickr8k_text"


def ensure_standin(cache_dir: Path) -> Path:
    """The stand-in's root folder under ``cache_dir``, built first if missing (idempotent)."""
    return build_once(Path(cache_dir) / FOLDER, write_standin, is_complete)


def is_complete(root: Path) -> bool:
    """Whether ``root`` holds a finished stand-in (the token file is written last)."""
    return (root / TOKEN_FOLDER / TOKEN_FILE).is_file()


def glyph_pools(count: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices of scikit-learn's digits drawn by training pictures (two thirds) and by val/test
    pictures (the rest): no handwritten glyph of a test picture was seen in training."""
    order = np.random.default_rng(seed).permutation(count)
    cut = int(0.67 * count)
    return order[:cut], order[cut:]


def write_standin(root: Path, sizes: dict[str, int] | None = None, seed: int = SEED) -> None:
    """Write the pictures, the token file and the split lists under ``root``."""
    from sklearn.datasets import load_digits

    sizes = sizes or SIZES
    digits = load_digits()
    train_pool, heldout_pool = glyph_pools(len(digits.target), seed)
    pools = {"train": train_pool, "val": heldout_pool, "test": heldout_pool}
    images_dir = root / IMAGE_FOLDERS[0]
    text_dir = root / TOKEN_FOLDER
    images_dir.mkdir(parents=True)
    text_dir.mkdir(parents=True)
    token_lines: list[str] = []
    number = 0
    for split_index, (split, count) in enumerate(sizes.items()):
        rng = np.random.default_rng([seed, split_index])
        by_class = {c: [i for i in pools[split] if digits.target[i] == c] for c in range(10)}
        names = []
        for _ in range(count):
            name = f"digits_{number:05d}.jpg"
            number += 1
            layout = LAYOUTS[rng.choice(len(LAYOUTS), p=LAYOUT_WEIGHTS)]
            glyphs = place_glyphs(layout, rng)
            picture = render(glyphs, [digits.images[rng.choice(by_class[g.digit])] for g in glyphs], rng)
            Image.fromarray(picture).save(images_dir / name, quality=92)
            token_lines += [f"{name}#{k}\t{c}" for k, c in enumerate(captions(layout, glyphs, rng))]
            names.append(name)
        (text_dir / SPLIT_FILES[split]).write_text("\n".join(names) + "\n", encoding="utf-8")
    (text_dir / TOKEN_FILE).write_text("\n".join(token_lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------- pictures
def place_glyphs(layout: str, rng: np.random.Generator) -> list[Glyph]:
    """Digits, sizes, colours and positions for one picture (left to right, top to bottom).

    Each digit sits in a slot of its layout (a single digit: left, middle or right), moved by at
    most ``JITTER`` pixels: raw pixels then carry the digit's identity well enough for a linear
    image projection to read most of it, but not all (small digits are the hard ones).
    """

    def glyph(cx: int, cy: int) -> Glyph:
        large = bool(rng.random() < 0.5)
        lo, hi = LARGE if large else SMALL
        size = int(rng.integers(lo, hi + 1))
        x = cx - size // 2 + int(rng.integers(-JITTER, JITTER + 1))
        y = cy - size // 2 + int(rng.integers(-JITTER, JITTER + 1))
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        return Glyph(int(rng.integers(10)), large, colour, max(0, x), max(0, y), size)

    middle = HEIGHT // 2
    if layout == "one":
        return [glyph(int(rng.choice(SINGLE_SLOTS)), middle)]
    if layout == "pair_h":
        return [glyph(WIDTH // 4, middle), glyph(3 * WIDTH // 4, middle)]
    if layout == "pair_v":
        return [glyph(WIDTH // 2, HEIGHT // 4), glyph(WIDTH // 2, 3 * HEIGHT // 4)]
    return [glyph(cx, middle) for cx in TRIPLE_SLOTS]


def render(
    glyphs: list[Glyph],
    images: list[np.ndarray],
    rng: np.random.Generator,
    shape: tuple[int, int] = (HEIGHT, WIDTH),
) -> np.ndarray:
    """An RGB uint8 picture (default HEIGHT x WIDTH): noisy light background, digits alpha-blended on it."""
    height, width = shape
    canvas = 245.0 + rng.normal(0.0, 6.0, size=(height, width, 1)) * np.ones((1, 1, 3))
    for g, image in zip(glyphs, images, strict=True):
        alpha = Image.fromarray((image / 16.0 * 255).astype(np.uint8)).resize(
            (g.size, g.size), Image.BILINEAR
        )
        a = np.asarray(alpha, dtype=np.float64)[..., None] / 255.0
        h = min(g.size, height - g.y)
        w = min(g.size, width - g.x)
        region = canvas[g.y : g.y + h, g.x : g.x + w]
        region[:] = region * (1 - a[:h, :w]) + np.array(COLOURS[g.colour]) * a[:h, :w]
    return np.clip(canvas, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- captions
def _phrase(g: Glyph, rng: np.random.Generator, article: bool = True) -> str:
    """``a small red three``: the name always; size and colour at random."""
    words = []
    if rng.random() < 0.6:
        words.append(
            ("large", "big")[int(rng.random() < 0.4)]
            if g.large
            else ("small", "little")[int(rng.random() < 0.3)]
        )
    if rng.random() < 0.4:
        words.append(g.colour)
    words.append(NAMES[g.digit])
    if article:
        words.insert(0, "an" if words[0] == "eight" else "a")
    return " ".join(words)


def _where(g: Glyph) -> str:
    centre = g.x + g.size / 2
    if centre < WIDTH / 3:
        return "on the left"
    return "in the middle" if centre < 2 * WIDTH / 3 else "on the right"


#: Each layout's phrasings: ``{a}`` is a fresh random wording of digit a (``a small red three``),
#: ``{a.where}`` where it sits, ``{a.name}`` its bare name.
TEMPLATES = {
    "one": ("{a}", "{a} {a.where}", "a single digit: {a}", "there is {a} {a.where}",
            "{a} on a white background", "the number {a.name} {a.where}"),
    "pair_h": ("{a} to the left of {b}", "{b} to the right of {a}", "two digits: {a} and {b}",
               "{a} next to {b}", "{a} and {b} side by side",
               "there are two digits, {a} on the left and {b} on the right"),
    "pair_v": ("{a} above {b}", "{b} below {a}", "{a} on top of {b}", "two digits: {a} over {b}",
               "{a} and {b} stacked vertically"),
    "triple": ("three digits: {a}, {b} and {c}", "{a}, {b} and {c} in a row",
            "a row of three digits: {a.name}, {b.name}, {c.name}", "{a} to the left of {b} and {c}",
            "three digits with {b} in the middle", "{c} on the right of {a} and {b}"),
}  # fmt: skip
FIELD = re.compile(r"\{([abc])(?:\.(where|name))?\}")


def captions(
    layout: str, glyphs: list[Glyph], rng: np.random.Generator, count: int = CAPTIONS_PER_PICTURE
) -> list[str]:
    """``count`` captions in different phrasings, written like Flickr-8K's (capital, `` .``).
    Fields are filled left to right, each ``{a}`` with a fresh random wording."""
    templates = TEMPLATES[layout]
    named = dict(zip("abc", glyphs, strict=False))

    def fill(field: re.Match) -> str:
        glyph, part = named[field.group(1)], field.group(2)
        if part == "where":
            return _where(glyph)
        return NAMES[glyph.digit] if part == "name" else _phrase(glyph, rng)

    chosen = rng.permutation(len(templates))[:count]
    return [_as_flickr(FIELD.sub(fill, templates[i])) for i in chosen]


def _as_flickr(text: str) -> str:
    return text[0].upper() + text[1:] + " ."
