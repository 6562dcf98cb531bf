"""WSJ speech task: preparing WSJ and LibriSpeech layouts into manifests (small fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tasks.wsj.audio import SphereConversionError, is_sphere, sphere_header
from tasks.wsj.manifest import ManifestError, Utterance, read_manifest, read_prepared, write_manifest
from tasks.wsj.prepare import PreparationError, detect_corpus, prepare_manifests

RATE = 16_000


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def write_audio(path: Path, seconds: float, rate: int = RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), tone(seconds, rate), rate)


def write_sphere(path: Path, seconds: float) -> None:
    """A NIST SPHERE file as WSJ ships them (header says shorten; the samples here are raw PCM)."""
    samples = (tone(seconds) * 32767).astype("<i2")
    fields = [
        f"sample_count -i {len(samples)}",
        f"sample_rate -i {RATE}",
        "channel_count -i 1",
        "sample_n_bytes -i 2",
        "sample_byte_format -s2 01",
        "sample_coding -s26 pcm,embedded-shorten-v2.00",
        "end_head",
    ]
    header = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode().ljust(1024, b" ")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + samples.tobytes())


def write_text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_wsj(root: Path, sphere: bool = False) -> Path:
    """A miniature WSJ: index files on 11-13.1 / 13-34.1, audio and .dot files on other CDs."""
    write_text(
        root / "11-13.1/wsj0/doc/indices/train/tr_s_wv1.ndx",
        [
            ";; SI-84 training index",
            "11_2_1:wsj0/si_tr_s/011/011c0201.wv1",
            "11_2_1:wsj0/si_tr_s/011/011c0202.wv1",
            "11_2_1:wsj0/si_tr_s/011/011c0203.wv1",
            "11_2_1:wsj0/si_tr_s/011/011c0204.wv1",
            "11_2_1:wsj0/si_tr_s/401/401c0201.wv1",  # listed but absent (as in the real corpus)
        ],
    )
    write_text(root / "13-34.1/wsj1/doc/indices/si_tr_s.ndx", ["13_1_1:wsj1/si_tr_s/46u/46uc0301.wv1"])
    write_text(root / "13-34.1/wsj1/doc/indices/h1_p0.ndx", ["13_16_1:wsj1/si_dt_20/4k0/4k0c0301.wv1"])
    eval92 = ["11_14_1:wsj0/si_et_20/440/440c0201"]  # the test indices omit the extension
    write_text(root / "11-13.1/wsj0/doc/indices/test/nvp/si_et_20.ndx", eval92)

    train = root / "11-2.1/wsj0/si_tr_s/011"
    write_audio(train / "011c0201.wav", 1.0)  # converted beside the (absent) .wv1
    if sphere:
        write_sphere(train / "011c0202.wv1", 0.5)
    else:
        write_audio(train / "011C0202.WAV", 0.5)  # upper-case copies are found too
    write_audio(train / "011c0203.wav", 0.75)
    write_audio(train / "011c0204.wav", 0.0)  # empty audio
    write_text(
        train / "011c0200.dot",
        [
            "[loud_breath] The company said \\,COMMA it isn\\'t (011c0201)",
            "Stocks rose [door_slam] today (011C0202)",
            "[bad_recording] never mind (011c0203)",
            "Empty file here (011c0204)",
        ],
    )
    write_audio(root / "13-1.1/wsj1/si_tr_s/46u/46uc0301.flac", 0.6)
    write_text(root / "13-1.1/wsj1/si_tr_s/46u/46uc0300.dot", ["<Uh> forty-two *dollars* (46uc0301)"])
    write_audio(root / "13-16.1/wsj1/si_dt_20/4k0/4k0c0301.wav", 0.8)
    write_text(root / "13-16.1/wsj1/si_dt_20/4k0/4k0c0300.dot", ["The Dow fell (4k0c0301)"])
    write_audio(root / "11-14.1/wsj0/si_et_20/440/440c0201.wav", 0.9)
    write_text(root / "11-14.1/wsj0/si_et_20/440/440c0200.dot", ["Bonds were mixed (440c0201)"])
    return root


def test_wsj_preparation(tmp_path):
    src = make_wsj(tmp_path / "wsj")
    assert detect_corpus(src) == "wsj"
    out = tmp_path / "prepared"
    with pytest.warns(UserWarning, match="skipped"):
        paths = prepare_manifests("wsj", src, out)
    assert sorted(paths) == ["dev93", "eval92", "train-si284"]
    train = {u.id: u for u in read_manifest(paths["train-si284"])}
    assert sorted(train) == ["011c0201", "011c0202", "46uc0301"]
    assert train["011c0201"].text == "the company said comma it isn't"
    assert train["011c0202"].text == "stocks rose today"
    assert train["46uc0301"].text == "uh forty two dollars"
    assert train["011c0202"].audio.name == "011C0202.WAV" and train["011c0202"].audio.is_file()
    assert train["011c0201"].duration == pytest.approx(1.0)
    assert train["011c0201"].sample_rate == RATE
    assert [u.text for u in read_manifest(paths["dev93"])] == ["the dow fell"]
    assert [u.text for u in read_manifest(paths["eval92"])] == ["bonds were mixed"]
    prepared = read_prepared(out)
    assert prepared["corpus"] == "wsj"
    assert prepared["splits"] == {"train-si284": 3, "dev93": 1, "eval92": 1}
    assert prepared["issues"] == {"bad_recording": 1, "empty_audio": 1, "missing_audio": 1}
    # idempotent: a prepared folder is reused, not rewritten
    before = paths["train-si284"].stat().st_mtime_ns
    assert prepare_manifests("wsj", src, out) == paths
    assert paths["train-si284"].stat().st_mtime_ns == before


def test_wsj_copies_with_merged_cds_are_read_too(tmp_path):
    cds = make_wsj(tmp_path / "cds")
    merged = tmp_path / "merged"
    for cd in cds.iterdir():
        shutil.copytree(cd, merged, dirs_exist_ok=True)  # wsj0/... and wsj1/... without CD folders
    assert not any(p.name[0].isdigit() for p in merged.iterdir())
    with pytest.warns(UserWarning):
        paths = prepare_manifests("wsj", merged, tmp_path / "prepared")
    assert [len(read_manifest(paths[s])) for s in ("train-si284", "dev93", "eval92")] == [3, 1, 1]


def test_wsj_sphere_without_sph2pipe_stops_with_how_to_convert(tmp_path, monkeypatch):
    src = make_wsj(tmp_path / "wsj", sphere=True)
    sphere = src / "11-2.1/wsj0/si_tr_s/011/011c0202.wv1"
    assert is_sphere(sphere)
    assert sphere_header(sphere)["sample_coding"] == "pcm,embedded-shorten-v2.00"
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(SphereConversionError) as caught:
        prepare_manifests("wsj", src, tmp_path / "prepared")
    message = str(caught.value)
    assert str(sphere) in message
    assert "sph2pipe" in message and "embedded-shorten" in message
    assert "sph2pipe -f wav" in message  # the command that converts the corpus
    assert read_prepared(tmp_path / "prepared") is None  # nothing half-done looks finished


def test_wsj_sphere_is_converted_when_sph2pipe_is_on_the_path(tmp_path, monkeypatch):
    src = make_wsj(tmp_path / "wsj", sphere=True)
    fake = tmp_path / "bin" / "sph2pipe"  # stands in for LDC's converter: header off, WAV out
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, numpy, soundfile\n"
        "_, fmt, kind, src, dst = sys.argv\n"
        "data = open(src, 'rb').read()\n"
        "size = int(data.split(b'\\n')[1])\n"
        "samples = numpy.frombuffer(data[size:], dtype='<i2')\n"
        "soundfile.write(dst, samples, 16000, subtype='PCM_16', format='WAV')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "prepared"
    with pytest.warns(UserWarning):
        paths = prepare_manifests("wsj", src, out)
    converted = {u.id: u for u in read_manifest(paths["train-si284"])}["011c0202"]
    assert converted.audio == out / "audio" / "train-si284" / "011c0202.wav"
    assert converted.duration == pytest.approx(0.5)
    line = json.loads(next(ln for ln in paths["train-si284"].read_text().splitlines() if "011c0202" in ln))
    assert line["audio_filepath"] == "audio/train-si284/011c0202.wav"  # relative: the folder can move


def make_librispeech(root: Path) -> Path:
    for split, speaker in (("train-clean-100", "19"), ("dev-clean", "84"), ("test-clean", "121")):
        chapter = root / "LibriSpeech" / split / speaker / "198"
        write_audio(chapter / f"{speaker}-198-0000.flac", 0.7)
        write_audio(chapter / f"{speaker}-198-0001.flac", 0.4, rate=8_000)
        write_text(
            chapter / f"{speaker}-198.trans.txt",
            [
                f"{speaker}-198-0000 NORTHANGER ABBEY IT'S  LATE",
                f"{speaker}-198-0001 SHORT ONE",
                f"{speaker}-198-0002 NO AUDIO FOR THIS ONE",
            ],
        )
    return root


def test_librispeech_preparation(tmp_path):
    src = make_librispeech(tmp_path / "data")
    assert detect_corpus(src) == "librispeech"
    with pytest.warns(UserWarning, match="missing_audio"):
        paths = prepare_manifests("librispeech", src, tmp_path / "prepared")
    assert sorted(paths) == ["dev-clean", "test-clean", "train-clean-100"]
    train = read_manifest(paths["train-clean-100"])
    assert [u.text for u in train] == ["northanger abbey it's late", "short one"]
    assert [u.sample_rate for u in train] == [RATE, 8_000]
    assert train[1].duration == pytest.approx(0.4)
    assert all(u.audio.is_absolute() and u.audio.suffix == ".flac" for u in train)
    assert read_prepared(tmp_path / "prepared")["issues"] == {"missing_audio": 3}


def test_unknown_layouts_are_refused_with_what_was_expected(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(PreparationError, match="neither WSJ"):
        detect_corpus(tmp_path / "random")
    with pytest.raises(PreparationError, match="expected train-clean-100"):
        prepare_manifests("librispeech", tmp_path / "random", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown corpus"):
        prepare_manifests("timit", tmp_path / "random", tmp_path / "out")


def test_manifest_round_trip_and_bad_lines(tmp_path):
    audio = tmp_path / "audio" / "a.wav"
    write_audio(audio, 0.2)
    path = tmp_path / "split.jsonl"
    write_manifest(path, [Utterance("a", audio, "hello there", 0.2, RATE)])
    [utt] = read_manifest(path)
    assert (utt.id, utt.audio, utt.text) == ("a", audio, "hello there")
    assert (utt.duration, utt.sample_rate) == (0.2, RATE)
    assert json.loads(path.read_text())["audio_filepath"] == "audio/a.wav"
    # a NeMo manifest without id or sample_rate reads too
    path.write_text(json.dumps({"audio_filepath": str(audio), "text": "hi", "duration": 0.2}) + "\n{oops\n")
    with pytest.raises(ManifestError, match=r"split.jsonl:2"):
        read_manifest(path)
