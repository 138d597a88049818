"""The ``blobs`` family: data, model and evaluation, as mpmkit's trainer and CLI expect them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from mpmkit import MPM, ConfigError, EuclideanPotential, Family, Splits, registry
from mpmkit.components import solver_from_config
from mpmkit.metrics import adjusted_rand_index

from .data import GLOBAL_CENTRES, collate, make_blobs
from .model import AffineGaussian, MLPRecognition, TiedRecognition


@dataclass
class BlobsOptions:
    """Family options; each field is a config key (``--set clusters=4``)."""

    num_datasets: int = 200  #: split 80/10/10 into train/val/test
    dim: int = 2  #: 1 or 2
    clusters: int = 3  #: K: true clusters per dataset, and slots of the model
    min_points: int = 20
    max_points: int = 40
    noise: float = 0.5  #: σ of the data, and of the likelihood
    true_a: float = 2.0  #: the generating map x = a·u + b
    true_b: float = 1.0
    recognition: Literal["tied", "mlp"] = "tied"
    prior: str = "gmm"  #: any registered prior: gmm, gaussian, flat, shrinkage, ...
    prior_clusters: int = 4  #: L, for prior=gmm
    prior_scale: float = 1.0

    def validate(self) -> None:
        if self.dim not in GLOBAL_CENTRES:
            raise ConfigError(f"config key 'dim' must be 1 or 2, got {self.dim}")
        if self.num_datasets < 10:
            raise ConfigError(f"config key 'num_datasets' must be >= 10 (80/10/10 split), got {self.num_datasets}")


class BlobsFamily(Family):
    name = "blobs"
    description = "Points from K Gaussian clusters through a shared affine map; learns the map and the global GMM."
    options = BlobsOptions
    data_keys = ("num_datasets",)  # with the seed, it decides which datasets are test ones
    defaults: dict[str, Any] = {"epochs": 20, "batch_size": 16, "lr": 0.05, "inner_steps": 5, "log_every": 5,
                                "tensorboard": False}

    def build_data(self, cfg) -> Splits:
        o = cfg.family
        items = make_blobs(o.num_datasets, dim=o.dim, clusters=o.clusters, min_points=o.min_points,
                           max_points=o.max_points, noise=o.noise, a=o.true_a, b=o.true_b, seed=cfg.train.seed)
        n_val = n_test = o.num_datasets // 10
        return Splits(train=items[n_val + n_test:], val=items[:n_val], test=items[n_val:n_val + n_test],
                      collate=collate)

    def build_model(self, cfg) -> MPM:
        o = cfg.family
        lik = AffineGaussian(o.dim, noise=o.noise)
        recognition = TiedRecognition(lik) if o.recognition == "tied" else MLPRecognition(o.dim)
        prior_options: dict[str, Any] = {"scale": o.prior_scale}
        if o.prior == "gmm":
            prior_options.update(num_clusters=o.prior_clusters, init_scale=3.0)
        prior = registry("prior").get(o.prior)(dim=o.dim, **prior_options)
        return MPM(prior=prior, likelihood=lik, potential=EuclideanPotential(recognition),
                   solver=solver_from_config(cfg), num_slots=o.clusters, slot_dim=o.dim,
                   inner_steps=cfg.inner_steps, beta=cfg.beta, init_scale=3.0)

    @torch.no_grad()
    def evaluate(self, model: MPM, splits: Splits, cfg, out_dir: Path) -> dict[str, Any]:
        """Mean ARI of argmax_k q(z = k) on the test datasets, and the learned θ next to the truth."""
        device = next(model.parameters()).device
        batch = splits.collate(list(splits.test)).to(device)
        q = model.infer(batch).q
        labels, mask = batch.extras["labels"].cpu().numpy(), batch.mask.cpu().numpy()
        ari = adjusted_rand_index(q.argmax(-1).cpu().numpy(), labels, mask)
        guess = torch.randint(0, q.shape[-1], q.shape[:2], generator=torch.Generator().manual_seed(0))
        chance = adjusted_rand_index(guess.numpy(), labels, mask)  # ≈ 0: what "no skill" scores
        lik = model.likelihood
        o = cfg.family
        return {"ari": ari, "chance_ari": chance, "num_test_datasets": len(splits.test),
                "theta": {"a": float(lik.a), "b": lik.b.tolist()},
                "true_theta": {"a": o.true_a, "b": [o.true_b] * o.dim}}
