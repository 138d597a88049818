"""Multi-seed Tetrominoes runner: train N seeds per model at a wall-clock budget, report FG-ARI.

Each run is an ordinary mpmkit run directory trained by ``mpmkit.training.Trainer`` (the same
harness as ``mpmkit fit``). Training goes in chunks (``--chunks``): after each chunk the run is
resumed with a larger ``max_steps``, and the test FG-ARI on the first ``--curve-images`` test
images is recorded against the training wall-clock (evaluation time is not counted). At the end
each run is evaluated like ``mpmkit evaluate RUN`` (best-validation checkpoint, full test split),
which writes ``metrics.json`` and the figures. The GMM baseline is scored inside the same
evaluation on the same test images (``fg_ari_gmm``).

    python benchmarks/tetrominoes_sweep.py --models additive,mixture,slot-attention,gmm \\
        --seeds 42 43 44 --minutes 5 --out runs/sweep

``--plot A/summary.json B/summary.json --figure F.png`` draws the curves of sweeps run side by side
into one figure. ``--smcc N`` adds, per model, the SMCC between every pair of its seeds on N fresh scenes
(identifiability; ``mpmkit_image.identifiability``); PSA runs also report ARD count accuracy.

Prints per model: FG-ARI mean ± std, median, failed seeds (FG-ARI < 80); writes
``summary.json`` and ``curve.png`` (FG-ARI vs training minutes) into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

PRESETS = {
    "additive": {"decoder": "additive"},
    "mixture": {"decoder": "mixture", "beta": 0.01, "gmm_baseline": False},  # the paper's mixture runs: β = 0.01
    "slot-attention": {"decoder": "additive", "solver": "slot-attention", "gmm_baseline": False},
    # Probabilistic Slot Attention: per-image GMM with π and diagonal σ², EM inner loop, ARD
    "psa": {"decoder": "additive", "local": "psa", "gmm_baseline": False},
    # PSA with the mixture decoder: the background stays one slot, so ARD never over-counts (it merges
    # objects of one colour instead; see ard_matches_colour_count)
    "psa-mixture": {"decoder": "mixture", "local": "psa", "beta": 0.01, "gmm_baseline": False},
    # the paper's networks and optimiser settings (σ = 1, lr 4e-4, every pixel decoded), same harness
    "paper-additive": {"decoder": "additive", "arch": "paper", "sigma": 1.0, "lr": 4e-4, "train_pixels": 0,
                       "slot_noise": 0.0, "gmm_baseline": False},
    "gmm": None,  # scored inside each run's evaluation, or alone when no MPM model is swept
}
FAILED_BELOW = 80.0


def curve_fg_ari(run_dir: Path, n: int) -> float:
    """Test FG-ARI of the latest checkpoint on the first ``n`` test images."""
    from mpmkit.runs import open_run
    from mpmkit_image.family import infer_scenes
    from mpmkit_image.metrics import fg_ari

    run = open_run(run_dir, "latest")
    res = infer_scenes(run.model, run.splits.test[:n], run.cfg.family.eval_inner_steps or run.cfg.inner_steps,
                       solver=run.family.eval_solver(run.cfg, run.model))  # as the final evaluation does
    return fg_ari(res["labels"], res["pred"])


def train_budget(model: str, seed: int, minutes: float, chunks: int, out: Path, overrides: dict,
                 curve_images: int) -> dict:
    """Train one (model, seed) for ``minutes`` of wall-clock; returns its curve and final metrics."""
    from mpmkit.runs import config_for, evaluate_run, make_family
    from mpmkit.training import Trainer

    run_dir = out / f"{model}-seed{seed}"
    values = {**PRESETS[model], "epochs": 10_000, "progress": False, "tensorboard": False, **overrides,
              "seed": seed}
    budget, spent, steps, curve = minutes * 60.0, 0.0, 0, []
    per_step, chunk = None, 0
    # Chunk c aims at budget·(c+1)/chunks. The step time is re-estimated from the latest chunk alone:
    # the 20-step calibration chunk carries the start-up cost, so its rate undershoots the next chunk,
    # and extra chunks top the run up until the budget is spent.
    while spent < budget * 0.98 and chunk < 3 * chunks:
        # the next curve point still ahead (a chunk that ran slow must not leave 1-step chunks behind it)
        target = min(budget, budget / chunks * (max(chunk, int(spent / (budget / chunks))) + 1))
        add = 20 if per_step is None else max(1, int((target - spent) / per_step))
        values["max_steps"] = steps + add
        cfg = config_for("tetrominoes", values)
        t0 = time.perf_counter()
        summary = Trainer(make_family("tetrominoes"), cfg, run_dir, resume=chunk > 0).fit()
        dt = time.perf_counter() - t0
        spent += dt
        per_step = dt / max(summary["step"] - steps, 1)
        steps = summary["step"]
        chunk += 1
        fg = curve_fg_ari(run_dir, curve_images)
        curve.append({"minutes": spent / 60, "step": steps, "fg_ari": fg})
        print(f"  {model} seed {seed}: {spent / 60:5.2f} min, step {steps}, test FG-ARI ({curve_images} images) "
              f"{fg:.1f}", flush=True)
    metrics = evaluate_run(run_dir)
    return {"model": model, "seed": seed, "train_minutes": spent / 60, "steps": steps,
            "images_per_s": steps * cfg.batch_size / spent, "curve": curve, "metrics": metrics}


def gmm_only(seed: int, overrides: dict) -> float:
    """FG-ARI of the per-image GMM baseline on a seed's test split (when no MPM run provides it)."""
    from mpmkit.runs import config_for
    from mpmkit_image.data import collate, pixel_colours
    from mpmkit_image.family import gmm_segment, make_splits
    from mpmkit_image.metrics import fg_ari

    cfg = config_for("tetrominoes", {**overrides, "seed": seed})
    test = make_splits(cfg.family, seed).test
    if cfg.family.eval_limit:
        test = test[: cfg.family.eval_limit]
    b = collate([test[i] for i in range(len(test))])
    pred = gmm_segment(pixel_colours(b.x).numpy(), cfg.family.num_slots, seed)
    return fg_ari(b.extras["labels"], pred)


