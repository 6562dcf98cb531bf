"""What a figure shows, written into the figure itself, so the report page never guesses from names.

Whoever draws a PNG into ``<results>/figures/`` (the report's curves, histograms and sweep plots,
a task's own figures such as the captioner's Figure 3 analog) stores a ``FigureEntry`` in it: what
the figure shows (``kind``), the study it belongs to (``RunRecord.study_key``) or the sweep, the
seed, a caption. It travels as one PNG text chunk (keyword ``dsd-figure``, ASCII JSON), which image
viewers ignore and every copy of the file keeps; there is no index beside the figures to go stale.
The page places each figure by its entry; a PNG without one is still shown, among the figures no
study claims.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dsd.files import atomic_write_bytes

CURVES, HISTOGRAMS, SWEEP, TASK, FOREST = "curves", "histograms", "sweep", "task", "forest"
KEYWORD = b"dsd-figure"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class FigureEntry:
    """What one figure shows."""

    kind: str  # CURVES, HISTOGRAMS, SWEEP, TASK or FOREST (every study's gains, atop the page)
    caption: str
    study: str = ""  # the study's key (curves, histograms, a task's figure of one study)
    sweep: str = ""  # the sweep's key (SWEEP)
    seed: int | None = None  # the seed a figure of one run shows
    task: str = ""  # the task that drew it (TASK)
    text: str = ""  # a markdown file beside the figure, shown with it (a table of captions)
    standin: bool = False  # measured on a stand-in
    file: str = ""  # the name it was drawn as (set when written): a copy renamed by hand is not it


def _chunks(png: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, data) of every chunk of a PNG; ``ValueError`` when it is not one."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    at = len(PNG_SIGNATURE)
    while at + 8 <= len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        if len(data) != length:
            raise ValueError("a truncated PNG file")
        yield kind, data
        at += 12 + length


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_entry(png: bytes, entry: FigureEntry) -> bytes:
    """``png`` holding ``entry`` (in place of any entry it held)."""
    text = KEYWORD + b"\0" + json.dumps(dataclasses.asdict(entry), sort_keys=True).encode("ascii")
    out = [PNG_SIGNATURE]
    for kind, data in _chunks(png):
        if kind == b"tEXt" and data.startswith(KEYWORD + b"\0"):
            continue
        if kind == b"IEND":
            out.append(_chunk(b"tEXt", text))
        out.append(_chunk(kind, data))
    return b"".join(out)


def write_figure(path: Path, png: bytes, entry: FigureEntry | None) -> Path:
    """Write ``png`` to ``path`` atomically, holding ``entry`` (for this file's name) when given."""
    path = Path(path)
    atomic_write_bytes(
        path, png if entry is None else with_entry(png, dataclasses.replace(entry, file=path.name))
    )
    return path


def tag_figure(path: Path, entry: FigureEntry) -> None:
    """Store ``entry`` in the PNG at ``path`` (a figure another program wrote)."""
    write_figure(path, Path(path).read_bytes(), entry)


def read_entry(path: Path) -> FigureEntry | None:
    """The entry a PNG holds, or None (no entry, an entry written for another file name, not a
    PNG, or an unreadable one)."""
    try:
        for kind, data in _chunks(Path(path).read_bytes()):
            if kind == b"tEXt" and data.startswith(KEYWORD + b"\0"):
                payload = json.loads(data[len(KEYWORD) + 1 :].decode("ascii"))
                known = {f.name for f in dataclasses.fields(FigureEntry)}
                entry = FigureEntry(**{k: v for k, v in payload.items() if k in known})
                return entry if entry.file == Path(path).name else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return None
