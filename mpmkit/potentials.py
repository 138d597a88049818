"""Surrogate potentials ψ_φ(z_ij = k | x_ij, λ_i) with their recognition networks g_φ."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn


class Potential(nn.Module, ABC):
    """ψ_φ: embeds a batch of datasets with g_φ, then scores observations against slots."""

    #: True when ψ = -½‖μ_k - g_j‖² (unit precision, up to terms constant in k), so Proposition 1's
    #: M-step (a weighted mean of the g_ij) applies; its E-step uses :meth:`relative_logits`.
    closed_form: bool = False

    def __init__(self, recognition: nn.Module | None = None):
        super().__init__()
        self.recognition = recognition if recognition is not None else nn.Identity()

    def embed(self, x: Any, mask: Tensor) -> Tensor:
        """g_φ(x_ij) for every observation, ``[B, N, D]``."""
        g = self.recognition(x)
        if g.dim() != 3 or g.shape[:2] != mask.shape:
            raise ValueError(
                f"recognition network g_φ must return [B, N, D] matching mask {tuple(mask.shape)}, "
                f"got {tuple(g.shape)}"
            )
        return g

    @abstractmethod
    def logits(self, g: Tensor, lam: Tensor) -> Tensor:
        """ψ(z_ij = k | x_ij, λ_i), ``[B, N, K]``."""

    def relative_logits(self, g: Tensor, lam: Tensor) -> Tensor:
        """ψ up to terms constant in k (all a softmax over k needs); default: :meth:`logits` itself."""
        return self.logits(g, lam)

    # -- the layout of λ (override when λ_ik is more than a slot vector, e.g. PSA's (μ, σ², π)) --
    def lambda_dim(self, feature_dim: int) -> int:
        """Width of λ_ik for embeddings of width D (default: λ_ik = μ_ik ∈ R^D)."""
        return feature_dim

    def init_lambda(self, num_slots: int, feature_dim: int, scale: float) -> Tensor:
        """A random λ⁰, ``[K, lambda_dim(D)]``."""
        return torch.randn(num_slots, feature_dim) * scale

    def slot_means(self, lam: Tensor) -> Tensor:
        """The slot vectors μ_ik that decoders read, ``[B, K, D]``."""
        return lam

    def with_slot_means(self, lam: Tensor, mu: Tensor) -> Tensor:
        """``lam`` with its slot vectors replaced by ``mu`` (the rest of λ_ik, e.g. PSA's σ², π, kept)."""
        return mu

    def log_mixing(self, lam: Tensor) -> Tensor | None:
        """log p(z = k | λ) when λ carries mixing weights, ``[B, K]``; None: uniform 1/K."""
        return None


class EuclideanPotential(Potential):
    """ψ = -½‖μ_ik - g_φ(x_ij)‖², the potential of Sections 3.1 and 3.2.

    Computed as g·μ - ½‖μ‖² - ½‖g‖² with one batched matmul (no [B, N, K, D] tensor).
    """

    closed_form = True

    def logits(self, g: Tensor, lam: Tensor) -> Tensor:
        return _without_g_norm(g, lam) - 0.5 * (g**2).sum(-1, keepdim=True)

    def relative_logits(self, g: Tensor, lam: Tensor) -> Tensor:
        """ψ without the per-observation constant -½‖g‖² (O(NKD) saved per step)."""
        if type(self).logits is not EuclideanPotential.logits:  # a subclass changed ψ: honour it
            return self.logits(g, lam)
        return _without_g_norm(g, lam)


def _without_g_norm(g: Tensor, lam: Tensor) -> Tensor:
    """⟨g, μ⟩ - ½‖μ‖² = -½‖μ - g‖² + ½‖g‖², as one matmul."""
    return g @ lam.transpose(1, 2) - 0.5 * (lam**2).sum(-1).unsqueeze(1)


class DotProductPotential(Potential):
    """ψ = ⟨g, μ⟩ / √D: the scaled dot-product similarity of Slot Attention (no closed form)."""

    def logits(self, g: Tensor, lam: Tensor) -> Tensor:
        return g @ lam.transpose(1, 2) / g.shape[-1] ** 0.5
