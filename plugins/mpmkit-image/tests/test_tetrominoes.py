"""The Tetrominoes generator: layout, the 19 pieces, consistency, seeding and the cache."""

import itertools

import numpy as np
import pytest

from mpmkit_image import tetrominoes as tet

N = 64


@pytest.fixture(scope="module")
def scenes():
    return tet.generate(N, seed=0)


def _normalise(cells):
    r0 = min(r for r, _ in cells)
    c0 = min(c for _, c in cells)
    return frozenset((r - r0, c - c0) for r, c in cells)


def _connected(cells):
    cells = set(cells)
    seen, todo = set(), [next(iter(cells))]
    while todo:
        r, c = todo.pop()
        if (r, c) in seen:
            continue
        seen.add((r, c))
        todo += [n for n in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if n in cells]
    return seen == cells


def test_layout_matches_official_schema(scenes):
    expected = {
        "image": ((N, 35, 35, 3), np.uint8),
        "mask": ((N, 4, 35, 35, 1), np.uint8),
        "x": ((N, 4), np.float32),
        "y": ((N, 4), np.float32),
        "shape": ((N, 4), np.float32),
        "visibility": ((N, 4), np.float32),
        "color": ((N, 4, 3), np.float32),
    }
    assert set(scenes) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert scenes[key].shape == shape, key
        assert scenes[key].dtype == dtype, key


def test_exactly_the_19_fixed_tetrominoes():
    assert len(tet.SHAPES) == 19 == len(set(tet.SHAPE_NAMES))
    assert all(len(s) == 4 for s in tet.SHAPES)
    ours = {_normalise(s) for s in tet.SHAPES}
    assert len(ours) == 19  # distinct up to translation
    # Brute force: every connected 4-cell set in a 4x4 box, up to translation.
    box = list(itertools.product(range(4), range(4)))
    every = {_normalise(c) for c in itertools.combinations(box, 4) if _connected(c)}
    assert ours == every
    counts = {letter: sum(n[0] == letter for n in tet.SHAPE_NAMES) for letter in "IOTSZJL"}
    assert counts == {"I": 2, "O": 1, "T": 4, "S": 2, "Z": 2, "J": 4, "L": 4}


def test_templates_use_5px_cells():
    for i, cells in enumerate(tet.SHAPES):
        t = tet.shape_template(i)
        assert t.sum() == 4 * tet.CELL**2
        assert max(t.shape) <= 4 * tet.CELL and min(t.shape) >= tet.CELL
        for r, c in cells:
            assert t[r * 5:(r + 1) * 5, c * 5:(c + 1) * 5].all()


def test_masks_partition_pixels_and_match_image(scenes):
    mask = scenes["mask"][..., 0].astype(int)
    assert set(np.unique(mask)) <= {0, 255}
    assert (mask.sum(axis=1) == 255).all()  # every pixel owned by exactly one entity
    owner = tet.labels_from_masks(scenes["mask"])
    colour = np.round(scenes["color"] * 255).astype(np.uint8)  # [N, E, 3]
    expected = np.take_along_axis(colour, owner.reshape(N, -1)[..., None], axis=1)
    assert (expected.reshape(scenes["image"].shape) == scenes["image"]).all()
    assert (scenes["image"][owner == 0] == 0).all()  # background is black
    assert (colour[:, 0] == 0).all()


def test_three_whole_pieces_per_scene(scenes):
    assert (scenes["visibility"] == 1).all()
    for i in range(N):
        for j in range(1, 4):
            m = scenes["mask"][i, j, :, :, 0] > 0
            assert m.sum() == 100  # 4 cells of 5x5: nothing hidden or clipped
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            crop = m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            s = int(scenes["shape"][i, j])
            assert scenes["shape"][i, j] == s
            assert np.array_equal(crop, tet.shape_template(s))
            assert scenes["x"][i, j] == pytest.approx((cols[0] + cols[-1] + 1) / 2 / 35)
            assert scenes["y"][i, j] == pytest.approx((rows[0] + rows[-1] + 1) / 2 / 35)
            assert tuple(np.round(scenes["color"][i, j] * 255)) in {tuple(c) for c in tet.COLORS}


