"""The speech task's data source: one per origin, chosen once when the adapter is made, each
knowing its corpus and where its manifests are (or will be)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.wsj.adapter import Config, SpeechTask
from tasks.wsj.prepare import prepare_manifests
from tasks.wsj.sources import FolderSource, HFSpeechSource, StandinSource
from tests.tasks import hf_helpers as hf
from tests.tasks.wsj.test_prepare import make_librispeech


@pytest.mark.filterwarnings("ignore::UserWarning")  # the fixture's utterances without audio
def test_each_origin_gets_its_source_and_choosing_builds_nothing(tmp_path: Path) -> None:
    raw = make_librispeech(tmp_path / "raw")
    prepared = tmp_path / "prepared"
    prepare_manifests("librispeech", make_librispeech(tmp_path / "raw2"), prepared)
    origins = {
        None: (StandinSource, "espeak stand-in"),
        raw: (FolderSource, "librispeech"),
        prepared: (FolderSource, "librispeech"),
        hf.write_save_to_disk(hf.librispeech_dict(), tmp_path / "hf"): (HFSpeechSource, "librispeech"),
    }
    for data_dir, (kind, corpus) in origins.items():
        task = SpeechTask(Config(), data_dir, tmp_path / "cache")
        assert type(task.source) is kind and task.corpus == corpus
    assert not (tmp_path / "cache").exists()  # nothing synthesized, prepared or converted yet
    assert SpeechTask(Config(), prepared, tmp_path / "cache").source.folder == prepared
    assert SpeechTask(Config(), raw, tmp_path / "cache").source.raw == raw
