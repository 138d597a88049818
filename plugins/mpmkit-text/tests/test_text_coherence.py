"""UMass / NPMI against hand computations; tf-idf topic words on a hand case."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmkit_text.coherence import PROTOCOLS, coherence, coherence_protocol, cooccurrence, tfidf_topics

# N = 4; D(a)=3, D(b)=2, D(c)=2, D(d)=1; D(a,b)=2, D(a,c)=2, D(b,c)=1, D(a,d)=0
DOCS = ["a b c a", "a b", "a c .", "d"]


def test_counts():
    n, df, co = cooccurrence(["a", "b", "c", "d"], DOCS)
    assert n == 4
    assert df.tolist() == [3, 2, 2, 1]
    assert co[0, 1] == 2 and co[0, 2] == 2 and co[1, 2] == 1 and co[0, 3] == 0 and co[0, 0] == 3


def test_umass_hand_values():
    got = coherence([["b", "a", "c"], ["a", "d"], ["d", "a"], ["a", "b"]], DOCS, "umass")
    # [b, a, c]: log((D(a,b)+1)/D(b)), log((D(c,b)+1)/D(b)), log((D(c,a)+1)/D(a))
    want = [
        (math.log(3 / 2) + math.log(2 / 2) + math.log(3 / 3)) / 3,
        math.log(1 / 3),
        math.log(1 / 1),
        math.log(3 / 3),
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_npmi_hand_values():
    got = coherence([["a", "b"], ["a", "d"], ["b", "c"], ["a", "b", "c"]], DOCS, "npmi")
    ab = math.log(0.5 / (0.75 * 0.5)) / -math.log(0.5)  # = log(4/3) / log 2
    want = [ab, -1.0, 0.0, (ab + ab + 0.0) / 3]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # gensim-style epsilon instead of the -1 convention
    eps = 1e-12
    (ad,) = coherence([["a", "d"]], DOCS, "npmi", eps=eps)
    assert ad == pytest.approx(math.log(eps / (0.75 * 0.25)) / -math.log(eps))
    assert -1 < ad < -0.9
    # Scholar's convention: a never co-occurring pair scores 0, all other pairs unchanged
    got0 = coherence([["a", "b"], ["a", "d"], ["b", "c"], ["a", "b", "c", "d"]], DOCS, "npmi", npmi_unseen=0.0)
    np.testing.assert_allclose(got0, [ab, 0.0, 0.0, 2 * ab / 6], rtol=1e-12, atol=1e-12)
    # [a, b, c, d] under -1: pairs ab ac bc ad bd cd = ab, ab, 0, -1, -1, -1
    (full,) = coherence([["a", "b", "c", "d"]], DOCS, "npmi")
    assert full == pytest.approx((2 * ab - 3) / 6)
    with pytest.raises(ValueError, match="npmi_unseen"):
        coherence([["a", "b"]], DOCS, "npmi", npmi_unseen=0.5)
    # a pair in every document: NPMI = 1
    assert coherence([["x", "y"]], ["x y", "y x z"], "npmi")[0] == 1.0


def test_missing_words_duplicates_case_and_inputs():
    both = coherence([["a", "zzz", "b"], ["a", "b"]], DOCS, "npmi")
    assert both[0] == both[1]
    assert np.isnan(coherence([["a", "zzz"]], DOCS)[0])
    with pytest.raises(KeyError, match="zzz"):
        coherence([["a", "zzz"]], DOCS, missing="raise")
    assert coherence([["a", "b", "a"]], DOCS)[0] == coherence([["a", "b"]], DOCS)[0]
    assert np.isnan(coherence([["A", "B"]], DOCS)[0])  # exact match by default
    assert coherence([["A", "B"]], DOCS, lowercase=True)[0] == coherence([["a", "b"]], DOCS)[0]
    tokens = [d.split() for d in DOCS]

    class Doc:
        def __init__(self, text):
            self.text = text

    d1 = coherence({7: ["b", "a", "c"]}, tokens, "umass")
    d2 = coherence({7: ["b", "a", "c"]}, [Doc(t) for t in DOCS], "umass")
    assert list(d1) == [7] and d1 == d2
    with pytest.raises(ValueError):
        coherence([["a"]], DOCS, measure="cv")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.sampled_from("pqrst"), min_size=1, max_size=5), min_size=1, max_size=8))
def test_npmi_is_bounded_and_umass_nonpositive_for_first_pair(docs):
    words = ["p", "q", "r", "s", "t"]
    npmi = coherence([words], docs, "npmi")[0]
    assert np.isnan(npmi) or -1 - 1e-12 <= npmi <= 1 + 1e-12
    # scoring unseen pairs 0 instead of -1 can only raise a topic's mean, by 1/#pairs per unseen pair
    n, df, co = cooccurrence(words, docs)
    seen = [i for i in range(5) if df[i] > 0]
    pairs = [(i, j) for a, i in enumerate(seen) for j in seen[a + 1:]]
    zero = coherence([words], docs, "npmi", npmi_unseen=0.0)[0]
    if pairs:
        unseen = sum(co[i, j] == 0 for i, j in pairs)
        assert zero == pytest.approx(npmi + unseen / len(pairs), abs=1e-12)
    um = coherence([words], docs, "umass")[0]
    # (D(wi,wj)+1)/D(wj) <= (D(wj)+1)/D(wj) <= 2
    assert np.isnan(um) or um <= math.log(2) + 1e-12


def test_tfidf_topics_hand_case():
    clusters = {
        0: ["x", "x", "x", "y", "z"],
        1: ["y", "y", "w"],
        2: [],  # unused: excluded, does not count in N
        3: ["x", "v"],
    }
    # N = 3; idf = log(3 / (1 + df)): df=1 -> log(1.5) > 0, df=2 -> 0
    assert tfidf_topics(clusters) == {0: ["z", "x", "y"], 1: ["w", "y"], 3: ["v", "x"]}
    assert tfidf_topics(clusters, top_n=1) == {0: ["z"], 1: ["w"], 3: ["v"]}
    assert tfidf_topics(clusters, exclude=["z"]) == {0: ["x", "y"], 1: ["w", "y"], 3: ["v", "x"]}
    # counts instead of lists; a cluster emptied by exclusion is unused
    assert tfidf_topics({"a": {"p": 2, "q": 1}, "b": {"r": 5}, "c": {"s": 1}}, exclude=["s"]) == {
        "a": ["p", "q"], "b": ["r"]}  # N = 2: idf = log(2/2) = 0, ties broken by count
    # tf matters when idf > 0: score = tf * log(4 / 2) for a word in one of 4 clusters
    many = {0: ["k"] * 3 + ["m"], 1: ["n"], 2: ["o"], 3: ["m", "m"]}
    assert tfidf_topics(many)[0] == ["k", "m"]


# ----------------------------------------------------------------------------- windows, "gensim" protocol
# Sliding windows of 2 tokens (x is no topic word; the empty document is one window):
#   "a a b c"     -> [a a] [a b] [b c]
#   "c x a b a b" -> [c x] [x a] [a b] [b a] [a b]
#   "b"           -> [b]            (shorter than the window: one window)
#   ""            -> []             (one empty window)
# N = 10. Boolean presence: D(a)=6, D(b)=6, D(c)=2, D(a,b)=4, D(a,c)=0, D(b,c)=1.
# gensim's bookkeeping loses "a" in [a b] of the first document (the "a" leaving at the left edge
# marks "a" absent although a second "a" is still inside): D(a)=5, D(a,b)=3, the rest as above.
WDOCS = ["a a b c", "c x a b a b", "b", ""]


def test_sliding_window_counts_boolean_and_gensim():
    words = ["a", "b", "c"]
    n, df, co = cooccurrence(words, WDOCS, window=2)
    assert n == 10 and df.tolist() == [6, 6, 2]
    assert (co[0, 1], co[0, 2], co[1, 2]) == (4, 0, 1) and np.all(np.diag(co) == df)
    n, df, co = cooccurrence(words, WDOCS, window=2, sliding="gensim")
    assert n == 10 and df.tolist() == [5, 6, 2]
    assert (co[0, 1], co[0, 2], co[1, 2]) == (3, 0, 1)
    # window 3: "a a b c" -> [a a b] [a b c]; "c x a b a b" -> 4 windows; "b", "" -> 1 each
    n, df, co = cooccurrence(words, WDOCS, window=3)
    assert n == 8 and df.tolist() == [2 + 4, 2 + 3 + 1, 1 + 1]  # [c x a] [x a b] [a b a] [b a b]
    # a window at least as long as every document = whole-document counts
    assert cooccurrence(words, WDOCS, window=6)[1].tolist() == cooccurrence(words, WDOCS)[1].tolist()
    with pytest.raises(ValueError):
        cooccurrence(words, WDOCS, window=0)
    with pytest.raises(ValueError):
        cooccurrence(words, WDOCS, window=2, sliding="other")


def test_gensim_npmi_hand_values_and_gensim_reference():
    eps = 1e-12
    got = coherence([["a", "b", "c"], ["c", "a"]], WDOCS, "npmi", window=2, eps=eps, sliding="gensim")
    # N = 10; (a,b): P = 0.3 = P(a) P(b) / ... -> log((0.3 + eps) / (0.5 * 0.6)) / -log(0.3 + eps) ~ 0
    ab = math.log((0.3 + eps) / (0.5 * 0.6)) / -math.log(0.3 + eps)
    ac = math.log(eps / (0.5 * 0.2)) / -math.log(eps)  # never together: -1 + log(10) / -log(eps)
    bc = math.log((0.1 + eps) / (0.6 * 0.2)) / -math.log(0.1 + eps)
    np.testing.assert_allclose(got, [(ab + ac + bc) / 3, ac], rtol=1e-9)
    assert ac == pytest.approx(-1 + math.log(10) / -math.log(eps))
    # the same numbers from gensim 4.4.0: CoherenceModel(coherence="c_npmi", window_size=w,
    # texts=[d.split() for d in WDOCS]).get_coherence_per_topic()
    np.testing.assert_allclose(got, [-0.3319493042358413, -0.9166666666666667], rtol=1e-9)
    w3 = coherence([["a", "b", "c"], ["c", "a"]], WDOCS, "npmi", window=3, eps=eps, sliding="gensim")
    np.testing.assert_allclose(w3, [-0.06499583341024083, 3.847208450197668e-12], rtol=1e-6, atol=1e-15)
    p = coherence_protocol([["a", "b", "c"], ["c", "a"]], WDOCS, "gensim")  # window 10
    np.testing.assert_allclose(p["npmi"], [0.6100249995238748, 1.0000000000057707], rtol=1e-9)


def test_gensim_umass_eps_hand_values():
    eps = 1e-12
    # DOCS: N = 4; D(a)=3, D(b)=2, D(c)=2, D(d)=1; D(a,b)=2, D(a,c)=2, D(b,c)=1, D(a,d)=0
    got = coherence([["b", "a", "c"], ["a", "d"]], DOCS, "umass", umass="eps")
    want = [(math.log((2 / 4 + eps) / (2 / 4)) + math.log((1 / 4 + eps) / (2 / 4))
             + math.log((2 / 4 + eps) / (3 / 4))) / 3,
            math.log(eps / (3 / 4))]  # never together: ~ log(eps) = -27.6, not log(1/3) as with +1
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[1] < -27
    assert coherence([["a", "d"]], DOCS, "umass", umass="eps", eps=1e-6)[0] == pytest.approx(math.log(1e-6 / 0.75))
    # gensim 4.4.0 CoherenceModel(coherence="u_mass", corpus=bag of words of WDOCS)
    p = coherence_protocol([["a", "b", "c"], ["c", "a"]], WDOCS, "gensim")
    np.testing.assert_allclose(p["umass"], [-0.13515503603405482, 1.999955756557757e-12], rtol=1e-9, atol=1e-15)
    with pytest.raises(ValueError):
        coherence([["a", "b"]], DOCS, "umass", umass="other")


def test_protocols_match_explicit_calls():
    topics = [["b", "a", "c"], ["a", "d"], ["c", "a", "b", "d"]]
    doc = coherence_protocol(topics, DOCS, "document")
    np.testing.assert_array_equal(doc["umass"], coherence(topics, DOCS, "umass"))
    np.testing.assert_array_equal(doc["npmi"], coherence(topics, DOCS, "npmi"))
    g = coherence_protocol(topics, iter(DOCS), "gensim")  # any iterable of documents
    np.testing.assert_array_equal(g["umass"], coherence(topics, DOCS, "umass", umass="eps", eps=1e-12))
    np.testing.assert_array_equal(g["npmi"], coherence(topics, DOCS, "npmi", window=10, eps=1e-12, sliding="gensim"))
    sch = coherence_protocol(topics, DOCS, "scholar")
    np.testing.assert_array_equal(sch["umass"], doc["umass"])
    np.testing.assert_array_equal(sch["npmi"], coherence(topics, DOCS, "npmi", npmi_unseen=0.0))
    assert set(PROTOCOLS) == {"document", "gensim", "scholar"}
    with pytest.raises(ValueError):
        coherence_protocol(topics, DOCS, "palmetto")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from("pqrsx"), max_size=12), min_size=1, max_size=6), st.integers(1, 6))
def test_gensim_windows_never_add_presence(docs, window):
    """gensim's bookkeeping only ever loses words; without repeats inside a window it is exact."""
    words = ["p", "q", "r", "s"]
    nb, db, cb = cooccurrence(words, docs, window=window)
    ng, dg, cg = cooccurrence(words, docs, window=window, sliding="gensim")
    assert nb == ng == sum(max(len(d) - window + 1, 1) for d in docs)
    assert np.all(dg <= db) and np.all(cg <= cb)
    if all(len(set(d[i:i + window])) == len(d[i:i + window]) for d in docs for i in range(len(d))):
        assert dg.tolist() == db.tolist() and cg.tolist() == cb.tolist()


