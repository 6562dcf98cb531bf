"""CTC helpers: the loss as DeepSpeech trains it, greedy decoding, and feasibility.

Greedy (best-path) decoding is what the paper scores (no language model): take the most likely
symbol per output frame, collapse runs of the same symbol, drop blanks.

Feasibility: CTC can emit a label sequence of length ``U`` with ``R`` adjacent repeats only if
the model gives at least ``U + R`` output frames (a repeat needs a blank between its copies).
An utterance below that has an infinite loss; we filter such utterances up front (and count
them) and keep ``zero_infinity=False``, so a NaN or infinite loss always means a real problem.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tasks.wsj.text import BLANK, decode


def ctc_loss(
    logits: torch.Tensor, output_lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor
) -> torch.Tensor:
    """Mean over utterances of each utterance's negative log-likelihood (summed over its frames).

    ``logits``: (batch, time, classes). Computed in float32 whatever the autocast dtype. This is
    the per-utterance total of warp-ctc / deepspeech.pytorch, averaged over the batch, not
    PyTorch's default ``reduction="mean"`` (which also divides by each transcript's length and
    so shrinks the gradient by about 100 for WSJ sentences).
    """
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (time, batch, classes)
    total = F.ctc_loss(
        log_probs,
        targets,
        output_lengths,
        target_lengths,
        blank=BLANK,
        reduction="sum",
        zero_infinity=False,
    )
    return total / logits.shape[0]


def greedy_decode(logits: torch.Tensor, output_lengths: torch.Tensor) -> list[str]:
    """Best-path transcripts of a batch: argmax per frame, collapse repeats, drop blanks."""
    best = logits.argmax(-1).cpu()
    lengths = output_lengths.cpu().tolist()
    texts = []
    for row, length in zip(best, lengths, strict=True):
        path = row[:length]
        if path.numel():
            keep = torch.ones_like(path, dtype=torch.bool)
            keep[1:] = path[1:] != path[:-1]
            path = path[keep]
        texts.append(decode(path.tolist()))
    return texts


def frames_needed(labels: Sequence[int]) -> int:
    """The fewest output frames CTC needs for ``labels``: their number plus adjacent repeats."""
    repeats = sum(1 for i in range(1, len(labels)) if labels[i] == labels[i - 1])
    return len(labels) + repeats
