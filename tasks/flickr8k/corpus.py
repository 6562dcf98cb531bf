"""Reading Flickr-8K from its files: captions, splits and the image folder.

Two annotation formats, both as distributed:

* the official text files (``Flickr8k_text.zip``): ``Flickr8k.token.txt`` with lines
  ``<image>.jpg#<k><TAB><caption>`` (k = 0..4), and the split lists
  ``Flickr_8k.trainImages.txt`` / ``Flickr_8k.devImages.txt`` / ``Flickr_8k.testImages.txt``
  (6000 / 1000 / 1000 file names, one a line);
* Karpathy's ``dataset_flickr8k.json`` (the split NeuralTalk and the paper use, the same
  6000 / 1000 / 1000 images): ``{"images": [{"filename", "split", "sentences": [{"tokens",
  "raw"}, ...]}, ...]}``.

Images live in ``Flicker8k_Dataset/`` (sic: the official zip's folder name is misspelled), also
found as ``Flickr8k_Dataset/`` or ``Images/``. The token file lists captions for 8092 names,
one of which (``2258277193_586949ec62.jpg.1``) is no image; only images named in a split are
used, so such entries are ignored.

Bad input raises ``DataError`` naming the file and line (or JSON entry) and what was expected;
with ``skip_bad=True`` it is counted (``issues``) and skipped instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dsd import errors, files
from tasks.flickr8k.images import FolderImages, ImageStore
from tasks.flickr8k.text import tokenize

SPLITS = ("train", "val", "test")
TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
KARPATHY_FILE = "dataset_flickr8k.json"
#: Where the text files may sit under the dataset root (the zip unpacks into Flickr8k_text/).
TEXT_FOLDERS = (".", "Flickr8k_text")
#: Image folder names, the official (misspelled) one first.
IMAGE_FOLDERS = (
    "Flicker8k_Dataset",
    "Flickr8k_Dataset",
    "Flickr8k_Dataset/Flicker8k_Dataset",
    "Flickr8k_Dataset/Flickr8k_Dataset",
    "Images",
    "images",
)
ANNOTATION_FORMATS = ("auto", "karpathy", "token-file")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

#: The issue counters every corpus reports (zero when nothing was skipped).
ISSUE_NAMES = (
    "malformed_caption_lines",
    "empty_captions",
    "missing_images",
    "images_without_captions",
    "undecodable_images",
)


class DataError(errors.DataError):
    """A dataset file that does not hold what Flickr-8K's files hold."""


@dataclass
class Corpus:
    """Captions and splits of one dataset, checked against its image folder."""

    images_dir: Path
    source: str  # the annotations file read
    splits: dict[str, list[str]]  # split -> image file names, in file order
    captions: dict[str, list[list[str]]]  # image -> tokenized captions
    raw_captions: dict[str, list[str]]  # image -> captions as written
    issues: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # kind -> what was left out, named
    images: ImageStore | None = None  # where the images are read from; None: the files in images_dir

    def store(self) -> ImageStore:
        """The images, from ``images_dir`` or a Hugging Face dataset's rows."""
        return self.images if self.images is not None else FolderImages(self.images_dir)

    def where(self) -> str:
        """The dataset's location for people: the folder above the images, or the HF dataset."""
        return self.images.describe() if self.images is not None else str(self.images_dir.parent)

    def split_captions(self, split: str) -> Iterable[list[str]]:
        for name in self.splits[split]:
            yield from self.captions[name]


