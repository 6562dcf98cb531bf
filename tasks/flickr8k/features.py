"""The frozen image encoder, run once over every image, its output cached on disk.

Encoders:

* ``vgg16-fc7``: the paper's. torchvision's VGG-16 (``IMAGENET1K_V1``) up to fc7 after its ReLU
  (Caffe's ``fc7`` blob, which NeuralTalk reads), 4096-d, on the standard single 224 centre
  crop of the image resized to 256 (NeuralTalk's Caffe features were computed the same way).
* ``digits-cnn``: the digits stand-in's analog of an ImageNet CNN: a small CNN trained once on
  the stand-in's training glyphs, then frozen (``tasks.flickr8k.glyphnet``), 498-d.
* ``pixels``: the raw picture, resized to 24 x 32 and inverted to ink intensity in [0, 1]
  (2304-d); no network at all (a linear image projection cannot read digits from it well).

The cache file is named by the encoder and a hash of the image list (names and byte sizes; for a
Hugging Face dataset's rows, their shard's name and size), so any change of images makes a new
one and every run on the same images reuses it. It is written once, complete, to a temp file
renamed into place: a crash leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dsd.errors import ConfigError, UserError
from dsd.files import atomic_torch_save, safe_torch_load
from tasks.flickr8k.corpus import DataError
from tasks.flickr8k.images import ImageStore, as_store

ENCODERS = ("vgg16-fc7", "digits-cnn", "pixels")
PIXEL_SIZE = (24, 32)  # height, width
CACHE_FOLDER = "flickr8k-features"
CACHE_VERSION = 1


class WeightsUnavailableError(UserError, RuntimeError):
    """Published encoder weights neither in torchvision's cache nor downloadable; the message
    names the file and where to copy it."""


@dataclass
class FeatureTable:
    """Encoder outputs for a list of images; images that failed to decode are listed apart."""

    encoder: str
    names: list[str]
    features: torch.Tensor  # [len(names), dim], float32
    failed: list[str]

    def __post_init__(self) -> None:
        self.row = {name: i for i, name in enumerate(self.names)}

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


def cache_path(cache_dir: Path, encoder: str, images: Path | ImageStore, names: Sequence[str]) -> Path:
    """``<cache_dir>/flickr8k-features/<encoder>-<hash>.pt`` for these images (``images``: their
    folder, or an ``ImageStore``)."""
    store = as_store(images)
    digest = hashlib.sha256(f"v{CACHE_VERSION}:{encoder}:{encoder_version(encoder)}".encode())
    for name in sorted(names):
        digest.update(f"\n{name}:{store.key(name)}".encode())
    return Path(cache_dir) / CACHE_FOLDER / f"{encoder}-{digest.hexdigest()[:16]}.pt"


def encoder_version(encoder: str) -> int:
    """Bumped whenever an encoder's output changes, so that stale caches are not reused."""
    if encoder == "digits-cnn":
        from tasks.flickr8k import glyphnet

        return glyphnet.VERSION
    return 1


def load_or_compute(
    cache_dir: Path, encoder: str, images: Path | ImageStore, names: Sequence[str], **options: Any
) -> FeatureTable:
    """The cached features of ``names`` in ``images`` (a folder or an ``ImageStore``), computed
    first when missing or unreadable (a cache is rebuilt, never fatal). ``options``: ``compute``'s
    ``skip_bad``, ``workers`` and ``device``."""
    skip_bad = options.get("skip_bad", False)
    if encoder not in ENCODERS:
        raise ConfigError(f"--encoder {encoder!r} is not one of: {', '.join(ENCODERS)}")
    store = as_store(images)
    path = cache_path(cache_dir, encoder, store, names)
    table = _cached_table(path)
    if table is None:
        table = compute(encoder, cache_dir, store, sorted(names), **options)
        atomic_torch_save(
            {
                "version": CACHE_VERSION,
                "encoder": encoder,
                "names": table.names,
                "features": table.features,
                "failed": table.failed,
            },
            path,
        )
    if table.failed and not skip_bad:
        raise DataError(
            f"{len(table.failed)} image(s) in {store.describe()} could not be decoded, e.g. "
            f"{store.location(table.failed[0])} "
            f"(recorded in {path}); replace them, or pass --skip-bad-data to skip them"
        )
    return table


def _cached_table(path: Path) -> FeatureTable | None:
    """The feature table cached at ``path``; None when there is none, or (with a warning) when it
    cannot be read: it is then computed again."""
    if not path.is_file():
        return None
    try:
        return read_table(path)
    except (UserError, KeyError, TypeError) as err:
        print(f"warning: the feature cache {path} is unreadable ({err}); the features are computed again",
              file=sys.stderr)  # fmt: skip
        return None


def read_table(path: Path) -> FeatureTable:
    payload = safe_torch_load(path)
    if not isinstance(payload, dict) or payload.get("version") != CACHE_VERSION:
        raise DataError(f"{path} is not a feature cache of version {CACHE_VERSION}; delete it to rebuild")
    return FeatureTable(
        payload["encoder"], list(payload["names"]), payload["features"], list(payload["failed"])
    )


# ---------------------------------------------------------------------- computing
class _Images(Dataset):
    """Decoded, transformed images by index; an image that fails to decode gives its error text."""

    def __init__(
        self, store: ImageStore, names: Sequence[str], transform: Callable[[Image.Image], torch.Tensor]
    ):
        self.store, self.names, self.transform = store, list(names), transform

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            with self.store.open(self.names[index]) as image:
                return index, self.transform(image.convert("RGB")), ""
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
            return index, None, f"{type(err).__name__}: {err}"


