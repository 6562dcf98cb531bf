"""The one manifest format every corpus is prepared into: JSON lines, one utterance a line.

    {"id": "011c0201", "audio_filepath": "audio/train/011c0201.wav", "text": "the company said",
     "duration": 3.42, "sample_rate": 16000}

The keys are NeMo's (``audio_filepath``, ``text``, ``duration``) plus ``id`` and ``sample_rate``
(both optional when reading), so other toolkits read our manifests and we read theirs.
``text`` is already normalised into the 29-symbol alphabet; ``duration`` is in seconds. A
relative ``audio_filepath`` is relative to the manifest's own folder (the stand-in and converted
WSJ audio, so the folder can move); an absolute one points into the original corpus
(LibriSpeech's FLAC files, already-converted WSJ).

A prepared folder holds ``<split>.jsonl`` per split and ``prepared.json`` (corpus name, splits,
counts of skipped inputs), written last: a folder without it is unfinished.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsd import files
from dsd.errors import DataError

PREPARED_FILE = "prepared.json"
FORMAT_VERSION = 1


class ManifestError(DataError):
    """A manifest line that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Utterance:
    """One line of a manifest, with ``audio`` resolved to a usable path."""

    id: str
    audio: Path
    text: str
    duration: float
    sample_rate: int | None = None


def write_manifest(path: Path, utterances: list[Utterance]) -> None:
    """Write a manifest atomically; audio under ``path``'s folder is stored relative to it.

    An utterance's ``audio`` is a path as the caller can open it (absolute, or relative to the
    working directory), the same meaning ``read_manifest`` gives it back.
    """
    folder = Path(os.path.abspath(Path(path).parent))  # abspath: symlinked audio keeps its own path
    lines = []
    for utt in utterances:
        audio = Path(os.path.abspath(utt.audio))
        try:
            stored = Path(os.path.relpath(audio, folder))
            if stored.parts and stored.parts[0] == "..":
                stored = audio
        except ValueError:  # another drive (Windows)
            stored = audio
        record = {
            "id": utt.id,
            "audio_filepath": stored.as_posix(),
            "text": utt.text,
            "duration": round(float(utt.duration), 4),
        }
        if utt.sample_rate is not None:
            record["sample_rate"] = int(utt.sample_rate)
        lines.append(json.dumps(record, ensure_ascii=False))
    files.atomic_write_text(Path(path), "".join(line + "\n" for line in lines))


def read_manifest(path: Path) -> list[Utterance]:
    """Every utterance of a manifest; ``ManifestError`` naming file and line on a bad line."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    folder = path.parent
    utterances = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record: dict[str, Any] = json.loads(line)
                audio = Path(record["audio_filepath"])
                text, duration = record["text"], float(record["duration"])
                rate = record.get("sample_rate")
                rate = None if rate is None else int(rate)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise ManifestError(
                    f"{where}: expected a JSON object with audio_filepath, text and duration ({err})"
                ) from None
            if not isinstance(text, str):
                raise ManifestError(f"{where}: text must be a string, got {type(text).__name__}")
            utt_id = str(record.get("id") or audio.stem)
            audio = audio if audio.is_absolute() else folder / audio
            utterances.append(Utterance(utt_id, audio, text, duration, rate))
    return utterances


def write_prepared(
    folder: Path, corpus: str, splits: dict[str, int], issues: dict[str, int], **extra: Any
) -> None:
    """The completion marker of a prepared folder (written after every manifest)."""
    payload = {"format": FORMAT_VERSION, "corpus": corpus, "splits": splits, "issues": issues, **extra}
    files.atomic_write_json(Path(folder) / PREPARED_FILE, payload)


def read_prepared(folder: Path) -> dict[str, Any] | None:
    """``prepared.json`` of a finished prepared folder, or None if there is none."""
    marker = Path(folder) / PREPARED_FILE
    if not marker.is_file():
        return None
    try:
        payload = files.read_json(marker)
    except files.JSONFileError as err:
        raise ManifestError(
            f"{marker}: unreadable ({err.reason}); delete the folder and prepare again"
        ) from None
    if payload.get("format") != FORMAT_VERSION:
        found = payload.get("format")
        raise ManifestError(f"{marker}: format {found}, expected {FORMAT_VERSION}; prepare again")
    return payload
