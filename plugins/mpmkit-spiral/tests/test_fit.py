"""A short end-to-end fit through mpmkit's Trainer beats the per-dataset GMM and recovers α."""

import json
import math

import pytest

from mpmkit.errors import ConfigError
from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.training import Trainer

SMALL = {"num_datasets": 130, "num_val": 10, "num_test": 20, "points_per_dataset": 80, "points_min": 40,
         "epochs": 6, "batch_size": 16, "lr_milestones": [4], "vae_steps": 150, "progress": False,
         "tensorboard": False, "seed": 0}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("spiral")
    Trainer(make_family("spiral-gmm"), config_for("spiral-gmm", SMALL), out).fit()
    return out, evaluate_run(out)


def test_short_fit_beats_gmm_and_recovers_alpha(small_run):
    _, m = small_run
    assert m["ari_mpm"] > 0.9 and m["ari_mpm"] > m["ari_gmm"] + 0.15, m
    assert m["alpha_rel_error"] < 0.15, m
    assert m["alpha_source"] == "parameter"


def test_evaluation_writes_metrics_and_figure(small_run):
    out, m = small_run
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("ari_mpm", "ari_gmm", "ari_vae_gmm", "alpha_true", "alpha_learned", "alpha_rel_error",
                "beta_learned", "scale_learned"):
        assert isinstance(saved[key], float) and math.isfinite(saved[key]), key
    png = out / "spiral.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_defaults_are_the_tuned_ones():
    cfg = config_for("spiral-gmm", {})
    assert cfg.backward == "implicit" and cfg.transform == "parametric" and cfg.inner_steps == 10
    assert cfg.num_datasets - cfg.num_val - cfg.num_test > 0


@pytest.mark.parametrize("bad, message", [
    ({"num_clusters": 1}, "num_clusters"), ({"num_test": 700}, "leaving at least one training dataset"),
    ({"num_val": -1}, "need num_val >= 0"), ({"points_min": 500}, "points_min"), ({"transform": "mlp"}, "transform"),
    ({"noise": 0}, "'noise' must be > 0"), ({"eval_inner_steps": -1}, "eval_inner_steps"), ({"data_seed": -2}, "data_seed"),
    ({"seed": -1}, "'seed' must be >= 0"), ({"vae_latent": 0}, "vae_latent"), ({"ard_prune": 1.0}, "ard_prune"),
    ({"local": "psa", "ard_tau": 0.0}, "ard_tau must be in \\(0, 1\\) with local=psa")])
def test_bad_options_fail_with_a_message(bad, message):
    with pytest.raises(ConfigError, match=message):
        config_for("spiral-gmm", bad)


def test_psa_with_a_solver_that_cannot_prune_is_refused_before_training():
    from mpmkit.runs import make_family

    family = make_family("spiral-gmm")
    small = {"local": "psa", "solver": "pyro-svi", "num_datasets": 20, "num_val": 2, "num_test": 2}
    with pytest.raises(ConfigError, match="solver 'pyro-svi' has no such step; set ard_prune=0"):
        family.build_model(config_for("spiral-gmm", {**small, "ard_prune": 0.05}))
    assert family.build_model(config_for("spiral-gmm", small)).solver.name == "pyro-svi"  # ard_prune=0: fine


def test_trainer_refuses_psa_with_a_non_pruning_solver_before_building_data(tmp_path, monkeypatch):
    from mpmkit.runs import make_family
    from mpmkit.training import Trainer

    family = make_family("spiral-gmm")
    monkeypatch.setattr(family, "build_data", lambda cfg: pytest.fail("data built before the check"))
    with pytest.raises(ConfigError, match="set ard_prune=0"):
        Trainer(family, config_for("spiral-gmm", {"local": "psa", "solver": "pyro-svi", "ard_prune": 0.05}),
                tmp_path / "run")
    assert not (tmp_path / "run").exists()
