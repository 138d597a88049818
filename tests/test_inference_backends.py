"""Pyro SVI / NUTS and the learned-posterior solver: agreement with coordinate ascent, gradients, meta-learning."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from mpmkit import Batch, CoordinateAscent, IncompatibleSolverError, UnknownNameError, registry
from mpmkit.components import make_solver
from mpmkit.conformance import make_problem
from mpmkit.metrics import adjusted_rand_index, match_slots
from mpmkit.solvers import GradientAscent, LearnedPosterior, PyroNUTS, PyroSVI


def spiral_setup(num_datasets=6):
    """A spiral-GMM MPM with fixed globals (the data's true T and s, a ring-shaped prior) and held-out data."""
    pytest.importorskip("mpmkit_spiral")
    from mpmkit_spiral.data import collate, generate
    from mpmkit_spiral.family import ring_init
    from mpmkit_spiral.model import build_mpm
    from mpmkit_spiral.transforms import SpiralTransform

    data = generate(num_datasets, seed=3, num_clusters=4, points=100, points_min=60, alpha=1.0, beta=0.5, noise=0.5)
    model = build_mpm(SpiralTransform(1.0, 0.5), CoordinateAscent(), num_clusters=4, num_global=8, inner_steps=30,
                      scale=0.5, prior_scale=2.0)
    radius = float(np.median(np.concatenate([np.linalg.norm(d.x, axis=1) for d in data]))) / 0.5
    with torch.no_grad():
        model.lambda0.copy_(ring_init(4, radius))
        model.prior.centres.copy_(torch.cat([torch.zeros(1, 2), ring_init(8, radius)[1:]]))
    return model.eval(), collate(data)


def test_coordinate_ascent_svi_and_nuts_agree_on_spiral():
    model, batch = spiral_setup()
    solvers = {"coordinate-ascent": make_solver("coordinate-ascent"), "pyro-svi": make_solver("pyro-svi"),
               "pyro-nuts": make_solver("pyro-nuts", num_samples=100, warmup_steps=100)}
    with torch.no_grad():
        out = {name: model.infer(batch, steps=50, solver=s) for name, s in solvers.items()}
    labels = {name: inf.q.argmax(-1).numpy() for name, inf in out.items()}
    names = list(labels)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert adjusted_rand_index(labels[a], labels[b], batch.mask.numpy()) >= 0.95, (a, b)
    truth = batch.extras["labels"].numpy()
    assert adjusted_rand_index(labels["coordinate-ascent"], truth, batch.mask.numpy()) >= 0.9
    # the centres agree too (up to the posterior spread), and NUTS mixed
    nuts = out["pyro-nuts"].trace
    assert nuts["r_hat_max"] < 1.05 and nuts["ess_min"] > 20 and sum(nuts["divergences"]) == 0
    assert nuts["samples"].shape == (2, 100, batch.size, 4, 2) and nuts["r_hat"].shape == (batch.size, 4, 2)
    ca = out["coordinate-ascent"].lam
    for name, tol in (("pyro-nuts", 0.3), ("pyro-svi", 0.1)):  # same centres, up to relabelling the slots
        lam = out[name].lam
        perm = torch.as_tensor(match_slots(torch.cdist(ca, lam).numpy()))
        matched = torch.gather(lam, 1, perm.unsqueeze(-1).expand_as(lam))
        assert (matched - ca).norm(dim=-1).max() < tol, name
    assert (out["pyro-svi"].trace["scale"] < 0.5).all()  # posterior std of a centre with ~20+ points


def conjugate_problem():
    """K = 1, Gaussian prior N(m, s² I), Euclidean ψ: the posterior of λ is N((m/s² + Σ g) / (1/s² + N), 1/(1/s² + N) I)."""
    from mpmkit import EuclideanPotential, GaussianPrior, InnerProblem

    gen = torch.Generator().manual_seed(0)
    B, N, D, s = 2, 20, 2, 0.7
    g = torch.randn(B, N, D, generator=gen) + torch.tensor([2.0, -1.0])
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 12:] = False
    prior = GaussianPrior(D, scale=s)
    with torch.no_grad():
        prior.mean.copy_(torch.tensor([0.5, 0.5]))
    p = InnerProblem(g=g, mask=mask, prior=prior, potential=EuclideanPotential(), lam0=torch.zeros(B, 1, D),
                     log_pz=lambda lam: lam.new_zeros(lam.shape[:2]))
    prec = 1 / s**2 + mask.sum(1).double()
    mean = (prior.mean.detach().double() / s**2 + (g.double() * mask.unsqueeze(-1)).sum(1)) / prec.unsqueeze(-1)
    return p, mean, prec.rsqrt()  # [B, D], [B]


