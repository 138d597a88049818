"""The topic MPM of Sec. 3.2: documents are datasets, words are observations.

For document i with K local topic embeddings λ_i = {μ_ik}::

    μ_ik ~ (1/L) Σ_l N(ν_l, σ² I)                       (global GMM prior, mpmkit's GMMPrior)
    z_ij ~ U{1..K}                                       (uniform p(z | λ))
    x_ij | z_ij = k ~ Softmax(f_θ(μ_ik, s_j))            (over the V vocabulary words)

f_θ: h = μ + MLP(μ) (slot + residual), plus a learned positional encoding s_j, then a
3-layer MLP to V logits. The surrogate potential is ψ = −½‖μ_ik − g_φ(x_ij)‖² with
g_φ = a 2-layer MLP (then LayerNorm) on the frozen encoder's word embedding, so the inner
loop is the closed-form coordinate ascent of Proposition 1.

Batches carry ``x = {"emb": [B, N, H] encoder embeddings, "ids": [B, N] vocabulary ids,
"pos": [B, N] word positions}`` and a ``mask`` [B, N].

Positions: s_j is a table of ``position_buckets`` vectors; word position j (its index
among the words of the document) uses bucket ``min(j * P // max_positions, P - 1)``.
``P = max_positions`` (512) is the paper's one vector per position; the default of 8
buckets gives the same architecture at a fraction of the cost, since the softmax over V is
computed once per (document, topic, bucket) instead of per (document, topic, word).
LayerNorm replaces the paper's BatchNorm on g_φ: BatchNorm statistics would mix padded
rows and other documents, so padding would change the result.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mpmkit import EuclideanPotential, GMMPrior, MixtureLikelihood, MPM
from mpmkit.psa import PSAPotential, PSAPrior, unpack
from mpmkit.solvers import Solver


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class WordRecognition(nn.Module):
    """g_φ: frozen encoder embedding → 2-layer MLP → LayerNorm, ``[B, N, D]``."""

    def __init__(self, encoder_dim: int, slot_dim: int, hidden: int | None = None):
        super().__init__()
        self.net = mlp([encoder_dim, hidden or encoder_dim, slot_dim])
        self.norm = nn.LayerNorm(slot_dim)

    def forward(self, x: dict[str, Tensor]) -> Tensor:
        return self.norm(self.net(x["emb"].float()))


class OnlineGMMPrior(GMMPrior):
    """The global GMM prior with centres ν learned by online EM instead of gradient steps.

    After each training step the topic embeddings μ_ik of the batch update running sums
    (decay ``decay``): n_l ← γ n_l + (1-γ) Σ r_ikl, s_l ← γ s_l + (1-γ) Σ r_ikl μ_ik, ν_l = s_l / n_l,
    which is the M-step of log p(λ | η) over η. A centre whose running count falls below 1 % of
    the mean is re-seeded at a μ of the batch drawn ∝ its squared distance to the nearest live
    centre (k-means++); with
    gradient steps such centres get r ≈ 0, hence no gradient, and stay unused for good.
    """

    def __init__(self, num_clusters: int, dim: int, scale: float = 1.0, init_scale: float = 1.0,
                 decay: float = 0.99):
        super().__init__(num_clusters, dim, scale=scale, init_scale=init_scale)
        self.centres.requires_grad_(False)
        self.decay = float(decay)
        self.register_buffer("counts", torch.ones(num_clusters))
        self.register_buffer("sums", self.centres.detach().clone())

    def _logits(self, lam: Tensor) -> Tensor:
        # a copy of ν: em_update() changes ν in place after the forward pass, before backward
        nu = self.centres.clone()
        sq = (lam**2).sum(-1, keepdim=True) - 2 * lam @ nu.T + (nu**2).sum(-1)
        return -0.5 * sq.clamp_min(0) / self.scale**2

    def minorizer(self, lam: Tensor) -> tuple[Tensor, Tensor]:
        r = self.responsibilities(lam)
        return r.sum(-1) / self.scale**2, (r @ self.centres.clone()) / r.sum(-1, keepdim=True)

    @torch.no_grad()
    def reset(self, centres: Tensor) -> None:
        """Set ν (and the running statistics) to ``centres`` ``[L, D]``."""
        self.centres.copy_(centres)
        self.sums.copy_(centres * self.counts.unsqueeze(-1))

    @torch.no_grad()
    def em_update(self, lam: Tensor, weight: float = 1.0) -> None:
        """One online-EM step from this batch's topic embeddings ``[B, K, D]``.

        Under torchrun the batch statistics are summed over ranks (each rank holds a share of the
        global batch) and rank 0's restarts are broadcast, so every rank keeps the same ν. A rank
        holding only a weight-zero stand-in (a short last batch) passes ``weight=0``: it still joins
        the collective calls but adds nothing.
        """
        import torch.distributed as dist

        ddp = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        mu = lam.detach().reshape(-1, lam.shape[-1]).to(self.centres.dtype)
        r = self.responsibilities(mu.unsqueeze(0))[0]  # [M, L]
        stats = weight * torch.cat([r.sum(0, keepdim=True).T, r.T @ mu], 1)  # [L, 1 + D]: Σ r, Σ r μ
        if ddp:
            dist.all_reduce(stats)
        d = self.decay
        self.counts.mul_(d).add_(stats[:, 0], alpha=1 - d)
        self.sums.mul_(d).add_(stats[:, 1:], alpha=1 - d)
        if not ddp or dist.get_rank() == 0:
            self._restart_dead(mu)
        if ddp:
            dist.broadcast(self.counts, 0)
            dist.broadcast(self.sums, 0)
        self.centres.copy_(self.sums / self.counts.clamp_min(1e-12).unsqueeze(-1))

    def _restart_dead(self, mu: Tensor) -> None:
        mean = self.counts.mean()
        dead = (self.counts < 0.01 * mean).nonzero()[:, 0][:16].tolist()
        if dead:  # k-means++ restarts: each at a μ drawn ∝ its squared distance to the nearest live centre
            live = self.counts >= 0.01 * mean
            centres = self.sums / self.counts.clamp_min(1e-12).unsqueeze(-1)
            d2 = torch.cdist(mu, centres[live]).pow(2).min(1).values if live.any() else torch.ones(len(mu))
            for l in dead:
                if float(d2.sum()) <= 0:
                    break
                j = int(torch.multinomial(d2, 1))
                self.counts[l] = mean
                self.sums[l] = mu[j] * mean
                d2 = torch.minimum(d2, (mu - mu[j]).pow(2).sum(-1))


class TopicMPM(MPM):
    """MPM whose training forward also runs the online-EM update of an :class:`OnlineGMMPrior`."""

    def forward(self, batch):
        loss, terms, inference = super().forward(batch)
        gmm = global_prior(self.prior)
        if self.training and isinstance(gmm, OnlineGMMPrior):
            gmm.em_update(self.potential.slot_means(inference.lam), weight=0.0 if batch.extras.get("stand_in") else 1.0)
        return loss, terms, inference


def topic_means(lam: Tensor, slot_dim: int) -> Tensor:
    """μ_ik from λ: λ itself (the paper's local model) or the means of a packed PSA λ ``[..., 2D + 1]``."""
    if lam.shape[-1] == slot_dim:
        return lam
    if lam.shape[-1] == 2 * slot_dim + 1:
        return unpack(lam).mu
    raise ValueError(f"λ has width {lam.shape[-1]}; expected D = {slot_dim} or 2D + 1 = {2 * slot_dim + 1} (PSA)")


def global_prior(prior):
    """The global GMM p_η over topic means: ``prior`` itself, or the base of a :class:`PSAPrior`."""
    return prior.base if isinstance(prior, PSAPrior) else prior


class TopicLikelihood(MixtureLikelihood):
    """log p_θ(x_ij | z_ij = k, λ_i) = log Softmax(f_θ(μ_ik, s_j))[x_ij], ``[B, N, K]``."""

    def __init__(self, vocab_size: int, slot_dim: int, hidden: int = 256, position_buckets: int = 8,
                 max_positions: int = 512):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        if not 1 <= position_buckets <= max_positions:
            raise ValueError(f"position_buckets must be in [1, max_positions={max_positions}], got {position_buckets}")
        self.vocab_size, self.buckets, self.max_positions = vocab_size, position_buckets, max_positions
        self.slot_dim = slot_dim
        self.residual = mlp([slot_dim, slot_dim, slot_dim])
        self.positions = nn.Parameter(torch.randn(position_buckets, slot_dim) * 0.02)  # s, learned
        self.decoder = mlp([slot_dim, hidden, hidden, vocab_size])  # the 3-layer MLP

    def bucket(self, pos: Tensor) -> Tensor:
        return (pos.clamp_min(0) * self.buckets // self.max_positions).clamp_max(self.buckets - 1)

    def log_probs(self, lam: Tensor, num_buckets: int | None = None) -> Tensor:
        """log Softmax(f_θ(μ_ik, s_p)) for buckets p < ``num_buckets``, ``[B, K, P, V]``."""
        p = self.buckets if num_buckets is None else num_buckets
        mu = topic_means(lam, self.slot_dim)
        h = mu + self.residual(mu)  # [B, K, D]
        h = h.unsqueeze(2) + self.positions[:p]  # [B, K, P, D]
        return torch.log_softmax(self.decoder(h), dim=-1)

    def log_prob(self, x: dict[str, Tensor], lam: Tensor, mask: Tensor) -> Tensor:
        ids, b = x["ids"], self.bucket(x["pos"])
        ids, b = ids.masked_fill(~mask, 0), b.masked_fill(~mask, 0)  # padded entries read a valid cell
        p = int(b.max()) + 1 if b.numel() else 1
        logp = self.log_probs(lam, p)  # [B, K, P, V]
        B, K = lam.shape[:2]
        flat = (b * self.vocab_size + ids).unsqueeze(1).expand(B, K, -1)  # [B, K, N]
        ll = logp.reshape(B, K, -1).gather(2, flat).transpose(1, 2)  # [B, N, K]
        return torch.where(mask.unsqueeze(-1), ll, torch.zeros_like(ll))  # padding contributes exactly 0


def build_topic_mpm(solver: Solver, *, vocab_size: int, encoder_dim: int, num_topics: int = 5,
                    num_global: int = 100, slot_dim: int = 128, hidden: int = 256, position_buckets: int = 8,
                    max_positions: int = 512, inner_steps: int = 3, beta: float = 0.1, prior_scale: float = 1.0,
                    init_scale: float = 1.0, prior_update: str = "em", prior_decay: float = 0.99,
                    local: str = "mpm", var_prior: tuple[float, float] = (0.0, 0.0)) -> MPM:
    """The topic MPM: K = ``num_topics`` local topics, L = ``num_global`` GMM components.

    ``prior_update``: ``"em"`` (ν by online EM, :class:`OnlineGMMPrior`) or ``"gradient"`` (ν by Adam).
    ``local="psa"``: each document's local GMM gets mixing weights π and diagonal variances σ² over the
    word embeddings (Probabilistic Slot Attention): ψ = log N(g; μ_k, σ²_k), p(z = k | λ) = π_k, the
    global GMM on the means; the likelihood reads μ. Solve it with ``psa-em``.
    """
    if local not in ("mpm", "psa"):
        raise ValueError(f"local must be 'mpm' or 'psa', got {local!r}")
    if prior_update not in ("em", "gradient"):
        raise ValueError(f"prior_update must be 'em' or 'gradient', got {prior_update!r}")
    if prior_update == "em":
        prior = OnlineGMMPrior(num_global, slot_dim, scale=prior_scale, init_scale=init_scale, decay=prior_decay)
    else:
        prior = GMMPrior(num_global, slot_dim, scale=prior_scale, init_scale=init_scale)
    recognition = WordRecognition(encoder_dim, slot_dim)
    if local == "psa":
        prior = PSAPrior(prior, var_shape=var_prior[0], var_rate=var_prior[1])
        potential = PSAPotential(recognition)
    else:
        potential = EuclideanPotential(recognition)
    return TopicMPM(prior=prior,
               likelihood=TopicLikelihood(vocab_size, slot_dim, hidden, position_buckets, max_positions),
               potential=potential, solver=solver,
               num_slots=num_topics, slot_dim=slot_dim, inner_steps=inner_steps, beta=beta, init_scale=init_scale)
