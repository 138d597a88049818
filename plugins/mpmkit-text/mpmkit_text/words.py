"""Word tokenisation used for embeddings, topics and coherence.

A *word* is a maximal run of word characters (``\\w+``: letters, digits,
underscore) or a single other non-space character, so punctuation marks are
words of their own: ``"U.S. didn't."`` -> ``U . S . didn ' t .``. This matches
BERT's own pre-tokeniser, so each word is (almost always) one BERT pre-token.
Case is preserved; lower-case where a measure needs it.
"""

from __future__ import annotations

import re

TOKENIZATION_VERSION = 1
_WORD = re.compile(r"\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """The words of ``text`` in order (see the module docstring)."""
    return _WORD.findall(text)
