"""The observation vocabulary of the topic model: which words are observations x_ij.

A word of a document (see :mod:`mpmkit_text.words`) is lower-cased and becomes an
observation when it is in the vocabulary; the vocabulary is built from the *training*
documents only:

- ``alpha_only``: only purely alphabetic words of at least two letters (punctuation,
  numbers and mixed tokens such as ``16-year`` pieces are dropped);
- ``stopwords``: scikit-learn's English stop-word list is removed;
- ``min_count``: a word must occur in at least this many training documents;
- ``max_df``: and in at most this fraction of them (1.0: no upper cut).

Words outside the vocabulary (stop words, rare or unseen words, punctuation) are *not*
observations: they are never predicted and never counted in perplexity, but they still
give context to the encoder, which always sees the whole (truncated) text. There is no
unknown-token class. The same vocabulary is used for LDA's bag of words, so both models
see exactly the same observations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable


def stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@dataclass
class Vocabulary:
    """Sorted observation words and their indices 0..V-1."""

    words: list[str]
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.index

    def lookup(self, words: Iterable[str]) -> tuple[list[int], list[int]]:
        """(positions in ``words`` that are observations, their vocabulary ids)."""
        pos, ids = [], []
        for j, w in enumerate(words):
            i = self.index.get(w.lower())
            if i is not None:
                pos.append(j)
                ids.append(i)
        return pos, ids


def build_vocabulary(documents: Iterable[Iterable[str]], min_count: int = 10, stopwords: bool = True,
                     alpha_only: bool = True, max_df: float = 1.0) -> Vocabulary:
    """Vocabulary from tokenised training ``documents`` (see the module docstring)."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    if not 0 < max_df <= 1:
        raise ValueError(f"max_df must be in (0, 1], got {max_df}")
    stop = stop_words() if stopwords else frozenset()
    df: Counter[str] = Counter()
    n = 0
    for doc in documents:
        n += 1
        df.update({w.lower() for w in doc})
    keep = sorted(w for w, c in df.items()
                  if c >= min_count and c <= max_df * n and w not in stop
                  and (not alpha_only or (w.isalpha() and len(w) > 1)))
    if not keep:
        raise ValueError(f"empty vocabulary from {n} training documents (min_count={min_count}, "
                         f"stopwords={stopwords}, alpha_only={alpha_only}, max_df={max_df}); lower min_count")
    return Vocabulary(keep)
