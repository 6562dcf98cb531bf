"""Hugging Face datasets on local disk, as researchers already hold them: found, checked, read.

Many hold ImageNet, LibriSpeech or Flickr-8K not in the original layout but as the Hugging Face
copy they downloaded. Every task accepts three such forms for ``--data`` and tells them apart
here (``detect``), without importing ``datasets`` (``import dsd`` never loads it; only reading a
split does):

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

import glob
import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsd.errors import DataError

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

PARQUET, SAVE_TO_DISK = "parquet", "save_to_disk"
LABELS = {PARQUET: "HF parquet", SAVE_TO_DISK: "HF save_to_disk"}
#: ``train-00000-of-00257.parquet`` and the hub's variants (``-<hash>`` suffixes, dotted splits).
_SHARD_NAME = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}(?:-[0-9a-f]+)?\.parquet$")
#: The folder name the hub puts shards in without naming a config (``data/train-*.parquet``).
_DATA_FOLDER = "data"
#: Below this many rows ``map_rows`` runs in-process (worker processes cost more than they save).
PARALLEL_MIN_ROWS = 2000
MAP_CHUNK = 512


class HFDataError(DataError):
    """A Hugging Face dataset on disk that cannot be read as the task expects; the message names
    the shard, split or column and what was expected."""


@dataclass
class HFSplit:
    """One split: its files (parquet shards, or a ``save_to_disk`` split's Arrow files)."""

    name: str
    files: list[Path]
    folder: Path | None = None  # a save_to_disk split's folder


@dataclass
class HFSource:
    """A Hugging Face dataset found on disk: its form, where its files are, its splits."""

    root: Path  # as given
    base: Path  # where the files are: ``root``, or the hub cache's snapshot
    form: str  # PARQUET or SAVE_TO_DISK
    configs: dict[str, dict[str, HFSplit]]  # config ("" when unnamed) -> split -> files
    via: str = ""  # e.g. "hub cache snapshot 1a2b3c4d"
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``HF parquet`` or ``HF save_to_disk``: what the dataset labels and the banner say."""
        return LABELS[self.form]

    def describe(self) -> str:
        return f"{self.root}" + (f" ({self.via})" if self.via else "")

    def relative(self, path: Path) -> str:
        """A file's name below the dataset's folder (what messages and fingerprints show)."""
        try:
            return Path(os.path.relpath(path, self.base)).as_posix()
        except ValueError:
            return str(path)

    def found(self) -> str:
        """Every split found, by config: ``train, validation`` or ``clean: train.100, test; ...``."""
        parts = []
        for config, splits in self.configs.items():
            names = ", ".join(splits) or "none"
            parts.append(f"{config}: {names}" if config and len(self.configs) > 1 else names)
        return "; ".join(parts) or "none"


# ---------------------------------------------------------------------- detection
def detect(path: Path) -> HFSource | None:
    """The Hugging Face dataset at ``path``, or None when the folder holds none of the forms (the
    task then reads its original layout). Looks at names only; reads no shard."""
    root = Path(path).expanduser()
    if not root.is_dir():
        return None
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        return _save_to_disk(root)
    base, via = _hub_snapshot(root)
    if base is None:
        return None
    configs = _readme_configs(base) or _inferred_configs(base)
    if not configs:
        return None
    return HFSource(root, base, PARQUET, configs, via)


def _save_to_disk(root: Path) -> HFSource:
    configs: dict[str, dict[str, HFSplit]] = {"": {}}
    notes = []
    if (root / "dataset_dict.json").is_file():
        names = _read_json(root / "dataset_dict.json").get("splits", [])
        for name in names:
            folder = root / name
            configs[""][name] = HFSplit(name, _arrow_files(folder), folder)
    else:
        notes.append("a single Dataset saved alone (no splits): save the DatasetDict instead")
    return HFSource(root, root, SAVE_TO_DISK, configs, notes=notes)


def _arrow_files(folder: Path) -> list[Path]:
    state = folder / "state.json"
    if not state.is_file():
        raise HFDataError(
            f"{folder}/state.json is missing: {folder.parent} is a save_to_disk folder whose "
            f"dataset_dict.json lists split {folder.name!r}; save the DatasetDict again"
        )
    listed = _read_json(state).get("_data_files", [])
    return [folder / entry["filename"] for entry in listed]


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HFDataError(f"{path}: unreadable ({err})") from None
    if not isinstance(payload, dict):
        raise HFDataError(f"{path}: expected a JSON object")
    return payload


def _hub_snapshot(root: Path) -> tuple[Path | None, str]:
    """``(folder holding the files, how it was found)``: ``root`` itself, or the snapshot of a hub
    cache folder (``datasets--org--name``, its ``snapshots``, or one snapshot); (None, "") when
    ``root`` holds no parquet file."""
    repo = root.parent if root.name == "snapshots" else root
    if (repo / "snapshots").is_dir():
        snapshots = sorted(p for p in (repo / "snapshots").iterdir() if p.is_dir())
        ref = repo / "refs" / "main"
        wanted = ref.read_text().strip() if ref.is_file() else ""
        chosen = next((s for s in snapshots if s.name == wanted), None)
        if chosen is None and snapshots:
            chosen = max(snapshots, key=lambda s: s.stat().st_mtime)
        if chosen is None:
            return None, ""
        return chosen, f"hub cache snapshot {chosen.name[:8]}"
    if not any(_parquet_files(root)):
        return None, ""
    if root.parent.name == "snapshots":
        return root, f"hub cache snapshot {root.name[:8]}"
    return root, ""


def _parquet_files(base: Path) -> list[Path]:
    """Every ``*.parquet`` below ``base`` (links followed: a hub snapshot holds links), sorted."""
    found = []
    for folder, dirs, names in os.walk(base, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / n for n in names if n.endswith(".parquet") and not n.startswith(".")]
    return sorted(found)


def _readme_configs(base: Path) -> dict[str, dict[str, HFSplit]]:
    """The ``configs:`` of the hub's ``README.md`` front matter: config -> split -> files."""
    readme = base / "README.md"
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    if match is None:
        return {}
    import yaml

    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as err:
        raise HFDataError(f"{readme}: its front matter is not YAML ({err})") from None
    entries = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(entries, list):
        return {}
    entries = sorted(entries, key=lambda e: not (isinstance(e, dict) and e.get("default")))
    configs: dict[str, dict[str, HFSplit]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("config_name", "default"))
        splits = {}
        for split, patterns in _data_files(entry.get("data_files")).items():
            files = sorted({Path(p) for pat in patterns for p in glob.glob(str(base / pat), recursive=True)})
            splits[split] = HFSplit(split, [f for f in files if f.suffix == ".parquet"])
        configs[name] = splits
    return configs


def _data_files(spec: Any) -> dict[str, list[str]]:
    """A config's ``data_files`` (a pattern, a list of them, or ``[{split, path}, ...]``)."""
    if isinstance(spec, str):
        return {"train": [spec]}
    out: dict[str, list[str]] = {}
    for item in spec if isinstance(spec, list) else []:
        if isinstance(item, str):
            out.setdefault("train", []).append(item)
        elif isinstance(item, dict) and "split" in item:
            paths = item.get("path", [])
            out.setdefault(str(item["split"]), []).extend([paths] if isinstance(paths, str) else paths)
    return out


def _inferred_configs(base: Path) -> dict[str, dict[str, HFSplit]]:
    """Splits from the shards' names and folders, as the hub lays them out without a README."""
    configs: dict[str, dict[str, HFSplit]] = {}
    for path in _parquet_files(base):
        parts = path.relative_to(base).parts
        match = _SHARD_NAME.match(path.name)
        if match:
            split, config_parts = match["split"], parts[:-1]
        elif len(parts) > 1:
            split, config_parts = parts[-2], parts[:-2]
        else:
            split, config_parts = path.stem.split("-")[0], ()
        config = "/".join(p for p in config_parts if p != _DATA_FOLDER or len(config_parts) > 1)
        configs.setdefault(config, {}).setdefault(split, HFSplit(split, [])).files.append(path)
    return configs


# ---------------------------------------------------------------------- splits, shards, columns
def resolve_splits(source: HFSource, wanted: Mapping[str, Sequence[str]]) -> dict[str, HFSplit]:
    """The task's splits (role -> the names it may have, first preferred) from the first config
    that has them all; ``HFDataError`` listing the splits found otherwise."""
    for splits in source.configs.values():
        chosen = {}
        for role, names in wanted.items():
            name = next((n for n in names if n in splits and splits[n].files), None)
            if name is None:
                break
            chosen[role] = splits[name]
        else:
            return chosen
    looked = "; ".join(f"{role}: {' or '.join(names)}" for role, names in wanted.items())
    notes = "".join(f"; {note}" for note in source.notes)
    raise HFDataError(
        f"{source.describe()} ({source.label}) lacks a split the task needs (looked for {looked}); "
        f"splits found: {source.found()}{notes}"
    )


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


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
