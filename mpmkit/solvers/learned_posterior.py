"""``learned-posterior``: meta-learned posterior inference (Chang, Levine & Griffiths, Sec. 2.2/3.2).

An update network refines the variational parameters from the gradient of the surrogate ELBO,
λ_{t+1} = λ_t + f_ω(λ_t, ∇_λ \\hat L(λ_t), ...), with ω trained by the outer loop like θ, η, φ.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import InnerProblem, InnerResult, masked_softmax, refuse_packed_lambda
from .gradient import GradientAscent


class LearnedPosterior(nn.Module, GradientAscent):
    """λ_k ← λ_k + exp(ω_s) ⊙ ḡ_k + MLP_ω([λ_k, ḡ_k, m_k]) per slot, with ḡ = ∇_λ \\hat L / N_i.

    \\hat L(λ) = max_q of the surrogate ELBO = log p_η(λ) + Σ_j logsumexp_k(ψ_jk + log p(z=k|λ)),
    and m_k = Σ_j q_jk / N_i is slot k's share of the data. The same network is applied to every
    slot, so the update is permutation-equivariant over slots, and works with any potential and
    prior (no closed form needed). The MLP's last layer starts at zero and the per-dimension step
    exp(ω_s) at ``step_size``: untrained, it is exactly the ``gradient`` solver, so it already
    ascends \\hat L; training learns a better update. Differentiable (∇_λ \\hat L is taken with
    ``create_graph``), with the ``full | truncated | implicit`` backward modes of
    :class:`~mpmkit.solvers.FixedPointSolver`; ω gets gradients through every kept step.
    """

    name = "learned-posterior"

    def __init__(self, backward: str = "full", step_size: float = 0.5, hidden: int = 64, **kw):
        nn.Module.__init__(self)
        GradientAscent.__init__(self, backward=backward, step_size=step_size, **kw)
        if hidden < 1 or step_size <= 0:
            raise ValueError(f"need hidden >= 1 and step_size > 0, got hidden={hidden}, step_size={step_size}")
        self.hidden = hidden
        self._bound = False

    def check(self, problem: InnerProblem) -> None:
        GradientAscent.check(self, problem)
        refuse_packed_lambda(self.name, problem)

    def bind(self, num_slots: int, slot_dim: int) -> None:
        d = slot_dim
        self.net = nn.Sequential(nn.Linear(2 * d + 1, self.hidden), nn.SiLU(), nn.Linear(self.hidden, d))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.log_step = nn.Parameter(torch.full((d,), math.log(self.step_size)))
        self._bound = True

    def update(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            x = lam if (create and lam.requires_grad) else lam.detach().requires_grad_()
            logits = self.logits(problem, x)  # also feeds the share m_k below
            (grad,) = torch.autograd.grad(self.objective(problem, x, logits).sum(), x, create_graph=create)
        n = problem.mask.sum(1).clamp_min(1).to(lam.dtype).view(-1, 1, 1)
        grad = grad / n
        share = masked_softmax(logits, problem.mask).sum(1).unsqueeze(-1) / n  # m_k, [B, K, 1]
        if not create:
            share = share.detach()
        new = x + self.log_step.exp() * grad + self.net(torch.cat([x, grad, share], -1))
        return new if create else new.detach()

    def solve(self, problem: InnerProblem, steps: int) -> InnerResult:
        if not self._bound:
            raise RuntimeError("LearnedPosterior must be bound to a model (MPM calls solver.bind) before use")
        width = self.log_step.shape[0]
        if problem.lam0 is not None and problem.lam0.shape[-1] != width:
            raise ValueError(f"LearnedPosterior was bound to λ of width {width}, but λ⁰ has width "
                             f"{problem.lam0.shape[-1]}; call bind(num_slots, {problem.lam0.shape[-1]})")
        return GradientAscent.solve(self, problem, steps)
