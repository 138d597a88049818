"""Clustering metrics shared by families."""
from __future__ import annotations

import numpy as np


def adjusted_rand_index(pred, truth, mask=None) -> float:
    """Mean ARI over datasets. ``pred``/``truth``: ``[B, N]`` labels; ``mask`` selects observations."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred has shape {pred.shape} but truth has {truth.shape}")
    if pred.ndim == 1:
        pred, truth = pred[None], truth[None]
        mask = None if mask is None else np.asarray(mask)[None]
    from sklearn.metrics import adjusted_rand_score  # imported here: keeps `mpmkit` CLI start-up fast

    scores = []
    for i in range(pred.shape[0]):
        sel = slice(None) if mask is None else np.asarray(mask[i], dtype=bool)
        scores.append(adjusted_rand_score(truth[i][sel], pred[i][sel]))
    return float(np.mean(scores))


def match_slots(cost: np.ndarray) -> np.ndarray:
    """Per-input slot permutation minimising ``cost [M, K, K]`` (Hungarian); ``perm[i, k]`` is the
    slot of run b matched to slot k of run a."""
    from scipy.optimize import linear_sum_assignment

    perm = np.empty(cost.shape[:2], dtype=np.int64)
    for i, c in enumerate(cost):
        rows, cols = linear_sum_assignment(c)
        perm[i, rows] = cols
    return perm


def _affine_fit(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least-squares W with b ≈ [a, 1] W."""
    a1 = np.concatenate([a, np.ones((len(a), 1))], 1)
    return np.linalg.lstsq(a1, b, rcond=None)[0]


def _affine_apply(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.ones((len(a), 1))], 1) @ w


def smcc(slots_a, slots_b, q_a=None, q_b=None, rounds: int = 10, min_mass: float = 0.0) -> float:
    """Slot mean correlation coefficient between two runs' slots for the same inputs (PSA, Kori et al.).

    ``slots_a [M, K, Da]``, ``slots_b [M, K, Db]``. Slots are matched per input — by the overlap of
    the observations they explain when ``q_a``/``q_b`` ``[M, N, K]`` are given, otherwise by
    alternating an affine fit and Hungarian matching — then an affine map a → b is fitted on half
    of the inputs and SMCC is the mean, over b's dimensions, of the Pearson correlation between
    mapped and actual slots on the other half (all inputs when M < 4). 1 = identical up to an
    affine map and a permutation of slots.

    ``min_mass > 0`` (needs ``q_a``/``q_b``) leaves out matched pairs in which either slot explains
    less than that fraction of an input's observations: a pruned or empty slot has no data to be
    identified by, so its vector says nothing about identifiability.
    """
    a, b = np.asarray(slots_a, np.float64), np.asarray(slots_b, np.float64)
    if a.ndim != 3 or b.ndim != 3 or a.shape[:2] != b.shape[:2]:
        raise ValueError(f"smcc expects slots [M, K, D] for the same M inputs and K slots, got "
                         f"{a.shape} and {b.shape}")
    m, k = a.shape[:2]
    if q_a is not None and q_b is not None:
        qa, qb = np.asarray(q_a, np.float64), np.asarray(q_b, np.float64)
        perm = match_slots(-np.einsum("mnk,mnl->mkl", qa, qb))
    else:
        perm = np.tile(np.arange(k), (m, 1))
        for _ in range(rounds):
            bm = np.take_along_axis(b, perm[..., None], 1)
            w = _affine_fit(a.reshape(m * k, -1), bm.reshape(m * k, -1))
            pred = _affine_apply(w, a.reshape(m * k, -1)).reshape(m, k, -1)
            new = match_slots(((pred[:, :, None] - b[:, None]) ** 2).sum(-1))
            if np.array_equal(new, perm):
                break
            perm = new
    bm = np.take_along_axis(b, perm[..., None], 1)
    keep = np.ones((m, k), bool)
    if min_mass > 0:
        if q_a is None or q_b is None:
            raise ValueError("smcc's min_mass needs q_a and q_b (the observations each slot explains)")
        mass_a, mass_b = qa.sum(1) / qa.shape[1], qb.sum(1) / qb.shape[1]  # [M, K]
        keep = (mass_a >= min_mass) & (np.take_along_axis(mass_b, perm, 1) >= min_mass)
    fit, ev = (np.arange(m) % 2 == 0, np.arange(m) % 2 == 1) if m >= 4 else (np.ones(m, bool),) * 2
    fit_rows, ev_rows = keep & fit[:, None], keep & ev[:, None]
    if fit_rows.sum() <= a.shape[-1] or ev_rows.sum() < 2:
        raise ValueError(f"smcc: too few slot pairs left ({int(fit_rows.sum())} to fit, {int(ev_rows.sum())} to "
                         f"score) with min_mass={min_mass}; lower min_mass or give more inputs")
    w = _affine_fit(a[fit_rows], bm[fit_rows])
    pred = _affine_apply(w, a[ev_rows])
    true = bm[ev_rows]
    pc, tc = pred - pred.mean(0), true - true.mean(0)
    denom = np.sqrt((pc**2).sum(0) * (tc**2).sum(0))
    corr = np.where(denom > 0, (pc * tc).sum(0) / np.where(denom > 0, denom, 1), 0.0)
    return float(np.mean(corr))
