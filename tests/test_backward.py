"""Backward modes of fixed-point solvers: full, truncated, implicit (Neumann)."""
from __future__ import annotations

import math

import pytest
import torch

from mpmkit import CoordinateAscent, EuclideanPotential, GMMPrior, InnerProblem


def grads(mode, steps, neumann=0, truncate=1):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    g = (torch.randn(3, 40, 4, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    prior = GMMPrior(5, 4).double()
    lam0 = torch.randn(3, 3, 4, generator=gen, dtype=torch.float64)
    p = InnerProblem(g=g, mask=torch.ones(3, 40, dtype=torch.bool), prior=prior, potential=EuclideanPotential(),
                     lam0=lam0, log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(3)))
    res = CoordinateAscent(backward=mode, neumann=neumann, truncate=truncate).solve(p, steps)
    (res.lam.pow(2).sum() + res.q.pow(2).sum()).backward()
    return res, g.grad.clone(), prior.centres.grad.clone()


def test_forward_values_do_not_depend_on_backward_mode():
    a, _, _ = grads("full", 7)
    for mode in ("truncated", "implicit"):
        b, _, _ = grads(mode, 7)
        assert torch.allclose(a.lam, b.lam) and torch.allclose(a.q, b.q)


def test_implicit_with_neumann_series_matches_full_unroll_at_fixed_point():
    _, g_full, c_full = grads("full", 200)
    _, g_imp, c_imp = grads("implicit", 200, neumann=150)
    assert torch.allclose(g_full, g_imp, rtol=1e-5, atol=1e-8)
    assert torch.allclose(c_full, c_imp, rtol=1e-5, atol=1e-8)


def test_first_order_implicit_equals_truncation_to_last_step():
    _, g_t, _ = grads("truncated", 10, truncate=1)
    _, g_i, _ = grads("implicit", 10)
    assert torch.allclose(g_t, g_i)


def test_truncated_with_all_steps_equals_full():
    _, g_f, _ = grads("full", 5)
    _, g_t, _ = grads("truncated", 5, truncate=5)
    assert torch.allclose(g_f, g_t)


def test_unknown_backward_mode_lists_choices():
    with pytest.raises(ValueError, match="full, truncated, implicit"):
        CoordinateAscent(backward="adjoint")


def test_diagnostics_trace_elbo_and_residual():
    gen = torch.Generator().manual_seed(1)
    p = InnerProblem(g=torch.randn(2, 30, 2, generator=gen), mask=torch.ones(2, 30, dtype=torch.bool),
                     prior=GMMPrior(4, 2), potential=EuclideanPotential(), lam0=torch.randn(2, 3, 2, generator=gen),
                     log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(3)))
    res = CoordinateAscent(trace=True).solve(p, 6)
    e = res.trace["surrogate_elbo"]
    assert len(e) == 7 and all(b >= a - 1e-4 for a, b in zip(e, e[1:]))
    assert res.trace["steps"] == 6
    # residual = mean over datasets and slots of ‖λ_T − λ_{T−1}‖, from a step-by-step run of F
    lams = [p.lam0]
    with torch.no_grad():
        for _ in range(12):
            lams.append(CoordinateAscent().update(p, lams[-1]))
    residuals = {}
    for steps in (1, 3, 6, 12):
        expected = float((lams[steps] - lams[steps - 1]).norm(dim=-1).mean())
        assert expected > 0
        for mode in ("full", "truncated", "implicit"):
            got = CoordinateAscent(backward=mode).solve(p, steps).trace["residual"]
            assert got == pytest.approx(expected, rel=1e-5, abs=1e-7), (steps, mode)
        residuals[steps] = expected
    assert residuals[1] > residuals[3] > residuals[6] > residuals[12]  # it shrinks as the loop converges
    assert res.trace["residual"] == pytest.approx(residuals[6], rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("mode", ["full", "truncated", "implicit"])
def test_tol_stops_early_in_every_backward_mode(mode):
    """A huge tol stops after the first step; full mode stops its unrolled loop, keeping the gradient."""
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(2, 30, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    p = InnerProblem(g=g, mask=torch.ones(2, 30, dtype=torch.bool), prior=GMMPrior(4, 2).double(),
                     potential=EuclideanPotential(), lam0=torch.randn(2, 3, 2, generator=gen, dtype=torch.float64),
                     log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(3)))
    res = CoordinateAscent(backward=mode, tol=1e9).solve(p, 20)
    graph = {"full": 0, "truncated": 1, "implicit": 1}[mode]  # truncated/implicit still take their graph step
    assert res.trace["steps"] == 1 + graph
    res.lam.sum().backward()
    assert g.grad is not None and torch.isfinite(g.grad).all()
    exact = CoordinateAscent(backward=mode).solve(p, 20)  # tol=None: all 20 steps
    assert exact.trace["steps"] == 20
