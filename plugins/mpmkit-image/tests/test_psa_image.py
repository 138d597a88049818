"""PSA in the tetrominoes family: λ = (μ, log σ², log π), the decoder reads μ, ARD-pruned slots are
not decoded, counts are scored per image, new scenes are sampled from the aggregate posterior."""

import json
import math

import numpy as np
import pytest
import torch

from mpmkit.components import make_solver
from mpmkit.errors import ConfigError
from mpmkit.psa import DEAD, PSAEM, PSAPotential, PSAPrior, pack, unpack
from mpmkit_image.data import collate, scenes_from_arrays
from mpmkit_image.family import colour_counts, object_counts, segmentation_counts
from mpmkit_image.model import NoisyInitMPM, build_mpm
from mpmkit_image.tetrominoes import generate


@pytest.fixture(scope="module")
def scenes():
    return scenes_from_arrays(generate(6, seed=5, num_objects=(1, 4)))


def psa_model(**kw):
    torch.manual_seed(0)
    return build_mpm(PSAEM(), decoder="additive", num_slots=5, num_global=10, local="psa", **kw)


def test_psa_model_layout_and_decoder_reads_the_means(scenes):
    model = psa_model().eval()
    d = 32
    assert isinstance(model.potential, PSAPotential) and isinstance(model.prior, PSAPrior)
    assert model.lambda0.shape == (5, 2 * d + 1)
    batch = collate([scenes[0], scenes[1]])
    inf = model.infer(batch, steps=3)
    assert inf.lam.shape == (2, 5, 2 * d + 1) and inf.q.shape == (2, 1225, 5)
    lik = model.likelihood
    rgb, alpha = lik.decode(batch.x, inf.lam)
    rgb_mu, alpha_mu = lik.decoder(unpack(inf.lam).mu, batch.x["index"], (35, 35))
    active = torch.softmax(inf.lam[..., -1], -1) >= lik.ard_tau
    assert torch.equal(rgb, rgb_mu)
    assert torch.equal(alpha[active.unsqueeze(1).expand_as(alpha)], alpha_mu[active.unsqueeze(1).expand_as(alpha)])
    # changing σ² alone (π, μ fixed) changes nothing the decoder sees
    s = unpack(inf.lam)
    other = pack(s.mu, s.log_var + 1.0, s.log_pi)
    assert torch.allclose(lik.masks(batch.x, other)[0], lik.masks(batch.x, inf.lam)[0])


def test_pruned_slots_get_no_mask_and_masks_still_sum_to_one(scenes):
    model = psa_model(ard_tau=0.05).eval()
    batch = collate([scenes[0], scenes[1]])
    d = 32
    mu = torch.randn(2, 5, d)
    log_pi = torch.log(torch.tensor([[0.5, 0.3, 0.17, 0.02, 0.01], [0.96, 0.01, 0.01, 0.01, 0.01]]))
    lam = pack(mu, torch.zeros(2, 5, d), log_pi)
    _, w = model.likelihood.masks(batch.x, lam)
    assert torch.allclose(w.sum(-1), torch.ones(2, 1225), atol=1e-5)
    assert (w[0, :, 3:] == 0).all() and (w[0, :, :3] > 0).all()
    assert (w[1, :, 1:] == 0).all() and torch.allclose(w[1, :, 0], torch.ones(1225))
    # an annihilated slot (log π = DEAD) is pruned whatever τ > 0 is
    lam_dead = pack(mu, torch.zeros(2, 5, d), torch.tensor([[-0.5, -1.0, -2.0, DEAD, DEAD]] * 2))
    _, w = psa_model(ard_tau=1e-6).eval().likelihood.masks(batch.x, lam_dead)
    assert (w[..., 3:] == 0).all()


def test_training_gradients_are_finite_with_an_empty_slot(scenes):
    """A slot that explains no pixel keeps its μ, σ² (no 0/0), and its gradients stay finite."""
    model = psa_model().train()
    with torch.no_grad():
        model.lambda0[4, :32] = 50.0  # far from every embedding: N_k = 0
    batch = collate([scenes[0], scenes[1]])
    loss, _, inf = model(batch)
    assert float(inf.q[..., 4].detach().sum()) < 1e-6
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_slot_noise_moves_only_the_means():
    model = psa_model(slot_noise=0.5).train()
    assert isinstance(model, NoisyInitMPM) and model.log_slot_sigma.shape == (32,)
    batch = collate(list(scenes_from_arrays(generate(2, seed=1)))[:2])
    lam0 = model.problem(batch).lam0
    base = model.lambda0.unsqueeze(0).expand(2, -1, -1)
    assert not torch.allclose(lam0[..., :32], base[..., :32])
    assert torch.equal(lam0[..., 32:], base[..., 32:])  # log σ², log π untouched


