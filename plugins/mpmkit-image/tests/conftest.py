"""Make ``mpmkit_image`` importable from a source checkout without installing it."""

import sys
from pathlib import Path

try:
    import mpmkit_image  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
