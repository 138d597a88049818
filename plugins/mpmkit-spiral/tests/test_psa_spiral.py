"""The spiral family with PSA's local GMM (mixing weights, diagonal variances): exact density, exact EM
posterior, variable-count data, and an end-to-end fit that reports ARD counts."""

import math

import numpy as np
import pytest
import torch

from mpmkit import Batch
from mpmkit.errors import ConfigError, IncompatibleSolverError
from mpmkit.psa import PSAEM, PSAPotential, pack, unpack
from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.training import Trainer

from mpmkit_spiral.data import generate
from mpmkit_spiral.model import build_mpm
from mpmkit_spiral.transforms import SpiralTransform


def _psa_model(K=2, steps=30):
    torch.manual_seed(0)
    return build_mpm(SpiralTransform(0.9, 0.3), PSAEM(), num_clusters=K, num_global=3, inner_steps=steps,
                     scale=0.6, local="psa").double()


def test_psa_density_integrates_to_one_with_per_cluster_variances():
    model = _psa_model()
    mu = torch.tensor([[[3.0, 1.5], [0.2, -0.4]]], dtype=torch.float64)
    log_var = torch.tensor([[[0.5, -0.3], [-1.0, 0.2]]], dtype=torch.float64)
    lam = pack(mu, log_var, torch.log(torch.tensor([[0.3, 0.7]], dtype=torch.float64)))
    half, n = 9.0, 900
    h = 2 * half / n
    ticks = -half + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    grid = torch.stack(torch.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(1, -1, 2)
    with torch.no_grad():
        lp = model.likelihood.log_prob(grid, lam, torch.ones(grid.shape[:2], dtype=torch.bool))
    torch.testing.assert_close(lp.exp().sum(1).squeeze(0) * h * h, torch.ones(2, dtype=torch.float64), atol=2e-3,
                               rtol=0)


def test_psa_em_posterior_is_exact_so_the_elbo_is_tight():
    """ψ = log N(g; μ, σ²) is the likelihood up to log|det J| (constant in k): ELBO = log p(x, λ)."""
    model = _psa_model(K=3)
    data = generate(2, seed=4, num_clusters=3, points=50)
    x = torch.tensor(np.stack([d.x for d in data]), dtype=torch.float64)
    batch = Batch(x=x, mask=torch.ones(2, 50, dtype=torch.bool))
    with torch.no_grad():
        inf = model.infer(batch)
        terms = model.elbo(batch, inf)
        ll = model.likelihood.log_prob(x, inf.lam, batch.mask) + model.log_pz(inf.lam).unsqueeze(1)
        exact = torch.logsumexp(ll, -1).sum(1) + model.prior.log_prob(inf.lam)
    torch.testing.assert_close(terms.total, exact)
    assert isinstance(model.potential, PSAPotential) and unpack(inf.lam).mu.shape == (2, 3, 2)


def test_variable_cluster_counts_and_weights():
    data = generate(200, seed=0, num_clusters=4, points=120, clusters_min=2, weights="dirichlet", noise_max=0.9)
    counts = np.array([len(np.unique(d.labels)) for d in data])
    assert set(counts) == {2, 3, 4}
    assert all(0 in d.labels for d in data)  # the centre cluster is always present
    with pytest.raises(ValueError, match="clusters_min"):
        generate(1, clusters_min=5, num_clusters=4)
    with pytest.raises(ValueError, match="weights"):
        generate(1, weights="zipf")


def test_short_psa_fit_reports_ard_counts(tmp_path):
    opts = {"num_datasets": 85, "num_val": 5, "num_test": 20, "points_per_dataset": 60, "points_min": 40,
            "epochs": 3, "batch_size": 16, "vae_steps": 0, "progress": False, "tensorboard": False,
            "local": "psa", "clusters_min": 2, "figure": True, "eval_inner_steps": 20, "ard_prune": 0.05}
    Trainer(make_family("spiral-gmm"), config_for("spiral-gmm", opts), tmp_path).fit()
    m = evaluate_run(tmp_path)
    assert m["local"] == "psa" and 0 <= m["ard_count_accuracy"] <= 1
    assert 2 <= m["ard_mean_active"] <= 4 and math.isfinite(m["ari_mpm"])
    assert m["ari_mpm"] > m["ari_gmm"], m
    png = tmp_path / "psa_samples.png"
    assert m["psa_samples_figure"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"

    # the same run inferred by SVI: refused with flat variances (the fit used to end in NaN), and with
    # an inverse-gamma prior on them it finds the same clusters as PSA-EM
    svi = {"solver": "pyro-svi", "solver_options": {"num_steps": 150}, "ard_prune": 0.0, "figure": False}
    with pytest.raises(IncompatibleSolverError, match="psa_var_prior"):
        evaluate_run(tmp_path, overrides=svi)
    with pytest.raises(ConfigError, match="psa_var_prior"):
        evaluate_run(tmp_path, overrides={**svi, "psa_var_prior": [1.0, 0.0]})
    em = evaluate_run(tmp_path, overrides={"ard_prune": 0.0, "figure": False, "psa_var_prior": [1.0, 0.01]})
    s = evaluate_run(tmp_path, overrides={**svi, "psa_var_prior": [1.0, 0.01]})
    assert math.isfinite(s["ari_mpm"]) and s["ari_mpm"] > m["ari_gmm"], (s, m)
    assert abs(s["ari_mpm"] - em["ari_mpm"]) < 0.1, (s["ari_mpm"], em["ari_mpm"])
