"""L^MPM is a lower bound on log p(x, Λ) where the likelihood is tractable, tight at the exact posterior."""
from __future__ import annotations

import math

import torch

from mpmkit import Batch, CoordinateAscent, EuclideanPotential, GMMPrior, MPM, MixtureLikelihood, gaussian_log_prob
from mpmkit.batch import pad_datasets


class UnitGaussian(MixtureLikelihood):
    def log_prob(self, x, lam, mask):
        return gaussian_log_prob(x.unsqueeze(2), lam.unsqueeze(1))


def make(beta=1.0, K=3, steps=3, seed=0):
    torch.manual_seed(seed)
    model = MPM(prior=GMMPrior(6, 2), likelihood=UnitGaussian(), potential=EuclideanPotential(),
                solver=CoordinateAscent(), num_slots=K, slot_dim=2, inner_steps=steps, beta=beta).double()
    xs = [torch.randn(n, 2, dtype=torch.float64) * 3 for n in (12, 30, 7)]
    x, mask = pad_datasets(xs)
    return model, Batch(x=x, mask=mask)


def log_joint(model, batch, lam):
    """log p(λ|η) + Σ_j log Σ_k p(z=k|λ) p(x_j|z=k,λ): the data log-likelihood L_i(Λ, θ, η)."""
    ll = model.likelihood.log_prob(batch.x, lam, batch.mask) + model.log_pz(lam).unsqueeze(1)
    per_obs = torch.logsumexp(ll, -1) * batch.mask
    return model.prior.log_prob(lam) + per_obs.sum(1)


def test_mpm_objective_is_a_lower_bound():
    model, batch = make()
    inf = model.infer(batch)
    bound = model.elbo(batch, inf).total
    exact = log_joint(model, batch, inf.lam)
    assert (bound <= exact + 1e-9).all()


def test_bound_is_tight_when_potential_equals_likelihood():
    """ψ = log p(x|z,λ) + const, so q^T is the exact posterior given Λ^T and the gap is zero."""
    model, batch = make()
    inf = model.infer(batch)
    assert torch.allclose(model.elbo(batch, inf).total, log_joint(model, batch, inf.lam), atol=1e-9)


def test_bound_gap_is_the_kl_for_any_other_q():
    model, batch = make()
    inf = model.infer(batch)
    gen = torch.Generator().manual_seed(1)
    q = torch.softmax(torch.randn(inf.q.shape, generator=gen, dtype=torch.float64), -1) * batch.mask.unsqueeze(-1)
    inf.q = q
    gap = log_joint(model, batch, inf.lam) - model.elbo(batch, inf).total
    post = torch.softmax(model.likelihood.log_prob(batch.x, inf.lam, batch.mask), -1)
    kl = (torch.special.xlogy(q, q) - torch.special.xlogy(q, post) * (q > 0)).sum((1, 2))
    assert torch.allclose(gap, kl, atol=1e-9) and (gap > 0).all()


def test_beta_scales_the_kl_to_p_z_which_for_uniform_p_z_is_the_entropy_up_to_a_constant():
    model, batch = make(beta=0.01)
    inf = model.infer(batch)
    t = model.elbo(batch, inf)
    full = model.elbo(batch, inf, beta=1.0)
    assert torch.allclose(full.total - t.total, 0.99 * (t.entropy + t.log_pz))
    n = batch.mask.sum(1).to(t.log_pz.dtype)
    assert torch.allclose(t.log_pz, -n * math.log(model.num_slots))  # uniform p(z): a constant
    # so the gradients of β·(E_q log p(z) + H[q]) and β·H[q] agree
    g1 = torch.autograd.grad((0.01 * (t.entropy + t.log_pz)).sum(), inf.q, retain_graph=True)[0]
    g2 = torch.autograd.grad((0.01 * t.entropy).sum(), inf.q, retain_graph=True)[0]
    m = batch.mask.unsqueeze(-1)
    assert torch.allclose((g1 - g2) * m, torch.full_like(g1, -0.01 * math.log(model.num_slots)) * m)


def test_loss_gradient_reaches_all_global_parameters():
    model, batch = make()
    loss, _, _ = model(batch)
    loss.backward()
    assert model.lambda0.grad is not None and model.lambda0.grad.abs().sum() > 0
    assert model.prior.centres.grad is not None and model.prior.centres.grad.abs().sum() > 0


def test_elbo_per_observation_normalisation():
    model, batch = make()
    loss, terms, _ = model(batch)
    assert math.isclose(float(loss.detach()), -float(terms.total.detach().sum() / batch.mask.sum()), rel_tol=1e-12)


def test_logged_elbo_is_the_true_bound_and_the_terms_add_up():
    """metrics()["elbo"] is L at β = 1 (a lower bound on log p(x)) whatever β training uses; "objective" is β's."""
    model, batch = make(beta=0.0)
    inf = model.infer(batch)
    t = model.elbo(batch, inf)
    m = t.metrics()
    n = float(batch.mask.sum())
    exact = float(log_joint(model, batch, inf.lam).detach().sum()) / n
    assert math.isclose(m["elbo"], float(model.elbo(batch, inf, beta=1.0).total.detach().sum()) / n, rel_tol=1e-12)
    assert m["elbo"] <= exact + 1e-12 and m["objective"] > exact  # β = 0 drops −KL(q‖p(z|λ)) ≤ 0: not a bound
    assert math.isclose(m["elbo"], m["log_prior"] + m["log_lik"] + m["log_pz"] + m["entropy"], rel_tol=1e-12)
    assert math.isclose(m["objective"], m["log_prior"] + m["log_lik"], rel_tol=1e-12)


def test_a_likelihood_that_is_minus_inf_on_padding_leaves_the_elbo_finite_and_unchanged():
    class PadHostile(UnitGaussian):
        def log_prob(self, x, lam, mask):
            return torch.where(mask.unsqueeze(-1), super().log_prob(x, lam, mask), -math.inf)

    model, batch = make()
    inf = model.infer(batch)
    want = model.elbo(batch, inf).total
    model.likelihood = PadHostile()
    got = model.elbo(batch, inf).total
    assert torch.isfinite(got).all() and torch.equal(got, want)


def test_padding_must_be_finite():
    import pytest

    with pytest.raises(ValueError, match="pad_value must be finite.*0 · NaN"):
        pad_datasets([torch.zeros(2, 2), torch.zeros(3, 2)], pad_value=math.nan)
