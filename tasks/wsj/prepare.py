"""Prepare WSJ or LibriSpeech once into manifests (``tasks.wsj.manifest``).

    prepare_manifests("wsj", Path("/data/wsj"), Path("prepared/wsj"))
    prepare_manifests("librispeech", Path("/data/LibriSpeech"), Path("prepared/librispeech"))

**WSJ** (LDC93S6B + LDC94S13B): ``src_dir`` holds the CD folders (``11-1.1``, ``11-13.1``,
``13-34.1``, ...; anywhere below it, any case), or copies that merged them into one ``wsj0``
and one ``wsj1`` folder. The splits are Kaldi's (``egs/wsj/s5``):

* ``train-si284``: ``13-34.1/wsj1/doc/indices/si_tr_s.ndx`` + ``11-13.1/wsj0/doc/indices/train/
  tr_s_wv1.ndx`` (SI-284, about 81 h; the paper's training set),
* ``dev93``: ``13-34.1/wsj1/doc/indices/h1_p0.ndx`` (503 utterances; the paper's WSJ'93),
* ``eval92``: ``11-13.1/wsj0/doc/indices/test/nvp/si_et_20.ndx`` (333; the paper's WSJ'92).

Transcripts come from the ``.dot`` files (found anywhere below ``src_dir``, matched to an
utterance by its first six characters, speaker and session, as Kaldi does) and are normalised
by ``tasks.wsj.wsj_text``. Audio: a ``.wav`` or ``.flac`` beside a ``.wv1`` (same name) is read
as the converted file; otherwise the ``.wv1`` is converted with ``sph2pipe`` into
``out_dir/audio/<split>/<id>.wav`` (several at a time), and without ``sph2pipe`` the
preparation stops with a message saying how to convert.

**LibriSpeech**: ``src_dir`` holds ``train-clean-100``, ``dev-clean`` and ``test-clean`` (or a
``LibriSpeech`` folder holding them): FLAC audio and one ``<speaker>-<chapter>.trans.txt`` per
chapter; transcripts are lower-cased (they are already upper-case letters, apostrophes, spaces).

Every audio file kept is decoded in full once (several at a time), so a truncated or corrupt
file is found here, not mid-training; ``prepared.json`` records the key of the manifests' files
(``tasks.wsj.verify``), so a run does not decode them again. Skipped inputs are counted in
``prepared.json`` and a warning names the first few: files listed in an index but missing (Kaldi
drops ``11-2.1/wsj0/si_tr_s/401`` the same way), unreadable or empty audio (two of SI-284's
files are empty), utterances without a transcript (a LibriSpeech chapter's audio that its
``trans.txt`` does not list, an empty ``trans.txt`` included), transcripts marked
``[bad_recording]``, and transcripts empty after normalisation. A split that ends up empty is an
error. Preparation is idempotent: a finished folder is reused.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dsd.errors import ConfigError, UserError
from dsd.taskkit.environment import available_cores
from dsd.taskkit.fingerprint import SKIPPED_KEPT
from tasks.wsj import audio as audiolib
from tasks.wsj import verify
from tasks.wsj.manifest import Utterance, read_prepared, write_manifest, write_prepared
from tasks.wsj.text import clean_spaces
from tasks.wsj.wsj_text import is_bad_recording, normalize_wsj, parse_dot_line

CORPORA = ("wsj", "librispeech")
SPLITS = {
    "wsj": ("train-si284", "dev93", "eval92"),
    "librispeech": ("train-clean-100", "dev-clean", "test-clean"),
}
#: split -> the index files (CD id, path inside the CD) whose lists it joins.
WSJ_INDICES = {
    "train-si284": (
        ("13_34_1", "wsj1/doc/indices/si_tr_s.ndx"),
        ("11_13_1", "wsj0/doc/indices/train/tr_s_wv1.ndx"),
    ),
    "dev93": (("13_34_1", "wsj1/doc/indices/h1_p0.ndx"),),
    "eval92": (("11_13_1", "wsj0/doc/indices/test/nvp/si_et_20.ndx"),),
}
_CD_NAME = re.compile(r"^\d+[-_.]\d+[-_.]\d+$")
_NDX_LINE = re.compile(r"^(?P<cd>[0-9_]+):\s*(?P<path>\S+)$")
_SHOWN = 5  # skipped files named in a warning


class PreparationError(UserError, RuntimeError):
    """The corpus folder is not laid out as expected; the message says what was looked for."""


def prepare_manifests(corpus: str, src_dir: Path, out_dir: Path, force: bool = False) -> dict[str, Path]:
    """Prepare ``corpus`` from ``src_dir`` into ``out_dir``; returns split -> manifest path.

    A folder already prepared for the same corpus is reused unless ``force``.
    """
    if corpus not in CORPORA:
        raise ConfigError(f"unknown corpus {corpus!r}; valid: {', '.join(CORPORA)}")
    src_dir, out_dir = Path(src_dir).expanduser(), Path(out_dir).expanduser()
    if not src_dir.is_dir():
        raise PreparationError(f"{corpus} folder {src_dir} does not exist")
    done = read_prepared(out_dir)
    if done is not None and not force:
        if done["corpus"] != corpus:
            raise PreparationError(f"{out_dir} already holds prepared {done['corpus']}, not {corpus}")
        return {split: out_dir / f"{split}.jsonl" for split in done["splits"]}
    collect = _wsj_split if corpus == "wsj" else _librispeech_split
    context = _WsjTree(src_dir) if corpus == "wsj" else _librispeech_root(src_dir)
    return write_corpus(
        corpus, out_dir, lambda split, skipped: collect(context, split, out_dir, skipped), src_dir
    )


def write_corpus(
    corpus: str,
    out_dir: Path,
    collect: Callable[[str, dict[str, list[str]]], list[Utterance]],
    where: object,
    **extra: Any,
) -> dict[str, Path]:
    """Every split of ``corpus`` into its manifest under ``out_dir``, then ``prepared.json``.

    ``collect(split, skipped)`` gives a split's utterances, every audio decoded once, and lists
    what it left out in ``skipped`` by reason; those are counted, named in a warning and kept in
    ``prepared.json`` (a raw corpus's folders and a Hugging Face dataset's rows alike). ``where``
    names the source in errors; ``extra`` goes into ``prepared.json``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    issues: Counter[str] = Counter()
    counts: dict[str, int] = {}
    hours: dict[str, float] = {}
    paths: dict[str, Path] = {}
    named: dict[str, list[str]] = defaultdict(list)  # reason -> the first skipped, over all splits
    kept: list[Path] = []  # every audio file of the manifests
    for split in SPLITS[corpus]:
        skipped: dict[str, list[str]] = defaultdict(list)
        utterances = collect(split, skipped)
        for reason, names in sorted(skipped.items()):
            issues[reason] += len(names)
            named[reason].extend(f"{split}: {n}" for n in names[: SKIPPED_KEPT - len(named[reason])])
            more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
            shown = ", ".join(names[:_SHOWN]) + more
            message = f"{corpus} {split}: skipped {len(names)} utterance(s), {reason}: {shown}"
            warnings.warn(message, stacklevel=3)
        if not utterances:
            raise PreparationError(f"{corpus} {split}: no usable utterance found in {where}")
        paths[split] = out_dir / f"{split}.jsonl"
        write_manifest(paths[split], sorted(utterances, key=lambda u: u.id))
        counts[split] = len(utterances)
        hours[split] = round(sum(u.duration for u in utterances) / 3600, 3)
        kept.extend(u.audio for u in utterances)
    write_prepared(
        out_dir,
        corpus,
        counts,
        dict(sorted(issues.items())),
        hours=hours,
        skipped=dict(named),
        audio_key=verify.listing_key(sorted(set(kept))),  # every file decoded above: a run need not again
        **extra,
    )
    return paths


