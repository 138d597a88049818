"""Per-seed test FG-ARI of tetrominoes runs with and without test-time refinement, as a figure.

    python benchmarks/plot_refined_seeds.py runs/long/s42 runs/long/s43 runs/long/s44 runs/long/s45 \\
        --out benchmarks/tetrominoes_seeds_refined.png

Reads each run's ``metrics*.json`` written by ``mpmkit evaluate`` (``eval_refine_steps`` 0 and 100 on all
1,000 test images); the seeds 43 / 44 runs have no unrefined file of their own, pass their values with
``--plain SEED=FG_ARI``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PAPER = (96.46, 1.89)  # the paper's additive MPM, Table 1 (5 seeds, GPU)
TARGET = 99.0


def scores(run: Path) -> tuple[int, dict[int, float]]:
    """(seed, {refine steps: FG-ARI}) from the full-test-set evaluations of ``run``."""
    out, seed = {}, None
    for f in sorted(run.glob("metrics*.json")):
        m = json.loads(f.read_text())
        if m.get("num_test_images") != 1000 or "eval_refine_steps" not in m:
            continue
        seed = m["seed"]
        out[m["eval_refine_steps"]] = m["fg_ari"]
    if seed is None:
        raise SystemExit(f"{run}: no evaluation on the 1,000 test images with eval_refine_steps recorded")
    return seed, out


def trained_steps(run: Path) -> int:
    """Steps of the run's latest checkpoint (its pointer names ``step-NNNNNNNN``)."""
    return int(json.loads((run / "checkpoints" / "latest.json").read_text())["path"].split("-")[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--plain", nargs="*", default=[], help="SEED=FG_ARI for runs without an unrefined file")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/tetrominoes_seeds_refined.png"))
    args = ap.parse_args()
    given = {int(k): float(v) for k, v in (p.split("=") for p in args.plain)}
    rows = []
    for run in args.runs:
        seed, s = scores(run)
        rows.append((seed, s.get(0, given.get(seed, np.nan)), s[max(s)]))
    rows.sort()
    seeds, plain, refined = zip(*rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(seeds))
    ax.axhspan(PAPER[0] - PAPER[1], PAPER[0] + PAPER[1], color="0.85", label=f"paper, additive MPM ({PAPER[0]} ± {PAPER[1]})")
    ax.axhline(TARGET, color="C3", ls="--", lw=1, label=f"target {TARGET:g}")
    ax.plot(x, plain, "o", color="C0", label=f"inner loop's Λ (mean {np.nanmean(plain):.2f})")
    ax.plot(x, refined, "s", color="C2", label=f"refined, 100 steps (mean {np.mean(refined):.2f} ± {np.std(refined, ddof=1):.2f})")
    for i in x:
        ax.annotate("", (i, refined[i]), (i, plain[i]), arrowprops=dict(arrowstyle="->", color="0.5"))
    ax.set_xticks(x, [f"seed {s}" for s in seeds])
    ax.set_ylabel("FG-ARI, 1,000 test images")
    steps = sorted({trained_steps(run) for run in args.runs})
    ax.set_title(f"Additive MPM, {' / '.join(f'{n:,}' for n in steps)} training steps (CPU)")
    ax.set_ylim(min(np.nanmin(plain), PAPER[0] - PAPER[1]) - 1, 100)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print("wrote", args.out, dict(zip(seeds, zip(plain, refined))))


if __name__ == "__main__":
    main()
