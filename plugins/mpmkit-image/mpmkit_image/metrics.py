"""Segmentation metrics: ARI and foreground ARI (FG-ARI), as the paper reports them.

FG-ARI, per image: drop the pixels whose ground-truth label is the image's most
frequent ground-truth label (the background; ties go to the smallest label),
then take scikit-learn's ``adjusted_rand_score`` between the ground-truth
object ids and the predicted slot ids on the remaining pixels. The reported
number is the mean over images times 100.

Edge cases follow scikit-learn exactly (the fast path reproduces them):

- one foreground object: the true labels are constant, so the ARI is 1.0 if
  the prediction is constant on those pixels and 0.0 otherwise;
- no foreground pixel left, or a single one: 1.0 (sklearn's "empty data or
  full agreement" case).

Inputs may be numpy arrays or torch tensors. ``pred`` holds integer slot ids,
shape [B, H, W] or [B, N]. ``true`` holds integer ids with as many pixels per
image (in any layout, e.g. [B, H, W]), or entity masks [B, E, H, W] /
[B, E, H, W, 1] (the official layout), turned into ids by an argmax over
entities.
"""

from __future__ import annotations

import numpy as np

_MAX_CELLS = 1 << 24  # contingency-table entries per chunk of images


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_label_pairs(true, pred) -> tuple[np.ndarray, np.ndarray]:
    """Flatten to integer label arrays ``(true, pred)`` of shape [B, N]."""
    true, pred = _numpy(true), _numpy(pred)
    b = pred.shape[0] if pred.ndim else -1
    if true.ndim < 1 or true.shape[0] != b:
        raise ValueError(f"ground truth of shape {true.shape} and predictions of shape {pred.shape} differ in batch size")
    if b == 0:
        raise ValueError("no images to score")
    if true.size == pred.size:  # ids, possibly in another pixel layout
        true = true.reshape(b, -1)
    elif true.ndim >= 3 and true.size == pred.size * true.shape[1]:  # entity masks
        true = true.reshape(b, true.shape[1], -1).argmax(axis=1)
    else:
        raise ValueError(f"cannot match ground truth of shape {true.shape} to predictions of shape {pred.shape}")
    for name, a in (("true", true), ("pred", pred)):
        if a.dtype.kind not in "iub":
            raise ValueError(f"{name} labels must be integers, got dtype {a.dtype}")
    return true.reshape(b, -1).astype(np.int64), pred.reshape(b, -1).astype(np.int64)


def _background(true: np.ndarray) -> np.ndarray:
    """Most frequent label per row of ``true`` (remapped to 0..K-1)."""
    b, k = true.shape[0], int(true.max()) + 1 if true.size else 1
    counts = np.bincount((np.arange(b)[:, None] * k + true).ravel(), minlength=b * k).reshape(b, k)
    return counts.argmax(axis=1)


def _ari_chunk(t: np.ndarray, p: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Per-row ARI of remapped labels ``t``, ``p`` over the pixels where ``keep``."""
    b = t.shape[0]
    kt, kp = int(t.max()) + 1, int(p.max()) + 1
    idx = ((np.arange(b)[:, None] * kt + t) * kp + p)[keep]
    cont = np.bincount(idx, minlength=b * kt * kp).reshape(b, kt, kp).astype(np.int64)
    n = cont.sum(axis=(1, 2))
    if n.size and n.max() >= 50_000:  # pair counts would overflow int64: use Python ints
        cont, n = cont.astype(object), n.astype(object)
    ss = (cont * cont).sum(axis=(1, 2))
    rows, cols = cont.sum(axis=2), cont.sum(axis=1)
    tp = ss - n
    fp = (cols * cols).sum(axis=1) - ss
    fn = (rows * rows).sum(axis=1) - ss
    tn = n * n - fp - fn - ss
    out = np.ones(b)
    for i in np.flatnonzero((fn != 0) | (fp != 0)):  # same formula and special case as sklearn
        tp_, tn_, fp_, fn_ = int(tp[i]), int(tn[i]), int(fp[i]), int(fn[i])
        out[i] = 2.0 * (tp_ * tn_ - fn_ * fp_) / ((tp_ + fn_) * (fn_ + tn_) + (tp_ + fp_) * (fp_ + tn_))
    return out


def ari_scores(true, pred, foreground_only: bool = False, method: str = "fast") -> np.ndarray:
    """Per-image ARI in [-1, 1]; ``foreground_only`` drops each image's background.

    ``method="sklearn"`` loops over images with ``adjusted_rand_score``; the
    default ``"fast"`` computes all contingency tables at once, same values.
    """
    t, p = as_label_pairs(true, pred)
    if method == "sklearn":
        return _sklearn_scores(t, p, foreground_only)
    if method != "fast":
        raise ValueError(f"unknown method {method!r}; use 'fast' or 'sklearn'")
    out = np.empty(t.shape[0])
    step = 1
    if t.size:
        _, t_all = np.unique(t, return_inverse=True)
        _, p_all = np.unique(p, return_inverse=True)
        t, p = t_all.reshape(t.shape), p_all.reshape(p.shape)
        step = max(1, _MAX_CELLS // max(1, (int(t.max()) + 1) * (int(p.max()) + 1)))
    for a in range(0, t.shape[0], step):
        tc, pc = t[a:a + step], p[a:a + step]
        keep = np.ones(tc.shape, bool) if not foreground_only else tc != _background(tc)[:, None]
        out[a:a + step] = _ari_chunk(tc, pc, keep) if tc.size else 1.0
    return out


def _sklearn_scores(t: np.ndarray, p: np.ndarray, foreground_only: bool) -> np.ndarray:
    from sklearn.metrics import adjusted_rand_score

    out = np.empty(t.shape[0])
    for i, (ti, pi) in enumerate(zip(t, p)):
        if foreground_only and ti.size:
            labels, counts = np.unique(ti, return_counts=True)
            fg = ti != labels[counts.argmax()]
            ti, pi = ti[fg], pi[fg]
        out[i] = adjusted_rand_score(ti, pi)
    return out


def fg_ari(true, pred, method: str = "fast") -> float:
    """Foreground ARI: mean over images of the ARI without background pixels, x100."""
    return float(ari_scores(true, pred, foreground_only=True, method=method).mean() * 100)


def ari(true, pred, method: str = "fast") -> float:
    """ARI over all pixels: mean over images, x100."""
    return float(ari_scores(true, pred, foreground_only=False, method=method).mean() * 100)
