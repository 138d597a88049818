"""Does choosing among inner-loop restarts by the true ELBO raise FG-ARI? (``MPM.infer_restarts``)

    python benchmarks/refine_restarts.py runs/long/s44 --images 200 --restarts 4 --refine-steps 100

Run 0 starts at λ⁰, runs 1..R−1 at ``model.perturb(λ⁰)``; every run is refined (``MPM.refine``, lr
``--lr``) and scored by its true ELBO. Prints, for r = 1..R, the FG-ARI of the run the ELBO picks among
the first r, of the best run per image (an oracle that sees the labels) and of run r alone, on the
first ``--images`` validation images (the test split stays for the final evaluation).
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
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--refine-steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    run = open_run(args.run, "best")
    model, cfg = run.model.eval(), run.cfg
    scenes = run.splits.val[: args.images]
    gen = torch.Generator().manual_seed(0)
    fg, elbo = [], []
    t0 = time.perf_counter()
    for i in range(0, len(scenes), args.batch):
        batch = collate(scenes[i:i + args.batch])
        labels = batch.extras["labels"].numpy()
        lam0 = model.lambda0.detach().unsqueeze(0).expand(batch.size, -1, -1)
        row_fg, row_elbo = [], []
        for r in range(args.restarts):
            with torch.no_grad():
                inf = model.infer(batch, steps=cfg.family.eval_inner_steps or cfg.inner_steps,
                                  lam0=None if r == 0 else model.perturb(lam0, gen))
            inf = model.refine(batch, inf, args.refine_steps, args.lr)
            with torch.no_grad():
                row_elbo.append(model.elbo(batch, inf, beta=1.0).total.numpy())
                _, masks = model.likelihood.masks(batch.x, inf.lam, inf.q)
            row_fg.append(ari_scores(labels, masks.argmax(-1).numpy(), foreground_only=True))
        fg.append(np.stack(row_fg, 1))
        elbo.append(np.stack(row_elbo, 1))
        print(f"{i + batch.size} images, {time.perf_counter() - t0:.0f} s", flush=True)
    fg, elbo = np.concatenate(fg), np.concatenate(elbo)
    rows = np.arange(len(fg))
    print(f"{args.run}: first {len(fg)} validation images, {args.refine_steps} refinement steps at lr {args.lr}")
    for r in range(1, args.restarts + 1):
        pick = elbo[:, :r].argmax(1)
        print(f"R={r}: chosen by the true ELBO {fg[rows, pick].mean() * 100:6.2f}   oracle {fg[:, :r].max(1).mean() * 100:6.2f}"
              f"   run {r - 1} alone {fg[:, r - 1].mean() * 100:6.2f}")


if __name__ == "__main__":
    main()
