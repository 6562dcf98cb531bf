"""WSJ speech task: the eSpeak stand-in corpus, and a stand-in study of the iterated recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile
import torch

from dsd import files
from dsd.records.layout import RunFolder
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from tasks.wsj.adapter import STANDIN_RECIPES, Config, SpeechTask
from tasks.wsj.manifest import read_manifest, read_prepared
from tasks.wsj.standin import TEST_VOICES, TRAIN_VOICES, StandinSpec, build_standin, plan

pytestmark = pytest.mark.usefixtures("single_thread")


def test_standin_is_real_speech_deterministic_and_tests_unheard_voices(tmp_path):
    spec = StandinSpec(train_utterances=12, test_utterances=4, vocabulary=30)
    first = build_standin(tmp_path / "a", spec, processes=2)
    second = build_standin(tmp_path / "b", spec, processes=1)
    assert build_standin(tmp_path / "a", spec) == first  # built once, then reused
    prepared = read_prepared(first)
    assert prepared["corpus"] == "espeak stand-in" and prepared["splits"] == {"train": 12, "test": 4}
    train, test = read_manifest(first / "train.jsonl"), read_manifest(first / "test.jsonl")
    words = set(spec.words())
    for utt in train + test:
        samples, rate = soundfile.read(str(utt.audio))
        assert rate == 16_000 and utt.sample_rate == 16_000
        assert utt.duration == pytest.approx(len(samples) / rate, abs=1e-4)
        assert 0.3 < utt.duration < 6 and abs(samples).max() > 0.05  # speech, not silence
        assert spec.min_words <= len(utt.text.split()) <= spec.max_words
        assert set(utt.text.split()) <= words
        # the same bytes whatever the number of synthesis processes
        twin = second / utt.audio.relative_to(first)
        assert twin.read_bytes() == utt.audio.read_bytes()
    voices = {split: {line.voice for line in lines} for split, lines in plan(spec).items()}
    assert voices == {"train": set(TRAIN_VOICES), "test": set(TEST_VOICES)}
    assert not voices["train"] & voices["test"]


def test_standin_builds_under_a_relative_cache_dir(tmp_path, monkeypatch):
    """The CLI's default cache dir is relative (``data/wsj``); the synthesis workers run inside
    their output folder, so the path must not be resolved twice."""
    monkeypatch.chdir(tmp_path)
    spec = StandinSpec(train_utterances=4, test_utterances=2, vocabulary=30)
    built = build_standin(Path("data") / "wsj", spec, processes=1)
    utterances = read_manifest(built / "train.jsonl") + read_manifest(built / "test.jsonl")
    assert len(utterances) == 6
    for utt in utterances:
        assert soundfile.info(str(utt.audio)).samplerate == 16_000


def test_standin_study_of_the_iterated_recipe_end_to_end(tmp_path):
    torch.manual_seed(0)
    config = Config(
        arch="deepspeech",
        hidden=24,
        stride=2,
        batch_size=8,
        workers=0,
        standin_train=24,
        standin_test=6,
        standin_vocabulary=20,
        recipe="D:3steps@2e-3 S50%:2steps@1e-3 D:2steps@5e-4 S25%:2steps@2e-4 D:2steps@1e-4",
    )
    task = SpeechTask(config, None, tmp_path / "cache")
    assert task.dataset_name == "espeak stand-in" and task.paper_key == "wsj/deepspeech"
    assert "decay=" in task.default_recipe and task.default_recipe == STANDIN_RECIPES["deepspeech"]
    folders = run_study(task, RunConfig(results_dir=tmp_path / "results", progress=False, log_every=1))
    results = {f.parent.name.split("-")[0]: json.loads((f / "result.json").read_text()) for f in folders}
    assert sorted(results) == ["baseline", "dense", "dsd"]
    assert all(RunFolder(f).is_done for f in folders)
    labels = {m: [p["label"] for p in r["phases"]] for m, r in results.items()}
    assert labels == {"baseline": ["D"], "dsd": ["S50%", "D", "S25%", "D"], "dense": ["D", "D", "D", "D"]}
    for result in results.values():
        assert result["dataset"] == "espeak stand-in" and result["splits"] == ["test"]
        for phase in result["phases"]:
            assert set(phase["metrics"]["test"]) == {"wer", "cer"}
            assert phase["metrics"]["test"]["wer"] >= 0 and phase["metrics"]["test"]["cer"] >= 0
        assert result["data_issues"] == {}
    dsd_folder = next(f for f in folders if f.parent.name.startswith("dsd"))
    sparse_weights = files.safe_torch_load(dsd_folder / "phase1.pt")
    for name in ("fc1.weight", "rnn.forward_hh.weight", "out.weight"):
        assert (sparse_weights[name] == 0).float().mean().item() == pytest.approx(0.5, abs=1e-3)
    assert (sparse_weights["fc1.bias"] == 0).float().mean().item() < 0.5  # biases are not pruned
    transcripts = (dsd_folder / "predictions" / "test.txt").read_text().splitlines()
    assert transcripts[0] == "id\treference\thypothesis" and len(transcripts) == 7
    assert (dsd_folder / "histograms.json").is_file()
