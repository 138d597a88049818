"""tutorials/01_spiral_gmm.py runs at small scale and writes a finite metrics.json and the figure."""

import json

import pytest
from tutorial_run import assert_finite, assert_png, run_tutorial, small


def test_spiral_tutorial_runs_small(tmp_path):
    pytest.importorskip("mpmkit_spiral")
    proc = run_tutorial("01_spiral_gmm.py", tmp_path, env=small(tmp_path))
    run = tmp_path / "run"
    assert_png(run / "spiral.png", 10_000)
    metrics = json.loads((run / "metrics.json").read_text())
    assert_finite(metrics, ("ari_mpm", "ari_gmm", "ari_vae_gmm", "alpha_true", "alpha_learned", "alpha_rel_error"))
    assert "ari_mpm" in proc.stdout
