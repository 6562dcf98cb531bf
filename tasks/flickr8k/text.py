"""Caption tokens and the vocabulary, as NeuralTalk prepares them.

Tokenization: lowercase, every ASCII punctuation character deleted, split on whitespace (the
rule of NeuralTalk's preprocessing, ``prepro.py``; Karpathy's ``dataset_flickr8k.json`` ships
tokens made the same way, and those are used as given). The vocabulary keeps the words seen at
least ``min_count`` times in the training captions (NeuralTalk's ``word_count_threshold``, 5),
sorted by count then alphabetically so that it never depends on file order, after four special
tokens: padding, start, end and the unknown word (rarer words map to it, as in NeuralTalk 2;
NeuralTalk 1 dropped them).
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dsd.errors import ConfigError

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(4)

_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


def tokenize(caption: str) -> list[str]:
    """``"A dog, running."`` -> ``["a", "dog", "running"]`` (NeuralTalk's preprocessing)."""
    return caption.lower().translate(_DELETE_PUNCTUATION).split()


@dataclass(frozen=True)
class Vocabulary:
    """Words <-> ids. Ids 0..3 are ``<pad> <start> <end> <unk>``; words follow by frequency."""

    words: tuple[str, ...]
    counts: tuple[int, ...]  # training count of each entry (specials: see ``build``)

    @classmethod
    def build(cls, captions: Iterable[Sequence[str]], min_count: int = 5) -> Vocabulary:
        """Keep words seen ``>= min_count`` times in ``captions`` (the training split's).

        The counts of ``<end>`` (one per caption) and ``<unk>`` (the dropped words) are kept too:
        the output layer's bias starts at the log of these frequencies, as in NeuralTalk.
        """
        if min_count < 1:
            raise ConfigError(f"min_count must be at least 1, got {min_count}")
        counter: Counter[str] = Counter()
        sentences = 0
        for tokens in captions:
            counter.update(tokens)
            sentences += 1
        kept = sorted((w for w, n in counter.items() if n >= min_count), key=lambda w: (-counter[w], w))
        unknown = sum(n for w, n in counter.items() if n < min_count)
        words = (*SPECIALS, *kept)
        counts = (0, 0, sentences, unknown, *(counter[w] for w in kept))
        return cls(words, counts)

    def __post_init__(self) -> None:
        if self.words[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}, got {self.words[:4]}")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index  # type: ignore[attr-defined]

    def encode(self, tokens: Sequence[str], max_length: int = 0) -> list[int]:
        """Word ids of ``tokens`` (unknown words -> ``<unk>``), cut to ``max_length`` (0: no cut)."""
        index = self._index  # type: ignore[attr-defined]
        ids = [index.get(t, UNK_ID) for t in tokens]
        return ids[:max_length] if max_length > 0 else ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of ``ids`` up to the first ``<end>``, without padding or start tokens."""
        words = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i in (PAD_ID, START_ID):
                continue
            words.append(self.words[i])
        return words
