"""Topic coherence (UMass, NPMI) over a reference corpus, and tf-idf topic words.

Counting units. With ``window=None`` (default) a unit is a whole reference
document; with ``window=w`` a unit is a sliding window of ``w`` consecutive
tokens: a document of ``L >= w`` tokens gives the ``L - w + 1`` windows
starting at tokens ``0 .. L - w``; a shorter document (also an empty one) is a
single window holding all its tokens. Windows slide over the token sequence as
given, so tokens that are not topic words (stop words, punctuation) still take
up room in a window. ``D(w)`` is the number of units containing ``w``,
``D(w, v)`` the number containing both, ``N`` the number of units. With
``sliding="boolean"`` (default) a window contains ``w`` iff one of its tokens
is ``w``; ``sliding="gensim"`` reproduces gensim 4's incremental bookkeeping,
which drops ``w`` from a window when a copy of ``w`` leaves at the left edge
even if another copy is still inside (so its counts are never larger; they are
equal when no word repeats within a window). A topic is a list of words in
rank order (best first).

- UMass (Mimno et al. 2011), ``umass="mimno"`` (default): mean over the
  ``M(M-1)/2`` pairs ``i > j`` of ``log((D(w_i, w_j) + 1) / D(w_j))``, natural
  log; ``w_j`` is the higher-ranked word.
- UMass, ``umass="eps"`` (gensim's ``u_mass``): the same pairs and mean, of
  ``log((D(w_i, w_j)/N + eps) / (D(w_j)/N))`` with ``eps = 1e-12`` unless
  given; a pair that never co-occurs scores about ``log(eps) = -27.6``.
- NPMI (Bouma 2009) with ``P(w) = D(w)/N`` and ``P(w, v) = D(w, v)/N``: mean
  over unordered pairs of ``log(P(w,v) / (P(w) P(v))) / -log P(w,v)``. With
  ``eps=None`` (default) a pair that never co-occurs scores exactly -1 and a
  pair present in every unit scores 1. With ``eps`` a float, gensim's form
  ``log((P(w,v) + eps) / (P(w) P(v))) / -log(P(w,v) + eps)`` is used (gensim
  takes ``eps = 1e-12``; never co-occurring pairs then score above -1).
  ``npmi_unseen=0.0`` scores a never co-occurring pair 0 instead of -1 in the
  exact form (the convention of Card et al.'s Scholar code, copied by many
  neural-topic-model evaluations: an unseen pair is "no evidence", not
  "perfectly exclusive").

Protocols (:data:`PROTOCOLS`, used by :func:`coherence_protocol` and the
``ap-topics`` family's ``coherence_protocol`` key) fix these choices per
measure:

- ``"document"``: whole-document units; UMass ``"mimno"`` (+1 smoothing);
  NPMI with the exact -1 / 1 conventions.
- ``"gensim"``: what gensim 4's ``CoherenceModel`` computes with
  ``coherence="u_mass"`` (corpus = bag of words of the reference documents)
  and ``coherence="c_npmi"`` (texts = the reference token lists, default
  ``window_size=10``): UMass ``"eps"`` on whole-document units; NPMI on
  sliding windows of 10 tokens, ``sliding="gensim"``, ``eps = 1e-12``.
- ``"scholar"``: as ``"document"``, except that an NPMI pair that never
  co-occurs scores 0 (``npmi_unseen=0``), as in the Scholar-derived codes
  that many neural topic model papers report NPMI with. UMass is the same as
  ``"document"``'s.
  Cross-checked against gensim 4.4.0 (to 1e-15 on 40 random small corpora
  with empty and short documents, and on the hand cases of the tests). One
  difference: words found in no reference document are dropped here (see
  below), where gensim scores a UMass pair conditioned on such a word 0 and
  returns an infinite NPMI.

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
UMASS_FORMS = ("mimno", "eps")
SLIDING = ("boolean", "gensim")
GENSIM_EPS = 1e-12
#: protocol -> measure -> keyword arguments of :func:`coherence` (see the module docstring)
PROTOCOLS: dict[str, dict[str, dict]] = {
    "document": {"umass": {"window": None, "umass": "mimno"}, "npmi": {"window": None, "eps": None}},
    "gensim": {"umass": {"window": None, "umass": "eps", "eps": GENSIM_EPS},
               "npmi": {"window": 10, "eps": GENSIM_EPS, "sliding": "gensim"}},
    "scholar": {"umass": {"window": None, "umass": "mimno"}, "npmi": {"window": None, "eps": None, "npmi_unseen": 0.0}},
}


def _tokens(doc) -> list[str]:
    if isinstance(doc, str):
        return split_words(doc)
    if hasattr(doc, "text"):
        return split_words(doc.text)
    return list(doc)


def _prepare(topics, lowercase: bool) -> list[list[str]]:
    """Topics as lists, optionally lower-cased, repeats removed (first rank kept)."""
    return [list(dict.fromkeys(w.lower() if lowercase else w for w in t)) for t in topics]


def _gensim_windows(onehot, window):
    """Word presence per window as gensim 4's sliding-window accumulator tracks it.

    The first window's words are its distinct tokens; on each slide the token
    leaving at the left edge is marked absent (even when another copy of it is
    still inside the window) and then the token entering on the right is marked
    present. So word ``c`` is present in window ``s`` iff its latest "enter"
    event at or before ``s`` is not older than its latest "leave" event
    (position ``p`` enters at ``max(0, p - window + 1)`` and leaves at ``p + 1``;
    on the same slide the leave comes first).
    """
    L, c = onehot.shape
    n_win = L - window + 1
    pos = np.arange(L)
    enter = np.where(onehot, np.maximum(0, pos - window + 1)[:, None], -1)  # [L, c]
    leave = np.where(onehot & (pos + 1 < n_win)[:, None], (pos + 1)[:, None], -1)
    last_enter = np.full((n_win, c), -1, np.int64)
    last_leave = np.full((n_win, c), -1, np.int64)
    rows, cols = np.nonzero(enter >= 0)
    np.maximum.at(last_enter, (enter[rows, cols], cols), enter[rows, cols])
    rows, cols = np.nonzero(leave >= 0)
    np.maximum.at(last_leave, (leave[rows, cols], cols), leave[rows, cols])
    last_enter = np.maximum.accumulate(last_enter, 0)
    last_leave = np.maximum.accumulate(last_leave, 0)
    return (last_enter >= 0) & (last_enter >= last_leave)


def cooccurrence(words: list[str], documents: Iterable, lowercase: bool = False, window: int | None = None,
                 sliding: str = "boolean"):
    """``(N, D [V], C [V, V])``: unit counts of ``words`` and of their pairs.

    Units are whole documents (``window=None``) or sliding windows of
    ``window`` tokens (see the module docstring); ``C[i, i] = D[i]``.
    ``sliding="boolean"``: a word is in a window iff one of its tokens is;
    ``sliding="gensim"``: gensim 4's incremental bookkeeping
    (:func:`_gensim_windows`), which can miss a word repeated inside a window.
    """
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 or None, got {window}")
    if sliding not in SLIDING:
        raise ValueError(f"sliding must be one of {SLIDING}, got {sliding!r}")
    index = {w: i for i, w in enumerate(words)}
    V = len(words)
    df = np.zeros(V, np.int64)
    co = np.zeros((V, V), np.int64)
    n = 0
    for doc in documents:
        toks = _tokens(doc)
        if lowercase:
            toks = [x.lower() for x in toks]
        ids = np.fromiter((index.get(w, -1) for w in toks), np.int64, count=len(toks))
        L = len(ids)
        if window is None or L <= window:
            n += 1
            present = np.unique(ids[ids >= 0])
            df[present] += 1
            co[np.ix_(present, present)] += 1
            continue
        n_win = L - window + 1
        n += n_win
        rel = ids >= 0
        if not rel.any():
            continue
        cols, local = np.unique(ids[rel], return_inverse=True)
        onehot = np.zeros((L, len(cols)), np.int32)
        onehot[np.flatnonzero(rel), local] = 1
        if sliding == "boolean":
            cum = np.vstack([np.zeros((1, len(cols)), np.int32), np.cumsum(onehot, 0)])
            start = np.arange(n_win)
            present = (cum[start + window] - cum[start]) > 0  # [n_win, c]: word c in window s
        else:
            present = _gensim_windows(onehot.astype(bool), window)
        p = present.astype(np.int64)
        df[cols] += p.sum(0)
        co[np.ix_(cols, cols)] += p.T @ p
    return n, df, co


def _umass(ix, n, df, co, form="mimno", eps=None):
    if form == "mimno":
        vals = [math.log((co[ix[i], ix[j]] + 1) / df[ix[j]]) for i in range(len(ix)) for j in range(i)]
    else:
        e = GENSIM_EPS if eps is None else eps
        vals = [math.log((co[ix[i], ix[j]] / n + e) / (df[ix[j]] / n)) for i in range(len(ix)) for j in range(i)]
    return float(np.mean(vals))


def _npmi_pair(cij, di, dj, n, eps, unseen=-1.0):
    pij, pi, pj = cij / n, di / n, dj / n
    if eps is not None:
        return math.log((pij + eps) / (pi * pj)) / -math.log(pij + eps)
    if cij == 0:
        return unseen
    if cij == n:
        return 1.0
    return math.log(pij / (pi * pj)) / -math.log(pij)


def _npmi(ix, n, df, co, eps, unseen=-1.0):
    vals = [_npmi_pair(co[ix[i], ix[j]], df[ix[i]], df[ix[j]], n, eps, unseen)
            for i in range(len(ix)) for j in range(i + 1, len(ix))]
    return float(np.mean(vals))


def coherence(topics, documents, measure: str = "umass", lowercase: bool = False,
              eps: float | None = None, missing: str = "drop", window: int | None = None,
              umass: str = "mimno", sliding: str = "boolean", npmi_unseen: float = -1.0):
    """Per-topic coherence of ``topics`` on the reference ``documents``.

    ``topics``: a list of word lists (returns a float64 array) or a mapping
    cluster -> word list (returns a dict). ``documents``: strings (split with
    :func:`~mpmkit_text.words.split_words`), objects with ``.text``, or token
    lists. ``window``: count in whole documents (None) or in sliding windows of
    this many tokens (``sliding``: ``"boolean"`` or ``"gensim"``, see
    :func:`cooccurrence`); ``umass``: ``"mimno"`` (+1 smoothing) or ``"eps"``
    (gensim's ``u_mass``); ``npmi_unseen``: the exact NPMI of a pair that never co-occurs (-1, its
    limit, or 0 as in Scholar-derived codes; ignored when ``eps`` is given). See the module docstring for the formulas and
    conventions, and :func:`coherence_protocol` for the named protocols.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if umass not in UMASS_FORMS:
        raise ValueError(f"umass must be one of {UMASS_FORMS}, got {umass!r}")
    if npmi_unseen not in (-1.0, 0.0):
        raise ValueError(f"npmi_unseen must be -1.0 or 0.0, got {npmi_unseen!r}")
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    keys = list(topics) if isinstance(topics, Mapping) else None
    lists = _prepare(topics.values() if keys is not None else topics, lowercase)
    vocab = list(dict.fromkeys(w for t in lists for w in t))
    n, df, co = cooccurrence(vocab, documents, lowercase, window, sliding)
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
            scores.append(_umass(ix, n, df, co, umass, eps))
        else:
            scores.append(_npmi(ix, n, df, co, eps, npmi_unseen))
    if keys is not None:
        return dict(zip(keys, scores))
    return np.asarray(scores, np.float64)


def coherence_protocol(topics, documents, protocol: str = "document", lowercase: bool = False,
                       missing: str = "drop") -> dict:
    """``{"umass": scores, "npmi": scores}`` of ``topics`` under a named protocol.

    ``protocol``: a key of :data:`PROTOCOLS` (``"document"``, ``"gensim"`` or ``"scholar"``, see
    the module docstring). Scores are as returned by :func:`coherence`.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {tuple(PROTOCOLS)}, got {protocol!r}")
    documents = list(documents)
    return {m: coherence(topics, documents, m, lowercase=lowercase, missing=missing, **kw)
            for m, kw in PROTOCOLS[protocol].items()}


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