def _collate(items: list[tuple[int, torch.Tensor | None, str]]) -> list[tuple[int, torch.Tensor | None, str]]:
    return items


def compute(
    encoder: str,
    cache_dir: Path,
    images: Path | ImageStore,
    names: Sequence[str],
    skip_bad: bool = False,
    workers: int = 0,
    device: torch.device | None = None,
) -> FeatureTable:
    """Run ``encoder`` over every image (with a progress bar); undecodable ones raise or are skipped."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    store = as_store(images)
    network, transform = build_encoder(encoder, cache_dir)
    network = network.to(device).eval()
    store.ready()
    loader = DataLoader(
        _Images(store, names, transform), batch_size=64, num_workers=max(0, workers), collate_fn=_collate
    )
    rows: list[torch.Tensor] = []
    kept: list[str] = []
    failed: list[str] = []
    with (
        torch.inference_mode(),
        tqdm(total=len(names), desc=f"image features ({encoder})", unit="img") as bar,
    ):
        for items in loader:
            good = []
            for index, tensor, error in items:
                if tensor is None:
                    if not skip_bad:
                        raise DataError(
                            f"{store.location(names[index])}: cannot decode the image ({error}); "
                            "pass --skip-bad-data to skip it"
                        )
                    failed.append(names[index])
                else:
                    good.append((index, tensor))
            if good:
                batch = torch.stack([t for _, t in good]).to(device)
                rows.append(network(batch).float().cpu())
                kept += [names[i] for i, _ in good]
            bar.update(len(items))
    if not rows:
        raise DataError(f"no image in {store.describe()} could be decoded")
    return FeatureTable(encoder, kept, torch.cat(rows), failed)


def build_encoder(encoder: str, cache_dir: Path) -> tuple[nn.Module, Callable[[Image.Image], torch.Tensor]]:
    """The frozen network and the image transform it expects."""
    if encoder == "pixels":
        return _Ink(), _pixel_transform
    if encoder == "digits-cnn":
        from tasks.flickr8k import glyphnet, standin

        network, _ = glyphnet.load_or_train(Path(cache_dir) / CACHE_FOLDER)
        return network, lambda image: 1.0 - _to_tensor(image, (standin.HEIGHT, standin.WIDTH))
    if encoder == "vgg16-fc7":
        from torchvision.models import vgg16

        weights = vgg16_weights()
        state = pretrained_state_dict(weights)  # first: a missing file fails fast
        model = vgg16()
        model.load_state_dict(state)
        # classifier = fc6, ReLU, Dropout, fc7, ReLU, Dropout, fc8: keep through fc7's ReLU.
        model.classifier = model.classifier[:5]
        return model, weights.transforms()
    raise ValueError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")


class _Ink(nn.Module):
    """Flattened ink intensity (1 - brightness), so the empty background is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1.0 - x).flatten(1)


def _to_tensor(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """RGB image resized to ``size`` (height, width) as ``[3, h, w]`` floats in [0, 1]."""
    h, w = size
    if image.size != (w, h):
        image = image.resize((w, h), Image.BILINEAR)
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(h, w, 3).permute(2, 0, 1).float() / 255.0


def _pixel_transform(image: Image.Image) -> torch.Tensor:
    return _to_tensor(image, PIXEL_SIZE)


def feature_dim(encoder: str) -> int:
    """The width of an encoder's features, known without running it over any image (the model's
    input size, for the checks before a study and ``dsd-suite plan``)."""
    if encoder == "vgg16-fc7":
        return 4096
    if encoder == "pixels":
        return 3 * PIXEL_SIZE[0] * PIXEL_SIZE[1]
    if encoder == "digits-cnn":  # an untrained copy of the network has the trained one's output width
        from tasks.flickr8k import glyphnet, standin

        with torch.no_grad():
            blank = torch.zeros(1, 3, standin.HEIGHT, standin.WIDTH)
            return int(glyphnet.GlyphEncoder(glyphnet.GlyphNet(), 1.0)(blank).shape[1])
    raise ConfigError(f"--encoder {encoder!r} is not one of: {', '.join(ENCODERS)}")


def vgg16_weights() -> object:
    """The paper's encoder weights: torchvision's ``VGG16_Weights.IMAGENET1K_V1``."""
    from torchvision.models import VGG16_Weights

    return VGG16_Weights.IMAGENET1K_V1


def weights_file(weights: object) -> Path:
    """Where torchvision caches ``weights`` (``$TORCH_HOME/hub/checkpoints/<file>``)."""
    url = weights.url  # type: ignore[attr-defined]
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def pretrained_state_dict(weights: object) -> dict[str, torch.Tensor]:
    """torchvision weights from its cache (``$TORCH_HOME/hub/checkpoints``), else a clear error."""
    return safe_torch_load(fetch_weights(weights))


def fetch_weights(weights: object) -> Path:
    """The cached file of torchvision ``weights``, downloaded first as torchvision does when the
    network allows; offline, an error naming the file and the place to put it instead of a bare
    connection error."""
    target = weights_file(weights)
    if target.is_file():
        return target
    url = weights.url  # type: ignore[attr-defined]
    try:
        weights.get_state_dict(progress=True, check_hash=True)  # type: ignore[attr-defined]
        return target
    except Exception as err:  # URLError, HTTPError, socket errors, ...
        raise WeightsUnavailableError(
            f"the pretrained weights {target.name} are not on this machine and could not be downloaded "
            f"({type(err).__name__}: {err}). Download {url} elsewhere and copy it to {target} "
            "(torchvision's cache: $TORCH_HOME/hub/checkpoints, TORCH_HOME defaulting to ~/.cache/torch)"
        ) from None
