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
    tests = {  # each filter, the option that sets it, and how to relax it
        "min_count": (lambda w, c: c >= min_count, f"min_count={min_count}: lower it"),
        "max_df": (lambda w, c: c <= max_df * n, f"max_df={max_df}: raise it towards 1"),
        "stopwords": (lambda w, c: w not in stop, "stopwords=true: set stopwords=false"),
        "alpha_only": (lambda w, c: not alpha_only or (w.isalpha() and len(w) > 1),
                       "alpha_only=true: set alpha_only=false"),
    }
    keep = sorted(w for w, c in df.items() if all(t(w, c) for t, _ in tests.values()))
    if not keep:
        from mpmkit.errors import DataError

        # the filters that remove words the others would keep are the ones to relax
        blame = [fix for key, (t, fix) in tests.items()
                 if any(not t(w, c) and all(o(w, c) for k, (o, _) in tests.items() if k != key) for w, c in df.items())]
        raise DataError(f"empty vocabulary from {n} training documents with {len(df)} distinct words; "
                        + (f"relax {'; or '.join(blame)}" if blame else
                           "the training documents have no words" if not df else
                           "no one filter is to blame, relax several: " + "; ".join(f for _, f in tests.values())))
    return Vocabulary(keep)
