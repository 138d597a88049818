"""tutorials/03_swapping_backends.py runs at tiny scale: three backends, the NUTS figure, slot attention."""

import json

import pytest
from tutorial_run import assert_finite, assert_png, run_tutorial


def test_backends_tutorial_runs_tiny(tmp_path):
    pytest.importorskip("mpmkit_spiral")
    proc = run_tutorial("03_swapping_backends.py", tmp_path, "--scale", "tiny", "--out", str(tmp_path))
    assert_png(tmp_path / "nuts_posterior.png", 10_000)
    report = json.loads((tmp_path / "backends.json").read_text())
    assert_finite(report, ("ari_coordinate-ascent_vs_pyro-svi", "ari_coordinate-ascent_vs_pyro-nuts",
                           "ari_pyro-svi_vs_pyro-nuts", "ari_truth_slot-attention", "nuts_r_hat_max", "nuts_ess_min"))
    assert "pairwise ARI between backends" in proc.stdout and "slot-attention" in proc.stdout
