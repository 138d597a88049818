"""PSA's segmentation and ARD count before and after the connectivity split move, as a figure.

    python benchmarks/plot_psa_split.py runs/psa6/mix42 --out benchmarks/psa_split_segmentation.png

Takes the first ``--images`` test images of the run whose objects repeat a colour (where ARD alone
counts colours), runs the run's test-time inner loop once, and draws per image: the image, the
true objects, the segmentation by q^T (argmax) with its ARD count, and the same after
:func:`mpmkit_image.split.split_disconnected`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mpmkit.psa import active_slots  # noqa: E402
from mpmkit.runs import open_run  # noqa: E402
from mpmkit_image.family import TetrominoesFamily, colour_counts, infer_scenes, object_counts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--scan", type=int, default=200, help="test images searched for repeated colours")
    ap.add_argument("--out", default="benchmarks/psa_split_segmentation.png")
    args = ap.parse_args()
    torch.set_num_threads(1)

    run = open_run(args.run)
    cfg, o = run.cfg, run.cfg.family
    if o.local != "psa":
        raise SystemExit(f"{args.run} is not a PSA run (local={o.local!r}); the split move is PSA's")
    test = run.splits.test[: args.scan]
    steps = o.eval_inner_steps or cfg.inner_steps
    solver = TetrominoesFamily().eval_solver(cfg, run.model)
    res = infer_scenes(run.model, test, steps, solver=solver, split=o.ard_tau)  # before and after the split
    truth = object_counts(res["labels"])
    repeated = np.flatnonzero(colour_counts(res["image"], res["labels"]) < truth)[: args.images]
    side = int(round(res["image"].shape[1] ** 0.5))

    fig, axes = plt.subplots(len(repeated), 4, figsize=(8, 2.1 * len(repeated)), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for row, i in zip(axes, repeated):
        counts = {key: int(active_slots(torch.from_numpy(res[key][i: i + 1]), o.ard_tau).sum()) - 1
                  for key in ("lam_unsplit", "lam_full")}
        panels = [(res["image"][i].reshape(side, side, 3), "image"),
                  (cmap(res["labels"][i].reshape(side, side) % 10), f"truth: {truth[i]} objects"),
                  (cmap(res["pred_unsplit"][i].reshape(side, side) % 10), f"q^T: ARD {counts['lam_unsplit']}"),
                  (cmap(res["pred"][i].reshape(side, side) % 10), f"split: ARD {counts['lam_full']}")]
        for ax, (img, title) in zip(row, panels):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.suptitle(f"{Path(args.run).name}: test images with a repeated colour", fontsize=10)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"{len(repeated)} images -> {args.out}")


if __name__ == "__main__":
    main()