def test_pool_words_tf_count_and_docs():
    from mpmkit_text.topics import pool_words

    words = [["x", "x", "y", "z"], ["x", "y"]]
    local = [[0, 0, 0, 1], [1, 1]]
    cluster_of = [[7, 8], [8, 7]]  # doc 0: k0 -> 7, k1 -> 8; doc 1: k0 -> 8, k1 -> 7
    pooled, docs = pool_words(words, local, cluster_of)
    assert pooled == {7: {"x": 3, "y": 2}, 8: {"z": 1}} and docs == {7: {0, 1}, 8: {0}}
    pooled, docs = pool_words(words, local, cluster_of, tf="docs")  # "x" twice in doc 0 counts once
    assert pooled == {7: {"x": 2, "y": 2}, 8: {"z": 1}} and docs == {7: {0, 1}, 8: {0}}
    with pytest.raises(ValueError):
        pool_words(words, local, cluster_of, tf="tokens")


def test_lda_tfidf_row_follows_tf():
    """The LDA row under MPM's tf-idf rule pools with the same ``tf`` as MPM (a repeated word counts once)."""
    from mpmkit_text.topics import lda_topics

    vocab = ["a1", "a2", "a3", "b1", "b2", "b3"]
    train = [[0, 1, 2] * 3, [3, 4, 5] * 3] * 20  # two well-separated themes
    test = [[0] * 20 + [1, 2]] + [[1, 2]] * 4 + [[3, 4, 5]] * 3  # a1 repeated 20 times in one document
    top = {tf: sorted(lda_topics(train, test, vocab, 2, seed=0, max_iter=20, top_n=1, tf=tf)["topics_tfidf"].values())
           for tf in ("count", "docs")}
    # 2 used topics: idf = log(2 / 2) = 0 for every word, so ties go to the larger tf
    assert top["count"] == [["a1"], ["b1"]]  # a1: 20 occurrences
    assert top["docs"] == [["a2"], ["b1"]]  # a1 in 1 document, a2 and a3 in 5 (alphabetical tie-break)


def test_registered_metrics_take_lists_and_mappings():
    """The plugin's ``umass`` / ``npmi`` metrics average coherence() over topics in either form."""
    from mpmkit.plugins import registry

    topics = [["b", "a", "c"], ["a", "d"], ["a", "zzz"]]  # the last has one reference word: NaN, skipped
    for measure in ("umass", "npmi"):
        metric = registry("metric").get(measure)
        want = float(np.nanmean(coherence(topics, DOCS, measure)))
        assert metric(topics, DOCS) == pytest.approx(want)
        assert metric(dict(enumerate(topics)), DOCS) == pytest.approx(want)
