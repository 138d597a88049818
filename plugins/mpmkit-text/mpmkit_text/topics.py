"""Topics from a fitted model, scored by one shared code path (MPM and LDA alike).

The paper's rule (REFERENCE.md) for MPM: in each test document every word goes to its
argmax local topic k; local topic k maps to the global cluster argmax_l r_kl; words are
pooled per global cluster; the top 10 words per cluster by tf-idf across clusters
(:func:`~mpmkit_text.coherence.tfidf_topics`) form the corpus-level topics; clusters that
received no word are unused and excluded. :func:`score_topics` then computes UMass and NPMI
on the reference (test) documents for *any* topic list, so LDA is scored by the same code, under
one of the coherence protocols of :mod:`mpmkit_text.coherence` (:func:`score_all_protocols`: all).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Mapping, Sequence

import numpy as np

from .coherence import MEASURES, PROTOCOLS, coherence_protocol, tfidf_topics


def pool_words(words: Sequence[Sequence[str]], local: Sequence[Sequence[int]],
               cluster_of: Sequence[Sequence[int]], tf: str = "count") -> tuple[dict[int, Counter], dict[int, set]]:
    """Pool each document's words into global clusters.

    ``words[i][j]``: word j of document i; ``local[i][j]``: its argmax local topic k;
    ``cluster_of[i][k]``: the global cluster of local topic k. Returns (cluster → word
    counts, cluster → set of contributing document indices). ``tf="count"`` (the paper's
    rule): a word counts once per occurrence; ``tf="docs"``: once per document that puts it
    into the cluster (repeats of a word inside one document add nothing).
    """
    if tf not in ("count", "docs"):
        raise ValueError(f"tf must be 'count' or 'docs', got {tf!r}")
    pooled: dict[int, Counter] = defaultdict(Counter)
    docs: dict[int, set] = defaultdict(set)
    for i, (ws, ks) in enumerate(zip(words, local)):
        if len(ws) != len(ks):
            raise ValueError(f"document {i}: {len(ws)} words but {len(ks)} topic assignments")
        seen = set()
        for w, k in zip(ws, ks):
            c = int(cluster_of[i][int(k)])
            if tf == "count" or (c, w) not in seen:
                pooled[c][w] += 1
                seen.add((c, w))
            docs[c].add(i)
    return dict(pooled), dict(docs)


def score_topics(topics: Mapping | Sequence, reference: Sequence[Sequence[str]],
                 protocol: str = "document") -> dict[str, float]:
    """UMass and NPMI (mean and max over topics, NaN topics skipped) on ``reference`` token lists.

    ``protocol``: how co-occurrences are counted and smoothed, a key of
    :data:`~mpmkit_text.coherence.PROTOCOLS` (``"document"``: whole test documents, UMass with +1;
    ``"gensim"``: gensim's ``u_mass`` and ``c_npmi`` with its 10-token sliding windows).
    A topic scores NaN when fewer than two of its words occur in the reference documents.
    """
    items = list(topics.values()) if isinstance(topics, Mapping) else list(topics)
    out: dict[str, float] = {"n_topics": len(items)}
    scores = coherence_protocol(items, reference, protocol) if items else {m: np.zeros(0) for m in MEASURES}
    for measure in MEASURES:
        raw = np.asarray(scores[measure], np.float64)
        s = raw[np.isfinite(raw)]
        out[f"{measure}_mean"] = float(s.mean()) if s.size else float("nan")
        out[f"{measure}_max"] = float(s.max()) if s.size else float("nan")
        out[f"{measure}_per_topic"] = [float(v) for v in raw]  # aligned with the topics, NaN kept
    return out


def score_all_protocols(topics: Mapping | Sequence, reference: Sequence[Sequence[str]],
                        primary: str = "document") -> dict[str, float]:
    """:func:`score_topics` under every protocol.

    Keys: ``n_topics``; the ``primary`` protocol's ``umass_mean``, ``umass_max``, ``npmi_mean``,
    ``npmi_max`` and ``*_per_topic`` unprefixed; every protocol's means and maxima (the primary's
    too) as ``{protocol}_{measure}_{mean|max}``, with per-topic lists as
    ``{protocol}_{measure}_per_topic``.
    """
    if primary not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {tuple(PROTOCOLS)}, got {primary!r}")
    out: dict = {}
    for protocol in PROTOCOLS:
        s = score_topics(topics, reference, protocol)
        out["n_topics"] = s.pop("n_topics")
        if protocol == primary:
            out.update(s)
        out.update({f"{protocol}_{k}": v for k, v in s.items()})
    return out


def rank_words(p_wt: np.ndarray, p_w: np.ndarray | None = None, relevance: float | None = None,
               top_n: int = 10) -> list[list[int]]:
    """Top ``top_n`` word indices of each row of a topic-word distribution ``p_wt [T, V]``.

    ``relevance=None``: by probability (the usual top words). ``relevance=λ`` ∈ [0, 1]: by Sievert &
    Shirley's relevance λ log p(w | t) + (1 − λ) log(p(w | t) / p(w)), with ``p_w [V]`` the corpus's
    unigram distribution; λ = 1 is probability, λ = 0 lift. Ties keep the lower index.
    """
    p = np.asarray(p_wt, np.float64)
    p = p / np.clip(p.sum(1, keepdims=True), 1e-300, None)
    if relevance is None or relevance == 1:
        score = p
    else:
        if not 0 <= relevance <= 1 or p_w is None or not (np.asarray(p_w) > 0).all():
            raise ValueError(f"relevance needs λ in [0, 1] and a corpus distribution p_w > 0, got λ={relevance}")
        with np.errstate(divide="ignore"):
            score = np.log(p) - (1 - relevance) * np.log(np.asarray(p_w, np.float64))
        score = np.where(p > 0, score, -np.inf)
    return [np.argsort(-row, kind="stable")[:top_n].tolist() for row in score]


def unigram(ids: Sequence[Sequence[int]], vocab_size: int) -> np.ndarray:
    """The corpus's word distribution p(w) over ``vocab_size`` words (add-one smoothed)."""
    counts = np.ones(vocab_size)
    for d in ids:
        np.add.at(counts, np.asarray(d, np.int64), 1)
    return counts / counts.sum()