def test_factors_cover_their_ranges():
    data = tet.generate(200, seed=1)
    fg = data["mask"][:, 1:, :, :, 0] > 0
    assert set(np.unique(data["shape"][:, 1:]).astype(int)) == set(range(19))
    colours = {tuple(c) for c in np.round(data["color"][:, 1:] * 255).reshape(-1, 3)}
    assert colours == {tuple(c) for c in tet.COLORS}
    # Pieces reach every edge of the canvas: placement is not restricted to a coarse grid.
    assert fg.any(axis=(0, 1))[0].any() and fg.any(axis=(0, 1))[-1].any()
    assert fg.any(axis=(0, 1))[:, 0].any() and fg.any(axis=(0, 1))[:, -1].any()
    tops = np.argmax(fg.any(axis=3), axis=2).ravel()
    assert len(np.unique(tops % tet.CELL)) == tet.CELL


def test_variable_object_count():
    data = tet.generate(60, seed=3, num_objects=(1, 4))
    assert data["mask"].shape == (60, 5, 35, 35, 1)
    counts = data["visibility"][:, 1:].sum(axis=1).astype(int)
    assert set(counts) == {1, 2, 3, 4}
    for i, k in enumerate(counts):
        assert (data["visibility"][i, 1:k + 1] == 1).all()
        assert not data["mask"][i, k + 1:].any()  # padded entities are empty
        assert (data["mask"][i].sum(axis=0, dtype=int) == 255).all()


def test_bad_object_count_rejected():
    for bad in (0, (3, 2), 7):
        with pytest.raises(ValueError):
            tet.generate(1, seed=0, num_objects=bad)


def test_deterministic_by_seed():
    a, b, c = tet.generate(10, 5), tet.generate(10, 5), tet.generate(10, 6)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["image"], c["image"])
    prefix = tet.generate(4, 5)
    assert all(np.array_equal(prefix[k], a[k][:4]) for k in a)


def test_cache_hit_returns_identical_arrays(tmp_path, monkeypatch):
    first = tet.load_or_generate(6, seed=2, cache_dir=tmp_path)
    path = tet.cache_path(6, 2, tmp_path)
    assert path.exists() and f"v{tet.GENERATOR_VERSION}" in path.name
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind

    def boom(*args, **kwargs):
        raise AssertionError("cache miss")

    monkeypatch.setattr(tet, "generate", boom)
    second = tet.load_or_generate(6, seed=2, cache_dir=tmp_path)
    assert all(np.array_equal(first[k], second[k]) and first[k].dtype == second[k].dtype for k in first)
    with pytest.raises(AssertionError):  # a different key is a miss
        tet.load_or_generate(6, seed=2, cache_dir=tmp_path, num_objects=(1, 4))


def test_cache_dir_from_environment_and_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MPMKIT_CACHE_DIR", str(tmp_path / "c"))
    assert tet.default_cache_dir() == tmp_path / "c"
    path = tet.cache_path(3, 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    data = tet.load_or_generate(3, 0)
    assert np.array_equal(data["image"], tet.generate(3, 0)["image"])
    assert np.load(path)["image"].shape == (3, 35, 35, 3)


def test_plugin_registers_dataset_and_metrics_through_hooks():
    import numpy as np
    import pytest

    mpmkit_plugins = pytest.importorskip("mpmkit.plugins")
    from mpmkit_image import plugin

    h = mpmkit_plugins.PluginHost()
    h.register(plugin, name="image-under-test")
    data = h["dataset"].get("tetrominoes")(4, seed=0, cache_dir=None)
    assert data["image"].shape == (4, 35, 35, 3)
    labels = np.array([[0, 0, 1, 1, 2]])
    assert h["metric"].get("fg-ari")(labels, labels) == 100.0
