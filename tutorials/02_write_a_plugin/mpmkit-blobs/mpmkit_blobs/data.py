"""The blobs collection: each dataset is K Gaussian clusters seen through one shared affine map.

For dataset i (all datasets share the global centres ν_l and the map x = a·u + b)::

    μ_ik ~ (1/L) Σ_l N(ν_l, s² I)        k = 1..K   (centres from a global GMM)
    z_ij ~ U{1..K}
    x_ij ~ N(a·μ_{i z_ij} + b, σ² I)                 (what the model sees)
"""
from __future__ import annotations

import torch
from torch import Tensor

from mpmkit import Batch, pad_datasets

#: the ν_l of the generating global GMM, per dimension (latent units)
GLOBAL_CENTRES = {
    1: [[-6.0], [-2.0], [2.0], [6.0]],
    2: [[-3.0, -3.0], [-3.0, 3.0], [3.0, -3.0], [3.0, 3.0]],
}


def make_blobs(num_datasets: int, *, dim: int = 2, clusters: int = 3, min_points: int = 20, max_points: int = 40,
               centre_jitter: float = 0.5, noise: float = 0.5, a: float = 2.0, b: float = 1.0,
               seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    """``num_datasets`` pairs ``(x [N_i, dim], z [N_i])``; N_i uniform in [min_points, max_points]."""
    if dim not in GLOBAL_CENTRES:
        raise ValueError(f"blobs supports dim 1 or 2, got {dim}")
    if not 1 <= min_points <= max_points:
        raise ValueError(f"need 1 <= min_points <= max_points, got {min_points}, {max_points}")
    gen = torch.Generator().manual_seed(seed)
    nu = torch.tensor(GLOBAL_CENTRES[dim])
    out = []
    for _ in range(num_datasets):
        comp = torch.randint(0, len(nu), (clusters,), generator=gen)
        mu = nu[comp] + centre_jitter * torch.randn(clusters, dim, generator=gen)
        n = int(torch.randint(min_points, max_points + 1, (1,), generator=gen))
        z = torch.randint(0, clusters, (n,), generator=gen)
        x = a * mu[z] + b + noise * torch.randn(n, dim, generator=gen)
        out.append((x, z))
    return out


def collate(items: list[tuple[Tensor, Tensor]]) -> Batch:
    """Pad a list of datasets into one :class:`~mpmkit.Batch`; labels (-1 on padding) go in ``extras``."""
    x, mask = pad_datasets([x for x, _ in items])
    labels, _ = pad_datasets([z for _, z in items], pad_value=-1)
    return Batch(x=x, mask=mask, extras={"labels": labels})
