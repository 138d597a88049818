"""Tests of the blobs plugin: what it registers, its prior, its data, and a short training run."""
from __future__ import annotations

import math

import pytest
import torch

import mpmkit
from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.training import Trainer


def test_registers_a_family_a_prior_and_a_dataset(blobs):
    assert blobs.registers == {"family": ["blobs"], "prior": ["shrinkage"], "dataset": ["blobs"]}
    assert mpmkit.registry("family").get("blobs").name == "blobs"


def test_shrinkage_minorizer_is_the_exact_quadratic(blobs):
    prior = mpmkit.registry("prior").get("shrinkage")(dim=2, scale=2.0)
    lam, other = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    a, m = prior.minorizer(lam)
    assert prior.conjugate and a.shape == (3, 4) and torch.allclose(a, torch.full((3, 4), 0.25))
    quad = lambda x: (-0.5 * a.unsqueeze(-1) * (x - m) ** 2).sum((1, 2))  # noqa: E731
    # log p is itself quadratic, so the minorizer matches it everywhere up to a constant
    assert torch.allclose(prior.log_prob(other) - prior.log_prob(lam), quad(other) - quad(lam), atol=1e-5)
    prior.log_prob(lam).sum().backward()
    assert prior.log_scale.grad is not None  # η = log s is learned


@pytest.mark.parametrize("dim", [1, 2])
def test_data_are_seeded_and_ragged(blobs, dim):
    make = mpmkit.registry("dataset").get("blobs")
    a, b = make(5, dim=dim, seed=3), make(5, dim=dim, seed=3)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b))
    assert all(x.shape[1] == dim and 20 <= len(x) == len(z) <= 40 for x, z in a)


@pytest.mark.parametrize("extra", [{}, {"recognition": "mlp", "dim": 1, "prior": "shrinkage"}])
def test_short_run_clusters_far_above_chance(blobs, tmp_path, extra):
    cfg = config_for("blobs", {"epochs": 1, "num_datasets": 60, "progress": False, **extra})
    Trainer(make_family("blobs"), cfg, tmp_path).fit()
    metrics = evaluate_run(tmp_path)
    assert math.isfinite(metrics["ari"]) and metrics["ari"] > 0.3 > abs(metrics["chance_ari"])
    assert set(metrics["theta"]) == {"a", "b"} and len(metrics["theta"]["b"]) == cfg.dim
