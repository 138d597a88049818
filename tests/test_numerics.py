"""Numerical robustness: the inner loop stays finite at extreme scales; NaN in training stops the run cleanly."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mpmkit import EuclideanPotential, GMMPrior, InnerProblem
from mpmkit import checkpoint as ckpt
from mpmkit.errors import DivergenceError
from mpmkit.model import surrogate_elbo
from mpmkit.runs import config_for, make_family
from mpmkit.solvers.coordinate_ascent import CoordinateAscent
from mpmkit.training import Trainer


def _uniform_log_pz(lam):
    return lam.new_full(lam.shape[:2], -math.log(lam.shape[1]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(norm=st.floats(0.0, 1e4), lam_norm=st.floats(0.0, 1e4), K=st.integers(1, 1000), L=st.integers(1, 1000),
       N=st.integers(1, 6), D=st.integers(1, 3), steps=st.integers(1, 3), seed=st.integers(0, 2**16),
       prior_scale=st.sampled_from([1e-2, 1.0, 1e2]))
@example(norm=1e4, lam_norm=1e4, K=1000, L=1000, N=6, D=3, steps=3, seed=0, prior_scale=1e-2)
@example(norm=1e4, lam_norm=0.0, K=1000, L=1, N=6, D=1, steps=3, seed=1, prior_scale=1e2)
def test_coordinate_ascent_stays_finite(norm, lam_norm, K, L, N, D, steps, seed, prior_scale):
    gen = torch.Generator().manual_seed(seed)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s, generator=gen), dim=-1)  # noqa: E731
    g = (unit(1, N, D) * norm * torch.rand(1, N, 1, generator=gen)).requires_grad_()
    prior = GMMPrior(L, D, scale=prior_scale)
    with torch.no_grad():
        prior.centres.copy_(unit(L, D) * lam_norm * torch.rand(L, 1, generator=gen))
    lam0 = (unit(K, D) * lam_norm).requires_grad_()
    mask = torch.ones(1, N, dtype=torch.bool)
    mask[0, N // 2 + 1:] = False  # some padding
    problem = InnerProblem(g=g, mask=mask, prior=prior, potential=EuclideanPotential(), lam0=lam0.unsqueeze(0),
                           log_pz=_uniform_log_pz)
    res = CoordinateAscent().solve(problem, steps)
    assert torch.isfinite(res.lam).all() and torch.isfinite(res.q).all()
    assert torch.allclose(res.q.sum(-1)[mask], torch.ones(int(mask.sum())), atol=1e-4)
    elbo = surrogate_elbo(g, mask, res.lam, res.q, prior, problem.potential, _uniform_log_pz)
    assert torch.isfinite(elbo).all()
    (elbo.sum() / max(norm, lam_norm, 1.0) ** 2).backward()
    for name, t in (("g", g), ("lam0", lam0), ("centres", prior.centres)):
        assert t.grad is None or torch.isfinite(t.grad).all(), name


def _fit(out, **values):
    cfg = config_for("toy", {"epochs": 3, "checkpoint_every": 1, "keep_checkpoints": 5, **values})
    return Trainer(make_family("toy"), cfg, out).fit()


def _steps_on_disk(out):
    return sorted(p.name for p in (out / "checkpoints").glob("step-*"))


def test_nan_loss_stops_naming_step_and_keeps_last_checkpoint(tmp_path, toy_host, monkeypatch):
    import toy

    calls = {"n": 0}
    orig = toy.ShiftedGaussian.log_prob

    def log_prob(self, x, lam, mask):
        out = orig(self, x, lam, mask)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 4:  # the 4th outer step
                return out * float("nan")
        return out

    monkeypatch.setattr(toy.ShiftedGaussian, "log_prob", log_prob)
    with pytest.raises(DivergenceError, match=r"step 4 \(epoch 1\): the loss is nan; the last good checkpoint, "
                                              r"'step-00000003', is kept"):
        _fit(tmp_path / "run")
    tensors, state = ckpt.load(tmp_path / "run" / "checkpoints")
    assert state["step"] == 3 and all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model."))
    assert _steps_on_disk(tmp_path / "run")[-1] == "step-00000003"


def test_nan_gradient_names_the_parameter(tmp_path, toy_host, monkeypatch):
    import toy

    orig = toy.ToyFamily.build_model
    calls = {"n": 0}

    def build_model(self, cfg):
        model = orig(self, cfg)

        def poison(grad):
            calls["n"] += 1
            return grad * float("nan") if calls["n"] == 3 else grad

        model.prior.centres.register_hook(poison)
        return model

    monkeypatch.setattr(toy.ToyFamily, "build_model", build_model)
    with pytest.raises(DivergenceError, match=r"step 3 \(epoch 1\): the gradient of parameter 'prior.centres' is "
                                              r"not finite; the last good checkpoint, 'step-00000002'"):
        _fit(tmp_path / "run")
    assert ckpt.load(tmp_path / "run" / "checkpoints")[1]["step"] == 2
