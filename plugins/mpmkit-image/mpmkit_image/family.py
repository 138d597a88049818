"""The ``tetrominoes`` family: object-centric MPM on Tetrominoes (Sec. 3.1, 5.2; Table 1; Figs. 4, 5).

Each image is a dataset, each pixel an observation. ``--set decoder=additive|mixture`` picks the
generative model, ``--set arch=fast|paper`` the networks, ``--set solver=slot-attention`` gives the
Slot Attention baseline in the same harness. ``evaluate`` reports FG-ARI (REFERENCE protocol), ARI
and MSE on the test split, the per-image GMM baseline on the same images, and writes the figures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mpmkit import Family, MPM, Splits
from mpmkit.components import solver_from_config
from mpmkit.config import Config
from mpmkit.errors import ConfigError

from .data import SceneList, collate, pixel_colours, scenes_from_arrays
from .metrics import ari_scores
from .model import build_mpm
from .splits import split_indices


@dataclass
class TetrominoesOptions:
    """Options of the tetrominoes family (each field is a config key)."""

    decoder: Literal["additive", "mixture"] = "additive"  #: generative model of Sec. 3.1
    arch: Literal["fast", "paper"] = "fast"  #: networks: the improved default or the paper's CNNs
    # -- data ------------------------------------------------------------------------------------
    num_images: int = 10000  #: images in all; split 80/10/10 by the run's seed
    data_seed: int = 0  #: seed of the generator (the split uses the run's seed, as in the paper)
    tfrecord: str = ""  #: path of the official GZIP TFRecord (first num_images examples) instead of the generator
    cache_dir: str = ""  #: generator cache ('' = $MPMKIT_CACHE_DIR or ~/.cache/mpmkit)
    train_pixels: int = 128  #: random pixels per training image and step (0: all 1225)
    # -- model -----------------------------------------------------------------------------------
    num_slots: int = 4  #: K
    num_global: int = 100  #: L, components of the global GMM prior
    slot_dim: int = 0  #: D (0: 32 for fast, 64 for paper)
    channels: int = 0  #: conv channels (0: 16 for fast, 64 for paper)
    hidden: int = 64  #: width of the fast decoder's MLP
    sigma: float = 0.1  #: σ of the Gaussian pixel likelihood (the paper: 1, i.e. ½‖x − f‖²; 0.1 trains faster)
    prior_scale: float = 1.0  #: σ of each global GMM component
    slot_noise: float = 0.3  #: initial σ of the training-only noise on λ⁰ (learned; 0: none; see NoisyInitMPM)
    # -- evaluation ------------------------------------------------------------------------------
    eval_inner_steps: int = 10  #: inner steps at test time (0: the training inner_steps; 10 adds 1-4 FG-ARI points)
    eval_limit: int = 0  #: evaluate the first n test images (0: all)
    gmm_baseline: bool = True  #: also score a per-image GaussianMixture on (colour, position)
    figures: bool = True  #: write fig4_segmentation.png and fig5_global_clusters.png

    def validate(self) -> None:
        if self.num_images < 10:
            raise ConfigError(f"num_images must be >= 10 for an 80/10/10 split, got {self.num_images}")
        if self.num_slots < 2 or self.num_global < 1:
            raise ConfigError(f"need num_slots >= 2 and num_global >= 1, got {self.num_slots}, {self.num_global}")
        if self.train_pixels < 0:
            raise ConfigError(f"train_pixels must be >= 0 (0: all pixels), got {self.train_pixels}")
        if self.slot_noise < 0:
            raise ConfigError(f"slot_noise must be >= 0 (0: no noise on λ⁰), got {self.slot_noise}")
        for key in ("sigma", "prior_scale"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"config key {key!r} must be > 0, got {getattr(self, key)}")
        if self.tfrecord and not Path(self.tfrecord).exists():
            raise ConfigError(f"tfrecord file {self.tfrecord!r} does not exist; give the path of "
                              "tetrominoes_train.tfrecords or leave tfrecord empty to use the generator")


_CACHE: dict[tuple, dict] = {}


def load_arrays(o: TetrominoesOptions) -> dict:
    """The images and masks (generator, cached on disk and in memory; or the TFRecord file)."""
    key = (o.num_images, o.data_seed, o.tfrecord, o.cache_dir)
    if key not in _CACHE:
        if o.tfrecord:
            from .tfrecord import read_tetrominoes

            data = read_tetrominoes(o.tfrecord, limit=o.num_images)
            if len(data["image"]) < 10:
                raise ConfigError(f"{o.tfrecord!r} holds {len(data['image'])} examples; need at least 10")
        else:
            from .tetrominoes import load_or_generate

            data = load_or_generate(o.num_images, o.data_seed, cache_dir=o.cache_dir or None)
        _CACHE.clear()
        _CACHE[key] = {"image": data["image"], "mask": data["mask"]}
    return _CACHE[key]


def make_splits(o: TetrominoesOptions, seed: int) -> Splits:
    """80/10/10 split of the images by ``seed``; training scenes subsample ``train_pixels``."""
    data = load_arrays(o)
    train, val, test = split_indices(len(data["image"]), seed)
    full = scenes_from_arrays(data)
    return Splits(train=SceneList(full.images, full.labels, train, o.train_pixels),
                  val=SceneList(full.images, full.labels, val), test=SceneList(full.images, full.labels, test),
                  collate=collate)


@torch.no_grad()
def infer_scenes(model: MPM, scenes, steps: int, batch_size: int = 100) -> dict[str, np.ndarray]:
    """Every pixel of every scene: slots λ, responsibilities r, masks (alpha or q), reconstruction, segmentation."""
    device = next(model.parameters()).device
    model.eval()
    out: dict[str, list] = {k: [] for k in ("lam", "r", "masks", "recon", "pred", "labels", "image")}
    for i in range(0, len(scenes), batch_size):
        batch = collate([scenes[j] for j in range(i, min(i + batch_size, len(scenes)))]).to(device)
        inf = model.infer(batch, steps=steps)
        recon, masks = model.likelihood.masks(batch.x, inf.lam, inf.q)
        out["lam"].append(inf.lam)
        out["r"].append(model.prior.responsibilities(inf.lam) if hasattr(model.prior, "responsibilities")
                        else inf.lam.new_zeros(*inf.lam.shape[:2], 1))
        out["masks"].append(masks)
        out["recon"].append(recon)
        out["pred"].append(masks.argmax(-1))
        out["labels"].append(batch.extras["labels"])
        out["image"].append(pixel_colours(batch.x))
    return {k: torch.cat(v).cpu().numpy() for k, v in out.items()}


def gmm_segment(images: np.ndarray, k: int, seed: int, position_weight: float = 1.0) -> np.ndarray:
    """GMM baseline: a K-component GaussianMixture on (r, g, b, y, x) per image, ``[n, H*W]`` labels."""
    from sklearn.mixture import GaussianMixture

    n, hw, _ = images.shape
    side = int(round(hw ** 0.5))
    ys, xs = np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side), indexing="ij")
    pos = np.stack([ys.ravel(), xs.ravel()], -1) * position_weight
    pred = np.zeros((n, hw), np.int64)
    for i in range(n):
        feats = np.concatenate([images[i], pos], -1)
        gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed, max_iter=100)
        pred[i] = gm.fit_predict(feats)
    return pred


class TetrominoesFamily(Family):
    """Object-centric MPM on Tetrominoes: mixture or additive decoder, global GMM prior over slots."""

    name = "tetrominoes"
    description = "Object-centric MPM on Tetrominoes (Sec. 3.1, 5.2): pixels clustered into K slots per image"
    options = TetrominoesOptions
    # The additive model as the paper evaluates it (β = 0); use --set beta=0.01 for the paper's mixture runs.
    defaults = {"epochs": 20, "batch_size": 32, "lr": 2e-3, "lr_milestones": [8, 15], "lr_gamma": 0.3,
                "beta": 0.0, "inner_steps": 3, "log_every": 50, "grad_clip": 1.0}

    def build_data(self, cfg: Config) -> Splits:
        return make_splits(cfg.family, cfg.train.seed)

    def build_model(self, cfg: Config) -> MPM:
        o = cfg.family
        return build_mpm(solver_from_config(cfg), decoder=o.decoder, arch=o.arch, num_slots=o.num_slots,
                         num_global=o.num_global, slot_dim=o.slot_dim or None, channels=o.channels or None,
                         hidden=o.hidden, inner_steps=cfg.inner_steps, beta=cfg.beta, sigma=o.sigma,
                         prior_scale=o.prior_scale,
                         # the slot-attention solver already draws its own learned noise on λ⁰
                         slot_noise=0.0 if cfg.solver == "slot-attention" else o.slot_noise)

    def evaluate(self, model: MPM, splits: Splits, cfg: Config, out_dir: Path) -> dict[str, Any]:
        o, seed = cfg.family, cfg.train.seed
        t0 = time.perf_counter()
        test = splits.test if not o.eval_limit else splits.test[: o.eval_limit]
        res = infer_scenes(model, test, o.eval_inner_steps or cfg.inner_steps)
        labels, pred = res["labels"], res["pred"]
        fg = ari_scores(labels, pred, foreground_only=True)
        metrics: dict[str, Any] = {
            "model": f"{o.decoder} MPM" if cfg.solver != "slot-attention" else f"slot attention ({o.decoder} decoder)",
            "decoder": o.decoder, "arch": o.arch, "solver": cfg.solver, "seed": seed,
            "fg_ari": float(fg.mean() * 100),
            "fg_ari_median": float(np.median(fg) * 100),
            "ari": float(ari_scores(labels, pred).mean() * 100),
            "mse": float(((res["recon"] - res["image"]) ** 2).mean()),
            "num_test_images": int(len(test)),
        }
        if o.gmm_baseline:
            t1 = time.perf_counter()
            gmm = gmm_segment(res["image"], o.num_slots, seed)
            metrics["fg_ari_gmm"] = float(ari_scores(labels, gmm, foreground_only=True).mean() * 100)
            metrics["ari_gmm"] = float(ari_scores(labels, gmm).mean() * 100)
            metrics["gmm_seconds"] = time.perf_counter() - t1
        if o.figures:
            from .figures import clusters_figure, segmentation_figure

            out_dir = Path(out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            metrics["figure_segmentation"] = str(segmentation_figure(out_dir / "fig4_segmentation.png", res, metrics))
            metrics["figure_clusters"] = str(clusters_figure(out_dir / "fig5_global_clusters.png", res, seed))
        metrics["eval_seconds"] = time.perf_counter() - t0
        return metrics
