"""Probabilistic Slot Attention (Kori et al., 2024) as MPM components.

Each dataset fits a *local* GMM to its embeddings g_φ(x_ij): mixing weights π_k, means μ_k and
diagonal variances σ²_k. In MPM terms λ_ik = (μ_k, log σ²_k, log π_k), packed along the last
dimension as ``[B, K, 2D + 1]`` (:func:`pack` / :func:`unpack`), and

    ψ(z_ij = k | x_ij, λ_i) = log N(g_ij; μ_k, diag σ²_k)          (:class:`PSAPotential`)
    p(z_ij = k | λ_i)       = π_k                                   (``log_mixing``)
    p_η(λ_i)                = Π_k p_base(μ_k) · Dir(π; 1 + ε) · Π_kd p(σ²_kd)   (:class:`PSAPrior`)

with p(σ²) flat (PSA) or inverse gamma. :class:`PSAEM` is the closed-form EM inner solver (E-step,
then π, μ, σ² in turn; every step maximises the surrogate ELBO in its block, so it never decreases
once the variances are at or above its floor). With π uniform and σ² = 1
held fixed it is exactly Proposition 1. ARD (:func:`active_slots`) keeps slots whose π_k ≥ τ.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import IncompatibleSolverError
from .potentials import Potential
from .priors import FlatPrior, Prior
from .solvers.base import FixedPointSolver, InnerProblem, InnerResult, masked_softmax


@dataclass
class SlotGMM:
    """The local GMM of each dataset: ``mu``/``log_var`` ``[B, K, D]``, ``log_pi`` ``[B, K]``."""

    mu: Tensor
    log_var: Tensor
    log_pi: Tensor

    @property
    def var(self) -> Tensor:
        return self.log_var.exp()

    @property
    def pi(self) -> Tensor:
        return self.log_pi.exp()


def pack(mu: Tensor, log_var: Tensor, log_pi: Tensor) -> Tensor:
    """(μ, log σ², log π) → λ ``[..., K, 2D + 1]``."""
    return torch.cat([mu, log_var, log_pi.unsqueeze(-1)], -1)


def unpack(lam: Tensor) -> SlotGMM:
    """λ ``[..., K, 2D + 1]`` → :class:`SlotGMM` (log π renormalised over slots)."""
    width = lam.shape[-1]
    if width < 3 or width % 2 == 0:
        raise ValueError(f"PSA λ must have 2D + 1 features (μ, log σ², log π), got {width}")
    d = (width - 1) // 2
    return SlotGMM(lam[..., :d], lam[..., d:2 * d], torch.log_softmax(lam[..., 2 * d], -1))


def diag_gaussian_logits(g: Tensor, mu: Tensor, log_var: Tensor) -> Tensor:
    """log N(g_j; μ_k, diag σ²_k), ``[B, N, K]``, via three matmuls (no ``[B, N, K, D]`` tensor)."""
    prec = torch.exp(-log_var)  # [B, K, D]
    quad = (g**2) @ prec.transpose(1, 2) - 2 * g @ (mu * prec).transpose(1, 2) + (mu**2 * prec).sum(-1).unsqueeze(1)
    norm = log_var.sum(-1) + g.shape[-1] * math.log(2 * math.pi)  # [B, K]
    return -0.5 * (quad.clamp_min(0) + norm.unsqueeze(1))


class PSAPotential(Potential):
    """ψ = log N(g_φ(x); μ_k, diag σ²_k) with mixing weights p(z = k | λ) = π_k."""

    def lambda_dim(self, feature_dim: int) -> int:
        return 2 * feature_dim + 1

    def init_lambda(self, num_slots: int, feature_dim: int, scale: float) -> Tensor:
        """λ⁰: random means, unit variances, uniform weights."""
        mu = torch.randn(num_slots, feature_dim) * scale
        return pack(mu, torch.zeros(num_slots, feature_dim), torch.full((num_slots,), -math.log(num_slots)))

    def slot_means(self, lam: Tensor) -> Tensor:
        return unpack(lam).mu

    def with_slot_means(self, lam: Tensor, mu: Tensor) -> Tensor:
        unpack(lam)  # checks the layout
        return torch.cat([mu, lam[..., mu.shape[-1]:]], -1)  # log σ², log π as they are

    def log_mixing(self, lam: Tensor) -> Tensor:
        return unpack(lam).log_pi

    def logits(self, g: Tensor, lam: Tensor) -> Tensor:
        s = unpack(lam)
        return diag_gaussian_logits(g, s.mu, s.log_var)


class PSAPrior(Prior):
    """p_η(λ) = Π_k p_base(μ_k) · Dir(π; 1 + ε) · Π_kd p(σ²_kd) on the local GMMs.

    * means: the base prior (the global GMM in MPM);
    * mixing weights: a weak Dirichlet (ε ≥ 0) that keeps log π finite;
    * variances: flat by default (PSA's maximum likelihood, with PSA-EM's floor), or with
      ``var_shape`` α > 0 and ``var_rate`` β > 0 an inverse-gamma IG(α, β) written in the
      coordinate λ stores, ℓ = log σ²: log p(ℓ) = −α ℓ − β e^{−ℓ} + const. PSA-EM's variance step
      then becomes the MAP σ² = (S + 2β) / (N_k + 2α), and an empty slot's variance has a proper
      posterior (mode β/α).

    :meth:`log_prob` is what MAP solvers, PSA-EM and the ELBO use (the Dirichlet is a density over
    π). λ stores π as logits r, defined up to a shift; :meth:`raw_log_prob` is the density over the
    stored coordinates, for samplers and Normal guides: it adds the Jacobian of r → π, Σ_k log π_k,
    and pins the shift with exp(−½ (logsumexp_k r_k)²). The prior is :attr:`proper` when the base
    prior is and both variance hyperparameters are > 0.
    """

    def __init__(self, base: Prior | None = None, dirichlet: float = 1e-3, var_shape: float = 0.0,
                 var_rate: float = 0.0):
        super().__init__()
        vals = (dirichlet, var_shape, var_rate)
        if not all(math.isfinite(v) and v >= 0 for v in vals) or (var_shape > 0) != (var_rate > 0):
            raise ValueError("need a finite dirichlet >= 0, and var_shape and var_rate both 0 (flat variances) or "
                             f"both finite and > 0 (inverse gamma); got dirichlet={dirichlet}, "
                             f"var_shape={var_shape}, var_rate={var_rate}")
        self.base = base if base is not None else FlatPrior()
        self.dirichlet, self.var_shape, self.var_rate = float(dirichlet), float(var_shape), float(var_rate)
        self.conjugate = self.base.conjugate

    @property
    def proper(self) -> bool:  # type: ignore[override]
        return self.improper_reason is None

    @property
    def improper_reason(self) -> str | None:
        """Why exp(raw_log_prob) cannot be normalised and how to fix it, or None when it can."""
        why = []
        if not getattr(self.base, "proper", True):
            why.append(f"its prior on the means ({type(self.base).__name__}) is improper: give the means a "
                       "proper prior (e.g. the global GMM)")
        if self.var_shape == 0:
            why.append("the variances have a flat prior (PSA's maximum likelihood): give them an inverse-gamma "
                       "prior with the family option psa_var_prior, e.g. --set psa_var_prior=[1.0,0.01]")
        return "; ".join(why) or None

    def log_prob(self, lam: Tensor) -> Tensor:
        s = unpack(lam)
        out = self.base.log_prob(s.mu) + self.dirichlet * s.log_pi.sum(-1)
        if self.var_shape > 0:
            out = out - (self.var_shape * s.log_var + self.var_rate * torch.exp(-s.log_var)).sum((-1, -2))
        return out

    def raw_log_prob(self, lam: Tensor) -> Tensor:
        shift = torch.logsumexp(lam[..., -1], -1)  # 0 when λ stores normalised log π
        return self.log_prob(lam) + unpack(lam).log_pi.sum(-1) - 0.5 * shift**2

    def minorizer(self, lam: Tensor) -> tuple[Tensor, Tensor]:
        return self.base.minorizer(unpack(lam).mu)


def var_prior(values, local: str = "psa") -> tuple[float, float]:
    """A family's ``psa_var_prior`` option ``[α, β]`` checked: ``[0, 0]`` (flat, PSA's maximum
    likelihood) or both > 0 (IG(α, β) on each σ², see :class:`PSAPrior`). A prior is refused
    unless the family's ``local`` model is ``psa``: the paper's local GMM has no variances."""
    from .errors import ConfigError

    vals = list(values)
    if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in vals):
        raise ConfigError(f"psa_var_prior must be two numbers [var_shape, var_rate], got {values!r}")
    a, b = float(vals[0]), float(vals[1])
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < 0 or (a > 0) != (b > 0):
        raise ConfigError(f"psa_var_prior must be [0, 0] (flat) or two numbers > 0 (an inverse-gamma prior "
                          f"on each variance, e.g. [1.0, 0.01]), got {vals}")
    if a > 0 and local != "psa":
        raise ConfigError(f"psa_var_prior={vals} puts a prior on PSA's variances, but local={local!r} has none "
                          "(σ = 1); set local=psa, or leave psa_var_prior at [0, 0]")
    return a, b


#: log π of an annihilated slot (finite, so gradients stay finite; exp(-60) ≈ 1e-26)
DEAD = -60.0


class PSAEM(FixedPointSolver):
    """EM for the local GMM of every dataset, O(N K D) per step.

    E-step q_jk ∝ π_k N(g_j; μ_k, σ²_k); then, with N_k = Σ_j q_jk and the base prior's quadratic
    minorizer (a, m) at the current μ:

        π_k  = (N_k + ε) / (N + K ε)                                  (Dirichlet MAP)
        μ_kd = (a m_d + Σ_j q_jk g_jd / σ²_kd) / (a + N_k / σ²_kd)      (MAP / MM step)
        σ²_kd = max((Σ_j q_jk (g_jd − μ_kd)² + 2β) / (N_k + 2α), floor)

    with α, β the variance prior of :class:`PSAPrior` (0, 0 by default: PSA's maximum likelihood).

    ``learn_mixing=False`` / ``learn_variance=False`` hold π / σ² at λ⁰'s values.

    ``prune_mass = c > 0`` turns on ARD *inside* the loop (a sparse Dirichlet MAP in the manner of
    Figueiredo & Jain): π_k ∝ max(N_k − c N, 0), so a slot explaining less than a fraction c of
    the observations is annihilated (π_k = 0) and stays so; of two slots splitting one object,
    the smaller loses mass each step until it dies. This step maximises a penalised objective,
    not the surrogate ELBO, so the monotonicity guarantee holds for ``prune_mass = 0`` only (and from
    the first step on only when λ⁰'s variances are at or above ``var_floor``).
    Pruning starts after ``prune_after`` plain EM steps (default: half of them), once the slots
    have settled; pruning from λ⁰ kills slots before they reach their objects.
    """

    name = "psa-em"
    ascends_surrogate = True  # EM on the surrogate: each step maximises a minorizer

    def __init__(self, backward: str = "full", learn_mixing: bool = True, learn_variance: bool = True,
                 var_floor: float = 1e-3, prune_mass: float = 0.0, prune_after: int | None = None, **kw):
        super().__init__(backward=backward, **kw)
        if not 0 <= prune_mass < 1:
            raise ValueError(f"prune_mass is a fraction of the observations in [0, 1), got {prune_mass}")
        self.learn_mixing, self.learn_variance, self.var_floor = learn_mixing, learn_variance, float(var_floor)
        self.prune_mass, self.prune_after = float(prune_mass), prune_after

    def solve(self, problem: InnerProblem, steps: int) -> InnerResult:
        warm_steps = steps // 2 if self.prune_after is None else min(self.prune_after, steps - 1)
        if self.prune_mass == 0 or warm_steps < 1:
            return super().solve(problem, steps)
        plain = copy.copy(self)
        plain.prune_mass = 0.0
        warm = FixedPointSolver.solve(plain, problem, warm_steps)
        out = super().solve(dataclasses.replace(problem, lam0=warm.lam), steps - warm_steps)
        # the second half starts where the first ended: its first value is the first half's last
        out.trace["surrogate_elbo"] = warm.trace["surrogate_elbo"] + out.trace["surrogate_elbo"][1:]
        out.trace["steps"] += warm.trace["steps"]
        return out

    def check(self, problem: InnerProblem) -> None:
        why = []
        if not isinstance(problem.potential, PSAPotential):
            why.append(f"potential {type(problem.potential).__name__} is not a PSAPotential (λ = (μ, log σ², log π))")
        if not problem.prior.conjugate:
            why.append(f"prior {type(problem.prior).__name__} has no quadratic minorizer")
        if why:
            raise IncompatibleSolverError(self.name, "; ".join(why))

    def posterior(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        logits = problem.potential.logits(problem.g, lam) + problem.log_pz(lam).unsqueeze(1)
        return masked_softmax(logits, problem.mask)

    def update(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        s, g = unpack(lam), problem.g
        q = self.posterior(problem, lam)
        nk = q.sum(1)  # [B, K]
        s1 = q.transpose(1, 2) @ g  # Σ_j q_jk g_j, [B, K, D]
        tiny = torch.finfo(lam.dtype).tiny
        has_data = (nk > 1e-8).unsqueeze(-1)

        log_pi = s.log_pi
        if self.learn_mixing:
            eps = max(getattr(problem.prior, "dirichlet", 0.0), 1e-12)
            n = problem.mask.sum(1, keepdim=True).to(lam.dtype)
            if self.prune_mass > 0:
                kept = (nk - self.prune_mass * n).clamp_min(0)
                top = torch.zeros_like(kept).scatter_(-1, nk.argmax(-1, keepdim=True), 1.0)
                kept = torch.where(kept.sum(-1, keepdim=True) > 0, kept, top * nk)  # never prune every slot
                alive = kept > 0
                frac = kept / kept.sum(-1, keepdim=True).clamp_min(tiny)  # 0 only for a dataset with no observation
                # log of the kept slots only (log 0 would send inf · 0 = NaN into the backward pass)
                log_pi = torch.where(alive, torch.log(torch.where(alive, frac, torch.ones_like(frac))).clamp_min(DEAD),
                                     torch.full_like(frac, DEAD))
            else:
                log_pi = torch.log(nk + eps) - torch.log(n + eps * nk.shape[1])

        a, m = problem.prior.minorizer(lam)
        prec = torch.exp(-s.log_var)
        num = a.unsqueeze(-1) * m + prec * s1
        den = a.unsqueeze(-1) + prec * nk.unsqueeze(-1)
        # empty slots keep their old values; their denominators are replaced *before* dividing, so
        # the branch torch.where discards carries no inf/NaN into the backward pass
        live = den > tiny
        mu = torch.where(live, num / torch.where(live, den, torch.ones_like(den)), s.mu)

        log_var = s.log_var
        if self.learn_variance:
            # MAP under the prior's IG(α, β) on σ² (α = β = 0: maximum likelihood); with α > 0 an
            # empty slot has a maximiser too (σ² = β/α), without one it keeps its old variance
            alpha = float(getattr(problem.prior, "var_shape", 0.0))
            beta = float(getattr(problem.prior, "var_rate", 0.0))
            s2 = q.transpose(1, 2) @ (g**2)
            den = nk.unsqueeze(-1) + 2 * alpha
            ok = has_data | (alpha > 0)
            safe = torch.where(ok, den, torch.ones_like(den))
            var = ((s2 - 2 * mu * s1 + nk.unsqueeze(-1) * mu**2).clamp_min(0) + 2 * beta) / safe
            log_var = torch.where(ok, var.clamp_min(self.var_floor).log(), s.log_var)
        return pack(mu, log_var, log_pi)


def with_prune_mass(solver, prune_mass: float):
    """The test-time solver for in-loop ARD at ``prune_mass``: a copy of the PSA-EM ``solver`` (all
    its other settings kept), a plain ``PSAEM(prune_mass=...)`` for ``solver=None``, and another
    solver unchanged when ``prune_mass`` is 0. Another solver with ``prune_mass > 0`` is a
    ConfigError: it has no pruning step, and swapping it for PSA-EM would evaluate a solver the
    user did not ask for."""
    from .errors import ConfigError

    if not 0 <= prune_mass < 1:
        raise ValueError(f"prune_mass is a fraction of the observations in [0, 1), got {prune_mass}")
    if isinstance(solver, PSAEM):
        out = copy.copy(solver)
        out.prune_mass = float(prune_mass)
        return out
    if solver is None:
        return PSAEM(prune_mass=prune_mass)
    if prune_mass == 0:
        return solver
    name = getattr(solver, "name", type(solver).__name__)
    raise ConfigError(f"ard_prune={prune_mass} annihilates slots inside PSA-EM's loop, and the solver {name!r} has "
                      f"no such step; set ard_prune=0 to evaluate with {name} (ARD then counts the slots with "
                      "π_k >= ard_tau)")


def active_slots(lam: Tensor, tau: float = 0.05) -> Tensor:
    """ARD: slots whose mixing weight π_k ≥ τ, ``[B, K]`` bool (at least the heaviest slot)."""
    pi = unpack(lam).pi
    keep = pi >= tau
    top = torch.zeros_like(keep).scatter_(-1, pi.argmax(-1, keepdim=True), True)
    return keep | top


class AggregatePosterior(nn.Module):
    """The aggregate of the local GMMs over a training set, q(μ) = (1/M) Σ_i Σ_k π_ik N(μ_ik, σ²_ik).

    It is the mixture prior that makes slots identifiable; :meth:`sample` draws new slot sets.
    """

    def __init__(self, mu: Tensor, var: Tensor, pi: Tensor):
        super().__init__()
        if mu.dim() != 3 or var.shape != mu.shape or pi.shape != mu.shape[:2]:
            raise ValueError(f"AggregatePosterior expects mu, var [M, K, D] and pi [M, K], got "
                             f"{tuple(mu.shape)}, {tuple(var.shape)}, {tuple(pi.shape)}")
        self.register_buffer("mu", mu.detach().reshape(-1, mu.shape[-1]))
        self.register_buffer("var", var.detach().reshape(-1, mu.shape[-1]))
        if not (pi >= 0).all() or not pi.sum() > 0:
            raise ValueError("AggregatePosterior needs mixing weights pi >= 0 with a positive sum")
        pi = pi.detach()
        self.register_buffer("weight", (pi / pi.sum()).reshape(-1))  # = π_ik / M when each row sums to 1

    @classmethod
    def from_lambdas(cls, lam: Tensor, tau: float = 0.0) -> "AggregatePosterior":
        """From packed PSA λ ``[M, K, 2D + 1]``; slots pruned by ARD (π < τ) are left out and each
        dataset's remaining weights renormalised, so every dataset still carries mass 1/M."""
        s = unpack(lam)
        pi = s.pi
        if tau > 0:
            pi = pi * active_slots(lam, tau)
            pi = pi / pi.sum(-1, keepdim=True)
        return cls(s.mu, s.var, pi)

    def log_prob(self, mu: Tensor) -> Tensor:
        """log q(μ) for points ``[..., D]``."""
        lp = diag_gaussian_logits(mu.reshape(1, -1, mu.shape[-1]), self.mu.unsqueeze(0), self.var.log().unsqueeze(0))
        return torch.logsumexp(lp[0] + self.weight.clamp_min(1e-30).log(), -1).reshape(mu.shape[:-1])

    def sample(self, num_sets: int, num_slots: int, generator: torch.Generator | None = None,
               return_var: bool = False):
        """``[num_sets, num_slots, D]`` slot means, each drawn from the aggregate mixture (with the
        drawn components' variances ``[num_sets, num_slots, D]`` when ``return_var``)."""
        idx = torch.multinomial(self.weight.cpu(), num_sets * num_slots, replacement=True, generator=generator)
        eps = torch.randn(num_sets * num_slots, self.mu.shape[-1], generator=generator, dtype=self.mu.dtype)
        idx = idx.to(self.mu.device)
        mu = (self.mu[idx] + self.var[idx].sqrt() * eps.to(self.mu.device)).reshape(num_sets, num_slots, -1)
        return (mu, self.var[idx].reshape(mu.shape)) if return_var else mu


def psa_problem(problem: InnerProblem) -> InnerProblem:
    """The same data as ``problem`` posed for PSA: λ⁰ gains unit variances and uniform weights, the
    potential becomes :class:`PSAPotential` and the prior :class:`PSAPrior` around the old one (for
    running PSA-EM through :mod:`mpmkit.conformance` and similar harnesses)."""
    k = problem.lam0.shape[1]
    lam0 = pack(problem.lam0, torch.zeros_like(problem.lam0), problem.lam0.new_full(problem.lam0.shape[:2], -math.log(k)))
    potential = PSAPotential()
    return dataclasses.replace(problem, lam0=lam0, potential=potential, prior=PSAPrior(problem.prior),
                               log_pz=potential.log_mixing)
