"""A small synthetic corpus in lda-c AP format (own text, not AP's) for the topic-model tests."""

import random
from pathlib import Path

from mpmkit_text.ap import ap_block

THEMES = [["cat", "dog", "mat", "sat", "ran"], ["red", "blue", "zorblat", "unbelievable", "b"]]
FILLER = ["the", "on", "a", ",", "."]


def write_corpus(path: Path, n_docs: int = 24, seed: int = 0, empty: int = 0) -> Path:
    """``n_docs`` documents, each mostly from one theme; ``empty`` extra documents of stop words only."""
    rng = random.Random(seed)
    blocks = []
    for i in range(n_docs):
        theme = THEMES[i % 2]
        words = [rng.choice(theme) if rng.random() < 0.6 else rng.choice(FILLER) for _ in range(rng.randint(14, 30))]
        blocks.append((f"SYN-{i:04d}", " ".join(words)))
    for i in range(empty):
        blocks.append((f"EMPTY-{i:04d}", "the on a ."))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(ap_block(d, t) for d, t in blocks))
    return path
