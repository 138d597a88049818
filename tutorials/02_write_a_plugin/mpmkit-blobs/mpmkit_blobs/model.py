"""The blobs model: an affine Gaussian likelihood p_θ and two recognition networks g_φ.

θ = (a, b):  log p_θ(x | z = k, λ) = log N(x; a·μ_k + b, σ² I)   (σ fixed by the ``noise`` option)
g_φ(x) = (x − b)/a  ("tied": φ ≡ θ, nothing extra to learn)  or a small MLP ("mlp").

With the Euclidean potential ψ = −½‖μ_k − g_φ(x)‖² the inner problem has the closed form of
Proposition 1, so the core's ``coordinate-ascent`` solver applies.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mpmkit import MixtureLikelihood, gaussian_log_prob


class AffineGaussian(MixtureLikelihood):
    """p_θ(x | z = k, λ) = N(x; a·μ_k + b, σ² I) with learnable scalar a and vector b."""

    def __init__(self, dim: int, noise: float = 0.5):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0))
        self.b = nn.Parameter(torch.zeros(dim))
        self.noise = float(noise)

    def log_prob(self, x: Tensor, lam: Tensor, mask: Tensor) -> Tensor:
        mean = self.a * lam.unsqueeze(1) + self.b  # [B, 1, K, d]
        ll = gaussian_log_prob(x.unsqueeze(2), mean, self.noise)  # [B, N, K]
        return torch.where(mask.unsqueeze(-1), ll, torch.zeros_like(ll))  # padding contributes exactly 0


class TiedRecognition(nn.Module):
    """g_φ(x) = (x − b)/a, reading a and b from the likelihood (φ ≡ θ)."""

    def __init__(self, likelihood: AffineGaussian):
        super().__init__()
        self._lik = [likelihood]  # a list, so θ is not registered (and saved) a second time

    def forward(self, x: Tensor) -> Tensor:
        lik = self._lik[0]
        return (x - lik.b) / lik.a


class MLPRecognition(nn.Module):
    """g_φ(x) = MLP(x), applied to every point; φ is learned separately from θ."""

    def __init__(self, dim: int, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
