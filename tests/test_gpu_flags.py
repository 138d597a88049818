"""The GPU-path flags (amp, compile; pinned memory on CUDA) are well defined on CPU."""
from __future__ import annotations

import math

import torch

from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.solvers.coordinate_ascent import CoordinateAscent
from mpmkit.training import Trainer, to_device


def record_inner_precision(monkeypatch, solver_cls) -> list:
    """Spy on ``solver_cls.update``: one (autocast on?, dtype of g, dtype of λ) per inner step."""
    seen = []
    update = solver_cls.update

    def spy(self, problem, lam):
        seen.append((torch.is_autocast_enabled("cpu"), problem.g.dtype, lam.dtype))
        return update(self, problem, lam)

    monkeypatch.setattr(solver_cls, "update", spy)
    return seen


def test_amp_runs_on_cpu_with_the_inner_loop_in_fp32(tmp_path, toy_host, monkeypatch):
    seen = record_inner_precision(monkeypatch, CoordinateAscent)
    summary = Trainer(make_family("toy"), config_for("toy", {"epochs": 1, "amp": True}), tmp_path / "amp").fit()
    assert math.isfinite(summary["best_val"])
    assert seen and all(s == (False, torch.float32, torch.float32) for s in seen)


def test_compile_runs_on_cpu_and_keeps_parameter_names(tmp_path, toy_host, monkeypatch):
    monkeypatch.setenv("MPMKIT_COMPILE_BACKEND", "eager")  # graph capture without a C++ toolchain
    torch._dynamo.reset()
    trainer = Trainer(make_family("toy"), config_for("toy", {"epochs": 1, "compile": True}), tmp_path / "c")
    summary = trainer.fit()
    assert math.isfinite(summary["best_val"])
    assert all(not k.startswith("_orig_mod") and "._orig_mod" not in k for k in trainer.model.state_dict())
    assert "ari" in evaluate_run(tmp_path / "c")  # the checkpoint loads into an uncompiled model
    torch._dynamo.reset()


def test_to_device_on_cpu_is_a_plain_move(toy_host):
    import toy

    batch = toy.collate([(torch.randn(3, 2), torch.zeros(3, dtype=torch.long))])
    moved = to_device(batch, torch.device("cpu"))
    assert torch.equal(moved.x, batch.x) and not moved.x.is_pinned()


def test_any_solver_passed_to_infer_runs_in_fp32_under_autocast(monkeypatch):
    """The fp32 rule lives in MPM.infer, so a solver handed to infer (evaluation) obeys it too."""
    from mpmkit import Batch, EuclideanPotential, GMMPrior, MPM
    from mpmkit.likelihoods import MixtureLikelihood, gaussian_log_prob
    from mpmkit.solvers.gradient import GradientAscent

    class Lik(MixtureLikelihood):
        def log_prob(self, x, lam, mask):
            return gaussian_log_prob(x.unsqueeze(2), lam.unsqueeze(1))

    seen = record_inner_precision(monkeypatch, GradientAscent)
    model = MPM(prior=GMMPrior(3, 2), likelihood=Lik(), potential=EuclideanPotential(torch.nn.Linear(2, 2)),
                solver=CoordinateAscent(), num_slots=2, slot_dim=2)
    batch = Batch(x=torch.randn(2, 5, 2), mask=torch.ones(2, 5, dtype=torch.bool))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inf = model.infer(batch, steps=3, solver=GradientAscent())
    assert seen and all(s == (False, torch.float32, torch.float32) for s in seen)
    assert inf.lam.dtype == torch.float32


def test_elbo_prior_terms_are_fp32_under_autocast():
    """log p_η(λ) cancels badly in bf16 (‖λ‖² − 2λ·ν + ‖ν‖² with large norms); elbo computes it in fp32."""
    from mpmkit import Batch, EuclideanPotential, GMMPrior, MPM
    from mpmkit.likelihoods import MixtureLikelihood, gaussian_log_prob

    class Lik(MixtureLikelihood):
        def log_prob(self, x, lam, mask):
            return gaussian_log_prob(x.unsqueeze(2), lam.unsqueeze(1))

    torch.manual_seed(0)
    prior = GMMPrior(4, 16)
    with torch.no_grad():
        prior.centres.mul_(0).add_(10 * torch.nn.functional.normalize(torch.randn(4, 16), dim=1))
    model = MPM(prior=prior, likelihood=Lik(), potential=EuclideanPotential(torch.nn.Linear(16, 16)),
                solver=CoordinateAscent(), num_slots=3, slot_dim=16)
    batch = Batch(x=torch.randn(2, 5, 16), mask=torch.ones(2, 5, dtype=torch.bool))
    inf = model.infer(batch, steps=2)
    lam = prior.centres[:3].detach().unsqueeze(0).expand(2, 3, 16) + 0.1 * torch.randn(2, 3, 16)
    inf = type(inf)(g=inf.g, lam=lam, q=inf.q, trace=inf.trace)
    exact = model.elbo(batch, inf).log_prior
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model.elbo(batch, inf).log_prior
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, rtol=1e-6, atol=1e-5)


def test_cuda_device_names_map_to_the_local_rank_under_torchrun(monkeypatch):
    """device=cuda / auto pick LOCAL_RANK's GPU; cuda:N with several processes per node is refused."""
    import pytest

    from mpmkit.utils import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resolve_device("auto") == torch.device("cuda", 2) == resolve_device("cuda")
    with pytest.raises(RuntimeError, match="one GPU for every torchrun process"):
        resolve_device("cuda:0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # one process per node (multi-node): cuda:0 is fine
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "5")  # a launcher that sets LOCAL_RANK beyond the GPUs
    with pytest.raises(RuntimeError, match="LOCAL_RANK=5 but this machine has 4 GPU"):
        resolve_device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # more processes than GPUs on the node
    with pytest.raises(RuntimeError, match="8 processes on this node but it has 4 GPU"):
        resolve_device("auto")
    with pytest.raises(RuntimeError, match="unknown device 'tpu7'"):
        resolve_device("tpu7")
