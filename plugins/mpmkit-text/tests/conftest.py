"""Make ``mpmkit_text`` importable from a source checkout; offline, single-threaded tests; a shared tiny BERT."""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    import mpmkit_text  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny randomly initialised BERT saved to disk (no download)."""
    from text_tiny_bert import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def enc(tiny):
    """A WordEncoder on the tiny BERT."""
    from mpmkit_text.encoder import WordEncoder

    return WordEncoder(tiny)
