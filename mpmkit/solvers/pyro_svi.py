"""Pyro backends for the inner problem: the shared log density over λ_i and the ``pyro-svi`` solver.

For dataset i the inner problem is inference over λ_i = {μ_ik}_k with z_ij marginalised exactly:

    log p̂(λ_i, D_i) = log p_η(λ_i) + Σ_j mask_ij · logsumexp_k [ s_ijk(λ_i) + log p(z_ij = k | λ_i) ]

where the score s is, by ``evidence``:

* ``"potential"`` (default): the surrogate potential ψ_φ(z_ij = k | x_ij, λ_i). Then log p̂ is the
  surrogate ELBO maximised over q, so its mode is the fixed point that coordinate ascent / gradient
  ascent find, and p̂(λ | D) ∝ exp log p̂ is the *surrogate* posterior. It is the exact posterior
  whenever ψ equals log p_θ(x | z = k, λ) up to terms constant in (k, λ) — e.g. the spiral-GMM family,
  where g_φ = T⁻¹(x)/s and ψ = −½‖μ_k − g‖².
* ``"likelihood"``: the model's own log p_θ(x_ij | z_ij = k, λ_i) (mixture form; the additive form
  p_θ(x_ij | λ_i) does not depend on z). Exact posterior, but needs ``problem.batch``/``problem.model``
  and re-evaluates the likelihood at every step.

Summing z out analytically is the same as Pyro's parallel enumeration of z_ij followed by
``TraceEnum_ELBO``'s exact sum, without the enumeration machinery. The returned q is the exact
conditional p̂(z_ij = k | λ_i, x_ij) = softmax_k(s + log p(z|λ)) at the returned λ.

Gradients for training (``differentiable = False``): the fitted Λ is detached, so λ⁰ gets no gradient
and no gradient flows through the SVI iterations. The outer ELBO is evaluated at (Λ̂, q(Λ̂)) with q
recomputed on the graph: θ and η get ∂L/∂θ, ∂L/∂η at fixed Λ̂ — the envelope theorem, exact when Λ̂ is
the optimum of an inner objective equal to the outer one (``evidence="likelihood"``, or a potential that
matches the likelihood); φ gets the gradient through q only (one E-step, as the first-order
``implicit`` backward) and not the ∂Λ̂/∂φ path. ``backward`` is accepted for a uniform factory
signature and recorded, but this envelope gradient is used whatever it says.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from ..errors import IncompatibleSolverError
from .base import BACKWARD_MODES, InnerProblem, InnerResult, Solver, masked_softmax

EVIDENCE = ("potential", "likelihood")


@contextlib.contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Turn off ``requires_grad`` of the modules' parameters for the block (restored after).

    Pyro's SVI calls ``backward`` on its loss; without this, gradients of the inner fit would
    leak into the model's θ, η, φ ``.grad`` in the middle of an outer training step.
    """
    params = {id(p): p for m in modules if m is not None for p in m.parameters()}
    was = {k: p.requires_grad for k, p in params.items()}
    try:
        for p in params.values():
            p.requires_grad_(False)
        yield
    finally:
        for k, p in params.items():
            p.requires_grad_(was[k])


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run the block with torch's RNG seeded to ``seed`` and restore the caller's RNG after (no-op for None)."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class PyroSolverBase(Solver):
    """Common parts of the Pyro solvers: option checks, the marginal log density and q."""

    differentiable = False
    what = "this solver"  #: what needs a proper prior, for the error message

    @property
    def needs_proper_prior(self) -> bool:
        """True when the solver represents the posterior's spread (sampling, a Normal guide)."""
        return True

    def __init__(self, backward: str = "full", evidence: str = "potential", seed: int | None = 0):
        if backward not in BACKWARD_MODES:
            raise ValueError(f"unknown backward mode {backward!r}; choose one of {', '.join(BACKWARD_MODES)}")
        if evidence not in EVIDENCE:
            raise ValueError(f"unknown evidence {evidence!r}; choose one of {', '.join(EVIDENCE)}")
        self.backward, self.evidence, self.seed = backward, evidence, seed

    def check(self, problem: InnerProblem) -> None:
        if problem.prior is None:
            raise IncompatibleSolverError(self.name, "the inner problem has no prior p_η(λ)")
        if self.evidence == "likelihood" and getattr(problem.model, "likelihood", None) is None:
            raise IncompatibleSolverError(
                self.name, "evidence='likelihood' needs the model's likelihood (InnerProblem.model); "
                           "use evidence='potential' for bare inner problems")
        if self.needs_proper_prior and not getattr(problem.prior, "proper", True):
            why = getattr(problem.prior, "improper_reason", None) or \
                f"{type(problem.prior).__name__} is improper: give λ a proper prior"
            raise IncompatibleSolverError(
                self.name, f"{self.what} needs a proper prior p_η(λ) (a slot with no data would have a posterior "
                           f"that cannot be normalised, and the fit diverges), and {why}. Or fit the MAP instead: "
                           "--set solver=pyro-svi --set solver_options={guide: delta}")
        lam = problem.lam0
        if lam is not None and not lam.is_floating_point():
            raise IncompatibleSolverError(self.name, "Λ must be a floating-point tensor")

    def _check_inputs(self, problem: InnerProblem, steps: int) -> None:
        self.check(problem)
        if steps < 1:
            raise ValueError(f"inner steps must be >= 1, got {steps}")
        if problem.g is None or problem.lam0 is None or problem.mask is None:
            raise ValueError(f"solver {self.name!r} needs g, mask and lam0 in the inner problem")
        b, n = problem.mask.shape
        if problem.lam0.dim() != 3 or problem.lam0.shape[0] != b:
            raise ValueError(f"lam0 must be [B={b}, K, D], got {tuple(problem.lam0.shape)}")
        if self.evidence == "likelihood" and problem.batch is None:
            raise ValueError("evidence='likelihood' needs the raw batch in InnerProblem.batch")

    def logits(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        """s_ijk + log p(z_ij = k | λ_i), ``[B, N, K]``."""
        log_pz = problem.log_pz(lam).unsqueeze(-2)
        if self.evidence == "potential":
            return problem.potential.logits(problem.g, lam) + log_pz
        lik = problem.model.likelihood
        ll = lik.log_prob(problem.batch.x, lam, problem.mask)
        if lik.form == "additive":
            ll = ll.unsqueeze(-1)
        return ll + log_pz

    def log_density(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        """log p̂(λ_i, D_i) with z marginalised, ``[B]`` (padded observations contribute 0).

        A solver that represents the posterior's spread uses the prior's density over λ's stored
        coordinates (``raw_log_prob``); MAP uses ``log_prob``, so its mode is the one EM finds."""
        per_obs = torch.logsumexp(self.logits(problem, lam), -1)
        per_obs = torch.where(problem.mask, per_obs, torch.zeros_like(per_obs))
        prior = problem.prior.raw_log_prob(lam) if self.needs_proper_prior else problem.prior.log_prob(lam)
        return prior + per_obs.sum(-1)

    def posterior(self, problem: InnerProblem, lam: Tensor) -> Tensor:
        """Exact conditional responsibilities p̂(z_ij = k | λ_i, x_ij), ``[B, N, K]``; padded rows zero."""
        logits = self.logits(problem, lam)
        logits = torch.where(problem.mask.unsqueeze(-1), logits, torch.zeros_like(logits))
        return masked_softmax(logits, problem.mask)

    def _fixed(self, problem: InnerProblem) -> InnerProblem:
        """``problem`` with g detached (the inner fit must not build a graph into φ).

        With ``evidence="potential"`` trailing observations that are padding in every dataset are
        dropped, so extra padding leaves the fit bit-for-bit unchanged (MCMC amplifies round-off).
        """
        from dataclasses import replace

        g, mask = problem.g.detach(), problem.mask
        if self.evidence == "potential":
            real = mask.any(0).nonzero()
            n = int(real.max()) + 1 if len(real) else 1
            g, mask = g[:, :n], mask[:, :n]
        return replace(problem, g=g, mask=mask, lam0=problem.lam0.detach())

    def _frozen(self, problem: InnerProblem):
        return frozen(problem.prior, problem.potential, problem.model)

    def _surrogate(self, problem: InnerProblem, lam: Tensor) -> float:
        with torch.no_grad():
            return float(self.log_density(problem, lam).mean())


class PyroSVI(PyroSolverBase):
    """Stochastic variational inference over λ_i with ``pyro.infer.SVI`` (z marginalised).

    Pyro model: λ_i ~ ImproperUniform (shape ``[K, D]``, inside a plate over the B datasets) plus
    ``pyro.factor(log p̂(λ_i, D_i))`` (see the module docstring for the density and ``evidence``).
    Guide (``guide="normal"``): q(λ_i) = N(loc_i, diag scale_i²) with loc initialised at λ⁰ and
    ``scale = init_scale``; ``guide="delta"`` gives MAP. Fitted for ``num_steps`` SVI steps of
    ``Trace_ELBO`` with ClippedAdam (learning rate ``lr`` decayed geometrically to ``lr * lr_decay``).
    Returns λ = loc (the mean of q(λ)) and q = the exact conditional p̂(z | λ, x) at it; the trace
    holds the guide's ``scale`` and the per-step ``svi_loss``. The ``steps`` argument of
    :meth:`solve` (the model's ``inner_steps``) is not used: SVI needs far more, cheaper, steps.
    Deterministic for a given ``seed`` (the caller's RNG is left untouched); the fit runs in its own
    Pyro parameter-store scope, so nothing leaks into the global store.
    """

    name = "pyro-svi"

    def __init__(self, backward: str = "full", num_steps: int = 300, lr: float = 0.2, lr_decay: float = 0.05,
                 guide: str = "normal", init_scale: float = 0.1, num_particles: int = 1,
                 evidence: str = "potential", seed: int | None = 0):
        super().__init__(backward=backward, evidence=evidence, seed=seed)
        if guide not in ("normal", "delta"):
            raise ValueError(f"unknown guide {guide!r}; choose 'normal' or 'delta'")
        if num_steps < 1 or num_particles < 1:
            raise ValueError(f"num_steps and num_particles must be >= 1, got {num_steps}, {num_particles}")
        if lr <= 0 or not 0 < lr_decay <= 1 or init_scale <= 0:
            raise ValueError("need lr > 0, 0 < lr_decay <= 1 and init_scale > 0")
        self.num_steps, self.lr, self.lr_decay = num_steps, lr, lr_decay
        self.guide, self.init_scale, self.num_particles = guide, init_scale, num_particles

    @property
    def what(self) -> str:  # type: ignore[override]
        return f"SVI with guide={self.guide!r}"

    @property
    def needs_proper_prior(self) -> bool:
        return self.guide == "normal"  # a Delta guide is MAP: an improper prior is fine

    def solve(self, problem: InnerProblem, steps: int) -> InnerResult:
        import pyro
        import pyro.distributions as dist
        from pyro.distributions import constraints
        from pyro.infer import SVI, Trace_ELBO
        from pyro.optim import ClippedAdam

        self._check_inputs(problem, steps)
        fixed = self._fixed(problem)
        lam0 = fixed.lam0
        b, k, d = lam0.shape

        def model():
            with pyro.plate("datasets", b):
                lam = pyro.sample("lam", dist.ImproperUniform(constraints.real, (), (k, d)))
                pyro.factor("log_joint", self.log_density(fixed, lam))

        def guide():
            loc = pyro.param("lam_loc", lam0.clone())
            with pyro.plate("datasets", b):
                if self.guide == "delta":
                    pyro.sample("lam", dist.Delta(loc, event_dim=2))
                else:
                    scale = pyro.param("lam_scale", torch.full_like(lam0, self.init_scale),
                                       constraint=constraints.positive)
                    pyro.sample("lam", dist.Normal(loc, scale).to_event(2))

        n_obs = float(problem.mask.sum().clamp_min(1))
        losses: list[float] = []
        trace: dict[str, Any] = {"gradient": "envelope", "backward": self.backward,
                                 "surrogate_elbo": [self._surrogate(fixed, lam0)]}
        store = pyro.get_param_store()
        with self._frozen(problem), torch.enable_grad(), seeded(self.seed, lam0.device), store.scope():
            optim = ClippedAdam({"lr": self.lr, "lrd": self.lr_decay ** (1.0 / self.num_steps)})
            svi = SVI(model, guide, optim, Trace_ELBO(num_particles=self.num_particles))
            prev = lam0
            for _ in range(self.num_steps):
                if "lam_loc" in store:
                    prev = pyro.param("lam_loc").detach().clone()
                losses.append(svi.step() / n_obs)
            lam = pyro.param("lam_loc").detach().clone()
            if self.guide == "normal":
                trace["scale"] = pyro.param("lam_scale").detach().clone()
        trace.update(svi_loss=losses, steps=self.num_steps,
                     residual=float((lam - prev).norm(dim=-1).mean()))
        trace["surrogate_elbo"].append(self._surrogate(fixed, lam))
        return InnerResult(lam=lam, q=self.posterior(problem, lam), trace=trace)


def map_estimate(solver: PyroSolverBase, problem: InnerProblem, steps: int, lr: float = 0.1) -> Tensor:
    """argmax_λ log p̂(λ, D) by Adam from λ⁰ (``problem`` must be detached), learning rate decayed ×0.01."""
    lam = problem.lam0.detach().clone().requires_grad_()
    opt = torch.optim.Adam([lam], lr=lr)
    gamma = 0.01 ** (1.0 / max(steps, 1))
    with torch.enable_grad():
        for t in range(steps):
            opt.zero_grad()
            (-solver.log_density(problem, lam).sum()).backward()
            opt.step()
            for group in opt.param_groups:
                group["lr"] = lr * gamma ** (t + 1)
    return lam.detach()


__all__ = ["EVIDENCE", "PyroSVI", "PyroSolverBase", "frozen", "map_estimate", "seeded"]
