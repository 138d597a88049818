"""The connectivity split move: a slot holding two separate regions becomes two slots, by the
closed-form M-step on each region; connected slots, the background, small regions and images with
no pruned slot left are untouched; q stays a distribution over slots and π sums to one."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmkit.psa import DEAD, active_slots, pack, unpack
from mpmkit_image.split import split_disconnected

H = W = 8


def layout(rows: list[str]) -> np.ndarray:
    """A slot id per pixel from text rows ('0'..'9')."""
    return np.array([[int(c) for c in r] for r in rows])


TWO_PIECES = layout(["11000000",
                     "11000000",
                     "00000000",
                     "00000000",
                     "00000022",
                     "00000022",
                     "00000000",
                     "00111000"])  # slot 1: regions of 4 and 3 pixels; slot 2: one region of 4


def problem(hard: np.ndarray, k: int = 4, d: int = 3, soft: float = 0.9, seed: int = 0):
    """λ, q, g, index, mask for one image whose pixels belong to the slots in ``hard`` (soft q).
    Slots with no pixel get π = exp(DEAD), i.e. pruned."""
    gen = torch.Generator().manual_seed(seed)
    flat = torch.as_tensor(hard.ravel())
    n = flat.numel()
    q = torch.full((n, k), (1 - soft) / (k - 1), dtype=torch.float64)
    q[torch.arange(n), flat] = soft
    g = torch.randn(n, d, generator=gen, dtype=torch.float64) + flat[:, None].double()
    counts = torch.bincount(flat, minlength=k).double()
    pi = torch.where(counts > 0, counts / n, torch.full_like(counts, math.exp(DEAD)))
    mu = torch.randn(k, d, generator=gen, dtype=torch.float64)
    lam = pack(mu, torch.zeros(k, d, dtype=torch.float64), pi.log())
    return lam[None], q[None], g[None], torch.arange(n)[None], torch.ones(1, n, dtype=torch.bool)


def test_two_regions_of_one_slot_become_two_slots():
    lam, q, g, index, mask = problem(TWO_PIECES)
    lam2, q2, splits = split_disconnected(lam, q, g, index, mask, (H, W), tau=0.03, min_mass=3 / 64)
    assert splits.tolist() == [1]
    before, after = active_slots(lam, 0.03), active_slots(lam2, 0.03)
    assert before.sum() == 3 and after.sum() == 4  # background, slot 1, slot 2 → + the split-off region
    new = int((after & ~before).nonzero()[0, 1])
    small = torch.as_tensor(TWO_PIECES.ravel() == 1) & (torch.arange(64) >= 56)  # the bottom region of slot 1
    assert torch.allclose(q2[0, small, new], q[0, small, new] + q[0, small, 1]) and torch.all(q2[0, small, 1] == 0)
    assert torch.allclose(q2.sum(-1), torch.ones(1, 64, dtype=q.dtype))
    # μ and σ² of the new slot and of the old one: the M-step on their share of q
    for k in (1, new):
        w = q2[0, :, k]
        m = (w[:, None] * g[0]).sum(0) / w.sum()
        v = (w[:, None] * (g[0] - m) ** 2).sum(0) / w.sum()
        s = unpack(lam2)
        assert torch.allclose(s.mu[0, k], m) and torch.allclose(s.var[0, k], v.clamp_min(1e-3))
    # slot 1's π is shared by mass; every other slot keeps its π; π sums to one
    p0, p1 = unpack(lam).pi[0], unpack(lam2).pi[0]
    assert torch.isclose(p1.sum(), torch.tensor(1.0, dtype=p1.dtype))
    assert torch.isclose(p1[1] + p1[new], p0[1])
    assert torch.isclose(p1[new] / p1[1], q2[0, :, new].sum() / q2[0, :, 1].sum())
    for k in (0, 2):
        assert torch.isclose(p1[k], p0[k]) and torch.equal(lam2[0, k], lam[0, k])


@pytest.mark.parametrize("case,min_mass", [("connected", 3 / 64), ("small region", 4 / 64), ("no free slot", 3 / 64),
                                           ("background", 3 / 64)])
def test_nothing_to_split(case, min_mass):
    hard = TWO_PIECES.copy()
    k = 4
    if case == "connected":
        hard[7] = 0  # slot 1 keeps only its top-left region
    if case == "no free slot":
        hard[3, 3], k = 3, 4  # a fourth slot takes one pixel, so no slot is pruned
    if case == "background":  # the heaviest slot is cut in two by a wall of slot 2; it is never split
        hard = np.zeros((H, W), int)
        hard[:, 4] = 2
        hard[0, 0:2] = 1
    lam, q, g, index, mask = problem(hard, k=k)
    lam2, q2, splits = split_disconnected(lam, q, g, index, mask, (H, W), tau=1e-3, min_mass=min_mass)
    assert splits.tolist() == [0] and torch.equal(lam2, lam) and torch.equal(q2, q)


def test_padding_and_batch_rows_are_independent():
    """A padded observation changes nothing; each image of a batch is split on its own."""
    a = problem(TWO_PIECES)
    b = problem(np.where(TWO_PIECES == 1, 0, TWO_PIECES), seed=1)
    lam = torch.cat([a[0], b[0]])
    q = torch.cat([a[1], torch.cat([b[1][:, :-1], torch.rand(1, 1, 4, dtype=torch.float64)], 1)])
    g = torch.cat([a[2], b[2]])
    index = torch.cat([a[3], a[3]])
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[1, -1] = False  # image 1: its last pixel is padding
    lam2, q2, splits = split_disconnected(lam, q, g, index, mask, (H, W), tau=0.03, min_mass=3 / 64)
    single = split_disconnected(*a, (H, W), tau=0.03, min_mass=3 / 64)
    assert splits.tolist() == [1, 0]
    assert torch.allclose(lam2[0], single[0][0]) and torch.equal(q2[0], single[1][0])
    assert torch.equal(lam2[1], lam[1])


def test_bad_shapes_are_named():
    lam, q, g, index, mask = problem(TWO_PIECES)
    with pytest.raises(ValueError, match=r"q \[B, N, K\]"):
        split_disconnected(lam, q[:, :, :3], g, index, mask, (H, W), tau=0.03, min_mass=0.05)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=64, max_size=64), st.integers(0, 10))
def test_split_keeps_q_a_distribution_and_only_adds_slots(cells, seed):
    """On any layout: q rows still sum to one, π sums to one, the ARD count never falls and rises by
    exactly the number of splits, and the true-segmentation regions assigned to the new slots were
    separate regions of their old slot."""
    hard = np.array(cells).reshape(H, W)
    lam, q, g, index, mask = problem(hard, k=6, seed=seed)
    lam2, q2, splits = split_disconnected(lam, q, g, index, mask, (H, W), tau=1e-3, min_mass=2 / 64)
    assert torch.allclose(q2.sum(-1), torch.ones(1, 64, dtype=q.dtype))
    assert torch.isclose(unpack(lam2).pi.sum(), torch.tensor(1.0, dtype=q.dtype))
    before, after = active_slots(lam, 1e-3).sum(), active_slots(lam2, 1e-3).sum()
    assert after - before == splits.item() >= 0
