"""Inference backends on PSA's λ = (μ, log σ², π): the same trained spiral PSA runs evaluated by PSA-EM,
MAP by Pyro SVI (Delta guide), SVI with a Normal guide and NUTS (the last two with an inverse-gamma prior on
the variances, which they need), side by side: test ARI, ARD slot-count accuracy, wall time.

    python benchmarks/psa_backends.py --seeds 0 1 2 --out runs/psa_backends

Training (if a run is missing) uses the set-up of ``benchmarks/psa_spiral.py``: 2–4 clusters per dataset,
the same data for every seed, in-loop ARD at 0.1 at test time for the run's own metrics.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.training import Trainer

TRAIN = {"local": "psa", "clusters_min": 2, "data_seed": 0, "vae_steps": 0, "ard_prune": 0.1,
         "progress": False, "tensorboard": False}
IG = [1.0, 0.01]  #: IG(α, β) on each σ², in units of g
SVI_LONG = {"num_steps": 2000, "lr": 0.05}  #: the defaults (300 steps, lr 0.2) stop far from a mode here
VARIANTS = {  # label -> evaluation overrides (figure off: only the scores are compared)
    "psa-em, in-loop ARD 0.1 (the run's own)": {},
    "psa-em": {"ard_prune": 0.0},
    "psa-em, IG variance prior": {"ard_prune": 0.0, "psa_var_prior": IG},
    "pyro-svi, Delta guide (MAP), defaults": {"ard_prune": 0.0, "solver": "pyro-svi",
                                              "solver_options": {"guide": "delta"}},
    "pyro-svi, Delta guide (MAP), 2000 steps": {"ard_prune": 0.0, "solver": "pyro-svi",
                                                "solver_options": {"guide": "delta", **SVI_LONG}},
    "pyro-svi, Normal guide, IG prior, 2000 steps": {"ard_prune": 0.0, "solver": "pyro-svi", "psa_var_prior": IG,
                                                     "solver_options": SVI_LONG},
    "pyro-nuts, IG prior": {"ard_prune": 0.0, "solver": "pyro-nuts", "psa_var_prior": IG,
                            "solver_options": {"num_samples": 100, "warmup_steps": 100, "num_chains": 2}},
}


@torch.no_grad()
def map_objective(run_dir: Path) -> dict[str, float]:
    """Mean over the test datasets of the objective both MAP solvers maximise, log p̂(λ, D) with z summed
    out, at λ⁰, at PSA-EM's λ (30 steps) and at Pyro SVI's Delta-guide λ (``SVI_LONG``)."""
    from mpmkit.runs import open_run
    from mpmkit.solvers.pyro_svi import PyroSVI
    from mpmkit_spiral.data import collate

    run = open_run(run_dir, overrides={"ard_prune": 0.0})
    model, batch = run.model.eval(), collate(list(run.splits.test))
    density = PyroSVI(guide="delta")
    fixed = density._fixed(model.problem(batch))
    em = model.infer(batch, steps=30)
    svi = model.infer(batch, steps=30, solver=PyroSVI(guide="delta", **SVI_LONG))
    return {name: density._surrogate(fixed, lam) for name, lam in
            (("lambda0", fixed.lam0), ("psa-em", em.lam), ("pyro-svi delta", svi.lam))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/psa_backends")
    args = ap.parse_args()
    out = Path(args.out)
    rows: dict[str, list[tuple[float, float, float]]] = {k: [] for k in VARIANTS}
    maps: list[dict[str, float]] = []
    for seed in args.seeds:
        run = out / f"psa{seed}"
        if not (run / "checkpoints" / "latest.json").exists():
            t0 = time.perf_counter()
            Trainer(make_family("spiral-gmm"), config_for("spiral-gmm", {**TRAIN, "seed": seed}), run).fit()
            print(f"seed {seed}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
        for label, overrides in VARIANTS.items():
            t0 = time.perf_counter()
            m = evaluate_run(run, overrides={**overrides, "figure": False})
            dt = time.perf_counter() - t0
            rows[label].append((m["ari_mpm"], m["ard_count_accuracy"], dt))
            print(json.dumps({"seed": seed, "variant": label, "ari": m["ari_mpm"],
                              "ard_count_accuracy": m["ard_count_accuracy"], "seconds": dt}), flush=True)
        maps.append(map_objective(run))
        print(json.dumps({"seed": seed, "log_density_per_dataset": maps[-1]}), flush=True)
    m = np.asarray([[d["psa-em"], d["pyro-svi delta"]] for d in maps])
    print(f"\nMAP objective log p̂(λ, D) per test dataset at the solution: psa-em {m[:, 0].mean():.2f}, "
          f"pyro-svi Delta 2000 steps {m[:, 1].mean():.2f} (λ⁰: {np.mean([d['lambda0'] for d in maps]):.2f})")
    print(f"\n{len(args.seeds)} seeds ({', '.join(map(str, args.seeds))}); mean ± std\n")
    print("| inference on the test datasets | test ARI | ARD count accuracy | seconds per evaluation |")
    print("|---|---|---|---|")
    for label, vals in rows.items():
        a = np.asarray(vals)
        sd = a.std(0, ddof=1) if len(a) > 1 else np.zeros(3)
        print(f"| {label} | {a[:, 0].mean():.3f} ± {sd[0]:.3f} | {a[:, 1].mean():.2f} ± {sd[1]:.2f} | "
              f"{a[:, 2].mean():.1f} |")


if __name__ == "__main__":
    main()
