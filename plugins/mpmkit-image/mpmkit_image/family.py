"""The ``tetrominoes`` family: object-centric MPM on Tetrominoes (Sec. 3.1, 5.2; Table 1; Figs. 4, 5).

Each image is a dataset, each pixel an observation. ``--set decoder=additive|mixture`` picks the
generative model, ``--set arch=fast|paper`` the networks, ``--set solver=slot-attention`` gives the
Slot Attention baseline in the same harness, ``--set local=psa`` Probabilistic Slot Attention (per-image
GMM with mixing weights and diagonal variances, EM inner loop, ARD slot pruning; with
``num_objects=[1,4]`` the generator draws 1-4 objects per image and evaluation scores the counts). ``evaluate`` reports FG-ARI (REFERENCE protocol), ARI
and MSE on the test split, the per-image GMM baseline on the same images, and writes the figures.
"""
from __future__ import annotations

import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mpmkit import Family, MPM, Splits
from mpmkit.components import solver_from_config
from mpmkit.config import Config
from mpmkit.errors import ConfigError, DataError
from mpmkit.model import REFINE_LR
from mpmkit.psa import AggregatePosterior, active_slots, unpack, var_prior, with_prune_mass

from .data import SceneList, collate, pixel_colours, scenes_from_arrays
from .metrics import ari_scores
from .model import build_mpm
from .split import split_disconnected
from .splits import split_indices


