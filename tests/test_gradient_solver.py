"""The unrolled-gradient solver: ascends the surrogate, agrees with coordinate ascent at the fixed point."""
from __future__ import annotations

import math

import pytest
import torch

from mpmkit import CoordinateAscent, DotProductPotential, EuclideanPotential, GMMPrior, GradientAscent, InnerProblem
from mpmkit.model import surrogate_elbo


def problem(potential=None, seed=0, prior_scale=1.0):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
    z = torch.randint(0, 3, (2, 60), generator=gen)
    g = centres[z] + 0.5 * torch.randn(2, 60, 2, generator=gen, dtype=torch.float64)
    mask = torch.ones(2, 60, dtype=torch.bool)
    mask[1, 40:] = False
    lam0 = centres.unsqueeze(0).expand(2, -1, -1) + torch.randn(2, 3, 2, generator=gen, dtype=torch.float64)
    return InnerProblem(g=g, mask=mask, prior=GMMPrior(4, 2, scale=prior_scale).double(),
                        potential=potential or EuclideanPotential(),
                        lam0=lam0, log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(3)))


def test_gradient_steps_increase_surrogate_elbo():
    p = problem()
    s = GradientAscent(step_size=0.3, trace=True)
    e = s.solve(p, 20).trace["surrogate_elbo"]
    assert e[-1] > e[0] and all(b >= a - 1e-6 for a, b in zip(e, e[1:]))


@pytest.mark.parametrize("sigma", [1.0, 0.5])
def test_agrees_with_coordinate_ascent_at_fixed_point(sigma):
    """Same fixed point whatever the prior components' σ (the closed form weighs the prior by 1/σ²)."""
    p = problem(prior_scale=sigma)
    ca = CoordinateAscent().solve(p, 300)
    gd = GradientAscent(step_size=0.5 * sigma**2).solve(p, 3000)
    assert torch.allclose(ca.lam, gd.lam, atol=1e-4)
    assert (ca.q.argmax(-1)[p.mask] == gd.q.argmax(-1)[p.mask]).all()


def test_serves_potentials_without_closed_form_and_is_differentiable():
    p = problem(DotProductPotential())
    g = p.g.clone().requires_grad_()
    p.g = g
    res = GradientAscent(step_size=0.2).solve(p, 5)
    res.lam.sum().backward()
    assert torch.isfinite(g.grad).all() and g.grad.abs().sum() > 0
    with pytest.raises(Exception, match="no closed form"):
        CoordinateAscent().solve(p, 1)


def test_slot_attention_solver_trains_and_is_deterministic(tmp_path, toy_host):
    from mpmkit import checkpoint as ckpt
    from mpmkit.runs import config_for, make_family
    from mpmkit.training import Trainer

    finals = []
    for run in ("a", "b"):
        cfg = config_for("toy", {"epochs": 2, "solver": "slot-attention"})
        Trainer(make_family("toy"), cfg, tmp_path / run).fit()
        tensors, _ = ckpt.load(tmp_path / run / "checkpoints")
        finals.append(tensors)
    names = [k for k in finals[0] if k.startswith("model.solver.")]
    assert "model.solver.gru.weight_ih" in names and "model.solver.log_sigma" in names
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0] if k.startswith("model."))
