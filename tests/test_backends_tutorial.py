"""tutorials/03_swapping_backends.py runs at tiny scale: three backends, the NUTS figure, slot attention."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "03_swapping_backends.py"


def test_backends_tutorial_runs_tiny(tmp_path):
    pytest.importorskip("mpmkit_spiral")
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(TUTORIAL), "--scale", "tiny", "--out", str(tmp_path)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    png = tmp_path / "nuts_posterior.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    report = json.loads((tmp_path / "backends.json").read_text())
    for key in ("ari_coordinate-ascent_vs_pyro-svi", "ari_coordinate-ascent_vs_pyro-nuts", "ari_pyro-svi_vs_pyro-nuts",
                "ari_truth_slot-attention", "nuts_r_hat_max", "nuts_ess_min"):
        assert isinstance(report[key], float) and math.isfinite(report[key]), key
    assert "pairwise ARI between backends" in proc.stdout and "slot-attention" in proc.stdout
