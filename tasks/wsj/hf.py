"""LibriSpeech as Hugging Face holds it: ``openslr/librispeech_asr``'s parquet shards, a hub cache
snapshot of them, or a ``save_to_disk`` copy (``dsd.taskkit.hf_data`` finds which).

Columns: ``audio`` (the FLAC bytes, a ``datasets`` ``Audio``), ``text`` (the transcript, upper
case as in the ``trans.txt`` files), ``id`` (``103-1240-0000``); ``speaker_id`` and
``chapter_id`` are not needed. Splits: ``train.clean.100``, ``validation.clean`` and
``test.clean`` (the ``clean`` config's ``train.100``, ``validation`` and ``test`` too), read as
the task's ``train-clean-100``, ``dev-clean`` and ``test-clean``.

Prepared like the FLAC folders (``tasks.wsj.prepare.write_corpus``): every row's audio decoded
in full once, from the stored bytes with soundfile (``datasets``' own audio decoder needs
torchcodec), the transcript normalised the same way, and the manifests written under the cache
folder. A manifest line points at the shard holding the audio; ``HFSpeechDataset`` reads the row
from the memory-mapped split and resamples it to 16 kHz where needed, so the features are the FLAC
path's. An utterance whose audio does not decode, or is empty, is skipped and counted, named by
its shard and row, as preparing the FLAC folders skips such a file.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from dsd.taskkit import hf_data
from dsd.taskkit.hf_data import HFDataError, HFSource, HFSplit
from dsd.taskkit.summary import DataSummary
from tasks.wsj import audio as audiolib
from tasks.wsj.data import SpeechDataset
from tasks.wsj.manifest import Utterance, read_prepared
from tasks.wsj.prepare import SPLITS, write_corpus
from tasks.wsj.text import clean_spaces

#: The task's LibriSpeech splits and the names a Hugging Face copy gives them ("all" config first).
ROLES = {
    "train-clean-100": ("train.clean.100", "train.100"),
    "dev-clean": ("validation.clean", "validation"),
    "test-clean": ("test.clean", "test"),
}
COLUMNS = {
    "audio": "the encoded audio (FLAC bytes), a datasets Audio",
    "text": "the transcript",
    "id": "the utterance id, e.g. 103-1240-0000",
}


def open_splits(source: HFSource) -> tuple[dict[str, HFSplit], dict[str, list[int]]]:
    """The three splits and their rows per shard, the shards and columns checked (no audio read)."""
    splits = hf_data.resolve_splits(source, ROLES)
    rows = {role: hf_data.check_shards(source, split) for role, split in splits.items()}
    for split in splits.values():
        where = f"split {split.name!r} of {source.describe()} (shard {source.relative(split.files[0])})"
        hf_data.require_columns(where, hf_data.read_schema(source, split).names, COLUMNS)
    return splits, rows


def prepared_folder(source: HFSource, cache_dir: Path) -> Path:
    """Where the manifests of this dataset go: named by its place and its shards' listing, so a
    dataset moved or changed is prepared again."""
    splits = [split for config in source.configs.values() for split in config.values()]
    listing = hf_data.listing_key(source, splits)
    tag = hashlib.sha256(f"{Path(source.root).resolve()}\n{listing}".encode()).hexdigest()[:8]
    return Path(cache_dir) / "wsj-prepared" / f"librispeech-hf-{tag}"


def prepare(source: HFSource, out_dir: Path, cache_dir: Path, workers: int = 0) -> None:
    """Manifests of the three splits under ``out_dir``, every row's audio decoded once (reused
    when ``out_dir`` already holds them for the same shards)."""
    splits, rows = open_splits(source)
    key = hf_data.listing_key(source, list(splits.values()))
    done = read_prepared(out_dir)
    if done is not None and done.get("hf", {}).get("key") == key:
        return

    def collect(split: str, skipped: dict[str, list[str]]) -> list[Utterance]:
        return _utterances(source, splits[split], rows[split], cache_dir, workers, skipped)

    info = {
        "format": source.label,
        "source": source.describe(),
        "splits": {r: s.name for r, s in splits.items()},
    }
    write_corpus("librispeech", out_dir, collect, source.describe(), hf=info | {"key": key})


def _decoded(row: dict[str, Any]) -> tuple[int, int] | str:
    """``(frames, sample rate)`` of a row's audio decoded in full, or why it cannot be used."""
    try:
        samples, rate = read_row(row)
    except audiolib.EmptyAudioError:
        return "empty_audio"
    except audiolib.AudioError:
        return "unreadable_audio"
    return len(samples), rate


def read_row(row: dict[str, Any]) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the sample rate of a row's stored audio bytes."""
    data = hf_data.stored_bytes(row["audio"])
    if data is None:
        raise audiolib.AudioError("no audio bytes in the row")
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile raises several types; all mean "cannot read"
        raise audiolib.AudioError(f"unreadable audio ({err})") from None
    if samples.shape[0] == 0:
        raise audiolib.EmptyAudioError("empty audio (0 samples)")
    return np.ascontiguousarray(samples[:, 0]), int(rate)


