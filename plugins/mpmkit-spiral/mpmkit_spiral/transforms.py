"""Invertible maps T of the plane: latent u ↦ observation x = T(u), with T⁻¹ and exact log|det J|.

Every transform implements

* ``forward(u) -> x`` — T;
* ``inverse(x) -> (u, log_det)`` — T⁻¹ and log|det ∂T⁻¹/∂x| at x (what the likelihood needs).

Inputs are ``[..., 2]``; ``log_det`` is ``[...]``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class Transform(nn.Module, ABC):
    """An invertible, differentiable map of R² with a tractable Jacobian determinant."""

    @abstractmethod
    def forward(self, u: Tensor) -> Tensor:
        """x = T(u)."""

    @abstractmethod
    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(T⁻¹(x), log|det J_{T⁻¹}(x)|)."""

    def describe(self) -> dict[str, float]:
        """Interpretable parameters for reports (empty for black-box maps)."""
        return {}


def _rotate(v: Tensor, angle: Tensor) -> Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)


def _radius(v: Tensor) -> Tensor:
    # ‖v‖ with a finite gradient at 0 (padding rows are exactly zero)
    return torch.sqrt((v**2).sum(-1) + torch.finfo(v.dtype).tiny)


class SpiralTransform(Transform):
    """The paper's T: (r, θ) ↦ (r, θ + α r + β), i.e. a rotation of each point by α‖u‖ + β.

    In polar coordinates the Jacobian is [[1, 0], [α, 1]] and the area element r dr dθ is kept,
    so T is area-preserving: log|det J| = 0 for T and T⁻¹. α (spiral strength) and β (global
    rotation) are learnable.
    """

    def __init__(self, alpha: float = 0.0, beta: float = 0.0, learn_beta: bool = True):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.beta = nn.Parameter(torch.tensor(float(beta)), requires_grad=learn_beta)

    def forward(self, u: Tensor) -> Tensor:
        return _rotate(u, self.alpha * _radius(u) + self.beta)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u = _rotate(x, -(self.alpha * _radius(x) + self.beta))
        return u, x.new_zeros(x.shape[:-1])

    def describe(self) -> dict[str, float]:
        return {"alpha": float(self.alpha.detach()), "beta": float(self.beta.detach())}


class AffineCoupling(nn.Module):
    """One affine coupling layer of R²: the coordinate ``keep`` passes through and conditions the other,
    y_o = x_o · exp(s(x_k)) + t(x_k), with s = ``clamp`` · tanh(·) bounded. log|det| = s."""

    def __init__(self, keep: int, hidden: int = 64, clamp: float = 2.0):
        super().__init__()
        self.keep, self.other, self.clamp = keep, 1 - keep, clamp
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 2))
        nn.init.zeros_(self.net[-1].weight)  # start at the identity
        nn.init.zeros_(self.net[-1].bias)

    def _st(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(cond.unsqueeze(-1)).unbind(-1)
        return self.clamp * torch.tanh(s / self.clamp), t

    def forward(self, v: Tensor) -> tuple[Tensor, Tensor]:
        a, b = v[..., self.keep], v[..., self.other]
        s, t = self._st(a)
        return self._join(a, b * torch.exp(s) + t), s

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        a, b = y[..., self.keep], y[..., self.other]
        s, t = self._st(a)
        return self._join(a, (b - t) * torch.exp(-s)), -s

    def _join(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.stack([a, b], -1) if self.keep == 0 else torch.stack([b, a], -1)


class CouplingFlow(Transform):
    """A neural T: ``layers`` affine couplings with alternating masks, then a learnable per-axis
    scale and shift (x = exp(log_scale) ⊙ f(u) + shift). Exact log-det: Σ s + Σ log_scale."""

    def __init__(self, layers: int = 8, hidden: int = 64, clamp: float = 2.0):
        super().__init__()
        self.layers = nn.ModuleList(AffineCoupling(i % 2, hidden, clamp) for i in range(layers))
        self.log_scale = nn.Parameter(torch.zeros(2))
        self.shift = nn.Parameter(torch.zeros(2))

    def forward(self, u: Tensor) -> Tensor:
        v = u
        for layer in self.layers:
            v, _ = layer(v)
        return v * torch.exp(self.log_scale) + self.shift

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        v = (x - self.shift) * torch.exp(-self.log_scale)
        log_det = (-self.log_scale.sum()).expand(x.shape[:-1])
        for layer in reversed(self.layers):
            v, ld = layer.inverse(v)
            log_det = log_det + ld
        return v, log_det
