"""Seeded train / validation / test splits, one random split per seed as in the paper."""

from __future__ import annotations

import numpy as np


def split_indices(n: int, seed: int, fractions=(0.8, 0.1, 0.1)) -> tuple[np.ndarray, ...]:
    """Partition ``range(n)`` at random into parts of the given ``fractions``.

    Deterministic in ``seed``; each part is returned sorted. Sizes are rounded
    down to whole items except the last part, which takes the remainder (so
    10,000 items give 8,000 / 1,000 / 1,000).
    """
    fractions = tuple(float(f) for f in fractions)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if not fractions or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    # Small epsilon so that e.g. 0.1 * 10 counts as 1, not 0.999...
    sizes = [int(np.floor(f * n + 1e-9)) for f in fractions[:-1]]
    bounds = np.cumsum([0, *sizes, n - sum(sizes)])
    return tuple(np.sort(perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
