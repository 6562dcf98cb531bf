"""Hugging Face datasets on local disk, as researchers already hold them: found, checked, read.

Many hold ImageNet, LibriSpeech or Flickr-8K not in the original layout but as the Hugging Face
copy they downloaded. Every task accepts three such forms for ``--data``; ``dsd.taskkit.hf_layout``
tells them apart (``detect``, re-exported here with its types, so that the tasks read a dataset
through this one module) without importing ``datasets`` (only reading a split does):

* a folder of parquet shards as the hub exports them: ``data/train-00000-of-00257.parquet``,
  ``<config>/<split>/0000.parquet``, ``<config>/<split>-00000-of-00024.parquet``, with or
  without the hub's ``README.md`` (whose ``configs:`` then say which files make which split);
* a hub cache snapshot: ``.../datasets--<org>--<name>/snapshots/<commit>/`` (the same parquet
  files, as links), or the ``datasets--<org>--<name>`` folder itself (its ``refs/main`` commit);
* a ``save_to_disk`` folder of a ``DatasetDict``: ``dataset_dict.json`` and one folder of Arrow
  files per split.

A split is read through ``datasets`` memory-mapped (``load_split``): a ``save_to_disk`` folder
in place; parquet shards are converted once into Arrow files under the task's cache folder (as
``load_dataset`` does), since parquet pages are compressed and cannot be read a row at a time.
Nothing holds a whole split in memory, and DataLoader workers share the mapped pages.

Bad input names its culprit: a truncated or unreadable shard (``check_shards``), a missing split
with the splits found (``resolve_splits``), columns other than a task expects with both lists
(``require_columns``); ``locate`` turns a row number into the shard and row within it, for the
tasks' messages about an entry that does not decode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsd.taskkit.environment import available_cores
from dsd.taskkit.hf_layout import (
    LABELS,
    PARQUET,
    SAVE_TO_DISK,
    HFDataError,
    HFSource,
    HFSplit,
    detect,
    resolve_splits,
)

#: The layout's names, re-exported: the tasks read a dataset through this one module.
__all__ = [
    "LABELS",
    "PARQUET",
    "SAVE_TO_DISK",
    "HFDataError",
    "HFSource",
    "HFSplit",
    "available_cores",
    "check_shards",
    "detect",
    "features_of",
    "human_bytes",
    "listing_key",
    "load_split",
    "locate",
    "map_rows",
    "read_columns",
    "read_schema",
    "require_columns",
    "resolve_splits",
    "schema_error",
    "stored_bytes",
    "total_bytes",
    "undecoded",
]

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

#: Below this many rows ``map_rows`` runs in-process (worker processes cost more than they save).
PARALLEL_MIN_ROWS = 2000
MAP_CHUNK = 512


def check_shards(source: HFSource, split: HFSplit) -> list[int]:
    """Rows per file of ``split``, read from each file's footer or header (cheap); a truncated or
    unreadable file, or one whose columns differ from the first's, raises naming it."""
    rows, columns = [], None
    for path in split.files:
        schema, count = _file_schema(source, path)
        names = list(schema.names)
        if columns is not None and names != columns:
            raise HFDataError(
                f"shard {source.relative(path)} has columns {', '.join(names)}, unlike the other "
                f"shards of split {split.name!r} ({', '.join(columns)}); the shards are of different datasets"
            )
        columns = names
        rows.append(count)
    return rows


def read_schema(source: HFSource, split: HFSplit) -> pa.Schema:
    """The Arrow schema of the split's first file (its Hugging Face features in the metadata)."""
    return _file_schema(source, split.files[0])[0]


