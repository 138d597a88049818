"""Probabilistic Slot Attention components: EM monotonicity, reduction to Proposition 1, ARD, SMCC."""
from __future__ import annotations

import dataclasses
import math

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings

from mpmkit import CoordinateAscent, EuclideanPotential, FlatPrior, GaussianPrior, GMMPrior, InnerProblem, MPM
from mpmkit.errors import IncompatibleSolverError
from mpmkit.likelihoods import MixtureLikelihood
from mpmkit.metrics import smcc
from mpmkit.model import surrogate_elbo
from mpmkit.psa import (DEAD, PSAEM, AggregatePosterior, PSAPotential, PSAPrior, active_slots, diag_gaussian_logits, pack,
                        unpack)


def problem(seed, B, N, K, D, scale, base="gmm", dtype=torch.float64, lam_spread=1.0, prior_scale=1.0,
            var_prior=(0.0, 0.0)):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(B, N, D, generator=gen, dtype=dtype) * scale
    mask = torch.rand(B, N, generator=gen) > 0.3
    mask[:, 0] = True
    base_prior = {"flat": FlatPrior, "gaussian": lambda: GaussianPrior(D, scale=2.0),
                  "gmm": lambda: GMMPrior(3, D, scale=prior_scale, init_scale=scale)}[base]()
    prior = PSAPrior(base_prior, var_shape=var_prior[0], var_rate=var_prior[1]).to(dtype)
    mu = torch.randn(B, K, D, generator=gen, dtype=dtype) * scale
    log_var = torch.randn(B, K, D, generator=gen, dtype=dtype) * lam_spread
    log_pi = torch.log_softmax(torch.randn(B, K, generator=gen, dtype=dtype), -1)
    potential = PSAPotential()
    return InnerProblem(g=g, mask=mask, prior=prior, potential=potential, lam0=pack(mu, log_var, log_pi),
                        log_pz=potential.log_mixing)


def elbo(p, lam, q):
    return surrogate_elbo(p.g, p.mask, lam, q, p.prior, p.potential, p.log_pz)


def test_diag_gaussian_logits_match_the_density():
    gen = torch.Generator().manual_seed(0)
    g, mu = torch.randn(2, 7, 3, generator=gen, dtype=torch.float64), torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    log_var = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    ref = torch.distributions.Normal(mu.unsqueeze(1), (0.5 * log_var).exp().unsqueeze(1)).log_prob(g.unsqueeze(2)).sum(-1)
    assert torch.allclose(diag_gaussian_logits(g, mu, log_var), ref, atol=1e-10)


def test_pack_unpack_roundtrip_and_bad_width():
    mu, lv, lp = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.log_softmax(torch.randn(2, 3), -1)
    s = unpack(pack(mu, lv, lp))
    assert torch.equal(s.mu, mu) and torch.equal(s.log_var, lv) and torch.allclose(s.log_pi, lp)
    with pytest.raises(ValueError, match="2D \\+ 1"):
        unpack(torch.randn(2, 3, 4))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), B=st.integers(1, 3), N=st.integers(1, 30), K=st.integers(1, 5),
       D=st.integers(1, 4), scale=st.sampled_from([0.3, 1.0, 10.0]), base=st.sampled_from(["flat", "gaussian", "gmm"]),
       learn=st.sampled_from([(True, True), (True, False), (False, True), (False, False)]),
       prior_scale=st.sampled_from([0.2, 1.0, 3.0]), var_prior=st.sampled_from([(0.0, 0.0), (1.0, 0.01), (3.0, 2.0)]))
def test_em_never_lowers_the_surrogate_elbo(seed, B, N, K, D, scale, base, learn, prior_scale, var_prior):
    p = problem(seed, B, N, K, D, scale, base, prior_scale=prior_scale, var_prior=var_prior)
    em = PSAEM(learn_mixing=learn[0], learn_variance=learn[1])
    lam = p.lam0
    before = elbo(p, lam, em.posterior(p, lam))
    for _ in range(5):
        lam = em.update(p, lam)
        after = elbo(p, lam, em.posterior(p, lam))
        assert torch.isfinite(after).all()
        assert (after >= before - 1e-8 * (1 + before.abs())).all(), (after - before)
        before = after


