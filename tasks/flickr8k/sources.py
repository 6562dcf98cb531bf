"""Where the captioner's data comes from: Flickr-8K's own files in a folder
(``tasks.flickr8k.corpus``), a Hugging Face copy on disk (``tasks.flickr8k.hf``), or the digits
stand-in, which is such a folder built first (``tasks.flickr8k.standin``).

The origins differ only in how the captions and images are read (a ``Corpus``); from there on
every source prepares them the same way (``CaptionSource``): each image encoded once by the
run's encoder (cached under the cache folder), undecodable images dropped when told to skip
them, the vocabulary built from the training captions, the splits served as datasets over the
feature table.
"""

from __future__ import annotations

import abc
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from dsd.errors import ConfigError
from dsd.taskkit import hf_data
from dsd.taskkit.fingerprint import DataFingerprint, FingerprintBuilder
from dsd.taskkit.sources import DataSource
from dsd.taskkit.summary import DataSummary
from tasks.flickr8k import corpus, features, hf, standin
from tasks.flickr8k.batches import EvalImages, PreparedData, TrainCaptions, standardized
from tasks.flickr8k.config import FLICKR8K_NAME, STANDIN_NAME, Flickr8kConfig
from tasks.flickr8k.text import Vocabulary

#: How to point the task at its real data (the command line's stand-in banner).
DATA_HINT = (
    "a folder holding Flicker8k_Dataset/ (the images) and Flickr8k_text/ (Flickr8k.token.txt and "
    "the Flickr_8k.*Images.txt split lists) and/or Karpathy's dataset_flickr8k.json, or a Hugging "
    "Face copy (image and caption_0..caption_4 columns; parquet shards, hub cache or save_to_disk)"
)


