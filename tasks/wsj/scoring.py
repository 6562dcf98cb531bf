"""Word and character error rates (jiwer, corpus level, in percent) and the transcripts file.

Corpus-level rates, as NIST's sclite and the paper report them: the edit operations of all
utterances summed, divided by the reference words (characters) of all utterances; not a mean
of per-utterance rates. CER counts the spaces between words as characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jiwer

from dsd import files


class Transcript(NamedTuple):
    """One evaluated utterance: what the record of a test sample holds."""

    id: str
    reference: str
    hypothesis: str


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """``{"wer": ..., "cer": ...}`` in percent over the whole set."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no utterances to score")
    return {
        "wer": 100.0 * jiwer.wer(list(references), list(hypotheses)),
        "cer": 100.0 * jiwer.cer(list(references), list(hypotheses)),
    }


def write_transcripts(path: Path, transcripts: Sequence[Transcript]) -> None:
    """A tab-separated file: ``id``, ``reference``, ``hypothesis``, one utterance a line."""
    lines = ["id\treference\thypothesis"] + [f"{t.id}\t{t.reference}\t{t.hypothesis}" for t in transcripts]
    files.atomic_write_text(Path(path), "\n".join(lines) + "\n")
