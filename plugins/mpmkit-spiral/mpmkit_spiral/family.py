"""The ``spiral-gmm`` family: data, model and evaluation of the spiral-GMM case study (Sec. 2.2, Fig. 3)."""
from __future__ import annotations

import math
import time
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch

from mpmkit import Family, MPM, Splits
from mpmkit.components import solver_from_config
from mpmkit.config import Config
from mpmkit.errors import ConfigError

from .data import SpiralDataset, collate, generate, split
from .model import build_mpm
from mpmkit.psa import AggregatePosterior, active_slots, pack, var_prior, with_prune_mass
from .transforms import CouplingFlow, SpiralTransform


@dataclass
class SpiralOptions:
    """Options of the spiral-GMM family (each field is a config key)."""

    transform: Literal["parametric", "neural"] = "parametric"  #: T: the paper's spiral (α, β) or a coupling flow
    local: Literal["mpm", "psa"] = "mpm"  #: per-dataset GMM: the paper's (uniform π, σ = 1) or PSA's (π, diagonal σ²)
    #: PSA: [α, β] of an inverse-gamma prior on each σ²; [0, 0] flat (needed > 0 by pyro-nuts / pyro-svi's Normal guide)
    psa_var_prior: list[float] = field(default_factory=lambda: [0.0, 0.0])
    # -- data --------------------------------------------------------------------------------
    num_datasets: int = 600  #: M datasets in all (train + val + test)
    num_val: int = 40
    num_test: int = 100
    points_per_dataset: int = 120  #: N_i (the maximum when points_min > 0)
    points_min: int = 60  #: > 0: N_i ~ U{points_min..points_per_dataset}; 0: every N_i = points_per_dataset
    num_clusters: int = 4  #: K (one centre cluster + K-1 arms)
    alpha_true: float = 1.0  #: spiral strength of the data's T (radians per unit radius)
    beta_true: float = 0.5  #: global rotation of the data's T
    noise: float = 0.5  #: standard deviation of each cluster in the latent plane
    r_min: float = 2.5  #: arm centres have radius U(r_min, r_max) in the latent plane
    r_max: float = 5.0
    data_seed: Optional[int] = None  #: seed of the data generator (None: the run's seed)
    clusters_min: int = 0  #: > 0: each dataset has K_i ~ U{clusters_min..num_clusters} clusters (tests ARD)
    weights: Literal["uniform", "dirichlet"] = "uniform"  #: mixing weights of each dataset's clusters
    noise_max: float = 0.0  #: > noise: each cluster's spread ~ U(noise, noise_max)
    # -- model -------------------------------------------------------------------------------
    num_global: int = 8  #: L, components of the global GMM prior over centres
    prior_scale: float = 1.0  #: σ of each prior component (in units of g)
    alpha_init: float = 0.0  #: initial α of the parametric T
    beta_init: float = 0.0
    scale_init: float = 1.0  #: initial s (latent cluster scale, data units)
    learn_scale: bool = True
    slot_init: Literal["ring", "random"] = "ring"  #: λ⁰: centre + ring at the median training radius, or random
    flow_layers: int = 8  #: neural T: coupling layers
    flow_hidden: int = 64
    # -- evaluation ----------------------------------------------------------------------------
    eval_inner_steps: int = 30  #: inner steps at test time (0: the training inner_steps)
    vae_steps: int = 1500  #: training steps of the VAE baseline (0: skip the VAE baseline)
    vae_latent: int = 2
    figure: bool = True  #: write spiral.png
    ard_tau: float = 0.05  #: PSA: slots with π_k < τ are pruned when counting clusters
    ard_prune: float = 0.0  #: PSA at test time: > 0 annihilates slots explaining < this fraction of a dataset

    def validate(self) -> None:
        var_prior(self.psa_var_prior, self.local)
        if self.num_clusters < 2:
            raise ConfigError(f"num_clusters must be >= 2, got {self.num_clusters}")
        if self.num_val < 0 or self.num_test < 1:
            raise ConfigError(f"need num_val >= 0 and num_test >= 1, got num_val={self.num_val}, num_test={self.num_test}")
        if self.num_datasets - self.num_val - self.num_test < 1:
            raise ConfigError(f"num_datasets={self.num_datasets} must exceed num_val={self.num_val} + "
                              f"num_test={self.num_test}, leaving at least one training dataset")
        if self.points_per_dataset < 1 or not 0 <= self.points_min <= self.points_per_dataset:
            raise ConfigError(f"need points_per_dataset >= 1 and 0 <= points_min <= points_per_dataset, got "
                              f"points_min={self.points_min}, points_per_dataset={self.points_per_dataset}")
        for key in ("noise", "scale_init", "prior_scale"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"config key {key!r} must be > 0, got {getattr(self, key)}")
        if not 0 <= self.r_min <= self.r_max:
            raise ConfigError(f"need 0 <= r_min <= r_max, got r_min={self.r_min}, r_max={self.r_max}")
        if min(self.num_global, self.flow_layers, self.flow_hidden, self.vae_latent) < 1:
            raise ConfigError(f"num_global, flow_layers, flow_hidden and vae_latent must be >= 1, got {self.num_global}, "
                              f"{self.flow_layers}, {self.flow_hidden}, {self.vae_latent}")
        if not 0 <= self.clusters_min <= self.num_clusters:
            raise ConfigError(f"clusters_min must be in 0..num_clusters={self.num_clusters}, got {self.clusters_min}")
        if self.eval_inner_steps < 0 or self.vae_steps < 0 or (self.data_seed is not None and self.data_seed < 0):
            raise ConfigError(f"eval_inner_steps, vae_steps and data_seed must be >= 0, got {self.eval_inner_steps}, "
                              f"{self.vae_steps}, {self.data_seed}")
        if not 0 <= self.ard_prune < 1:
            raise ConfigError(f"ard_prune is a fraction of a dataset's points in [0, 1), got {self.ard_prune}")
        if self.local == "psa" and not 0 < self.ard_tau < 1:
            raise ConfigError("ard_tau must be in (0, 1) with local=psa (slots with π_k < ard_tau are pruned when "
                              f"counting clusters; 0 would count every slot), got {self.ard_tau}")
        if self.noise_max and self.noise_max < self.noise:
            raise ConfigError(f"noise_max={self.noise_max} must be 0 (off) or >= noise={self.noise}")


