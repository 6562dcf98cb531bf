"""Where the speech task's utterances come from: a folder (a raw WSJ or LibriSpeech tree, or one
already prepared into manifests), a Hugging Face copy of LibriSpeech on disk (``tasks.wsj.hf``),
or the eSpeak NG stand-in, a prepared folder synthesized first (``tasks.wsj.standin``).

Every origin ends in the same place: manifests (``tasks.wsj.manifest``) in a prepared folder,
whose audio files are decoded once before training (``tasks.wsj.verify``, the verdict cached).
So the origins differ only in which corpus they hold, where that folder is, how it is made, and
what ``inspect`` can say before it is; ``SpeechSource`` reads any prepared folder.
"""

from __future__ import annotations

import abc
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dsd.errors import ConfigError, DataError
from dsd.taskkit import hf_data
from dsd.taskkit.fingerprint import DataFingerprint, FingerprintBuilder
from dsd.taskkit.sources import DataSource
from dsd.taskkit.summary import DataSummary
from tasks.wsj import hf, standin, verify
from tasks.wsj import prepare as preparation
from tasks.wsj.audio import AudioError
from tasks.wsj.config import DATASET_NAMES, SPLITS, STANDIN, Config
from tasks.wsj.data import SpeechDataset
from tasks.wsj.manifest import Utterance, read_manifest, read_prepared

#: Model output frames for a number of input frames: a dataset leaves out what CTC cannot align.
OutputFrames = Callable[[int], int]


#: How to point the task at its real data (the command line's stand-in banner).
DATA_HINT = (
    "a WSJ tree (LDC93S6B wsj0 and LDC94S13B wsj1, as on the CDs) or a LibriSpeech tree "
    "(train-clean-100, dev-clean, test-clean), or a folder made by `dsd-suite prepare wsj`, or "
    "openslr/librispeech_asr from Hugging Face (its parquet shards, hub cache or save_to_disk folder)"
)


class SpeechSource(DataSource):
    """A corpus (``wsj``, ``librispeech`` or the stand-in) read from the manifests in ``folder``,
    once something has prepared them there (``build``)."""

    def __init__(self, corpus: str, folder: Path, cache_dir: Path, output_frames: OutputFrames) -> None:
        self.corpus, self.folder, self.cache_dir = corpus, Path(folder), Path(cache_dir)
        self.output_frames = output_frames
        self._train: SpeechDataset | None = None
        self._evals: dict[str, SpeechDataset] | None = None

    @abc.abstractmethod
    def build(self) -> None:
        """Write the manifests into ``folder`` (once; nothing when they are there already)."""

    @abc.abstractmethod
    def unprepared_summary(self) -> DataSummary:
        """What ``inspect`` says while ``folder`` holds no manifests yet."""

    @property
    def dataset_name(self) -> str:
        return DATASET_NAMES[self.corpus]

    def splits(self) -> list[str]:
        """The training split, then the evaluation splits (the per-epoch one first)."""
        return [SPLITS[self.corpus][0], *SPLITS[self.corpus][1]]

    def prepare(self) -> None:
        """Build the manifests (once), then make sure every audio file they name decodes (once,
        the verdict cached): a bad file is named before training."""
        self.build()
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
        return sorted({u.audio for split in self.splits() for u in self.manifest(split)})

    def inspect(self) -> DataSummary:
        """Utterances per split from the manifests (after the datasets' own filters), with every
        audio file looked for (a missing one is named, "not found"); before the manifests are
        written, what the origin can say and what preparing would do."""
        if read_prepared(self.folder) is None:
            return self.unprepared_summary()
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
            fingerprint=self.fingerprint(),
        )

    # ------------------------------------------------------------------ the prepared splits
    def manifest(self, split: str) -> list[Utterance]:
        if read_prepared(self.folder) is None:
            raise FileNotFoundError(
                f"{self.folder} is not prepared; run prepare() first (dsd-suite prepare wsj ...)"
            )
        return read_manifest(self.folder / f"{split}.jsonl")

    def dataset(self, split: str, sort_by_length: bool = False) -> SpeechDataset:
        """A split's utterances, their audio read from the files the manifest names."""
        return SpeechDataset(self.manifest(split), self.output_frames, split, sort_by_length=sort_by_length)

    def train_dataset(self) -> SpeechDataset:
        if self._train is None:
            self._train = self.dataset(SPLITS[self.corpus][0])
        return self._train

    def eval_datasets(self) -> dict[str, SpeechDataset]:
        if self._evals is None:
            self._evals = {
                split: self.dataset(split, sort_by_length=True) for split in SPLITS[self.corpus][1]
            }
        return self._evals

    def skipped_inputs(self) -> dict[str, list[str]]:
        """What preparation and the datasets' checks left out, by reason."""
        skipped: dict[str, list[str]] = {}
        for reason, names in (read_prepared(self.folder) or {}).get("skipped", {}).items():
            skipped[f"utterances at preparation: {reason.replace('_', ' ')}"] = list(names)
        for dataset in [self.train_dataset(), *self.eval_datasets().values()]:
            for reason, names in dataset.skipped.items():
                skipped[f"{dataset.name} utterances: {reason}"] = names
        return skipped

    def fingerprint(self) -> DataFingerprint:
        """The corpus and every manifest line that the runs read (id, audio file name, duration,
        transcript), per split; not where the audio lies."""
        builder = FingerprintBuilder("speech manifests").add("corpus", self.corpus)
        sizes = {}
        for split in self.splits():
            utterances = sorted(self.manifest(split), key=lambda u: u.id)
            builder.add_all((split, u.id, u.audio.name, f"{u.duration:.3f}", u.text) for u in utterances)
            sizes[split] = len(utterances)
        return builder.finish(corpus=self.dataset_name, utterances=sizes)

    def data_issues(self) -> dict[str, int]:
        """Counts from preparation and from the datasets made so far."""
        issues: Counter[str] = Counter()
        prepared = read_prepared(self.folder) or {}
        for reason, count in prepared.get("issues", {}).items():
            issues[f"prepare/{reason}"] += count
        datasets = ([self._train] if self._train else []) + list((self._evals or {}).values())
        for dataset in datasets:
            for reason, count in dataset.issues.items():
                issues[f"{dataset.name}/{reason}"] += count
        return dict(sorted(issues.items()))

    def description_facts(self) -> dict[str, Any]:
        return {"splits": {"train": SPLITS[self.corpus][0], "eval": list(SPLITS[self.corpus][1])}}


