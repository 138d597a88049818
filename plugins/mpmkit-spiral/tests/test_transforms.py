"""Transforms: the spiral T is invertible and area-preserving; the coupling flow's log-det is exact."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.functional import jacobian

from mpmkit_spiral.data import spiral_map
from mpmkit_spiral.transforms import CouplingFlow, SpiralTransform



def _points(n=64, seed=0, scale=4.0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def _perturbed_flow(seed=0, layers=4):
    torch.manual_seed(seed)
    flow = CouplingFlow(layers=layers, hidden=16).double()
    with torch.no_grad():  # leave the identity start so the test sees a non-trivial map
        for p in flow.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return flow


def test_spiral_round_trip_and_matches_the_data_generator():
    T = SpiralTransform(alpha=1.3, beta=0.4).double()
    u = _points()
    x = T(u)
    back, log_det = T.inverse(x)
    torch.testing.assert_close(back, u, atol=1e-10, rtol=0)
    torch.testing.assert_close(T(T.inverse(u)[0]), u, atol=1e-10, rtol=0)
    assert torch.equal(log_det, torch.zeros(len(u), dtype=u.dtype))
    np.testing.assert_allclose(x.detach().numpy(), spiral_map(u.numpy(), T.describe()["alpha"], T.describe()["beta"]), atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(alpha=st.floats(-3, 3), beta=st.floats(-math.pi, math.pi),
       x=st.floats(-8, 8), y=st.floats(-8, 8))
def test_spiral_is_area_preserving_autograd_jacobian(alpha, beta, x, y):
    """det ∂T/∂u = 1 (and so log|det| = 0) at any point, by autograd."""
    T = SpiralTransform(alpha, beta).double()
    u = torch.tensor([x, y], dtype=torch.float64)
    if u.norm() < 1e-3:  # T is C¹ everywhere; r = ‖u‖ itself is not differentiable at exactly 0
        u = u + 1e-3
    J = jacobian(lambda v: T(v), u)
    Jinv = jacobian(lambda v: T.inverse(v)[0], T(u).detach())
    assert abs(float(torch.linalg.det(J)) - 1) < 1e-9
    assert abs(float(torch.linalg.det(Jinv)) - 1) < 1e-9


def test_spiral_gradients_are_finite_at_the_origin():
    """Padded rows are exact zeros: T⁻¹ and its gradients must stay finite there."""
    T = SpiralTransform(0.9, 0.1)
    x = torch.zeros(3, 2, requires_grad=True)
    u, _ = T.inverse(x)
    u.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(T.alpha.grad)


def test_flow_is_invertible():
    flow = _perturbed_flow()
    u = _points(scale=2.0)
    x = flow(u)
    back, _ = flow.inverse(x)
    torch.testing.assert_close(back, u, atol=1e-9, rtol=0)
    torch.testing.assert_close(flow(flow.inverse(u)[0]), u, atol=1e-9, rtol=0)
    assert not torch.allclose(x, u, atol=1e-2)  # non-trivial map


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flow_log_det_equals_autograd(seed):
    flow = _perturbed_flow(seed)
    for x in _points(8, seed=seed + 10, scale=2.0):
        with torch.no_grad():
            _, log_det = flow.inverse(x.unsqueeze(0))
        J = jacobian(lambda v: flow.inverse(v.unsqueeze(0))[0][0], x)
        assert abs(float(log_det[0]) - float(torch.linalg.slogdet(J).logabsdet)) < 1e-9
        Jf = jacobian(lambda v: flow(v.unsqueeze(0))[0], flow.inverse(x.unsqueeze(0))[0][0])
        assert abs(float(log_det[0]) + float(torch.linalg.slogdet(Jf).logabsdet)) < 1e-9


def test_flow_starts_at_identity():
    flow = CouplingFlow(layers=3, hidden=8).double()
    u = _points(16)
    torch.testing.assert_close(flow(u), u)
    assert torch.allclose(flow.inverse(u)[1], torch.zeros(16, dtype=torch.float64))
