"""The spiral-GMM MPM: exact flow likelihood, tied recognition network, GMM prior, closed-form inner loop.

With a transform T (latent → data) and a learnable scale s, the model for dataset i is

    μ_ik ~ (1/L) Σ_l N(ν_l, σ_p² I)                     (prior p_η, mpmkit's GMMPrior)
    z_ij ~ U{1..K},   T⁻¹(x_ij) / s | z_ij = k ~ N(μ_ik, I)   (likelihood p_θ, θ = (T, s))

so by the change of variables the density of x is *exact*:

    log p(x | z = k, λ) = log N(T⁻¹(x)/s; μ_k, I) − 2 log s + log|det J_{T⁻¹}(x)|.

The recognition network is g_φ(x) = T⁻¹(x)/s with φ ≡ θ (the same module), so the surrogate
potential ψ = −½‖μ_k − g_φ(x)‖² equals log p(x | z = k, λ) up to terms constant in k: the
closed-form q of Proposition 1 is the exact posterior given Λ, and L^MPM is a true ELBO.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mpmkit import EuclideanPotential, GMMPrior, MixtureLikelihood, MPM, gaussian_log_prob
from mpmkit.psa import PSAPotential, PSAPrior, diag_gaussian_logits, unpack
from mpmkit.solvers import Solver

from .transforms import Transform


class SpiralLikelihood(MixtureLikelihood):
    """p_θ(x | z = k, λ) through an invertible T and scale s (θ = T's parameters and log s)."""

    def __init__(self, transform: Transform, scale: float = 1.0, learn_scale: bool = True):
        super().__init__()
        self.transform = transform
        self.log_scale = nn.Parameter(torch.tensor(float(scale)).log(), requires_grad=learn_scale)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(g = T⁻¹(x)/s, log|det ∂g/∂x| = log|det J_{T⁻¹}(x)| − 2 log s)."""
        u, log_det = self.transform.inverse(x)
        return u / self.scale, log_det - x.shape[-1] * self.log_scale

    def log_prob(self, x: Tensor, lam: Tensor, mask: Tensor) -> Tensor:
        g, log_det = self.embed(x)
        if lam.shape[-1] == 2 * g.shape[-1] + 1:  # PSA layout (μ, log σ², log π): per-cluster diagonal variances
            s = unpack(lam)
            ll = diag_gaussian_logits(g, s.mu, s.log_var) + log_det.unsqueeze(-1)
        else:
            ll = gaussian_log_prob(g.unsqueeze(2), lam.unsqueeze(1)) + log_det.unsqueeze(-1)  # [B, N, K]
        return torch.where(mask.unsqueeze(-1), ll, torch.zeros_like(ll))  # padding contributes exactly 0


class TiedRecognition(nn.Module):
    """g_φ(x) = T⁻¹(x)/s using the likelihood's own T and s (φ ≡ θ; parameters registered once)."""

    def __init__(self, likelihood: SpiralLikelihood):
        super().__init__()
        self._lik = [likelihood]  # a list, so the parameters are not registered a second time

    def forward(self, x: Tensor) -> Tensor:
        return self._lik[0].embed(x)[0]


def build_mpm(transform: Transform, solver: Solver, *, num_clusters: int, num_global: int, inner_steps: int,
              beta: float = 1.0, scale: float = 1.0, prior_scale: float = 1.0, prior_init: float = 3.0,
              slot_init: float = 3.0, local: str = "mpm",
              var_prior: tuple[float, float] = (0.0, 0.0)) -> MPM:
    """The spiral-GMM MPM: K = ``num_clusters`` slots in R², GMM prior with L = ``num_global`` centres.

    ``local="psa"`` gives each dataset's GMM its own mixing weights and diagonal variances
    (Probabilistic Slot Attention): ψ = log N(g; μ_k, σ²_k), p(z = k | λ) = π_k, and the global GMM
    prior on the means (the MAP variant). ψ is then again the exact log-likelihood up to a term
    constant in k, so the EM posterior is exact given Λ. ``var_prior`` = (α, β) is the prior on its
    variances (:class:`mpmkit.psa.PSAPrior`; (0, 0) flat).
    """
    lik = SpiralLikelihood(transform, scale=scale)
    gmm = GMMPrior(num_global, 2, scale=prior_scale, init_scale=prior_init)
    if local == "psa":
        prior = PSAPrior(gmm, var_shape=var_prior[0], var_rate=var_prior[1])
        potential = PSAPotential(TiedRecognition(lik))
    elif local == "mpm":
        prior, potential = gmm, EuclideanPotential(TiedRecognition(lik))
    else:
        raise ValueError(f"local must be 'mpm' or 'psa', got {local!r}")
    return MPM(prior=prior, likelihood=lik, potential=potential, solver=solver, num_slots=num_clusters,
               slot_dim=2, inner_steps=inner_steps, beta=beta, init_scale=slot_init)
