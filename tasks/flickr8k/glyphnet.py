"""The stand-in's image encoder: a small CNN trained once on the training glyphs, then frozen.

The paper's captioner reads an ImageNet-trained CNN; the stand-in's analog is a three-layer CNN
trained to name single handwritten digits (scikit-learn's, from the training pictures' pool only,
never a val/test glyph), at the stand-in's sizes, colours and offsets, plus an "empty" class.
Applied to a whole 48 x 64 picture it gives a feature map; the encoder output is that map
max-pooled on a 2 x 3 grid (the layouts' slots: top/bottom, left/middle/right), the classifier's
scores per grid cell, and a 6 x 8 colour thumbnail (colour and size, which the CNN ignores).

Training is seeded and takes seconds; the weights are cached beside the features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dsd.files import atomic_torch_save, safe_torch_load
from tasks.flickr8k import standin

VERSION = 2
PATCH = 24
CLASSES = 11  # ten digits and "empty"
GRID = (2, 3)
THUMBNAIL = (6, 8)
TRAIN_PATCHES, TEST_PATCHES, EPOCHS, SEED = 6000, 1000, 4, 0


class GlyphNet(nn.Module):
    """Fully convolutional digit namer: a feature map for pictures, a class for patches."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(48, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of patches ``[B, 3, H, W]`` (inputs as ink intensity in [0, 1])."""
        return self.head(self.trunk(x).amax(dim=(2, 3)))


class GlyphEncoder(nn.Module):
    """Picture ``[B, 3, 48, 64]`` (ink in [0, 1]) -> features: pooled map, cell scores, thumbnail.

    The pooled map is divided by ``scale`` (its spread over the training patches), so that all
    three parts are of order one, like the other encoders' features.
    """

    def __init__(self, net: GlyphNet, scale: float) -> None:
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cells = F.adaptive_max_pool2d(self.net.trunk(x), GRID)  # [B, 48, 2, 3]
        scores = self.net.head(cells.permute(0, 2, 3, 1)).softmax(dim=-1)  # [B, 2, 3, CLASSES]
        thumb = F.adaptive_avg_pool2d(x, THUMBNAIL)
        return torch.cat([cells.flatten(1) / self.scale, scores.flatten(1), thumb.flatten(1)], dim=1)


def patches(count: int, pool: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` 24 x 24 patches of one glyph (or none) drawn like the stand-in's, with labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = [], []
    for _ in range(count):
        empty = rng.random() < 0.1
        index = int(rng.choice(pool))
        large = bool(rng.random() < 0.5)
        lo, hi = standin.LARGE if large else standin.SMALL
        size = int(rng.integers(lo, hi + 1))
        x, y = (int(v) for v in rng.integers(0, PATCH - size + 1, size=2))
        colour = list(standin.COLOURS)[rng.integers(len(standin.COLOURS))]
        glyph = standin.Glyph(int(digits.target[index]), large, colour, x, y, size)
        picture = standin.render([] if empty else [glyph], [] if empty else [digits.images[index]], rng,
                                 shape=(PATCH, PATCH))  # fmt: skip
        images.append(picture)
        labels.append(10 if empty else glyph.digit)
    ink = 1.0 - torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return ink, torch.tensor(labels)


def train_glyphnet(seed: int = SEED) -> tuple[GlyphNet, float, float]:
    """Train on training-pool glyphs; returns the net, its accuracy on held-out glyphs and the
    spread (std) of its pooled features over the training patches."""
    from sklearn.datasets import load_digits

    train_pool, heldout_pool = standin.glyph_pools(len(load_digits().target))
    rng = np.random.default_rng(seed)
    x, y = patches(TRAIN_PATCHES, train_pool, rng)
    x_test, y_test = patches(TEST_PATCHES, heldout_pool, rng)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = GlyphNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(y), generator=gen).split(100):
            loss = F.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(x_test).argmax(1) == y_test).float().mean())
        scale = float(net.trunk(x[:1000]).amax(dim=(2, 3)).std())
    return net, accuracy, scale


def weights_path(cache_dir: Path) -> Path:
    """Where ``load_or_train`` caches the trained network."""
    return Path(cache_dir) / f"glyphnet-v{VERSION}.pt"


def load_or_train(cache_dir: Path) -> tuple[GlyphEncoder, float]:
    """The frozen encoder (trained first if its weights are not cached) and its glyph accuracy."""
    path = weights_path(cache_dir)
    net = GlyphNet()
    if path.is_file():
        payload = safe_torch_load(path)
        net.load_state_dict(payload["weights"])
        accuracy, scale = float(payload["accuracy"]), float(payload["scale"])
    else:
        net, accuracy, scale = train_glyphnet()
        atomic_torch_save({"weights": net.state_dict(), "accuracy": accuracy, "scale": scale}, path)
    return GlyphEncoder(net.eval(), scale).requires_grad_(False), accuracy
