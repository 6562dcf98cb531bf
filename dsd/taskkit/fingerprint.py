"""What identifies a dataset, apart from where it lies.

A run's hash leaves every path out, so the same data moved elsewhere keeps its finished runs; it
must therefore include what the data *is*, or a different tree under the same name would reuse
them. Each task hashes what defines its data (file names relative to the root with their sizes,
class names, caption or transcript text, the annotation source, which inputs were skipped) into
a ``DataFingerprint``: a digest for the hash and a few facts for people. Computing one costs a
directory listing or a manifest read, which the task does anyway before training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dsd.records.run import FINGERPRINT_SHORT as SHORT_LENGTH

DIGEST_LENGTH = 16


@dataclass(frozen=True)
class DataFingerprint:
    """A dataset's identity: ``digest`` enters the run hash, ``facts`` the run record."""

    digest: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def short(self) -> str:
        """The first characters of the digest, as the tables show it."""
        return self.digest[:SHORT_LENGTH]


class FingerprintBuilder:
    """Feeds the lines that define a dataset into one digest, in a fixed order."""

    def __init__(self, kind: str) -> None:
        self._digest = hashlib.sha256(f"dsd data fingerprint v1\t{kind}\n".encode())

    def add(self, *fields: Any) -> FingerprintBuilder:
        """One line of tab-separated fields (the caller sorts what has no order of its own)."""
        self._digest.update(("\t".join(str(f) for f in fields) + "\n").encode("utf-8"))
        return self

    def add_all(self, rows: Iterable[Iterable[Any]]) -> FingerprintBuilder:
        for row in rows:
            self.add(*row)
        return self

    def finish(self, **facts: Any) -> DataFingerprint:
        return DataFingerprint(self._digest.hexdigest()[:DIGEST_LENGTH], facts)


#: How many names of skipped inputs a run record keeps per kind (the count is always exact).
SKIPPED_KEPT = 100


def skipped_record(skipped: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """``{kind: {"count": n, "first": [up to SKIPPED_KEPT names]}}`` for the run record."""
    return {
        kind: {"count": len(names), "first": list(names[:SKIPPED_KEPT])}
        for kind, names in sorted(skipped.items())
        if names
    }
