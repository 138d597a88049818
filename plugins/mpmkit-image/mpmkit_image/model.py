"""The object-centric MPM of Sec. 3.1: pixels of an image are clustered around K slots μ_ik.

* recognition g_φ: a CNN over the whole image with a soft position embedding, then a per-pixel
  MLP and a normalisation, read at the observed pixels → ``[B, N, D]``; the surrogate potential
  is ψ = −½‖μ_ik − g_φ(x_ij)‖² (core ``EuclideanPotential``), so coordinate ascent is closed form;
* prior p_η: the global GMM over slots, μ_ik ~ (1/L) Σ_l N(ν_l, I) (core ``GMMPrior``);
* ``local="psa"`` (Probabilistic Slot Attention): λ_ik = (μ_ik, log σ²_ik, log π_ik), ψ = log N(g; μ_k,
  diag σ²_k), p(z = k | λ) = π_k, the global GMM on the means (``mpmkit.psa``); the decoder reads μ
  only, and slots pruned by ARD (π_k < τ) are left out of the additive masks;
* likelihood p_θ, decoder f_θ(μ_ik)_j → (rgb_ijk, alpha logit a_ijk):
  - mixture:  log p(x_ij | z_ij = k, λ_i) = log N(x_ij; rgb_ijk, σ²I);
  - additive: log p(x_ij | λ_i) = log N(x_ij; Σ_k w_ijk rgb_ijk, σ²I), w_ij = softmax_k(a_ij).

Two architectures (``arch``):

* ``paper``: the paper's code — 4 conv 5×5 + 2 conv 3×3 (64 ch), MLP, BatchNorm; decoder: slot +
  residual MLP, transposed convs 1×1 → 35×35 for every slot (the whole image is decoded);
* ``fast`` (default): 3×3 convs (16 ch) with ``DILATIONS`` (MPM: 1, 2, 4, 8, a 31×31 receptive
  field; PSA and the slot-attention solver: 1, 1, 1), MLP, LayerNorm; decoder: a per-pixel MLP on the slot and the pixel
  position (absolute Fourier features and the offset from a per-slot centre predicted
  from μ_k), so only the observed pixels are decoded — with ``train_pixels`` this is what makes a
  CPU step cheap.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor, nn

from mpmkit import AdditiveLikelihood, EuclideanPotential, GMMPrior, MixtureLikelihood, MPM, gaussian_log_prob
from mpmkit.psa import PSAPotential, PSAPrior, active_slots, unpack
from mpmkit.solvers import Solver

from .data import pixel_colours


def position_grid(h: int, w: int, device=None) -> Tensor:
    """The paper's 4-d grid [y, x, 1 − y, 1 − x] in [0, 1] per pixel (row-major), ``[H*W, 4]``."""
    ys = torch.linspace(0, 1, h, device=device)
    xs = torch.linspace(0, 1, w, device=device)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    y, x = y.reshape(-1), x.reshape(-1)
    return torch.stack([y, x, 1 - y, 1 - x], -1)


def check_image_input(image: Tensor) -> None:
    if not torch.is_tensor(image) or image.dim() != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"the image model expects x['image'] of shape [B, 3, H, W], got {shape}; "
                         "build batches with mpmkit_image.data.collate")
    if not image.is_floating_point():
        raise ValueError(f"x['image'] must be float in [0, 1], got {image.dtype}; divide uint8 images by 255")


def gather_pixels(features: Tensor, index: Tensor) -> Tensor:
    """``features [B, HW, C]`` at pixel ``index [B, N]`` → ``[B, N, C]``."""
    return features.gather(1, index.unsqueeze(-1).expand(-1, -1, features.shape[-1]))


