"""The MPM model: prior p_η, likelihood p_θ, potential ψ_φ, inner solver and λ⁰; its two ELBOs."""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .batch import Batch
from .likelihoods import Likelihood
from .potentials import Potential
from .priors import Prior
from .solvers import InnerProblem, InnerResult, Solver


def entropy(q: Tensor) -> Tensor:
    """Σ_j H(q_ij) per dataset, ``[B]`` (padded rows are zero and contribute nothing)."""
    # q log q with a finite gradient at q = 0 (padded rows, collapsed slots)
    return -(q * torch.log(q.clamp_min(torch.finfo(q.dtype).tiny))).sum((1, 2))


def surrogate_elbo(g: Tensor, mask: Tensor, lam: Tensor, q: Tensor, prior: Prior, potential: Potential,
                   log_pz) -> Tensor:
    """\\hat L_i^ELBO = log p(λ_i|η) + Σ_j E_q[ψ + log p(z|λ) - log q], ``[B]``."""
    scores = torch.where(mask.unsqueeze(-1), potential.logits(g, lam) + log_pz(lam).unsqueeze(1), 0.0)
    return prior.log_prob(lam) + (q * scores).sum((1, 2)) + entropy(q)


@dataclass
class ELBO:
    """Terms of L_i^ELBO per dataset (each ``[B]``).

    ``beta`` scales the z-part of the bound, E_q[log p(z | λ)] + H[q] = −KL(q ‖ p(z | λ)) (as in a
    β-VAE). With the paper's uniform p(z | λ) the first term is the constant −N log K, so this is
    the paper's β on the entropy (Sec. 5.1) up to a constant. With mixing weights (PSA) the
    E_q[log π] term must be scaled too: left at weight 1 while β = 0 it rewards putting every
    observation in one slot, and the outer loop learns to collapse the embeddings.
    """

    log_prior: Tensor
    log_lik: Tensor
    log_pz: Tensor
    entropy: Tensor
    n_obs: Tensor
    beta: float = 1.0

    @property
    def total(self) -> Tensor:
        """L_i^ELBO with −KL(q ‖ p(z | λ)) scaled by β, ``[B]`` (β = 1: the true ELBO)."""
        return self.log_prior + self.log_lik + self.beta * (self.log_pz + self.entropy)

    def loss(self, prior_weight: float = 1.0) -> Tensor:
        """Negative ELBO per observation, averaged over the batch (the outer-loop loss)."""
        total = prior_weight * self.log_prior + self.log_lik + self.beta * (self.log_pz + self.entropy)
        return -total.sum() / self.n_obs.sum().clamp_min(1)

    def metrics(self) -> dict[str, float]:
        """Per observation: ``elbo`` is the true ELBO (β = 1, a lower bound on log p(x)); ``objective``
        the β-scaled one training maximises; the terms add up to them."""
        n = float(self.n_obs.sum().clamp_min(1))

        def per_obs(t: Tensor) -> float:
            return float(t.detach().sum()) / n

        return {
            "elbo": per_obs(dataclasses.replace(self, beta=1.0).total),
            "objective": per_obs(self.total),
            "log_lik": per_obs(self.log_lik),
            "log_prior": per_obs(self.log_prior),
            "log_pz": per_obs(self.log_pz),
            "entropy": per_obs(self.entropy),
        }


@dataclass
class Inference:
    """Result of the inner loop for a batch: g_φ(x), Λ^T, q^T and solver diagnostics."""

    g: Tensor
    lam: Tensor
    q: Tensor
    trace: dict[str, Any]


#: Adam's default step size for :meth:`MPM.refine` (families set their own, measured per model)
REFINE_LR = 0.03


def _autocast_off(device: str) -> tuple[bool, contextlib.AbstractContextManager]:
    """(whether autocast is on for ``device``, a context that turns it off there) for fp32 islands under amp."""
    mixed = torch.is_autocast_enabled(device)
    return mixed, (torch.autocast(device, enabled=False) if mixed else contextlib.nullcontext())


