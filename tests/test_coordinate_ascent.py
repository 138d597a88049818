"""Proposition 1: closed-form coordinate ascent never lowers the surrogate ELBO, and is what it says."""
from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from mpmkit import CoordinateAscent, EuclideanPotential, FlatPrior, GaussianPrior, GMMPrior, InnerProblem
from mpmkit.model import surrogate_elbo


def make_problem(seed, B, N, K, D, L, scale, prior_kind, ragged=True, dtype=torch.float64, prior_scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(B, N, D, generator=gen, dtype=dtype) * scale
    mask = torch.rand(B, N, generator=gen) > (0.3 if ragged else -1)
    mask[:, 0] = True
    prior = {"flat": lambda: FlatPrior(), "gaussian": lambda: GaussianPrior(D, scale=2.0),
             "gmm": lambda: GMMPrior(L, D, scale=prior_scale, init_scale=scale)}[prior_kind]().to(dtype)
    lam0 = torch.randn(B, K, D, generator=gen, dtype=dtype) * scale
    return InnerProblem(g=g, mask=mask, prior=prior, potential=EuclideanPotential(), lam0=lam0,
                        log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(lam.shape[1])))


def elbo(p, lam, q):
    return surrogate_elbo(p.g, p.mask, lam, q, p.prior, p.potential, p.log_pz)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), B=st.integers(1, 3), N=st.integers(1, 40), K=st.integers(1, 6),
       D=st.integers(1, 6), L=st.integers(1, 8), scale=st.sampled_from([0.1, 1.0, 5.0, 30.0]),
       prior=st.sampled_from(["flat", "gaussian", "gmm"]), prior_scale=st.sampled_from([0.2, 1.0, 3.0]))
def test_each_update_never_lowers_surrogate_elbo(seed, B, N, K, D, L, scale, prior, prior_scale):
    p = make_problem(seed, B, N, K, D, L, scale, prior, prior_scale=prior_scale)
    ca = CoordinateAscent()
    lam = p.lam0
    q = ca.posterior(p, lam)
    before = elbo(p, lam, torch.full_like(q, 1.0 / K) * p.mask.unsqueeze(-1))
    for _ in range(4):
        after_q = elbo(p, lam, q)  # q-step: argmax over q at fixed λ
        assert (after_q >= before - 1e-8 * (1 + before.abs())).all()
        new_lam = ca.m_step(p, lam, q)  # Λ-step
        after_lam = elbo(p, new_lam, q)
        assert (after_lam >= after_q - 1e-8 * (1 + after_q.abs())).all()
        lam, before = new_lam, after_lam
        q = ca.posterior(p, lam)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(2, 5), D=st.integers(1, 4))
def test_q_step_is_the_argmax(seed, K, D):
    """Any other q (random perturbation on the simplex) gives a lower surrogate ELBO."""
    p = make_problem(seed, 2, 15, K, D, 3, 2.0, "gmm")
    q = CoordinateAscent().posterior(p, p.lam0)
    best = elbo(p, p.lam0, q)
    gen = torch.Generator().manual_seed(seed)
    other = torch.softmax(torch.randn(q.shape, generator=gen, dtype=q.dtype), -1) * p.mask.unsqueeze(-1)
    for t in (0.01, 0.3, 1.0):
        mixed = (1 - t) * q + t * other
        assert (elbo(p, p.lam0, mixed) <= best + 1e-9).all()


def test_m_step_is_stationary_point_of_surrogate_with_r_held():
    """With q and r held fixed, the Λ-step zeroes the gradient of Appendix A (prior components of σ ≠ 1)."""
    for sigma in (0.5, 1.0, 2.5):
        p = make_problem(3, 2, 30, 3, 4, 5, 2.0, "gmm", ragged=True, prior_scale=sigma)
        ca = CoordinateAscent()
        q = ca.posterior(p, p.lam0)
        r = p.prior.responsibilities(p.lam0)
        mu = ca.m_step(p, p.lam0, q)
        nu = p.prior.centres
        grad = -((r.sum(-1, keepdim=True) * mu - r @ nu) / sigma**2
                 + (q.sum(1).unsqueeze(-1) * mu - q.transpose(1, 2) @ p.g))
        assert grad.abs().max() < 1e-9, sigma


def test_matches_naive_formulation_of_proposition_1():
    """The matmul implementation equals the paper's [B, N, K, D] formulas (prior components of σ = 0.7)."""
    sigma = 0.7
    p = make_problem(5, 3, 25, 4, 3, 6, 1.5, "gmm", prior_scale=sigma)
    lam = p.lam0
    diff = lam.unsqueeze(1) - p.g.unsqueeze(2)  # [B, N, K, D]
    s = torch.softmax(-0.5 * (diff**2).sum(-1), -1) * p.mask.unsqueeze(-1)
    r = torch.softmax(-0.5 * ((lam.unsqueeze(2) - p.prior.centres) ** 2).sum(-1) / sigma**2, -1)  # [B, K, L]
    mu = ((r @ p.prior.centres / sigma**2 + torch.einsum("bnk,bnd->bkd", s, p.g))
          / (r.sum(-1) / sigma**2 + s.sum(1)).unsqueeze(-1))
    ca = CoordinateAscent()
    assert torch.allclose(ca.posterior(p, lam), s, atol=1e-12)
    assert torch.allclose(ca.update(p, lam), mu, atol=1e-10)