@pytest.mark.parametrize("base", ["flat", "gaussian", "gmm"])
def test_uniform_weights_and_unit_variances_reduce_to_proposition_1(base):
    p = problem(3, 3, 25, 4, 3, 2.0, base)
    mu0 = unpack(p.lam0).mu
    K = mu0.shape[1]
    lam = pack(mu0, torch.zeros_like(mu0), torch.full(mu0.shape[:2], -math.log(K), dtype=mu0.dtype))
    em = PSAEM(learn_mixing=False, learn_variance=False)
    ca_problem = InnerProblem(g=p.g, mask=p.mask, prior=p.prior.base, potential=EuclideanPotential(), lam0=mu0,
                              log_pz=lambda l: l.new_full(l.shape[:2], -math.log(l.shape[1])))
    ca, mu = CoordinateAscent(), mu0
    for _ in range(4):
        assert torch.allclose(em.posterior(p, lam), ca.posterior(ca_problem, mu), atol=1e-12)
        lam, mu = em.update(p, lam), ca.update(ca_problem, mu)
        assert torch.allclose(unpack(lam).mu, mu, atol=1e-10)


def test_em_recovers_weights_and_variances_and_ard_keeps_every_component():
    gen = torch.Generator().manual_seed(1)
    centres = torch.tensor([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]], dtype=torch.float64)
    stds = torch.tensor([[0.5, 1.5], [1.0, 0.3], [0.8, 0.8]], dtype=torch.float64)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    z = torch.multinomial(weights, 4000, replacement=True, generator=gen)
    g = (centres[z] + stds[z] * torch.randn(4000, 2, generator=gen, dtype=torch.float64)).unsqueeze(0)
    K = 6
    mu0 = g[0, torch.randperm(4000, generator=gen)[:K]].unsqueeze(0)
    lam0 = pack(mu0, torch.zeros_like(mu0), torch.full((1, K), -math.log(K), dtype=torch.float64))
    pot = PSAPotential()
    p = InnerProblem(g=g, mask=torch.ones(1, 4000, dtype=torch.bool), prior=PSAPrior(FlatPrior()), potential=pot,
                     lam0=lam0, log_pz=pot.log_mixing)
    lam = PSAEM().solve(p, steps=300).lam
    keep = active_slots(lam, tau=0.05)[0]
    s = unpack(lam)
    # The fitted mixture explains the data as well as the truth does (within a small margin) ...
    truth = torch.logsumexp(diag_gaussian_logits(g, centres[None], (2 * stds.log())[None]) + weights.log(), -1).mean()
    fitted = torch.logsumexp(diag_gaussian_logits(g, s.mu, s.log_var) + s.log_pi[:, None], -1).mean()
    assert fitted >= truth - 0.01
    # ... and the kept slots nearest each true component carry its weight (EM may split a
    # component over several slots; ARD prunes only slots left with almost no mass).
    owner = ((s.mu[0][None] - centres[:, None]) ** 2).sum(-1).argmin(0)  # true component of each slot
    for c in range(3):
        mass = float((s.pi[0] * keep * (owner == c)).sum())
        assert abs(mass - float(weights[c])) < 0.03, (c, mass)
    assert set(owner[keep].tolist()) == {0, 1, 2}  # ARD keeps at least one slot per true component
    assert int(keep.sum()) < K  # ... and drops at least one of the 6 slots fitted to 3 components


def test_coordinate_ascent_refuses_the_psa_potential_and_psa_em_refuses_euclidean():
    p = problem(0, 1, 5, 2, 2, 1.0)
    with pytest.raises(IncompatibleSolverError, match="closed form"):
        CoordinateAscent().check(p)
    with pytest.raises(IncompatibleSolverError, match="PSAPotential"):
        PSAEM().check(InnerProblem(g=p.g, mask=p.mask, prior=FlatPrior(), potential=EuclideanPotential(),
                                   lam0=unpack(p.lam0).mu, log_pz=p.log_pz))


