"""Inner solvers: given (g, mask, prior, potential, λ⁰) return (Λ^T, q^T) — Algorithm 1, lines 4-8."""
from __future__ import annotations

import dataclasses

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

from ..errors import IncompatibleSolverError
from ..potentials import Potential
from ..priors import Prior

BACKWARD_MODES = ("full", "truncated", "implicit")


@dataclass
class InnerProblem:
    """Everything an inner solver needs for one minibatch of datasets."""

    g: Tensor  # g_φ(x), [B, N, D]
    mask: Tensor  # [B, N] bool
    prior: Prior
    potential: Potential
    lam0: Tensor  # [B, K, D]
    log_pz: Callable[[Tensor], Tensor]  # λ -> log p(z = k | λ), [B, K]
    batch: Any = None  # the raw batch, for solvers that need the likelihood
    model: Any = None  # the MPM, for solvers that need more of it


def refuse_packed_lambda(solver: str, problem: "InnerProblem") -> None:
    """For solvers that learn an update of the slot means: refuse a potential whose λ_ik packs more
    than the mean (e.g. PSA's (μ, log σ², log π)), naming the solver and the potential."""
    d = 8  # any width: the question is whether λ_ik is the slot mean alone
    if problem.potential is not None and problem.potential.lambda_dim(d) != d:
        raise IncompatibleSolverError(
            solver, f"it learns an update of the slot means, and this model's λ_ik holds more than the mean "
                    f"(its potential, {type(problem.potential).__name__}, packs other parameters with it)")


@dataclass
class InnerResult:
    """(Λ^T, q^T) plus diagnostics."""

    lam: Tensor  # [B, K, D]
    q: Tensor  # [B, N, K], rows of padded observations are zero
    trace: dict[str, Any] = field(default_factory=dict)


class Solver(ABC):
    """An inner-loop solver. Subclasses set ``name`` and implement :meth:`solve`."""

    name: ClassVar[str] = ""
    #: gradients flow from (Λ^T, q^T) to φ, η and λ⁰
    differentiable: ClassVar[bool] = True
    #: every step provably never lowers the surrogate ELBO (closed-form / EM updates); checked by
    #: mpmkit.conformance's ``ascent`` check, which needs ``posterior`` and ``surrogate_elbo``
    ascends_surrogate: ClassVar[bool] = False

    def check(self, problem: InnerProblem) -> None:
        """Raise :class:`IncompatibleSolverError` if this solver cannot serve ``problem``."""

    def bind(self, num_slots: int, slot_dim: int) -> None:
        """Called once by :class:`~mpmkit.model.MPM`; learned solvers build their layers here."""

    @abstractmethod
    def solve(self, problem: InnerProblem, steps: int) -> InnerResult:
        """Run the inner loop for ``steps`` iterations."""


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """softmax over slots (last dim), padded rows set to zero."""
    q = torch.softmax(logits, dim=-1)
    return q * mask.unsqueeze(-1).to(q.dtype)


