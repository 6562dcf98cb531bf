"""WSJ speech task: features, the dataset's filters and counts, batches, bad audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from tasks.wsj.audio import AudioError, read_audio
from tasks.wsj.data import SpeechDataset, collate
from tasks.wsj.features import N_BINS, LogSpectrogram, frames_of_duration, num_frames
from tasks.wsj.manifest import Utterance
from tasks.wsj.text import encode

pytestmark = pytest.mark.usefixtures("single_thread")


def write_wav(path, seconds, rate=16_000, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(0).normal(0, 0.01, t.size)
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32), rate)
    return path


def test_log_spectrogram_shape_and_per_utterance_normalisation():
    samples = torch.from_numpy(np.random.default_rng(1).normal(0, 0.1, 16_000).astype(np.float32))
    features = LogSpectrogram()(samples)
    assert features.shape == (num_frames(16_000), N_BINS) == (101, 161)
    assert torch.allclose(features.mean(0), torch.zeros(N_BINS), atol=1e-4)
    assert torch.allclose(features.std(0, unbiased=False), torch.ones(N_BINS), atol=1e-3)
    assert frames_of_duration(1.0) == 101 and frames_of_duration(0.0101) == 2
    with pytest.raises(ValueError, match="mono"):
        LogSpectrogram()(torch.zeros(2, 100))


def one_frame_per_input(frames: int) -> int:
    return frames


def test_dataset_filters_and_counts_bad_utterances(tmp_path):
    ok = write_wav(tmp_path / "ok.wav", 0.5)
    low = write_wav(tmp_path / "low.wav", 0.5, rate=8_000)
    utterances = [
        Utterance("ok", ok, "hello world", 0.5, 16_000),
        Utterance("digits", ok, "route 66", 0.5, 16_000),
        Utterance("empty", ok, "  ", 0.5, 16_000),
        Utterance("short", ok, "far too long a transcript for so little audio", 0.1, 16_000),
        Utterance("low", low, "eight kilohertz", 0.5, 8_000),
    ]
    with pytest.warns(UserWarning) as caught:
        dataset = SpeechDataset(utterances, one_frame_per_input, "train")
    assert [u.id for u in dataset.utterances] == ["ok", "low"]
    assert dict(dataset.issues) == {
        "transcript_outside_alphabet": 1,
        "empty_transcript": 1,
        "too_short_for_ctc": 1,
        "resampled_audio": 1,
    }
    messages = " ".join(str(w.message) for w in caught)
    assert "digits" in messages and "low.wav at 8000 Hz" in messages
    assert dataset.frame_lengths() == [51, 51]
    low_item = dataset[1]  # resampled to 16 kHz on reading: 0.5 s -> 51 frames
    assert low_item["features"].shape == (51, N_BINS)
    assert torch.equal(low_item["labels"], torch.tensor(encode("eight kilohertz")))


def test_evaluation_order_is_by_length_and_batches_are_padded(tmp_path):
    utterances = [
        Utterance("long", write_wav(tmp_path / "a.wav", 0.6), "long one", 0.6),
        Utterance("short", write_wav(tmp_path / "b.wav", 0.3), "short", 0.3),
    ]
    dataset = SpeechDataset(utterances, one_frame_per_input, "test", sort_by_length=True)
    assert [u.id for u in dataset.utterances] == ["short", "long"]
    batch = collate([dataset[0], dataset[1]])
    assert batch["features"].shape == (2, 61, N_BINS)
    assert batch["lengths"].tolist() == [31, 61]
    assert torch.all(batch["features"][0, 31:] == 0)
    assert batch["target_lengths"].tolist() == [5, 8]
    assert batch["targets"].tolist() == encode("short") + encode("long one")
    assert batch["texts"] == ["short", "long one"] and batch["ids"] == ["short", "long"]


def test_unreadable_or_empty_audio_raises_naming_the_file(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioError, match=r"broken\.wav"):
        read_audio(broken)
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0, dtype=np.float32), 16_000)
    with pytest.raises(AudioError, match=r"empty\.wav: empty audio"):
        read_audio(empty)
    dataset = SpeechDataset([Utterance("b", broken, "a b", 1.0)], one_frame_per_input, "test")
    with pytest.raises(AudioError, match=r"broken\.wav"):
        dataset[0]
