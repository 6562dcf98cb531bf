"""Flickr-8K as its Hugging Face copies hold it: parquet shards, a hub cache snapshot of them, or
a ``save_to_disk`` folder (``dsd.taskkit.hf_data`` finds which).

Columns: ``image`` (the encoded JPEG) and the five captions, either as ``caption_0`` ...
``caption_4`` or as one column of lists (``captions``, ``caption``, ``sentences``, ...). Splits:
``train``, ``validation`` (or ``val`` / ``dev``) and ``test``: the copies on the hub follow
Karpathy's 6000 / 1000 / 1000 split, the paper's. An image is named by a file-name column when
there is one, else by the name stored with its bytes (``1000268201_693b08cb0e.jpg``), else by
its split and row.

Captions are read straight from the shards' text columns (no image is touched) and tokenised
exactly as the official token file's (``tasks.flickr8k.text.tokenize``); an empty one is a bad
caption line, as in that file. The images are read from the memory-mapped rows by the same
encoders and end in the same feature cache (keyed by each row's shard and the shard's size); an
image that does not decode stops the run naming its shard and row, or is skipped and counted with
``--skip-bad-data``.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from PIL import Image

from dsd.taskkit import hf_data
from dsd.taskkit.hf_data import HFDataError, HFSource, HFSplit
from tasks.flickr8k.corpus import SPLITS, Corpus, Issues, check_disjoint
from tasks.flickr8k.text import tokenize

ROLES = {"train": ("train",), "val": ("validation", "val", "dev"), "test": ("test",)}
LIST_COLUMNS = ("captions", "caption", "sentences", "sentences_raw", "text", "texts")
NAME_COLUMNS = ("image_filename", "filename", "file_name", "image_name", "image_path")
COLUMNS = {
    "image": "the encoded image, a datasets Image",
    "captions": f"caption_0 ... caption_4, one string each, or one list column: {', '.join(LIST_COLUMNS)}",
}
_NUMBERED = re.compile(r"caption_(\d+)$")


def caption_columns(where: str, schema: Any) -> list[str]:
    """``caption_0`` ... in order, or the one list column holding an image's captions."""
    numbered = sorted((n for n in schema.names if _NUMBERED.match(n)), key=lambda n: int(n.split("_")[1]))
    if numbered:
        return numbered
    import pyarrow as pa

    for name in LIST_COLUMNS:
        kind = schema.field(name).type if name in schema.names else None
        if kind is not None and (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
            return [name]
    raise hf_data.schema_error(where, schema.names, COLUMNS, ["captions"])


class HFImages:
    """The corpus's images in the rows of a Hugging Face dataset (an ``ImageStore``): read from
    the memory-mapped split, converted from parquet once on first use."""

    def __init__(
        self,
        source: HFSource,
        splits: dict[str, HFSplit],
        rows: dict[str, list[int]],
        places: dict[str, tuple[str, int]],
        cache_dir: Path,
    ) -> None:
        self.source, self.splits, self.rows, self.places = source, splits, rows, places
        self.cache_dir = Path(cache_dir)
        self._data: dict[str, Any] = {}

    def _where(self, name: str) -> str:
        split, row = self.places[name]
        return hf_data.locate(self.source, self.splits[split], self.rows[split], row)

    def key(self, name: str) -> str:
        shard = self._where(name).rsplit(" row ", 1)[0]
        return f"{shard}:{(self.source.base / shard).stat().st_size}"

    def _dataset(self, split: str) -> Any:
        if split not in self._data:
            dataset = hf_data.load_split(self.source, self.splits[split], self.cache_dir)
            if len(dataset) != sum(self.rows[split]):
                raise HFDataError(
                    f"split {self.splits[split].name!r} of {self.source.describe()} read {len(dataset)} "
                    f"rows, its shards say {sum(self.rows[split])}; a shard changed while it was read"
                )
            self._data[split] = hf_data.undecoded(dataset, ["image"])
        return self._data[split]

    def open(self, name: str) -> Image.Image:
        split, row = self.places[name]
        data = hf_data.stored_bytes(self._dataset(split)[row]["image"])
        if data is None:
            raise ValueError("no image bytes in the row")
        return Image.open(io.BytesIO(data))

    def location(self, name: str) -> str:
        return f"{self._where(name)} of {self.source.describe()} (image {name})"

    def label(self, name: str) -> str:
        return f"{name} ({self._where(name)})"

    def describe(self) -> str:
        return self.source.describe()

    def ready(self) -> None:
        for split in self.splits:
            self._dataset(split)


def load_corpus(source: HFSource, cache_dir: Path, skip_bad: bool = False) -> Corpus:
    """Splits, names and captions from the shards' text columns (cheap: no image is read)."""
    splits = hf_data.resolve_splits(source, ROLES)
    issues = Issues(skip_bad)
    rows = {role: hf_data.check_shards(source, split) for role, split in splits.items()}
    tables = {role: _text_columns(source, split) for role, split in splits.items()}
    names = _image_names(tables)
    corpus_splits: dict[str, list[str]] = {role: [] for role in SPLITS}
    captions: dict[str, list[list[str]]] = {}
    raw: dict[str, list[str]] = {}
    places: dict[str, tuple[str, int]] = {}
    for role in SPLITS:
        columns, table = tables[role]
        cells = [table[c].to_pylist() for c in columns]
        numbered = bool(_NUMBERED.match(columns[0]))  # else one list column holds every caption
        for row, name in enumerate(names[role]):
            where = f"{hf_data.locate(source, splits[role], rows[role], row)} of {source.describe()}"
            texts = [cell[row] for cell in cells] if numbered else cells[0][row]
            kept = _captions(where, name, texts or [], issues)
            if not kept:
                issues.report("images_without_captions", f"{where}: image {name} has no caption")
                continue
            captions[name], raw[name] = [tokens for tokens, _ in kept], [text for _, text in kept]
            corpus_splits[role].append(name)
            places[name] = (role, row)
        if not corpus_splits[role]:
            raise HFDataError(f"split {splits[role].name!r} of {source.describe()} holds no usable image")
    check_disjoint(corpus_splits)
    columns = tables["train"][0]
    layout = f"{columns[0]}..{columns[-1]} columns" if len(columns) > 1 else f"{columns[0]} column"
    images = HFImages(source, splits, rows, places, cache_dir)
    return Corpus(
        source.root,
        f"captions in the {layout}",
        corpus_splits,
        captions,
        raw,
        issues.counts,
        issues.named,
        images,
    )


def _text_columns(source: HFSource, split: HFSplit) -> tuple[list[str], Any]:
    """The caption columns' names and a table of them and the image's name."""
    schema = hf_data.read_schema(source, split)
    where = f"split {split.name!r} of {source.describe()} (shard {source.relative(split.files[0])})"
    hf_data.require_columns(where, schema.names, {"image": COLUMNS["image"]})
    columns = caption_columns(where, schema)
    name_column = next((c for c in NAME_COLUMNS if c in schema.names), "image.path")
    table = hf_data.read_columns(source, split, [*columns, name_column])
    return columns, table.rename_columns([*columns, "name"])


def _image_names(tables: dict[str, tuple[list[str], Any]]) -> dict[str, list[str]]:
    """Each row's image name: the stored file name (its last path part) when every row has a
    distinct one, else ``<split>-<row>.jpg``."""
    stored = {
        role: [Path(str(n)).name if n else "" for n in t["name"].to_pylist()]
        for role, (_, t) in tables.items()
    }
    every = [n for names in stored.values() for n in names]
    if all(every) and len(set(every)) == len(every):
        return stored
    return {role: [f"{role}-{row:05d}.jpg" for row in range(len(names))] for role, names in stored.items()}


def _captions(where: str, name: str, texts: list[Any], issues: Issues) -> list[tuple[list[str], str]]:
    """``(tokens, caption as written)`` of each non-empty caption; an empty one is reported as
    the token file's empty caption line is."""
    kept = []
    for k, text in enumerate(texts):
        tokens = tokenize(text) if isinstance(text, str) else []
        if not tokens:
            issues.report("empty_captions", f"{where}: caption {k} of {name} is empty ({text!r})")
            continue
        kept.append((tokens, text.strip()))
    return kept