class FolderSource(SpeechSource):
    """A folder: manifests prepared already (``raw`` None), or a raw WSJ / LibriSpeech tree
    (``raw``) prepared into ``folder`` on first use (``tasks.wsj.prepare``)."""

    def __init__(
        self, corpus: str, raw: Path | None, folder: Path, cache_dir: Path, output_frames: OutputFrames
    ) -> None:
        super().__init__(corpus, folder, cache_dir, output_frames)
        self.raw = raw

    @classmethod
    def locate(
        cls, data_dir: Path, cache_dir: Path, config: Config, output_frames: OutputFrames
    ) -> FolderSource:
        """The corpus in ``data_dir`` and where its manifests are, without reading audio; a
        ``--corpus`` that contradicts the folder is refused."""
        data_dir = Path(data_dir).expanduser()
        prepared = read_prepared(data_dir)
        if prepared is not None:
            corpus = prepared["corpus"]
            if corpus not in SPLITS:
                raise DataError(f"{data_dir} holds prepared {corpus!r}, which this task does not know")
            check_corpus_flag(config, corpus, f"{data_dir} holds prepared {DATASET_NAMES[corpus]}")
            return cls(corpus, None, data_dir, cache_dir, output_frames)
        if config.corpus == "auto":
            corpus = preparation.detect_corpus(data_dir)
        else:
            corpus = config.corpus
            try:  # an unusual layout detection misses is the user's word against ours: theirs wins
                detected = preparation.detect_corpus(data_dir)
            except preparation.PreparationError:
                detected = corpus
            check_corpus_flag(config, detected, f"{data_dir} is a {DATASET_NAMES[detected]} folder")
        if config.prepared_dir:
            folder = Path(config.prepared_dir).expanduser()
        else:
            tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
            folder = Path(cache_dir) / "wsj-prepared" / f"{corpus}-{tag}"
        return cls(corpus, data_dir, folder, cache_dir, output_frames)

    def build(self) -> None:
        if self.raw is not None:
            preparation.prepare_manifests(self.corpus, self.raw, self.folder)

    def unprepared_summary(self) -> DataSummary:
        return DataSummary(
            f"{self.dataset_name} at {self.raw} (raw), not prepared yet",
            dict.fromkeys(self.splits()),
            unit="utterances",
            pending=[f"prepare it into manifests under {self.folder}, decoding every audio file once"],
        )


