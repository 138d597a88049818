"""Slot Attention's update (the paper's Algorithm 2) against a hand-written reference of its equations."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mpmkit import FlatPrior, InnerProblem, SlotAttention
from mpmkit.potentials import EuclideanPotential


def problem(B=2, N=9, K=3, D=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(B, N, D, generator=gen, dtype=torch.float64)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 6:] = False
    lam0 = torch.randn(B, K, D, generator=gen, dtype=torch.float64)
    return InnerProblem(g=g, mask=mask, prior=FlatPrior(), potential=EuclideanPotential(), lam0=lam0,
                        log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(K)))


def reference_update(sa: SlotAttention, p: InnerProblem, lam: torch.Tensor) -> torch.Tensor:
    """LayerNorm → q/k/v → softmax over slots → weighted mean over observations → GRU(u, λ) → residual MLP."""
    d = lam.shape[-1]
    z = F.layer_norm(p.g, (d,), sa.norm_inputs.weight, sa.norm_inputs.bias)
    k, v = z @ sa.to_k.weight.T, z @ sa.to_v.weight.T
    q = F.layer_norm(lam, (d,), sa.norm_slots.weight, sa.norm_slots.bias) @ sa.to_q.weight.T
    attn = torch.softmax(torch.einsum("bnd,bkd->bnk", k, q) / math.sqrt(d), -1) * p.mask.unsqueeze(-1)
    w = attn / (attn.sum(1, keepdim=True) + sa.eps)
    u = torch.einsum("bnk,bnd->bkd", w, v)  # weighted MEAN of the values over real observations
    W_ih, W_hh, b_ih, b_hh = sa.gru.weight_ih, sa.gru.weight_hh, sa.gru.bias_ih, sa.gru.bias_hh
    gi, gh = u @ W_ih.T + b_ih, lam @ W_hh.T + b_hh  # the GRU's input is u, its hidden state λ
    r = torch.sigmoid(gi[..., :d] + gh[..., :d])
    zz = torch.sigmoid(gi[..., d:2 * d] + gh[..., d:2 * d])
    n = torch.tanh(gi[..., 2 * d:] + r * gh[..., 2 * d:])
    new = (1 - zz) * n + zz * lam
    h = F.layer_norm(new, (d,), sa.norm_mlp.weight, sa.norm_mlp.bias)
    return new + sa.mlp(h)


def test_update_matches_the_algorithm_2_reference():
    torch.manual_seed(0)
    p = problem()
    sa = SlotAttention(hidden=8)
    sa.bind(3, 4)
    sa = sa.double()
    for m in (sa.norm_inputs, sa.norm_slots, sa.norm_mlp):  # non-trivial affine parts
        torch.nn.init.normal_(m.weight)
        torch.nn.init.normal_(m.bias)
    with torch.no_grad():
        torch.testing.assert_close(sa.update(p, p.lam0), reference_update(sa, p, p.lam0), rtol=1e-10, atol=1e-12)
        q = sa.posterior(p, p.lam0)
    torch.testing.assert_close(q.sum(-1)[p.mask], torch.ones(int(p.mask.sum()), dtype=torch.float64))
    assert (q[~p.mask] == 0).all()


def test_padding_does_not_change_the_update():
    torch.manual_seed(1)
    p = problem()
    sa = SlotAttention(hidden=8)
    sa.bind(3, 4)
    sa = sa.double().eval()
    garbage = p.g.clone()
    garbage[~p.mask] = 1e3
    p2 = InnerProblem(g=garbage, mask=p.mask, prior=p.prior, potential=p.potential, lam0=p.lam0, log_pz=p.log_pz)
    with torch.no_grad():
        torch.testing.assert_close(sa.update(p2, p.lam0), sa.update(p, p.lam0), rtol=1e-10, atol=1e-10)