@pytest.mark.slow
def test_nuts_and_svi_recover_the_exact_gaussian_posterior():
    """Location *and* width: NUTS within 4 Monte-Carlo errors and 10 % in std; the mean-field SVI guide
    (exact family here) within 0.5 posterior std and 10 % in scale."""
    p, mean, sd = conjugate_problem()
    nuts = PyroNUTS(num_samples=300, warmup_steps=200).solve(p, 1)
    draws = nuts.trace["samples"].reshape(-1, *p.lam0.shape)[:, :, 0].double()  # [S, B, D]
    mc_err = sd[:, None] / math.sqrt(nuts.trace["ess_min"])
    assert ((draws.mean(0) - mean).abs() < 4 * mc_err).all(), (draws.mean(0), mean)
    assert ((draws.std(0) / sd[:, None] - 1).abs() < 0.10).all(), (draws.std(0), sd)
    svi = PyroSVI(num_steps=1000, num_particles=8).solve(p, 1)
    assert ((svi.lam[:, 0].double() - mean).abs() < 0.5 * sd[:, None]).all()
    assert ((svi.trace["scale"][:, 0].double() / sd[:, None] - 1).abs() < 0.10).all(), (svi.trace["scale"], sd)


def toy_model(solver, seed=0):
    import toy
    from mpmkit.runs import config_for

    cfg = config_for("toy", {"solver": "coordinate-ascent", "inner_steps": 5, "seed": seed})
    fam = toy.ToyFamily()
    torch.manual_seed(seed)
    model = fam.build_model(cfg)
    model.solver = solver
    solver.bind(model.num_slots, model.lambda0.shape[1])
    splits = fam.build_data(cfg)
    return model, splits.collate(list(splits.train))


def test_svi_training_gradient_is_envelope_and_does_not_leak(toy_host):
    """SVI leaves .grad untouched during the inner fit; θ, η get the envelope gradient, λ⁰ none.

    ψ equals the toy likelihood up to constants, so at the inner optimum the partial derivative at
    fixed Λ equals the total derivative that backpropagation through converged coordinate ascent gives.
    """
    svi = PyroSVI(guide="delta")
    model, batch = toy_model(svi)
    with torch.no_grad():  # keep the datasets where both inner loops reach the same optimum
        model.lambda0.copy_(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]))
        same = (model.infer(batch).lam - model.infer(batch, steps=200, solver=CoordinateAscent()).lam).norm(dim=-1)
    keep = same.amax(-1) < 1e-3
    assert keep.sum() >= batch.size // 2
    batch = Batch(x=batch.x[keep], mask=batch.mask[keep])
    loss, _, _ = model(batch)
    assert all(p.grad is None for p in model.parameters())  # nothing leaked from the SVI fit
    loss.backward()
    assert model.lambda0.grad is None and not PyroSVI.differentiable
    g_svi = (model.prior.centres.grad.clone(), model.likelihood.shift.grad.clone())
    model.zero_grad(set_to_none=True)
    model.solver, model.inner_steps = CoordinateAscent(backward="full"), 200
    loss_ca, _, _ = model(batch)
    loss_ca.backward()
    assert torch.allclose(loss.detach(), loss_ca.detach(), rtol=1e-4)
    assert torch.allclose(g_svi[0], model.prior.centres.grad, rtol=1e-2, atol=1e-4)
    assert torch.allclose(g_svi[1], model.likelihood.shift.grad, rtol=1e-2, atol=1e-4)


def test_svi_likelihood_evidence_matches_potential_when_psi_is_the_likelihood(toy_host):
    model, batch = toy_model(PyroSVI(num_steps=150))
    with torch.no_grad():
        a = model.infer(batch)
        b = model.infer(batch, solver=PyroSVI(num_steps=150, evidence="likelihood"))
    assert torch.allclose(a.lam, b.lam, atol=1e-3) and torch.allclose(a.q, b.q, atol=1e-3)
    p = make_problem()
    with pytest.raises(IncompatibleSolverError, match="evidence='likelihood' needs the model"):
        PyroSVI(evidence="likelihood").solve(p, 1)


