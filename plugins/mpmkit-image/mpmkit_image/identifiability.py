"""Identifiability across runs: SMCC between the slots of independently trained models.

Every run of a comparison sees the same *fresh* scenes (drawn by the generator with a seed no run
trained or was tested on). Slots are matched per image by the overlap of their masks (the decoder's
alpha masks, or q for the mixture decoder), pairs in which either slot owns less than ``min_mass``
of the image are left out (pruned or empty slots carry no data), then :func:`mpmkit.metrics.smcc`
fits an affine map from one run's slot vectors (μ for PSA) to the other's and reports the mean
correlation.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import numpy as np

from mpmkit.metrics import smcc

from .data import SceneList, scenes_from_arrays
from .tetrominoes import generate

FRESH_SEED = 10_000  #: generator seed of the comparison scenes (training data uses data_seed=0 by default)
MIN_MASS = 0.03  #: slots explaining less than this fraction of an image (pruned / empty) are left out of SMCC


def fresh_scenes(num_images: int, num_objects=3, data_seed: int = FRESH_SEED) -> SceneList:
    """``num_images`` scenes no run has seen (the generator at ``data_seed``)."""
    return scenes_from_arrays(generate(num_images, data_seed, num_objects))


def slot_representations(run_dir: str | Path, scenes) -> tuple[np.ndarray, np.ndarray]:
    """(slot vectors ``[M, K, D]``, masks ``[M, N, K]``) of a run's best checkpoint on ``scenes``."""
    from mpmkit.runs import open_run

    from .family import infer_scenes

    run = open_run(run_dir, "best")
    o = run.cfg.family
    res = infer_scenes(run.model, scenes, o.eval_inner_steps or run.cfg.inner_steps,
                       solver=run.family.eval_solver(run.cfg, run.model))
    return res["lam"], res["masks"]


def pairwise_smcc(run_dirs: Sequence[str | Path], num_images: int = 200, num_objects=None,
                  data_seed: int = FRESH_SEED, min_mass: float = MIN_MASS) -> dict:
    """SMCC of every pair of runs on the same fresh scenes: ``{"pairs", "mean", "std"}``.

    ``num_objects`` defaults to the first run's config (so variable-count runs are compared on
    variable-count scenes)."""
    if len(run_dirs) < 2:
        raise ValueError(f"SMCC compares runs pairwise; got {len(run_dirs)} run(s), need at least 2")
    if num_objects is None:
        import json

        from mpmkit.runs import config_for

        saved = json.loads((Path(run_dirs[0]) / "config.json").read_text())
        num_objects = config_for(saved["family"], saved.get("options", {})).family.object_count
    scenes = fresh_scenes(num_images, num_objects, data_seed)
    reps = [slot_representations(r, scenes) for r in run_dirs]
    pairs = [{"a": str(run_dirs[i]), "b": str(run_dirs[j]),
              "smcc": smcc(reps[i][0], reps[j][0], reps[i][1], reps[j][1], min_mass=min_mass)}
             for i, j in itertools.combinations(range(len(reps)), 2)]
    values = np.array([p["smcc"] for p in pairs])
    return {"pairs": pairs, "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "num_images": num_images, "data_seed": data_seed, "min_mass": min_mass}


def main(argv=None) -> dict:
    """``python -m mpmkit_image.identifiability RUN RUN [RUN ...] [--images N]``: pairwise SMCC."""
    import argparse
    import json

    p = argparse.ArgumentParser(description="SMCC between the slots of tetrominoes runs on fresh scenes")
    p.add_argument("runs", nargs="+")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--min-mass", type=float, default=MIN_MASS, help="leave out slots owning less of an image (0: keep all)")
    a = p.parse_args(argv)
    out = pairwise_smcc(a.runs, num_images=a.images, min_mass=a.min_mass)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
