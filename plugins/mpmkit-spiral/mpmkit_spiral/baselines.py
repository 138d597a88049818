"""Baselines on the same test datasets: a GMM per dataset in x-space, and VAE + per-dataset GMM on latents."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from torch import nn

from .data import SpiralDataset


def gmm_labels(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Labels of a full-covariance ``GaussianMixture(k)`` fitted to ``points`` alone."""
    k = min(k, len(points))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(k, random_state=seed).fit_predict(np.asarray(points, dtype=np.float64))


def gmm_baseline(datasets: Sequence[SpiralDataset], k: int, seed: int = 0) -> tuple[float, list[np.ndarray]]:
    """Mean ARI of a GMM fitted per dataset in x-space, and the labels."""
    labels = [gmm_labels(d.x, k, seed) for d in datasets]
    return float(np.mean([adjusted_rand_score(d.labels, p) for d, p in zip(datasets, labels)])), labels


class VAE(nn.Module):
    """A small Gaussian VAE for 2-D points: MLP encoder q(z|x), MLP decoder p(x|z) with a learned noise scale."""

    def __init__(self, latent: int = 2, hidden: int = 64):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2))
        self.log_sigma = nn.Parameter(torch.zeros(()))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, -1)
        return mu, logvar.clamp(-8, 8)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per point."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = ((x - self.dec(z)) ** 2).sum(-1) / (2 * (2 * self.log_sigma).exp()) + 2 * self.log_sigma
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
        return (rec + kl).mean()


def train_vae(points: np.ndarray, steps: int = 1500, batch_size: int = 256, lr: float = 2e-3, latent: int = 2,
              seed: int = 0) -> VAE:
    """Fit a :class:`VAE` to pooled training points (deterministic given ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vae = VAE(latent)
        x = torch.as_tensor(points, dtype=torch.float32)
        opt = torch.optim.Adam(vae.parameters(), lr=lr)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=gen)
            opt.zero_grad()
            vae.loss(x[idx]).backward()
            opt.step()
    return vae.eval()


def vae_gmm_baseline(train: Sequence[SpiralDataset], test: Sequence[SpiralDataset], k: int, steps: int = 1500,
                     latent: int = 2, seed: int = 0, max_points: int = 20000) -> tuple[float, list[np.ndarray]]:
    """VAE on the pooled training points, then a GMM per test dataset on the latent means: (mean ARI, labels)."""
    pooled = np.concatenate([d.x for d in train])
    if len(pooled) > max_points:
        pooled = pooled[np.random.default_rng(seed).choice(len(pooled), max_points, replace=False)]
    vae = train_vae(pooled, steps=steps, latent=latent, seed=seed)
    labels = []
    with torch.no_grad():
        for d in test:
            mu, _ = vae.encode(torch.from_numpy(d.x))
            labels.append(gmm_labels(mu.numpy(), k, seed))
    return float(np.mean([adjusted_rand_score(d.labels, p) for d, p in zip(test, labels)])), labels
