"""A tiny in-test family: 2-D points from K Gaussian clusters, identity recognition, exact likelihood."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mpmkit import Batch, EuclideanPotential, Family, GMMPrior, MixtureLikelihood, MPM, Splits, gaussian_log_prob
from mpmkit.batch import pad_datasets
from mpmkit.components import solver_from_config
from mpmkit.hookspecs import hookimpl
from mpmkit.metrics import adjusted_rand_index


class ShiftedGaussian(MixtureLikelihood):
    """p(x | z=k, λ) = N(x; μ_k + b, I) with learnable shift b (θ)."""

    def __init__(self, dim: int):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.zeros(dim))

    def log_prob(self, x, lam, mask):
        return gaussian_log_prob(x.unsqueeze(2), lam.unsqueeze(1) + self.shift)


class Shift(torch.nn.Module):
    def __init__(self, lik: ShiftedGaussian):
        super().__init__()
        self.lik = [lik]  # tie φ to θ without registering the parameter twice

    def forward(self, x):
        return x - self.lik[0].shift


@dataclass
class ToyOptions:
    num_datasets: int = 24
    points: int = 20
    num_clusters: int = 2
    ragged: bool = True


class ToyFamily(Family):
    name = "toy"
    options = ToyOptions
    defaults = {"epochs": 2, "batch_size": 8, "lr": 0.05, "progress": False, "tensorboard": False, "log_every": 1}

    def build_data(self, cfg):
        o = cfg.family
        gen = torch.Generator().manual_seed(cfg.train.seed)
        items = []
        for _ in range(o.num_datasets):
            centres = torch.randn(o.num_clusters, 2, generator=gen) * 4
            n = o.points - (int(torch.randint(0, o.points // 2, (1,), generator=gen)) if o.ragged else 0)
            z = torch.randint(0, o.num_clusters, (n,), generator=gen)
            x = centres[z] + torch.randn(n, 2, generator=gen) + torch.tensor([3.0, -1.0])
            items.append((x, z))
        k = o.num_datasets // 4
        return Splits(train=items[2 * k:], val=items[:k], test=items[k:2 * k], collate=collate)

    def build_model(self, cfg):
        lik = ShiftedGaussian(2)
        return MPM(prior=GMMPrior(5, 2), likelihood=lik, potential=EuclideanPotential(Shift(lik)),
                   solver=solver_from_config(cfg), num_slots=cfg.family.num_clusters, slot_dim=2,
                   inner_steps=cfg.inner_steps, beta=cfg.beta)

    def evaluate(self, model, splits, cfg, out_dir: Path):
        batch = splits.collate(list(splits.test))
        with torch.no_grad():
            q = model.infer(batch).q
        return {"ari": adjusted_rand_index(q.argmax(-1).numpy(), batch.extras["labels"].numpy(), batch.mask.numpy())}


def collate(items):
    x, mask = pad_datasets([x for x, _ in items])
    labels, _ = pad_datasets([z for _, z in items], pad_value=-1)
    return Batch(x=x, mask=mask, extras={"labels": labels})


@hookimpl
def register_families(register):
    register("toy", ToyFamily)
