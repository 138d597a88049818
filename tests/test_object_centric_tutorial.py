"""tutorials/04_object_centric.py runs at tiny scale and writes metrics.json and both figures."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "04_object_centric.py"


def test_object_centric_tutorial_runs_small(tmp_path):
    pytest.importorskip("mpmkit_image")
    env = {**os.environ, "MPMKIT_TUTORIAL_SMALL": "1", "MPMKIT_TUTORIAL_OUT": str(tmp_path), "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(TUTORIAL)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "run"
    for name in ("fig4_segmentation.png", "fig5_global_clusters.png"):
        png = run / name
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5_000, name
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("fg_ari", "ari", "mse", "fg_ari_gmm"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    assert 0 <= metrics["fg_ari_gmm"] <= 100 and metrics["num_test_images"] == 10
    assert "fg_ari" in proc.stdout
