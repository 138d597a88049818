"""Priors p_η(λ) are normalised densities: each equals torch.distributions' own, constants included."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from mpmkit import FlatPrior, GaussianPrior, GMMPrior


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.0])
def test_gmm_prior_is_the_equal_weight_mixture_density(sigma):
    torch.manual_seed(0)
    prior = GMMPrior(5, 3, scale=sigma, init_scale=2.0).double()
    lam = 2.0 * torch.randn(4, 6, 3, dtype=torch.float64)  # [B, K, D]: slots are independent draws
    nu = prior.centres.detach()
    mix = MixtureSameFamily(Categorical(torch.ones(5, dtype=torch.float64)), Independent(Normal(nu, sigma), 1))
    torch.testing.assert_close(prior.log_prob(lam), mix.log_prob(lam).sum(-1), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("sigma", [0.3, 2.0])
def test_gaussian_prior_is_the_isotropic_normal_density(sigma):
    torch.manual_seed(1)
    prior = GaussianPrior(3, scale=sigma).double()
    with torch.no_grad():
        prior.mean.normal_()
    lam = torch.randn(4, 6, 3, dtype=torch.float64)
    ref = Normal(prior.mean.detach(), sigma).log_prob(lam).sum((-1, -2))
    torch.testing.assert_close(prior.log_prob(lam), ref, rtol=1e-12, atol=1e-10)


def test_flat_prior_contributes_nothing():
    assert torch.equal(FlatPrior().log_prob(torch.randn(3, 4, 2)), torch.zeros(3))
