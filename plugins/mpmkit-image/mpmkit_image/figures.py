"""Fig. 4 (image, reconstruction, per-slot alpha masks) and Fig. 5 (global clusters) of the paper."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SLOT_COLOURS = np.array([[0.9, 0.6, 0.0], [0.35, 0.7, 0.9], [0.0, 0.6, 0.5], [0.95, 0.9, 0.25],
                         [0.0, 0.45, 0.7], [0.8, 0.4, 0.0], [0.8, 0.6, 0.7], [0.5, 0.5, 0.5]])


def _img(a: np.ndarray) -> np.ndarray:
    hw = a.shape[0]
    side = int(round(hw ** 0.5))
    return np.clip(a.reshape(side, side, *a.shape[1:]), 0, 1)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def segmentation_figure(path: Path, res: dict, metrics: dict, rows: int = 5) -> Path:
    """Per row: image, reconstruction, segmentation (argmax), and each slot's mask (alpha or q)."""
    plt = _plt()
    rows = min(rows, len(res["image"]))
    k = res["masks"].shape[-1]
    cols = 3 + k
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
    for i in range(rows):
        seg = SLOT_COLOURS[res["pred"][i] % len(SLOT_COLOURS)]
        panels = [_img(res["image"][i]), _img(res["recon"][i]), _img(seg)]
        panels += [_img(res["masks"][i][:, s:s + 1] * res["image"][i] + (1 - res["masks"][i][:, s:s + 1]) * 0.15)
                   for s in range(k)]
        titles = ["image", "reconstruction", "segmentation"] + [f"slot {s}" for s in range(k)]
        for j, (ax, p) in enumerate(zip(axes[i], panels)):
            ax.imshow(p, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if j >= 3:
                for side in ax.spines.values():
                    side.set_edgecolor(SLOT_COLOURS[(j - 3) % len(SLOT_COLOURS)])
                    side.set_linewidth(3)
            if i == 0:
                ax.set_title(titles[j], fontsize=8)
    fig.suptitle(f"{metrics.get('model', '')}: FG-ARI {metrics['fg_ari']:.1f}, MSE {metrics['mse']:.4f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def clusters_figure(path: Path, res: dict, seed: int = 0, clusters: int = 8, top: int = 5,
                    max_slots: int = 600) -> Path:
    """Responsibilities r_ikl, the ``top`` objects per most-used global cluster, t-SNE of slots by cluster."""
    plt = _plt()
    r, lam, masks, images = res["r"], res["lam"], res["masks"], res["image"]
    n, k, L = r.shape
    usage = r.sum((0, 1))
    order = np.argsort(-usage)[:clusters]
    fig = plt.figure(figsize=(15, 6))
    # (a) responsibilities of the first images' slots over the used clusters
    ax = fig.add_axes([0.03, 0.1, 0.2, 0.8])
    show = min(8, n)
    used = np.argsort(-usage)[: max(clusters, 12)]
    ax.imshow(r[:show, :, used].reshape(show * k, -1), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("global cluster l (most used first)")
    ax.set_ylabel("slot k of images 0..%d" % (show - 1))
    ax.set_title("responsibilities r_ikl", fontsize=9)
    # (b) top objects per cluster: image × the slot's mask
    gx0, gw = 0.27, 0.38
    for c_i, l in enumerate(order):
        flat = r[:, :, l].ravel()
        best = np.argsort(-flat)[:top]
        for t_i, idx in enumerate(best):
            i, s = divmod(int(idx), k)
            obj = masks[i][:, s:s + 1] * images[i]
            a = fig.add_axes([gx0 + t_i * gw / top, 0.9 - (c_i + 1) * 0.8 / clusters, gw / top * 0.95,
                              0.8 / clusters * 0.95])
            a.imshow(_img(obj), interpolation="nearest")
            a.set_xticks([]), a.set_yticks([])
            for side in a.spines.values():
                side.set_edgecolor(plt.cm.tab10(c_i % 10))
                side.set_linewidth(2)
            if t_i == 0:
                a.set_ylabel(f"l={l}", fontsize=7)
    fig.text(gx0 + gw / 2, 0.93, f"top {top} objects per global cluster", ha="center", fontsize=9)
    # (c) t-SNE of slot embeddings, coloured by argmax_l r_ikl
    ax = fig.add_axes([0.7, 0.1, 0.28, 0.8])
    x = lam.reshape(n * k, -1)
    lab = r.reshape(n * k, L).argmax(-1)
    if len(x) > max_slots:
        sel = np.random.default_rng(seed).choice(len(x), max_slots, replace=False)
        x, lab = x[sel], lab[sel]
    if len(x) >= 5:
        from sklearn.manifold import TSNE

        emb = TSNE(2, perplexity=min(30, max(2, len(x) // 4)), init="pca", random_state=seed).fit_transform(x)
        rank = {int(l): i for i, l in enumerate(order)}
        colours = [plt.cm.tab10(rank[int(l)] % 10) if int(l) in rank else (0.7, 0.7, 0.7, 1.0) for l in lab]
        ax.scatter(emb[:, 0], emb[:, 1], c=colours, s=6)
    ax.set_title("t-SNE of slots μ_ik (colour: argmax_l r_ikl; grey: other clusters)", fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def samples_figure(path: Path, samples: np.ndarray, real: np.ndarray) -> Path:
    """Scenes decoded from slot sets drawn from the aggregate posterior (top) beside training
    images (bottom), ``[n, H, W, 3]`` each."""
    plt = _plt()
    n = len(samples)
    fig, axes = plt.subplots(2, n, figsize=(1.5 * n, 3.3), squeeze=False)
    for j in range(n):
        for row, (imgs, name) in enumerate(((samples, "sampled"), (real, "training"))):
            ax = axes[row, j]
            if j < len(imgs):
                ax.imshow(np.clip(imgs[j], 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name)
    fig.suptitle("new scenes: slot sets drawn from the aggregate posterior, decoded")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
