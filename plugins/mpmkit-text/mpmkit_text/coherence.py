"""Topic coherence (UMass, NPMI) over a reference corpus, and tf-idf topic words.

Counts are binary per document: ``D(w)`` is the number of reference documents
containing ``w``, ``D(w, v)`` the number containing both, ``N`` the number of
documents. A topic is a list of words in rank order (best first).

- UMass (Mimno et al. 2011): mean over the ``M(M-1)/2`` pairs ``i > j`` of
  ``log((D(w_i, w_j) + 1) / D(w_j))``, natural log; ``w_j`` is the
  higher-ranked word.
- NPMI (Bouma 2009) with ``P(w) = D(w)/N`` and ``P(w, v) = D(w, v)/N``: mean
  over unordered pairs of ``log(P(w,v) / (P(w) P(v))) / -log P(w,v)``. With
  ``eps=None`` (default) a pair that never co-occurs scores exactly -1 and a
  pair present in every document scores 1. With ``eps`` a float, gensim's form
  ``log((P(w,v) + eps) / (P(w) P(v))) / -log(P(w,v) + eps)`` is used (gensim
  takes ``eps = 1e-12``; never co-occurring pairs then score above -1).

Words are matched exactly (``lowercase=True`` lower-cases topics and
documents). Repeated topic words keep their first rank. Words found in no
reference document are dropped before scoring (``missing="drop"``) or raise
``KeyError`` (``missing="raise"``); a topic left with fewer than two words
scores NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from .words import split_words

MEASURES = ("umass", "npmi")


def _tokens(doc) -> list[str]:
    if isinstance(doc, str):
        return split_words(doc)
    if hasattr(doc, "text"):
        return split_words(doc.text)
    return list(doc)


def _prepare(topics, lowercase: bool) -> list[list[str]]:
    """Topics as lists, optionally lower-cased, repeats removed (first rank kept)."""
    return [list(dict.fromkeys(w.lower() if lowercase else w for w in t)) for t in topics]


def cooccurrence(words: list[str], documents: Iterable, lowercase: bool = False):
    """``(N, D [V], C [V, V])``: document counts of ``words`` and of their pairs."""
    index = {w: i for i, w in enumerate(words)}
    rows = []
    for doc in documents:
        toks = _tokens(doc)
        present = {index[w] for w in ((x.lower() for x in toks) if lowercase else toks) if w in index}
        row = np.zeros(len(words), np.int64)
        row[list(present)] = 1
        rows.append(row)
    b = np.stack(rows) if rows else np.zeros((0, len(words)), np.int64)
    return len(rows), b.sum(0), b.T @ b


def _umass(ix, n, df, co):
    vals = [math.log((co[ix[i], ix[j]] + 1) / df[ix[j]]) for i in range(len(ix)) for j in range(i)]
    return float(np.mean(vals))


def _npmi_pair(cij, di, dj, n, eps):
    pij, pi, pj = cij / n, di / n, dj / n
    if eps is not None:
        return math.log((pij + eps) / (pi * pj)) / -math.log(pij + eps)
    if cij == 0:
        return -1.0
    if cij == n:
        return 1.0
    return math.log(pij / (pi * pj)) / -math.log(pij)


def _npmi(ix, n, df, co, eps):
    vals = [_npmi_pair(co[ix[i], ix[j]], df[ix[i]], df[ix[j]], n, eps)
            for i in range(len(ix)) for j in range(i + 1, len(ix))]
    return float(np.mean(vals))


def coherence(topics, documents, measure: str = "umass", lowercase: bool = False,
              eps: float | None = None, missing: str = "drop"):
    """Per-topic coherence of ``topics`` on the reference ``documents``.

    ``topics``: a list of word lists (returns a float64 array) or a mapping
    cluster -> word list (returns a dict). ``documents``: strings (split with
    :func:`~mpmkit_text.words.split_words`), objects with ``.text``, or token
    lists. See the module docstring for the formulas and conventions.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    keys = list(topics) if isinstance(topics, Mapping) else None
    lists = _prepare(topics.values() if keys is not None else topics, lowercase)
    vocab = list(dict.fromkeys(w for t in lists for w in t))
    n, df, co = cooccurrence(vocab, documents, lowercase)
    index = {w: i for i, w in enumerate(vocab)}
    scores = []
    for t in lists:
        absent = [w for w in t if df[index[w]] == 0]
        if absent and missing == "raise":
            raise KeyError(f"words in no reference document: {absent}")
        ix = [index[w] for w in t if df[index[w]] > 0]
        if len(ix) < 2:
            scores.append(float("nan"))
        elif measure == "umass":
            scores.append(_umass(ix, n, df, co))
        else:
            scores.append(_npmi(ix, n, df, co, eps))
    if keys is not None:
        return dict(zip(keys, scores))
    return np.asarray(scores, np.float64)


def tfidf_topics(words_per_cluster: Mapping, top_n: int = 10, exclude: Iterable[str] = ()):
    """Top words per global cluster by tf-idf across clusters (the paper's rule).

    ``words_per_cluster``: cluster -> the words pooled into it (a list with
    repeats, or a word -> count mapping). Excluded words are removed first;
    clusters left empty are unused and dropped. With ``N`` used clusters,
    ``tf`` the count of a word in a cluster and ``df`` the number of used
    clusters holding it, ``score = tf * log(N / (1 + df))``; the ``top_n``
    highest are returned, ties broken by larger ``tf`` and then alphabetically.
    Note ``idf <= 0`` for words in at least ``N - 1`` clusters (always when
    ``N <= 2``); the rule is applied as stated all the same.
    """
    drop = set(exclude)
    counts = {}
    for c, ws in words_per_cluster.items():
        cnt = Counter(dict(ws)) if isinstance(ws, Mapping) else Counter(ws)
        cnt = Counter({w: k for w, k in cnt.items() if w not in drop and k > 0})
        if cnt:
            counts[c] = cnt
    n = len(counts)
    df = Counter(w for cnt in counts.values() for w in cnt)
    out = {}
    for c, cnt in counts.items():
        scored = [(tf * math.log(n / (1 + df[w])), tf, w) for w, tf in cnt.items()]
        scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
        out[c] = [w for _, _, w in scored[:top_n]]
    return out
