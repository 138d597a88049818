"""Likelihood families p_θ: the mixture form p_θ(x | z = k, λ) and the additive form p_θ(x | λ)."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn


class Likelihood(nn.Module, ABC):
    """Base class; ``form`` tells the model how the ELBO uses q."""

    form: str = ""

    @abstractmethod
    def log_prob(self, x: Any, lam: Tensor, mask: Tensor) -> Tensor:
        """Mixture form: ``[B, N, K]``; additive form: ``[B, N]``. Entries of padded observations
        (``mask`` False) are discarded, but must be finite (any value): their gradient is multiplied by 0."""


class MixtureLikelihood(Likelihood):
    """log p_θ(x_ij | z_ij = k, λ_i), ``[B, N, K]``; the ELBO takes E_q of it."""

    form = "mixture"


class AdditiveLikelihood(Likelihood):
    """log p_θ(x_ij | λ_i), ``[B, N]``; z enters only through the prior and entropy terms."""

    form = "additive"


def gaussian_log_prob(x: Tensor, mean: Tensor, scale: float | Tensor = 1.0) -> Tensor:
    """Isotropic Gaussian log-density summed over the last dimension."""
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
    d = x.shape[-1]
    sq = ((x - mean) ** 2).sum(-1) / scale**2
    return -0.5 * sq - d * torch.log(scale) - 0.5 * d * math.log(2 * math.pi)