def detect_corpus(src_dir: Path) -> str:
    """``wsj`` or ``librispeech``, from the folder's layout; ``PreparationError`` if neither."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise PreparationError(f"corpus folder {src_dir} does not exist")
    try:
        _librispeech_root(src_dir)
        return "librispeech"
    except PreparationError:
        pass
    for _, dirs, files in os.walk(src_dir, followlinks=True):
        wsj_dirs = any(_CD_NAME.match(d) or d.lower() in ("wsj0", "wsj1") for d in dirs)
        if wsj_dirs or any(f.lower().endswith((".ndx", ".wv1")) for f in files):
            return "wsj"
    raise PreparationError(
        f"{src_dir} looks like neither WSJ (CD folders such as 11-13.1 with .ndx index files) nor "
        f"LibriSpeech (train-clean-100, dev-clean, test-clean folders)"
    )


# ====================================================================== audio helpers
def _decoded(candidate: tuple[str, Path, str]) -> Utterance | str:
    """The utterance with its duration and sample rate from decoding the whole file, or why it
    cannot be used (``unreadable_audio``, ``empty_audio``)."""
    utt_id, path, text = candidate
    try:
        samples, rate = audiolib.read_audio(path)
    except audiolib.EmptyAudioError:
        return "empty_audio"
    except audiolib.AudioError:
        return "unreadable_audio"
    return Utterance(utt_id, path, text, len(samples) / rate, rate)


def _checked_audio(candidates: list[tuple[str, Path, str]], skipped: dict[str, list[str]]) -> list[Utterance]:
    """The candidates ``(id, audio, text)`` whose audio decodes, several at a time (libsndfile
    decodes outside the GIL); the others are counted in ``skipped`` by reason."""
    workers = min(8, available_cores())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_decoded, candidates))
    utterances = []
    for (_, path, _), result in zip(candidates, results, strict=True):
        if isinstance(result, str):
            skipped[result].append(str(path))
        else:
            utterances.append(result)
    return utterances


# ====================================================================== WSJ
class _WsjTree:
    """Case-insensitive view of a WSJ tree: every file by (CD, path inside the CD).

    LDC's layout keeps one folder per CD (``11-2.1/wsj0/si_tr_s/...``); copies that merged the
    CDs (``wsj0/si_tr_s/...`` directly) work too: a file is also found by its path from its
    ``wsj0`` / ``wsj1`` folder on, whatever CD an index line names.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[tuple[str, str], Path] = {}
        self.merged: dict[str, Path] = {}  # "wsj0/si_tr_s/011/011c0201.wv1" -> path
        self.dots: dict[str, list[Path]] = defaultdict(list)
        base = root.parent if _CD_NAME.match(root.name) else root  # root may be one CD itself
        for folder, _, names in os.walk(root, followlinks=True):
            parts = [p.lower() for p in Path(folder).relative_to(base).parts]
            cd_at = next((i for i, p in enumerate(parts) if _CD_NAME.match(p)), None)
            corpus_at = next((i for i, p in enumerate(parts) if p in ("wsj0", "wsj1")), None)
            for name in names:
                path = Path(folder) / name
                if cd_at is not None:
                    cd = re.sub(r"[-.]", "_", parts[cd_at])
                    self.files[(cd, "/".join([*parts[cd_at + 1 :], name.lower()]))] = path
                if corpus_at is not None:
                    self.merged.setdefault("/".join([*parts[corpus_at:], name.lower()]), path)
                if name.lower().endswith(".dot"):
                    self.dots[name[:6].lower()].append(path)
        if not self.files and not self.merged:
            raise PreparationError(
                f"no WSJ files found under {root}: expected the LDC93S6B / LDC94S13B CD folders "
                "(named like 11-13.1 or 13-34.1) or their wsj0 / wsj1 folders"
            )
        self._transcripts: dict[Path, dict[str, str]] = {}

    def find(self, cd: str, inside: str) -> Path | None:
        inside = inside.lower()
        return self.files.get((cd, inside)) or self.merged.get(inside)

    def transcript(self, utt_id: str, audio: Path) -> str | None:
        """The raw .dot transcript of ``utt_id``, preferring a .dot in the audio's own folder."""
        candidates = sorted(self.dots.get(utt_id[:6], []), key=lambda p: p.parent != audio.parent)
        for dot in candidates:
            if dot not in self._transcripts:
                table = {}
                for number, line in enumerate(dot.read_text(encoding="latin-1").splitlines(), 1):
                    try:
                        parsed = parse_dot_line(line)
                    except ValueError as err:
                        raise PreparationError(f"{dot}:{number}: {err}") from None
                    if parsed is not None:
                        table[parsed[0]] = parsed[1]
                self._transcripts[dot] = table
            if utt_id in self._transcripts[dot]:
                return self._transcripts[dot][utt_id]
        return None


