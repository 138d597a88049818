"""Clustering metrics shared by families."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score


def adjusted_rand_index(pred, truth, mask=None) -> float:
    """Mean ARI over datasets. ``pred``/``truth``: ``[B, N]`` labels; ``mask`` selects observations."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred has shape {pred.shape} but truth has {truth.shape}")
    if pred.ndim == 1:
        pred, truth = pred[None], truth[None]
        mask = None if mask is None else np.asarray(mask)[None]
    scores = []
    for i in range(pred.shape[0]):
        sel = slice(None) if mask is None else np.asarray(mask[i], dtype=bool)
        scores.append(adjusted_rand_score(truth[i][sel], pred[i][sel]))
    return float(np.mean(scores))
