"""Flickr-8K captioning for the suite: NeuralTalk on frozen image features, scored by BLEU.

The paper (Table 5) prunes NeuralTalk to 80 % sparsity, everything but the word embedding, and
re-densifies it: BLEU-4 16.8 -> 18.5 on Flickr-8K's test split. This adapter reads the real
dataset from ``data_dir`` (see ``tasks.flickr8k.corpus`` for the files), or builds and reads the
digits stand-in (``tasks.flickr8k.standin``) when ``data_dir`` is None; its data source
(``tasks.flickr8k.sources``, chosen once) reads and prepares either.

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
import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from dsd.errors import ConfigError
from dsd.files import atomic_write_text
from dsd.taskkit.adapter import MetricSpec
from dsd.taskkit.sourced import SourcedTask, SourceMakers
from tasks.flickr8k import bleu, features
from tasks.flickr8k.batches import collate
from tasks.flickr8k.config import (
    NEURALTALK_BATCH,
    NEURALTALK_RMSPROP_ALPHA,
    PAPER_RECIPE,
    PRUNED,
    STANDIN_BATCH,
    STANDIN_RECIPE,
    STANDIN_RMSPROP_ALPHA,
    Flickr8kConfig,
    image_features,
)
from tasks.flickr8k.model import NeuralTalk, caption_loss, decode
from tasks.flickr8k.sources import DATA_HINT, CaptionSource, FolderSource, HFCaptionSource, StandinSource
from tasks.flickr8k.text import Vocabulary


class Flickr8kTask(SourcedTask):
    """NeuralTalk on Flickr-8K (or the digits stand-in), BLEU-1..4 on val (every epoch) and test."""

    name: ClassVar[str] = "flickr8k"
    Config = Flickr8kConfig
    metrics: ClassVar[dict[str, MetricSpec]] = {
        f"bleu{n}": MetricSpec(higher_is_better=True, label=f"BLEU-{n}") for n in range(1, 5)
    }
    primary_metric: ClassVar[str] = "bleu4"
    data_hint = DATA_HINT
    config: Flickr8kConfig

    source_makers = SourceMakers(standin=StandinSource, huggingface=HFCaptionSource, folder=FolderSource)
    source: CaptionSource

    def source_arguments(self) -> tuple[Any, ...]:
        return (self.cache_dir, self.config, self.encoder, self.feature_norm)

    @functools.cached_property
    def _image_features(self) -> tuple[str, str]:
        return image_features(self.config, self.is_standin)

    @property
    def encoder(self) -> str:
        """The image encoder whose features the captioner reads (``vgg16-fc7``: NeuralTalk's)."""
        return self._image_features[0]

    @property
    def feature_norm(self) -> str:
        """How those features are normalised (``none``: as NeuralTalk)."""
        return self._image_features[1]

    def resolve_config(self, config: Flickr8kConfig) -> Flickr8kConfig:  # type: ignore[override]
        """The 0 placeholders resolved (NeuralTalk's values, or the stand-in's); checked."""
        if config.batch_size < 0 or config.rmsprop_alpha < 0:
            raise ConfigError("--batch-size and --rmsprop-alpha must be positive (0: the default)")
        if config.beam_size < 1:
            raise ConfigError(f"--beam-size must be at least 1, got {config.beam_size}")
        if config.max_caption_length < 1:
            raise ConfigError(f"--max-caption-length must be at least 1, got {config.max_caption_length}")
        standin_data = self.is_standin
        return dataclasses.replace(
            config,
            batch_size=config.batch_size or (STANDIN_BATCH if standin_data else NEURALTALK_BATCH),
            rmsprop_alpha=config.rmsprop_alpha
            or (STANDIN_RMSPROP_ALPHA if standin_data else NEURALTALK_RMSPROP_ALPHA),
        )

    # ------------------------------------------------------------------ identity
    @property
    def model_name(self) -> str:
        return "neuraltalk"

    @property
    def default_recipe(self) -> str:
        return STANDIN_RECIPE if self.is_standin else PAPER_RECIPE

    @property
    def description(self) -> dict[str, Any]:
        return self.source.description_facts() | {
            "bleu": bleu.DESCRIPTION,
            "decoding": {
                "val": "greedy",
                "test": "greedy" if self.config.beam_size == 1 else f"beam {self.config.beam_size}",
            },
            "pruned": [*PRUNED, "(word embedding and all biases stay dense)"],
            "lr_decay": "constant within each phase (NeuralTalk's RMSprop had no schedule)",
        }

    # ------------------------------------------------------------------ data
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
        return self.source.prepared.vocab

    def split_images(self, split: str) -> list[str]:
        """Image file names of a split, in the order of its evaluation records."""
        return self.source.split_images(split)

    def train_dataset(self) -> Dataset:
        return self.source.train_dataset()

    def eval_datasets(self) -> dict[str, Dataset]:
        return self.source.eval_datasets()

    def collate_fn(self) -> Callable[[list[Any]], Any]:
        return collate

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        data = self.source.prepared
        return self._model(data.table.dim, data.vocab)

    def planned_model(self) -> nn.Module | None:
        """Built from the captions' vocabulary and the encoder's width, extracting no feature; None
        before the stand-in is built, or with ``--skip-bad-data`` (the vocabulary may shrink)."""
        if not self.source.built() or self.config.skip_bad_data:
            return None
        return self._model(features.feature_dim(self.encoder), self.source.vocabulary())

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
        vocab = self.vocabulary
        return [
            (int(i), " ".join(vocab.decode(row)))
            for i, row in zip(batch["index"].tolist(), ids.tolist(), strict=True)
        ]

    def compute_metrics(self, split: str, records: list[Any]) -> dict[str, float]:
        refs = self.source.references(split)
        if sorted(i for i, _ in records) != list(range(len(refs))):
            raise RuntimeError(f"{split}: expected one caption for each of its {len(refs)} images")
        by_image = dict(records)
        return bleu.corpus_bleu([by_image[i] for i in range(len(refs))], refs)

    def write_predictions(self, split: str, records: list[Any], path: Path) -> None:
        """``<image><TAB><caption>`` per line, in split order."""
        names = self.source.split_images(split)
        atomic_write_text(path, "".join(f"{names[i]}\t{caption}\n" for i, caption in sorted(records)))

    def study_figures(self, runs: dict[str, Path], out_dir: Path) -> list[Path]:
        """The paper's Figure 3 analog: test images with baseline / sparse / DSD captions."""
        from tasks.flickr8k.figures import caption_comparison

        if not {"baseline", "dsd"} <= set(runs):
            return []
        return caption_comparison(self, runs, out_dir)


def log_frequency_bias(vocab: Vocabulary) -> torch.Tensor:
    """NeuralTalk's output-bias start: log word frequency, shifted so the most frequent is 0.
    Tokens never seen as targets (padding, start, an unused ``<unk>``) get log(1e-6)."""
    total = sum(vocab.counts)
    freq = [max(c / total, 1e-6) if total else 1.0 for c in vocab.counts]
    logs = torch.tensor([math.log(f) for f in freq])
    return logs - logs.max()
