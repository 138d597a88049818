"""Spiral-GMM data (Sec. 2.2): M related datasets, each a GMM in a latent plane, seen through one spiral T.

Generative process for dataset i (all randomness from one ``numpy.random.Generator``):

* **centre prior** ("spiral-arm layout"): cluster 0 sits at the centre, ``c_i0 ~ N(0, centre_jitter² I)``;
  clusters k = 1..K-1 are arms on a ring, at angle ``ω_i + 2π(k-1)/(K-1) + N(0, angle_jitter²)`` and
  radius ``U(r_min, r_max)``, with one orientation ``ω_i ~ U(0, 2π)`` per dataset. In the latent
  plane the clusters are well separated (≥ ``r_min`` / ``noise`` standard deviations apart);
* **points**: ``z_ij ~ U{0..K-1}``, ``u_ij ~ N(c_iz, noise² I)``;
* **observation**: ``x_ij = T(u_ij)`` with the shared spiral ``T: (r, θ) ↦ (r, θ + α r + β)``.

T shears every arm cluster along the angle by α·(its radial spread), so each arm becomes a long
curved band and neighbouring arms interleave: a GMM fitted in x-space confuses them, while in
the latent plane (T⁻¹ undone) they are round and far apart. Because ω_i is uniform, β is not
identifiable (it is a global rotation), but α is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from mpmkit import Batch
from mpmkit.batch import pad_datasets


@dataclass
class SpiralDataset:
    """One dataset D_i: observations ``x [N, 2]``, true cluster ``labels [N]``, the latent points
    ``latent [N, 2]`` (before T) and the true latent centres ``centres [K, 2]``."""

    x: np.ndarray
    labels: np.ndarray
    latent: np.ndarray
    centres: np.ndarray

    def __len__(self) -> int:
        return self.x.shape[0]


def spiral_map(u: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """T(u): rotate each point by α‖u‖ + β (polar (r, θ) ↦ (r, θ + αr + β)); use -α, -β for T⁻¹."""
    u = np.asarray(u, dtype=np.float64)
    r = np.linalg.norm(u, axis=-1)
    ang = alpha * r + beta
    c, s = np.cos(ang), np.sin(ang)
    return np.stack([c * u[..., 0] - s * u[..., 1], s * u[..., 0] + c * u[..., 1]], -1)


def spiral_inverse(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """T⁻¹(x): the radius is unchanged, so T⁻¹ rotates by -(α‖x‖ + β)."""
    return spiral_map(x, -alpha, -beta)


def sample_centres(rng: np.random.Generator, num_clusters: int, r_min: float, r_max: float,
                   centre_jitter: float = 0.3, angle_jitter: float = 0.15) -> np.ndarray:
    """Latent centres of one dataset from the spiral-arm layout prior, ``[K, 2]``."""
    centres = np.zeros((num_clusters, 2))
    centres[0] = rng.normal(0.0, centre_jitter, 2)
    arms = num_clusters - 1
    if arms:
        omega = rng.uniform(0, 2 * np.pi)
        ang = omega + 2 * np.pi * np.arange(arms) / arms + rng.normal(0.0, angle_jitter, arms)
        rad = rng.uniform(r_min, r_max, arms)
        centres[1:] = np.stack([rad * np.cos(ang), rad * np.sin(ang)], -1)
    return centres


def generate(num_datasets: int, *, seed: int = 0, num_clusters: int = 4, points: int = 100,
             points_min: int | None = None, alpha: float = 0.8, beta: float = 0.5, noise: float = 0.5,
             r_min: float = 2.5, r_max: float = 5.0, centre_jitter: float = 0.3,
             angle_jitter: float = 0.15, clusters_min: int | None = None, weights: str = "uniform",
             noise_max: float | None = None) -> list[SpiralDataset]:
    """``num_datasets`` spiral-GMM datasets, deterministic given ``seed``.

    Each has ``points`` observations, or N_i ~ U{points_min..points} when ``points_min`` is set.
    The PSA variants (all off by default, leaving the random stream of the default data unchanged):
    ``clusters_min`` draws the number of clusters K_i ~ U{clusters_min..num_clusters} (the centre
    cluster plus K_i - 1 of the arms); ``weights="dirichlet"`` draws mixing weights π_i ~ Dir(2·1)
    instead of uniform ones; ``noise_max`` gives each cluster its own spread ~ U(noise, noise_max).
    """
    if weights not in ("uniform", "dirichlet"):
        raise ValueError(f"weights must be 'uniform' or 'dirichlet', got {weights!r}")
    if clusters_min is not None and not 1 <= clusters_min <= num_clusters:
        raise ValueError(f"need 1 <= clusters_min <= num_clusters, got {clusters_min} and {num_clusters}")
    if num_clusters < 1:
        raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
    lo = points if points_min is None else points_min
    if not 1 <= lo <= points:
        raise ValueError(f"need 1 <= points_min <= points, got points_min={points_min}, points={points}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num_datasets):
        centres = sample_centres(rng, num_clusters, r_min, r_max, centre_jitter, angle_jitter)
        n = int(rng.integers(lo, points + 1))
        k_i = num_clusters if clusters_min is None else int(rng.integers(clusters_min, num_clusters + 1))
        present = np.arange(num_clusters) if k_i == num_clusters else np.r_[0, 1 + rng.permutation(num_clusters - 1)[:k_i - 1]]
        if weights == "uniform":
            labels = present[rng.integers(0, k_i, n)]
        else:
            labels = present[rng.choice(k_i, size=n, p=rng.dirichlet(np.full(k_i, 2.0)))]
        spread = noise if noise_max is None else rng.uniform(noise, noise_max, num_clusters)[labels, None]
        latent = centres[labels] + rng.normal(0.0, 1.0, (n, 2)) * spread
        x = spiral_map(latent, alpha, beta)
        out.append(SpiralDataset(x=x.astype(np.float32), labels=labels.astype(np.int64),
                                 latent=latent.astype(np.float32), centres=centres.astype(np.float32)))
    return out


def split(datasets: Sequence[SpiralDataset], num_val: int, num_test: int):
    """(train, val, test): the last ``num_test`` datasets are test, the ``num_val`` before them val."""
    n = len(datasets)
    if num_val + num_test >= n:
        raise ValueError(f"{n} datasets cannot give {num_val} validation + {num_test} test and a training split")
    train_end = n - num_val - num_test
    return list(datasets[:train_end]), list(datasets[train_end:n - num_test]), list(datasets[n - num_test:])


def collate(items: Sequence[SpiralDataset]) -> Batch:
    """Pad a list of datasets into a :class:`mpmkit.Batch`; ``extras["labels"]`` holds the truth (-1 on padding)."""
    x, mask = pad_datasets([torch.from_numpy(d.x) for d in items])
    labels, _ = pad_datasets([torch.from_numpy(d.labels) for d in items], pad_value=-1)
    latent, _ = pad_datasets([torch.from_numpy(d.latent) for d in items])
    return Batch(x=x, mask=mask, extras={"labels": labels, "latent": latent})