def _read_index(tree: _WsjTree, cd: str, inside: str) -> Iterable[tuple[str, str]]:
    path = tree.find(cd, inside)
    if path is None:
        raise PreparationError(
            f"WSJ index {cd.replace('_', '-', 1).replace('_', '.')}/{inside} not found under {tree.root}; "
            "it is on the LDC93S6B (wsj0) / LDC94S13B (wsj1) CDs"
        )
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        match = _NDX_LINE.match(line)
        if match is None:
            raise PreparationError(f"{path}:{number}: expected '<cd>:<path>', got {line!r}")
        listed = match["path"].lstrip("/")
        if not listed.lower().endswith(".wv1"):
            listed += ".wv1"  # the test-set indices omit the extension
        yield match["cd"], listed


def _wsj_split(tree: _WsjTree, split: str, out_dir: Path, skipped: dict[str, list[str]]) -> list[Utterance]:
    chosen: dict[str, tuple[Path, str]] = {}  # id -> (audio, raw transcript)
    to_convert: list[tuple[str, Path, Path]] = []
    for cd, inside in WSJ_INDICES[split]:
        for listed_cd, listed in _read_index(tree, cd, inside):
            utt_id = Path(listed).stem.lower()
            if utt_id in chosen:
                continue
            stem = listed[: -len(".wv1")]
            converted = tree.find(listed_cd, stem + ".wav") or tree.find(listed_cd, stem + ".flac")
            original = tree.find(listed_cd, listed)
            source = converted or original
            if source is None:
                skipped["missing_audio"].append(f"{listed_cd}:{listed}")
                continue
            raw = tree.transcript(utt_id, source)
            if raw is None:
                skipped["missing_transcript"].append(utt_id)
                continue
            if is_bad_recording(raw):
                skipped["bad_recording"].append(utt_id)
                continue
            if converted is None:
                target = out_dir / "audio" / split / f"{utt_id}.wav"
                if not target.exists():
                    to_convert.append((utt_id, source, target))
                source = target
            chosen[utt_id] = (source, raw)
    _convert_all(to_convert, tree.root)
    candidates = []
    for utt_id, (audio, raw) in chosen.items():
        text = normalize_wsj(raw)
        if not text:
            skipped["empty_transcript"].append(utt_id)
            continue
        candidates.append((utt_id, audio, text))
    return _checked_audio(candidates, skipped)


