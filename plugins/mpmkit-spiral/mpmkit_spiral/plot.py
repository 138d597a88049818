"""A Fig. 3-style figure: data by truth, MPM / GMM / VAE+GMM assignments, learned latent plane, learned T."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score

from .data import SpiralDataset


def align(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Relabel ``pred`` by the cluster matching that maximises agreement with ``truth`` (for colours only)."""
    from scipy.optimize import linear_sum_assignment

    k = int(max(pred.max(), truth.max())) + 1
    overlap = np.zeros((k, k))
    np.add.at(overlap, (pred, truth), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.arange(k)
    mapping[rows] = cols
    return mapping[pred]


def _scatter(ax, pts, labels, title):
    ax.scatter(pts[:, 0], pts[:, 1], c=labels, cmap="tab10", s=9, vmin=0, vmax=9, linewidths=0)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def spiral_figure(path: str | Path, test: Sequence[SpiralDataset], mpm: Sequence[np.ndarray],
                  gmm: Sequence[np.ndarray], vae: Sequence[np.ndarray] | None, latents: Sequence[np.ndarray], *,
                  alpha_true: float, beta_true: float, alpha_fit: float, beta_fit: float, metrics: dict,
                  index: int = 0) -> Path:
    """Write the figure for test dataset ``index`` (and the transform over all test points) to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    d = test[index]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    (a, b, c), (e, f, g) = axes
    _scatter(a, d.x, d.labels, "(a) data x, coloured by true cluster")
    _scatter(b, d.x, align(mpm[index], d.labels), f"(b) MPM, argmax q  (ARI {adjusted_rand_score(d.labels, mpm[index]):.2f})")
    _scatter(c, d.x, align(gmm[index], d.labels), f"(c) GMM in x-space  (ARI {adjusted_rand_score(d.labels, gmm[index]):.2f})")
    if vae is not None:
        _scatter(e, d.x, align(vae[index], d.labels), f"(d) VAE + GMM on latents  (ARI {adjusted_rand_score(d.labels, vae[index]):.2f})")
    else:
        e.set_axis_off()
    _scatter(f, latents[index], d.labels, "(e) learned latent T̂⁻¹(x), coloured by truth")

    # (f) rotation angle vs radius: x = u rotated by α r + β. Learned curve aligned to the true β.
    x_all, u_all = np.concatenate([t.x for t in test]), np.concatenate(latents)
    r = np.linalg.norm(x_all, axis=1)
    dtheta = np.arctan2(x_all[:, 1], x_all[:, 0]) - np.arctan2(u_all[:, 1], u_all[:, 0])
    resid = np.angle(np.exp(1j * (dtheta - beta_fit - alpha_fit * r)))
    sel = np.random.default_rng(0).choice(len(r), min(3000, len(r)), replace=False)
    grid = np.linspace(0, r.max(), 100)
    g.scatter(r[sel], (alpha_fit * r + resid + beta_true)[sel], s=3, c="0.6", label="learned T̂, per point")
    g.plot(grid, alpha_true * grid + beta_true, "k-", lw=2, label=f"true T: α={alpha_true:.3f}")
    g.plot(grid, alpha_fit * grid + beta_true, "r--", lw=2, label=f"learned T̂: α={alpha_fit:.3f}")
    g.set_xlabel("radius r")
    g.set_ylabel("rotation angle αr + β (rad, β aligned)")
    g.set_title("(f) learned vs true transformation", fontsize=9)
    g.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"spiral GMM, {metrics.get('transform')} T — mean test ARI: MPM {metrics['ari_mpm']:.3f}, "
                 f"GMM {metrics['ari_gmm']:.3f}, VAE+GMM {metrics['ari_vae_gmm']:.3f}", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def psa_samples_figure(path: str | Path, real: Sequence[SpiralDataset], sampled: Sequence[np.ndarray],
                       sampled_labels: Sequence[np.ndarray]) -> Path:
    """Real test datasets (top row) next to new datasets generated from the aggregate posterior (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(real), len(sampled))
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for i in range(n):
        _scatter(axes[0, i], real[i].x, real[i].labels, f"test dataset {i}")
        _scatter(axes[1, i], sampled[i], sampled_labels[i], f"sampled {i}")
    fig.suptitle("PSA: new datasets decoded from slots drawn from the aggregate posterior", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