def test_svi_likelihood_evidence_uses_the_likelihood_where_it_differs_from_psi():
    """p_θ(x | λ) = N(x; λ + b, I) while ψ ignores b: started b lower, the likelihood-evidence fit is the
    potential-evidence fit moved by -b (same q), and the potential fit from there is not."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_refine import make

    from mpmkit import FlatPrior

    model, batch = make(prior=FlatPrior())
    model.eval()
    b = model.likelihood.shift.detach()
    with torch.no_grad():
        lam0 = model.lambda0.expand(batch.size, -1, -1).clone()
        pot = model.infer(batch, lam0=lam0, solver=PyroSVI(guide="delta", num_steps=400))
        lik = model.infer(batch, lam0=lam0 - b, solver=PyroSVI(guide="delta", num_steps=400, evidence="likelihood"))
        other = model.infer(batch, lam0=lam0 - b, solver=PyroSVI(guide="delta", num_steps=400))
    torch.testing.assert_close(lik.lam, pot.lam - b, rtol=0, atol=1e-8)
    torch.testing.assert_close(lik.q, pot.q, rtol=0, atol=1e-8)
    assert (other.lam - (pot.lam - b)).abs().max() > 0.5  # ψ alone would not have moved by -b


def test_bad_options_are_refused_clearly():
    with pytest.raises(ValueError, match="unknown evidence 'exact'; choose one of potential, likelihood"):
        PyroSVI(evidence="exact")
    with pytest.raises(ValueError, match="unknown guide"):
        PyroSVI(guide="flow")
    with pytest.raises(ValueError, match="unknown init"):
        PyroNUTS(init="prior")
    with pytest.raises(ValueError, match="num_samples >= 4"):
        PyroNUTS(num_samples=1)
    with pytest.raises(UnknownNameError, match="pyro-nuts") as exc:
        registry("solver").get("pyro-mcmc")
    assert "learned-posterior" in str(exc.value) and "pyro-svi" in str(exc.value)
    with pytest.raises(RuntimeError, match="must be bound"):
        LearnedPosterior().solve(make_problem(), 1)


def test_untrained_learned_posterior_is_gradient_ascent_and_improves_surrogate_elbo():
    p = make_problem(batch=4, points=30)
    lp = LearnedPosterior(trace=True)
    lp.bind(3, 2)
    with torch.no_grad():
        res = lp.solve(p, 5)
        ref = GradientAscent(step_size=0.5).solve(p, 5)
    assert torch.allclose(res.lam, ref.lam, atol=1e-5)
    e = res.trace["surrogate_elbo"]
    assert e[-1] > e[0] + 1.0


def test_meta_learning_the_update_beats_plain_gradient_ascent():
    """Train ω only: after two inner steps the learned update reaches a higher \\hat L on held-out problems."""
    torch.manual_seed(0)
    lp = LearnedPosterior()
    lp.bind(3, 2)

    def loss(p):
        return -lp.objective(p, lp.solve(p, 2).lam).sum() / p.mask.sum()

    held_out = [make_problem(batch=8, points=40, seed=1000 + i) for i in range(3)]
    with torch.no_grad():
        before = sum(float(loss(p)) for p in held_out)
    opt = torch.optim.Adam(lp.parameters(), lr=0.01)
    for it in range(40):
        opt.zero_grad()
        loss(make_problem(batch=8, points=40, seed=it)).backward()
        opt.step()
    with torch.no_grad():
        after = sum(float(loss(p)) for p in held_out)
    assert after < before - 0.3, (before, after)


@pytest.mark.parametrize("backward", ["full", "implicit"])
def test_learned_posterior_trains_on_toy_family(toy_host, backward):
    model, batch = toy_model(LearnedPosterior(backward=backward))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss, _, _ = model(batch)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.1
    assert model.solver.net[-1].weight.abs().sum() > 0  # ω was trained
    assert "solver.log_step" in dict(model.named_parameters())


def test_slot_attention_is_listed_among_the_solvers_that_can_and_refuses_packed_lambda():
    # check() used to need a bound solver, so compatible_solvers silently left slot-attention out
    from mpmkit.components import compatible_solvers
    from mpmkit.errors import IncompatibleSolverError
    from mpmkit.psa import PSAPotential
    from mpmkit.solvers import SlotAttention

    p = make_problem()
    SlotAttention().check(p)  # unbound: asking is fine
    assert "slot-attention" in compatible_solvers(p)
    psa = dataclasses.replace(p, potential=PSAPotential(p.potential.recognition))
    with pytest.raises(IncompatibleSolverError, match="slot-attention.*holds more than the mean .*PSAPotential"):
        SlotAttention().check(psa)
    with pytest.raises(RuntimeError, match="must be bound"):
        SlotAttention().solve(p, 1)