class _DiagGaussianLikelihood(MixtureLikelihood):
    """log N(x; μ_k, σ²_k) with λ read from the PSA layout (g_φ = identity, so ψ is the exact likelihood)."""

    def log_prob(self, x, lam, mask):
        s = unpack(lam)
        return diag_gaussian_logits(x, s.mu, s.log_var) * mask.unsqueeze(-1)


def test_mpm_with_psa_is_a_lower_bound_tight_at_the_em_fixed_point():
    """With ψ equal to the likelihood, q from EM is the exact posterior: the ELBO equals log p(x | λ) + log p(λ)."""
    torch.manual_seed(0)
    model = MPM(prior=PSAPrior(GMMPrior(2, 2)), likelihood=_DiagGaussianLikelihood(), potential=PSAPotential(),
                solver=PSAEM(), num_slots=3, slot_dim=2, inner_steps=20).double()
    x = torch.randn(2, 40, 2, dtype=torch.float64) * 3
    from mpmkit import Batch

    batch = Batch(x=x, mask=torch.ones(2, 40, dtype=torch.bool))
    inf = model.infer(batch)
    terms = model.elbo(batch, inf)
    s = unpack(inf.lam)
    log_marginal = torch.logsumexp(diag_gaussian_logits(x, s.mu, s.log_var) + s.log_pi[:, None], -1).sum(1)
    exact = log_marginal + model.prior.log_prob(inf.lam)
    assert torch.allclose(terms.total, exact, atol=1e-8)
    # any other q is a strict lower bound
    other = torch.softmax(torch.randn_like(inf.q), -1)
    from mpmkit import Inference

    assert (model.elbo(batch, Inference(g=inf.g, lam=inf.lam, q=other, trace={})).total < exact).all()
    # gradients reach η (the GMM centres) and λ⁰ through the unrolled EM
    (-terms.total.sum()).backward()
    assert model.prior.base.centres.grad.abs().sum() > 0 and model.lambda0.grad.abs().sum() > 0


def test_aggregate_posterior_is_a_normalised_mixture_and_samples_from_it():
    mu = torch.tensor([[[-3.0], [2.0]], [[0.5], [4.0]]], dtype=torch.float64)
    var = torch.full_like(mu, 0.25)
    pi = torch.tensor([[0.7, 0.3], [0.5, 0.5]], dtype=torch.float64)
    agg = AggregatePosterior(mu, var, pi)
    grid = torch.linspace(-10, 10, 20001, dtype=torch.float64).unsqueeze(-1)
    mass = torch.trapezoid(agg.log_prob(grid).exp(), grid[:, 0])
    assert abs(float(mass) - 1) < 1e-6
    draws = agg.sample(20000, 1, generator=torch.Generator().manual_seed(0))[:, 0, 0]
    assert abs(float((draws < -1).double().mean()) - 0.35) < 0.02  # weight of the component at -3
    # ARD pruning (π < τ) drops slots and renormalises each dataset's weights: still a density
    lam = pack(mu, var.log(), torch.tensor([[0.96, 0.04], [0.99, 0.01]], dtype=torch.float64).log())
    pruned = AggregatePosterior.from_lambdas(lam, tau=0.05)
    assert torch.allclose(pruned.weight, torch.tensor([0.5, 0.0, 0.5, 0.0], dtype=torch.float64))
    assert abs(float(torch.trapezoid(pruned.log_prob(grid).exp(), grid[:, 0])) - 1) < 1e-6
    with pytest.raises(ValueError, match="pi >= 0"):
        AggregatePosterior(mu, var, torch.zeros_like(pi))


