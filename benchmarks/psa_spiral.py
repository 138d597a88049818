"""PSA vs MPM vs Slot Attention on variable-count spiral data: ARI, ARD count accuracy, SMCC across seeds.

ARD's annihilation fraction (``ard_prune``) is chosen per run by slot-count accuracy on the
validation split, then the test split is evaluated once. Every model is trained with several seeds on the *same* data (``data_seed`` fixed), so the slots of
two runs describe the same test datasets and SMCC (slot identifiability up to an affine map and a
permutation) can be computed between every pair of seeds. Slots are matched through their
assignments q, and compared in data units (μ · s, the latent plane before T).

    python benchmarks/psa_spiral.py --seeds 0 1 2 --out runs/psa_spiral
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from mpmkit import checkpoint as ckpt
from mpmkit.config import parse_overrides
from mpmkit.errors import MPMKitError
from mpmkit.metrics import smcc
from mpmkit.runs import config_for, evaluate_run, make_family, open_run
from mpmkit.training import Trainer

PRUNE_GRID = (0.0, 0.03, 0.06, 0.1, 0.15, 0.2)
MODELS = {
    "psa": {"local": "psa"},
    "mpm": {"local": "mpm"},
    "slot-attention": {"local": "mpm", "solver": "slot-attention", "backward": "full", "inner_steps": 3},
}
IGNORED = {"ard_prune", "progress", "tensorboard", "device"}  # chosen after training, or display only
DATA = {"clusters_min": 2, "data_seed": 0, "vae_steps": 0, "progress": False, "tensorboard": False}


def slots_of(run_dir: Path):
    """Slot means in data units ``[M, K, 2]`` and assignments ``[M, N, K]`` on the test split."""
    from mpmkit_spiral.data import collate

    run = open_run(run_dir)
    test = list(run.splits.test)
    batch = collate(test)
    with torch.no_grad():
        inf = run.model.infer(batch, steps=run.cfg.family.eval_inner_steps or run.cfg.inner_steps,
                              solver=run.family.eval_solver(run.cfg, run.model))
        mu = run.model.potential.slot_means(inf.lam) * run.model.likelihood.scale
    return mu.numpy(), inf.q.numpy()


def choose_prune(run_dir: Path) -> tuple[float, dict]:
    """ARD's annihilation fraction chosen by slot-count accuracy on the *validation* split."""
    from mpmkit.psa import active_slots

    run = open_run(run_dir)
    val = list(run.splits.val)
    truth = np.array([len(np.unique(d.labels)) for d in val])
    scores = {}
    for c in PRUNE_GRID:
        run.cfg.family.ard_prune = c
        _, _, lam = run.family.infer_labels(run.model, val, run.cfg)
        active = active_slots(lam, run.cfg.family.ard_tau).sum(-1).numpy()
        scores[c] = float(np.mean(active == truth))
    return max(scores, key=scores.get), scores


def evaluate_with_prune(run_dir: Path, prune: float) -> dict:
    from mpmkit import checkpoint as ckpt

    run = open_run(run_dir)
    run.cfg.family.ard_prune = prune
    m = {"family": "spiral-gmm", **run.family.evaluate(run.model, run.splits, run.cfg, run_dir)}
    ckpt.atomic_write_json(run_dir / "metrics.json", m)
    return m


def refuse_stale(run_dir: Path, cfg) -> None:
    """Stop if ``run_dir`` holds a finished run trained with other options than ``cfg`` (e.g. another --set)."""
    stored = json.loads((run_dir / "config.json").read_text())
    wanted = ckpt.plain(cfg.to_dict())  # as stored: tuples become lists
    diff = sorted(f"{sec}.{k}: stored {stored.get(sec, {}).get(k)!r}, asked {v!r}"
                  for sec in ("train", "options") for k, v in wanted.get(sec, {}).items()
                  if k not in IGNORED and stored.get(sec, {}).get(k) != v)
    if diff:
        raise SystemExit(f"{run_dir} holds a run with other options ({'; '.join(diff)}); "
                         "use another --out, or delete that directory to retrain it")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--out", type=Path, default=Path("runs/psa_spiral"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra option for every run (repeat for more); values parsed as YAML")
    args = ap.parse_args()
    torch.set_num_threads(1)
    try:
        extra = parse_overrides(args.overrides)
        for name in args.models:  # bad options fail here, before any training
            config_for("spiral-gmm", {**DATA, **MODELS[name], **extra, "seed": args.seeds[0]})
    except MPMKitError as e:
        ap.error(str(e))
    rows = {}
    for name in args.models:
        metrics, slots = [], []
        for seed in args.seeds:
            out = args.out / f"{name}-seed{seed}"
            t0 = time.perf_counter()
            cfg = config_for("spiral-gmm", {**DATA, **MODELS[name], **extra, "seed": seed})
            if (out / "metrics.json").exists():  # a finished run of this sweep: reuse it if it is the same run
                refuse_stale(out, cfg)
                m = json.loads((out / "metrics.json").read_text())
            else:
                Trainer(make_family("spiral-gmm"), cfg, out).fit()
                if cfg.family.local == "psa":
                    prune, val_scores = choose_prune(out)
                    m = evaluate_with_prune(out, prune)
                    m["val_count_accuracy_by_prune"] = val_scores
                    (out / "metrics.json").write_text(json.dumps(m, indent=2))
                else:
                    m = evaluate_run(out)
            m["seconds"] = time.perf_counter() - t0
            metrics.append(m)
            slots.append(slots_of(out))
            print(f"{name} seed {seed}: ARI {m['ari_mpm']:.3f}, α error {100 * m['alpha_rel_error']:.1f} %, "
                  f"count accuracy {m.get('ard_count_accuracy', float('nan')):.2f} "
                  f"(ARD prune {m.get('ard_prune', '-')}, chosen on validation)", flush=True)
        pairs = [smcc(a[0], b[0], a[1], b[1]) for a, b in itertools.combinations(slots, 2)]
        ari = np.array([m["ari_mpm"] for m in metrics])
        rows[name] = {"ari_mean": ari.mean(), "ari_std": ari.std(ddof=1) if len(ari) > 1 else float("nan"), "ari_gmm": np.mean([m["ari_gmm"] for m in metrics]),
                      "alpha_err_pct": 100 * np.mean([m["alpha_rel_error"] for m in metrics]),
                      "count_acc": np.mean([m.get("ard_count_accuracy", np.nan) for m in metrics]),
                      "smcc_mean": float(np.mean(pairs)) if pairs else float("nan"),
                      "smcc_std": float(np.std(pairs, ddof=1)) if len(pairs) > 1 else float("nan")}
    print("\n(± is the sample standard deviation, ddof=1)")
    print("\n| model | ARI (mean ± std) | GMM ARI | α error | ARD count accuracy | SMCC across seeds |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        count = "—" if np.isnan(r["count_acc"]) else f"{r['count_acc']:.2f}"
        print(f"| {name} | {r['ari_mean']:.3f} ± {r['ari_std']:.3f} | {r['ari_gmm']:.3f} | {r['alpha_err_pct']:.1f} % "
              f"| {count} | {r['smcc_mean']:.3f} ± {r['smcc_std']:.3f} |")


if __name__ == "__main__":
    main()