def make_datasets(o: SpiralOptions, seed: int) -> list[SpiralDataset]:
    """All M datasets for options ``o`` (deterministic given the seed)."""
    return generate(o.num_datasets, seed=seed if o.data_seed is None else o.data_seed,
                    num_clusters=o.num_clusters, points=o.points_per_dataset,
                    points_min=o.points_min or None, alpha=o.alpha_true, beta=o.beta_true, noise=o.noise,
                    r_min=o.r_min, r_max=o.r_max, clusters_min=o.clusters_min or None, weights=o.weights,
                    noise_max=o.noise_max or None)


_CACHE: dict[tuple, list[SpiralDataset]] = {}


def _datasets(cfg: Config) -> list[SpiralDataset]:
    key = (cfg.train.seed, repr(astuple(cfg.family)))  # repr: list-valued options are not hashable
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = make_datasets(cfg.family, cfg.train.seed)
    return _CACHE[key]


def ring_init(num_slots: int, radius: float) -> torch.Tensor:
    """λ⁰: one slot at the origin, the others evenly on a circle of ``radius`` (``[K, 2]``)."""
    ang = 2 * math.pi * torch.arange(num_slots - 1) / max(num_slots - 1, 1)
    ring = torch.stack([radius * torch.cos(ang), radius * torch.sin(ang)], -1)
    return torch.cat([torch.zeros(1, 2), ring])


def fit_rotation(x: np.ndarray, u: np.ndarray, grid: np.ndarray | None = None) -> tuple[float, float]:
    """Effective (α, β) of a map u ↦ x, read as "x is u rotated by α‖x‖ + β".

    Maximises the resultant length |mean exp(i(Δθ − α r))| over α (circular regression of the
    rotation angle Δθ = ∠x − ∠u on the radius), so 2π wraps do not matter. Exact for the spiral T.
    """
    r = np.linalg.norm(x, axis=-1)
    dtheta = np.arctan2(x[:, 1], x[:, 0]) - np.arctan2(u[:, 1], u[:, 0])
    phase = np.exp(1j * dtheta)

    def resultant(alphas):
        return np.abs((phase[None] * np.exp(-1j * alphas[:, None] * r[None])).mean(1))

    grid = np.linspace(-4, 4, 1601) if grid is None else grid
    best = grid[np.argmax(resultant(grid))]
    fine = np.linspace(best - 0.01, best + 0.01, 401)
    alpha = float(fine[np.argmax(resultant(fine))])
    beta = float(np.angle((phase * np.exp(-1j * alpha * r)).mean()))
    return alpha, beta


def wrap(angle: float) -> float:
    """Angle in (-π, π]."""
    return float(-((-angle + math.pi) % (2 * math.pi) - math.pi))