def _convert_all(jobs: list[tuple[str, Path, Path]], corpus_dir: Path) -> None:
    """Convert SPHERE files with sph2pipe, several processes at a time."""
    if not jobs:
        return
    if not audiolib.sph2pipe_available():
        raise audiolib.SphereConversionError(audiolib.sphere_conversion_help(jobs[0][1], corpus_dir))
    with ThreadPoolExecutor(max_workers=available_cores()) as pool:
        list(pool.map(lambda job: audiolib.convert_sphere(job[1], job[2], corpus_dir), jobs))


# ====================================================================== LibriSpeech
def _librispeech_root(src_dir: Path) -> Path:
    for root in (src_dir, src_dir / "LibriSpeech"):
        if all((root / split).is_dir() for split in SPLITS["librispeech"]):
            return root
    present = sorted(p.name for p in src_dir.iterdir() if p.is_dir()) if src_dir.is_dir() else []
    raise PreparationError(
        f"{src_dir} is not a LibriSpeech folder: expected {', '.join(SPLITS['librispeech'])} in it "
        f"(or in {src_dir / 'LibriSpeech'}); found {present or 'no folders'}"
    )


def _librispeech_split(
    root: Path, split: str, out_dir: Path, skipped: dict[str, list[str]]
) -> list[Utterance]:
    candidates = []
    for chapter in sorted(p for p in (root / split).glob("*/*") if p.is_dir()):
        listed: set[str] = set()
        for trans in sorted(chapter.glob("*.trans.txt")):
            for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split(maxsplit=1)
                listed.add(parts[0])
                if len(parts) != 2:
                    skipped["empty_transcript"].append(f"{trans.name}:{number}")
                    continue
                utt_id, raw = parts
                audio = chapter / f"{utt_id}.flac"
                if not audio.is_file():
                    skipped["missing_audio"].append(utt_id)
                    continue
                candidates.append((utt_id, audio.resolve(), clean_spaces(raw.lower())))
        # audio no trans.txt line speaks for (a missing or empty trans.txt): named, never silently dropped
        for audio in sorted(chapter.glob("*.flac")):
            if audio.stem not in listed:
                skipped["missing_transcript"].append(str(audio))
    return _checked_audio(candidates, skipped)
