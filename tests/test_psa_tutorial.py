"""tutorials/06_probabilistic_slot_attention.py runs at tiny scale: four models, counts, SMCC, the split move, figures."""

import json
import math

import pytest
from tutorial_run import assert_png, run_tutorial, small


def test_psa_tutorial_runs_small(tmp_path):
    pytest.importorskip("mpmkit_image")
    proc = run_tutorial("06_probabilistic_slot_attention.py", tmp_path, env=small(tmp_path))
    out = json.loads((tmp_path / "psa_comparison.json").read_text())
    table = out["table"]
    assert set(table) == {"PSA", "MPM additive", "Slot Attention", "PSA mixture"}
    for name, row in table.items():
        assert 0 <= row["segmentation_count_accuracy"] <= 1 and -1 <= row["smcc"] <= 1 and math.isfinite(row["fg_ari"])
        assert (row["ard_count_accuracy"] is None) == (not name.startswith("PSA"))
    for run in out["runs"]["PSA mixture"]:  # evaluated as it is and with the split move
        assert run["decoder"] == "mixture" and 0 <= run["split"]["ard_count_accuracy"] <= 1
        assert 0 <= run["split"]["split_images"] <= 10 and math.isfinite(run["split"]["fg_ari"])
    psa = tmp_path / "psa-seed42"
    assert_png(psa / "psa_samples.png", 3_000)
    rows = (psa / "ard_counts.csv").read_text().splitlines()
    assert len(rows) == 11 and rows[0].startswith("image,true_objects,inferred_objects")
    assert "count accuracy" in proc.stdout and "with the split move" in proc.stdout