def summarise(name: str, values: list[float]) -> dict:
    v = np.asarray(values, float)
    row = {"model": name, "n": int(v.size), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
           "median": float(np.median(v)), "failed": int((v < FAILED_BELOW).sum()), "values": v.round(2).tolist()}
    print(f"{name:>16}: FG-ARI {row['mean']:6.2f} ± {row['std']:5.2f} (n={row['n']}), median {row['median']:6.2f}, "
          f"failed (< {FAILED_BELOW:.0f}) {row['failed']}, per seed {row['values']}")
    return row


def plot_curves(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colours = {}
    for r in runs:
        c = colours.setdefault(r["model"], f"C{len(colours)}")
        xs = [0.0] + [p["minutes"] for p in r["curve"]]
        ys = [np.nan] + [p["fg_ari"] for p in r["curve"]]
        ax.plot(xs, ys, "o-", color=c, ms=3, label=r["model"] if r["model"] not in ax.get_legend_handles_labels()[1] else None)
    ax.set_xlabel("training wall-clock (minutes, this CPU)")
    ax.set_ylabel("test FG-ARI (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    from mpmkit.config import parse_overrides

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="additive,mixture,slot-attention,gmm",
                   help=f"comma-separated, from {', '.join(PRESETS)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--minutes", type=float, default=5.0, help="training wall-clock per run")
    p.add_argument("--chunks", type=int, default=5, help="curve points per run")
    p.add_argument("--curve-images", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smcc", type=int, default=0, metavar="N",
                   help="also score SMCC between every pair of seeds of a model on N fresh scenes (0: off)")
    p.add_argument("--out", default="runs/tetrominoes_sweep")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--plot", nargs="+", metavar="SUMMARY", default=None,
                   help="only draw the curves of these summary.json files (runs side by side) into FIGURE")
    p.add_argument("--figure", default="curve.png", help="with --plot: the figure to write")
    a = p.parse_args(argv)
    if not a.minutes > 0:
        p.error(f"--minutes {a.minutes:g}: a run needs some training time; use a number > 0")
    if a.chunks < 1:
        p.error(f"--chunks {a.chunks}: use a whole number >= 1 (points on each run's curve)")
    if a.threads < 1 or a.curve_images < 1 or a.smcc < 0:
        p.error("--threads and --curve-images must be >= 1 and --smcc >= 0")
    if a.plot:  # e.g. two sweeps run at once, default vs the paper's architecture
        runs = [r for f in a.plot for r in json.loads(Path(f).read_text())["runs"]]
        plot_curves(runs, Path(a.figure))
        print(f"wrote {a.figure} ({len(runs)} runs)")
        return {"runs": runs}
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = parse_overrides(a.overrides)
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in PRESETS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {', '.join(PRESETS)}")
    runs, gmm = [], []
    for model in models:
        if model == "gmm":
            continue
        for seed in a.seeds:
            r = train_budget(model, seed, a.minutes, a.chunks, out, overrides, a.curve_images)
            runs.append(r)
            print(f"{model} seed {seed}: FG-ARI {r['metrics']['fg_ari']:.2f}, ARI {r['metrics']['ari']:.2f}, "
                  f"MSE {r['metrics']['mse']:.4f}, {r['images_per_s']:.1f} images/s", flush=True)
            (out / "summary.json").write_text(json.dumps({"runs": runs}, indent=1))
    if "gmm" in models:
        by_seed = {r["seed"]: r["metrics"]["fg_ari_gmm"] for r in runs if "fg_ari_gmm" in r["metrics"]}
        gmm = [by_seed[s] if s in by_seed else gmm_only(s, overrides) for s in a.seeds]
    print(f"\nTetrominoes, {a.minutes:g} training minutes per run, seeds {a.seeds}:")
    table = [summarise(m, [r["metrics"]["fg_ari"] for r in runs if r["model"] == m]) for m in models if m != "gmm"]
    if a.smcc:
        from mpmkit_image.identifiability import pairwise_smcc

        for row in table:
            dirs = [out / f"{row['model']}-seed{s}" for s in a.seeds]
            if len(dirs) > 1:
                row["smcc"] = pairwise_smcc(dirs, num_images=a.smcc)
                print(f"{row['model']:>16}: SMCC {row['smcc']['mean']:.3f} ± {row['smcc']['std']:.3f} over "
                      f"{len(row['smcc']['pairs'])} pairs of seeds ({a.smcc} fresh scenes)")
    for row in table:  # ARD slot counts (PSA runs)
        acc = [r["metrics"]["ard_count_accuracy"] for r in runs if r["model"] == row["model"]
               and "ard_count_accuracy" in r["metrics"]]
        if acc:
            row["ard_count_accuracy"] = acc
            print(f"{row['model']:>16}: ARD count accuracy {np.mean(acc):.3f} per seed {np.round(acc, 3).tolist()}")
    if gmm:
        table.append(summarise("gmm", gmm))
    summary = {"minutes": a.minutes, "seeds": a.seeds, "overrides": overrides, "table": table, "runs": runs}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if runs:
        plot_curves(runs, out / "curve.png")
    return summary


if __name__ == "__main__":
    main()
