"""Closed-form coordinate ascent of Proposition 1."""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import IncompatibleSolverError
from .base import FixedPointSolver, InnerProblem, masked_softmax


class CoordinateAscent(FixedPointSolver):
    """q(z_ij = k) ∝ p(z=k|λ) exp ψ_ijk, then μ_ik = (a m + Σ_j q_ijk g_ij) / (a + Σ_j q_ijk).

    (a, m) is the prior's quadratic minorizer at the current μ (for the global GMM:
    a = 1/σ², m = Σ_l r_ikl ν_l). One update F(λ) = M(E(λ), λ) never lowers the surrogate
    ELBO. Cost O(N K D) per step via matmuls; nothing of size [B, N, K, D] is formed.
    """

    name = "coordinate-ascent"
    ascends_surrogate = True  # Proposition 1: each q- and Λ-step is a (minorize-)maximisation

    def check(self, problem: InnerProblem) -> None:
        why = []
        if not problem.potential.closed_form:
            why.append(f"potential {type(problem.potential).__name__} has no closed form (needs ψ = -½‖μ - g‖²)")
        if not problem.prior.conjugate:
            why.append(f"prior {type(problem.prior).__name__} has no quadratic minorizer")
        if why:
            raise IncompatibleSolverError(self.name, "; ".join(why))

    def posterior(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        logits = problem.potential.relative_logits(problem.g, lam) + problem.log_pz(lam).unsqueeze(1)
        return masked_softmax(logits, problem.mask)

    def m_step(self, problem: InnerProblem, lam: Tensor, q: Tensor) -> Tensor:
        """argmax over Λ of the surrogate's minorizer at ``lam`` given q."""
        a, m = problem.prior.minorizer(lam)
        mass = q.sum(1)  # Σ_j q_ijk, [B, K]
        total = q.transpose(1, 2) @ problem.g  # Σ_j q_ijk g_ij, [B, K, D]
        denom = (a + mass).unsqueeze(-1)
        # A slot with (next to) no data and a flat prior keeps its position: below machine epsilon of one
        # observation the gradient of the weighted mean, ∝ 1/denom², overflows (inf − inf = NaN in q's
        # gradient). Its denominator is replaced *before* dividing, as the discarded branch of torch.where
        # still gets a (zero) gradient, and 0 · inf is NaN.
        live = denom > torch.finfo(lam.dtype).eps
        new = (a.unsqueeze(-1) * m + total) / torch.where(live, denom, torch.ones_like(denom))
        return torch.where(live, new, lam)

    def update(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        return self.m_step(problem, lam, self.posterior(problem, lam))