def _file_schema(source: HFSource, path: Path) -> tuple[pa.Schema, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise HFDataError(f"shard {source.relative(path)} of {source.describe()} is missing")
    try:
        if source.form == PARQUET:
            meta = pq.read_metadata(path)
            return meta.schema.to_arrow_schema(), meta.num_rows
        with pa.memory_map(str(path)) as mapped:
            table = pa.ipc.open_stream(mapped).read_all()
            return table.schema, table.num_rows
    except (OSError, pa.ArrowException) as err:
        raise HFDataError(
            f"shard {source.relative(path)} of {source.describe()} cannot be read: truncated or not a "
            f"{'parquet' if source.form == PARQUET else 'Arrow'} file ({err}). Download or copy it again"
        ) from None


def features_of(schema: pa.Schema) -> dict[str, Any]:
    """Column -> its ``datasets`` feature (``ClassLabel``, ``Image``, ``Audio``, ``Value``...)."""
    import datasets

    return dict(datasets.Features.from_arrow_schema(schema))


def require_columns(where: str, found: Sequence[str], expected: Mapping[str, str]) -> None:
    """Refuse a schema that lacks an expected column, listing the columns found and expected."""
    missing = [name for name in expected if name not in found]
    if missing:
        raise schema_error(where, found, expected, missing)


def schema_error(
    where: str, found: Sequence[str], expected: Mapping[str, str], missing: Sequence[str]
) -> HFDataError:
    """The error for a schema without the ``missing`` columns: the columns found and expected."""
    wants = "; ".join(f"{name} ({what})" for name, what in expected.items())
    return HFDataError(
        f"{where} has columns {', '.join(found) or 'none'}, without {', '.join(missing)}; expected: {wants}"
    )


def locate(source: HFSource, split: HFSplit, rows_per_file: Sequence[int], row: int) -> str:
    """``data/train-00001-of-00003.parquet row 7``: where a split's row lies (row within its file)."""
    for path, count in zip(split.files, rows_per_file, strict=True):
        if row < count:
            return f"{source.relative(path)} row {row}"
        row -= count
    raise IndexError(f"row {row} beyond split {split.name!r}")


def listing_key(source: HFSource, splits: Sequence[HFSplit]) -> str:
    """Hash of every file's name, size and modification time: changes whenever the files do."""
    digest = hashlib.sha256(b"hf listing v1\n")
    for split in splits:
        for path in split.files:
            stat = path.stat()
            digest.update(
                f"{split.name}\t{source.relative(path)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()[:20]


def total_bytes(splits: Sequence[HFSplit]) -> int:
    return sum(path.stat().st_size for split in splits for path in split.files)


def human_bytes(size: float) -> str:
    """``1.4 GB``, ``37 MB``, ``12 kB``: a size for people."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{int(size)} B"


def read_columns(source: HFSource, split: HFSplit, columns: Sequence[str]) -> pa.Table:
    """Only ``columns`` of a split, read straight from its files without ``datasets`` and without
    touching the others (image or audio bytes stay on disk): text, labels, ids. A dotted name
    (``image.path``) reads one field of a struct column."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = []
    for path in split.files:
        try:
            if source.form == PARQUET:
                table = pq.read_table(path, columns=list(columns))
                cells = list(table.columns)
            else:
                table = pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
                cells = [
                    pc.struct_field(table[c.split(".")[0]], c.split(".", 1)[1]) if "." in c else table[c]
                    for c in columns
                ]
        except (OSError, KeyError, pa.ArrowException) as err:
            raise HFDataError(
                f"shard {source.relative(path)} of {source.describe()} cannot be read ({err})"
            ) from None
        tables.append(pa.table(cells, names=list(columns)))
    return pa.concat_tables(tables)


# ---------------------------------------------------------------------- reading
def load_split(source: HFSource, split: HFSplit, cache_dir: Path, workers: int = 1) -> datasets.Dataset:
    """The split as a memory-mapped ``datasets.Dataset``, read offline: a save_to_disk split in
    place, parquet shards converted once into Arrow files under ``cache_dir`` (reused after), by
    ``workers`` processes (0: one per core). A shard that breaks the conversion is named."""
    import datasets

    if source.form == SAVE_TO_DISK:
        try:
            return datasets.load_from_disk(str(split.folder), keep_in_memory=False)
        except Exception as err:  # datasets and pyarrow raise many types for a broken file
            raise HFDataError(f"split {split.name!r} of {source.describe()} cannot be read ({err})") from None
    files = [str(p) for p in split.files]
    workers = workers or available_cores()
    try:
        return datasets.load_dataset(
            "parquet",
            data_files={"train": files},
            split="train",
            cache_dir=str(Path(cache_dir) / "hf-arrow"),
            num_proc=workers if 1 < workers <= len(files) else None,
        )
    except Exception as err:  # find the shard that broke the conversion, else report the error
        for path in split.files:
            _read_through(source, path)
        raise HFDataError(
            f"split {split.name!r} of {source.describe()} could not be converted "
            f"({type(err).__name__}: {err})"
        ) from None


def _read_through(source: HFSource, path: Path) -> None:
    """Read every page of one parquet shard; raise naming it when one is corrupt."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for _ in pq.ParquetFile(path).iter_batches(batch_size=256):
            pass
    except (OSError, pa.ArrowException) as err:
        raise HFDataError(
            f"shard {source.relative(path)} of {source.describe()} is corrupt ({err}). "
            "Download or copy it again"
        ) from None


def undecoded(dataset: datasets.Dataset, columns: Sequence[str]) -> datasets.Dataset:
    """``dataset`` with only ``columns``, its images and audio left as stored bytes: the tasks
    decode them themselves (with PIL, and soundfile: ``datasets``' audio decoder needs
    torchcodec). Changes the features only; the mapped files stay as they are."""
    dataset = dataset.select_columns(list(columns))
    for name, feature in dataset.features.items():
        if getattr(feature, "decode", False):
            dataset = dataset.cast_column(name, type(feature)(decode=False))
    return dataset


def stored_bytes(value: Any) -> bytes | None:
    """The encoded bytes of an image or audio cell (``{"bytes", "path"}`` or raw bytes); a cell
    without bytes but with a path to a file that exists gives that file's bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return bytes(value["bytes"])
        path = value.get("path")
        if path and Path(path).is_file():
            return Path(path).read_bytes()
    return None


def _map_chunk(args: tuple[datasets.Dataset, int, int, Callable[[Any], Any]]) -> list[Any]:
    dataset, start, stop, fn = args
    return [fn(dataset[row]) for row in range(start, stop)]


def map_rows(dataset: datasets.Dataset, fn: Callable[[Any], Any], workers: int = 0) -> list[Any]:
    """``fn(row)`` for every row in order, in ``workers`` processes (0: one per core) for a large
    split (``fn`` a module-level function; the mapped dataset travels to them by its file names)."""
    workers = workers or available_cores()
    n = len(dataset)
    if workers <= 1 or n < PARALLEL_MIN_ROWS:
        return _map_chunk((dataset, 0, n, fn))
    jobs = [(dataset, start, min(n, start + MAP_CHUNK), fn) for start in range(0, n, MAP_CHUNK)]
    out: list[Any] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_map_chunk, jobs):
            out.extend(part)
    return out
