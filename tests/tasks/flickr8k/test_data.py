"""Flickr-8K's files: the token file + split lists, Karpathy's JSON, tokens, vocabulary, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.flickr8k import corpus
from tasks.flickr8k.corpus import DataError, load_corpus
from tasks.flickr8k.text import END_ID, START_ID, UNK, UNK_ID, Vocabulary, tokenize

TRAIN = ["1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg"]
VAL = ["1002674143_1b742ab4b8.jpg"]
TEST = ["1003163366_44323f5815.jpg"]
CAPTIONS = {
    "1000268201_693b08cb0e.jpg": [
        "A child in a pink dress is climbing up a set of stairs in an entry way .",
        "A girl going into a wooden building .",
        "A little girl climbing into a wooden playhouse .",
        "A little girl climbing the stairs to her playhouse .",
        "A little girl in a pink dress going into a wooden cabin .",
    ],
    "1001773457_577c3a7d70.jpg": [
        "A black dog and a spotted dog are fighting",
        "A black dog and a tri-colored dog playing with each other on the road .",
        "A black dog and a white dog with brown spots are staring at each other in the street .",
        "Two dogs of different breeds looking at each other on the road .",
        "Two dogs on pavement moving toward each other .",
    ],
    "1002674143_1b742ab4b8.jpg": [
        "A little girl covered in paint sits in front of a painted rainbow with her hands in a bowl .",
        "A little girl is sitting in front of a large painted rainbow .",
    ],
    "1003163366_44323f5815.jpg": [
        "A man lays on a bench while his dog sits by him .",
        "A man sleeping on a bench outside with a white and black dog sitting next to him .",
    ],
}


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        pixels = np.full((12, 16, 3), 40 * i, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)


def write_token_layout(
    root: Path, token_lines: list[str] | None = None, folder: str = "Flicker8k_Dataset"
) -> Path:
    """The official zips unpacked: Flickr8k_text/ and the (misspelled) image folder."""
    text = root / "Flickr8k_text"
    text.mkdir(parents=True)
    if token_lines is None:
        token_lines = [f"{name}#{k}\t{c}" for name, caps in CAPTIONS.items() for k, c in enumerate(caps)]
        # the real token file's famous stray entry: no such image, in no split
        token_lines.append("2258277193_586949ec62.jpg.1#0\tA man is standing in front of a skyscraper .")
    (text / "Flickr8k.token.txt").write_text("\n".join(token_lines) + "\n")
    for split, names in (("train", TRAIN), ("dev", VAL), ("test", TEST)):
        (text / f"Flickr_8k.{split}Images.txt").write_text("\n".join(names) + "\n")
    write_images(root / folder, TRAIN + VAL + TEST)
    return root


def karpathy_payload() -> dict:
    """The schema of dataset_flickr8k.json (Karpathy's split), with real field names."""
    images, sentid = [], 0
    for imgid, (name, split) in enumerate(
        [(n, "train") for n in TRAIN] + [(n, "val") for n in VAL] + [(n, "test") for n in TEST]
    ):
        sentences = []
        for raw in CAPTIONS[name]:
            sentences.append({"tokens": tokenize(raw), "raw": raw, "imgid": imgid, "sentid": sentid})
            sentid += 1
        images.append(
            {
                "sentids": [s["sentid"] for s in sentences],
                "imgid": imgid,
                "sentences": sentences,
                "split": split,
                "filename": name,
            }
        )
    return {"images": images, "dataset": "flickr8k"}


def test_tokenize_lowercases_and_deletes_punctuation() -> None:
    assert tokenize("A black dog and a tri-colored dog , playing .") == [
        "a",
        "black",
        "dog",
        "and",
        "a",
        "tricolored",
        "dog",
        "playing",
    ]
    assert tokenize(" . ! ") == []


def test_token_file_layout_is_read(tmp_path: Path) -> None:
    data = load_corpus(write_token_layout(tmp_path))
    assert data.images_dir.name == "Flicker8k_Dataset"
    assert data.source == "Flickr8k.token.txt"
    assert data.splits == {"train": TRAIN, "val": VAL, "test": TEST}
    assert data.captions[TRAIN[1]][0] == [
        "a",
        "black",
        "dog",
        "and",
        "a",
        "spotted",
        "dog",
        "are",
        "fighting",
    ]
    assert data.raw_captions[TRAIN[0]][0].startswith("A child in a pink dress")
    assert len(data.captions[TRAIN[0]]) == 5
    assert "2258277193_586949ec62.jpg.1" not in data.captions  # stray entry ignored
    assert sum(data.issues.values()) == 0


def test_karpathy_json_is_read_and_preferred(tmp_path: Path) -> None:
    root = write_token_layout(tmp_path, folder="Flickr8k_Dataset")
    payload = karpathy_payload()
    payload["images"][0]["split"] = "restval"  # COCO's extra training images count as train
    (root / "dataset_flickr8k.json").write_text(json.dumps(payload))
    data = load_corpus(root)
    assert data.source == "dataset_flickr8k.json"
    assert data.images_dir.name == "Flickr8k_Dataset"
    assert data.splits == {"train": TRAIN, "val": VAL, "test": TEST}
    assert data.captions[TEST[0]][1][:3] == ["a", "man", "sleeping"]
    assert data.raw_captions[TEST[0]][1].startswith("A man sleeping")
    assert load_corpus(root, annotations="token-file").source == "Flickr8k.token.txt"


def test_vocabulary_keeps_words_seen_min_count_times() -> None:
    captions = [["a", "dog", "runs"], ["a", "dog"], ["a", "cat"], ["a", "dog", "jumps"]]
    vocab = Vocabulary.build(captions, min_count=3)
    assert vocab.words == ("<pad>", "<start>", "<end>", "<unk>", "a", "dog")
    assert vocab.counts[END_ID] == 4 and vocab.counts[UNK_ID] == 3  # runs, cat, jumps
    assert vocab.encode(["a", "cat", "dog"]) == [4, UNK_ID, 5]
    assert vocab.encode(["a", "dog", "a"], max_length=2) == [4, 5]
    assert vocab.decode([START_ID, 4, UNK_ID, 5, END_ID, 4]) == ["a", UNK, "dog"]
    assert Vocabulary.build(captions, min_count=1).words[4:] == ("a", "dog", "cat", "jumps", "runs")
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(captions, min_count=0)


def test_vocabulary_of_the_fixture_uses_only_training_captions(tmp_path: Path) -> None:
    data = load_corpus(write_token_layout(tmp_path))
    vocab = Vocabulary.build(data.split_captions("train"), min_count=5)
    assert set(vocab.words[4:]) == {"a", "dog"}  # 'a' x16, 'dog' x9 in train; 'little' only x3
    assert "man" not in vocab  # a test-split word


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1000268201_693b08cb0e.jpg#0 A child climbing .", "no TAB"),
        ("1000268201_693b08cb0e.jpg\tA child climbing .", "is not '<image>.jpg#<k>'"),
        ("1000268201_693b08cb0e.jpg#5\t . ", "empty"),
    ],
)
def test_bad_caption_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    good = [f"{name}#{k}\t{c}" for name, caps in CAPTIONS.items() for k, c in enumerate(caps)]
    root = write_token_layout(tmp_path, [*good[:3], line, *good[3:]])
    with pytest.raises(DataError, match=rf"Flickr8k\.token\.txt:4: .*{message}"):
        load_corpus(root)
    skipped = load_corpus(root, skip_bad=True)
    assert sum(skipped.issues.values()) == 1
    assert len(skipped.captions[TRAIN[0]]) == 5