class CaptionSource(DataSource):
    """Captions and images from one origin, prepared for the captioner with ``encoder``'s
    features (``feature_norm``: ``standardize`` or ``none``). Subclasses read the corpus."""

    def __init__(self, cache_dir: Path, config: Flickr8kConfig, encoder: str, feature_norm: str) -> None:
        self.cache_dir, self.config = Path(cache_dir), config
        self.encoder, self.feature_norm = encoder, feature_norm

    @abc.abstractmethod
    def load_corpus(self) -> corpus.Corpus:
        """The captions and splits, checked against the images."""

    def built(self) -> bool:
        """Whether the data is there to be read (a stand-in may not be built yet)."""
        return True

    @cached_property
    def corpus(self) -> corpus.Corpus:
        return self.load_corpus()

    def vocabulary(self) -> Vocabulary:
        """The words of the training captions as read, before any image is encoded."""
        return Vocabulary.build(self.corpus.split_captions("train"), self.config.min_word_count)

    def _image_names(self) -> list[str]:
        return [n for split in corpus.SPLITS for n in self.corpus.splits[split]]

    def features_cached(self) -> bool:
        store = self.corpus.store()
        return features.cache_path(self.cache_dir, self.encoder, store, self._image_names()).is_file()

    def prepare(self) -> None:
        """Build the stand-in (when asked for) and the image-feature cache. The VGG-16 weights are
        fetched first, so that an offline machine says so before anything else is built."""
        if self.encoder == "vgg16-fc7" and (not self.built() or not self.features_cached()):
            features.fetch_weights(features.vgg16_weights())
        self.prepared  # noqa: B018  (reading it builds and caches everything)

    @cached_property
    def prepared(self) -> PreparedData:
        """The corpus with its image features and vocabulary; an image that does not decode is
        dropped (and counted) when told to skip bad data."""
        cfg, corp, names = self.config, self.corpus, self._image_names()
        store = corp.store()
        table = features.load_or_compute(
            self.cache_dir,
            self.encoder,
            store,
            names,
            skip_bad=cfg.skip_bad_data,
            workers=max(0, cfg.workers),
        )
        if table.failed:  # only reached with skip_bad_data: drop the undecodable images
            failed = set(table.failed)
            corp.issues["undecodable_images"] = len(failed & set(names))
            corp.skipped["undecodable images"] = [store.label(n) for n in sorted(failed & set(names))]
            for split in corpus.SPLITS:
                corp.splits[split] = [n for n in corp.splits[split] if n not in failed]
                if not corp.splits[split]:
                    raise corpus.DataError(
                        f"no decodable image is left in the {split} split of {store.describe()}"
                    )
        if self.feature_norm == "standardize":
            table = standardized(table, corp.splits["train"])
        return PreparedData(corp, self.vocabulary(), table)

    def inspect(self) -> DataSummary:
        """Training captions and evaluation images per split and the vocabulary, from the
        annotation files and the image folder's listing, and whether the features are cached."""
        corp = self.corpus
        images = {split: len(corp.splits[split]) for split in corpus.SPLITS}
        return DataSummary(
            f"{self.dataset_name} at {corp.where()} ({corp.source})",
            {
                "train": sum(len(corp.captions[n]) for n in corp.splits["train"]),
                "val": images["val"],
                "test": images["test"],
            },
            unit="captions",
            eval_unit="images",
            facts={"images": images, "vocabulary": len(self.vocabulary()), "encoder": self.encoder},
            pending=[] if self.features_cached() else self.feature_steps(sum(images.values())),
            fingerprint=None if self.config.skip_bad_data else corpus_fingerprint(corp),
        )

    def feature_steps(self, images: int) -> list[str]:
        """What extracting the features takes, in order."""
        steps = []
        weights = features.weights_file(features.vgg16_weights())
        if self.encoder == "vgg16-fc7" and not weights.is_file():
            steps.append(f"download VGG-16's weights to {weights}")
        if self.encoder == "digits-cnn":
            from tasks.flickr8k import glyphnet

            if not glyphnet.weights_path(self.cache_dir / features.CACHE_FOLDER).is_file():
                steps.append("train the stand-in's glyph encoder once (cached)")
        return [*steps, f"extract the {self.encoder} features of {images:,} images once (cached)"]

    def fingerprint(self) -> DataFingerprint:
        return corpus_fingerprint(self.prepared.corpus)

    def skipped_inputs(self) -> dict[str, list[str]]:
        return self.prepared.corpus.skipped

    def data_issues(self) -> dict[str, int]:
        return dict(self.prepared.corpus.issues)

    def description_facts(self) -> dict[str, Any]:
        data = self.prepared
        splits = data.corpus.splits
        return {
            "encoder": self.encoder,
            "features": self._encoder_description(),
            "feature_norm": (
                "standardized: zero mean, unit variance per feature over the training images"
                if self.feature_norm == "standardize"
                else "none (the encoder's output as is)"
            ),
            "annotations": data.corpus.source,
            "images": {s: len(n) for s, n in splits.items()},
            "train_captions": sum(len(data.corpus.captions[n]) for n in splits["train"]),
            "vocabulary": len(data.vocab),
            "tokenization": "lowercase, ASCII punctuation deleted, whitespace split (NeuralTalk)",
        }

    def _encoder_description(self) -> str:
        dim = self.prepared.table.dim
        if self.encoder == "vgg16-fc7":
            return f"frozen torchvision VGG-16 (IMAGENET1K_V1) fc7 after ReLU, {dim}-d, 224 centre crop"
        if self.encoder == "digits-cnn":
            from tasks.flickr8k import glyphnet

            accuracy = glyphnet.load_or_train(self.cache_dir / features.CACHE_FOLDER)[1]
            return (
                f"frozen 3-layer CNN trained on the stand-in's training glyphs (held-out glyph accuracy "
                f"{accuracy:.1%}): 2x3-grid max-pooled feature map + cell class scores + 6x8 colour "
                f"thumbnail, {dim}-d"
            )
        h, w = features.PIXEL_SIZE
        return f"raw pixels {h}x{w} RGB as ink intensity, {dim}-d (no CNN)"

    # ------------------------------------------------------------------ the prepared splits
    def split_images(self, split: str) -> list[str]:
        """Image file names of a split, in the order of its evaluation records."""
        return list(self.prepared.corpus.splits[split])

    def open_image(self, name: str) -> Any:
        """The image ``name`` (a PIL image, not yet decoded), from its file or its dataset row."""
        return self.prepared.corpus.store().open(name)

    def references(self, split: str) -> list[list[str]]:
        """Every image's reference captions (NeuralTalk tokens joined by spaces), in split order."""
        caps = self.prepared.corpus.captions
        return [[" ".join(c) for c in caps[n]] for n in self.prepared.corpus.splits[split]]

    def train_dataset(self) -> TrainCaptions:
        data = self.prepared
        samples = []
        for name in data.corpus.splits["train"]:
            row = data.table.row[name]
            for tokens in data.corpus.captions[name]:
                ids = data.vocab.encode(tokens, self.config.max_caption_length)
                samples.append((row, torch.tensor(ids, dtype=torch.long)))
        return TrainCaptions(data.table.features, samples)

    def eval_datasets(self) -> dict[str, EvalImages]:
        data = self.prepared
        return {
            split: EvalImages(data.table.features, [data.table.row[n] for n in data.corpus.splits[split]])
            for split in ("val", "test")
        }