def test_special_case_r0_is_soft_kmeans_weighted_mean():
    """No global prior (r = 0): one step is the attention-weighted mean of Slot Attention without GRU/MLP."""
    p = make_problem(7, 2, 30, 3, 4, 1, 1.0, "flat", ragged=False)
    lam = p.lam0
    logits = -0.5 * torch.cdist(p.g, lam) ** 2  # Euclidean similarity
    attn = torch.softmax(logits, dim=-1)  # softmax over slots
    weighted_mean = (attn / attn.sum(1, keepdim=True)).transpose(1, 2) @ p.g
    assert torch.allclose(CoordinateAscent().update(p, lam), weighted_mean, atol=1e-10)


@pytest.mark.parametrize("norm", [1e2, 1e3, 1e4])
def test_stays_finite_for_large_norm_embeddings(norm):
    p = make_problem(11, 2, 64, 4, 8, 100, norm, "gmm", dtype=torch.float32)
    res = CoordinateAscent().solve(p, 5)
    assert torch.isfinite(res.lam).all() and torch.isfinite(res.q).all()
    assert torch.allclose(res.q.sum(-1)[p.mask], torch.ones((), dtype=res.q.dtype), atol=1e-5)


def test_padding_is_ignored():
    """Values in padded positions never change Λ or q of real observations.

    Not a duplicate of the conformance ``padding`` check: that one runs in float32 with atol 1e-4 and
    appends padded rows; this one overwrites them in place in float64 with allclose's default tolerance,
    so it also catches a leak ~10⁴ times smaller (e.g. 1e-9 · Σ_j g_ij added to the M-step's total)."""
    p = make_problem(13, 2, 20, 3, 2, 4, 2.0, "gmm", ragged=True)
    ca = CoordinateAscent()
    a = ca.solve(p, 6)
    g2 = p.g.clone()
    g2[~p.mask] = 1e3
    p.g = g2
    b = ca.solve(p, 6)
    assert torch.allclose(a.lam, b.lam) and torch.allclose(a.q, b.q)
    assert (b.q[~p.mask] == 0).all()


@pytest.mark.parametrize("far", [11.0, 12.0, 14.0, 30.0])  # slot mass ≈ 1e-27, 1e-32, 1e-43 (subnormal), 0
def test_a_nearly_empty_slot_under_a_flat_prior_keeps_its_place_and_a_finite_gradient(far):
    # The weighted mean's gradient ∝ 1/mass² overflowed for a slot holding ~1e-30 of one observation
    # (a blobs run with prior=flat stopped: "gradient of parameter 'lambda0' is not finite").
    g = (torch.randn(1, 20, 2, generator=torch.Generator().manual_seed(0)) * 0.1).requires_grad_()
    lam0 = torch.tensor([[[0.0, 0.0], [far, 0.0]]], requires_grad=True)
    p = InnerProblem(g=g, mask=torch.ones(1, 20, dtype=torch.bool), prior=FlatPrior(),
                     potential=EuclideanPotential(), lam0=lam0, log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(2)))
    out = CoordinateAscent().solve(p, 3)
    assert torch.equal(out.lam[0, 1], lam0[0, 1].detach())  # no data: it stays where it was
    torch.testing.assert_close(out.lam[0, 0], g[0].mean(0), rtol=0, atol=1e-6)
    (out.lam.sum() + out.q.sum()).backward()
    assert torch.isfinite(lam0.grad).all() and torch.isfinite(g.grad).all()


def test_the_q_step_uses_the_potentials_own_logits():
    """A subclass that changes ψ, or a third-party closed-form potential, gets the q that maximises *its* surrogate."""
    from mpmkit.potentials import Potential
    from mpmkit.solvers.base import masked_softmax

    class Tempered(EuclideanPotential):
        def logits(self, g, lam):
            return 0.25 * super().logits(g, lam)

    class OwnEuclidean(Potential):  # closed form, written from scratch (no relative_logits of its own)
        closed_form = True

        def logits(self, g, lam):
            return -0.5 * torch.cdist(g, lam) ** 2

    p = make_problem(4, 2, 15, 3, 2, 4, 2.0, "gmm")
    ca = CoordinateAscent()
    for pot in (Tempered(), OwnEuclidean(), EuclideanPotential()):
        q = ca.posterior(p.__class__(**{**p.__dict__, "potential": pot}), p.lam0)
        want = masked_softmax(pot.logits(p.g, p.lam0) + p.log_pz(p.lam0).unsqueeze(1), p.mask)
        torch.testing.assert_close(q, want)
    plain = ca.posterior(p, p.lam0)
    assert (ca.posterior(p.__class__(**{**p.__dict__, "potential": Tempered()}), p.lam0) - plain).abs().max() > 0.05
