"""Tutorial 6 — Probabilistic Slot Attention (PSA) vs MPM vs Slot Attention on Tetrominoes.

PSA (Kori et al., 2024; `../shared/papers/001_…`) changes one thing in the MPM inner loop: each
image's GMM over pixel embeddings gets mixing weights π_k and diagonal variances σ²_k, fitted by
closed-form EM (`psa-em`). Three things follow, and this tutorial measures each of them:

* automatic relevance determination (ARD): a slot whose π_k falls below τ explains almost no
  pixel, so it is pruned — the number of objects in an image is *inferred*. The scenes here hold
  1-4 objects; K = 5 slots (background + up to 4 objects);
* identifiability: the aggregate of the local GMMs is a global mixture prior; slots of independently
  trained runs should then agree up to an affine map (SMCC, the slot mean correlation coefficient);
* a generative model of scenes: slot sets drawn from the aggregate posterior decode to new scenes.

In mpmkit PSA is not a separate model: ``--set local=psa`` swaps the local GMM of the same
tetrominoes family (same encoder, decoder, global GMM prior and training loop).

Run it as a script (or cell by cell in an editor that understands ``# %%``)::

    python tutorials/06_probabilistic_slot_attention.py                          # CPU scale, ~15-25 min
    MPMKIT_TUTORIAL_SMALL=1 python tutorials/06_probabilistic_slot_attention.py  # tiny scale, ~1 min

Full scale (3 seeds per model, a wall-clock budget per run, SMCC on 200 fresh scenes)::

    python benchmarks/tetrominoes_sweep.py --models psa,additive,slot-attention --seeds 42 43 44 \\
        --minutes 10 --smcc 200 --set num_slots=5 --set "num_objects=[1,4]" --out runs/psa_sweep

Outputs go to ``$MPMKIT_TUTORIAL_OUT`` (default ``./tutorial_out``): one run directory per model and
seed, ``psa_comparison.json``, and in the PSA runs ``ard_counts.csv`` (true vs inferred objects per
test image) and ``psa_samples.png``. It needs the ``mpmkit-image`` plugin.
"""

# %% [markdown]
# ## Set-up

# %%
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.training import Trainer
from mpmkit_image.identifiability import pairwise_smcc

torch.set_num_threads(1)
SMALL = os.environ.get("MPMKIT_TUTORIAL_SMALL", "").strip().lower() in {"1", "true", "yes"}
OUT = Path(os.environ.get("MPMKIT_TUTORIAL_OUT", "tutorial_out"))
OUT.mkdir(parents=True, exist_ok=True)
print(f"scale: {'small' if SMALL else 'CPU'}; output: {OUT.resolve()}")

# %% [markdown]
# ## 1. Scenes with 1-4 objects
# `num_objects=[1, 4]` makes the generator draw the count uniformly per image; with K = 5 slots
# every scene fits (background + objects), and images with fewer objects leave slots to prune.

# %%
common = {"num_objects": [1, 4], "num_slots": 5, "num_images": 10000, "epochs": 10_000, "max_steps": 1500,
          "cache_dir": str(OUT / "cache"), "progress": False, "tensorboard": False, "gmm_baseline": False}
seeds = [42, 43]
smcc_images = 200
if SMALL:
    common.update(num_images=100, max_steps=4, eval_limit=10, batch_size=8)
    smcc_images = 30

# %% [markdown]
# ## 2. Three models, same harness
# * PSA: `local=psa` — λ_ik = (μ_k, log σ²_k, log π_k), the EM inner loop, the global GMM prior on
#   the means; the decoder reads μ; at evaluation slots with π_k < `ard_tau` are not decoded;
# * MPM additive: the paper's local GMM (π uniform, σ² = 1; Proposition 1);
# * Slot Attention: the `slot-attention` solver (GRU updates) with the same networks;
# * PSA mixture: PSA's local GMM with the mixture decoder (β = 0.01 as the paper's mixture runs),
#   evaluated as it is and with the connectivity split move (`ard_split=true`, section 5).

# %%
models = {"PSA": {"local": "psa"}, "MPM additive": {}, "Slot Attention": {"solver": "slot-attention"},
          "PSA mixture": {"local": "psa", "decoder": "mixture", "beta": 0.01}}
