"""tutorials/04_object_centric.py runs at tiny scale and writes metrics.json and both figures."""

import json

import pytest
from tutorial_run import assert_finite, assert_png, run_tutorial, small


def test_object_centric_tutorial_runs_small(tmp_path):
    pytest.importorskip("mpmkit_image")
    proc = run_tutorial("04_object_centric.py", tmp_path, env=small(tmp_path))
    run = tmp_path / "run"
    for name in ("fig4_segmentation.png", "fig5_global_clusters.png"):
        assert_png(run / name, 5_000)
    metrics = json.loads((run / "metrics.json").read_text())
    assert_finite(metrics, ("fg_ari", "ari", "mse", "fg_ari_gmm"))
    assert 0 <= metrics["fg_ari_gmm"] <= 100 and metrics["num_test_images"] == 10
    assert "fg_ari" in proc.stdout
