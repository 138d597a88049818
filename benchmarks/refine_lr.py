"""FG-ARI of a trained tetrominoes run against test-time refinement steps and step size (``MPM.refine``).

Chooses ``eval_refine_lr`` on the validation split (the test split stays for the final evaluation):

    python benchmarks/refine_lr.py runs/long/s44 --images 100 --lrs 0.05 0.1 0.15 --marks 0 30 100

prints FG-ARI (REFERENCE protocol, alpha masks) for every (lr, steps) on the first ``--images`` images.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mpmkit.runs import open_run
from mpmkit_image.data import collate
from mpmkit_image.metrics import ari_scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="run directory of a tetrominoes run")
    ap.add_argument("--checkpoint", default="best", choices=["best", "latest"])
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.05, 0.1, 0.15])
    ap.add_argument("--marks", type=int, nargs="+", default=[0, 30, 100], help="refinement steps to score at")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    run = open_run(args.run, args.checkpoint)
    model, cfg = run.model.eval(), run.cfg
    scenes = getattr(run.splits, args.split)[: args.images]
    marks = sorted(set(args.marks))
    scores: dict[tuple[float, int], list[np.ndarray]] = {(lr, m): [] for lr in args.lrs for m in marks}
    t0 = time.perf_counter()
    for i in range(0, len(scenes), 100):
        batch = collate(scenes[i:i + 100])
        labels = batch.extras["labels"].numpy()
        with torch.no_grad():
            inf = model.infer(batch, steps=cfg.family.eval_inner_steps or cfg.inner_steps)
        for lr in args.lrs:
            for m in marks:  # each mark refines from Λ^T, as the evaluation does (best-ELBO Λ per image)
                out = model.refine(batch, inf, m, lr)
                with torch.no_grad():
                    _, masks = model.likelihood.masks(batch.x, out.lam, out.q)
                scores[(lr, m)].append(ari_scores(labels, masks.argmax(-1).numpy(), foreground_only=True))
    print(f"{args.run} ({args.checkpoint}), first {len(scenes)} {args.split} images, {time.perf_counter() - t0:.0f} s")
    print("lr     " + "".join(f"{m:>9d}" for m in marks) + "   (refinement steps)")
    for lr in args.lrs:
        print(f"{lr:<7g}" + "".join(f"{np.concatenate(scores[(lr, m)]).mean() * 100:9.2f}" for m in marks))


if __name__ == "__main__":
    main()
