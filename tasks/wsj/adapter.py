"""The WSJ speech task: DeepSpeech 1 / DeepSpeech 2 style CTC models scored by WER.

Data (``data_dir``): a raw WSJ tree (LDC CDs) or LibriSpeech tree, prepared once into
manifests by ``prepare()`` (``tasks.wsj.prepare``; or ahead of time with
``prepare_manifests``), or a folder prepared that way; without ``data_dir``, the eSpeak NG
stand-in (``tasks.wsj.standin``), built under the cache folder. Splits, the first of the
evaluation splits being the one evaluated every epoch:

==============  ===============  ==========================================
corpus          training         evaluation
==============  ===============  ==========================================
WSJ             train-si284      dev93 (the paper's WSJ'93), eval92 (WSJ'92)
LibriSpeech     train-clean-100  dev-clean, test-clean
stand-in        train            test (voices never heard in training)
==============  ===============  ==========================================

Training follows the paper: SGD with Nesterov momentum 0.99 (DeepSpeech 1 used Nesterov's
method; DeepSpeech 2 trained with Nesterov momentum 0.99 too), the loss of ``tasks.wsj.ctc``,
pruning of the fully connected and recurrent weights only (DS2's convolutions stay dense).
In-phase learning-rate decay ("decayed the same as conventional training"): DeepSpeech 2 divides
its rate by 1.2 after every epoch (``decay=exp:0.8333`` over its 20-epoch phases, a 38x drop).
DeepSpeech 1's paper gives no schedule; we stretch DS2's to DS1's 50-epoch phases
(``exp:0.93``, 0.93^50 = 0.026, the same overall drop).

Model sizes left at 0 take the paper's values on real data (DS1 width 1024; DS2 7 x 1760)
and small ones on the stand-in (which must train in minutes on two CPU cores); ``description``
records the values used. The stand-in also trains with Adam by default (``optimizer``): on it,
Nesterov SGD with momentum 0.99 diverged within three epochs at lr 2e-3, and at lr 1e-3
(momentum 0.9) was still at 100 % WER after 400 steps, where Adam at 1e-3 reached 68 %. Its
recipes (``STANDIN_RECIPES``) keep the paper's D-S-D-S-D phases, sparsities and learning-rate
ratios, with epochs compressed to fit baseline + DSD + dense control in about 8 minutes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from dsd.errors import ConfigError, DataError
from dsd.schedule import PAPER_RECIPES
from dsd.taskkit import hf_data
from dsd.taskkit.adapter import MetricSpec, TaskAdapter, TaskConfig
from dsd.taskkit.fingerprint import DataFingerprint, FingerprintBuilder
from dsd.taskkit.summary import DataSummary
from tasks.wsj import hf, standin, verify
from tasks.wsj import prepare as preparation
from tasks.wsj.audio import AudioError
from tasks.wsj.config import (
    AUTO_SIZES,
    DATASET_NAMES,
    PAPER_DECAY,
    REAL_BATCH,
    SPLITS,
    STANDIN,
    STANDIN_BATCH,
    STANDIN_RECIPES,
    Config,
)
from tasks.wsj.ctc import ctc_loss, greedy_decode
from tasks.wsj.data import SpeechDataset, collate
from tasks.wsj.manifest import read_manifest, read_prepared
from tasks.wsj.models import DeepSpeech1, DeepSpeech2, parameter_count
from tasks.wsj.scoring import Transcript, error_rates, write_transcripts
from tasks.wsj.text import NUM_CLASSES, SYMBOLS


class SpeechTask(TaskAdapter):
    """DeepSpeech 1 / 2 on WSJ, LibriSpeech or the eSpeak stand-in."""

    name: ClassVar[str] = "wsj"
    Config: ClassVar[type[TaskConfig]] = Config
    metrics: ClassVar[dict[str, MetricSpec]] = {
        "wer": MetricSpec(higher_is_better=False, label="WER", percent=True),
        "cer": MetricSpec(higher_is_better=False, label="CER", percent=True),
    }
    primary_metric: ClassVar[str] = "wer"
    data_hint: ClassVar[str] = (
        "a WSJ tree (LDC93S6B wsj0 and LDC94S13B wsj1, as on the CDs) or a LibriSpeech tree "
        "(train-clean-100, dev-clean, test-clean), or a folder made by `dsd-suite prepare wsj`, or "
        "openslr/librispeech_asr from Hugging Face (its parquet shards, hub cache or save_to_disk folder)"
    )
    config: Config

    def __init__(
        self, config: Config | None = None, data_dir: Path | None = None, cache_dir: Path | None = None
    ) -> None:
        super().__init__(config, data_dir, cache_dir)
        self._hf = None if self.data_dir is None else hf_data.detect(Path(self.data_dir).expanduser())
        self._hf_splits: tuple[dict[str, hf_data.HFSplit], dict[str, list[int]]] | None = None
        self.corpus, self.source, self.folder = self._locate_data()
        # What a folder holds is a fact of the data (its fingerprint names the corpus), not a
        # hyper-parameter: a --corpus that agrees with the folder leaves the run's hash alone.
        self.config = dataclasses.replace(self.config, corpus="auto")
        self._train: SpeechDataset | None = None
        self._evals: dict[str, SpeechDataset] | None = None

    # ------------------------------------------------------------------ data location
    def _locate_data(self) -> tuple[str, Path | None, Path]:
        """``(corpus, raw source folder or None, prepared folder)``, without reading audio; a
        ``--corpus`` that contradicts the folder is refused."""
        cfg = self.config
        if self.is_standin:
            if cfg.corpus != "auto":
                raise ConfigError(
                    f"--corpus {cfg.corpus} names the corpus in --data, but no --data is given (the "
                    "stand-in runs): pass --data DIR, or leave --corpus out"
                )
            return STANDIN, None, standin.standin_folder(self.cache_dir, self.standin_spec())
        data_dir = Path(self.data_dir).expanduser()
        prepared = read_prepared(data_dir)
        if prepared is not None:
            corpus = prepared["corpus"]
            if corpus not in SPLITS:
                raise DataError(f"{data_dir} holds prepared {corpus!r}, which this task does not know")
            self._check_corpus_flag(corpus, f"{data_dir} holds prepared {DATASET_NAMES[corpus]}")
            return corpus, None, data_dir
        if self._hf is not None:
            self._check_corpus_flag("librispeech", f"{data_dir} is a Hugging Face dataset ({self._hf.label})")
            folder = Path(cfg.prepared_dir).expanduser() if cfg.prepared_dir else None
            return "librispeech", data_dir, folder or hf.prepared_folder(self._hf, self.cache_dir)
        if cfg.corpus == "auto":
            corpus = preparation.detect_corpus(data_dir)
        else:
            corpus = cfg.corpus
            try:  # an unusual layout detection misses is the user's word against ours: theirs wins
                detected = preparation.detect_corpus(data_dir)
            except preparation.PreparationError:
                detected = corpus
            self._check_corpus_flag(detected, f"{data_dir} is a {DATASET_NAMES[detected]} folder")
        if cfg.prepared_dir:
            folder = Path(cfg.prepared_dir).expanduser()
        else:
            tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
            folder = Path(self.cache_dir) / "wsj-prepared" / f"{corpus}-{tag}"
        return corpus, data_dir, folder

    def _check_corpus_flag(self, found: str, what: str) -> None:
        if self.config.corpus not in ("auto", found):
            raise ConfigError(
                f"--corpus {self.config.corpus}, but {what}: pass --corpus {found}, or leave --corpus out "
                "(it is detected)"
            )

    def resolve_config(self, config: Config) -> Config:  # type: ignore[override]
        """The batch size the 0 placeholder means on this data (``REAL_BATCH`` / ``STANDIN_BATCH``)."""
        if config.batch_size < 0:
            raise ConfigError(f"--batch-size must be at least 1 (or 0: the default), got {config.batch_size}")
        default = STANDIN_BATCH if self.is_standin else REAL_BATCH
        return dataclasses.replace(config, batch_size=config.batch_size or default)

    def standin_spec(self) -> standin.StandinSpec:
        cfg = self.config
        return standin.StandinSpec(cfg.standin_train, cfg.standin_test, cfg.standin_vocabulary)

    def prepare(self) -> None:
        """Build the stand-in or prepare the raw corpus (once), then make sure every audio file
        of the manifests decodes (once, the verdict cached): a bad file is named before training."""
        if self.is_standin:
            standin.build_standin(self.cache_dir, self.standin_spec())
        elif self._hf is not None:
            hf.prepare(self._hf, self.folder, self.cache_dir)
        elif self.source is not None:
            preparation.prepare_manifests(self.corpus, self.source, self.folder)
        paths = self._audio_files()
        prepared = read_prepared(self.folder) or {}
        self._refuse_bad_audio(verify.verify_audio(paths, self.cache_dir, prepared.get("audio_key", "")))

    def _refuse_bad_audio(self, bad: dict[str, str]) -> None:
        if bad:
            raise AudioError(
                f"{len(bad)} audio file(s) of the manifests in {self.folder} cannot be used: "
                f"{verify.describe(bad)}. Restore them, or prepare the corpus again (dsd-suite prepare "
                "wsj --force), which leaves unusable files out and counts them"
            )

    def _audio_files(self) -> list[Path]:
        """Every audio file the manifests name, each once."""
        splits = [SPLITS[self.corpus][0], *SPLITS[self.corpus][1]]
        return sorted({u.audio for split in splits for u in self._manifest(split)})

    def inspect(self) -> DataSummary:
        """Utterances per split from the manifests (after the datasets' own filters), with every
        audio file looked for (a missing one is named, "not found"); a stand-in not built yet or a
        raw corpus not prepared yet gives what it can and what preparing would do."""
        splits = [SPLITS[self.corpus][0], *SPLITS[self.corpus][1]]
        if read_prepared(self.folder) is None:
            if self.is_standin:
                spec = self.standin_spec()
                total = spec.train_utterances + spec.test_utterances
                return DataSummary(
                    f"{STANDIN}, not built yet: it would be built under {self.folder}",
                    {"train": spec.train_utterances, "test": spec.test_utterances},
                    unit="utterances",
                    pending=[
                        f"synthesize the stand-in ({total:,} utterances, eSpeak NG)",
                        "decode every file once",
                    ],
                    implied=True,
                )
            if self._hf is not None:
                return hf.pending(self._hf, self.folder, self.cache_dir)
            return DataSummary(
                f"{self.dataset_name} at {self.source} (raw), not prepared yet",
                dict.fromkeys(splits),
                unit="utterances",
                pending=[f"prepare it into manifests under {self.folder}, decoding every audio file once"],
            )
        paths = self._audio_files()
        self._refuse_bad_audio({str(path): verify.NOT_FOUND for path in verify.missing(paths)})
        prepared = read_prepared(self.folder) or {}
        verified = verify.cached_verdict(paths, self.cache_dir, prepared.get("audio_key", ""))
        self._refuse_bad_audio(verified or {})
        datasets = {SPLITS[self.corpus][0]: self.train_dataset(), **self.eval_datasets()}
        return DataSummary(
            f"{self.dataset_name} at {self.folder}",
            {split: len(dataset) for split, dataset in datasets.items()},
            unit="utterances",
            facts={"hours": prepared.get("hours", {})} if prepared.get("hours") else {},
            pending=[] if verified is not None else [f"decode the {len(paths):,} audio files once"],
            fingerprint=self.data_fingerprint(),
        )

    # ------------------------------------------------------------------ identity
    @property
    def dataset_name(self) -> str:
        name = DATASET_NAMES[self.corpus]
        return name if self._hf is None else f"{name} ({self._hf.label})"

    @property
    def model_name(self) -> str:
        return self.config.arch

    @property
    def default_recipe(self) -> str:
        arch = self.config.arch
        if self.is_standin:
            return STANDIN_RECIPES[arch]
        return f"{PAPER_RECIPES[arch]} decay={PAPER_DECAY[arch]}"

    def sizes(self) -> dict[str, int]:
        """The model sizes in use, the fields left at 0 resolved (see ``AUTO_SIZES``)."""
        cfg, which = self.config, int(self.is_standin)
        resolved = {}
        for name, choices in AUTO_SIZES[cfg.arch].items():
            value = getattr(cfg, name)
            resolved[name] = value if value > 0 else choices[which]
        return resolved

    @property
    def description(self) -> dict[str, Any]:
        cfg = self.config
        info: dict[str, Any] = {
            "corpus": self.dataset_name,
            "model_sizes": self.sizes(),
            "parameters": parameter_count(self.build_model()),
            "output_symbols": f"{NUM_CLASSES}: blank + {SYMBOLS[1:]!r}",
            "features": "log power spectrogram, 161 bins, 20 ms Hamming windows every 10 ms, "
            "normalised per utterance and bin",
            "loss": "CTC, per-utterance sum over frames, mean over the batch",
            "decoding": "greedy (best path), no language model",
            "optimizer": (
                f"Adam, weight decay {cfg.weight_decay}"
                if self.optimizer_name == "adam"
                else f"SGD, Nesterov momentum {cfg.momentum}, weight decay {cfg.weight_decay}"
            ),
            "pruned": "fully connected and recurrent weights (not convolutions, biases, norms)",
            "splits": {"train": SPLITS[self.corpus][0], "eval": list(SPLITS[self.corpus][1])},
        }
        if self.is_standin:
            info["standin"] = {
                "train_voices": list(standin.TRAIN_VOICES),
                "test_voices": list(standin.TEST_VOICES),
                "spec": asdict(self.standin_spec()) | {"key": self.standin_spec().key},
            }
        return info

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        cfg, sizes = self.config, self.sizes()
        if cfg.arch == "deepspeech":
            return DeepSpeech1(
                hidden=sizes["hidden"],
                context=cfg.context,
                stride=sizes["stride"],
                clip=cfg.clip,
                dropout=cfg.dropout,
            )
        return DeepSpeech2(
            hidden=sizes["hidden"],
            rnn_layers=sizes["rnn_layers"],
            rnn=cfg.rnn,
            conv_channels=sizes["conv_channels"],
            clip=cfg.clip,
            dropout=cfg.dropout,
        )

    @property
    def optimizer_name(self) -> str:
        """``nesterov`` or ``adam``: the config's, else Nesterov SGD on real data, Adam on the stand-in."""
        return self.config.optimizer or ("adam" if self.is_standin else "nesterov")

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        cfg = self.config
        params = [p for p in model.parameters() if p.requires_grad]
        if self.optimizer_name == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(
            params, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, weight_decay=cfg.weight_decay
        )

    def prune_selection(self) -> dict[str, Any]:
        # The default rule takes every nn.Linear / nn.GRU weight; DS2's convolutions stay dense.
        return {"exclude": ["conv.*"]} if self.config.arch == "deepspeech2" else {}

    def output_frames(self) -> Callable[[int], int]:
        """Model output frames for a number of input frames (for CTC feasibility)."""
        stride = self.sizes()["stride"] if self.config.arch == "deepspeech" else 2
        return lambda frames: (frames - 1) // stride + 1

    # ------------------------------------------------------------------ data
    def _manifest(self, split: str) -> list:
        if read_prepared(self.folder) is None:
            raise FileNotFoundError(
                f"{self.folder} is not prepared; run prepare() first (dsd-suite prepare wsj ...)"
            )
        return read_manifest(self.folder / f"{split}.jsonl")

    def _dataset(self, split: str, sort_by_length: bool = False) -> SpeechDataset:
        """A split's utterances; their audio read from files, or from a Hugging Face dataset's rows."""
        args = (self._manifest(split), self.output_frames(), split)
        if self._hf is None:
            return SpeechDataset(*args, sort_by_length=sort_by_length)
        if self._hf_splits is None:
            self._hf_splits = hf.open_splits(self._hf)
        splits, rows = self._hf_splits
        return hf.HFSpeechDataset(
            self._hf, splits[split], rows[split], self.cache_dir, *args, sort_by_length=sort_by_length
        )

    def train_dataset(self) -> SpeechDataset:
        if self._train is None:
            self._train = self._dataset(SPLITS[self.corpus][0])
        return self._train

    def eval_datasets(self) -> dict[str, SpeechDataset]:
        if self._evals is None:
            self._evals = {
                split: self._dataset(split, sort_by_length=True) for split in SPLITS[self.corpus][1]
            }
        return self._evals

    def collate_fn(self) -> Callable[[list[Any]], Any]:
        return collate

    def sample_lengths(self) -> Sequence[int]:
        return self.train_dataset().frame_lengths()

    def skipped_inputs(self) -> dict[str, list[str]]:
        """What preparation and the datasets' checks left out, by reason."""
        skipped: dict[str, list[str]] = {}
        for reason, names in (read_prepared(self.folder) or {}).get("skipped", {}).items():
            skipped[f"utterances at preparation: {reason.replace('_', ' ')}"] = list(names)
        for dataset in [self.train_dataset(), *self.eval_datasets().values()]:
            for reason, names in dataset.skipped.items():
                skipped[f"{dataset.name} utterances: {reason}"] = names
        return skipped

    def data_fingerprint(self) -> DataFingerprint:
        """The corpus and every manifest line that the runs read (id, audio file name, duration,
        transcript), per split; not where the audio lies."""
        builder = FingerprintBuilder("speech manifests").add("corpus", self.corpus)
        splits = [SPLITS[self.corpus][0], *SPLITS[self.corpus][1]]
        sizes = {}
        for split in splits:
            utterances = sorted(self._manifest(split), key=lambda u: u.id)
            builder.add_all((split, u.id, u.audio.name, f"{u.duration:.3f}", u.text) for u in utterances)
            sizes[split] = len(utterances)
        return builder.finish(corpus=self.dataset_name, utterances=sizes)

    def setup_notes(self) -> list[str]:
        """Departures from the paper's DeepSpeech setup: model sizes, cell, optimizer."""
        cfg, sizes = self.config, self.sizes()
        paper = {name: choices[0] for name, choices in AUTO_SIZES[cfg.arch].items()}
        notes = [f"{name.replace('_', ' ')} {sizes[name]}" for name in sizes if sizes[name] != paper[name]]
        if cfg.arch == "deepspeech2" and cfg.rnn != "rnn":
            notes.append(f"{cfg.rnn.upper()} cells")
        if self.optimizer_name != "nesterov":
            notes.append(f"{self.optimizer_name} optimizer")
        return notes

    def data_issues(self) -> dict[str, int]:
        issues: Counter[str] = Counter()
        prepared = read_prepared(self.folder) or {}
        for reason, count in prepared.get("issues", {}).items():
            issues[f"prepare/{reason}"] += count
        datasets = ([self._train] if self._train else []) + list((self._evals or {}).values())
        for dataset in datasets:
            for reason, count in dataset.issues.items():
                issues[f"{dataset.name}/{reason}"] += count
        return dict(sorted(issues.items()))

    # ------------------------------------------------------------------ steps
    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        logits, output_lengths = model(batch["features"], batch["lengths"])
        return ctc_loss(logits, output_lengths, batch["targets"], batch["target_lengths"])

    def eval_batch(self, model: nn.Module, batch: Any, split: str) -> list[Transcript]:
        logits, output_lengths = model(batch["features"], batch["lengths"])
        hypotheses = greedy_decode(logits, output_lengths)
        pairs = zip(batch["ids"], batch["texts"], hypotheses, strict=True)
        return [Transcript(utt_id, reference, hypothesis) for utt_id, reference, hypothesis in pairs]

    def compute_metrics(self, split: str, records: list[Any]) -> dict[str, float]:
        return error_rates([r.reference for r in records], [r.hypothesis for r in records])

    def write_predictions(self, split: str, records: list[Any], path: Path) -> None:
        write_transcripts(path, records)