class SpiralGMMFamily(Family):
    """Spiral GMM (Sec. 2.2): per-dataset GMMs in a latent plane seen through one shared, learned T."""

    name = "spiral-gmm"
    description = "Spiral-GMM case study (Sec. 2.2, Fig. 3): learn the shared spiral T from many datasets"
    options = SpiralOptions
    data_keys = ("num_datasets", "num_val", "num_test", "data_seed")  # the test split is the last num_test datasets
    # ~30 s of training on one CPU core. The implicit backward differentiates the converged inner
    # loop (envelope theorem); backpropagating through 10 k-means-like steps ("full") gives noisy,
    # sometimes sign-flipped α gradients on datasets where the inner loop has not settled.
    defaults = {"epochs": 30, "batch_size": 32, "lr": 0.03, "lr_milestones": [15, 25], "lr_gamma": 0.3,
                "inner_steps": 10, "backward": "implicit", "log_every": 5}

    def build_data(self, cfg: Config) -> Splits:
        o = cfg.family
        train, val, test = split(_datasets(cfg), o.num_val, o.num_test)
        return Splits(train=train, val=val, test=test, collate=collate)

    def build_transform(self, cfg: Config):
        o = cfg.family
        if o.transform == "parametric":
            return SpiralTransform(o.alpha_init, o.beta_init)
        return CouplingFlow(layers=o.flow_layers, hidden=o.flow_hidden)

    def check(self, cfg: Config) -> None:
        self._solver(cfg)

    @staticmethod
    def _solver(cfg: Config):
        solver = solver_from_config(cfg, local=cfg.family.local)
        if cfg.family.local == "psa":  # another solver cannot prune at test time: refuse before training
            with_prune_mass(solver, cfg.family.ard_prune)
        return solver

    def build_model(self, cfg: Config) -> MPM:
        o = cfg.family
        solver = self._solver(cfg)
        model = build_mpm(self.build_transform(cfg), solver,
                          num_clusters=o.num_clusters, num_global=o.num_global, inner_steps=cfg.inner_steps,
                          beta=cfg.beta, scale=o.scale_init, prior_scale=o.prior_scale, local=o.local,
                          var_prior=var_prior(o.psa_var_prior))
        model.likelihood.log_scale.requires_grad_(o.learn_scale)
        if o.slot_init == "ring":
            # T keeps radii, so the median radius of the training points (in units of g) places the arms' slots
            train, _, _ = split(_datasets(cfg), o.num_val, o.num_test)
            radius = float(np.median(np.concatenate([np.linalg.norm(d.x, axis=1) for d in train]))) / o.scale_init
            with torch.no_grad():
                ring = ring_init(o.num_clusters, radius)
                if o.local == "psa":
                    ring = pack(ring, torch.zeros_like(ring), torch.full((o.num_clusters,), -math.log(o.num_clusters)))
                model.lambda0.copy_(ring)
        return model

    def eval_solver(self, cfg: Config, model: MPM | None = None):
        """The test-time inner solver: the training one, or (PSA, ``ard_prune > 0``) the model's
        PSA-EM with its options kept and in-loop ARD at ``ard_prune``."""
        o = cfg.family
        if o.local == "psa" and o.ard_prune > 0:
            return with_prune_mass(model.solver if model is not None else None, o.ard_prune)
        return None

    @torch.no_grad()
    def infer_labels(self, model: MPM, datasets, cfg: Config, batch_size: int = 256):
        """(labels per dataset from argmax q, embeddings T̂⁻¹(x) in data units, Λ ``[M, K, ·]``) on ``datasets``."""
        steps = cfg.family.eval_inner_steps or cfg.inner_steps
        device = next(model.parameters()).device
        labels, latents, lambdas = [], [], []
        for i in range(0, len(datasets), batch_size):
            chunk = datasets[i:i + batch_size]
            batch = collate(chunk).to(device)
            inf = model.infer(batch, steps=steps, solver=self.eval_solver(cfg, model))
            pred = inf.q.argmax(-1).cpu().numpy()
            u = (inf.g * model.likelihood.scale).cpu().numpy()
            lambdas.append(inf.lam.cpu())
            for j, d in enumerate(chunk):
                labels.append(pred[j, :len(d)])
                latents.append(u[j, :len(d)])
        return labels, latents, torch.cat(lambdas)

    @torch.no_grad()
    def sample_figure(self, model: MPM, splits: Splits, cfg: Config, path: Path, num: int = 5) -> Path:
        """Fit the aggregate posterior on the training datasets' λ, draw slot sets from it and push
        points through the learned T: new datasets from the learned generative model."""
        from .plot import psa_samples_figure

        _, _, lam = self.infer_labels(model, list(splits.train), cfg)
        agg = AggregatePosterior.from_lambdas(lam, tau=cfg.family.ard_tau)
        gen = torch.Generator().manual_seed(cfg.train.seed)
        k, n = cfg.family.num_clusters, cfg.family.points_per_dataset
        mu, var = agg.sample(num, k, generator=gen, return_var=True)
        z = torch.randint(0, k, (num, n), generator=gen)
        g = mu.gather(1, z[..., None].expand(-1, -1, 2)) + var.gather(1, z[..., None].expand(-1, -1, 2)).sqrt() * \
            torch.randn(num, n, 2, generator=gen, dtype=mu.dtype)
        lik = model.likelihood
        g = g.to(lik.scale.device)  # λ came back on the CPU; T and its scale live with the model
        x = lik.transform.forward((g * lik.scale).reshape(-1, 2)).reshape(num, n, 2).cpu().numpy()
        return psa_samples_figure(path, list(splits.test)[:num], list(x), list(z.numpy()))

    def evaluate(self, model: MPM, splits: Splits, cfg: Config, out_dir: Path) -> dict[str, Any]:
        from mpmkit.metrics import adjusted_rand_index

        from .baselines import gmm_baseline, vae_gmm_baseline

        o, seed = cfg.family, cfg.train.seed
        t0 = time.perf_counter()
        model.eval()
        test = list(splits.test)
        mpm_labels, latents, test_lambdas = self.infer_labels(model, test, cfg)
        ari_mpm = float(np.mean([adjusted_rand_index(p, d.labels) for p, d in zip(mpm_labels, test)]))
        ari_gmm, gmm_labels = gmm_baseline(test, o.num_clusters, seed)
        ari_oracle, _ = gmm_baseline([SpiralDataset(d.latent, d.labels, d.latent, d.centres) for d in test],
                                     o.num_clusters, seed)
        if o.vae_steps > 0:
            ari_vae, vae_labels = vae_gmm_baseline(splits.train, test, o.num_clusters, steps=o.vae_steps,
                                                   latent=o.vae_latent, seed=seed)
        else:
            ari_vae, vae_labels = float("nan"), None
        x_all, u_all = np.concatenate([d.x for d in test]), np.concatenate(latents)
        alpha_eff, beta_eff = fit_rotation(x_all, u_all)
        desc = model.likelihood.transform.describe()
        alpha_learned = desc.get("alpha", alpha_eff)
        per_dataset = [adjusted_rand_index(p, d.labels) for p, d in zip(mpm_labels, test)]
        metrics = {
            "transform": o.transform,
            "ari_mpm": ari_mpm,
            "ari_gmm": ari_gmm,
            "ari_vae_gmm": ari_vae,
            "ari_latent_gmm_oracle": ari_oracle,
            "frac_test_ari_below_0.9": float(np.mean(np.array(per_dataset) < 0.9)),
            "alpha_true": o.alpha_true,
            "alpha_learned": float(alpha_learned),
            "alpha_source": "parameter" if "alpha" in desc else "fit of the learned flow's rotation vs radius",
            "alpha_rel_error": abs(float(alpha_learned) - o.alpha_true) / abs(o.alpha_true) if o.alpha_true else None,
            "beta_true": o.beta_true,
            "beta_learned": wrap(desc.get("beta", beta_eff)),
            "beta_note": "β is a global rotation; the data's orientations are uniform, so β is not identifiable",
            "scale_learned": float(model.likelihood.scale.detach()),
            "noise_true": o.noise,
            "num_test_datasets": len(test),
            "eval_inner_steps": o.eval_inner_steps or cfg.inner_steps,
        }
        if o.local == "psa":
            active = active_slots(test_lambdas, o.ard_tau).sum(-1).numpy()
            truth = np.array([len(np.unique(d.labels)) for d in test])
            metrics.update({"local": "psa", "ard_tau": o.ard_tau, "ard_prune": o.ard_prune,
                            "ard_count_accuracy": float(np.mean(active == truth)),
                            "ard_count_mae": float(np.mean(np.abs(active - truth))),
                            "ard_mean_active": float(active.mean()), "true_mean_clusters": float(truth.mean())})
        if o.figure:
            from .plot import spiral_figure

            out_dir = Path(out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            spiral_figure(out_dir / "spiral.png", test, mpm_labels, gmm_labels, vae_labels, latents,
                          alpha_true=o.alpha_true, beta_true=o.beta_true, alpha_fit=alpha_eff, beta_fit=beta_eff,
                          metrics=metrics)
            metrics["figure"] = str(out_dir / "spiral.png")
            if o.local == "psa":
                metrics["psa_samples_figure"] = str(self.sample_figure(model, splits, cfg, out_dir / "psa_samples.png"))
        metrics["eval_seconds"] = time.perf_counter() - t0
        return metrics
