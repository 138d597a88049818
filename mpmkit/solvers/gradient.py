"""Unrolled gradient ascent on the surrogate ELBO w.r.t. Λ, for potentials with no closed form."""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import IncompatibleSolverError
from .base import FixedPointSolver, InnerProblem, masked_softmax


def max_q_surrogate(problem: InnerProblem, lam: Tensor, logits: Tensor | None = None) -> Tensor:
    """max over q of the surrogate ELBO at λ, ``[B]``: log p_η(λ) + Σ_j logsumexp_k(ψ_jk + log p(z = k | λ))
    over the real observations (``logits``: ψ + log p(z | λ) at λ, if already computed)."""
    if logits is None:
        logits = problem.potential.logits(problem.g, lam) + problem.log_pz(lam).unsqueeze(1)
    return problem.prior.log_prob(lam) + (torch.logsumexp(logits, -1) * problem.mask).sum(1)


class GradientAscent(FixedPointSolver):
    """λ ← λ + (step_size / N_i) ∇_λ max_q \\hat L(λ, q).

    With q at its optimum the surrogate reduces to log p(λ|η) + Σ_j logsumexp_k(ψ_jk + log p(z=k|λ)),
    whose gradient is the envelope of the full surrogate. The step is scaled by 1/N_i so one
    ``step_size`` works across dataset sizes. Differentiable (``create_graph``), so it supports the
    same ``full | truncated | implicit`` backward modes as coordinate ascent. For the Euclidean
    potential its fixed points are those of Proposition 1.
    """

    name = "gradient"

    def __init__(self, backward: str = "full", step_size: float = 0.5, **kw):
        super().__init__(backward=backward, **kw)
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0 (a step up the surrogate ELBO), got {step_size!r}")
        self.step_size = step_size

    def check(self, problem: InnerProblem) -> None:
        lam = problem.lam0
        if lam is not None and not lam.is_floating_point():
            raise IncompatibleSolverError(self.name, "Λ must be a floating-point tensor")

    def logits(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        return problem.potential.logits(problem.g, lam) + problem.log_pz(lam).unsqueeze(1)

    def objective(self, problem: InnerProblem, lam: Tensor, logits: Tensor | None = None) -> Tensor:
        """max_q of the surrogate ELBO at λ, ``[B]`` (``logits``: ψ + log p(z | λ) at λ, if already computed)."""
        return max_q_surrogate(problem, lam, self.logits(problem, lam) if logits is None else logits)

    def posterior(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        return masked_softmax(self.logits(problem, lam), problem.mask)

    def update(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            x = lam if (create and lam.requires_grad) else lam.detach().requires_grad_()
            (grad,) = torch.autograd.grad(self.objective(problem, x).sum(), x, create_graph=create)
        n = problem.mask.sum(1).clamp_min(1).to(lam.dtype).view(-1, 1, 1)
        new = x + self.step_size * grad / n
        return new if create else new.detach()