def test_missing_image_and_image_without_captions(tmp_path: Path) -> None:
    root = write_token_layout(tmp_path)
    (root / "Flicker8k_Dataset" / VAL[0]).unlink()
    with pytest.raises(DataError, match=rf"Flickr_8k\.devImages\.txt: image {VAL[0]} is not in"):
        load_corpus(root)
    # the val split is left empty: nothing usable remains there, even when skipping
    with pytest.raises(DataError, match=r"val split .* holds no usable image"):
        load_corpus(root, skip_bad=True)

    root = write_token_layout(tmp_path / "again")
    lines = (root / "Flickr8k_text" / "Flickr8k.token.txt").read_text().splitlines()
    kept = [line for line in lines if not line.startswith(TRAIN[1])]
    (root / "Flickr8k_text" / "Flickr8k.token.txt").write_text("\n".join(kept) + "\n")
    with pytest.raises(DataError, match=f"image {TRAIN[1]} has no caption"):
        load_corpus(root)
    data = load_corpus(root, skip_bad=True)
    assert data.splits["train"] == TRAIN[:1] and data.issues["images_without_captions"] == 1


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"Flickr8k\.token\.txt"):
        load_corpus(tmp_path)
    root = write_token_layout(tmp_path / "a")
    (root / "Flickr8k_text" / "Flickr_8k.testImages.txt").unlink()
    with pytest.raises(DataError, match=r"Flickr_8k\.testImages\.txt is missing"):
        load_corpus(root)
    root = write_token_layout(tmp_path / "b", folder="elsewhere")
    with pytest.raises(DataError, match="Flicker8k_Dataset"):
        load_corpus(root)
    assert load_corpus(root, images_dir=str(root / "elsewhere")).images_dir.name == "elsewhere"


def test_bad_karpathy_json_names_the_entry(tmp_path: Path) -> None:
    root = write_token_layout(tmp_path)
    payload = karpathy_payload()
    del payload["images"][2]["filename"]
    (root / "dataset_flickr8k.json").write_text(json.dumps(payload))
    with pytest.raises(
        DataError, match=r"dataset_flickr8k\.json: images\[2\]: expected an object with a 'filename'"
    ):
        load_corpus(root)
    (root / "dataset_flickr8k.json").write_text("{not json")
    with pytest.raises(DataError, match="not a JSON file"):
        load_corpus(root)


def test_image_in_two_splits_is_refused(tmp_path: Path) -> None:
    root = write_token_layout(tmp_path)
    (root / "Flickr8k_text" / "Flickr_8k.testImages.txt").write_text(TRAIN[0] + "\n")
    with pytest.raises(DataError, match=f"{TRAIN[0]} is in both the train and the test split"):
        load_corpus(root)
    assert corpus.ISSUE_NAMES[0] == "malformed_caption_lines"
