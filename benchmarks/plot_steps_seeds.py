"""Test FG-ARI of resumed tetrominoes runs against training steps, one line per seed, as a figure.

    python benchmarks/plot_steps_seeds.py runs/long runs/longer runs/longest \\
        --out benchmarks/tetrominoes_steps_seeds.png

Each argument is a folder of run directories ``sSEED`` (the same seeds resumed to more steps in the next
folder); every run needs ``mpmkit evaluate`` files on the 1,000 test images (see plot_refined_seeds.py).
Solid: refined (the largest ``eval_refine_steps`` evaluated); dotted: the inner loop's Λ where evaluated
(``--plain 43@37649=95.70`` supplies a value a run has no file for).
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from plot_refined_seeds import PAPER, TARGET, scores, trained_steps  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="folders of run directories sSEED, fewest steps first")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/tetrominoes_steps_seeds.png"))
    ap.add_argument("--plain", nargs="*", default=[],
                    help="SEED@STEPS=FG_ARI for runs evaluated unrefined before the option was recorded")
    args = ap.parse_args()
    refined: dict[int, list[tuple[int, float]]] = defaultdict(list)
    plain: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for folder in args.folders:
        runs = sorted(folder.glob("s[0-9]*/checkpoints/latest.json"))
        if not runs:
            raise SystemExit(f"{folder}: no run directories sSEED with checkpoints")
        for pointer in runs:
            run = pointer.parent.parent
            seed, s = scores(run)
            steps = trained_steps(run)
            refined[seed].append((steps, s[max(s)]))
            if 0 in s and max(s) > 0:
                plain[seed].append((steps, s[0]))
    for given in args.plain:
        key, value = given.split("=")
        seed, steps = (int(v) for v in key.split("@"))
        plain[seed].append((steps, float(value)))
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.axhspan(PAPER[0] - PAPER[1], PAPER[0] + PAPER[1], color="0.85", label=f"paper, additive MPM ({PAPER[0]} ± {PAPER[1]})")
    ax.axhline(TARGET, color="C3", ls="--", lw=1, label=f"target {TARGET:g}")
    for i, seed in enumerate(sorted(refined)):
        x, y = zip(*sorted(refined[seed]))
        ax.plot(x, y, "s-", color=f"C{i}", label=f"seed {seed}, refined")
        if plain[seed]:
            x, y = zip(*sorted(plain[seed]))
            ax.plot(x, y, "o:", color=f"C{i}", alpha=0.6)
    by_steps: dict[int, list[float]] = defaultdict(list)
    for points in refined.values():
        for steps, value in points:
            by_steps[steps].append(value)
    x = sorted(n for n, v in by_steps.items() if len(v) == len(refined))
    means = [np.mean(by_steps[n]) for n in x]
    ax.plot(x, means, "k-", lw=2, label="mean of the seeds, refined")
    for n, m in zip(x, means):
        ax.annotate(f"{m:.2f} ± {np.std(by_steps[n], ddof=1):.2f}", (n, m), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.8))
    ax.margins(x=0.08)
    ax.set_xlabel("training steps (batch 32)")
    ax.set_ylabel("FG-ARI, 1,000 test images")
    ax.set_title("Additive MPM on CPU: refined (solid) and inner loop's Λ (dotted)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print("wrote", args.out, {n: round(float(m), 2) for n, m in zip(x, means)})


if __name__ == "__main__":
    main()