class FolderSource(CaptionSource):
    """Flickr-8K's own files under ``root``: the token file and split lists and/or Karpathy's
    JSON (``--annotations`` picks), and the image folder."""

    def __init__(
        self, root: Path, cache_dir: Path, config: Flickr8kConfig, encoder: str, feature_norm: str
    ) -> None:
        super().__init__(cache_dir, config, encoder, feature_norm)
        self._root = Path(root)

    @property
    def dataset_name(self) -> str:
        return FLICKR8K_NAME

    def root(self) -> Path:
        return self._root

    def load_corpus(self) -> corpus.Corpus:
        cfg = self.config
        return corpus.load_corpus(
            self.root(), cfg.annotations, cfg.annotations_file, cfg.images_dir, cfg.skip_bad_data
        )


class StandinSource(FolderSource):
    """The digits stand-in: Flickr-8K's files built under the cache folder on first use; before
    that, its sizes come from its specification."""

    def __init__(self, cache_dir: Path, config: Flickr8kConfig, encoder: str, feature_norm: str) -> None:
        super().__init__(Path(cache_dir) / standin.FOLDER, cache_dir, config, encoder, feature_norm)

    @property
    def dataset_name(self) -> str:
        return STANDIN_NAME

    def root(self) -> Path:
        return standin.ensure_standin(self.cache_dir)

    def built(self) -> bool:
        return standin.is_complete(self._root)

    def inspect(self) -> DataSummary:
        if self.built():
            return super().inspect()
        sizes = standin.SIZES
        return DataSummary(
            f"{STANDIN_NAME}, not built yet: it would be built under {self._root}",
            {
                "train": sizes["train"] * standin.CAPTIONS_PER_PICTURE,
                "val": sizes["val"],
                "test": sizes["test"],
            },
            unit="captions",
            eval_unit="images",
            facts={"images": dict(sizes), "vocabulary": "counted once the stand-in is built"},
            pending=[
                f"build the stand-in ({sum(sizes.values()):,} pictures with their captions)",
                *self.feature_steps(sum(sizes.values())),
            ],
            implied=True,
        )


class HFCaptionSource(CaptionSource):
    """A Hugging Face copy holding images and captions together (``image`` and
    ``caption_0..caption_4`` or ``captions`` columns); the official files' flags do not apply."""

    def __init__(
        self,
        found: hf_data.HFSource,
        cache_dir: Path,
        config: Flickr8kConfig,
        encoder: str,
        feature_norm: str,
    ) -> None:
        super().__init__(cache_dir, config, encoder, feature_norm)
        self.hf = found
        given = [
            flag
            for flag, value in (
                ("--annotations-file", config.annotations_file),
                ("--images-dir", config.images_dir),
                ("--annotations", config.annotations != "auto"),
            )
            if value
        ]
        if given:
            raise ConfigError(
                f"{' and '.join(given)} choose among Flickr-8K's official files, but --data "
                f"{found.root} is a Hugging Face dataset ({found.label}) holding images and "
                "captions together: leave them out"
            )

    @property
    def dataset_name(self) -> str:
        return f"{FLICKR8K_NAME} ({self.hf.label})"

    def load_corpus(self) -> corpus.Corpus:
        return hf.load_corpus(self.hf, self.cache_dir, self.config.skip_bad_data)


def corpus_fingerprint(corp: corpus.Corpus) -> DataFingerprint:
    """Which annotation file was read (Karpathy's JSON or the official token file and split
    lists), every split's images with their sizes, and every caption as written."""
    builder = FingerprintBuilder("Flickr-8K").add("annotations", corp.source)
    store = corp.store()
    for split in corpus.SPLITS:
        for name in corp.splits[split]:
            builder.add(split, name, store.key(name), *corp.raw_captions[name])
    return builder.finish(
        annotations=corp.source,
        images={split: len(corp.splits[split]) for split in corpus.SPLITS},
        captions=sum(len(c) for c in corp.raw_captions.values()),
    )