@dataclass
class TetrominoesOptions:
    """Options of the tetrominoes family (each field is a config key)."""

    decoder: Literal["additive", "mixture"] = "additive"  #: generative model of Sec. 3.1
    arch: Literal["fast", "paper"] = "fast"  #: networks: the improved default or the paper's CNNs
    local: Literal["mpm", "psa"] = "mpm"  #: per-image GMM: the paper's (uniform π, σ = 1) or PSA's (π, diagonal σ²)
    #: PSA: [α, β] of an inverse-gamma prior on each σ²; [0, 0] flat (needed > 0 by pyro-nuts / pyro-svi's Normal guide)
    psa_var_prior: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0])
    # -- data ------------------------------------------------------------------------------------
    num_images: int = 10000  #: images in all; split 80/10/10 by the run's seed
    data_seed: int = 0  #: seed of the generator (the split uses the run's seed, as in the paper)
    num_objects: list[int] = dataclasses.field(default_factory=lambda: [3])  #: objects per image: [n] or [min, max]
    tfrecord: str = ""  #: path of the official GZIP TFRecord (first num_images examples) instead of the generator
    cache_dir: str = ""  #: generator cache ('' = $MPMKIT_CACHE_DIR or ~/.cache/mpmkit)
    train_pixels: int = 128  #: random pixels per training image and step (0: all 1225)
    # -- model -----------------------------------------------------------------------------------
    num_slots: int = 4  #: K
    num_global: int = 100  #: L, components of the global GMM prior
    slot_dim: int = 0  #: D (0: 32 for fast, 64 for paper)
    channels: int = 0  #: conv channels (0: 16 for fast, 64 for paper)
    #: fast encoder: one 3×3 conv per entry with this dilation; [] = the default per ``local``
    #: (``model.DILATIONS``: mpm [1, 2, 4, 8], psa [1, 1, 1]; the slot-attention solver [1, 1, 1])
    dilations: list[int] = dataclasses.field(default_factory=list)
    hidden: int = 64  #: width of the fast decoder's MLP
    rel_freqs: int = 0  #: fast decoder: Fourier frequencies of the pixel's offset from the slot centre (0: offset only)
    encoder_position: bool = True  #: add the soft position embedding to g_φ (false: g sees colours and local shape only)
    sigma: float = 0.1  #: σ of the Gaussian pixel likelihood (the paper: 1, i.e. ½‖x − f‖²; 0.1 trains faster)
    prior_scale: float = 1.0  #: σ of each global GMM component
    slot_noise: float = 0.3  #: initial σ of the training-only noise on λ⁰ (learned; 0: none; see NoisyInitMPM)
    ard_tau: float = 0.03  #: PSA: slots with π_k < τ are pruned (not decoded, not counted); objects are 8 % of an image
    ard_prune: float = 0.03  #: PSA at test time: > 0 annihilates slots explaining < this fraction of an image in the loop
    ard_prune_train: float = 0.03  #: the same in training (psa-em's prune_mass; 0: plain EM, surplus slots split the background)
    #: PSA at test time: a slot whose pixels form several connected regions ≥ ard_tau of the image is split
    #: into pruned slots (objects are connected; :mod:`mpmkit_image.split`), so ARD counts same-coloured pieces apart
    ard_split: bool = False
    # -- evaluation ------------------------------------------------------------------------------
    eval_inner_steps: int = 10  #: inner steps at test time (0: the training inner_steps; 10 adds 1-4 FG-ARI points)
    #: test time, after the inner loop: Adam steps on the true ELBO w.r.t. Λ (``MPM.refine``; 0: none;
    #: -1: ``REFINE_STEPS`` for the additive decoder with the paper's local GMM and solver=coordinate-ascent, 0 otherwise)
    eval_refine_steps: int = -1
    eval_refine_lr: float = 0.1  #: Adam's step size for ``eval_refine_steps`` (chosen on validation images)
    #: test time: inner-loop runs per image (1: from λ⁰ only; r > 1 adds r − 1 from λ⁰ + learned noise,
    #: each refined), the one with the highest true ELBO kept (``MPM.infer_restarts``); costs r× the time
    eval_restarts: int = 1
    eval_limit: int = 0  #: evaluate the first n test images (0: all)
    gmm_baseline: bool = True  #: also score a per-image GaussianMixture on (colour, position)
    figures: bool = True  #: write fig4_segmentation.png and fig5_global_clusters.png

    @property
    def object_count(self):
        """``num_objects`` as the generator takes it: an int, or an inclusive (min, max) range."""
        return self.num_objects[0] if len(self.num_objects) == 1 else tuple(self.num_objects)

    def validate(self) -> None:
        var_prior(self.psa_var_prior, self.local)
        if self.num_images < 10:
            raise ConfigError(f"num_images must be >= 10 for an 80/10/10 split, got {self.num_images}")
        if self.num_slots < 2 or self.num_global < 1:
            raise ConfigError(f"need num_slots >= 2 and num_global >= 1, got {self.num_slots}, {self.num_global}")
        if self.train_pixels < 0:
            raise ConfigError(f"train_pixels must be >= 0 (0: all pixels), got {self.train_pixels}")
        if self.dilations and min(self.dilations) < 1:
            raise ConfigError(f"dilations needs one entry >= 1 per encoder conv (e.g. [1, 2, 4]), got {self.dilations}")
        if self.rel_freqs < 0:
            raise ConfigError(f"rel_freqs must be >= 0 (0: no Fourier features of the slot-relative offset), got {self.rel_freqs}")
        if self.slot_noise < 0:
            raise ConfigError(f"slot_noise must be >= 0 (0: no noise on λ⁰), got {self.slot_noise}")
        if self.eval_restarts < 1:
            raise ConfigError(f"eval_restarts must be >= 1 (1: one inner-loop run from λ⁰), got {self.eval_restarts}")
        if self.eval_refine_steps < -1:
            raise ConfigError(f"eval_refine_steps must be >= 0 (0: no test-time refinement) or -1 (the default per "
                              f"decoder), got {self.eval_refine_steps}")
        for key in ("sigma", "prior_scale", "eval_refine_lr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"config key {key!r} must be > 0, got {getattr(self, key)}")
        if (not 1 <= len(self.num_objects) <= 2 or not 1 <= min(self.num_objects) <= max(self.num_objects) <= 6
                or self.num_objects[0] > self.num_objects[-1]):
            raise ConfigError(f"num_objects must be [n] or [min, max] (min <= max) within 1..6, got {self.num_objects}")
        for key in ("data_seed", "eval_inner_steps", "eval_limit", "slot_dim", "channels"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key {key!r} must be >= 0, got {getattr(self, key)}")
        if self.hidden < 1:
            raise ConfigError(f"config key 'hidden' must be >= 1, got {self.hidden}")
        if self.arch == "paper" and (self.dilations or self.rel_freqs):
            raise ConfigError("dilations and rel_freqs shape the fast networks; arch=paper has the paper's own CNNs. "
                              "Leave them at [] / 0 with arch=paper, or use arch=fast")
        if self.local == "psa" and not self.tfrecord and max(self.num_objects) + 1 > self.num_slots:
            raise ConfigError(f"num_slots={self.num_slots} cannot hold up to {max(self.num_objects)} objects and the "
                              f"background, so ARD cannot count them; set num_slots >= {max(self.num_objects) + 1}")
        if self.ard_split and self.local != "psa":
            raise ConfigError("ard_split splits PSA's slots (it needs π to count by ARD); set local=psa or ard_split=false")
        if self.local == "psa" and self.ard_tau <= 0:
            raise ConfigError("ard_tau must be > 0 with local=psa (slots with π_k < ard_tau are pruned and not counted; "
                              f"0 would count every slot), got {self.ard_tau}")
        for key in ("ard_tau", "ard_prune", "ard_prune_train"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"config key {key!r} is a fraction of an image's pixels in [0, 1), got {getattr(self, key)}")
        if self.tfrecord and not Path(self.tfrecord).is_file():
            raise ConfigError(f"tfrecord file {self.tfrecord!r} does not exist or is not a file; give the path of "
                              "tetrominoes_train.tfrecords or leave tfrecord empty to use the generator")


#: test-time refinement steps when ``eval_refine_steps=-1``: measured for the additive MPM only
#: (benchmarks/RESULTS.md, "Test-time refinement"); other models keep their inner loop's Λ. (The
#: mixture decoder's masks are q^T, which refinement holds fixed, so there it could only change the
#: reconstruction, never the segmentation.)
REFINE_STEPS = 100


def refine_steps(cfg: Config) -> int:
    """The ``eval_refine_steps`` that applies to ``cfg`` (resolving -1)."""
    o = cfg.family
    if o.eval_refine_steps >= 0:
        return o.eval_refine_steps
    additive_mpm = o.decoder == "additive" and o.local == "mpm" and cfg.solver == "coordinate-ascent"
    return REFINE_STEPS if additive_mpm else 0


_CACHE: dict[tuple, dict] = {}


def load_arrays(o: TetrominoesOptions) -> dict:
    """The images and masks (generator, cached on disk and in memory; or the TFRecord file)."""
    key = (o.num_images, o.data_seed, o.tfrecord, o.cache_dir, tuple(o.num_objects))
    if key not in _CACHE:
        if o.tfrecord:
            from .tfrecord import read_tetrominoes

            try:
                data = read_tetrominoes(o.tfrecord, limit=o.num_images)
            except (OSError, ValueError, EOFError) as exc:
                raise DataError(f"cannot read {o.tfrecord!r} as the Tetrominoes TFRecord (GZIP-compressed "
                                f"tf.train.Example records, as DeepMind's multi_object_datasets ship it): {exc}") from exc
            if len(data["image"]) < 10:
                raise DataError(f"{o.tfrecord!r} holds {len(data['image'])} examples; need at least 10 (num_images)")
        else:
            from .tetrominoes import load_or_generate

            data = load_or_generate(o.num_images, o.data_seed, cache_dir=o.cache_dir or None, num_objects=o.object_count)
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
def infer_scenes(model: MPM, scenes, steps: int, batch_size: int = 100, solver=None, refine_steps: int = 0,
                 refine_lr: float = REFINE_LR, restarts: int = 1, seed: int = 0,
                 split: float | None = None) -> dict[str, np.ndarray]:
    """Every pixel of every scene: slot vectors (μ), responsibilities r, masks (alpha or q),
    reconstruction, segmentation by the masks (``pred``) and by the inner loop's q (``pred_q``);
    for PSA also λ itself and the mixing weights π. ``refine_steps`` > 0: Λ then takes that many
    steps of :meth:`MPM.refine <mpmkit.model.MPM.refine>` (ascent on the true ELBO) before decoding;
    ``restarts`` > 1: the best of that many runs by the true ELBO (:meth:`MPM.infer_restarts`, noise
    drawn from ``seed``, so the result is reproducible). ``split = τ`` (PSA only): the connectivity split
    move of :func:`~mpmkit_image.split.split_disconnected` at threshold τ, before decoding (the λ before
    it in ``lam_unsplit``, its segmentation in ``pred_unsplit``: one inner loop gives both)."""
    device = next(model.parameters()).device
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    out: dict[str, list] = {k: [] for k in ("lam", "r", "masks", "recon", "pred", "pred_q", "labels", "image",
                                            "lam_full", "lam_unsplit", "pred_unsplit")}
    gmm = getattr(model.prior, "base", model.prior)  # PSAPrior wraps the global GMM
    for i in range(0, len(scenes), batch_size):
        batch = collate([scenes[j] for j in range(i, min(i + batch_size, len(scenes)))]).to(device)
        inf = model.infer_restarts(batch, restarts, steps=steps, solver=solver, refine_steps=refine_steps,
                                   refine_lr=refine_lr, generator=generator)
        if split is not None:
            out["lam_unsplit"].append(inf.lam)
            out["pred_unsplit"].append(model.likelihood.masks(batch.x, inf.lam, inf.q)[1].argmax(-1))
            lam, q, _ = split_disconnected(inf.lam, inf.q, inf.g, batch.x["index"], batch.mask,
                                           tuple(batch.x["image"].shape[-2:]), tau=split, min_mass=split)
            inf = dataclasses.replace(inf, lam=lam, q=q)
        recon, masks = model.likelihood.masks(batch.x, inf.lam, inf.q)
        mu = model.potential.slot_means(inf.lam)
        out["lam"].append(mu)
        out["lam_full"].append(inf.lam)
        out["r"].append(gmm.responsibilities(mu) if hasattr(gmm, "responsibilities") else mu.new_zeros(*mu.shape[:2], 1))
        out["masks"].append(masks)
        out["recon"].append(recon)
        out["pred"].append(masks.argmax(-1))
        out["pred_q"].append(inf.q.argmax(-1))
        out["labels"].append(batch.extras["labels"])
        out["image"].append(pixel_colours(batch.x))
    return {k: torch.cat(v).cpu().numpy() for k, v in out.items() if v}


def segmentation_counts(pred: np.ndarray, num_slots: int, tau: float) -> np.ndarray:
    """Objects per image read off a segmentation ``pred [n, N]``: slots owning ≥ τ of the pixels,
    minus one for the background, ``[n]``."""
    area = np.stack([np.bincount(p, minlength=num_slots) for p in pred]) / pred.shape[1]
    return (area >= tau).sum(-1) - 1


def object_counts(labels: np.ndarray) -> np.ndarray:
    """True objects per image (entities with pixels, background 0 excluded), ``[n]``."""
    return np.array([len(np.unique(row[row > 0])) for row in labels])


def colour_counts(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Distinct object colours per image (each object's mean colour in 8-bit steps), ``[n]``.

    A diagnostic for counts: a model that groups pixels by colour alone counts these, not objects."""
    out = []
    for image, row in zip(images, labels):
        colours = {tuple(np.round(image[row == e].mean(0) * 255).astype(int)) for e in np.unique(row[row > 0])}
        out.append(len(colours))
    return np.array(out)


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
    data_keys = ("num_images", "data_seed", "num_objects")  # with the seed, they pick the test images
    # The additive model as the paper evaluates it (β = 0); use --set beta=0.01 for the paper's mixture runs.
    defaults = {"epochs": 20, "batch_size": 32, "lr": 2e-3, "lr_milestones": [8, 15], "lr_gamma": 0.3,
                "beta": 0.0, "inner_steps": 3, "log_every": 50, "grad_clip": 1.0}

    def build_data(self, cfg: Config) -> Splits:
        return make_splits(cfg.family, cfg.train.seed)

    def check(self, cfg: Config) -> None:
        self._solver(cfg)

    @staticmethod
    def _solver(cfg: Config):
        """The training solver, after refusing the ones that do not fit ``local``."""
        o = cfg.family
        if o.local == "psa" and cfg.solver == "slot-attention":
            raise ConfigError("local=psa runs PSA's EM inner loop; the slot-attention solver has its own "
                              "update (GRU). Use solver=coordinate-ascent (= psa-em under local=psa) or psa-em")
        psa_em = o.local == "psa" and cfg.solver in ("coordinate-ascent", "psa-em")
        solver = solver_from_config(cfg, local=o.local, **({"prune_mass": o.ard_prune_train} if psa_em else {}))
        if o.local == "psa":
            with_prune_mass(solver, o.ard_prune)  # another solver cannot prune at test time: refuse before training
        return solver

    def build_model(self, cfg: Config) -> MPM:
        o = cfg.family
        solver = self._solver(cfg)
        return build_mpm(solver, decoder=o.decoder, local=o.local, ard_tau=o.ard_tau, arch=o.arch, num_slots=o.num_slots,
                         num_global=o.num_global, slot_dim=o.slot_dim or None, channels=o.channels or None,
                         hidden=o.hidden, dilations=tuple(o.dilations) or None, rel_freqs=o.rel_freqs, encoder_position=o.encoder_position, inner_steps=cfg.inner_steps,
                         beta=cfg.beta, sigma=o.sigma,
                         prior_scale=o.prior_scale, var_prior=var_prior(o.psa_var_prior),
                         # the slot-attention solver already draws its own learned noise on λ⁰
                         slot_noise=0.0 if cfg.solver == "slot-attention" else o.slot_noise)

    def eval_solver(self, cfg: Config, model: MPM | None = None):
        """The test-time inner solver. PSA: the model's own PSA-EM (its options kept) with in-loop
        ARD at ``ard_prune`` (0: none, whatever training used); otherwise the model's own (None)."""
        o = cfg.family
        if o.local != "psa":
            return None
        return with_prune_mass(model.solver if model is not None else None, o.ard_prune)

    def evaluate(self, model: MPM, splits: Splits, cfg: Config, out_dir: Path) -> dict[str, Any]:
        o, seed = cfg.family, cfg.train.seed
        t0 = time.perf_counter()
        test = splits.test if not o.eval_limit else splits.test[: o.eval_limit]
        refine = refine_steps(cfg)
        res = infer_scenes(model, test, o.eval_inner_steps or cfg.inner_steps, solver=self.eval_solver(cfg, model),
                           refine_steps=refine, refine_lr=o.eval_refine_lr, restarts=o.eval_restarts,
                           split=o.ard_tau if o.ard_split else None)
        labels, pred = res["labels"], res["pred"]
        fg = ari_scores(labels, pred, foreground_only=True)
        metrics: dict[str, Any] = {
            "model": f"{o.decoder} MPM" if cfg.solver != "slot-attention" else f"slot attention ({o.decoder} decoder)",
            "decoder": o.decoder, "arch": o.arch, "solver": cfg.solver, "seed": seed,
            "fg_ari": float(fg.mean() * 100),
            "fg_ari_median": float(np.median(fg) * 100),
            # diagnostic, not the paper's protocol for the additive model: the segmentation by the inner
            # loop's q (which pixels g_φ groups), beside the decoder's alpha masks above (equal for mixture)
            "fg_ari_q": float(ari_scores(labels, res["pred_q"], foreground_only=True).mean() * 100),
            "ari": float(ari_scores(labels, pred).mean() * 100),
            "mse": float(((res["recon"] - res["image"]) ** 2).mean()),
            "num_test_images": int(len(test)),
            "eval_refine_steps": refine,
            "eval_restarts": o.eval_restarts,
        }
        # objects per image read off the segmentation (slots owning ≥ ard_tau of the pixels, minus the
        # background): a count every model has, the baseline for PSA's ARD count
        area_count = segmentation_counts(pred, o.num_slots, o.ard_tau)
        metrics["area_count_accuracy"] = float(np.mean(area_count == object_counts(labels)))
        if o.local == "psa":
            metrics.update(self.ard_report(res, o, Path(out_dir)))
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
            if o.local == "psa":
                metrics["figure_samples"] = str(self.sample_figure(model, splits, cfg, out_dir / "psa_samples.png"))
        metrics["eval_seconds"] = time.perf_counter() - t0
        return metrics

    def ard_report(self, res: dict, o: TetrominoesOptions, out_dir: Path) -> dict[str, Any]:
        """Slot counts by ARD: objects = active slots (π_k ≥ τ) − 1 for the background; per image
        in ``ard_counts.csv`` (test image, true objects, inferred objects, π sorted)."""
        lam = torch.from_numpy(res["lam_full"])
        active = active_slots(lam, o.ard_tau)
        inferred = active.sum(-1).numpy() - 1
        truth = object_counts(res["labels"])
        colours = colour_counts(res["image"], res["labels"])
        unique = colours == truth  # images whose objects all differ in colour
        pi = unpack(lam).pi.sort(-1, descending=True).values.numpy()
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = ["image,true_objects,inferred_objects," + ",".join(f"pi_{k}" for k in range(pi.shape[1]))]
        rows += [f"{i},{t},{n}," + ",".join(f"{v:.4f}" for v in p) for i, (t, n, p) in enumerate(zip(truth, inferred, pi))]
        (out_dir / "ard_counts.csv").write_text("\n".join(rows) + "\n")
        confusion = {f"{t}": {f"{n}": int(((truth == t) & (inferred == n)).sum()) for n in np.unique(inferred)}
                     for t in np.unique(truth)}
        return {"local": "psa", "ard_tau": o.ard_tau, "ard_prune": o.ard_prune,
                "ard_count_accuracy": float(np.mean(inferred == truth)),
                "ard_count_mae": float(np.mean(np.abs(inferred - truth))),
                "ard_mean_objects": float(inferred.mean()), "true_mean_objects": float(truth.mean()),
                "ard_confusion": confusion,
                # diagnosis: does ARD count objects, or colours? (equal on images without a repeated colour)
                "ard_matches_colour_count": float(np.mean(inferred == colours)),
                "ard_count_accuracy_distinct_colours": float(np.mean(inferred[unique] == truth[unique])) if unique.any() else float("nan"),
                "ard_count_accuracy_repeated_colour": float(np.mean(inferred[~unique] == truth[~unique])) if (~unique).any() else float("nan"),
                "images_with_repeated_colour": int((~unique).sum()),
                **self.split_report(res, o, truth, inferred)}

    @staticmethod
    def split_report(res: dict, o: TetrominoesOptions, truth: np.ndarray, after: np.ndarray) -> dict[str, Any]:
        """With ``ard_split``: the ARD count before the split move, and how many slots it split
        (``after``: the ARD count of the final λ, as :meth:`ard_report` read it)."""
        if "lam_unsplit" not in res:
            return {"ard_split": False}
        before = active_slots(torch.from_numpy(res["lam_unsplit"]), o.ard_tau).sum(-1).numpy() - 1
        return {"ard_split": True, "ard_count_accuracy_unsplit": float(np.mean(before == truth)),
                "split_images": int((after != before).sum()), "split_slots_added": int((after - before).sum())}

    @torch.no_grad()
    def sample_figure(self, model: MPM, splits: Splits, cfg: Config, path: Path, num: int = 8,
                      max_train: int = 2000) -> Path:
        """New scenes from the learned generative model: fit the aggregate posterior over the
        training images' local GMMs (ARD-pruned slots left out), draw slot sets, decode them."""
        from .figures import samples_figure

        o = cfg.family
        train = splits.train[:max_train]
        train = type(train)(train.images, train.labels, train.rows, 0)  # every pixel, no random subset
        res = infer_scenes(model, train, o.eval_inner_steps or cfg.inner_steps, solver=self.eval_solver(cfg, model))
        lam = torch.from_numpy(res["lam_full"])
        agg = AggregatePosterior.from_lambdas(lam, tau=o.ard_tau)
        gen = torch.Generator().manual_seed(cfg.train.seed)
        mu = agg.sample(num, o.num_slots, generator=gen)
        side = int(round(res["image"].shape[1] ** 0.5))
        real = res["image"][:num].reshape(-1, side, side, 3)
        return samples_figure(path, decode_slots(model, mu), real)

@torch.no_grad()
def decode_slots(model: MPM, mu: torch.Tensor, size: int = 35) -> np.ndarray:
    """Decode slot sets ``mu [n, K, D]`` (every slot) into images ``[n, size, size, 3]``, composed
    with the decoder's alpha masks as the additive likelihood composes them."""
    n = mu.shape[0]
    device = next(model.parameters()).device
    index = torch.arange(size * size, device=device).expand(n, -1)
    rgb, alpha = model.likelihood.decoder(mu.to(device), index, (size, size))
    img = (torch.softmax(alpha, -1).unsqueeze(-1) * rgb).sum(2).clamp(0, 1)
    return img.reshape(n, size, size, 3).cpu().numpy()
