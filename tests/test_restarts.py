"""MPM.infer_restarts: best of several inner-loop runs per dataset, chosen by the true ELBO."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmkit import Batch, CoordinateAscent, EuclideanPotential, MPM, MixtureLikelihood, gaussian_log_prob
from mpmkit.batch import pad_datasets
from mpmkit.priors import FlatPrior
from test_refine import make, true_elbo


class UnitGaussian(MixtureLikelihood):
    """p(x | z=k, λ) = N(x; λ_k, I): with the Euclidean potential the inner loop is EM for this GMM."""

    def log_prob(self, x, lam, mask):
        return gaussian_log_prob(x.unsqueeze(2), lam.unsqueeze(1))


def two_clusters(datasets: int = 4):
    """Two well-separated 1-d clusters per dataset, and a model whose λ⁰ puts both slots on one point."""
    gen = torch.Generator().manual_seed(0)
    xs = [torch.cat([torch.randn(10, 1, generator=gen, dtype=torch.float64) - 4,
                     torch.randn(14, 1, generator=gen, dtype=torch.float64) + 4]) for _ in range(datasets)]
    x, mask = pad_datasets(xs)
    model = MPM(prior=FlatPrior(), likelihood=UnitGaussian(), potential=EuclideanPotential(),
                solver=CoordinateAscent(), num_slots=2, slot_dim=1, inner_steps=20, init_scale=1.0).double()
    with torch.no_grad():
        model.lambda0.zero_()  # symmetric start: both slots equal, EM can never separate them
    return model, Batch(x=x, mask=mask)


def test_restarts_escape_the_symmetric_saddle_that_the_single_run_cannot():
    model, batch = two_clusters()
    single = model.infer(batch)
    assert torch.allclose(single.lam[:, 0], single.lam[:, 1])  # stuck: both slots at the overall mean
    best = model.infer_restarts(batch, restarts=3, generator=torch.Generator().manual_seed(1))
    gain = true_elbo(model, batch, best) - true_elbo(model, batch, single)
    assert (gain > 10).all()  # every dataset: one slot per cluster beats one blurred slot by far
    assert (best.trace["restart"] > 0).all()
    centres = best.lam.squeeze(-1).sort(-1).values
    assert torch.allclose(centres, torch.tensor([-4.0, 4.0], dtype=torch.float64).expand_as(centres), atol=1.0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), restarts=st.integers(1, 4), refine=st.integers(0, 5))
def test_the_chosen_run_has_the_highest_true_elbo_of_all_runs(seed, restarts, refine):
    model, batch = make(seed=seed)
    out = model.infer_restarts(batch, restarts, refine_steps=refine, refine_lr=0.05,
                               generator=torch.Generator().manual_seed(seed))
    chosen = true_elbo(model, batch, out)
    if restarts == 1:
        plain = model.infer(batch)
        want = model.refine(batch, plain, refine, 0.05) if refine else plain
        assert torch.equal(out.lam, want.lam) and torch.equal(out.q, want.q)
        return
    scores = out.trace["restart_elbo"]
    assert scores.shape == (batch.size, restarts)
    assert torch.allclose(chosen, scores.max(1).values)
    assert torch.equal(out.trace["restart"], scores.argmax(1))
    assert (chosen >= scores[:, 0] - 1e-9).all()  # never worse than the run from λ⁰ alone


def test_restarts_are_reproducible_from_the_generator_and_leave_the_model_alone():
    model, batch = make()
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    a = model.infer_restarts(batch, 3, generator=torch.Generator().manual_seed(7))
    b = model.infer_restarts(batch, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.lam, b.lam)
    assert all(torch.equal(params[k], v) for k, v in model.state_dict().items())


def test_bad_restarts_and_start_points_are_named():
    model, batch = make()
    with pytest.raises(ValueError, match="restarts must be >= 1"):
        model.infer_restarts(batch, 0)
    with pytest.raises(ValueError, match=r"lam0 must have the shape .*\[B, K, D\]"):
        model.infer(batch, lam0=torch.zeros(1, 3, 2, dtype=torch.float64))


def test_restart_points_move_the_slot_means_only():
    """λ⁰ + s ε on μ; PSA's variances and mixing weights start where λ⁰ has them (a random σ² or π is no restart)."""
    from mpmkit.psa import PSAPotential, unpack

    torch.manual_seed(0)
    model = MPM(prior=FlatPrior(), likelihood=UnitGaussian(), potential=PSAPotential(), solver=CoordinateAscent(),
                num_slots=3, slot_dim=2 * 2 + 1, init_scale=2.0)
    lam0 = model.lambda0.detach().unsqueeze(0).expand(4, -1, -1)
    out = model.perturb(lam0, torch.Generator().manual_seed(1))
    a, b = unpack(lam0), unpack(out)
    assert torch.equal(a.log_var, b.log_var) and torch.equal(a.log_pi, b.log_pi)
    step = (b.mu - a.mu) / 2.0  # ε, one standard normal draw per mean coordinate
    assert step.abs().min() > 0 and 0.5 < float(step.std()) < 1.6
    plain = MPM(prior=FlatPrior(), likelihood=UnitGaussian(), potential=EuclideanPotential(),
                solver=CoordinateAscent(), num_slots=3, slot_dim=2, init_scale=2.0)
    l0 = plain.lambda0.detach().unsqueeze(0).expand(4, -1, -1)
    eps = torch.randn(l0.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(plain.perturb(l0, torch.Generator().manual_seed(1)), l0 + 2.0 * eps)
