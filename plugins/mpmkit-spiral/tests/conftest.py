"""Make ``mpmkit_spiral`` importable from a source checkout without installing it; keep tests on one thread."""

import os
import sys
from pathlib import Path

import torch

try:
    import mpmkit_spiral  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("MPMKIT_STRICT_PLUGINS", "1")
torch.set_num_threads(1)
