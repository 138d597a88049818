"""FG-ARI and ARI: hand-computed cases, sklearn's edge cases, fast path == sklearn loop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import adjusted_rand_score

from mpmkit_image import metrics as M
from mpmkit_image import tetrominoes as tet

# Background label 9 on 5 pixels; foreground true [1, 1, 2, 3] vs predicted [0, 0, 1, 1].
# Contingency {1:{0:2}, 2:{1:1}, 3:{1:1}}: sum C(n_ij,2) = 1, rows 1, cols 2, C(4,2) = 6,
# expected = 1*2/6 = 1/3, max = 3/2, ARI = (1 - 1/3) / (3/2 - 1/3) = 4/7.
TRUE = np.array([[[9, 9, 9], [1, 1, 2], [3, 9, 9]]])
PRED = np.array([[[5, 4, 3], [0, 0, 1], [1, 2, 2]]])


def test_hand_computed_fg_ari():
    assert M.fg_ari(TRUE, PRED) == pytest.approx(100 * 4 / 7)
    assert M.fg_ari(TRUE, PRED, method="sklearn") == pytest.approx(100 * 4 / 7)
    two_true, two_pred = np.concatenate([TRUE, TRUE]), np.concatenate([PRED, TRUE + 1])
    assert M.fg_ari(two_true, two_pred) == pytest.approx((100 * 4 / 7 + 100) / 2)


def test_background_prediction_is_ignored_by_fg_ari_only():
    other = PRED.copy()
    other[TRUE == 9] = 0  # merge the background into a foreground slot
    assert M.fg_ari(TRUE, other) == M.fg_ari(TRUE, PRED)
    assert M.ari(TRUE, other) != M.ari(TRUE, PRED)
    assert M.ari(TRUE, PRED) == pytest.approx(100 * adjusted_rand_score(TRUE.ravel(), PRED.ravel()))


def test_masks_and_labels_agree_and_perfect_is_100():
    data = tet.generate(8, seed=0)
    labels = tet.labels_from_masks(data["mask"])
    rng = np.random.default_rng(0)
    relabelled = rng.permutation(10)[labels]  # slot ids are arbitrary
    assert M.fg_ari(data["mask"], relabelled) == 100.0
    assert M.fg_ari(data["mask"][..., 0], relabelled) == 100.0
    assert M.fg_ari(labels, relabelled) == 100.0
    assert M.ari(labels, relabelled.reshape(8, -1)) == 100.0


def test_edge_cases_follow_sklearn():
    bg = np.zeros((1, 4, 4), int)
    one = bg.copy()
    one[0, :2, :2] = 1  # a single foreground object
    pred_const = np.zeros_like(one)
    pred_split = pred_const.copy()
    pred_split[0, 0, 0] = 3
    assert adjusted_rand_score([1, 1, 1, 1], [0, 3, 0, 0]) == 0.0  # sklearn: constant truth -> 0
    assert M.fg_ari(one, pred_const) == 100.0
    assert M.fg_ari(one, pred_split) == 0.0
    assert M.fg_ari(bg, pred_split) == 100.0  # no foreground: sklearn returns 1.0 on empty input
    single = bg.copy()
    single[0, 0, 0] = 1  # a single foreground pixel
    assert M.fg_ari(single, pred_split) == 100.0
    for t, p in [(one, pred_const), (one, pred_split), (bg, pred_split), (single, pred_split)]:
        assert M.fg_ari(t, p) == M.fg_ari(t, p, method="sklearn")


def test_background_ties_go_to_smallest_label():
    t = np.array([[[4, 4, 2, 2, 7]]])
    p = np.array([[[0, 1, 0, 0, 1]]])
    # Ties between 2 and 4: label 2 is the background, leaving [4, 4, 7] vs [0, 1, 1].
    assert M.fg_ari(t, p) == pytest.approx(100 * adjusted_rand_score([4, 4, 7], [0, 1, 1]))
    assert M.fg_ari(t, p) == M.fg_ari(t, p, method="sklearn")


def test_fast_equals_sklearn_on_random_data():
    rng = np.random.default_rng(1)
    true = rng.choice(4, size=(50, 12, 12), p=[0.6, 0.2, 0.1, 0.1])
    noisy = np.where(rng.random(true.shape) < 0.3, rng.integers(0, 7, true.shape), true + 10)
    for pred in (noisy, rng.integers(-3, 1000, true.shape)):
        for fg in (True, False):
            fast = M.ari_scores(true, pred, foreground_only=fg)
            slow = M.ari_scores(true, pred, foreground_only=fg, method="sklearn")
            np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_torch_tensors_accepted():
    torch = pytest.importorskip("torch")
    assert M.fg_ari(torch.from_numpy(TRUE), torch.from_numpy(PRED)) == pytest.approx(100 * 4 / 7)


def test_bad_inputs_rejected():
    with pytest.raises(ValueError):
        M.fg_ari(TRUE, PRED[:, :2])
    with pytest.raises(ValueError):
        M.fg_ari(TRUE, PRED.astype(float))
    with pytest.raises(ValueError):
        M.fg_ari(TRUE[:0], PRED[:0])
    with pytest.raises(ValueError):
        M.ari_scores(TRUE, PRED, method="nope")


@settings(max_examples=80, deadline=None)
@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 4), st.integers(0, 12)), elements=st.integers(0, 3)),
       st.integers(0, 2**32 - 1))
def test_fuzz_fast_equals_sklearn(true, seed):
    pred = np.random.default_rng(seed).integers(0, 4, true.shape)
    for fg in (True, False):
        fast = M.ari_scores(true, pred, foreground_only=fg)
        slow = M.ari_scores(true, pred, foreground_only=fg, method="sklearn")
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
