"""Flickr-8K captioning for the suite: NeuralTalk on frozen image features, scored by BLEU.

The paper (Table 5) prunes NeuralTalk to 80 % sparsity, everything but the word embedding, and
re-densifies it: BLEU-4 16.8 -> 18.5 on Flickr-8K's test split. This adapter reads the real
dataset from ``data_dir`` (see ``tasks.flickr8k.corpus`` for the files), or builds and reads the
digits stand-in (``tasks.flickr8k.standin``) when ``data_dir`` is None.

Choices to know about, each also written into every run's record (``description``):

* Pruned: the image projection, both LSTM weight matrices and the output layer's weight, each at
  exactly the phase's sparsity; the word embedding (the paper's ``Ws``) stays dense. Biases stay
  dense too: the paper says "all but Ws", but NeuralTalk's LSTM bias is one row of 513 in its
  ``WLSTM`` matrix and the output bias starts at the log word frequencies; together they are
  about 0.2 % of the weights, and the engine never prunes biases elsewhere in the suite.
* Learning rate inside a phase: constant (``decay=none``), as NeuralTalk's RMSprop solver had no
  schedule; the phases' own rates (1e-2, 1e-3, 1e-4) are the paper's.
* Gradient clipping: the loop's global-norm clip at 5. NeuralTalk clipped each element at 5.
* The stand-in departs from NeuralTalk's settings where its few hundred steps need it (batch 50,
  RMSprop decay 0.999 -> 0.99, features standardized; see ``STANDIN_BATCH``); on Flickr-8K the
  defaults are NeuralTalk's.
* The paper's baseline is NeuralTalk's released Flickr-8K model, a numpy LSTM without PyTorch
  weights; the study therefore trains its dense baseline for the recipe's 19 epochs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from dsd.errors import ConfigError
from dsd.files import atomic_write_text
from dsd.taskkit import hf_data
from dsd.taskkit.adapter import MetricSpec, TaskAdapter
from dsd.taskkit.fingerprint import DataFingerprint, FingerprintBuilder
from dsd.taskkit.summary import DataSummary
from tasks.flickr8k import bleu, corpus, features, hf, standin
from tasks.flickr8k.batches import EvalImages, PreparedData, TrainCaptions, collate, standardized
from tasks.flickr8k.config import (
    FLICKR8K_NAME,
    NEURALTALK_BATCH,
    NEURALTALK_RMSPROP_ALPHA,
    PAPER_RECIPE,
    PRUNED,
    STANDIN_BATCH,
    STANDIN_NAME,
    STANDIN_RECIPE,
    STANDIN_RMSPROP_ALPHA,
    Flickr8kConfig,
)
from tasks.flickr8k.model import NeuralTalk, caption_loss, decode
from tasks.flickr8k.text import Vocabulary


class Flickr8kTask(TaskAdapter):
    """NeuralTalk on Flickr-8K (or the digits stand-in), BLEU-1..4 on val (every epoch) and test."""

    name: ClassVar[str] = "flickr8k"
    Config = Flickr8kConfig
    metrics: ClassVar[dict[str, MetricSpec]] = {
        f"bleu{n}": MetricSpec(higher_is_better=True, label=f"BLEU-{n}") for n in range(1, 5)
    }
    primary_metric: ClassVar[str] = "bleu4"
    data_hint: ClassVar[str] = (
        "a folder holding Flicker8k_Dataset/ (the images) and Flickr8k_text/ (Flickr8k.token.txt and "
        "the Flickr_8k.*Images.txt split lists) and/or Karpathy's dataset_flickr8k.json, or a Hugging "
        "Face copy (image and caption_0..caption_4 columns; parquet shards, hub cache or save_to_disk)"
    )
    config: Flickr8kConfig

    def resolve_config(self, config: Flickr8kConfig) -> Flickr8kConfig:  # type: ignore[override]
        """The 0 placeholders resolved (NeuralTalk's values, or the stand-in's); checked."""
        if config.batch_size < 0 or config.rmsprop_alpha < 0:
            raise ConfigError("--batch-size and --rmsprop-alpha must be positive (0: the default)")
        if config.beam_size < 1:
            raise ConfigError(f"--beam-size must be at least 1, got {config.beam_size}")
        if config.max_caption_length < 1:
            raise ConfigError(f"--max-caption-length must be at least 1, got {config.max_caption_length}")
        standin_data = self.is_standin
        if self._hf is not None:
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
                    f"{self.data_dir} is a Hugging Face dataset ({self._hf.label}) holding images and "
                    "captions together: leave them out"
                )
        return dataclasses.replace(
            config,
            batch_size=config.batch_size or (STANDIN_BATCH if standin_data else NEURALTALK_BATCH),
            rmsprop_alpha=config.rmsprop_alpha
            or (STANDIN_RMSPROP_ALPHA if standin_data else NEURALTALK_RMSPROP_ALPHA),
        )

    # ------------------------------------------------------------------ identity
    @property
    def dataset_name(self) -> str:
        if self.is_standin:
            return STANDIN_NAME
        return FLICKR8K_NAME if self._hf is None else f"{FLICKR8K_NAME} ({self._hf.label})"

    @cached_property
    def _hf(self) -> hf_data.HFSource | None:
        """The Hugging Face dataset ``data_dir`` holds, or None (the official files, or the stand-in)."""
        return None if self.data_dir is None else hf_data.detect(Path(self.data_dir))

    @property
    def model_name(self) -> str:
        return "neuraltalk"

    @property
    def default_recipe(self) -> str:
        return STANDIN_RECIPE if self.is_standin else PAPER_RECIPE

    @property
    def encoder(self) -> str:
        """The config's encoder, or by dataset when ``auto``."""
        choice = self.config.encoder
        if choice == "auto":
            return "digits-cnn" if self.is_standin else "vgg16-fc7"
        return choice

    @property
    def description(self) -> dict[str, Any]:
        data = self._data
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
            "bleu": bleu.DESCRIPTION,
            "decoding": {
                "val": "greedy",
                "test": "greedy" if self.config.beam_size == 1 else f"beam {self.config.beam_size}",
            },
            "pruned": [*PRUNED, "(word embedding and all biases stay dense)"],
            "lr_decay": "constant within each phase (NeuralTalk's RMSprop had no schedule)",
        }

    # ------------------------------------------------------------------ data
    def prepare(self) -> None:
        """Build the stand-in (if no data_dir) and the image-feature cache. The VGG-16 weights are
        fetched first, so that an offline machine says so before anything else is built."""
        if self.encoder == "vgg16-fc7" and (self._standin_pending() or not self._features_cached()):
            features.fetch_weights(features.vgg16_weights())
        self._data  # noqa: B018  (reading it builds and caches everything)

    def _standin_pending(self) -> bool:
        """The stand-in is asked for and not built yet."""
        return self.is_standin and not standin.is_complete(Path(self.cache_dir) / standin.FOLDER)

    @cached_property
    def _corpus(self) -> corpus.Corpus:
        """The captions and splits, checked against the image folder (building the stand-in first)."""
        cfg = self.config
        if self._hf is not None:
            return hf.load_corpus(self._hf, self.cache_dir, cfg.skip_bad_data)
        root = standin.ensure_standin(self.cache_dir) if self.is_standin else Path(self.data_dir)
        return corpus.load_corpus(
            root, cfg.annotations, cfg.annotations_file, cfg.images_dir, cfg.skip_bad_data
        )

    def _image_names(self) -> list[str]:
        return [n for split in corpus.SPLITS for n in self._corpus.splits[split]]

    def _features_cached(self) -> bool:
        corp = self._corpus
        return features.cache_path(self.cache_dir, self.encoder, corp.store(), self._image_names()).is_file()

    def inspect(self) -> DataSummary:
        """Training captions and evaluation images per split, the vocabulary, and what preparing
        would do (build the stand-in, extract the image features), from the annotation files and
        the image folder's listing; a stand-in not built yet gives the sizes it would have."""
        if self._standin_pending():
            sizes = standin.SIZES
            pending = [f"build the stand-in ({sum(sizes.values()):,} pictures with their captions)"]
            folder = Path(self.cache_dir) / standin.FOLDER
            return DataSummary(
                f"{STANDIN_NAME}, not built yet: it would be built under {folder}",
                {
                    "train": sizes["train"] * standin.CAPTIONS_PER_PICTURE,
                    "val": sizes["val"],
                    "test": sizes["test"],
                },
                unit="captions",
                eval_unit="images",
                facts={"images": dict(sizes), "vocabulary": "counted once the stand-in is built"},
                pending=pending + self._feature_steps(sum(sizes.values())),
                implied=True,
            )
        corp = self._corpus
        vocab = Vocabulary.build(corp.split_captions("train"), self.config.min_word_count)
        images = {split: len(corp.splits[split]) for split in corpus.SPLITS}
        cached = self._features_cached()
        return DataSummary(
            f"{self.dataset_name} at {corp.where()} ({corp.source})",
            {
                "train": sum(len(corp.captions[n]) for n in corp.splits["train"]),
                "val": images["val"],
                "test": images["test"],
            },
            unit="captions",
            eval_unit="images",
            facts={"images": images, "vocabulary": len(vocab), "encoder": self.encoder},
            pending=[] if cached else self._feature_steps(sum(images.values())),
            fingerprint=None if self.config.skip_bad_data else _fingerprint(corp),
        )

    def _feature_steps(self, images: int) -> list[str]:
        """What extracting the features takes, in order."""
        steps = []
        weights = features.weights_file(features.vgg16_weights())
        if self.encoder == "vgg16-fc7" and not weights.is_file():
            steps.append(f"download VGG-16's weights to {weights}")
        if self.encoder == "digits-cnn":
            from tasks.flickr8k import glyphnet

            if not glyphnet.weights_path(Path(self.cache_dir) / features.CACHE_FOLDER).is_file():
                steps.append("train the stand-in's glyph encoder once (cached)")
        return [*steps, f"extract the {self.encoder} features of {images:,} images once (cached)"]

    @cached_property
    def _data(self) -> PreparedData:
        cfg = self.config
        corp = self._corpus
        names = self._image_names()
        table = features.load_or_compute(
            self.cache_dir,
            self.encoder,
            corp.store(),
            names,
            cfg.skip_bad_data,
            workers=max(0, cfg.workers),
        )
        if table.failed:  # only reached with skip_bad_data: drop the undecodable images
            failed = set(table.failed)
            corp.issues["undecodable_images"] = len(failed & set(names))
            corp.skipped["undecodable images"] = [corp.store().label(n) for n in sorted(failed & set(names))]
            for split in corpus.SPLITS:
                corp.splits[split] = [n for n in corp.splits[split] if n not in failed]
                if not corp.splits[split]:
                    raise corpus.DataError(
                        f"no decodable image is left in the {split} split of {corp.store().describe()}"
                    )
        if self.feature_norm == "standardize":
            table = standardized(table, corp.splits["train"])
        vocab = Vocabulary.build(corp.split_captions("train"), cfg.min_word_count)
        return PreparedData(corp, vocab, table)

    @property
    def feature_norm(self) -> str:
        """``standardize`` or ``none``: the config's, or by encoder when ``auto``."""
        choice = self.config.feature_norm
        if choice == "auto":
            return "none" if self.encoder == "vgg16-fc7" else "standardize"
        return choice

    def _encoder_description(self) -> str:
        dim = self._data.table.dim
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

    def data_issues(self) -> dict[str, int]:
        return dict(self._data.corpus.issues)

    def skipped_inputs(self) -> dict[str, list[str]]:
        return self._data.corpus.skipped

    def data_fingerprint(self) -> DataFingerprint:
        return _fingerprint(self._data.corpus)

    def setup_notes(self) -> list[str]:
        """Departures from NeuralTalk's Flickr-8K setup: the image encoder, the feature
        normalisation, the model widths and the optimizer settings."""
        cfg, notes = self.config, []
        if self.encoder != "vgg16-fc7":
            notes.append(f"encoder {self.encoder}")
        if self.feature_norm != "none":
            notes.append("standardized features")
        if (cfg.embed_size, cfg.hidden_size) != (256, 256):
            notes.append(f"embedding {cfg.embed_size}, LSTM {cfg.hidden_size}")
        if (cfg.batch_size, cfg.rmsprop_alpha) != (NEURALTALK_BATCH, NEURALTALK_RMSPROP_ALPHA):
            notes.append(f"batch {cfg.batch_size}, RMSprop decay {cfg.rmsprop_alpha:g}")
        return notes

    @property
    def vocabulary(self) -> Vocabulary:
        return self._data.vocab

    def split_images(self, split: str) -> list[str]:
        """Image file names of a split, in the order of its evaluation records."""
        return list(self._data.corpus.splits[split])

    def image_path(self, name: str) -> Path:
        return self._data.corpus.images_dir / name

    def open_image(self, name: str) -> Any:
        """The image ``name`` (a PIL image, not yet decoded), from its file or its dataset row."""
        return self._data.corpus.store().open(name)

    def references(self, split: str) -> list[list[str]]:
        """Every image's reference captions (NeuralTalk tokens joined by spaces), in split order."""
        caps = self._data.corpus.captions
        return [[" ".join(c) for c in caps[n]] for n in self._data.corpus.splits[split]]

    def train_dataset(self) -> Dataset:
        data = self._data
        samples = []
        for name in data.corpus.splits["train"]:
            row = data.table.row[name]
            for tokens in data.corpus.captions[name]:
                ids = data.vocab.encode(tokens, self.config.max_caption_length)
                samples.append((row, torch.tensor(ids, dtype=torch.long)))
        return TrainCaptions(data.table.features, samples)

    def eval_datasets(self) -> dict[str, Dataset]:
        data = self._data
        return {
            split: EvalImages(data.table.features, [data.table.row[n] for n in data.corpus.splits[split]])
            for split in ("val", "test")
        }

    def collate_fn(self) -> Callable[[list[Any]], Any]:
        return collate

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        return self._model(self._data.table.dim, self._data.vocab)

    def planned_model(self) -> nn.Module | None:
        """Built from the captions' vocabulary and the encoder's width, without extracting a
        feature; None while the stand-in is not built, or when images that fail to decode would
        be dropped (``--skip-bad-data``: the vocabulary may then shrink)."""
        if self._standin_pending() or self.config.skip_bad_data:
            return None
        vocab = Vocabulary.build(self._corpus.split_captions("train"), self.config.min_word_count)
        return self._model(features.feature_dim(self.encoder), vocab)

    def _model(self, feature_dim: int, vocab: Vocabulary) -> nn.Module:
        cfg = self.config
        return NeuralTalk(
            feature_dim,
            len(vocab),
            cfg.embed_size,
            cfg.hidden_size,
            cfg.dropout,
            output_bias=log_frequency_bias(vocab),
        )

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        cfg = self.config
        return torch.optim.RMSprop(model.parameters(), lr=lr, alpha=cfg.rmsprop_alpha, eps=cfg.rmsprop_eps)

    def prune_selection(self) -> dict[str, Any]:
        return {"include": list(PRUNED)}

    # ------------------------------------------------------------------ steps
    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return caption_loss(model(batch["features"], batch["inputs"]), batch["targets"])

    def eval_batch(self, model: nn.Module, batch: Any, split: str) -> list[Any]:
        beam = self.config.beam_size if split == "test" else 1
        ids, _ = decode(model, batch["features"], self.config.max_caption_length, beam)
        vocab = self._data.vocab
        return [
            (int(i), " ".join(vocab.decode(row)))
            for i, row in zip(batch["index"].tolist(), ids.tolist(), strict=True)
        ]

    def compute_metrics(self, split: str, records: list[Any]) -> dict[str, float]:
        refs = self.references(split)
        if sorted(i for i, _ in records) != list(range(len(refs))):
            raise RuntimeError(f"{split}: expected one caption for each of its {len(refs)} images")
        by_image = dict(records)
        return bleu.corpus_bleu([by_image[i] for i in range(len(refs))], refs)

    def write_predictions(self, split: str, records: list[Any], path: Path) -> None:
        """``<image><TAB><caption>`` per line, in split order."""
        names = self._data.corpus.splits[split]
        atomic_write_text(path, "".join(f"{names[i]}\t{caption}\n" for i, caption in sorted(records)))

    def study_figures(self, runs: dict[str, Path], out_dir: Path) -> list[Path]:
        """The paper's Figure 3 analog: test images with baseline / sparse / DSD captions."""
        from tasks.flickr8k.figures import caption_comparison

        if not {"baseline", "dsd"} <= set(runs):
            return []
        return caption_comparison(runs, out_dir, data_dir=self.data_dir, cache_dir=self.cache_dir)


def log_frequency_bias(vocab: Vocabulary) -> torch.Tensor:
    """NeuralTalk's output-bias start: log word frequency, shifted so the most frequent is 0.
    Tokens never seen as targets (padding, start, an unused ``<unk>``) get log(1e-6)."""
    total = sum(vocab.counts)
    freq = [max(c / total, 1e-6) if total else 1.0 for c in vocab.counts]
    logs = torch.tensor([math.log(f) for f in freq])
    return logs - logs.max()


def _fingerprint(corp: corpus.Corpus) -> DataFingerprint:
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