class MPM(nn.Module):
    """A meta-probabilistic model (Fig. 2) trained by Algorithm 1.

    Global parameters: θ (``likelihood``), η (``prior``), φ (``potential``) and the shared
    initialisation λ⁰ (``lambda0``, ``[K, D]``). ``solver`` runs the inner loop.
    """

    def __init__(self, *, prior: Prior, likelihood: Likelihood, potential: Potential, solver: Solver,
                 num_slots: int, slot_dim: int, inner_steps: int = 3, beta: float = 1.0, prior_weight: float = 1.0,
                 init_scale: float = 1.0):
        super().__init__()
        if num_slots < 1 or slot_dim < 1:
            raise ValueError(f"num_slots and slot_dim must be >= 1, got K={num_slots}, D={slot_dim}")
        solver.bind(num_slots, slot_dim)
        self.prior, self.likelihood, self.potential, self.solver = prior, likelihood, potential, solver
        self.lambda0 = nn.Parameter(potential.init_lambda(num_slots, slot_dim, init_scale))
        self.inner_steps, self.beta, self.prior_weight = inner_steps, beta, prior_weight
        self.init_scale = float(init_scale)

    @property
    def num_slots(self) -> int:
        return self.lambda0.shape[0]

    def log_pz(self, lam: Tensor) -> Tensor:
        """log p(z_ij = k | λ_i), ``[B, K]``: uniform 1/K as in the paper, unless λ carries mixing weights."""
        mixing = self.potential.log_mixing(lam)
        return mixing if mixing is not None else lam.new_full(lam.shape[:2], -math.log(lam.shape[1]))

    def problem(self, batch: Batch, g: Tensor | None = None) -> InnerProblem:
        """The inner problem of Algorithm 1 for ``batch`` (embeds it with g_φ unless given)."""
        if g is None:
            g = self.potential.embed(batch.x, batch.mask)
        lam0 = self.lambda0.unsqueeze(0).expand(batch.size, -1, -1)
        if self.potential.lambda_dim(g.shape[-1]) != lam0.shape[-1]:
            raise ValueError(f"g_φ returns D={g.shape[-1]} features but λ⁰ has {lam0.shape[-1]} "
                             f"(the potential expects {self.potential.lambda_dim(g.shape[-1])}); "
                             "set slot_dim to the recognition network's output size")
        return InnerProblem(g=g, mask=batch.mask, prior=self.prior, potential=self.potential, lam0=lam0,
                            log_pz=self.log_pz, batch=batch, model=self)

    def infer(self, batch: Batch, steps: int | None = None, solver: Solver | None = None,
              lam0: Tensor | None = None, g: Tensor | None = None) -> Inference:
        """Inner loop (lines 4-8): Λ^T, q^T for every dataset in the batch (from ``lam0`` ``[B, K, D]``
        instead of the learned λ⁰ if given; with the embeddings ``g`` if already computed)."""
        problem = self.problem(batch, g)
        if lam0 is not None:
            if lam0.shape != problem.lam0.shape:
                raise ValueError(f"lam0 must have the shape of the batch's λ⁰ {tuple(problem.lam0.shape)} "
                                 f"([B, K, D]), got {tuple(lam0.shape)}")
            problem = dataclasses.replace(problem, lam0=lam0.to(problem.lam0))
        mixed, fp32 = _autocast_off(problem.g.device.type)
        if mixed:  # mixed precision stops at the inner loop: whichever solver runs, it runs in fp32
            problem = dataclasses.replace(problem, g=problem.g.float(), lam0=problem.lam0.float())
        with fp32:
            result: InnerResult = (solver or self.solver).solve(problem, self.inner_steps if steps is None else steps)
        return Inference(g=problem.g, lam=result.lam, q=result.q, trace=result.trace)

    def surrogate_elbo(self, batch: Batch, inference: Inference) -> Tensor:
        """\\hat L^ELBO per dataset at (Λ, q), ``[B]``."""
        return surrogate_elbo(inference.g, batch.mask, inference.lam, inference.q, self.prior, self.potential,
                              self.log_pz)

    def elbo(self, batch: Batch, inference: Inference, beta: float | None = None) -> ELBO:
        """L_i^ELBO(Λ^T, θ, η, q^T) per dataset (line 9); the MPM objective is its sum."""
        lam, q, mask = inference.lam, inference.q, batch.mask
        m = mask.to(q.dtype)
        ll = self.likelihood.log_prob(batch.x, lam, mask)
        if self.likelihood.form == "mixture":  # padded rows dropped, not multiplied by q = 0 (0 · -inf = NaN)
            log_lik = (q * torch.where(mask.unsqueeze(-1), ll, 0.0)).sum((1, 2))
        elif self.likelihood.form == "additive":
            log_lik = torch.where(mask, ll, 0.0).sum(1)
        else:
            raise ValueError(f"likelihood form must be 'mixture' or 'additive', got {self.likelihood.form!r}")
        mixed, fp32 = _autocast_off(lam.device.type)
        # log p_η(λ) and log p(z | λ) in fp32 under amp: the GMM's ‖λ − ν‖² cancels badly in bf16
        with fp32:
            lam_p, q_p = (lam.float(), q.float()) if mixed else (lam, q)
            log_pz = (q_p * self.log_pz(lam_p).unsqueeze(1)).sum((1, 2))
            log_prior = self.prior.log_prob(lam_p)
        return ELBO(log_prior=log_prior, log_lik=log_lik, log_pz=log_pz, entropy=entropy(q),
                    n_obs=m.sum(1), beta=self.beta if beta is None else beta)

    def refine(self, batch: Batch, inference: Inference, steps: int, lr: float = REFINE_LR) -> Inference:
        """Test-time refinement: Adam ascent on the *true* ELBO L_i(Λ, q^T) w.r.t. Λ alone, from Λ^T.

        The inner loop maximises the surrogate ELBO, whose optimum is not the true ELBO's; these
        steps move each λ_i towards a mode of p_θ(x_i | λ_i) p_η(λ_i) (q held at q^T, so for an
        additive likelihood it is MAP inference of λ_i through the decoder). Each dataset keeps the
        best Λ seen, so its true ELBO never ends below where it started. Model parameters get no
        gradients; returns a new :class:`Inference` (``trace["refine_gain"]``: ELBO gained, ``[B]``).
        """
        if steps < 0 or lr <= 0:
            raise ValueError(f"refine needs steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
        q = inference.q.detach()
        best = inference.lam.detach().clone()
        lam = best.clone().requires_grad_()
        opt = torch.optim.Adam([lam], lr=lr)
        with torch.enable_grad():
            for step in range(steps + 1):
                total = self.elbo(batch, dataclasses.replace(inference, lam=lam, q=q), beta=1.0).total
                with torch.no_grad():  # total is the ELBO at the current λ: keep it where it is the best so far
                    if step == 0:  # at Λ^T itself
                        start = best_val = total.detach()
                    better = total > best_val
                    best = torch.where(better.view(-1, *[1] * (lam.dim() - 1)), lam.detach(), best)
                    best_val = torch.where(better, total.detach(), best_val)
                if step == steps:
                    break
                (grad,) = torch.autograd.grad(-total.sum(), lam)
                lam.grad = grad
                opt.step()
        trace = {**inference.trace, "refine_gain": best_val - start}
        return Inference(g=inference.g, lam=best, q=q, trace=trace)

    def perturb(self, lam0: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A random restart point near λ⁰ ``[B, K, D]``: the slot means μ⁰ + s ε with s the scale λ⁰ was
        drawn at (``init_scale``), the rest of λ (PSA's σ², π) kept; models that learn their initial noise
        override this. ``generator`` must live on λ⁰'s device."""
        mu = self.potential.slot_means(lam0)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return self.potential.with_slot_means(lam0, mu + self.init_scale * noise)

    def infer_restarts(self, batch: Batch, restarts: int, steps: int | None = None, solver: Solver | None = None,
                       refine_steps: int = 0, refine_lr: float = REFINE_LR,
                       generator: torch.Generator | None = None) -> Inference:
        """Best of ``restarts`` inner-loop runs per dataset, judged by the *true* ELBO (β = 1).

        Run 0 starts at λ⁰ itself, run r > 0 at :meth:`perturb` (λ⁰) — the inner loop is a local
        ascent, so a start that puts two objects in one slot stays there; the true ELBO, which the
        decoder scores, picks the run that explains the data best. Each run takes ``refine_steps``
        of :meth:`refine` before it is scored. Returns the chosen runs' Λ, q with
        ``trace["restart"]`` (index chosen, ``[B]``) and ``trace["restart_elbo"]`` (``[B, R]``); the
        solver's other trace entries (steps, residual: per batch, not per dataset) are run 0's. With
        one run, that run as it is (no scoring pass).
        """
        if restarts < 1:
            raise ValueError(f"restarts must be >= 1 (1: the single run from λ⁰), got {restarts}")
        best: Inference | None = None
        scores = []
        for r in range(restarts):
            lam0 = None
            if r > 0:  # restart points are constants: no graph back into λ⁰ or a learned noise scale
                with torch.no_grad():
                    lam0 = self.perturb(self.lambda0.unsqueeze(0).expand(batch.size, -1, -1), generator)
            # g_φ(x) does not depend on the start: embed once, in run 0
            inference = self.infer(batch, steps=steps, solver=solver, lam0=lam0, g=None if best is None else best.g)
            if refine_steps:
                inference = self.refine(batch, inference, refine_steps, refine_lr)
            if restarts == 1:
                return inference
            with torch.no_grad():
                score = self.elbo(batch, inference, beta=1.0).total.detach()
            if best is None:
                best, best_score, choice = inference, score, torch.zeros_like(score, dtype=torch.long)
            else:
                better = score > best_score
                pick = better.view(-1, 1, 1)
                best = Inference(g=best.g, lam=torch.where(pick, inference.lam, best.lam),
                                 q=torch.where(pick, inference.q, best.q), trace=best.trace)
                best_score = torch.where(better, score, best_score)
                choice = torch.where(better, torch.full_like(choice, r), choice)
            scores.append(score)
        trace = {**best.trace, "restart": choice, "restart_elbo": torch.stack(scores, 1)}
        return Inference(g=best.g, lam=best.lam, q=best.q, trace=trace)

    def forward(self, batch: Batch) -> tuple[Tensor, ELBO, Inference]:
        """One outer-loop evaluation: (loss, ELBO terms, inference)."""
        inference = self.infer(batch)
        terms = self.elbo(batch, inference)
        return terms.loss(self.prior_weight), terms, inference
