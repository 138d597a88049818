"""Slot Attention (Locatello et al.; the paper's Algorithm 2) as a learned inner solver."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import FixedPointSolver, InnerProblem, refuse_packed_lambda


class SlotAttention(nn.Module, FixedPointSolver):
    """Learned update: LayerNorm, q/k/v projections, softmax over slots, weighted mean, GRU, residual MLP.

    The initial slots are λ⁰ + σ ε with a learned σ (the learned Gaussian init), ε drawn only in
    training. ``posterior`` is the attention, i.e. q. Its weighted mean over observations is the
    coordinate-ascent update of Proposition 1 with r = 0; the GRU and MLP replace the rest. The
    equations are checked against a hand-written reference in ``tests/test_slot_attention.py``.
    """

    name = "slot-attention"

    def __init__(self, backward: str = "full", hidden: int = 128, eps: float = 1e-8, **kw):
        nn.Module.__init__(self)
        FixedPointSolver.__init__(self, backward=backward, **kw)
        self.hidden, self.eps = hidden, eps
        self._bound = False

    def bind(self, num_slots: int, slot_dim: int) -> None:
        d = slot_dim
        self.norm_inputs, self.norm_slots, self.norm_mlp = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.to_q, self.to_k, self.to_v = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.gru = nn.GRUCell(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, self.hidden), nn.ReLU(), nn.Linear(self.hidden, d))
        self.log_sigma = nn.Parameter(torch.full((d,), -2.0))
        self._bound = True

    def check(self, problem: InnerProblem) -> None:
        """Any model whose λ_ik is the slot mean (what the GRU updates); binding is not needed to ask."""
        refuse_packed_lambda(self.name, problem)

    def attention(self, problem: InnerProblem, lam: Tensor) -> tuple[Tensor, Tensor]:
        z = self.norm_inputs(problem.g)
        k, v = self.to_k(z), self.to_v(z)
        q = self.to_q(self.norm_slots(lam))
        logits = k @ q.transpose(1, 2) / lam.shape[-1] ** 0.5  # [B, N, K]
        attn = torch.softmax(logits, dim=-1) * problem.mask.unsqueeze(-1).to(lam.dtype)
        return attn, v

    def posterior(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        return self.attention(problem, lam)[0]

    def update(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        attn, v = self.attention(problem, lam)
        weights = attn / (attn.sum(1, keepdim=True) + self.eps)  # weighted mean over observations
        u = weights.transpose(1, 2) @ v  # [B, K, D]
        b, k, d = lam.shape
        new = self.gru(u.reshape(b * k, d), lam.reshape(b * k, d)).reshape(b, k, d)
        return new + self.mlp(self.norm_mlp(new))

    def solve(self, problem: InnerProblem, steps: int):
        if not self._bound:
            raise RuntimeError("SlotAttention must be bound to a model (MPM calls solver.bind) before use")
        if self.training:
            noise = torch.randn_like(problem.lam0) * self.log_sigma.exp()
            problem = type(problem)(**{**problem.__dict__, "lam0": problem.lam0 + noise})
        return FixedPointSolver.solve(self, problem, steps)
