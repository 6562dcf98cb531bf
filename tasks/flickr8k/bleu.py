"""Corpus BLEU-1..4 of captions against all references of each image, with sacrebleu.

The paper scored NeuralTalk with ``multi-bleu.perl`` on the test split: whitespace tokens, every
reference of an image at once, brevity penalty from the closest reference length, no smoothing.
sacrebleu does the same with ``tokenize="none"`` (our captions are already NeuralTalk-tokenized:
lowercase, punctuation removed) and ``smooth_method="none"``; BLEU-n is its cumulative score with
``max_ngram_order=n`` (geometric mean of the 1..n-gram precisions times the brevity penalty).
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU

TOKENIZE = "none"
SMOOTH = "none"
DESCRIPTION = (
    "sacrebleu corpus BLEU-1..4 (tokenize=none over NeuralTalk tokens: lowercase, punctuation removed; "
    "smooth=none; all references of each image), as multi-bleu.perl"
)


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-image reference lists -> sacrebleu's streams (stream k = every image's k-th reference;
    ``None`` where an image has fewer references, which sacrebleu skips)."""
    width = max((len(r) for r in references), default=0)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """``{"bleu1": ..., "bleu4": ...}`` (0-100) of space-joined hypotheses against references."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if any(len(r) == 0 for r in references):
        raise ValueError("every hypothesis needs at least one reference")
    streams = reference_streams(references)
    scores = {}
    for n in range(1, 5):
        metric = BLEU(tokenize=TOKENIZE, smooth_method=SMOOTH, max_ngram_order=n)
        scores[f"bleu{n}"] = float(metric.corpus_score(list(hypotheses), streams).score)
    return scores