def test_object_counts():
    labels = np.array([[0, 0, 1, 1, 3], [0, 0, 0, 0, 0], [2, 2, 2, 2, 2]])
    assert object_counts(labels).tolist() == [2, 0, 1]
    pred = np.array([[0] * 16 + [1] * 3 + [2], [3] * 10 + [0] * 10])  # slot 2 owns 1 of 20 pixels
    assert segmentation_counts(pred, 4, 0.1).tolist() == [1, 1]
    assert segmentation_counts(pred, 4, 0.05).tolist() == [2, 1]


def test_colour_counts():
    """Objects of one colour count once; background (label 0) is not an object."""
    red, cyan, black = [1.0, 0, 0], [0, 1.0, 1.0], [0, 0, 0]
    images = np.array([[black, red, red, cyan, red],  # objects 1, 2 red and 3 cyan: 2 colours, 3 objects
                       [black, black, black, black, black],
                       [black, cyan, cyan, red, red]])
    labels = np.array([[0, 1, 1, 3, 2], [0, 0, 0, 0, 0], [0, 1, 1, 2, 2]])
    assert colour_counts(images, labels).tolist() == [2, 0, 2]
    assert object_counts(labels).tolist() == [3, 0, 2]


def test_family_options(tmp_path):
    from mpmkit.runs import config_for, make_family

    family = make_family("tetrominoes")
    model = family.build_model(config_for("tetrominoes", {"local": "psa", "num_slots": 5, "num_global": 5}))
    assert isinstance(model.solver, PSAEM) and isinstance(model.potential, PSAPotential)
    assert model.solver.prune_mass == 0.03  # ard_prune_train
    plain = family.build_model(config_for("tetrominoes", {"local": "psa", "num_slots": 5, "num_global": 5,
                                                          "solver_options": {"prune_mass": 0.0}}))
    assert plain.solver.prune_mass == 0.0
    with pytest.raises(ConfigError, match="ard_prune_train"):
        config_for("tetrominoes", {"ard_prune_train": 1.5})
    with pytest.raises(ConfigError, match="slot-attention"):
        family.build_model(config_for("tetrominoes", {"local": "psa", "solver": "slot-attention"}))
    with pytest.raises(ConfigError, match="num_slots >= 5"):
        config_for("tetrominoes", {"num_objects": [1, 4], "local": "psa"})
    config_for("tetrominoes", {"num_objects": [1, 4]})  # MPM with fewer slots than entities: allowed
    with pytest.raises(ConfigError, match="ard_tau"):
        config_for("tetrominoes", {"local": "psa", "ard_tau": 0.0})
    # an explicit solver=psa-em gets the same training ARD; evaluation keeps the solver's options
    cfg = config_for("tetrominoes", {"local": "psa", "solver": "psa-em", "num_global": 5,
                                     "solver_options": {"var_floor": 0.05}, "ard_prune": 0.0})
    model = family.build_model(cfg)
    assert model.solver.prune_mass == 0.03 and model.solver.var_floor == 0.05
    ev = family.eval_solver(cfg, model)
    assert ev.prune_mass == 0.0 and ev.var_floor == 0.05 and model.solver.prune_mass == 0.03
    assert family.eval_solver(config_for("tetrominoes", {}), model) is None
    with pytest.raises(ConfigError, match="num_objects"):
        config_for("tetrominoes", {"num_objects": [1, 2, 3]})
    with pytest.raises(ConfigError, match="local"):
        config_for("tetrominoes", {"local": "gmm"})
    # another solver at test time: kept as it is; with in-loop ARD (ard_prune > 0, the default) refused,
    # not silently swapped for PSA-EM, and refused when the model is built (before training), not at evaluation
    nuts = {"local": "psa", "solver": "pyro-nuts", "num_slots": 5, "num_global": 5}
    with pytest.raises(ConfigError, match="set ard_prune=0"):
        family.build_model(config_for("tetrominoes", nuts))
    m_nuts = family.build_model(config_for("tetrominoes", {**nuts, "ard_prune": 0.0}))
    with pytest.raises(ConfigError, match="set ard_prune=0"):
        family.eval_solver(config_for("tetrominoes", nuts), m_nuts)
    assert family.eval_solver(config_for("tetrominoes", {**nuts, "ard_prune": 0.0}), m_nuts) is m_nuts.solver
    # psa_var_prior reaches the prior; PSA-EM's variance step then uses it
    ig = family.build_model(config_for("tetrominoes", {"local": "psa", "num_slots": 5, "num_global": 5,
                                                       "psa_var_prior": [2.0, 0.5]}))
    assert (ig.prior.var_shape, ig.prior.var_rate) == (2.0, 0.5) and ig.prior.proper
    assert not model.prior.proper and model.prior.var_shape == 0.0
    with pytest.raises(ConfigError, match="psa_var_prior"):
        config_for("tetrominoes", {"psa_var_prior": [1.0]})
    with pytest.raises(ConfigError, match="set local=psa"):  # the paper's local GMM has no variances
        config_for("tetrominoes", {"psa_var_prior": [1.0, 0.01]})


