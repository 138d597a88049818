"""The formulas themselves: the potentials ψ, the outer loss with its weights, and the exact gradient of
coordinate ascent's unrolled Λ^T, each against an independent computation."""
from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal

from mpmkit import (Batch, CoordinateAscent, DotProductPotential, EuclideanPotential, GMMPrior, MPM,
                    MixtureLikelihood, gaussian_log_prob)
from mpmkit.batch import pad_datasets
from mpmkit.solvers import InnerProblem


def g_and_lam(d=4, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 5, d, generator=gen, dtype=dtype), torch.randn(2, 3, d, generator=gen, dtype=dtype)


def test_dot_product_potential_is_scaled_dot_product():
    g, lam = g_and_lam(d=4)
    expected = torch.einsum("bnd,bkd->bnk", g, lam) / math.sqrt(4)  # ⟨g_j, μ_k⟩ / √D
    torch.testing.assert_close(DotProductPotential().logits(g, lam), expected)
    assert not DotProductPotential.closed_form


def test_euclidean_potential_is_half_squared_distance():
    g, lam = g_and_lam(d=3)
    expected = -0.5 * torch.cdist(g, lam) ** 2
    pot = EuclideanPotential()
    torch.testing.assert_close(pot.logits(g, lam), expected)
    # relative_logits drops only the per-observation constant -½‖g‖²: the same softmax over slots
    torch.testing.assert_close(pot.relative_logits(g, lam), expected + 0.5 * (g**2).sum(-1, keepdim=True))
    torch.testing.assert_close(pot.relative_logits(g, lam).softmax(-1), expected.softmax(-1))


class UnitGaussian(MixtureLikelihood):
    def log_prob(self, x, lam, mask):
        return gaussian_log_prob(x.unsqueeze(2), lam.unsqueeze(1))


def test_outer_loss_with_prior_weight_and_beta_is_the_documented_formula():
    """loss = −Σ_i (w log p_η(λ_i) + E_q log p_θ(x_i|z,λ_i) + β (E_q log p(z|λ_i) + H[q_i])) / Σ_i N_i,
    every term recomputed here from (Λ^T, q^T) with torch.distributions."""
    torch.manual_seed(0)
    K, L, w, beta = 3, 4, 0.5, 0.3
    model = MPM(prior=GMMPrior(L, 2, scale=1.5), likelihood=UnitGaussian(), potential=EuclideanPotential(),
                solver=CoordinateAscent(), num_slots=K, slot_dim=2, inner_steps=4, beta=beta,
                prior_weight=w).double()
    x, mask = pad_datasets([torch.randn(n, 2, dtype=torch.float64) * 3 for n in (9, 4, 6)])
    batch = Batch(x=x, mask=mask)
    loss, terms, inf = model(batch)
    lam, q, m = inf.lam, inf.q, mask.double()

    centres = model.prior.centres
    comps = MultivariateNormal(centres, covariance_matrix=1.5**2 * torch.eye(2, dtype=torch.float64))
    log_prior = (comps.log_prob(lam.unsqueeze(-2)).logsumexp(-1) - math.log(L)).sum(-1)  # [B]
    unit = MultivariateNormal(lam.unsqueeze(1), covariance_matrix=torch.eye(2, dtype=torch.float64))
    log_lik = (q * unit.log_prob(x.unsqueeze(2)) * m.unsqueeze(-1)).sum((1, 2))
    log_pz = -math.log(K) * (q * m.unsqueeze(-1)).sum((1, 2))
    ent = -torch.where(q > 0, q * q.log(), torch.zeros_like(q)).sum((1, 2))
    n = m.sum()

    torch.testing.assert_close(terms.log_prior, log_prior)
    torch.testing.assert_close(terms.log_lik, log_lik)
    torch.testing.assert_close(terms.log_pz, log_pz)
    torch.testing.assert_close(terms.entropy, ent)
    torch.testing.assert_close(terms.n_obs, mask.sum(1).double())
    expected = -(w * log_prior + log_lik + beta * (log_pz + ent)).sum() / n
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(terms.loss(w), expected)
    torch.testing.assert_close(terms.loss(), -(log_prior + log_lik + beta * (log_pz + ent)).sum() / n)
    assert abs(float((terms.loss(w) - terms.loss()).detach())) > 1e-3  # the weight matters on this batch


def test_coordinate_ascent_unrolled_gradient_matches_finite_differences():
    """gradcheck in float64: the full backward through 3 coordinate-ascent steps is the exact derivative of
    Λ^T with respect to the embeddings g and the GMM prior's centres ν."""
    gen = torch.Generator().manual_seed(1)
    B, N, K, D, L = 2, 5, 2, 2, 3
    g0 = torch.randn(B, N, D, generator=gen, dtype=torch.float64) * 2
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    lam0 = torch.randn(B, K, D, generator=gen, dtype=torch.float64)
    centres0 = torch.randn(L, D, generator=gen, dtype=torch.float64)

    def lam_T(g, centres):
        prior = GMMPrior(L, D, scale=1.3).double()
        del prior.centres
        prior.centres = centres  # a plain tensor: the prior reads the input of gradcheck
        problem = InnerProblem(g=g, mask=mask, prior=prior, potential=EuclideanPotential(), lam0=lam0,
                               log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(K)))
        return CoordinateAscent(backward="full").solve(problem, 3).lam

    inputs = (g0.clone().requires_grad_(), centres0.clone().requires_grad_())
    assert torch.autograd.gradcheck(lam_T, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    # and it is not vacuous: Λ^T does depend on both
    gg, gc = torch.autograd.grad(lam_T(*inputs).sum(), inputs)
    assert gg[mask].abs().sum() > 0 and gc.abs().sum() > 0 and (gg[~mask] == 0).all()