class FixedPointSolver(Solver):
    """A solver iterating λ ← F(λ), with a choice of backward pass.

    * ``full``: backpropagate through all T steps (the paper's choice);
    * ``truncated``: run T - k steps without a graph, backpropagate through the last k;
    * ``implicit``: treat Λ^T as a fixed point λ* = F(λ*); the gradient is taken through one
      application of F at λ* (first order), optionally corrected by ``neumann`` terms of the
      series (I - ∂F/∂λ)^{-T} = Σ_n (∂F/∂λ)^{T n}. Memory does not grow with T.

    Truncated and implicit modes do not propagate a gradient to λ⁰. ``tol`` stops the loop early once
    no λ moves by more than ``tol`` in a step: in the graph-free steps, and with ``full`` in the
    unrolled ones (the gradient then runs through the steps taken).
    """

    def __init__(self, backward: str = "full", truncate: int = 1, neumann: int = 0, tol: float | None = None,
                 trace: bool = False):
        if backward not in BACKWARD_MODES:
            raise ValueError(f"unknown backward mode {backward!r}; choose one of {', '.join(BACKWARD_MODES)}")
        if isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < 1:
            raise ValueError(f"truncate is the number of steps to backpropagate through, >= 1; got {truncate!r}")
        if isinstance(neumann, bool) or not isinstance(neumann, int) or neumann < 0:
            raise ValueError(f"neumann is a number of correction terms, >= 0; got {neumann!r}")
        if tol is not None and not tol > 0:
            raise ValueError(f"tol is a distance, > 0 (or None for no early stop); got {tol!r}")
        self.backward, self.truncate, self.neumann, self.tol, self.trace = backward, truncate, neumann, tol, trace

    @abstractmethod
    def update(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        """One inner iteration F(λ)."""

    @abstractmethod
    def posterior(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        """q = argmax_q of the surrogate ELBO at fixed λ, ``[B, N, K]``."""

    def surrogate_elbo(self, problem: InnerProblem, lam: Tensor, q: Tensor) -> Tensor:
        """Surrogate ELBO per dataset, ``[B]`` (for diagnostics)."""
        from ..model import surrogate_elbo

        return surrogate_elbo(problem.g, problem.mask, lam, q, problem.prior, problem.potential, problem.log_pz)

    def solve(self, problem: InnerProblem, steps: int) -> InnerResult:
        self.check(problem)
        if steps < 1:
            raise ValueError(f"inner steps must be >= 1, got {steps}")
        grad = torch.is_grad_enabled()
        n_graph = {"full": steps, "truncated": min(self.truncate, steps), "implicit": 1}[self.backward]
        lam = prev = problem.lam0
        trace: dict[str, Any] = {"surrogate_elbo": [], "steps": 0}
        self._record(problem, lam, trace, count=False)
        with torch.no_grad():  # free phase: no graph is kept
            for _ in range(steps - n_graph):
                prev, lam = lam, self.update(problem, lam)
                self._record(problem, lam, trace)
                if self._converged(lam, prev):
                    break
        if self.backward != "full":
            lam = lam.detach().requires_grad_(grad)
        for _ in range(n_graph):
            prev, lam = lam, (self._implicit_step(problem, lam) if self.backward == "implicit"
                              else self.update(problem, lam))
            self._record(problem, lam, trace)
            if self.backward == "full" and self._converged(lam, prev):  # full has no free phase
                break
        trace["residual"] = float((lam - prev).detach().norm(dim=-1).mean())
        return InnerResult(lam=lam, q=self.posterior(problem, lam), trace=trace)

    def _converged(self, lam: Tensor, prev: Tensor) -> bool:
        """``tol`` reached: no λ moved by more than ``tol`` (Euclidean norm per slot) in the last step."""
        return self.tol is not None and float((lam - prev).detach().norm(dim=-1).max()) < self.tol

    def _record(self, problem: InnerProblem, lam: Tensor, trace: dict[str, Any], count: bool = True) -> None:
        trace["steps"] += int(count)
        if self.trace:
            with torch.no_grad():
                trace["surrogate_elbo"].append(self._elbo_mean(problem, lam))

    def _implicit_step(self, problem: InnerProblem, lam_star: Tensor) -> Tensor:
        out = self.update(problem, lam_star)
        if self.neumann > 0 and out.requires_grad:
            n = self.neumann
            frozen = dataclasses.replace(problem, g=problem.g.detach())

            def hook(grad: Tensor) -> Tensor:
                # v ← (∂F/∂λ)^T v on a separate graph at λ*, so this hook never fires on itself
                with torch.enable_grad():
                    x = lam_star.detach().requires_grad_()
                    fx = self.update(frozen, x)
                v, acc = grad, grad
                for _ in range(n):
                    (v,) = torch.autograd.grad(fx, x, v, retain_graph=True)
                    acc = acc + v
                return acc

            out.register_hook(hook)
        return out

    def _elbo_mean(self, problem: InnerProblem, lam: Tensor) -> float:
        q = self.posterior(problem, lam)
        return float(self.surrogate_elbo(problem, lam, q).mean())
