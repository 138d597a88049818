"""Priors p_η(λ) over the dataset parameters λ_i = {μ_ik}_k (K slot/centre vectors in R^D).

A prior is *conjugate* for coordinate ascent when it supplies a quadratic minorizer of
log p(μ_ik | η) at the current μ: log p(μ) ≥ -½ a‖μ - m‖² + const, tight at μ. The M-step
of Proposition 1 then maximises the minorizer in closed form, so the surrogate ELBO never
decreases (an MM step). For the global GMM of the paper a = Σ_l r_ikl / σ² and
m = Σ_l r_ikl ν_l / Σ_l r_ikl.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class Prior(nn.Module, ABC):
    """p_η(λ): ``log_prob(lam [B, K, D]) -> [B]`` (summed over the K slots)."""

    #: True when :meth:`minorizer` is implemented (closed-form coordinate ascent works).
    conjugate: bool = False
    #: False when exp(log_prob) cannot be normalised over λ. MAP solvers do not mind; the
    #: posterior of a slot with no data is then improper, which sampling and Normal-guide
    #: SVI cannot represent (they refuse such a prior, see ``PyroSolverBase.check``).
    proper: bool = True

    @abstractmethod
    def log_prob(self, lam: Tensor) -> Tensor:
        """log p_η(λ_i) for each dataset, ``[B]``."""

    def raw_log_prob(self, lam: Tensor) -> Tensor:
        """log density over the coordinates λ is stored in, ``[B]``: what a sampler or a Normal guide
        over λ needs. The same as :meth:`log_prob` unless a parameter is stored transformed (PSA's
        mixing weights as logits)."""
        return self.log_prob(lam)

    def minorizer(self, lam: Tensor) -> tuple[Tensor, Tensor]:
        """Quadratic minorizer at ``lam``: precision ``a [B, K]`` and centre ``m [B, K, D]``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form minorizer")


class FlatPrior(Prior):
    """Improper flat prior (r = 0 in Proposition 1): the M-step is a plain weighted mean."""

    conjugate = True
    proper = False

    def log_prob(self, lam: Tensor) -> Tensor:
        return lam.new_zeros(lam.shape[0])

    def minorizer(self, lam: Tensor) -> tuple[Tensor, Tensor]:
        return lam.new_zeros(lam.shape[:2]), torch.zeros_like(lam)


class GaussianPrior(Prior):
    """μ_ik ~ N(m, σ² I) with learnable mean m (and fixed σ)."""

    conjugate = True

    def __init__(self, dim: int, scale: float = 1.0, learn_mean: bool = True):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(dim), requires_grad=learn_mean)
        self.scale = float(scale)

    def log_prob(self, lam: Tensor) -> Tensor:
        d = lam.shape[-1]
        sq = ((lam - self.mean) ** 2).sum(-1) / self.scale**2
        return (-0.5 * sq - 0.5 * d * math.log(2 * math.pi * self.scale**2)).sum(-1)

    def minorizer(self, lam: Tensor) -> tuple[Tensor, Tensor]:
        a = lam.new_full(lam.shape[:2], 1.0 / self.scale**2)
        return a, self.mean.expand_as(lam)


class GMMPrior(Prior):
    """The paper's global GMM: μ_ik ~ (1/L) Σ_l N(ν_l, σ² I), with η = {ν_l} learnable.

    Distances use ‖μ‖² - 2μ·ν + ‖ν‖² (a matmul), never a [B, K, L, D] tensor.
    """

    conjugate = True

    def __init__(self, num_clusters: int, dim: int, scale: float = 1.0, init_scale: float = 1.0):
        super().__init__()
        if num_clusters < 1:
            raise ValueError(f"GMMPrior needs num_clusters >= 1, got {num_clusters}")
        self.centres = nn.Parameter(torch.randn(num_clusters, dim) * init_scale)  # ν, [L, D]
        self.scale = float(scale)

    @property
    def num_clusters(self) -> int:
        return self.centres.shape[0]

    def _logits(self, lam: Tensor) -> Tensor:
        """-½‖μ_ik - ν_l‖² / σ², ``[B, K, L]``."""
        nu = self.centres
        sq = (lam**2).sum(-1, keepdim=True) - 2 * lam @ nu.T + (nu**2).sum(-1)
        return -0.5 * sq.clamp_min(0) / self.scale**2

    def responsibilities(self, lam: Tensor) -> Tensor:
        """r_ikl = softmax_l(-½‖μ_ik - ν_l‖²/σ²), ``[B, K, L]``."""
        return torch.softmax(self._logits(lam), dim=-1)

    def log_prob(self, lam: Tensor) -> Tensor:
        d, L = lam.shape[-1], self.num_clusters
        per_slot = torch.logsumexp(self._logits(lam), -1) - math.log(L) - 0.5 * d * math.log(2 * math.pi * self.scale**2)
        return per_slot.sum(-1)

    def minorizer(self, lam: Tensor) -> tuple[Tensor, Tensor]:
        r = self.responsibilities(lam)
        a = r.sum(-1) / self.scale**2  # = 1/σ² since r sums to one; kept general
        m = (r @ self.centres) / r.sum(-1, keepdim=True)
        return a, m
