"""Audio is verified like images: every file decoded once (at preparation, or before a run on
manifests prepared elsewhere), the verdict cached; a missing file is "not found", a truncated one
is named with the decoder's reason, before any training; no chapter's audio drops silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsd.taskkit.config import non_default_fields
from tasks.wsj import verify
from tasks.wsj.adapter import Config, SpeechTask
from tasks.wsj.audio import AudioError
from tasks.wsj.manifest import read_manifest, read_prepared
from tasks.wsj.prepare import prepare_manifests
from tests.tasks.wsj.test_prepare import make_librispeech, write_audio, write_text

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def truncate(path: Path) -> Path:
    """A copy cut half-way: its header still promises every frame (a header-only check passes)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_every_file_is_decoded_once_and_the_verdict_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad, gone = tmp_path / "good.flac", tmp_path / "bad.flac", tmp_path / "gone.flac"
    write_audio(good, 0.5)
    write_audio(bad, 1.0)
    truncate(bad)
    verdict = verify.verify_audio([good, bad, gone], tmp_path / "cache")
    assert verdict[str(gone)] == "not found"
    assert "lost sync" in verdict[str(bad)] and str(good) not in verdict
    decoded: list[Path] = []
    monkeypatch.setattr(verify, "check_audio", lambda path: decoded.append(path))
    assert verify.verify_audio([good, bad, gone], tmp_path / "cache") == verdict  # cached: nothing decoded
    assert decoded == []
    write_audio(good, 0.6)  # a file that changes is decoded again
    verify.verify_audio([good, bad, gone], tmp_path / "cache")
    assert decoded == [good, bad, gone]


def test_preparation_decodes_every_file_and_names_unlisted_audio(tmp_path: Path) -> None:
    src = make_librispeech(tmp_path / "raw")
    truncate(src / "LibriSpeech" / "dev-clean" / "84" / "198" / "84-198-0000.flac")
    chapter = src / "LibriSpeech" / "train-clean-100" / "19" / "227"  # its trans.txt is empty
    write_audio(chapter / "19-227-0000.flac", 0.5)
    write_text(chapter / "19-227.trans.txt", [])
    with pytest.warns(UserWarning, match=r"missing_transcript: .*19-227-0000\.flac"):
        prepare_manifests("librispeech", src, tmp_path / "prepared")
    issues = read_prepared(tmp_path / "prepared")["issues"]
    assert issues["unreadable_audio"] == 1 and issues["missing_transcript"] == 1
    assert [u.id for u in read_manifest(tmp_path / "prepared" / "dev-clean.jsonl")] == ["84-198-0001"]


def test_a_run_trusts_its_preparation_and_names_a_file_broken_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare_manifests("librispeech", make_librispeech(tmp_path / "raw"), tmp_path / "prepared")
    task = SpeechTask(Config(batch_size=1), tmp_path / "prepared", tmp_path / "cache")
    assert task.inspect().pending == []  # preparation decoded every file: nothing left to check
    real_check = verify.check_audio
    monkeypatch.setattr(verify, "check_audio", lambda path: pytest.fail(f"{path} decoded twice"))
    task.prepare()
    monkeypatch.setattr(verify, "check_audio", real_check)
    broken = truncate(tmp_path / "raw" / "LibriSpeech" / "test-clean" / "121" / "198" / "121-198-0000.flac")
    task = SpeechTask(Config(batch_size=1), tmp_path / "prepared", tmp_path / "cache")
    assert task.inspect().pending == ["decode the 6 audio files once"]
    with pytest.raises(AudioError, match=rf"{broken} \(.*lost sync"):
        task.prepare()


def test_corpus_flag_agreeing_with_the_data_keeps_the_run_hash(tmp_path: Path) -> None:
    prepare_manifests("librispeech", make_librispeech(tmp_path / "raw"), tmp_path / "prepared")
    named = SpeechTask(Config(corpus="librispeech"), tmp_path / "prepared", tmp_path / "cache")
    detected = SpeechTask(Config(), tmp_path / "prepared", tmp_path / "cache")
    assert named.corpus == detected.corpus == "librispeech"
    # the only resolved field is the batch size's placeholder (0: 32 on real data), never the corpus
    assert non_default_fields(named.config) == non_default_fields(detected.config) == {"batch_size": 32}
    with pytest.raises(ValueError, match=r"--corpus wsj, but .*prepared holds prepared LibriSpeech"):
        SpeechTask(Config(corpus="wsj"), tmp_path / "prepared", tmp_path / "cache")
