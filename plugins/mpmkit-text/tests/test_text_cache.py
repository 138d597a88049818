"""EmbeddingCache: round trips, keys, atomic files, misses only computed once."""

import numpy as np
import pytest

from mpmkit_text.cache import EmbeddingCache, default_cache_dir
from mpmkit_text.encoder import WordEncoder
from text_tiny_bert import make_tiny_bert

DOCS = ["the cat sat on the mat .", "a dog ran , unbelievable !", "", "the cat sat on the mat ."]


def _same(a, b):
    assert a.words == b.words
    for name in ("embeddings", "token_ids", "positions"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y)


def test_cached_equals_recomputed(enc, tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)
    calls = []
    real = enc.encode
    monkeypatch.setattr(enc, "encode", lambda texts, bs=8: calls.append(list(texts)) or real(texts, bs))
    first = cache.get_or_compute(enc, DOCS, batch_size=2, progress=False)
    assert sum(len(c) for c in calls) == 3  # the repeated text is encoded once
    for doc, got in zip(DOCS, first):
        (fresh,) = real([doc])
        np.testing.assert_allclose(got.embeddings, fresh.embeddings, rtol=1e-5, atol=1e-6)
        assert got.words == fresh.words
    _same(first[0], first[3])

    monkeypatch.setattr(enc, "encode", lambda *a, **k: pytest.fail("cache miss"))
    again = cache.get_or_compute(enc, DOCS, progress=False)
    for a, b in zip(first, again):
        _same(a, b)  # bit-exact from disk
    assert again[2].embeddings.shape == (0, 32)
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) == 3 and all(f.endswith(".safetensors") for f in files)  # no temp files

    class Doc:
        text = DOCS[1]

    _same(cache.get_or_compute(enc, [Doc()])[0], first[1])


def test_cache_key_changes_with_settings(tiny, enc, tmp_path):
    cache = EmbeddingCache(tmp_path)
    k = cache.key(enc, DOCS[0])
    assert k == cache.key(WordEncoder(tiny), DOCS[0])  # same model loaded again
    assert k != cache.key(enc, DOCS[1])
    assert k != cache.key(WordEncoder(tiny, max_length=64), DOCS[0])
    assert k != cache.key(WordEncoder(tiny, window="sliding"), DOCS[0])
    other = make_tiny_bert(tmp_path / "other", seed=1)
    assert k != cache.key(WordEncoder(other), DOCS[0])


def test_weights_are_part_of_identity(tmp_path):
    a = make_tiny_bert(tmp_path / "m", seed=0)
    key_a = EmbeddingCache(tmp_path).key(WordEncoder(a), "x")
    make_tiny_bert(tmp_path / "m", seed=1)  # different weights at the same path
    assert EmbeddingCache(tmp_path).key(WordEncoder(a), "x") != key_a


def test_corrupt_file_is_a_miss(enc, tmp_path):
    cache = EmbeddingCache(tmp_path)
    (good,) = cache.get_or_compute(enc, [DOCS[0]], progress=False)
    path = cache.path(cache.key(enc, DOCS[0]))
    path.write_bytes(b"garbage")
    assert cache.load(cache.key(enc, DOCS[0])) is None
    (again,) = cache.get_or_compute(enc, [DOCS[0]], progress=False)
    _same(again, good)
    assert cache.load(cache.key(enc, DOCS[0])) is not None


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MPMKIT_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "embeddings"
    assert EmbeddingCache().dir == tmp_path / "embeddings"
    monkeypatch.delenv("MPMKIT_CACHE_DIR")
    assert default_cache_dir().parts[-3:] == (".cache", "mpmkit", "embeddings")