@pytest.fixture(scope="module")
def psa_runs(tmp_path_factory):
    """Two tiny PSA runs on variable-count scenes (seeds 0 and 1), trained for a few steps."""
    from mpmkit.runs import config_for, make_family
    from mpmkit.training import Trainer

    root = tmp_path_factory.mktemp("psa_runs")
    dirs = []
    for seed in (0, 1):
        cfg = config_for("tetrominoes", {"local": "psa", "num_slots": 5, "num_objects": [1, 4], "num_images": 60,
                                         "max_steps": 4, "batch_size": 8, "epochs": 1, "eval_limit": 6,
                                         "gmm_baseline": False, "progress": False, "tensorboard": False,
                                         "cache_dir": str(root / "cache"), "seed": seed})
        Trainer(make_family("tetrominoes"), cfg, root / f"run{seed}").fit()
        dirs.append(root / f"run{seed}")
    return dirs


def test_fit_and_evaluate_psa_on_variable_counts(psa_runs):
    """End to end through the CLI path: counts per image, confusion, the samples figure."""
    from mpmkit.runs import evaluate_run

    run = psa_runs[0]
    m = evaluate_run(run)
    assert m["local"] == "psa" and 0 <= m["ard_count_accuracy"] <= 1 and 0 <= m["area_count_accuracy"] <= 1
    rows = (run / "ard_counts.csv").read_text().splitlines()
    assert rows[0].startswith("image,true_objects,inferred_objects") and len(rows) == 7
    truth = [int(r.split(",")[1]) for r in rows[1:]]
    inferred = [int(r.split(",")[2]) for r in rows[1:]]
    assert all(1 <= t <= 4 for t in truth) and all(0 <= n <= 4 for n in inferred)
    assert m["ard_count_accuracy"] == pytest.approx(np.mean(np.array(truth) == np.array(inferred)))
    assert sum(sum(v.values()) for v in m["ard_confusion"].values()) == 6
    assert (run / "psa_samples.png").stat().st_size > 0
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["ard_count_accuracy"] == m["ard_count_accuracy"]


def test_evaluate_with_the_split_move(psa_runs):
    """``ard_split=true``: the count before the split is reported too, the split only adds slots, and
    the variant's metrics go to their own file."""
    from mpmkit.runs import evaluate_run

    run = psa_runs[0]
    plain = evaluate_run(run, overrides={"figures": False})
    m = evaluate_run(run, overrides={"ard_split": True, "figures": False})
    assert m["ard_split"] is True and m["ard_count_accuracy_unsplit"] == pytest.approx(plain["ard_count_accuracy"])
    assert m["ard_mean_objects"] == pytest.approx(plain["ard_mean_objects"] + m["split_slots_added"] / 6)
    assert (run / "metrics-ard_split=true,figures=false.json").exists()
    with pytest.raises(ConfigError, match="ard_split"):
        from mpmkit.runs import config_for
        config_for("tetrominoes", {"ard_split": True})


def test_smcc_between_runs_is_one_for_a_run_with_itself(psa_runs):
    from mpmkit_image.identifiability import pairwise_smcc

    same = pairwise_smcc([psa_runs[0], psa_runs[0]], num_images=30)
    assert same["mean"] == pytest.approx(1.0, abs=1e-4)
    other = pairwise_smcc(psa_runs, num_images=30)
    assert -1.0 <= other["mean"] <= 1.0 and len(other["pairs"]) == 1
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_smcc(psa_runs[:1])


def test_only_the_means_of_lambda0_learn_and_pruning_is_for_evaluation(scenes):
    model = psa_model(ard_tau=0.05).train()
    batch = collate([scenes[0], scenes[1]])
    loss, _, _ = model(batch)
    loss.backward()
    grad = model.lambda0.grad
    assert grad[:, :32].abs().sum() > 0 and (grad[:, 32:] == 0).all()
    lam = pack(torch.randn(1, 5, 32), torch.zeros(1, 5, 32), torch.log(torch.tensor([[0.9, 0.07, 0.01, 0.01, 0.01]])))
    assert model.likelihood.slots(lam)[1] is None  # training: every slot decoded
    assert model.eval().likelihood.slots(lam)[1].tolist() == [[True, True, False, False, False]]


@pytest.mark.parametrize("options, message", [
    ({"local": "psa", "solver": "slot-attention"}, "slot-attention"),
    ({"local": "psa", "solver": "pyro-nuts", "num_slots": 5, "num_global": 5}, "set ard_prune=0"),
])
def test_trainer_refuses_a_bad_solver_before_building_data_or_writing(tmp_path, monkeypatch, options, message):
    from mpmkit.runs import config_for, make_family
    from mpmkit.training import Trainer

    family = make_family("tetrominoes")
    monkeypatch.setattr(family, "build_data", lambda cfg: pytest.fail("data built before the check"))
    with pytest.raises(ConfigError, match=message):
        Trainer(family, config_for("tetrominoes", options), tmp_path / "run")
    assert not (tmp_path / "run").exists()