results = {}
for name, extra in models.items():
    results[name] = []
    for seed in seeds:
        run_dir = OUT / f"{name.lower().replace(' ', '_')}-seed{seed}"
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = config_for("tetrominoes", {**common, **extra, "seed": seed})
        t0 = time.perf_counter()
        Trainer(make_family("tetrominoes"), cfg, run_dir).fit()
        metrics = evaluate_run(run_dir)
        if name == "PSA mixture":  # the same run, its inner loop followed by the split move
            split = evaluate_run(run_dir, overrides={"ard_split": True, "figures": False})
            metrics["split"] = {k: split[k] for k in ("fg_ari", "ard_count_accuracy", "split_images")}
        results[name].append({"run": str(run_dir), "seconds": time.perf_counter() - t0, **metrics})
        print(f"{name:>15} seed {seed}: FG-ARI {metrics['fg_ari']:5.1f}, count accuracy (segmentation) "
              f"{metrics['area_count_accuracy']:.2f}"
              + (f", ARD {metrics['ard_count_accuracy']:.2f}" if "ard_count_accuracy" in metrics else ""))

# %% [markdown]
# ## 3. Counts, identifiability, quality
# *ARD count*: active slots (π_k ≥ τ) minus the background. *Segmentation count*: slots owning at
# least τ of the pixels in the argmax segmentation, minus the background — a count every model
# has, so it is the baseline for ARD. *SMCC*: every pair of seeds of a model, on fresh scenes no
# run saw, slots matched per image by mask overlap, then an affine fit.

# %%
table = {}
for name, runs in results.items():
    smcc = pairwise_smcc([r["run"] for r in runs], num_images=smcc_images)
    table[name] = {
        "fg_ari": float(np.mean([r["fg_ari"] for r in runs])),
        "segmentation_count_accuracy": float(np.mean([r["area_count_accuracy"] for r in runs])),
        "ard_count_accuracy": (float(np.mean([r["ard_count_accuracy"] for r in runs]))
                               if "ard_count_accuracy" in runs[0] else None),
        "smcc": smcc["mean"],
    }
print(f"{'model':>15} | FG-ARI | count acc. (segmentation) | count acc. (ARD) | SMCC")
for name, row in table.items():
    ard = "—" if row["ard_count_accuracy"] is None else f"{row['ard_count_accuracy']:.2f}"
    print(f"{name:>15} | {row['fg_ari']:6.1f} | {row['segmentation_count_accuracy']:25.2f} | {ard:>16} | "
          f"{row['smcc']:.3f}")
(OUT / "psa_comparison.json").write_text(json.dumps({"table": table, "runs": results}, indent=1, default=str))

# %% [markdown]
# ## 4. What to look at
# * `psa-seed42/ard_counts.csv`: per test image the true and the inferred number of objects and
#   the sorted π; `metrics.json` holds the confusion (`ard_confusion`, true → inferred);
# * `metrics.json` also says whether ARD counts objects or colours: `ard_matches_colour_count` and
#   the accuracy on images whose objects all differ in colour vs those with a repeated colour. With
#   the additive decoder the background tends to split (over-counts); with `decoder=mixture` the
#   background is one slot but two objects of one colour share a slot (benchmarks/RESULTS.md);
# * `psa-seed42/psa_samples.png`: new scenes decoded from slot sets drawn from the aggregate
#   posterior (top row) beside training images (bottom row);
# * `fig4_segmentation.png` in every run: in the PSA runs pruned slots have empty masks.

# %% [markdown]
# ## 5. Counting objects, not colours: the split move
# The mixture decoder only asks a slot to predict the colours of its own pixels, so g_φ groups by
# colour: the background stays one slot, and two pieces of one colour share one. An object is a
# connected region, so `ard_split=true` adds one step after the inner loop
# (`mpmkit_image.split.split_disconnected`): each active object slot whose pixels form several
# connected regions holding ≥ τ of the image gives the extra regions to pruned slots, with (μ, σ²)
# by the M-step on each region and π shared by mass. Touching pieces of one colour stay merged.
# At full scale (6,000 steps, seeds 42-44) this took the ARD count from 0.69 ± 0.02 to 0.92 ± 0.02
# of the test images and FG-ARI from 79.2 to 89.4 (benchmarks/RESULTS.md, "The split move").

# %%
for r in results["PSA mixture"]:
    print(f"PSA mixture seed {r['seed']}: ARD count accuracy {r['ard_count_accuracy']:.2f} → "
          f"{r['split']['ard_count_accuracy']:.2f} with the split move ({r['split']['split_images']} images split), "
          f"FG-ARI {r['fg_ari']:.1f} → {r['split']['fg_ari']:.1f}")

# %%
psa_run = Path(results["PSA"][0]["run"])
print("confusion (true objects → inferred objects):", results["PSA"][0]["ard_confusion"])
print("ARD count = distinct colours on", results["PSA"][0]["ard_matches_colour_count"], "of the test images")
print("figures:", psa_run / "psa_samples.png", psa_run / "fig4_segmentation.png")
