"""UMass / NPMI against hand computations; tf-idf topic words on a hand case."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmkit_text.coherence import coherence, cooccurrence, tfidf_topics

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
