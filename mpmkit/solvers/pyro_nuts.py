"""``pyro-nuts``: the posterior over λ_i by ``pyro.infer.MCMC(NUTS)``, z marginalised, with diagnostics."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import InnerProblem, InnerResult
from .pyro_svi import PyroSolverBase, map_estimate, seeded


class PyroNUTS(PyroSolverBase):
    """NUTS samples of λ_i from p̂(λ_i | D_i) ∝ exp log p̂(λ_i, D_i) (density: :mod:`.pyro_svi`).

    All B datasets are sampled jointly (their posteriors factorise; a diagonal mass matrix adapts
    each coordinate's scale), as ``num_chains`` chains drawn one after another with seeds
    ``seed + c``. NUTS is given the log density directly (``potential_fn``), which avoids Pyro's
    per-step tracing. Chains start at ``init="map"`` (Adam on log p̂ from λ⁰, ``map_steps``
    steps; the slot posterior is invariant to relabelling slots, so chains started in different
    modes would disagree only by a permutation and wreck r-hat) or ``init="lam0"``, plus
    ``init_jitter`` · N(0, 1).

    Returns λ = the posterior mean over all draws and q = E_λ[p̂(z_ij | λ, x_ij)], the posterior
    marginal of z averaged over the draws. ``trace`` holds ``samples`` ``[C, S, B, K, D]``,
    ``posterior_std``, ``r_hat`` and ``ess`` ``[B, K, D]`` (split Gelman-Rubin and effective
    sample size from ``pyro.ops.stats``), ``r_hat_max``, ``ess_min``, and per chain the
    ``divergences``, ``accept_prob`` and ``step_size`` from ``mcmc.diagnostics()``.

    Meant for inference with trained globals. Used for training it gives the same envelope
    gradient as ``pyro-svi`` (Λ detached; θ, η at fixed Λ; φ through q), i.e. Monte-Carlo EM.
    The ``steps`` argument of :meth:`solve` is not used.
    """

    name = "pyro-nuts"
    what = "NUTS sampling"

    def __init__(self, backward: str = "full", num_samples: int = 200, warmup_steps: int = 200, num_chains: int = 2,
                 init: str = "map", map_steps: int = 200, init_jitter: float = 0.05, target_accept_prob: float = 0.8,
                 max_tree_depth: int = 6, evidence: str = "potential", seed: int | None = 0):
        super().__init__(backward=backward, evidence=evidence, seed=seed)
        if init not in ("map", "lam0"):
            raise ValueError(f"unknown init {init!r}; choose 'map' or 'lam0'")
        if num_samples < 4 or warmup_steps < 0 or num_chains < 1 or map_steps < 0 or max_tree_depth < 1:
            raise ValueError("need num_samples >= 4, warmup_steps >= 0, num_chains >= 1, map_steps >= 0, "
                             "max_tree_depth >= 1")
        if not 0 < target_accept_prob < 1 or init_jitter < 0:
            raise ValueError("need 0 < target_accept_prob < 1 and init_jitter >= 0")
        self.num_samples, self.warmup_steps, self.num_chains = num_samples, warmup_steps, num_chains
        self.init, self.map_steps, self.init_jitter = init, map_steps, init_jitter
        self.target_accept_prob, self.max_tree_depth = target_accept_prob, max_tree_depth

    def solve(self, problem: InnerProblem, steps: int) -> InnerResult:
        from pyro.infer import MCMC, NUTS
        from pyro.ops.stats import effective_sample_size, split_gelman_rubin

        self._check_inputs(problem, steps)
        fixed = self._fixed(problem)

        def potential_fn(params: dict[str, Tensor]) -> Tensor:
            return -self.log_density(fixed, params["lam"]).sum()

        chains, diags = [], []
        with self._frozen(problem), torch.enable_grad(), seeded(self.seed, fixed.lam0.device):
            start = map_estimate(self, fixed, self.map_steps) if self.init == "map" else fixed.lam0.clone()
            for c in range(self.num_chains):
                if self.seed is not None:
                    torch.manual_seed(self.seed + c)
                init = start + self.init_jitter * torch.randn_like(start)
                kernel = NUTS(potential_fn=potential_fn, target_accept_prob=self.target_accept_prob,
                              max_tree_depth=self.max_tree_depth, adapt_step_size=True, adapt_mass_matrix=True)
                mcmc = MCMC(kernel, num_samples=self.num_samples, warmup_steps=self.warmup_steps,
                            initial_params={"lam": init}, disable_progbar=True)
                mcmc.run()
                chains.append(mcmc.get_samples()["lam"].detach())
                d = mcmc.diagnostics()
                diags.append({"divergences": len(d["divergences"]["chain 0"]),
                              "accept_prob": float(d["acceptance rate"]["chain 0"]),
                              "step_size": float(kernel.step_size)})
        samples = torch.stack(chains)  # [C, S, B, K, D]
        flat = samples.flatten(0, 1)
        lam = flat.mean(0)
        trace: dict[str, Any] = {"gradient": "envelope", "backward": self.backward, "samples": samples,
                                 "posterior_std": flat.std(0), "steps": self.num_samples,
                                 "surrogate_elbo": [self._surrogate(fixed, fixed.lam0), self._surrogate(fixed, lam)],
                                 "residual": float((samples[:, -1] - samples[:, -2]).norm(dim=-1).mean())}
        r_hat = split_gelman_rubin(samples, chain_dim=0, sample_dim=1)
        trace.update(r_hat=r_hat, r_hat_max=float(r_hat.max()))
        ess = effective_sample_size(samples, chain_dim=0, sample_dim=1)
        trace.update(ess=ess, ess_min=float(ess.min()))
        for key in ("divergences", "accept_prob", "step_size"):
            trace[key] = [d[key] for d in diags]
        q = sum(self.posterior(problem, s) for s in flat) / flat.shape[0]
        return InnerResult(lam=lam, q=q, trace=trace)
