"""LibriSpeech from a Hugging Face copy on disk (openslr/librispeech_asr's schema, written by
``datasets``): the study end to end on parquet shards and on a save_to_disk folder, the same
features and transcripts as from the FLAC folders, and each bad input named."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import datasets
import pytest
import torch

from dsd import files
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from dsd.taskkit.hf_data import HFDataError
from tasks.wsj.adapter import Config, SpeechTask
from tests.tasks import hf_helpers as hf

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

RECIPE = "D:2steps@1e-3 S50%:1steps@1e-3 D:1steps@1e-4"
FOLDERS = {"train.clean.100": "train-clean-100", "validation.clean": "dev-clean", "test.clean": "test-clean"}


def task(data: Path, cache: Path) -> SpeechTask:
    config = Config(arch="deepspeech", hidden=24, stride=2, batch_size=4, workers=0, recipe=RECIPE)
    return SpeechTask(config, data, cache)


@pytest.mark.parametrize("form", ["parquet", "save_to_disk"])
def test_the_study_runs_end_to_end_on_each_form(tmp_path: Path, form: str) -> None:
    if form == "parquet":  # the "all" config's split names, the hub's README
        root = hf.write_parquet(hf.librispeech_dict(), tmp_path / "hf")
    else:  # the "clean" config's names
        clean = {"train.100": 10, "validation": 3, "test": 3}
        root = hf.write_save_to_disk(hf.librispeech_dict(clean), tmp_path / "hf")
    speech = task(root, tmp_path / "cache")
    assert speech.inspect().splits == {"train-clean-100": 10, "dev-clean": 3, "test-clean": 3}
    folders = run_study(speech, RunConfig(results_dir=tmp_path / "results", progress=False, device="cpu"))
    assert len(folders) == 3
    for folder in folders:
        record = files.read_json(folder / "config.json")
        assert record["dataset"] == f"LibriSpeech (HF {form})" and (folder / "done").is_file()
        assert record["data_facts"]["utterances"] == {"train-clean-100": 10, "dev-clean": 3, "test-clean": 3}
        result = files.read_json(folder / "result.json")
        assert result["splits"] == ["dev-clean", "test-clean"]
    assert task(root, tmp_path / "cache").inspect().pending == []  # prepared once


def flac_folders(data: datasets.DatasetDict, root: Path) -> Path:
    """The same utterances as LibriSpeech's FLAC folders and trans.txt files."""
    for split, dataset in data.cast_column("audio", datasets.Audio(decode=False)).items():
        chapters: dict[Path, list[str]] = defaultdict(list)
        for row in dataset:
            speaker, chapter, _ = row["id"].split("-")
            folder = root / FOLDERS[split] / speaker / chapter
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{row['id']}.flac").write_bytes(row["audio"]["bytes"])
            chapters[folder / f"{speaker}-{chapter}.trans.txt"].append(f"{row['id']} {row['text']}")
        for path, lines in chapters.items():
            path.write_text("\n".join(lines) + "\n")
    return root


def test_features_and_transcripts_are_the_flac_folders(tmp_path: Path) -> None:
    data = hf.librispeech_dict(rate=22_050)  # resampled to 16 kHz on both paths
    from_flac = task(flac_folders(data, tmp_path / "LibriSpeech"), tmp_path / "cache")
    from_rows = task(hf.write_parquet(data, tmp_path / "hf"), tmp_path / "cache")
    for speech in (from_flac, from_rows):
        speech.prepare()
    for split in ("train-clean-100", "dev-clean"):
        flac = {u.id: u for u in from_flac.source.manifest(split)}
        rows = {u.id: u for u in from_rows.source.manifest(split)}
        assert {i: (u.text, u.duration, u.sample_rate) for i, u in rows.items()} == {
            i: (u.text, u.duration, u.sample_rate) for i, u in flac.items()
        }
    flac_set, row_set = from_flac.train_dataset(), from_rows.train_dataset()
    for index in range(len(flac_set)):
        a, b = flac_set[index], row_set[index]
        assert a["id"] == b["id"] and a["text"] == b["text"] and torch.equal(a["features"], b["features"])
    assert from_rows.data_issues()["train-clean-100/resampled_audio"] == 10


# ---------------------------------------------------------------------- bad input
def test_a_truncated_shard_is_named(tmp_path: Path) -> None:
    root = hf.write_parquet(hf.librispeech_dict(), tmp_path / "hf")
    hf.truncate(root / "data/validation.clean-00001-of-00002.parquet")
    with pytest.raises(
        HFDataError, match=r"shard data/validation\.clean-00001-of-00002\.parquet .*truncated"
    ):
        task(root, tmp_path / "cache").inspect()


def test_a_missing_split_lists_the_splits_found(tmp_path: Path) -> None:
    root = hf.write_parquet(hf.librispeech_dict({"train.clean.100": 4, "test.clean": 2}), tmp_path / "hf")
    with pytest.raises(
        HFDataError,
        match=r"dev-clean: validation\.clean or validation;.*splits found: train\.clean\.100, test\.clean",
    ):
        task(root, tmp_path / "cache").inspect()


def test_an_unexpected_schema_lists_the_columns_found_and_expected(tmp_path: Path) -> None:
    root = hf.write_save_to_disk(hf.librispeech_dict().rename_column("text", "sentence"), tmp_path / "hf")
    with pytest.raises(
        HFDataError, match=r"has columns file, audio, sentence, .*without text; expected: audio"
    ):
        task(root, tmp_path / "cache").inspect()


def test_audio_that_does_not_decode_is_skipped_counted_and_named(tmp_path: Path) -> None:
    data = hf.spoil_row(hf.librispeech_dict(), "train.clean.100", 7, "audio", lambda flac: flac[:40])
    root = hf.write_parquet(data, tmp_path / "hf")  # 5 rows a shard: row 7 is row 2 of the second
    speech = task(root, tmp_path / "cache")
    with pytest.warns(
        UserWarning, match=r"skipped 1 utterance\(s\), unreadable_audio: 100-1001-0007 \(data/"
    ):
        speech.prepare()
    assert speech.data_issues()["prepare/unreadable_audio"] == 1
    (named,) = speech.skipped_inputs()["utterances at preparation: unreadable audio"]
    assert named == "train-clean-100: 100-1001-0007 (data/train.clean.100-00001-of-00002.parquet row 2)"
    assert len(speech.train_dataset()) == 9
