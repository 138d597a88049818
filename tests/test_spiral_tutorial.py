"""tutorials/01_spiral_gmm.py runs at small scale and writes a finite metrics.json and the figure."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "01_spiral_gmm.py"


def test_spiral_tutorial_runs_small(tmp_path):
    pytest.importorskip("mpmkit_spiral")
    env = {**os.environ, "MPMKIT_TUTORIAL_SMALL": "1", "MPMKIT_TUTORIAL_OUT": str(tmp_path), "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(TUTORIAL)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "run"
    png = run / "spiral.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("ari_mpm", "ari_gmm", "ari_vae_gmm", "alpha_true", "alpha_learned", "alpha_rel_error"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    assert "ari_mpm" in proc.stdout
