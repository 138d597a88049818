"""The spiral likelihood is an exact, normalised density; the bound holds and is tight; padding is inert."""

import math

import pytest
import torch

from mpmkit import Batch, CoordinateAscent
from mpmkit.batch import pad_datasets

from mpmkit_spiral.data import collate, generate
from mpmkit_spiral.model import build_mpm
from mpmkit_spiral.transforms import CouplingFlow, SpiralTransform


def _flow(seed=0):
    torch.manual_seed(seed)
    flow = CouplingFlow(layers=4, hidden=16)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return flow


def _model(kind="parametric", K=3, seed=0, steps=5):
    torch.manual_seed(seed)
    T = SpiralTransform(0.9, 0.3) if kind == "parametric" else _flow(seed)
    return build_mpm(T, CoordinateAscent(), num_clusters=K, num_global=4, inner_steps=steps, scale=0.6).double()


@pytest.mark.parametrize("kind,half", [("parametric", 6.0), ("neural", 14.0)])
def test_density_integrates_to_one_over_a_box(kind, half):
    """∫ exp log p(x | z = k, λ) dx ≈ 1 for each k (midpoint rule on a fine grid)."""
    model = _model(kind, K=2)
    lam = torch.tensor([[[3.0, 1.5], [0.2, -0.4]]], dtype=torch.float64)
    n = 900
    h = 2 * half / n
    ticks = -half + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    grid = torch.stack(torch.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(1, -1, 2)
    with torch.no_grad():
        lp = model.likelihood.log_prob(grid, lam, torch.ones(grid.shape[:2], dtype=torch.bool))
    mass = lp.exp().sum(1).squeeze(0) * h * h
    torch.testing.assert_close(mass, torch.ones(2, dtype=torch.float64), atol=2e-3, rtol=0)


def test_parametric_density_is_the_latent_gaussian_pushed_through_T():
    """log p(x|k) = log N(T⁻¹(x); s μ_k, s² I) exactly (T keeps area)."""
    model = _model()
    lam = torch.randn(1, 3, 2, dtype=torch.float64) * 3
    x = torch.randn(1, 10, 2, dtype=torch.float64) * 3
    lp = model.likelihood.log_prob(x, lam, torch.ones(1, 10, dtype=torch.bool))
    T = model.likelihood.transform
    s = float(model.likelihood.scale.detach())
    u, _ = T.inverse(x)
    ref = (-((u.unsqueeze(2) - s * lam.unsqueeze(1)) ** 2).sum(-1) / (2 * s * s) - math.log(2 * math.pi * s * s))
    torch.testing.assert_close(lp, ref)


def _log_joint(model, batch, lam):
    ll = model.likelihood.log_prob(batch.x, lam, batch.mask) + model.log_pz(lam).unsqueeze(1)
    return model.prior.log_prob(lam) + (torch.logsumexp(ll, -1) * batch.mask).sum(1)


@pytest.mark.parametrize("kind", ["parametric", "neural"])
def test_mpm_objective_is_a_tight_lower_bound(kind):
    """ψ ≡ log p(x|z,λ) + const (tied φ = θ), so q^T is the exact posterior given Λ^T: the gap is 0."""
    model = _model(kind, K=4)
    batch = collate(generate(3, seed=0, points=40, points_min=10))
    batch.x = batch.x.double()
    with torch.no_grad():
        inf = model.infer(batch)
        bound = model.elbo(batch, inf).total
        exact = _log_joint(model, batch, inf.lam)
    assert (bound <= exact + 1e-8).all()
    torch.testing.assert_close(bound, exact, atol=1e-8, rtol=0)


@pytest.mark.parametrize("kind", ["parametric", "neural"])
def test_padding_does_not_change_q_lambda_or_elbo(kind):
    model = _model(kind, K=4)
    short, long = sorted(generate(2, seed=5, points=70, points_min=20), key=len)
    assert len(short) < len(long)
    xs = [torch.from_numpy(d.x).double() for d in (short, long)]
    n = len(short)
    alone = Batch(x=xs[0].unsqueeze(0), mask=torch.ones(1, n, dtype=torch.bool))
    x, mask = pad_datasets(xs)
    x[0, n:] = torch.randn(len(long) - n, 2, dtype=torch.float64) * 50  # garbage, not zeros, in the padding
    both = Batch(x=x, mask=mask)
    i = 0
    with torch.no_grad():
        a, b = model.infer(alone), model.infer(both)
        ea, eb = model.elbo(alone, a), model.elbo(both, b)
        sa, sb = model.surrogate_elbo(alone, a), model.surrogate_elbo(both, b)
    torch.testing.assert_close(b.q[i, :n], a.q[0])
    assert (b.q[i, n:] == 0).all()
    torch.testing.assert_close(b.lam[i], a.lam[0])
    torch.testing.assert_close(eb.total[i], ea.total[0])
    torch.testing.assert_close(sb[i], sa[0])


def test_recognition_is_tied_to_the_likelihood():
    """φ ≡ θ: g_φ(x) = T⁻¹(x)/s from the same module, and no parameter is registered twice."""
    model = _model()
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == len({id(p) for p in model.parameters()})
    assert not any(n.startswith("potential.") for n in names)
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    g = model.potential.embed(x, torch.ones(2, 5, dtype=torch.bool))
    torch.testing.assert_close(g, model.likelihood.embed(x)[0])
    g.sum().backward()
    assert model.likelihood.transform.alpha.grad is not None