def test_smcc_is_one_for_affinely_related_permuted_slots_and_low_for_unrelated():
    rng = np.random.default_rng(0)
    M, K, D, N = 60, 4, 5, 30
    a = rng.normal(size=(M, K, D))
    W, c = rng.normal(size=(D, 3)), rng.normal(size=3)
    perm = np.stack([rng.permutation(K) for _ in range(M)])
    b = np.empty((M, K, 3))
    q_a = np.eye(K)[rng.integers(0, K, size=(M, N))]
    q_b = np.empty_like(q_a)
    for i in range(M):
        b[i, perm[i]] = a[i] @ W + c  # slot k of a is slot perm[i, k] of b
        q_b[i][:, perm[i]] = q_a[i]
    assert smcc(a, b, q_a, q_b) > 0.999
    assert smcc(a, rng.normal(size=(M, K, 3)), q_a, q_b) < 0.3
    # without q, the alternating matching finds the permutation when slots start mostly aligned
    b_mild = np.stack([(a[i] @ W + c)[np.r_[1, 0, 2:K]] if i % 5 == 0 else a[i] @ W + c for i in range(M)])
    assert smcc(a, b_mild) > 0.999
    with pytest.raises(ValueError, match="same M inputs"):
        smcc(a, b[:10])


def test_pruning_annihilates_surplus_slots_after_the_warm_up():
    """Two well-separated clusters, four slots: plain EM keeps > 2 slots with real mass (it splits a
    cluster); with ``prune_mass`` the surplus slots die and exactly two remain, on the clusters."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-5.0, 0.0], [5.0, 1.0]], dtype=torch.float64)
    z = torch.randint(0, 2, (300,), generator=gen)
    g = (centres[z] + torch.randn(300, 2, generator=gen, dtype=torch.float64)).unsqueeze(0)
    mu0 = torch.tensor([[[-6.0, 0.5], [-4.0, -0.5], [4.0, 2.0], [6.0, 0.0]]], dtype=torch.float64)
    lam0 = pack(mu0, torch.zeros_like(mu0), torch.full((1, 4), -math.log(4), dtype=torch.float64))
    pot = PSAPotential()
    p = InnerProblem(g=g, mask=torch.ones(1, 300, dtype=torch.bool), prior=PSAPrior(), potential=pot, lam0=lam0,
                     log_pz=pot.log_mixing)
    plain = PSAEM().solve(p, 60)
    assert int(active_slots(plain.lam, 0.05).sum()) > 2
    pruned = PSAEM(prune_mass=0.1).solve(p, 60)
    keep = active_slots(pruned.lam, 0.05)[0]
    assert int(keep.sum()) == 2
    kept_mu = unpack(pruned.lam).mu[0][keep]
    assert torch.cdist(kept_mu, centres).min(0).values.max() < 0.3
    q = pruned.q[0]
    assert torch.allclose(q.sum(-1), torch.ones(300, dtype=torch.float64)) and float(q[:, ~keep].max()) < 1e-12
    with pytest.raises(ValueError, match="prune_mass"):
        PSAEM(prune_mass=1.5)
    traced = PSAEM(prune_mass=0.1, trace=True).solve(p, 60)  # warm-up + pruning halves: one value per step
    assert traced.trace["steps"] == 60 and len(traced.trace["surrogate_elbo"]) == 61
    assert traced.trace["surrogate_elbo"] == PSAEM(trace=True).solve(p, 30).trace["surrogate_elbo"][:31] + \
        traced.trace["surrogate_elbo"][31:]  # the first 30 steps are plain EM's


@pytest.mark.parametrize("base", ["flat", "gmm"])
def test_an_empty_slot_keeps_its_values_and_gets_finite_gradients(base):
    """A slot no observation reaches (N_k = 0) keeps μ and σ², and backpropagating through the EM
    steps gives finite gradients (no 0/0 in the branch ``torch.where`` discards), annihilating
    slots by ``prune_mass`` included."""
    p = problem(0, 2, 40, 3, 4, 1.0, base=base)
    s = unpack(p.lam0)
    mu = s.mu.clone()
    mu[:, 2] = 1e3  # far from every g
    lam0 = pack(mu, s.log_var, s.log_pi).requires_grad_(True)
    g = p.g.clone().requires_grad_(True)
    import dataclasses

    for pruning in (PSAEM(prune_mass=0.3, prune_after=1), PSAEM(prune_mass=0.0)):
        pruned = pruning.solve(dataclasses.replace(p, lam0=lam0, g=g), 3)
        gl, gg = torch.autograd.grad(pruned.lam.sum() + pruned.q.sum(), (lam0, g))
        assert torch.isfinite(gl).all() and torch.isfinite(gg).all()
    assert (unpack(PSAEM(prune_mass=0.3, prune_after=1).solve(dataclasses.replace(p, lam0=lam0, g=g), 3).lam).log_pi
            <= DEAD + 1).any()  # the test does annihilate a slot
    out = PSAEM().solve(dataclasses.replace(p, lam0=lam0, g=g), 3)
    if base == "flat":  # (the GMM prior's MAP step pulls the slot back towards the data)
        assert float(out.q[..., 2].detach().sum()) == 0.0
        assert torch.equal(unpack(out.lam).mu[:, 2].detach(), mu[:, 2])
    loss = out.lam.sum() + (out.q * torch.arange(3.0, dtype=out.q.dtype)).sum()
    loss.backward()
    assert torch.isfinite(lam0.grad).all() and torch.isfinite(g.grad).all()


def test_a_nearly_empty_slot_in_float32_gets_finite_gradients():
    """N_k tiny but not 0 (below the "has data" threshold) in float32: the gradients through the
    σ² and μ updates stay finite (a guard; the earlier code passes it too)."""
    g = torch.randn(1, 50, 2, generator=torch.Generator().manual_seed(0))
    mu = torch.tensor([[[0.0, 0.0], [11.0, 0.0]]])
    lam0 = pack(mu, torch.zeros_like(mu), torch.full((1, 2), -math.log(2))).requires_grad_(True)
    pot = PSAPotential()
    p = InnerProblem(g=g, mask=torch.ones(1, 50, dtype=torch.bool), prior=PSAPrior(), potential=pot, lam0=lam0,
                     log_pz=pot.log_mixing)
    nk = PSAEM().posterior(p, lam0).sum(1)[0, 1]
    assert 0 < float(nk.detach()) < 1e-8  # the case: has data "no", but not exactly zero
    out = PSAEM().solve(p, 2)
    (grad,) = torch.autograd.grad(unpack(out.lam).log_var.sum() + unpack(out.lam).mu.sum(), lam0)
    assert torch.isfinite(grad).all()


def test_with_prune_mass_keeps_the_solvers_other_options():
    from mpmkit.psa import with_prune_mass

    base = PSAEM(backward="implicit", var_floor=0.05, learn_mixing=True, prune_mass=0.03, prune_after=2)
    out = with_prune_mass(base, 0.0)
    assert out is not base and out.prune_mass == 0.0 and base.prune_mass == 0.03
    assert (out.var_floor, out.prune_after, out.backward) == (0.05, 2, "implicit")
    assert with_prune_mass(None, 0.1).prune_mass == 0.1
    with pytest.raises(ValueError, match="prune_mass"):
        with_prune_mass(base, 1.0)
    # another solver is kept as it is, never silently swapped for PSA-EM
    from mpmkit.errors import ConfigError
    from mpmkit.solvers.pyro_nuts import PyroNUTS

    nuts = PyroNUTS()
    assert with_prune_mass(nuts, 0.0) is nuts
    with pytest.raises(ConfigError, match="ard_prune=0.03 .* 'pyro-nuts' .* set ard_prune=0"):
        with_prune_mass(nuts, 0.03)


def test_beta_zero_drops_the_mixing_term_so_nothing_rewards_one_slot():
    """With PSA's π, E_q[log π] is part of −KL(q ‖ p(z | λ)); β = 0 must drop it with the entropy
    (at weight 1 it is maximised by putting every observation in one slot)."""
    torch.manual_seed(0)
    model = MPM(prior=PSAPrior(GMMPrior(2, 2)), likelihood=_DiagGaussianLikelihood(), potential=PSAPotential(),
                solver=PSAEM(), num_slots=3, slot_dim=2, beta=0.0)
    from mpmkit import Batch

    batch = Batch(x=torch.randn(2, 30, 2) * 3, mask=torch.ones(2, 30, dtype=torch.bool))
    inf = model.infer(batch)
    t = model.elbo(batch, inf)
    n = batch.mask.sum()
    assert torch.allclose(t.loss(), -(t.log_prior + t.log_lik).sum() / n)
    assert float(t.log_pz.detach().abs().sum()) > 0  # the term exists and is left out
    t1 = model.elbo(batch, inf, beta=1.0)
    assert torch.allclose(t1.total, t1.log_prior + t1.log_lik + t1.log_pz + t1.entropy)


def test_smcc_min_mass_leaves_out_empty_slots():
    """Two runs whose active slots are affinely related but whose empty slots hold noise: with the
    empty slots left out (min_mass), SMCC is 1; with them in, it is lower."""
    rng = np.random.default_rng(0)
    m, k, n = 40, 3, 20
    a = rng.normal(size=(m, k, 2))
    b = a @ np.array([[2.0, 0.5], [-0.3, 1.0]]) + 1.0
    b[:, 2] = rng.normal(size=(m, 2)) * 5  # slot 2 is empty in b (and in a): arbitrary vectors
    q = np.zeros((m, n, k))
    q[:, :12, 0] = 1
    q[:, 12:, 1] = 1
    assert smcc(a, b, q, q, min_mass=0.05) == pytest.approx(1.0, abs=1e-9)
    assert smcc(a, b, q, q) < 0.95
    with pytest.raises(ValueError, match="needs q_a"):
        smcc(a, b, min_mass=0.05)


# -- the prior on the variances, and the Pyro solvers on PSA's λ ------------------------------------

def test_the_variance_prior_is_an_inverse_gamma_in_log_coordinates():
    """exp(−α ℓ − β e^{−ℓ}) over ℓ = log σ² integrates to Γ(α) β^{−α}: IG(α, β) on σ², moved to ℓ."""
    for a, b in [(1.0, 0.01), (2.5, 0.7), (0.5, 3.0)]:
        prior = PSAPrior(FlatPrior(), var_shape=a, var_rate=b)
        ell = torch.linspace(-40, 60, 400_001, dtype=torch.float64)
        lam = pack(torch.zeros(ell.numel(), 1, 1, dtype=torch.float64), ell.reshape(-1, 1, 1),
                   torch.zeros(ell.numel(), 1, dtype=torch.float64))
        dens = prior.log_prob(lam).exp()
        mass = torch.trapezoid(dens, ell)
        assert math.isclose(float(mass), math.gamma(a) * b**-a, rel_tol=1e-6)
    assert PSAPrior(GMMPrior(2, 1), var_shape=1.0, var_rate=0.01).proper
    assert not PSAPrior(GMMPrior(2, 1)).proper and not PSAPrior(FlatPrior(), var_shape=1.0, var_rate=0.01).proper
    with pytest.raises(ValueError, match="both 0 .* or\\s+both finite and > 0"):
        PSAPrior(FlatPrior(), var_shape=1.0)


def test_raw_density_over_the_logits_is_the_dirichlet_moved_to_logit_coordinates():
    """raw_log_prob adds the Jacobian Σ log π of r → π and pins the shift of r: over r ∈ R² it integrates
    to B(1 + ε, 1 + ε) · √(2π), the Dirichlet's and the pin's normalisers. log_prob ignores the shift."""
    for eps in (1e-3, 0.5, 2.0):
        prior = PSAPrior(FlatPrior(), dirichlet=eps)
        r = torch.linspace(-40, 40, 1601, dtype=torch.float64)
        r1, r2 = torch.meshgrid(r, r, indexing="ij")
        logits = torch.stack([r1.flatten(), r2.flatten()], -1)  # [M, K = 2]
        lam = torch.cat([torch.zeros(len(logits), 2, 2, dtype=torch.float64), logits.unsqueeze(-1)], -1)
        dens = prior.raw_log_prob(lam).exp().reshape(len(r), len(r))
        mass = torch.trapezoid(torch.trapezoid(dens, r), r)
        expected = math.gamma(1 + eps) ** 2 / math.gamma(2 + 2 * eps) * math.sqrt(2 * math.pi)
        assert math.isclose(float(mass), expected, rel_tol=1e-4), (eps, float(mass), expected)
    p = problem(0, 2, 10, 3, 2, 1.0)
    shifted = p.lam0.clone()
    shifted[..., -1] += 2.0  # the same π
    torch.testing.assert_close(p.prior.log_prob(shifted), p.prior.log_prob(p.lam0), rtol=0, atol=1e-12)
    jac = unpack(p.lam0).log_pi.sum(-1)
    torch.testing.assert_close(p.prior.raw_log_prob(p.lam0), p.prior.log_prob(p.lam0) + jac, rtol=0, atol=1e-12)
    torch.testing.assert_close(p.prior.raw_log_prob(shifted), p.prior.raw_log_prob(p.lam0) - 2.0, rtol=0, atol=1e-12)
    for bad in ({"dirichlet": -1.0}, {"var_shape": float("nan"), "var_rate": 1.0}, {"var_shape": math.inf, "var_rate": 1.0}):
        with pytest.raises(ValueError, match="finite"):
            PSAPrior(FlatPrior(), **bad)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 4), D=st.integers(1, 3), base=st.sampled_from(["flat", "gmm"]),
       var_prior=st.sampled_from([(0.0, 0.0), (1.0, 0.01), (3.0, 2.0)]))
def test_the_em_fixed_point_is_a_stationary_point_of_the_density_the_pyro_solvers_use(seed, K, D, base, var_prior):
    """PSA-EM and the Pyro solvers target the same log p̂(λ, D) = log p_η(λ) + Σ_j log Σ_k π_k N(g_j; μ_k, σ²_k):
    at EM's fixed point its gradient in every coordinate of λ (μ, log σ², logits of π) vanishes.
    This checks the MAP variance step (S + 2β)/(N_k + 2α) and the Dirichlet step against the density."""
    from mpmkit.solvers.pyro_svi import PyroSVI

    p = problem(seed, 1, 40, K, D, 1.0, base, var_prior=var_prior)
    p.mask[:] = True
    em = PSAEM(var_floor=1e-12)
    out = em.solve(p, 3000)
    if float(unpack(out.lam.detach()).var.min()) < 1e-6:  # a slot collapsed onto one point: no interior optimum
        return
    # two slots on top of each other converge very slowly (a near-saddle): only a converged λ is a fixed point
    assume(float((em.update(p, out.lam) - out.lam).detach().abs().max()) < 1e-10)
    lam = out.lam.detach().clone().requires_grad_()
    PyroSVI(guide="delta").log_density(p, lam).sum().backward()
    assert float(lam.grad.abs().max()) < 1e-6, lam.grad


def test_pyro_solvers_refuse_flat_variances_and_fit_psa_with_a_proper_prior():
    from mpmkit.solvers.pyro_nuts import PyroNUTS
    from mpmkit.solvers.pyro_svi import PyroSVI

    flat = problem(1, 2, 30, 3, 2, 1.0, "gmm")
    for solver in (PyroSVI(num_steps=5), PyroNUTS(num_samples=4, warmup_steps=2, map_steps=2)):
        with pytest.raises(IncompatibleSolverError, match="flat prior .* psa_var_prior.*guide: delta"):
            solver.solve(flat, 1)
    PyroSVI(guide="delta", num_steps=5).solve(flat, 1)  # MAP needs no proper prior

    # three separated clusters, σ = (0.5, 1.5), 30 points each: before, the Normal guide's scale grew
    # without bound along log σ² (flat there) and the fit ended in NaN
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
    g = (centres[torch.arange(90) % 3] + torch.randn(90, 2, generator=gen) * torch.tensor([0.5, 1.5])).unsqueeze(0)
    pot = PSAPotential()
    lam0 = pack(centres.unsqueeze(0) + torch.randn(1, 3, 2, generator=gen), torch.zeros(1, 3, 2),
                torch.full((1, 3), -math.log(3)))
    p = InnerProblem(g=g, mask=torch.ones(1, 90, dtype=torch.bool), potential=pot, lam0=lam0, log_pz=pot.log_mixing,
                     prior=PSAPrior(GaussianPrior(2, scale=10.0), var_shape=1.0, var_rate=0.01))
    em, svi = unpack(PSAEM().solve(p, 200).lam.detach()), PyroSVI(num_steps=1000).solve(p, 1)
    assert torch.isfinite(svi.lam).all() and torch.isfinite(svi.trace["scale"]).all()
    s = unpack(svi.lam)
    # a posterior this peaked has its mean at the MAP that EM finds...
    assert float((s.mu - em.mu).norm(dim=-1).max()) < 0.15
    assert float((s.log_var - em.log_var).abs().max()) < 0.2 and float((s.pi - em.pi).abs().max()) < 0.05
    # ...and the guide's spread of a mean is the textbook σ_d / √N_k
    ratio = svi.trace["scale"][..., :2] / (em.var.sqrt() / 30**0.5)
    assert float(ratio.min()) > 0.6 and float(ratio.max()) < 1.6, ratio


def test_svi_converges_for_an_empty_slots_mixing_weight():
    """With the Dirichlet moved to logit coordinates (raw_log_prob), an empty slot's logit has a posterior
    of width about 1; without the Jacobian its density fell off like π^ε and the fit drifted for ever."""
    from mpmkit.solvers.pyro_svi import PyroSVI

    gen = torch.Generator().manual_seed(0)
    g = (torch.tensor([[-6.0, 0.0], [6.0, 0.0]])[torch.arange(60) % 2] + torch.randn(60, 2, generator=gen)).unsqueeze(0)
    pot = PSAPotential()
    lam0 = pack(torch.tensor([[[-6.0, 0.0], [6.0, 0.0], [0.0, 30.0], [0.0, -30.0]]]), torch.zeros(1, 4, 2),
                torch.full((1, 4), -math.log(4)))
    p = InnerProblem(g=g, mask=torch.ones(1, 60, dtype=torch.bool), potential=pot, lam0=lam0, log_pz=pot.log_mixing,
                     prior=PSAPrior(GaussianPrior(2, scale=10.0), var_shape=1.0, var_rate=0.01))
    short, long = (PyroSVI(num_steps=n).solve(p, 1) for n in (1000, 3000))
    for r in (short, long):
        assert float(r.trace["scale"][0, 2:, -1].max()) < 2.0  # the two empty slots' logits
        assert float(unpack(r.lam).pi[0, 2:].max()) < 0.03
    assert float((long.lam[0, 2:, -1] - short.lam[0, 2:, -1]).abs().max()) < 0.5  # settled, not drifting


def test_learned_posterior_refuses_psa_lambda_and_names_the_solvers_that_can():
    from mpmkit.components import check_solver
    from mpmkit.solvers.learned_posterior import LearnedPosterior

    p = problem(0, 1, 10, 3, 2, 1.0)
    with pytest.raises(IncompatibleSolverError, match="slot means.*PSAPotential, packs other parameters") as exc:
        check_solver(LearnedPosterior(), p)
    assert "psa-em" in str(exc.value) and "learned-posterior" not in str(exc.value).split("Solvers that can:")[1]
    LearnedPosterior().check(InnerProblem(g=None, mask=None, prior=FlatPrior(), potential=EuclideanPotential(),
                                          lam0=None, log_pz=None))


def test_the_variance_prior_option_is_checked_and_refused_without_psa_variances():
    from mpmkit.errors import ConfigError
    from mpmkit.psa import var_prior

    assert var_prior([0, 0]) == (0.0, 0.0) and var_prior([1, 0.01]) == (1.0, 0.01)
    assert var_prior([0.0, 0.0], "mpm") == (0.0, 0.0)  # the flat default is the paper's model too
    for bad in ([1.0], [1.0, 0.0], [-1.0, 1.0], [float("nan"), 1.0], [True, 1.0]):
        with pytest.raises(ConfigError, match="psa_var_prior"):
            var_prior(bad)
    # the paper's local GMM has σ = 1: a prior on its variances would be silently unused
    with pytest.raises(ConfigError, match="local='mpm' has none .*set local=psa"):
        var_prior([1.0, 0.01], "mpm")
