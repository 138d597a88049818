"""The seeded 80/10/10 split."""

import numpy as np
import pytest

from mpmkit_image.splits import split_indices


def test_split_indices_partition_and_determinism():
    train, val, test = split_indices(10_000, seed=42)
    assert (len(train), len(val), len(test)) == (8000, 1000, 1000)
    joined = np.concatenate([train, val, test])
    assert np.array_equal(np.sort(joined), np.arange(10_000))
    again = split_indices(10_000, seed=42)
    other = split_indices(10_000, seed=43)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(test, other[2])
    assert [len(p) for p in split_indices(10, 0)] == [8, 1, 1]
    with pytest.raises(ValueError):
        split_indices(10, 0, fractions=(0.5, 0.6))
