import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("MPMKIT_STRICT_PLUGINS", "1")  # a broken plugin fails CI loudly
torch.set_num_threads(1)


@pytest.fixture
def toy_host():
    """The process plugin host with the in-test ``toy`` family registered for one test."""
    import toy
    from mpmkit.plugins import host

    h = host()
    h.register(toy, name="toy-tests")
    try:
        yield h
    finally:
        h.unregister("toy-tests")