# -- recognition networks g_φ ------------------------------------------------------------------
class Encoder(nn.Module):
    """Conv stack + soft position embedding + per-pixel MLP + normalisation → ``[B, H*W, D]``."""

    def __init__(self, convs: list[tuple[int, int, int]], channels: int, slot_dim: int, norm: str = "layer",
                 position: bool = True):
        super().__init__()
        layers, c_in = [], 3
        for c_out, k, d in convs:  # (channels, kernel, dilation)
            layers += [nn.Conv2d(c_in, c_out, k, padding=d * (k // 2), dilation=d), nn.ReLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.position = nn.Linear(4, channels) if position else None  # soft position embedding
        self.mlp = nn.Sequential(nn.LayerNorm(channels) if norm == "layer" else nn.Identity(),
                                 nn.Linear(channels, slot_dim), nn.ReLU(), nn.Linear(slot_dim, slot_dim))
        self.norm_kind = norm
        self.norm = nn.LayerNorm(slot_dim) if norm == "layer" else nn.BatchNorm1d(slot_dim)

    def features(self, image: Tensor) -> Tensor:
        """Conv features plus the position embedding, ``[B, H*W, C]`` (needs the whole image).

        The convs run channels-last: ~25 % less time for these small convs on CPU (oneDNN), and the
        ``[B, HW, C]`` view below then needs no copy (benchmarks/RESULTS.md, "Training step")."""
        _, _, h, w = image.shape
        f = self.convs(image.contiguous(memory_format=torch.channels_last))
        f = f.flatten(2).transpose(1, 2)  # [B, HW, C]
        if self.position is not None:
            f = f + self.position(position_grid(h, w, image.device))
        return f

    @property
    def per_pixel(self) -> bool:
        """Whether the MLP and normalisation treat each pixel alone (LayerNorm; BatchNorm does not)."""
        return self.norm_kind != "batch"

    def head(self, f: Tensor) -> Tensor:
        """Per-pixel MLP and normalisation of ``features`` ``[B, N, C]`` → ``[B, N, D]``."""
        b, n, _ = f.shape
        g = self.mlp(f)
        if self.norm_kind == "batch":  # over all pixels of the batch (every pixel of every image is real)
            return self.norm(g.reshape(b * n, -1)).reshape(b, n, -1)
        return self.norm(g)

    def forward(self, image: Tensor) -> Tensor:
        return self.head(self.features(image))


class PixelRecognition(nn.Module):
    """g_φ(x_ij): the encoder over the whole image, read at the observed pixels, ``[B, N, D]``.

    With a per-pixel head (LayerNorm) the MLP runs on the observed pixels only (same values: with
    ``train_pixels`` = 128 of 1,225 this skips ~90 % of its work); BatchNorm's statistics need
    every pixel, so that head runs on the whole image first."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: dict) -> Tensor:
        check_image_input(x["image"])
        if self.encoder.per_pixel:
            return self.encoder.head(gather_pixels(self.encoder.features(x["image"]), x["index"]))
        return gather_pixels(self.encoder(x["image"]), x["index"])


# -- decoders f_θ ----------------------------------------------------------------------------------
class PaperDecoder(nn.Module):
    """Slot + residual MLP, then transposed convs 1×1 → 35×35, RGB + alpha logit per slot and pixel."""

    def __init__(self, slot_dim: int, channels: int = 64, size: int = 35):
        super().__init__()
        if size != 35:
            raise ValueError(f"the paper decoder produces 35x35 images, got size {size}; use arch=fast for other sizes")
        self.mlp = nn.Sequential(nn.Linear(slot_dim, slot_dim), nn.ReLU(), nn.Linear(slot_dim, slot_dim))
        c = channels
        self.net = nn.Sequential(  # 1 → 5 → 13 → 29 → 35
            nn.ConvTranspose2d(slot_dim, c, 5), nn.ReLU(),
            nn.ConvTranspose2d(c, c, 5, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(c, c, 5, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(c, c, 7), nn.ReLU(),
            nn.Conv2d(c, 4, 1))

    def forward(self, lam: Tensor, index: Tensor, hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
        b, k, d = lam.shape
        s = lam + self.mlp(lam)
        out = self.net(s.reshape(b * k, d, 1, 1))  # [B*K, 4, 35, 35]
        out = out.reshape(b, k, 4, -1).permute(0, 3, 1, 2)  # [B, HW, K, 4]
        out = out.gather(1, index[:, :, None, None].expand(-1, -1, k, 4))
        return out[..., :3], out[..., 3]


class BroadcastDecoder(nn.Module):
    """Per-pixel MLP on (slot, position): a spatial-broadcast decoder with 1×1 convolutions.

    Input of pixel j for slot k: W_s μ_k + W_a fourier(p_j) + W_r (p_j − c_k)·scale, where the
    centre c_k = tanh(W_c μ_k) is read from the slot (translation-aware shapes); with
    ``rel_freqs`` > 0 also W_f fourier(p_j − c_k), so a shape's edges can be sharp in the slot's own
    frame (a ReLU MLP on the raw offset draws smooth blobs). Only the pixels in ``index`` are decoded.
    """

    def __init__(self, slot_dim: int, hidden: int = 64, layers: int = 3, freqs: int = 5, absolute: bool = True,
                 rel_freqs: int = 0):
        super().__init__()
        self.freqs, self.rel_freqs = freqs, rel_freqs
        self.slot_in = nn.Linear(slot_dim, hidden)
        self.pos_in = nn.Linear(4 * freqs + 2, hidden, bias=False) if absolute else None
        self.centre = nn.Linear(slot_dim, 2)
        self.rel_in = nn.Linear(2, hidden, bias=False)
        self.rel_fourier = nn.Linear(4 * rel_freqs, hidden, bias=False) if rel_freqs > 0 else None
        body = []
        for _ in range(layers - 1):
            body += [nn.ReLU(), nn.Linear(hidden, hidden)]
        self.body = nn.Sequential(*body, nn.ReLU(), nn.Linear(hidden, 4))

    @staticmethod
    def fourier(p: Tensor, freqs: int) -> Tensor:
        """[sin, cos](2^f π p) for f < ``freqs``, ``[..., 4·freqs]``."""
        f = (2.0 ** torch.arange(freqs, device=p.device, dtype=p.dtype)) * math.pi
        a = p.unsqueeze(-1) * f  # [..., 2, F]
        return torch.cat([a.sin().flatten(-2), a.cos().flatten(-2)], -1)

    def forward(self, lam: Tensor, index: Tensor, hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
        grid = position_grid(*hw, lam.device)[:, :2] * 2 - 1  # (y, x) in [-1, 1]
        p = grid[index]  # [B, N, 2]
        c = torch.tanh(self.centre(lam))  # [B, K, 2]
        offset = p.unsqueeze(2) - c.unsqueeze(1)  # [B, N, K, 2]
        h = self.slot_in(lam).unsqueeze(1) + self.rel_in(offset * 4.0)
        if self.rel_fourier is not None:
            h = h + self.rel_fourier(self.fourier(offset, self.rel_freqs))
        if self.pos_in is not None:
            h = h + self.pos_in(torch.cat([p, self.fourier(p, self.freqs)], -1)).unsqueeze(2)
        out = self.body(h)  # [B, N, K, 4]
        return out[..., :3], out[..., 3]


# -- likelihoods p_θ ----------------------------------------------------------------------------------
LOCALS = ("mpm", "psa")


class _Decoded:
    """Shared decode step of the image likelihoods.

    ``local="mpm"``: λ_ik is the slot vector. ``local="psa"``: λ_ik = (μ, log σ², log π) and the
    decoder reads μ; at evaluation slots with π_k < ``ard_tau`` are pruned (automatic relevance
    determination): their alpha is −inf, so the additive masks leave them out. The mixture decoder's
    masks are q, which already follows π (a slot annihilated in the loop has q = 0; one just below τ
    keeps its few pixels).
    """

    decoder: nn.Module
    local: str = "mpm"
    ard_tau: float = 0.0

    def slots(self, lam: Tensor) -> tuple[Tensor, Tensor | None]:
        """(slot vectors the decoder reads ``[B, K, D]``, active slots ``[B, K]`` bool or None: all).

        Pruning applies in evaluation only: in training every slot is decoded, so a slot that lost
        its pixels early still gets gradients and can win an object back."""
        if self.local == "psa":
            prune = self.ard_tau > 0 and not self.training
            return unpack(lam).mu, (active_slots(lam, self.ard_tau) if prune else None)
        return lam, None

    def decode(self, x: dict, lam: Tensor) -> tuple[Tensor, Tensor]:
        """(rgb ``[B, N, K, 3]``, alpha logits ``[B, N, K]``, −inf on pruned slots) at the observed pixels."""
        check_image_input(x["image"])
        mu, active = self.slots(lam)
        rgb, alpha = self.decoder(mu, x["index"], tuple(x["image"].shape[-2:]))
        if active is not None:
            alpha = alpha.masked_fill(~active.unsqueeze(1), float("-inf"))
        return rgb, alpha


class MixtureImageLikelihood(_Decoded, MixtureLikelihood):
    """log p_θ(x_ij | z_ij = k, λ_i) = log N(x_ij; f_θ(μ_ik)_j, σ² I), ``[B, N, K]``."""

    def __init__(self, decoder: nn.Module, sigma: float = 1.0):
        MixtureLikelihood.__init__(self)
        self.decoder, self.sigma = decoder, float(sigma)

    def log_prob(self, x: dict, lam: Tensor, mask: Tensor) -> Tensor:
        rgb, _ = self.decode(x, lam)
        ll = gaussian_log_prob(pixel_colours(x).unsqueeze(2), rgb, self.sigma)
        return torch.where(mask.unsqueeze(-1), ll, torch.zeros_like(ll))

    def masks(self, x: dict, lam: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        """(reconstruction Σ_k q_ijk rgb_ijk ``[B, N, 3]``, masks = q ``[B, N, K]``)."""
        rgb, _ = self.decode(x, lam)
        return (q.unsqueeze(-1) * rgb).sum(2), q


class AdditiveImageLikelihood(_Decoded, AdditiveLikelihood):
    """log p_θ(x_ij | λ_i) = log N(x_ij; Σ_k w_ijk f_θ(μ_ik)_j, σ² I), w = softmax_k(alpha), ``[B, N]``."""

    def __init__(self, decoder: nn.Module, sigma: float = 1.0):
        AdditiveLikelihood.__init__(self)
        self.decoder, self.sigma = decoder, float(sigma)

    def masks(self, x: dict, lam: Tensor, q: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(reconstruction ``[B, N, 3]``, alpha masks w ``[B, N, K]``, summing to 1 over slots)."""
        rgb, alpha = self.decode(x, lam)
        w = torch.softmax(alpha, -1)
        return (w.unsqueeze(-1) * rgb).sum(2), w

    def log_prob(self, x: dict, lam: Tensor, mask: Tensor) -> Tensor:
        recon, _ = self.masks(x, lam)
        ll = gaussian_log_prob(pixel_colours(x), recon, self.sigma)
        return torch.where(mask, ll, torch.zeros_like(ll))


class NoisyInitMPM(MPM):
    """MPM whose inner loop starts, in training only, at λ⁰ + σ ε (ε ~ N(0, I) per image and slot).

    σ (``[D]``, learned through ``log_slot_sigma``) is initialised at ``slot_noise``. As in Slot
    Attention's learned Gaussian initialisation, the noise keeps a slot index from standing for an
    image location: which slot takes which object is decided by the data, not by λ⁰. Evaluation
    (``model.eval()``) starts at the learned λ⁰ itself, so inference stays deterministic.
    """

    def __init__(self, *, slot_noise: float, **kw):
        super().__init__(**kw)
        if slot_noise <= 0:
            raise ValueError(f"slot_noise must be > 0, got {slot_noise}")
        d = self.potential.slot_means(self.lambda0.detach().unsqueeze(0)).shape[-1]  # noise on μ only (PSA: not on σ², π)
        self.log_slot_sigma = nn.Parameter(torch.full((d,), math.log(slot_noise)))

    def perturb(self, lam0: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """λ⁰ + σ ε on the slot means with the learned σ (PSA's σ², π untouched): the training-time
        start, and the restart points of :meth:`MPM.infer_restarts`."""
        d = self.log_slot_sigma.shape[0]
        noise = torch.randn(lam0[..., :d].shape, generator=generator, device=lam0.device, dtype=lam0.dtype)
        return torch.cat([lam0[..., :d] + noise * self.log_slot_sigma.exp(), lam0[..., d:]], -1)

    def problem(self, batch, g: Tensor | None = None):
        problem = super().problem(batch, g)
        if not self.training:
            return problem
        return replace(problem, lam0=self.perturb(problem.lam0))


ARCHS = ("fast", "paper")
#: the fast encoder's default dilations per local GMM (and for the Slot Attention baseline), each the best
#: measured (benchmarks/RESULTS.md): MPM's 31×31 field lets every pixel's g carry its whole object (FG-ARI
#: 91 vs 84); PSA did worse with it (54 vs 78) and Slot Attention failed on 2 of 3 seeds (seed 43: 43 vs
#: 80 with the 7×7 encoder), so both keep the 7×7 one
DILATIONS = {"mpm": (1, 2, 4, 8), "psa": (1, 1, 1), "slot-attention": (1, 1, 1)}


def build_mpm(solver: Solver, *, decoder: str = "additive", arch: str = "fast", num_slots: int = 4,
              num_global: int = 100, slot_dim: int | None = None, channels: int | None = None,
              hidden: int = 64, inner_steps: int = 3, beta: float = 0.0, sigma: float = 1.0,
              prior_scale: float = 1.0, size: int = 35, slot_init: float = 0.1, embed_scale: float = 1.0,
              absolute_position: bool = True, rel_freqs: int = 0, encoder_position: bool = True, slot_noise: float = 0.0, local: str = "mpm",
              ard_tau: float = 0.0, dilations: tuple[int, ...] | None = None,
              var_prior: tuple[float, float] = (0.0, 0.0)) -> MPM:
    """The object-centric MPM for ``decoder`` ∈ {additive, mixture}, ``arch`` ∈ {fast, paper} and
    ``local`` ∈ {mpm, psa} (the per-image GMM: the paper's, or PSA's with π and diagonal σ²; ``var_prior``
    = (α, β) is PSA's prior on the variances, see :class:`mpmkit.psa.PSAPrior`).

    ``dilations``: one 3×3 conv of the fast encoder per entry, with that dilation (receptive field
    1 + 2·Σ dilations pixels; None: ``DILATIONS[local]``, or ``DILATIONS["slot-attention"]`` for that
    solver). ``slot_init`` is the scale of the random λ⁰ (small: every slot starts near the mean of g,
    so no slot starts empty); ``embed_scale`` the initial gain of g_φ's normalisation (‖g‖² ≈ D·gain²).
    """
    if arch == "paper":
        d, c = slot_dim or 64, channels or 64
        encoder = Encoder([(c, 5, 1)] * 4 + [(c, 3, 1)] * 2, c, d, norm="batch", position=encoder_position)
        dec = PaperDecoder(d, c, size)
    elif arch == "fast":
        d, c = slot_dim or 32, channels or 16
        key = "slot-attention" if getattr(solver, "name", None) == "slot-attention" else local
        dil = DILATIONS.get(key, DILATIONS["mpm"]) if dilations is None else dilations
        encoder = Encoder([(c, 3, r) for r in dil], c, d, norm="layer", position=encoder_position)
        dec = BroadcastDecoder(d, hidden=hidden, absolute=absolute_position, rel_freqs=rel_freqs)
    else:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if decoder == "additive":
        lik = AdditiveImageLikelihood(dec, sigma)
    elif decoder == "mixture":
        lik = MixtureImageLikelihood(dec, sigma)
    else:
        raise ValueError(f"unknown decoder {decoder!r}; choose 'additive' or 'mixture'")
    with torch.no_grad():
        encoder.norm.weight.fill_(embed_scale)
    gmm = GMMPrior(num_global, d, scale=prior_scale, init_scale=slot_init)
    if local == "psa":
        prior = PSAPrior(gmm, var_shape=var_prior[0], var_rate=var_prior[1])
        potential = PSAPotential(PixelRecognition(encoder))
        lik.local, lik.ard_tau = "psa", float(ard_tau)
    elif local == "mpm":
        prior, potential = gmm, EuclideanPotential(PixelRecognition(encoder))
    else:
        raise ValueError(f"unknown local {local!r}; choose one of {', '.join(LOCALS)}")
    kw = dict(prior=prior, likelihood=lik, potential=potential, solver=solver, num_slots=num_slots,
              slot_dim=d, inner_steps=inner_steps, beta=beta, init_scale=slot_init)
    if slot_noise < 0:
        raise ValueError(f"slot_noise must be >= 0, got {slot_noise}")
    model = NoisyInitMPM(slot_noise=slot_noise, **kw) if slot_noise > 0 else MPM(**kw)
    if local == "psa":
        # PSA starts every image at σ² = 1 and π = 1/K; only the means of λ⁰ are learned (a learned
        # π⁰ or σ²⁰ lets one slot win every pixel in the first E-step, after which the others are dead)
        learned = torch.zeros_like(model.lambda0)
        learned[:, :d] = 1.0
        model.lambda0.register_hook(lambda grad: grad * learned.to(grad.device))
    return model
