"""Make the in-test ``toy`` family loadable by ``mpmkit`` in a subprocess (a temp dist-info entry point)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def toy_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess that sees the ``toy`` family (entry point ``toy = toy``), 1 thread."""
    site = tmp_path / "toy-site"
    info = site / "mpmkit_toy_tests-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mpmkit-toy-tests\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[mpmkit]\ntoy = toy\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(Path(__file__).parent), str(ROOT),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPMKIT_STRICT_PLUGINS="1",
               MPMKIT_LOAD_PLUGINS="toy", PYTHONHASHSEED="0")
    return env


PYTHON = sys.executable
