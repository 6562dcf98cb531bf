"""Which Hugging Face dataset a folder holds, in which form, with which splits: names only.

``detect`` tells the three forms ``--data`` accepts apart (parquet shards as the hub exports
them, with or without the hub's ``README.md`` configs; a hub cache snapshot; a ``save_to_disk``
folder) and lists each config's splits and files, without importing ``datasets`` and without
opening a shard; ``resolve_splits`` picks the task's splits or lists the ones found. Reading the
files is ``dsd.taskkit.hf_data``'s job.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsd.errors import DataError
from dsd.files import JSONFileError, read_json

PARQUET, SAVE_TO_DISK = "parquet", "save_to_disk"
LABELS = {PARQUET: "HF parquet", SAVE_TO_DISK: "HF save_to_disk"}
#: ``train-00000-of-00257.parquet`` and the hub's variants (``-<hash>`` suffixes, dotted splits).
_SHARD_NAME = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}(?:-[0-9a-f]+)?\.parquet$")
#: The folder name the hub puts shards in without naming a config (``data/train-*.parquet``).
_DATA_FOLDER = "data"


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
    try:
        payload = read_json(path)
    except ValueError as err:
        raise HFDataError(
            f"{path}: unreadable ({err.reason if isinstance(err, JSONFileError) else err})"
        ) from None
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
