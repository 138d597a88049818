import pytest
import torch

import mpmkit_blobs
from mpmkit import plugins
from mpmkit.testing import registered

torch.set_num_threads(1)


@pytest.fixture
def blobs(monkeypatch):
    """The plugin registered into mpmkit's process host for one test.

    Entry points are not loaded (so this works the same whether or not mpmkit-blobs is
    pip-installed); the host is rebuilt for the test and dropped afterwards.
    """
    monkeypatch.setenv("MPMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugins.reset()
    with registered(mpmkit_blobs, name="blobs", version=mpmkit_blobs.__version__) as info:
        yield info
    plugins.reset()