class Issues:
    """Raise on bad input, or count it when the user asked to skip it."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.counts: Counter[str] = Counter({name: 0 for name in ISSUE_NAMES})
        self.named: dict[str, list[str]] = {}

    def report(self, kind: str, message: str) -> None:
        if not self.skip_bad:
            raise DataError(message + " (pass --skip-bad-data to count and skip such entries)")
        self.counts[kind] += 1
        self.named.setdefault(kind.replace("_", " "), []).append(message)


# ---------------------------------------------------------------------- locating files
def _find_file(root: Path, name: str) -> Path | None:
    for folder in TEXT_FOLDERS:
        candidate = root / folder / name
        if candidate.is_file():
            return candidate
    return None


def find_images_dir(root: Path, override: str = "") -> Path:
    """The image folder: ``override`` if given, else the first known name under ``root``."""
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise DataError(f"--images-dir {path} is not a folder")
        return path
    for name in IMAGE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    raise DataError(
        f"no Flickr-8K image folder under {root}: looked for {', '.join(IMAGE_FOLDERS)}. Unpack "
        "Flickr8k_Dataset.zip there (it holds Flicker8k_Dataset/ with 8091 .jpg files), or pass --images-dir"
    )


def resolve_annotations(root: Path, fmt: str = "auto", override: str = "") -> tuple[str, Path]:
    """``("karpathy" | "token-file", path)``: which annotations to read, and from where.

    ``auto`` prefers Karpathy's JSON (the paper's split) and falls back to the token file.
    """
    if fmt not in ANNOTATION_FORMATS:
        raise errors.ConfigError(f"--annotations must be one of {', '.join(ANNOTATION_FORMATS)}, got {fmt!r}")
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise DataError(f"--annotations-file {path} does not exist")
        if fmt == "auto":
            fmt = "karpathy" if path.suffix == ".json" else "token-file"
        return fmt, path
    if fmt in ("auto", "karpathy"):
        path = _find_file(root, KARPATHY_FILE)
        if path is not None:
            return "karpathy", path
        if fmt == "karpathy":
            raise DataError(f"{KARPATHY_FILE} not found under {root} (looked in {', '.join(TEXT_FOLDERS)})")
    path = _find_file(root, TOKEN_FILE)
    if path is None:
        raise DataError(
            f"no Flickr-8K captions under {root}: expected {KARPATHY_FILE} or {TOKEN_FILE} "
            f"(with the split lists {', '.join(SPLIT_FILES.values())}) in {' or '.join(TEXT_FOLDERS)}"
        )
    return "token-file", path


# ---------------------------------------------------------------------- parsers
def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err})") from None


def parse_token_file(path: Path, issues: Issues) -> tuple[dict[str, list[list[str]]], dict[str, list[str]]]:
    """``image -> tokenized captions`` and ``image -> raw captions`` from ``Flickr8k.token.txt``."""
    captions: dict[str, list[list[str]]] = {}
    raw: dict[str, list[str]] = {}
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        if "\t" not in line:
            issues.report(
                "malformed_caption_lines",
                f"{where}: no TAB in {line[:60]!r}; expected '<image>.jpg#<k><TAB><caption>'",
            )
            continue
        key, caption = line.split("\t", 1)
        name, hash_sign, index = key.strip().rpartition("#")
        if not hash_sign or not name or not index.isdigit():
            issues.report(
                "malformed_caption_lines",
                f"{where}: key {key[:60]!r} is not '<image>.jpg#<k>' (k a caption number)",
            )
            continue
        tokens = tokenize(caption)
        if not tokens:
            issues.report("empty_captions", f"{where}: the caption of {name} is empty ({caption!r})")
            continue
        captions.setdefault(name, []).append(tokens)
        raw.setdefault(name, []).append(caption.strip())
    return captions, raw


def parse_split_list(path: Path) -> list[str]:
    """Image file names of one split list, in file order; a repeated name is an error."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(_read_lines(path), 1):
        name = line.strip()
        if not name:
            continue
        if name in seen:
            raise DataError(f"{path}:{number}: {name} is listed twice (first on line {seen[name]})")
        if "\t" in name or " " in name:
            raise DataError(f"{path}:{number}: {name[:60]!r} is not one image file name per line")
        seen[name] = number
        names.append(name)
    return names


