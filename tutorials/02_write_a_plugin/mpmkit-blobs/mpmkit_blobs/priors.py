"""A prior registered by a plugin: μ_ik ~ N(0, s² I) with a learnable scale s (η = log s)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mpmkit import Prior


class ShrinkagePrior(Prior):
    """Shrinks every slot towards the origin by an amount learned from the collection.

    ``conjugate = True`` plus :meth:`minorizer` is all the closed-form coordinate-ascent solver
    needs: the log-density is already quadratic, so the minorizer is exact (a = 1/s², m = 0).
    """

    conjugate = True

    def __init__(self, dim: int, scale: float = 1.0):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"ShrinkagePrior needs scale > 0, got {scale}")
        self.dim = dim
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def log_prob(self, lam: Tensor) -> Tensor:
        d = lam.shape[-1]
        per_slot = -0.5 * (lam**2).sum(-1) / self.scale**2 - d * self.log_scale - 0.5 * d * math.log(2 * math.pi)
        return per_slot.sum(-1)

    def minorizer(self, lam: Tensor) -> tuple[Tensor, Tensor]:
        a = (self.scale**-2).expand(lam.shape[:2])
        return a, torch.zeros_like(lam)
