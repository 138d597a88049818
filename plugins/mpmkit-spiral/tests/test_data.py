"""The spiral-GMM generator: determinism, shapes, labels, T applied, splits, collate, registration."""

import numpy as np
import pytest
import torch

from mpmkit_spiral.data import collate, generate, spiral_inverse, spiral_map, split


def test_generator_is_deterministic_by_seed():
    a, b, c = generate(6, seed=3), generate(6, seed=3), generate(6, seed=4)
    for d, e in zip(a, b):
        for f in ("x", "labels", "latent", "centres"):
            np.testing.assert_array_equal(getattr(d, f), getattr(e, f))
    assert not np.allclose(a[0].centres, c[0].centres)


def test_shapes_labels_and_variable_sizes():
    ds = generate(40, seed=0, num_clusters=5, points=50, points_min=10)
    sizes = {len(d) for d in ds}
    assert min(sizes) >= 10 and max(sizes) <= 50 and len(sizes) > 5
    for d in ds:
        n = len(d)
        assert d.x.shape == (n, 2) and d.x.dtype == np.float32
        assert d.latent.shape == (n, 2) and d.labels.shape == (n,) and d.labels.dtype == np.int64
        assert d.centres.shape == (5, 2)
        assert d.labels.min() >= 0 and d.labels.max() < 5
    fixed = generate(3, seed=0, points=17)
    assert all(len(d) == 17 for d in fixed)


def test_observations_are_the_latent_points_through_T():
    (d,) = generate(1, seed=1, alpha=0.7, beta=-0.3)
    np.testing.assert_allclose(d.x, spiral_map(d.latent, 0.7, -0.3), atol=1e-5)
    np.testing.assert_allclose(spiral_inverse(d.x, 0.7, -0.3), d.latent, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d.x, axis=1), np.linalg.norm(d.latent, axis=1), rtol=1e-5)


def test_clusters_are_separated_in_latent_space():
    """Centre cluster near 0, arms on the ring r_min..r_max: the latent clusters sit apart."""
    for d in generate(50, seed=2, r_min=2.5, r_max=5.0, noise=0.5):
        r = np.linalg.norm(d.centres, axis=1)
        assert r[0] < 1.5 and (r[1:] >= 2.5).all() and (r[1:] <= 5.0).all()
        dist = np.linalg.norm(d.centres[:, None] - d.centres[None], axis=-1)
        assert dist[np.triu_indices(len(dist), 1)].min() > 1.0


def test_split_and_collate_pad_with_masks():
    ds = generate(10, seed=0, points=30, points_min=5)
    train, val, test = split(ds, 2, 3)
    assert (len(train), len(val), len(test)) == (5, 2, 3) and test[-1] is ds[-1]
    batch = collate(test)
    n = [len(d) for d in test]
    assert batch.x.shape == (3, max(n), 2) and batch.mask.sum(1).tolist() == n
    for i, d in enumerate(test):
        np.testing.assert_array_equal(batch.extras["labels"][i, :n[i]].numpy(), d.labels)
        assert (batch.extras["labels"][i, n[i]:] == -1).all()
        assert torch.equal(batch.x[i, :n[i]], torch.from_numpy(d.x))
    with pytest.raises(ValueError):
        split(ds, 5, 5)


def test_plugin_registers_family_and_dataset_through_entry_point():
    from mpmkit import registry

    fam = registry("family").get("spiral-gmm")
    assert fam.name == "spiral-gmm"
    assert registry("family").entry("spiral-gmm").plugin == "spiral"
    ds = registry("dataset").get("spiral")(3, seed=0, points=8)
    assert len(ds) == 3 and ds[0].x.shape == (8, 2)