def bag_of_words(ids: Sequence[Sequence[int]], vocab_size: int):
    """Documents of vocabulary ids → a sparse ``[n_docs, V]`` count matrix."""
    from scipy.sparse import csr_matrix

    rows = np.concatenate([np.full(len(d), i) for i, d in enumerate(ids)]) if ids else np.zeros(0, int)
    cols = np.concatenate([np.asarray(d, np.int64) for d in ids]) if ids else np.zeros(0, int)
    x = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), vocab_size))
    x.sum_duplicates()
    return x


def lda_topics(train_ids, test_ids, vocab: Sequence[str], n_topics: int, seed: int, max_iter: int = 50,
               top_n: int = 10, tf: str = "count", min_docs: int = 1, relevance: float | None = None,
               p_w: np.ndarray | None = None) -> dict:
    """scikit-learn LDA on the same observations; topics two ways.

    ``topics``: the usual top ``top_n`` words of each topic-word distribution.
    ``topics_tfidf``: the MPM rule applied to LDA (each test word to its argmax topic
    ∝ θ_dt β_tw, pooled per topic, tf-idf top ``top_n``, unused topics excluded; ``tf`` as in
    :func:`pool_words`; topics pooled from fewer than ``min_docs`` test documents left out).
    ``relevance``: rank ``topics`` by relevance with that λ instead of probability (:func:`rank_words`,
    ``p_w`` = the training documents' unigram distribution, computed here unless passed).
    Also returns ``log_perplexity`` = log of sklearn's held-out perplexity (per word, from
    its variational bound) on the test documents.
    """
    from sklearn.decomposition import LatentDirichletAllocation

    V = len(vocab)
    x_train, x_test = bag_of_words(train_ids, V), bag_of_words(test_ids, V)
    lda = LatentDirichletAllocation(n_components=n_topics, learning_method="batch", max_iter=max_iter,
                                    random_state=seed)
    lda.fit(x_train)
    beta = lda.components_ / lda.components_.sum(1, keepdims=True)  # [T, V]
    if relevance is not None and p_w is None:
        p_w = unigram(train_ids, V)
    ranked = rank_words(beta, p_w, relevance, top_n)
    topics = {t: [vocab[v] for v in ranked[t]] for t in range(n_topics)}
    theta = lda.transform(x_test)  # [D, T]
    words = [[vocab[v] for v in d] for d in test_ids]
    local = [np.argmax(theta[i][:, None] * beta[:, np.asarray(d, np.int64)], 0) if len(d) else []
             for i, d in enumerate(test_ids)]
    ident = [list(range(n_topics))] * len(test_ids)
    pooled, docs = pool_words(words, local, ident, tf)
    tfidf = {t: w for t, w in tfidf_topics(pooled, top_n).items() if len(docs[t]) >= min_docs}
    return {"topics": topics, "topics_tfidf": tfidf,
            "log_perplexity": math.log(lda.perplexity(x_test))}
