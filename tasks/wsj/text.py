"""The 29 CTC output symbols and the mapping between transcripts and label ids.

DeepSpeech's English output alphabet: the CTC blank (id 0), space, ``a``-``z`` and the
apostrophe. Every corpus is normalised into it at preparation time (``tasks.wsj.wsj_text`` for
WSJ, lower-casing for LibriSpeech); a transcript that still holds another character is filtered
out of training and counted (``SpeechDataset.issues``), never silently changed.
"""

from __future__ import annotations

from collections.abc import Iterable

BLANK = 0
#: Index = label id. "_" stands for the blank and never appears in a transcript.
SYMBOLS = "_ abcdefghijklmnopqrstuvwxyz'"
NUM_CLASSES = len(SYMBOLS)  # 29
_IDS = {ch: i for i, ch in enumerate(SYMBOLS) if i != BLANK}


def outside_alphabet(text: str) -> set[str]:
    """Characters of ``text`` that have no label (the blank's ``_`` included)."""
    return {ch for ch in text if ch not in _IDS}


def clean_spaces(text: str) -> str:
    """Single spaces between words, none at either end."""
    return " ".join(text.split())


def encode(text: str) -> list[int]:
    """Label ids of a transcript; raises ``ValueError`` naming any character outside the alphabet."""
    bad = outside_alphabet(text)
    if bad:
        raise ValueError(f"transcript {text!r} has characters outside the alphabet: {sorted(bad)}")
    return [_IDS[ch] for ch in text]


def decode(ids: Iterable[int]) -> str:
    """The text of a label sequence (blanks, if any, are dropped)."""
    return "".join(SYMBOLS[i] for i in ids if i != BLANK)