class StandinSource(FolderSource):
    """The eSpeak NG stand-in of ``spec``: a prepared folder synthesized under the cache folder on
    first use; before that, its sizes come from ``spec``."""

    def __init__(self, spec: standin.StandinSpec, cache_dir: Path, output_frames: OutputFrames) -> None:
        super().__init__(STANDIN, None, standin.standin_folder(cache_dir, spec), cache_dir, output_frames)
        self.spec = spec

    def build(self) -> None:
        standin.build_standin(self.cache_dir, self.spec)

    def unprepared_summary(self) -> DataSummary:
        total = self.spec.train_utterances + self.spec.test_utterances
        return DataSummary(
            f"{STANDIN}, not built yet: it would be built under {self.folder}",
            {"train": self.spec.train_utterances, "test": self.spec.test_utterances},
            unit="utterances",
            pending=[f"synthesize the stand-in ({total:,} utterances, eSpeak NG)", "decode every file once"],
            implied=True,
        )

    def description_facts(self) -> dict[str, Any]:
        return super().description_facts() | {
            "standin": {
                "train_voices": list(standin.TRAIN_VOICES),
                "test_voices": list(standin.TEST_VOICES),
                "spec": asdict(self.spec) | {"key": self.spec.key},
            }
        }


class HFSpeechSource(SpeechSource):
    """A Hugging Face copy of LibriSpeech (``openslr/librispeech_asr``'s schema): prepared into
    manifests under ``folder`` on first use, the audio then read from the dataset's rows."""

    def __init__(
        self, found: hf_data.HFSource, folder: Path, cache_dir: Path, output_frames: OutputFrames
    ) -> None:
        super().__init__("librispeech", folder, cache_dir, output_frames)
        self.hf = found
        self._opened: tuple[dict[str, hf_data.HFSplit], dict[str, list[int]]] | None = None

    @classmethod
    def locate(
        cls, found: hf_data.HFSource, cache_dir: Path, config: Config, output_frames: OutputFrames
    ) -> HFSpeechSource:
        """Its manifests under ``--prepared-dir``, else under the cache folder."""
        check_corpus_flag(config, "librispeech", f"{found.root} is a Hugging Face dataset ({found.label})")
        folder = Path(config.prepared_dir).expanduser() if config.prepared_dir else None
        return cls(found, folder or hf.prepared_folder(found, cache_dir), cache_dir, output_frames)

    @property
    def dataset_name(self) -> str:
        return f"{super().dataset_name} ({self.hf.label})"

    def build(self) -> None:
        hf.prepare(self.hf, self.folder, self.cache_dir)

    def unprepared_summary(self) -> DataSummary:
        return hf.pending(self.hf, self.folder, self.cache_dir)

    def dataset(self, split: str, sort_by_length: bool = False) -> SpeechDataset:
        """A split's utterances, their audio read from the dataset's rows."""
        utterances = self.manifest(split)
        if self._opened is None:
            self._opened = hf.open_splits(self.hf)
        splits, rows = self._opened
        return hf.HFSpeechDataset(
            self.hf,
            splits[split],
            rows[split],
            self.cache_dir,
            utterances,
            self.output_frames,
            split,
            sort_by_length=sort_by_length,
        )


def check_corpus_flag(config: Config, found: str, what: str) -> None:
    """Refuse a ``--corpus`` other than ``auto`` or the corpus the data holds (``what``)."""
    if config.corpus not in ("auto", found):
        raise ConfigError(
            f"--corpus {config.corpus}, but {what}: pass --corpus {found}, or leave --corpus out "
            "(it is detected)"
        )


def standin_source(cache_dir: Path, config: Config, output_frames: OutputFrames) -> StandinSource:
    """The stand-in the config's sizes describe; a ``--corpus`` without ``--data`` is refused."""
    if config.corpus != "auto":
        raise ConfigError(
            f"--corpus {config.corpus} names the corpus in --data, but no --data is given (the "
            "stand-in runs): pass --data DIR, or leave --corpus out"
        )
    spec = standin.StandinSpec(config.standin_train, config.standin_test, config.standin_vocabulary)
    return StandinSource(spec, cache_dir, output_frames)