def _utterances(
    source: HFSource,
    split: HFSplit,
    rows: list[int],
    cache_dir: Path,
    workers: int,
    skipped: dict[str, list[str]],
) -> list[Utterance]:
    table = hf_data.read_columns(source, split, ["id", "text"])
    ids, texts = [str(i) for i in table["id"].to_pylist()], table["text"].to_pylist()
    _check_ids(source, split, rows, ids)
    dataset = hf_data.undecoded(load(source, split, rows, cache_dir, workers), ["audio"])
    decoded = hf_data.map_rows(dataset, _decoded, workers)
    utterances = []
    for row, (utt_id, raw, result) in enumerate(zip(ids, texts, decoded, strict=True)):
        where = hf_data.locate(source, split, rows, row)
        shard = source.base / where.rsplit(" row ", 1)[0]
        text = clean_spaces(str(raw or "").lower())
        if isinstance(result, str):
            skipped[result].append(f"{utt_id} ({where})")
        elif not text:
            skipped["empty_transcript"].append(f"{utt_id} ({where})")
        else:
            frames, rate = result
            utterances.append(Utterance(utt_id, shard, text, frames / rate, rate))
    return utterances


def _check_ids(source: HFSource, split: HFSplit, rows: list[int], ids: list[str]) -> None:
    """Every utterance id distinct: a manifest line finds its row by it."""
    first: dict[str, int] = {}
    for row, utt_id in enumerate(ids):
        if utt_id in first:
            places = [hf_data.locate(source, split, rows, r) for r in (first[utt_id], row)]
            raise HFDataError(
                f"utterance id {utt_id!r} appears twice in split {split.name!r} of {source.describe()}: at "
                f"{places[0]} and {places[1]}"
            )
        first[utt_id] = row


def load(source: HFSource, split: HFSplit, rows: list[int], cache_dir: Path, workers: int = 1) -> Any:
    """The split as a memory-mapped ``datasets.Dataset`` (parquet converted once, then reused)."""
    dataset = hf_data.load_split(source, split, cache_dir, workers)
    if len(dataset) != sum(rows):
        raise HFDataError(
            f"split {split.name!r} of {source.describe()} read {len(dataset)} rows, its shards say "
            f"{sum(rows)}; a shard changed while it was read"
        )
    return dataset


def pending(source: HFSource, folder: Path, cache_dir: Path) -> DataSummary:
    """What a dataset not prepared yet holds (rows per split, from the shards' footers) and what
    preparing would do."""
    splits, rows = open_splits(source)
    steps = []
    if source.form == hf_data.PARQUET:
        size = hf_data.human_bytes(hf_data.total_bytes(list(splits.values())))
        count = sum(len(s.files) for s in splits.values())
        steps.append(
            f"convert the {count} parquet shards ({size}) into memory-mapped Arrow files under {cache_dir}"
        )
    steps.append(f"decode every utterance's audio once, writing manifests under {folder}")
    return DataSummary(
        f"LibriSpeech ({source.label}) at {source.describe()}, not prepared yet",
        {role: sum(rows[role]) for role in SPLITS["librispeech"]},
        unit="utterances",
        pending=steps,
    )


class HFSpeechDataset(SpeechDataset):
    """``SpeechDataset`` whose audio comes from the rows of a Hugging Face split: a manifest
    line's ``audio`` names the shard, its ``id`` the row."""

    def __init__(
        self, source: HFSource, split: HFSplit, rows: list[int], cache_dir: Path, *args: Any, **kw: Any
    ):
        super().__init__(*args, **kw)
        dataset = load(source, split, rows, cache_dir)
        ids = [str(i) for i in dataset.data.column("id").to_pylist()]
        self.row_of = {utt_id: row for row, utt_id in enumerate(ids)}
        self.audio = hf_data.undecoded(dataset, ["audio"])
        self.source, self.split, self.shard_rows = source, split, rows

    def read_audio(self, utt: Utterance) -> tuple[np.ndarray, int]:
        row = self.row_of.get(utt.id)
        try:
            if row is None:
                raise audiolib.AudioError(f"not in split {self.split.name!r}")
            return read_row(self.audio[row])
        except audiolib.AudioError as err:
            where = (
                "" if row is None else f" at {hf_data.locate(self.source, self.split, self.shard_rows, row)}"
            )
            raise audiolib.AudioError(
                f"utterance {utt.id}{where} of {self.source.describe()}: {err}; the dataset changed after "
                "it was prepared: delete the prepared folder to prepare it again"
            ) from None

    def __getitem__(self, index: int) -> dict[str, Any]:
        utt = self.utterances[index]
        samples, rate = self.read_audio(utt)
        with torch.no_grad():
            features = self.features(torch.from_numpy(audiolib.resample(samples, rate)))
        return {"features": features, "labels": self.labels[index], "text": utt.text, "id": utt.id}
