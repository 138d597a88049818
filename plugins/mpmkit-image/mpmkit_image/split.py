"""A split move for PSA's local GMM on images: an object is one connected region.

PSA-EM with ARD groups pixels by their embeddings g_φ(x_j). When g carries colour more than
position (the mixture decoder asks no more of it), two pieces of one colour share a slot and ARD
counts colours, not objects. After the inner loop, :func:`split_disconnected` looks at each
active object slot's pixels (hard assignment argmax_k q_jk on the image grid): every
4-connected region after the largest that holds at least ``min_mass`` of the image moves to a
slot ARD had pruned (π_k < τ). The moved slot takes that region's share of q; its (μ, σ²) are the
closed-form M-step on it and the old slot's π is shared between the two in proportion to their
mass, so π still sums to one and the ARD count rises by one per split. The heaviest slot (the
background) is never split, and nothing splits when no pruned slot is left.

This is a split move in the sense of split-and-merge EM (Ueda et al., 2000) with connectivity
as the split criterion; it is a test-time step, not part of training.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from mpmkit.psa import DEAD, active_slots, pack, unpack


def split_disconnected(lam: Tensor, q: Tensor, g: Tensor, index: Tensor, mask: Tensor, hw: tuple[int, int],
                       tau: float, min_mass: float, var_floor: float = 1e-3) -> tuple[Tensor, Tensor, Tensor]:
    """Split every active non-background slot whose pixels form several large connected regions.

    ``lam [B, K, 2D + 1]`` (PSA λ), ``q [B, N, K]``, ``g [B, N, D]``, ``index [B, N]`` (pixel of
    observation j on the ``hw`` grid), ``mask [B, N]``. Returns (λ', q', splits per image ``[B]``).
    """
    if lam.dim() != 3 or q.shape[:2] != g.shape[:2] or q.shape[-1] != lam.shape[1] or index.shape != mask.shape \
            or index.shape != q.shape[:2]:
        raise ValueError(f"split_disconnected expects lam [B, K, 2D + 1], q [B, N, K], g [B, N, D], index and mask "
                         f"[B, N]; got {tuple(lam.shape)}, {tuple(q.shape)}, {tuple(g.shape)}, {tuple(index.shape)}, "
                         f"{tuple(mask.shape)}")
    s = unpack(lam)
    mu, log_var, pi = s.mu.clone(), s.log_var.clone(), s.pi.clone()
    q_new = q.clone()
    active = active_slots(lam, tau).cpu().numpy()
    hard = q.argmax(-1).cpu().numpy()
    idx, valid = index.cpu().numpy(), mask.cpu().numpy()
    splits = torch.zeros(lam.shape[0], dtype=torch.long)
    for b in range(lam.shape[0]):
        grid = np.full(hw[0] * hw[1], -1)
        grid[idx[b, valid[b]]] = hard[b, valid[b]]
        where = np.full(hw[0] * hw[1], -1)  # grid cell → observation j
        where[idx[b, valid[b]]] = np.flatnonzero(valid[b])
        n = int(valid[b].sum())
        pib = pi[b].cpu().numpy()
        background = int(pib.argmax())
        free = [k for k in np.argsort(pib) if not active[b, k]]  # the most thoroughly pruned first
        children: dict[int, list[int]] = {}  # split slot → the slots its extra regions moved to
        for k in np.flatnonzero(active[b]):
            if k == background:
                continue
            regions, count = ndimage.label((grid == k).reshape(hw))
            sizes = np.bincount(regions.ravel(), minlength=count + 1)[1:]
            big = [r + 1 for r in np.argsort(-sizes) if sizes[r] >= min_mass * n]
            for r in big[1:]:
                if not free:
                    break
                new = int(free.pop(0))
                obs = torch.as_tensor(where[(regions == r).ravel()], device=q.device)
                q_new[b, obs, new] += q_new[b, obs, k]
                q_new[b, obs, k] = 0
                children.setdefault(int(k), []).append(new)
                splits[b] += 1
        if not children:
            continue
        cols = sorted(c for k, new in children.items() for c in [k, *new])
        w = q_new[b][mask[b]][:, cols]  # [n, c]
        gb = g[b][mask[b]]
        nk = w.sum(0).clamp_min(torch.finfo(w.dtype).tiny)
        m = (w.T @ gb) / nk[:, None]
        var = (w.T @ gb**2) / nk[:, None] - m**2
        mu[b, cols], log_var[b, cols] = m, var.clamp_min(var_floor).log()
        mass = dict(zip(cols, nk.tolist()))
        for k, new in children.items():  # k's π, shared among k and its new slots by mass
            members = [k, *new]
            total, share = sum(mass[c] for c in members), pi[b, k].clone()
            for c in members:
                pi[b, c] = share * mass[c] / total
    log_pi = pi.clamp_min(torch.finfo(pi.dtype).tiny).log().clamp_min(DEAD)  # an emptied slot reads DEAD
    changed = (splits > 0).to(lam.device)[:, None, None]
    return torch.where(changed, pack(mu, log_var, log_pi), lam), q_new, splits
