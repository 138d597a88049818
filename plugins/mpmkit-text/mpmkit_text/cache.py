"""On-disk cache of :class:`~mpmkit_text.encoder.EncodedDocument` results.

One safetensors file per (encoder, text): the name is the sha256 of a JSON
record holding the encoder's :meth:`~mpmkit_text.encoder.WordEncoder.cache_config`
(model name, a hash of its config, weights and tokenizer, ``max_length``,
windowing, tokenisation version), the cache format version and the text. Files
live in ``<dir>/<key[:2]>/<key>.safetensors`` and are written to a temporary
name and renamed into place, so concurrent or interrupted runs never leave a
partial file; an unreadable file counts as a miss and is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from mpmkit.utils import atomic_file

from .encoder import EncodedDocument

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$MPMKIT_CACHE_DIR/embeddings`` if set, else ``~/.cache/mpmkit/embeddings``."""
    env = os.environ.get("MPMKIT_CACHE_DIR")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "mpmkit") / "embeddings"


def _text_of(doc) -> str:
    return doc if isinstance(doc, str) else doc.text


class EmbeddingCache:
    """Cache directory for encoded documents (default :func:`default_cache_dir`)."""

    def __init__(self, directory=None):
        self.dir = Path(directory).expanduser() if directory is not None else default_cache_dir()

    def key(self, encoder, text: str) -> str:
        record = {"format": CACHE_FORMAT, "encoder": encoder.cache_config(), "text": text}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.safetensors"

    def load(self, key: str) -> EncodedDocument | None:
        """The cached result for ``key``, or None if absent or unreadable."""
        from safetensors import safe_open

        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with safe_open(str(p), framework="np") as f:
                words = json.loads(f.metadata()["words"])
                arrays = {k: f.get_tensor(k) for k in ("embeddings", "token_ids", "positions")}
        except Exception:  # corrupt or foreign file: recompute
            return None
        return EncodedDocument(words=words, **arrays)

    def store(self, key: str, doc: EncodedDocument) -> Path:
        """Write ``doc`` under ``key`` atomically (temporary file + ``os.replace``)."""
        from safetensors.numpy import save

        data = save(
            {
                "embeddings": np.ascontiguousarray(doc.embeddings, np.float32),
                "token_ids": np.ascontiguousarray(doc.token_ids, np.int64),
                "positions": np.ascontiguousarray(doc.positions, np.int64),
            },
            metadata={"words": json.dumps(doc.words), "format": str(CACHE_FORMAT)},
        )
        p = self.path(key)
        with atomic_file(p) as f:
            f.write(data)
        return p

    def get_or_compute(self, encoder, docs, batch_size: int = 8,
                       progress: bool | None = None) -> list[EncodedDocument]:
        """Encoded ``docs`` (strings or objects with ``.text``), computing only misses.

        Misses are encoded ``batch_size`` documents at a time and stored as they
        finish, under a tqdm bar (``progress=None``: shown only on a terminal).
        """
        texts = [_text_of(d) for d in docs]
        keys = [self.key(encoder, t) for t in texts]
        found: dict[str, EncodedDocument] = {}
        missing: dict[str, str] = {}  # key -> text, repeated texts once
        for k, t in zip(keys, texts):
            if k not in found and k not in missing:
                hit = self.load(k)
                if hit is None:
                    missing[k] = t
                else:
                    found[k] = hit
        todo = list(missing.items())
        if todo:
            from tqdm.auto import tqdm

            disable = None if progress is None else not progress
            with tqdm(total=len(todo), desc="encoding", unit="doc", disable=disable) as bar:
                for lo in range(0, len(todo), batch_size):
                    chunk = todo[lo : lo + batch_size]
                    for (k, _), enc in zip(chunk, encoder.encode([t for _, t in chunk], batch_size)):
                        self.store(k, enc)
                        found[k] = enc
                    bar.update(len(chunk))
        return [found[k] for k in keys]