def parse_karpathy_json(
    path: Path, issues: Issues
) -> tuple[dict[str, list[str]], dict[str, list[list[str]]], dict[str, list[str]]]:
    """Splits, tokenized and raw captions from Karpathy's ``dataset_<name>.json``.

    Uses each sentence's ``tokens`` as given (NeuralTalk does), or tokenizes ``raw`` where a
    sentence has no tokens list. ``restval`` images (COCO's) count as training images.
    """
    try:
        payload = files.read_json(path)
    except files.JSONFileError as err:
        raise DataError(f"{path}: not a JSON file ({err.reason})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("images"), list):
        raise DataError(f"{path}: expected an object with an 'images' list (Karpathy's split format)")
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    captions: dict[str, list[list[str]]] = {}
    raw: dict[str, list[str]] = {}
    for i, image in enumerate(payload["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(image, dict) or not isinstance(image.get("filename"), str):
            raise DataError(f"{where}: expected an object with a 'filename' string")
        name, split = image["filename"], {"restval": "train"}.get(image.get("split"), image.get("split"))
        if split not in splits:
            raise DataError(
                f"{where} ({name}): split {image.get('split')!r} is not one of train/val/test/restval"
            )
        if name in captions:
            raise DataError(f"{where}: {name} appears twice")
        sentences = image.get("sentences")
        if not isinstance(sentences, list):
            raise DataError(f"{where} ({name}): expected a 'sentences' list")
        captions[name], raw[name] = [], []
        for j, sentence in enumerate(sentences):
            if not isinstance(sentence, dict):
                raise DataError(f"{where}.sentences[{j}]: expected an object with 'tokens' or 'raw'")
            tokens = sentence.get("tokens")
            if tokens is None:
                tokens = tokenize(str(sentence.get("raw", "")))
            elif not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise DataError(f"{where}.sentences[{j}]: 'tokens' must be a list of strings")
            tokens = [t for t in tokens if t]
            if not tokens:
                issues.report("empty_captions", f"{where}.sentences[{j}] ({name}): empty caption")
                continue
            captions[name].append(tokens)
            raw[name].append(str(sentence.get("raw", " ".join(tokens))).strip())
        splits[split].append(name)
    return splits, captions, raw


# ---------------------------------------------------------------------- the corpus
def load_corpus(
    root: Path,
    annotations: str = "auto",
    annotations_file: str = "",
    images_dir: str = "",
    skip_bad: bool = False,
) -> Corpus:
    """Read the annotations and check every split image against the image folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Flickr-8K folder {root} does not exist")
    issues = Issues(skip_bad)
    fmt, path = resolve_annotations(root, annotations, annotations_file)
    folder = find_images_dir(root, images_dir)
    where_listed: dict[str, str] = {}
    if fmt == "karpathy":
        splits, captions, raw = parse_karpathy_json(path, issues)
        for split, names in splits.items():
            where_listed.update({n: f"{path} ({split} split)" for n in names})
    else:
        captions, raw = parse_token_file(path, issues)
        splits = {}
        for split, file_name in SPLIT_FILES.items():
            list_path = path.parent / file_name
            if not list_path.is_file():
                raise DataError(f"split list {list_path} is missing (it ships with {TOKEN_FILE})")
            splits[split] = parse_split_list(list_path)
            where_listed.update({n: f"{list_path}" for n in splits[split]})
    check_disjoint(splits)
    on_disk = {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    for split, names in splits.items():
        kept = []
        for name in names:
            if name not in on_disk:
                issues.report("missing_images", f"{where_listed[name]}: image {name} is not in {folder}")
            elif not captions.get(name):
                issues.report(
                    "images_without_captions", f"{where_listed[name]}: image {name} has no caption in {path}"
                )
            else:
                kept.append(name)
        if not kept:
            raise DataError(f"the {split} split of {path} holds no usable image")
        splits[split] = kept
    used = {n for names in splits.values() for n in names}
    captions = {n: c for n, c in captions.items() if n in used}
    raw = {n: r for n, r in raw.items() if n in used}
    return Corpus(folder, str(path.name), splits, captions, raw, issues.counts, issues.named)


def check_disjoint(splits: dict[str, list[str]]) -> None:
    owner: dict[str, str] = {}
    for split, names in splits.items():
        for name in names:
            if name in owner:
                raise DataError(f"image {name} is in both the {owner[name]} and the {split} split")
            owner[name] = split
